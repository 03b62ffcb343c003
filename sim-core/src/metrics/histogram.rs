//! [`LatencyHistogram`]: an HdrHistogram (1 ns to 10 days, 3 significant
//! digits) that costs nothing until first written.
//!
//! Scope: the bins, index arithmetic and read-outs of the `hdrhistogram`
//! crate's `Histogram::<u64>::new_with_bounds(1, MAX_NS, 3)`, fed through
//! `saturating_record`, re-implemented with a storage that grows with use.
//!
//! Parameters (from the crate's source, version 7.6): lowest discernible value
//! 1 ns (unit magnitude 0), 3 significant digits, hence 2,048 sub-buckets per
//! bucket of which the upper 1,024 are used beyond bucket 0; a value's bin is
//! `((bucket + 1) << 10) + (value >> bucket) - 1024` with
//! `bucket = 53 - leading_zeros(value | 2047)`. `MAX_NS` falls in bin 51,710.
//!
//! Storage, by how many distinct bins hold values:
//! - empty: no allocation; the histogram is 32 bytes;
//! - sparse, up to [`SPARSE_MAX`] bins: a sorted vector of 8-byte entries (bin
//!   in the top 16 bits, count in the low 48), so at most 4 KiB; a record is a
//!   binary search, plus an insertion (amortised) for a new bin. 512 is
//!   measured: with 32, the 1,000-Service run went from 88 MB to 235 MB; with
//!   512 rather than 128 it went to 74 MB, the busy run's time unchanged;
//! - dense, beyond that (or when a bin's count reaches 2^48): a table of 51
//!   pages of 1,024 counts (8 KiB each), a page allocated when first written;
//!   the table is 408 bytes. A value spread over a factor of 10 touches 4 to 5
//!   pages. No allocation per record once its page exists.
//!
//! The crate allocates all 52,224 bins (408 KiB) up front, which dominated the
//! memory of runs with thousands of Services.
//!
//! [`LatencyHistogram::clear`] keeps the storage (a histogram cleared every
//! sample does not allocate again).
//!
//! Validation: the tests in `super::tests` compare count, every quantile
//! read-out, max, mean, merge and clear against the crate itself (the oracle)
//! over random value sets: few and many values, spread from 1 ns to days,
//! values at and beyond `MAX_NS`, merges of sparse and dense both ways.

use crate::time::SimDuration;
use std::fmt;

/// log2 of the number of sub-buckets in the upper half of a bucket.
const HALF_BITS: u32 = 10;
/// `sub_bucket_count - 1`: values below 2,048 are in bucket 0.
const SUB_BUCKET_MASK: u64 = (2 << HALF_BITS) - 1;
/// Leading zeros of the largest value of bucket 0.
const LEADING_ZERO_BASE: u32 = 64 - (HALF_BITS + 1);

/// Distinct bins kept in the sparse vector before the histogram goes dense.
pub(super) const SPARSE_MAX: usize = 512;
/// Bits of a sparse entry holding the count.
const COUNT_BITS: u32 = 48;
/// Largest count a sparse entry holds.
const COUNT_MAX: u64 = (1 << COUNT_BITS) - 1;

/// Bins per dense page (one bucket's upper half).
const PAGE: usize = 1 << HALF_BITS;
/// Pages covering every bin up to `MAX_NS`'s.
const PAGES: usize = bin_of(LatencyHistogram::MAX_NS) / PAGE + 1;

type Page = [u64; PAGE];

/// The bucket of `value`.
const fn bucket_of(value: u64) -> u32 {
    LEADING_ZERO_BASE - (value | SUB_BUCKET_MASK).leading_zeros()
}

/// The bin (count index) of `value`.
const fn bin_of(value: u64) -> usize {
    let bucket = bucket_of(value);
    let sub_bucket = value >> bucket;
    (((bucket as u64 + 1) << HALF_BITS) + sub_bucket - (1 << HALF_BITS)) as usize
}

/// The lowest value of `bin`.
fn value_of(bin: usize) -> u64 {
    let half = 1usize << HALF_BITS;
    let mut bucket = (bin >> HALF_BITS) as i64 - 1;
    let mut sub_bucket = (bin & (half - 1)) + half;
    if bucket < 0 {
        sub_bucket -= half;
        bucket = 0;
    }
    (sub_bucket as u64) << bucket
}

