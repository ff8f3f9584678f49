//! Typed writes: the ops a publisher sends, shared by the HTTP API, the CLI and the demo feed.
//!
//! An op names what should change, not the events it produces: the hub turns ops into
//! `ADDED` / `UPDATED` / `DELETED` events (see `hub::apply`). No feature gate, so a browser
//! client can build the same requests.

use serde::{Deserialize, Serialize};
use serde_json::{Number, Value};

/// How many items a feed keeps when a `push` does not say.
pub const DEFAULT_FEED_LENGTH: usize = 50;
/// The most items a `push` may ask a feed to keep.
pub const MAX_FEED_LENGTH: usize = 10_000;

/// One typed write to a topic.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    /// Create or replace an entity.
    Set { entity_id: String, payload: Value },
    /// Apply a JSON merge patch (RFC 7396) to an entity, creating it if absent.
    Patch { entity_id: String, patch: Value },
    /// Add `by` to a number: the payload itself, or `field` of an object payload.
    /// A missing entity or field counts as 0.
    Incr {
        entity_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        field: Option<String>,
        by: Number,
    },
    /// Remove an entity; removing one that does not exist changes nothing.
    Delete { entity_id: String },
    /// Add an item to a feed topic under a server-assigned, increasing id, then drop the
    /// oldest items beyond `max`.
    Push {
        payload: Value,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max: Option<usize>,
    },
}

/// A list of ops for one topic, applied in order, whole or not at all.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct Publish {
    pub ops: Vec<Op>,
    /// Who made the change, copied into every event it produces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// A correlation id, copied into every event it produces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
}

/// What a publish answered: the topic's epoch and the offsets its events got.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Published {
    pub topic: String,
    pub epoch: u64,
    /// The offset of the last event the request produced (the topic's offset now).
    pub offset: u64,
    /// The offsets of every event the request produced, in order.
    pub offsets: Vec<u64>,
}
