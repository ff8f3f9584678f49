//! Notes on a board: what people write where everyone is looking ("DB failover at 14:02,
//! investigating"), pinned to the board, to the widgets of one topic (or one entity of it),
//! or to a moment of that series. A board's notes are the entities of its notes topic,
//! [`notes_topic`], so they are stored, replayed to a screen that missed them and fanned out
//! to every instance as any topic is. Only the server writes that topic, naming the author
//! itself (`crate::notes`); these are the shapes both sides share.

use crate::json::decode_fields;
use serde::{Deserialize, Serialize};

/// What every board's notes topic starts with. Topics under it are written only as notes.
pub const NOTES_PREFIX: &str = "notes:";

/// The topic that holds a board's notes.
pub fn notes_topic(board: &str) -> String {
    format!("{NOTES_PREFIX}{board}")
}

/// What a writer sends: the note and where it is pinned.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct NoteDraft {
    pub text: String,
    /// Pins the note to the widgets that show this topic of the board.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// Narrows `topic` to the widgets that show this entity of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity: Option<String>,
    /// Pins the note to a moment of the series (ms since the Unix epoch): a marker there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub moment: Option<u64>,
    /// An http(s) address the note points to (a runbook, a pull request).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
}

/// A note as stored and shown: the entity's payload; its id is the entity's id.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Note {
    pub text: String,
    /// The person who wrote it, as presence frames name them.
    pub author: String,
    pub author_name: String,
    /// When it was written, ms since the Unix epoch by the server's clock.
    pub at: u64,
    /// When it was last edited, if it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edited: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub moment: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
}

decode_fields!(Note {
    text,
    author,
    author_name,
    at,
    edited,
    topic,
    entity,
    moment,
    link
});

impl Note {
    /// Whether the note is pinned to a widget that shows `entity` of `topic` (a widget of
    /// the whole topic passes `None`).
    pub fn pinned_to(&self, topic: &str, entity: Option<&str>) -> bool {
        self.topic.as_deref() == Some(topic)
            && (self.entity.is_none() || self.entity.as_deref() == entity)
    }
}
