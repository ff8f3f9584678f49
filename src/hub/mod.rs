//! The hub: every topic's state and history, and the fan-out of events to the connections
//! subscribed to them, plus each board's presence.
//!
//! A publish runs in three steps: plan the ops against the topic's state, make the events
//! durable in the [`Store`], then apply them in memory and queue them to subscribers. One
//! publisher per topic runs these steps at a time, so offsets are gapless and in order; readers
//! only ever see what is durable, so a crash can never take back an event a client has seen.
//!
//! This is the in-process fan-out. Its public methods are the seam where a shared bus (Redis)
//! will sit when several instances serve the same topics: publish, subscribe with a resume
//! position, unsubscribe, join and leave.

pub mod apply;
pub mod outbox;
pub mod presence;
pub mod topic;

use crate::ops::{Publish, Published};
use crate::protocol::{Position, Snapshot};
use crate::store::{Store, StoreError};
use apply::OpError;
use outbox::Outbox;
use parking_lot::Mutex;
use presence::Boards;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use topic::{Authorship, Prepared, Topic};

/// Identifies one socket connection for as long as the process runs.
pub type ConnectionId = u64;

/// Limits the hub works within.
#[derive(Debug, Clone)]
pub struct HubSettings {
    /// Events kept per topic for resuming subscribers.
    pub history: usize,
    /// Frames queued per connection before it counts as too slow.
    pub queue: usize,
}

pub struct Hub {
    settings: HubSettings,
    store: Arc<dyn Store>,
    topics: Mutex<HashMap<String, Arc<Slot>>>,
    boards: Mutex<Boards>,
    next_connection: AtomicU64,
}

/// One topic and the lock that lets one publisher at a time plan, store and apply.
struct Slot {
    writer: tokio::sync::Mutex<()>,
    topic: Mutex<Topic>,
}

impl Slot {
    fn new(topic: Topic) -> Arc<Self> {
        Arc::new(Self {
            writer: tokio::sync::Mutex::new(()),
            topic: Mutex::new(topic),
        })
    }
}

/// Why a publish did not apply. Nothing of it applied.
#[derive(Debug)]
pub enum PublishError {
    Refused(OpError),
    Store(StoreError),
}

impl std::fmt::Display for PublishError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Refused(e) => e.fmt(f),
            Self::Store(e) => e.fmt(f),
        }
    }
}

/// A topic's name and size, for listings.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TopicSummary {
    pub topic: String,
    pub epoch: u64,
    pub offset: u64,
    pub entities: usize,
    pub subscribers: usize,
}

impl Hub {
    /// A hub holding every topic the store has.
    pub fn open(settings: HubSettings, store: Arc<dyn Store>) -> Result<Arc<Self>, StoreError> {
        let topics = store
            .load()?
            .into_iter()
            .map(|record| {
                (
                    record.name.clone(),
                    Slot::new(Topic::restore(record, settings.history)),
                )
            })
            .collect();
        Ok(Arc::new(Self {
            settings,
            store,
            topics: Mutex::new(topics),
            boards: Mutex::new(Boards::default()),
            next_connection: AtomicU64::new(1),
        }))
    }

    /// A new connection id and its outgoing queue.
    pub fn connect(&self) -> (ConnectionId, Outbox, outbox::Inbox) {
        let id = self.next_connection.fetch_add(1, Ordering::Relaxed);
        let (outbox, inbox) = outbox::outbox(self.settings.queue);
        (id, outbox, inbox)
    }

    fn slot(&self, name: &str) -> Arc<Slot> {
        self.topics
            .lock()
            .entry(name.to_owned())
            .or_insert_with(|| {
                Slot::new(Topic::new(
                    name.to_owned(),
                    new_epoch(),
                    self.settings.history,
                ))
            })
            .clone()
    }

    /// Applies a request's ops to a topic, whole or not at all: durably, then in memory and
    /// to subscribers. Runs to the end even if the caller stops waiting, so a write the store
    /// has made durable always reaches memory too. The caller has checked the topic name.
    pub async fn publish(
        self: &Arc<Self>,
        name: &str,
        request: Publish,
    ) -> Result<Published, PublishError> {
        let hub = self.clone();
        let name = name.to_owned();
        tokio::spawn(async move { hub.publish_to_end(&name, &request).await })
            .await
            .unwrap_or_else(|e| {
                Err(PublishError::Store(StoreError(format!(
                    "publish task: {e}"
                ))))
            })
    }

