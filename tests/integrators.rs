//! What a client written from the documentation alone met in its first week, each tried as
//! that client tried it: a resume from as far back as the history reaches, a pooled
//! keep-alive connection that goes on after a refusal, a body too large for the server, and
//! the close a flooding client is owed.

mod support;

use futures_util::{SinkExt, StreamExt};
use pulseboard::protocol::{Position, ServerFrame};
use serde_json::{json, Value};
use std::time::Duration;
use support::{next, subscribe, Server, Socket};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

/// Writes `events` events to `topic` in requests of up to 1,000 ops and half a MiB;
/// returns the head.
async fn write_events(server: &Server, topic: &str, events: usize, payload: &Value) -> Position {
    let per_request = (512 * 1024 / payload.to_string().len()).clamp(1, 1000);
    let mut head = None;
    for start in (0..events).step_by(per_request) {
        let ops: Vec<Value> = (start..events.min(start + per_request))
            .map(|n| json!({"op": "set", "entity_id": format!("e{}", n % 50), "payload": payload}))
            .collect();
        let answer = server.publish(topic, json!({ "ops": ops })).await;
        assert_eq!(answer.status(), 200);
        let answer: Value = answer.json().await.unwrap();
        head = Some(Position {
            epoch: answer["epoch"].as_u64().unwrap(),
            offset: answer["offset"].as_u64().unwrap(),
        });
    }
    head.expect("at least one event")
}

/// Reads a replay to its end: the offsets of its events, and the `resumed` frame's
/// `replayed`. Fails on a snapshot: the events were all still in the history.
async fn read_replay(socket: &mut Socket) -> (Vec<u64>, u64) {
    let mut offsets = Vec::new();
    loop {
        match next(socket).await {
            ServerFrame::Event(event) => offsets.push(event.offset),
            ServerFrame::Resumed(resumed) => return (offsets, resumed.replayed),
            ServerFrame::Snapshot(snapshot) => panic!(
                "a snapshot at {} after {} replayed events, though history held them all",
                snapshot.offset,
                offsets.len()
            ),
            _ => {}
        }
    }
}

fn resident_kib(pid: u32) -> u64 {
    support::resident_kib(pid).expect("the server's /proc status")
}

#[tokio::test]
async fn a_resume_as_far_back_as_the_history_replays_every_event_whatever_the_queue() {
    for queue in ["1024", "16"] {
        // The defaults: history 1024, queue 1024; then a queue much shorter than the replay.
        let server = Server::start(&[("PULSEBOARD_QUEUE", queue)]);
        let head = write_events(&server, "feed:busy", 1500, &json!(1)).await;
        let from = head.offset - 1023;
        let mut socket = server.connect().await;
        subscribe(
            &mut socket,
            "feed:busy",
            Some(Position {
                offset: from,
                ..head
            }),
        )
        .await;
        let (offsets, replayed) = read_replay(&mut socket).await;
        assert_eq!(
            offsets,
            (from + 1..=head.offset).collect::<Vec<_>>(),
            "queue {queue}"
        );
        assert_eq!(replayed, 1023);
        // Live from there on.
        let after = write_events(&server, "feed:busy", 1, &json!(2)).await;
        assert!(
            matches!(next(&mut socket).await, ServerFrame::Event(e) if e.offset == after.offset)
        );
    }
}

#[tokio::test]
async fn screens_replaying_a_long_history_through_a_short_queue_hold_no_copy_of_it() {
    let server = Server::start(&[("PULSEBOARD_QUEUE", "16"), ("PULSEBOARD_HISTORY", "1024")]);
    // About 8 MiB of history: 1,024 events of 8 KiB.
    let payload = json!("x".repeat(8 * 1024));
    let head = write_events(&server, "feed:big", 1024, &payload).await;
    let before = resident_kib(server.child.id());
    let mut screens = Vec::new();
    for _ in 0..8 {
        let mut socket = server.connect().await;
        subscribe(
            &mut socket,
            "feed:big",
            Some(Position { offset: 1, ..head }),
        )
        .await;
        screens.push(socket);
    }
    // Nobody reads for a while: each replay waits in its queue, not in a copy of its own.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let held = resident_kib(server.child.id()).saturating_sub(before);
    assert!(
        held < 16 * 1024,
        "8 screens replaying 8 MiB each made the server grow by {held} KiB"
    );
    for socket in &mut screens {
        let (offsets, replayed) = read_replay(socket).await;
        assert_eq!(offsets, (2..=head.offset).collect::<Vec<_>>());
        assert_eq!(replayed, head.offset - 1);
    }
}

/// One answer read off a raw connection.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Value,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One keep-alive HTTP/1.1 connection, written and read byte by byte as a pooled client's
/// would be, so each test decides when the body goes out.
struct Connection {
    stream: TcpStream,
    read: Vec<u8>,
}

