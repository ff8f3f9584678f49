//! Board files: TOML in, a validated [`Board`] or a [`BoardProblem`] out. Every problem names
//! the file, the line and column where it can, and says what would be accepted, because the
//! person reading it is at a wall screen with an editor open, not in the source.
//!
//! ```toml
//! title = "Operations"
//! columns = 4
//!
//! [[widget]]
//! type = "number"
//! topic = "metric:kpis"
//! entity = "orders"
//! title = "Orders"
//! span = [2, 1]          # columns, rows; or just 2
//! stale_after = "5m"     # or seconds: 300
//! ```

use super::markdown::to_safe_html;
use super::{
    Board, BoardProblem, ClockOptions, FeedOptions, GaugeOptions, LeaderboardOptions,
    ManualOptions, NotesOptions, NumberOptions, SparklineOptions, StatusOptions, TextOptions,
    Widget, WidgetKind,
};
use crate::names::check_name;
use crate::ops::MAX_SERIES_POINTS;
use serde::de::DeserializeOwned;
use serde::Deserialize;

/// The widest grid a board may ask for.
pub const MAX_COLUMNS: u8 = 12;
/// The tallest a widget may be, in grid rows.
pub const MAX_ROWS: u8 = 6;

/// The kinds a widget may have, as an error message lists them.
fn kinds() -> String {
    let (last, others) = WidgetKind::TYPES.split_last().unwrap_or((&"", &[]));
    format!("{} or {last}", others.join(", "))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BoardFile {
    title: String,
    #[serde(default = "four")]
    columns: u8,
    #[serde(default)]
    private: bool,
    #[serde(default)]
    notes: NotesOptions,
    #[serde(default)]
    widget: Vec<toml::Spanned<toml::Table>>,
}

fn four() -> u8 {
    4
}

/// A text widget as its file gives it: the HTML is the server's to make.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TextFile {
    markdown: String,
}

/// Whether a file name (without `.toml`) can be a board's name, and so its address.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Reads one board file's text. `file` is how the problem names it.
pub fn parse(name: &str, file: &str, text: &str) -> Result<Board, BoardProblem> {
    let problem = |at: Option<usize>, message: String| {
        let (line, column) = at.map(|at| place(text, at)).unzip();
        BoardProblem {
            file: file.to_owned(),
            line,
            column,
            message,
        }
    };
    let board: BoardFile = toml::from_str(text).map_err(|error| {
        let mut message = error.message().to_owned();
        // The board's JSON (GET /api/v1/boards/{name}) spells it `widgets`: a file copied
        // from it should say how a file spells it.
        if message.contains("unknown field `widgets`") {
            message.push_str("; a board file writes each widget as a [[widget]] table");
        }
        problem(error.span().map(|s| s.start), message)
    })?;
    if board.title.trim().is_empty() {
        return Err(problem(None, "`title` is empty".into()));
    }
    if !(1..=MAX_COLUMNS).contains(&board.columns) {
        return Err(problem(
            None,
            format!("`columns` is {}: use 1 to {MAX_COLUMNS}", board.columns),
        ));
    }
    let mut widgets = Vec::with_capacity(board.widget.len());
    for (index, table) in board.widget.into_iter().enumerate() {
        let at = table.span().start;
        let widget = widget(table.into_inner(), board.columns)
            .map_err(|message| problem(Some(at), format!("widget {}: {message}", index + 1)))?;
        widgets.push(widget);
    }
    Ok(Board {
        name: name.to_owned(),
        title: board.title,
        columns: board.columns,
        private: board.private,
        notes: board.notes,
        widgets,
    })
}

