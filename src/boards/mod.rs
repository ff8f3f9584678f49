//! Boards: what a screen shows. A board is a title, a grid, and widgets, each bound to a
//! topic with its options. The types here are shared: the server reads them from board files
//! (`file.rs`) and keeps the last good version of each (`library.rs`); the browser renders
//! them and swaps in a new version when its file changes. `screen.rs`: how an address asks
//! for a board to be shown (kiosk, theme, playlist); `notes.rs`: the notes people pin to it.

#[cfg(feature = "ssr")]
pub mod file;
#[cfg(feature = "ssr")]
pub mod library;
#[cfg(feature = "ssr")]
pub mod markdown;
pub mod notes;
pub mod screen;

use crate::json::{self, decode_fields, deserialize_via_json, named, Fields, FromJson};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// A board as its file describes it, validated.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Board {
    /// The file's name without `.toml`: the board's address, `/b/{name}`.
    pub name: String,
    pub title: String,
    /// Grid columns at full width; narrow screens use fewer.
    pub columns: u8,
    /// Shown only to an admin session or a key (share link) that may read it; its topics
    /// likewise. A public board and its topics are readable by anyone who reaches the server.
    #[serde(default)]
    pub private: bool,
    /// Who may write notes on it, and where they show.
    pub notes: NotesOptions,
    pub widgets: Vec<Widget>,
}

/// A board file's `[notes]` table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotesOptions {
    /// Anonymous viewers of the (public) board may write notes too, as guests. Without it,
    /// only a session or key that may write to one of the board's topics, or an admin.
    #[serde(default)]
    pub anyone: bool,
    /// Kiosk screens show the notes panel too (they hide it otherwise; the markers and
    /// badges show either way).
    #[serde(default)]
    pub kiosk: bool,
}

decode_fields!(NotesOptions { anyone, kiosk });

impl Board {
    /// Every topic a screen of the board follows: those its widgets read, once each, in
    /// order of first use, then its notes topic.
    pub fn topics(&self) -> Vec<String> {
        let mut topics: Vec<String> = Vec::new();
        for topic in self.widgets.iter().filter_map(|w| w.topic.as_ref()) {
            if !topics.contains(topic) {
                topics.push(topic.clone());
            }
        }
        topics.push(notes::notes_topic(&self.name));
        topics
    }

    /// Whether any widget of the board reads `topic`, or it is the board's notes topic.
    pub fn reads(&self, topic: &str) -> bool {
        topic == notes::notes_topic(&self.name)
            || self
                .widgets
                .iter()
                .any(|w| w.topic.as_deref() == Some(topic))
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Widget {
    pub title: Option<String>,
    /// The topic the widget reads; clock and text widgets have none.
    pub topic: Option<String>,
    /// Grid cells taken: columns, then rows.
    pub span: (u8, u8),
    /// Seconds without a change to the topic after which the widget shows its data as stale.
    pub stale_after: Option<u64>,
    pub kind: WidgetKind,
}

/// A widget's type and its options, as JSON names them (`{"type": "number", "entity": …}`).
/// Board files are read into these by `file.rs`; the browser reads them with [`FromJson`].
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum WidgetKind {
    Number(NumberOptions),
    Sparkline(SparklineOptions),
    Leaderboard(LeaderboardOptions),
    Feed(FeedOptions),
    Gauge(GaugeOptions),
    Status(StatusOptions),
    Text(TextOptions),
    Clock(ClockOptions),
    Presence,
    Manual(ManualOptions),
}

impl WidgetKind {
    /// Every kind's name, as [`WidgetKind::name`] gives it.
    pub const TYPES: &'static [&'static str] = &[
        "number",
        "sparkline",
        "leaderboard",
        "feed",
        "gauge",
        "status",
        "text",
        "clock",
        "presence",
        "manual",
    ];

    /// The name a board file gives this kind in `type = "…"`.
    pub fn name(&self) -> &'static str {
        match self {
            WidgetKind::Number(_) => "number",
            WidgetKind::Sparkline(_) => "sparkline",
            WidgetKind::Leaderboard(_) => "leaderboard",
            WidgetKind::Feed(_) => "feed",
            WidgetKind::Gauge(_) => "gauge",
            WidgetKind::Status(_) => "status",
            WidgetKind::Text(_) => "text",
            WidgetKind::Clock(_) => "clock",
            WidgetKind::Presence => "presence",
            WidgetKind::Manual(_) => "manual",
        }
    }
}

