//! InfluxDB line protocol, as Telegraf, Vector and InfluxDB's client libraries write it, into
//! topics: `measurement,tag=value field=1.5,other=2i 1700000000000000000`.
//!
//! Each point's measurement is a topic in the bucket's (or v1 database's) namespace:
//! `<bucket>:<measurement>`; each of its fields is an entity named by the point's tag values
//! (in key order) and the field, `web-1/cpu-total/usage_idle`; a number (float, integer,
//! unsigned, or a boolean as 1 and 0) is appended to that entity's series, so a sparkline
//! draws it and a number shows its newest point; a string field is set as the payload. The
//! point's own timestamp is not kept: a series' points are timed by the server as they
//! arrive. Characters a topic name does not take become `_`.

use crate::names::check_name;
use crate::ops::{Batch, Op, TopicOps, MAX_OPS_PER_REQUEST, MAX_TOPICS_PER_BATCH};
use serde_json::{Number, Value};
use std::collections::BTreeMap;

/// The most fields one request may write.
pub(crate) const MAX_FIELDS: usize = 20_000;

/// A field's value.
#[derive(Debug, PartialEq)]
pub(crate) enum Field {
    /// Integers (`1i`, `1u`, booleans as 1 and 0) stay integers.
    Number(Number),
    Text(String),
}

/// One line.
#[derive(Debug, PartialEq)]
pub(crate) struct Point {
    pub(crate) measurement: String,
    pub(crate) tags: Vec<(String, String)>,
    pub(crate) fields: Vec<(String, Field)>,
}

/// Why a body is not line protocol: the line (1-based) and what is wrong.
#[derive(Debug, PartialEq)]
pub(crate) struct LineError {
    pub(crate) line: usize,
    pub(crate) message: String,
}

/// Every point of a body; comments and blank lines are skipped.
pub(crate) fn parse(body: &str) -> Result<Vec<Point>, LineError> {
    let mut points = Vec::new();
    for (index, line) in body.lines().enumerate() {
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let point = point(line).map_err(|message| LineError {
            line: index + 1,
            message,
        })?;
        points.push(point);
    }
    Ok(points)
}

/// Splits at the first `stop` that is neither escaped nor (with `quotes`) inside a quoted
/// string: what comes before (unescaped unless `quotes`), and the rest after it.
fn take_until<'a>(text: &'a str, stops: &[char], quotes: bool) -> (String, Option<char>, &'a str) {
    let mut out = String::new();
    let mut chars = text.char_indices();
    let mut quoted = false;
    while let Some((at, c)) = chars.next() {
        if c == '\\' {
            if let Some((_, next)) = chars.next() {
                if quotes {
                    out.push('\\');
                }
                out.push(next);
            }
            continue;
        }
        if quotes && c == '"' {
            quoted = !quoted;
        } else if !quoted && stops.contains(&c) {
            return (out, Some(c), &text[at + c.len_utf8()..]);
        }
        out.push(c);
    }
    (out, None, "")
}

fn point(line: &str) -> Result<Point, String> {
    let (measurement, mut stop, mut rest) = take_until(line, &[',', ' '], false);
    if measurement.is_empty() {
        return Err("no measurement".into());
    }
    let mut tags = Vec::new();
    while stop == Some(',') {
        let (key, eq, after) = take_until(rest, &['=', ' ', ','], false);
        if eq != Some('=') || key.is_empty() {
            return Err(format!("tag `{key}` has no value"));
        }
        let (value, next, after) = take_until(after, &[',', ' '], false);
        if value.is_empty() {
            return Err(format!("tag `{key}` is empty"));
        }
        tags.push((key, value));
        stop = next;
        rest = after;
    }
    if stop != Some(' ') {
        return Err("no fields".into());
    }
    tags.sort();
    let mut fields = Vec::new();
    loop {
        let (key, eq, after) = take_until(rest.trim_start_matches(' '), &['=', ' ', ','], false);
        if eq != Some('=') || key.is_empty() {
            return Err(format!("field `{key}` has no value"));
        }
        let (raw, next, after) = take_until(after, &[',', ' '], true);
        fields.push((
            key.clone(),
            field(&raw).map_err(|e| format!("field `{key}`: {e}"))?,
        ));
        rest = after;
        if next != Some(',') {
            break;
        }
    }
    let timestamp = rest.trim();
    if !timestamp.is_empty() && timestamp.parse::<i64>().is_err() {
        return Err(format!("`{timestamp}` is not a timestamp"));
    }
    Ok(Point {
        measurement,
        tags,
        fields,
    })
}

fn field(raw: &str) -> Result<Field, String> {
    if let Some(text) = raw.strip_prefix('"') {
        let text = text
            .strip_suffix('"')
            .ok_or("a string without its closing quote")?;
        return Ok(Field::Text(
            text.replace("\\\"", "\"").replace("\\\\", "\\"),
        ));
    }
    let not_a_value = || format!("`{raw}` is not a number, a boolean or a quoted string");
    let number = match raw {
        "t" | "T" | "true" | "True" | "TRUE" => Number::from(1),
        "f" | "F" | "false" | "False" | "FALSE" => Number::from(0),
        _ if raw.ends_with('i') => Number::from(
            raw[..raw.len() - 1]
                .parse::<i64>()
                .map_err(|_| not_a_value())?,
        ),
        _ if raw.ends_with('u') => Number::from(
            raw[..raw.len() - 1]
                .parse::<u64>()
                .map_err(|_| not_a_value())?,
        ),
        _ => raw
            .parse::<f64>()
            .ok()
            .and_then(Number::from_f64)
            .ok_or_else(not_a_value)?,
    };
    Ok(Field::Number(number))
}

