//! The browser's live state: the board's definition, a signal per topic holding its entities
//! and position, the board's presence, and the connection status. Frames from the socket update it through [`Live::apply`],
//! which enforces the sync rule: events apply only in offset order, duplicates are ignored,
//! and a gap asks for a fresh snapshot.
//!
//! The state types compile on both sides so the server can render the same (empty, skeleton)
//! first view the browser hydrates.

#[cfg(feature = "hydrate")]
pub mod clock;
#[cfg(not(feature = "hydrate"))]
#[path = "clock_on_server.rs"]
mod clock;
#[cfg(feature = "hydrate")]
pub mod parse;
#[cfg(feature = "hydrate")]
pub mod playlist;
#[cfg(feature = "hydrate")]
pub mod socket;
pub mod writes;

pub use clock::wall_time;

use crate::boards::notes::{notes_topic, Note, NOTES_PREFIX};
use crate::boards::BoardView;
use crate::json::FromJson;
use crate::protocol::{ts_ms, EventKind, Person, Position, ServerFrame, TopicRequest};
use leptos::prelude::*;
use serde_json::Value;
use std::collections::BTreeMap;

/// What the connection indicator shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectionStatus {
    /// The first connection attempt is under way.
    Connecting,
    /// The socket is open and the board is current.
    Live,
    /// The connection dropped; retrying with backoff.
    Reconnecting,
    /// The browser reports no network; retrying when it returns.
    Offline,
    /// The server refused this page's credentials or the board (close 4401 or 4403):
    /// retrying would not help, so the page stops and says why.
    Refused,
}

impl ConnectionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connecting => "connecting",
            Self::Live => "live",
            Self::Reconnecting => "reconnecting",
            Self::Offline => "offline",
            Self::Refused => "refused",
        }
    }
}

/// What carries the board's frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    WebSocket,
    /// Server-Sent Events (`/sse`), when the network refuses WebSocket.
    EventStream,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::WebSocket => "websocket",
            Self::EventStream => "sse",
        }
    }
}

/// One topic as the browser holds it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TopicView {
    /// False until the first snapshot: widgets show skeletons.
    pub loaded: bool,
    pub epoch: u64,
    pub offset: u64,
    pub entities: BTreeMap<String, Value>,
    /// When the topic last changed, on the page's clock (ms): the newest change the server
    /// reports, moved onto the page's clock, or, where it reports none (entities older
    /// than change times), when this page first saw the topic. Stale indicators measure
    /// from here.
    pub changed_at: Option<f64>,
    /// The same for each entity the server has a change time for.
    pub entity_changed_at: BTreeMap<String, f64>,
    /// Why what feeds the topic is failing, while the server says so: the topic keeps its
    /// last good state, and its widgets dim and say why.
    pub not_updating: Option<String>,
}

impl TopicView {
    /// When `entity` last changed, or else the topic.
    pub fn changed_at(&self, entity: Option<&str>) -> Option<f64> {
        entity
            .and_then(|id| self.entity_changed_at.get(id).copied())
            .or(self.changed_at)
    }
}

/// A clock widget's text for one moment.
#[derive(Clone, Debug, PartialEq)]
pub struct WallTime {
    pub time: String,
    pub date: String,
}

/// Who is on the board: people, not pages.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PresenceView {
    pub known: bool,
    pub count: u64,
    /// Who they are, longest here first; empty on a board too busy to list them.
    pub people: Vec<Person>,
    /// This page's own id (its `welcome.connection`): it is among its person's tabs.
    pub me: Option<String>,
    /// How many people have arrived since this page loaded.
    pub joins: u32,
    /// The last presence frame brought someone new: the pulse plays.
    pub arrival: bool,
    /// The person who arrived last, whose avatar pulses.
    pub newest: Option<String>,
    /// Who else is writing a note now.
    pub writing: Vec<Writing>,
}

impl PresenceView {
    /// Whether `person` is the one this page is.
    pub fn is_me(&self, person: &Person) -> bool {
        self.me.as_ref().is_some_and(|me| person.tabs.contains(me))
    }
}

/// Someone writing a note, and until when (page clock, ms) to say so.
#[derive(Clone, Debug, PartialEq)]
pub struct Writing {
    pub person: String,
    pub name: String,
    pub until: f64,
}

/// How long "… is writing" shows after the last word of it.
const WRITING_FOR_MS: f64 = 4_000.0;