impl WidgetKind {
    /// The one entity the widget shows, for the kinds that show one.
    pub fn entity(&self) -> Option<&str> {
        match self {
            Self::Number(NumberOptions { entity, .. })
            | Self::Sparkline(SparklineOptions { entity, .. })
            | Self::Gauge(GaugeOptions { entity, .. })
            | Self::Manual(ManualOptions { entity, .. }) => Some(entity),
            _ => None,
        }
    }
}

/// One entity's number.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NumberOptions {
    pub entity: String,
    /// Shown after the number: `"ms"`, `"%"`, `"€"`.
    #[serde(default)]
    pub unit: Option<String>,
    /// Decimal places; compact numbers keep one.
    #[serde(default)]
    pub decimals: u8,
    /// 1.2k, 3.4M instead of 1,234 and 3,400,000.
    #[serde(default)]
    pub compact: bool,
    /// What the arrow compares against.
    #[serde(default)]
    pub delta: Delta,
    /// Whether a rise is good news (green) or bad (red, for errors and latency).
    #[serde(default = "yes")]
    pub up_is_good: bool,
    #[serde(default)]
    pub thresholds: Vec<Threshold>,
}

/// A board file writes `"previous"`, `"none"`, or a window such as `"1h"`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Delta {
    /// Against the value before the last change.
    #[default]
    Previous,
    /// No arrow.
    None,
    /// Against the value this many seconds ago.
    Window(u64),
}

/// A line from a bounded series the server keeps (`append` ops).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SparklineOptions {
    pub entity: String,
    #[serde(default)]
    pub unit: Option<String>,
    #[serde(default)]
    pub decimals: u8,
    /// How many of the newest points the line shows; the server may keep more.
    #[serde(default = "sixty")]
    pub points: usize,
}

/// The top entities by a field.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaderboardOptions {
    /// The payload field ranked on, highest first.
    #[serde(default = "score")]
    pub field: String,
    /// The payload field shown as each row's name; the entity id when absent.
    #[serde(default = "name")]
    pub label: String,
    #[serde(default = "five")]
    pub limit: usize,
}

/// The newest items pushed to a topic.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedOptions {
    #[serde(default = "eight")]
    pub rows: usize,
}

/// One entity's number between a minimum and a maximum.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GaugeOptions {
    pub entity: String,
    #[serde(default)]
    pub min: f64,
    pub max: f64,
    #[serde(default)]
    pub unit: Option<String>,
    #[serde(default)]
    pub decimals: u8,
    #[serde(default)]
    pub thresholds: Vec<Threshold>,
}

/// One light per entity, coloured by its state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusOptions {
    /// The payload field holding the state; a bare string or number payload is used as is.
    #[serde(default = "state")]
    pub field: String,
    /// Thresholds for numeric states; text states map by name (ok, warn, critical, …).
    #[serde(default)]
    pub thresholds: Vec<Threshold>,
    /// Whether a light in warning or worse can be acknowledged from the board.
    #[serde(default)]
    pub acknowledge: bool,
}

/// Fixed Markdown text. The server renders it once, when it reads the board file, into HTML
/// with no script in it (see `markdown.rs`); screens only show `html`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TextOptions {
    pub markdown: String,
    pub html: String,
}

/// The time, in a time zone.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClockOptions {
    /// An IANA zone such as `Europe/Paris`; the screen's own zone when absent.
    #[serde(default)]
    pub timezone: Option<String>,
}

