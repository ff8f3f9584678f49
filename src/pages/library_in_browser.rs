//! The pages' view of the boards library in the browser, where there is none: hydration
//! carries what the server read, and these answers only stand in when a page is opened
//! without it (after an in-app navigation). A board then arrives over its socket.

use crate::boards::{BoardSummary, BoardView};

/// An empty view rather than `None`: the browser cannot tell that a board does not exist,
/// and the socket's first board frame fills it in.
pub fn board(_name: &str) -> Option<BoardView> {
    Some(BoardView::default())
}

pub fn boards() -> Vec<BoardSummary> {
    Vec::new()
}

pub fn not_found() {}

/// Hydration carries the server's answer; a page the browser makes itself is not locked,
/// and its socket is refused if it should have been.
pub fn locked(_name: &str) -> bool {
    false
}
