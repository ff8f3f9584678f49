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
pub mod idempotency;
pub mod outbox;
pub mod presence;
pub mod topic;

use crate::boards::BoardView;
use crate::metrics::Metrics;
use crate::ops::{Batch, BatchPublished, Op, Published, MAX_OPS_PER_REQUEST};
use crate::protocol::{pattern_matches, BoardFrame, Position, ServerFrame, Snapshot};
use crate::store::{Remembered, Store, StoreError, WriteUnit};
use apply::OpError;
use idempotency::{Memory, Recall, REMEMBER_FOR_MS};
use outbox::{EncodedFrame, Inbox, Next, Outbox};
use parking_lot::Mutex;
use presence::Boards;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};
use topic::{encode, Authorship, Prepared, Sent, Topic};

/// Identifies one socket connection for as long as the process runs.
pub type ConnectionId = u64;

/// Limits the hub works within.
#[derive(Debug, Clone)]
pub struct HubSettings {
    /// Events kept per topic for resuming subscribers.
    pub history: usize,
    /// Topics that keep a different number of events: (pattern, events). A pattern ending in
    /// `*` matches any topic starting with what precedes it; the longest match wins.
    pub retention: Vec<(String, usize)>,
    /// Frames queued per connection before it counts as too slow.
    pub queue: usize,
}

impl HubSettings {
    /// How many events `topic` keeps for resuming subscribers.
    pub fn history_for(&self, topic: &str) -> usize {
        self.retention
            .iter()
            .filter(|(pattern, _)| pattern_matches(pattern, topic))
            .max_by_key(|(pattern, _)| pattern.len())
            .map_or(self.history, |(_, events)| *events)
    }
}

pub struct Hub {
    settings: HubSettings,
    store: Arc<dyn Store>,
    metrics: Metrics,
    topics: Mutex<HashMap<String, Arc<Slot>>>,
    boards: Mutex<Boards>,
    remembered: Mutex<Memory>,
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
    /// An op was refused; `write` is the index of its topic's entry in the batch.
    Refused {
        write: usize,
        error: OpError,
    },
    Store(StoreError),
    /// The idempotency key was used before for a different request.
    KeyReused,
    /// A request with the same idempotency key is being applied right now.
    KeyInFlight,
    /// The request carries more ops than one request may.
    TooManyOps,
}

impl std::fmt::Display for PublishError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Refused { error, .. } => error.fmt(f),
            Self::Store(e) => e.fmt(f),
            Self::KeyReused => f.write_str("this idempotency key was used for a different request"),
            Self::KeyInFlight => f.write_str("a request with this idempotency key is in progress"),
            Self::TooManyOps => write!(
                f,
                "a request may carry at most {MAX_OPS_PER_REQUEST} ops; split it"
            ),
        }
    }
}

/// An idempotency key marked in flight; dropping it records how the request ended.
struct InFlight<'a> {
    memory: &'a Mutex<Memory>,
    key: &'a str,
    applied: Option<(String, BatchPublished, u64)>,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.memory.lock().settle(self.key, self.applied.take());
    }
}

/// A batch's ops gathered per topic, in the order topics first appear, with where each op
/// came from so a refusal can name it.
struct Grouped {
    topic: String,
    ops: Vec<Op>,
    /// For each op: (index of its write in the batch, index within that write).
    origins: Vec<(usize, usize)>,
}

fn group(batch: &Batch) -> Vec<Grouped> {
    let mut groups: Vec<Grouped> = Vec::new();
    for (write_index, write) in batch.writes.iter().enumerate() {
        let at = match groups.iter().position(|g| g.topic == write.topic) {
            Some(at) => at,
            None => {
                groups.push(Grouped {
                    topic: write.topic.clone(),
                    ops: Vec::new(),
                    origins: Vec::new(),
                });
                groups.len() - 1
            }
        };
        let group = &mut groups[at];
        for (op_index, op) in write.ops.iter().enumerate() {
            group.ops.push(op.clone());
            group.origins.push((write_index, op_index));
        }
    }
    groups
}