/// A number kept by hand from the board, stepped down and up.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManualOptions {
    pub entity: String,
    /// How much one press changes it.
    #[serde(default = "one")]
    pub step: f64,
    #[serde(default)]
    pub unit: Option<String>,
    #[serde(default)]
    pub decimals: u8,
}

/// From `at` upwards (until the next threshold), the value is shown at `level`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Threshold {
    pub at: f64,
    pub level: Level,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Ok,
    Info,
    Warn,
    Critical,
}

impl Level {
    const NAMES: [(&'static str, Level); 4] = [
        ("ok", Level::Ok),
        ("info", Level::Info),
        ("warn", Level::Warn),
        ("critical", Level::Critical),
    ];

    pub fn as_str(self) -> &'static str {
        Self::NAMES
            .iter()
            .find(|(_, level)| *level == self)
            .map_or("", |(name, _)| name)
    }

    /// The level as a screen reader says it when a figure reaches it.
    pub fn spoken(self) -> &'static str {
        match self {
            Level::Ok => "back to normal",
            Level::Info => "info",
            Level::Warn => "warning",
            Level::Critical => "critical",
        }
    }

    /// A text state as a level: the usual words services report.
    pub fn from_word(word: &str) -> Option<Level> {
        match word.to_ascii_lowercase().as_str() {
            "ok" | "up" | "healthy" | "pass" | "passing" | "green" | "success" => Some(Level::Ok),
            "info" | "pending" | "running" | "blue" => Some(Level::Info),
            "warn" | "warning" | "degraded" | "yellow" | "amber" => Some(Level::Warn),
            "critical" | "error" | "down" | "fail" | "failing" | "failed" | "red" => {
                Some(Level::Critical)
            }
            _ => None,
        }
    }
}

/// The level of a value: the highest threshold it reaches, none below the lowest.
pub fn level_of(value: f64, thresholds: &[Threshold]) -> Option<Level> {
    thresholds
        .iter()
        .filter(|t| value >= t.at)
        .max_by(|a, b| a.at.total_cmp(&b.at))
        .map(|t| t.level)
}

/// A board as a screen gets it: the last version of its file that parsed, and the problem
/// with the current file if there is one.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct BoardView {
    /// Grows with every change to any board, so a page can tell a stale frame from a new one.
    pub revision: u64,
    /// `None` if the file never parsed (or is gone and the page has nothing better).
    pub board: Option<Board>,
    pub problem: Option<BoardProblem>,
}

/// A line of the board list at `/`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BoardSummary {
    pub name: String,
    /// `None` if the file never parsed.
    pub title: Option<String>,
    /// What is wrong with the current file, as the banner would show it.
    pub problem: Option<String>,
    /// Shown only to keys that may read it (and admins). A file that never parsed counts
    /// as private: nothing says it is not.
    #[serde(default)]
    pub private: bool,
    /// The topics its widgets read.
    #[serde(default)]
    pub topics: Vec<String>,
}

/// Why a board file was not taken; the screen's banner shows it as is.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BoardProblem {
    /// The file, as the operator knows it (relative to the boards directory).
    pub file: String,
    /// 1-based line and column, when the problem has a place.
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
}

impl std::fmt::Display for BoardProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.line, self.column) {
            (Some(line), Some(column)) => write!(f, "{}:{line}:{column}: ", self.file)?,
            (Some(line), None) => write!(f, "{}:{line}: ", self.file)?,
            _ => write!(f, "{}: ", self.file)?,
        }
        f.write_str(&self.message)
    }
}

/// The island's props carry a board view: read as the socket's board frames are.
impl<'de> Deserialize<'de> for BoardView {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserialize_via_json(deserializer)
    }
}

decode_fields!(BoardView {
    revision,
    board,
    problem
});

decode_fields!(BoardProblem {
    file,
    line,
    column,
    message
});

decode_fields!(Board {
    name,
    title,
    columns,
    private,
    notes,
    widgets
});

decode_fields!(Widget {
    title,
    topic,
    span,
    stale_after,
    kind
});

