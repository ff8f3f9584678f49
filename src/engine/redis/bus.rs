//! Following topics over Redis pub/sub: one pub/sub connection per instance, subscribed to the
//! channel of every topic a local screen reads. Each commit's frames arrive once per
//! instance, are decoded once, checked to follow on from what was delivered, and handed to
//! the hub, whose subscribers all get the same bytes.
//!
//! A gap — an offset that jumps, or a pub/sub connection that dropped and came back — is
//! filled from the topic's history, once per topic per instance, not once per screen. A
//! topic whose history no longer reaches back that far, or that starts a new epoch (Redis
//! restarted empty, or was flushed), is read again whole, and its screens start again from a
//! snapshot. Every [`POSITION_CHECK`] each followed topic's offset is read back, which also
//! catches a last message lost with nothing after it to show the gap.
//!
//! A topic is subscribed before it is read, so no commit falls between the copy a follower
//! starts from and the first message it gets.

use super::marks::{self, MarkChange, MARKS};
use super::presence::{from_elsewhere, PRESENCE_CHANNEL, RELOAD_CHANNEL, TYPING_CHANNEL};
use super::{channel, parse_history, read_topic, topic_of, unreachable, Keys};
use crate::clock::now_ms;
use crate::engine::{Committed, Deliveries, EngineError, Retention, TopicCopy};
use crate::metrics::Metrics;
use crate::protocol::{ts_ms, Event, Position};
use futures_util::StreamExt;
use parking_lot::Mutex;
use redis::aio::ConnectionManager;
use redis::Script;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// How often every followed topic's position is checked against Redis.
pub(crate) const POSITION_CHECK: Duration = Duration::from_secs(1);

/// How long to wait before connecting again after the pub/sub connection failed.
const RECONNECT: Duration = Duration::from_millis(250);

pub(crate) struct Bus {
    commands: ConnectionManager,
    read: Script,
    retention: Retention,
    followed: Mutex<HashMap<String, Track>>,
    deliveries: OnceLock<Weak<dyn Deliveries>>,
    /// Subscribe and unsubscribe requests, carried out in order by the pub/sub task.
    requests: mpsc::UnboundedSender<Request>,
    /// Whether the pub/sub connection is up.
    connected: AtomicBool,
    /// This instance, to tell its own presence and reload messages from others'.
    instance: String,
    metrics: Arc<Metrics>,
}

/// Where a followed topic stands as delivered.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Track {
    /// Its copy is being read; events that arrive meanwhile are delivered as they are (the
    /// hub keeps them for after the copy), the newest noted here.
    Loading(Option<Position>),
    Ready(Position),
}

/// A follow under way; dropped before it finished (its caller went away), it stops
/// following the topic again.
struct Abandoned<'a> {
    bus: &'a Bus,
    topic: Option<&'a str>,
}

impl Drop for Abandoned<'_> {
    fn drop(&mut self) {
        if let Some(topic) = self.topic {
            self.bus.unfollow(topic);
        }
    }
}

enum Request {
    Subscribe(String, oneshot::Sender<Result<(), EngineError>>),
    Unsubscribe(String),
}

/// One committed event as a message carried it.
struct Arrived {
    epoch: u64,
    committed: Committed,
}

/// Decodes one event frame, once per instance.
fn decode(frame: &str) -> Option<Arrived> {
    let event: Event = serde_json::from_str(frame).ok()?;
    Some(Arrived {
        epoch: event.epoch,
        committed: Committed {
            offset: event.offset,
            kind: event.event,
            entity_id: event.entity_id,
            payload: event.payload,
            at_ms: ts_ms(&event.ts).unwrap_or_else(now_ms),
            frame: frame.to_owned().into(),
        },
    })
}

impl Bus {
    pub(crate) fn start(
        client: redis::Client,
        commands: ConnectionManager,
        read: Script,
        retention: Retention,
        instance: String,
        metrics: Arc<Metrics>,
    ) -> Arc<Self> {
        let (requests, waiting) = mpsc::unbounded_channel();
        let bus = Arc::new(Bus {
            commands,
            read,
            retention,
            followed: Mutex::default(),
            deliveries: OnceLock::new(),
            requests,
            connected: AtomicBool::new(false),
            instance,
            metrics,
        });
        tokio::spawn(run(Arc::downgrade(&bus), client, waiting));
        bus
    }

    pub(crate) fn deliver_to(&self, deliveries: Weak<dyn Deliveries>) {
        let _ = self.deliveries.set(deliveries);
    }

