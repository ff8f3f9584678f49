//! `type = "http"`: any URL that answers JSON, and its `select` ([`Selection`]) that says
//! what the topic should hold.

use super::changes::Wanted;
use super::fetch::Answer;
use super::jq::Selection;
use reqwest::header::CONTENT_TYPE;
use reqwest::Method;

/// What an http source asks, and what it does with the answer.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Request {
    pub(crate) url: String,
    /// An HTTP method, upper case (`GET` unless the file says).
    pub(crate) method: String,
    /// Sent as the request's body (as JSON unless `headers` give a `Content-Type`).
    pub(crate) body: Option<String>,
    pub(crate) selection: Selection,
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
        self.selection.wanted(&answer.body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::Op;
    use serde_json::json;

    fn source(select: &str, entity: Option<&str>) -> Request {
        Request {
            url: "http://x".into(),
            method: "GET".into(),
            body: None,
            selection: Selection {
                select: select.into(),
                entity: entity.map(str::to_owned),
                replace: true,
            },
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
