//! # sim-core: knsim's deterministic discrete-event engine
//!
//! Knows nothing of Kubernetes. It gives models:
//! - [`SimTime`] and [`SimDuration`]: integer nanoseconds, never floats;
//! - [`Engine`]: a clock and an [`EventQueue`] ordered by (time, insertion
//!   sequence), with lazy cancellation;
//! - [`RngStreams`]: one ChaCha8 stream per named component, derived from the
//!   scenario seed and the name;
//! - [`Metrics`]: counters, gauges sampled over time, latency histograms;
//! - [`TraceSink`]: per-event records.
//!
//! ## Lifecycle
//! A model defines an event enum, schedules its first events, then loops:
//! `while let Some(ev) = engine.next_until(end) { handle(ev) }`. Each handler
//! reads `engine.now()`, mutates model state and schedules more events.
//!
//! ## Guarantees
//! Events fire in non-decreasing time, ties in scheduling order; a cancelled
//! event never fires; the same seed gives the same event sequence on every
//! machine and whatever else runs in parallel.

pub mod alloc_count;
pub mod engine;
pub mod metrics;
pub mod queue;
pub mod rng;
pub mod time;
pub mod trace;

pub use engine::Engine;
pub use metrics::{CounterId, GaugeId, HistogramId, LatencyHistogram, Metrics};
pub use queue::{EventId, EventQueue};
pub use rng::{RngStreams, SimRng};
pub use time::{SimDuration, SimTime};
pub use trace::{NullSink, TraceRecord, TraceSink, VecSink};