impl Connection {
    async fn open(server: &Server) -> Self {
        Connection {
            stream: TcpStream::connect(&server.addr).await.unwrap(),
            read: Vec::new(),
        }
    }

    /// Sends a POST of `body` to `path`: its head first, the body in a second write.
    async fn post(&mut self, path: &str, key: &str, body: &str) {
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {key}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        self.stream.write_all(head.as_bytes()).await.unwrap();
        self.stream.flush().await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        self.stream.write_all(body.as_bytes()).await.unwrap();
    }

    /// The next answer; `None` if the server closed the connection instead.
    async fn answer(&mut self) -> Option<Answer> {
        let within = Duration::from_secs(5);
        let end_of_head = loop {
            if let Some(at) = self.read.windows(4).position(|w| w == b"\r\n\r\n") {
                break at;
            }
            if !self.fill(within).await {
                return None;
            }
        };
        let head = String::from_utf8(self.read[..end_of_head].to_vec()).unwrap();
        let mut lines = head.split("\r\n");
        let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
        let headers: Vec<(String, String)> = lines
            .filter_map(|line| line.split_once(':'))
            .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
            .collect();
        let length: usize = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .map_or(0, |(_, v)| v.parse().unwrap());
        let start = end_of_head + 4;
        while self.read.len() < start + length {
            assert!(self.fill(within).await, "the body was cut off");
        }
        let body = serde_json::from_slice(&self.read[start..start + length]).unwrap_or_default();
        self.read.drain(..start + length);
        Some(Answer {
            status,
            headers,
            body,
        })
    }

    /// Reads more; false once the server has closed its end.
    async fn fill(&mut self, within: Duration) -> bool {
        let mut buffer = [0u8; 4096];
        match tokio::time::timeout(within, self.stream.read(&mut buffer)).await {
            Ok(Ok(0)) | Ok(Err(_)) => false,
            Ok(Ok(n)) => {
                self.read.extend_from_slice(&buffer[..n]);
                true
            }
            Err(_) => panic!("no answer within {within:?}"),
        }
    }
}

const ONE_OP: &str = r#"{"ops": [{"op": "incr", "entity_id": "n", "by": 1}]}"#;

#[tokio::test]
async fn after_a_429_the_retry_on_the_same_connection_is_served() {
    // One request a second per key, bursts of two.
    let server = Server::start(&[("PULSEBOARD_REQUESTS_PER_KEY", "1")]);
    let mut connection = Connection::open(&server).await;
    let refused = loop {
        connection
            .post("/api/v1/topics/metric:n", &server.key, ONE_OP)
            .await;
        let answer = connection.answer().await.expect("an answer");
        if answer.status == 429 {
            break answer;
        }
        assert_eq!(answer.status, 200);
    };
    assert_eq!(refused.body["code"], "rate_limited");
    assert_eq!(
        refused.header("connection"),
        None,
        "the connection stays open"
    );
    let wait: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    tokio::time::sleep(Duration::from_secs(wait)).await;
    // The retry Retry-After asked for, on the same connection.
    connection
        .post("/api/v1/topics/metric:n", &server.key, ONE_OP)
        .await;
    let retried = connection.answer().await.expect("the retry is answered");
    assert_eq!(retried.status, 200, "{}", retried.body);
}

#[tokio::test]
async fn after_a_401_for_an_unknown_key_the_next_request_on_the_same_connection_is_served() {
    let server = Server::start(&[]);
    let mut connection = Connection::open(&server).await;
    connection
        .post("/api/v1/topics/metric:n", "pb_unknown", ONE_OP)
        .await;
    let refused = connection.answer().await.expect("an answer");
    assert_eq!(refused.status, 401);
    assert_eq!(refused.body["code"], "invalid_key");
    assert_eq!(
        refused.header("connection"),
        None,
        "the connection stays open"
    );
    connection
        .post("/api/v1/topics/metric:n", &server.key, ONE_OP)
        .await;
    let next = connection
        .answer()
        .await
        .expect("the next request is answered");
    assert_eq!(next.status, 200, "{}", next.body);
}

