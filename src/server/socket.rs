//! `GET /ws`: one task per WebSocket connection. It hands client frames to the connection's
//! [`Session`] and writes the connection's queue to the socket, until a close, an error, a
//! dead socket, a lagging reader, a peer silent past the idle timeout, or shutdown.
//!
//! Heartbeats: the server pings every `heartbeat`; anything from the peer (a frame, or the
//! pong every WebSocket answers a ping with) counts as hearing from it. A peer that stays
//! silent past `idle_timeout` (a laptop closed, a proxy that dropped the connection without a
//! word) is closed, so its subscriptions and presence do not linger until TCP gives up.

use super::caller::{guest_id, Identified};
use super::endings::{Ending, Endings};
use super::limits::ConnectionSlot;
use super::origin::origin_allowed;
use super::session::{ClientName, Heartbeat, Refusal, Session};
use super::AppState;
use crate::encoded::{encode, EncodedFrame};
use crate::hub::outbox::Inbox;
use crate::hub::{ConnectionId, Hub};
use crate::protocol::{ErrorCode, ErrorFrame, ServerFrame, CLOSE_UNAUTHENTICATED};
use axum::extract::ws::{close_code, CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::Extension;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use std::future::Future;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The read buffer each connection starts with, and how much one read takes: it grows to
/// the largest frame the client has sent. Client frames are small and rare (a subscribe, a
/// ping every heartbeat), and this buffer is in every idle connection's memory.
const READ_BUFFER: usize = 128;
/// How much queued output is gathered before a write. The buffer starts empty and only
/// grows this far under a burst, so an idle connection does not pay for it.
const WRITE_BUFFER: usize = 4096;

/// At most this many queued frames are written together.
const BATCH: usize = 64;

/// How long a closing connection may take to send its last frames and hear the peer's close.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// What one client may ask of the server.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    pub(crate) messages_per_second: NonZeroU32,
    pub(crate) max_subscriptions: usize,
    /// Boards one connection may be on at once.
    pub(crate) max_boards: usize,
    /// The largest frame a client may send, in bytes; a larger one closes with 1009.
    pub(crate) max_frame: usize,
    /// The largest HTTP API request body, in bytes; a larger one is a 413.
    pub(crate) max_body: usize,
}

/// Over the budget at every frame for this long is abuse: the connection closes.
const SUSTAINED_ABUSE: Duration = Duration::from_secs(5);

/// A frame counts as one more against the frame budget for every this many bytes it holds.
const FRAME_COST_BYTES: usize = 1024;

/// A burst of frames is two seconds' worth.
const BURST: Duration = Duration::from_secs(2);

/// The most a connection may owe beyond its burst; under the idle timeout, so a connection
/// that waits on its budget is not taken for a silent one.
const MAX_OWED: Duration = Duration::from_secs(10);

/// A connection's frame budget: a token bucket of `per_second` frames a second with bursts
/// of twice that, kept as GCRA keeps one (the moment the bucket is full again). A frame
/// costs one per [`FRAME_COST_BYTES`] it holds, begun (reading a frame costs the server by
/// its size; a client's usual frames are well under that), and a snapshot asked for again
/// costs its size after the fact ([`Session::handle`] says what). Past the budget the connection is
/// not read until it has room again: what the client sends meanwhile waits in TCP's buffers
/// and then holds up its writes, so a client over its budget costs the server nothing
/// more. Written here rather than with `governor` (which the limits per address use)
/// because a cost may leave the connection owing frames, which governor does not allow.
struct FrameRate {
    /// When the bucket is full again; frames are read while it is at most [`BURST`] ahead.
    full_at: Instant,
    /// One frame's worth of time.
    per_frame: Duration,
    /// Since when the connection has had to wait before every frame, while it has.
    throttled_since: Option<Instant>,
    /// The last frame was read after a wait.
    waited: bool,
}

/// What the reader does before it reads the next frame.
enum Budget {
    Read,
    /// Wait until then; `true` when a run of waits starts, and the client is told.
    Wait(Instant, bool),
    /// Over the budget for too long.
    Close,
}

impl FrameRate {
    fn new(per_second: NonZeroU32) -> Self {
        FrameRate {
            full_at: Instant::now(),
            per_frame: Duration::from_secs(1) / per_second.get(),
            throttled_since: None,
            waited: false,
        }
    }

