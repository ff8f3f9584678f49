//! Hooks against real senders where they can run here: Debian's `prometheus-alertmanager`
//! posting to the server under test, and GitHub's deliveries as GitHub signs them (with a
//! payload of GitHub's documented shape, stored as test data). Every delivery goes through
//! the real binary's HTTP API; topics are read back through it.

mod support;

use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use support::{eventually, free_port, topic, Server};
use tempfile::TempDir;

const SECRET: &str = "a-hook-secret-for-tests";

/// A server with one source file holding `hooks`, its secret in the environment.
fn server_with_hooks(dir: &Path, hooks: &str) -> Server {
    std::fs::write(dir.join("hooks.toml"), hooks).unwrap();
    Server::start(&[
        ("PULSEBOARD_SOURCES", dir.to_str().unwrap()),
        ("HOOK_SECRET", SECRET),
    ])
}

async fn deliveries(server: &Server, hook: &str) -> Vec<Value> {
    let (status, body) = server
        .get(&format!("/api/v1/hooks/{hook}/deliveries"))
        .await;
    assert_eq!(status, 200, "{body}");
    body["deliveries"].as_array().unwrap().clone()
}

/// The feed items' texts, oldest first.
fn feed_texts(state: &Value) -> Vec<String> {
    let mut items: Vec<(&String, &Value)> = state.as_object().unwrap().iter().collect();
    items.sort_by_key(|(id, _)| id.as_str());
    items
        .iter()
        .map(|(_, item)| item["text"].as_str().unwrap().to_owned())
        .collect()
}

/// A real Alertmanager on a free loopback port, posting every group to `url` with the
/// secret as its bearer token; killed when dropped.
struct Alertmanager {
    child: Child,
    port: u16,
    _dir: TempDir,
}