/// A map of the pairs, by insertion: `collect` into a `BTreeMap` sorts the pairs first, and
/// each sort it instantiates is kilobytes of the board's WASM.
pub fn map_of<V>(pairs: impl IntoIterator<Item = (String, V)>) -> BTreeMap<String, V> {
    let mut map = BTreeMap::new();
    for (key, value) in pairs {
        map.insert(key, value);
    }
    map
}

/// The latest of some change times.
fn newest(times: &BTreeMap<String, f64>) -> Option<f64> {
    times.values().copied().reduce(f64::max)
}

/// The result of applying one frame.
#[derive(Debug, PartialEq, Eq)]
pub enum Applied {
    Ok,
    /// The topic's events no longer follow on from what the page holds: subscribe again
    /// without a position to get a fresh snapshot.
    Resync(String),
    /// The board changed which topics it reads.
    Retopic {
        added: Vec<String>,
        removed: Vec<String>,
    },
    /// An operator asked every screen to reload, at a random moment within this many ms.
    Reload {
        within_ms: u64,
    },
}

/// The live state of one board page. Cheap to copy into closures.
#[derive(Clone, Copy)]
pub struct Live {
    pub status: RwSignal<ConnectionStatus>,
    pub transport: RwSignal<Transport>,
    pub presence: RwSignal<PresenceView>,
    /// True while the page applies a backlog (a snapshot, a long reconnect): widgets jump to
    /// the new state instead of animating every step of it.
    pub snap: RwSignal<bool>,
    /// The board's definition, replaced when its file changes.
    pub board: RwSignal<BoardView>,
    /// Wall time in ms, ticking once a second in the browser (see `clock`).
    pub clock: RwSignal<f64>,
    /// The page's own writes, shown before the server confirms them.
    pub writes: writes::Writes,
    /// The last thing said to screen readers (a polite live region): a figure crossing a
    /// threshold, a service changing state. Never every tick.
    pub announcement: RwSignal<String>,
    /// Why the server refused this page (its close reason), once it has.
    pub refusal: RwSignal<Option<String>>,
    /// Why the board is not updating, while the server says it cannot reach its topics.
    pub stale: RwSignal<Option<String>>,
    /// The board's notes topic, whose entities are its notes.
    notes: Option<RwSignal<TopicView>>,
    /// The server's clock minus the page's (ms), from the last `welcome`: a screen whose
    /// clock is off still ages the server's change times right.
    server_ahead_ms: StoredValue<f64>,
    topics: StoredValue<BTreeMap<String, RwSignal<TopicView>>>,
}

impl Live {
    pub fn new(board: BoardView) -> Self {
        let topics = map_of(
            board
                .board
                .as_ref()
                .map(|b| b.topics())
                .unwrap_or_default()
                .into_iter()
                .map(|t| (t, RwSignal::new(TopicView::default()))),
        );
        let notes = board
            .board
            .as_ref()
            .and_then(|b| topics.get(&notes_topic(&b.name)).copied());
        Self {
            notes,
            status: RwSignal::new(ConnectionStatus::Connecting),
            transport: RwSignal::new(Transport::WebSocket),
            presence: RwSignal::new(PresenceView::default()),
            snap: RwSignal::new(false),
            board: RwSignal::new(board),
            clock: RwSignal::new(0.0),
            announcement: RwSignal::new(String::new()),
            refusal: RwSignal::new(None),
            stale: RwSignal::new(None),
            server_ahead_ms: StoredValue::new(0.0),
            writes: writes::Writes::default(),
            topics: StoredValue::new(topics),
        }
    }

    /// The signal of a topic the board reads. A topic the page does not hold yet gets an
    /// empty one (its widget shows a skeleton); it fills once the page subscribes.
    pub fn topic(&self, topic: &str) -> RwSignal<TopicView> {
        if let Some(view) = self.find(topic) {
            return view;
        }
        let view = RwSignal::new(TopicView::default());
        self.topics.update_value(|t| {
            t.insert(topic.to_owned(), view);
        });
        view
    }

    /// Marks a topic the page holds as not updating (with why), or as updating again.
    fn mark(&self, topic: &str, mark: Option<String>) {
        if let Some(view) = self.find(topic) {
            view.update(|v| v.not_updating = mark);
        }
    }

    /// What to send in a `subscribe` frame: every topic, resuming from where the page is.
    pub fn subscriptions(&self) -> Vec<TopicRequest> {
        self.topics.with_value(|topics| {
            topics
                .iter()
                .map(|(name, view)| TopicRequest {
                    topic: name.clone(),
                    resume: view.with_untracked(|v| {
                        v.loaded.then_some(Position {
                            epoch: v.epoch,
                            offset: v.offset,
                        })
                    }),
                })
                .collect()
        })
    }

