//! The embedded engine, for one instance: every topic in memory (for planning and reading),
//! made durable in SQLite ([`crate::store`]) before anything is acknowledged or delivered,
//! with an in-process bus: a commit hands its events to the hub directly.
//!
//! A publish runs in three steps, one publisher per topic at a time (so offsets are gapless
//! and in order): plan the ops against the topic's state, make the events durable in the
//! store, then apply them and deliver them. Only durable events are ever delivered, so a
//! crash can never take back an event a client has seen.

use super::idempotency::{self, Memory, Recall, REMEMBER_FOR_MS};
use super::plan::{self, Entities};
use super::write::{group, prepare, Authorship, Head, Prepared};
use super::{
    to_the_end, Committed, Deliveries, Engine, EngineError, InstanceReport, Outcome, PublishError,
    Retention, TopicCopy, TopicInfo, Viewer,
};
use crate::clock::now_ms;
use crate::encoded::EncodedFrame;
use crate::metrics::Metrics;
use crate::ops::{Batch, BatchPublished, Published, MAX_OPS_PER_REQUEST};
use crate::protocol::{EventKind, Snapshot, Typing};
use crate::store::{Remembered, Store, StoreError, TopicRecord, TopicWrite, WriteUnit};
use futures_util::future::BoxFuture;
use parking_lot::Mutex;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Instant;

/// The embedded engine; cheap to clone.
#[derive(Clone)]
pub struct Embedded {
    inner: Arc<Inner>,
}

struct Inner {
    retention: Retention,
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    topics: Mutex<HashMap<String, Arc<Slot>>>,
    remembered: Mutex<Memory>,
    deliveries: OnceLock<Weak<dyn Deliveries>>,
}

/// One topic and the lock that lets one publisher at a time plan, store and apply.
struct Slot {
    writer: tokio::sync::Mutex<()>,
    topic: Mutex<TopicState>,
}

impl Slot {
    fn new(topic: TopicState) -> Arc<Self> {
        Arc::new(Self {
            writer: tokio::sync::Mutex::new(()),
            topic: Mutex::new(topic),
        })
    }
}

/// A topic as the engine holds it.
struct TopicState {
    name: String,
    epoch: u64,
    offset: u64,
    state: BTreeMap<String, Value>,
    /// When entities with a TTL expire, in ms since the Unix epoch.
    expiries: BTreeMap<String, u64>,
    /// When each entity last changed, in ms since the Unix epoch, where known.
    changed: BTreeMap<String, u64>,
    /// The newest events, oldest first, each encoded once.
    history: VecDeque<(u64, EncodedFrame)>,
    keep: usize,
    /// This instance follows the topic: its events are delivered.
    followed: bool,
}

impl TopicState {
    fn new(name: String, epoch: u64, keep: usize) -> Self {
        Self {
            name,
            epoch,
            offset: 0,
            state: BTreeMap::new(),
            expiries: BTreeMap::new(),
            changed: BTreeMap::new(),
            history: VecDeque::new(),
            keep,
            followed: false,
        }
    }

    /// A topic as the store last committed it.
    fn restore(record: TopicRecord, keep: usize) -> Self {
        let skip = record.history.len().saturating_sub(keep);
        Self {
            name: record.name,
            epoch: record.epoch,
            offset: record.offset,
            state: record.state,
            expiries: record.expiries,
            changed: record.changed,
            history: record
                .history
                .into_iter()
                .skip(skip)
                .map(|(offset, frame)| (offset, frame.into()))
                .collect(),
            keep,
            followed: false,
        }
    }

