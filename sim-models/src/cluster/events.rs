//! # Kubernetes events
//!
//! Events aggregated as `kubectl get events` shows them: by (reason, key),
//! with count, first and last seen.
//!
//! Events on a traffic path (a dropped SYN, a denied connection, a NAT
//! failure) repeat once per request: they are keyed by ids
//! ([`EventKey`]) and their text is written only for the first of a key
//! (and for each one when the trace is on), so a repeated event costs a
//! map lookup, not a formatted string.

use super::*;

/// What an event is aggregated by beside its reason.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum EventKey {
    /// One row per reason, whatever the object.
    Reason,
    /// One row per tuple of ids (node, workload, traffic source, port...:
    /// what they are is the caller's, the same for every event of one
    /// reason).
    Ids([u32; 3]),
    /// One row per message (events off the traffic path).
    Message(String),
}

impl Sim<'_> {
    /// Records an event aggregated under its message.
    pub(crate) fn event(
        &mut self,
        kind: &'static str,
        reason: &'static str,
        source: &'static str,
        message: String,
        object: String,
    ) {
        let key = EventKey::Message(message.clone());
        self.event_by(kind, reason, source, key, move |_| (message, object));
    }

    /// Records an event aggregated under `key`: `describe` writes its
    /// (message, object) only for the first of a key (the first message is
    /// kept) or when the trace records every event.
    pub(crate) fn event_by(
        &mut self,
        kind: &'static str,
        reason: &'static str,
        source: &'static str,
        key: EventKey,
        describe: impl FnOnce(&Self) -> (String, String),
    ) {
        let now = self.engine.now();
        let tracing = self.trace.enabled();
        if let Some((_, e)) = self.events.get_mut(&(reason, key.clone())) {
            e.count += 1;
            e.last = now;
            if !tracing {
                return;
            }
        }
        let (message, object) = describe(self);
        if tracing {
            self.trace.record(TraceRecord {
                time: now,
                source: source.to_string(),
                kind: reason.to_string(),
                message: format!("{object}: {message}"),
            });
        }
        let seq = self.events.len();
        self.events.entry((reason, key)).or_insert((
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
