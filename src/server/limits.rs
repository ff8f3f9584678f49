//! Limits per client address and per API key, on top of the per-connection ones in
//! `socket.rs`: HTTP requests per second (429 with `Retry-After` past them), open TCP
//! connections per address (`http_connections_per_ip`, counted by the accept loop,
//! `listener.rs`), and open `/ws` and `/sse` connections per address (`connections_per_ip`).
//!
//! A request with a key in force counts against its key, one without against its address:
//! a publisher is known by its key wherever it runs from, and a wall of screens behind one
//! office NAT is not throttled by a script next to them. Behind a reverse proxy every request
//! comes from the proxy's address; with `trust_proxy` the address it puts last in
//! `X-Forwarded-For` is used instead, and the proxy's own connections are not limited (it
//! carries everyone's). An IPv6 client is counted by its /64: one host is usually given a
//! whole /64, and counting each of its addresses apart would give it 2^64 budgets.
//!
//! Refusals are counted in `/metrics` and logged at most once per [`LOG_EVERY`] with how
//! many there were since: a flood must not push the real events out of the log, or out of
//! the admin view's last lines.

use super::caller::Identified;
use super::error::{ApiError, Code};
use super::AppState;
use crate::metrics::Metrics;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// At most one log line (and audit line) of refusals per this long.
pub(crate) const LOG_EVERY: Duration = Duration::from_secs(10);

/// Which of an address' connections a slot counts among.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// Connections while they speak HTTP (`http_connections_per_ip`).
    Http,
    /// `/ws` and `/sse` (`connections_per_ip`).
    Stream,
}

/// What a refusal was for, as `/metrics` counts it.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Refusal {
    Requests,
    Connections,
}

/// What the operator set, from Leptos.toml.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ClientLimits {
    pub(crate) requests_per_ip: NonZeroU32,
    pub(crate) requests_per_key: NonZeroU32,
    /// `/ws` and `/sse`.
    pub(crate) connections_per_ip: usize,
    /// Connections while they speak HTTP.
    pub(crate) http_connections_per_ip: usize,
    pub(crate) trust_proxy: bool,
}

pub(crate) struct Guard {
    limits: ClientLimits,
    by_ip: DefaultKeyedRateLimiter<IpAddr>,
    by_key: DefaultKeyedRateLimiter<String>,
    /// Open `/ws` and `/sse` connections per client address.
    open: Mutex<HashMap<IpAddr, usize>>,
    /// Open connections speaking HTTP, per peer address.
    http: Mutex<HashMap<IpAddr, usize>>,
    /// Told when the last open `/ws` or `/sse` connection closes.
    all_closed: Notify,
    metrics: Arc<Metrics>,
    /// When refusals were last logged, and how many there were since.
    refusals: Mutex<(Option<Instant>, u64)>,
}

/// The address a client is counted by: an IPv4 address (also one written as IPv6), or an
/// IPv6 address' /64.
pub(crate) fn counted_as(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(Ipv6Addr::from(prefix))
            }
        },
    }
}

/// Bursts of twice the rate: a page load fetches several files at once.
fn quota(per_second: NonZeroU32) -> Quota {
    let burst = per_second.saturating_mul(NonZeroU32::new(2).unwrap_or(NonZeroU32::MIN));
    Quota::per_second(per_second).allow_burst(burst)
}

impl Guard {
    pub(crate) fn new(limits: ClientLimits, metrics: Arc<Metrics>) -> Arc<Self> {
        Arc::new(Guard {
            limits,
            by_ip: RateLimiter::keyed(quota(limits.requests_per_ip)),
            by_key: RateLimiter::keyed(quota(limits.requests_per_key)),
            open: Mutex::default(),
            http: Mutex::default(),
            all_closed: Notify::new(),
            metrics,
            refusals: Mutex::default(),
        })
    }

    /// The address the client is counted by: the peer's, or with `trust_proxy` the one the
    /// proxy saw; an IPv6 address' /64.
    pub(crate) fn client_ip(&self, peer: SocketAddr, headers: &HeaderMap) -> IpAddr {
        let forwarded = self
            .limits
            .trust_proxy
            .then(|| headers.get("x-forwarded-for")?.to_str().ok())
            .flatten()
            .and_then(|list| list.rsplit(',').next())
            .and_then(|last| last.trim().parse().ok());
        counted_as(forwarded.unwrap_or(peer.ip()))
    }

    /// Takes one of the address' `/ws` and `/sse` connections; `None` when it has them all
    /// open. The slot is given back when dropped.
    pub(crate) fn open_connection(self: &Arc<Self>, ip: IpAddr) -> Option<ConnectionSlot> {
        self.take(ip, Kind::Stream)
    }

    /// Takes one of the peer's connections speaking HTTP; `None` when it has them all open
    /// (a trusted proxy has no limit: it carries every client). The slot is given back when
    /// dropped.
    pub(crate) fn open_http(self: &Arc<Self>, peer: IpAddr) -> Option<ConnectionSlot> {
        let slot = self.take(counted_as(peer), Kind::Http);
        if slot.is_none() {
            self.refused(Refusal::Connections, &peer.to_string(), "(connect)");
        }
        slot
    }

