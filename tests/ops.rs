//! Every op's semantics over HTTP against the real server and its SQLite file, plus the
//! refusals for bad input: each with its documented status and body, nothing half-applied,
//! and the server still serving afterwards.

#![cfg(feature = "ssr")]

mod support;

use pulseboard::protocol::{EventKind, ServerFrame};
use serde_json::{json, Value};
use std::time::Duration;
use support::*;

async fn ops(server: &Server, topic: &str, ops: Value) -> Value {
    let response = server.publish(topic, json!({ "ops": ops })).await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    response.json().await.unwrap()
}

async fn state(server: &Server, topic: &str) -> Value {
    server.get(&format!("/api/v1/topics/{topic}")).await.1["state"].clone()
}

async fn refused(server: &Server, topic: &str, body: &str) -> (u16, Value) {
    // A client of its own: the server closes a connection whose body it refused unread, and
    // a pooled connection shared with later requests would fail them.
    let response = client_with_key(&server.key)
        .post(format!("http://{}/api/v1/topics/{topic}", server.addr))
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.expect("a JSON error body"))
}

#[tokio::test]
async fn set_patch_incr_delete_produce_their_events() {
    let server = Server::start(&[]);
    let mut socket = server.connect().await;
    subscribe(&mut socket, "t:ops", None).await;
    next(&mut socket).await;
    ops(
        &server,
        "t:ops",
        json!([
            {"op": "set", "entity_id": "a", "payload": {"name": "A", "n": 1}},
            {"op": "patch", "entity_id": "a", "patch": {"n": 2, "name": null, "tag": "x"}},
            {"op": "incr", "entity_id": "a", "field": "n", "by": 5},
            {"op": "incr", "entity_id": "count", "by": 2},
            {"op": "delete", "entity_id": "count"},
            {"op": "delete", "entity_id": "never-existed"}
        ]),
    )
    .await;
    let mut kinds = Vec::new();
    for _ in 0..5 {
        let ServerFrame::Event(event) = next(&mut socket).await else {
            panic!("expected an event")
        };
        kinds.push(event.event);
    }
    use EventKind::*;
    assert_eq!(kinds, [Added, Updated, Updated, Added, Deleted]);
    quiet(&mut socket).await;
    assert_eq!(
        state(&server, "t:ops").await,
        json!({"a": {"n": 7, "tag": "x"}})
    );
}

#[tokio::test]
async fn append_keeps_a_series_bounded_by_count_and_by_age() {
    let server = Server::start(&[]);
    for value in 1..=5 {
        ops(
            &server,
            "t:series",
            json!([{"op": "append", "entity_id": "cpu", "value": value, "max_points": 3}]),
        )
        .await;
    }
    let points = state(&server, "t:series").await["cpu"]["points"].clone();
    let values: Vec<i64> = points
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p[1].as_i64().unwrap())
        .collect();
    assert_eq!(values, [3, 4, 5]);

    let aged = json!([{"op": "append", "entity_id": "mem", "value": 1, "max_age": 1}]);
    ops(&server, "t:series", aged.clone()).await;
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    ops(&server, "t:series", aged).await;
    let points = state(&server, "t:series").await["mem"]["points"].clone();
    assert_eq!(
        points.as_array().unwrap().len(),
        1,
        "the older point aged out"
    );
}

