//! The engine: what a topic *is*, whichever instance asks — its epoch, its offset, its
//! entities and its bounded history — and the writes that change it: a batch of ops planned
//! against the current state and committed whole or not at all, once per idempotency key.
//!
//! Who on an instance follows a topic is not the engine's business but the hub's
//! ([`crate::hub`]): the hub follows a topic for its local subscribers ([`Engine::follow`]),
//! and the engine hands every event committed after that to the hub's [`Deliveries`], in
//! offset order, each encoded once. Callers (`/ws`, `/sse`, the HTTP API, the demo feed)
//! publish and read through [`Engine`] and never know which one runs.
//!
//! - [`plan`]: ops → entity changes against a topic's state (touches nothing);
//! - [`idempotency`]: requests already applied, and their answers;
//! - [`embedded`]: the engine of one instance: topics in memory, made durable in SQLite,
//!   with an in-process bus;
//! - [`redis`]: the engine of several instances: topics in Redis, committed by a script,
//!   followed over pub/sub.

pub(crate) mod embedded;
pub(crate) mod idempotency;
pub mod plan;
pub(crate) mod redis;
mod write;

use crate::encoded::EncodedFrame;
use crate::names::pattern_matches;
use crate::ops::{Batch, BatchError, BatchPublished, MAX_OPS_PER_REQUEST, MAX_TOPICS_PER_BATCH};
use crate::protocol::{EventKind, Snapshot, Typing};
use futures_util::future::BoxFuture;
use idempotency::IdempotencyKey;
use plan::OpError;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Weak;
use std::time::Duration;

/// What the engine keeps: events per topic for resuming subscribers, and idempotency keys
/// per API key.
#[derive(Debug, Clone)]
pub(crate) struct Retention {
    /// Events kept per topic.
    pub(crate) history: usize,
    /// Topics that keep a different number: (pattern, events). A pattern ending in `*`
    /// matches any topic starting with what precedes it; the longest match wins.
    pub(crate) patterns: Vec<(String, usize)>,
    /// Idempotency keys remembered per API key (see [`idempotency`]).
    pub(crate) idempotency_keys: usize,
}

impl Retention {
    /// How many events `topic` keeps.
    pub(crate) fn history_for(&self, topic: &str) -> usize {
        self.patterns
            .iter()
            .filter(|(pattern, _)| pattern_matches(pattern, topic))
            .max_by_key(|(pattern, _)| pattern.len())
            .map_or(self.history, |(_, events)| *events)
    }
}

/// One committed event: what a follower's copy of the topic needs to apply it, and the
/// frame every subscriber is sent.
#[derive(Debug, Clone)]
pub(crate) struct Committed {
    pub(crate) offset: u64,
    pub(crate) kind: EventKind,
    pub(crate) entity_id: String,
    pub(crate) payload: Value,
    /// When it was made, ms since the Unix epoch.
    pub(crate) at_ms: u64,
    pub(crate) frame: EncodedFrame,
}

/// A topic as the engine holds it when an instance starts following it.
#[derive(Debug, Clone)]
pub(crate) struct TopicCopy {
    pub(crate) name: String,
    pub(crate) epoch: u64,
    pub(crate) offset: u64,
    pub(crate) state: BTreeMap<String, Value>,
    /// When each entity last changed, ms since the Unix epoch (where known: entities written
    /// before change times were kept have none).
    pub(crate) changed: BTreeMap<String, u64>,
    /// The newest events, oldest first, with their offsets.
    pub(crate) history: Vec<(u64, EncodedFrame)>,
    /// How many events the topic keeps.
    pub(crate) keep: usize,
}

/// A topic's name, position and size, for listings.
#[derive(Debug, Clone)]
pub(crate) struct TopicInfo {
    pub(crate) topic: String,
    pub(crate) epoch: u64,
    pub(crate) offset: u64,
    pub(crate) entities: usize,
    /// When an entity of it last changed (ms since the Unix epoch), if any is known to have.
    pub(crate) changed_ms: Option<u64>,
}

/// What one instance says of itself, every second, for the admin view: the instances an
/// operator runs, each with its connections and health.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub(crate) struct InstanceReport {
    /// Its part of viewer ids; empty for the only instance.
    pub(crate) instance: String,
    pub(crate) version: String,
    pub(crate) started_ms: u64,
    /// When it last reported (ms since the Unix epoch).
    pub(crate) seen_ms: u64,
    pub(crate) websockets: u64,
    pub(crate) streams: u64,
    /// Why it cannot serve, when it cannot.
    pub(crate) problem: Option<String>,
}

