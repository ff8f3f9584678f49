//! The hub: who on *this* instance follows what. For every topic a local connection
//! subscribes to, the hub follows the topic on the [`Engine`] and keeps a copy of it fed by
//! the engine's deliveries ([`follow`]); each delivered event's frame, encoded once by the
//! engine, is queued to every local subscriber's outbox ([`outbox`]). It catches up
//! subscribers that resume or fell behind, and keeps who is on each board ([`presence`]),
//! flushing each board's presence a moment after it changes and telling who is typing.
//!
//! What a topic *is* (its state, offsets and history, and the writes that change them)
//! belongs to the engine; the hub holds no topic nobody here reads, and forgets one once its
//! last local subscriber has gone.

pub(crate) mod follow;
pub(crate) mod outbox;
pub(crate) mod presence;

use crate::access::person::Someone;
use crate::access::Caller;
use crate::boards::BoardView;
use crate::clock::now_iso8601;
use crate::encoded::{encode, EncodedFrame};
use crate::engine::{Committed, Deliveries, Engine, EngineError, TopicCopy, Viewer};
use crate::metrics::Metrics;
use crate::protocol::{BoardFrame, Position, ServerFrame, Typing};
use follow::{Follow, Sent};
use outbox::{Inbox, Next, Outbox, QueueLimits};
use parking_lot::Mutex;
use presence::{Boards, PresenceSettings};
use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

/// How long after a board's first change its presence frame goes out: the changes of that
/// moment (a burst of joins, a deploy's reconnects) are one frame.
const COALESCE: Duration = Duration::from_millis(50);
/// The same on a board with more people than a frame lists: its count, once a second.
const COALESCE_CROWDED: Duration = Duration::from_secs(1);

/// Identifies one socket connection for as long as the process runs.
pub(crate) type ConnectionId = u64;

pub(crate) struct Hub {
    /// What each connection's queue holds before it counts as too slow.
    queue: QueueLimits,
    /// Boards whose viewers here changed, to tell the other instances, in order.
    presence_changed: tokio::sync::mpsc::UnboundedSender<String>,
    /// How long a person stays after their last page closed.
    grace: Duration,
    /// The hub itself, for the tasks it starts.
    this: Weak<Hub>,
    /// Why the engine cannot be reached, while it cannot: every page is told.
    stale: Mutex<Option<String>>,
    engine: Arc<dyn Engine>,
    metrics: Arc<Metrics>,
    follows: Mutex<HashMap<String, Arc<Followed>>>,
    /// Every topic marked as not updating, followed here or not, with why.
    marks: Mutex<HashMap<String, String>>,
    boards: Mutex<Boards>,
    next_connection: AtomicU64,
}

/// A topic this instance follows.
struct Followed {
    /// Set once the engine's copy has been loaded, by the first local subscriber.
    loaded: tokio::sync::OnceCell<()>,
    follow: Mutex<Follow>,
}

impl Hub {
    /// A hub for this instance, taking the engine's deliveries.
    pub(crate) fn new(
        queue: QueueLimits,
        presence: PresenceSettings,
        engine: Arc<dyn Engine>,
        metrics: Arc<Metrics>,
    ) -> Arc<Self> {
        let (presence_changed, changes) = tokio::sync::mpsc::unbounded_channel();
        let hub = Arc::new_cyclic(|hub: &Weak<Hub>| {
            let deliveries: Weak<dyn Deliveries> = hub.clone();
            engine.deliver_to(deliveries);
            Hub {
                queue,
                presence_changed,
                this: hub.clone(),
                stale: Mutex::default(),
                grace: presence.grace,
                boards: Mutex::new(Boards::new(engine.instance_tag(), presence)),
                engine,
                metrics,
                follows: Mutex::default(),
                marks: Mutex::default(),
                next_connection: AtomicU64::new(1),
            }
        });
        tokio::spawn(share_presence(Arc::downgrade(&hub), changes));
        hub
    }

    /// The viewer id a connection has in presence frames.
    pub(crate) fn viewer_id(&self, connection: ConnectionId) -> String {
        self.boards.lock().viewer_id(connection)
    }

    pub(crate) fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// A new connection id for `caller`, and its outgoing queue.
    pub(crate) fn connect(&self, caller: Caller) -> (ConnectionId, Outbox, Inbox) {
        let id = self.next_connection.fetch_add(1, Ordering::Relaxed);
        let (outbox, inbox) = outbox::outbox(self.queue, caller);
        (id, outbox, inbox)
    }

