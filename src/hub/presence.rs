//! Who is viewing each board. A viewer is one open page (one connection) for now. A board's
//! viewers are this instance's own (its members here) and those other instances report
//! through the engine (`remote`); joining and leaving send every local member the new list,
//! encoded once. The same members receive the board's new definition when its file changes.
//! A member whose queue is full when either is sent falls behind on the board, and gets the
//! board's current definition and viewers when it catches up.

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
struct Board {
    members: BTreeMap<ConnectionId, Member>,
    /// Viewers on other instances, as last reported.
    remote: Vec<Viewer>,
}

pub struct Boards {
    /// Names this instance's viewers apart from every other instance's.
    tag: String,
    boards: HashMap<String, Board>,
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

impl Boards {
    /// `tag` is this instance's part of each viewer id (empty when it is the only one).
    pub fn new(tag: String) -> Self {
        Boards {
            tag,
            boards: HashMap::new(),
            shown: HashMap::new(),
        }
    }

    /// The viewer id a connection has in presence frames.
    pub fn viewer_id(&self, connection: ConnectionId) -> String {
        if self.tag.is_empty() {
            format!("c{connection}")
        } else {
            format!("c{connection}.{}", self.tag)
        }
    }

    pub fn join(&mut self, board: &str, connection: ConnectionId, outbox: &Outbox, now: &str) {
        let members = &mut self.boards.entry(board.to_owned()).or_default().members;
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
        let joined = self.viewer_id(connection);
        self.announce(board, Some(joined), None);
    }

    pub fn leave(&mut self, board: &str, connection: ConnectionId) {
        let Some(entry) = self.boards.get_mut(board) else {
            return;
        };
        if entry.members.remove(&connection).is_none() {
            return;
        }
        if entry.members.is_empty() {
            self.boards.remove(board);
        } else {
            let left = self.viewer_id(connection);
            self.announce(board, None, Some(left));
        }
    }

    /// This instance's own viewers of a board, for the others.
    pub fn local_viewers(&self, board: &str) -> Vec<Viewer> {
        self.boards.get(board).map_or_else(Vec::new, |entry| {
            entry
                .members
                .iter()
                .map(|(id, member)| Viewer {
                    id: self.viewer_id(*id),
                    since: member.since.clone(),
                })
                .collect()
        })
    }

    /// Whether anyone here views the board.
    pub fn watches(&self, board: &str) -> bool {
        self.boards.contains_key(board)
    }

    /// Takes the viewers other instances report for a board, and tells its members here if
    /// that changed who is viewing.
    pub fn remote(&mut self, board: &str, mut viewers: Vec<Viewer>) {
        let Some(entry) = self.boards.get_mut(board) else {
            return;
        };
        viewers.sort_by(|a, b| (&a.since, &a.id).cmp(&(&b.since, &b.id)));
        if entry.remote == viewers {
            return;
        }
        let joined = viewers
            .iter()
            .find(|v| !entry.remote.iter().any(|r| r.id == v.id))
            .map(|v| v.id.clone());
        let left = entry
            .remote
            .iter()
            .find(|r| !viewers.iter().any(|v| v.id == r.id))
            .map(|r| r.id.clone());
        entry.remote = viewers;
        self.announce(board, joined, left);
    }

    /// Sends a board's new definition to every viewer of it.
    pub fn show(&mut self, board: &str, frame: EncodedFrame) {
        for member in self
            .boards
            .get(board)
            .into_iter()
            .flat_map(|b| b.members.values())
        {
            offer(member, board, &frame);
        }
        self.shown.insert(board.to_owned(), frame);
    }

    /// Sends a viewer that fell behind on a board its current definition and viewers. False
    /// if its queue is still too full.
    pub fn catch_up(&self, board: &str, connection: ConnectionId) -> bool {
        let Some(member) = self
            .boards
            .get(board)
            .and_then(|b| b.members.get(&connection))
        else {
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
        for (connection, member) in self.boards.values().flat_map(|b| b.members.iter()) {
            if sent.insert(*connection) {
                member.outbox.try_push(frame.clone());
            }
        }
        sent.len()
    }

    fn announce(&mut self, board: &str, joined: Option<String>, left: Option<String>) {
        let Some(frame) = self.presence_frame(board, joined, left) else {
            return;
        };
        for member in self.boards[board].members.values() {
            offer(member, board, &frame);
        }
    }

    /// The board's viewers now, as a frame; `None` if nobody here views it.
    fn presence(&self, board: &str) -> Option<EncodedFrame> {
        self.presence_frame(board, None, None)
    }

    fn presence_frame(
        &self,
        board: &str,
        joined: Option<String>,
        left: Option<String>,
    ) -> Option<EncodedFrame> {
        let entry = self.boards.get(board)?;
        let mut viewers = self.local_viewers(board);
        viewers.extend(entry.remote.iter().cloned());
        // Oldest first, and the same order on every instance.
        viewers.sort_by(|a, b| (&a.since, &a.id).cmp(&(&b.since, &b.id)));
        let frame = encode(&ServerFrame::Presence(Presence {
            board: board.to_owned(),
            viewers,
            joined,
            left,
        }));
        Some(frame)
    }
}