/// One open page on a board, as instances tell each other: whose it is, and since when.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub(crate) struct Viewer {
    /// The page, as its `welcome.connection` names it.
    pub(crate) tab: String,
    /// Its person, as presence frames name them.
    pub(crate) person: String,
    pub(crate) name: String,
    pub(crate) guest: bool,
    /// When the page arrived, ISO 8601 in UTC.
    pub(crate) since: String,
    /// Closed within the grace: its person still counts, so a reload that comes back on
    /// another instance is not a leave and a join.
    #[serde(default)]
    pub(crate) closing: bool,
}

/// Where an engine sends the events committed to topics this instance follows.
pub(crate) trait Deliveries: Send + Sync {
    /// Events committed to `topic`, in offset order, following on from the last ones
    /// delivered (or from the copy [`Engine::follow`] gave).
    fn deliver(&self, topic: &str, epoch: u64, events: &[Committed]);

    /// The topic's events can no longer be followed on from what was delivered (the engine's
    /// history let go of some, or the topic started a new epoch): its copy now, from which
    /// every local subscriber starts again with a snapshot.
    fn reset(&self, copy: TopicCopy);

    /// Another instance's viewers of `board` changed: ask [`Engine::others_viewing`].
    fn viewers_changed(&self, board: &str);

    /// Another instance asked every screen to reload within `within_ms`.
    fn reload(&self, within_ms: u64);

    /// Someone on another instance is writing a note on `typing.board`.
    fn typing(&self, typing: Typing);

    /// `topic` was marked as not updating (with why), or as updating again (`None`).
    fn marked(&self, topic: &str, mark: Option<String>);

    /// Every topic marked now, with why: what the hub holds is replaced (after the engine
    /// lost touch, and a change may have gone unheard).
    fn all_marks(&self, marks: HashMap<String, String>);
}

/// The engine could not do what was asked; nothing of it happened.
#[derive(Debug, Clone)]
pub(crate) enum EngineError {
    /// Where the topics live cannot be reached (Redis is down): retry once it is back.
    Unreachable(String),
    /// It was reached and could not record or read (a full disk, a broken file).
    Failed(String),
}

impl fmt::Display for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unreachable(why) | Self::Failed(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for EngineError {}

/// Why a publish did not apply. Nothing of it applied.
#[derive(Debug)]
pub(crate) enum PublishError {
    /// An op was refused; `write` is the index of its topic's entry in the batch.
    Refused { write: usize, error: OpError },
    /// The engine could not record the write.
    Unavailable(EngineError),
    /// The idempotency key was used before for a different request.
    KeyReused,
    /// A request with the same idempotency key is being applied right now.
    KeyInFlight,
    /// The request is not one the engine takes: a write without ops, too many ops, too
    /// many topics.
    Shape(BatchError),
}

impl fmt::Display for PublishError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Refused { error, .. } => error.fmt(f),
            Self::Unavailable(e) => e.fmt(f),
            Self::KeyReused => f.write_str("this idempotency key was used for a different request"),
            Self::KeyInFlight => f.write_str("a request with this idempotency key is in progress"),
            Self::Shape(BatchError::EmptyOps { .. }) => {
                f.write_str("a write needs at least one op: `ops` is empty")
            }
            Self::Shape(BatchError::TooManyOps) => write!(
                f,
                "a request may carry at most {MAX_OPS_PER_REQUEST} ops; split it"
            ),
            Self::Shape(BatchError::TooManyTopics) => write!(
                f,
                "a batch may write at most {MAX_TOPICS_PER_BATCH} topics; split it"
            ),
        }
    }
}

/// A publish's answer, and whether it was replayed for a repeated idempotency key.
#[derive(Debug, Clone)]
pub(crate) struct Outcome {
    pub(crate) answer: BatchPublished,
    pub(crate) replayed: bool,
}

/// Runs a publish in a task of its own, so it goes to the end even if its caller stops
/// waiting: a write made durable always reaches the followers, and an idempotency claim is
/// always settled.
pub(crate) fn to_the_end(
    publishing: impl std::future::Future<Output = Result<Outcome, PublishError>> + Send + 'static,
) -> BoxFuture<'static, Result<Outcome, PublishError>> {
    let task = tokio::spawn(publishing);
    Box::pin(async move {
        task.await.unwrap_or_else(|e| {
            Err(PublishError::Unavailable(EngineError::Failed(format!(
                "the publish did not finish: {e}"
            ))))
        })
    })
}