impl Alertmanager {
    async fn start(url: &str) -> Self {
        let dir = TempDir::new().unwrap();
        let config = format!(
            "route:\n  receiver: pulseboard\n  group_by: ['alertname']\n  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 2s\nreceivers:\n  - name: pulseboard\n    webhook_configs:\n      - url: '{url}'\n        send_resolved: true\n        http_config:\n          authorization:\n            credentials: '{SECRET}'\n"
        );
        std::fs::write(dir.path().join("alertmanager.yml"), config).unwrap();
        let port = free_port();
        let child = Command::new("prometheus-alertmanager")
            .arg(format!(
                "--config.file={}",
                dir.path().join("alertmanager.yml").display()
            ))
            .arg(format!(
                "--storage.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus-alertmanager runs (scripts/setup --tests installs it)");
        let alertmanager = Alertmanager {
            child,
            port,
            _dir: dir,
        };
        let ready = format!("http://127.0.0.1:{port}/-/ready");
        eventually(30, "alertmanager ready", || {
            let ready = ready.clone();
            async move {
                reqwest::get(&ready)
                    .await
                    .ok()
                    .filter(|r| r.status().is_success())
            }
        })
        .await;
        alertmanager
    }

    /// Posts an alert to Alertmanager's own API: firing, or resolved (ended now).
    async fn alert(&self, firing: bool) {
        let now = std::time::SystemTime::now();
        let ends = if firing {
            now + Duration::from_secs(600)
        } else {
            now - Duration::from_secs(1)
        };
        let rfc3339 = |t: std::time::SystemTime| {
            let secs = t.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
            time::OffsetDateTime::from_unix_timestamp(secs)
                .unwrap()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap()
        };
        let alert = json!([{
            "labels": {"alertname": "HighLatency", "instance": "web-1", "severity": "critical"},
            "annotations": {"summary": "p95 over 2 s"},
            "startsAt": rfc3339(now - Duration::from_secs(60)),
            "endsAt": rfc3339(ends),
        }]);
        let answer = reqwest::Client::new()
            .post(format!("http://127.0.0.1:{}/api/v2/alerts", self.port))
            .json(&alert)
            .send()
            .await
            .unwrap();
        assert!(answer.status().is_success(), "alertmanager takes the alert");
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn a_real_alertmanagers_alert_fires_repeats_without_writing_and_resolves() {
    let dir = TempDir::new().unwrap();
    let server = server_with_hooks(
        dir.path(),
        "[[hook]]\nname = \"alerts\"\ntype = \"alertmanager\"\nsecret = \"${HOOK_SECRET}\"\n",
    );
    let alertmanager =
        Alertmanager::start(&format!("http://{}/api/v1/hooks/alerts", server.addr)).await;
    alertmanager.alert(true).await;

    let (offset, lights) = eventually(20, "a light for the firing alert", || async {
        let (offset, state) = topic(&server, "status:alerts").await?;
        (state.as_object()?.len() == 1).then_some((offset, state))
    })
    .await;
    let light = lights.as_object().unwrap().values().next().unwrap().clone();
    assert_eq!(light["name"], "HighLatency on web-1");
    assert_eq!(light["state"], "critical");
    let (_, feed) = topic(&server, "feed:alerts").await.unwrap();
    assert_eq!(
        feed_texts(&feed),
        ["HighLatency on web-1 firing: p95 over 2 s"]
    );

    // Alertmanager sends the group again (repeat_interval, 2 s): verified, and no write.
    eventually(20, "a repeated notification", || async {
        let firing = deliveries(&server, "alerts")
            .await
            .into_iter()
            .filter(|d| d["event"] == "firing" && d["status"] == 200)
            .count();
        (firing >= 2).then_some(())
    })
    .await;
    assert_eq!(
        topic(&server, "status:alerts").await.unwrap().0,
        offset,
        "a repeat writes no event"
    );

    alertmanager.alert(false).await;
    eventually(20, "the resolved alert's light deleted", || async {
        let (_, state) = topic(&server, "status:alerts").await?;
        state.as_object()?.is_empty().then_some(())
    })
    .await;
    let (_, feed) = topic(&server, "feed:alerts").await.unwrap();
    assert_eq!(
        feed_texts(&feed),
        [
            "HighLatency on web-1 firing: p95 over 2 s",
            "HighLatency on web-1 resolved: p95 over 2 s"
        ]
    );
}

fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    let bytes = mac.finalize().into_bytes();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

async fn github(
    server: &Server,
    event: &str,
    delivery: &str,
    body: &[u8],
    secret: &str,
) -> (u16, Value) {
    let answer = reqwest::Client::new()
        .post(format!("http://{}/api/v1/hooks/repo", server.addr))
        .header("content-type", "application/json")
        .header("x-github-event", event)
        .header("x-github-delivery", delivery)
        .header("x-hub-signature-256", signature(secret, body))
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    let status = answer.status().as_u16();
    (status, answer.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn github_deliveries_are_verified_applied_once_and_logged() {
    let dir = TempDir::new().unwrap();
    let server = server_with_hooks(
        dir.path(),
        "[[hook]]\nname = \"repo\"\ntype = \"github\"\nsecret = \"${HOOK_SECRET}\"\n",
    );
    let push = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/github/push.json"
    ))
    .unwrap();

    let (status, answer) = github(
        &server,
        "ping",
        "d0",
        br#"{"zen": "Design for failure.", "hook_id": 1}"#,
        SECRET,
    )
    .await;
    assert_eq!(
        (status, answer["ignored"].as_str()),
        (200, Some("ping: Design for failure."))
    );

    let (status, answer) = github(&server, "push", "d1", &push, "not the secret").await;
    assert_eq!(status, 401, "{answer}");
    assert_eq!(answer["code"], "invalid_signature");
    assert!(
        topic(&server, "feed:github").await.is_none(),
        "a refused delivery writes nothing"
    );
    let log = deliveries(&server, "repo").await;
    assert_eq!(log[0]["status"], 401);
    assert_eq!(log[0]["verified"], false);
    assert!(log[0]["error"]
        .as_str()
        .unwrap()
        .contains("X-Hub-Signature-256"));

    let (status, answer) = github(&server, "push", "d2", &push, SECRET).await;
    assert_eq!(status, 200, "{answer}");
    let (offset, feed) = topic(&server, "feed:github").await.unwrap();
    assert_eq!(
        feed_texts(&feed),
        ["ana pushed 3 commits to main of pulseboard"]
    );
    // GitHub's "Redeliver": the same delivery id.
    let (status, answer) = github(&server, "push", "d2", &push, SECRET).await;
    assert_eq!(
        (status, answer["replayed"].as_bool()),
        (200, Some(true)),
        "{answer}"
    );
    assert_eq!(
        topic(&server, "feed:github").await.unwrap().0,
        offset,
        "a redelivery applies once"
    );

    // A dry run answers what it would write, and writes nothing.
    let dry = server
        .http()
        .post(format!(
            "http://{}/api/v1/hooks/repo?dry_run=true",
            server.addr
        ))
        .header("x-github-event", "push")
        .header("content-type", "application/json")
        .body(push.clone())
        .send()
        .await
        .unwrap();
    let dry: Value = dry.json().await.unwrap();
    assert_eq!(dry["dry_run"], true, "{dry}");
    assert_eq!(dry["writes"][0]["topic"], "feed:github");
    assert_eq!(topic(&server, "feed:github").await.unwrap().0, offset);

    // Bad input: each refused with its reason, logged, nothing written.
    let form = reqwest::Client::new()
        .post(format!("http://{}/api/v1/hooks/repo", server.addr))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-github-event", "push")
        .header("x-hub-signature-256", signature(SECRET, b"payload=%7B%7D"))
        .body("payload=%7B%7D")
        .send()
        .await
        .unwrap();
    assert_eq!(form.status().as_u16(), 415);
    let (status, answer) = github(&server, "push", "d3", b"{not json", SECRET).await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (400, Some("invalid_json"))
    );
    let (status, answer) = github(&server, "push", "d4", br#"{"commits": []}"#, SECRET).await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (422, Some("invalid_payload")),
        "{answer}"
    );
    assert!(answer["message"].as_str().unwrap().contains("/ref"));
    // Refused on its declared length before it is read: the client sees the 413, or (if it
    // was still sending when the server closed) a broken pipe.
    let huge = vec![b' '; 10 * 1024 * 1024];
    let sent = reqwest::Client::new()
        .post(format!("http://{}/api/v1/hooks/repo", server.addr))
        .header("content-type", "application/json")
        .header("x-github-event", "push")
        .header("x-hub-signature-256", signature(SECRET, &huge))
        .body(huge)
        .send()
        .await;
    if let Ok(answer) = sent {
        assert_eq!(answer.status().as_u16(), 413);
    }
    assert_eq!(
        topic(&server, "feed:github").await.unwrap().0,
        offset,
        "no bad delivery wrote anything"
    );
    let log = deliveries(&server, "repo").await;
    let statuses: Vec<u64> = log
        .iter()
        .take(4)
        .map(|d| d["status"].as_u64().unwrap())
        .collect();
    assert_eq!(
        statuses,
        [413, 422, 400, 415],
        "every bad delivery is in the log, newest first"
    );
}

#[tokio::test]
async fn a_generic_hook_maps_any_json_with_jq() {
    let dir = TempDir::new().unwrap();
    let server = server_with_hooks(
        dir.path(),
        "[[hook]]\nname = \"builds\"\ntype = \"generic\"\nsecret = \"${HOOK_SECRET}\"\ntopic = \"status:builds\"\nselect = \"{(.project): {name: .project, state: (if .ok then \\\"ok\\\" else \\\"critical\\\" end)}}\"\n",
    );
    let post = |body: Value, token: &str| {
        reqwest::Client::new()
            .post(format!("http://{}/api/v1/hooks/builds", server.addr))
            .bearer_auth(token)
            .json(&body)
            .send()
    };
    let answer = post(json!({"project": "api", "ok": false}), SECRET)
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 200);
    let (_, state) = topic(&server, "status:builds").await.unwrap();
    assert_eq!(state, json!({"api": {"name": "api", "state": "critical"}}));
    let refused = post(
        json!({"project": "api", "ok": true}),
        "a-wrong-secret-entirely",
    )
    .await
    .unwrap();
    assert_eq!(refused.status().as_u16(), 401);
    let failing = post(json!([1, 2]), SECRET).await.unwrap();
    assert_eq!(failing.status().as_u16(), 422);
    let (_, state) = topic(&server, "status:builds").await.unwrap();
    assert_eq!(
        state["api"]["state"], "critical",
        "refused deliveries wrote nothing"
    );
}

/// The Python interpreter with InfluxDB's own client library (`scripts/setup --tests` makes
/// it: a venv with `influxdb-client` from PyPI).
fn python() -> String {
    std::env::var("PULSEBOARD_PYTHON").unwrap_or_else(|_| {
        format!(
            "{}/.cache/pulseboard/venv/bin/python",
            std::env::var("HOME").unwrap()
        )
    })
}

#[tokio::test]
async fn line_protocol_from_influxdbs_own_client_lands_in_its_topics() {
    let server = Server::start(&[]);
    let (_, key) = server.create_key("telegraf", &["publish:telegraf:*"]).await;
    let script = r#"
import sys
from influxdb_client import InfluxDBClient, Point
from influxdb_client.client.write_api import SYNCHRONOUS
url, token = sys.argv[1], sys.argv[2]
for gzip in (False, True):
    with InfluxDBClient(url=url, token=token, org="ops", enable_gzip=gzip) as client:
        api = client.write_api(write_options=SYNCHRONOUS)
        api.write(bucket="telegraf", record=[
            Point("cpu").tag("host", "web-1").tag("cpu", "cpu-total").field("usage_idle", 97.5 if not gzip else 96.0),
            "mem,host=web-1 used=1024i,available_percent=42.5",
        ])
"#;
    let out = Command::new(python())
        .arg("-c")
        .arg(script)
        .arg(format!("http://{}", server.addr))
        .arg(&key)
        .output()
        .expect("the venv's python runs (scripts/setup --tests makes it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let (_, cpu) = topic(&server, "telegraf:cpu")
        .await
        .expect("the cpu measurement's topic");
    let points = cpu["cpu-total/web-1/usage_idle"]["points"]
        .as_array()
        .unwrap();
    let values: Vec<f64> = points.iter().map(|p| p[1].as_f64().unwrap()).collect();
    assert_eq!(
        values,
        [97.5, 96.0],
        "a point per write, the gzipped one too"
    );
    let (_, mem) = topic(&server, "telegraf:mem").await.unwrap();
    assert_eq!(mem["web-1/used"]["points"][0][1], json!(1024));
    assert_eq!(mem["web-1/available_percent"]["points"][0][1], json!(42.5));

    let write = |body: &'static str, token: Option<&str>, bucket: &str| {
        let mut request = reqwest::Client::new()
            .post(format!(
                "http://{}/api/v2/write?org=ops&bucket={bucket}",
                server.addr
            ))
            .body(body);
        if let Some(token) = token {
            request = request.header("authorization", format!("Token {token}"));
        }
        request.send()
    };
    let bad = write(
        "cpu usage=1\ncpu,host=web-2 usage=soon\n",
        Some(&key),
        "telegraf",
    )
    .await
    .unwrap();
    assert_eq!(bad.status().as_u16(), 400);
    let said: Value = bad.json().await.unwrap();
    assert!(
        said["message"].as_str().unwrap().starts_with("line 2:"),
        "{said}"
    );
    assert_eq!(
        write("cpu usage=1", None, "telegraf")
            .await
            .unwrap()
            .status()
            .as_u16(),
        401
    );
    assert_eq!(
        write("cpu usage=1", Some(&key), "other")
            .await
            .unwrap()
            .status()
            .as_u16(),
        403,
        "the key's scope is telegraf:*"
    );
    let (_, cpu_after) = topic(&server, "telegraf:cpu").await.unwrap();
    assert_eq!(cpu_after, cpu, "refused writes wrote nothing");
}

#[tokio::test]
async fn gitlab_deliveries_carry_the_token_and_a_retry_applies_once() {
    let dir = TempDir::new().unwrap();
    let server = server_with_hooks(
        dir.path(),
        "[[hook]]\nname = \"gl\"\ntype = \"gitlab\"\nsecret = \"${HOOK_SECRET}\"\n",
    );
    let pipeline = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/gitlab/pipeline.json"
    ))
    .unwrap();
    let deliver = |token: &str, key: &str| {
        reqwest::Client::new()
            .post(format!("http://{}/api/v1/hooks/gl", server.addr))
            .header("content-type", "application/json")
            .header("x-gitlab-event", "Pipeline Hook")
            .header("x-gitlab-token", token)
            .header("idempotency-key", key)
            .body(pipeline.clone())
            .send()
    };
    assert_eq!(
        deliver("not-the-token-at-all", "k1")
            .await
            .unwrap()
            .status()
            .as_u16(),
        401
    );
    assert!(topic(&server, "status:gitlab").await.is_none());
    assert_eq!(deliver(SECRET, "k2").await.unwrap().status().as_u16(), 200);
    let (_, lights) = topic(&server, "status:gitlab").await.unwrap();
    assert_eq!(lights["pipeline · main"]["state"], "critical");
    let (offset, feed) = topic(&server, "feed:gitlab").await.unwrap();
    assert_eq!(
        feed_texts(&feed),
        ["pipeline on main of pulseboard: failed"]
    );
    let retry: Value = deliver(SECRET, "k2").await.unwrap().json().await.unwrap();
    assert_eq!(retry["replayed"], true, "{retry}");
    assert_eq!(topic(&server, "feed:gitlab").await.unwrap().0, offset);
}

