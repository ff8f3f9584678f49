//! `type = "gitlab"`: GitLab's webhook events, shown as the github preset shows GitHub's: a
//! feed item for what happens (a push, a merge request opened or merged, a pipeline or
//! deployment that finished) and a light per pipeline ref and per deployment environment.
//! GitLab names the event in `X-Gitlab-Event`; a retry of the same delivery (the same
//! `Idempotency-Key`, or `X-Gitlab-Event-UUID`) is applied once.

use super::github::light;
use super::{feed_item, optional, text, Mapped};
use serde_json::Value;

/// What one event writes. `event` is the `X-GitLab-Event` header (`Push Hook`, …).
pub(crate) fn map(
    event: &str,
    payload: &Value,
    status_topic: &str,
    feed_topic: &str,
) -> Result<Mapped, String> {
    let (mut feed, mut status) = (Vec::new(), Vec::new());
    let project = optional(payload, "/project/name").unwrap_or("");
    match event {
        "Push Hook" | "Tag Push Hook" => {
            let reference = text(payload, event, "/ref")?;
            let who = optional(payload, "/user_username")
                .or_else(|| optional(payload, "/user_name"))
                .unwrap_or("someone");
            let line = match reference.strip_prefix("refs/tags/") {
                Some(tag) => format!("{who} pushed tag {tag} to {project}"),
                None => {
                    let branch = reference.strip_prefix("refs/heads/").unwrap_or(reference);
                    let commits = payload
                        .get("total_commits_count")
                        .and_then(Value::as_u64)
                        .unwrap_or(0);
                    let plural = if commits == 1 { "commit" } else { "commits" };
                    format!("{who} pushed {commits} {plural} to {branch} of {project}")
                }
            };
            let url = optional(payload, "/project/web_url");
            feed.push(feed_item("push", line, url));
        }
        "Merge Request Hook" => {
            let action = text(payload, event, "/object_attributes/action")?;
            let iid = payload
                .pointer("/object_attributes/iid")
                .and_then(Value::as_u64)
                .ok_or("a Merge Request Hook without /object_attributes/iid")?;
            let title = text(payload, event, "/object_attributes/title")?;
            let did = match action {
                "open" => "opened",
                "merge" => "merged",
                "close" => "closed",
                "reopen" => "reopened",
                other => return Ok(Mapped::ignored(format!("merge request {other}: not shown"))),
            };
            let who = optional(payload, "/user/username").unwrap_or("someone");
            let url = optional(payload, "/object_attributes/url");
            feed.push(feed_item(
                "merge_request",
                format!("{who} {did} !{iid}: {title}"),
                url,
            ));
        }
        "Pipeline Hook" => {
            let reference = text(payload, event, "/object_attributes/ref")?;
            let result = text(payload, event, "/object_attributes/status")?;
            let url = optional(payload, "/object_attributes/url");
            let state = match result {
                "failed" => "failure",
                "canceled" => "cancelled",
                other => other,
            };
            status.push(light(&format!("pipeline · {reference}"), state, url));
            if matches!(result, "success" | "failed") {
                let line = format!("pipeline on {reference} of {project}: {result}");
                feed.push(feed_item("pipeline", line, url));
            }
        }
        "Deployment Hook" => {
            let result = text(payload, event, "/status")?;
            let environment = text(payload, event, "/environment")?;
            let url = optional(payload, "/deployable_url");
            let state = if result == "failed" {
                "failure"
            } else {
                result
            };
            status.push(light(&format!("deploy · {environment}"), state, url));
            if matches!(result, "success" | "failed") {
                let reference = optional(payload, "/ref").unwrap_or("?");
                let line = format!("deploy of {reference} to {environment}: {result}");
                feed.push(feed_item("deployment", line, url));
            }
        }
        other => return Ok(Mapped::ignored(format!("{other} events are not shown"))),
    }
    let mut mapped = Mapped::default();
    mapped.write(status_topic, status);
    mapped.write(feed_topic, feed);
    Ok(mapped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::Op;
    use serde_json::json;

    fn feed_text(mapped: &Mapped) -> &str {
        let write = mapped
            .writes
            .iter()
            .find(|w| w.topic == "feed")
            .expect("a feed item");
        match &write.ops[0] {
            Op::Push { payload, .. } => payload["text"].as_str().unwrap(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn events_read_well_on_a_wall() {
        let push = json!({"object_kind": "push", "ref": "refs/heads/main", "user_username": "ana",
            "total_commits_count": 2, "project": {"name": "pulseboard"}});
        assert_eq!(
            feed_text(&map("Push Hook", &push, "status", "feed").unwrap()),
            "ana pushed 2 commits to main of pulseboard"
        );
        let merged = json!({"user": {"username": "bo"}, "object_attributes": {"iid": 7, "title": "Hooks", "action": "merge"}});
        assert_eq!(
            feed_text(&map("Merge Request Hook", &merged, "status", "feed").unwrap()),
            "bo merged !7: Hooks"
        );
        let failed = json!({"object_attributes": {"ref": "main", "status": "failed"}, "project": {"name": "pulseboard"}});
        let mapped = map("Pipeline Hook", &failed, "status", "feed").unwrap();
        let Op::Set {
            entity_id, payload, ..
        } = &mapped.writes[0].ops[0]
        else {
            panic!()
        };
        assert_eq!(
            (entity_id.as_str(), payload["state"].as_str()),
            ("pipeline · main", Some("critical"))
        );
        assert!(map("Note Hook", &json!({}), "s", "f")
            .unwrap()
            .ignored
            .is_some());
        assert!(map("Push Hook", &json!({}), "s", "f")
            .unwrap_err()
            .contains("/ref"));
    }
}