/// A topic name made of `namespace:measurement`, with what the rule does not take as `_`.
fn topic_of(namespace: &str, measurement: &str) -> String {
    let name: String = format!("{namespace}:{measurement}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':') {
                c
            } else {
                '_'
            }
        })
        .take(128)
        .collect();
    if check_name(&name).is_ok() {
        name
    } else {
        format!("m{}", &name[..name.len().min(127)])
    }
}

/// The batches that write `points` into `namespace`: each within one request's bounds
/// (ops and topics), in the points' order. Errs if there are more than [`MAX_FIELDS`].
pub(crate) fn batches(namespace: &str, points: &[Point], by: &str) -> Result<Vec<Batch>, String> {
    let fields: usize = points.iter().map(|p| p.fields.len()).sum();
    if fields > MAX_FIELDS {
        return Err(format!(
            "{fields} fields in one request; at most {MAX_FIELDS}: have the writer send smaller batches"
        ));
    }
    let mut batches: Vec<Batch> = Vec::new();
    let mut current: BTreeMap<String, Vec<Op>> = BTreeMap::new();
    let mut ops_in_current = 0;
    let flush = |current: &mut BTreeMap<String, Vec<Op>>, batches: &mut Vec<Batch>| {
        if current.is_empty() {
            return;
        }
        batches.push(Batch {
            writes: std::mem::take(current)
                .into_iter()
                .map(|(topic, ops)| TopicOps { topic, ops })
                .collect(),
            user_id: Some(by.to_owned()),
            trace_id: None,
        });
    };
    for point in points {
        let topic = topic_of(namespace, &point.measurement);
        let prefix: Vec<&str> = point.tags.iter().map(|(_, v)| v.as_str()).collect();
        for (name, value) in &point.fields {
            let full = (ops_in_current == MAX_OPS_PER_REQUEST)
                || (!current.contains_key(&topic) && current.len() == MAX_TOPICS_PER_BATCH);
            if full {
                flush(&mut current, &mut batches);
                ops_in_current = 0;
            }
            let mut entity = prefix.join("/");
            if !entity.is_empty() {
                entity.push('/');
            }
            entity.push_str(name);
            let entity: String = entity.chars().take(256).collect();
            let op = match value {
                Field::Number(n) => Op::Append {
                    entity_id: entity,
                    value: n.clone(),
                    max_points: None,
                    max_age: None,
                    ttl: None,
                },
                Field::Text(text) => Op::Set {
                    entity_id: entity,
                    payload: Value::String(text.clone()),
                    ttl: None,
                },
            };
            current.entry(topic.clone()).or_default().push(op);
            ops_in_current += 1;
        }
    }
    flush(&mut current, &mut batches);
    Ok(batches)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_as_telegraf_writes_them() {
        let body = "# a comment\n\
            cpu,host=web-1,cpu=cpu-total usage_idle=97.5,usage_user=1.25 1700000000000000000\n\
            mem,host=web-1 used=1024i,available_percent=42.5,ok=true\n\
            weather,city=S\\ Paulo temp=21.5,desc=\"sunny, \\\"dry\\\"\"\n\n";
        let points = parse(body).unwrap();
        assert_eq!(points.len(), 3);
        assert_eq!(points[0].measurement, "cpu");
        assert_eq!(
            points[0].tags,
            vec![
                ("cpu".into(), "cpu-total".into()),
                ("host".into(), "web-1".into())
            ]
        );
        assert_eq!(
            points[0].fields[0],
            (
                "usage_idle".into(),
                Field::Number(Number::from_f64(97.5).unwrap())
            )
        );
        assert_eq!(
            points[1].fields[0],
            ("used".into(), Field::Number(1024.into()))
        );
        assert_eq!(points[1].fields[2], ("ok".into(), Field::Number(1.into())));
        assert_eq!(points[2].tags[0].1, "S Paulo");
        assert_eq!(
            points[2].fields[1],
            ("desc".into(), Field::Text("sunny, \"dry\"".into()))
        );

        let batches = batches("telegraf", &points, "influx").unwrap();
        assert_eq!(batches.len(), 1);
        let cpu = &batches[0]
            .writes
            .iter()
            .find(|w| w.topic == "telegraf:cpu")
            .unwrap()
            .ops;
        let Op::Append { entity_id, .. } = &cpu[0] else {
            panic!("{cpu:?}")
        };
        assert_eq!(entity_id, "cpu-total/web-1/usage_idle");
        assert!(batches[0]
            .writes
            .iter()
            .any(|w| w.topic == "telegraf:weather"));
    }

    #[test]
    fn mistakes_name_their_line() {
        assert_eq!(parse("cpu usage=1\ncpu\n").unwrap_err().line, 2);
        assert!(parse("cpu usage=abc")
            .unwrap_err()
            .message
            .contains("not a number"));
        assert!(parse("cpu,host usage=1")
            .unwrap_err()
            .message
            .contains("no value"));
        assert!(parse("cpu usage=1 soon")
            .unwrap_err()
            .message
            .contains("timestamp"));
    }

    #[test]
    fn large_writes_split_into_requests_the_engine_takes() {
        let points: Vec<Point> = (0..2500)
            .map(|n| Point {
                measurement: format!("m{}", n % 150),
                tags: vec![],
                fields: vec![("v".into(), Field::Number(n.into()))],
            })
            .collect();
        let batches = batches("b", &points, "x").unwrap();
        for batch in &batches {
            assert!(batch.check().is_ok());
        }
        let ops: usize = batches
            .iter()
            .flat_map(|b| &b.writes)
            .map(|w| w.ops.len())
            .sum();
        assert_eq!(ops, 2500);
    }
}
