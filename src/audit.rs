//! The audit trail's recent lines, kept in memory for the admin view. Every event the server
//! logs with the target `audit` (sign-ins, keys made and revoked, refusals) goes to the log
//! as before and also lands here, whatever the log level, the newest [`KEPT`] of them.

use crate::clock::now_ms;
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::fmt::Write;
use std::sync::Arc;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

/// How many lines the trail keeps.
pub(crate) const KEPT: usize = 200;

/// The recent audit lines; cheap to clone, every clone the same trail. As a tracing
/// [`Layer`], it takes the `audit` events.
#[derive(Clone, Default)]
pub struct AuditTrail {
    lines: Arc<Mutex<VecDeque<AuditLine>>>,
}

#[derive(Clone, Debug)]
pub(crate) struct AuditLine {
    /// When it was logged, ms since the Unix epoch.
    pub(crate) at_ms: u64,
    /// `INFO` or `WARN`: a refusal is a warning.
    pub(crate) level: String,
    /// Its fields as `name=value`, in the order logged.
    pub(crate) text: String,
}

impl AuditTrail {
    /// The newest `n` lines, newest first.
    pub(crate) fn recent(&self, n: usize) -> Vec<AuditLine> {
        self.lines.lock().iter().rev().take(n).cloned().collect()
    }
}

impl<S: Subscriber> Layer<S> for AuditTrail {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        if event.metadata().target() != "audit" {
            return;
        }
        let mut fields = Fields(String::new());
        event.record(&mut fields);
        let line = AuditLine {
            at_ms: now_ms(),
            level: event.metadata().level().to_string(),
            text: fields.0,
        };
        let mut lines = self.lines.lock();
        if lines.len() == KEPT {
            lines.pop_front();
        }
        lines.push_back(line);
    }
}

struct Fields(String);

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.record(field, format_args!("{value}"));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.record(field, format_args!("{value:?}"));
    }
}

impl Fields {
    fn record(&mut self, field: &Field, value: std::fmt::Arguments<'_>) {
        if !self.0.is_empty() {
            self.0.push(' ');
        }
        let _ = write!(self.0, "{}={value}", field.name());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::prelude::*;

    #[test]
    fn keeps_the_audit_events_newest_first_and_no_others() {
        let trail = AuditTrail::default();
        let subscriber = tracing_subscriber::registry().with(trail.clone());
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!("not for the audit");
            tracing::info!(target: "audit", event = "login", key = "k1");
            tracing::warn!(target: "audit", event = "denied", reason = "rate limited");
        });
        let lines = trail.recent(10);
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].text, "event=denied reason=rate limited");
        assert_eq!(lines[0].level, "WARN");
        assert_eq!(lines[1].text, "event=login key=k1");
    }
}
