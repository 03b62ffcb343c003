//! Per-event trace records.
//!
//! A model reports what happened (a pod went Pending, a request timed out) as
//! a [`TraceRecord`] to a [`TraceSink`]. Sinks compose around a model the way
//! smoltcp's tracer wraps a device: the model does not know whether records
//! are kept, filtered or dropped. Building a record's message costs a string,
//! so models call [`TraceSink::enabled`] first on hot paths.

use crate::time::SimTime;

/// One thing that happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceRecord {
    /// When it happened.
    pub time: SimTime,
    /// Which component saw it, as an operator would name it (`kubelet/node-3`, `scheduler`).
    pub source: String,
    /// A short machine-readable kind (`FailedCreatePodSandBox`, `Scheduled`).
    pub kind: String,
    /// What an operator would read (`kubectl describe` style text).
    pub message: String,
}

/// Receives trace records.
pub trait TraceSink {
    /// Whether records are wanted at all; lets callers skip building them.
    fn enabled(&self) -> bool {
        true
    }
    /// Takes one record.
    fn record(&mut self, rec: TraceRecord);
}

/// Discards every record.
#[derive(Clone, Copy, Debug, Default)]
pub struct NullSink;

impl TraceSink for NullSink {
    fn enabled(&self) -> bool {
        false
    }
    fn record(&mut self, _rec: TraceRecord) {}
}

/// Keeps every record in memory, in the order received.
#[derive(Clone, Debug, Default)]
pub struct VecSink {
    /// The records so far.
    pub records: Vec<TraceRecord>,
}

impl TraceSink for VecSink {
    fn record(&mut self, rec: TraceRecord) {
        self.records.push(rec);
    }
}
