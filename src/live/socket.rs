//! The browser's connection to the server (hydrate only): a WebSocket to `/ws`, or, where
//! the network refuses WebSocket, Server-Sent Events from `/sse`.
//!
//! It never gives up: after a drop it retries with exponential backoff and full jitter
//! (a random delay up to 1 s, 2 s, 4 s … capped at 30 s), and at once when the browser comes
//! back online. Each (re)connection subscribes to every topic with the position the page holds,
//! so the server sends exactly the missed events, or a snapshot when they are gone.
//!
//! Frames are queued as they arrive and applied together once the next animation frame has
//! come, in a task of their own right after it: a burst is one batch, painted in the frame
//! after. Not in the animation frame itself, as it once was: that put the batch's effects
//! and the frame's style, layout and paint in one task, which on a slow screen ran over
//! 50 ms now and then (`benches/frontend-budget`). After a long gap the batch is applied in
//! snap mode, so the board jumps to the latest state rather than animating the backlog.
//!
//! A server that is stopping says when to come back (`restarting`): the page's first retry
//! waits that long instead of its own random backoff.
//!
//! Fallback: after [`SSE_AFTER_FAILURES`] WebSocket handshakes in a row fail without ever
//! opening (a proxy that refuses the upgrade), the page follows the board over `/sse` from the
//! positions it holds; the `EventSource` resumes by itself after drops (`Last-Event-ID`). Every
//! two heartbeats the page tries a WebSocket again, and on the first that opens it goes back to
//! it. The connection badge says which transport is live.
//!
//! Heartbeats: the page sends `ping` at the server's heartbeat rate (from `welcome`), and a
//! connection it has heard nothing on (no frame, no pong) for the server's idle timeout is
//! taken for dead, dropped without waiting for TCP to agree, and replaced. A watchdog tick
//! that comes late (the tab was hidden and its timers throttled, or the machine slept) does
//! not count the silence it slept through against the connection.

use super::{Applied, ConnectionStatus, Live, Transport};
use crate::json::FromJson;
use crate::protocol::{
    ClientFrame, ServerFrame, TopicRequest, CLOSE_FORBIDDEN, CLOSE_TRY_AGAIN_LATER,
    CLOSE_UNAUTHENTICATED,
};
use leptos::prelude::*;
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;
use wasm_bindgen::closure::Closure;
use wasm_bindgen::JsCast;
use web_sys::{CloseEvent, EventSource, MessageEvent, WebSocket};

const FIRST_RETRY_CAP_MS: f64 = 1_000.0;
const MAX_RETRY_CAP_MS: f64 = 30_000.0;
/// A disconnection longer than this makes the next catch-up snap instead of animate.
const SNAP_AFTER_GAP_MS: f64 = 3_000.0;
/// A batch with more frames than this is a backlog: it snaps.
const SNAP_BATCH: usize = 50;
/// How often the watchdog looks at the connection.
const WATCH_TICK: Duration = Duration::from_secs(1);
/// Until the server's welcome says otherwise (Leptos.toml's defaults).
const DEFAULT_HEARTBEAT_MS: f64 = 15_000.0;
const DEFAULT_IDLE_TIMEOUT_MS: f64 = 45_000.0;
/// WebSocket handshakes that fail in a row (never opening) before the page falls back to SSE.
pub const SSE_AFTER_FAILURES: u32 = 3;

