//! The sources directory: every `*.toml` file in it holds one or more `[[source]]` tables.
//! Read at start and polled like the boards directory; a file with a mistake keeps its last
//! good version running, and the mistake (file:line:col) shows in `/admin`, the log and
//! `pulseboard check`.
//!
//! ```toml
//! [[source]]
//! name = "hosts"
//! type = "prometheus"
//! url = "http://prometheus:9090"
//! query = "up"
//! entity = "{instance}"
//! topic = "status:hosts"
//! every = "15s"
//! headers = { Authorization = "Bearer ${PROMETHEUS_TOKEN}" }
//! ```
//!
//! Secrets are not written in files: `${NAME}` in `url`, `query`, `headers` and `body` takes
//! the environment variable `NAME`, and one that is not set is a mistake at its line.

use super::hooks::{Hook, Preset};
use super::jq::Selection;
use super::{http, prometheus, Kind, Source};
use crate::boards::file::{duration, place};
use crate::names::check_name;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use toml::Spanned;

/// How often a source runs when its file does not say.
pub(crate) const DEFAULT_EVERY: Duration = Duration::from_secs(15);
/// How long a run may take when its file does not say (or its period, if shorter).
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// The shortest period a source may have.
const MIN_EVERY: Duration = Duration::from_secs(1);
/// The types a source may have.
const TYPES: [&str; 2] = ["prometheus", "http"];

/// A mistake in a source file, where it is.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Mistake {
    /// The file, as the operator knows it.
    pub(crate) file: String,
    pub(crate) line: usize,
    pub(crate) column: usize,
    pub(crate) message: String,
}

impl std::fmt::Display for Mistake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.column, self.message
        )
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SourcesFile {
    #[serde(default)]
    source: Vec<Spanned<SourceTable>>,
    #[serde(default)]
    hook: Vec<Spanned<HookTable>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HookTable {
    name: Spanned<String>,
    #[serde(rename = "type")]
    kind: Spanned<String>,
    secret: Spanned<String>,
    per_second: Option<Spanned<u32>>,
    // alertmanager, github, gitlab
    status_topic: Option<Spanned<String>>,
    feed_topic: Option<Spanned<String>>,
    // generic
    topic: Option<Spanned<String>>,
    select: Option<Spanned<String>>,
    entity: Option<Spanned<String>>,
    replace: Option<Spanned<bool>>,
}

/// What one file holds.
#[derive(Debug, Default)]
pub(crate) struct Parsed {
    pub(crate) sources: Vec<Source>,
    pub(crate) hooks: Vec<Hook>,
}

/// Deliveries a second a hook takes when its file does not say.
const DEFAULT_HOOK_RATE: u32 = 20;
/// The shortest secret a hook may have.
const MIN_SECRET: usize = 12;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SourceTable {
    name: Spanned<String>,
    #[serde(rename = "type")]
    kind: Spanned<String>,
    url: Spanned<String>,
    topic: Spanned<String>,
    every: Option<Spanned<toml::Value>>,
    timeout: Option<Spanned<toml::Value>>,
    #[serde(default)]
    headers: BTreeMap<String, Spanned<String>>,
    entity: Option<Spanned<String>>,
    // prometheus
    query: Option<Spanned<String>>,
    range: Option<Spanned<toml::Value>>,
    step: Option<Spanned<toml::Value>>,
    // http
    method: Option<Spanned<String>>,
    body: Option<Spanned<String>>,
    select: Option<Spanned<String>>,
    replace: Option<Spanned<bool>>,
}

/// The mistakes of one file as they are found, each at its place.
struct Found<'a> {
    file: &'a str,
    text: &'a str,
    mistakes: Vec<Mistake>,
}

