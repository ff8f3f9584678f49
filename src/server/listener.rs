//! The accept loop: each TCP connection is served by hyper's HTTP/1.1 connection with the
//! bounds a server on the internet needs, which axum's `serve` does not let one set.
//!
//! - A client has `header_timeout` from the first byte of a request to the end of its
//!   headers: one that trickles a header line every few seconds (slowloris) is closed.
//! - A keep-alive connection waiting for its next request is closed after
//!   `keep_alive_timeout`, and one that never sends a byte the same way.
//! - An address has at most `http_connections_per_ip` connections open while they speak
//!   HTTP (a `/sse` stream among them; a `/ws`, once upgraded, counts among the address'
//!   sockets instead); one more is answered `429 too_many_connections` and closed.
//!
//! hyper has one timer for a request's head, started when the connection starts waiting for
//! it, so on its own it cannot tell "idle" from "slow headers". Its timer is ours
//! ([`HeadTimer`]): the connection's reads tell it when the first byte of a head arrived, and
//! from then on its deadline is the header timeout instead of the keep-alive one.

use super::limits::{ConnectionSlot, Guard};
use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper::rt::Sleep;
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tower::ServiceExt;

/// Connections over their address' limit answered with a 429 at once (each for a second at
/// most); more are closed without an answer.
const REFUSALS_AT_ONCE: usize = 64;

/// How long a connection may take over its requests' heads, and wait between requests.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Timeouts {
    /// From the first byte of a request to the end of its headers.
    pub(crate) header: Duration,
    /// From the end of one answer (or the connection's start) to the next request's first
    /// byte.
    pub(crate) keep_alive: Duration,
}

/// Accepts and serves connections until `stop` resolves; then stops accepting, lets each
/// connection finish the request it is on (idle ones close at once), and returns once every
/// connection hyper still serves has closed. Upgraded connections (`/ws`) are no longer
/// hyper's: they end on their own terms.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    guard: Arc<Guard>,
    timeouts: Timeouts,
    stop: impl Future<Output = ()>,
) {
    let (stopping, stopped) = watch::channel(false);
    // Each connection's task holds a sender; the loop's own goes when it stops accepting, so
    // `recv` answers `None` once the last connection is done.
    let (open, mut all_done) = mpsc::channel::<()>(1);
    // Refusals answered at once; past them one is closed unanswered, so a flood of
    // connections over their limit cannot hold descriptors while they are answered.
    let refusing = Arc::new(Semaphore::new(REFUSALS_AT_ONCE));
    let mut stop = pin!(stop);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut stop => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of descriptors, or the like: a moment later it may work again, and
                // spinning on it would take the CPU the open connections need.
                if !is_connection_error(&e) {
                    tracing::error!("accepting a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                continue;
            }
        };
        let Some(slot) = guard.open_http(peer.ip()) else {
            if let Ok(answering) = refusing.clone().try_acquire_owned() {
                tokio::spawn(refuse(stream, guard.clone(), answering));
            }
            continue;
        };
        let _ = stream.set_nodelay(true);
        let connection = Connection {
            stream,
            peer,
            slot,
            router: router.clone(),
            timeouts,
            stopped: stopped.clone(),
            open: open.clone(),
        };
        tokio::spawn(connection.serve());
    }
    drop(listener);
    let _ = stopping.send(true);
    drop(open);
    let _ = all_done.recv().await;
}

/// Errors that concern one connection only (it was reset before it was accepted).
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// Answers a connection over its address' limit with a 429 and closes it. Its request's
/// head is read first (for a second at most): an HTTP client takes an answer that comes
/// before its request for a broken connection, not for a refusal. Nothing else of it is
/// served.
async fn refuse(mut stream: TcpStream, guard: Arc<Guard>, _answering: OwnedSemaphorePermit) {
    let body = guard.too_many_connections_body();
    let answer = format!(
        "HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\n\
         retry-after: 5\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let refusal = async {
        let mut head = Vec::new();
        let mut buffer = [0u8; 2048];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
            match stream.read(&mut buffer).await? {
                0 => return Ok(()),
                n => head.extend_from_slice(&buffer[..n]),
            }
        }
        stream.write_all(answer.as_bytes()).await?;
        stream.shutdown().await?;
        // What else the client sent is read and dropped until it closes too: closing with it
        // unread would answer it with a reset, which can destroy the 429 before it is read.
        let mut read = 0;
        while read < 64 * 1024 {
            match stream.read(&mut buffer).await? {
                0 => break,
                n => read += n,
            }
        }
        io::Result::Ok(())
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), refusal).await;
}

/// One accepted connection, before hyper takes it.
struct Connection {
    stream: TcpStream,
    peer: SocketAddr,
    slot: ConnectionSlot,
    router: Router,
    timeouts: Timeouts,
    stopped: watch::Receiver<bool>,
    /// Dropped when the connection is done.
    open: mpsc::Sender<()>,
}

