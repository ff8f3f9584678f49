//! Who is viewing each board. A viewer is one open page (one connection) for now; joining
//! and leaving send every viewer of the board the new list, encoded once. The same list of
//! viewers receives the board's new definition when its file changes. A viewer whose queue
//! is full when either is sent falls behind on the board, and gets the board's current
//! definition and viewers when it catches up.

use super::outbox::{Outbox, Pushed};
use super::ConnectionId;
use crate::encoded::{encode, EncodedFrame};
use crate::protocol::{Presence, ServerFrame, Viewer};
use std::collections::{BTreeMap, HashMap};

struct Member {
    since: String,
    outbox: Outbox,
}

#[derive(Default)]
pub struct Boards {
    boards: HashMap<String, BTreeMap<ConnectionId, Member>>,
    /// Each board's definition as last sent to its viewers, for one that missed it.
    shown: HashMap<String, EncodedFrame>,
}

/// How a board a connection fell behind on is listed among its topics: no topic name has a
/// space in it.
pub const BOARD_KEY: &str = "board ";

/// Offers a frame to a viewer; a full queue marks it behind on the board.
fn offer(member: &Member, board: &str, frame: &EncodedFrame) {
    if member.outbox.try_push(frame.clone()) == Pushed::Full {
        member.outbox.fall_behind(&format!("{BOARD_KEY}{board}"));
    }
}

/// The viewer id a connection has in presence frames.
pub fn viewer_id(connection: ConnectionId) -> String {
    format!("c{connection}")
}

impl Boards {
    pub fn join(&mut self, board: &str, connection: ConnectionId, outbox: &Outbox, now: &str) {
        let members = self.boards.entry(board.to_owned()).or_default();
        if members.contains_key(&connection) {
            return;
        }
        members.insert(
            connection,
            Member {
                since: now.to_owned(),
                outbox: outbox.clone(),
            },
        );
        self.announce(board, Some(connection), None);
    }

    pub fn leave(&mut self, board: &str, connection: ConnectionId) {
        let Some(members) = self.boards.get_mut(board) else {
            return;
        };
        if members.remove(&connection).is_none() {
            return;
        }
        if members.is_empty() {
            self.boards.remove(board);
        } else {
            self.announce(board, None, Some(connection));
        }
    }

    /// Sends a board's new definition to every viewer of it.
    pub fn show(&mut self, board: &str, frame: EncodedFrame) {
        for member in self.boards.get(board).into_iter().flat_map(|m| m.values()) {
            offer(member, board, &frame);
        }
        self.shown.insert(board.to_owned(), frame);
    }

    /// Sends a viewer that fell behind on a board its current definition and viewers. False
    /// if its queue is still too full.
    pub fn catch_up(&self, board: &str, connection: ConnectionId) -> bool {
        let Some(member) = self.boards.get(board).and_then(|m| m.get(&connection)) else {
            return true;
        };
        if member.outbox.room() < 2 {
            return false;
        }
        let shown = self.shown.get(board).cloned();
        for frame in shown.into_iter().chain(self.presence(board)) {
            member.outbox.try_push(frame);
        }
        true
    }

    /// Sends a frame to every viewer of every board, once per connection; returns how many
    /// connections it was queued for.
    pub fn send_to_all(&self, frame: &EncodedFrame) -> usize {
        let mut sent = std::collections::BTreeSet::new();
        for (connection, member) in self.boards.values().flat_map(|m| m.iter()) {
            if sent.insert(*connection) {
                member.outbox.try_push(frame.clone());
            }
        }
        sent.len()
    }

    fn announce(&mut self, board: &str, joined: Option<ConnectionId>, left: Option<ConnectionId>) {
        let Some(frame) = self.presence_frame(board, joined, left) else {
            return;
        };
        for member in self.boards[board].values() {
            offer(member, board, &frame);
        }
    }

    /// The board's viewers now, as a frame; `None` if nobody views it.
    fn presence(&self, board: &str) -> Option<EncodedFrame> {
        self.presence_frame(board, None, None)
    }

    fn presence_frame(
        &self,
        board: &str,
        joined: Option<ConnectionId>,
        left: Option<ConnectionId>,
    ) -> Option<EncodedFrame> {
        let members = self.boards.get(board)?;
        let mut viewers: Vec<(&String, ConnectionId)> =
            members.iter().map(|(id, m)| (&m.since, *id)).collect();
        viewers.sort();
        let frame = encode(&ServerFrame::Presence(Presence {
            board: board.to_owned(),
            viewers: viewers
                .into_iter()
                .map(|(since, id)| Viewer {
                    id: viewer_id(id),
                    since: since.clone(),
                })
                .collect(),
            joined: joined.map(viewer_id),
            left: left.map(viewer_id),
        }));
        Some(frame)
    }
}