impl Found<'_> {
    fn at(&mut self, offset: usize, message: impl Into<String>) {
        let (line, column) = place(self.text, offset);
        self.mistakes.push(Mistake {
            file: self.file.to_owned(),
            line,
            column,
            message: message.into(),
        });
    }

    /// The offset of byte `index` of a string value that starts at `start`: exact when the
    /// file writes it as a plain one-line string, else the value's own start.
    fn within(&self, start: usize, value: &str, index: usize) -> usize {
        let written = self.text.get(start + 1..start + 1 + index);
        match (written, value.get(..index)) {
            (Some(written), Some(meant)) if written == meant => start + 1 + index,
            _ => start,
        }
    }

    /// `${NAME}` in `value` replaced by the environment's `NAME`.
    fn secrets(&mut self, value: &Spanned<String>, env: &dyn Fn(&str) -> Option<String>) -> String {
        let whole = value.get_ref().as_str();
        let (mut out, mut rest) = (String::new(), whole);
        while let Some(open) = rest.find("${") {
            out.push_str(&rest[..open]);
            let here = self.within(value.span().start, whole, whole.len() - rest.len() + open);
            let Some(close) = rest[open..].find('}') else {
                self.at(here, "`${` has no closing `}`");
                return out;
            };
            let name = &rest[open + 2..open + close];
            match env(name) {
                Some(secret) => out.push_str(&secret),
                None => self.at(
                    here,
                    format!("the environment variable {name} is not set (the file asks for ${{{name}}})"),
                ),
            }
            rest = &rest[open + close + 1..];
        }
        out.push_str(rest);
        out
    }

    fn duration(&mut self, field: &str, value: &Spanned<toml::Value>) -> Option<Duration> {
        duration(field, value.get_ref())
            .map_err(|message| self.at(value.span().start, message))
            .ok()
    }

    /// A field the source's type does not take.
    fn foreign<T>(&mut self, field: &str, kind: &str, value: &Option<Spanned<T>>) {
        if let Some(value) = value {
            self.at(
                value.span().start,
                format!("`{field}` is not an option of {kind} sources"),
            );
        }
    }
}