    /// Subscribes a connection (again, if it already is): queues its snapshot or missed
    /// events, then live events follow; a snapshot its queue has no room for goes once the
    /// queue is written out. The first local subscriber of a topic has the hub follow it on
    /// the engine. Returns the bytes queued at once.
    pub(crate) async fn subscribe(
        &self,
        connection: ConnectionId,
        outbox: &Outbox,
        name: &str,
        resume: Option<Position>,
    ) -> Result<usize, EngineError> {
        // However this ends, a follow nobody uses is let go: also when the caller stops
        // waiting (its connection closed) while the copy loads. Made first, so it is dropped
        // last, after this call's own reference to the follow.
        let _release = Release { hub: self, name };
        let followed = self
            .follows
            .lock()
            .entry(name.to_owned())
            .or_insert_with(|| {
                let mut follow = Follow::loading(name.to_owned());
                follow.mark(self.marks.lock().get(name).cloned());
                Arc::new(Followed {
                    loaded: tokio::sync::OnceCell::new(),
                    follow: Mutex::new(follow),
                })
            })
            .clone();
        let loaded = followed
            .loaded
            .get_or_try_init(|| async {
                let copy = self.engine.follow(name).await?;
                let queued = followed.follow.lock().load(copy);
                self.metrics.frames_queued.inc_by(queued);
                Ok::<_, EngineError>(())
            })
            .await;
        let subscribed = match loaded {
            Ok(()) => Ok(followed.follow.lock().subscribe(connection, outbox, resume)),
            Err(e) => Err(e),
        };
        drop(followed);
        subscribed
    }

    pub(crate) fn unsubscribe(&self, connection: ConnectionId, name: &str) {
        let followed = self.follows.lock().get(name).cloned();
        if let Some(followed) = followed {
            followed.follow.lock().unsubscribe(connection);
        }
        self.release_if_unused(name);
    }

    /// Whether the connection is subscribed to the topic.
    pub(crate) fn is_subscribed(&self, connection: ConnectionId, topic: &str) -> bool {
        let followed = self.follows.lock().get(topic).cloned();
        followed.is_some_and(|f| f.follow.lock().has_subscriber(connection))
    }

    /// Whether the connection's page is on the board.
    pub(crate) fn is_member(&self, connection: ConnectionId, board: &str) -> bool {
        self.boards.lock().is_member(board, connection)
    }

    /// Stops queueing anything a connection may no longer read: drops every subscription
    /// whose reader `may_read` no longer allows the topic, and takes every page off a board
    /// `may_see` no longer shows it (with no grace). Done at once, under the locks the
    /// deliveries take, so not one more frame of them is queued; each connection then finds
    /// what it lost and says why (`Session::recheck`). A topic or board anyone may read is
    /// looked at once, not once per reader: that is most of them.
    pub(crate) fn enforce(
        &self,
        may_read: impl Fn(&Caller, &str) -> bool,
        may_see: impl Fn(&Caller, &str) -> bool,
    ) {
        let anyone = Caller::default();
        let follows: Vec<(String, Arc<Followed>)> = self
            .follows
            .lock()
            .iter()
            .filter(|(name, _)| !may_read(&anyone, name))
            .map(|(name, followed)| (name.clone(), followed.clone()))
            .collect();
        let mut names = Vec::with_capacity(follows.len());
        for (name, followed) in follows {
            followed
                .follow
                .lock()
                .retain_subscribers(|outbox| may_read(&outbox.reader(), &name));
            names.push(name);
        }
        for name in names {
            self.release_if_unused(&name);
        }
        let due = self.boards.lock().retain_members(
            |board| may_see(&anyone, board),
            |board, outbox| may_see(&outbox.reader(), board),
        );
        for board in due {
            self.flush_soon(&board);
            let _ = self.presence_changed.send(board);
        }
    }

    /// Stops following a topic once no local connection reads it.
    fn release_if_unused(&self, name: &str) {
        // Unfollowed whether or not its copy ever loaded: a follow abandoned half way may
        // still be subscribed on the engine.
        let mut follows = self.follows.lock();
        // The map's own reference is the only one: no subscribe is under way, and none can
        // start while the map is locked.
        let unused = follows.get(name).is_some_and(|followed| {
            Arc::strong_count(followed) == 1 && followed.follow.lock().subscriber_count() == 0
        });
        if unused {
            follows.remove(name);
            // Inside the lock: a subscribe that follows the topic again comes after this.
            self.engine.unfollow(name);
        }
    }

    /// Each board someone on this instance is on: its name, the people on it, and the pages
    /// open on it here.
    pub(crate) fn watched(&self) -> Vec<(String, u64, usize)> {
        self.boards.lock().watched()
    }

