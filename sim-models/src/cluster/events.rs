//! # Kubernetes events
//!
//! Events aggregated as `kubectl get events` shows them: by (reason, key),
//! with count, first and last seen.

use super::*;

impl Sim<'_> {
    pub(crate) fn event(
        &mut self,
        kind: &'static str,
        reason: &'static str,
        source: &'static str,
        message: String,
        object: String,
    ) {
        self.event_keyed(kind, reason, source, message.clone(), message, object);
    }

    /// Records an event aggregated under `key` rather than its message (the
    /// first message is kept).
    pub(crate) fn event_keyed(
        &mut self,
        kind: &'static str,
        reason: &'static str,
        source: &'static str,
        key: String,
        message: String,
        object: String,
    ) {
        let now = self.engine.now();
        if self.trace.enabled() {
            self.trace.record(TraceRecord {
                time: now,
                source: source.to_string(),
                kind: reason.to_string(),
                message: format!("{object}: {message}"),
            });
        }
        let seq = self.events.len();
        self.events
            .entry((reason, key))
            .and_modify(|(_, e)| {
                e.count += 1;
                e.last = now;
            })
            .or_insert((
                seq,
                EventSummary {
                    kind,
                    reason,
                    source,
                    message,
                    count: 1,
                    first: now,
                    last: now,
                    example_object: object,
                },
            ));
    }
}