    pub(crate) fn deliveries(&self) -> Option<Arc<dyn Deliveries>> {
        self.deliveries.get().and_then(Weak::upgrade)
    }

    pub(crate) fn health(&self) -> Result<(), EngineError> {
        if self.connected.load(Ordering::Acquire) {
            Ok(())
        } else {
            Err(unreachable("the pub/sub connection is down"))
        }
    }

    /// Subscribes to a topic's channel, then reads its copy. A follow given up half way (its
    /// caller went away) unsubscribes again.
    pub(crate) async fn follow(&self, topic: &str) -> Result<TopicCopy, EngineError> {
        self.followed
            .lock()
            .insert(topic.to_owned(), Track::Loading(None));
        let mut abandoned = Abandoned {
            bus: self,
            topic: Some(topic),
        };
        let (done, subscribed) = oneshot::channel();
        let _ = self
            .requests
            .send(Request::Subscribe(topic.to_owned(), done));
        let subscribed = subscribed
            .await
            .unwrap_or_else(|_| Err(unreachable("the pub/sub task has stopped")));
        let copy = match subscribed {
            Ok(()) => read_topic(&self.commands, &self.read, topic, true).await,
            Err(e) => Err(e),
        };
        let mut followed = self.followed.lock();
        match copy {
            Ok(read) => {
                let copy = read.into_copy(topic, self.retention.history_for(topic));
                // From the copy, not from what arrived meanwhile: what arrived may have a gap
                // the hub skipped, and the next message or position check fills it.
                let at = Position {
                    epoch: copy.epoch,
                    offset: copy.offset,
                };
                followed.insert(topic.to_owned(), Track::Ready(at));
                abandoned.topic = None;
                Ok(copy)
            }
            Err(e) => {
                drop(followed);
                Err(e)
            }
        }
    }

    /// Stops following a topic; nothing if it is not followed.
    pub(crate) fn unfollow(&self, topic: &str) {
        if self.followed.lock().remove(topic).is_some() {
            let _ = self.requests.send(Request::Unsubscribe(topic.to_owned()));
        }
    }

    /// A message on a channel that is not a topic's: presence, typing, a reload, or a mark.
    fn announced(&self, channel: &str, payload: &str) {
        let (Some(what), Some(deliveries)) =
            (from_elsewhere(payload, &self.instance), self.deliveries())
        else {
            return;
        };
        match channel {
            PRESENCE_CHANNEL => deliveries.viewers_changed(what),
            RELOAD_CHANNEL => {
                if let Ok(within_ms) = what.parse() {
                    deliveries.reload(within_ms);
                }
            }
            TYPING_CHANNEL => {
                if let Ok(typing) = serde_json::from_str(what) {
                    deliveries.typing(typing);
                }
            }
            MARKS => {
                if let Ok(change) = serde_json::from_str::<MarkChange>(what) {
                    deliveries.marked(&change.topic, change.mark);
                }
            }
            _ => {}
        }
    }

    /// Delivers the events of one message, after whatever it shows was missed.
    async fn arrived(&self, topic: &str, payload: &str) {
        let events: Vec<Arrived> = payload.lines().filter_map(decode).collect();
        let Some(first) = events.first() else {
            return;
        };
        let epoch = first.epoch;
        let last = events.last().map_or(0, |e| e.committed.offset);
        let track = match self.followed.lock().get_mut(topic) {
            None => return,
            Some(Track::Loading(seen)) => {
                let offset = seen.map_or(last, |s| s.offset.max(last));
                *seen = Some(Position { epoch, offset });
                None
            }
            Some(Track::Ready(at)) => Some(*at),
        };
        let Some(at) = track else {
            // The copy is on its way: the hub keeps these for after it.
            let events = events.into_iter().map(|e| e.committed).collect();
            return self.deliver(topic, epoch, events);
        };
        if epoch != at.epoch {
            return self.reload(topic, "its epoch changed").await;
        }
        let fresh: Vec<Committed> = events
            .into_iter()
            .map(|e| e.committed)
            .filter(|c| c.offset > at.offset)
            .collect();
        let Some(first) = fresh.first() else {
            return;
        };
        if first.offset > at.offset + 1 {
            return self.fill(topic, at, Some(fresh)).await;
        }
        self.deliver(topic, epoch, fresh);
    }