#[tokio::test]
async fn a_flood_of_deliveries_is_held_to_the_hooks_rate() {
    let dir = TempDir::new().unwrap();
    let server = server_with_hooks(
        dir.path(),
        "[[hook]]\nname = \"builds\"\ntype = \"generic\"\nsecret = \"${HOOK_SECRET}\"\nper_second = 2\ntopic = \"status:builds\"\nselect = \"{(.project): .state}\"\n",
    );
    let client = reqwest::Client::new();
    let mut statuses = Vec::new();
    for n in 0..12 {
        let answer = client
            .post(format!("http://{}/api/v1/hooks/builds", server.addr))
            .bearer_auth(SECRET)
            .json(&json!({"project": format!("p{n}"), "state": "ok"}))
            .send()
            .await
            .unwrap();
        statuses.push(answer.status().as_u16());
    }
    let taken = statuses.iter().filter(|s| **s == 200).count();
    let limited = statuses.iter().filter(|s| **s == 429).count();
    assert!(
        (4..=5).contains(&taken),
        "a burst of twice the rate is taken: {statuses:?}"
    );
    assert_eq!(taken + limited, 12, "{statuses:?}");
    let (_, state) = topic(&server, "status:builds").await.unwrap();
    assert_eq!(
        state.as_object().unwrap().len(),
        taken,
        "only what was taken was written"
    );
}
