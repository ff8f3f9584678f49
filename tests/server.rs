//! Integration tests against the real server binary on an ephemeral port, with a real
//! WebSocket client: snapshot then events, resume, presence, errors, and clean-up.

#![cfg(feature = "ssr")]

mod support;

use futures_util::{SinkExt, StreamExt};
use pulseboard::protocol::{ErrorCode, Position, Presence, ServerFrame};
use serde_json::{json, Value};
use std::time::Duration;
use support::*;
use tempfile::TempDir;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn a_subscriber_gets_a_snapshot_then_every_event_in_order() {
    let server = Server::start(&[]);
    server.set("metric:a", "x", 1).await;
    let mut socket = server.connect().await;
    subscribe(&mut socket, "metric:a", None).await;
    let ServerFrame::Snapshot(snapshot) = next(&mut socket).await else {
        panic!("expected a snapshot")
    };
    assert_eq!(snapshot.offset, 1);
    assert_eq!(snapshot.state["x"], json!(1));

    for n in 0..5 {
        let ops: Vec<Value> = (0..4)
            .map(|k| json!({"op": "set", "entity_id": format!("e{k}"), "payload": n * 4 + k}))
            .collect();
        assert_eq!(
            server
                .publish("metric:a", json!({"ops": ops}))
                .await
                .status(),
            200
        );
    }
    for expected in 2..=21 {
        let frame = next(&mut socket).await;
        assert_eq!(event_offset(&frame), expected);
        let ServerFrame::Event(event) = frame else {
            unreachable!()
        };
        assert_eq!(event.epoch, snapshot.epoch);
        assert_eq!(event.payload, json!(expected - 2));
    }
    quiet(&mut socket).await;
}

#[tokio::test]
async fn resuming_sends_exactly_the_missed_events() {
    let server = Server::start(&[]);
    let mut socket = server.connect().await;
    subscribe(&mut socket, "feed:r", None).await;
    let ServerFrame::Snapshot(snapshot) = next(&mut socket).await else {
        panic!("expected a snapshot")
    };
    for n in 1..=3 {
        server.set("feed:r", "k", n).await;
        assert_eq!(event_offset(&next(&mut socket).await), n as u64);
    }
    socket.close(None).await.unwrap();

    for n in 4..=8 {
        server.set("feed:r", "k", n).await;
    }
    let mut socket = server.connect().await;
    let held = Position {
        epoch: snapshot.epoch,
        offset: 3,
    };
    subscribe(&mut socket, "feed:r", Some(held)).await;
    for expected in 4..=8 {
        assert_eq!(event_offset(&next(&mut socket).await), expected);
    }
    match next(&mut socket).await {
        ServerFrame::Resumed(resumed) => assert_eq!((resumed.offset, resumed.replayed), (8, 5)),
        other => panic!("expected resumed, got {other:?}"),
    }
    server.set("feed:r", "k", 9).await;
    assert_eq!(event_offset(&next(&mut socket).await), 9);
    quiet(&mut socket).await;
}

#[tokio::test]
async fn resuming_without_history_or_with_another_epoch_gets_a_snapshot() {
    let server = Server::start(&[("PULSEBOARD_HISTORY", "4")]);
    let published = server.set("board:h", "k", 0).await;
    let epoch = published["epoch"].as_u64().unwrap();
    for n in 1..10 {
        server.set("board:h", "k", n).await;
    }
    for stale in [
        Position { epoch, offset: 2 },
        Position {
            epoch: epoch - 1,
            offset: 9,
        },
    ] {
        let mut socket = server.connect().await;
        subscribe(&mut socket, "board:h", Some(stale)).await;
        match next(&mut socket).await {
            ServerFrame::Snapshot(s) => {
                assert_eq!((s.epoch, s.offset), (epoch, 10));
                assert_eq!(s.state["k"], json!(9));
            }
            other => panic!("expected a snapshot for {stale:?}, got {other:?}"),
        }
        quiet(&mut socket).await;
    }
}

