//! `type = "http"`: any URL that answers JSON, and `select`, a jq program whose one output
//! says what the topic should hold: with `entity`, that entity's payload (a number, an
//! object, anything); without, an object of entity id → payload (with `replace`, the
//! topic's other entities are deleted), or an array of ops to apply as given.

use super::changes::Wanted;
use super::fetch::Answer;
use super::jq;
use crate::ops::Op;
use reqwest::header::CONTENT_TYPE;
use reqwest::Method;
use serde_json::Value;

/// What an http source asks, and what it does with the answer.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Request {
    pub(crate) url: String,
    /// An HTTP method, upper case (`GET` unless the file says).
    pub(crate) method: String,
    /// Sent as the request's body (as JSON unless `headers` give a `Content-Type`).
    pub(crate) body: Option<String>,
    pub(crate) select: String,
    pub(crate) entity: Option<String>,
    pub(crate) replace: bool,
}

impl Request {
    pub(crate) fn request(
        &self,
        client: &reqwest::Client,
        headers: &[(String, String)],
    ) -> reqwest::RequestBuilder {
        let method = Method::from_bytes(self.method.as_bytes()).unwrap_or(Method::GET);
        let mut request = client.request(method, &self.url);
        if let Some(body) = &self.body {
            let typed = headers
                .iter()
                .any(|(name, _)| name.eq_ignore_ascii_case(CONTENT_TYPE.as_str()));
            if !typed {
                request = request.header(CONTENT_TYPE, "application/json");
            }
            request = request.body(body.clone());
        }
        request
    }

    /// What the topic should hold after this answer. Runs the program: CPU work, for a
    /// blocking task.
    pub(crate) fn read(&self, answer: &Answer) -> Result<Wanted, String> {
        if answer.content_type.starts_with("text/html") {
            return Err("the URL answered an HTML page, not JSON".into());
        }
        let output = jq::run(&self.select, &answer.body)?;
        if let Some(entity) = &self.entity {
            if output.is_null() {
                return Err("select gave null: does its path match the answer?".into());
            }
            return Ok(Wanted::Entities {
                state: [(entity.clone(), output)].into(),
                replace: false,
            });
        }
        match output {
            Value::Object(entities) => Ok(Wanted::Entities {
                state: entities.into_iter().collect(),
                replace: self.replace,
            }),
            Value::Array(ops) => ops
                .into_iter()
                .enumerate()
                .map(|(index, op)| {
                    serde_json::from_value::<Op>(op)
                        .map_err(|e| format!("select's op {index} is not an op: {e}"))
                })
                .collect::<Result<_, _>>()
                .map(Wanted::Ops),
            Value::Null => Err("select gave null: does its path match the answer?".into()),
            other => Err(format!(
                "select gave {}, not an object of entities or a list of ops: name the source's `entity` it is the payload of",
                kind_of(&other)
            )),
        }
    }
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Bool(_) => "a boolean",
        Value::Null => "null",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn source(select: &str, entity: Option<&str>) -> Request {
        Request {
            url: "http://x".into(),
            method: "GET".into(),
            body: None,
            select: select.into(),
            entity: entity.map(str::to_owned),
            replace: true,
        }
    }

    fn answer(body: &str, content_type: &str) -> Answer {
        Answer {
            body: body.as_bytes().to_vec(),
            content_type: content_type.into(),
        }
    }

    #[test]
    fn outputs_become_entities_or_ops() {
        let json = answer(
            r#"{"open": 7, "teams": [{"id": "a", "n": 1}]}"#,
            "application/json",
        );
        assert_eq!(
            source(".open", Some("issues")).read(&json),
            Ok(Wanted::Entities {
                state: [("issues".into(), json!(7))].into(),
                replace: false
            })
        );
        assert_eq!(
            source(
                "[.teams[] | {key: .id, value: {score: .n}}] | from_entries",
                None
            )
            .read(&json),
            Ok(Wanted::Entities {
                state: [("a".into(), json!({"score": 1}))].into(),
                replace: true
            })
        );
        assert_eq!(
            source(r#"[{op: "incr", entity_id: "n", by: .open}]"#, None).read(&json),
            Ok(Wanted::Ops(vec![Op::Incr {
                entity_id: "n".into(),
                field: None,
                by: 7.into(),
                ttl: None
            }]))
        );
        assert!(source(".open", None)
            .read(&json)
            .unwrap_err()
            .contains("a number"));
        assert!(source(".nothing", Some("x"))
            .read(&json)
            .unwrap_err()
            .contains("null"));
        assert!(source("[1]", None)
            .read(&json)
            .unwrap_err()
            .contains("op 0"));
        let html = answer(
            "<html><body>Login</body></html>",
            "text/html; charset=utf-8",
        );
        assert!(source(".", Some("x"))
            .read(&html)
            .unwrap_err()
            .contains("HTML"));
    }
}
