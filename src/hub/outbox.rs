//! A connection's bounded outgoing queue of encoded frames, and the topics with more to send
//! once it is written out. It is bounded in frames and in bytes: a client that asks for large
//! frames and does not read them (snapshots of a big topic, over and over) fills it as soon
//! as one that asks for small ones.
//!
//! The hub pushes into it without waiting (`try_push`), so one slow reader can never stall a
//! publisher or the other subscribers. When the queue is full, a topic stops queueing events
//! for the connection and only notes which entities changed; once the connection has written
//! its queue out, it is caught up with one frame holding the latest state of those entities
//! (see [`super::follow`]). A resume longer than the queue is streamed the same way: the topic
//! lists itself as having more, and sends the next part each time the queue is written out.
//! Memory per connection stays bounded by the queue and the topic's entities, and the
//! connection is never dropped for being slow.
//!
//! It is a deque under a lock rather than a channel because an idle connection must cost
//! next to nothing: an empty deque holds no memory (a channel keeps its first block of slots,
//! a kilobyte and more, for every connection however quiet), and the queue lets its memory
//! go each time it is written out. The pending topics sit under the same lock, so "written
//! out, and what is pending" is one look.

use crate::access::Caller;
use crate::encoded::EncodedFrame;
use parking_lot::Mutex;
use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;
use tokio::sync::Notify;

/// The sending side, held by the hub for each subscription and by the connection's session.
#[derive(Clone, Debug)]
pub(crate) struct Outbox {
    queue: Arc<Queue>,
}

/// The receiving side, held by the connection's writer. Dropping it closes the queue.
#[derive(Debug)]
pub(crate) struct Inbox {
    queue: Arc<Queue>,
}

/// How much one connection's queue holds before the connection counts as behind.
#[derive(Clone, Copy, Debug)]
pub(crate) struct QueueLimits {
    pub(crate) frames: usize,
    /// The frames' bytes in all; one frame is always taken into an empty queue, however
    /// large, so no frame is too large to send.
    pub(crate) bytes: usize,
}

#[derive(Debug)]
struct Queue {
    /// The limits, narrowed: every connection has a queue.
    frames: u32,
    bytes: u32,
    state: Mutex<State>,
    /// Wakes the writer: a frame was queued, or a topic has more pending.
    ready: Notify,
    /// Wakes a [`Outbox::push`] waiting for room.
    room: Notify,
}

#[derive(Debug, Default)]
struct State {
    /// Whose connection this is, as it last checked its access: the hub stops queueing
    /// what they may no longer read by it ([`super::Hub::enforce`]).
    reader: Caller,
    frames: VecDeque<EncodedFrame>,
    /// The queued frames' bytes.
    bytes: usize,
    /// Topics (and boards) with more for the connection than its queue could take.
    pending: BTreeSet<String>,
    /// Topics that could not send what they have pending even into the written-out queue:
    /// pending again once the next frame goes out, not at once (which would spin).
    retry: BTreeSet<String>,
    /// How many times the connection fell behind since the writer last looked.
    fell: u64,
    closed: bool,
}

/// What became of a frame offered to a queue.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Pushed {
    Queued,
    /// The queue is full: the connection is slower than the frames.
    Full,
    /// The connection is gone.
    Closed,
}

/// What a writer is to do next.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Next {
    /// Send this frame.
    Frame(EncodedFrame),
    /// The queue is written out: ask these topics (and boards) for what they have pending
    /// ([`super::Hub::send_pending`]), and list again, with [`Inbox::again`], those that
    /// still cannot send it. `fell` counts the times the connection fell behind meanwhile.
    Pending { topics: Vec<String>, fell: u64 },
}

/// Creates a queue for `reader`'s connection, holding at most what `limits` allow.
pub(crate) fn outbox(limits: QueueLimits, reader: Caller) -> (Outbox, Inbox) {
    let narrow = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    let queue = Arc::new(Queue {
        frames: narrow(limits.frames.max(1)),
        bytes: narrow(limits.bytes),
        state: Mutex::new(State {
            reader,
            ..State::default()
        }),
        ready: Notify::new(),
        room: Notify::new(),
    });
    (
        Outbox {
            queue: queue.clone(),
        },
        Inbox { queue },
    )
}

/// A queue bounded in frames only, for tests.
#[cfg(test)]
pub(crate) fn of_frames(frames: usize) -> (Outbox, Inbox) {
    outbox(
        QueueLimits {
            frames,
            bytes: usize::MAX,
        },
        Caller::default(),
    )
}

