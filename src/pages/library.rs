//! The pages' view of the boards library while the server renders them (`ssr`). The router
//! provides the [`Library`] as context; a page rendered outside it sees no boards.

use crate::access::Caller;
use crate::boards::library::Library;
use crate::boards::{BoardSummary, BoardView};
use leptos::prelude::*;
use std::sync::Arc;

/// The board as its file stands now; `None` if there is no such board.
pub(crate) fn board(name: &str) -> Option<BoardView> {
    use_context::<Arc<Library>>()?.get(name)
}

/// Who is asking for the page.
pub(crate) fn caller() -> Caller {
    use_context::<Caller>().unwrap_or_default()
}

/// Answers 401 to an anonymous caller and 403 to one whose key does not allow the page.
pub(crate) fn refuse(caller: &Caller) {
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        response.set_status(if caller.is_anonymous() {
            axum::http::StatusCode::UNAUTHORIZED
        } else {
            axum::http::StatusCode::FORBIDDEN
        });
    }
}

/// The boards the caller may see.
pub(crate) fn boards() -> Vec<BoardSummary> {
    let caller = caller();
    use_context::<Arc<Library>>()
        .map(|library| {
            let mut boards = library.list();
            boards.retain(|board| caller.may_see(&library, &board.name));
            boards
        })
        .unwrap_or_default()
}

/// Whether the board is private and the caller may not see it; answers 401 if so.
pub(crate) fn locked(name: &str) -> bool {
    let caller = caller();
    let locked =
        use_context::<Arc<Library>>().is_some_and(|library| !caller.may_see(&library, name));
    if locked {
        if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
            response.set_status(axum::http::StatusCode::UNAUTHORIZED);
        }
    }
    locked
}

/// Whether the board is public but held private while its file is broken; answers 503 if
/// so (a screen comes back on its own, see the page).
pub(crate) fn withheld(name: &str) -> bool {
    let withheld = use_context::<Arc<Library>>().is_some_and(|library| library.withheld(name));
    if withheld {
        if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
            response.set_status(axum::http::StatusCode::SERVICE_UNAVAILABLE);
        }
    }
    withheld
}

/// Answers 404 for a board that does not exist, so scripts checking a URL see it.
pub(crate) fn not_found() {
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        response.set_status(axum::http::StatusCode::NOT_FOUND);
    }
}
