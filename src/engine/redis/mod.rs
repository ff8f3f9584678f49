//! The Redis engine, for several instances behind a load balancer: Redis is the authority for
//! every topic's epoch, offset, entities and bounded history, and the bus between instances.
//!
//! A write is planned in Rust against the topic as Redis holds it, then committed by one
//! script (`commit.lua`) that checks each topic still stands where the write was planned,
//! and applies, appends, advances and publishes atomically; a topic that moved in between
//! is read again and the write planned again. Each topic's keys share one hash tag
//! (`pb:{metric:kpis}:…`), so Redis Cluster could hold them later; a batch over several
//! topics then needs them in one slot.
//!
//! Keys, per topic: `:meta` (hash: epoch, offset, and `last`, the id of the commit that left
//! it there), `:state` (hash: entity → JSON payload), `:exp` (zset: entity → expiry, ms),
//! `:changed` (hash: entity → when it last changed, ms), `:log` (stream: id `offset-0`,
//! field `f` = the event frame); channel `:events` (the frames of one commit, one per line). Shared: `pb:topics`
//! (set of written topics), `pb:expiring` (zset: topic → its next expiry), `pb:idem:<owner>/<key>`
//! (a request's idempotency record), `pb:idem-of:<owner>` (zset: an API key's records → when
//! made, to keep its newest only), `pb:layout` (the version of this layout),
//! `pb:instances` (hash: instance → its latest [`InstanceReport`] as JSON), `pb:marks`
//! (topics marked as not updating, see [`marks`]), `pb:lease:<source>` (which instance runs
//! a pull source).
//!
//! [`bus`] follows topics over pub/sub and keeps each followed topic gapless; [`lane`] plans
//! one topic's next request while the ones before it commit, and sends their commits in
//! pipelines.

mod bus;
mod lane;
mod lease;
mod marks;
mod presence;

use super::plan::{self, Entities};
use super::write::{group, prepare, Authorship, Head, Prepared};
use super::{
    to_the_end, Deliveries, Engine, EngineError, InstanceReport, Outcome, PublishError, Retention,
    TopicCopy, TopicInfo, Viewer,
};
use crate::clock::now_ms;
use crate::engine::idempotency::{self, IdempotencyKey, REMEMBER_FOR_MS};
use crate::metrics::Metrics;
use crate::ops::{Batch, BatchPublished};
use crate::protocol::{Snapshot, Typing};
use bus::Bus;
use futures_util::future::BoxFuture;
use lane::{Lane, Planned};
use presence::Presence;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, Script, ScriptInvocation, Value};
use serde_json::Value as Json;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

/// The layout of the keys above; an instance refuses a Redis that holds a newer one.
const LAYOUT: u64 = 1;

/// An instance whose report is older than this has stopped: it leaves `pb:instances`.
const INSTANCE_GONE_MS: u64 = 10_000;

/// How long one command may take before the engine counts Redis as unreachable.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);

/// How often a write planned against a topic that moved meanwhile is planned again.
const ATTEMPTS: usize = 50;

/// How long a request with an idempotency key counts as in flight if its instance dies.
const IN_FLIGHT_MS: u64 = 60_000;

/// The Redis engine; cheap to clone.
#[derive(Clone)]
pub(crate) struct RedisEngine {
    inner: Arc<Inner>,
}

struct Inner {
    retention: Retention,
    metrics: Arc<Metrics>,
    commands: ConnectionManager,
    read: Script,
    commit: Script,
    release: Script,
    bus: Arc<Bus>,
    presence: Arc<Presence>,
    /// One planner per topic on this instance: requests here queue behind each other rather
    /// than collide in Redis and plan again. Only writers on other instances can collide.
    lanes: parking_lot::Mutex<HashMap<String, Arc<Lane>>>,
    leases: lease::Leases,
    /// What is wrong with how Redis keeps data, as last checked (see [`durability`]).
    durability: parking_lot::Mutex<Option<String>>,
}

/// What is wrong with how this Redis keeps data, if anything: an acknowledged write must
/// survive Redis restarting, which takes its append-only file (docs/scaling.md).
async fn durability(commands: &mut ConnectionManager) -> Option<String> {
    let answer: Result<Vec<String>, _> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("appendonly")
        .query_async(commands)
        .await;
    match answer {
        Ok(pair) if pair.get(1).is_some_and(|on| on == "yes") => None,
        Ok(_) => Some(
            "Redis has appendonly off: writes it acknowledged are lost if it restarts; \
             set `appendonly yes` (docs/scaling.md)"
                .into(),
        ),
        Err(e) => Some(format!(
            "could not ask Redis whether appendonly is on ({e}); make sure it is (docs/scaling.md)"
        )),
    }
}