#[tokio::test]
async fn push_trims_a_feed_and_clear_empties_a_topic() {
    let server = Server::start(&[]);
    for n in 0..6 {
        ops(
            &server,
            "feed:t",
            json!([{"op": "push", "payload": {"n": n}, "max": 4}]),
        )
        .await;
    }
    let feed = state(&server, "feed:t").await;
    let kept: Vec<i64> = feed
        .as_object()
        .unwrap()
        .values()
        .map(|item| item["n"].as_i64().unwrap())
        .collect();
    assert_eq!(kept, [2, 3, 4, 5], "the newest four, oldest first by id");
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    for item in feed.as_object().unwrap().values() {
        let at = item["at"]
            .as_u64()
            .expect("each item is stamped with its arrival");
        assert!(
            now_ms.abs_diff(at) < 60_000,
            "{at} is not about now ({now_ms})"
        );
    }

    let cleared = ops(&server, "feed:t", json!([{"op": "clear"}])).await;
    assert_eq!(
        cleared["offsets"].as_array().unwrap().len(),
        4,
        "one DELETED per item"
    );
    assert_eq!(state(&server, "feed:t").await, json!({}));
}

#[tokio::test]
async fn an_entity_with_a_ttl_expires_by_itself() {
    let server = Server::start(&[]);
    let mut socket = server.connect().await;
    subscribe(&mut socket, "t:ttl", None).await;
    next(&mut socket).await;
    ops(
        &server,
        "t:ttl",
        json!([
            {"op": "set", "entity_id": "brief", "payload": 1, "ttl": 1},
            {"op": "set", "entity_id": "lasting", "payload": 2}
        ]),
    )
    .await;
    next(&mut socket).await;
    next(&mut socket).await;
    let ServerFrame::Event(expired) = next(&mut socket).await else {
        panic!("expected the expiry event")
    };
    assert_eq!(
        (expired.event, expired.entity_id.as_str()),
        (EventKind::Deleted, "brief")
    );
    assert_eq!(expired.trace_id.as_deref(), Some("ttl"));
    assert_eq!(state(&server, "t:ttl").await, json!({"lasting": 2}));
}