impl Outbox {
    /// Whose connection this is.
    pub(crate) fn reader(&self) -> Caller {
        self.queue.state.lock().reader.clone()
    }

    /// Records who the connection's caller is now (their key's scopes changed).
    pub(crate) fn set_reader(&self, reader: Caller) {
        self.queue.state.lock().reader = reader;
    }

    /// Queues a frame if there is room, without waiting.
    pub(crate) fn try_push(&self, frame: EncodedFrame) -> Pushed {
        let mut state = self.queue.state.lock();
        if state.closed {
            return Pushed::Closed;
        }
        let queue = &self.queue;
        let over_bytes =
            state.bytes + frame.len() > queue.bytes as usize && !state.frames.is_empty();
        if state.frames.len() >= queue.frames as usize || over_bytes {
            return Pushed::Full;
        }
        state.bytes += frame.len();
        state.frames.push_back(frame);
        drop(state);
        self.queue.ready.notify_one();
        Pushed::Queued
    }

    /// Notes that `topic` stopped queueing for this connection until it catches up.
    pub(crate) fn fall_behind(&self, topic: &str) {
        let mut state = self.queue.state.lock();
        // Counted once per fall: a topic (or board) already behind only adds to what it
        // will send.
        if state.pending.insert(topic.to_owned()) {
            state.fell += 1;
        }
        drop(state);
        // The writer may have written the whole queue out since the push that found it full,
        // and be asleep with nothing to send.
        self.queue.ready.notify_one();
    }

    /// Notes that `topic` has more to send once the queue is written out (a replay longer
    /// than the queue). Nothing was missed: this is not falling behind.
    pub(crate) fn send_later(&self, topic: &str) {
        self.queue.state.lock().pending.insert(topic.to_owned());
        self.queue.ready.notify_one();
    }

    /// How many frames the queue can take right now (if they are small enough).
    pub(crate) fn room(&self) -> usize {
        let state = self.queue.state.lock();
        if state.bytes >= self.queue.bytes as usize {
            return 0;
        }
        (self.queue.frames as usize).saturating_sub(state.frames.len())
    }

    /// Queues a frame, waiting for room. For answers to the connection's own requests.
    /// False if the connection is gone.
    pub(crate) async fn push(&self, frame: EncodedFrame) -> bool {
        loop {
            // Registered before the look, so room made in between still wakes it.
            let room = self.queue.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            match self.try_push(frame.clone()) {
                Pushed::Queued => return true,
                Pushed::Closed => return false,
                Pushed::Full => room.await,
            }
        }
    }
}

impl Inbox {
    /// Waits for what to do next: the next frame, or, once the queue is written out, the
    /// topics with more pending.
    pub(crate) async fn next(&self) -> Next {
        // The writer is woken when a frame is queued, so the frame is usually there: taken
        // without registering as a waiter first (two trips through the wake-up list's lock
        // per frame, for every subscriber of every event).
        if let Some(next) = self.try_next() {
            return next;
        }
        loop {
            let ready = self.queue.ready.notified();
            tokio::pin!(ready);
            ready.as_mut().enable();
            if let Some(next) = self.try_next() {
                return next;
            }
            ready.await;
        }
    }

    /// What to do next, if there is anything.
    pub(crate) fn try_next(&self) -> Option<Next> {
        if let Some(frame) = self.try_frame() {
            return Some(Next::Frame(frame));
        }
        let mut state = self.queue.state.lock();
        if state.pending.is_empty() {
            return None;
        }
        let topics = std::mem::take(&mut state.pending).into_iter().collect();
        let fell = std::mem::take(&mut state.fell);
        Some(Next::Pending { topics, fell })
    }

    /// The next frame, if one is queued: for a writer gathering a batch.
    pub(crate) fn try_frame(&self) -> Option<EncodedFrame> {
        let mut state = self.queue.state.lock();
        let frame = state.frames.pop_front()?;
        state.bytes -= frame.len();
        // Written out, the queue lets its memory go: an idle connection holds none, at the
        // cost of an allocation for the next frame (tens of nanoseconds, against the
        // microseconds its write takes).
        if state.frames.is_empty() {
            state.frames = VecDeque::new();
        }
        if !state.retry.is_empty() {
            let retry = std::mem::take(&mut state.retry);
            state.pending.extend(retry);
        }
        drop(state);
        self.queue.room.notify_one();
        Some(frame)
    }

