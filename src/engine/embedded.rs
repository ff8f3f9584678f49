//! The embedded engine, for one instance: every topic in memory (for planning and reading),
//! made durable in SQLite ([`crate::store`]) before anything is acknowledged or delivered,
//! with an in-process bus: a commit hands its events to the hub directly.
//!
//! A publish runs in three steps: plan the ops and queue the events for the store, under the
//! topic's lock (so offsets are gapless and in order); wait, without the lock, until the
//! store has made them durable; then apply and deliver them, in offset order. The next
//! request to a topic is planned while the one before it commits, against what the writes
//! queued ahead will leave ([`Ahead`]), and the store commits the ones waiting together: one
//! busy topic is not one transaction per request. Only durable events are ever applied or
//! delivered, so a crash can never take back an event a client has seen; a write that
//! fails undoes the ones queued after it, which the store refuses because they were planned
//! on it.

use super::idempotency::{self, IdempotencyKey, Memory, Recall, REMEMBER_FOR_MS};
use super::plan::{self, Ahead, AheadEntity, Entities};
use super::write::{group, prepare, Authorship, Head, Prepared};
use super::{
    to_the_end, Committed, Deliveries, Engine, EngineError, InstanceReport, Outcome, PublishError,
    Retention, TopicCopy, TopicInfo, Viewer,
};
use crate::clock::now_ms;
use crate::encoded::EncodedFrame;
use crate::metrics::Metrics;
use crate::ops::{Batch, BatchPublished};
use crate::protocol::{EventKind, Snapshot, Typing};
use crate::store::{Durable, Remembered, Store, StoreError, TopicRecord, TopicWrite, WriteUnit};
use futures_util::future::BoxFuture;
use parking_lot::{Mutex, MutexGuard};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::ops::Range;
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// The embedded engine; cheap to clone.
#[derive(Clone)]
pub(crate) struct Embedded {
    inner: Arc<Inner>,
}

struct Inner {
    /// The epoch of every topic this process creates (one never stored: followed before
    /// its first write, or written for the first time). One for the process, so a topic
    /// forgotten while unwritten (its last subscriber dropped) and followed again keeps it,
    /// and a client that resumes from `(born, 0)` gets the events, not a snapshot; a
    /// restart picks a new one, as a topic unwritten then was not stored.
    born: u64,
    retention: Retention,
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    topics: Mutex<HashMap<String, Arc<Slot>>>,
    remembered: Mutex<Memory>,
    deliveries: OnceLock<Weak<dyn Deliveries>>,
}

/// One topic, and the order its durable writes apply in.
struct Slot {
    topic: Mutex<TopicState>,
    in_order: Mutex<InOrder>,
}

impl Slot {
    fn new(topic: TopicState) -> Arc<Self> {
        Arc::new(Self {
            in_order: Mutex::new(InOrder {
                delivered: topic.offset,
                applying: false,
                ready: BTreeMap::new(),
                after: Vec::new(),
            }),
            topic: Mutex::new(topic),
        })
    }
}

/// The durable writes of one topic that wait for those before them. Writes that commit
/// together become durable together, and whoever finds the next one in order applies it
/// and every one then ready after it, so a group applies in one pass. (A watch of the
/// delivered offset, which each writer's task waited on, woke every one of them at each
/// apply: a busy topic's group of n writes cost n² wake-ups.)
struct InOrder {
    /// The offset applied and delivered up to.
    delivered: u64,
    /// A task is applying: a write made ready now is its to apply.
    applying: bool,
    /// Durable writes with events, by the offset each was planned after.
    ready: BTreeMap<u64, Ready>,
    /// Writes with no events, by the offset they were planned after: each is answered once
    /// the writes before it have been delivered.
    after: Vec<(u64, oneshot::Sender<Turn>)>,
}

/// A durable write waiting for its turn, and its task.
struct Ready {
    prepared: Prepared,
    number: u64,
    told: oneshot::Sender<Turn>,
}

/// What a waiting write's task is told.
enum Turn {
    /// Another task applied and delivered it.
    Applied,
    /// It is next, and the task applying has done its share: this task applies it and goes on.
    Yours(Prepared, u64),
}

