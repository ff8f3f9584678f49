//! Failures a wall screen lives through, against the real server: peers that go silent, a
//! server restarted under load, networks that need the event stream, a client flooding the
//! server with garbage.

mod support;

use futures_util::{SinkExt, StreamExt};
use pulseboard::protocol::{Position, ServerFrame};
use serde_json::json;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use support::{next, sample, send, subscribe, EventStream, Server};
use tempfile::TempDir;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn a_silent_peer_is_closed_after_the_idle_timeout_and_a_listening_one_is_kept() {
    let server = Server::start(&[
        ("PULSEBOARD_HEARTBEAT", "1"),
        ("PULSEBOARD_IDLE_TIMEOUT", "3"),
    ]);
    // The settings reach clients in the welcome, so browsers ping at the same rate.
    let (mut listening, _) = tokio_tungstenite::connect_async(server.ws_url())
        .await
        .unwrap();
    let ServerFrame::Welcome(welcome) = next(&mut listening).await else {
        panic!("expected welcome first")
    };
    assert_eq!(
        (welcome.heartbeat_ms, welcome.idle_timeout_ms),
        (1_000, 3_000)
    );
    send(&mut listening, json!({"type": "join", "board": "demo"})).await;

    // A peer that joins and then never reads or answers a ping: a closed laptop lid.
    let mut silent = server.connect_guest().await;
    send(&mut silent, json!({"type": "join", "board": "demo"})).await;

    // The listening peer only reads, answering the server's pings as every WebSocket client
    // does; it sees the silent one arrive, then leave once the idle timeout has passed.
    let started = std::time::Instant::now();
    let mut most = 0;
    let left = loop {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the silent peer was never dropped"
        );
        if let ServerFrame::Presence(presence) = next(&mut listening).await {
            most = most.max(presence.count);
            if most == 2 && presence.count == 1 {
                break presence.left;
            }
        }
    };
    assert_eq!(left.len(), 1);
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "dropped after {:?}, before its silence could reach the timeout",
        started.elapsed()
    );

    // The listening peer, quiet itself but answering pings all along, is still served.
    send(&mut listening, json!({"type": "ping", "id": 9})).await;
    loop {
        match next(&mut listening).await {
            ServerFrame::Pong { id } => break assert_eq!(id, Some(9)),
            ServerFrame::Presence(_) | ServerFrame::Board(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    let metrics = server.metrics().await;
    assert_eq!(sample(&metrics, "pulseboard_idle_closed_total"), 1.0);
    assert_eq!(sample(&metrics, "pulseboard_connections"), 1.0);
}

#[tokio::test]
async fn a_silent_peer_is_closed_even_while_a_write_to_it_is_stuck() {
    const TOPIC: &str = "stuck:t";
    let server = Server::start(&[
        ("PULSEBOARD_HEARTBEAT", "1"),
        ("PULSEBOARD_IDLE_TIMEOUT", "3"),
    ]);
    // It subscribes, then neither reads nor answers a ping: a laptop that died mid-stream.
    let mut dead = server.connect().await;
    subscribe(&mut dead, TOPIC, None).await;
    // About 40 MiB of events: more than its socket's buffers take, so the server's write to
    // it waits for room that never comes.
    let filler = "x".repeat(1000);
    for batch in 0..80 {
        let ops: Vec<_> = (0..500)
            .map(|n| json!({"op": "set", "entity_id": format!("e{n}"), "payload": {"batch": batch, "pad": filler}}))
            .collect();
        assert_eq!(
            server.publish(TOPIC, json!({ "ops": ops })).await.status(),
            200
        );
    }
    let started = std::time::Instant::now();
    loop {
        let metrics = server.metrics().await;
        if sample(&metrics, "pulseboard_connections") == 0.0 {
            assert_eq!(sample(&metrics, "pulseboard_idle_closed_total"), 1.0);
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "a peer silent with its socket full was never closed"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(dead);
}

#[test]
fn a_configuration_that_would_close_every_quiet_connection_is_refused() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_pulseboard"))
        .env("PULSEBOARD_HEARTBEAT", "30")
        .env("PULSEBOARD_IDLE_TIMEOUT", "30")
        .env("PULSEBOARD_LISTEN", "127.0.0.1:0")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("idle_timeout (30 s) must be longer than heartbeat (30 s)"),
        "{stderr}"
    );
}

/// What one subscriber saw of a topic across every connection it made.
#[derive(Default, Debug)]
struct Followed {
    /// The offset of the first snapshot, where the subscriber's record starts.
    start: Option<u64>,
    /// Every event offset applied, in order of arrival.
    offsets: Vec<u64>,
    /// Snapshots after the first: each means a gap was papered over.
    later_snapshots: usize,
    /// The delays `restarting` frames gave.
    restart_delays: Vec<u64>,
}

/// Follows a topic as a screen does: on every (re)connection it subscribes resuming from the
/// position it holds; retries until the server is back. Stops at offset `until`.
async fn follow(url: String, topic: &str, until: Arc<AtomicU64>) -> Followed {
    let mut seen = Followed::default();
    let mut position: Option<Position> = None;
    loop {
        let Ok((mut socket, _)) = tokio_tungstenite::connect_async(&url).await else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        subscribe(&mut socket, topic, position).await;
        loop {
            let reached = position.is_some_and(|p| p.offset >= until.load(Ordering::SeqCst));
            if reached {
                return seen;
            }
            let message =
                match tokio::time::timeout(Duration::from_millis(100), socket.next()).await {
                    Err(_) => continue,
                    Ok(Some(Ok(message))) => message,
                    // Closed or failed: reconnect.
                    Ok(_) => break,
                };
            let Message::Text(text) = message else {
                continue;
            };
            match serde_json::from_str::<ServerFrame>(text.as_str()).unwrap() {
                ServerFrame::Snapshot(snapshot) => {
                    if seen.start.is_none() {
                        seen.start = Some(snapshot.offset);
                    } else {
                        seen.later_snapshots += 1;
                    }
                    position = Some(Position {
                        epoch: snapshot.epoch,
                        offset: snapshot.offset,
                    });
                }
                ServerFrame::Event(event) => {
                    seen.offsets.push(event.offset);
                    position = Some(Position {
                        epoch: event.epoch,
                        offset: event.offset,
                    });
                }
                ServerFrame::Restarting { reconnect_in_ms } => {
                    seen.restart_delays.push(reconnect_in_ms);
                }
                _ => {}
            }
        }
    }
}

#[tokio::test]
async fn a_restart_under_steady_load_loses_and_repeats_nothing_at_any_subscriber() {
    const TOPIC: &str = "load:restart";
    let data = TempDir::new().unwrap();
    let settings = [
        ("PULSEBOARD_RECONNECT_SPREAD", "1"),
        ("PULSEBOARD_SHUTDOWN_GRACE", "3"),
    ];
    let server = Server::start_in(data.path(), &settings);
    let addr = server.addr.clone();
    server.set(TOPIC, "n", 0).await;

    let until = Arc::new(AtomicU64::new(u64::MAX));
    let followers: Vec<_> = (0..4)
        .map(|_| tokio::spawn(follow(server.ws_url(), TOPIC, until.clone())))
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;

    // A steady publisher, as a CI pipeline is: it keeps writing through the restart, and
    // retries each write whose answer it did not get under the same Idempotency-Key, so a
    // write that was applied just before the stop is not applied twice.
    let publishing = Arc::new(AtomicBool::new(true));
    let publisher = tokio::spawn({
        let (addr, publishing, http) = (addr.clone(), publishing.clone(), server.http());
        async move {
            let mut acknowledged = Vec::new();
            let mut write = 0;
            while publishing.load(Ordering::SeqCst) {
                let sent = http
                    .post(format!("http://{addr}/api/v1/topics/{TOPIC}"))
                    .header("Idempotency-Key", format!("restart-{write}"))
                    .json(&json!({"ops": [{"op": "incr", "entity_id": "n", "by": 1}]}))
                    .send()
                    .await;
                match sent {
                    Ok(response) if response.status() == 200 => {
                        let body: serde_json::Value = response.json().await.unwrap();
                        acknowledged.push(body["offset"].as_u64().unwrap());
                        write += 1;
                    }
                    _ => tokio::time::sleep(Duration::from_millis(20)).await,
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            acknowledged
        }
    });
    tokio::time::sleep(Duration::from_millis(700)).await;

    let stopping = std::time::Instant::now();
    server.stop();
    let stopped_in = stopping.elapsed();
    // The bound: the grace, plus at most a second for the store.
    assert!(
        stopped_in < Duration::from_secs(4),
        "shutdown took {stopped_in:?}"
    );
    let server = Server::start_in(
        data.path(),
        &[settings[0], settings[1], ("PULSEBOARD_LISTEN", &addr)],
    );
    tokio::time::sleep(Duration::from_millis(700)).await;
    publishing.store(false, Ordering::SeqCst);
    let acknowledged = publisher.await.unwrap();
    let (_, state) = server.get(&format!("/api/v1/topics/{TOPIC}")).await;
    let last = state["offset"].as_u64().unwrap();
    until.store(last, Ordering::SeqCst);

    assert!(acknowledged.len() > 20, "too little load: {acknowledged:?}");
    let mut distinct = acknowledged.clone();
    distinct.dedup();
    assert_eq!(distinct, acknowledged, "each write acknowledged once");
    assert_eq!(
        state["state"]["n"].as_u64().unwrap(),
        acknowledged.len() as u64,
        "every acknowledged increment counted once"
    );
    for follower in followers {
        let seen = tokio::time::timeout(Duration::from_secs(15), follower)
            .await
            .expect("every subscriber catches up")
            .unwrap();
        let start = seen.start.unwrap();
        let expected: Vec<u64> = (start + 1..=last).collect();
        assert_eq!(seen.offsets, expected, "every event once, in order");
        assert_eq!(seen.later_snapshots, 0, "resumed, never re-snapshotted");
        assert!(acknowledged
            .iter()
            .all(|offset| *offset <= start || seen.offsets.contains(offset)));
        assert_eq!(
            seen.restart_delays.len(),
            1,
            "told of the restart once: {seen:?}"
        );
        assert!(seen.restart_delays[0] < 1_000);
    }
}

#[tokio::test]
async fn the_event_stream_resumes_exactly_from_its_last_event_id() {
    let server = Server::start(&[]);
    server.set("sse:a", "x", 1).await;
    server.set("sse:b", "y", 0).await;
    let mut stream = EventStream::open(&server, "topics=sse:a,sse:b", None).await;
    assert!(matches!(stream.next().await.frame, ServerFrame::Welcome(_)));
    let mut last_id = None;
    let mut snapshots = 0;
    while snapshots < 2 {
        let message = stream.next().await;
        if let ServerFrame::Snapshot(_) = message.frame {
            snapshots += 1;
            last_id = message.id;
        }
    }
    for n in 2..=4 {
        server.set("sse:a", "x", n).await;
        let message = stream.next().await;
        assert!(matches!(message.frame, ServerFrame::Event(_)));
        last_id = message.id;
    }
    let last_id = last_id.unwrap();
    assert!(
        last_id.contains("sse:a=") && last_id.contains("sse:b="),
        "{last_id}"
    );
    drop(stream);

    // Missed while away: two events on one topic, one on the other.
    server.set("sse:a", "x", 5).await;
    server.set("sse:a", "x", 6).await;
    server.set("sse:b", "y", 1).await;
    let mut stream = EventStream::open(&server, "topics=sse:a,sse:b", Some(&last_id)).await;
    let mut missed = Vec::new();
    let mut resumed = 0;
    while resumed < 2 {
        match stream.next().await.frame {
            ServerFrame::Event(event) => missed.push((event.topic, event.offset)),
            ServerFrame::Resumed(_) => resumed += 1,
            ServerFrame::Welcome(_) => {}
            other => panic!("expected only the missed events, got {other:?}"),
        }
    }
    missed.sort();
    assert_eq!(
        missed,
        [
            ("sse:a".into(), 5),
            ("sse:a".into(), 6),
            ("sse:b".into(), 2)
        ]
    );

    let (status, body) = server.get("/sse").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("nothing_to_follow"))
    );
    let (status, body) = server.get("/sse?topics=sse:a&from=sse:a=oops").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("invalid_position"))
    );
}

