//! Writes from the page (acknowledging a status, adjusting a manual value), applied at once:
//! each is shown as an overlay on its entity while the server decides. The server's `ack`
//! confirms it (the overlay goes once the topic has reached the acknowledged offset, so the
//! value never flickers back), an `error` with its reference rolls it back and says why.
//! Notes written from the page go out the same way; they show once the server's event
//! brings them, and a refused one is said by the notes panel.

use crate::ops::Op;
use crate::protocol::{Ack, ClientFrame, ErrorFrame, NoteFrame, PublishFrame};
use leptos::prelude::*;
use serde_json::Value;
use std::collections::BTreeMap;

/// A write sent and not yet settled.
#[derive(Clone, Debug, PartialEq)]
pub struct Pending {
    pub reference: String,
    pub topic: String,
    pub entity: String,
    /// The entity as the page shows it until the write settles.
    pub payload: Value,
    /// What the write does, for the notice if it is refused: "Acknowledging api".
    pub what: String,
    /// Set by the ack: the topic offset at which the server's own event carries the write.
    pub confirmed_at: Option<u64>,
}

/// The page's writes in flight, the requests waiting for the socket, and the last refusal.
#[derive(Clone, Copy)]
pub struct Writes {
    pending: RwSignal<Vec<Pending>>,
    /// Frames for the socket to send; it drains them.
    pub outgoing: RwSignal<Vec<ClientFrame>>,
    /// The last write the server refused, said plainly; the board shows it until dismissed.
    pub refused: RwSignal<Option<String>>,
    sent: StoredValue<u64>,
    /// Notes sent that the server has not answered yet, by reference.
    notes_sent: StoredValue<Vec<String>>,
    /// Why the server refused the page's last note; cleared when the next one goes out.
    pub note_refused: RwSignal<Option<String>>,
    /// Counts the page's notes the server took: the panel clears its draft on each.
    pub notes_taken: RwSignal<u32>,
}

impl Default for Writes {
    fn default() -> Self {
        Writes {
            pending: RwSignal::new(Vec::new()),
            outgoing: RwSignal::new(Vec::new()),
            refused: RwSignal::new(None),
            sent: StoredValue::new(0),
            notes_sent: StoredValue::new(Vec::new()),
            note_refused: RwSignal::new(None),
            notes_taken: RwSignal::new(0),
        }
    }
}

impl Writes {
    fn reference(&self) -> String {
        self.sent.update_value(|n| *n += 1);
        format!("w{}", self.sent.get_value())
    }

    /// Sends a note (new, or an edit); the panel hears back through `notes_taken` or
    /// `note_refused`.
    pub fn note(&self, mut frame: NoteFrame) {
        let reference = self.reference();
        self.notes_sent
            .update_value(|sent| sent.push(reference.clone()));
        self.note_refused.set(None);
        frame.reference = Some(reference);
        self.outgoing
            .update(|frames| frames.push(ClientFrame::Note(frame)));
    }

    /// Deletes a note of the page's person; a refusal is said as for a note.
    pub fn delete_note(&self, board: &str, id: &str) {
        let reference = self.reference();
        self.notes_sent
            .update_value(|sent| sent.push(reference.clone()));
        self.note_refused.set(None);
        self.outgoing.update(|frames| {
            frames.push(ClientFrame::DeleteNote {
                reference: Some(reference),
                board: board.to_owned(),
                id: id.to_owned(),
            })
        });
    }

    /// Sends a frame that needs no answer (typing).
    pub fn tell(&self, frame: ClientFrame) {
        self.outgoing.update(|frames| frames.push(frame));
    }

    /// Takes a note reference out of those waiting; true if it was one.
    fn answered_note(&self, reference: &str) -> bool {
        let mut found = false;
        self.notes_sent.update_value(|sent| {
            if let Some(at) = sent.iter().position(|r| r == reference) {
                sent.remove(at);
                found = true;
            }
        });
        found
    }

    /// Shows `payload` for the entity at once and asks the server to apply `ops`.
    pub fn write(&self, topic: &str, entity: &str, ops: Vec<Op>, payload: Value, what: String) {
        let reference = self.reference();
        self.pending.update(|pending| {
            pending.push(Pending {
                reference: reference.clone(),
                topic: topic.to_owned(),
                entity: entity.to_owned(),
                payload,
                what,
                confirmed_at: None,
            })
        });
        self.outgoing.update(|frames| {
            frames.push(ClientFrame::Publish(PublishFrame {
                reference: Some(reference),
                topic: topic.to_owned(),
                ops,
                user_id: None,
                trace_id: None,
            }))
        });
    }

    /// The entities of a topic as the page shows them: the server's, under the page's own
    /// writes that the topic (at `offset`) does not carry yet.
    pub fn shown(
        &self,
        topic: &str,
        offset: u64,
        entities: &BTreeMap<String, Value>,
    ) -> BTreeMap<String, Value> {
        let mut shown = entities.clone();
        self.pending.with(|pending| {
            for write in pending.iter().filter(|w| w.topic == topic) {
                if write.confirmed_at.is_none_or(|at| at > offset) {
                    shown.insert(write.entity.clone(), write.payload.clone());
                }
            }
        });
        shown
    }

    pub fn confirmed(&self, ack: &Ack) {
        let Some(reference) = &ack.reference else {
            return;
        };
        if self.answered_note(reference) {
            self.notes_taken.update(|n| *n += 1);
            return;
        }
        self.pending.update(|pending| {
            if let Some(write) = pending.iter_mut().find(|w| &w.reference == reference) {
                write.confirmed_at = Some(ack.published.offset);
            }
        });
    }

    /// Rolls back the write an error refers to; true if it was one of the page's writes.
    pub fn refused(&self, error: &ErrorFrame) -> bool {
        let Some(reference) = &error.reference else {
            return false;
        };
        if self.answered_note(reference) {
            self.note_refused.set(Some(error.message.clone()));
            return true;
        }
        let mut what = None;
        self.pending.update(|pending| {
            if let Some(at) = pending.iter().position(|w| &w.reference == reference) {
                what = Some(pending.remove(at).what);
            }
        });
        let Some(what) = what else { return false };
        self.refused
            .set(Some(format!("{what} failed: {}", error.message)));
        true
    }

    /// Drops the writes a topic now carries (its offset reached their ack).
    pub fn settle(&self, topic: &str, offset: u64) {
        let settled = self.pending.with_untracked(|pending| {
            pending
                .iter()
                .any(|w| w.topic == topic && w.confirmed_at.is_some_and(|at| at <= offset))
        });
        if settled {
            self.pending.update(|pending| {
                pending.retain(|w| w.topic != topic || w.confirmed_at.is_none_or(|at| at > offset))
            });
        }
    }

    /// Rolls back every write in flight: the connection they were sent on is gone, or there
    /// is none to send them on. The board goes back to what the server has.
    pub fn lost(&self) {
        if self.notes_sent.with_value(|sent| !sent.is_empty()) {
            self.notes_sent.update_value(Vec::clear);
            self.note_refused.set(Some(
                "The note was not sent: the board is not connected. Try again once it is live."
                    .into(),
            ));
        }
        let lost = self
            .pending
            .with_untracked(|p| p.iter().any(|w| w.confirmed_at.is_none()));
        if lost {
            self.pending
                .update(|p| p.retain(|w| w.confirmed_at.is_some()));
            self.refused.set(Some(
                "A change was not confirmed before the connection dropped; the board shows what the server has. Try again once it is live.".into(),
            ));
        }
    }
}