    /// Delivers what the history holds after `at`, then `then`; reloads the topic if the
    /// history no longer reaches back to `at`.
    async fn fill(&self, topic: &str, at: Position, then: Option<Vec<Committed>>) {
        let history = Keys::of(topic).history;
        let mut commands = self.commands.clone();
        let entries: Result<redis::Value, _> = redis::cmd("XRANGE")
            .arg(&history)
            .arg(format!("{}-0", at.offset + 1))
            .arg("+")
            .query_async(&mut commands)
            .await;
        let Ok(entries) = entries.map_err(unreachable).and_then(|v| parse_history(&v)) else {
            // Redis is not answering: the next position check tries again.
            return;
        };
        // Something is missing (a message showed it, or the head is past `at`): a history
        // that is empty, or starts later, cannot fill it.
        if entries
            .first()
            .is_none_or(|(offset, _)| *offset != at.offset + 1)
        {
            return self
                .reload(topic, "its history no longer reaches back")
                .await;
        }
        let mut filled: Vec<Committed> = entries
            .iter()
            .filter_map(|(_, frame)| decode(frame))
            .filter(|e| e.epoch == at.epoch)
            .map(|e| e.committed)
            .collect();
        if let Some(then) = then {
            let last = filled.last().map_or(at.offset, |c| c.offset);
            filled.extend(then.into_iter().filter(|c| c.offset > last));
        }
        if !filled.is_empty() {
            tracing::info!(
                topic,
                from = at.offset + 1,
                events = filled.len(),
                "filled a gap from the history"
            );
            self.metrics.gaps_filled.inc();
            self.deliver(topic, at.epoch, filled);
        }
    }

    /// Reads a followed topic again whole, and has its screens start again from it.
    async fn reload(&self, topic: &str, why: &str) {
        let Some(Track::Ready(was)) = self.followed.lock().get(topic).copied() else {
            return;
        };
        let read = read_topic(&self.commands, &self.read, topic, true).await;
        let Ok(read) = read else {
            return;
        };
        let copy = read.into_copy(topic, self.retention.history_for(topic));
        {
            let mut followed = self.followed.lock();
            // Unfollowed meanwhile, or followed anew (a new copy is on its way there):
            // this copy is no one's to give.
            match followed.get_mut(topic) {
                Some(track) if *track == Track::Ready(was) => {
                    *track = Track::Ready(Position {
                        epoch: copy.epoch,
                        offset: copy.offset,
                    });
                }
                _ => return,
            }
        }
        self.metrics.topic_reloads.inc();
        if was.epoch != copy.epoch {
            tracing::warn!(topic, was = was.epoch, now = copy.epoch, "the topic starts a new epoch: Redis lost its data (restarted empty, or flushed); screens take a fresh snapshot");
        } else {
            tracing::warn!(topic, "{why}: screens take a fresh snapshot");
        }
        if let Some(deliveries) = self.deliveries() {
            deliveries.reset(copy);
        }
    }

    fn deliver(&self, topic: &str, epoch: u64, events: Vec<Committed>) {
        let Some(last) = events.last().map(|c| c.offset) else {
            return;
        };
        if let Some(Track::Ready(at)) = self.followed.lock().get_mut(topic) {
            at.offset = at.offset.max(last);
        }
        if let Some(deliveries) = self.deliveries() {
            deliveries.deliver(topic, epoch, &events);
        }
    }

    /// Reads back every followed topic's position, and fills or reloads what was missed.
    async fn check_positions(&self) {
        let ready: Vec<(String, Position)> = self
            .followed
            .lock()
            .iter()
            .filter_map(|(topic, track)| match track {
                Track::Ready(at) => Some((topic.clone(), *at)),
                Track::Loading(_) => None,
            })
            .collect();
        let mut commands = self.commands.clone();
        for (topic, at) in ready {
            let head: Result<(Option<u64>, Option<u64>), _> = redis::cmd("HMGET")
                .arg(Keys::of(&topic).meta)
                .arg("epoch")
                .arg("offset")
                .query_async(&mut commands)
                .await;
            match head {
                Err(_) => return,
                Ok((Some(epoch), _)) if epoch != at.epoch => {
                    self.reload(&topic, "its epoch changed").await
                }
                // Its keys are gone: the next read gives it a new epoch.
                Ok((None, _)) => self.reload(&topic, "its keys are gone").await,
                Ok((_, Some(offset))) if offset > at.offset => self.fill(&topic, at, None).await,
                Ok(_) => {}
            }
        }
    }
}

