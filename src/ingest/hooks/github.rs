//! `type = "github"`: GitHub's webhook events. What happens is a feed item that reads well
//! on a wall ("ana pushed 3 commits to main"); how each workflow stands on each branch, and
//! each deployment environment, is a light. `ping` (sent when the webhook is made) is
//! answered; other events are acknowledged and not shown. The same event delivered again
//! (GitHub's redelivery, same `X-GitHub-Delivery`) is applied once: the server keys the
//! write by that id.

use super::{feed_item, optional, text, Mapped};
use crate::ops::Op;
use serde_json::{json, Value};

fn who(payload: &Value) -> &str {
    optional(payload, "/sender/login").unwrap_or("someone")
}

/// What one event writes. `event` is the `X-GitHub-Event` header.
pub(crate) fn map(
    event: &str,
    payload: &Value,
    status_topic: &str,
    feed_topic: &str,
) -> Result<Mapped, String> {
    let mut mapped = Mapped::default();
    let (mut feed, mut status) = (Vec::new(), Vec::new());
    match event {
        "ping" => {
            let zen = optional(payload, "/zen").unwrap_or("pong");
            return Ok(Mapped::ignored(format!("ping: {zen}")));
        }
        "push" => {
            let reference = text(payload, event, "/ref")?;
            let repository = optional(payload, "/repository/name").unwrap_or("");
            let url = optional(payload, "/compare");
            let (kind, name) = match reference.strip_prefix("refs/tags/") {
                Some(tag) => ("tag", tag),
                None => (
                    "branch",
                    reference.strip_prefix("refs/heads/").unwrap_or(reference),
                ),
            };
            let pusher = optional(payload, "/pusher/name").unwrap_or_else(|| who(payload));
            let line = if payload.get("deleted").and_then(Value::as_bool) == Some(true) {
                format!("{pusher} deleted {kind} {name} of {repository}")
            } else if kind == "tag" {
                format!("{pusher} pushed tag {name} to {repository}")
            } else {
                let commits = payload
                    .get("commits")
                    .and_then(Value::as_array)
                    .map_or(0, Vec::len);
                let plural = if commits == 1 { "commit" } else { "commits" };
                format!("{pusher} pushed {commits} {plural} to {name} of {repository}")
            };
            feed.push(feed_item("push", line, url));
        }
        "pull_request" => {
            let action = text(payload, event, "/action")?;
            let number = payload
                .pointer("/pull_request/number")
                .and_then(Value::as_u64)
                .ok_or("a pull_request event without /pull_request/number")?;
            let title = text(payload, event, "/pull_request/title")?;
            let merged = payload
                .pointer("/pull_request/merged")
                .and_then(Value::as_bool);
            let did = match (action, merged) {
                ("opened", _) => "opened",
                ("closed", Some(true)) => "merged",
                ("closed", _) => "closed",
                ("reopened", _) => "reopened",
                ("ready_for_review", _) => "marked ready for review",
                _ => return Ok(Mapped::ignored(format!("pull_request {action}: not shown"))),
            };
            let url = optional(payload, "/pull_request/html_url");
            feed.push(feed_item(
                "pull_request",
                format!("{} {did} #{number}: {title}", who(payload)),
                url,
            ));
        }
        "workflow_run" => {
            let action = text(payload, event, "/action")?;
            let workflow = text(payload, event, "/workflow_run/name")?;
            let branch = optional(payload, "/workflow_run/head_branch").unwrap_or("?");
            let url = optional(payload, "/workflow_run/html_url");
            let conclusion = optional(payload, "/workflow_run/conclusion");
            let state = match (action, conclusion) {
                ("completed", Some(conclusion)) => conclusion,
                _ => "running",
            };
            let name = format!("{workflow} · {branch}");
            status.push(light(&name, state, url));
            if action == "completed" {
                feed.push(feed_item(
                    "workflow",
                    format!("{workflow} on {branch}: {state}"),
                    url,
                ));
            }
        }
        "deployment_status" => {
            let state = text(payload, event, "/deployment_status/state")?;
            let environment = optional(payload, "/deployment_status/environment")
                .or_else(|| optional(payload, "/deployment/environment"))
                .ok_or("a deployment_status event without an environment")?;
            let reference = optional(payload, "/deployment/ref").unwrap_or("?");
            let url = optional(payload, "/deployment_status/target_url")
                .or_else(|| optional(payload, "/deployment_status/log_url"));
            status.push(light(&format!("deploy · {environment}"), state, url));
            if matches!(state, "success" | "failure" | "error") {
                let line = format!("deploy of {reference} to {environment}: {state}");
                feed.push(feed_item("deployment", line, url));
            }
        }
        "release" => {
            let action = text(payload, event, "/action")?;
            if action != "published" {
                return Ok(Mapped::ignored(format!("release {action}: not shown")));
            }
            let tag = text(payload, event, "/release/tag_name")?;
            let line =
                match optional(payload, "/release/name").filter(|n| !n.is_empty() && *n != tag) {
                    Some(name) => format!("{} released {tag}: {name}", who(payload)),
                    None => format!("{} released {tag}", who(payload)),
                };
            feed.push(feed_item(
                "release",
                line,
                optional(payload, "/release/html_url"),
            ));
        }
        other => return Ok(Mapped::ignored(format!("{other} events are not shown"))),
    }
    mapped.write(status_topic, status);
    mapped.write(feed_topic, feed);
    Ok(mapped)
}

