//! The server's wall clock, in the two forms it uses: milliseconds since the Unix epoch (TTLs,
//! series points, epochs, idempotency records) and ISO 8601 (every event's `ts`).

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The current time as ISO 8601 in UTC with milliseconds, the form every `ts` has.
pub fn now_iso8601() -> String {
    const FORMAT: &[time::format_description::FormatItem<'static>] = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    time::OffsetDateTime::now_utc()
        .format(FORMAT)
        .unwrap_or_default()
}
