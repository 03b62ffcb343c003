//! Event-queue throughput: the classic *hold* model.
//!
//! The queue is prefilled with `N` pending events at independent exponential
//! times (mean 1 µs) drawn from a ChaCha8 stream of [`RngStreams`]; each
//! measured step then pops the earliest event and schedules one new event at
//! `now + Exp(1 µs)`. With exponential increments the pending set stays in
//! steady state from the start (memorylessness), so every step sees `N`
//! pending events and inserts land at a uniformly random rank: neither the
//! in-order fast path nor the cache is flattered. Throughput is reported in
//! events (one pop plus one schedule each).
//!
//! Increments are drawn ahead of time into a pool of 1024 samples (8 KB) and
//! cycled, so the numbers measure the engine, not the random generator, and
//! the pool does not push the queue out of the cache.
//!
//! Two groups:
//! - `queue_hold`: [`EventQueue::pop`] + [`EventQueue::schedule`];
//! - `engine_hold`: the model-facing loop, [`Engine::next_until`] +
//!   [`Engine::schedule_in`].
//!
//! Run: `cargo bench -p knsim-benches --bench engine`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rand::RngExt;
use sim_core::{Engine, EventQueue, RngStreams, SimDuration, SimTime};
use std::hint::black_box;
use std::time::Duration;

/// A payload shaped like a real model's event enum (16 bytes).
#[derive(Clone, Copy, Debug)]
enum Ev {
    Arrive { flow: u32, bytes: u32 },
    Timer(u64),
    Done(u32),
}

impl Ev {
    fn next(self, i: u64) -> Ev {
        match self {
            Ev::Arrive { flow, bytes } => Ev::Timer(u64::from(flow) ^ u64::from(bytes) ^ i),
            Ev::Timer(t) => Ev::Done(t as u32),
            Ev::Done(f) => Ev::Arrive {
                flow: f,
                bytes: 1500,
            },
        }
    }
}

const MEAN_NS: f64 = 1_000.0;
const POOL: usize = 1 << 10;
const SIZES: [usize; 4] = [1_000, 10_000, 100_000, 1_000_000];

/// Exponential increments [ns], mean [`MEAN_NS`], from a named stream.
struct Increments {
    pool: Vec<u64>,
    i: usize,
}

impl Increments {
    fn new() -> Self {
        let mut rng = RngStreams::new(0x006b_6e73_696d).stream("bench/hold");
        let pool = (0..POOL)
            .map(|_| {
                let u: f64 = rng.random();
                (-(1.0 - u).ln() * MEAN_NS).round() as u64
            })
            .collect();
        Increments { pool, i: 0 }
    }

    fn next(&mut self) -> SimDuration {
        self.i = (self.i + 1) & (POOL - 1);
        SimDuration::from_nanos(self.pool[self.i])
    }
}

fn queue_hold(c: &mut Criterion) {
    let mut group = c.benchmark_group("queue_hold");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .throughput(Throughput::Elements(1));
    for n in SIZES {
        let mut inc = Increments::new();
        let mut q = EventQueue::new();
        for i in 0..n as u64 {
            q.schedule(SimTime::ZERO + inc.next(), Ev::Timer(i));
        }
        let mut i = 0u64;
        group.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter(|| {
                let (now, ev) = q.pop().expect("hold keeps N pending");
                i += 1;
                q.schedule(now + inc.next(), black_box(ev).next(i));
            })
        });
    }
    group.finish();
}

fn engine_hold(c: &mut Criterion) {
    let mut group = c.benchmark_group("engine_hold");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .throughput(Throughput::Elements(1));
    for n in SIZES {
        let mut inc = Increments::new();
        let mut eng = Engine::new();
        for i in 0..n as u64 {
            eng.schedule_in(inc.next(), Ev::Timer(i));
        }
        let mut i = 0u64;
        group.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter(|| {
                let ev = eng.next_until(SimTime::MAX).expect("hold keeps N pending");
                i += 1;
                eng.schedule_in(inc.next(), black_box(ev).next(i));
            })
        });
    }
    group.finish();
}

criterion_group!(benches, queue_hold, engine_hold);
criterion_main!(benches);
