//! A connection's bounded outgoing queue of encoded frames, and the topics with more to send
//! once it is written out.
//!
//! The hub pushes into it without waiting (`try_push`), so one slow reader can never stall a
//! publisher or the other subscribers. When the queue is full, a topic stops queueing events
//! for the connection and only notes which entities changed; once the connection has written
//! its queue out, it is caught up with one frame holding the latest state of those entities
//! (see [`super::topic`]). Memory per connection stays bounded by the queue and the topic's
//! entities, and the connection is never dropped for being slow.

use axum::extract::ws::Utf8Bytes;
use parking_lot::Mutex;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::sync::{mpsc, Notify};

/// A JSON frame encoded once and shared by every connection that sends it.
pub type EncodedFrame = Utf8Bytes;

/// The sending side, held by the hub for each subscription.
#[derive(Clone, Debug)]
pub struct Outbox {
    frames: mpsc::Sender<EncodedFrame>,
    waiting: Arc<Waiting>,
}

/// The receiving side, held by the connection's task.
#[derive(Debug)]
pub struct Inbox {
    pub frames: mpsc::Receiver<EncodedFrame>,
    pub waiting: Arc<Waiting>,
}

/// The topics with frames for a connection that its queue could not take yet: a replay
/// longer than the queue, or a topic it fell behind on.
#[derive(Debug, Default)]
pub struct Waiting {
    topics: Mutex<BTreeSet<String>>,
    /// Set with `topics`, so the writer checks a flag, not a lock, after each write.
    any: AtomicBool,
    /// Wakes the connection's task when it falls behind.
    pub fell: Notify,
}

/// What became of a frame offered to a queue.
#[derive(Debug, PartialEq, Eq)]
pub enum Pushed {
    Queued,
    /// The queue is full: the connection is slower than the frames.
    Full,
    /// The connection is gone.
    Closed,
}

/// Creates a queue holding at most `capacity` frames.
pub fn outbox(capacity: usize) -> (Outbox, Inbox) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    let waiting = Arc::new(Waiting::default());
    (
        Outbox {
            frames: tx,
            waiting: waiting.clone(),
        },
        Inbox {
            frames: rx,
            waiting,
        },
    )
}

impl Outbox {
    /// Queues a frame if there is room, without waiting.
    pub fn try_push(&self, frame: EncodedFrame) -> Pushed {
        match self.frames.try_send(frame) {
            Ok(()) => Pushed::Queued,
            Err(mpsc::error::TrySendError::Full(_)) => Pushed::Full,
            Err(mpsc::error::TrySendError::Closed(_)) => Pushed::Closed,
        }
    }

    /// Notes that `topic` stopped queueing for this connection until it catches up.
    pub fn fall_behind(&self, topic: &str) {
        self.waiting.topics.lock().insert(topic.to_owned());
        self.waiting.any.store(true, Ordering::Release);
        self.waiting.fell.notify_one();
    }

    /// Notes that `topic` has more to send once the queue is written out (a replay longer
    /// than the queue). Unlike falling behind, nothing was missed: no wake-up is needed, as
    /// the frames already queued bring the connection back to its queue.
    pub fn send_later(&self, topic: &str) {
        self.waiting.topics.lock().insert(topic.to_owned());
        self.waiting.any.store(true, Ordering::Release);
    }

    /// How many frames the queue can take right now.
    pub fn room(&self) -> usize {
        self.frames.capacity()
    }

    /// Queues a frame, waiting for room. For answers to the connection's own requests.
    pub async fn push(&self, frame: EncodedFrame) -> bool {
        self.frames.send(frame).await.is_ok()
    }
}

impl Waiting {
    /// The topics to catch up on, if the queue is written out and there are any; they are no
    /// longer listed (a topic that cannot catch up yet is listed again with [`Self::again`]).
    pub fn due(&self, frames: &mpsc::Receiver<EncodedFrame>) -> Vec<String> {
        if !frames.is_empty() || !self.any.load(Ordering::Acquire) {
            return Vec::new();
        }
        let mut topics = self.topics.lock();
        self.any.store(false, Ordering::Release);
        std::mem::take(&mut *topics).into_iter().collect()
    }

    /// Lists topics again that could not catch up yet.
    pub fn again(&self, topics: Vec<String>) {
        if topics.is_empty() {
            return;
        }
        self.topics.lock().extend(topics);
        self.any.store(true, Ordering::Release);
    }
}
