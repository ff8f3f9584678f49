//! `GET /ws`: one task per WebSocket connection. It decodes client frames, answers them, and
//! writes the connection's queue to the socket. A [`Session`] owns the connection's
//! subscriptions and board memberships and releases all of them when dropped, which happens
//! on every way out of the task: a close, an error, a dead socket, a lagging reader, a peer
//! silent past the idle timeout, shutdown.
//!
//! Heartbeats: the server pings every `heartbeat`; anything from the peer (a frame, or the
//! pong every WebSocket answers a ping with) counts as hearing from it. A peer that stays
//! silent past `idle_timeout` (a laptop closed, a proxy that dropped the connection without a
//! word) is closed, so its subscriptions and presence do not linger until TCP gives up.

use super::AppState;
use crate::boards::library::Library;
use crate::hub::outbox::{EncodedFrame, Inbox, Outbox};
use crate::hub::presence::viewer_id;
use crate::hub::topic::encode;
use crate::hub::{ConnectionId, Hub, PublishError};
use crate::ops::Publish;
use crate::protocol::{Ack, BoardFrame, ClientFrame, ErrorCode, ErrorFrame, ServerFrame, Welcome};
use axum::extract::ws::{close_code, CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The largest frame a client may send.
pub const MAX_CLIENT_FRAME: usize = 64 * 1024;

/// The read buffer each connection starts with; it grows when a frame needs it.
const READ_BUFFER: usize = 512;
/// How much queued output is gathered before a write. The buffer starts empty and only
/// grows this far under a burst, so an idle connection does not pay for it.
const WRITE_BUFFER: usize = 4096;

/// At most this many queued frames are written together.
const BATCH: usize = 64;

/// How long a closing connection may take to send its last frames.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// How often connections are pinged, and how long one may stay silent.
#[derive(Clone, Copy, Debug)]
pub struct Heartbeat {
    pub interval: Duration,
    pub idle_timeout: Duration,
}

/// When a connection last heard from its peer, shared by its reader and its watchdog.
struct LastHeard {
    opened: Instant,
    /// Milliseconds after `opened`.
    at_ms: AtomicU64,
}

impl LastHeard {
    fn new() -> Self {
        LastHeard {
            opened: Instant::now(),
            at_ms: AtomicU64::new(0),
        }
    }

    fn now(&self) {
        let ms = self.opened.elapsed().as_millis() as u64;
        self.at_ms.store(ms, Ordering::Relaxed);
    }

    fn silence(&self) -> Duration {
        let heard = Duration::from_millis(self.at_ms.load(Ordering::Relaxed));
        self.opened.elapsed().saturating_sub(heard)
    }
}

pub async fn upgrade(ws: WebSocketUpgrade, State(state): State<AppState>) -> Response {
    // tungstenite reserves 128 KiB each for reading and writing by default: per idle
    // connection that dwarfs everything else. Frames here are small.
    ws.max_message_size(MAX_CLIENT_FRAME)
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .on_upgrade(move |socket| serve(socket, state))
}

async fn serve(socket: WebSocket, state: AppState) {
    let AppState {
        hub,
        boards: library,
        mut shutdown,
        heartbeat,
        reconnect_spread,
        ..
    } = state;
    let (id, outbox, inbox) = hub.connect();
    hub.metrics().connections.inc();
    let mut session = Session {
        hub,
        library,
        id,
        outbox,
        topics: HashSet::new(),
        boards: HashSet::new(),
    };
    let (mut sink, mut stream) = socket.split();
    session
        .reply(ServerFrame::Welcome(Welcome {
            connection: viewer_id(id),
            server: env!("CARGO_PKG_VERSION").into(),
            heartbeat_ms: heartbeat.interval.as_millis() as u64,
            idle_timeout_ms: heartbeat.idle_timeout.as_millis() as u64,
        }))
        .await;

    let heard = LastHeard::new();
    let reader = async {
        while let Some(Ok(message)) = stream.next().await {
            heard.now();
            match message {
                // Boxed: the handler's state would otherwise sit inline in every idle
                // connection's task, which is what memory per connection is made of.
                Message::Text(text) => Box::pin(session.handle(text.as_str())).await,
                Message::Binary(_) => {
                    Box::pin(session.error(ErrorFrame::new(
                        ErrorCode::InvalidFrame,
                        "binary frames are not supported; send JSON text frames",
                    )))
                    .await
                }
                Message::Close(_) => break,
                Message::Ping(_) | Message::Pong(_) => {}
            }
        }
    };
    let writer = write_queue(&mut sink, inbox, heartbeat.interval);
    let closing = async {
        let _ = shutdown.wait_for(|stop| *stop).await;
    };
    let watchdog = async {
        let mut tick = tokio::time::interval(heartbeat.interval);
        while heard.silence() <= heartbeat.idle_timeout {
            tick.tick().await;
        }
    };
    let close = tokio::select! {
        _ = reader => None,
        close = writer => close,
        _ = watchdog => {
            session.hub.metrics().idle_closed.inc();
            Some(CloseFrame { code: close_code::AWAY, reason: "no heartbeat".into() })
        }
        _ = closing => {
            // Each client gets its own delay, so a restart does not bring every screen
            // back in the same instant.
            let spread = reconnect_spread.as_millis() as u64;
            let frame = encode(&ServerFrame::Restarting {
                reconnect_in_ms: fastrand::u64(0..spread.max(1)),
            });
            let _ = tokio::time::timeout(CLOSE_WAIT, sink.send(Message::Text(frame))).await;
            Some(CloseFrame { code: close_code::RESTART, reason: "server restarting".into() })
        }
    };
    if let Some(close) = close {
        if close.code == close_code::AGAIN {
            session.hub.metrics().slow_consumers.inc();
        }
        let _ = tokio::time::timeout(CLOSE_WAIT, sink.send(Message::Close(Some(close)))).await;
    }
    // `session` drops here: every subscription and board membership goes with it.
}

/// Writes queued frames, and a ping every `heartbeat`, until the socket fails or the hub
/// reports this connection lagging; returns the close frame to send, if any. A send that
/// cannot complete (the peer stopped reading) is abandoned when the lag is reported, so a
/// stuck peer cannot pin the task.
async fn write_queue(
    sink: &mut futures_util::stream::SplitSink<WebSocket, Message>,
    inbox: Inbox,
    heartbeat: Duration,
) -> Option<CloseFrame> {
    let lagging = || {
        Some(CloseFrame {
            code: close_code::AGAIN,
            reason: "slow consumer".into(),
        })
    };
    let Inbox { mut frames, lagged } = inbox;
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + heartbeat, heartbeat);
    loop {
        let frame = tokio::select! {
            biased;
            _ = lagged.notified() => {
                let error = encode(&ServerFrame::Error(ErrorFrame::new(
                    ErrorCode::SlowConsumer,
                    "this connection fell too far behind; reconnect and resume",
                )));
                let _ = tokio::time::timeout(CLOSE_WAIT, sink.send(Message::Text(error))).await;
                return lagging();
            }
            frame = frames.recv() => frame?,
            _ = ping.tick() => {
                let send = sink.send(Message::Ping(Default::default()));
                tokio::select! {
                    sent = send => sent.ok()?,
                    _ = lagged.notified() => return lagging(),
                }
                continue;
            }
        };
        // Whatever else is already queued goes out in the same write: under load that is one
        // syscall for many frames instead of one each.
        let send = async {
            sink.feed(Message::Text(frame)).await?;
            for _ in 1..BATCH {
                match frames.try_recv() {
                    Ok(frame) => sink.feed(Message::Text(frame)).await?,
                    Err(_) => break,
                }
            }
            sink.flush().await
        };
        tokio::select! {
            sent = send => sent.ok()?,
            _ = lagged.notified() => return lagging(),
        }
    }
}

