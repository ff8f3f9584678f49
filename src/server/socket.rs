//! `GET /ws`: one task per WebSocket connection. It hands client frames to the connection's
//! [`Session`] and writes the connection's queue to the socket, until a close, an error, a
//! dead socket, a lagging reader, a peer silent past the idle timeout, or shutdown.
//!
//! Heartbeats: the server pings every `heartbeat`; anything from the peer (a frame, or the
//! pong every WebSocket answers a ping with) counts as hearing from it. A peer that stays
//! silent past `idle_timeout` (a laptop closed, a proxy that dropped the connection without a
//! word) is closed, so its subscriptions and presence do not linger until TCP gives up.

use super::caller::Identified;
use super::limits::ConnectionSlot;
use super::session::Session;
use super::AppState;
use crate::access::keyring::Revocation;
use crate::encoded::encode;
use crate::hub::outbox::Inbox;
use crate::hub::{ConnectionId, Hub};
use crate::protocol::{ErrorCode, ErrorFrame, ServerFrame, CLOSE_FORBIDDEN, CLOSE_UNAUTHENTICATED};
use axum::extract::ws::{close_code, CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::Extension;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// The largest frame read at all (unless `max_frame_kib` is larger): past this the socket
/// drops without reading the rest, so a client cannot make the server buffer a huge frame
/// only to refuse it.
const MAX_READ_FRAME: usize = 1024 * 1024;

/// The read buffer each connection starts with; it grows when a frame needs it.
const READ_BUFFER: usize = 512;
/// How much queued output is gathered before a write. The buffer starts empty and only
/// grows this far under a burst, so an idle connection does not pay for it.
const WRITE_BUFFER: usize = 4096;

/// At most this many queued frames are written together.
const BATCH: usize = 64;

/// How long a closing connection may take to send its last frames and hear the peer's close.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// What one client may ask of the server.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub messages_per_second: NonZeroU32,
    pub max_subscriptions: usize,
    /// The largest frame a client may send, in bytes; a larger one closes with 1009.
    pub max_frame: usize,
    /// The largest HTTP API request body, in bytes; a larger one is a 413.
    pub max_body: usize,
}

/// Refusing frames for this long without a second's pause is abuse: the connection closes.
const SUSTAINED_ABUSE: Duration = Duration::from_secs(5);

/// A connection's frame rate: a token bucket (bursts of twice the rate), and how long it has
/// been over it.
struct FrameRate {
    bucket: DefaultDirectRateLimiter,
    last_refused: Option<Instant>,
    refusing_since: Option<Instant>,
}

/// What to do with a frame that arrived.
enum Admit {
    Take,
    /// Over the limit: ignore it; `true` the first time in a run, when the client is told.
    Ignore(bool),
    /// Over the limit for too long.
    Close,
}

impl FrameRate {
    fn new(per_second: NonZeroU32) -> Self {
        let burst = per_second.saturating_mul(NonZeroU32::new(2).unwrap_or(NonZeroU32::MIN));
        FrameRate {
            bucket: RateLimiter::direct(Quota::per_second(per_second).allow_burst(burst)),
            last_refused: None,
            refusing_since: None,
        }
    }

    fn admit(&mut self) -> Admit {
        if self.bucket.check().is_ok() {
            return Admit::Take;
        }
        let now = Instant::now();
        // A second without a refused frame ends a run of them.
        let new_run = self
            .last_refused
            .is_none_or(|at| now.duration_since(at) > Duration::from_secs(1));
        self.last_refused = Some(now);
        if new_run {
            self.refusing_since = Some(now);
        }
        match self.refusing_since {
            Some(since) if now.duration_since(since) > SUSTAINED_ABUSE => Admit::Close,
            _ => Admit::Ignore(new_run),
        }
    }
}

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