    pub fn apply(&self, frame: ServerFrame) -> Applied {
        match frame {
            ServerFrame::Welcome(welcome) => {
                let page_now = self.clock.get_untracked();
                if welcome.server_time_ms > 0 && page_now > 0.0 {
                    self.server_ahead_ms
                        .set_value(welcome.server_time_ms as f64 - page_now);
                }
                self.presence.update(|p| p.me = Some(welcome.connection));
                // A new connection: the server says `stale` again if it still is, and of
                // each topic it marks, once subscribed.
                self.stale.set(None);
                // Only a topic that held a mark is touched: the others are not redrawn.
                self.topics.with_value(|topics| {
                    for view in topics.values() {
                        if view.with_untracked(|v| v.not_updating.is_some()) {
                            view.update(|v| v.not_updating = None);
                        }
                    }
                });
            }
            ServerFrame::Stale {
                topic: None,
                reason,
            } => self.stale.set(Some(reason)),
            ServerFrame::Fresh { topic: None } => self.stale.set(None),
            ServerFrame::Stale {
                topic: Some(topic),
                reason,
            } => self.mark(&topic, Some(reason)),
            ServerFrame::Fresh { topic: Some(topic) } => self.mark(&topic, None),
            ServerFrame::Snapshot(snapshot) => {
                if let Some(view) = self.find(&snapshot.topic) {
                    let now = self.clock.get_untracked();
                    let times = self.on_page_clock(&snapshot.changed);
                    view.update(|v| {
                        // A reconnect's snapshot of an unchanged topic is not a change.
                        let unchanged =
                            v.loaded && v.epoch == snapshot.epoch && v.offset == snapshot.offset;
                        let changed_at = match newest(&times) {
                            Some(at) => Some(at),
                            None if unchanged => v.changed_at,
                            None => Some(now),
                        };
                        *v = TopicView {
                            loaded: true,
                            epoch: snapshot.epoch,
                            offset: snapshot.offset,
                            entities: snapshot.state,
                            changed_at,
                            entity_changed_at: times,
                            not_updating: v.not_updating.take(),
                        };
                    });
                    self.writes.settle(&snapshot.topic, snapshot.offset);
                }
            }
            ServerFrame::Event(event) => {
                let Some(view) = self.find(&event.topic) else {
                    return Applied::Ok;
                };
                // Their note is here: they are done writing it.
                if event.topic.starts_with(NOTES_PREFIX) {
                    if let Some(author) = event.payload.get("author").and_then(Value::as_str) {
                        self.presence.update(|p| {
                            p.arrival = false;
                            p.writing.retain(|w| w.person != author);
                        });
                    }
                }
                let mut gap = false;
                view.maybe_update(|v| {
                    if !v.loaded || event.epoch != v.epoch || event.offset > v.offset + 1 {
                        gap = true;
                        return false;
                    }
                    if event.offset <= v.offset {
                        return false;
                    }
                    v.offset = event.offset;
                    // A replayed event's time is when it happened, not when it arrived.
                    let at = ts_ms(&event.ts)
                        .map(|ms| self.page_time(ms))
                        .unwrap_or_else(|| self.clock.get_untracked());
                    v.changed_at = Some(at);
                    match event.event {
                        EventKind::Deleted => {
                            v.entities.remove(&event.entity_id);
                            v.entity_changed_at.remove(&event.entity_id);
                        }
                        _ => {
                            v.entity_changed_at.insert(event.entity_id.clone(), at);
                            v.entities.insert(event.entity_id, event.payload);
                        }
                    }
                    true
                });
                if gap {
                    return Applied::Resync(event.topic);
                }
                self.writes.settle(&event.topic, event.offset);
            }
            ServerFrame::Coalesced(coalesced) => {
                let Some(view) = self.find(&coalesced.topic) else {
                    return Applied::Ok;
                };
                let mut gap = false;
                let now = self.clock.get_untracked();
                let times = self.on_page_clock(&coalesced.changed);
                view.maybe_update(|v| {
                    if coalesced.offset <= v.offset && coalesced.epoch == v.epoch {
                        return false;
                    }
                    if !v.loaded || coalesced.epoch != v.epoch || coalesced.from != v.offset {
                        gap = true;
                        return false;
                    }
                    v.offset = coalesced.offset;
                    v.changed_at = Some(newest(&times).unwrap_or(now));
                    for id in &coalesced.deleted {
                        v.entities.remove(id);
                        v.entity_changed_at.remove(id);
                    }
                    v.entities.extend(coalesced.state);
                    v.entity_changed_at.extend(times);
                    true
                });
                if gap {
                    return Applied::Resync(coalesced.topic);
                }
                self.writes.settle(&coalesced.topic, coalesced.offset);
            }
            ServerFrame::Board(frame) => return self.show_board(frame.view),
            ServerFrame::Reload { within_ms } => return Applied::Reload { within_ms },
            ServerFrame::Ack(ack) => self.writes.confirmed(&ack),
            // The connection's own business (see `socket`), not the board's.
            ServerFrame::Resumed(_) | ServerFrame::Pong { .. } | ServerFrame::Restarting { .. } => {
            }
            ServerFrame::Presence(presence) => {
                self.presence.update(|p| {
                    let rose = presence.count > p.count;
                    let people = presence.people.unwrap_or_default();
                    let arrived = presence.joined.into_iter().rfind(|id| {
                        people
                            .iter()
                            .any(|person| &person.id == id && !p.is_me(person))
                    });
                    // Past the list, a rise in the count is all there is to show.
                    p.arrival = p.known && (arrived.is_some() || rose && people.is_empty());
                    if p.arrival {
                        p.joins += 1;
                    }
                    p.newest = arrived;
                    p.known = true;
                    p.count = presence.count;
                    p.people = people;
                });
            }
            ServerFrame::Typing(typing) => {
                let until = self.clock.get_untracked() + WRITING_FOR_MS;
                self.presence.update(|p| {
                    // Not an arrival: the pulse is not to play again.
                    p.arrival = false;
                    p.writing.retain(|w| w.person != typing.person);
                    p.writing.push(Writing {
                        person: typing.person,
                        name: typing.name,
                        until,
                    });
                });
            }
            // A refused write of the page's own is rolled back and shown; anything else is
            // for the developer console.
            ServerFrame::Error(error) => {
                if !self.writes.refused(&error) {
                    leptos::logging::warn!(
                        "server refused a frame: {:?}: {}",
                        error.code,
                        error.message
                    );
                }
            }
        }
        Applied::Ok
    }