impl Connection {
    async fn serve(self) {
        let Connection {
            stream,
            peer,
            slot,
            router,
            timeouts,
            mut stopped,
            open,
        } = self;
        let head = Arc::new(Mutex::new(Head::default()));
        let io = Watched {
            stream,
            served: Some(Box::new(Served {
                head: head.clone(),
                _slot: slot,
            })),
        };
        // The handlers find the client's address where axum's own `serve` would put it.
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            router.clone().oneshot(request)
        });
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(HeadTimer { head, timeouts })
            // hyper's head timer starts when the connection starts waiting for a request:
            // its deadline is the keep-alive one until a byte arrives (see `HeadSleep`).
            .header_read_timeout(timeouts.keep_alive);
        let connection = builder
            .serve_connection(TokioIo::new(io), service)
            .with_upgrades();
        let mut connection = pin!(connection);
        let stopping = async {
            let _ = stopped.wait_for(|stop| *stop).await;
        };
        tokio::select! {
            _ = connection.as_mut() => {}
            () = stopping => {
                connection.as_mut().graceful_shutdown();
                let _ = connection.await;
            }
        }
        drop(open);
    }
}

/// Where a connection is in reading a request head, as its reads and hyper's timer see it.
#[derive(Default)]
struct Head {
    /// Counts the sleeps hyper was given, so a replaced one going away does not clear what
    /// its successor set.
    armed: u64,
    /// hyper is waiting for a head: its timer runs.
    awaited: bool,
    /// When it started waiting.
    since: Option<Instant>,
    /// When the first byte of the head arrived.
    started: Option<Instant>,
}

/// The connection's socket, noting when a head's first byte arrives.
struct Watched {
    stream: TcpStream,
    /// While hyper serves the connection. Let go once it no longer does (the connection was
    /// upgraded to a WebSocket, which counts among its address' sockets instead, see
    /// `socket.rs`): every open socket would otherwise keep it, and boxed, so that it then
    /// takes no room in the socket's memory either.
    served: Option<Box<Served>>,
}

/// What a connection holds while hyper serves it.
struct Served {
    /// Shared with hyper's timer.
    head: Arc<Mutex<Head>>,
    /// Its place in its address' count of connections.
    _slot: ConnectionSlot,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let read = Pin::new(&mut self.stream).poll_read(cx, buf);
        // hyper's timer gone: hyper has handed the connection on.
        let handed_on = self
            .served
            .as_ref()
            .is_some_and(|served| Arc::strong_count(&served.head) == 1);
        if handed_on {
            self.served = None;
        }
        let got = matches!(read, Poll::Ready(Ok(()))) && buf.filled().len() > before;
        if let (true, Some(served)) = (got, &self.served) {
            let mut head = served.head.lock();
            if head.awaited && head.started.is_none() {
                head.started = Some(Instant::now());
            }
        }
        read
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// hyper's timer for one connection. hyper asks it for one sleep per request head, made when
/// it starts waiting for the head and dropped once the head is read (or the connection
/// ends); nothing else on an HTTP/1.1 server connection uses a timer.
struct HeadTimer {
    head: Arc<Mutex<Head>>,
    timeouts: Timeouts,
}

impl HeadTimer {
    fn arm(&self) -> HeadSleep {
        let now = Instant::now();
        let mut head = self.head.lock();
        head.armed += 1;
        head.awaited = true;
        head.since = Some(now);
        head.started = None;
        let armed = head.armed;
        drop(head);
        HeadSleep {
            armed,
            head: self.head.clone(),
            timeouts: self.timeouts,
            sleep: Box::pin(tokio::time::sleep_until(
                (now + self.timeouts.keep_alive).into(),
            )),
        }
    }
}

impl hyper::rt::Timer for HeadTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Sleep>> {
        Box::pin(PlainSleep(Box::pin(tokio::time::sleep(duration))))
    }

    fn sleep_until(&self, _deadline: Instant) -> Pin<Box<dyn Sleep>> {
        Box::pin(self.arm())
    }

    fn reset(&self, sleep: &mut Pin<Box<dyn Sleep>>, _new_deadline: Instant) {
        *sleep = Box::pin(self.arm());
    }
}

/// A head's deadline: the keep-alive timeout from when hyper started waiting, until the
/// head's first byte arrives; then the header timeout from that byte.
struct HeadSleep {
    /// Which of the connection's sleeps this is.
    armed: u64,
    head: Arc<Mutex<Head>>,
    timeouts: Timeouts,
    sleep: Pin<Box<tokio::time::Sleep>>,
}

impl Future for HeadSleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        // hyper polls this right after each read that left the head unfinished, so a first
        // byte is seen here before the keep-alive deadline could pass instead.
        let deadline = {
            let head = self.head.lock();
            match (head.started, head.since) {
                (Some(started), _) => started + self.timeouts.header,
                (None, Some(since)) => since + self.timeouts.keep_alive,
                (None, None) => Instant::now() + self.timeouts.keep_alive,
            }
        };
        let deadline = tokio::time::Instant::from(deadline);
        if self.sleep.deadline() != deadline {
            self.sleep.as_mut().reset(deadline);
        }
        self.sleep.as_mut().poll(cx)
    }
}

impl Drop for HeadSleep {
    fn drop(&mut self) {
        let mut head = self.head.lock();
        if head.armed == self.armed {
            head.awaited = false;
            head.started = None;
        }
    }
}

impl Sleep for HeadSleep {}

/// Any other sleep hyper might ask for.
struct PlainSleep(Pin<Box<tokio::time::Sleep>>);

impl Future for PlainSleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.0.as_mut().poll(cx)
    }
}

impl Sleep for PlainSleep {}
