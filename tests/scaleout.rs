//! Several real instances on one real `redis-server` behave as one server: every event
//! reaches every instance's subscribers in order, writes from everywhere count once, and
//! the failures of Redis, of its pub/sub connection and of an instance each end with every
//! screen on the exact state.

mod support;

use futures_util::StreamExt;
use pulseboard::protocol::{Position, ServerFrame};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use support::{next, subscribe, Redis, Server, Socket};
use tokio_tungstenite::tungstenite::Message;

/// `n` instances on `redis`.
fn instances(redis: &Redis, n: usize) -> Vec<Server> {
    let url = redis.url();
    (0..n)
        .map(|_| Server::start(&[("PULSEBOARD_REDIS_URL", &url)]))
        .collect()
}

fn incr(id: &str) -> Value {
    json!({"ops": [{"op": "incr", "entity_id": id, "by": 1}]})
}

/// Follows a topic from its first frame until it holds `until` events: the offsets of every
/// event received and the snapshots that started it, checking the sync rule on the way.
async fn follow_until(socket: &mut Socket, until: u64) -> Followed {
    let mut followed = Followed::default();
    loop {
        if let ServerFrame::Snapshot(s) = next(socket).await {
            followed.take(s);
            break;
        }
    }
    follow_on(socket, &mut followed, until).await;
    followed
}

/// Goes on following until the topic holds `until` events.
async fn follow_on(socket: &mut Socket, followed: &mut Followed, until: u64) {
    while followed.at.offset < until {
        match next(socket).await {
            ServerFrame::Snapshot(s) => followed.take(s),
            ServerFrame::Event(e) => {
                assert_eq!(e.epoch, followed.at.epoch, "an event of another epoch");
                assert_eq!(
                    e.offset,
                    followed.at.offset + 1,
                    "a gap or a duplicate after {:?}",
                    followed.at
                );
                followed.at.offset = e.offset;
                followed.offsets.push(e.offset);
                followed.state.insert(e.entity_id, e.payload);
            }
            _ => {}
        }
    }
}

#[derive(Default)]
struct Followed {
    at: Position,
    offsets: Vec<u64>,
    snapshots: Vec<Position>,
    state: BTreeMap<String, Value>,
}

impl Followed {
    fn take(&mut self, snapshot: pulseboard::protocol::Snapshot) {
        self.at = Position {
            epoch: snapshot.epoch,
            offset: snapshot.offset,
        };
        self.snapshots.push(self.at);
        self.state = snapshot.state;
    }
}

async fn snapshot(server: &Server, topic: &str) -> (u16, Value) {
    server.get(&format!("/api/v1/topics/{topic}")).await
}

#[tokio::test]
async fn a_subscriber_on_one_instance_gets_every_event_published_on_the_others_in_order() {
    let redis = Redis::start();
    let servers = instances(&redis, 3);
    let (a, b, c) = (&servers[0], &servers[1], &servers[2]);
    let mut screen = b.connect().await;
    subscribe(&mut screen, "metric:hits", None).await;
    let mut followed = follow_until(&mut screen, 0).await;
    assert_eq!(followed.at.offset, 0, "an empty topic's snapshot first");
    let writes = (0..100).flat_map(|n| {
        [
            a.publish("metric:hits", incr(&format!("a{}", n % 5))),
            c.publish("metric:hits", incr(&format!("c{}", n % 5))),
        ]
    });
    for answer in futures_util::future::join_all(writes).await {
        assert_eq!(answer.status(), 200);
    }
    follow_on(&mut screen, &mut followed, 200).await;
    assert_eq!(followed.offsets, (1..=200).collect::<Vec<_>>());
    let total: i64 = followed.state.values().map(|v| v.as_i64().unwrap()).sum();
    assert_eq!(total, 200, "every increment counted once");
    let (_, now) = snapshot(b, "metric:hits").await;
    assert_eq!(now["offset"], 200);
}

