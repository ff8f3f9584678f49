//! `type = "prometheus"`: a PromQL query against Prometheus' HTTP API, its answer turned into
//! the entities a topic should hold. An instant vector is one entity per series, named by
//! the `entity` template from its labels, its payload the value with the labels beside it;
//! a scalar (or string) is one entity; with `range`, each series is a sparkline's points over
//! that window. Values Prometheus sends as `NaN` or `±Inf` stay the strings it sent, which
//! widgets show as no data rather than as 0.

use super::changes::Wanted;
use crate::ops::MAX_SERIES_POINTS;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::time::Duration;

/// What a prometheus source asks.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Query {
    /// Where Prometheus is (`http://prometheus:9090`, or with a path prefix).
    pub(crate) url: String,
    pub(crate) query: String,
    /// How each series' entity is named from its labels: `"{instance}"`, `"{job}/{instance}"`.
    pub(crate) entity: Option<String>,
    pub(crate) range: Option<Range>,
}

/// A range query: the window that ends now, and the time between its points.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Range {
    pub(crate) window: Duration,
    pub(crate) step: Duration,
}

impl Range {
    /// How many points a series of this range has at most.
    pub(crate) fn points(&self) -> u128 {
        self.window.as_millis() / self.step.as_millis().max(1) + 1
    }

    /// Checks a range a file asks for.
    pub(crate) fn check(&self) -> Result<(), String> {
        if self.step.is_zero() {
            return Err("`step` must be more than zero".into());
        }
        if self.points() > MAX_SERIES_POINTS as u128 {
            return Err(format!(
                "`range` / `step` gives {} points; a sparkline keeps at most {MAX_SERIES_POINTS}: make `step` longer",
                self.points()
            ));
        }
        Ok(())
    }
}

impl Query {
    /// The request for this query, as of `now_ms`.
    pub(crate) fn request(&self, client: &reqwest::Client, now_ms: u64) -> reqwest::RequestBuilder {
        let base = self.url.trim_end_matches('/');
        match self.range {
            None => client
                .get(format!("{base}/api/v1/query"))
                .query(&[("query", self.query.as_str())]),
            Some(range) => {
                let end = now_ms as f64 / 1000.0;
                let start = end - range.window.as_secs_f64();
                client.get(format!("{base}/api/v1/query_range")).query(&[
                    ("query", self.query.clone()),
                    ("start", format!("{start:.3}")),
                    ("end", format!("{end:.3}")),
                    ("step", format!("{}", range.step.as_secs_f64())),
                ])
            }
        }
    }

    /// What the topic should hold after this answer.
    pub(crate) fn read(&self, body: &[u8]) -> Result<Wanted, String> {
        let answer: Answer = serde_json::from_slice(body)
            .map_err(|e| format!("prometheus' answer is not its API's JSON: {e}"))?;
        if answer.status != "success" {
            return Err(format!(
                "prometheus: {}",
                answer.error.unwrap_or_else(|| answer.status.clone())
            ));
        }
        let data = answer
            .data
            .ok_or("prometheus answered success with no data")?;
        let mut state = BTreeMap::new();
        match (data.result_type.as_str(), &self.range) {
            ("vector", None) => {
                let series: Vec<Sample> = from(data.result)?;
                for sample in series {
                    let mut payload = labels(&sample.metric);
                    payload.insert("value".into(), number(&sample.value.1));
                    self.put(&mut state, &sample.metric, Value::Object(payload))?;
                }
            }
            ("matrix", Some(_)) => {
                let series: Vec<Series> = from(data.result)?;
                for one in series {
                    let points = one
                        .values
                        .iter()
                        .map(|(at, value)| Value::Array(vec![ms(*at), number(value)]))
                        .collect();
                    let mut payload = labels(&one.metric);
                    payload.insert("points".into(), Value::Array(points));
                    self.put(&mut state, &one.metric, Value::Object(payload))?;
                }
            }
            ("scalar" | "string", None) => {
                let (_, value): (f64, String) = from(data.result)?;
                let id = self.entity.clone().unwrap_or_else(|| "value".into());
                let value = match data.result_type.as_str() {
                    "scalar" => number(&value),
                    _ => Value::String(value),
                };
                state.insert(id, value);
            }
            ("matrix", None) => {
                return Err(
                    "the query gives a range vector: give the source `range` and `step`, or query an instant vector"
                        .into(),
                )
            }
            (other, Some(_)) => {
                return Err(format!(
                    "a range query of this gives a {other}, not series"
                ))
            }
            (other, None) => return Err(format!("prometheus answered a {other}")),
        }
        Ok(Wanted::Entities {
            state,
            replace: true,
        })
    }