/// Opens the board's connection and keeps it open for the life of the page.
pub fn connect(live: Live, board: &str) {
    let connection = Rc::new(RefCell::new(Connection {
        live,
        board: board.to_owned(),
        socket: None,
        handlers: None,
        failures: 0,
        held_back: 0,
        pending: Vec::new(),
        flush_asked_at: None,
        lost_at: None,
        retry: None,
        heard_at: 0.0,
        pinged_at: 0.0,
        watched_at: crate::motion::now_ms(),
        heartbeat_ms: DEFAULT_HEARTBEAT_MS,
        idle_timeout_ms: DEFAULT_IDLE_TIMEOUT_MS,
        restart_in_ms: None,
        ws_opened: false,
        handshake_failures: 0,
        source: None,
        source_handlers: None,
        probe_scheduled: false,
    }));
    open(&connection);
    {
        let connection = connection.clone();
        set_interval(move || watch(&connection), WATCH_TICK);
    }
    {
        // The page's own writes go out as they are made; with no socket open (down, or on
        // SSE, which cannot carry them) they are rolled back at once.
        let connection = connection.clone();
        Effect::new(move |_| {
            live.writes.outgoing.track();
            let frames = live.writes.outgoing.with_untracked(|f| f.clone());
            if frames.is_empty() {
                return;
            }
            live.writes.outgoing.update_untracked(|f| f.clear());
            let c = connection.borrow();
            match c
                .socket
                .as_ref()
                .filter(|s| s.ready_state() == WebSocket::OPEN)
            {
                Some(socket) => frames.iter().for_each(|frame| send(socket, frame)),
                None => live.writes.lost(),
            }
        });
    }
    let on_online = {
        let connection = connection.clone();
        Closure::<dyn FnMut()>::new(move || {
            let c = connection.borrow();
            let refused = c.live.status.get_untracked() == ConnectionStatus::Refused;
            if c.socket.is_none() && !refused {
                drop(c);
                open(&connection);
            }
        })
    };
    let _ = window().add_event_listener_with_callback("online", on_online.as_ref().unchecked_ref());
    // The listener lives as long as the page.
    on_online.forget();
}

struct Connection {
    live: Live,
    board: String,
    socket: Option<WebSocket>,
    /// Keeps the current socket's callbacks alive; replaced with each new socket.
    handlers: Option<Handlers>,
    /// Failed attempts since the last successful open: the backoff exponent.
    failures: u32,
    /// Closes in a row for a board held back while its file is broken (1013), since the
    /// board was last shown: the backoff exponent then, as a socket opened only to be
    /// closed again is no success.
    held_back: u32,
    /// Frames received since the last animation frame.
    pending: Vec<ServerFrame>,
    /// When an animation frame was asked to apply them (page clock), until one has. Hidden
    /// tabs get no animation frames: the watchdog applies frames waiting longer than a tick,
    /// so they cannot pile up while nobody looks (one timer, not one per batch).
    flush_asked_at: Option<f64>,
    /// When the last connection dropped (page clock, ms), until the page has caught up.
    lost_at: Option<f64>,
    /// The pending retry timer's number; a timer whose number is no longer here does nothing,
    /// so an early reconnect (the browser came back online) cancels it.
    retry: Option<u64>,
    /// Page clock (ms): when the socket last opened or brought a frame, when the page last
    /// sent a ping, and when the watchdog last ran.
    heard_at: f64,
    pinged_at: f64,
    watched_at: f64,
    /// The server's heartbeat settings, from its welcome.
    heartbeat_ms: f64,
    idle_timeout_ms: f64,
    /// When a stopping server said to come back, in ms from the close; used for the first
    /// retry instead of the usual backoff.
    restart_in_ms: Option<f64>,
    /// Whether the current WebSocket ever opened, and how many in a row did not.
    ws_opened: bool,
    handshake_failures: u32,
    /// The event stream, while the page is on the SSE fallback.
    source: Option<EventSource>,
    source_handlers: Option<SourceHandlers>,
    /// Whether a WebSocket attempt is already planned while on SSE.
    probe_scheduled: bool,
}

struct SourceHandlers {
    _open: Closure<dyn FnMut()>,
    _message: Closure<dyn FnMut(MessageEvent)>,
    _error: Closure<dyn FnMut()>,
}

struct Handlers {
    _open: Closure<dyn FnMut()>,
    _message: Closure<dyn FnMut(MessageEvent)>,
    _close: Closure<dyn FnMut(CloseEvent)>,
}

type Shared = Rc<RefCell<Connection>>;