    async fn publish_to_end(
        &self,
        name: &str,
        request: &Publish,
    ) -> Result<Published, PublishError> {
        let slot = self.slot(name);
        let _one_publisher = slot.writer.lock().await;
        let prepared = {
            let topic = slot.topic.lock();
            let next = topic.position().offset + 1;
            let changes = apply::plan(topic.entities(), &request.ops, next, now_ms())
                .map_err(PublishError::Refused)?;
            let by = Authorship {
                user_id: request.user_id.clone(),
                trace_id: request.trace_id.clone(),
            };
            topic.prepare(changes, &by, &now_iso8601())
        };
        let offsets = prepared.offsets();
        let position = self
            .store_and_apply(&slot, prepared)
            .await
            .map_err(PublishError::Store)?;
        Ok(Published {
            topic: name.to_owned(),
            epoch: position.epoch,
            offset: position.offset,
            offsets,
        })
    }

    /// Makes prepared events durable, then applies them. The caller holds the topic's writer.
    async fn store_and_apply(
        &self,
        slot: &Slot,
        prepared: Prepared,
    ) -> Result<Position, StoreError> {
        if let Some(write) = prepared.to_write(self.settings.history) {
            self.store
                .write(write)
                .await
                .unwrap_or_else(|_| Err(StoreError("the store writer has stopped".into())))?;
        }
        let mut topic = slot.topic.lock();
        topic.apply(prepared);
        Ok(topic.position())
    }

    /// Deletes every entity whose TTL has run out, in every topic, through the same durable
    /// path as a publish. Returns how many were deleted.
    pub async fn expire_due(&self) -> Result<usize, StoreError> {
        let now = now_ms();
        let due: Vec<Arc<Slot>> = self
            .topics
            .lock()
            .values()
            .filter(|slot| slot.topic.lock().next_expiry().is_some_and(|at| at <= now))
            .cloned()
            .collect();
        let mut deleted = 0;
        for slot in due {
            let _one_publisher = slot.writer.lock().await;
            let prepared = {
                let topic = slot.topic.lock();
                let changes = apply::expired(topic.entities(), now);
                deleted += changes.len();
                let by = Authorship {
                    user_id: None,
                    trace_id: Some("ttl".into()),
                };
                topic.prepare(changes, &by, &now_iso8601())
            };
            self.store_and_apply(&slot, prepared).await?;
        }
        Ok(deleted)
    }

    /// Subscribes a connection: queues its snapshot or missed events, then live events follow.
    /// Returns false when the connection's queue had no room; it is then not subscribed.
    pub fn subscribe(
        &self,
        connection: ConnectionId,
        outbox: &Outbox,
        name: &str,
        resume: Option<Position>,
    ) -> bool {
        // A replay may fill at most half the queue, leaving room for live events behind it.
        let max_replay = (self.settings.queue / 2).min(self.settings.history);
        self.slot(name)
            .topic
            .lock()
            .subscribe(connection, outbox, resume, max_replay)
    }

    pub fn unsubscribe(&self, connection: ConnectionId, name: &str) {
        let slot = self.topics.lock().get(name).cloned();
        if let Some(slot) = slot {
            slot.topic.lock().unsubscribe(connection);
        }
    }

    pub fn snapshot(&self, name: &str) -> Option<Snapshot> {
        let slot = self.topics.lock().get(name).cloned()?;
        let snapshot = slot.topic.lock().snapshot();
        Some(snapshot)
    }

    pub fn topics(&self) -> Vec<TopicSummary> {
        let slots: Vec<_> = self.topics.lock().values().cloned().collect();
        let mut summaries: Vec<TopicSummary> = slots
            .iter()
            .map(|slot| {
                let topic = slot.topic.lock();
                let position = topic.position();
                TopicSummary {
                    topic: topic.name().to_owned(),
                    epoch: position.epoch,
                    offset: position.offset,
                    entities: topic.entities().payloads.len(),
                    subscribers: topic.subscriber_count(),
                }
            })
            .collect();
        summaries.sort_by(|a, b| a.topic.cmp(&b.topic));
        summaries
    }

    pub fn join(&self, board: &str, connection: ConnectionId, outbox: &Outbox) {
        self.boards
            .lock()
            .join(board, connection, outbox, &now_iso8601());
    }

    pub fn leave(&self, board: &str, connection: ConnectionId) {
        self.boards.lock().leave(board, connection);
    }
}

/// The epoch of a topic created now: the time in milliseconds, so a topic that is created
/// again (its data dir wiped, or never stored) never reuses the offsets of an older one.
fn new_epoch() -> u64 {
    now_ms().max(1)
}

/// Milliseconds since the Unix epoch, the clock TTLs and series points use.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The current time as ISO 8601 in UTC with milliseconds, the form every `ts` has.
pub fn now_iso8601() -> String {
    const FORMAT: &[time::format_description::FormatItem<'static>] = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    time::OffsetDateTime::now_utc()
        .format(FORMAT)
        .unwrap_or_default()
}
