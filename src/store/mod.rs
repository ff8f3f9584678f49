//! The store: where the embedded engine's topics live durably. The engine writes through it
//! before it acknowledges or delivers anything, and reads every topic back from it at start,
//! so a restarted server continues the same epochs and offsets.
//!
//! [`sqlite::SqliteStore`] is the one there is, on the file whose tables and migrations
//! `schema` owns; [`backup`] copies that file while the server runs. an engine that keeps topics elsewhere (Redis)
//! is another [`crate::engine::Engine`], not another store.

pub(crate) mod backup;
pub(crate) mod schema;
pub(crate) mod sqlite;

use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;
use tokio::sync::oneshot;

/// A topic as last committed.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TopicRecord {
    pub(crate) name: String,
    pub(crate) epoch: u64,
    pub(crate) offset: u64,
    pub(crate) state: BTreeMap<String, Value>,
    /// Expiry times (ms since the Unix epoch) of the entities that have one.
    pub(crate) expiries: BTreeMap<String, u64>,
    /// When each entity last changed (ms since the Unix epoch), where known.
    pub(crate) changed: BTreeMap<String, u64>,
    /// The newest encoded event frames, oldest first, with their offsets.
    pub(crate) history: Vec<(u64, String)>,
}

/// One publish, as the store must record it: all of it or none of it.
#[derive(Debug, Clone)]
pub(crate) struct TopicWrite {
    pub(crate) topic: String,
    pub(crate) epoch: u64,
    /// The topic's offset this write was planned after: the store refuses it unless that is
    /// where the topic stands, so a write planned on one that failed never lands.
    pub(crate) base: u64,
    /// The topic's offset after this write.
    pub(crate) offset: u64,
    /// Entities to create or replace, with their expiry time if they have one.
    pub(crate) upserts: Vec<(String, Value, Option<u64>)>,
    /// When the write was made (ms since the Unix epoch): when its upserts last changed.
    pub(crate) at_ms: u64,
    /// Entities to remove.
    pub(crate) deletes: Vec<String>,
    /// The encoded event frames, in offset order.
    pub(crate) events: Vec<(u64, String)>,
    /// How many of the newest events to keep for resuming clients.
    pub(crate) keep_history: usize,
}

/// One request's writes, recorded all together or not at all.
#[derive(Debug, Clone, Default)]
pub(crate) struct WriteUnit {
    pub(crate) topics: Vec<TopicWrite>,
    /// The request's idempotency record, stored in the same transaction as its writes.
    pub(crate) remember: Option<Remembered>,
}

/// A request made with an `Idempotency-Key`, and what it answered.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Remembered {
    pub(crate) key: String,
    /// A digest of the request, so that a different request reusing the key is refused.
    pub(crate) fingerprint: String,
    /// The answer, as JSON.
    pub(crate) response: String,
    /// When it was made, ms since the Unix epoch.
    pub(crate) created_ms: u64,
    /// Older keys of the same owner to forget with it (past the owner's bound).
    pub(crate) forget: Vec<String>,
}

/// Everything the store holds, as read at start.
#[derive(Debug, Clone, Default)]
pub(crate) struct Loaded {
    pub(crate) topics: Vec<TopicRecord>,
    pub(crate) remembered: Vec<Remembered>,
}

/// A store that could not do what was asked. The write it refers to did not happen.
#[derive(Debug, Clone)]
pub(crate) struct StoreError(pub String);

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "store: {}", self.0)
    }
}

impl std::error::Error for StoreError {}

/// Any error of the file or database underneath, as a [`StoreError`].
pub(crate) fn failed(e: impl fmt::Display) -> StoreError {
    StoreError(e.to_string())
}

/// Resolves once a write is durable, or failed as a whole.
pub(crate) type Durable = oneshot::Receiver<Result<(), StoreError>>;

pub(crate) trait Store: Send + Sync + 'static {
    /// Every topic as last committed, and the idempotency records newer than `remember_since`
    /// (ms since the Unix epoch).
    fn load(&self, remember_since: u64) -> Result<Loaded, StoreError>;

    /// Queues a unit of writes. Units are made durable in the order they are queued, each
    /// whole or not at all; the answer arrives when this one is. Idempotency records older
    /// than `forget_before` may be dropped on the way.
    fn write(&self, unit: WriteUnit, forget_before: u64) -> Durable;

    /// Makes everything queued durable, records a clean stop, and stops taking writes.
    /// Resolves when done.
    fn close(&self) -> oneshot::Receiver<()>;
}
