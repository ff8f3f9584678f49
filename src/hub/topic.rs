//! One topic: its entity state, its (epoch, offset), the bounded history that lets
//! subscribers resume, and the connections subscribed to it.
//!
//! All of a topic's mutations happen under one lock held by the hub, and every event is queued
//! to subscribers while that lock is held, so each subscriber sees offsets in order.
//!
//! A subscriber resuming from a position still in history is sent the events it missed,
//! streamed from the history as its queue drains, then a `resumed` frame: the queue bounds
//! the memory a catch-up takes, the history bounds how far back one can reach. Live events
//! that arrive meanwhile join the history and so the same stream.
//!
//! A subscriber whose queue is full falls behind: the topic stops queueing its events and
//! only notes which entities they touched. When the connection has written its queue out it
//! asks to catch up, and gets one `coalesced` frame with the latest state of those entities
//! (or a snapshot, if they grew past [`MAX_COALESCED`]) instead of the run of events.

use super::apply::{Change, Entities};
use super::outbox::{EncodedFrame, Outbox, Pushed};
use super::ConnectionId;
use crate::protocol::{Coalesced, Event, EventKind, Position, Resumed, ServerFrame, Snapshot};
use crate::store::{TopicRecord, TopicWrite};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

/// Past this many changed entities a subscriber that fell behind gets a snapshot instead.
pub const MAX_COALESCED: usize = 10_000;

/// Who wrote a change, copied into its events.
#[derive(Debug, Clone, Default)]
pub struct Authorship {
    pub user_id: Option<String>,
    pub trace_id: Option<String>,
}

pub struct Topic {
    name: String,
    epoch: u64,
    offset: u64,
    state: BTreeMap<String, Value>,
    /// When entities with a TTL expire, in ms since the Unix epoch.
    expiries: BTreeMap<String, u64>,
    /// The newest events, oldest first, each encoded once.
    history: VecDeque<(u64, EncodedFrame)>,
    history_limit: usize,
    subscribers: HashMap<ConnectionId, Subscriber>,
}

struct Subscriber {
    outbox: Outbox,
    /// `None` while live: each event is queued as it is applied.
    pending: Option<Pending>,
}

/// What a subscriber has not been sent yet, to be sent as its queue drains.
enum Pending {
    /// It resumed from `from`: the events after it are streamed from the history, starting
    /// at `next`, then a `resumed` frame.
    Replay { from: u64, next: u64 },
    /// Its queue was full after `from`: the entities changed since, coalesced into one frame;
    /// `None` once there were too many to list (a snapshot instead).
    Lagging {
        from: u64,
        changed: Option<BTreeSet<String>>,
    },
}

/// Where a new subscriber starts.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Start {
    /// The whole state: no position was given, or its events are no longer in history.
    Snapshot,
    /// The events after this offset, from the history.
    Replay(u64),
}

/// What [`Topic::send_pending`] did for a subscriber.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Sent {
    /// Nothing was pending.
    Nothing,
    /// It has more pending than its queue could take now: ask again once it drains.
    More,
    /// It is live again after a replay.
    Replayed,
    /// It is live again after one coalesced frame (or snapshot) in place of what it missed.
    Coalesced,
}

impl Topic {
    pub fn new(name: String, epoch: u64, history_limit: usize) -> Self {
        Self {
            name,
            epoch,
            offset: 0,
            state: BTreeMap::new(),
            expiries: BTreeMap::new(),
            history: VecDeque::new(),
            history_limit,
            subscribers: HashMap::new(),
        }
    }

