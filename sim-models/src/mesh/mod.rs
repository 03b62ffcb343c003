//! # The service mesh's L7 proxy: balancing, retries, outlier detection, circuit breaking
//!
//! ## Scope
//! The decisions an Envoy proxy (Istio's sidecar and waypoint) or the
//! Linkerd proxy makes for each HTTP or gRPC request it forwards to an
//! upstream Service, as separate mechanisms the mesh stage of the
//! connection path composes:
//! - [`balancer`]: request-level balancing over the upstream's endpoints
//!   (Envoy's `ROUND_ROBIN` and `LEAST_REQUEST` with its power of two
//!   choices), unlike kube-proxy, which picks once per connection;
//! - [`retry`]: the route's retry policy (Istio's default: 2 retries on
//!   connect failures, refused streams, `unavailable`, `cancelled` and 503),
//!   Envoy's fully jittered exponential back-off, and the two kinds of
//!   retry budget (Envoy's concurrent-retry budget and circuit breaker,
//!   Linkerd's ratio of retries to requests over a window);
//! - [`outlier`]: Envoy's outlier detection by consecutive 5xx: inline
//!   ejection, the ejection-percentage cap, ejection time growing with the
//!   ejections in a row, return to service at the interval sweeps;
//! - [`circuit_breaker`]: Envoy's per-upstream-cluster thresholds on
//!   connections, pending requests, active requests and active retries, and
//!   the `UO` (upstream overflow) answer beyond them;
//! - [`try_timers`]: the per-try timers of the tries in flight, woken by
//!   one event at the earliest instead of one event per try;
//! - [`lifecycle`]: the sidecar's start-up against the app container's
//!   (start order, the proxy's probes, `holdApplicationUntilProxyStarts`,
//!   native sidecars).
//!
//! Each mechanism is a small state machine with O(1) work per request
//! (outlier sweeps: O(ejected hosts) per interval), no allocation after
//! construction, and no knowledge of the event queue: the caller (the mesh
//! stage of the cluster run) schedules timers and feeds results in.
//!
//! Not modelled here: the proxies' CPU and memory and their queues (the
//! proxy as a server, with the CoreDNS server model as its pattern), mTLS
//! handshakes and connection pooling: the mesh stage's concerns. Envoy's
//! success-rate and failure-percentage outlier detection, panic threshold, slow start, zone-aware routing, the
//! consecutive gateway-failure detector (off by default: enforcing 0).
//!
//! ## Parameters
//! Defaults from Envoy's API and Istio's source, each documented where it
//! is used: [`retry`] (docs/calibration.md, row `envoy-retry-backoff`, and
//! the rows `istio-default-retry`, `envoy-retry-budget`,
//! `linkerd-retry-budget`), [`outlier`] (row `envoy-outlier-detection`),
//! [`circuit_breaker`] (row `envoy-circuit-breakers`), [`balancer`] (row
//! `envoy-least-request`).
//!
//! ## What it emits
//! Per request: the endpoint to send to, whether a failed try may be
//! retried and after what back-off, whether a circuit breaker refuses it
//! (`UO`); per host: ejections and returns; counters for the figures a mesh
//! dashboard shows (retries, overflows, ejections).
//!
//! ## Validation
//! Unit tests per mechanism against the documented behaviour: the back-off
//! ranges of Envoy's documentation (0-24 ms, 0-74 ms, 0-174 ms, capped at
//! 250 ms), the retry budget's arithmetic (20% of active plus pending, at
//! least 3), the ejection sequence of the outlier algorithm (5 consecutive
//! 5xx, 30 s then 60 s..., the 10% cap), least-request's preference for
//! idle hosts against a brute-force expectation. Calibration against the
//! mesh's published latency and CPU figures belongs to the mesh stage.

pub mod balancer;
pub mod circuit_breaker;
mod config;
pub mod lifecycle;
pub mod outlier;
pub mod proxy;
pub mod retry;
pub mod rules;
pub mod try_timers;
pub mod upstream;

pub use config::{MeshConfig, MeshMode, ProxyKind, ProxyResources};
