//! The server's wall clock, in the two forms it uses: milliseconds since the Unix epoch (TTLs,
//! series points, epochs, idempotency records) and ISO 8601 (every event's `ts`).

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The current time as ISO 8601 in UTC with milliseconds, the form every `ts` has.
pub(crate) fn now_iso8601() -> String {
    iso8601(now_ms())
}

/// `ms` since the Unix epoch as ISO 8601 in UTC with milliseconds.
pub(crate) fn iso8601(ms: u64) -> String {
    const FORMAT: &[time::format_description::FormatItem<'static>] = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|at| at.format(FORMAT).ok())
        .unwrap_or_default()
}