    fn entities(&self) -> Entities<'_> {
        Entities {
            payloads: &self.state,
            expiries: &self.expiries,
        }
    }

    fn head(&self) -> Head<'_> {
        Head {
            topic: &self.name,
            epoch: self.epoch,
            offset: self.offset,
            keep: self.keep,
        }
    }

    fn snapshot(&self) -> Snapshot {
        Snapshot {
            topic: self.name.clone(),
            epoch: self.epoch,
            offset: self.offset,
            state: self.state.clone(),
            changed: self.changed.clone(),
        }
    }

    /// Applies durable events in order to the state and the history. Returns them as they
    /// are delivered, if this instance follows the topic.
    fn apply(&mut self, prepared: Prepared) -> Option<Vec<Committed>> {
        for (offset, change, frame) in &prepared.events {
            debug_assert_eq!(*offset, self.offset + 1, "events apply in offset order");
            self.offset = *offset;
            match change.expires_at {
                Some(at) => self.expiries.insert(change.entity_id.clone(), at),
                None => self.expiries.remove(&change.entity_id),
            };
            match change.kind {
                EventKind::Deleted => {
                    self.state.remove(&change.entity_id);
                    self.changed.remove(&change.entity_id);
                }
                _ => {
                    let id = change.entity_id.clone();
                    self.state.insert(id.clone(), change.payload.clone());
                    self.changed.insert(id, prepared.at_ms);
                }
            }
            self.history.push_back((*offset, frame.clone()));
            if self.history.len() > self.keep {
                self.history.pop_front();
            }
        }
        self.followed.then(|| prepared.committed())
    }
}