/// One topic's keys.
pub(crate) struct Keys {
    meta: String,
    state: String,
    expiries: String,
    /// When each entity last changed: a hash of entity id → ms since the Unix epoch.
    changed: String,
    history: String,
}

impl Keys {
    pub(crate) fn of(topic: &str) -> Self {
        Keys {
            meta: format!("pb:{{{topic}}}:meta"),
            state: format!("pb:{{{topic}}}:state"),
            expiries: format!("pb:{{{topic}}}:exp"),
            changed: format!("pb:{{{topic}}}:changed"),
            history: format!("pb:{{{topic}}}:log"),
        }
    }
}

/// The pub/sub channel a topic's commits are published on.
pub(crate) fn channel(topic: &str) -> String {
    format!("pb:{{{topic}}}:events")
}

/// A topic's channel back to its name.
pub(crate) fn topic_of(channel: &str) -> Option<&str> {
    channel.strip_prefix("pb:{")?.strip_suffix("}:events")
}

/// Six random hex digits naming this instance among the others.
fn random_tag() -> String {
    format!("{:06x}", fastrand::u32(..0x0100_0000))
}

pub(crate) fn unreachable(e: impl std::fmt::Display) -> EngineError {
    EngineError::Unreachable(format!("redis: {e}"))
}

/// A topic as read from Redis.
pub(crate) struct Read {
    epoch: u64,
    offset: u64,
    /// The id of the commit that left the topic at this offset ('' before the first).
    last: String,
    state: BTreeMap<String, Json>,
    expiries: BTreeMap<String, u64>,
    changed: BTreeMap<String, u64>,
    history: Vec<(u64, String)>,
}

fn text(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(bytes) => String::from_utf8(bytes.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Int(n) => Some(n.to_string()),
        Value::Okay => Some("OK".into()),
        _ => None,
    }
}

fn items(value: &Value) -> &[Value] {
    match value {
        Value::Array(items) | Value::Set(items) => items,
        _ => &[],
    }
}

/// Reads the answer of `read.lua`.
fn parse_read(value: &Value) -> Result<Read, EngineError> {
    let bad = || EngineError::Failed("redis: an unexpected answer to a topic read".into());
    let parts = items(value);
    let number = |at: usize| -> Option<u64> { text(parts.get(at)?)?.parse().ok() };
    let (epoch, offset) = (number(0).ok_or_else(bad)?, number(1).unwrap_or(0));
    let mut state = BTreeMap::new();
    for pair in items(parts.get(2).ok_or_else(bad)?).chunks(2) {
        if let [id, payload] = pair {
            let (id, payload) = (text(id).ok_or_else(bad)?, text(payload).ok_or_else(bad)?);
            let payload = serde_json::from_str(&payload).map_err(|_| bad())?;
            state.insert(id, payload);
        }
    }
    let mut expiries = BTreeMap::new();
    for pair in items(parts.get(3).ok_or_else(bad)?).chunks(2) {
        if let [id, at] = pair {
            let at: f64 = text(at).and_then(|t| t.parse().ok()).ok_or_else(bad)?;
            expiries.insert(text(id).ok_or_else(bad)?, at as u64);
        }
    }
    let mut changed = BTreeMap::new();
    for pair in items(parts.get(4).ok_or_else(bad)?).chunks(2) {
        if let [id, at] = pair {
            let at = text(at).and_then(|t| t.parse().ok()).ok_or_else(bad)?;
            changed.insert(text(id).ok_or_else(bad)?, at);
        }
    }
    let history = parse_history(parts.get(5).ok_or_else(bad)?)?;
    let last = parts.get(6).and_then(text).unwrap_or_default();
    Ok(Read {
        epoch,
        offset,
        last,
        state,
        expiries,
        changed,
        history,
    })
}

/// Reads `XRANGE` entries: (offset, frame).
pub(crate) fn parse_history(value: &Value) -> Result<Vec<(u64, String)>, EngineError> {
    let bad = || EngineError::Failed("redis: an unexpected history entry".into());
    items(value)
        .iter()
        .map(|entry| {
            let [id, fields] = items(entry) else {
                return Err(bad());
            };
            let offset = text(id)
                .and_then(|id| id.split_once('-')?.0.parse().ok())
                .ok_or_else(bad)?;
            let frame = items(fields)
                .chunks(2)
                .find(|pair| pair.first().and_then(text).as_deref() == Some("f"))
                .and_then(|pair| text(pair.get(1)?))
                .ok_or_else(bad)?;
            Ok((offset, frame))
        })
        .collect()
}

impl Read {
    fn entities(&self) -> Entities<'_> {
        Entities::committed(&self.state, &self.expiries)
    }
}