    /// The count of one kind of connection per address.
    fn counts(&self, kind: Kind) -> parking_lot::MutexGuard<'_, HashMap<IpAddr, usize>> {
        match kind {
            Kind::Http => self.http.lock(),
            Kind::Stream => self.open.lock(),
        }
    }

    fn take(self: &Arc<Self>, ip: IpAddr, kind: Kind) -> Option<ConnectionSlot> {
        let (limit, unlimited) = match kind {
            Kind::Http => (self.limits.http_connections_per_ip, self.limits.trust_proxy),
            Kind::Stream => (self.limits.connections_per_ip, false),
        };
        let mut open = self.counts(kind);
        let count = open.entry(ip).or_default();
        if *count >= limit && !unlimited {
            return None;
        }
        *count += 1;
        Some(ConnectionSlot {
            guard: self.clone(),
            ip,
            kind,
        })
    }

    /// Counts a refusal, and logs (with an audit line) the refusals since the last such line
    /// when [`LOG_EVERY`] has passed since it.
    pub(crate) fn refused(&self, refusal: Refusal, client: &str, path: &str) {
        let reason = match refusal {
            Refusal::Connections => {
                self.metrics.refused_connections.inc();
                "too many connections"
            }
            Refusal::Requests => {
                self.metrics.refused_requests.inc();
                "rate limited"
            }
        };
        let mut refusals = self.refusals.lock();
        refusals.1 += 1;
        let due = refusals.0.is_none_or(|at| at.elapsed() >= LOG_EVERY);
        if !due {
            return;
        }
        let count = std::mem::take(&mut refusals.1);
        refusals.0 = Some(Instant::now());
        drop(refusals);
        tracing::warn!(target: "audit", event = "denied", client, path, reason, refusals = count, "refused {count} time(s) since the last such line; the latest shown");
    }

    /// Resolves once no connection is open.
    pub(crate) async fn until_all_closed(&self) {
        loop {
            // Made before the check, so a close in between still wakes it.
            let closed = self.all_closed.notified();
            if self.open.lock().is_empty() {
                return;
            }
            closed.await;
        }
    }

    /// Forgets addresses and keys idle long enough that their buckets are full again, so
    /// the limiters' memory follows the clients seen lately, not every one ever.
    pub(crate) fn forget_idle(&self) {
        self.by_ip.retain_recent();
        self.by_key.retain_recent();
    }

    fn too_many_connections_error(&self, limit: usize) -> ApiError {
        let message = format!(
            "this address has {limit} connections open, the most it may; close one or retry later"
        );
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            Code::TooManyConnections,
            message,
        )
    }

    /// The refusal for an address with all its `/ws` and `/sse` connections open.
    pub(crate) fn too_many_connections(&self, ip: IpAddr, path: &str) -> Response {
        self.refused(Refusal::Connections, &ip.to_string(), path);
        let limit = self.limits.connections_per_ip;
        too_many(
            self.too_many_connections_error(limit),
            Duration::from_secs(5),
        )
    }

    /// The same refusal's JSON body, for a connection refused before HTTP is spoken.
    pub(crate) fn too_many_connections_body(&self) -> String {
        let limit = self.limits.http_connections_per_ip;
        self.too_many_connections_error(limit).body_json()
    }
}

/// One open connection of an address.
pub(crate) struct ConnectionSlot {
    guard: Arc<Guard>,
    ip: IpAddr,
    kind: Kind,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut open = self.guard.counts(self.kind);
        if let Some(count) = open.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
        if open.is_empty() && self.kind == Kind::Stream {
            self.guard.all_closed.notify_waiters();
        }
    }
}

fn too_many(error: ApiError, wait: Duration) -> Response {
    let seconds = wait.as_secs_f64().ceil().max(1.0) as u64;
    let mut response = error.into_response();
    response
        .headers_mut()
        .insert("retry-after", HeaderValue::from(seconds));
    response
}

/// Middleware: counts each request against its key or address and answers 429 past the limit.
pub(crate) async fn requests(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
    next: Next,
) -> Response {
    let guard = &state.guard;
    let key = request
        .extensions()
        .get::<Identified>()
        .and_then(|identified| identified.0.as_ref().ok()?.key())
        .map(|key| key.id.clone());
    let ip = guard.client_ip(peer, request.headers());
    let checked = match &key {
        Some(id) => guard.by_key.check_key(id),
        None => guard.by_ip.check_key(&ip),
    };
    if let Err(not_until) = checked {
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        let (whose, rate) = match &key {
            Some(id) => (format!("key {id}"), guard.limits.requests_per_key),
            None => (format!("address {ip}"), guard.limits.requests_per_ip),
        };
        guard.refused(Refusal::Requests, &whose, request.uri().path());
        let message =
            format!("{whose} sent more than {rate} requests a second; retry after the wait given in Retry-After");
        return too_many(
            ApiError::new(StatusCode::TOO_MANY_REQUESTS, Code::RateLimited, message),
            wait,
        );
    }
    next.run(request).await
}
