//! `type = "alertmanager"`: Alertmanager's webhook (payload version 4), and Grafana's alert
//! webhook, which carries the same fields and more. Each firing alert is a light in the status
//! topic, keyed by its fingerprint, named from `alertname` and `instance`, its level from the
//! `severity` label; a resolved alert's light is deleted; each transition (a light that
//! appears, one that goes) is a feed item. Alertmanager sends a whole group again on every
//! change in it and every `repeat_interval`: an alert already shown as it is writes nothing.

use super::{feed_item, Mapped};
use crate::ops::Op;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;

#[derive(Deserialize)]
struct Notification {
    alerts: Vec<Alert>,
}

#[derive(Deserialize)]
struct Alert {
    status: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    #[serde(default, rename = "startsAt")]
    starts_at: String,
    #[serde(default)]
    fingerprint: String,
    #[serde(default, rename = "generatorURL")]
    generator_url: String,
}

impl Alert {
    /// The light's id: Alertmanager's fingerprint, or (from a sender without one) the labels.
    fn id(&self) -> String {
        if !self.fingerprint.is_empty() {
            return self.fingerprint.clone();
        }
        let labels: Vec<String> = self
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        labels.join(",")
    }

    fn name(&self) -> String {
        let alert = self.labels.get("alertname").map_or("alert", String::as_str);
        match self.labels.get("instance") {
            Some(instance) => format!("{alert} on {instance}"),
            None => alert.to_owned(),
        }
    }

    /// The light's level, as the status widget reads words.
    fn level(&self) -> &'static str {
        match self
            .labels
            .get("severity")
            .map(|s| s.to_ascii_lowercase())
            .as_deref()
        {
            Some("critical" | "page" | "error" | "high") => "critical",
            Some("info" | "informational" | "none" | "low") => "info",
            _ => "warn",
        }
    }

    fn summary(&self) -> Option<&str> {
        ["summary", "description", "message"]
            .iter()
            .find_map(|key| self.annotations.get(*key).map(String::as_str))
    }

    fn light(&self) -> Value {
        json!({
            "name": self.name(),
            "state": self.level(),
            "severity": self.labels.get("severity"),
            "summary": self.summary(),
            "since": self.starts_at,
            "labels": self.labels,
        })
    }
}