impl RedisEngine {
    /// Connects to Redis at `url`, checks its layout, and starts following topics over
    /// pub/sub. Fails if Redis cannot be reached now: an instance started against a Redis
    /// that is not there says so rather than serving nothing.
    pub(crate) async fn open(
        url: &str,
        retention: Retention,
        metrics: Arc<Metrics>,
    ) -> Result<Self, EngineError> {
        let client = redis::Client::open(url).map_err(|e| EngineError::Failed(e.to_string()))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(COMMAND_TIMEOUT))
            .set_response_timeout(Some(COMMAND_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let mut commands = client
            .get_connection_manager_with_config(config)
            .await
            .map_err(unreachable)?;
        let layout: Option<u64> = commands.get("pb:layout").await.map_err(unreachable)?;
        match layout {
            Some(found) if found > LAYOUT => {
                return Err(EngineError::Failed(format!(
                    "this Redis holds Pulseboard's key layout {found}, newer than this version's \
                     {LAYOUT}: run the newer version, or give this one another Redis"
                )))
            }
            Some(_) => {}
            None => {
                let _: () = commands
                    .set("pb:layout", LAYOUT)
                    .await
                    .map_err(unreachable)?;
            }
        }
        let read = Script::new(include_str!("read.lua"));
        let instance = random_tag();
        let bus = Bus::start(
            client,
            commands.clone(),
            read.clone(),
            retention.clone(),
            instance.clone(),
            metrics.clone(),
        );
        // An instance that says it is listening hears the others already: a reload or a
        // viewer announced just after it started reaches it. Bounded: a slow pub/sub
        // connection catches up by itself, and `/healthz` says so meanwhile.
        let hearing = tokio::time::Instant::now() + COMMAND_TIMEOUT;
        while bus.health().is_err() && tokio::time::Instant::now() < hearing {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let durability = durability(&mut commands).await;
        if let Some(problem) = &durability {
            tracing::warn!("{problem}");
        }
        let presence = Arc::new(Presence::new(commands.clone(), instance));
        tokio::spawn(presence::keep_fresh(
            Arc::downgrade(&presence),
            Arc::downgrade(&bus),
        ));
        Ok(Self {
            inner: Arc::new(Inner {
                retention,
                metrics,
                commands,
                read,
                commit: Script::new(include_str!("commit.lua")),
                release: Script::new(RELEASE),
                bus,
                presence,
                lanes: parking_lot::Mutex::default(),
                durability: parking_lot::Mutex::new(durability),
                leases: lease::Leases::new(),
            }),
        })
    }
}

/// What a commit script answered.
enum Committed {
    Done,
    /// A topic moved since it was read.
    Moved,
    /// The request's idempotency claim is no longer its own (it expired and was taken).
    ClaimLost,
}

/// A request's idempotency record: its key, the claim it holds on it, and the answer that
/// replaces the claim.
#[derive(Default)]
struct Record {
    key: String,
    claim: String,
    value: String,
}

/// Deletes a claim only if it is still the one given: never another request's, never an
/// answer.
const RELEASE: &str =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0";

impl Inner {
    /// A topic as Redis holds it, created (with a new epoch) if it never was.
    async fn read(&self, topic: &str, with_history: bool) -> Result<Read, EngineError> {
        read_topic(&self.commands, &self.read, topic, with_history).await
    }

    async fn publish(
        &self,
        batch: Batch,
        key: Option<IdempotencyKey>,
    ) -> Result<Outcome, PublishError> {
        batch.check().map_err(PublishError::Shape)?;
        let started = Instant::now();
        let result = match key {
            None => self.apply_batch(&batch, None).await.map(|answer| Outcome {
                answer,
                replayed: false,
            }),
            Some(key) => self.publish_once(&batch, &key).await,
        };
        self.metrics
            .publish_seconds
            .observe(started.elapsed().as_secs_f64());
        result
    }

    /// A publish with an idempotency key: the key is claimed in Redis first (`inflight`),
    /// so a retry sent to another instance meanwhile is told it is in flight; the commit
    /// replaces the claim with the answer, atomically with the writes.
    async fn publish_once(
        &self,
        batch: &Batch,
        key: &IdempotencyKey,
    ) -> Result<Outcome, PublishError> {
        let fingerprint = idempotency::fingerprint(batch);
        let record = format!("pb:idem:{}", key.stored());
        let claim = format!("inflight|{fingerprint}");
        let mut commands = self.commands.clone();
        let unavailable = |e| PublishError::Unavailable(unreachable(e));
        // Claimed, or what holds the key instead; the record can expire between the two
        // commands, so the claim is tried again then.
        let mut seen: Option<String> = None;
        for _ in 0..3 {
            let claimed: Option<String> = redis::cmd("SET")
                .arg(&record)
                .arg(&claim)
                .arg("NX")
                .arg("PX")
                .arg(IN_FLIGHT_MS)
                .query_async(&mut commands)
                .await
                .map_err(unavailable)?;
            if claimed.is_some() {
                seen = None;
                break;
            }
            seen = commands.get(&record).await.map_err(unavailable)?;
            if seen.is_some() {
                break;
            }
        }
        if let Some(seen) = seen {
            let mut parts = seen.splitn(3, '|');
            return match (parts.next(), parts.next(), parts.next()) {
                (Some("done"), Some(seen), Some(answer)) if seen == fingerprint => {
                    let answer = serde_json::from_str(answer).map_err(|e| {
                        PublishError::Unavailable(EngineError::Failed(e.to_string()))
                    })?;
                    Ok(Outcome {
                        answer,
                        replayed: true,
                    })
                }
                (Some("inflight"), Some(seen), _) if seen == fingerprint => {
                    Err(PublishError::KeyInFlight)
                }
                _ => Err(PublishError::KeyReused),
            };
        }
        self.keep_within_bound(&key.owner, &record).await;
        let result = self
            .apply_batch(batch, Some((&record, &fingerprint, &claim)))
            .await;
        // Refused before anything was committed: a retry may try again at once. Whether an
        // unavailable engine committed is not known: the claim stays until it expires, and a
        // retry meanwhile is told the request is in flight.
        if matches!(
            result,
            Err(PublishError::Refused { .. } | PublishError::Shape(_))
        ) {
            let _: Result<i64, _> = self
                .release
                .key(&record)
                .arg(&claim)
                .invoke_async(&mut commands)
                .await;
        }
        result.map(|answer| Outcome {
            answer,
            replayed: false,
        })
    }

    /// Lists a newly claimed key among its owner's (`pb:idem-of:{owner}`, by time) and lets
    /// go of the owner's oldest past the bound. Best effort: a failure here leaves a few
    /// keys more, for a day at most.
    async fn keep_within_bound(&self, owner: &str, record: &str) {
        let mut commands = self.commands.clone();
        let owned = format!("pb:idem-of:{owner}");
        let now = now_ms();
        let counted: Result<(i64, i64, i64, i64), _> = redis::pipe()
            .zadd(&owned, record, now)
            .zrembyscore(&owned, "-inf", now.saturating_sub(REMEMBER_FOR_MS))
            .pexpire(&owned, REMEMBER_FOR_MS as i64)
            .zcard(&owned)
            .query_async(&mut commands)
            .await;
        let Ok((_, _, _, held)) = counted else { return };
        let over = held - self.retention.idempotency_keys as i64;
        if over <= 0 {
            return;
        }
        let oldest: Vec<String> = match commands.zrange(&owned, 0, over as isize - 1).await {
            Ok(oldest) => oldest,
            Err(_) => return,
        };
        let mut pipe = redis::pipe();
        for old in &oldest {
            pipe.del(old).ignore().zrem(&owned, old).ignore();
        }
        let _: Result<(), _> = pipe.query_async(&mut commands).await;
    }

    async fn apply_batch(
        &self,
        batch: &Batch,
        idempotency: Option<(&str, &str, &str)>,
    ) -> Result<BatchPublished, PublishError> {
        let groups = group(batch);
        let by = Authorship {
            user_id: batch.user_id.clone(),
            trace_id: batch.trace_id.clone(),
        };
        // In name order, so two batches over the same topics never each hold one the other
        // waits for.
        let mut names: Vec<&str> = groups.iter().map(|g| g.topic.as_str()).collect();
        names.sort_unstable();
        let lanes: Vec<_> = names.iter().map(|name| self.lane(name)).collect();
        let result = match (&groups[..], &lanes[..]) {
            ([group], [lane]) => self.commit_in_lane(lane, group, &by, idempotency).await,
            _ => {
                // A batch over several topics commits alone, each lane held from reading to
                // committing; their planned copies are read afresh afterwards.
                let mut held = Vec::with_capacity(lanes.len());
                for lane in &lanes {
                    held.push(lane.ahead.lock().await);
                }
                let result = self.commit_planned(&groups, &by, idempotency).await;
                for ahead in &mut held {
                    ahead.topic = None;
                }
                result
            }
        };
        drop(lanes);
        for name in names {
            self.release_lane(name);
        }
        result
    }

    /// The lane of a topic's writes from this instance.
    fn lane(&self, topic: &str) -> Arc<Lane> {
        self.lanes
            .lock()
            .entry(topic.to_owned())
            .or_insert_with(|| Lane::start(self.commands.clone(), self.commit.clone()))
            .clone()
    }

    /// Forgets a topic's lane (and stops its committer) once no request holds it.
    fn release_lane(&self, topic: &str) {
        let mut lanes = self.lanes.lock();
        if lanes.get(topic).is_some_and(|l| Arc::strong_count(l) == 1) {
            lanes.remove(topic);
        }
    }

    /// Plans a one-topic request against the topic as the commits queued before it leave it,
    /// queues its commit and waits for the answer; planning again when it was refused
    /// because the topic moved.
    async fn commit_in_lane(
        &self,
        lane: &Lane,
        group: &super::write::Grouped,
        by: &Authorship,
        idempotency: Option<(&str, &str, &str)>,
    ) -> Result<BatchPublished, PublishError> {
        for attempt in 0..ATTEMPTS {
            let now = now_ms();
            let (answer, generation, committed) = {
                let mut ahead = lane.ahead.lock().await;
                if ahead.topic.is_none() {
                    let read = self
                        .read(&group.topic, false)
                        .await
                        .map_err(PublishError::Unavailable)?;
                    ahead.generation += 1;
                    ahead.topic = Some(Planned {
                        epoch: read.epoch,
                        offset: read.offset,
                        last: read.last,
                        state: read.state,
                        expiries: read.expiries,
                    });
                }
                let generation = ahead.generation;
                let Some(topic) = ahead.topic.as_mut() else {
                    unreachable!("read just above")
                };
                let entities = Entities::committed(&topic.state, &topic.expiries);
                let ready = self.plan(group, entities, (topic.epoch, topic.offset), by, now)?;
                let answer = BatchPublished {
                    results: vec![ready.published()],
                };
                let call = CommitCall::new(
                    std::slice::from_ref(&ready),
                    std::slice::from_ref(&topic.last),
                    record(idempotency, &answer),
                );
                topic.advance(&ready, call.ids[0].clone());
                (answer, generation, lane.commit(call))
            };
            let committed = committed
                .await
                .unwrap_or_else(|_| Err(EngineError::Failed("the commit was dropped".into())));
            match lane::committed(committed) {
                Ok(Committed::Done) => {
                    let events = answer.results[0].offsets.len() as u64;
                    self.metrics.events_published.inc_by(events);
                    return Ok(answer);
                }
                Ok(Committed::Moved) => {
                    lane.forget(generation).await;
                    self.metrics.replans.inc();
                    let pause = fastrand::u64(0..=(attempt as u64 + 1) * 2);
                    tokio::time::sleep(Duration::from_millis(pause)).await;
                }
                Ok(Committed::ClaimLost) => {
                    lane.forget(generation).await;
                    return Err(claim_lost());
                }
                Err(e) => {
                    // Whether it committed is not known: plan the next one against Redis.
                    lane.forget(generation).await;
                    return Err(PublishError::Unavailable(e));
                }
            }
        }
        Err(kept_moving())
    }

    /// Plans the groups against the topics as Redis holds them and commits them, planning
    /// again when another instance wrote first.
    async fn commit_planned(
        &self,
        groups: &[super::write::Grouped],
        by: &Authorship,
        idempotency: Option<(&str, &str, &str)>,
    ) -> Result<BatchPublished, PublishError> {
        for attempt in 0..ATTEMPTS {
            let now = now_ms();
            let mut prepared = Vec::with_capacity(groups.len());
            let mut results = Vec::with_capacity(groups.len());
            let mut afters = Vec::with_capacity(groups.len());
            for group in groups {
                let topic = self
                    .read(&group.topic, false)
                    .await
                    .map_err(PublishError::Unavailable)?;
                afters.push(topic.last.clone());
                let at = (topic.epoch, topic.offset);
                let ready = self.plan(group, topic.entities(), at, by, now)?;
                results.push(ready.published());
                prepared.push(ready);
            }
            let answer = BatchPublished { results };
            let record = record(idempotency, &answer);
            match self
                .commit(&prepared, &afters, record)
                .await
                .map_err(PublishError::Unavailable)?
            {
                Committed::Done => {
                    let events: usize = prepared.iter().map(|p| p.events.len()).sum();
                    self.metrics.events_published.inc_by(events as u64);
                    return Ok(answer);
                }
                Committed::ClaimLost => return Err(claim_lost()),
                Committed::Moved => {
                    self.metrics.replans.inc();
                    // Another instance wrote first: read again, plan again, after a moment
                    // that grows with the attempts so writers do not keep colliding.
                    let pause = fastrand::u64(0..=(attempt as u64 + 1) * 2);
                    tokio::time::sleep(Duration::from_millis(pause)).await;
                }
            }
        }
        Err(kept_moving())
    }

    /// Plans a topic's ops against its entities at `(epoch, offset)`, ready to commit.
    fn plan(
        &self,
        group: &super::write::Grouped,
        entities: Entities<'_>,
        (epoch, offset): (u64, u64),
        by: &Authorship,
        now: u64,
    ) -> Result<Prepared, PublishError> {
        let changes = group.plan(entities, offset + 1, now)?;
        let head = Head {
            topic: &group.topic,
            epoch,
            offset,
            keep: self.retention.history_for(&group.topic),
        };
        Ok(prepare(head, changes, by, now))
    }

    /// Runs the commit script for prepared writes, with the request's idempotency record.
    async fn commit(
        &self,
        prepared: &[Prepared],
        afters: &[String],
        record: Option<Record>,
    ) -> Result<Committed, EngineError> {
        let call = CommitCall::new(prepared, afters, record);
        let mut commands = self.commands.clone();
        let answer: Value = call
            .invocation(&self.commit)
            .invoke_async(&mut commands)
            .await
            .map_err(unreachable)?;
        committed(&answer)
    }

    async fn expire_due(&self) -> Result<usize, EngineError> {
        let now = now_ms();
        let mut commands = self.commands.clone();
        let due: Vec<String> = commands
            .zrangebyscore("pb:expiring", "-inf", now)
            .await
            .map_err(unreachable)?;
        let mut deleted = 0;
        for topic in due {
            // Every instance may expire the same topic; the commit's check makes one of
            // them do it, and the others find nothing left to delete.
            for _ in 0..ATTEMPTS {
                let read = self.read(&topic, false).await?;
                let changes = plan::expired(read.entities(), now);
                if changes.is_empty() {
                    break;
                }
                let head = Head {
                    topic: &topic,
                    epoch: read.epoch,
                    offset: read.offset,
                    keep: self.retention.history_for(&topic),
                };
                let by = Authorship {
                    user_id: None,
                    trace_id: Some("ttl".into()),
                };
                let count = changes.len();
                let prepared = prepare(head, changes, &by, now);
                let after = std::slice::from_ref(&read.last);
                if let Committed::Done = self
                    .commit(std::slice::from_ref(&prepared), after, None)
                    .await?
                {
                    deleted += count;
                    self.metrics.events_published.inc_by(count as u64);
                    break;
                }
            }
        }
        Ok(deleted)
    }
}

/// The request's record (key, claim, value), which replaces its claim in the same commit.
fn record(idempotency: Option<(&str, &str, &str)>, answer: &BatchPublished) -> Option<Record> {
    idempotency.map(|(key, fingerprint, claim)| {
        let response = serde_json::to_string(answer).unwrap_or_default();
        Record {
            key: key.to_owned(),
            claim: claim.to_owned(),
            value: format!("done|{fingerprint}|{response}"),
        }
    })
}

fn claim_lost() -> PublishError {
    PublishError::Unavailable(EngineError::Failed(
        "the request's idempotency key was claimed anew while it waited; retry".into(),
    ))
}

fn kept_moving() -> PublishError {
    PublishError::Unavailable(EngineError::Failed(format!(
        "the topics kept changing under {ATTEMPTS} attempts to write them; retry"
    )))
}

/// The keys and arguments of one run of `commit.lua`, for prepared writes and the request's
/// idempotency record (see the script for their order).
pub(crate) struct CommitCall {
    keys: Vec<String>,
    args: Vec<String>,
    /// Each write's commit id, in the order of the writes: what the topic's `last` becomes.
    ids: Vec<String>,
}

impl CommitCall {
    /// `afters[i]` is the commit `prepared[i]` was planned after (its topic's `last`).
    fn new(prepared: &[Prepared], afters: &[String], record: Option<Record>) -> Self {
        let mut keys = Vec::with_capacity(prepared.len() * 5 + 3);
        for write in prepared {
            let topic = Keys::of(&write.topic);
            keys.extend([
                topic.meta,
                topic.state,
                topic.expiries,
                topic.changed,
                topic.history,
            ]);
        }
        let record = record.unwrap_or_default();
        keys.push("pb:topics".into());
        keys.push("pb:expiring".into());
        keys.push(if record.key.is_empty() {
            "pb:idem:".into()
        } else {
            record.key
        });
        let mut args = vec![
            prepared.len().to_string(),
            record.value,
            (REMEMBER_FOR_MS / 1000).to_string(),
            record.claim,
        ];
        let mut ids = Vec::with_capacity(prepared.len());
        for (write, after) in prepared.iter().zip(afters) {
            let id = format!("{:016x}", fastrand::u64(..));
            let finals = write.finals();
            let (upserts, deletes): (Vec<_>, Vec<_>) =
                finals.iter().partition(|(_, value)| value.is_some());
            args.extend([
                write.topic.clone(),
                write.epoch.to_string(),
                write.base.to_string(),
                after.clone(),
                id.clone(),
                write.keep.to_string(),
                write.at_ms.to_string(),
                upserts.len().to_string(),
                deletes.len().to_string(),
                write.events.len().to_string(),
            ]);
            for (id, value) in &upserts {
                let Some((payload, expires_at)) = value else {
                    continue;
                };
                args.extend([
                    id.to_string(),
                    payload.to_string(),
                    expires_at.map(|at| at.to_string()).unwrap_or_default(),
                ]);
            }
            args.extend(deletes.iter().map(|(id, _)| id.to_string()));
            let mut message = String::new();
            for (offset, _, frame) in &write.events {
                args.extend([offset.to_string(), frame.as_str().to_owned()]);
                if !message.is_empty() {
                    message.push('\n');
                }
                message.push_str(frame.as_str());
            }
            args.push(message);
            ids.push(id);
        }
        CommitCall { keys, args, ids }
    }

    fn invocation<'s>(&self, script: &'s Script) -> ScriptInvocation<'s> {
        let mut invocation = script.prepare_invoke();
        for key in &self.keys {
            invocation.key(key);
        }
        for arg in &self.args {
            invocation.arg(arg);
        }
        invocation
    }
}