#[tokio::test]
async fn garbage_gets_an_error_frame_and_the_connection_keeps_working() {
    let server = Server::start(&[]);
    let mut socket = server.connect().await;
    let expect_error = |frame: ServerFrame, code: ErrorCode| match frame {
        ServerFrame::Error(error) => assert_eq!(error.code, code, "{}", error.message),
        other => panic!("expected an error frame, got {other:?}"),
    };
    socket
        .send(Message::Text("{not json".into()))
        .await
        .unwrap();
    expect_error(next(&mut socket).await, ErrorCode::InvalidJson);
    send(&mut socket, json!({"type": "explode"})).await;
    expect_error(next(&mut socket).await, ErrorCode::UnknownFrame);
    send(&mut socket, json!({"type": "subscribe", "topics": 7})).await;
    expect_error(next(&mut socket).await, ErrorCode::InvalidFrame);
    send(
        &mut socket,
        json!({"type": "subscribe", "topics": [{"topic": "no spaces"}]}),
    )
    .await;
    expect_error(next(&mut socket).await, ErrorCode::InvalidName);
    socket
        .send(Message::Binary(vec![1, 2, 3].into()))
        .await
        .unwrap();
    expect_error(next(&mut socket).await, ErrorCode::InvalidFrame);

    send(&mut socket, json!({"type": "ping", "id": 42})).await;
    assert_eq!(next(&mut socket).await, ServerFrame::Pong { id: Some(42) });
    subscribe(&mut socket, "metric:after", None).await;
    assert!(matches!(next(&mut socket).await, ServerFrame::Snapshot(_)));
}

/// The next presence frame on the socket, skipping others.
async fn presence(socket: &mut Socket) -> Presence {
    loop {
        if let ServerFrame::Presence(p) = next(socket).await {
            return p;
        }
    }
}

#[tokio::test]
async fn presence_counts_people_not_pages_and_a_person_leaves_after_the_grace() {
    let server = Server::start(&[]);
    let join = |person: &str| json!({"type": "join", "board": "demo", "person": person});
    let mut ana_1 = server.connect_guest().await;
    send(&mut ana_1, join("ana-browser-1")).await;
    // The repository's boards/demo.toml (the server runs in the crate's directory).
    let ServerFrame::Board(b) = next(&mut ana_1).await else {
        panic!("expected the board after joining")
    };
    assert_eq!(b.name, "demo");
    let p = presence(&mut ana_1).await;
    assert_eq!(p.count, 1);
    let ana = p.people.unwrap()[0].clone();
    assert!(ana.guest && ana.name.starts_with("Guest "));
    assert_eq!(p.joined, std::slice::from_ref(&ana.id));

    // A second page of the same browser is the same person.
    let mut ana_2 = server.connect_guest().await;
    send(&mut ana_2, join("ana-browser-1")).await;
    let p = presence(&mut ana_2).await;
    assert_eq!(p.count, 1);
    assert_eq!(p.people.as_ref().unwrap()[0].tabs.len(), 2);
    let p = presence(&mut ana_1).await;
    assert!(p.joined.is_empty(), "a second tab is no arrival");

    let mut bo = server.connect_guest().await;
    send(&mut bo, join("bo-browser-22")).await;
    let p = presence(&mut ana_1).await;
    assert_eq!(p.count, 2);
    let bo_id = p.joined[0].clone();
    assert_ne!(bo_id, ana.id);

    // Closing one of Ana's pages changes nobody; Bo's last page closing makes him leave,
    // after the grace (a second here).
    ana_2.close(None).await.unwrap();
    bo.close(None).await.unwrap();
    let left = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let p = presence(&mut ana_1).await;
            assert!(!p.left.contains(&ana.id), "Ana never leaves");
            if !p.left.is_empty() {
                return p;
            }
        }
    })
    .await
    .expect("Bo leaves within the grace and a little");
    assert_eq!((left.count, left.left), (1, vec![bo_id]));
}

#[tokio::test]
async fn every_way_out_releases_the_subscription() {
    let server = Server::start(&[]);
    let subscribers = |body: Value| {
        body["topics"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["topic"] == "metric:leak")
            .map_or(0, |t| t["subscribers"].as_u64().unwrap())
    };
    // A polite close, and a connection dropped without a close frame.
    let mut polite = server.connect().await;
    subscribe(&mut polite, "metric:leak", None).await;
    next(&mut polite).await;
    let mut rude = server.connect().await;
    subscribe(&mut rude, "metric:leak", None).await;
    next(&mut rude).await;
    assert_eq!(subscribers(server.get("/api/v1/topics").await.1), 2);

    polite.close(None).await.unwrap();
    drop(rude);
    let mut left = 2;
    for _ in 0..50 {
        left = subscribers(server.get("/api/v1/topics").await.1);
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        left, 0,
        "closed connections must leave no subscription behind"
    );
}