/// Parses one file. `env` looks up `${NAME}`s.
pub(crate) fn parse(
    file: &str,
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Parsed, Vec<Mistake>> {
    let mut found = Found {
        file,
        text,
        mistakes: Vec::new(),
    };
    let parsed: SourcesFile = match toml::from_str(text) {
        Ok(parsed) => parsed,
        Err(error) => {
            let mut message = error.message().trim().to_owned();
            if message.contains("unknown field `sources`") {
                message.push_str("; a file writes each source as a [[source]] table");
            }
            found.at(error.span().map_or(0, |s| s.start), message);
            return Err(found.mistakes);
        }
    };
    let mut file = Parsed::default();
    for table in parsed.source {
        let at = table.span().start;
        if let Some(source) = source(&mut found, table.into_inner(), at, env) {
            file.sources.push(source);
        }
    }
    for table in parsed.hook {
        let at = table.span().start;
        if let Some(hook) = hook(&mut found, table.into_inner(), at, env) {
            file.hooks.push(hook);
        }
    }
    if found.mistakes.is_empty() {
        Ok(file)
    } else {
        Err(found.mistakes)
    }
}

/// A name as sources and hooks take them: 1 to 64 of `A-Z a-z 0-9 _ - .`.
fn check_source_name(found: &mut Found<'_>, name: &Spanned<String>) {
    let text = name.get_ref();
    let valid = !text.is_empty()
        && text.len() <= 64
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if !valid {
        found.at(
            name.span().start,
            format!("`name` \"{text}\": use 1 to 64 of A-Z a-z 0-9 _ - ."),
        );
    }
}

fn topic_or(found: &mut Found<'_>, topic: &Option<Spanned<String>>, default: &str) -> String {
    match topic {
        Some(topic) => {
            if let Err(e) = check_name(topic.get_ref()) {
                found.at(topic.span().start, format!("topic: {e}"));
            }
            topic.get_ref().clone()
        }
        None => default.to_owned(),
    }
}

fn hook(
    found: &mut Found<'_>,
    table: HookTable,
    at: usize,
    env: &dyn Fn(&str) -> Option<String>,
) -> Option<Hook> {
    let before = found.mistakes.len();
    check_source_name(found, &table.name);
    if !table.secret.get_ref().contains("${") {
        found.at(
            table.secret.span().start,
            "`secret` is written in the file: write it as \"${NAME}\" and set NAME in the server's environment",
        );
    }
    let secret = found.secrets(&table.secret, env);
    if found.mistakes.len() == before && secret.len() < MIN_SECRET {
        found.at(
            table.secret.span().start,
            format!("the secret is {} characters: use at least {MIN_SECRET} (e.g. `openssl rand -hex 32`)", secret.len()),
        );
    }
    let per_second = table
        .per_second
        .as_ref()
        .map_or(DEFAULT_HOOK_RATE, |p| *p.get_ref());
    let per_second = NonZeroU32::new(per_second).or_else(|| {
        let at = table.per_second.as_ref().map_or(0, |p| p.span().start);
        found.at(at, "`per_second` must be at least 1");
        None
    });
    let kind = table.kind.get_ref().as_str();
    let preset = match kind {
        "alertmanager" | "github" | "gitlab" => {
            found.foreign("topic", kind, &table.topic);
            found.foreign("select", kind, &table.select);
            found.foreign("entity", kind, &table.entity);
            found.foreign("replace", kind, &table.replace);
            let (status, feed) = Preset::default_topics(kind);
            let status_topic = topic_or(found, &table.status_topic, status);
            let feed_topic = topic_or(found, &table.feed_topic, feed);
            Some(match kind {
                "github" => Preset::Github {
                    status_topic,
                    feed_topic,
                },
                "gitlab" => Preset::Gitlab {
                    status_topic,
                    feed_topic,
                },
                _ => Preset::Alertmanager {
                    status_topic,
                    feed_topic,
                },
            })
        }
        "generic" => {
            found.foreign("status_topic", kind, &table.status_topic);
            found.foreign("feed_topic", kind, &table.feed_topic);
            let (Some(topic), Some(select)) = (&table.topic, &table.select) else {
                found.at(
                    table.kind.span().start,
                    "a generic hook needs a `topic` and a `select` (a jq program)",
                );
                return None;
            };
            let topic = topic_or(found, &Some(topic.clone()), "");
            check_select(found, select);
            Some(Preset::Generic {
                topic,
                selection: Selection {
                    select: select.get_ref().clone(),
                    entity: table.entity.as_ref().map(|e| e.get_ref().clone()),
                    replace: table.replace.as_ref().is_some_and(|r| *r.get_ref()),
                },
            })
        }
        other => {
            found.at(
                table.kind.span().start,
                format!("`type` is \"{other}\": use {}", Preset::TYPES.join(", ")),
            );
            None
        }
    };
    if found.mistakes.len() > before {
        return None;
    }
    let (line, _) = place(found.text, at);
    Some(Hook {
        name: table.name.into_inner(),
        secret,
        per_second: per_second?,
        preset: preset?,
        origin: format!("{}:{line}", found.file),
    })
}

/// A `select` that must compile, its mistake at the program's own column where it can be.
fn check_select(found: &mut Found<'_>, select: &Spanned<String>) {
    if let Err(error) = super::jq::check(select.get_ref()) {
        let at = found.within(select.span().start, select.get_ref(), error.at);
        found.at(at, format!("`select` does not compile: {}", error.message));
    }
}

fn source(
    found: &mut Found<'_>,
    table: SourceTable,
    at: usize,
    env: &dyn Fn(&str) -> Option<String>,
) -> Option<Source> {
    let before = found.mistakes.len();
    let name = table.name.get_ref().clone();
    check_source_name(found, &table.name);
    if let Err(e) = check_name(table.topic.get_ref()) {
        found.at(table.topic.span().start, format!("`topic`: {e}"));
    }
    let every = match &table.every {
        Some(every) => found.duration("every", every),
        None => Some(DEFAULT_EVERY),
    };
    if let (Some(short), Some(value)) = (every.filter(|e| *e < MIN_EVERY), &table.every) {
        found.at(
            value.span().start,
            format!("`every` is {short:?}: a source runs at most once a second"),
        );
    }
    let timeout = match &table.timeout {
        Some(timeout) => found.duration("timeout", timeout),
        None => every.map(|every| every.min(DEFAULT_TIMEOUT)),
    };
    if let (Some(Duration::ZERO), Some(value)) = (timeout, &table.timeout) {
        found.at(value.span().start, "`timeout` must be more than zero");
    }
    let url = found.secrets(&table.url, env);
    match reqwest::Url::parse(&url) {
        Ok(parsed) if matches!(parsed.scheme(), "http" | "https") => {}
        Ok(_) => found.at(
            table.url.span().start,
            "`url` must start with http:// or https://",
        ),
        Err(e) => found.at(table.url.span().start, format!("`url`: {e}")),
    }
    let mut headers = Vec::new();
    for (header, value) in &table.headers {
        let text = found.secrets(value, env);
        let valid = reqwest::header::HeaderName::from_bytes(header.as_bytes()).is_ok()
            && reqwest::header::HeaderValue::from_str(&text).is_ok();
        if !valid {
            found.at(
                value.span().start,
                format!("header `{header}` is not a valid HTTP header"),
            );
        }
        headers.push((header.clone(), text));
    }
    let kind = match table.kind.get_ref().as_str() {
        "prometheus" => prometheus_query(found, &table, url, env).map(Kind::Prometheus),
        "http" => http_request(found, &table, url, env).map(Kind::Http),
        other => {
            found.at(
                table.kind.span().start,
                format!("`type` is \"{other}\": use {}", TYPES.join(" or ")),
            );
            None
        }
    };
    if found.mistakes.len() > before {
        return None;
    }
    let (line, _) = place(found.text, at);
    Some(Source {
        name,
        topic: table.topic.into_inner(),
        every: every?,
        timeout: timeout?,
        headers,
        kind: kind?,
        origin: format!("{}:{line}", found.file),
    })
}

fn prometheus_query(
    found: &mut Found<'_>,
    table: &SourceTable,
    url: String,
    env: &dyn Fn(&str) -> Option<String>,
) -> Option<prometheus::Query> {
    for (field, value) in [
        ("method", &table.method),
        ("body", &table.body),
        ("select", &table.select),
    ] {
        found.foreign(field, "prometheus", value);
    }
    found.foreign("replace", "prometheus", &table.replace);
    let Some(query) = &table.query else {
        found.at(
            table.kind.span().start,
            "a prometheus source needs a `query` (PromQL)",
        );
        return None;
    };
    let query = found.secrets(query, env);
    let range = match (&table.range, &table.step) {
        (None, None) => None,
        (Some(range), Some(step)) => {
            let range = prometheus::Range {
                window: found.duration("range", range)?,
                step: found.duration("step", step)?,
            };
            if let Err(message) = range.check() {
                found.at(table.step.as_ref().map_or(0, |s| s.span().start), message);
            }
            Some(range)
        }
        (Some(value), None) | (None, Some(value)) => {
            found.at(
                value.span().start,
                "a range query needs both `range` and `step`",
            );
            None
        }
    };
    Some(prometheus::Query {
        url,
        query,
        entity: table.entity.as_ref().map(|e| e.get_ref().clone()),
        range,
    })
}

fn http_request(
    found: &mut Found<'_>,
    table: &SourceTable,
    url: String,
    env: &dyn Fn(&str) -> Option<String>,
) -> Option<http::Request> {
    found.foreign("query", "http", &table.query);
    found.foreign("range", "http", &table.range);
    found.foreign("step", "http", &table.step);
    let method = table
        .method
        .as_ref()
        .map_or("GET".to_owned(), |m| m.get_ref().to_ascii_uppercase());
    if !matches!(method.as_str(), "GET" | "POST") {
        let at = table.method.as_ref().map_or(0, |m| m.span().start);
        found.at(at, format!("`method` is \"{method}\": use GET or POST"));
    }
    if let (Some(replace), Some(_)) = (&table.replace, &table.entity) {
        found.at(
            replace.span().start,
            "`replace` is for a select that gives an object of entities; with `entity` there is one",
        );
    }
    let Some(select) = &table.select else {
        found.at(
            table.kind.span().start,
            "an http source needs a `select` (a jq program, e.g. \".count\" or \".\")",
        );
        return None;
    };
    check_select(found, select);
    let body = table.body.as_ref().map(|body| found.secrets(body, env));
    Some(http::Request {
        url,
        method,
        body,
        selection: Selection {
            select: select.get_ref().clone(),
            entity: table.entity.as_ref().map(|e| e.get_ref().clone()),
            replace: table.replace.as_ref().is_some_and(|r| *r.get_ref()),
        },
    })
}

/// One file of the directory, as last read.
struct Entry {
    /// Size and modification time it was read at.
    seen: (u64, SystemTime),
    /// Its last good version's sources and hooks (none if it never parsed).
    sources: Vec<Arc<Source>>,
    hooks: Vec<Arc<Hook>>,
    /// What is wrong with it now, if anything.
    mistakes: Vec<Mistake>,
}

/// The sources directory as last read.
pub(crate) struct SourceFiles {
    dir: Option<PathBuf>,
    files: BTreeMap<String, Entry>,
}

impl SourceFiles {
    /// Reads every file in `dir` (none if `dir` is empty; it need not exist yet).
    pub(crate) fn open(dir: &Path) -> Self {
        let mut files = Self {
            dir: (!dir.as_os_str().is_empty()).then(|| dir.to_owned()),
            files: BTreeMap::new(),
        };
        files.rescan();
        files
    }

    /// Reads changed, new and removed files again; whether anything changed.
    pub(crate) fn rescan(&mut self) -> bool {
        let Some(dir) = &self.dir else { return false };
        let mut listed = BTreeMap::new();
        if let Ok(listing) = std::fs::read_dir(dir) {
            for entry in listing.flatten() {
                let path = entry.path();
                let is_toml = path.extension().is_some_and(|e| e == "toml");
                let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                    continue;
                };
                if let (true, Ok(metadata)) = (is_toml, entry.metadata()) {
                    let modified = metadata.modified().unwrap_or(SystemTime::UNIX_EPOCH);
                    listed.insert(name.to_owned(), (path.clone(), (metadata.len(), modified)));
                }
            }
        }
        let before = self.files.len();
        self.files.retain(|name, _| listed.contains_key(name));
        let mut changed = self.files.len() != before;
        for (name, (path, seen)) in listed {
            if self
                .files
                .get(&name)
                .is_some_and(|entry| entry.seen == seen)
            {
                continue;
            }
            changed = true;
            let shown = format!("{}/{name}", dir.display());
            let read = std::fs::read_to_string(&path)
                .map_err(|e| {
                    vec![Mistake {
                        file: shown.clone(),
                        line: 1,
                        column: 1,
                        message: format!("cannot read it: {e}"),
                    }]
                })
                .and_then(|text| parse(&shown, &text, &|name| std::env::var(name).ok()));
            let entry = self.files.entry(name).or_insert_with(|| Entry {
                seen,
                sources: Vec::new(),
                hooks: Vec::new(),
                mistakes: Vec::new(),
            });
            entry.seen = seen;
            match read {
                Ok(parsed) => {
                    entry.sources = parsed.sources.into_iter().map(Arc::new).collect();
                    entry.hooks = parsed.hooks.into_iter().map(Arc::new).collect();
                    entry.mistakes.clear();
                }
                Err(mistakes) => {
                    for mistake in &mistakes {
                        tracing::warn!(
                            "source file: {mistake} (its last good version keeps running)"
                        );
                    }
                    entry.mistakes = mistakes;
                }
            }
        }
        changed
    }

    /// Every source to run and hook to take: each file's last good version, in file order.
    /// A source whose name or topic an earlier file has already, or a hook whose name an
    /// earlier one has, is left out, and said to be.
    pub(crate) fn current(&self) -> Catalog {
        let mut catalog = Catalog::default();
        let (mut names, mut topics, mut hooks) =
            (BTreeSet::new(), BTreeMap::new(), BTreeSet::new());
        for entry in self.files.values() {
            catalog.mistakes.extend(entry.mistakes.iter().cloned());
            for source in &entry.sources {
                let clash = if !names.insert(source.name.clone()) {
                    Some(format!(
                        "another source is named \"{}\" too; this one does not run",
                        source.name
                    ))
                } else {
                    topics
                        .insert(source.topic.clone(), source.name.clone())
                        .map(|other| format!(
                            "source \"{other}\" writes topic \"{}\" already; a topic has one source, so this one does not run",
                            source.topic
                        ))
                };
                match clash {
                    Some(message) => catalog.mistakes.push(clash_at(&source.origin, message)),
                    None => catalog.sources.push(source.clone()),
                }
            }
            for hook in &entry.hooks {
                if hooks.insert(hook.name.clone()) {
                    catalog.hooks.push(hook.clone());
                } else {
                    let message = format!(
                        "another hook is named \"{}\" too; this one takes nothing",
                        hook.name
                    );
                    catalog.mistakes.push(clash_at(&hook.origin, message));
                }
            }
        }
        catalog
    }
}