/// Reads what the commit script answered.
fn committed(answer: &Value) -> Result<Committed, EngineError> {
    match items(answer).first().and_then(text).as_deref() {
        Some("ok") => Ok(Committed::Done),
        Some("conflict") => Ok(Committed::Moved),
        Some("claim_lost") => Ok(Committed::ClaimLost),
        _ => Err(EngineError::Failed(format!(
            "redis: an unexpected answer to a commit: {answer:?}"
        ))),
    }
}

/// Runs `read.lua` for one topic.
pub(crate) async fn read_topic(
    commands: &ConnectionManager,
    read: &Script,
    topic: &str,
    with_history: bool,
) -> Result<Read, EngineError> {
    let keys = Keys::of(topic);
    let mut commands = commands.clone();
    let answer: Value = read
        .key(keys.meta)
        .key(keys.state)
        .key(keys.expiries)
        .key(keys.changed)
        .key(keys.history)
        .arg(now_ms().max(1))
        .arg(if with_history { "1" } else { "0" })
        .invoke_async(&mut commands)
        .await
        .map_err(unreachable)?;
    parse_read(&answer)
}

impl Read {
    /// The copy a follower starts from.
    pub(crate) fn into_copy(self, name: &str, keep: usize) -> TopicCopy {
        TopicCopy {
            name: name.to_owned(),
            epoch: self.epoch,
            offset: self.offset,
            state: self.state,
            changed: self.changed,
            history: self
                .history
                .into_iter()
                .map(|(offset, frame)| (offset, frame.into()))
                .collect(),
            keep,
        }
    }
}

