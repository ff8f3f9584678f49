//! The server's runtime configuration: `Leptos.toml`, then environment overrides.
//!
//! `Leptos.toml` is compiled in as the defaults, so the values are written once; a file on
//! disk (./Leptos.toml, or the one `PULSEBOARD_CONFIG` names) replaces any of them, and
//! `PULSEBOARD_<KEY>` environment variables replace those.

use crate::engine::Retention;
use crate::hub::outbox::QueueLimits;
use crate::hub::presence::PresenceSettings;
use crate::notes::NoteSettings;
use crate::server::bodies::BodyLimits;
use crate::server::limits::ClientLimits;
use crate::server::listener::Timeouts;
use crate::server::session::Heartbeat;
use crate::server::socket::Limits;
use leptos::config::LeptosOptions;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

const DEFAULTS: &str = include_str!("../Leptos.toml");
const KEYS: [&str; 38] = [
    "listen",
    "site_root",
    "data_dir",
    "boards",
    "sources",
    "source_runs",
    "source_lease",
    "fsync",
    "demo",
    "history",
    "queue",
    "heartbeat",
    "idle_timeout",
    "shutdown_grace",
    "reconnect_spread",
    "allowed_origins",
    "messages_per_second",
    "max_subscriptions",
    "long_polls",
    "requests_per_ip",
    "requests_per_key",
    "connections_per_ip",
    "http_connections_per_ip",
    "trust_proxy",
    "frame_ancestors",
    "max_frame_kib",
    "max_body_kib",
    "header_timeout",
    "keep_alive_timeout",
    "body_timeout",
    "queue_kib",
    "max_boards",
    "idempotency_keys",
    "redis_url",
    "presence_grace",
    "presence_list_max",
    "notes_per_board",
    "notes_keep_days",
];
/// Keys whose value is a list: in the environment, comma-separated.
const LISTS: [&str; 2] = ["allowed_origins", "frame_ancestors"];

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub(crate) listen: SocketAddr,
    pub(crate) site_root: PathBuf,
    pub(crate) data_dir: PathBuf,
    /// The directory of board files.
    pub(crate) boards: PathBuf,
    /// The directory of source files; empty for none.
    pub(crate) sources: PathBuf,
    /// Source runs in progress at once.
    pub(crate) source_runs: usize,
    /// Seconds a source's lease lasts without renewal (several instances).
    pub(crate) source_lease: u64,
    pub(crate) fsync: bool,
    pub(crate) demo: bool,
    pub(crate) history: usize,
    /// Per-topic overrides of `history`: topic pattern → events kept.
    #[serde(default)]
    pub(crate) retention: BTreeMap<String, usize>,
    pub(crate) queue: usize,
    /// Seconds between pings on each connection.
    pub(crate) heartbeat: u64,
    /// Seconds of silence after which a connection counts as dead.
    pub(crate) idle_timeout: u64,
    /// Seconds a stopping server allows itself before it exits regardless.
    pub(crate) shutdown_grace: u64,
    /// Seconds over which screens spread their reconnection after a restart.
    pub(crate) reconnect_spread: u64,
    /// Origins besides the server's own whose pages may open a WebSocket.
    pub(crate) allowed_origins: Vec<String>,
    /// Frames a client may send per second over one WebSocket.
    pub(crate) messages_per_second: u32,
    /// Topics one connection may follow at once.
    pub(crate) max_subscriptions: usize,
    /// Long polls (`/api/v1/topics/{topic}/changes`) waiting at once.
    pub(crate) long_polls: usize,
    /// HTTP requests per second from one address without a key.
    pub(crate) requests_per_ip: u32,
    /// HTTP requests per second made with one API key.
    pub(crate) requests_per_key: u32,
    /// Open `/ws` and `/sse` connections per address.
    pub(crate) connections_per_ip: usize,
    /// Open connections per address while they speak HTTP.
    pub(crate) http_connections_per_ip: usize,
    /// Take the client's address from `X-Forwarded-For` (set only behind a proxy that sets it).
    pub(crate) trust_proxy: bool,
    /// Sites that may show the pages in a frame, as CSP `frame-ancestors` sources.
    pub(crate) frame_ancestors: Vec<String>,
    /// The largest WebSocket frame a client may send, in KiB.
    pub(crate) max_frame_kib: usize,
    /// The largest HTTP API request body, in KiB.
    pub(crate) max_body_kib: usize,
    /// Seconds from a request's first byte to the end of its headers.
    pub(crate) header_timeout: u64,
    /// Seconds an idle HTTP connection is kept open for its next request.
    pub(crate) keep_alive_timeout: u64,
    /// Seconds a request body may take to arrive whole.
    pub(crate) body_timeout: u64,
    /// What one connection's queue may hold, in KiB (besides `queue` frames).
    pub(crate) queue_kib: usize,
    /// Boards one connection may be on at once.
    pub(crate) max_boards: usize,
    /// Idempotency keys remembered per API key.
    pub(crate) idempotency_keys: usize,
    /// The Redis that several instances share; empty for the embedded engine.
    pub(crate) redis_url: String,
    /// Seconds a person stays on a board after their last page there closed.
    pub(crate) presence_grace: u64,
    /// People a presence frame lists; a board with more gets their count.
    pub(crate) presence_list_max: usize,
    /// Notes a board keeps; a new one past it lets go of the oldest.
    pub(crate) notes_per_board: usize,
    /// Days a note is kept after it was last written.
    pub(crate) notes_keep_days: u64,
}