#[tokio::test]
async fn concurrent_increments_sum_exactly() {
    let server = Server::start(&[]);
    let url = format!("http://{}/api/v1/topics/metric:race", server.addr);
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (url, http) = (url.clone(), server.http());
            tokio::spawn(async move {
                for _ in 0..50 {
                    let body = json!({"ops": [{"op": "incr", "entity_id": "hits", "by": 1}]});
                    let response = http.post(&url).json(&body).send().await.unwrap();
                    assert_eq!(response.status(), 200);
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let (_, snapshot) = server.get("/api/v1/topics/metric:race").await;
    assert_eq!(snapshot["state"]["hits"], json!(400));
    assert_eq!(snapshot["offset"], json!(400));
}

#[tokio::test]
async fn bad_input_gets_its_documented_status_and_changes_nothing() {
    let server = Server::start(&[]);
    ops(
        &server,
        "t:bad",
        json!([{"op": "set", "entity_id": "n", "payload": 1}]),
    )
    .await;

    let cases: [(&str, &str, u16, &str); 8] = [
        ("t:bad", "{not json", 400, "invalid_json"),
        (
            "t:bad",
            r#"{"ops": [{"op": "explode"}]}"#,
            422,
            "invalid_ops",
        ),
        (
            "t:bad",
            r#"{"ops": [{"op": "incr", "entity_id": "n", "by": "1"}]}"#,
            422,
            "invalid_ops",
        ),
        (
            "t:bad",
            r#"{"ops": [{"op": "set", "entity_id": "n"}]}"#,
            422,
            "invalid_ops",
        ),
        (
            "t:bad",
            r#"{"ops": [{"op": "set", "entity_id": "n", "payload": 1, "typo": 1}]}"#,
            422,
            "invalid_ops",
        ),
        (
            "t:bad",
            r#"{"ops": [{"op": "set", "entity_id": "", "payload": 1}]}"#,
            422,
            "op_refused",
        ),
        ("bad%20topic", r#"{"ops": []}"#, 400, "invalid_topic"),
        (
            "t:bad",
            r#"{"ops": [{"op": "push", "payload": 1, "max": 0}]}"#,
            422,
            "op_refused",
        ),
    ];
    for (topic, body, status, code) in cases {
        let (got, error) = refused(&server, topic, body).await;
        assert_eq!(
            (got, error["code"].as_str()),
            (status, Some(code)),
            "{body}: {error}"
        );
        assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    // A body over the limit is refused on its declared size, before it is sent; a client
    // that is still writing it may see the connection close first (reqwest reports a broken
    // pipe then, not the answer). `integrators.rs` reads that answer off a raw socket.

    let (_, snapshot) = server.get("/api/v1/topics/t:bad").await;
    assert_eq!(
        (snapshot["offset"].clone(), snapshot["state"].clone()),
        (json!(1), json!({"n": 1}))
    );
    let (status, _) = server.get("/healthz").await;
    assert_eq!(status, 200, "the server keeps serving");
}

async fn post(server: &Server, path: &str, key: Option<&str>, body: Value) -> reqwest::Response {
    post_with(&server.http(), server, path, key, body).await
}

/// Posts as whoever `http` carries the key of.
async fn post_with(
    http: &reqwest::Client,
    server: &Server,
    path: &str,
    key: Option<&str>,
    body: Value,
) -> reqwest::Response {
    let mut request = http
        .post(format!("http://{}{path}", server.addr))
        .json(&body);
    if let Some(key) = key {
        request = request.header("Idempotency-Key", key);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn a_batch_applies_to_every_topic_or_to_none() {
    let server = Server::start(&[]);
    ops(
        &server,
        "t:one",
        json!([{"op": "set", "entity_id": "a", "payload": 1}]),
    )
    .await;
    ops(
        &server,
        "t:two",
        json!([{"op": "set", "entity_id": "s", "payload": "text"}]),
    )
    .await;

    let bad = post(
        &server,
        "/api/v1/batch",
        None,
        json!({"writes": [
            {"topic": "t:one", "ops": [{"op": "set", "entity_id": "a", "payload": 2}]},
            {"topic": "t:two", "ops": [{"op": "incr", "entity_id": "s", "by": 1}]}
        ]}),
    )
    .await;
    assert_eq!(bad.status(), 422);
    let error: Value = bad.json().await.unwrap();
    assert_eq!(error["field"], json!("writes[1].ops[0].field"));
    for (topic, expected) in [("t:one", json!({"a": 1})), ("t:two", json!({"s": "text"}))] {
        let (_, snapshot) = server.get(&format!("/api/v1/topics/{topic}")).await;
        assert_eq!(
            (snapshot["offset"].clone(), snapshot["state"].clone()),
            (json!(1), expected)
        );
    }

    let good = post(
        &server,
        "/api/v1/batch",
        None,
        json!({"writes": [
            {"topic": "t:one", "ops": [{"op": "set", "entity_id": "a", "payload": 2}]},
            {"topic": "t:two", "ops": [{"op": "delete", "entity_id": "s"}]},
            {"topic": "t:one", "ops": [{"op": "incr", "entity_id": "a", "by": 3}]}
        ]}),
    )
    .await;
    assert_eq!(good.status(), 200);
    let answer: Value = good.json().await.unwrap();
    assert_eq!(answer["results"][0]["topic"], json!("t:one"));
    assert_eq!(answer["results"][0]["offsets"], json!([2, 3]));
    assert_eq!(answer["results"][1]["offsets"], json!([2]));
    assert_eq!(state(&server, "t:one").await, json!({"a": 5}));
    assert_eq!(state(&server, "t:two").await, json!({}));
}

#[tokio::test]
async fn a_retried_request_with_the_same_key_applies_once_even_across_a_restart() {
    let data = tempfile::TempDir::new().unwrap();
    // One publisher across the restart: a key is remembered under the key that sent it.
    let publisher = support::client_with_key(&support::make_key(data.path(), "publish:*"));
    let server = Server::start_in(data.path(), &[]);
    let body = json!({"ops": [{"op": "incr", "entity_id": "hits", "by": 1}]});
    let first = post_with(
        &publisher,
        &server,
        "/api/v1/topics/metric:idem",
        Some("retry-1"),
        body.clone(),
    )
    .await;
    assert_eq!(first.status(), 200);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first: Value = first.json().await.unwrap();

    let again = post_with(
        &publisher,
        &server,
        "/api/v1/topics/metric:idem",
        Some("retry-1"),
        body.clone(),
    )
    .await;
    assert_eq!(again.status(), 200);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(
        again.json::<Value>().await.unwrap(),
        first,
        "the first answer, again"
    );

    let other = json!({"ops": [{"op": "incr", "entity_id": "hits", "by": 5}]});
    let reused = post_with(
        &publisher,
        &server,
        "/api/v1/topics/metric:idem",
        Some("retry-1"),
        other,
    )
    .await;
    assert_eq!(reused.status(), 409);
    assert_eq!(
        reused.json::<Value>().await.unwrap()["code"],
        json!("idempotency_key_reused")
    );

    server.stop();
    let server = Server::start_in(data.path(), &[]);
    let after = post_with(
        &publisher,
        &server,
        "/api/v1/topics/metric:idem",
        Some("retry-1"),
        body,
    )
    .await;
    assert_eq!(after.status(), 200);
    assert_eq!(after.json::<Value>().await.unwrap(), first);
    assert_eq!(state(&server, "metric:idem").await, json!({"hits": 1}));

    let bad_key = post_with(
        &publisher,
        &server,
        "/api/v1/topics/metric:idem",
        Some(""),
        json!({"ops": []}),
    )
    .await;
    assert_eq!(bad_key.status(), 400);
}

#[tokio::test]
async fn a_socket_publish_is_acknowledged_or_refused_with_its_ref() {
    let server = Server::start(&[]);
    let mut socket = server.connect().await;
    send(
        &mut socket,
        json!({"type": "publish", "ref": "p1", "topic": "metric:ws",
               "ops": [{"op": "set", "entity_id": "n", "payload": "text"}]}),
    )
    .await;
    match next(&mut socket).await {
        ServerFrame::Ack(ack) => {
            assert_eq!(ack.reference.as_deref(), Some("p1"));
            assert_eq!(ack.published.offsets, [1]);
        }
        other => panic!("expected an ack, got {other:?}"),
    }
    send(
        &mut socket,
        json!({"type": "publish", "ref": "p2", "topic": "metric:ws",
               "ops": [{"op": "incr", "entity_id": "n", "by": 1}]}),
    )
    .await;
    match next(&mut socket).await {
        ServerFrame::Error(error) => {
            assert_eq!(error.code, pulseboard::protocol::ErrorCode::OpRefused);
            assert_eq!(error.reference.as_deref(), Some("p2"));
        }
        other => panic!("expected an error, got {other:?}"),
    }
    assert_eq!(state(&server, "metric:ws").await, json!({"n": "text"}));
}

#[tokio::test]
async fn the_openapi_document_describes_the_api() {
    let server = Server::start(&[]);
    let (status, document) = server.get("/api/v1/openapi.json").await;
    assert_eq!(status, 200);
    assert!(document["openapi"]
        .as_str()
        .is_some_and(|v| v.starts_with("3.")));
    for path in [
        "/api/v1/topics/{topic}",
        "/api/v1/batch",
        "/api/v1/topics",
        "/healthz",
    ] {
        assert!(
            document["paths"].get(path).is_some(),
            "{path} is documented"
        );
    }
    let schemas = &document["components"]["schemas"];
    for schema in [
        "Op",
        "Publish",
        "Published",
        "Batch",
        "ApiError",
        "Snapshot",
    ] {
        assert!(schemas.get(schema).is_some(), "schema {schema}");
    }
    let op_kinds = schemas["Op"]["oneOf"]
        .as_array()
        .expect("Op is a oneOf")
        .len();
    assert_eq!(op_kinds, 7, "every op is described");
}
