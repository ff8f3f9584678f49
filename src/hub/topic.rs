//! One topic: its entity state, its (epoch, offset), the bounded history that lets
//! subscribers resume, and the connections subscribed to it.
//!
//! All of a topic's mutations happen under one lock held by the hub, and every event is queued
//! to subscribers while that lock is held, so each subscriber sees offsets in order.
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
    behind: Option<Behind>,
}

/// What a subscriber that fell behind has not been sent.
struct Behind {
    /// The last offset it was sent.
    from: u64,
    /// The entities changed since; `None` once there were too many to list.
    changed: Option<BTreeSet<String>>,
}

/// What a new subscriber is sent before live events.
#[derive(Debug)]
pub enum Catchup {
    /// The whole state: no position was given, or its events are no longer in history.
    Snapshot(EncodedFrame),
    /// Exactly the events after the given position, then a `resumed` frame.
    Replay(Vec<EncodedFrame>),
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

    /// Decides what a subscriber resuming from `resume` must be sent. Replays longer than
    /// `max_replay` become a snapshot: it is smaller, and a board snaps to it anyway.
    pub fn catchup(&self, resume: Option<Position>, max_replay: usize) -> Catchup {
        let snapshot = || Catchup::Snapshot(encode(&ServerFrame::Snapshot(self.snapshot())));
        let Some(from) = resume else {
            return snapshot();
        };
        if from.epoch != self.epoch || from.offset > self.offset {
            return snapshot();
        }
        let missed = (self.offset - from.offset) as usize;
        let oldest_kept = self.history.front().map_or(self.offset + 1, |(o, _)| *o);
        if missed > max_replay || (missed > 0 && oldest_kept > from.offset + 1) {
            return snapshot();
        }
        let mut frames: Vec<EncodedFrame> = self
            .history
            .iter()
            .skip(self.history.len() - missed)
            .map(|(_, frame)| frame.clone())
            .collect();
        frames.push(encode(&ServerFrame::Resumed(Resumed {
            topic: self.name.clone(),
            epoch: self.epoch,
            offset: self.offset,
            replayed: missed as u64,
        })));
        Catchup::Replay(frames)
    }

    /// Adds a subscriber and queues its catch-up frames. A replay may fill at most half of
    /// the room left in the queue (several topics may be catching up at once, and live events
    /// follow); a longer one becomes a snapshot. Returns false, subscribing nothing, when the
    /// queue has no room even for that.
    pub fn subscribe(
        &mut self,
        connection: ConnectionId,
        outbox: &Outbox,
        resume: Option<Position>,
    ) -> bool {
        let max_replay = (outbox.room() / 2).saturating_sub(1);
        let frames = match self.catchup(resume, max_replay) {
            Catchup::Snapshot(frame) => vec![frame],
            Catchup::Replay(frames) => frames,
        };
        if frames
            .into_iter()
            .all(|frame| outbox.try_push(frame) == Pushed::Queued)
        {
            let subscriber = Subscriber {
                outbox: outbox.clone(),
                behind: None,
            };
            self.subscribers.insert(connection, subscriber);
            true
        } else {
            false
        }
    }

    /// Sends a subscriber that fell behind what it missed, coalesced. Returns true if it is
    /// still behind (its queue is full again).
    pub fn catch_up(&mut self, connection: ConnectionId) -> bool {
        let Some(subscriber) = self.subscribers.get_mut(&connection) else {
            return false;
        };
        let Some(behind) = &subscriber.behind else {
            return false;
        };
        let frame = match &behind.changed {
            Some(changed) => {
                let (mut state, mut deleted) = (BTreeMap::new(), Vec::new());
                for id in changed {
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
                    from: behind.from,
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
        match subscriber.outbox.try_push(frame) {
            Pushed::Queued => {
                subscriber.behind = None;
                false
            }
            Pushed::Full => true,
            Pushed::Closed => {
                self.subscribers.remove(&connection);
                false
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
            let name = &self.name;
            self.subscribers.retain(|_, subscriber| {
                if let Some(behind) = &mut subscriber.behind {
                    if let Some(changed) = &mut behind.changed {
                        changed.insert(entity.clone());
                        if changed.len() > MAX_COALESCED {
                            behind.changed = None;
                        }
                    }
                    return true;
                }
                match subscriber.outbox.try_push(frame.clone()) {
                    Pushed::Queued => queued += 1,
                    Pushed::Full => {
                        subscriber.behind = Some(Behind {
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
    use crate::hub::outbox::{outbox, Inbox};
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
        while let Ok(frame) = inbox.frames.try_recv() {
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

    #[test]
    fn resume_at_the_head_replays_nothing() {
        let mut topic = Topic::new("t".into(), 9, 100);
        set(&mut topic, "a", 1);
        let from = Position {
            epoch: 9,
            offset: 1,
        };
        match topic.catchup(Some(from), 100) {
            Catchup::Replay(frames) => assert_eq!(frames.len(), 1, "only the resumed frame"),
            other => panic!("expected a replay, got {other:?}"),
        }
    }

    #[test]
    fn resume_falls_back_to_a_snapshot_when_history_is_gone() {
        let mut topic = Topic::new("t".into(), 9, 3);
        for n in 0..10 {
            set(&mut topic, "a", n);
        }
        // Events 8, 9 and 10 are kept: resuming from 7 works, from 6 needs a snapshot.
        assert!(matches!(
            topic.catchup(
                Some(Position {
                    epoch: 9,
                    offset: 7
                }),
                100
            ),
            Catchup::Replay(_)
        ));
        for stale in [
            Position {
                epoch: 9,
                offset: 6,
            },
            Position {
                epoch: 8,
                offset: 7,
            },
            Position {
                epoch: 9,
                offset: 11,
            },
        ] {
            assert!(
                matches!(topic.catchup(Some(stale), 100), Catchup::Snapshot(_)),
                "{stale:?}"
            );
        }
        // A replay longer than the caller allows also becomes a snapshot.
        assert!(matches!(
            topic.catchup(
                Some(Position {
                    epoch: 9,
                    offset: 7
                }),
                2
            ),
            Catchup::Snapshot(_)
        ));
    }

    #[test]
    fn a_replay_never_takes_more_than_half_the_room_left() {
        let mut topic = Topic::new("t".into(), 9, 100);
        for n in 0..30 {
            set(&mut topic, "a", n);
        }
        let (tx, mut rx) = outbox(40);
        for _ in 0..10 {
            assert_eq!(tx.try_push("filler".into()), Pushed::Queued);
        }
        // 30 frames of room: a 20-event replay would leave too little, so a snapshot comes.
        let from = Position {
            epoch: 9,
            offset: 10,
        };
        assert!(topic.subscribe(1, &tx, Some(from)));
        let frames: Vec<_> = std::iter::from_fn(|| rx.frames.try_recv().ok()).collect();
        assert_eq!(frames.len(), 11);
        assert!(frames[10].as_str().contains(r#""type":"snapshot""#));
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
        assert_eq!(
            rx.behind.due(&rx.frames),
            Vec::<String>::new(),
            "not while frames wait"
        );
        let queued = drain(&mut rx);
        assert_eq!(queued.len(), 3);
        assert_eq!(offsets(&queued), [3, 4]);
        assert_eq!(rx.behind.due(&rx.frames), ["t"]);

        assert!(!topic.catch_up(1), "caught up");
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
