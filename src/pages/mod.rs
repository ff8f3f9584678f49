//! The pages, one module per route: the list of boards at `/`, a board at `/b/{name}` (shown
//! as its address asks: kiosk, theme, playlist; see `screen.rs`), and the 404 page for
//! anything else.
//!
//! Each page takes what it shows from the server once, at render time, and hydrates with the
//! same data (Leptos' `SharedValue` carries it in the HTML); after that a board keeps itself
//! current over its socket.

mod board;
mod index;
#[cfg(feature = "ssr")]
mod library;
#[cfg(not(feature = "ssr"))]
#[path = "library_in_browser.rs"]
mod library;
mod not_found;
mod screen;

pub use board::BoardPage;
pub use index::BoardList;
pub use not_found::NotFound;