/// One connection's view of the hub.
struct Session {
    hub: Arc<Hub>,
    library: Arc<Library>,
    id: ConnectionId,
    outbox: Outbox,
    topics: HashSet<String>,
    boards: HashSet<String>,
}

impl Session {
    async fn handle(&mut self, text: &str) {
        let frame = match ClientFrame::decode(text) {
            Ok(frame) => frame,
            Err(error) => return self.error(error).await,
        };
        match frame {
            ClientFrame::Subscribe { topics } => {
                for request in topics {
                    // Subscribing again restarts the topic from the given position.
                    let had = self.topics.remove(&request.topic);
                    self.hub.unsubscribe(self.id, &request.topic);
                    let has =
                        self.hub
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
            }
            ClientFrame::Unsubscribe { topics } => {
                for topic in topics {
                    self.hub.unsubscribe(self.id, &topic);
                    if self.topics.remove(&topic) {
                        self.hub.metrics().subscriptions.dec();
                    }
                }
            }
            ClientFrame::Join { board } => {
                // Joined first, read second: a change in between reaches this page as a
                // frame of its own, and the page keeps whichever has the higher revision.
                self.hub.join(&board, self.id, &self.outbox);
                if let Some(view) = self.library.get(&board) {
                    let name = board.clone();
                    self.reply(ServerFrame::Board(BoardFrame { name, view }))
                        .await;
                }
                self.boards.insert(board);
            }
            ClientFrame::Leave { board } => {
                self.hub.leave(&board, self.id);
                self.boards.remove(&board);
            }
            ClientFrame::Ping { id } => self.reply(ServerFrame::Pong { id }).await,
            ClientFrame::Publish(publish) => {
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
        }
    }

    async fn reply(&self, frame: ServerFrame) {
        self.send(encode(&frame)).await;
    }

    async fn error(&self, error: ErrorFrame) {
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