    /// A topic as the store last committed it.
    pub fn restore(record: TopicRecord, history_limit: usize) -> Self {
        let skip = record.history.len().saturating_sub(history_limit);
        Self {
            name: record.name,
            epoch: record.epoch,
            offset: record.offset,
            state: record.state,
            expiries: record.expiries,
            history: record
                .history
                .into_iter()
                .skip(skip)
                .map(|(offset, frame)| (offset, frame.into()))
                .collect(),
            history_limit,
            subscribers: HashMap::new(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn position(&self) -> Position {
        Position {
            epoch: self.epoch,
            offset: self.offset,
        }
    }

    pub fn entities(&self) -> Entities<'_> {
        Entities {
            payloads: &self.state,
            expiries: &self.expiries,
        }
    }

    /// The earliest time an entity of this topic expires, if any does.
    pub fn next_expiry(&self) -> Option<u64> {
        self.expiries.values().min().copied()
    }

    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            topic: self.name.clone(),
            epoch: self.epoch,
            offset: self.offset,
            state: self.state.clone(),
        }
    }

    /// Never written and nobody subscribed: nothing would be lost by forgetting it.
    pub fn is_unused(&self) -> bool {
        self.offset == 0 && self.subscribers.is_empty()
    }

    pub fn subscriber_count(&self) -> usize {
        self.subscribers.len()
    }

    /// Where a subscriber resuming from `resume` starts: a replay if every event after it is
    /// still in the history, a snapshot otherwise.
    pub(crate) fn start(&self, resume: Option<Position>) -> Start {
        let Some(from) = resume else {
            return Start::Snapshot;
        };
        if from.epoch != self.epoch || from.offset > self.offset {
            return Start::Snapshot;
        }
        let oldest_kept = self.history.front().map_or(self.offset + 1, |(o, _)| *o);
        if from.offset < self.offset && oldest_kept > from.offset + 1 {
            return Start::Snapshot;
        }
        Start::Replay(from.offset)
    }

    /// Adds a subscriber and queues its first frames: a snapshot, or as much of its replay
    /// as the queue takes now (the rest streams as it drains). Returns false, subscribing
    /// nothing, when the queue has no room for a snapshot.
    pub fn subscribe(
        &mut self,
        connection: ConnectionId,
        outbox: &Outbox,
        resume: Option<Position>,
    ) -> bool {
        let pending = match self.start(resume) {
            Start::Snapshot => {
                let frame = encode(&ServerFrame::Snapshot(self.snapshot()));
                if outbox.try_push(frame) != Pushed::Queued {
                    return false;
                }
                None
            }
            Start::Replay(from) => Some(Pending::Replay {
                from,
                next: from + 1,
            }),
        };
        let replaying = pending.is_some();
        let subscriber = Subscriber {
            outbox: outbox.clone(),
            pending,
        };
        self.subscribers.insert(connection, subscriber);
        if replaying && self.send_pending(connection) == Sent::More {
            outbox.send_later(&self.name);
        }
        true
    }

    /// Sends a subscriber what it has pending, as far as its queue takes it: the next part
    /// of its replay, or one frame with what it missed while its queue was full.
    pub(crate) fn send_pending(&mut self, connection: ConnectionId) -> Sent {
        let Some(subscriber) = self.subscribers.get_mut(&connection) else {
            return Sent::Nothing;
        };
        let (pushed, done) = match &mut subscriber.pending {
            None => return Sent::Nothing,
            Some(Pending::Replay { from, next }) => {
                let oldest = self.history.front().map_or(self.offset + 1, |(o, _)| *o);
                if *next < oldest {
                    // The history moved past the replay while the queue drained (events came
                    // faster than it was read): the rest is gone, so a snapshot instead.
                    let from = *next - 1;
                    subscriber.pending = Some(Pending::Lagging {
                        from,
                        changed: None,
                    });
                    return self.send_pending(connection);
                }
                // Half of the room left: live events of other topics follow meanwhile.
                let budget = (subscriber.outbox.room() / 2).max(1);
                let start = (*next - oldest) as usize;
                let mut pushed = Pushed::Queued;
                for (offset, frame) in self.history.range(start..).take(budget) {
                    pushed = subscriber.outbox.try_push(frame.clone());
                    if pushed != Pushed::Queued {
                        break;
                    }
                    *next = offset + 1;
                }
                if pushed == Pushed::Queued {
                    if *next <= self.offset {
                        return Sent::More;
                    }
                    pushed = subscriber
                        .outbox
                        .try_push(encode(&ServerFrame::Resumed(Resumed {
                            topic: self.name.clone(),
                            epoch: self.epoch,
                            offset: self.offset,
                            replayed: self.offset - *from,
                        })));
                }
                (pushed, Sent::Replayed)
            }
            Some(Pending::Lagging { from, changed }) => {
                let frame = match changed {
                    Some(changed) => {
                        let (mut state, mut deleted) = (BTreeMap::new(), Vec::new());
                        for id in changed.iter() {
                            match self.state.get(id) {
                                Some(payload) => {
                                    state.insert(id.clone(), payload.clone());
                                }
                                None => deleted.push(id.clone()),
                            }
                        }
                        encode(&ServerFrame::Coalesced(Coalesced {
                            topic: self.name.clone(),
                            epoch: self.epoch,
                            from: *from,
                            offset: self.offset,
                            state,
                            deleted,
                        }))
                    }
                    None => encode(&ServerFrame::Snapshot(Snapshot {
                        topic: self.name.clone(),
                        epoch: self.epoch,
                        offset: self.offset,
                        state: self.state.clone(),
                    })),
                };
                (subscriber.outbox.try_push(frame), Sent::Coalesced)
            }
        };
        match pushed {
            Pushed::Queued => {
                subscriber.pending = None;
                done
            }
            Pushed::Full => Sent::More,
            Pushed::Closed => {
                self.subscribers.remove(&connection);
                Sent::Nothing
            }
        }
    }