/// The pub/sub task: connects, subscribes every followed topic, hands messages to the bus
/// and checks positions, and connects again whenever the connection fails.
async fn run(
    bus: Weak<Bus>,
    client: redis::Client,
    mut requests: mpsc::UnboundedReceiver<Request>,
) {
    loop {
        let connected =
            tokio::time::timeout(super::COMMAND_TIMEOUT, client.get_async_pubsub()).await;
        let Some(bus_now) = bus.upgrade() else { return };
        let pubsub = match connected {
            Ok(Ok(pubsub)) => pubsub,
            Ok(Err(e)) => {
                refuse_waiting(&mut requests, &e.to_string());
                drop(bus_now);
                tracing::warn!("redis pub/sub: {e}; connecting again");
                tokio::time::sleep(RECONNECT).await;
                continue;
            }
            Err(_) => {
                refuse_waiting(&mut requests, "connecting timed out");
                drop(bus_now);
                tokio::time::sleep(RECONNECT).await;
                continue;
            }
        };
        let (mut sink, mut stream) = pubsub.split();
        let topics: Vec<String> = bus_now.followed.lock().keys().cloned().collect();
        let mut channels: Vec<String> = topics.iter().map(|t| channel(t)).collect();
        channels
            .extend([PRESENCE_CHANNEL, RELOAD_CHANNEL, TYPING_CHANNEL, MARKS].map(str::to_owned));
        if sink.subscribe(&channels).await.is_err() {
            drop(bus_now);
            tokio::time::sleep(RECONNECT).await;
            continue;
        }
        bus_now.connected.store(true, Ordering::Release);
        tracing::info!(topics = topics.len(), "redis pub/sub connected");
        // Whatever was published while the connection was down is filled in now.
        bus_now.check_positions().await;
        if let (Ok(all), Some(deliveries)) = (
            marks::read_all(&bus_now.commands).await,
            bus_now.deliveries(),
        ) {
            deliveries.all_marks(all);
        }
        drop(bus_now);
        let mut check = tokio::time::interval(POSITION_CHECK);
        loop {
            tokio::select! {
                message = stream.next() => {
                    let Some(message) = message else { break };
                    let Some(bus) = bus.upgrade() else { return };
                    let Ok(payload) = std::str::from_utf8(message.get_payload_bytes()) else {
                        continue;
                    };
                    match topic_of(message.get_channel_name()) {
                        Some(topic) => bus.arrived(topic, payload).await,
                        None => bus.announced(message.get_channel_name(), payload),
                    }
                }
                request = requests.recv() => {
                    let Some(request) = request else { return };
                    match request {
                        Request::Subscribe(topic, done) => {
                            let subscribed = tokio::time::timeout(super::COMMAND_TIMEOUT, sink.subscribe(channel(&topic)))
                                .await
                                .unwrap_or_else(|_| Err(redis::RedisError::from((redis::ErrorKind::Io, "timed out"))))
                                .map_err(unreachable);
                            let failed = subscribed.is_err();
                            let _ = done.send(subscribed);
                            if failed {
                                break;
                            }
                        }
                        Request::Unsubscribe(topic) => {
                            let followed_again = bus.upgrade().is_some_and(|b| b.followed.lock().contains_key(&topic));
                            if !followed_again {
                                let gone = tokio::time::timeout(super::COMMAND_TIMEOUT, sink.unsubscribe(channel(&topic))).await;
                                if !matches!(gone, Ok(Ok(()))) {
                                    break;
                                }
                            }
                        }
                    }
                }
                _ = check.tick() => {
                    // A connection can look up and carry nothing (a half-open socket, a
                    // failover): it must answer a ping, or it is made again.
                    let answered = tokio::time::timeout(super::COMMAND_TIMEOUT, sink.ping::<redis::Value>()).await;
                    if !matches!(answered, Ok(Ok(_))) {
                        break;
                    }
                    let Some(bus) = bus.upgrade() else { return };
                    bus.check_positions().await;
                }
            }
        }
        if let Some(bus) = bus.upgrade() {
            bus.connected.store(false, Ordering::Release);
        }
        tracing::warn!("redis pub/sub connection lost; connecting again");
        tokio::time::sleep(RECONNECT).await;
    }
}

/// Answers the subscribe requests waiting while there is no connection: refused, so their
/// screens hear of it instead of waiting.
fn refuse_waiting(requests: &mut mpsc::UnboundedReceiver<Request>, why: &str) {
    while let Ok(request) = requests.try_recv() {
        if let Request::Subscribe(_, done) = request {
            let _ = done.send(Err(unreachable(why)));
        }
    }
}