#[tokio::test]
async fn a_body_declared_over_the_limit_is_refused_before_any_of_it_is_sent() {
    let server = Server::start(&[]);
    let mut connection = Connection::open(&server).await;
    let head = format!(
        "POST /api/v1/topics/metric:n HTTP/1.1\r\nHost: localhost\r\n\
         Authorization: Bearer {}\r\nContent-Length: {}\r\n\r\n",
        server.key,
        2 * 1024 * 1024
    );
    connection.stream.write_all(head.as_bytes()).await.unwrap();
    // Not a byte of the body: the answer comes anyway, and says the connection ends.
    let refused = connection
        .answer()
        .await
        .expect("an answer before the body");
    assert_eq!(refused.status, 413);
    assert_eq!(refused.body["code"], "body_too_large");
    assert_eq!(refused.header("connection"), Some("close"));

    // A chunked body has no declared length: it is refused once it passes the limit.
    let mut connection = Connection::open(&server).await;
    let head = format!(
        "POST /api/v1/topics/metric:n HTTP/1.1\r\nHost: localhost\r\n\
         Authorization: Bearer {}\r\nTransfer-Encoding: chunked\r\n\r\n",
        server.key
    );
    connection.stream.write_all(head.as_bytes()).await.unwrap();
    let chunk = format!("{:x}\r\n{}\r\n", 64 * 1024, " ".repeat(64 * 1024));
    for _ in 0..32 {
        if connection.stream.write_all(chunk.as_bytes()).await.is_err() {
            break;
        }
    }
    let refused = connection.answer().await.expect("an answer");
    assert_eq!(refused.status, 413);
    assert_eq!(refused.body["code"], "body_too_large");
}

#[tokio::test]
async fn every_flooding_client_reads_its_close_frame_and_the_reason() {
    // One frame a second, bursts of two: a flood is refused at once and closed after 5 s.
    let server = Server::start(&[("PULSEBOARD_MESSAGES_PER_SECOND", "1")]);
    let mut flooders = Vec::new();
    for _ in 0..20 {
        let (socket, _) = tokio_tungstenite::connect_async(server.ws_url())
            .await
            .unwrap();
        flooders.push(tokio::spawn(flood_until_closed(socket)));
    }
    let mut closes = Vec::new();
    for flooder in flooders {
        closes.push(flooder.await.unwrap());
    }
    let seen: Vec<String> = closes.iter().map(|c| format!("{c:?}")).collect();
    let right = closes
        .iter()
        .filter(|c| matches!(c, Some((1008, reason)) if reason == "too many frames for too long"))
        .count();
    assert_eq!(right, 20, "20 of 20 read 1008 and its reason: {seen:?}");
}

/// Sends a frame every 2 ms and reads what comes back a tenth of a second late, as a busy
/// client does, until the server closes the connection. Like many clients (asyncio's, for
/// one), it gives up on the connection as soon as a send fails. Returns the close frame's
/// code and reason, or `None` if the connection failed under it before it read one.
async fn flood_until_closed(socket: Socket) -> Option<(u16, String)> {
    let (mut sink, mut stream) = socket.split();
    let flood = async {
        let frame = json!({"type": "ping"}).to_string();
        while sink.send(Message::Text(frame.clone().into())).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    };
    let read = async {
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            match stream.next().await {
                Some(Ok(Message::Close(Some(close)))) => {
                    return Some((u16::from(close.code), close.reason.to_string()))
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return None,
            }
        }
    };
    let closed = async {
        tokio::select! {
            close = read => close,
            () = flood => None,
        }
    };
    tokio::time::timeout(Duration::from_secs(15), closed)
        .await
        .expect("closed within 15 s")
}

/// `GET /api/v1/topics/{topic}/changes`, with the admin key; its status and body.
async fn changes(server: &Server, topic: &str, query: &str) -> (u16, Value) {
    let url = format!(
        "http://{}/api/v1/topics/{topic}/changes?{query}",
        server.addr
    );
    let answer = server.http().get(url).send().await.unwrap();
    (answer.status().as_u16(), answer.json().await.unwrap())
}

fn frame_offsets(body: &Value, kind: &str) -> Vec<u64> {
    let frames = body["frames"].as_array().unwrap();
    let of_kind = frames.iter().filter(|f| f["type"] == kind);
    of_kind.map(|f| f["offset"].as_u64().unwrap()).collect()
}

#[tokio::test]
async fn a_long_poll_answers_the_events_after_a_position_at_once() {
    let server = Server::start(&[]);
    let head = write_events(&server, "metric:lp", 5, &json!(1)).await;
    let (status, first) = changes(&server, "metric:lp", "").await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(
        frame_offsets(&first, "snapshot"),
        [5],
        "no position: a snapshot"
    );
    assert_eq!(first["offset"], 5);

    let after = format!("after={}.2&wait=20", head.epoch);
    let started = std::time::Instant::now();
    let (status, body) = changes(&server, "metric:lp", &after).await;
    assert_eq!(status, 200);
    assert_eq!(
        frame_offsets(&body, "event"),
        [3, 4, 5],
        "exactly the missed events"
    );
    assert_eq!(
        (body["epoch"].as_u64(), body["offset"].as_u64()),
        (Some(head.epoch), Some(5))
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "answered without the wait"
    );
}

