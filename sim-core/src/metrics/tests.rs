use super::*;

#[test]
fn percentiles_within_hdr_precision() {
    let mut h = LatencyHistogram::new();
    for ms in 1..=1000u64 {
        h.record(SimDuration::from_millis(ms));
    }
    let p50 = h.quantile(0.5).as_millis_f64();
    let p99 = h.quantile(0.99).as_millis_f64();
    assert!((p50 - 500.0).abs() <= 0.5 + 0.001 * 500.0, "p50 {p50}");
    assert!((p99 - 990.0).abs() <= 0.5 + 0.001 * 990.0, "p99 {p99}");
    assert_eq!(h.count(), 1000);
}

#[test]
fn sample_rows_follow_name_order_and_reset_windows() {
    let mut m = Metrics::new();
    let c = m.counter("b_total");
    let g = m.gauge("a_gauge");
    let h = m.histogram("c_latency");
    m.add(c, 3);
    m.set(g, 7.0);
    m.record(h, SimDuration::from_millis(10));
    m.sample(SimTime::from_nanos(1));
    m.sample(SimTime::from_nanos(2));
    assert_eq!(
        m.columns(),
        [
            "a_gauge",
            "b_total",
            "c_latency:count",
            "c_latency:p50_ms",
            "c_latency:p99_ms"
        ]
    );
    assert_eq!(m.rows()[0].1[..3], [7.0, 3.0, 1.0]);
    assert_eq!(m.rows()[1].1[2], 0.0, "window resets after each sample");
    assert_eq!(
        m.histogram_total(h).count(),
        1,
        "the total keeps every value"
    );
}

#[test]
fn totals_hold_the_sampled_windows_and_the_open_one() {
    let mut m = Metrics::new();
    let h = m.histogram("x");
    m.record(h, SimDuration::from_millis(1));
    assert_eq!(m.histogram_total(h).count(), 1, "before any sample");
    m.sample(SimTime::from_nanos(1));
    m.record(h, SimDuration::from_millis(3));
    let total = m.histogram_total(h);
    assert_eq!(total.count(), 2);
    assert_eq!(total.max(), SimDuration::from_nanos(3_000_319));
    let all: Vec<_> = m
        .histograms()
        .map(|(n, t)| (n.to_string(), t.count()))
        .collect();
    assert_eq!(all, [("x".to_string(), 2)]);
}

#[test]
fn column_matches_the_position_in_columns() {
    let mut m = Metrics::new();
    m.counter("b_total");
    m.histogram("a_latency");
    assert_eq!(m.column("a_latency:p99_ms"), Some(2));
    assert_eq!(m.column("b_total"), Some(3));
    // A registration after a lookup rebuilds the table.
    m.gauge("a_gauge");
    m.counter("b:count");
    m.histogram("b");
    let cols = m.columns();
    assert_eq!(cols.iter().filter(|c| *c == "b:count").count(), 2);
    for name in cols
        .iter()
        .chain(["nope".to_string(), "a_latency".to_string()].iter())
    {
        assert_eq!(
            m.column(name),
            cols.iter().position(|c| c == name),
            "{name}"
        );
    }
}

#[test]
fn an_unwritten_histogram_allocates_nothing_and_is_small() {
    assert!(std::mem::size_of::<LatencyHistogram>() <= 32);
    let mut h = LatencyHistogram::new();
    assert_eq!(h.quantile(0.5), SimDuration::ZERO);
    assert_eq!(h.max(), SimDuration::ZERO);
    assert_eq!(h.mean(), SimDuration::ZERO);
    for ms in 0..histogram::SPARSE_MAX as u64 {
        h.record(SimDuration::from_millis(1 + ms));
    }
    assert!(!h.is_dense());
    h.record(SimDuration::from_secs(1));
    assert!(h.is_dense(), "one bin more than the sparse vector holds");
}

mod oracle {
    use super::*;
    use hdrhistogram::Histogram;
    use proptest::prelude::*;

    /// The histogram `LatencyHistogram` replaces, fed the same way.
    fn oracle() -> Histogram<u64> {
        Histogram::new_with_bounds(1, LatencyHistogram::MAX_NS, 3).unwrap()
    }

    fn record(h: &mut LatencyHistogram, o: &mut Histogram<u64>, values: &[u64]) {
        for &v in values {
            h.record(SimDuration::from_nanos(v));
            o.saturating_record(v.clamp(1, LatencyHistogram::MAX_NS));
        }
    }

