//! One topic as this instance follows it: a copy of its entity state, its (epoch, offset)
//! and its bounded history, kept current by the engine's deliveries, and the local
//! connections subscribed to it.
//!
//! The copy is what subscribers are served from, so a thousand screens reconnecting cost the
//! engine one read per topic, not one per screen. Every mutation happens under one lock held
//! by the hub, and each event is queued to subscribers while that lock is held, so each
//! subscriber sees offsets in order. Deliveries that arrive while the copy is still loading
//! are kept and applied after it.
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

use super::outbox::{Outbox, Pushed};
use super::ConnectionId;
use crate::encoded::{encode, EncodedFrame};
use crate::engine::{Committed, TopicCopy};
use crate::protocol::{Coalesced, EventKind, Position, Resumed, ServerFrame, Snapshot};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

/// At most this many deliveries are kept while a copy loads.
const MAX_EARLY: usize = 1_000;

/// Past this many changed entities a subscriber that fell behind gets a snapshot instead.
pub(crate) const MAX_COALESCED: usize = 10_000;

pub(crate) struct Follow {
    name: String,
    epoch: u64,
    offset: u64,
    state: BTreeMap<String, Value>,
    /// When each entity last changed, ms since the Unix epoch, where known.
    changed: BTreeMap<String, u64>,
    /// The newest events, oldest first, each encoded once.
    history: VecDeque<(u64, EncodedFrame)>,
    keep: usize,
    /// False until the engine's copy has arrived.
    loaded: bool,
    /// Deliveries that arrived while the copy was loading: applied after it, except what it
    /// already holds.
    early: Vec<(u64, Vec<Committed>)>,
    subscribers: HashMap<ConnectionId, Subscriber>,
    /// Why what feeds the topic is failing, while it is (see [`Follow::mark`]).
    mark: Option<String>,
}

struct Subscriber {
    outbox: Outbox,
    /// A change of the topic's mark found its queue full: told once it catches up.
    mark_missed: bool,
    /// `None` while live: each event is queued as it is applied.
    pending: Option<Pending>,
}

impl Subscriber {
    /// Its queue had no room for a change of the topic's mark: it falls behind (if it was
    /// not already), so that it is told once it has caught up, even if no event comes.
    fn missed_mark(&mut self, topic: &str, offset: u64) {
        self.mark_missed = true;
        if self.pending.is_none() {
            self.pending = Some(Pending::Lagging {
                from: offset,
                changed: Some(BTreeSet::new()),
            });
            self.outbox.fall_behind(topic);
        }
    }
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

/// What [`Follow::send_pending`] did for a subscriber.
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

impl Follow {
    /// A topic this instance starts following; its copy is on its way.
    pub(crate) fn loading(name: String) -> Self {
        Self {
            name,
            epoch: 0,
            offset: 0,
            state: BTreeMap::new(),
            changed: BTreeMap::new(),
            history: VecDeque::new(),
            keep: 0,
            loaded: false,
            early: Vec::new(),
            subscribers: HashMap::new(),
            mark: None,
        }
    }

    /// Marks the topic as not updating (with why), or as updating again, and tells every
    /// subscriber that changed. A subscriber whose queue has no room is told again when it
    /// catches up ([`Follow::send_pending`]), so none is left showing the wrong one.
    pub(crate) fn mark(&mut self, mark: Option<String>) {
        if self.mark == mark {
            return;
        }
        self.mark = mark;
        let frame = mark_frame(&self.name, &self.mark);
        for subscriber in self.subscribers.values_mut() {
            if subscriber.outbox.try_push(frame.clone()) == Pushed::Full {
                subscriber.missed_mark(&self.name, self.offset);
            }
        }
    }

    /// Takes the engine's copy, then what was delivered while it was on its way. A copy
    /// that arrives after a [`Follow::reset`] is older than what the reset gave: ignored.
    pub(crate) fn load(&mut self, copy: TopicCopy) -> u64 {
        if self.loaded {
            return 0;
        }
        self.take(copy);
        let mut queued = 0;
        for (epoch, events) in std::mem::take(&mut self.early) {
            queued += self.deliver(epoch, &events);
        }
        queued
    }

    /// Starts again from a new copy: the engine could not carry on from what it delivered.
    /// Every subscriber gets a snapshot of it (once its queue has room).
    pub(crate) fn reset(&mut self, copy: TopicCopy) {
        self.take(copy);
        self.early.clear();
        let frame = encode(&ServerFrame::Snapshot(self.snapshot()));
        let name = &self.name;
        self.subscribers.retain(
            |_, subscriber| match subscriber.outbox.try_push(frame.clone()) {
                Pushed::Queued => {
                    subscriber.pending = None;
                    true
                }
                Pushed::Full => {
                    subscriber.pending = Some(Pending::Lagging {
                        from: 0,
                        changed: None,
                    });
                    subscriber.outbox.fall_behind(name);
                    true
                }
                Pushed::Closed => false,
            },
        );
    }