    /// Takes a newer board definition. One without a board (the file never parsed, or was
    /// removed) keeps the board on screen and only brings the problem.
    fn show_board(&self, mut view: BoardView) -> Applied {
        if view.revision < self.board.with_untracked(|b| b.revision) {
            return Applied::Ok;
        }
        if view.board.is_none() {
            view.board = self.board.with_untracked(|b| b.board.clone());
        }
        let wanted = view.board.as_ref().map(|b| b.topics()).unwrap_or_default();
        let held: Vec<String> = self.topics.with_value(|t| t.keys().cloned().collect());
        let added: Vec<String> = wanted
            .iter()
            .filter(|t| !held.contains(t))
            .cloned()
            .collect();
        let removed: Vec<String> = held.into_iter().filter(|t| !wanted.contains(t)).collect();
        self.topics.update_value(|topics| {
            topics.retain(|name, _| !removed.contains(name));
            for topic in &added {
                topics.insert(topic.clone(), RwSignal::new(TopicView::default()));
            }
        });
        self.board.set(view);
        if added.is_empty() && removed.is_empty() {
            Applied::Ok
        } else {
            Applied::Retopic { added, removed }
        }
    }

    /// Announces each entity whose level changes from one known level to another, as
    /// `describe(entity, level)` says it. `levels` maps entity ids to their current level;
    /// an entity's first level (the page loading) is not news.
    pub fn announce_level_changes<L: PartialEq + Send + Sync + 'static>(
        &self,
        levels: impl Fn() -> BTreeMap<String, L> + 'static,
        describe: impl Fn(&str, &L) -> String + 'static,
    ) {
        let announcement = self.announcement;
        Effect::new(move |before: Option<BTreeMap<String, L>>| {
            let now = levels();
            let before = before.unwrap_or_default();
            let news: Vec<String> = now
                .iter()
                .filter(|(id, level)| before.get(*id).is_some_and(|was| was != *level))
                .map(|(id, level)| describe(id, level))
                .collect();
            if !news.is_empty() {
                announcement.set(news.join(". "));
            }
            now
        });
    }

    /// A time of the server's clock (ms since the Unix epoch) on the page's.
    /// The board's notes, oldest first, by id; with `topic`, only those pinned to it (tracked:
    /// a reader runs again when they change). Decoded on each read rather than kept in a memo
    /// of their own, as a memo of a new type is kilobytes of the board's WASM; a widget's
    /// read (a sparkline redraws with every point) decodes only the notes pinned to it.
    pub fn notes(&self, topic: Option<&str>) -> Vec<(String, Note)> {
        let mut notes = Vec::new();
        if let Some(view) = self.notes {
            view.with(|v| {
                for (id, payload) in &v.entities {
                    let pinned = payload.get("topic").and_then(Value::as_str);
                    if topic.is_some() && pinned != topic {
                        continue;
                    }
                    if let Ok(note) = Note::from_json(payload.clone()) {
                        notes.push((id.clone(), note));
                    }
                }
            });
        }
        notes
    }

    /// The server's clock now, ms since the Unix epoch, by the page's clock and the offset
    /// the last `welcome` gave.
    pub fn server_now(&self) -> u64 {
        (self.clock.get_untracked() + self.server_ahead_ms.get_value()).max(0.0) as u64
    }

    /// A time of the server's clock on the page's.
    pub fn page_time(&self, server_ms: u64) -> f64 {
        server_ms as f64 - self.server_ahead_ms.get_value()
    }

    fn on_page_clock(&self, times: &BTreeMap<String, u64>) -> BTreeMap<String, f64> {
        map_of(
            times
                .iter()
                .map(|(id, at)| (id.clone(), self.page_time(*at))),
        )
    }

    /// Whether the board currently reads this topic.
    pub fn reads(&self, topic: &str) -> bool {
        self.find(topic).is_some()
    }

    fn find(&self, topic: &str) -> Option<RwSignal<TopicView>> {
        self.topics.with_value(|t| t.get(topic).copied())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{Event, Snapshot, Welcome};

    fn snapshot(offset: u64, changed: &[(&str, u64)]) -> ServerFrame {
        ServerFrame::Snapshot(Snapshot {
            topic: "t".into(),
            epoch: 1,
            offset,
            state: changed
                .iter()
                .map(|(id, _)| (id.to_string(), Value::from(1)))
                .collect(),
            changed: changed
                .iter()
                .map(|(id, at)| (id.to_string(), *at))
                .collect(),
        })
    }

    fn event(offset: u64, id: &str, ts: &str) -> ServerFrame {
        ServerFrame::Event(Event {
            topic: "t".into(),
            epoch: 1,
            offset,
            event: EventKind::Updated,
            entity_id: id.into(),
            payload: Value::from(2),
            ts: ts.into(),
            user_id: None,
            trace_id: None,
        })
    }

    #[test]
    fn the_server_s_change_times_land_on_the_page_s_clock() {
        let owner = Owner::new();
        owner.set();
        let live = Live::new(BoardView::default());
        let view = live.topic("t");
        // The page's clock reads 10 s; the server's, 1,000 s: it is 990 s ahead.
        live.clock.set(10_000.0);
        live.apply(ServerFrame::Welcome(Welcome {
            connection: "c1".into(),
            server: "test".into(),
            protocol: 3,
            heartbeat_ms: 15_000,
            idle_timeout_ms: 45_000,
            server_time_ms: 1_000_000,
        }));
        live.apply(snapshot(2, &[("old", 400_000), ("new", 995_000)]));
        let held = view.get_untracked();
        assert_eq!(held.changed_at(Some("old")), Some(-590_000.0));
        assert_eq!(held.changed_at(Some("new")), Some(5_000.0));
        assert_eq!(
            held.changed_at(None),
            Some(5_000.0),
            "the topic: its newest"
        );
        assert_eq!(held.changed_at(Some("unknown")), Some(5_000.0));

        // A replayed event counts from when it happened (999 s on the server's clock).
        live.apply(event(3, "old", "1970-01-01T00:16:39.000Z"));
        let held = view.get_untracked();
        assert_eq!(held.changed_at(Some("old")), Some(9_000.0));
        assert_eq!(held.changed_at(None), Some(9_000.0));
    }

    #[test]
    fn without_change_times_a_topic_counts_from_when_the_page_saw_it() {
        let owner = Owner::new();
        owner.set();
        let live = Live::new(BoardView::default());
        let view = live.topic("t");
        live.clock.set(10_000.0);
        live.apply(snapshot(2, &[]));
        assert_eq!(view.get_untracked().changed_at(None), Some(10_000.0));
        // The same snapshot again (a reconnect to an unchanged topic) is not a change.
        live.clock.set(20_000.0);
        live.apply(snapshot(2, &[]));
        assert_eq!(view.get_untracked().changed_at(None), Some(10_000.0));
    }
}