#[tokio::test]
async fn an_event_stream_is_told_of_a_restart_with_when_to_come_back() {
    let server = Server::start(&[
        ("PULSEBOARD_RECONNECT_SPREAD", "2"),
        ("PULSEBOARD_SHUTDOWN_GRACE", "3"),
    ]);
    server.set("sse:restart", "x", 1).await;
    let url = format!("http://{}/sse?topics=sse:restart", server.addr);
    let mut stream = server.http().get(&url).send().await.unwrap();
    assert_eq!(stream.status(), 200);
    // Read up to the snapshot, so the stream is being served when the stop comes.
    let mut text = String::new();
    while !text.contains(r#""type":"snapshot""#) {
        let chunk = tokio::time::timeout(Duration::from_secs(5), stream.chunk())
            .await
            .expect("the snapshot within 5 s")
            .unwrap()
            .expect("the stream stays open");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    server.stop();
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        while let Ok(Some(chunk)) = stream.chunk().await {
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
    })
    .await;
    assert!(ended.is_ok(), "the stream ends with the server: {text}");
    let restart = text
        .split("\n\n")
        .find(|message| message.contains(r#""type":"restarting""#))
        .unwrap_or_else(|| panic!("a restarting message: {text}"));
    // An EventSource reconnects after `retry`: the same delay the frame states.
    let field = |name: &str| {
        restart
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .map(str::trim)
            .unwrap_or_else(|| panic!("{name} in {restart}"))
            .to_owned()
    };
    let frame: serde_json::Value = serde_json::from_str(&field("data:")).unwrap();
    let delay = frame["reconnect_in_ms"].as_u64().unwrap();
    assert!(delay < 2_000, "within the spread: {delay}");
    assert_eq!(field("retry:"), delay.to_string());
}

#[tokio::test]
async fn a_flood_of_invalid_frames_from_one_client_does_not_touch_the_others() {
    const TOPIC: &str = "flood:t";
    let server = Server::start(&[]);
    server.set(TOPIC, "n", 0).await;
    let mut watcher = server.connect().await;
    subscribe(&mut watcher, TOPIC, None).await;
    let ServerFrame::Snapshot(snapshot) = next(&mut watcher).await else {
        panic!("expected a snapshot")
    };

    // One client sends garbage as fast as it can: bad JSON, unknown types, oversized names.
    let mut flooder = server.connect().await;
    let garbage = [
        "{".to_owned(),
        r#"{"type": "teleport"}"#.to_owned(),
        json!({"type": "subscribe", "topics": [{"topic": "x".repeat(500)}]}).to_string(),
        json!({"type": "publish", "topic": TOPIC, "ops": [{"op": "explode"}]}).to_string(),
    ];
    let flood = tokio::spawn(async move {
        for n in 0..4_000 {
            let frame = garbage[n % garbage.len()].clone();
            if flooder.send(Message::Text(frame.into())).await.is_err() {
                break;
            }
        }
        flooder
    });

    // Meanwhile the watcher gets every event, in order.
    for n in 1..=50 {
        server.set(TOPIC, "n", n).await;
    }
    for n in 1..=50 {
        let frame = next(&mut watcher).await;
        assert_eq!(support::event_offset(&frame), snapshot.offset + n);
    }
    let mut flooder = flood.await.unwrap();

    // The flooder was told it was over its frame rate, and, still at it after a few seconds
    // of this, it would be closed (`security.rs` tests that part).
    let mut rate_limited = false;
    while let Ok(Some(Ok(message))) =
        tokio::time::timeout(Duration::from_millis(500), flooder.next()).await
    {
        if let Message::Text(text) = message {
            rate_limited |= text.as_str().contains(r#""code":"rate_limited""#);
        }
    }
    assert!(rate_limited, "the flooder hears that it is over its limit");
    // Nothing of the garbage reached the topic.
    let (_, state) = server.get(&format!("/api/v1/topics/{TOPIC}")).await;
    assert_eq!(state["offset"].as_u64(), Some(snapshot.offset + 50));
}

/// Applies a topic's frames as a screen does, checking that each follows on from the
/// position before it, until `until`; returns the state and how many frames it took.
async fn apply_until(socket: &mut support::Socket, until: u64) -> (serde_json::Value, u64) {
    let mut state = serde_json::Map::new();
    let (mut position, mut frames) = (None, 0);
    while position != Some(until) {
        frames += 1;
        match next(socket).await {
            ServerFrame::Snapshot(s) => {
                state = s.state.into_iter().collect();
                position = Some(s.offset);
            }
            ServerFrame::Event(e) => {
                assert_eq!(Some(e.offset - 1), position, "an event follows on");
                state.insert(e.entity_id, e.payload);
                position = Some(e.offset);
            }
            ServerFrame::Coalesced(c) => {
                assert_eq!(Some(c.from), position, "coalesced from where it stood");
                for id in c.deleted {
                    state.remove(&id);
                }
                state.extend(c.state);
                position = Some(c.offset);
            }
            _ => panic!("unexpected frame"),
        }
    }
    (serde_json::Value::Object(state), frames)
}

#[tokio::test]
async fn a_subscriber_that_reads_nothing_holds_up_no_one_and_is_caught_up_coalesced() {
    const TOPIC: &str = "slow:t";
    const EVENTS: u64 = 40_000;
    let server = Server::start(&[("PULSEBOARD_QUEUE", "64")]);
    let resident_kib =
        || support::resident_kib(server.child.id()).expect("the server's /proc status");
    let first = server.set(TOPIC, "e0", 0).await["offset"].as_u64().unwrap();
    let until = first + EVENTS;
    // Subscribes, then reads nothing while the events flow.
    let mut stuck = server.connect().await;
    subscribe(&mut stuck, TOPIC, None).await;
    let mut reader = server.connect().await;
    subscribe(&mut reader, TOPIC, None).await;
    let reading = tokio::spawn(async move { (apply_until(&mut reader, until).await, reader) });
    let mut resident_before = 0;

    // About 1 KiB per event, 40 MiB in all: more than a stuck socket's buffers can hide.
    let filler = "x".repeat(1000);
    for batch in 0..EVENTS / 500 {
        // Measured once the server has warmed up (allocator, caches, buffers all in use), so
        // what follows is what 30 MiB more of events cost it.
        if batch == EVENTS / 500 / 4 {
            resident_before = resident_kib();
        }
        let ops: Vec<_> = (0..500)
            .map(|n| {
                let id = format!("e{}", (batch * 500 + n) % 50);
                json!({"op": "set", "entity_id": id, "payload": {"n": batch * 500 + n, "pad": filler}})
            })
            .collect();
        let response = server.publish(TOPIC, json!({ "ops": ops })).await;
        assert_eq!(response.status(), 200);
    }
    let (_, now) = server.get(&format!("/api/v1/topics/{TOPIC}")).await;
    assert_eq!(now["offset"].as_u64(), Some(until));
    // Had the server queued every event for the stuck subscriber, it would hold 30 MiB more.
    let grown_kib = resident_kib().saturating_sub(resident_before);
    assert!(
        grown_kib < 10 * 1024,
        "the server grew by {grown_kib} KiB while a subscriber read nothing"
    );
    // The one that reads keeps up (a 500-event batch is more than its 64-frame queue, so it
    // too may get some of it coalesced) and ends exactly at the topic's state.
    let ((state, _), _reader) = tokio::time::timeout(Duration::from_secs(30), reading)
        .await
        .expect("the reading subscriber keeps up")
        .unwrap();
    assert!(state == now["state"], "the reader's state is the topic's");

    // Now the stuck one reads: what its buffers held, then one frame with the latest state
    // of what it missed, which lands it exactly where the topic is.
    let (state, frames) = apply_until(&mut stuck, until).await;
    assert!(
        state == now["state"],
        "the stuck subscriber's state is the topic's"
    );
    assert!(
        frames < EVENTS / 2,
        "{frames} frames for {EVENTS} events: the server kept what it could not send"
    );
    let metrics = server.metrics().await;
    assert!(sample(&metrics, "pulseboard_catch_ups_total") >= 1.0);
    assert_eq!(
        sample(&metrics, "pulseboard_connections"),
        2.0,
        "nobody was dropped"
    );
}