impl Engine for RedisEngine {
    fn deliver_to(&self, deliveries: Weak<dyn Deliveries>) {
        self.inner.bus.deliver_to(deliveries);
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
        Box::pin(async move {
            let read = self.inner.read(topic, false).await?;
            Ok((read.offset > 0).then(|| Snapshot {
                topic: topic.to_owned(),
                epoch: read.epoch,
                offset: read.offset,
                state: read.state,
                changed: read.changed,
            }))
        })
    }

    fn topics(&self) -> BoxFuture<'_, Result<Vec<TopicInfo>, EngineError>> {
        Box::pin(async move {
            let mut commands = self.inner.commands.clone();
            let mut names: Vec<String> =
                commands.smembers("pb:topics").await.map_err(unreachable)?;
            names.sort();
            if names.is_empty() {
                return Ok(Vec::new());
            }
            // Three round trips whatever the number of topics: one pipeline per kind of
            // answer, so each decodes as one type.
            let keys: Vec<Keys> = names.iter().map(|topic| Keys::of(topic)).collect();
            let (mut positions, mut sizes, mut changes) =
                (redis::pipe(), redis::pipe(), redis::pipe());
            for keys in &keys {
                positions
                    .cmd("HMGET")
                    .arg(&keys.meta)
                    .arg("epoch")
                    .arg("offset");
                sizes.hlen(&keys.state);
                changes.hvals(&keys.changed);
            }
            let positions: Vec<(Option<u64>, Option<u64>)> = positions
                .query_async(&mut commands)
                .await
                .map_err(unreachable)?;
            let sizes: Vec<usize> = sizes
                .query_async(&mut commands)
                .await
                .map_err(unreachable)?;
            let changes: Vec<Vec<u64>> = changes
                .query_async(&mut commands)
                .await
                .map_err(unreachable)?;
            let topics = names
                .into_iter()
                .zip(positions)
                .zip(sizes.into_iter().zip(changes))
                .map(
                    |((topic, (epoch, offset)), (entities, changed))| TopicInfo {
                        topic,
                        epoch: epoch.unwrap_or_default(),
                        offset: offset.unwrap_or_default(),
                        entities,
                        changed_ms: changed.into_iter().max(),
                    },
                )
                .collect();
            Ok(topics)
        })
    }

    fn follow<'a>(&'a self, topic: &'a str) -> BoxFuture<'a, Result<TopicCopy, EngineError>> {
        Box::pin(self.inner.bus.follow(topic))
    }

    fn unfollow(&self, topic: &str) {
        self.inner.bus.unfollow(topic);
    }

    fn instance_tag(&self) -> String {
        self.inner.presence.instance.clone()
    }

    fn share_presence(&self, board: &str, viewers: Vec<Viewer>) -> BoxFuture<'_, ()> {
        let board = board.to_owned();
        Box::pin(async move {
            if let Err(e) = self.inner.presence.share(&board, viewers).await {
                tracing::warn!(board, "sharing who views the board: {e}");
            }
        })
    }

    fn others_viewing<'a>(
        &'a self,
        board: &'a str,
    ) -> BoxFuture<'a, Result<Vec<Viewer>, EngineError>> {
        Box::pin(self.inner.presence.others(board))
    }

    fn share_typing(&self, typing: Typing) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if let Err(e) = self.inner.presence.typing(&typing).await {
                tracing::warn!(
                    board = typing.board,
                    "telling the other instances of typing: {e}"
                );
            }
        })
    }

    fn reload_elsewhere(&self, within_ms: u64) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if let Err(e) = self.inner.presence.reload(within_ms).await {
                tracing::warn!("asking the other instances to reload their screens: {e}");
            }
        })
    }

    fn lease(&self, lease: &str, term: Duration) -> BoxFuture<'_, Result<bool, EngineError>> {
        let lease = lease.to_owned();
        Box::pin(async move {
            let inner = &self.inner;
            inner
                .leases
                .hold(&inner.commands, &inner.presence.instance, &lease, term)
                .await
        })
    }

    fn mark(&self, topic: &str, mark: Option<String>) -> BoxFuture<'_, Result<(), EngineError>> {
        let change = marks::MarkChange {
            topic: topic.to_owned(),
            mark,
        };
        Box::pin(async move {
            let instance = &self.inner.presence.instance;
            marks::mark(&self.inner.commands, instance, &change).await?;
            if let Some(deliveries) = self.inner.bus.deliveries() {
                deliveries.marked(&change.topic, change.mark);
            }
            Ok(())
        })
    }

    fn census(
        &self,
        mine: InstanceReport,
    ) -> BoxFuture<'_, Result<Vec<InstanceReport>, EngineError>> {
        Box::pin(async move {
            let mut commands = self.inner.commands.clone();
            let json = serde_json::to_string(&mine).unwrap_or_default();
            let _: () = commands
                .hset("pb:instances", &mine.instance, json)
                .await
                .map_err(unreachable)?;
            let all: HashMap<String, String> = commands
                .hgetall("pb:instances")
                .await
                .map_err(unreachable)?;
            let mut live = Vec::new();
            for (instance, json) in all {
                match serde_json::from_str::<InstanceReport>(&json) {
                    Ok(report) if report.seen_ms + INSTANCE_GONE_MS >= mine.seen_ms => {
                        live.push(report)
                    }
                    _ => {
                        let _: () = commands
                            .hdel("pb:instances", &instance)
                            .await
                            .map_err(unreachable)?;
                    }
                }
            }
            live.sort_by(|a, b| a.instance.cmp(&b.instance));
            Ok(live)
        })
    }

    fn warnings(&self) -> Vec<String> {
        self.inner.durability.lock().iter().cloned().collect()
    }

    fn health(&self) -> BoxFuture<'_, Result<(), EngineError>> {
        Box::pin(async move {
            let mut commands = self.inner.commands.clone();
            let pong: String = redis::cmd("PING")
                .query_async(&mut commands)
                .await
                .map_err(unreachable)?;
            self.inner.bus.health()?;
            // An operator may turn it on (or off) while instances run.
            let now = durability(&mut commands).await;
            let mut was = self.inner.durability.lock();
            if *was != now {
                match &now {
                    Some(problem) => tracing::warn!("{problem}"),
                    None => tracing::info!("Redis keeps an append-only file again"),
                }
                *was = now;
            }
            drop(was);
            (pong == "PONG")
                .then_some(())
                .ok_or_else(|| unreachable("PING was not answered PONG"))
        })
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        // Every commit is Redis's already; nothing is waiting here.
        Box::pin(std::future::ready(()))
    }
}