    /// Whether the budget has room to read a frame now.
    fn before_read(&mut self) -> Budget {
        let now = Instant::now();
        let ready_at = (self.full_at + self.per_frame)
            .checked_sub(BURST)
            .unwrap_or(now);
        if ready_at <= now {
            // A frame read without a wait ends a run of them.
            if !std::mem::take(&mut self.waited) {
                self.throttled_since = None;
            }
            return Budget::Read;
        }
        self.waited = true;
        match self.throttled_since {
            None => {
                self.throttled_since = Some(now);
                Budget::Wait(ready_at, true)
            }
            Some(since) if now.duration_since(since) > SUSTAINED_ABUSE => Budget::Close,
            Some(_) => Budget::Wait(ready_at, false),
        }
    }

    /// Takes a frame of `bytes` from the budget.
    fn take(&mut self, bytes: usize) {
        self.charge(1 + (bytes / FRAME_COST_BYTES) as u32);
    }

    /// Takes `frames` from the budget, owing what it does not have (up to [`MAX_OWED`]).
    fn charge(&mut self, frames: u32) {
        if frames == 0 {
            return;
        }
        let now = Instant::now();
        let owed = self.full_at.max(now) + self.per_frame * frames;
        self.full_at = owed.min(now + BURST + MAX_OWED);
    }
}

/// When a connection last heard from its peer: its reader notes it, its writer's [`Pulse`]
/// ends a silence too long.
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

pub(crate) async fn upgrade(
    ws: WebSocketUpgrade,
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Extension(Identified(identified)): Extension<Identified>,
    Query(named): Query<ClientName>,
    headers: HeaderMap,
) -> Response {
    let ip = state.guard.client_ip(peer, &headers);
    let Some(slot) = state.guard.open_connection(ip) else {
        return state.guard.too_many_connections(ip, "/ws");
    };
    // tungstenite reserves 128 KiB each for reading and writing by default: per idle
    // connection that dwarfs everything else. Frames here are small.
    // A frame (or a message of several) over the limit is refused as soon as its header
    // declares the length, before its payload is read: close 1009.
    let ws = ws
        .max_message_size(state.limits.max_frame)
        .max_frame_size(state.limits.max_frame)
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER);
    let header = |name| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(origin) = header("origin") {
        // Behind a reverse proxy the address the page used arrives as X-Forwarded-Host; a
        // browser cannot set that header on its own, so it is as good as Host here.
        let hosts = [header("host"), header("x-forwarded-host")];
        if !origin_allowed(origin, &hosts, &state.allowed_origins) {
            // Another site's page is trying to use this visitor's access (cross-site
            // WebSocket hijacking). Refused with a close code the page can read.
            tracing::warn!(origin, "refused a WebSocket opened from another site");
            let reason = format!("origin {origin} is not allowed; see allowed_origins");
            return ws.on_upgrade(move |socket| refuse(socket, close_code::POLICY, reason));
        }
    }
    // Refused after the upgrade, with a close code: a browser cannot read the status of a
    // failed handshake, and would take it for a network fault and keep retrying.
    let caller = match identified {
        Ok(caller) => caller,
        Err(invalid) => {
            tracing::warn!(target: "audit", event = "denied", client = %ip, path = "/ws", reason = "invalid key");
            let reason = invalid.message().to_owned();
            return ws.on_upgrade(move |socket| refuse(socket, CLOSE_UNAUTHENTICATED, reason));
        }
    };
    let terms = Terms {
        endings: Endings::new(&state, &caller),
        heartbeat: state.heartbeat,
        reconnect_spread: state.reconnect_spread,
        max_frame: state.limits.max_frame,
        messages_per_second: state.limits.messages_per_second,
    };
    let guest = guest_id(&headers).map(str::to_owned);
    state
        .hub
        .metrics()
        .client_connected(named.client.as_deref());
    let (session, inbox) = Session::open(&state, caller, guest, false);
    let connection = Box::new(Connection {
        session,
        inbox,
        terms,
        _slot: slot,
    });
    ws.on_upgrade(move |socket| serve(socket.split(), connection))
}

