//! Limits per client address and per API key, on top of the per-connection ones in
//! `socket.rs`: HTTP requests per second (429 with `Retry-After` past them), and open
//! connections (`/ws` and `/sse`) per address.
//!
//! A request with a key in force counts against its key, one without against its address:
//! a publisher is known by its key wherever it runs from, and a wall of screens behind one
//! office NAT is not throttled by a script next to them. Behind a reverse proxy every request
//! comes from the proxy's address; with `trust_proxy` the address it puts last in
//! `X-Forwarded-For` is used instead.

use super::caller::Identified;
use super::error::{ApiError, Code};
use super::AppState;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// What the operator set, from Leptos.toml.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ClientLimits {
    pub(crate) requests_per_ip: NonZeroU32,
    pub(crate) requests_per_key: NonZeroU32,
    pub(crate) connections_per_ip: usize,
    pub(crate) trust_proxy: bool,
}

pub(crate) struct Guard {
    limits: ClientLimits,
    by_ip: DefaultKeyedRateLimiter<IpAddr>,
    by_key: DefaultKeyedRateLimiter<String>,
    open: Mutex<HashMap<IpAddr, usize>>,
    /// Told when the last open connection closes.
    all_closed: Notify,
}

/// Bursts of twice the rate: a page load fetches several files at once.
fn quota(per_second: NonZeroU32) -> Quota {
    let burst = per_second.saturating_mul(NonZeroU32::new(2).unwrap_or(NonZeroU32::MIN));
    Quota::per_second(per_second).allow_burst(burst)
}

impl Guard {
    pub(crate) fn new(limits: ClientLimits) -> Arc<Self> {
        Arc::new(Guard {
            limits,
            by_ip: RateLimiter::keyed(quota(limits.requests_per_ip)),
            by_key: RateLimiter::keyed(quota(limits.requests_per_key)),
            open: Mutex::default(),
            all_closed: Notify::new(),
        })
    }

    /// The client's address: the peer's, or with `trust_proxy` the one the proxy saw.
    pub(crate) fn client_ip(&self, peer: SocketAddr, headers: &HeaderMap) -> IpAddr {
        let forwarded = self
            .limits
            .trust_proxy
            .then(|| headers.get("x-forwarded-for")?.to_str().ok())
            .flatten()
            .and_then(|list| list.rsplit(',').next())
            .and_then(|last| last.trim().parse().ok());
        forwarded.unwrap_or(peer.ip())
    }

    /// Takes one of the address' connections; `None` when it has them all open. The slot is
    /// given back when dropped.
    pub(crate) fn open_connection(self: &Arc<Self>, ip: IpAddr) -> Option<ConnectionSlot> {
        let mut open = self.open.lock();
        let count = open.entry(ip).or_default();
        if *count >= self.limits.connections_per_ip {
            return None;
        }
        *count += 1;
        Some(ConnectionSlot {
            guard: self.clone(),
            ip,
        })
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

    /// The refusal for an address with all its connections open.
    pub(crate) fn too_many_connections(&self) -> Response {
        let message = format!(
            "this address has {} connections open, the most it may; close one or retry later",
            self.limits.connections_per_ip
        );
        too_many(
            ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                Code::TooManyConnections,
                message,
            ),
            Duration::from_secs(5),
        )
    }
}

/// One open connection of an address.
pub(crate) struct ConnectionSlot {
    guard: Arc<Guard>,
    ip: IpAddr,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut open = self.guard.open.lock();
        if let Some(count) = open.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
        if open.is_empty() {
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
        tracing::warn!(target: "audit", event = "denied", client = %ip, path = %request.uri().path(), reason = "rate limited");
        let message =
            format!("{whose} sent more than {rate} requests a second; retry after the wait given in Retry-After");
        return too_many(
            ApiError::new(StatusCode::TOO_MANY_REQUESTS, Code::RateLimited, message),
            wait,
        );
    }
    next.run(request).await
}