/// The event the delivery log names a notification by: its alerts' statuses.
pub(crate) fn event(payload: &Value) -> Option<String> {
    payload
        .get("status")
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// What a notification writes, given the status topic's lights now.
pub(crate) fn map(
    payload: &[u8],
    lights: &BTreeMap<String, Value>,
    status_topic: &str,
    feed_topic: &str,
) -> Result<Mapped, String> {
    let notification: Notification = serde_json::from_slice(payload)
        .map_err(|e| format!("not an Alertmanager notification: {e}"))?;
    let (mut status, mut feed) = (Vec::new(), Vec::new());
    for alert in &notification.alerts {
        let id = alert.id();
        let shown = lights.get(&id);
        let url = (!alert.generator_url.is_empty()).then_some(alert.generator_url.as_str());
        let text = |state: &str| match alert.summary() {
            Some(summary) => format!("{} {state}: {summary}", alert.name()),
            None => format!("{} {state}", alert.name()),
        };
        match alert.status.as_str() {
            "firing" => {
                let light = alert.light();
                if shown == Some(&light) {
                    continue;
                }
                if shown.is_none() {
                    feed.push(feed_item("firing", text("firing"), url));
                }
                status.push(Op::Set {
                    entity_id: id,
                    payload: light,
                    ttl: None,
                });
            }
            "resolved" => {
                if shown.is_some() {
                    feed.push(feed_item("resolved", text("resolved"), url));
                    status.push(Op::Delete { entity_id: id });
                }
            }
            other => {
                return Err(format!(
                    "an alert's status is \"{other}\": firing or resolved"
                ))
            }
        }
    }
    let mut mapped = Mapped::default();
    mapped.write(status_topic, status);
    mapped.write(feed_topic, feed);
    Ok(mapped)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Alertmanager's documented webhook payload (version 4), one alert.
    fn notification(status: &str) -> Vec<u8> {
        json!({
            "version": "4",
            "groupKey": "{}:{alertname=\"HighLatency\"}",
            "truncatedAlerts": 0,
            "status": status,
            "receiver": "pulseboard",
            "groupLabels": {"alertname": "HighLatency"},
            "commonLabels": {"alertname": "HighLatency", "severity": "critical"},
            "commonAnnotations": {},
            "externalURL": "http://alertmanager:9093",
            "alerts": [{
                "status": status,
                "labels": {"alertname": "HighLatency", "instance": "web-1", "severity": "critical"},
                "annotations": {"summary": "p95 over 2 s"},
                "startsAt": "2026-12-07T10:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus:9090/graph",
                "fingerprint": "a1b2c3d4"
            }]
        })
        .to_string()
        .into_bytes()
    }

    #[test]
    fn firing_repeating_and_resolving() {
        let none = BTreeMap::new();
        let fired = map(
            &notification("firing"),
            &none,
            "status:alerts",
            "feed:alerts",
        )
        .unwrap();
        assert_eq!(fired.writes.len(), 2);
        let Op::Set {
            entity_id, payload, ..
        } = &fired.writes[0].ops[0]
        else {
            panic!("{fired:?}");
        };
        assert_eq!(entity_id, "a1b2c3d4");
        assert_eq!(payload["name"], "HighLatency on web-1");
        assert_eq!(payload["state"], "critical");
        let Op::Push { payload: item, .. } = &fired.writes[1].ops[0] else {
            panic!("{fired:?}");
        };
        assert_eq!(item["text"], "HighLatency on web-1 firing: p95 over 2 s");

        let shown: BTreeMap<String, Value> = [("a1b2c3d4".into(), payload.clone())].into();
        let repeat = map(
            &notification("firing"),
            &shown,
            "status:alerts",
            "feed:alerts",
        )
        .unwrap();
        assert!(
            repeat.writes.is_empty(),
            "a repeat writes nothing: {repeat:?}"
        );

        let resolved = map(
            &notification("resolved"),
            &shown,
            "status:alerts",
            "feed:alerts",
        )
        .unwrap();
        assert_eq!(
            resolved.writes[0].ops,
            vec![Op::Delete {
                entity_id: "a1b2c3d4".into()
            }]
        );
        let again = map(
            &notification("resolved"),
            &none,
            "status:alerts",
            "feed:alerts",
        )
        .unwrap();
        assert!(again.writes.is_empty());
    }

    /// Grafana's alert webhook (its documented example's shape): Alertmanager's fields and more.
    #[test]
    fn grafanas_webhook_is_read_the_same_way() {
        let grafana = json!({
            "receiver": "pulseboard", "status": "firing", "orgId": 1,
            "alerts": [{
                "status": "firing",
                "labels": {"alertname": "High memory", "team": "blue", "instance": "web-2"},
                "annotations": {"summary": "memory over 90 %"},
                "startsAt": "2026-12-07T10:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://grafana/alerting/grafana/abc/view",
                "fingerprint": "57c6d9296de2ad39",
                "silenceURL": "http://grafana/alerting/silence/new", "dashboardURL": "",
                "panelURL": "", "values": {"B": 92.5}, "valueString": "[ var='B' value=92.5 ]"
            }],
            "groupLabels": {"alertname": "High memory"}, "commonLabels": {"team": "blue"},
            "commonAnnotations": {}, "externalURL": "http://grafana/", "version": "1",
            "groupKey": "{}:{alertname=\"High memory\"}", "truncatedAlerts": 0,
            "title": "[FIRING:1] High memory", "state": "alerting", "message": "…"
        });
        let mapped = map(grafana.to_string().as_bytes(), &BTreeMap::new(), "s", "f").unwrap();
        let Op::Set {
            entity_id, payload, ..
        } = &mapped.writes[0].ops[0]
        else {
            panic!("{mapped:?}");
        };
        assert_eq!(entity_id, "57c6d9296de2ad39");
        assert_eq!(
            (payload["name"].as_str(), payload["state"].as_str()),
            (Some("High memory on web-2"), Some("warn"))
        );
    }

    #[test]
    fn what_is_not_a_notification_says_why() {
        let error = map(br#"{"alerts": 3}"#, &BTreeMap::new(), "s", "f").unwrap_err();
        assert!(
            error.starts_with("not an Alertmanager notification"),
            "{error}"
        );
    }
}
