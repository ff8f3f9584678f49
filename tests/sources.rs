//! Pull sources against real parts: Debian's `prometheus` scraping the server under test
//! (so the topics hold Pulseboard's own figures as Prometheus sees them), and a real HTTP
//! server answering JSON, hanging, failing, answering HTML or 50 MB. Topics are read back
//! through the HTTP API and followed over a real WebSocket, as integrators do.

mod support;

use axum::body::Body;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use pulseboard::protocol::ServerFrame;
use serde_json::{json, Value};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::{
    eventually, next, resident_kib, sample, subscribe, topic, Prometheus, Redis, Server,
};
use tempfile::TempDir;

/// Writes `text` as the sources directory's `name`.
fn write_source(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

/// A server that reads its sources from `dir`.
fn server_with_sources(dir: &Path, env: &[(&str, &str)]) -> Server {
    let dir = dir.to_str().unwrap().to_owned();
    let mut env: Vec<(&str, &str)> = env.to_vec();
    env.push(("PULSEBOARD_SOURCES", &dir));
    Server::start(&env)
}

/// Reads frames until `pick` takes one, for up to `seconds` in all (a source backing off
/// waits several periods between runs).
async fn frame_until<T>(
    socket: &mut support::Socket,
    seconds: u64,
    what: &str,
    mut pick: impl FnMut(ServerFrame) -> Option<T>,
) -> T {
    use futures_util::StreamExt;
    let reading = async {
        loop {
            let message = socket.next().await.expect("the socket is open").unwrap();
            if let tokio_tungstenite::tungstenite::Message::Text(text) = message {
                if let Some(found) = pick(serde_json::from_str(text.as_str()).unwrap()) {
                    return found;
                }
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(seconds), reading)
        .await
        .unwrap_or_else(|_| panic!("{what} within {seconds} s"))
}

/// The `fresh` frame of `name`, within `seconds`.
async fn fresh_again(socket: &mut support::Socket, name: &str, seconds: u64) {
    frame_until(
        socket,
        seconds,
        &format!("{name} fresh again"),
        |frame| match frame {
            ServerFrame::Fresh { topic } => (topic.as_deref() == Some(name)).then_some(()),
            _ => None,
        },
    )
    .await
}

/// How many runs of `source` ended with `outcome`, by `/metrics`.
async fn runs(server: &Server, source: &str, outcome: &str) -> f64 {
    let metrics = server.metrics().await;
    let name = format!("pulseboard_source_runs_total{{source=\"{source}\",outcome=\"{outcome}\"}}");
    if metrics.contains(&format!("{name} ")) {
        sample(&metrics, &name)
    } else {
        0.0
    }
}

fn prometheus_source(prometheus: &Prometheus, name: &str, extra: &str) -> String {
    format!(
        "[[source]]\nname = \"{name}\"\ntype = \"prometheus\"\nurl = \"{}\"\nevery = \"1s\"\n{extra}\n",
        prometheus.url()
    )
}

#[tokio::test]
async fn an_instant_query_fills_a_status_grid_and_a_number_and_follows_its_series() {
    let sources = TempDir::new().unwrap();
    let mut prometheus = Prometheus::on_free_port();
    let up = prometheus_source(
        &prometheus,
        "hosts",
        "query = \"up\"\nentity = \"{instance}\"\ntopic = \"status:hosts\"",
    );
    let count = prometheus_source(
        &prometheus,
        "targets",
        "query = \"count(up == 1)\"\nentity = \"up\"\ntopic = \"metric:targets\"",
    );
    write_source(sources.path(), "prometheus.toml", &format!("{up}\n{count}"));
    let server = server_with_sources(sources.path(), &[]);
    // A second target nobody answers on: a host that is down.
    let down = format!("127.0.0.1:{}", support::free_port());
    prometheus.scrape(&[&server.addr, &down]);
    prometheus.start().await;

    let hosts = eventually(20, "both hosts in the status grid", || async {
        let (_, state) = topic(&server, "status:hosts").await?;
        (state.as_object()?.len() == 2).then_some(state)
    })
    .await;
    assert_eq!(hosts[&server.addr]["value"], json!(1), "{hosts}");
    assert_eq!(hosts[&server.addr]["job"], json!("pulseboard"));
    assert_eq!(hosts[&down]["value"], json!(0), "the host that is down");
    // The second source runs on its own schedule: it may write a moment after the first.
    let targets = eventually(20, "the count of hosts up", || async {
        let (_, state) = topic(&server, "metric:targets").await?;
        state.get("up").cloned()
    })
    .await;
    assert_eq!(targets["value"], json!(1), "{targets}");

    // The host that was down is taken out of Prometheus: its series goes, and so does its
    // light.
    prometheus.scrape(&[&server.addr]);
    prometheus.reload().await;
    eventually(20, "the removed host's light deleted", || async {
        let (_, state) = topic(&server, "status:hosts").await?;
        let state = state.as_object()?;
        (state.len() == 1 && state.contains_key(&server.addr)).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_range_query_fills_a_sparkline() {
    let sources = TempDir::new().unwrap();
    let mut prometheus = Prometheus::on_free_port();
    let source = prometheus_source(
        &prometheus,
        "events",
        "query = \"pulseboard_events_published_total\"\nrange = \"1m\"\nstep = \"1s\"\nentity = \"events\"\ntopic = \"metric:events\"",
    );
    write_source(sources.path(), "range.toml", &source);
    let server = server_with_sources(sources.path(), &[]);
    prometheus.scrape(&[&server.addr]);
    prometheus.start().await;
    let points = eventually(30, "a series of several points", || async {
        let (_, state) = topic(&server, "metric:events").await?;
        let points = state["events"]["points"].as_array()?.clone();
        (points.len() >= 3).then_some(points)
    })
    .await;
    for point in &points {
        let [at, value] = point.as_array().unwrap().as_slice() else {
            panic!("a point is [time_ms, value]: {point}");
        };
        assert!(at.as_u64().unwrap() > 1_600_000_000_000, "{point}");
        assert!(value.is_number(), "{point}");
    }
    let times: Vec<u64> = points.iter().map(|p| p[0].as_u64().unwrap()).collect();
    assert!(
        times.windows(2).all(|w| w[1] - w[0] == 1000),
        "a point a step: {times:?}"
    );
}

#[tokio::test]
async fn an_unchanged_answer_writes_nothing_and_a_dead_prometheus_marks_the_topic() {
    let sources = TempDir::new().unwrap();
    let mut prometheus = Prometheus::on_free_port();
    // `up` of the server itself: 1 on every poll.
    let source = prometheus_source(
        &prometheus,
        "self",
        "query = \"up\"\nentity = \"{job}\"\ntopic = \"status:self\"",
    );
    write_source(sources.path(), "self.toml", &source);
    let server = server_with_sources(sources.path(), &[]);
    prometheus.scrape(&[&server.addr]);
    prometheus.start().await;
    let offset = eventually(20, "the first write", || async {
        let (offset, state) = topic(&server, "status:self").await?;
        (state["pulseboard"]["value"] == json!(1)).then_some(offset)
    })
    .await;
    let before = runs(&server, "self", "unchanged").await;
    eventually(20, "five more polls", || async {
        (runs(&server, "self", "unchanged").await >= before + 5.0).then_some(())
    })
    .await;
    assert_eq!(
        topic(&server, "status:self").await.unwrap().0,
        offset,
        "five polls with the same answer move no offset"
    );

    let mut socket = server.connect().await;
    subscribe(&mut socket, "status:self", None).await;
    assert!(matches!(next(&mut socket).await, ServerFrame::Snapshot(_)));
    prometheus.kill();
    // Marked within two periods (1 s each), however the poll falls.
    let reason = frame_until(&mut socket, 4, "marked stale", |frame| match frame {
        ServerFrame::Stale { topic, reason } => {
            assert_eq!(topic.as_deref(), Some("status:self"));
            Some(reason)
        }
        _ => None,
    })
    .await;
    assert!(
        reason.starts_with("prometheus cannot be reached"),
        "{reason}"
    );
    let (offset_now, state) = topic(&server, "status:self").await.unwrap();
    assert_eq!(offset_now, offset, "a failing source writes nothing");
    assert_eq!(
        state["pulseboard"]["value"],
        json!(1),
        "and leaves what was there"
    );
    // A screen that arrives now is told at once.
    let mut late = server.connect().await;
    subscribe(&mut late, "status:self", None).await;
    assert!(matches!(next(&mut late).await, ServerFrame::Snapshot(_)));
    assert!(matches!(
        next(&mut late).await,
        ServerFrame::Stale { topic: Some(_), .. }
    ));

    prometheus.start().await;
    // Fresh again once prometheus is back, with no restart.
    fresh_again(&mut socket, "status:self", 30).await;
}

/// What the JSON server answers next.
#[derive(Clone)]
enum Answer {
    Json(Value),
    Status(u16),
    Html,
    /// Never answers.
    Hang,
    /// 50 MB, streamed with no length given.
    Huge,
}

/// A real HTTP server on a free loopback port that answers what it is told to.
async fn json_server() -> (String, Arc<Mutex<Answer>>) {
    let answer = Arc::new(Mutex::new(Answer::Json(json!({}))));
    let shared = answer.clone();
    let app = axum::Router::new().route(
        "/data",
        get(move || {
            let answer = shared.lock().unwrap().clone();
            async move {
                match answer {
                    Answer::Json(value) => axum::Json(value).into_response(),
                    Answer::Status(code) => (
                        StatusCode::from_u16(code).unwrap(),
                        axum::Json(json!({"error": "the database is down"})),
                    )
                        .into_response(),
                    Answer::Html => (
                        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                        "<!doctype html><title>Sign in</title>",
                    )
                        .into_response(),
                    Answer::Hang => {
                        std::future::pending::<()>().await;
                        unreachable!()
                    }
                    Answer::Huge => {
                        let chunk = bytes_of_json(1 << 20);
                        let chunks = (0..50).map(move |_| Ok::<_, std::io::Error>(chunk.clone()));
                        Response::new(Body::from_stream(futures_util::stream::iter(chunks)))
                    }
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/data", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, answer)
}

fn bytes_of_json(n: usize) -> axum::body::Bytes {
    let mut text = String::with_capacity(n);
    text.push('[');
    while text.len() < n - 2 {
        text.push_str("1,");
    }
    text.push_str("1]");
    text.into()
}

#[tokio::test]
async fn a_json_source_replaces_what_is_gone_and_every_bad_answer_is_only_a_reason() {
    let (url, answer) = json_server().await;
    *answer.lock().unwrap() = Answer::Json(json!({"teams": [
        {"id": "aurora", "score": 3}, {"id": "borealis", "score": 2}, {"id": "cirrus", "score": 1},
    ]}));
    let sources = TempDir::new().unwrap();
    write_source(
        sources.path(),
        "json.toml",
        &format!(
            r#"[[source]]
name = "teams"
type = "http"
url = "{url}"
every = "1s"
timeout = "2s"
select = "[.teams[] | {{key: .id, value: {{score: .score}}}}] | from_entries"
replace = true
topic = "board:teams"
"#
        ),
    );
    let server = server_with_sources(sources.path(), &[]);
    eventually(10, "three teams", || async {
        let (_, state) = topic(&server, "board:teams").await?;
        (state.as_object()?.len() == 3).then_some(())
    })
    .await;
    *answer.lock().unwrap() = Answer::Json(json!({"teams": [
        {"id": "aurora", "score": 5}, {"id": "borealis", "score": 2},
    ]}));
    let state = eventually(10, "the team that is gone deleted", || async {
        let (_, state) = topic(&server, "board:teams").await?;
        (state.as_object()?.len() == 2).then_some(state)
    })
    .await;
    assert_eq!(
        state,
        json!({"aurora": {"score": 5}, "borealis": {"score": 2}})
    );
    let (offset, _) = topic(&server, "board:teams").await.unwrap();
    let memory_before = resident_kib(server.child.id()).unwrap();

    let mut socket = server.connect().await;
    subscribe(&mut socket, "board:teams", None).await;
    assert!(matches!(next(&mut socket).await, ServerFrame::Snapshot(_)));
    let bad = [
        (Answer::Status(500), "answered 500: the database is down"),
        (Answer::Html, "an HTML page, not JSON"),
        (Answer::Hang, "no answer within 2s"),
        (Answer::Huge, "answered more than 8 MiB"),
        (Answer::Json(json!({"teams": 3})), "select failed"),
    ];
    for (bad, expected) in bad {
        *answer.lock().unwrap() = bad;
        let what = format!("a stale reason with {expected:?}");
        frame_until(&mut socket, 40, &what, |frame| match frame {
            ServerFrame::Stale { reason, .. } => reason.contains(expected).then_some(()),
            ServerFrame::Event(event) => panic!("a bad answer wrote {event:?}"),
            _ => None,
        })
        .await;
    }
    let (offset_now, state_now) = topic(&server, "board:teams").await.unwrap();
    assert_eq!(offset_now, offset, "no bad answer wrote anything");
    assert_eq!(state_now, state);
    let grown = resident_kib(server.child.id())
        .unwrap()
        .saturating_sub(memory_before);
    assert!(
        grown < 40 * 1024,
        "a 50 MB answer is not read whole: grew {grown} KiB"
    );
    assert!(runs(&server, "teams", "failed").await >= 5.0);

    *answer.lock().unwrap() = Answer::Json(json!({"teams": [{"id": "aurora", "score": 5}]}));
    fresh_again(&mut socket, "board:teams", 30).await;
    let admin = server
        .http()
        .get(format!("http://{}/admin", server.addr))
        .send()
        .await
        .unwrap();
    let page = admin.text().await.unwrap();
    assert!(
        page.contains("data-source=\"teams\""),
        "/admin lists the source"
    );
}

#[tokio::test]
async fn a_broken_file_keeps_its_last_good_version_running() {
    let (url, answer) = json_server().await;
    *answer.lock().unwrap() = Answer::Json(json!({"n": 1}));
    let sources = TempDir::new().unwrap();
    let good = format!(
        "[[source]]\nname = \"n\"\ntype = \"http\"\nurl = \"{url}\"\nevery = \"1s\"\nselect = \".n\"\nentity = \"n\"\ntopic = \"metric:n\"\n"
    );
    write_source(sources.path(), "n.toml", &good);
    let server = server_with_sources(sources.path(), &[]);
    eventually(10, "the first value", || async {
        let (_, state) = topic(&server, "metric:n").await?;
        (state["n"] == json!(1)).then_some(())
    })
    .await;
    write_source(
        sources.path(),
        "n.toml",
        &good.replace("\".n\"", "\".n | nosuch\""),
    );
    server
        .logged(&[
            "n.toml:6:16",
            "`select` does not compile",
            "last good version",
        ])
        .await;
    *answer.lock().unwrap() = Answer::Json(json!({"n": 2}));
    eventually(10, "the last good version still running", || async {
        let (_, state) = topic(&server, "metric:n").await?;
        (state["n"] == json!(2)).then_some(())
    })
    .await;
}

#[tokio::test]
async fn several_instances_run_a_source_once_and_another_takes_over_when_it_dies() {
    let redis = Redis::start();
    let (url, answer) = json_server().await;
    *answer.lock().unwrap() = Answer::Json(json!({"n": 1}));
    let sources = TempDir::new().unwrap();
    write_source(
        sources.path(),
        "n.toml",
        &format!("[[source]]\nname = \"n\"\ntype = \"http\"\nurl = \"{url}\"\nevery = \"1s\"\nselect = \".n\"\nentity = \"n\"\ntopic = \"metric:n\"\n"),
    );
    let env = [
        ("PULSEBOARD_REDIS_URL", redis.url()),
        ("PULSEBOARD_SOURCE_LEASE", "3".into()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let first = server_with_sources(sources.path(), &env);
    let second = server_with_sources(sources.path(), &env);
    eventually(10, "some runs", || async {
        let total = runs(&first, "n", "unchanged").await + runs(&second, "n", "unchanged").await;
        (total >= 5.0).then_some(())
    })
    .await;
    let (a, b) = (
        runs(&first, "n", "unchanged").await + runs(&first, "n", "changed").await,
        runs(&second, "n", "unchanged").await + runs(&second, "n", "changed").await,
    );
    assert!(
        a == 0.0 || b == 0.0,
        "one instance runs it: {a} and {b} runs"
    );
    let (holder, standby) = if a > 0.0 {
        (first, second)
    } else {
        (second, first)
    };
    holder.kill();
    // The lease lasts 3 s from its last renewal; the standby asks every 0.75 s.
    let took_over = tokio::time::Instant::now();
    eventually(6, "the other instance runs it", || async {
        (runs(&standby, "n", "unchanged").await > 0.0).then_some(())
    })
    .await;
    assert!(
        took_over.elapsed() < Duration::from_secs(5),
        "{:?}",
        took_over.elapsed()
    );
    *answer.lock().unwrap() = Answer::Json(json!({"n": 2}));
    eventually(10, "its writes", || async {
        let (_, state) = topic(&standby, "metric:n").await?;
        (state["n"] == json!(2)).then_some(())
    })
    .await;
}
