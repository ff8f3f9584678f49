//! What the admin view (`/admin`) and the board list show of the running system, gathered on
//! this instance: every instance's report (shared through the engine), the topics with
//! their write rates, who is on which board, the keys, and the audit trail's recent lines.
//!
//! [`keep_current`] refreshes the figures that cost a round trip (topics, instances) every
//! second; the pages read them as they last stood, so rendering one never waits on Redis.

use crate::access::keyring::{KeyRecord, Keyring};
use crate::audit::{AuditLine, AuditTrail};
use crate::boards::library::Library;
use crate::boards::BoardSummary;
use crate::clock::now_ms;
use crate::engine::{Engine, InstanceReport, TopicInfo};
use crate::hub::Hub;
use crate::ingest::files::Mistake;
use crate::ingest::hooks::deliveries::Delivery;
use crate::ingest::hooks::{Hook, Hooks};
use crate::ingest::schedule::{SourceReport, Status};
use parking_lot::RwLock;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often the figures are refreshed, and so how often an instance reports itself.
const EVERY: Duration = Duration::from_secs(1);
/// The window a topic's write rate is measured over.
const RATE_WINDOW: Duration = Duration::from_secs(10);
/// Audit lines the view shows.
const AUDIT_SHOWN: usize = 30;

/// Every topic's epoch and offset at one moment: the rates are measured between two.
type Sample = (Instant, HashMap<String, (u64, u64)>);

/// A topic as the admin view lists it.
#[derive(Clone, Debug)]
pub(crate) struct TopicRow {
    pub(crate) info: TopicInfo,
    /// Events per second over the last ten seconds.
    pub(crate) per_second: f64,
    /// Connections to this instance that follow it.
    pub(crate) subscribers: usize,
}

/// A board someone on this instance is on.
#[derive(Clone, Debug)]
pub(crate) struct Watched {
    pub(crate) board: String,
    /// People on it, every instance's.
    pub(crate) people: u64,
    /// Pages open on it here.
    pub(crate) pages: usize,
}

/// Everything the admin view shows, as it stands.
pub(crate) struct Overview {
    pub(crate) instances: Vec<InstanceReport>,
    /// Connections to this instance, and of them the Server-Sent Events streams.
    pub(crate) connections: (u64, u64),
    pub(crate) watched: Vec<Watched>,
    pub(crate) topics: Vec<TopicRow>,
    pub(crate) boards: Vec<BoardSummary>,
    pub(crate) keys: Vec<KeyRecord>,
    pub(crate) audit: Vec<AuditLine>,
    /// Every pull source with its last run, and the source files' mistakes.
    pub(crate) sources: Vec<SourceReport>,
    pub(crate) source_mistakes: Vec<Mistake>,
    /// Every hook with its newest delivery.
    pub(crate) hooks: Vec<(Arc<Hook>, Option<Delivery>)>,
}

/// The admin view's sources, and its figures as last gathered.
pub(crate) struct Admin {
    hub: Arc<Hub>,
    keyring: Arc<Keyring>,
    library: Arc<Library>,
    trail: AuditTrail,
    sources: Arc<Status>,
    hooks: Arc<Hooks>,
    topics: RwLock<Vec<TopicRow>>,
    instances: RwLock<Vec<InstanceReport>>,
}

impl Admin {
    pub(crate) fn new(
        hub: Arc<Hub>,
        keyring: Arc<Keyring>,
        library: Arc<Library>,
        trail: AuditTrail,
        sources: Arc<Status>,
        hooks: Arc<Hooks>,
    ) -> Arc<Self> {
        Arc::new(Admin {
            hub,
            keyring,
            library,
            trail,
            sources,
            hooks,
            topics: RwLock::new(Vec::new()),
            instances: RwLock::new(Vec::new()),
        })
    }

