//! Envoy's circuit breakers on one upstream cluster.
//!
//! Per cluster (and priority) Envoy counts connections, requests waiting
//! for a connection (pending), requests in flight and retries in flight,
//! each against a threshold, 1,024 by default for the first three and 3
//! for retries (`api/envoy/config/cluster/v3/circuit_breaker.proto`;
//! docs/calibration.md, row `envoy-circuit-breakers`). A request that would
//! pass a threshold is not sent: Envoy answers 503 with the response flag
//! `UO` (upstream overflow) at once. Istio's DestinationRule
//! `connectionPool` sets them (`tcp.maxConnections`,
//! `http.http1MaxPendingRequests`, `http.http2MaxRequests`,
//! `http.maxRetries`). Retries are counted by
//! [`super::retry::ConcurrentBudget`]; this module holds the other three.

/// The thresholds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Thresholds {
    /// Connections to the cluster's hosts.
    pub max_connections: u32,
    /// Requests waiting for a connection.
    pub max_pending_requests: u32,
    /// Requests in flight.
    pub max_requests: u32,
}

impl Thresholds {
    /// Envoy's defaults: 1,024 each.
    pub fn envoy_default() -> Self {
        Thresholds {
            max_connections: 1024,
            max_pending_requests: 1024,
            max_requests: 1024,
        }
    }
}

/// Which threshold refused a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Overflow {
    /// `upstream_cx_overflow`.
    Connections,
    /// `upstream_rq_pending_overflow`.
    Pending,
    /// `upstream_rq_overflow` (not counted as a pending one).
    Requests,
}

/// The counts against the thresholds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CircuitBreaker {
    /// The thresholds.
    pub thresholds: Thresholds,
    connections: u32,
    pending: u32,
    requests: u32,
    /// Requests refused, by threshold (connections, pending, requests).
    pub overflows: [u64; 3],
}

/// What happens to a new request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Sent on an idle connection.
    Sent,
    /// Sent on a new connection (opened for it).
    SentOnNewConnection,
    /// Queued for a connection.
    Pending,
    /// Refused: 503 `UO`.
    Refused(Overflow),
}

impl CircuitBreaker {
    /// Counts at zero.
    pub fn new(thresholds: Thresholds) -> Self {
        CircuitBreaker {
            thresholds,
            connections: 0,
            pending: 0,
            requests: 0,
            overflows: [0; 3],
        }
    }

    /// A new request arrives; `idle_connection` tells whether a connection
    /// is free for it (HTTP/1.1: one request per connection at a time).
    pub fn admit(&mut self, idle_connection: bool) -> Admission {
        let t = self.thresholds;
        if self.requests >= t.max_requests {
            self.overflows[2] += 1;
            return Admission::Refused(Overflow::Requests);
        }
        if idle_connection {
            self.requests += 1;
            return Admission::Sent;
        }
        if self.connections < t.max_connections {
            self.connections += 1;
            self.requests += 1;
            return Admission::SentOnNewConnection;
        }
        if self.pending >= t.max_pending_requests {
            self.overflows[1] += 1;
            return Admission::Refused(Overflow::Pending);
        }
        self.pending += 1;
        Admission::Pending
    }

    /// A pending request got a connection and is sent.
    pub fn dequeue(&mut self) {
        self.pending = self.pending.saturating_sub(1);
        self.requests += 1;
    }

    /// A request in flight ended.
    pub fn finish(&mut self) {
        self.requests = self.requests.saturating_sub(1);
    }

    /// A connection closed.
    pub fn close_connection(&mut self) {
        self.connections = self.connections.saturating_sub(1);
    }

    /// Requests in flight and pending.
    pub fn load(&self) -> (u32, u32) {
        (self.requests, self.pending)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_refuse_in_order() {
        let mut cb = CircuitBreaker::new(Thresholds {
            max_connections: 2,
            max_pending_requests: 1,
            max_requests: 3,
        });
        assert_eq!(cb.admit(false), Admission::SentOnNewConnection);
        assert_eq!(cb.admit(false), Admission::SentOnNewConnection);
        // No connection left: one may wait, the next overflows pending.
        assert_eq!(cb.admit(false), Admission::Pending);
        assert_eq!(cb.admit(false), Admission::Refused(Overflow::Pending));
        // An idle connection (HTTP/2 stream) still counts against requests.
        assert_eq!(cb.admit(true), Admission::Sent);
        assert_eq!(cb.admit(true), Admission::Refused(Overflow::Requests));
        assert_eq!(cb.load(), (3, 1));
        cb.finish();
        cb.dequeue();
        assert_eq!(cb.load(), (3, 0));
        assert_eq!(cb.overflows, [0, 1, 1]);
        cb.close_connection();
        cb.finish();
        assert_eq!(cb.admit(false), Admission::SentOnNewConnection);
        assert_eq!(Thresholds::envoy_default().max_requests, 1024);
    }
}
