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

pub use admin::{AdminLive, AdminPage};
pub use board::BoardPage;
pub use index::BoardList;
pub use not_found::NotFound;