/// What a connection's task holds for its whole life, in one allocation of its own: the
/// task's future would otherwise hold it twice, as what the upgrade's callback captured and
/// again as that callback's future (a future keeps room for what it captured even once it
/// has moved it on), and that is every idle connection's memory.
struct Connection {
    session: Session,
    inbox: Inbox,
    terms: Terms,
    /// Holds the connection's place in its address' count until it ends.
    _slot: ConnectionSlot,
}

/// What a connection's task keeps of the server's state: only this, because whatever it
/// holds sits in every idle connection's memory.
struct Terms {
    /// Its key going out of force, or the server stopping.
    endings: Endings,
    heartbeat: Heartbeat,
    reconnect_spread: Duration,
    /// Of the client's [`Limits`], what the connection checks as it goes.
    max_frame: usize,
    messages_per_second: NonZeroU32,
}

/// Whether a read failed because the client's frame (or message) is over the size limit.
fn is_too_large(error: &axum::Error) -> bool {
    std::error::Error::source(error)
        .and_then(|inner| inner.downcast_ref::<tungstenite::Error>())
        .is_some_and(|e| matches!(e, tungstenite::Error::Capacity(_)))
}

/// Closes a socket that may not be served, saying why.
async fn refuse(socket: WebSocket, code: u16, reason: String) {
    let close = CloseFrame {
        code,
        reason: reason.into(),
    };
    let (mut sink, mut stream) = socket.split();
    let deadline = tokio::time::Instant::now() + CLOSE_WAIT;
    close_with(&mut sink, &mut stream, close, deadline).await;
}

/// Ends a connection as RFC 6455 asks: the close frame, then whatever the peer still sends
/// is read and dropped until its own close arrives (or `deadline` passes), and only then
/// does the TCP connection go. Dropping it with the peer's frames unread would make the
/// kernel answer them with a reset, which can destroy the close frame, and its reason,
/// before the peer has read it.
async fn close_with(
    sink: &mut SplitSink<WebSocket, Message>,
    stream: &mut SplitStream<WebSocket>,
    close: CloseFrame,
    deadline: tokio::time::Instant,
) {
    let close_is_size = close.code == close_code::SIZE;
    let said = tokio::time::timeout_at(deadline, sink.send(Message::Close(Some(close)))).await;
    if !matches!(said, Ok(Ok(()))) {
        return;
    }
    if close_is_size {
        // After 1009 the oversized frame's payload lies unread, and nothing more can be read:
        // hold the connection to the deadline, so the reset those bytes cause comes after the
        // peer has read the close frame (through a proxy it came first: the conformance
        // suite's 1009 scenario lost its close code one run in three).
        tokio::time::sleep_until(deadline).await;
        return;
    }
    let answered = async {
        while let Some(Ok(message)) = stream.next().await {
            if let Message::Close(_) = message {
                break;
            }
        }
    };
    let _ = tokio::time::timeout_at(deadline, answered).await;
}

/// How a connection's reading ends.
enum Closing {
    /// The peer is gone, or said goodbye: nothing more to say.
    Gone,
    /// Closed with this frame.
    Close(CloseFrame),
    /// The server is stopping: the client is told when to come back, then closed.
    Restart,
}

impl From<Refusal> for Closing {
    fn from(refusal: Refusal) -> Self {
        Closing::Close(CloseFrame {
            code: refusal.code,
            reason: refusal.reason.into(),
        })
    }
}