#[tokio::test]
async fn concurrent_increments_spread_over_three_instances_sum_exactly() {
    let redis = Redis::start();
    let servers = instances(&redis, 3);
    // Eight writers back to back on each instance: each instance pipelines its own writes
    // to the topic, and the three pipelines collide in Redis all the time.
    let writers = (0..24).map(|writer| {
        let server = &servers[writer % 3];
        async move {
            let mut offsets = Vec::new();
            for _ in 0..25 {
                let answer = server.publish("metric:orders", incr("orders")).await;
                assert_eq!(answer.status(), 200);
                let answer: Value = answer.json().await.unwrap();
                offsets.push(answer["offset"].as_u64().unwrap());
            }
            offsets
        }
    });
    let mut offsets: Vec<u64> = futures_util::future::join_all(writers)
        .await
        .into_iter()
        .flatten()
        .collect();
    offsets.sort_unstable();
    assert_eq!(
        offsets,
        (1..=600).collect::<Vec<_>>(),
        "one offset per write"
    );
    for server in &servers {
        let (status, now) = snapshot(server, "metric:orders").await;
        assert_eq!(status, 200);
        assert_eq!(now["state"]["orders"], 600);
        assert_eq!(now["offset"], 600);
    }
}

#[tokio::test]
async fn an_idempotent_retry_sent_to_another_instance_applies_once() {
    let redis = Redis::start();
    // One publisher, whose retry the load balancer sends to another instance: an
    // Idempotency-Key belongs to the key that sent it. Made before the instances start, so
    // every one knows it at once.
    let data = tempfile::TempDir::new().unwrap();
    let url = redis.url();
    let secret = support::make_key_in(data.path(), "publish:*", &[("PULSEBOARD_REDIS_URL", &url)]);
    let servers = instances(&redis, 3);
    let publisher = support::client_with_key(&secret);
    let post = |server: &Server| {
        publisher
            .post(format!("http://{}/api/v1/topics/metric:pay", server.addr))
            .header("Idempotency-Key", "charge-42")
            .json(&incr("paid"))
            .send()
    };
    let first = post(&servers[0]).await.unwrap();
    assert_eq!(first.status(), 200);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first: Value = first.json().await.unwrap();
    let retried = post(&servers[1]).await.unwrap();
    assert_eq!(retried.status(), 200);
    assert_eq!(retried.headers()["idempotent-replayed"], "true");
    assert_eq!(
        retried.json::<Value>().await.unwrap(),
        first,
        "the first answer"
    );
    let (_, now) = snapshot(&servers[1], "metric:pay").await;
    assert_eq!(now["state"]["paid"], 1, "applied once");
    // The same key for another request is refused on any instance.
    let other = publisher
        .post(format!(
            "http://{}/api/v1/topics/metric:pay",
            servers[1].addr
        ))
        .header("Idempotency-Key", "charge-42")
        .json(&incr("refunded"))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 409);
}

/// Publishes `count` increments to `topic` on `server`, one after another.
async fn publish_many(server: &Server, topic: &str, count: usize) {
    for _ in 0..count {
        assert_eq!(server.publish(topic, incr("n")).await.status(), 200);
    }
}

#[tokio::test]
async fn a_dropped_pubsub_connection_leaves_no_subscriber_a_gap() {
    let redis = Redis::start();
    let servers = instances(&redis, 3);
    let mut screen = servers[1].connect().await;
    subscribe(&mut screen, "metric:n", None).await;
    publish_many(&servers[0], "metric:n", 10).await;
    // The screen has its snapshot and the first ten live before anything is cut, so the
    // range checked below cannot be empty.
    let mut followed = follow_until(&mut screen, 10).await;
    assert_eq!(followed.snapshots.len(), 1);
    let first = followed.snapshots[0].offset;
    // Every pub/sub connection (the instances' followers) is cut; writes go on meanwhile.
    let killed = redis.cli(&["CLIENT", "KILL", "TYPE", "pubsub"]);
    assert_ne!(killed, "0", "an instance had a pub/sub connection");
    publish_many(&servers[0], "metric:n", 20).await;
    follow_on(&mut screen, &mut followed, 30).await;
    assert_eq!(followed.snapshots.len(), 1, "no snapshot after the first");
    assert_eq!(followed.offsets, (first + 1..=30).collect::<Vec<_>>());
    assert_eq!(followed.state["n"], 30);
    let metrics = servers[1].metrics().await;
    assert!(support::sample(&metrics, "pulseboard_gaps_filled_total") >= 1.0);
}

