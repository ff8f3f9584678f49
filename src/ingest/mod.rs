//! What comes in without a script: pull sources, which fetch numbers from where they
//! already are (a Prometheus, any URL that answers JSON) on a schedule and write them into
//! topics through the engine, as a publisher would. Boards just read those topics.
//!
//! - [`files`]: the sources directory: TOML files of `[[source]]`, `${VAR}` secrets, each
//!   mistake at its line, hot reload that keeps a broken file's last good version;
//! - [`prometheus`]: instant and range queries → the entities a topic should hold;
//! - [`http`]: a JSON answer and its jq `select` ([`jq`]) → entities or ops;
//! - [`fetch`]: the one HTTP request of a run, bounded in time and size;
//! - [`changes`]: a run's result against the topic's state → the ops that make it so
//!   (none when nothing changed);
//! - [`schedule`]: when each source runs, its timeout and backoff, the bound on runs in
//!   flight, the lease that lets one instance of several run it, and what `/admin` and
//!   `/metrics` say of each;
//! - [`hooks`]: what other systems post (Alertmanager, GitHub, GitLab, any JSON) → ops, and
//!   each hook's delivery log;
//! - [`line_protocol`]: InfluxDB line protocol (Telegraf, Vector) → topics and series.
//!
//! Nothing here knows HTTP servers or axum: the server starts [`schedule::run`], shows
//! [`schedule::Status`], and hands hook deliveries it has verified to [`hooks`]; the engine
//! is the only way out.

pub(crate) mod changes;
pub(crate) mod fetch;
pub(crate) mod files;
pub(crate) mod hooks;
pub(crate) mod http;
pub(crate) mod jq;
pub(crate) mod line_protocol;
pub(crate) mod prometheus;
pub(crate) mod schedule;

use std::time::Duration;

/// One source, as its file describes it (secrets filled in).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Source {
    /// Unique among all the files: `/admin`, `/metrics` and the lease name it.
    pub(crate) name: String,
    /// The topic it writes.
    pub(crate) topic: String,
    /// Time between runs.
    pub(crate) every: Duration,
    /// How long one run may take.
    pub(crate) timeout: Duration,
    /// Request headers (`Authorization`, …).
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) kind: Kind,
    /// The file and line it was written at, for `/admin`.
    pub(crate) origin: String,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Kind {
    Prometheus(prometheus::Query),
    Http(http::Request),
}

impl Kind {
    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            Self::Prometheus(_) => "prometheus",
            Self::Http(_) => "http",
        }
    }
}