pub async fn upgrade(
    ws: WebSocketUpgrade,
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Extension(Identified(identified)): Extension<Identified>,
    headers: HeaderMap,
) -> Response {
    let ip = state.guard.client_ip(peer, &headers);
    let Some(slot) = state.guard.open_connection(ip) else {
        tracing::warn!(target: "audit", event = "denied", client = %ip, path = "/ws", reason = "too many connections");
        return state.guard.too_many_connections();
    };
    // tungstenite reserves 128 KiB each for reading and writing by default: per idle
    // connection that dwarfs everything else. Frames here are small.
    let ws = ws
        .max_message_size(MAX_READ_FRAME.max(state.limits.max_frame))
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
        revocation: caller.key().map(|key| state.keyring.watch(&key.id)),
        shutdown: state.shutdown.clone(),
        heartbeat: state.heartbeat,
        reconnect_spread: state.reconnect_spread,
        limits: state.limits,
    };
    let (session, inbox) = Session::open(&state, caller, false);
    ws.on_upgrade(move |socket| serve(socket.split(), session, inbox, terms, slot))
}

/// What a connection's task keeps of the server's state: only this, because whatever it
/// holds sits in every idle connection's memory.
struct Terms {
    /// Stops serving a connection opened with a key once the key is revoked.
    revocation: Option<Revocation>,
    /// Turns true when the server is stopping.
    shutdown: watch::Receiver<bool>,
    heartbeat: Heartbeat,
    reconnect_spread: Duration,
    limits: Limits,
}

