//! A connection's bounded outgoing queue of encoded frames.
//!
//! The hub pushes into it without waiting (`try_push`), so one slow reader can never stall a
//! publisher or the other subscribers. When the queue is full the connection is marked as
//! lagging: its socket task closes it, and the client resumes from its last position on
//! reconnect, so nothing is lost and the hub's memory stays bounded.

use axum::extract::ws::Utf8Bytes;
use std::sync::Arc;
use tokio::sync::{mpsc, Notify};

/// A JSON frame encoded once and shared by every connection that sends it.
pub type EncodedFrame = Utf8Bytes;

/// The sending side, held by the hub for each subscription.
#[derive(Clone, Debug)]
pub struct Outbox {
    frames: mpsc::Sender<EncodedFrame>,
    lagged: Arc<Notify>,
}

/// The receiving side, held by the connection's socket task.
#[derive(Debug)]
pub struct Inbox {
    pub frames: mpsc::Receiver<EncodedFrame>,
    pub lagged: Arc<Notify>,
}

/// Creates a queue holding at most `capacity` frames.
pub fn outbox(capacity: usize) -> (Outbox, Inbox) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    let lagged = Arc::new(Notify::new());
    (
        Outbox {
            frames: tx,
            lagged: lagged.clone(),
        },
        Inbox { frames: rx, lagged },
    )
}

impl Outbox {
    /// Queues a frame. Returns false when the connection is gone or too slow; the caller
    /// drops the subscription, and a slow connection is told to close.
    pub fn try_push(&self, frame: EncodedFrame) -> bool {
        match self.frames.try_send(frame) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.lagged.notify_one();
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
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
