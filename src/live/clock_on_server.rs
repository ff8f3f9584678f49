//! The server's side of the page clock: it does not tick (the page's first view is rendered
//! at clock zero), so there is never a time to write.

use super::WallTime;

pub fn wall_time(_now_ms: f64, _zone: Option<&str>) -> Option<WallTime> {
    None
}