    pub fn unsubscribe(&mut self, connection: ConnectionId) {
        self.subscribers.remove(&connection);
    }

    /// Gives planned changes their offsets and encodes each event once, without changing
    /// anything: the result is made durable first, then [`Topic::apply`]ed.
    pub fn prepare(&self, changes: Vec<Change>, by: &Authorship, ts: &str) -> Prepared {
        let events = changes
            .into_iter()
            .zip(self.offset + 1..)
            .map(|(change, offset)| {
                let frame = encode(&ServerFrame::Event(Event {
                    topic: self.name.clone(),
                    epoch: self.epoch,
                    offset,
                    event: change.kind.clone(),
                    entity_id: change.entity_id.clone(),
                    payload: change.payload.clone(),
                    ts: ts.to_owned(),
                    user_id: by.user_id.clone(),
                    trace_id: by.trace_id.clone(),
                }));
                (offset, change, frame)
            })
            .collect();
        Prepared {
            topic: self.name.clone(),
            epoch: self.epoch,
            keep_history: self.history_limit,
            events,
        }
    }

    /// Applies prepared events in order: state, history, and a copy of each frame queued to
    /// every subscriber. Subscribers whose queue is gone or full are dropped. Returns how many
    /// frames were queued.
    pub fn apply(&mut self, prepared: Prepared) -> u64 {
        let mut queued = 0;
        for (offset, change, frame) in prepared.events {
            debug_assert_eq!(offset, self.offset + 1, "events apply in offset order");
            self.offset = offset;
            match change.expires_at {
                Some(at) => self.expiries.insert(change.entity_id.clone(), at),
                None => self.expiries.remove(&change.entity_id),
            };
            let entity = change.entity_id.clone();
            match change.kind {
                EventKind::Deleted => self.state.remove(&change.entity_id),
                _ => self.state.insert(change.entity_id, change.payload),
            };
            self.history.push_back((offset, frame.clone()));
            if self.history.len() > self.history_limit {
                self.history.pop_front();
            }
            let (name, oldest) = (&self.name, self.history.front().map_or(offset, |(o, _)| *o));
            self.subscribers.retain(|_, subscriber| {
                match &mut subscriber.pending {
                    // The event is in the history, where the replay will reach it; unless
                    // the history has already let go of where the replay stands.
                    Some(Pending::Replay { next, .. }) => {
                        if *next < oldest {
                            subscriber.pending = Some(Pending::Lagging {
                                from: *next - 1,
                                changed: None,
                            });
                        }
                        return true;
                    }
                    Some(Pending::Lagging { changed, .. }) => {
                        if let Some(list) = changed {
                            list.insert(entity.clone());
                            if list.len() > MAX_COALESCED {
                                *changed = None;
                            }
                        }
                        return true;
                    }
                    None => {}
                }
                match subscriber.outbox.try_push(frame.clone()) {
                    Pushed::Queued => queued += 1,
                    Pushed::Full => {
                        subscriber.pending = Some(Pending::Lagging {
                            from: offset - 1,
                            changed: Some(BTreeSet::from([entity.clone()])),
                        });
                        subscriber.outbox.fall_behind(name);
                    }
                    Pushed::Closed => return false,
                }
                true
            });
        }
        queued
    }
}