/// How many writes one task applies for others before it hands on to the next one's task,
/// so its own caller is not kept waiting behind a long run of other callers' writes.
const APPLY_FOR_OTHERS: usize = 64;

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
    /// The offset after the last write queued for the store: the next is planned after it.
    queued: u64,
    /// The entities the queued writes change, as they leave them.
    ahead: Ahead,
    /// The number the next queued write gets.
    next_write: u64,
    /// Writes undone with a failure: each was queued after (or is) one the store refused, so
    /// it was planned on it and the store refuses it too.
    undone: Range<u64>,
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
            queued: 0,
            ahead: Ahead::new(),
            next_write: 0,
            undone: 0..0,
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
            queued: record.offset,
            ahead: Ahead::new(),
            next_write: 0,
            undone: 0..0,
        }
    }

    fn entities(&self) -> Entities<'_> {
        Entities {
            payloads: &self.state,
            expiries: &self.expiries,
            ahead: &self.ahead,
        }
    }

    /// Where the next write is planned: after every write queued.
    fn head(&self) -> Head<'_> {
        Head {
            topic: &self.name,
            epoch: self.epoch,
            offset: self.queued,
            keep: self.keep,
        }
    }

    /// Records a write queued for the store; returns its number.
    fn queue(&mut self, prepared: &Prepared) -> u64 {
        let write = self.next_write;
        self.next_write += 1;
        self.queued = prepared.head();
        for (id, value) in prepared.finals() {
            let value = value.map(|(payload, expires_at)| (payload.clone(), expires_at));
            self.ahead
                .insert(id.to_owned(), AheadEntity { write, value });
        }
        write
    }

    /// Undoes a queued write the store refused, and with it every write queued after it.
    /// Refusals can arrive in any order: one queued before those already undone undoes
    /// again from itself.
    fn undo(&mut self, write: u64, base: u64) {
        if self.undone.contains(&write) {
            return;
        }
        self.ahead.retain(|_, ahead| ahead.write < write);
        self.queued = base;
        self.undone = write..self.next_write;
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
    fn apply(&mut self, prepared: Prepared, write: u64) -> Option<Vec<Committed>> {
        // What this write changed is now the state itself, unless a later write changed it.
        self.ahead.retain(|_, ahead| ahead.write != write);
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
        base: prepared.base,
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
    key: &'a IdempotencyKey,
    applied: Option<(String, BatchPublished, u64)>,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.memory.lock().settle(self.key, self.applied.take());
    }
}

/// The epoch of topics created from now: the time in milliseconds, so a topic that is
/// created again (its data dir wiped, or never stored) never reuses the offsets of an older
/// one.
fn new_epoch() -> u64 {
    now_ms().max(1)
}

fn unavailable(e: StoreError) -> EngineError {
    EngineError::Failed(e.to_string())
}