fn socket_url() -> String {
    let location = window().location();
    let scheme = match location.protocol().as_deref() {
        Ok("https:") => "wss",
        _ => "ws",
    };
    let host = location.host().unwrap_or_default();
    match token_param() {
        Some(token) => format!("{scheme}://{host}/ws?token={token}"),
        None => format!("{scheme}://{host}/ws"),
    }
}

/// The page's own `token` (a share link's key), passed on to the socket: a browser cannot
/// set headers on a WebSocket or an EventSource, and a screen opened with a share link
/// follows its private board with that link's rights.
fn token_param() -> Option<String> {
    let search = window().location().search().ok()?;
    search
        .trim_start_matches('?')
        .split('&')
        .find_map(|pair| pair.strip_prefix("token="))
        .map(str::to_owned)
}

fn open(connection: &Shared) {
    {
        let mut c = connection.borrow_mut();
        c.retry = None;
        c.ws_opened = false;
    }
    let socket = match WebSocket::new(&socket_url()) {
        Ok(socket) => socket,
        Err(_) => return retry_later(connection),
    };
    let on_open = {
        let connection = connection.clone();
        Closure::<dyn FnMut()>::new(move || opened(&connection))
    };
    let on_message = on_message(connection);
    let on_close = {
        let connection = connection.clone();
        Closure::<dyn FnMut(CloseEvent)>::new(move |event: CloseEvent| {
            if matches!(event.code(), CLOSE_UNAUTHENTICATED | CLOSE_FORBIDDEN) {
                refused(&connection, event.reason());
            } else {
                if event.code() == CLOSE_TRY_AGAIN_LATER {
                    let mut c = connection.borrow_mut();
                    c.held_back += 1;
                    c.failures = c.held_back;
                }
                closed(&connection);
            }
        })
    };
    socket.set_onopen(Some(on_open.as_ref().unchecked_ref()));
    socket.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    socket.set_onclose(Some(on_close.as_ref().unchecked_ref()));
    let mut c = connection.borrow_mut();
    c.socket = Some(socket);
    c.handlers = Some(Handlers {
        _open: on_open,
        _message: on_message,
        _close: on_close,
    });
}

fn opened(connection: &Shared) {
    {
        let mut c = connection.borrow_mut();
        c.heard_at = crate::motion::now_ms();
        c.ws_opened = true;
        c.handshake_failures = 0;
    }
    // A WebSocket that opens while the page is on SSE takes over from it.
    close_source(connection);
    let c = connection.borrow();
    let Some(socket) = &c.socket else { return };
    send(
        socket,
        &ClientFrame::Subscribe {
            topics: c.live.subscriptions(),
        },
    );
    send(
        socket,
        &ClientFrame::Join {
            board: c.board.clone(),
            // The server knows this browser's guest by its cookie, which no script sees.
            person: None,
        },
    );
    c.live.status.set(ConnectionStatus::Live);
    c.live.transport.set(Transport::WebSocket);
    drop(c);
    connection.borrow_mut().failures = 0;
}

fn closed(connection: &Shared) {
    let fall_back = {
        let mut c = connection.borrow_mut();
        c.socket = None;
        c.live.writes.lost();
        if c.source.is_some() {
            // A WebSocket tried while on SSE failed: SSE carries on; try again later.
            drop(c);
            return probe_later(connection);
        }
        if c.ws_opened {
            c.handshake_failures = 0;
        } else {
            c.handshake_failures += 1;
        }
        c.handshake_failures >= SSE_AFTER_FAILURES
    };
    if fall_back {
        // The stream's welcome plans the next WebSocket try.
        return open_source(connection);
    }
    {
        let mut c = connection.borrow_mut();
        c.lost_at.get_or_insert_with(crate::motion::now_ms);
        let online = window().navigator().on_line();
        c.live.status.set(if online {
            ConnectionStatus::Reconnecting
        } else {
            ConnectionStatus::Offline
        });
        // The viewer list is only known while connected.
        c.live.presence.update(|p| p.known = false);
    }
    retry_later(connection);
}