/// Events with their offsets and encoded frames, ready to be stored and applied.
#[derive(Debug)]
pub struct Prepared {
    topic: String,
    epoch: u64,
    keep_history: usize,
    events: Vec<(u64, Change, EncodedFrame)>,
}

impl Prepared {
    pub fn offsets(&self) -> Vec<u64> {
        self.events.iter().map(|(offset, _, _)| *offset).collect()
    }

    /// What the store must record: each touched entity's final value, and the events.
    pub fn to_write(&self) -> Option<TopicWrite> {
        let (head, _, _) = self.events.last()?;
        let mut finals: BTreeMap<&str, Option<(&Value, Option<u64>)>> = BTreeMap::new();
        for (_, change, _) in &self.events {
            let value =
                (change.kind != EventKind::Deleted).then_some((&change.payload, change.expires_at));
            finals.insert(&change.entity_id, value);
        }
        let (upserts, deletes): (Vec<_>, Vec<_>) =
            finals.into_iter().partition(|(_, value)| value.is_some());
        Some(TopicWrite {
            topic: self.topic.clone(),
            epoch: self.epoch,
            offset: *head,
            upserts: upserts
                .into_iter()
                .filter_map(|(id, value)| {
                    let (payload, expires_at) = value?;
                    Some((id.to_owned(), payload.clone(), expires_at))
                })
                .collect(),
            deletes: deletes.into_iter().map(|(id, _)| id.to_owned()).collect(),
            events: self
                .events
                .iter()
                .map(|(offset, _, frame)| (*offset, frame.as_str().to_owned()))
                .collect(),
            keep_history: self.keep_history,
        })
    }
}

