//! The pages' view of the boards library while the server renders them (`ssr`). The router
//! provides the [`Library`] as context; a page rendered outside it sees no boards.

use crate::boards::library::Library;
use crate::boards::{BoardSummary, BoardView};
use leptos::prelude::*;
use std::sync::Arc;

/// The board as its file stands now; `None` if there is no such board.
pub fn board(name: &str) -> Option<BoardView> {
    use_context::<Arc<Library>>()?.get(name)
}

pub fn boards() -> Vec<BoardSummary> {
    use_context::<Arc<Library>>()
        .map(|library| library.list())
        .unwrap_or_default()
}

/// Answers 404 for a board that does not exist, so scripts checking a URL see it.
pub fn not_found() {
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        response.set_status(axum::http::StatusCode::NOT_FOUND);
    }
}