/// The server refused the page's key or the board. Reconnecting with the same link would be
/// refused again, so the page stops and shows why; a new link (or a sign-in) and a reload
/// bring it back.
fn refused(connection: &Shared, reason: String) {
    close_source(connection);
    let mut c = connection.borrow_mut();
    c.socket = None;
    c.live.writes.lost();
    c.live.status.set(ConnectionStatus::Refused);
    c.live.refusal.set(Some(reason));
    c.live.presence.update(|p| p.known = false);
}

/// Follows the board over `/sse` from the positions the page holds.
fn open_source(connection: &Shared) {
    let url = {
        let c = connection.borrow();
        let from: Vec<String> = c
            .live
            .subscriptions()
            .into_iter()
            .filter_map(|request| {
                let at = request.resume?;
                Some(format!("{}={}.{}", request.topic, at.epoch, at.offset))
            })
            .collect();
        let token = token_param().map_or(String::new(), |token| format!("&token={token}"));
        format!(
            "/sse?board={}&from={}{token}",
            js_sys::encode_uri_component(&c.board),
            js_sys::encode_uri_component(&from.join(",")),
        )
    };
    let source = match EventSource::new(&url) {
        Ok(source) => source,
        Err(_) => return retry_later(connection),
    };
    let on_open = {
        let connection = connection.clone();
        Closure::<dyn FnMut()>::new(move || {
            let mut c = connection.borrow_mut();
            c.heard_at = crate::motion::now_ms();
            c.live.status.set(ConnectionStatus::Live);
            c.live.transport.set(Transport::EventStream);
        })
    };
    let on_message = on_message(connection);
    // The EventSource reconnects by itself (from its last event id) unless the server
    // refused it outright; then the page starts over with a WebSocket.
    let on_error = {
        let connection = connection.clone();
        Closure::<dyn FnMut()>::new(move || {
            let refused = {
                let c = connection.borrow();
                c.live.status.set(ConnectionStatus::Reconnecting);
                c.source
                    .as_ref()
                    .is_some_and(|s| s.ready_state() == EventSource::CLOSED)
            };
            if refused {
                close_source(&connection);
                retry_later(&connection);
            }
        })
    };
    source.set_onopen(Some(on_open.as_ref().unchecked_ref()));
    source.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    source.set_onerror(Some(on_error.as_ref().unchecked_ref()));
    let mut c = connection.borrow_mut();
    c.live.status.set(ConnectionStatus::Connecting);
    c.source = Some(source);
    c.source_handlers = Some(SourceHandlers {
        _open: on_open,
        _message: on_message,
        _error: on_error,
    });
}

/// Leaves SSE, if the page is on it, detaching its callbacks first.
fn close_source(connection: &Shared) {
    let source = {
        let mut c = connection.borrow_mut();
        c.source_handlers = None;
        c.source.take()
    };
    if let Some(source) = source {
        source.set_onopen(None);
        source.set_onmessage(None);
        source.set_onerror(None);
        source.close();
    }
}

/// While on SSE, tries a WebSocket again after two heartbeats.
fn probe_later(connection: &Shared) {
    let after = {
        let mut c = connection.borrow_mut();
        if c.probe_scheduled {
            return;
        }
        c.probe_scheduled = true;
        2.0 * c.heartbeat_ms
    };
    let connection = connection.clone();
    set_timeout(
        move || {
            let due = {
                let mut c = connection.borrow_mut();
                c.probe_scheduled = false;
                c.source.is_some() && c.socket.is_none()
            };
            if due {
                open(&connection);
            }
        },
        Duration::from_millis(after as u64),
    );
}