/// 1-based line and column of a byte offset.
pub(crate) fn place(text: &str, at: usize) -> (usize, usize) {
    let before = &text[..at.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

fn widget(mut table: toml::Table, columns: u8) -> Result<Widget, String> {
    let kind = match table.remove("type") {
        Some(toml::Value::String(kind)) => kind,
        Some(_) => return Err(format!("`type` must be a string: {}", kinds())),
        None if table.contains_key("kind") => {
            return Err(format!(
                "`type` is missing: a board file writes `type = \"number\"` and the options in the widget's own table, not under `kind` ({})",
                kinds()
            ))
        }
        None => return Err(format!("`type` is missing: {}", kinds())),
    };
    let text = |table: &mut toml::Table, key: &str| match table.remove(key) {
        None => Ok(None),
        Some(toml::Value::String(value)) => Ok(Some(value)),
        Some(_) => Err(format!("({kind}): `{key}` must be a string")),
    };
    let title = text(&mut table, "title")?;
    let topic = text(&mut table, "topic")?;
    let span = span(table.remove("span"), columns).map_err(|m| format!("({kind}): {m}"))?;
    let stale_after =
        stale_after(table.remove("stale_after")).map_err(|m| format!("({kind}): {m}"))?;
    delta_window(&mut table).map_err(|m| format!("({kind}): {m}"))?;
    let kind = match kind.as_str() {
        "number" => WidgetKind::Number(parse_options::<NumberOptions>(&kind, table)?),
        "sparkline" => {
            let sparkline = parse_options::<SparklineOptions>(&kind, table)?;
            if !(2..=MAX_SERIES_POINTS).contains(&sparkline.points) {
                return Err(format!(
                    "(sparkline): `points` is {}: use 2 to {MAX_SERIES_POINTS}",
                    sparkline.points
                ));
            }
            WidgetKind::Sparkline(sparkline)
        }
        "leaderboard" => {
            WidgetKind::Leaderboard(parse_options::<LeaderboardOptions>(&kind, table)?)
        }
        "feed" => WidgetKind::Feed(parse_options::<FeedOptions>(&kind, table)?),
        "gauge" => {
            let gauge = parse_options::<GaugeOptions>(&kind, table)?;
            if gauge.max <= gauge.min {
                return Err(format!(
                    "(gauge): `max` ({}) must be above `min` ({})",
                    gauge.max, gauge.min
                ));
            }
            WidgetKind::Gauge(gauge)
        }
        "status" => WidgetKind::Status(parse_options::<StatusOptions>(&kind, table)?),
        "text" => {
            let TextFile { markdown } = parse_options(&kind, table)?;
            let html = to_safe_html(&markdown);
            WidgetKind::Text(TextOptions { markdown, html })
        }
        "clock" => {
            let clock = parse_options::<ClockOptions>(&kind, table)?;
            if let Some(zone) = &clock.timezone {
                if zone.parse::<chrono_tz::Tz>().is_err() {
                    return Err(format!(
                        "(clock): `timezone` \"{zone}\" is not an IANA time zone; e.g. \"Europe/Paris\" or \"UTC\""
                    ));
                }
            }
            WidgetKind::Clock(clock)
        }
        "manual" => {
            let manual = parse_options::<ManualOptions>(&kind, table)?;
            if !(manual.step.is_finite() && manual.step > 0.0) {
                return Err(format!(
                    "(manual): `step` is {}: use a number above 0",
                    manual.step
                ));
            }
            WidgetKind::Manual(manual)
        }
        "presence" => {
            if let Some(key) = table.keys().next() {
                return Err(format!("(presence): unknown field `{key}`: it takes none"));
            }
            WidgetKind::Presence
        }
        other => return Err(format!("unknown `type` \"{other}\": use {}", kinds())),
    };
    let reads_topic = !matches!(
        kind,
        WidgetKind::Text(_) | WidgetKind::Clock(_) | WidgetKind::Presence
    );
    let name = kind.name();
    match (&topic, reads_topic) {
        (None, true) => return Err(format!("({name}): `topic` is missing")),
        (Some(_), false) => return Err(format!("({name}): a {name} widget reads no `topic`")),
        (Some(topic), true) => {
            check_name(topic).map_err(|invalid| format!("({name}): `topic`: {invalid}"))?
        }
        (None, false) => {}
    }
    Ok(Widget {
        title,
        topic,
        span,
        stale_after,
        kind,
    })
}

fn parse_options<T: DeserializeOwned>(kind: &str, table: toml::Table) -> Result<T, String> {
    toml::Value::Table(table)
        .try_into()
        .map_err(|error: toml::de::Error| format!("({kind}): {}", error.message()))
}

fn span(value: Option<toml::Value>, columns: u8) -> Result<(u8, u8), String> {
    let (wide, tall) = match value {
        None => (1, 1),
        Some(toml::Value::Integer(wide)) => (wide, 1),
        Some(toml::Value::Array(cells)) => match cells.as_slice() {
            [toml::Value::Integer(wide), toml::Value::Integer(tall)] => (*wide, *tall),
            _ => return Err("`span` is [columns, rows], e.g. [2, 1]".into()),
        },
        Some(_) => return Err("`span` is [columns, rows], e.g. [2, 1]".into()),
    };
    if !(1..=i64::from(columns)).contains(&wide) {
        return Err(format!(
            "`span` is {wide} columns wide; the board has {columns}"
        ));
    }
    if !(1..=i64::from(MAX_ROWS)).contains(&tall) {
        return Err(format!("`span` is {tall} rows tall: use 1 to {MAX_ROWS}"));
    }
    Ok((wide as u8, tall as u8))
}

/// Turns a `delta` window written as a duration (`"1h"`) into the form
/// [`Delta`](crate::boards::Delta) reads.
fn delta_window(table: &mut toml::Table) -> Result<(), String> {
    let Some(toml::Value::String(text)) = table.get("delta") else {
        return Ok(());
    };
    if matches!(text.as_str(), "previous" | "none") {
        return Ok(());
    }
    let seconds = humantime::parse_duration(text)
        .map_err(|error| {
            format!("`delta` \"{text}\": {error}; use \"previous\", \"none\" or a window such as \"1h\"")
        })?
        .as_secs();
    if seconds == 0 {
        return Err("a `delta` window must be at least one second".into());
    }
    let window = toml::Table::from_iter([("window".to_owned(), toml::Value::from(seconds as i64))]);
    table.insert("delta".into(), toml::Value::Table(window));
    Ok(())
}

fn stale_after(value: Option<toml::Value>) -> Result<Option<u64>, String> {
    let Some(value) = value else {
        return Ok(None);
    };
    let seconds = duration("stale_after", &value)?.as_secs();
    if seconds == 0 {
        return Err("`stale_after` must be at least one second".into());
    }
    Ok(Some(seconds))
}

/// A duration as files write them: `"90s"`, `"5m"`, `"1h30m"`, or a number of seconds.
pub(crate) fn duration(field: &str, value: &toml::Value) -> Result<std::time::Duration, String> {
    match value {
        toml::Value::Integer(seconds) if *seconds >= 0 => {
            Ok(std::time::Duration::from_secs(*seconds as u64))
        }
        toml::Value::String(text) => humantime::parse_duration(text)
            .map_err(|error| format!("`{field}` \"{text}\": {error}; e.g. \"90s\" or \"5m\"")),
        _ => Err(format!(
            "`{field}` is a duration, e.g. \"90s\", \"5m\" or 300"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boards::{Delta, Level, Threshold};

    #[test]
    fn a_delta_is_against_the_previous_value_or_a_window_ago() {
        let delta = |line: &str| {
            let text = format!("title = \"x\"\n[[widget]]\ntype = \"number\"\ntopic = \"a\"\nentity = \"b\"\n{line}\n");
            match parse("x", "x.toml", &text).map(|b| b.widgets[0].kind.clone()) {
                Ok(WidgetKind::Number(options)) => Ok(options.delta),
                Ok(other) => panic!("{other:?}"),
                Err(problem) => Err(problem.to_string()),
            }
        };
        assert_eq!(delta(""), Ok(Delta::Previous));
        assert_eq!(delta("delta = \"none\""), Ok(Delta::None));
        assert_eq!(delta("delta = \"1h\""), Ok(Delta::Window(3600)));
        assert_eq!(delta("delta = \"15m\""), Ok(Delta::Window(900)));
        let problem = delta("delta = \"yesterday\"").unwrap_err();
        assert!(
            problem.contains("widget 1: (number): `delta` \"yesterday\""),
            "{problem}"
        );
        assert!(problem.contains("or a window such as \"1h\""), "{problem}");
    }

    fn problem(text: &str) -> String {
        parse("ops", "ops.toml", text).unwrap_err().to_string()
    }

    #[test]
    fn reads_a_board_with_every_kind_of_widget() {
        let board = parse(
            "ops",
            "ops.toml",
            r#"
title = "Operations"
columns = 6

[[widget]]
type = "number"
topic = "metric:kpis"
entity = "orders"
unit = "/min"
compact = true
decimals = 1
span = [2, 1]
stale_after = "5m"
thresholds = [{ at = 100, level = "warn" }]

[[widget]]
type = "sparkline"
topic = "metric:latency"
entity = "p99"

[[widget]]
type = "leaderboard"
topic = "board:leaders"
limit = 3

[[widget]]
type = "feed"
topic = "feed:activity"
stale_after = 90

[[widget]]
type = "gauge"
topic = "metric:cpu"
entity = "load"
max = 100

[[widget]]
type = "status"
topic = "status:services"

[[widget]]
type = "text"
markdown = "**On call**: Ana"

[[widget]]
type = "clock"
timezone = "Europe/Paris"

[[widget]]
type = "presence"
"#,
        )
        .unwrap();
        assert_eq!(board.title, "Operations");
        assert_eq!(board.columns, 6);
        let kinds: Vec<&str> = board.widgets.iter().map(|w| w.kind.name()).collect();
        assert_eq!(
            kinds,
            [
                "number",
                "sparkline",
                "leaderboard",
                "feed",
                "gauge",
                "status",
                "text",
                "clock",
                "presence"
            ]
        );
        let number = &board.widgets[0];
        assert_eq!(number.span, (2, 1));
        assert_eq!(number.stale_after, Some(300));
        assert_eq!(
            number.kind,
            WidgetKind::Number(NumberOptions {
                entity: "orders".into(),
                unit: Some("/min".into()),
                decimals: 1,
                compact: true,
                delta: Delta::Previous,
                up_is_good: true,
                thresholds: vec![Threshold {
                    at: 100.0,
                    level: Level::Warn
                }],
            })
        );
        assert_eq!(board.widgets[3].stale_after, Some(90));
        assert_eq!(
            board.topics(),
            [
                "metric:kpis",
                "metric:latency",
                "board:leaders",
                "feed:activity",
                "metric:cpu",
                "status:services",
                "notes:ops"
            ]
        );
    }

    #[test]
    fn problems_name_the_file_the_line_and_what_would_do() {
        let cases = [
            // TOML syntax: toml's own message, at its place.
            ("title = \"x\"\ncolumns = \n", "ops.toml:2:11: "),
            ("columns = 4\n", "ops.toml:1:1: missing field `title`"),
            (
                "title = \"x\"\ncolour = \"red\"\n",
                "ops.toml:2:1: unknown field `colour`, expected one of `title`, `columns`, `private`, `notes`, `widget`",
            ),
            ("title = \"x\"\ncolumns = 13\n", "ops.toml: `columns` is 13: use 1 to 12"),
            // The API's JSON spelling, copied into a file.
            (
                "title = \"x\"\nwidgets = []\n",
                "ops.toml:2:1: unknown field `widgets`, expected one of `title`, `columns`, `private`, `notes`, `widget`; a board file writes each widget as a [[widget]] table",
            ),
            (
                "title = \"x\"\n[[widget]]\ntopic = \"a\"\nkind = { type = \"feed\" }\n",
                "ops.toml:2:1: widget 1: `type` is missing: a board file writes `type = \"number\"` and the options in the widget's own table, not under `kind`",
            ),
            (
                "title = \"x\"\n\n[[widget]]\ntopic = \"a\"\n",
                "ops.toml:3:1: widget 1: `type` is missing: number, sparkline",
            ),
            (
                "title = \"x\"\n[[widget]]\ntype = \"pie\"\ntopic = \"a\"\n",
                "ops.toml:2:1: widget 1: unknown `type` \"pie\": use number,",
            ),
            (
                "title = \"x\"\n[[widget]]\ntype = \"number\"\ntopic = \"a\"\nentity = \"b\"\n\n[[widget]]\ntype = \"number\"\ntopic = \"a\"\nentity = \"b\"\nlimit = 3\n",
                "ops.toml:7:1: widget 2: (number): unknown field `limit`, expected one of `entity`",
            ),
            (
                "title = \"x\"\n[[widget]]\ntype = \"number\"\ntopic = \"a\"\n",
                "widget 1: (number): missing field `entity`",
            ),
            (
                "title = \"x\"\n[[widget]]\ntype = \"feed\"\n",
                "widget 1: (feed): `topic` is missing",
            ),
            (
                "title = \"x\"\n[[widget]]\ntype = \"clock\"\ntopic = \"a\"\n",
                "widget 1: (clock): a clock widget reads no `topic`",
            ),
            (
                "title = \"x\"\n[[widget]]\ntype = \"feed\"\ntopic = \"no spaces\"\n",
                "widget 1: (feed): `topic`: ",
            ),
            (
                "title = \"x\"\ncolumns = 2\n[[widget]]\ntype = \"feed\"\ntopic = \"a\"\nspan = [3, 1]\n",
                "widget 1: (feed): `span` is 3 columns wide; the board has 2",
            ),
            (
                "title = \"x\"\n[[widget]]\ntype = \"feed\"\ntopic = \"a\"\nstale_after = \"soon\"\n",
                "widget 1: (feed): `stale_after` \"soon\": ",
            ),
            (
                "title = \"x\"\n[[widget]]\ntype = \"gauge\"\ntopic = \"a\"\nentity = \"b\"\nmin = 5\nmax = 5\n",
                "widget 1: (gauge): `max` (5) must be above `min` (5)",
            ),
            (
                "title = \"x\"\n[[widget]]\ntype = \"clock\"\ntimezone = \"Europe/Pariss\"\n",
                "ops.toml:2:1: widget 1: (clock): `timezone` \"Europe/Pariss\" is not an IANA time zone",
            ),
            (
                "title = \"x\"\n[[widget]]\ntype = \"text\"\nmarkdown = \"hi\"\nhtml = \"<script>\"\n",
                "widget 1: (text): unknown field `html`, expected `markdown`",
            ),
            (
                "title = \"x\"\n[[widget]]\ntype = \"sparkline\"\ntopic = \"a\"\nentity = \"b\"\npoints = 1\n",
                "widget 1: (sparkline): `points` is 1: use 2 to",
            ),
            (
                "title = \"x\"\n[[widget]]\ntype = \"number\"\ntopic = \"a\"\nentity = \"b\"\nthresholds = [{ at = 1, level = \"purple\" }]\n",
                "widget 1: (number): unknown variant `purple`, expected one of `ok`, `info`, `warn`, `critical`",
            ),
        ];
        for (text, expected) in cases {
            let message = problem(text);
            assert!(
                message.contains(expected),
                "for\n{text}\nexpected a problem containing\n  {expected}\ngot\n  {message}"
            );
        }
    }

    /// What the server sends a screen is what the browser reads: every widget type of the
    /// demo board, and a number widget with each shape of delta, through serde and back
    /// through [`FromJson`](crate::json::FromJson) (a `board` frame carries it as it is).
    #[test]
    fn screens_read_back_every_board_the_server_sends() {
        use crate::boards::BoardView;
        use crate::json::FromJson;
        let demo = include_str!("../../boards/demo.toml");
        let mut boards = vec![parse("demo", "demo.toml", demo).unwrap()];
        for delta in ["\"none\"", "\"previous\"", "\"1h\""] {
            let text = format!(
                "title = \"Deltas\"\n[[widget]]\ntype = \"number\"\ntopic = \"t\"\nentity = \"e\"\ndelta = {delta}\nunit = \"ms\"\nthresholds = [{{ at = 5, level = \"warn\" }}]\n"
            );
            boards.push(parse("deltas", "deltas.toml", &text).unwrap());
        }
        let kinds: std::collections::BTreeSet<&str> =
            boards[0].widgets.iter().map(|w| w.kind.name()).collect();
        assert_eq!(
            kinds.len(),
            WidgetKind::TYPES.len(),
            "the demo shows every type"
        );
        for board in boards {
            let view = BoardView {
                revision: 7,
                board: Some(board),
                problem: Some(BoardProblem {
                    file: "demo.toml".into(),
                    line: Some(3),
                    column: None,
                    message: "older".into(),
                }),
            };
            let written = serde_json::to_value(&view).unwrap();
            assert_eq!(BoardView::from_json(written).unwrap(), view);
        }
    }

    #[test]
    fn board_names_are_safe_in_an_address() {
        assert!(valid_name("ops-wall_2"));
        assert!(!valid_name(""));
        assert!(!valid_name("../etc"));
        assert!(!valid_name("with space"));
    }
}