/// What every engine offers. Methods return boxed futures so callers can hold any engine as
/// `Arc<dyn Engine>`.
pub(crate) trait Engine: Send + Sync + 'static {
    /// Where to deliver committed events; set once, by the hub, before anything follows.
    fn deliver_to(&self, deliveries: Weak<dyn Deliveries>);

    /// Applies a batch's ops, whole or not at all, and delivers its events. With an
    /// idempotency key, a repeat of an applied request applies nothing and gets the first
    /// answer. The caller has checked the topic names and the caller's rights.
    fn publish(
        &self,
        batch: Batch,
        key: Option<IdempotencyKey>,
    ) -> BoxFuture<'_, Result<Outcome, PublishError>>;

    /// Deletes every entity whose TTL has run out, through the same path as a publish.
    /// Returns how many were deleted.
    fn expire_due(&self) -> BoxFuture<'_, Result<usize, EngineError>>;

    /// A written topic's snapshot; `None` for a topic nobody has written.
    fn snapshot<'a>(
        &'a self,
        topic: &'a str,
    ) -> BoxFuture<'a, Result<Option<Snapshot>, EngineError>>;

    /// Every written topic's position and size, by name.
    fn topics(&self) -> BoxFuture<'_, Result<Vec<TopicInfo>, EngineError>>;

    /// This instance starts following `topic` (which need not have been written): its copy
    /// now, after which every event committed to it is delivered.
    fn follow<'a>(&'a self, topic: &'a str) -> BoxFuture<'a, Result<TopicCopy, EngineError>>;

    /// This instance no longer follows `topic`.
    fn unfollow(&self, topic: &str);

    /// This instance's part of viewer ids, so no two instances name a viewer alike; empty
    /// when this instance is the only one.
    fn instance_tag(&self) -> String;

    /// Tells the other instances who views `board` here now (an empty list: nobody).
    fn share_presence(&self, board: &str, viewers: Vec<Viewer>) -> BoxFuture<'_, ()>;

    /// Who views `board` on the other instances.
    fn others_viewing<'a>(
        &'a self,
        board: &'a str,
    ) -> BoxFuture<'a, Result<Vec<Viewer>, EngineError>>;

    /// Tells the other instances' viewers of a board that someone here is writing a note.
    fn share_typing(&self, typing: Typing) -> BoxFuture<'_, ()>;

    /// Asks every other instance's screens to reload within `within_ms`.
    fn reload_elsewhere(&self, within_ms: u64) -> BoxFuture<'_, ()>;

    /// Whether this instance may do the work named `lease` (run a pull source) for the next
    /// `term`: takes it if nobody holds it, renews it if this instance does. The only
    /// instance always may; of several sharing Redis, one at a time does, and another
    /// takes over once its holder has stopped renewing for `term`.
    fn lease(&self, lease: &str, term: Duration) -> BoxFuture<'_, Result<bool, EngineError>>;

    /// Marks `topic` as not updating, with why (what feeds it is failing), or as updating
    /// again with `None`; every instance's subscribers of it are told. A mark is no write:
    /// the topic's state and offset stay as they are.
    fn mark(&self, topic: &str, mark: Option<String>) -> BoxFuture<'_, Result<(), EngineError>>;

    /// Records this instance's report and answers every live instance's latest, this one's
    /// among them, in instance order. An instance that stopped reporting drops out of it
    /// within seconds.
    fn census(
        &self,
        mine: InstanceReport,
    ) -> BoxFuture<'_, Result<Vec<InstanceReport>, EngineError>>;

    /// Whether the engine can serve: `/healthz` answers 503 with the reason when not, so a
    /// load balancer takes this instance out.
    fn health(&self) -> BoxFuture<'_, Result<(), EngineError>>;

    /// What the operator should fix though the engine serves (Redis without its append-only
    /// file), as last checked by [`Engine::health`]; said in `/healthz` and the log.
    fn warnings(&self) -> Vec<String> {
        Vec::new()
    }

    /// Makes everything committed durable and stops taking writes.
    fn close(&self) -> BoxFuture<'_, ()>;
}