#[tokio::test]
async fn redis_killed_and_restarted_on_its_append_only_file_loses_nothing_and_keeps_every_epoch() {
    let mut redis = Redis::start();
    let servers = instances(&redis, 3);
    publish_many(&servers[0], "metric:n", 5).await;
    let (_, before) = snapshot(&servers[1], "metric:n").await;
    let mut screen = servers[1].connect().await;
    subscribe(&mut screen, "metric:n", None).await;
    let mut followed = follow_until(&mut screen, 5).await;
    // A crash, not a SHUTDOWN (which writes its files out first): only the append-only
    // file, fsynced on every write, has what was acknowledged.
    redis.kill();
    redis.start_again();
    // Writes flow again by themselves, in the same epoch.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let answer = servers[0].publish("metric:n", incr("n")).await;
        if answer.status() == 200 {
            let answer: Value = answer.json().await.unwrap();
            assert_eq!(answer["epoch"], before["epoch"], "the same epoch");
            assert_eq!(answer["offset"], 6, "nothing lost");
            break;
        }
        assert!(Instant::now() < deadline, "writes did not come back");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    follow_on(&mut screen, &mut followed, 6).await;
    assert_eq!(followed.offsets, [6], "the screen carried on");
    assert_eq!(
        followed.snapshots.len(),
        1,
        "with no snapshot but its first"
    );
}

#[tokio::test]
async fn a_flushed_redis_starts_new_epochs_and_every_screen_takes_a_fresh_snapshot() {
    let redis = Redis::start();
    let servers = instances(&redis, 3);
    publish_many(&servers[0], "metric:n", 5).await;
    let mut screen = servers[1].connect().await;
    subscribe(&mut screen, "metric:n", None).await;
    let before = follow_until(&mut screen, 5).await;
    assert_eq!(redis.cli(&["FLUSHALL"]), "OK");
    publish_many(&servers[0], "metric:n", 1).await;
    // A snapshot of the new epoch, holding only what was written since.
    let started_again = loop {
        if let ServerFrame::Snapshot(s) = next(&mut screen).await {
            break s;
        }
    };
    assert_ne!(started_again.epoch, before.at.epoch, "a new epoch");
    let written_since = started_again.state.get("n").cloned();
    assert!(written_since.is_none() || written_since == Some(json!(1)));
    // The instance logs the data loss.
    servers[1].logged(&["new epoch", "metric:n"]).await;
}