    pub(crate) fn overview(&self) -> Overview {
        let metrics = self.hub.metrics();
        let mut boards = self.library.list();
        boards.sort_by(|a, b| a.name.cmp(&b.name));
        Overview {
            instances: self.instances.read().clone(),
            connections: (
                metrics.connections.get() as u64,
                metrics.streams.get() as u64,
            ),
            watched: self.watched(),
            topics: self.topics.read().clone(),
            boards,
            // A keyring that cannot be read shows no keys; the log says why.
            keys: self.keyring.list().unwrap_or_else(|e| {
                tracing::error!("listing keys for the admin view: {e}");
                Vec::new()
            }),
            audit: self.trail.recent(AUDIT_SHOWN),
            sources: self.sources.sources(),
            source_mistakes: self.sources.mistakes(),
            hooks: self
                .hooks
                .list()
                .into_iter()
                .map(|hook| {
                    let newest = self.hooks.deliveries.of(&hook.name).into_iter().next();
                    (hook, newest)
                })
                .collect(),
        }
    }

    pub(crate) fn watched(&self) -> Vec<Watched> {
        let watched = self.hub.watched().into_iter();
        watched
            .map(|(board, people, pages)| Watched {
                board,
                people,
                pages,
            })
            .collect()
    }

    /// When any of `topics` last changed, as of the last refresh.
    pub(crate) fn last_change(&self, topics: &[String]) -> Option<u64> {
        let known = self.topics.read();
        let changes = known.iter().filter(|row| topics.contains(&row.info.topic));
        changes.filter_map(|row| row.info.changed_ms).max()
    }
}

/// Refreshes the topics and this instance's report (and with it the list of instances)
/// every second, for as long as the server runs.
pub(crate) async fn keep_current(admin: Arc<Admin>, engine: Arc<dyn Engine>, started_ms: u64) {
    let mut tick = tokio::time::interval(EVERY);
    let mut samples: VecDeque<Sample> = VecDeque::new();
    loop {
        tick.tick().await;
        match engine.topics().await {
            Ok(topics) => {
                let now = Instant::now();
                while samples
                    .front()
                    .is_some_and(|(at, _)| now.duration_since(*at) > RATE_WINDOW)
                {
                    samples.pop_front();
                }
                let rows = rows(&admin.hub, topics, samples.front(), now);
                let positions = rows
                    .iter()
                    .map(|row| (row.info.topic.clone(), (row.info.epoch, row.info.offset)))
                    .collect();
                samples.push_back((now, positions));
                *admin.topics.write() = rows;
            }
            Err(e) => tracing::debug!("listing topics for the admin view: {e}"),
        }
        let metrics = admin.hub.metrics();
        let (connections, streams) = (metrics.connections.get(), metrics.streams.get());
        let mine = InstanceReport {
            instance: engine.instance_tag(),
            version: env!("CARGO_PKG_VERSION").into(),
            started_ms,
            seen_ms: now_ms(),
            websockets: (connections - streams).max(0) as u64,
            streams: streams.max(0) as u64,
            problem: engine.health().await.err().map(|e| e.to_string()),
        };
        let instances = match engine.census(mine.clone()).await {
            Ok(instances) => instances,
            // Cut off from the others: this one is what it can vouch for.
            Err(_) => vec![mine],
        };
        *admin.instances.write() = instances;
    }
}

/// Each topic with its subscribers here and its rate since the oldest sample in the window.
fn rows(hub: &Hub, topics: Vec<TopicInfo>, oldest: Option<&Sample>, now: Instant) -> Vec<TopicRow> {
    topics
        .into_iter()
        .map(|info| {
            let per_second = oldest
                .and_then(|(at, positions)| {
                    let (epoch, offset) = positions.get(&info.topic)?;
                    let seconds = now.duration_since(*at).as_secs_f64();
                    (*epoch == info.epoch && seconds > 0.0)
                        .then(|| info.offset.saturating_sub(*offset) as f64 / seconds)
                })
                .unwrap_or(0.0);
            TopicRow {
                subscribers: hub.subscribers(&info.topic),
                per_second,
                info,
            }
        })
        .collect()
}