/// A light named `name`, its state (GitHub's words, which the gitlab preset maps its own
/// to) as a word the status grid reads.
pub(crate) fn light(name: &str, state: &str, url: Option<&str>) -> Op {
    let level = match state {
        "success" => "ok",
        "failure" | "error" | "timed_out" | "startup_failure" => "critical",
        "pending" | "queued" | "in_progress" | "running" | "requested" | "waiting" => "running",
        _ => "warn",
    };
    Op::Set {
        entity_id: name.to_owned(),
        payload: json!({"name": name, "state": level, "result": state, "url": url}),
        ttl: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed_text(mapped: &Mapped) -> String {
        let write = mapped
            .writes
            .iter()
            .find(|w| w.topic == "feed")
            .expect("a feed item");
        match &write.ops[0] {
            Op::Push { payload, .. } => payload["text"].as_str().unwrap().to_owned(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn events_read_well_on_a_wall() {
        let push = json!({"ref": "refs/heads/main", "commits": [{}, {}, {}],
            "repository": {"name": "pulseboard"}, "pusher": {"name": "ana"},
            "compare": "https://github.com/o/pulseboard/compare/a...b"});
        assert_eq!(
            feed_text(&map("push", &push, "status", "feed").unwrap()),
            "ana pushed 3 commits to main of pulseboard"
        );
        let merged = json!({"action": "closed", "sender": {"login": "bo"},
            "pull_request": {"number": 12, "title": "Sources", "merged": true}});
        assert_eq!(
            feed_text(&map("pull_request", &merged, "status", "feed").unwrap()),
            "bo merged #12: Sources"
        );
        let run = json!({"action": "completed", "workflow_run": {"name": "CI", "head_branch": "main", "conclusion": "failure"}});
        let mapped = map("workflow_run", &run, "status", "feed").unwrap();
        assert_eq!(feed_text(&mapped), "CI on main: failure");
        let Op::Set {
            entity_id, payload, ..
        } = &mapped.writes[0].ops[0]
        else {
            panic!()
        };
        assert_eq!(
            (entity_id.as_str(), payload["state"].as_str()),
            ("CI · main", Some("critical"))
        );
        assert!(map(
            "ping",
            &json!({"zen": "Keep it logically awesome."}),
            "s",
            "f"
        )
        .unwrap()
        .ignored
        .is_some());
        assert!(map("star", &json!({}), "s", "f").unwrap().ignored.is_some());
        assert!(map("push", &json!({}), "s", "f")
            .unwrap_err()
            .contains("/ref"));
    }
}