    /// Every read-out of `h` equals the oracle's.
    fn same(h: &LatencyHistogram, o: &Histogram<u64>, qs: &[f64]) -> Result<(), TestCaseError> {
        prop_assert_eq!(h.count(), o.len());
        prop_assert_eq!(h.max().as_nanos(), o.max());
        prop_assert_eq!(h.mean_ns().to_bits(), o.mean().to_bits());
        prop_assert_eq!(h.mean(), SimDuration::from_secs_f64(o.mean() / 1e9));
        let fixed = [
            0.0, 1e-9, 0.001, 0.25, 0.5, 0.9, 0.99, 0.999, 0.999_999, 1.0,
        ];
        for &q in fixed.iter().chain(qs) {
            let want = if o.is_empty() {
                0
            } else {
                o.value_at_quantile(q.clamp(0.0, 1.0))
            };
            prop_assert_eq!(h.quantile(q).as_nanos(), want, "q {}", q);
        }
        Ok(())
    }

    /// Values from 0 to `u64::MAX`, log-uniform (every bucket, and the clamp
    /// at both ends).
    fn spread() -> impl Strategy<Value = u64> {
        (0u32..=64, any::<u64>()).prop_map(|(bits, r)| if bits == 0 { 0 } else { r >> (64 - bits) })
    }

    /// Values of a few bins around a latency (stays sparse longer).
    fn clustered() -> impl Strategy<Value = u64> {
        (1_000u64..100_000_000, 0u64..40).prop_map(|(base, k)| base - base % 16 + k)
    }

    fn values() -> impl Strategy<Value = Vec<u64>> {
        prop_oneof![
            prop::collection::vec(spread(), 0..8),
            prop::collection::vec(spread(), 0..400),
            prop::collection::vec(clustered(), 0..2_000),
            prop::collection::vec(
                prop_oneof![
                    Just(0u64),
                    Just(1),
                    Just(LatencyHistogram::MAX_NS),
                    Just(u64::MAX)
                ],
                0..10
            ),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn every_read_out_matches_hdrhistogram(
            values in values(),
            qs in prop::collection::vec(-0.5f64..1.5, 0..8),
        ) {
            let (mut h, mut o) = (LatencyHistogram::new(), oracle());
            record(&mut h, &mut o, &values);
            same(&h, &o, &qs)?;
        }

        #[test]
        fn merge_and_clear_match_hdrhistogram(
            a in values(),
            b in values(),
            c in values(),
            qs in prop::collection::vec(0.0f64..=1.0, 0..4),
        ) {
            let (mut ha, mut oa) = (LatencyHistogram::new(), oracle());
            let (mut hb, mut ob) = (LatencyHistogram::new(), oracle());
            record(&mut ha, &mut oa, &a);
            record(&mut hb, &mut ob, &b);
            // Both ways: sparse into dense, dense into sparse, and alike.
            let (mut hab, mut oab) = (ha.clone(), oa.clone());
            hab.merge(&hb);
            oab.add(&ob).unwrap();
            same(&hab, &oab, &qs)?;
            hb.merge(&ha);
            ob.add(&oa).unwrap();
            same(&hb, &ob, &qs)?;
            // Clear keeps the storage; the histogram reads as new, then as
            // the values recorded after.
            hab.clear();
            oab.reset();
            same(&hab, &oab, &qs)?;
            record(&mut hab, &mut oab, &c);
            same(&hab, &oab, &qs)?;
        }
    }

    #[test]
    fn counts_beyond_48_bits_stay_exact() {
        let (mut h, mut o) = (LatencyHistogram::new(), oracle());
        record(&mut h, &mut o, &[5, 5_000, 5_000_000]);
        for _ in 0..50 {
            h.merge(&h.clone());
            o.add(o.clone()).unwrap();
        }
        assert!(h.is_dense(), "a count of 2^50 does not fit a sparse entry");
        same(&h, &o, &[0.3, 0.7]).unwrap();
    }
}

/// Zeros are counted apart from the batch: every read-out (window rows and
/// totals, before and after a sample) matches a histogram fed the values one
/// by one.
#[test]
fn zeros_count_as_recorded_values() {
    let mut m = Metrics::new();
    let h = m.histogram("connect");
    let mut reference = LatencyHistogram::new();
    let values = [0u64, 0, 5, 0, 1, 2_000_000, 0, 1];
    for (i, &ns) in values.iter().enumerate() {
        let d = SimDuration::from_nanos(ns);
        m.record(h, d);
        reference.record(d);
        let total = m.histogram_total(h);
        assert_eq!(total.count(), reference.count());
        for q in [0.0, 0.25, 0.5, 0.99, 1.0] {
            assert_eq!(total.quantile(q), reference.quantile(q), "value {i}, q {q}");
        }
        if i == 4 {
            m.sample(SimTime::from_nanos(1));
            let row = &m.rows()[0].1;
            assert_eq!(row[0], 5.0, "the window counts the zeros");
            assert_eq!(row[1], reference.quantile(0.5).as_millis_f64());
        }
    }
    m.sample(SimTime::from_nanos(2));
    assert_eq!(m.rows()[1].1[0], 3.0, "zeros leave the window once sampled");
    assert_eq!(m.histogram_total(h).count(), values.len() as u64);
}
