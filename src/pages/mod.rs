//! The pages, one module per route, rendered on the server only: the list of boards at `/`,
//! a board at `/b/{name}` (shown as its address asks: kiosk, theme, playlist), the admin
//! view at `/admin`, and the 404 page for anything else.
//!
//! Each page takes what it shows from the server's library as it renders. A board page's
//! live part is the board island (`widgets::LiveBoard`), the only code the browser runs;
//! everything else on the pages is plain HTML.

mod admin;
mod board;
mod index;
mod library;
mod not_found;

pub(crate) use admin::{AdminLive, AdminPage};
pub(crate) use board::BoardPage;
pub(crate) use index::BoardList;
pub(crate) use not_found::NotFound;
