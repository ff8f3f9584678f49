//! Typed writes: the ops a publisher sends, shared by the HTTP API, the CLI and the demo feed.
//!
//! An op names what should change, not the events it produces: the engine turns ops into
//! `ADDED` / `UPDATED` / `DELETED` events (see `engine::plan`). No feature gate, so a browser
//! client can build the same requests.

use crate::json::decode_fields;
use serde::{Deserialize, Serialize};
use serde_json::{Number, Value};

/// How many items a feed keeps when a `push` does not say.
pub const DEFAULT_FEED_LENGTH: usize = 50;
/// The most items a `push` may ask a feed to keep.
pub const MAX_FEED_LENGTH: usize = 10_000;
/// How many points a series keeps when an `append` does not say.
pub const DEFAULT_SERIES_POINTS: usize = 120;
/// The most points an `append` may ask a series to keep. Every `append` event carries the
/// whole series, so this bounds the size of each event.
pub const MAX_SERIES_POINTS: usize = 1_000;
/// The most ops one request (or batch) may carry: it bounds how long one request can hold
/// its topics.
pub const MAX_OPS_PER_REQUEST: usize = 1_000;
/// The most topics one batch may write: each is held for the batch while it commits.
pub const MAX_TOPICS_PER_BATCH: usize = 100;

/// One typed write to a topic.
///
/// `ttl` (seconds), where an op takes it, makes the entity expire by itself: the server
/// deletes it (a `DELETED` event) that long after the write. `set` without `ttl` clears any
/// expiry; `patch`, `incr` and `append` without `ttl` keep the entity's expiry as it was.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Op {
    /// Create or replace an entity.
    Set {
        entity_id: String,
        #[cfg_attr(feature = "ssr", schema(value_type = Value))]
        payload: Value,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ttl: Option<u64>,
    },
    /// Apply a JSON merge patch (RFC 7396) to an entity, creating it if absent.
    Patch {
        entity_id: String,
        #[cfg_attr(feature = "ssr", schema(value_type = Object))]
        patch: Value,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ttl: Option<u64>,
    },
    /// Add `by` to a number: the payload itself, or `field` of an object payload.
    /// A missing entity or field counts as 0.
    Incr {
        entity_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        field: Option<String>,
        #[cfg_attr(feature = "ssr", schema(value_type = f64))]
        by: Number,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ttl: Option<u64>,
    },
    /// Remove an entity; removing one that does not exist changes nothing.
    Delete { entity_id: String },
    /// Add a point to a bounded series: the entity's payload is `{"points": [[ms, value], …]}`,
    /// oldest first, keeping at most `max_points` points no older than `max_age` seconds.
    Append {
        entity_id: String,
        #[cfg_attr(feature = "ssr", schema(value_type = f64))]
        value: Number,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_points: Option<usize>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_age: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ttl: Option<u64>,
    },
    /// Add an item to a feed topic under a server-assigned, increasing id, then drop the
    /// oldest items beyond `max`. An object item without an `at` field gets one: the
    /// server's time in milliseconds since the Unix epoch, which feeds show as "2 min ago".
    Push {
        #[cfg_attr(feature = "ssr", schema(value_type = Value))]
        payload: Value,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max: Option<usize>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ttl: Option<u64>,
    },
    /// Remove every entity of the topic.
    Clear,
}

/// A list of ops for one topic, applied in order, whole or not at all.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(deny_unknown_fields)]
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
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Published {
    pub topic: String,
    pub epoch: u64,
    /// The offset of the last event the request produced (the topic's offset now).
    pub offset: u64,
    /// The offsets of every event the request produced, in order.
    pub offsets: Vec<u64>,
}

decode_fields!(Published {
    topic,
    epoch,
    offset,
    offsets
});

/// Ops for one topic within a batch.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TopicOps {
    pub topic: String,
    pub ops: Vec<Op>,
}

/// Ops over several topics, applied in order, whole or not at all: if one op anywhere is
/// refused, no topic changes.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct Batch {
    pub writes: Vec<TopicOps>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
}

/// What a batch answered: one entry per topic it wrote, in the order topics first appear.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct BatchPublished {
    pub results: Vec<Published>,
}

/// Why a batch is not taken, before any of its ops is looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchError {
    /// The write at this index has no ops: it would hold its topic and change nothing.
    EmptyOps { write: usize },
    /// More ops than [`MAX_OPS_PER_REQUEST`].
    TooManyOps,
    /// More distinct topics than [`MAX_TOPICS_PER_BATCH`].
    TooManyTopics,
}

impl Batch {
    /// Checks the batch's shape: every write has ops, and it stays within the bounds of one
    /// request.
    pub fn check(&self) -> Result<(), BatchError> {
        if let Some(write) = self.writes.iter().position(|w| w.ops.is_empty()) {
            return Err(BatchError::EmptyOps { write });
        }
        let ops: usize = self.writes.iter().map(|w| w.ops.len()).sum();
        if ops > MAX_OPS_PER_REQUEST {
            return Err(BatchError::TooManyOps);
        }
        // Writes are at most the ops, so this set is bounded by the check above.
        let topics: std::collections::HashSet<&str> =
            self.writes.iter().map(|w| w.topic.as_str()).collect();
        if topics.len() > MAX_TOPICS_PER_BATCH {
            return Err(BatchError::TooManyTopics);
        }
        Ok(())
    }
}

impl From<(String, Publish)> for Batch {
    fn from((topic, publish): (String, Publish)) -> Self {
        Self {
            writes: vec![TopicOps {
                topic,
                ops: publish.ops,
            }],
            user_id: publish.user_id,
            trace_id: publish.trace_id,
        }
    }
}
