//! Who is viewing each board. A viewer is one open page (one connection) for now; joining
//! and leaving send every viewer of the board the new list, encoded once. The same list of
//! viewers receives the board's new definition when its file changes.

use super::outbox::{EncodedFrame, Outbox};
use super::topic::encode;
use super::ConnectionId;
use crate::protocol::{Presence, ServerFrame, Viewer};
use std::collections::{BTreeMap, HashMap};

struct Member {
    since: String,
    outbox: Outbox,
}

#[derive(Default)]
pub struct Boards {
    boards: HashMap<String, BTreeMap<ConnectionId, Member>>,
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

    /// Sends a frame to every viewer of a board. A viewer whose queue is full is closed as too
    /// slow, and gets the frame again when it rejoins.
    pub fn send(&self, board: &str, frame: &EncodedFrame) {
        for member in self.boards.get(board).into_iter().flat_map(|m| m.values()) {
            member.outbox.try_push(frame.clone());
        }
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
        let Some(members) = self.boards.get(board) else {
            return;
        };
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
        // A viewer whose queue is full misses this list; it gets the next one, which is whole.
        for member in members.values() {
            member.outbox.try_push(frame.clone());
        }
    }
}