    /// How many local connections follow `topic`.
    pub(crate) fn subscribers(&self, topic: &str) -> usize {
        let followed = self.follows.lock().get(topic).cloned();
        followed.map_or(0, |f| f.follow.lock().subscriber_count())
    }

    /// Adds a connection's page to a board as `someone`'s.
    pub(crate) fn join(
        &self,
        board: &str,
        connection: ConnectionId,
        outbox: &Outbox,
        someone: Someone,
    ) {
        let due = self
            .boards
            .lock()
            .join(board, connection, outbox, someone, &now_iso8601());
        if due {
            self.flush_soon(board);
        }
        let _ = self.presence_changed.send(board.to_owned());
        if let Some(reason) = self.stale.lock().clone() {
            outbox.try_push(encode(&ServerFrame::Stale {
                topic: None,
                reason,
            }));
        }
    }

    /// Tells every page when the engine stops being reachable (`stale`, with why) and when
    /// it is again (`fresh`); nothing while it stays as it was.
    pub(crate) fn engine_health(&self, unreachable: Option<String>) {
        let mut stale = self.stale.lock();
        if *stale == unreachable {
            return;
        }
        let frame = match &unreachable {
            Some(reason) => {
                tracing::warn!("the engine cannot be reached ({reason}): screens are told they are not updating");
                ServerFrame::Stale {
                    topic: None,
                    reason: reason.clone(),
                }
            }
            None => {
                tracing::info!("the engine answers again: screens are told they are current");
                ServerFrame::Fresh { topic: None }
            }
        };
        self.metrics.engine_up.set(i64::from(unreachable.is_none()));
        *stale = unreachable;
        drop(stale);
        self.boards.lock().send_to_all(&encode(&frame));
    }

    /// Closes a connection's page on a board; its person leaves after the grace unless
    /// another of their pages is there by then.
    pub(crate) fn leave(&self, board: &str, connection: ConnectionId) {
        if self.boards.lock().leave(board, connection) {
            self.flush_soon(board);
        }
        let _ = self.presence_changed.send(board.to_owned());
        let (hub, board) = (self.this.clone(), board.to_owned());
        let grace = self.grace;
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            let Some(hub) = hub.upgrade() else { return };
            if hub.boards.lock().end_grace(&board) {
                hub.flush_soon(&board);
            }
            let _ = hub.presence_changed.send(board);
        });
    }

    /// Takes the pages the other instances have on a board.
    fn take_remote(&self, board: &str, others: Vec<Viewer>) {
        if self.boards.lock().remote(board, others) {
            self.flush_soon(board);
        }
    }

    /// Sends the board's presence a moment from now, with whatever else changes until then.
    fn flush_soon(&self, board: &str) {
        let wait = if self.boards.lock().crowded(board) {
            COALESCE_CROWDED
        } else {
            COALESCE
        };
        let (hub, board) = (self.this.clone(), board.to_owned());
        tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            if let Some(hub) = hub.upgrade() {
                hub.boards.lock().flush(&board);
            }
        });
    }

    /// Tells a board's other pages, here and on the other instances, that the person of this
    /// connection's page is writing a note (at most once a second per page).
    pub(crate) async fn typing(&self, board: &str, connection: ConnectionId) {
        let Some(typing) = self.boards.lock().typing(board, connection) else {
            return;
        };
        self.boards.lock().tell_typing(&typing);
        self.engine.share_typing(typing).await;
    }

    /// Shows every viewer of a board its new definition (its file changed).
    pub(crate) fn show_board(&self, name: &str, view: BoardView) {
        let frame = encode(&ServerFrame::Board(BoardFrame {
            name: name.to_owned(),
            view,
        }));
        self.boards.lock().show(name, frame);
    }

    /// The next frame a connection is to send: what its queue holds, and each time the queue
    /// is written out, what its topics and boards have pending for it (the rest of a replay,
    /// or what it missed while its queue was full, coalesced). Both transports write out
    /// what this gives them.
    pub(crate) async fn next_frame(&self, connection: ConnectionId, inbox: &Inbox) -> EncodedFrame {
        loop {
            match inbox.next().await {
                Next::Frame(frame) => return frame,
                Next::Pending { topics, fell } => {
                    self.metrics.slow_consumers.inc_by(fell);
                    inbox.again(self.send_pending(connection, topics));
                }
            }
        }
    }

    /// Sends a connection what it has pending on each topic or board listed, now that its
    /// queue is written out: the rest of a replay, or what it missed while its queue was
    /// full, coalesced. Returns those it still cannot take.
    fn send_pending(&self, connection: ConnectionId, waiting: Vec<String>) -> Vec<String> {
        let mut still = Vec::new();
        for key in waiting {
            let caught = match key.strip_prefix(presence::BOARD_KEY) {
                Some(board) => self.boards.lock().catch_up(board, connection),
                None => {
                    let followed = self.follows.lock().get(&key).cloned();
                    match followed.map(|f| f.follow.lock().send_pending(connection)) {
                        Some(Sent::More) => false,
                        Some(Sent::Coalesced) => {
                            self.metrics.catch_ups.inc();
                            true
                        }
                        _ => true,
                    }
                }
            };
            if !caught {
                still.push(key);
            }
        }
        still
    }

    /// Asks every open board page, on this instance and the others, to reload itself within
    /// `within`; returns how many pages of this instance were asked. For after a deploy that
    /// changed the page itself, or a wedged screen.
    pub(crate) async fn reload_screens(&self, within: std::time::Duration) -> usize {
        let within_ms = within.as_millis() as u64;
        self.engine.reload_elsewhere(within_ms).await;
        self.reload_here(within_ms)
    }

    fn reload_here(&self, within_ms: u64) -> usize {
        let frame = encode(&ServerFrame::Reload { within_ms });
        self.boards.lock().send_to_all(&frame)
    }
}