/// Serves one connection.
async fn serve(
    (mut sink, mut stream): (SplitSink<WebSocket, Message>, SplitStream<WebSocket>),
    mut connection: Box<Connection>,
) {
    let Connection {
        session,
        inbox,
        terms,
        ..
    } = &mut *connection;
    let id = session.id;
    let (max_frame, per_second) = (terms.max_frame, terms.messages_per_second);
    let (heartbeat, reconnect_spread) = (terms.heartbeat, terms.reconnect_spread);
    let endings = &mut terms.endings;
    // Cold paths (the welcome, the goodbye) are boxed: an await's state sits inline in the
    // task, and the task is what every idle connection's memory is made of.
    Box::pin(session.welcome(heartbeat)).await;

    let heard = LastHeard::new();
    let hub = session.hub.clone();
    let mut rate = FrameRate::new(per_second);
    let too_large = || {
        Closing::Close(CloseFrame {
            code: close_code::SIZE,
            reason: format!("frames are at most {} KiB", max_frame / 1024).into(),
        })
    };
    // The client's frames, and what changes from outside (its key, the boards, a
    // shutdown), are taken in turn: a check of what the connection may read never runs
    // beside one of its frames.
    let reader = async {
        loop {
            let wait = match rate.before_read() {
                Budget::Read => None,
                Budget::Wait(until, first) => {
                    if first {
                        let message = format!(
                            "more than {per_second} frames a second: the next ones are read once the rate drops"
                        );
                        let error = ErrorFrame::new(ErrorCode::RateLimited, message);
                        Box::pin(session.error(error)).await;
                    }
                    Some(until)
                }
                Budget::Close => {
                    tracing::warn!(
                        connection = id,
                        "closed a connection that kept sending too fast"
                    );
                    return Closing::Close(CloseFrame {
                        code: close_code::POLICY,
                        reason: "too many frames for too long".into(),
                    });
                }
            };
            // Over its budget, the socket is not read at all until the budget has room;
            // what changes from outside is heard either way.
            let woke = match wait {
                None => tokio::select! {
                    read = stream.next() => Ok(read),
                    ending = endings.next() => Err(ending),
                },
                Some(until) => tokio::select! {
                    () = Box::pin(tokio::time::sleep_until(until.into())) => continue,
                    ending = endings.next() => Err(ending),
                },
            };
            let read = match woke {
                Ok(read) => read,
                Err(Ending::Revoked) => {
                    tracing::info!(target: "audit", event = "disconnected", key = session.caller.who(), reason = session.caller.ended());
                    return Closing::Close(CloseFrame {
                        code: CLOSE_UNAUTHENTICATED,
                        reason: session.caller.ended().into(),
                    });
                }
                Err(Ending::Restart) => return Closing::Restart,
                Err(Ending::Recheck(caller)) => {
                    if let Err(refusal) = Box::pin(session.recheck(caller)).await {
                        return refusal.into();
                    }
                    continue;
                }
            };
            let message = match read {
                Some(Ok(message)) => message,
                Some(Err(e)) if is_too_large(&e) => return too_large(),
                Some(Err(_)) | None => return Closing::Gone,
            };
            heard.now();
            match &message {
                Message::Text(text) => rate.take(text.len()),
                Message::Binary(bytes) => rate.take(bytes.len()),
                _ => {}
            }
            match message {
                // Boxed: the handler's state would otherwise sit inline in every idle
                // connection's task, which is what memory per connection is made of.
                Message::Text(text) => match Box::pin(session.handle(text.as_str())).await {
                    Ok(cost) => rate.charge(cost),
                    Err(refusal) => return refusal.into(),
                },
                Message::Binary(_) => {
                    Box::pin(session.error(ErrorFrame::new(
                        ErrorCode::InvalidFrame,
                        "binary frames are not supported; send JSON text frames",
                    )))
                    .await
                }
                Message::Close(_) => return Closing::Gone,
                Message::Ping(_) | Message::Pong(_) => {}
            }
        }
    };
    let writer = write_queue(&mut sink, inbox, &hub, id, heartbeat, &heard);
    // However a connection ends, its last frames and the close handshake share one bound, so
    // a restart tells every screen within it (and within `shutdown_grace`).
    let mut deadline = None;
    let closing = tokio::select! {
        closing = reader => closing,
        close = writer => close.map_or(Closing::Gone, Closing::Close),
    };
    let close = match closing {
        Closing::Gone => None,
        Closing::Close(close) => Some(close),
        Closing::Restart => {
            // Each client gets its own delay, so a restart does not bring every screen back
            // in the same instant.
            let spread = reconnect_spread.as_millis() as u64;
            let frame = encode(&ServerFrame::Restarting {
                reconnect_in_ms: fastrand::u64(0..spread.max(1)),
            });
            let until = *deadline.insert(tokio::time::Instant::now() + CLOSE_WAIT);
            let said = tokio::time::timeout_at(until, sink.send(Message::Text(frame)));
            let _ = Box::pin(said).await;
            Some(CloseFrame {
                code: close_code::RESTART,
                reason: "server restarting".into(),
            })
        }
    };
    if let Some(close) = close {
        let deadline = deadline.unwrap_or_else(|| tokio::time::Instant::now() + CLOSE_WAIT);
        Box::pin(close_with(&mut sink, &mut stream, close, deadline)).await;
    }
    // `connection` drops here: its session, and every subscription and board membership
    // with it.
}