#[tokio::test]
async fn with_redis_down_writes_fail_fast_and_healthz_says_so_and_all_comes_back() {
    let mut redis = Redis::start();
    let servers = instances(&redis, 3);
    publish_many(&servers[0], "metric:n", 3).await;
    let mut screen = servers[1].connect().await;
    subscribe(&mut screen, "metric:n", None).await;
    let mut followed = follow_until(&mut screen, 3).await;
    redis.stop();

    let started = Instant::now();
    let refused = servers[0].publish("metric:n", incr("n")).await;
    assert_eq!(refused.status(), 503);
    let refused: Value = refused.json().await.unwrap();
    assert_eq!(refused["code"], "engine_unavailable");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "refused within a bound"
    );
    let (status, health) = servers[0].get("/healthz").await;
    assert_eq!(status, 503);
    assert_eq!(health["status"], "unavailable");
    let deadline = Instant::now() + Duration::from_secs(5);
    while support::sample(&servers[0].metrics().await, "pulseboard_engine_up") != 0.0 {
        assert!(
            Instant::now() < deadline,
            "/metrics did not say the engine is down"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    redis.start_again();
    let deadline = Instant::now() + Duration::from_secs(10);
    while servers[0].publish("metric:n", incr("n")).await.status() != 200 {
        assert!(Instant::now() < deadline, "writes did not come back");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The screen was never dropped, and gets the write with no gap.
    follow_on(&mut screen, &mut followed, 4).await;
    assert_eq!(followed.offsets, [4]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while servers[0].get("/healthz").await.0 != 200 {
        assert!(Instant::now() < deadline, "/healthz did not come back");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn screens_of_a_killed_instance_resume_on_another_with_no_gap() {
    let redis = Redis::start();
    let mut servers = instances(&redis, 3);
    let a = servers.remove(0);
    publish_many(&servers[1], "metric:n", 5).await;
    let mut screen = a.connect().await;
    subscribe(&mut screen, "metric:n", None).await;
    let held = follow_until(&mut screen, 5).await;
    a.kill();
    publish_many(&servers[1], "metric:n", 7).await;
    // The screen comes back through the load balancer, to another instance, from where it was.
    let mut screen = servers[0].connect().await;
    subscribe(&mut screen, "metric:n", Some(held.at)).await;
    let mut replayed = Vec::new();
    loop {
        match next(&mut screen).await {
            ServerFrame::Event(e) => replayed.push(e.offset),
            ServerFrame::Resumed(r) => {
                assert_eq!(r.replayed, 7);
                break;
            }
            other => panic!("expected the missed events, got {other:?}"),
        }
    }
    assert_eq!(replayed, (6..=12).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_key_made_on_one_instance_works_on_all_and_revoked_on_one_is_refused_by_all() {
    let redis = Redis::start();
    let servers = instances(&redis, 3);
    // Made over the API of A: a publisher's key.
    let (id, secret) = servers[0].create_key("ci", &["publish:metric:*"]).await;
    let ci = support::client_with_key(&secret);
    let write = |server: &Server| {
        ci.post(format!("http://{}/api/v1/topics/metric:ci", server.addr))
            .json(&incr("builds"))
            .send()
    };
    // Known on A at once, and on the others within a second (their keyring's refresh).
    assert_eq!(write(&servers[0]).await.unwrap().status(), 200);
    let deadline = Instant::now() + Duration::from_secs(3);
    for server in &servers[1..] {
        while write(server).await.unwrap().status() != 200 {
            assert!(
                Instant::now() < deadline,
                "a key made on A is unknown elsewhere"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    servers[0].revoke_key(&id).await;
    // Within a second (the keyring's refresh), C refuses it too.
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let answer = write(&servers[2]).await.unwrap();
        if answer.status() == 401 {
            let refusal: Value = answer.json().await.unwrap();
            assert_eq!(refusal["code"], "invalid_key");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "C still takes a key revoked on A"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(write(&servers[0]).await.unwrap().status(), 401);
}

/// Waits for a presence frame of `board` listing `count` people; their ids.
async fn viewers(socket: &mut Socket, board: &str, count: usize, within: Duration) -> Vec<String> {
    let deadline = Instant::now() + within;
    loop {
        assert!(
            Instant::now() < deadline,
            "{board} never showed {count} viewers"
        );
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(Some(Ok(Message::Text(text)))) = tokio::time::timeout(left, socket.next()).await
        else {
            continue;
        };
        if let Ok(ServerFrame::Presence(p)) = serde_json::from_str(text.as_str()) {
            if p.board == board && p.count == count as u64 {
                let people = p.people.expect("a small board lists its people");
                return people.into_iter().map(|v| v.id).collect();
            }
        }
    }
}

#[tokio::test]
async fn viewers_on_every_instance_see_each_other_and_a_dead_instance_s_viewers_leave() {
    let redis = Redis::start();
    let mut servers = instances(&redis, 3);
    let (mut on_a, mut on_b) = (servers[0].connect().await, servers[1].connect().await);
    support::send(&mut on_a, json!({"type": "join", "board": "demo"})).await;
    support::send(&mut on_b, json!({"type": "join", "board": "demo"})).await;
    let seen_on_a = viewers(&mut on_a, "demo", 2, Duration::from_secs(10)).await;
    let seen_on_b = viewers(&mut on_b, "demo", 2, Duration::from_secs(10)).await;
    assert_eq!(seen_on_a, seen_on_b, "the same two viewers everywhere");
    assert_ne!(
        seen_on_a[0], seen_on_a[1],
        "no two instances name a viewer alike"
    );
    // A dies without a word: its viewer leaves B's list within the documented bound.
    let a = servers.remove(0);
    let started = Instant::now();
    a.kill();
    viewers(&mut on_b, "demo", 1, Duration::from_secs(25)).await;
    assert!(
        started.elapsed() < Duration::from_secs(22),
        "within TTL + refresh (20 s)"
    );
}

#[tokio::test]
async fn a_person_with_pages_on_two_instances_counts_once_and_typing_crosses_over() {
    let redis = Redis::start();
    let servers = instances(&redis, 2);
    let join = |person: &str| json!({"type": "join", "board": "demo", "person": person});
    let (mut ana_a, mut ana_b) = (
        servers[0].connect_guest().await,
        servers[1].connect_guest().await,
    );
    support::send(&mut ana_a, join("ana-browser-1")).await;
    support::send(&mut ana_b, join("ana-browser-1")).await;
    let mut bo = servers[1].connect_guest().await;
    support::send(&mut bo, join("bo-browser-22")).await;
    // Ana's two pages, one per instance, are one person beside Bo, on both instances.
    let on_a = viewers(&mut ana_a, "demo", 2, Duration::from_secs(10)).await;
    let on_b = viewers(&mut bo, "demo", 2, Duration::from_secs(10)).await;
    assert_eq!(on_a, on_b, "the same two people everywhere");

    // A guest may not write notes on the demo board, so its typing is not shown; the admin's reaches
    // the other instance's pages.
    support::send(&mut ana_a, json!({"type": "typing", "board": "demo"})).await;
    let mut writer = servers[0].connect().await;
    support::send(&mut writer, json!({"type": "join", "board": "demo"})).await;
    support::send(&mut writer, json!({"type": "typing", "board": "demo"})).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        assert!(
            Instant::now() < deadline,
            "Bo on B never saw the writer typing"
        );
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(Some(Ok(Message::Text(text)))) = tokio::time::timeout(left, bo.next()).await else {
            continue;
        };
        if let Ok(ServerFrame::Typing(typing)) = serde_json::from_str(text.as_str()) {
            assert_eq!(typing.board, "demo");
            assert!(
                typing.person.starts_with("k-"),
                "the admin's, never the guest's"
            );
            break;
        }
    }
}

#[tokio::test]
async fn a_reload_asked_of_one_instance_reaches_the_screens_of_every_instance() {
    let redis = Redis::start();
    let servers = instances(&redis, 3);
    let mut on_b = servers[1].connect().await;
    support::send(&mut on_b, json!({"type": "join", "board": "demo"})).await;
    // B counts the screen once it answers the join with the board's viewers.
    while !matches!(next(&mut on_b).await, ServerFrame::Presence(_)) {}
    let asked = servers[0]
        .http()
        .post(format!("http://{}/api/v1/screens/reload", servers[0].addr))
        .json(&json!({"within_s": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(asked.status(), 200);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        assert!(
            Instant::now() < deadline,
            "B's screen was not asked to reload"
        );
        if let ServerFrame::Reload { within_ms } = next(&mut on_b).await {
            assert_eq!(within_ms, 1000);
            break;
        }
    }
}

#[tokio::test]
async fn an_event_stream_resumes_on_another_instance_from_its_last_event_id() {
    let redis = Redis::start();
    let mut servers = instances(&redis, 3);
    let a = servers.remove(0);
    publish_many(&servers[1], "metric:n", 3).await;
    let mut stream = support::EventStream::open(&a, "topics=metric:n", None).await;
    let mut last_id = None;
    while last_id.is_none() {
        let message = stream.next().await;
        if let ServerFrame::Snapshot(_) = message.frame {
            last_id = message.id;
        }
    }
    drop(stream);
    a.kill();
    publish_many(&servers[1], "metric:n", 4).await;
    // The browser's EventSource reconnects on its own with Last-Event-ID, through the load
    // balancer, here to another instance.
    let last_id = last_id.unwrap();
    let mut stream =
        support::EventStream::open(&servers[0], "topics=metric:n", Some(&last_id)).await;
    let mut missed = Vec::new();
    loop {
        match stream.next().await.frame {
            ServerFrame::Event(e) => missed.push(e.offset),
            ServerFrame::Resumed(r) => {
                assert_eq!(r.replayed, 4);
                break;
            }
            ServerFrame::Welcome(_) => {}
            other => panic!("expected only the missed events, got {other:?}"),
        }
    }
    assert_eq!(missed, [4, 5, 6, 7]);
}

#[tokio::test]
async fn when_each_entity_last_changed_is_the_same_on_every_instance() {
    let redis = Redis::start();
    let servers = instances(&redis, 3);
    let (a, b, c) = (&servers[0], &servers[1], &servers[2]);
    // B follows the topic before the writes, so its copy learns the times from the events.
    let mut screen = b.connect().await;
    subscribe(&mut screen, "metric:quiet", None).await;
    follow_until(&mut screen, 0).await;
    assert_eq!(a.publish("metric:quiet", incr("old")).await.status(), 200);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(c.publish("metric:quiet", incr("new")).await.status(), 200);
    let (_, from_redis) = snapshot(c, "metric:quiet").await;
    let (old, new) = (&from_redis["changed"]["old"], &from_redis["changed"]["new"]);
    assert!(
        new.as_u64().unwrap() >= old.as_u64().unwrap() + 1000,
        "{from_redis}"
    );
    let mut late = b.connect().await;
    subscribe(&mut late, "metric:quiet", None).await;
    let followed_copy = loop {
        if let ServerFrame::Snapshot(s) = next(&mut late).await {
            break s;
        }
    };
    assert_eq!(json!(followed_copy.changed), from_redis["changed"]);
}
