//! The widgets a board is made of. Each is a component bound to a topic of the board's
//! [`Live`](crate::live::Live) state, shows a skeleton until that topic's first snapshot, and
//! has its own block in `style/main.css`. [`LiveBoard`] lays them out: the island a board
//! page hydrates.

mod board;
mod clock;
mod connection_status;
mod counter;
mod feed;
pub mod format;
mod gauge;
mod leaderboard;
mod manual;
mod markup;
mod notes;
mod payload;
mod presence;
mod skeleton;
mod sparkline;
mod status;
mod text;

pub use board::{BoardProps, LiveBoard};
pub use clock::Clock;
pub use connection_status::ConnectionStatusBadge;
pub use counter::Counter;
pub use feed::Feed;
pub use gauge::Gauge;
pub use leaderboard::Leaderboard;
pub use manual::Manual;
pub use notes::NotesPanel;
pub use presence::PresenceBadge;
pub use sparkline::Sparkline;
pub use status::StatusGrid;
pub use text::Text;
