//! How widgets read an entity's payload: a number (bare, or an object's `value`), a state for
//! the status grid (a word services report, or a number against thresholds), and a series for
//! the sparkline. Integrators push whichever shape they already have; these are the shapes
//! every widget accepts.

use crate::boards::{level_of, Level, Threshold};
use serde_json::Value;

/// A bare number, or an object's `value` field.
pub fn number(payload: &Value) -> Option<f64> {
    payload
        .as_f64()
        .or_else(|| payload.get("value").and_then(Value::as_f64))
}

/// An entity's state as the status grid shows it: its level (none if the state is neither a
/// known word nor a number a threshold covers) and the text beside the light.
pub fn state(payload: &Value, field: &str, thresholds: &[Threshold]) -> (Option<Level>, String) {
    let state = match payload {
        Value::Object(object) => object.get(field).unwrap_or(&Value::Null),
        other => other,
    };
    match state {
        Value::String(word) => (Level::from_word(word), word.clone()),
        Value::Number(n) => {
            let value = n.as_f64().unwrap_or_default();
            (level_of(value, thresholds), n.to_string())
        }
        Value::Bool(up) => (
            Some(if *up { Level::Ok } else { Level::Critical }),
            if *up { "up" } else { "down" }.into(),
        ),
        Value::Null => (None, "unknown".into()),
        other => (None, other.to_string()),
    }
}

/// A number widget's value: a number, or the newest point of a series.
pub fn latest(payload: &Value) -> Option<f64> {
    number(payload).or_else(|| series(payload).last().copied())
}

/// A series' timed points (`[time_ms, value]`), oldest first; a point without a time or a
/// number is skipped.
pub fn timed_points(payload: &Value) -> Vec<(f64, f64)> {
    let Some(Value::Array(points)) = payload.get("points") else {
        return Vec::new();
    };
    points
        .iter()
        .filter_map(|point| Some((point.get(0)?.as_f64()?, point.get(1)?.as_f64()?)))
        .collect()
}

/// The change over the `window_ms` up to `newest` (a time and a value): `newest` less the
/// last of `points` at or before the window's start. `None` if `points` do not reach back so
/// far.
pub fn change_over(points: &[(f64, f64)], newest: (f64, f64), window_ms: f64) -> Option<f64> {
    let start = newest.0 - window_ms;
    let (_, then) = points.iter().rev().find(|(at, _)| *at <= start)?;
    Some(newest.1 - then)
}

/// A series' values, oldest first: the `points` the server keeps for `append` ops
/// (`[time_ms, value]` pairs), or a plain array of numbers someone `set`. Points that are not
/// numbers are skipped rather than failing the whole line.
pub fn series(payload: &Value) -> Vec<f64> {
    let points = match payload {
        Value::Array(points) => points,
        Value::Object(series) => match series.get("points") {
            Some(Value::Array(points)) => points,
            _ => return Vec::new(),
        },
        _ => return Vec::new(),
    };
    points
        .iter()
        .filter_map(|point| match point {
            Value::Array(pair) => pair.get(1).and_then(Value::as_f64),
            other => other.as_f64(),
        })
        .collect()
}

/// The name a row shows: the payload's `name` field, else the entity id.
pub fn display_name(id: &str, payload: &Value) -> String {
    payload
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or(id)
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_read_bare_or_from_value() {
        assert_eq!(number(&json!(3)), Some(3.0));
        assert_eq!(number(&json!({"value": 2.5})), Some(2.5));
        assert_eq!(number(&json!("x")), None);
    }

    #[test]
    fn states_read_words_numbers_and_booleans() {
        let thresholds = [
            Threshold {
                at: 0.0,
                level: Level::Ok,
            },
            Threshold {
                at: 500.0,
                level: Level::Critical,
            },
        ];
        assert_eq!(
            state(&json!({"state": "degraded"}), "state", &[]),
            (Some(Level::Warn), "degraded".into())
        );
        assert_eq!(
            state(&json!("down"), "state", &[]),
            (Some(Level::Critical), "down".into())
        );
        assert_eq!(
            state(&json!({"ms": 720}), "ms", &thresholds),
            (Some(Level::Critical), "720".into())
        );
        assert_eq!(
            state(&json!(true), "state", &[]),
            (Some(Level::Ok), "up".into())
        );
        assert_eq!(
            state(&json!({"other": 1}), "state", &[]),
            (None, "unknown".into())
        );
        assert_eq!(
            state(&json!("banana"), "state", &[]),
            (None, "banana".into())
        );
    }

    #[test]
    fn series_read_appended_points_or_plain_numbers() {
        assert_eq!(
            series(&json!({"points": [[1000, 2], [2000, 3.5], [3000, "x"]]})),
            [2.0, 3.5]
        );
        assert_eq!(series(&json!([1, 2, 3])), [1.0, 2.0, 3.0]);
        assert!(series(&json!({"value": 3})).is_empty());
        assert!(series(&json!(3)).is_empty());
    }

    #[test]
    fn a_window_change_reaches_back_to_the_last_point_before_it() {
        let points =
            timed_points(&json!({"points": [[0, 10], [30_000, 12], [60_000, 15], [90_000, 19]]}));
        let newest = points[3];
        // A minute before 90 s is 30 s, where the value was 12.
        assert_eq!(change_over(&points, newest, 60_000.0), Some(7.0));
        // 75 s before is 15 s: the value then was still the 10 from 0 s.
        assert_eq!(change_over(&points, newest, 75_000.0), Some(9.0));
        assert_eq!(
            change_over(&points, newest, 120_000.0),
            None,
            "the series is younger"
        );
        assert_eq!(latest(&json!({"points": [[0, 1], [5, 2]]})), Some(2.0));
        assert_eq!(latest(&json!(4)), Some(4.0));
    }

    #[test]
    fn rows_are_named_by_their_payload_or_their_id() {
        assert_eq!(display_name("api", &json!({"name": "API"})), "API");
        assert_eq!(display_name("api", &json!("up")), "api");
    }
}