/// Once a tick: pings when the heartbeat is due, and drops a connection that has gone silent.
fn watch(connection: &Shared) {
    let now = crate::motion::now_ms();
    let waiting = connection
        .borrow()
        .flush_asked_at
        .is_some_and(|at| now - at >= WATCH_TICK.as_millis() as f64);
    if waiting {
        flush(connection);
    }
    let mut c = connection.borrow_mut();
    let slept = now - c.watched_at > 2.0 * WATCH_TICK.as_millis() as f64;
    c.watched_at = now;
    let streaming = c
        .source
        .as_ref()
        .is_some_and(|s| s.ready_state() == EventSource::OPEN);
    if streaming {
        // The server sends a pong every heartbeat down the stream; a stream that stays quiet
        // past the idle timeout is opened afresh from the page's positions.
        if !slept && now - c.heard_at > c.idle_timeout_ms {
            drop(c);
            close_source(connection);
            open_source(connection);
        } else if slept {
            c.heard_at = now;
        }
        return;
    }
    let open = c
        .socket
        .as_ref()
        .is_some_and(|s| s.ready_state() == WebSocket::OPEN);
    if !open {
        return;
    }
    if slept {
        // Throttled or asleep: the silence is ours, not the connection's. Ask, and wait a
        // whole window for the answer.
        c.heard_at = now;
    } else if now - c.heard_at > c.idle_timeout_ms {
        drop(c);
        leptos::logging::warn!("no frame or pong from the server in time; reconnecting");
        abandon(connection);
        return;
    }
    if slept || now - c.pinged_at >= c.heartbeat_ms {
        c.pinged_at = now;
        if let Some(socket) = &c.socket {
            send(socket, &ClientFrame::Ping { id: None });
        }
    }
}

/// Gives up on the current socket at once: its callbacks are detached (a close that TCP
/// reports minutes later must not touch the next socket), and the page reconnects as after
/// any drop.
fn abandon(connection: &Shared) {
    let socket = {
        let mut c = connection.borrow_mut();
        c.handlers = None;
        c.socket.take()
    };
    if let Some(socket) = socket {
        socket.set_onopen(None);
        socket.set_onmessage(None);
        socket.set_onclose(None);
        let _ = socket.close();
    }
    closed(connection);
}

fn retry_later(connection: &Shared) {
    let (delay, timer) = {
        let mut c = connection.borrow_mut();
        if c.retry.is_some() {
            return;
        }
        let cap = (FIRST_RETRY_CAP_MS * 2f64.powi(c.failures.min(16) as i32)).min(MAX_RETRY_CAP_MS);
        c.failures += 1;
        // Any value unlikely to repeat identifies this timer.
        let timer = (js_sys::Math::random() * u32::MAX as f64) as u64;
        c.retry = Some(timer);
        // A server that said when to come back has already spread its clients out.
        let delay = c
            .restart_in_ms
            .take()
            .unwrap_or_else(|| js_sys::Math::random() * cap);
        (delay, timer)
    };
    let connection = connection.clone();
    set_timeout(
        move || {
            let due = {
                let c = connection.borrow();
                c.retry == Some(timer) && c.socket.is_none()
            };
            if due {
                open(&connection);
            }
        },
        Duration::from_millis(delay as u64),
    );
}

/// The message callback a WebSocket and an EventSource share: both carry the same frames.
fn on_message(connection: &Shared) -> Closure<dyn FnMut(MessageEvent)> {
    let connection = connection.clone();
    Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
        if let Some(frame) = super::parse::parse(&event.data()) {
            received(&connection, frame);
        }
    })
}

/// Takes a frame off the socket. What concerns the connection itself (its heartbeat settings,
/// a restart notice that the close right behind it must find) is handled at once; the rest
/// waits for the next animation frame, and is applied in a task queued from it.
fn received(connection: &Shared, frame: serde_json::Value) {
    let mut c = connection.borrow_mut();
    c.heard_at = crate::motion::now_ms();
    let frame = match ServerFrame::from_json(frame) {
        Ok(frame) => frame,
        Err(e) => {
            leptos::logging::warn!("ignoring a frame this page cannot read: {e}");
            return;
        }
    };
    match &frame {
        ServerFrame::Welcome(welcome) => {
            c.heartbeat_ms = welcome.heartbeat_ms as f64;
            c.idle_timeout_ms = welcome.idle_timeout_ms as f64;
            if c.source.is_some() {
                // On SSE, now that the heartbeat is known: plan the next WebSocket try.
                drop(c);
                probe_later(connection);
                c = connection.borrow_mut();
            }
        }
        ServerFrame::Restarting { reconnect_in_ms } => {
            c.restart_in_ms = Some(*reconnect_in_ms as f64);
            return;
        }
        ServerFrame::Board(_) => c.held_back = 0,
        _ => {}
    }
    c.pending.push(frame);
    if c.flush_asked_at.is_none() {
        c.flush_asked_at = Some(crate::motion::now_ms());
        let on_frame = connection.clone();
        request_animation_frame(move || set_timeout(move || flush(&on_frame), Duration::ZERO));
    }
}

