//! Motion helpers: signals that drive CSS transitions and animations.
//!
//! Only `transform` and `opacity` are animated (by the stylesheet); these helpers decide
//! *when*: a number tweens towards its new value, a list item enters, moves, and leaves.
//! Each honours `prefers-reduced-motion` and the board's snap flag (see [`crate::live::Live`]).
//! Their effects run only in the browser; on the server they render the settled state.

mod list;
mod tween;

pub use list::{animated_list, ListItem, Phase};
pub use tween::tween;

/// True when the viewer asked the system for reduced motion. The query is made once per
/// page and answers live: asked before every tween, a fresh `matchMedia` was the busiest
/// browser call of a board under load.
pub fn reduced_motion() -> bool {
    thread_local! {
        static QUERY: Option<web_sys::MediaQueryList> = leptos::prelude::window()
            .match_media("(prefers-reduced-motion: reduce)")
            .ok()
            .flatten();
    }
    QUERY.with(|query| query.as_ref().is_some_and(|query| query.matches()))
}

/// Milliseconds on the page's monotonic clock.
pub fn now_ms() -> f64 {
    leptos::prelude::window()
        .performance()
        .map_or(0.0, |p| p.now())
}
