//! One client connection's view of the hub, whatever carries it (`/ws` or `/sse`): its
//! subscriptions and board memberships, the frames it asks for, and the answers it gets. It
//! releases everything it holds when dropped, which happens on every way out of a
//! connection: a close, an error, a dead peer, a lagging reader, shutdown.

use super::socket::Heartbeat;
use crate::boards::library::Library;
use crate::hub::outbox::{EncodedFrame, Outbox};
use crate::hub::presence::viewer_id;
use crate::hub::topic::encode;
use crate::hub::{ConnectionId, Hub, PublishError};
use crate::ops::Publish;
use crate::protocol::{
    Ack, BoardFrame, ClientFrame, ErrorCode, ErrorFrame, PublishFrame, ServerFrame, TopicRequest,
    Welcome,
};
use std::collections::HashSet;
use std::sync::Arc;

pub struct Session {
    pub hub: Arc<Hub>,
    library: Arc<Library>,
    pub id: ConnectionId,
    outbox: Outbox,
    topics: HashSet<String>,
    boards: HashSet<String>,
    /// How many topics this connection may follow at once.
    max_topics: usize,
}

impl Session {
    pub fn new(
        hub: Arc<Hub>,
        library: Arc<Library>,
        id: ConnectionId,
        outbox: Outbox,
        max_topics: usize,
    ) -> Self {
        hub.metrics().connections.inc();
        Session {
            hub,
            library,
            id,
            outbox,
            topics: HashSet::new(),
            boards: HashSet::new(),
            max_topics,
        }
    }

    /// The first frame on every connection: its viewer id and the heartbeat it will get.
    pub async fn welcome(&self, heartbeat: Heartbeat) {
        self.reply(ServerFrame::Welcome(Welcome {
            connection: viewer_id(self.id),
            server: env!("CARGO_PKG_VERSION").into(),
            heartbeat_ms: heartbeat.interval.as_millis() as u64,
            idle_timeout_ms: heartbeat.idle_timeout.as_millis() as u64,
        }))
        .await;
    }

    /// Decodes and answers one client frame.
    pub async fn handle(&mut self, text: &str) {
        let frame = match ClientFrame::decode(text) {
            Ok(frame) => frame,
            Err(error) => return self.error(error).await,
        };
        match frame {
            ClientFrame::Subscribe { topics } => {
                let refused = self.subscribe(topics);
                if !refused.is_empty() {
                    let message = format!(
                        "a connection follows at most {} topics; not subscribed: {}",
                        self.max_topics,
                        refused.join(", ")
                    );
                    self.error(ErrorFrame::new(ErrorCode::TooManySubscriptions, message))
                        .await;
                }
            }
            ClientFrame::Unsubscribe { topics } => self.unsubscribe(&topics),
            ClientFrame::Join { board } => self.join(board).await,
            ClientFrame::Leave { board } => {
                self.hub.leave(&board, self.id);
                self.boards.remove(&board);
            }
            ClientFrame::Ping { id } => self.reply(ServerFrame::Pong { id }).await,
            ClientFrame::Publish(publish) => self.publish(publish).await,
        }
    }

    /// Subscribes to each topic from the position given (a snapshot without one). Subscribing
    /// again restarts the topic from the new position. Returns the topics refused because the
    /// connection follows as many as it may.
    pub fn subscribe(&mut self, topics: Vec<TopicRequest>) -> Vec<String> {
        let mut refused = Vec::new();
        for request in topics {
            if !self.topics.contains(&request.topic) && self.topics.len() >= self.max_topics {
                refused.push(request.topic);
                continue;
            }
            let had = self.topics.remove(&request.topic);
            self.hub.unsubscribe(self.id, &request.topic);
            let has = self
                .hub
                .subscribe(self.id, &self.outbox, &request.topic, request.resume);
            if has {
                self.topics.insert(request.topic);
            }
            match (had, has) {
                (false, true) => self.hub.metrics().subscriptions.inc(),
                (true, false) => self.hub.metrics().subscriptions.dec(),
                _ => 0,
            };
        }
        refused
    }

    pub fn unsubscribe(&mut self, topics: &[String]) {
        for topic in topics {
            self.hub.unsubscribe(self.id, topic);
            if self.topics.remove(topic) {
                self.hub.metrics().subscriptions.dec();
            }
        }
    }

    /// Whether this connection follows the topic.
    pub fn follows(&self, topic: &str) -> bool {
        self.topics.contains(topic)
    }

    /// Joins a board's presence and sends its definition.
    pub async fn join(&mut self, board: String) {
        // Joined first, read second: a change in between reaches this page as a frame of its
        // own, and the page keeps whichever has the higher revision.
        self.hub.join(&board, self.id, &self.outbox);
        if let Some(view) = self.library.get(&board) {
            let name = board.clone();
            self.reply(ServerFrame::Board(BoardFrame { name, view }))
                .await;
        }
        self.boards.insert(board);
    }

    async fn publish(&mut self, publish: PublishFrame) {
        let reference = publish.reference.clone();
        let batch = (
            publish.topic,
            Publish {
                ops: publish.ops,
                user_id: publish.user_id,
                trace_id: publish.trace_id,
            },
        )
            .into();
        let answer = match self.hub.publish(batch, None).await {
            Ok((mut answer, _)) => ServerFrame::Ack(Ack {
                reference,
                published: answer.results.swap_remove(0),
            }),
            Err(e) => {
                let code = match e {
                    PublishError::Refused { .. } => ErrorCode::OpRefused,
                    PublishError::TooManyOps => ErrorCode::InvalidFrame,
                    _ => ErrorCode::StoreUnavailable,
                };
                let mut error = ErrorFrame::new(code, e.to_string());
                error.reference = reference;
                ServerFrame::Error(error)
            }
        };
        self.reply(answer).await;
    }

    pub async fn reply(&self, frame: ServerFrame) {
        self.send(encode(&frame)).await;
    }

    pub async fn error(&self, error: ErrorFrame) {
        self.reply(ServerFrame::Error(error)).await;
    }

    async fn send(&self, frame: EncodedFrame) {
        // Waiting here only slows this connection's own reading, never the hub.
        let _ = self.outbox.push(frame).await;
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let metrics = self.hub.metrics();
        metrics.connections.dec();
        metrics.subscriptions.dec_by(self.topics.len() as i64);
        for topic in &self.topics {
            self.hub.unsubscribe(self.id, topic);
        }
        for board in &self.boards {
            self.hub.leave(board, self.id);
        }
    }
}
