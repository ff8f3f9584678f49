//! The hub: every topic's state and history, and the fan-out of events to the connections
//! subscribed to them, plus each board's presence.
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
use apply::OpError;
use outbox::Outbox;
use parking_lot::Mutex;
use presence::Boards;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use topic::{Authorship, Topic};

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
    /// The epoch of every topic this process creates: its start time in milliseconds, so a
    /// restarted server's offsets are never mistaken for the old ones.
    epoch: u64,
    topics: Mutex<HashMap<String, Arc<Mutex<Topic>>>>,
    boards: Mutex<Boards>,
    next_connection: AtomicU64,
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
    pub fn new(settings: HubSettings) -> Arc<Self> {
        let epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |d| d.as_millis() as u64);
        Arc::new(Self {
            settings,
            epoch,
            topics: Mutex::new(HashMap::new()),
            boards: Mutex::new(Boards::default()),
            next_connection: AtomicU64::new(1),
        })
    }

    /// A new connection id and its outgoing queue.
    pub fn connect(&self) -> (ConnectionId, Outbox, outbox::Inbox) {
        let id = self.next_connection.fetch_add(1, Ordering::Relaxed);
        let (outbox, inbox) = outbox::outbox(self.settings.queue);
        (id, outbox, inbox)
    }

    fn topic(&self, name: &str) -> Arc<Mutex<Topic>> {
        self.topics
            .lock()
            .entry(name.to_owned())
            .or_insert_with(|| {
                Arc::new(Mutex::new(Topic::new(
                    name.to_owned(),
                    self.epoch,
                    self.settings.history,
                )))
            })
            .clone()
    }

    /// Applies a request's ops to a topic, whole or not at all, and fans out its events.
    /// The caller has checked the topic name.
    pub fn publish(&self, name: &str, request: &Publish) -> Result<Published, OpError> {
        let topic = self.topic(name);
        let mut topic = topic.lock();
        let changes = apply::plan(topic.state(), &request.ops, topic.position().offset + 1)?;
        let by = Authorship {
            user_id: request.user_id.clone(),
            trace_id: request.trace_id.clone(),
        };
        let offsets = topic.commit(changes, &by, &now_iso8601());
        let position = topic.position();
        Ok(Published {
            topic: name.to_owned(),
            epoch: position.epoch,
            offset: position.offset,
            offsets,
        })
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
        self.topic(name)
            .lock()
            .subscribe(connection, outbox, resume, max_replay)
    }

    pub fn unsubscribe(&self, connection: ConnectionId, name: &str) {
        let topic = self.topics.lock().get(name).cloned();
        if let Some(topic) = topic {
            topic.lock().unsubscribe(connection);
        }
    }

    pub fn snapshot(&self, name: &str) -> Option<Snapshot> {
        let topic = self.topics.lock().get(name).cloned()?;
        let snapshot = topic.lock().snapshot();
        Some(snapshot)
    }

    pub fn topics(&self) -> Vec<TopicSummary> {
        let topics: Vec<_> = self.topics.lock().values().cloned().collect();
        let mut summaries: Vec<TopicSummary> = topics
            .iter()
            .map(|topic| {
                let topic = topic.lock();
                let position = topic.position();
                TopicSummary {
                    topic: topic.name().to_owned(),
                    epoch: position.epoch,
                    offset: position.offset,
                    entities: topic.state().len(),
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

/// The current time as ISO 8601 in UTC with milliseconds, the form every `ts` has.
pub fn now_iso8601() -> String {
    const FORMAT: &[time::format_description::FormatItem<'static>] = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    time::OffsetDateTime::now_utc()
        .format(FORMAT)
        .unwrap_or_default()
}