    /// Adds one series' payload under the entity its labels name.
    fn put(
        &self,
        state: &mut BTreeMap<String, Value>,
        labels: &BTreeMap<String, String>,
        payload: Value,
    ) -> Result<(), String> {
        let id = entity_of(self.entity.as_deref(), labels);
        if state.insert(id.clone(), payload).is_some() {
            return Err(format!(
                "two series are both named \"{id}\": give `entity` a label that tells them apart, such as \"{{instance}}\""
            ));
        }
        Ok(())
    }
}

#[derive(Deserialize)]
struct Answer {
    status: String,
    #[serde(default)]
    data: Option<Data>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
struct Data {
    #[serde(rename = "resultType")]
    result_type: String,
    result: Value,
}

#[derive(Deserialize)]
struct Sample {
    #[serde(default)]
    metric: BTreeMap<String, String>,
    value: (f64, String),
}

#[derive(Deserialize)]
struct Series {
    #[serde(default)]
    metric: BTreeMap<String, String>,
    values: Vec<(f64, String)>,
}

fn from<T: serde::de::DeserializeOwned>(result: Value) -> Result<T, String> {
    serde_json::from_value(result)
        .map_err(|e| format!("prometheus' result is not as documented: {e}"))
}

/// A series' labels as payload fields.
fn labels(metric: &BTreeMap<String, String>) -> Map<String, Value> {
    metric
        .iter()
        .map(|(name, value)| (name.clone(), Value::String(value.clone())))
        .collect()
}

/// A sample value as Prometheus sends it ("1", "0.25", "NaN", "+Inf") as JSON: a number
/// when it is one (a whole number as an integer, so it reads back the same), else the
/// string as sent.
pub(crate) fn number(text: &str) -> Value {
    match text.parse::<f64>() {
        Ok(n) if n.is_finite() => {
            if n.fract() == 0.0 && n.abs() < 9_007_199_254_740_992.0 {
                Value::from(n as i64)
            } else {
                serde_json::Number::from_f64(n)
                    .map_or_else(|| Value::String(text.into()), Value::Number)
            }
        }
        _ => Value::String(text.to_owned()),
    }
}

fn ms(seconds: f64) -> Value {
    Value::from((seconds * 1000.0).round() as i64)
}

/// A series' entity: the template with each `{label}` replaced by its value; without a
/// template (or if it comes out empty), the labels as PromQL writes them.
pub(crate) fn entity_of(template: Option<&str>, labels: &BTreeMap<String, String>) -> String {
    if let Some(template) = template {
        let mut out = String::new();
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            match rest[open..].find('}') {
                Some(close) => {
                    let name = &rest[open + 1..open + close];
                    out.push_str(labels.get(name).map_or("", String::as_str));
                    rest = &rest[open + close + 1..];
                }
                None => {
                    out.push_str(&rest[open..]);
                    rest = "";
                }
            }
        }
        out.push_str(rest);
        if !out.is_empty() {
            return out;
        }
    }
    let shown: Vec<String> = labels
        .iter()
        .filter(|(name, _)| *name != "__name__")
        .map(|(name, value)| format!("{name}=\"{value}\""))
        .collect();
    match (shown.is_empty(), labels.get("__name__")) {
        (true, Some(name)) => name.clone(),
        (true, None) => "value".into(),
        (false, name) => format!("{}{{{}}}", name.map_or("", String::as_str), shown.join(",")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn instant(entity: Option<&str>) -> Query {
        Query {
            url: "http://p".into(),
            query: "up".into(),
            entity: entity.map(str::to_owned),
            range: None,
        }
    }

    fn wanted(query: &Query, answer: Value) -> Result<BTreeMap<String, Value>, String> {
        match query.read(answer.to_string().as_bytes())? {
            Wanted::Entities { state, replace } => {
                assert!(replace);
                Ok(state)
            }
            Wanted::Ops(_) => unreachable!(),
        }
    }

    #[test]
    fn a_vector_is_one_entity_per_series_with_its_labels() {
        let answer = json!({"status": "success", "data": {"resultType": "vector", "result": [
            {"metric": {"__name__": "up", "instance": "a:9100", "job": "node"}, "value": [1.7e9, "1"]},
            {"metric": {"__name__": "up", "instance": "b:9100", "job": "node"}, "value": [1.7e9, "0"]},
            {"metric": {"__name__": "up", "instance": "c:9100", "job": "node"}, "value": [1.7e9, "NaN"]},
        ]}});
        let state = wanted(&instant(Some("{instance}")), answer).unwrap();
        assert_eq!(
            state["a:9100"],
            json!({"__name__": "up", "instance": "a:9100", "job": "node", "value": 1})
        );
        assert_eq!(state["b:9100"]["value"], json!(0));
        assert_eq!(state["c:9100"]["value"], json!("NaN"));
    }

    #[test]
    fn series_named_alike_are_a_mistake_not_a_loss() {
        let answer = json!({"status": "success", "data": {"resultType": "vector", "result": [
            {"metric": {"instance": "a", "job": "x"}, "value": [1.0, "1"]},
            {"metric": {"instance": "a", "job": "y"}, "value": [1.0, "1"]},
        ]}});
        let error = wanted(&instant(Some("{instance}")), answer).unwrap_err();
        assert!(error.contains("\"a\""), "{error}");
    }

    #[test]
    fn scalars_ranges_and_errors() {
        let scalar =
            json!({"status": "success", "data": {"resultType": "scalar", "result": [1.0, "2.5"]}});
        assert_eq!(
            wanted(&instant(Some("rps")), scalar).unwrap()["rps"],
            json!(2.5)
        );
        let mut range = instant(None);
        range.range = Some(Range {
            window: Duration::from_secs(60),
            step: Duration::from_secs(30),
        });
        let matrix = json!({"status": "success", "data": {"resultType": "matrix", "result": [
            {"metric": {"job": "api"}, "values": [[100.0, "1"], [130.0, "+Inf"], [160.0, "3"]]},
        ]}});
        let state = wanted(&range, matrix).unwrap();
        assert_eq!(
            state["{job=\"api\"}"]["points"],
            json!([[100000, 1], [130000, "+Inf"], [160000, 3]])
        );
        let error = json!({"status": "error", "errorType": "bad_data", "error": "parse error"});
        assert_eq!(
            wanted(&instant(None), error).unwrap_err(),
            "prometheus: parse error"
        );
        let matrix_unasked =
            json!({"status": "success", "data": {"resultType": "matrix", "result": []}});
        assert!(wanted(&instant(None), matrix_unasked).is_err());
    }

    #[test]
    fn entity_templates() {
        let labels: BTreeMap<String, String> =
            [("__name__", "up"), ("job", "node"), ("instance", "a")]
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .into();
        assert_eq!(entity_of(Some("{job}/{instance}"), &labels), "node/a");
        assert_eq!(
            entity_of(Some("{missing}"), &labels),
            "up{instance=\"a\",job=\"node\"}"
        );
        assert_eq!(entity_of(None, &BTreeMap::new()), "value");
    }
}