/// Writes queued frames, and a ping every `heartbeat`, until the socket fails or the peer has
/// been silent past the idle timeout. The frames come from [`Hub::next_frame`], which also
/// fetches what topics have pending once the queue is written out (the rest of a replay, a
/// catch-up after falling behind). A peer that stops reading leaves a write waiting with the
/// queue full; the hub goes on without it, and the idle timeout ends it.
async fn write_queue(
    sink: &mut SplitSink<WebSocket, Message>,
    inbox: &Inbox,
    hub: &Hub,
    connection: ConnectionId,
    heartbeat: Heartbeat,
    heard: &LastHeard,
) -> Option<CloseFrame> {
    // Each write is pinned where it is made and waited on by reference: a future taking it
    // by value would hold it twice, and the largest wait is what every idle connection's
    // task is sized by.
    let mut pulse = Pulse::new(heartbeat, heard);
    let stopped = loop {
        let frame = tokio::select! {
            biased;
            frame = hub.next_frame(connection, inbox) => frame,
            beat = pulse.beat() => {
                if let Err(stopped) = beat {
                    break stopped;
                }
                // Boxed: a ping goes out once a heartbeat, and its state would otherwise sit
                // in every task.
                let mut ping = Box::pin(sink.send(Message::Ping(Default::default())));
                match pulse.during(ping.as_mut()).await {
                    Ok(()) => continue,
                    Err(stopped) => break stopped,
                }
            }
        };
        let batch = std::pin::pin!(write_batch(sink, inbox, frame));
        if let Err(stopped) = pulse.during(batch).await {
            break stopped;
        }
    };
    match stopped {
        Stopped::Failed => None,
        Stopped::Silent => {
            hub.metrics().idle_closed.inc();
            Some(CloseFrame {
                code: close_code::AWAY,
                reason: "no heartbeat".into(),
            })
        }
    }
}

/// Writes `frame` and whatever else is already queued in one go: under load that is one
/// syscall for many frames instead of one each.
async fn write_batch(
    sink: &mut SplitSink<WebSocket, Message>,
    inbox: &Inbox,
    frame: EncodedFrame,
) -> Result<(), axum::Error> {
    sink.feed(Message::Text(frame)).await?;
    for _ in 1..BATCH {
        match inbox.try_frame() {
            Some(frame) => sink.feed(Message::Text(frame)).await?,
            None => break,
        }
    }
    sink.flush().await
}

/// Why a connection's writer stopped.
enum Stopped {
    /// The socket failed: nothing more can be said on it.
    Failed,
    /// The peer has been silent past the idle timeout.
    Silent,
}

/// A connection's one timer: the ping it sends every `heartbeat`, and the silence it will
/// not wait out. One, not a ticker for each, because every idle connection's memory and
/// wake-ups are multiplied by the connections.
struct Pulse<'a> {
    tick: tokio::time::Interval,
    idle_timeout: Duration,
    heard: &'a LastHeard,
}

impl<'a> Pulse<'a> {
    fn new(heartbeat: Heartbeat, heard: &'a LastHeard) -> Self {
        let every = heartbeat.interval;
        Pulse {
            tick: tokio::time::interval_at(tokio::time::Instant::now() + every, every),
            idle_timeout: heartbeat.idle_timeout,
            heard,
        }
    }

    /// The next tick: time for a ping, unless the peer has been silent too long.
    async fn beat(&mut self) -> Result<(), Stopped> {
        self.tick.tick().await;
        if self.heard.silence() > self.idle_timeout {
            return Err(Stopped::Silent);
        }
        Ok(())
    }

    /// Waits for a write while keeping the time: a write stuck on a peer that stopped
    /// reading (a dead laptop with its socket full) ends with its silence.
    async fn during<E>(
        &mut self,
        mut write: Pin<&mut impl Future<Output = Result<(), E>>>,
    ) -> Result<(), Stopped> {
        loop {
            tokio::select! {
                biased;
                written = write.as_mut() => return written.map_err(|_| Stopped::Failed),
                beat = self.beat() => beat?,
            }
        }
    }
}