#[tokio::test]
async fn the_http_api_answers_offsets_snapshots_and_typed_errors() {
    let server = Server::start(&[]);
    let published = server.set("metric:api", "n", 5).await;
    assert_eq!(published["offsets"], json!([1]));
    let (status, snapshot) = server.get("/api/v1/topics/metric:api").await;
    assert_eq!(status, 200);
    assert_eq!(snapshot["state"], json!({"n": 5}));

    let (status, body) = server.get("/api/v1/topics/metric:none").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("unknown_topic"))
    );

    let bad = server
        .publish(
            "metric:api",
            json!({"ops": [{"op": "incr", "entity_id": "x", "by": "one"}]}),
        )
        .await;
    assert_eq!(bad.status(), 422);
    // A request with one bad op changes nothing.
    let bad = server
        .publish(
            "metric:api",
            json!({"ops": [
                {"op": "set", "entity_id": "n", "payload": 6},
                {"op": "set", "entity_id": "s", "payload": "text"},
                {"op": "incr", "entity_id": "s", "by": 1}
            ]}),
        )
        .await;
    assert_eq!(bad.status(), 422);
    let body: Value = bad.json().await.unwrap();
    assert_eq!(body["field"], json!("ops[2].field"));
    assert_eq!(
        server.get("/api/v1/topics/metric:api").await.1["offset"],
        json!(1)
    );

    let (status, body) = server.get("/healthz").await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ok")));
}

#[tokio::test]
async fn a_restart_on_the_same_data_dir_keeps_state_and_a_client_resumes_without_a_gap() {
    let data = TempDir::new().unwrap();
    let server = Server::start_in(data.path(), &[]);
    let mut socket = server.connect().await;
    subscribe(&mut socket, "metric:durable", None).await;
    let ServerFrame::Snapshot(snapshot) = next(&mut socket).await else {
        panic!("expected a snapshot")
    };
    for n in 1..=5 {
        server.set("metric:durable", &format!("k{n}"), n).await;
        assert_eq!(event_offset(&next(&mut socket).await), n as u64);
    }
    server.stop();
    // The client sees the connection end, as a browser would.
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(Ok(_)) = socket.next().await {}
    })
    .await;
    assert!(ended.is_ok(), "the socket closes when the server stops");

    let server = Server::start_in(data.path(), &[]);
    let (status, state) = server.get("/api/v1/topics/metric:durable").await;
    assert_eq!(status, 200);
    assert_eq!(
        (state["epoch"].as_u64(), state["offset"].as_u64()),
        (Some(snapshot.epoch), Some(5))
    );
    assert_eq!(state["state"]["k5"], json!(5));
    for n in 6..=8 {
        server.set("metric:durable", &format!("k{n}"), n).await;
    }

    let mut socket = server.connect().await;
    let held = Position {
        epoch: snapshot.epoch,
        offset: 5,
    };
    subscribe(&mut socket, "metric:durable", Some(held)).await;
    for expected in 6..=8 {
        assert_eq!(event_offset(&next(&mut socket).await), expected);
    }
    assert!(matches!(next(&mut socket).await, ServerFrame::Resumed(_)));
    quiet(&mut socket).await;
}