#[tokio::test]
async fn a_long_poll_at_the_head_waits_for_the_next_event_or_answers_nothing() {
    let server = Server::start(&[]);
    let head = write_events(&server, "metric:lp", 3, &json!(1)).await;
    let at_head = format!("after={}.{}", head.epoch, head.offset);

    // Nothing comes: an empty answer at the same position once the wait is over.
    let started = std::time::Instant::now();
    let (status, body) = changes(&server, "metric:lp", &format!("{at_head}&wait=1")).await;
    assert_eq!(status, 200);
    assert_eq!(body["frames"], json!([]));
    assert_eq!(body["offset"], 3);
    assert!(started.elapsed() >= Duration::from_millis(900), "it waited");

    // The next event ends the wait.
    let waiting = {
        let query = format!("{at_head}&wait=30");
        let server_addr = server.addr.clone();
        let http = server.http();
        tokio::spawn(async move {
            let url = format!("http://{server_addr}/api/v1/topics/metric:lp/changes?{query}");
            let answer = http.get(url).send().await.unwrap();
            answer.json::<Value>().await.unwrap()
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiting.is_finished(), "the long poll is waiting");
    server.set("metric:lp", "e1", 42).await;
    let body = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("the event ends the wait")
        .unwrap();
    assert_eq!(frame_offsets(&body, "event"), [4]);
    assert_eq!(body["frames"][0]["payload"], 42);
    assert_eq!(body["offset"], 4);
}

#[tokio::test]
async fn a_long_poll_from_a_position_that_is_gone_gets_a_snapshot() {
    let server = Server::start(&[("PULSEBOARD_HISTORY", "4")]);
    let head = write_events(&server, "metric:lp", 20, &json!(1)).await;
    for gone in [
        format!("after={}.2", head.epoch),
        format!("after={}.3", head.epoch + 1),
        format!("after={}.99", head.epoch),
    ] {
        let (status, body) = changes(&server, "metric:lp", &gone).await;
        assert_eq!(status, 200);
        assert_eq!(frame_offsets(&body, "snapshot"), [20], "{gone}: a snapshot");
        assert_eq!(frame_offsets(&body, "event"), Vec::<u64>::new());
        assert_eq!(body["frames"][0]["state"].as_object().unwrap().len(), 20);
    }
    let (status, body) = changes(&server, "metric:lp", "after=12").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("invalid_position"))
    );
    let (status, body) = changes(&server, "metric:lp", "wait=56").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("invalid_request"))
    );
}

#[tokio::test]
async fn long_polls_are_bounded_and_the_one_over_is_told_when_to_retry() {
    let server = Server::start(&[("PULSEBOARD_LONG_POLLS", "2")]);
    let head = write_events(&server, "metric:lp", 1, &json!(1)).await;
    let at_head = format!("after={}.{}&wait=30", head.epoch, head.offset);
    let mut waiting = Vec::new();
    for _ in 0..2 {
        let url = format!(
            "http://{}/api/v1/topics/metric:lp/changes?{at_head}",
            server.addr
        );
        let http = server.http();
        waiting.push(tokio::spawn(async move {
            http.get(url).send().await.unwrap().status()
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let url = format!(
        "http://{}/api/v1/topics/metric:lp/changes?{at_head}",
        server.addr
    );
    let refused = server.http().get(url).send().await.unwrap();
    assert_eq!(refused.status(), 503);
    let retry: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=5).contains(&retry));
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["code"], "too_many_waiters");
    // An event answers both waiters; their places are free again.
    server.set("metric:lp", "e1", 2).await;
    for waiter in waiting {
        assert_eq!(waiter.await.unwrap(), 200);
    }
    let (status, body) = changes(&server, "metric:lp", &format!("after={}.1", head.epoch)).await;
    assert_eq!(status, 200);
    assert_eq!(frame_offsets(&body, "event"), [2]);
}

/// Found by the client conformance suite: a topic followed before its first write, whose
/// only subscriber dropped, came back in a new epoch, so the resume from `(E, 0)` got a
/// snapshot instead of the events.
#[tokio::test]
async fn a_resume_from_before_a_topic_s_first_write_gets_its_events() {
    let server = Server::start(&[]);
    let mut socket = server.connect().await;
    subscribe(&mut socket, "metric:unwritten", None).await;
    let ServerFrame::Snapshot(first) = next(&mut socket).await else {
        panic!("a snapshot first");
    };
    assert_eq!(first.offset, 0);
    drop(socket);
    tokio::time::sleep(Duration::from_millis(200)).await;
    server.set("metric:unwritten", "a", 1).await;
    server.set("metric:unwritten", "a", 2).await;
    let mut socket = server.connect().await;
    let from = Position {
        epoch: first.epoch,
        offset: 0,
    };
    subscribe(&mut socket, "metric:unwritten", Some(from)).await;
    let (offsets, replayed) = read_replay(&mut socket).await;
    assert_eq!((offsets, replayed), (vec![1, 2], 2));
}