impl FromJson for WidgetKind {
    fn from_json(value: Value) -> Result<Self, json::Error> {
        let mut fields = Fields::of(value)?;
        let kind: String = fields.take("type")?;
        let options = fields.rest();
        Ok(match kind.as_str() {
            "number" => Self::Number(FromJson::from_json(options)?),
            "sparkline" => Self::Sparkline(FromJson::from_json(options)?),
            "leaderboard" => Self::Leaderboard(FromJson::from_json(options)?),
            "feed" => Self::Feed(FromJson::from_json(options)?),
            "gauge" => Self::Gauge(FromJson::from_json(options)?),
            "status" => Self::Status(FromJson::from_json(options)?),
            "text" => Self::Text(FromJson::from_json(options)?),
            "clock" => Self::Clock(FromJson::from_json(options)?),
            "presence" => Self::Presence,
            "manual" => Self::Manual(FromJson::from_json(options)?),
            other => return Err(json::Error::unknown_variant(other, WidgetKind::TYPES)),
        })
    }
}

// The options as the server writes them: every field, defaults already applied by `file.rs`.

decode_fields!(NumberOptions {
    entity,
    unit,
    decimals,
    compact,
    delta,
    up_is_good,
    thresholds
});

/// `"previous"`, `"none"`, or `{"window": seconds}`.
impl FromJson for Delta {
    fn from_json(value: Value) -> Result<Self, json::Error> {
        match value {
            Value::String(name) if name == "previous" => Ok(Delta::Previous),
            Value::String(name) if name == "none" => Ok(Delta::None),
            value => Ok(Delta::Window(Fields::of(value)?.take("window")?)),
        }
    }
}

decode_fields!(SparklineOptions {
    entity,
    unit,
    decimals,
    points
});

decode_fields!(LeaderboardOptions {
    field,
    label,
    limit
});

decode_fields!(FeedOptions { rows });

decode_fields!(GaugeOptions {
    entity,
    min,
    max,
    unit,
    decimals,
    thresholds
});

decode_fields!(StatusOptions {
    field,
    thresholds,
    acknowledge
});

decode_fields!(TextOptions { markdown, html });

decode_fields!(ClockOptions { timezone });

decode_fields!(ManualOptions {
    entity,
    step,
    unit,
    decimals
});

decode_fields!(Threshold { at, level });

impl FromJson for Level {
    fn from_json(value: Value) -> Result<Self, json::Error> {
        named(value, &Level::NAMES)
    }
}

fn yes() -> bool {
    true
}
fn score() -> String {
    "score".into()
}
fn name() -> String {
    "name".into()
}
fn state() -> String {
    "state".into()
}
fn five() -> usize {
    5
}
fn eight() -> usize {
    8
}
fn one() -> f64 {
    1.0
}
fn sixty() -> usize {
    60
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_takes_the_highest_threshold_it_reaches() {
        let thresholds = vec![
            Threshold {
                at: 90.0,
                level: Level::Critical,
            },
            Threshold {
                at: 0.0,
                level: Level::Ok,
            },
            Threshold {
                at: 70.0,
                level: Level::Warn,
            },
        ];
        assert_eq!(level_of(-1.0, &thresholds), None);
        assert_eq!(level_of(0.0, &thresholds), Some(Level::Ok));
        assert_eq!(level_of(69.9, &thresholds), Some(Level::Ok));
        assert_eq!(level_of(70.0, &thresholds), Some(Level::Warn));
        assert_eq!(level_of(1e9, &thresholds), Some(Level::Critical));
        assert_eq!(level_of(5.0, &[]), None);
    }

    #[test]
    fn service_words_map_to_levels() {
        assert_eq!(Level::from_word("UP"), Some(Level::Ok));
        assert_eq!(Level::from_word("degraded"), Some(Level::Warn));
        assert_eq!(Level::from_word("down"), Some(Level::Critical));
        assert_eq!(Level::from_word("banana"), None);
    }
}
