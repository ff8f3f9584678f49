//! A connection's bounded outgoing queue of encoded frames, and the topics it fell behind on.
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
    behind: Arc<Behind>,
}

/// The receiving side, held by the connection's task.
#[derive(Debug)]
pub struct Inbox {
    pub frames: mpsc::Receiver<EncodedFrame>,
    pub behind: Arc<Behind>,
}

/// The topics a connection fell behind on, waiting for it to catch up.
#[derive(Debug, Default)]
pub struct Behind {
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
    let behind = Arc::new(Behind::default());
    (
        Outbox {
            frames: tx,
            behind: behind.clone(),
        },
        Inbox { frames: rx, behind },
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
        self.behind.topics.lock().insert(topic.to_owned());
        self.behind.any.store(true, Ordering::Release);
        self.behind.fell.notify_one();
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

impl Behind {
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