#[derive(Debug)]
pub struct ConfigError(String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Reads the configuration the way the server does at start.
    pub fn load() -> Result<Self, ConfigError> {
        let mut table = parse("built-in defaults", DEFAULTS)?;
        let (path, required) = match std::env::var_os("PULSEBOARD_CONFIG") {
            Some(path) => (PathBuf::from(path), true),
            None => (PathBuf::from("Leptos.toml"), false),
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => table.extend(parse(&path.display().to_string(), &text)?),
            Err(e) if required || e.kind() != std::io::ErrorKind::NotFound => {
                return Err(ConfigError(format!("cannot read {}: {e}", path.display())))
            }
            Err(_) => {}
        }
        if let (None, Some(root)) = (
            std::env::var_os("PULSEBOARD_SITE_ROOT"),
            std::env::var("LEPTOS_SITE_ROOT").ok(),
        ) {
            table.insert("site_root".into(), toml::Value::String(root));
        }
        for key in KEYS {
            let var = format!("PULSEBOARD_{}", key.to_uppercase());
            if let Ok(raw) = std::env::var(&var) {
                let value = match key {
                    key if LISTS.contains(&key) => toml::Value::Array(
                        raw.split(',')
                            .map(str::trim)
                            .filter(|o| !o.is_empty())
                            .map(|o| toml::Value::String(o.to_owned()))
                            .collect(),
                    ),
                    _ => env_value(&raw),
                };
                table.insert(key.into(), value);
            }
        }
        let config: Config = toml::Value::Table(table)
            .try_into()
            .map_err(|e| ConfigError(format!("invalid configuration: {e}")))?;
        config.check()?;
        Ok(config)
    }

    /// Settings that parse but cannot work together.
    fn check(&self) -> Result<(), ConfigError> {
        if self.heartbeat == 0 {
            return Err(ConfigError("heartbeat must be at least 1 second".into()));
        }
        let counts = [
            ("messages_per_second", self.messages_per_second as usize),
            ("max_subscriptions", self.max_subscriptions),
            ("long_polls", self.long_polls),
            ("requests_per_ip", self.requests_per_ip as usize),
            ("requests_per_key", self.requests_per_key as usize),
            ("connections_per_ip", self.connections_per_ip),
            ("http_connections_per_ip", self.http_connections_per_ip),
            ("max_frame_kib", self.max_frame_kib),
            ("max_body_kib", self.max_body_kib),
            ("header_timeout", self.header_timeout as usize),
            ("keep_alive_timeout", self.keep_alive_timeout as usize),
            ("body_timeout", self.body_timeout as usize),
            ("queue_kib", self.queue_kib),
            ("max_boards", self.max_boards),
            ("idempotency_keys", self.idempotency_keys),
            ("notes_per_board", self.notes_per_board),
            ("notes_keep_days", self.notes_keep_days as usize),
            ("source_runs", self.source_runs),
            ("source_lease", self.source_lease as usize),
        ];
        if let Some((key, _)) = counts.iter().find(|(_, n)| *n == 0) {
            return Err(ConfigError(format!("{key} must be at least 1")));
        }
        if self.shutdown_grace == 0 {
            return Err(ConfigError(
                "shutdown_grace must be at least 1 second, or screens are not told of a restart"
                    .into(),
            ));
        }
        if self.idle_timeout <= self.heartbeat {
            return Err(ConfigError(format!(
                "idle_timeout ({} s) must be longer than heartbeat ({} s), or every quiet connection is closed",
                self.idle_timeout, self.heartbeat
            )));
        }
        Ok(())
    }

    pub(crate) fn limits(&self) -> Limits {
        Limits {
            messages_per_second: std::num::NonZeroU32::new(self.messages_per_second)
                .unwrap_or(std::num::NonZeroU32::MIN),
            max_subscriptions: self.max_subscriptions,
            max_boards: self.max_boards,
            max_frame: self.max_frame_kib * 1024,
            max_body: self.max_body_kib * 1024,
        }
    }

    pub(crate) fn sources(&self) -> crate::ingest::schedule::Settings {
        crate::ingest::schedule::Settings {
            dir: self.sources.clone(),
            in_flight: self.source_runs,
            lease: Duration::from_secs(self.source_lease),
        }
    }

    pub(crate) fn body_limits(&self) -> BodyLimits {
        BodyLimits {
            max: self.max_body_kib * 1024,
            timeout: Duration::from_secs(self.body_timeout),
        }
    }

    pub(crate) fn queue_limits(&self) -> QueueLimits {
        QueueLimits {
            frames: self.queue,
            bytes: self.queue_kib * 1024,
        }
    }

    pub(crate) fn timeouts(&self) -> Timeouts {
        Timeouts {
            header: Duration::from_secs(self.header_timeout),
            keep_alive: Duration::from_secs(self.keep_alive_timeout),
        }
    }

    pub(crate) fn presence(&self) -> PresenceSettings {
        PresenceSettings {
            grace: Duration::from_secs(self.presence_grace),
            list_max: self.presence_list_max,
        }
    }

    pub(crate) fn notes(&self) -> NoteSettings {
        NoteSettings {
            per_board: self.notes_per_board,
            keep: Duration::from_secs(self.notes_keep_days * 86_400),
        }
    }

    pub(crate) fn client_limits(&self) -> ClientLimits {
        let at_least_one = |n| std::num::NonZeroU32::new(n).unwrap_or(std::num::NonZeroU32::MIN);
        ClientLimits {
            requests_per_ip: at_least_one(self.requests_per_ip),
            requests_per_key: at_least_one(self.requests_per_key),
            connections_per_ip: self.connections_per_ip,
            http_connections_per_ip: self.http_connections_per_ip,
            trust_proxy: self.trust_proxy,
        }
    }

    pub(crate) fn heartbeat(&self) -> Heartbeat {
        Heartbeat {
            interval: Duration::from_secs(self.heartbeat),
            idle_timeout: Duration::from_secs(self.idle_timeout),
        }
    }

    /// What the engine keeps: events per topic, idempotency keys per API key.
    pub(crate) fn retention(&self) -> Retention {
        Retention {
            history: self.history,
            patterns: self
                .retention
                .iter()
                .map(|(pattern, events)| (pattern.clone(), *events))
                .collect(),
            idempotency_keys: self.idempotency_keys,
        }
    }

    /// The options Leptos renders pages with. The output name, package dir and reload port
    /// come from cargo-leptos's environment when it runs the server, else from its defaults.
    pub(crate) fn leptos_options(&self) -> LeptosOptions {
        let env = |key: &str| std::env::var(key).ok();
        LeptosOptions::builder()
            .output_name(env("LEPTOS_OUTPUT_NAME").unwrap_or_else(|| env!("CARGO_PKG_NAME").into()))
            .site_root(self.site_root.display().to_string())
            .site_pkg_dir(env("LEPTOS_SITE_PKG_DIR").unwrap_or_else(|| "pkg".into()))
            .site_addr(self.listen)
            .reload_port(
                env("LEPTOS_RELOAD_PORT")
                    .and_then(|p| p.parse().ok())
                    .unwrap_or(3001),
            )
            .build()
    }
}