/// Applies every frame received since the last animation frame, in order.
fn flush(connection: &Shared) {
    let (live, frames, lost_at) = {
        let mut c = connection.borrow_mut();
        if c.flush_asked_at.take().is_none() {
            // The watchdog already applied this batch.
            return;
        }
        (c.live, std::mem::take(&mut c.pending), c.lost_at)
    };
    let long_gap = lost_at.is_some_and(|t| crate::motion::now_ms() - t > SNAP_AFTER_GAP_MS);
    let caught_up = frames
        .iter()
        .any(|f| matches!(f, ServerFrame::Snapshot(_) | ServerFrame::Resumed(_)));
    if caught_up {
        connection.borrow_mut().lost_at = None;
    }
    let backlog =
        frames.len() > SNAP_BATCH || frames.iter().any(|f| matches!(f, ServerFrame::Snapshot(_)));
    if long_gap || backlog {
        live.snap.set(true);
        // Lifted in the second frame from now: the next one renders the jump with `.snap`
        // (its animation-frame callbacks run before its style is computed).
        request_animation_frame(move || request_animation_frame(move || live.snap.set(false)));
    }
    // Topics to (re)subscribe from scratch: ones whose events skipped, and ones the board
    // has just started to read.
    let (mut fresh, mut dropped) = (Vec::new(), Vec::new());
    for frame in frames {
        match live.apply(frame) {
            Applied::Ok => {}
            Applied::Resync(topic) => fresh.push(topic),
            Applied::Retopic { added, removed } => {
                fresh.extend(added);
                dropped.extend(removed);
            }
            Applied::Reload { within_ms } => {
                // Spread over the window so a wall of screens does not return at once.
                let delay = js_sys::Math::random() * within_ms as f64;
                set_timeout(
                    || {
                        let _ = window().location().reload();
                    },
                    Duration::from_millis(delay as u64),
                );
            }
        }
    }
    // One batch can both skip a topic's events and drop (or re-add) the topic: what counts is
    // whether the board reads it once the whole batch is applied.
    let mut once = Vec::with_capacity(fresh.len());
    for topic in fresh {
        if live.reads(&topic) && !once.contains(&topic) {
            once.push(topic);
        }
    }
    let fresh = once;
    dropped.retain(|topic| !live.reads(topic));
    let on_source = connection.borrow().source.is_some();
    if on_source {
        // The stream cannot take requests; the server follows the board itself. A topic
        // whose events skipped is fetched again by opening the stream afresh.
        if !fresh.is_empty() {
            close_source(connection);
            open_source(connection);
        }
        return;
    }
    let connection = connection.borrow();
    let Some(socket) = &connection.socket else {
        return;
    };
    if !dropped.is_empty() {
        send(socket, &ClientFrame::Unsubscribe { topics: dropped });
    }
    if !fresh.is_empty() {
        let topics = fresh
            .into_iter()
            .map(|topic| TopicRequest {
                topic,
                resume: None,
            })
            .collect();
        send(socket, &ClientFrame::Subscribe { topics });
    }
}

fn send(socket: &WebSocket, frame: &ClientFrame) {
    if let Ok(text) = serde_json::to_string(frame) {
        let _ = socket.send_with_str(&text);
    }
}