/// What the store must record of a prepared write: each touched entity's final value, and
/// the events.
fn to_write(prepared: &Prepared) -> Option<TopicWrite> {
    if prepared.events.is_empty() {
        return None;
    }
    let (upserts, deletes): (Vec<_>, Vec<_>) = prepared
        .finals()
        .into_iter()
        .partition(|(_, value)| value.is_some());
    Some(TopicWrite {
        topic: prepared.topic.clone(),
        epoch: prepared.epoch,
        offset: prepared.head(),
        upserts: upserts
            .into_iter()
            .filter_map(|(id, value)| {
                let (payload, expires_at) = value?;
                Some((id.to_owned(), payload.clone(), expires_at))
            })
            .collect(),
        deletes: deletes.into_iter().map(|(id, _)| id.to_owned()).collect(),
        at_ms: prepared.at_ms,
        events: prepared
            .events
            .iter()
            .map(|(offset, _, frame)| (*offset, frame.as_str().to_owned()))
            .collect(),
        keep_history: prepared.keep,
    })
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

/// The epoch of a topic created now: the time in milliseconds, so a topic that is created
/// again (its data dir wiped, or never stored) never reuses the offsets of an older one.
fn new_epoch() -> u64 {
    now_ms().max(1)
}

fn unavailable(e: StoreError) -> EngineError {
    EngineError::Failed(e.to_string())
}

impl Embedded {
    /// An engine holding every topic the store has.
    pub fn open(
        retention: Retention,
        store: Arc<dyn Store>,
        metrics: Arc<Metrics>,
    ) -> Result<Self, EngineError> {
        let loaded = store
            .load(now_ms().saturating_sub(REMEMBER_FOR_MS))
            .map_err(unavailable)?;
        let topics = loaded
            .topics
            .into_iter()
            .map(|record| {
                let keep = retention.history_for(&record.name);
                (
                    record.name.clone(),
                    Slot::new(TopicState::restore(record, keep)),
                )
            })
            .collect();
        Ok(Self {
            inner: Arc::new(Inner {
                retention,
                store,
                metrics,
                topics: Mutex::new(topics),
                remembered: Mutex::new(Memory::restore(loaded.remembered)),
                deliveries: OnceLock::new(),
            }),
        })
    }
}

impl Inner {
    fn slot(&self, name: &str) -> Arc<Slot> {
        self.topics
            .lock()
            .entry(name.to_owned())
            .or_insert_with(|| {
                Slot::new(TopicState::new(
                    name.to_owned(),
                    new_epoch(),
                    self.retention.history_for(name),
                ))
            })
            .clone()
    }

    /// Forgets a topic that was created by a follow or a refused write but never written,
    /// once nothing refers to it, so such names cannot pile up.
    fn release_if_unused(&self, name: &str) {
        let mut topics = self.topics.lock();
        // The map's own reference is the only one: no publisher holds the slot, and none can
        // take it while the map is locked.
        let unused = topics.get(name).is_some_and(|slot| {
            let topic = slot.topic.lock();
            Arc::strong_count(slot) == 1 && topic.offset == 0 && !topic.followed
        });
        if unused {
            topics.remove(name);
        }
    }

    async fn publish(&self, batch: Batch, key: Option<String>) -> Result<Outcome, PublishError> {
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
    ) -> Result<Outcome, PublishError> {
        let Some(key) = key else {
            let answer = self.apply_batch(batch, None).await?;
            return Ok(Outcome {
                answer,
                replayed: false,
            });
        };
        let fingerprint = idempotency::fingerprint(batch);
        match self.remembered.lock().recall(&key, &fingerprint) {
            Recall::New => {}
            Recall::Replay(answer) => {
                return Ok(Outcome {
                    answer,
                    replayed: true,
                })
            }
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
        result.map(|answer| Outcome {
            answer,
            replayed: false,
        })
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
        let now = now_ms();
        let mut prepared = Vec::with_capacity(groups.len());
        let mut results = Vec::with_capacity(groups.len());
        for (group, slot) in groups.iter().zip(&slots) {
            let topic = slot.topic.lock();
            let changes = group.plan(topic.entities(), topic.offset + 1, now)?;
            let ready = prepare(topic.head(), changes, &by, now);
            results.push(Published {
                topic: group.topic.clone(),
                epoch: topic.epoch,
                offset: ready.head(),
                offsets: ready.offsets(),
            });
            prepared.push(ready);
        }
        let answer = BatchPublished { results };

        let unit = WriteUnit {
            topics: prepared.iter().filter_map(to_write).collect(),
            remember: remember.map(|remember| remember(&answer)),
        };
        self.make_durable(unit)
            .await
            .map_err(|e| PublishError::Unavailable(unavailable(e)))?;
        for (ready, slot) in prepared.into_iter().zip(&slots) {
            self.apply(slot, ready);
        }
        Ok(answer)
    }

    /// Applies durable events to a topic, counts them, and delivers them if this instance
    /// follows the topic. Runs under the topic's writer lock, so deliveries keep offset
    /// order.
    fn apply(&self, slot: &Slot, prepared: Prepared) {
        let events = prepared.events.len() as u64;
        let (name, epoch) = (prepared.topic.clone(), prepared.epoch);
        let committed = slot.topic.lock().apply(prepared);
        self.metrics.events_published.inc_by(events);
        let deliveries = self.deliveries.get().and_then(Weak::upgrade);
        if let (Some(committed), Some(deliveries)) = (committed, deliveries) {
            deliveries.deliver(&name, epoch, &committed);
        }
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

    async fn expire_due(&self) -> Result<usize, EngineError> {
        let now = now_ms();
        let due: Vec<Arc<Slot>> = self
            .topics
            .lock()
            .values()
            .filter(|slot| {
                let topic = slot.topic.lock();
                topic.expiries.values().min().is_some_and(|at| *at <= now)
            })
            .cloned()
            .collect();
        let mut deleted = 0;
        let mut failure = None;
        for slot in due {
            let _one_publisher = slot.writer.lock().await;
            let prepared = {
                let topic = slot.topic.lock();
                let changes = plan::expired(topic.entities(), now);
                deleted += changes.len();
                let by = Authorship {
                    user_id: None,
                    trace_id: Some("ttl".into()),
                };
                prepare(topic.head(), changes, &by, now)
            };
            let unit = WriteUnit {
                topics: to_write(&prepared).into_iter().collect(),
                remember: None,
            };
            match self.make_durable(unit).await {
                Ok(()) => self.apply(&slot, prepared),
                Err(e) => failure = Some(unavailable(e)),
            }
        }
        self.remembered
            .lock()
            .forget_before(now.saturating_sub(REMEMBER_FOR_MS));
        failure.map_or(Ok(deleted), Err)
    }
}

impl Engine for Embedded {
    fn deliver_to(&self, deliveries: Weak<dyn Deliveries>) {
        let _ = self.inner.deliveries.set(deliveries);
    }

    fn publish(
        &self,
        batch: Batch,
        key: Option<String>,
    ) -> BoxFuture<'_, Result<Outcome, PublishError>> {
        let inner = self.inner.clone();
        to_the_end(async move { inner.publish(batch, key).await })
    }

    fn expire_due(&self) -> BoxFuture<'_, Result<usize, EngineError>> {
        Box::pin(self.inner.expire_due())
    }

    fn snapshot<'a>(
        &'a self,
        topic: &'a str,
    ) -> BoxFuture<'a, Result<Option<Snapshot>, EngineError>> {
        let slot = self.inner.topics.lock().get(topic).cloned();
        let snapshot = slot
            .map(|slot| slot.topic.lock().snapshot())
            .filter(|snapshot| snapshot.offset > 0);
        Box::pin(std::future::ready(Ok(snapshot)))
    }

    fn topics(&self) -> BoxFuture<'_, Result<Vec<TopicInfo>, EngineError>> {
        let slots: Vec<_> = self.inner.topics.lock().values().cloned().collect();
        let mut topics: Vec<TopicInfo> = slots
            .iter()
            .map(|slot| {
                let topic = slot.topic.lock();
                TopicInfo {
                    topic: topic.name.clone(),
                    epoch: topic.epoch,
                    offset: topic.offset,
                    entities: topic.state.len(),
                    changed_ms: topic.changed.values().max().copied(),
                }
            })
            .collect();
        topics.sort_by(|a, b| a.topic.cmp(&b.topic));
        Box::pin(std::future::ready(Ok(topics)))
    }

    fn follow<'a>(&'a self, topic: &'a str) -> BoxFuture<'a, Result<TopicCopy, EngineError>> {
        let slot = self.inner.slot(topic);
        let mut topic = slot.topic.lock();
        // Under the same lock as `apply`: every event after this copy is delivered.
        topic.followed = true;
        let copy = TopicCopy {
            name: topic.name.clone(),
            epoch: topic.epoch,
            offset: topic.offset,
            state: topic.state.clone(),
            changed: topic.changed.clone(),
            history: topic.history.iter().cloned().collect(),
            keep: topic.keep,
        };
        Box::pin(std::future::ready(Ok(copy)))
    }

    fn unfollow(&self, topic: &str) {
        let slot = self.inner.topics.lock().get(topic).cloned();
        if let Some(slot) = slot {
            slot.topic.lock().followed = false;
        }
        self.inner.release_if_unused(topic);
    }

    // The only instance: every viewer is its own, every screen its own to reload.
    fn instance_tag(&self) -> String {
        String::new()
    }

    fn share_presence(&self, _board: &str, _viewers: Vec<Viewer>) -> BoxFuture<'_, ()> {
        Box::pin(std::future::ready(()))
    }

    fn others_viewing<'a>(
        &'a self,
        _board: &'a str,
    ) -> BoxFuture<'a, Result<Vec<Viewer>, EngineError>> {
        Box::pin(std::future::ready(Ok(Vec::new())))
    }

    fn share_typing(&self, _typing: Typing) -> BoxFuture<'_, ()> {
        Box::pin(std::future::ready(()))
    }

    fn reload_elsewhere(&self, _within_ms: u64) -> BoxFuture<'_, ()> {
        Box::pin(std::future::ready(()))
    }

    fn census(
        &self,
        mine: InstanceReport,
    ) -> BoxFuture<'_, Result<Vec<InstanceReport>, EngineError>> {
        Box::pin(std::future::ready(Ok(vec![mine])))
    }

    fn health(&self) -> BoxFuture<'_, Result<(), EngineError>> {
        Box::pin(std::future::ready(Ok(())))
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        let closed = self.inner.store.close();
        Box::pin(async move {
            let _ = closed.await;
        })
    }
}