    /// Holds the engine's copy in place of whatever the topic had.
    fn take(&mut self, copy: TopicCopy) {
        self.epoch = copy.epoch;
        self.offset = copy.offset;
        self.state = copy.state;
        self.changed = copy.changed;
        self.history = copy.history.into();
        self.keep = copy.keep;
        self.loaded = true;
    }

    pub(crate) fn snapshot(&self) -> Snapshot {
        snapshot_of(
            &self.name,
            self.epoch,
            self.offset,
            &self.state,
            &self.changed,
        )
    }

    pub(crate) fn subscriber_count(&self) -> usize {
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

    /// Adds a subscriber (or restarts one) and queues its first frames: a snapshot, or as
    /// much of its replay as the queue takes now (the rest streams as it drains). A snapshot
    /// that does not fit is not made now: the subscriber is behind from the start, and gets
    /// it once its queue is written out, as one that fell behind does. Returns the bytes
    /// queued at once.
    pub(crate) fn subscribe(
        &mut self,
        connection: ConnectionId,
        outbox: &Outbox,
        resume: Option<Position>,
    ) -> usize {
        let mut queued = 0;
        let pending = match self.start(resume) {
            Start::Snapshot => {
                let pushed = if outbox.room() == 0 {
                    Pushed::Full
                } else {
                    let frame = encode(&ServerFrame::Snapshot(self.snapshot()));
                    queued = frame.len();
                    outbox.try_push(frame)
                };
                match pushed {
                    Pushed::Queued => None,
                    Pushed::Full => {
                        queued = 0;
                        Some(Pending::Lagging {
                            from: 0,
                            changed: None,
                        })
                    }
                    Pushed::Closed => return 0,
                }
            }
            Start::Replay(from) => Some(Pending::Replay {
                from,
                next: from + 1,
            }),
        };
        let (replaying, behind) = match &pending {
            Some(Pending::Replay { .. }) => (true, false),
            Some(Pending::Lagging { .. }) => (false, true),
            None => (false, false),
        };
        let subscriber = Subscriber {
            outbox: outbox.clone(),
            mark_missed: false,
            pending,
        };
        self.subscribers.insert(connection, subscriber);
        // A new subscriber's page holds no mark for the topic: only one that has is told.
        if self.mark.is_some()
            && outbox.try_push(mark_frame(&self.name, &self.mark)) == Pushed::Full
        {
            if let Some(subscriber) = self.subscribers.get_mut(&connection) {
                subscriber.missed_mark(&self.name, self.offset);
            }
        }
        if behind {
            outbox.fall_behind(&self.name);
        }
        if replaying && self.send_pending(connection) == Sent::More {
            outbox.send_later(&self.name);
        }
        queued
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
                        let mut times = BTreeMap::new();
                        for id in changed.iter() {
                            match self.state.get(id) {
                                Some(payload) => {
                                    state.insert(id.clone(), payload.clone());
                                    if let Some(at) = self.changed.get(id) {
                                        times.insert(id.clone(), *at);
                                    }
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
                            changed: times,
                            deleted,
                        }))
                    }
                    // Not `self.snapshot()`: the subscriber is borrowed from `self`.
                    None => encode(&ServerFrame::Snapshot(snapshot_of(
                        &self.name,
                        self.epoch,
                        self.offset,
                        &self.state,
                        &self.changed,
                    ))),
                };
                (subscriber.outbox.try_push(frame), Sent::Coalesced)
            }
        };
        match pushed {
            Pushed::Queued => {
                subscriber.pending = None;
                if subscriber.mark_missed {
                    subscriber.mark_missed = false;
                    subscriber
                        .outbox
                        .try_push(mark_frame(&self.name, &self.mark));
                }
                done
            }
            Pushed::Full => Sent::More,
            Pushed::Closed => {
                self.subscribers.remove(&connection);
                Sent::Nothing
            }
        }
    }

    pub(crate) fn unsubscribe(&mut self, connection: ConnectionId) {
        self.subscribers.remove(&connection);
    }

    /// Whether the connection is subscribed.
    pub(crate) fn has_subscriber(&self, connection: ConnectionId) -> bool {
        self.subscribers.contains_key(&connection)
    }

    /// Drops the subscribers `keep` refuses: nothing more is queued for them.
    pub(crate) fn retain_subscribers(&mut self, keep: impl Fn(&Outbox) -> bool) {
        self.subscribers
            .retain(|_, subscriber| keep(&subscriber.outbox));
    }

    /// Applies delivered events in order: state, history, and a copy of each frame queued to
    /// every subscriber. Events the copy already holds are skipped. Subscribers whose queue is
    /// gone are dropped. Returns how many frames were queued.
    pub(crate) fn deliver(&mut self, epoch: u64, events: &[Committed]) -> u64 {
        if !self.loaded {
            // Bounded: what does not fit is filled in again by the engine, which follows on
            // from its copy, not from what it delivered meanwhile.
            if self.early.len() < MAX_EARLY {
                self.early.push((epoch, events.to_vec()));
            }
            return 0;
        }
        let mut queued = 0;
        for event in events {
            if event.offset <= self.offset {
                continue;
            }
            // Only what follows on is applied: an event of another epoch, or after a gap, is
            // left for the engine, which fills the gap or resets the copy (a subscriber must
            // never see a gap).
            if epoch != self.epoch || event.offset != self.offset + 1 {
                tracing::debug!(topic = %self.name, epoch, offset = event.offset, at = self.offset, "an event that does not follow on, left for the engine to fill");
                continue;
            }
            let (offset, frame, entity) = (event.offset, &event.frame, &event.entity_id);
            self.offset = offset;
            match event.kind {
                EventKind::Deleted => {
                    self.state.remove(entity);
                    self.changed.remove(entity);
                }
                _ => {
                    self.state.insert(entity.clone(), event.payload.clone());
                    self.changed.insert(entity.clone(), event.at_ms);
                }
            }
            self.history.push_back((offset, frame.clone()));
            if self.history.len() > self.keep {
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

/// The whole topic as a `snapshot` frame carries it.
/// A topic's `stale` frame while it is marked, its `fresh` frame once it is not.
fn mark_frame(topic: &str, mark: &Option<String>) -> EncodedFrame {
    let topic = Some(topic.to_owned());
    encode(&match mark {
        Some(reason) => ServerFrame::Stale {
            topic,
            reason: reason.clone(),
        },
        None => ServerFrame::Fresh { topic },
    })
}

fn snapshot_of(
    name: &str,
    epoch: u64,
    offset: u64,
    state: &BTreeMap<String, Value>,
    changed: &BTreeMap<String, u64>,
) -> Snapshot {
    Snapshot {
        topic: name.to_owned(),
        epoch,
        offset,
        state: state.clone(),
        changed: changed.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::outbox::{of_frames as outbox, Inbox, Next};
    use crate::protocol::Event;
    use serde_json::json;

    /// A followed topic at epoch 9, loaded empty, keeping `keep` events.
    fn followed(keep: usize) -> Follow {
        let mut follow = Follow::loading("t".into());
        follow.load(TopicCopy {
            name: "t".into(),
            epoch: 9,
            offset: 0,
            state: BTreeMap::new(),
            changed: BTreeMap::new(),
            history: Vec::new(),
            keep,
        });
        follow
    }

    /// The next event of the topic, as the engine would commit it.
    fn event(follow: &Follow, kind: EventKind, id: &str, payload: Value) -> Committed {
        let offset = follow.offset + 1;
        let frame = encode(&ServerFrame::Event(Event {
            topic: "t".into(),
            epoch: 9,
            offset,
            event: kind.clone(),
            entity_id: id.into(),
            payload: payload.clone(),
            ts: "2026-11-22T00:00:00.000Z".into(),
            user_id: None,
            trace_id: None,
        }));
        Committed {
            offset,
            kind,
            entity_id: id.into(),
            payload,
            at_ms: 1_795_000_000_000 + offset,
            frame,
        }
    }

    fn set(follow: &mut Follow, id: &str, value: i64) {
        let event = event(follow, EventKind::Updated, id, json!(value));
        follow.deliver(9, &[event]);
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
    fn deliveries_while_the_copy_loads_are_applied_after_it_once() {
        let mut source = followed(100);
        for n in 1..=5 {
            set(&mut source, "a", n);
        }
        // The engine's copy was taken at offset 3; offsets 2 to 5 were delivered meanwhile.
        let events: Vec<Committed> = (2..=5)
            .map(|offset| Committed {
                offset,
                kind: EventKind::Updated,
                entity_id: "a".into(),
                payload: json!(offset),
                at_ms: 1_795_000_000_000 + offset,
                frame: source.history[offset as usize - 1].1.clone(),
            })
            .collect();
        let mut follow = Follow::loading("t".into());
        follow.deliver(9, &events[..2]);
        follow.deliver(9, &events[2..]);
        assert!(!follow.loaded);
        follow.load(TopicCopy {
            name: "t".into(),
            epoch: 9,
            offset: 3,
            state: BTreeMap::from([("a".into(), json!(3))]),
            changed: BTreeMap::from([("a".into(), 1_795_000_000_003)]),
            history: source.history.iter().take(3).cloned().collect(),
            keep: 100,
        });
        assert_eq!(follow.offset, 5);
        assert_eq!(follow.snapshot().state["a"], json!(5));
        assert_eq!(follow.snapshot().changed["a"], 1_795_000_000_005);
        let kept: Vec<u64> = follow.history.iter().map(|(o, _)| *o).collect();
        assert_eq!(kept, [1, 2, 3, 4, 5], "each event once, in order");
    }

    #[test]
    fn subscribers_get_a_snapshot_then_every_event_in_order() {
        let mut topic = followed(100);
        set(&mut topic, "a", 1);
        let (tx, mut rx) = outbox(100);
        topic.subscribe(1, &tx, None);
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
        let mut topic = followed(100);
        for n in 0..10 {
            set(&mut topic, "a", n);
        }
        let (tx, mut rx) = outbox(100);
        let from = Position {
            epoch: 9,
            offset: 6,
        };
        topic.subscribe(1, &tx, Some(from));
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
        let mut topic = followed(100);
        set(&mut topic, "a", 1);
        let (tx, mut rx) = outbox(10);
        topic.subscribe(1, &tx, at(1));
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
        let mut topic = followed(3);
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
    fn stream_to_the_end(topic: &mut Follow, rx: &mut Inbox, capacity: usize) -> Vec<ServerFrame> {
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
        let mut topic = followed(1000);
        for n in 0..1000 {
            set(&mut topic, "a", n);
        }
        let (tx, mut rx) = outbox(8);
        topic.subscribe(1, &tx, at(1));
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
        let mut topic = followed(100);
        for n in 0..50 {
            set(&mut topic, "a", n);
        }
        let (tx, mut rx) = outbox(4);
        topic.subscribe(1, &tx, at(10));
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
        let mut topic = followed(10);
        for n in 0..10 {
            set(&mut topic, "a", n);
        }
        let (tx, mut rx) = outbox(4);
        topic.subscribe(1, &tx, at(1));
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
        let mut topic = followed(100);
        let (slow, _slow_rx) = outbox(2);
        let (gone, gone_rx) = outbox(100);
        let (ok, mut ok_rx) = outbox(100);
        topic.subscribe(1, &slow, None);
        topic.subscribe(2, &gone, None);
        topic.subscribe(3, &ok, None);
        drop(gone_rx);
        for n in 0..5 {
            set(&mut topic, "a", n);
        }
        assert_eq!(topic.subscriber_count(), 2, "the slow one stays, behind");
        assert_eq!(offsets(&drain(&mut ok_rx)), [1, 2, 3, 4, 5]);
    }

    #[test]
    fn a_subscriber_that_fell_behind_catches_up_with_the_latest_state_of_what_changed() {
        let mut topic = followed(100);
        set(&mut topic, "a", 0);
        set(&mut topic, "gone", 0);
        let (tx, mut rx) = outbox(3);
        topic.subscribe(1, &tx, None);
        // Room for two events after the snapshot; the rest only note what they touched.
        for n in 1..=100 {
            set(&mut topic, ["a", "b", "c"][n as usize % 3], n);
        }
        let gone = event(&topic, EventKind::Deleted, "gone", Value::Null);
        topic.deliver(9, &[gone]);
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

    #[test]
    fn a_snapshot_that_finds_the_queue_full_is_sent_once_it_drains_and_made_once() {
        let mut topic = followed(100);
        set(&mut topic, "a", 1);
        let (tx, mut rx) = outbox(1);
        tx.try_push("something else".into());
        assert_eq!(topic.subscribe(1, &tx, None), 0, "nothing queued now");
        // Asking again while behind changes nothing.
        assert_eq!(topic.subscribe(1, &tx, None), 0);
        assert_eq!(rx.try_next(), Some(Next::Frame("something else".into())));
        assert!(matches!(rx.try_next(), Some(Next::Pending { .. })));
        assert_eq!(topic.send_pending(1), Sent::Coalesced);
        let frames = drain(&mut rx);
        assert!(
            matches!(&frames[..], [ServerFrame::Snapshot(s)] if s.offset == 1),
            "one snapshot: {frames:?}"
        );
    }
}