/// 1-based line and column of a byte offset of `text`.
fn place(text: &str, at: usize) -> (usize, usize) {
    let before = &text[..at.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

impl Config {
    /// Every mistake in a configuration file, each as `file:line:col: message`: TOML that
    /// does not parse, keys the server does not know, values of the wrong type, settings
    /// that contradict each other. Empty when the server would start with it.
    pub(crate) fn mistakes(file: &str, text: &str) -> Vec<String> {
        let at = |span: std::ops::Range<usize>, message: &str| {
            let (line, column) = place(text, span.start);
            format!("{file}:{line}:{column}: {message}")
        };
        let spanned: toml::Spanned<toml::Table> = match toml::from_str(text) {
            Ok(spanned) => spanned,
            Err(e) => {
                let message = e.message().to_owned();
                return vec![match e.span() {
                    Some(span) => at(span, &message),
                    None => format!("{file}: {message}"),
                }];
            }
        };
        // Where each key's value starts, for the messages about it.
        let keys: Vec<(String, std::ops::Range<usize>)> =
            match toml::from_str::<BTreeMap<toml::Spanned<String>, toml::Value>>(text) {
                Ok(keys) => keys
                    .keys()
                    .map(|key| (key.get_ref().clone(), key.span()))
                    .collect(),
                Err(_) => Vec::new(),
            };
        let span_of = |name: &str| {
            keys.iter()
                .find(|(key, _)| key == name)
                .map_or(0..0, |(_, span)| span.clone())
        };
        let file_table = spanned.into_inner();
        let mut mistakes = Vec::new();
        let defaults = parse("built-in defaults", DEFAULTS).expect("the defaults parse");
        for (key, value) in &file_table {
            if key != "retention" && !KEYS.contains(&key.as_str()) {
                let known = KEYS.join(", ");
                mistakes.push(at(
                    span_of(key),
                    &format!("unknown setting `{key}`; the settings are: {known}, [retention]"),
                ));
                continue;
            }
            // Each setting on its own over the defaults: a wrong type names its own key.
            let mut one = defaults.clone();
            one.insert(key.clone(), value.clone());
            if let Err(e) = toml::Value::Table(one).try_into::<Config>() {
                mistakes.push(at(span_of(key), &format!("`{key}`: {}", e.message())));
            }
        }
        if mistakes.is_empty() {
            let mut all = defaults;
            all.extend(file_table);
            let config: Result<Config, _> = toml::Value::Table(all).try_into();
            if let Err(e) = config
                .map_err(|e| ConfigError(e.to_string()))
                .and_then(|c| c.check())
            {
                // A contradiction is told at the first setting it names.
                let named = KEYS
                    .iter()
                    .filter_map(|key| e.0.find(key).map(|at| (at, *key)))
                    .min()
                    .map(|(_, key)| key);
                let span = named.map_or(0..0, span_of);
                mistakes.push(at(span, &e.0));
            }
        }
        mistakes
    }
}

fn parse(origin: &str, text: &str) -> Result<toml::Table, ConfigError> {
    text.parse::<toml::Table>()
        .map_err(|e| ConfigError(format!("{origin}: {e}")))
}

/// An environment value as TOML: numbers and booleans keep their type, anything else is text.
fn env_value(raw: &str) -> toml::Value {
    if let Ok(n) = raw.parse::<i64>() {
        toml::Value::Integer(n)
    } else if let Ok(b) = raw.parse::<bool>() {
        toml::Value::Boolean(b)
    } else {
        toml::Value::String(raw.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_configuration_s_mistakes_name_their_line_and_column() {
        assert!(Config::mistakes("Leptos.toml", DEFAULTS).is_empty());
        let text = "heartbeat = 15\nqueue = \"many\"\nlisten_on = \"x\"\n";
        let mistakes = Config::mistakes("Leptos.toml", text);
        assert_eq!(mistakes.len(), 2, "{mistakes:?}");
        assert!(
            mistakes[0].starts_with("Leptos.toml:3:1: unknown setting `listen_on`"),
            "{mistakes:?}"
        );
        assert!(
            mistakes[1].starts_with("Leptos.toml:2:1: `queue`"),
            "{mistakes:?}"
        );
        let broken = Config::mistakes("Leptos.toml", "heartbeat = \n");
        assert!(broken[0].starts_with("Leptos.toml:1:"), "{broken:?}");
        let contradiction =
            Config::mistakes("Leptos.toml", "\n\nidle_timeout = 5\nheartbeat = 15\n");
        assert!(
            contradiction[0].starts_with("Leptos.toml:3:1: idle_timeout"),
            "{contradiction:?}"
        );
    }

    #[test]
    fn the_built_in_defaults_parse() {
        let config: Config = toml::Value::Table(parse("defaults", DEFAULTS).unwrap())
            .try_into()
            .unwrap();
        assert_eq!(config.listen.port(), 3000);
        assert!(config.demo);
        assert_eq!(
            config.queue, 1024,
            "queue is a top-level key, not part of [retention]"
        );
        assert!(config.check().is_ok());
        assert_eq!(config.heartbeat().interval, Duration::from_secs(15));
    }

    #[test]
    fn retention_picks_the_longest_matching_pattern() {
        let settings = Retention {
            history: 100,
            patterns: vec![
                ("feed:*".into(), 5000),
                ("feed:deploys".into(), 10),
                ("metric:*".into(), 7),
            ],
            idempotency_keys: 1,
        };
        assert_eq!(settings.history_for("feed:orders"), 5000);
        assert_eq!(settings.history_for("feed:deploys"), 10);
        assert_eq!(settings.history_for("metric:x"), 7);
        assert_eq!(settings.history_for("board:leaders"), 100);
    }
}