/// A topic's name and size, for listings.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
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
        let loaded = store.load(now_ms().saturating_sub(REMEMBER_FOR_MS))?;
        let topics = loaded
            .topics
            .into_iter()
            .map(|record| {
                let history = settings.history_for(&record.name);
                (
                    record.name.clone(),
                    Slot::new(Topic::restore(record, history)),
                )
            })
            .collect();
        Ok(Arc::new(Self {
            settings,
            store,
            metrics: Metrics::default(),
            topics: Mutex::new(topics),
            boards: Mutex::new(Boards::default()),
            remembered: Mutex::new(Memory::restore(loaded.remembered)),
            next_connection: AtomicU64::new(1),
        }))
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// A new connection id and its outgoing queue.
    pub fn connect(&self) -> (ConnectionId, Outbox, Inbox) {
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
                    self.settings.history_for(name),
                ))
            })
            .clone()
    }

    /// Applies a batch's ops, whole or not at all: durably, then in memory and to
    /// subscribers. With an idempotency key, a repeat of an applied request applies nothing
    /// and gets the first answer (`true` in the result says it was replayed).
    ///
    /// Runs to the end even if the caller stops waiting, so a write the store has made
    /// durable always reaches memory too. The caller has checked the topic names.
    pub async fn publish(
        self: &Arc<Self>,
        batch: Batch,
        key: Option<String>,
    ) -> Result<(BatchPublished, bool), PublishError> {
        let hub = self.clone();
        tokio::spawn(async move { hub.publish_to_end(batch, key).await })
            .await
            .unwrap_or_else(|e| {
                Err(PublishError::Store(StoreError(format!(
                    "publish task: {e}"
                ))))
            })
    }

    async fn publish_to_end(
        &self,
        batch: Batch,
        key: Option<String>,
    ) -> Result<(BatchPublished, bool), PublishError> {
        let ops: usize = batch.writes.iter().map(|w| w.ops.len()).sum();
        if ops > MAX_OPS_PER_REQUEST {
            return Err(PublishError::TooManyOps);
        }
        let started = Instant::now();
        let result = self.publish_once(&batch, key).await;
        self.metrics
            .publish_seconds
            .observe(started.elapsed().as_secs_f64());
        if result.is_err() {
            for write in &batch.writes {
                self.release_if_unused(&write.topic);
            }
        }
        result
    }

    async fn publish_once(
        &self,
        batch: &Batch,
        key: Option<String>,
    ) -> Result<(BatchPublished, bool), PublishError> {
        let Some(key) = key else {
            return self.apply_batch(batch, None).await.map(|a| (a, false));
        };
        let fingerprint = idempotency::fingerprint(batch);
        match self.remembered.lock().recall(&key, &fingerprint) {
            Recall::New => {}
            Recall::Replay(answer) => return Ok((answer, true)),
            Recall::Reused => return Err(PublishError::KeyReused),
            Recall::InFlight => return Err(PublishError::KeyInFlight),
        }
        // Settles the key however this ends, even if applying panics, so it cannot stay
        // "in flight" for good.
        let mut in_flight = InFlight {
            memory: &self.remembered,
            key: &key,
            applied: None,
        };
        let created_ms = now_ms();
        let remember = |answer: &BatchPublished| Remembered {
            key: key.clone(),
            fingerprint: fingerprint.clone(),
            response: serde_json::to_string(answer).unwrap_or_default(),
            created_ms,
        };
        let result = self.apply_batch(batch, Some(&remember)).await;
        in_flight.applied = result
            .as_ref()
            .ok()
            .map(|answer| (fingerprint.clone(), answer.clone(), created_ms));
        result.map(|answer| (answer, false))
    }

    async fn apply_batch(
        &self,
        batch: &Batch,
        remember: Option<&(dyn Fn(&BatchPublished) -> Remembered + Sync)>,
    ) -> Result<BatchPublished, PublishError> {
        let groups = group(batch);
        let slots: Vec<Arc<Slot>> = groups.iter().map(|g| self.slot(&g.topic)).collect();
        // One publisher per topic; taking the locks in name order means two batches over the
        // same topics can never each hold one the other waits for.
        let mut order: Vec<usize> = (0..groups.len()).collect();
        order.sort_by(|a, b| groups[*a].topic.cmp(&groups[*b].topic));
        let mut _writers = Vec::with_capacity(order.len());
        for &i in &order {
            _writers.push(slots[i].writer.lock().await);
        }

        let by = Authorship {
            user_id: batch.user_id.clone(),
            trace_id: batch.trace_id.clone(),
        };
        let (now, ts) = (now_ms(), now_iso8601());
        let mut prepared = Vec::with_capacity(groups.len());
        let mut results = Vec::with_capacity(groups.len());
        for (group, slot) in groups.iter().zip(&slots) {
            let topic = slot.topic.lock();
            let position = topic.position();
            let changes = apply::plan(topic.entities(), &group.ops, position.offset + 1, now)
                .map_err(|mut error| {
                    let (write, op) = group.origins[error.index];
                    error.index = op;
                    PublishError::Refused { write, error }
                })?;
            let ready = topic.prepare(changes, &by, &ts);
            let offsets = ready.offsets();
            results.push(Published {
                topic: group.topic.clone(),
                epoch: position.epoch,
                offset: position.offset + offsets.len() as u64,
                offsets,
            });
            prepared.push(ready);
        }
        let answer = BatchPublished { results };

        let unit = WriteUnit {
            topics: prepared.iter().filter_map(Prepared::to_write).collect(),
            remember: remember.map(|remember| remember(&answer)),
        };
        self.make_durable(unit).await.map_err(PublishError::Store)?;
        for (ready, slot) in prepared.into_iter().zip(&slots) {
            self.apply(slot, ready);
        }
        Ok(answer)
    }

    /// Applies durable events to a topic and counts them.
    fn apply(&self, slot: &Slot, prepared: Prepared) {
        let events = prepared.offsets().len() as u64;
        let frames = slot.topic.lock().apply(prepared);
        self.metrics.events_published.inc_by(events);
        self.metrics.frames_queued.inc_by(frames);
    }

    /// Waits until the store has recorded a unit; a unit with nothing in it is already done.
    async fn make_durable(&self, unit: WriteUnit) -> Result<(), StoreError> {
        if unit.topics.is_empty() && unit.remember.is_none() {
            return Ok(());
        }
        let forget_before = now_ms().saturating_sub(REMEMBER_FOR_MS);
        self.store
            .write(unit, forget_before)
            .await
            .unwrap_or_else(|_| Err(StoreError("the store writer has stopped".into())))
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
        let mut failure = None;
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
            let unit = WriteUnit {
                topics: prepared.to_write().into_iter().collect(),
                remember: None,
            };
            match self.make_durable(unit).await {
                Ok(()) => self.apply(&slot, prepared),
                Err(e) => failure = Some(e),
            }
        }
        self.remembered
            .lock()
            .forget_before(now.saturating_sub(REMEMBER_FOR_MS));
        failure.map_or(Ok(deleted), Err)
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
        self.slot(name)
            .topic
            .lock()
            .subscribe(connection, outbox, resume)
    }

    pub fn unsubscribe(&self, connection: ConnectionId, name: &str) {
        let slot = self.topics.lock().get(name).cloned();
        if let Some(slot) = slot {
            slot.topic.lock().unsubscribe(connection);
        }
        self.release_if_unused(name);
    }

    /// Forgets a topic that was created by a subscription or a refused write but never
    /// written, once nothing refers to it, so such names cannot pile up.
    fn release_if_unused(&self, name: &str) {
        let mut topics = self.topics.lock();
        // The map's own reference is the only one: no publisher or subscriber holds the slot,
        // and none can take it while the map is locked.
        let unused = topics
            .get(name)
            .is_some_and(|slot| Arc::strong_count(slot) == 1 && slot.topic.lock().is_unused());
        if unused {
            topics.remove(name);
        }
    }

    /// A written topic's snapshot; `None` for a topic nobody has written yet.
    pub fn snapshot(&self, name: &str) -> Option<Snapshot> {
        let slot = self.topics.lock().get(name).cloned()?;
        let snapshot = slot.topic.lock().snapshot();
        (snapshot.offset > 0).then_some(snapshot)
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

    /// Shows every viewer of a board its new definition (its file changed).
    pub fn show_board(&self, name: &str, view: BoardView) {
        let frame = encode(&ServerFrame::Board(BoardFrame {
            name: name.to_owned(),
            view,
        }));
        self.boards.lock().show(name, frame);
    }

    /// The next frame a connection is to send: what its queue holds, and each time the queue
    /// is written out, what its topics and boards have pending for it (the rest of a replay,
    /// or what it missed while its queue was full, coalesced). Both transports write out
    /// what this gives them.
    pub async fn next_frame(&self, connection: ConnectionId, inbox: &Inbox) -> EncodedFrame {
        loop {
            match inbox.next().await {
                Next::Frame(frame) => return frame,
                Next::Pending { topics, fell } => {
                    self.metrics.slow_consumers.inc_by(fell);
                    inbox.again(self.send_pending(connection, topics));
                }
            }
        }
    }

    /// Sends a connection what it has pending on each topic or board listed, now that its
    /// queue is written out: the rest of a replay, or what it missed while its queue was
    /// full, coalesced. Returns those it still cannot take.
    fn send_pending(&self, connection: ConnectionId, waiting: Vec<String>) -> Vec<String> {
        let mut still = Vec::new();
        for key in waiting {
            let caught = match key.strip_prefix(presence::BOARD_KEY) {
                Some(board) => self.boards.lock().catch_up(board, connection),
                None => {
                    let slot = self.topics.lock().get(&key).cloned();
                    match slot.map(|slot| slot.topic.lock().send_pending(connection)) {
                        Some(Sent::More) => false,
                        Some(Sent::Coalesced) => {
                            self.metrics.catch_ups.inc();
                            true
                        }
                        _ => true,
                    }
                }
            };
            if !caught {
                still.push(key);
            }
        }
        still
    }

    /// Asks every open board page to reload itself within `within`; returns how many pages
    /// were asked. For after a deploy that changed the page itself, or a wedged screen.
    pub fn reload_screens(&self, within: std::time::Duration) -> usize {
        let frame = encode(&ServerFrame::Reload {
            within_ms: within.as_millis() as u64,
        });
        self.boards.lock().send_to_all(&frame)
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