impl Embedded {
    /// An engine holding every topic the store has.
    pub(crate) fn open(
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
        let remembered = Memory::restore(loaded.remembered, retention.idempotency_keys);
        Ok(Self {
            inner: Arc::new(Inner {
                born: new_epoch(),
                retention,
                store,
                metrics,
                topics: Mutex::new(topics),
                remembered: Mutex::new(remembered),
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
                    self.born,
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
            Arc::strong_count(slot) == 1 && topic.queued == 0 && !topic.followed
        });
        if unused {
            topics.remove(name);
        }
    }

    async fn publish(
        &self,
        batch: Batch,
        key: Option<IdempotencyKey>,
    ) -> Result<Outcome, PublishError> {
        batch.check().map_err(PublishError::Shape)?;
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
        key: Option<IdempotencyKey>,
    ) -> Result<Outcome, PublishError> {
        let Some(key) = key else {
            let answer = self.apply_batch(batch, None).await?;
            return Ok(Outcome {
                answer,
                replayed: false,
            });
        };
        let fingerprint = idempotency::fingerprint(batch);
        let (recall, let_go) = self.remembered.lock().recall(&key, &fingerprint);
        match recall {
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
            key: key.stored(),
            fingerprint: fingerprint.clone(),
            response: serde_json::to_string(answer).unwrap_or_default(),
            created_ms,
            forget: let_go.clone(),
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
        let by = Authorship {
            user_id: batch.user_id.clone(),
            trace_id: batch.trace_id.clone(),
        };
        let now = now_ms();
        let (answer, queued) = {
            let mut topics = lock_all(&slots, |i| &groups[i].topic);
            let mut prepared = Vec::with_capacity(groups.len());
            let mut results = Vec::with_capacity(groups.len());
            for (group, topic) in groups.iter().zip(&topics) {
                let changes = group.plan(topic.entities(), topic.queued + 1, now)?;
                let ready = prepare(topic.head(), changes, &by, now);
                results.push(ready.published());
                prepared.push(ready);
            }
            let answer = BatchPublished { results };
            let remember = remember.map(|remember| remember(&answer));
            (answer, self.queue(&mut topics, &slots, prepared, remember))
        };
        self.finish(queued)
            .await
            .map_err(|e| PublishError::Unavailable(unavailable(e)))?;
        Ok(answer)
    }

    /// Queues prepared writes (one per slot, their topics locked) and an idempotency record
    /// for the store, as one unit.
    fn queue(
        &self,
        topics: &mut [MutexGuard<'_, TopicState>],
        slots: &[Arc<Slot>],
        prepared: Vec<Prepared>,
        remember: Option<Remembered>,
    ) -> QueuedUnit {
        let unit = WriteUnit {
            topics: prepared.iter().filter_map(to_write).collect(),
            remember,
        };
        let durable = (!unit.topics.is_empty() || unit.remember.is_some()).then(|| {
            let forget_before = now_ms().saturating_sub(REMEMBER_FOR_MS);
            self.store.write(unit, forget_before)
        });
        let writes = prepared
            .into_iter()
            .zip(slots)
            .zip(topics.iter_mut())
            .map(|((ready, slot), topic)| {
                // A write with no events changes nothing a later one is planned on.
                let number = (!ready.events.is_empty()).then(|| topic.queue(&ready));
                (slot.clone(), ready, number)
            })
            .collect();
        QueuedUnit { writes, durable }
    }

    /// Waits until a queued unit is durable, then applies and delivers each of its writes
    /// once every write before it on the same topic has been; or, if the store refused it,
    /// undoes it.
    async fn finish(&self, queued: QueuedUnit) -> Result<(), StoreError> {
        let outcome = match queued.durable {
            Some(durable) => durable
                .await
                .unwrap_or_else(|_| Err(StoreError("the store writer has stopped".into()))),
            None => Ok(()),
        };
        if let Err(e) = outcome {
            for (slot, ready, number) in queued.writes {
                if let Some(number) = number {
                    slot.topic.lock().undo(number, ready.base);
                }
            }
            return Err(e);
        }
        for (slot, ready, number) in queued.writes {
            self.apply_in_order(&slot, ready, number).await;
        }
        Ok(())
    }

    /// Applies and delivers a durable write once every write before it on its topic has been
    /// (by this task or another); returns when it is.
    async fn apply_in_order(&self, slot: &Slot, prepared: Prepared, number: Option<u64>) {
        let base = prepared.base;
        let (told, turn) = oneshot::channel();
        let apply_now = {
            let mut in_order = slot.in_order.lock();
            match number {
                // Nothing to apply: it only waits for the writes planned before it.
                None if in_order.delivered >= base => return,
                None => {
                    in_order.after.push((base, told));
                    false
                }
                Some(number) => {
                    in_order.ready.insert(
                        base,
                        Ready {
                            prepared,
                            number,
                            told,
                        },
                    );
                    !std::mem::replace(&mut in_order.applying, true)
                }
            }
        };
        if apply_now {
            self.apply_ready(slot, None);
        }
        // Never fails: whoever takes a write out of the queue tells its task.
        if let Ok(Turn::Yours(prepared, number)) = turn.await {
            self.apply_ready(slot, Some((prepared, number)));
        }
    }

    /// Applies `first`, then every ready write next in order, until none is or this task
    /// has done its share; then hands the next one to its own task.
    fn apply_ready(&self, slot: &Slot, mut first: Option<(Prepared, u64)>) {
        let mut applied = 0;
        loop {
            let (prepared, number, told) = match first.take() {
                Some((prepared, number)) => (prepared, number, None),
                None => {
                    let mut in_order = slot.in_order.lock();
                    let delivered = in_order.delivered;
                    let Some(next) = in_order.ready.remove(&delivered) else {
                        in_order.applying = false;
                        return;
                    };
                    if applied >= APPLY_FOR_OTHERS {
                        // `applying` stays set: the next one's task takes over.
                        let _ = next.told.send(Turn::Yours(next.prepared, next.number));
                        return;
                    }
                    (next.prepared, next.number, Some(next.told))
                }
            };
            let head = prepared.head();
            self.apply(slot, prepared, number);
            applied += 1;
            let mut in_order = slot.in_order.lock();
            in_order.delivered = head;
            if let Some(told) = told {
                let _ = told.send(Turn::Applied);
            }
            if !in_order.after.is_empty() {
                let (due, later) = std::mem::take(&mut in_order.after)
                    .into_iter()
                    .partition(|(base, _)| *base <= head);
                in_order.after = later;
                for (_, told) in due {
                    let _ = told.send(Turn::Applied);
                }
            }
        }
    }

    /// Applies a durable write to its topic, counts its events, and delivers them if this
    /// instance follows the topic.
    fn apply(&self, slot: &Slot, prepared: Prepared, number: u64) {
        let events = prepared.events.len() as u64;
        let (name, epoch) = (prepared.topic.clone(), prepared.epoch);
        let committed = slot.topic.lock().apply(prepared, number);
        self.metrics.events_published.inc_by(events);
        let deliveries = self.deliveries.get().and_then(Weak::upgrade);
        if let (Some(committed), Some(deliveries)) = (committed, deliveries) {
            deliveries.deliver(&name, epoch, &committed);
        }
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
        let by = Authorship {
            user_id: None,
            trace_id: Some("ttl".into()),
        };
        let mut deleted = 0;
        let mut failure = None;
        for slot in due {
            let slots = [slot];
            let queued = {
                let mut topic = [slots[0].topic.lock()];
                let changes = plan::expired(topic[0].entities(), now);
                deleted += changes.len();
                let prepared = prepare(topic[0].head(), changes, &by, now);
                self.queue(&mut topic, &slots, vec![prepared], None)
            };
            if let Err(e) = self.finish(queued).await {
                failure = Some(unavailable(e));
            }
        }
        self.remembered
            .lock()
            .forget_before(now.saturating_sub(REMEMBER_FOR_MS));
        failure.map_or(Ok(deleted), Err)
    }
}

/// Writes queued for the store as one unit: each with its slot and the number its topic
/// gave it (none for a write with no events), and the store's answer to come.
struct QueuedUnit {
    writes: Vec<(Arc<Slot>, Prepared, Option<u64>)>,
    durable: Option<Durable>,
}

/// Locks every slot's topic, in the order of their names (`name(i)` is slot `i`'s) so two
/// batches over the same topics can never each hold one the other waits for; returns the
/// guards in the slots' order.
fn lock_all<'a>(
    slots: &'a [Arc<Slot>],
    name: impl Fn(usize) -> &'a String,
) -> Vec<MutexGuard<'a, TopicState>> {
    let mut order: Vec<usize> = (0..slots.len()).collect();
    order.sort_by(|a, b| name(*a).cmp(name(*b)));
    let mut locked: Vec<(usize, MutexGuard<'a, TopicState>)> = order
        .into_iter()
        .map(|i| (i, slots[i].topic.lock()))
        .collect();
    locked.sort_by_key(|(i, _)| *i);
    locked.into_iter().map(|(_, guard)| guard).collect()
}

impl Engine for Embedded {
    fn deliver_to(&self, deliveries: Weak<dyn Deliveries>) {
        let _ = self.inner.deliveries.set(deliveries);
    }

    fn publish(
        &self,
        batch: Batch,
        key: Option<IdempotencyKey>,
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

    fn lease(&self, _lease: &str, _term: Duration) -> BoxFuture<'_, Result<bool, EngineError>> {
        Box::pin(std::future::ready(Ok(true)))
    }

    // Only this instance's hub holds marks: after a restart each source marks its topics
    // again at its first run.
    fn mark(&self, topic: &str, mark: Option<String>) -> BoxFuture<'_, Result<(), EngineError>> {
        if let Some(deliveries) = self.inner.deliveries.get().and_then(Weak::upgrade) {
            deliveries.marked(topic, mark);
        }
        Box::pin(std::future::ready(Ok(())))
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