/// Encodes a server frame. Serialising these types cannot fail: every map key is a string.
pub fn encode(frame: &ServerFrame) -> EncodedFrame {
    serde_json::to_string(frame)
        .expect("server frames always serialise")
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::apply::plan;
    use crate::hub::outbox::{outbox, Inbox, Next};
    use crate::ops::Op;
    use serde_json::json;

    fn set(topic: &mut Topic, id: &str, value: i64) {
        let ops = [Op::Set {
            entity_id: id.into(),
            payload: json!(value),
            ttl: None,
        }];
        let changes = plan(topic.entities(), &ops, topic.position().offset + 1, 0).unwrap();
        let prepared = topic.prepare(changes, &Authorship::default(), "2026-11-22T00:00:00.000Z");
        topic.apply(prepared);
    }

    fn drain(inbox: &mut Inbox) -> Vec<ServerFrame> {
        let mut frames = Vec::new();
        while let Some(frame) = inbox.try_frame() {
            frames.push(serde_json::from_str(frame.as_str()).unwrap());
        }
        frames
    }

    fn offsets(frames: &[ServerFrame]) -> Vec<u64> {
        frames
            .iter()
            .filter_map(|f| match f {
                ServerFrame::Event(e) => Some(e.offset),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn subscribers_get_a_snapshot_then_every_event_in_order() {
        let mut topic = Topic::new("t".into(), 9, 100);
        set(&mut topic, "a", 1);
        let (tx, mut rx) = outbox(100);
        assert!(topic.subscribe(1, &tx, None));
        for n in 0..10 {
            set(&mut topic, "a", n);
        }
        let frames = drain(&mut rx);
        match &frames[0] {
            ServerFrame::Snapshot(s) => assert_eq!((s.epoch, s.offset), (9, 1)),
            other => panic!("expected a snapshot, got {other:?}"),
        }
        assert_eq!(offsets(&frames), (2..=11).collect::<Vec<_>>());
    }

    #[test]
    fn resume_sends_exactly_the_missed_events() {
        let mut topic = Topic::new("t".into(), 9, 100);
        for n in 0..10 {
            set(&mut topic, "a", n);
        }
        let (tx, mut rx) = outbox(100);
        let from = Position {
            epoch: 9,
            offset: 6,
        };
        assert!(topic.subscribe(1, &tx, Some(from)));
        set(&mut topic, "a", 99);
        let frames = drain(&mut rx);
        assert_eq!(offsets(&frames), [7, 8, 9, 10, 11]);
        assert!(matches!(
            &frames[4],
            ServerFrame::Resumed(Resumed {
                offset: 10,
                replayed: 4,
                ..
            })
        ));
    }

    fn at(offset: u64) -> Option<Position> {
        Some(Position { epoch: 9, offset })
    }

    #[test]
    fn resume_at_the_head_replays_nothing() {
        let mut topic = Topic::new("t".into(), 9, 100);
        set(&mut topic, "a", 1);
        let (tx, mut rx) = outbox(10);
        assert!(topic.subscribe(1, &tx, at(1)));
        let frames = drain(&mut rx);
        assert!(
            matches!(
                &frames[..],
                [ServerFrame::Resumed(Resumed { replayed: 0, .. })]
            ),
            "only the resumed frame: {frames:?}"
        );
    }

    #[test]
    fn resume_falls_back_to_a_snapshot_when_history_is_gone() {
        let mut topic = Topic::new("t".into(), 9, 3);
        for n in 0..10 {
            set(&mut topic, "a", n);
        }
        // Events 8, 9 and 10 are kept: resuming from 7 works, from 6 needs a snapshot.
        assert_eq!(topic.start(at(7)), Start::Replay(7));
        let stale = [
            at(6),
            Some(Position {
                epoch: 8,
                offset: 7,
            }),
            at(11),
            None,
        ];
        for resume in stale {
            assert_eq!(topic.start(resume), Start::Snapshot, "{resume:?}");
        }
    }

    /// Drains the queue, then asks for what is pending, as a connection's writer does, until
    /// nothing is; every drain holds at most the queue's capacity.
    fn stream_to_the_end(topic: &mut Topic, rx: &mut Inbox, capacity: usize) -> Vec<ServerFrame> {
        let mut frames = Vec::new();
        loop {
            let part = drain(rx);
            assert!(part.len() <= capacity, "{} frames queued", part.len());
            frames.extend(part);
            if rx.try_next().is_none() {
                return frames;
            }
            if topic.send_pending(1) == Sent::More {
                rx.again(vec!["t".into()]);
            }
        }
    }

    #[test]
    fn a_resume_as_long_as_the_history_streams_through_a_small_queue() {
        let mut topic = Topic::new("t".into(), 9, 1000);
        for n in 0..1000 {
            set(&mut topic, "a", n);
        }
        let (tx, mut rx) = outbox(8);
        assert!(topic.subscribe(1, &tx, at(1)));
        let frames = stream_to_the_end(&mut topic, &mut rx, 8);
        assert_eq!(offsets(&frames), (2..=1000).collect::<Vec<_>>());
        assert!(matches!(
            frames.last(),
            Some(ServerFrame::Resumed(Resumed {
                offset: 1000,
                replayed: 999,
                ..
            }))
        ));
        set(&mut topic, "a", 1);
        assert_eq!(offsets(&drain(&mut rx)), [1001], "live after the replay");
    }

    #[test]
    fn events_published_during_a_replay_join_it_in_order() {
        let mut topic = Topic::new("t".into(), 9, 100);
        for n in 0..50 {
            set(&mut topic, "a", n);
        }
        let (tx, mut rx) = outbox(4);
        assert!(topic.subscribe(1, &tx, at(10)));
        let mut frames = drain(&mut rx);
        for n in 0..20 {
            set(&mut topic, "b", n);
        }
        frames.extend(stream_to_the_end(&mut topic, &mut rx, 4));
        assert_eq!(offsets(&frames), (11..=70).collect::<Vec<_>>());
        assert!(matches!(
            frames.last(),
            Some(ServerFrame::Resumed(Resumed { replayed: 60, .. }))
        ));
    }

    #[test]
    fn a_replay_the_history_outruns_becomes_a_snapshot() {
        let mut topic = Topic::new("t".into(), 9, 10);
        for n in 0..10 {
            set(&mut topic, "a", n);
        }
        let (tx, mut rx) = outbox(4);
        assert!(topic.subscribe(1, &tx, at(1)));
        // Twenty more events while the first part is still queued: the history no longer
        // has where the replay stands.
        for n in 0..20 {
            set(&mut topic, "a", n);
        }
        let frames = stream_to_the_end(&mut topic, &mut rx, 4);
        let Some(ServerFrame::Snapshot(snapshot)) = frames.last() else {
            panic!("expected a snapshot last, got {frames:?}");
        };
        assert_eq!(snapshot.offset, 30);
        assert!(!frames.iter().any(|f| matches!(f, ServerFrame::Resumed(_))));
        set(&mut topic, "a", 1);
        assert_eq!(offsets(&drain(&mut rx)), [31], "live after the snapshot");
    }

    #[test]
    fn a_closed_queue_drops_the_subscriber_and_a_full_one_falls_behind() {
        let mut topic = Topic::new("t".into(), 9, 100);
        let (slow, _slow_rx) = outbox(2);
        let (gone, gone_rx) = outbox(100);
        let (ok, mut ok_rx) = outbox(100);
        assert!(topic.subscribe(1, &slow, None));
        assert!(topic.subscribe(2, &gone, None));
        assert!(topic.subscribe(3, &ok, None));
        drop(gone_rx);
        for n in 0..5 {
            set(&mut topic, "a", n);
        }
        assert_eq!(topic.subscriber_count(), 2, "the slow one stays, behind");
        assert_eq!(offsets(&drain(&mut ok_rx)), [1, 2, 3, 4, 5]);
    }

    #[test]
    fn a_subscriber_that_fell_behind_catches_up_with_the_latest_state_of_what_changed() {
        let mut topic = Topic::new("t".into(), 9, 100);
        set(&mut topic, "a", 0);
        set(&mut topic, "gone", 0);
        let (tx, mut rx) = outbox(3);
        assert!(topic.subscribe(1, &tx, None));
        // Room for two events after the snapshot; the rest only note what they touched.
        for n in 1..=100 {
            set(&mut topic, ["a", "b", "c"][n as usize % 3], n);
        }
        let ops = [Op::Delete {
            entity_id: "gone".into(),
        }];
        let changes = plan(topic.entities(), &ops, topic.position().offset + 1, 0).unwrap();
        topic.apply(topic.prepare(changes, &Authorship::default(), "t"));
        assert!(
            matches!(rx.try_next(), Some(Next::Frame(_))),
            "frames first, then what is pending"
        );
        let queued = drain(&mut rx);
        assert_eq!(queued.len(), 2);
        assert_eq!(offsets(&queued), [3, 4]);
        assert_eq!(
            rx.try_next(),
            Some(Next::Pending {
                topics: vec!["t".into()],
                fell: 1
            })
        );

        assert_eq!(topic.send_pending(1), Sent::Coalesced);
        let caught = drain(&mut rx);
        let ServerFrame::Coalesced(coalesced) = &caught[0] else {
            panic!("expected one coalesced frame, got {caught:?}");
        };
        assert_eq!((coalesced.from, coalesced.offset), (4, 103));
        assert_eq!(coalesced.state["a"], json!(99));
        assert_eq!(coalesced.state["b"], json!(100));
        assert_eq!(coalesced.state["c"], json!(98));
        assert_eq!(coalesced.deleted, ["gone"]);
        // Live again: the next event follows on.
        set(&mut topic, "a", 1000);
        assert_eq!(offsets(&drain(&mut rx)), [104]);
    }
}