/// Whether a page from `origin` may open a socket: the server's own origin (an address it
/// was reached at), or one `allowed_origins` lists (`*` lists every one).
pub fn origin_allowed(origin: &str, hosts: &[Option<&str>], allowed: &[String]) -> bool {
    let own = hosts.iter().flatten().any(|host| {
        origin
            .split_once("://")
            .is_some_and(|(_, rest)| rest.eq_ignore_ascii_case(host))
    });
    own || allowed
        .iter()
        .any(|a| a == "*" || a.trim_end_matches('/').eq_ignore_ascii_case(origin))
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
    let said = tokio::time::timeout_at(deadline, sink.send(Message::Close(Some(close)))).await;
    if !matches!(said, Ok(Ok(()))) {
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

/// Serves one connection; `_slot` holds its place in its address' count until it ends.
async fn serve(
    (mut sink, mut stream): (SplitSink<WebSocket, Message>, SplitStream<WebSocket>),
    mut session: Session,
    inbox: Inbox,
    mut terms: Terms,
    _slot: ConnectionSlot,
) {
    let id = session.id;
    let limits = terms.limits;
    // Cold paths (the welcome, the goodbye) are boxed: an await's state sits inline in the
    // task, and the task is what every idle connection's memory is made of.
    Box::pin(session.welcome(terms.heartbeat)).await;

    let heard = LastHeard::new();
    let hub = session.hub.clone();
    let mut rate = FrameRate::new(limits.messages_per_second);
    let reader = async {
        while let Some(Ok(message)) = stream.next().await {
            heard.now();
            if matches!(message, Message::Text(_) | Message::Binary(_)) {
                match rate.admit() {
                    Admit::Take => {}
                    Admit::Ignore(first) => {
                        if first {
                            let message = format!(
                                "more than {} frames a second: frames are ignored until the rate drops",
                                limits.messages_per_second
                            );
                            let error = ErrorFrame::new(ErrorCode::RateLimited, message);
                            Box::pin(session.error(error)).await;
                        }
                        continue;
                    }
                    Admit::Close => {
                        tracing::warn!(
                            connection = id,
                            "closed a connection that kept sending too fast"
                        );
                        return Some(CloseFrame {
                            code: close_code::POLICY,
                            reason: "too many frames for too long".into(),
                        });
                    }
                }
            }
            match message {
                Message::Text(text) if text.len() > limits.max_frame => {
                    return Some(CloseFrame {
                        code: close_code::SIZE,
                        reason: format!("frames are at most {} KiB", limits.max_frame / 1024)
                            .into(),
                    });
                }
                // Boxed: the handler's state would otherwise sit inline in every idle
                // connection's task, which is what memory per connection is made of.
                Message::Text(text) => {
                    if let Err(private) = Box::pin(session.handle(text.as_str())).await {
                        return Some(CloseFrame {
                            code: CLOSE_FORBIDDEN,
                            reason: private.0.into(),
                        });
                    }
                }
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
        None
    };
    let heartbeat = terms.heartbeat;
    let writer = write_queue(&mut sink, &inbox, &hub, id, heartbeat.interval);
    let closing = async {
        let _ = terms.shutdown.wait_for(|stop| *stop).await;
    };
    let watchdog = async {
        let mut tick = tokio::time::interval(heartbeat.interval);
        while heard.silence() <= heartbeat.idle_timeout {
            tick.tick().await;
        }
    };
    let revoked = async {
        match &mut terms.revocation {
            Some(revocation) => revocation.revoked().await,
            None => std::future::pending().await,
        }
    };
    // However a connection ends, its last frames and the close handshake share one bound, so
    // a restart tells every screen within it (and within `shutdown_grace`).
    let mut deadline = None;
    let close = tokio::select! {
        close = reader => close,
        close = writer => close,
        _ = watchdog => {
            session.hub.metrics().idle_closed.inc();
            Some(CloseFrame { code: close_code::AWAY, reason: "no heartbeat".into() })
        }
        _ = revoked => {
            tracing::info!(target: "audit", event = "disconnected", key = session.caller.who(), reason = "key revoked");
            Some(CloseFrame { code: CLOSE_UNAUTHENTICATED, reason: "the key was revoked".into() })
        }
        _ = closing => {
            // Each client gets its own delay, so a restart does not bring every screen
            // back in the same instant.
            let spread = terms.reconnect_spread.as_millis() as u64;
            let frame = encode(&ServerFrame::Restarting {
                reconnect_in_ms: fastrand::u64(0..spread.max(1)),
            });
            let until = *deadline.insert(tokio::time::Instant::now() + CLOSE_WAIT);
            let said = tokio::time::timeout_at(until, sink.send(Message::Text(frame)));
            let _ = Box::pin(said).await;
            Some(CloseFrame { code: close_code::RESTART, reason: "server restarting".into() })
        }
    };
    if let Some(close) = close {
        let deadline = deadline.unwrap_or_else(|| tokio::time::Instant::now() + CLOSE_WAIT);
        Box::pin(close_with(&mut sink, &mut stream, close, deadline)).await;
    }
    // `session` drops here: every subscription and board membership goes with it.
}

/// Writes queued frames, and a ping every `heartbeat`, until the socket fails. The frames
/// come from [`Hub::next_frame`], which also fetches what topics have pending once the queue
/// is written out (the rest of a replay, a catch-up after falling behind). A peer that stops
/// reading leaves this task waiting on a send with its queue full; the hub goes on without
/// it, and the idle timeout ends it.
async fn write_queue(
    sink: &mut SplitSink<WebSocket, Message>,
    inbox: &Inbox,
    hub: &Hub,
    connection: ConnectionId,
    heartbeat: Duration,
) -> Option<CloseFrame> {
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + heartbeat, heartbeat);
    loop {
        let frame = tokio::select! {
            biased;
            frame = hub.next_frame(connection, inbox) => frame,
            _ = ping.tick() => {
                Box::pin(sink.send(Message::Ping(Default::default()))).await.ok()?;
                continue;
            }
        };
        // Whatever else is already queued goes out in the same write: under load that is one
        // syscall for many frames instead of one each.
        sink.feed(Message::Text(frame)).await.ok()?;
        for _ in 1..BATCH {
            match inbox.try_frame() {
                Some(frame) => sink.feed(Message::Text(frame)).await.ok()?,
                None => break,
            }
        }
        sink.flush().await.ok()?;
    }
}
