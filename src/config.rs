//! The server's runtime configuration: `Leptos.toml`, then environment overrides.
//!
//! `Leptos.toml` is compiled in as the defaults, so the values are written once; a file on
//! disk (./Leptos.toml, or the one `PULSEBOARD_CONFIG` names) replaces any of them, and
//! `PULSEBOARD_<KEY>` environment variables replace those.

use crate::hub::HubSettings;
use leptos::config::LeptosOptions;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

const DEFAULTS: &str = include_str!("../Leptos.toml");
const KEYS: [&str; 8] = [
    "listen",
    "site_root",
    "data_dir",
    "boards",
    "fsync",
    "demo",
    "history",
    "queue",
];

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub listen: SocketAddr,
    pub site_root: PathBuf,
    pub data_dir: PathBuf,
    /// The directory of board files.
    pub boards: PathBuf,
    pub fsync: bool,
    pub demo: bool,
    pub history: usize,
    /// Per-topic overrides of `history`: topic pattern → events kept.
    #[serde(default)]
    pub retention: BTreeMap<String, usize>,
    pub queue: usize,
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
                table.insert(key.into(), env_value(&raw));
            }
        }
        toml::Value::Table(table)
            .try_into()
            .map_err(|e| ConfigError(format!("invalid configuration: {e}")))
    }

    pub fn hub_settings(&self) -> HubSettings {
        HubSettings {
            history: self.history,
            retention: self
                .retention
                .iter()
                .map(|(pattern, events)| (pattern.clone(), *events))
                .collect(),
            queue: self.queue,
        }
    }

    /// The options Leptos renders pages with. The output name, package dir and reload port
    /// come from cargo-leptos's environment when it runs the server, else from its defaults.
    pub fn leptos_options(&self) -> LeptosOptions {
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
    }

    #[test]
    fn retention_picks_the_longest_matching_pattern() {
        let settings = HubSettings {
            history: 100,
            retention: vec![
                ("feed:*".into(), 5000),
                ("feed:deploys".into(), 10),
                ("metric:*".into(), 7),
            ],
            queue: 10,
        };
        assert_eq!(settings.history_for("feed:orders"), 5000);
        assert_eq!(settings.history_for("feed:deploys"), 10);
        assert_eq!(settings.history_for("metric:x"), 7);
        assert_eq!(settings.history_for("board:leaders"), 100);
    }
}