    /// Lists topics again that could not send what they have pending yet: they are asked
    /// once the next frame has gone out.
    pub(crate) fn again(&self, topics: Vec<String>) {
        if !topics.is_empty() {
            self.queue.state.lock().retry.extend(topics);
        }
    }
}

impl Drop for Inbox {
    fn drop(&mut self) {
        let mut state = self.queue.state.lock();
        state.closed = true;
        state.frames = VecDeque::new();
        state.bytes = 0;
        state.pending.clear();
        state.retry.clear();
        drop(state);
        self.queue.room.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outbox(frames: usize) -> (Outbox, Inbox) {
        of_frames(frames)
    }

    #[test]
    fn the_queue_is_bounded_in_bytes_too_but_takes_any_one_frame() {
        let limits = QueueLimits {
            frames: 100,
            bytes: 10,
        };
        let (outbox, inbox) = super::outbox(limits, Caller::default());
        let big: EncodedFrame = "x".repeat(50).into();
        assert_eq!(
            outbox.try_push(big.clone()),
            Pushed::Queued,
            "one always fits"
        );
        assert_eq!(outbox.try_push("y".into()), Pushed::Full);
        assert_eq!(outbox.room(), 0);
        assert_eq!(inbox.try_frame(), Some(big));
        assert_eq!(outbox.try_push("12345".into()), Pushed::Queued);
        assert_eq!(outbox.try_push("12345".into()), Pushed::Queued);
        assert_eq!(outbox.try_push("1".into()), Pushed::Full, "10 bytes held");
    }

    #[test]
    fn frames_come_out_in_order_then_what_is_pending() {
        let (outbox, inbox) = outbox(2);
        assert_eq!(outbox.try_push("a".into()), Pushed::Queued);
        assert_eq!(outbox.try_push("b".into()), Pushed::Queued);
        assert_eq!(outbox.try_push("c".into()), Pushed::Full);
        outbox.fall_behind("t");
        outbox.send_later("u");
        assert_eq!(inbox.try_next(), Some(Next::Frame("a".into())));
        assert_eq!(outbox.room(), 1);
        assert_eq!(inbox.try_frame(), Some("b".into()));
        assert_eq!(
            inbox.try_next(),
            Some(Next::Pending {
                topics: vec!["t".into(), "u".into()],
                fell: 1
            })
        );
        assert_eq!(inbox.try_next(), None);
        inbox.again(vec!["t".into()]);
        assert_eq!(
            inbox.try_next(),
            None,
            "not again before a frame has gone out"
        );
        outbox.try_push("d".into());
        assert_eq!(inbox.try_next(), Some(Next::Frame("d".into())));
        assert!(matches!(
            inbox.try_next(),
            Some(Next::Pending { fell: 0, .. })
        ));
    }

    #[test]
    fn falling_behind_wakes_a_writer_that_has_written_everything_out() {
        let (outbox, inbox) = outbox(1);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        runtime.block_on(async {
            let writer = tokio::spawn(async move { inbox.next().await });
            // The writer parks: its queue is empty. Then a topic that found the queue full
            // a moment before notes that it fell behind.
            tokio::task::yield_now().await;
            outbox.fall_behind("t");
            outbox.fall_behind("t");
            let next = tokio::time::timeout(std::time::Duration::from_secs(1), writer)
                .await
                .expect("the writer is woken")
                .unwrap();
            let topics = vec!["t".to_owned()];
            assert_eq!(
                next,
                Next::Pending { topics, fell: 1 },
                "one fall, counted once"
            );
        });
    }

    #[test]
    fn a_burst_gives_its_memory_back_once_written_out() {
        let (outbox, inbox) = outbox(1000);
        for _ in 0..500 {
            outbox.try_push("x".into());
        }
        while inbox.try_frame().is_some() {}
        assert_eq!(outbox.queue.state.lock().frames.capacity(), 0);
    }

    #[test]
    fn a_closed_queue_refuses_frames_and_wakes_who_waits_for_room() {
        let (outbox, inbox) = outbox(1);
        assert_eq!(outbox.try_push("a".into()), Pushed::Queued);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(async {
            let waiting = tokio::spawn({
                let outbox = outbox.clone();
                async move { outbox.push("b".into()).await }
            });
            tokio::task::yield_now().await;
            drop(inbox);
            assert!(!waiting.await.unwrap(), "gone, not queued");
        });
        assert_eq!(outbox.try_push("c".into()), Pushed::Closed);
    }
}