#[tokio::test]
async fn sigkill_during_a_stream_of_publishes_loses_no_acknowledged_write() {
    let data = TempDir::new().unwrap();
    let mut server = Server::start_in(data.path(), &[]);
    let before = server.set("feed:kill", "first", 0).await["epoch"].clone();
    let addr = server.addr.clone();
    // Four publishers race each other, so writes share transactions (group commit).
    let publishers: Vec<_> = (0..4)
        .map(|writer| {
            let url = format!("http://{addr}/api/v1/topics/feed:kill");
            let http = server.http();
            tokio::spawn(async move {
                let mut acknowledged = Vec::new();
                for n in 0.. {
                    let id = format!("w{writer}-{n}");
                    let body = json!({"ops": [{"op": "set", "entity_id": id, "payload": n}]});
                    match http.post(&url).json(&body).send().await {
                        Ok(response) if response.status() == 200 => acknowledged.push(id),
                        _ => break,
                    }
                }
                acknowledged
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(700)).await;
    server.child.kill().unwrap(); // SIGKILL: no chance to flush anything
    server.child.wait().unwrap();
    let mut acknowledged = Vec::new();
    for publisher in publishers {
        acknowledged.extend(publisher.await.unwrap());
    }
    assert!(
        acknowledged.len() > 50,
        "the publishers got going ({})",
        acknowledged.len()
    );

    let server = Server::start_in(data.path(), &[]);
    let (_, snapshot) = server.get("/api/v1/topics/feed:kill").await;
    let state = snapshot["state"].as_object().unwrap();
    assert_ne!(
        snapshot["epoch"], before,
        "after an unclean stop without fsync, a topic starts a new epoch"
    );
    let lost: Vec<_> = acknowledged
        .iter()
        .filter(|id| !state.contains_key(*id))
        .collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged writes lost, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
    // `first` plus every acknowledged write, each one event.
    assert_eq!(snapshot["offset"].as_u64().unwrap() as usize, state.len());
}

#[tokio::test]
async fn a_write_the_store_refuses_takes_back_those_planned_on_it_and_the_topic_goes_on() {
    let data = TempDir::new().unwrap();
    let server = Server::start_in(data.path(), &[]);
    server.set("feed:poison", "first", 0).await;
    // A real SQLite failure: the store's own file refuses one entity from now on.
    rusqlite::Connection::open(data.path().join("pulseboard.db"))
        .unwrap()
        .execute_batch(
            "CREATE TRIGGER poison BEFORE INSERT ON entities WHEN NEW.entity_id = 'poison'
             BEGIN SELECT RAISE(ABORT, 'poisoned'); END;",
        )
        .unwrap();
    let mut socket = server.connect().await;
    subscribe(&mut socket, "feed:poison", None).await;
    let ServerFrame::Snapshot(snapshot) = next(&mut socket).await else {
        panic!("expected a snapshot")
    };
    assert_eq!(snapshot.offset, 1);

    // Eight publishers back to back, so writes to the one topic queue behind each other;
    // one of them is refused by the store halfway.
    let url = format!("http://{}/api/v1/topics/feed:poison", server.addr);
    let publishers: Vec<_> = (0..8)
        .map(|writer| {
            let (url, http) = (url.clone(), server.http());
            tokio::spawn(async move {
                let mut answers = Vec::new();
                for n in 0..60 {
                    let id = if writer == 0 && n == 30 {
                        "poison".to_owned()
                    } else {
                        format!("w{writer}-{n}")
                    };
                    let body = json!({"ops": [{"op": "set", "entity_id": id, "payload": n}]});
                    let response = http.post(&url).json(&body).send().await.unwrap();
                    let status = response.status().as_u16();
                    let answer: Value = response.json().await.unwrap();
                    answers.push((id, status, answer["offset"].as_u64()));
                }
                answers
            })
        })
        .collect();
    let mut answers = Vec::new();
    for publisher in publishers {
        answers.extend(publisher.await.unwrap());
    }
    let refused: Vec<&String> = answers
        .iter()
        .filter(|(_, status, _)| *status != 200)
        .map(|(id, _, _)| id)
        .collect();
    assert!(refused.contains(&&"poison".to_owned()), "{refused:?}");
    assert!(
        answers
            .iter()
            .all(|(_, status, _)| [200, 503].contains(status)),
        "a refusal is the store being unavailable"
    );
    // The topic goes on: the poisoned writer's own later writes land.
    let w0_last = answers.iter().find(|(id, _, _)| id == "w0-59").unwrap();
    assert_eq!(
        w0_last.1, 200,
        "writes after the refused one are taken again"
    );

    // The acknowledged writes are exactly offsets 2..: no gap where refused ones were.
    let mut acknowledged: Vec<(u64, String)> = answers
        .iter()
        .filter(|(_, status, _)| *status == 200)
        .map(|(id, _, offset)| (offset.unwrap(), id.clone()))
        .collect();
    acknowledged.sort();
    let offsets: Vec<u64> = acknowledged.iter().map(|(offset, _)| *offset).collect();
    let head = 1 + acknowledged.len() as u64;
    assert_eq!(offsets, (2..=head).collect::<Vec<_>>());

    // A follower saw exactly those, in order, and nothing that was refused.
    for (offset, id) in &acknowledged {
        let ServerFrame::Event(event) = next(&mut socket).await else {
            panic!("expected an event")
        };
        assert_eq!((event.offset, &event.entity_id), (*offset, id));
    }
    quiet(&mut socket).await;

    // And the store holds the same: after a restart, the state is every acknowledged write.
    server.stop();
    let server = Server::start_in(data.path(), &[]);
    let (_, snapshot) = server.get("/api/v1/topics/feed:poison").await;
    assert_eq!(snapshot["offset"], head);
    let mut stored: Vec<String> = snapshot["state"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    stored.sort();
    let mut expected: Vec<String> = acknowledged.into_iter().map(|(_, id)| id).collect();
    expected.push("first".into());
    expected.sort();
    assert_eq!(stored, expected);
}

#[tokio::test]
async fn retention_is_configured_per_topic() {
    let config = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(config.path(), "[retention]\n\"feed:short*\" = 3\n").unwrap();
    let server = Server::start(&[("PULSEBOARD_CONFIG", config.path().to_str().unwrap())]);
    let mut epochs = Vec::new();
    for topic in ["feed:short-lived", "feed:long"] {
        for n in 0..6 {
            epochs.push(server.set(topic, "k", n).await["epoch"].as_u64().unwrap());
        }
    }
    for (topic, epoch, replays) in [
        ("feed:short-lived", epochs[0], false),
        ("feed:long", epochs[6], true),
    ] {
        let mut socket = server.connect().await;
        subscribe(&mut socket, topic, Some(Position { epoch, offset: 2 })).await;
        match next(&mut socket).await {
            ServerFrame::Event(event) if replays => assert_eq!(event.offset, 3),
            ServerFrame::Snapshot(snapshot) if !replays => assert_eq!(snapshot.offset, 6),
            other => panic!("{topic}: unexpected {other:?}"),
        }
    }
}

#[tokio::test]
async fn metrics_count_connections_subscriptions_and_events() {
    let server = Server::start(&[]);
    let scrape = || server.metrics();
    let mut first = server.connect().await;
    let mut second = server.connect().await;
    for socket in [&mut first, &mut second] {
        subscribe(socket, "metric:m", None).await;
        next(socket).await;
    }
    for n in 0..3 {
        server.set("metric:m", "k", n).await;
    }
    let metrics = scrape().await;
    assert_eq!(sample(&metrics, "pulseboard_connections"), 2.0);
    assert_eq!(sample(&metrics, "pulseboard_subscriptions"), 2.0);
    assert_eq!(sample(&metrics, "pulseboard_events_published_total"), 3.0);
    assert_eq!(sample(&metrics, "pulseboard_frames_queued_total"), 6.0);
    assert_eq!(sample(&metrics, "pulseboard_publish_seconds_count"), 3.0);

    drop(first);
    let mut left = 2.0;
    for _ in 0..50 {
        left = sample(&scrape().await, "pulseboard_connections");
        if left == 1.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(left, 1.0);
    assert_eq!(sample(&scrape().await, "pulseboard_subscriptions"), 1.0);
}

fn wall_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

async fn snapshot_of(server: &Server, topic: &str) -> pulseboard::protocol::Snapshot {
    let mut socket = server.connect().await;
    subscribe(&mut socket, topic, None).await;
    match next(&mut socket).await {
        ServerFrame::Snapshot(snapshot) => snapshot,
        other => panic!("expected a snapshot, got {other:?}"),
    }
}

#[tokio::test]
async fn each_entity_keeps_when_it_last_changed_over_a_restart_and_an_upgrade() {
    let data = TempDir::new().unwrap();
    let server = Server::start_in(data.path(), &[]);
    let before = wall_ms();
    server.set("metric:quiet", "old", 1).await;
    let after = wall_ms();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    server.set("metric:quiet", "new", 2).await;
    let snapshot = snapshot_of(&server, "metric:quiet").await;
    let (old, new) = (snapshot.changed["old"], snapshot.changed["new"]);
    assert!(
        (before..=after).contains(&old),
        "{old} not in {before}..={after}"
    );
    assert!(new >= old + 1000, "{new} is not a second after {old}");
    let (_, http) = server.get("/api/v1/topics/metric:quiet").await;
    assert_eq!(
        http["changed"]["old"],
        json!(old),
        "the HTTP snapshot carries them too"
    );

    // Deleted entities take their time with them; a restart keeps the others'.
    let deleted = server
        .publish(
            "metric:quiet",
            json!({"ops": [{"op": "delete", "entity_id": "new"}]}),
        )
        .await;
    assert_eq!(deleted.status(), 200);
    server.stop();
    let server = Server::start_in(data.path(), &[]);
    let snapshot = snapshot_of(&server, "metric:quiet").await;
    assert_eq!(snapshot.changed, [("old".to_string(), old)].into());
    server.stop();

    // A data file from a server before change times: brought up to date on open, its
    // entities kept; they have no change time until written again.
    let file = rusqlite::Connection::open(data.path().join("pulseboard.db")).unwrap();
    file.execute_batch("ALTER TABLE entities DROP COLUMN changed_ms; PRAGMA user_version = 0;")
        .unwrap();
    drop(file);
    let server = Server::start_in(data.path(), &[]);
    let snapshot = snapshot_of(&server, "metric:quiet").await;
    assert_eq!(snapshot.state["old"], json!(1));
    assert!(snapshot.changed.is_empty());
    let write = wall_ms();
    server.set("metric:quiet", "old", 3).await;
    let snapshot = snapshot_of(&server, "metric:quiet").await;
    assert!(snapshot.changed["old"] >= write);
}

/// A burst on one topic: far more writers at once than one task applies for others before
/// handing on, so writes committed together apply across several tasks; the same entities
/// written many times in one group, so the store keeps only each one's last value.
#[tokio::test]
async fn a_burst_of_writers_on_one_topic_is_acknowledged_delivered_and_stored_in_offset_order() {
    let data = TempDir::new().unwrap();
    let server = Server::start_in(data.path(), &[("PULSEBOARD_REQUESTS_PER_KEY", "100000")]);
    server.set("metric:burst", "start", 0).await;
    let mut socket = server.connect().await;
    subscribe(&mut socket, "metric:burst", None).await;
    let ServerFrame::Snapshot(_) = next(&mut socket).await else {
        panic!("expected a snapshot")
    };

    let url = format!("http://{}/api/v1/topics/metric:burst", server.addr);
    let (writers, each) = (300, 4);
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(writers));
    let publishers: Vec<_> = (0..writers)
        .map(|writer| {
            let (url, http, start) = (url.clone(), server.http(), start.clone());
            tokio::spawn(async move {
                start.wait().await;
                let mut offsets = Vec::new();
                for _ in 0..each {
                    let ops = json!({"ops": [
                        {"op": "incr", "entity_id": "total", "by": 1},
                        {"op": "set", "entity_id": format!("w{}", writer % 10), "payload": writer},
                    ]});
                    let response = http.post(&url).json(&ops).send().await.unwrap();
                    assert_eq!(response.status(), 200);
                    let answer: Value = response.json().await.unwrap();
                    offsets.push(answer["offset"].as_u64().unwrap());
                }
                offsets
            })
        })
        .collect();
    let mut acknowledged = Vec::new();
    for publisher in publishers {
        acknowledged.extend(publisher.await.unwrap());
    }
    acknowledged.sort();
    // Each request is two events: offsets 3, 5, … after the first write's 1.
    let requests = (writers * each) as u64;
    let expected: Vec<u64> = (1..=requests).map(|n| 1 + 2 * n).collect();
    assert_eq!(
        acknowledged, expected,
        "every write acknowledged once, no gap"
    );

    // The follower saw every event once, in offset order, the counter counting up.
    for offset in 2..=1 + 2 * requests {
        let ServerFrame::Event(event) = next(&mut socket).await else {
            panic!("expected an event")
        };
        assert_eq!(event.offset, offset);
        if event.entity_id == "total" {
            assert_eq!(event.payload, json!(offset / 2));
        }
    }
    quiet(&mut socket).await;

    // The store holds the last of each entity, and a restart goes on from the same head.
    server.stop();
    let server = Server::start_in(data.path(), &[]);
    let (_, snapshot) = server.get("/api/v1/topics/metric:burst").await;
    assert_eq!(snapshot["offset"], 1 + 2 * requests);
    assert_eq!(snapshot["state"]["total"], json!(requests));
    // `start`, `total` and the ten `w…`.
    assert_eq!(snapshot["state"].as_object().unwrap().len(), 12);
    let after = server.set("metric:burst", "after", 1).await;
    assert_eq!(after["offset"], 2 + 2 * requests);
}