impl Deliveries for Hub {
    fn deliver(&self, topic: &str, epoch: u64, events: &[Committed]) {
        let Some(followed) = self.follows.lock().get(topic).cloned() else {
            return;
        };
        let queued = followed.follow.lock().deliver(epoch, events);
        self.metrics.frames_queued.inc_by(queued);
    }

    fn reset(&self, copy: TopicCopy) {
        let Some(followed) = self.follows.lock().get(&copy.name).cloned() else {
            return;
        };
        followed.follow.lock().reset(copy);
    }

    fn viewers_changed(&self, board: &str) {
        if !self.boards.lock().watches(board) {
            return;
        }
        let (hub, board) = (self.this.clone(), board.to_owned());
        let engine = self.engine.clone();
        tokio::spawn(async move {
            let Ok(others) = engine.others_viewing(&board).await else {
                return;
            };
            if let Some(hub) = hub.upgrade() {
                hub.take_remote(&board, others);
            }
        });
    }

    fn reload(&self, within_ms: u64) {
        self.reload_here(within_ms);
    }

    fn typing(&self, typing: Typing) {
        self.boards.lock().tell_typing(&typing);
    }

    fn marked(&self, topic: &str, mark: Option<String>) {
        let mut marks = self.marks.lock();
        match &mark {
            Some(reason) => marks.insert(topic.to_owned(), reason.clone()),
            None => marks.remove(topic),
        };
        drop(marks);
        let followed = self.follows.lock().get(topic).cloned();
        if let Some(followed) = followed {
            followed.follow.lock().mark(mark);
        }
    }

    fn all_marks(&self, marks: HashMap<String, String>) {
        let before = std::mem::replace(&mut *self.marks.lock(), marks.clone());
        let cleared: Vec<String> = before
            .into_keys()
            .filter(|topic| !marks.contains_key(topic))
            .collect();
        let changes: Vec<(String, Option<String>)> = cleared
            .into_iter()
            .map(|topic| (topic, None))
            .chain(
                marks
                    .into_iter()
                    .map(|(topic, reason)| (topic, Some(reason))),
            )
            .collect();
        for (topic, mark) in changes {
            let followed = self.follows.lock().get(&topic).cloned();
            if let Some(followed) = followed {
                followed.follow.lock().mark(mark);
            }
        }
    }
}

/// Tells the other instances who views each board here whenever that changes: each board
/// whose change is waiting once, with its viewers as they are then, so a burst of joins is
/// one message. Then reads theirs, so a board's first viewer here sees the others at once.
async fn share_presence(hub: Weak<Hub>, mut changes: tokio::sync::mpsc::UnboundedReceiver<String>) {
    let mut waiting = Vec::new();
    while changes.recv_many(&mut waiting, 4096).await > 0 {
        let boards: BTreeSet<String> = waiting.drain(..).collect();
        for board in boards {
            let Some(hub) = hub.upgrade() else { return };
            let viewers = hub.boards.lock().local_viewers(&board);
            let engine = hub.engine.clone();
            engine.share_presence(&board, viewers).await;
            if let Ok(others) = engine.others_viewing(&board).await {
                hub.take_remote(&board, others);
            }
        }
    }
}

/// Lets go of a topic's follow if nothing uses it, when dropped.
struct Release<'a> {
    hub: &'a Hub,
    name: &'a str,
}

impl Drop for Release<'_> {
    fn drop(&mut self) {
        self.hub.release_if_unused(self.name);
    }
}