/// Size of the range of values sharing `value`'s bin.
fn equivalent_range(value: u64) -> u64 {
    1 << bucket_of(value)
}

/// The lowest value sharing `value`'s bin.
fn lowest_equivalent(value: u64) -> u64 {
    let bucket = bucket_of(value);
    (value >> bucket) << bucket
}

/// The highest value sharing `value`'s bin.
fn highest_equivalent(value: u64) -> u64 {
    if value == u64::MAX {
        u64::MAX
    } else {
        lowest_equivalent(value).saturating_add(equivalent_range(value)) - 1
    }
}

/// The middle (rounded up) of the values sharing `value`'s bin.
fn median_equivalent(value: u64) -> u64 {
    lowest_equivalent(value) + (equivalent_range(value) >> 1)
}

/// Latency distribution \[ns\], 3 significant digits, up to about 10 days.
#[derive(Clone, Default)]
pub struct LatencyHistogram {
    /// Values recorded.
    total: u64,
    bins: Bins,
}

#[derive(Clone)]
enum Bins {
    /// `bin << COUNT_BITS | count`, ascending, no zero count.
    Sparse(Vec<u64>),
    /// Pages of counts, by bin; a missing page holds zeros.
    Dense(Box<[Option<Box<Page>>; PAGES]>),
}

impl Default for Bins {
    fn default() -> Self {
        Bins::Sparse(Vec::new())
    }
}

impl fmt::Debug for LatencyHistogram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LatencyHistogram")
            .field("count", &self.total)
            .field("bins", &self.recorded().count())
            .field("dense", &self.is_dense())
            .finish()
    }
}

impl LatencyHistogram {
    /// Highest value tracked exactly \[ns\]; larger values are clamped to it.
    pub const MAX_NS: u64 = 864_000_000_000_000;

    /// An empty histogram (no allocation).
    pub const fn new() -> Self {
        LatencyHistogram {
            total: 0,
            bins: Bins::Sparse(Vec::new()),
        }
    }

    /// Records one value.
    #[inline]
    pub fn record(&mut self, d: SimDuration) {
        self.add_at(bin_of(d.as_nanos().clamp(1, Self::MAX_NS)), 1);
        self.total = self.total.saturating_add(1);
    }

    /// Records `d` `n` times: the same counts as `n` calls of
    /// [`LatencyHistogram::record`].
    pub(super) fn record_n(&mut self, d: SimDuration, n: u64) {
        if n > 0 {
            self.add_at(bin_of(d.as_nanos().clamp(1, Self::MAX_NS)), n);
            self.total = self.total.saturating_add(n);
        }
    }

    /// Adds `n` (non-zero) to the count of `bin`: inline when its page
    /// exists, else through [`LatencyHistogram::add_at_slow`].
    #[inline]
    fn add_at(&mut self, bin: usize, n: u64) {
        if let Bins::Dense(pages) = &mut self.bins {
            if let Some(page) = &mut pages[bin / PAGE] {
                let c = &mut page[bin % PAGE];
                *c = c.saturating_add(n);
                return;
            }
        }
        self.add_at_slow(bin, n);
    }

    /// [`LatencyHistogram::add_at`] into the sparse vector or a new page,
    /// going dense when the sparse vector is full or the count would not fit
    /// in it.
    #[inline(never)]
    fn add_at_slow(&mut self, bin: usize, n: u64) {
        match &mut self.bins {
            Bins::Dense(pages) => {
                let page = pages[bin / PAGE].get_or_insert_with(new_page);
                let c = &mut page[bin % PAGE];
                *c = c.saturating_add(n);
            }
            Bins::Sparse(entries) => {
                match entries.binary_search_by_key(&bin, |e| (e >> COUNT_BITS) as usize) {
                    Ok(k) if COUNT_MAX - (entries[k] & COUNT_MAX) >= n => entries[k] += n,
                    Err(k) if entries.len() < SPARSE_MAX && n <= COUNT_MAX => {
                        entries.insert(k, (bin as u64) << COUNT_BITS | n);
                    }
                    _ => {
                        self.go_dense();
                        self.add_at_slow(bin, n);
                    }
                }
            }
        }
    }