/// What the directory says now.
#[derive(Default)]
pub(crate) struct Catalog {
    pub(crate) sources: Vec<Arc<Source>>,
    pub(crate) hooks: Vec<Arc<Hook>>,
    pub(crate) mistakes: Vec<Mistake>,
}

/// A mistake at a source's or hook's `origin` (`file:line`).
fn clash_at(origin: &str, message: String) -> Mistake {
    let (file, line) = origin.rsplit_once(':').unwrap_or((origin, "1"));
    Mistake {
        file: file.to_owned(),
        line: line.parse().unwrap_or(1),
        column: 1,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        (name == "TOKEN").then(|| "s3cret".into())
    }

    fn mistakes(text: &str) -> Vec<String> {
        parse("s.toml", text, &env)
            .err()
            .unwrap_or_default()
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    const PROMETHEUS: &str = r#"
[[source]]
name = "hosts"
type = "prometheus"
url = "http://127.0.0.1:9090"
query = "up"
entity = "{instance}"
topic = "status:hosts"
headers = { Authorization = "Bearer ${TOKEN}" }
"#;

    #[test]
    fn a_good_file_gives_its_sources() {
        let sources = parse("s.toml", PROMETHEUS, &env).unwrap().sources;
        assert_eq!(sources.len(), 1);
        let source = &sources[0];
        assert_eq!(source.every, DEFAULT_EVERY);
        assert_eq!(source.timeout, DEFAULT_TIMEOUT);
        assert_eq!(
            source.headers,
            vec![("Authorization".into(), "Bearer s3cret".into())]
        );
        assert_eq!(source.origin, "s.toml:2");
        let http = r#"
[[source]]
name = "stars"
type = "http"
url = "https://api.example.com/repo"
select = ".stargazers_count"
entity = "stars"
topic = "metric:repo"
every = "5m"
"#;
        let sources = parse("h.toml", http, &env).unwrap().sources;
        assert_eq!(sources[0].every, Duration::from_secs(300));
        assert_eq!(sources[0].kind.type_name(), "http");
    }

    #[test]
    fn each_mistake_is_at_its_line_and_column() {
        assert_eq!(
            mistakes(&PROMETHEUS.replace("\"prometheus\"", "\"promql\"")),
            ["s.toml:4:8: `type` is \"promql\": use prometheus or http"]
        );
        assert_eq!(
            mistakes(&PROMETHEUS.replace("${TOKEN}", "${NOPE}")),
            ["s.toml:9:37: the environment variable NOPE is not set (the file asks for ${NOPE})"]
        );
        let bad_every = mistakes(&format!("{PROMETHEUS}every = \"soon\"\n"));
        assert_eq!(bad_every.len(), 1);
        assert!(
            bad_every[0].starts_with("s.toml:10:9: `every` \"soon\""),
            "{bad_every:?}"
        );
        let jq = PROMETHEUS
            .replace("\"prometheus\"", "\"http\"")
            .replace("query = \"up\"", "select = \".a | nosuch\"")
            .replace("entity = \"{instance}\"", "entity = \"x\"");
        assert_eq!(
            mistakes(&jq),
            ["s.toml:6:16: `select` does not compile: filter `nosuch` is not defined"]
        );
        let unknown = mistakes(&format!("{PROMETHEUS}colour = 1\n"));
        assert!(
            unknown[0].starts_with("s.toml:10:1: unknown field `colour`"),
            "{unknown:?}"
        );
    }
}
