//! The server's figures for `/metrics`, in the Prometheus (OpenMetrics) text format: what
//! operators watch and what the benchmarks read, so both see the same numbers.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

pub(crate) struct Metrics {
    registry: Registry,
    /// Open connections: WebSockets and Server-Sent Events streams.
    pub(crate) connections: Gauge,
    /// Of those, the Server-Sent Events streams.
    pub(crate) streams: Gauge,
    /// Topic subscriptions held by open connections.
    pub(crate) subscriptions: Gauge,
    /// Events applied (and stored) by publishes and expiry.
    pub(crate) events_published: Counter,
    /// Event frames queued to subscribers: one per event per subscriber.
    pub(crate) frames_queued: Counter,
    /// Times a connection fell behind (its queue was full) on a topic or board.
    pub(crate) slow_consumers: Counter,
    /// Times a connection that fell behind was caught up with one coalesced frame.
    pub(crate) catch_ups: Counter,
    /// Connections closed because the peer stayed silent past the idle timeout.
    pub(crate) idle_closed: Counter,
    /// HTTP requests refused for their address' or key's rate (429).
    pub(crate) refused_requests: Counter,
    /// Connections refused because their address had as many open as it may.
    pub(crate) refused_connections: Counter,
    /// Time from a publish arriving at the engine to its events being queued, in seconds.
    pub(crate) publish_seconds: Histogram,
    /// 1 while the engine can be reached, 0 while it cannot (Redis down).
    pub(crate) engine_up: Gauge,
    /// Writes planned again because another instance wrote the topic first (Redis).
    pub(crate) replans: Counter,
    /// Gaps in a followed topic's events filled from its history (Redis).
    pub(crate) gaps_filled: Counter,
    /// Followed topics read again whole, their screens re-snapshotted: the history no
    /// longer reached back, or the topic started a new epoch (Redis).
    pub(crate) topic_reloads: Counter,
    /// Pull source runs, by source and outcome (`changed`, `unchanged`, `failed`).
    pub(crate) source_runs: Family<Vec<(&'static str, String)>, Counter>,
    /// When each pull source last ran without failing, seconds since the Unix epoch.
    pub(crate) source_last_success: Family<Vec<(&'static str, String)>, Gauge<f64, AtomicU64>>,
    /// `/ws` and `/sse` connections opened, by the client library that said its name.
    pub(crate) client_connections: Family<Vec<(&'static str, &'static str)>, Counter>,
}

/// The client libraries counted by name; any other name counts as `other`, so what a
/// client sends cannot grow the metrics.
const KNOWN_CLIENTS: [&str; 2] = ["pulseboard-js", "pulseboard-py"];

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("pulseboard");
        let connections = Gauge::default();
        let streams = Gauge::default();
        let subscriptions = Gauge::default();
        let events_published = Counter::default();
        let frames_queued = Counter::default();
        let slow_consumers = Counter::default();
        let idle_closed = Counter::default();
        let catch_ups = Counter::default();
        let (refused_requests, refused_connections) = (Counter::default(), Counter::default());
        registry.register(
            "refused_requests",
            "HTTP requests refused for their address' or key's rate (429 rate_limited)",
            refused_requests.clone(),
        );
        registry.register(
            "refused_connections",
            "Connections refused because their address had connections_per_ip open",
            refused_connections.clone(),
        );
        // 50 µs to about 1.6 s.
        let publish_seconds = Histogram::new(exponential_buckets(0.000_05, 2.0, 16));
        let engine_up = Gauge::default();
        engine_up.set(1);
        let (replans, gaps_filled, topic_reloads) =
            (Counter::default(), Counter::default(), Counter::default());
        registry.register(
            "engine_up",
            "1 while the engine (Redis, with several instances) can be reached, else 0",
            engine_up.clone(),
        );
        registry.register(
            "replans",
            "Writes planned again because another instance wrote the topic first",
            replans.clone(),
        );
        registry.register(
            "gaps_filled",
            "Gaps in a followed topic's events filled from its history",
            gaps_filled.clone(),
        );
        registry.register(
            "topic_reloads",
            "Followed topics read again whole, their screens re-snapshotted",
            topic_reloads.clone(),
        );
        registry.register(
            "connections",
            "Open connections: WebSockets and Server-Sent Events streams",
            connections.clone(),
        );
        registry.register(
            "streams",
            "Of the open connections, those over Server-Sent Events",
            streams.clone(),
        );
        registry.register(
            "subscriptions",
            "Topic subscriptions held by open connections",
            subscriptions.clone(),
        );
        registry.register(
            "events_published",
            "Events applied and stored",
            events_published.clone(),
        );
        registry.register(
            "frames_queued",
            "Event frames queued to subscribers",
            frames_queued.clone(),
        );
        registry.register(
            "slow_consumers",
            "Times a connection fell behind on a topic or board because its queue was full",
            slow_consumers.clone(),
        );
        registry.register(
            "catch_ups",
            "Times a connection that fell behind was caught up with one coalesced frame",
            catch_ups.clone(),
        );
        registry.register(
            "idle_closed",
            "Connections closed because the peer stayed silent past the idle timeout",
            idle_closed.clone(),
        );
        registry.register(
            "publish_seconds",
            "Time from a publish reaching the engine to its events being queued",
            publish_seconds.clone(),
        );
        let source_runs = Family::default();
        registry.register(
            "source_runs",
            "Pull source runs, by source and outcome: changed, unchanged or failed",
            source_runs.clone(),
        );
        let source_last_success = Family::default();
        registry.register(
            "source_last_success_seconds",
            "When each pull source last ran without failing, in seconds since the Unix epoch",
            source_last_success.clone(),
        );
        let client_connections = Family::default();
        registry.register(
            "client_connections",
            "WebSocket and SSE connections opened, by the client library named in `client=`: pulseboard-js, pulseboard-py, other, or none",
            client_connections.clone(),
        );
        Self {
            client_connections,
            source_runs,
            source_last_success,
            registry,
            connections,
            streams,
            subscriptions,
            events_published,
            frames_queued,
            slow_consumers,
            catch_ups,
            idle_closed,
            refused_requests,
            refused_connections,
            publish_seconds,
            engine_up,
            replans,
            gaps_filled,
            topic_reloads,
        }
    }
}

impl Metrics {
    /// Every figure, in the OpenMetrics text format.
    /// Counts a connection opened by `client` (`name/version`, as `client=` says it).
    pub(crate) fn client_connected(&self, client: Option<&str>) {
        let name = client.map(|c| c.split('/').next().unwrap_or(c));
        let label = match name {
            None => "none",
            Some(name) => KNOWN_CLIENTS
                .into_iter()
                .find(|known| *known == name)
                .unwrap_or("other"),
        };
        self.client_connections
            .get_or_create(&vec![("client", label)])
            .inc();
    }

    pub(crate) fn render(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut text, &self.registry);
        text
    }
}