    /// Moves the sparse entries into pages.
    fn go_dense(&mut self) {
        let mut pages: Box<[Option<Box<Page>>; PAGES]> = Box::new(std::array::from_fn(|_| None));
        for (bin, count) in self.recorded() {
            pages[bin / PAGE].get_or_insert_with(new_page)[bin % PAGE] = count;
        }
        self.bins = Bins::Dense(pages);
    }

    /// The non-empty bins and their counts, in bin order.
    fn recorded(&self) -> impl Iterator<Item = (usize, u64)> + '_ {
        let (sparse, dense) = match &self.bins {
            Bins::Sparse(entries) => (Some(entries), None),
            Bins::Dense(pages) => (None, Some(pages)),
        };
        let sparse = sparse
            .into_iter()
            .flatten()
            .map(|e| ((e >> COUNT_BITS) as usize, e & COUNT_MAX));
        let dense = dense
            .into_iter()
            .flat_map(|pages| pages.iter().enumerate())
            .filter_map(|(p, page)| page.as_ref().map(|page| (p * PAGE, page)))
            .flat_map(|(base, page)| {
                page.iter()
                    .enumerate()
                    .filter(|(_, c)| **c != 0)
                    .map(move |(j, c)| (base + j, *c))
            });
        sparse.chain(dense)
    }

    /// Number of values recorded.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// The value at quantile `q` in `0.0..=1.0` (zero when empty): the
    /// highest value of the first bin where the running count reaches
    /// `ceil(q * count)` (at least 1); for `q = 0` the lowest value of the
    /// first non-empty bin.
    pub fn quantile(&self, q: f64) -> SimDuration {
        if self.total == 0 {
            return SimDuration::ZERO;
        }
        let q = q.clamp(0.0, 1.0);
        let target = ((q * self.total as f64).ceil() as u64).max(1);
        let mut running = 0u64;
        for (bin, count) in self.recorded() {
            running += count;
            if running >= target {
                let v = value_of(bin);
                return SimDuration::from_nanos(if q == 0.0 {
                    lowest_equivalent(v)
                } else {
                    highest_equivalent(v)
                });
            }
        }
        SimDuration::ZERO
    }

    /// Largest value recorded, as the highest value of its bin (zero when
    /// empty).
    pub fn max(&self) -> SimDuration {
        let top = match &self.bins {
            Bins::Sparse(entries) => entries.last().map(|e| (e >> COUNT_BITS) as usize),
            Bins::Dense(pages) => pages.iter().enumerate().rev().find_map(|(p, page)| {
                let page = page.as_ref()?;
                page.iter().rposition(|c| *c != 0).map(|j| p * PAGE + j)
            }),
        };
        SimDuration::from_nanos(top.map_or(0, |bin| highest_equivalent(value_of(bin))))
    }

    /// Mean of the values recorded, each taken at the middle of its bin, summed
    /// in bin order as `sum + middle * count / total` (zero when empty).
    pub fn mean(&self) -> SimDuration {
        SimDuration::from_secs_f64(self.mean_ns() / 1e9)
    }

    /// [`LatencyHistogram::mean`] \[ns\] before rounding to a duration.
    pub(super) fn mean_ns(&self) -> f64 {
        if self.total == 0 {
            return 0.0;
        }
        let total = self.total as f64;
        self.recorded().fold(0.0_f64, |sum, (bin, count)| {
            sum + median_equivalent(highest_equivalent(value_of(bin))) as f64 * count as f64 / total
        })
    }

    /// Whether the counts are in pages rather than the sparse vector.
    pub(super) fn is_dense(&self) -> bool {
        matches!(self.bins, Bins::Dense(_))
    }

    /// Adds every value of `other` to this histogram.
    pub fn merge(&mut self, other: &LatencyHistogram) {
        if other.total == 0 {
            return;
        }
        for (bin, count) in other.recorded() {
            self.add_at(bin, count);
        }
        self.total = self.total.saturating_add(other.total);
    }

    /// Forgets every value (keeps the storage).
    pub fn clear(&mut self) {
        self.total = 0;
        match &mut self.bins {
            Bins::Sparse(entries) => entries.clear(),
            Bins::Dense(pages) => pages.iter_mut().flatten().for_each(|p| p.fill(0)),
        }
    }
}

/// A page of zero counts.
fn new_page() -> Box<Page> {
    vec![0; PAGE]
        .into_boxed_slice()
        .try_into()
        .expect("the vector has PAGE counts")
}
