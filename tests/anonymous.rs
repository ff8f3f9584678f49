//! What a client with no key (or a low-privilege one) can do to a public board, tried as an
//! attacker would, against the real binary: read what turned private, tie the server up with
//! slow or endless requests, make it repeat work or remember without bound. Each refusal is
//! checked for its documented answer, and the legitimate traffic beside it keeps flowing.

mod support;

use futures_util::{SinkExt, StreamExt};
use pulseboard::protocol::{ErrorCode, ServerFrame};
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};
use support::{client_with_key, closed_with, next, send, subscribe, EventStream, Redis, Server};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

const OPS: &str = "title = \"Ops\"\n[[widget]]\ntype = \"feed\"\ntopic = \"feed:ops\"\n\
    [[widget]]\ntype = \"number\"\ntopic = \"metric:shared\"\nentity = \"n\"\n";
const LOBBY: &str =
    "title = \"Lobby\"\n[[widget]]\ntype = \"number\"\ntopic = \"metric:shared\"\nentity = \"n\"\n";
const SECRET: &str = "title = \"Launch\"\nprivate = true\n[notes]\nanyone = true\n\
    [[widget]]\ntype = \"text\"\nmarkdown = \"The codes are 0000\"\n";

/// A boards directory with the public boards `ops` and `lobby`.
fn boards() -> TempDir {
    let dir = TempDir::new().unwrap();
    std::fs::write(dir.path().join("ops.toml"), OPS).unwrap();
    std::fs::write(dir.path().join("lobby.toml"), LOBBY).unwrap();
    dir
}

fn server_on(boards: &Path, env: &[(&str, &str)]) -> Server {
    let dir = boards.to_str().unwrap().to_owned();
    let mut env = env.to_vec();
    env.push(("PULSEBOARD_BOARDS", &dir));
    Server::start(&env)
}

/// The next frame that is not presence (which comes and goes as people do).
async fn next_not_presence(socket: &mut support::Socket) -> ServerFrame {
    loop {
        match next(socket).await {
            ServerFrame::Presence(_) => continue,
            frame => return frame,
        }
    }
}

/// Reads frames until the socket closes; returns them, and the close's code and reason.
async fn frames_until_close(socket: &mut support::Socket) -> (Vec<ServerFrame>, u16, String) {
    let (frames, close) = support::frames_until_close(socket).await;
    (frames, u16::from(close.code), close.reason.to_string())
}

async fn publish_feed(server: &Server, text: &str) {
    let body = json!({"ops": [{"op": "push", "payload": {"text": text}}]});
    assert_eq!(server.publish("feed:ops", body).await.status(), 200);
}

/// Whether a frame is an event (or state) of `topic`.
fn of_topic(frame: &ServerFrame, topic: &str) -> bool {
    match frame {
        ServerFrame::Event(e) => e.topic == topic,
        ServerFrame::Snapshot(s) => s.topic == topic,
        ServerFrame::Coalesced(c) => c.topic == topic,
        _ => false,
    }
}

#[tokio::test]
async fn an_early_joiner_of_a_board_that_appears_private_is_refused_and_shown_nothing() {
    let dir = boards();
    let server = server_on(dir.path(), &[]);
    let mut guest = server.connect_guest().await;
    send(&mut guest, json!({"type": "join", "board": "secret"})).await;
    match next(&mut guest).await {
        ServerFrame::Error(error) => {
            assert_eq!(error.code, ErrorCode::UnknownBoard);
            assert_eq!(error.board.as_deref(), Some("secret"));
        }
        other => panic!("expected unknown_board, got {other:?}"),
    }

    std::fs::write(dir.path().join("secret.toml"), SECRET).unwrap();
    // An admin page joins once the server has read the file, and writes a note.
    let mut admin = server.connect().await;
    let started = Instant::now();
    loop {
        send(&mut admin, json!({"type": "join", "board": "secret"})).await;
        if let ServerFrame::Board(_) = next_not_presence(&mut admin).await {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the board appears"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    send(&mut admin, json!({"type": "typing", "board": "secret"})).await;
    // Nothing of it reaches the guest: no board, no presence, no typing.
    let quiet = tokio::time::timeout(Duration::from_millis(1500), guest.next()).await;
    assert!(quiet.is_err(), "the guest got {quiet:?}");
}

/// An anonymous page on `ops` and an anonymous script following two of its topics (one
/// also on the public `lobby`); then `ops` turns private. `reader` is where they connect,
/// `writer` where the events are published (another instance, with Redis).
async fn followers_of_a_board_made_private(dir: &Path, reader: &Server, writer: &Server) {
    let mut page = reader.connect_guest().await;
    send(&mut page, json!({"type": "join", "board": "ops"})).await;
    assert!(matches!(
        next_not_presence(&mut page).await,
        ServerFrame::Board(_)
    ));
    subscribe(&mut page, "feed:ops", None).await;
    assert!(of_topic(&next_not_presence(&mut page).await, "feed:ops"));
    let mut script = reader.connect_guest().await;
    send(
        &mut script,
        json!({"type": "subscribe", "topics": [{"topic": "feed:ops"}, {"topic": "metric:shared"}]}),
    )
    .await;
    next(&mut script).await;
    next(&mut script).await;
    publish_feed(writer, "before").await;
    assert!(of_topic(&next_not_presence(&mut page).await, "feed:ops"));
    assert!(of_topic(&next(&mut script).await, "feed:ops"));

    std::fs::write(
        dir.join("ops.toml"),
        format!("private = true\n{OPS}[[widget]]\ntype = \"text\"\nmarkdown = \"internal\"\n"),
    )
    .unwrap();
    // Events keep coming while the server notices the change.
    let publishing = async {
        for n in 0..20 {
            publish_feed(writer, &format!("during {n}")).await;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let (_, (frames, code, reason)) = tokio::join!(publishing, frames_until_close(&mut page));
    assert_eq!((code, reason.as_str()), (4403, "board ops is private"));
    assert!(
        !frames.iter().any(|f| matches!(f, ServerFrame::Board(_))),
        "the private version never reached the page: {frames:?}"
    );

    // The script is told which topic it lost, keeps the other, and gets no more of the lost.
    let told = loop {
        match next(&mut script).await {
            ServerFrame::Error(error) => break error,
            frame => assert!(of_topic(&frame, "feed:ops"), "{frame:?}"),
        }
    };
    assert_eq!(told.code, ErrorCode::Unauthenticated);
    assert_eq!(told.topics, ["feed:ops"]);
    publish_feed(writer, "after").await;
    let body = json!({"ops": [{"op": "incr", "entity_id": "n", "by": 1}]});
    writer.publish("metric:shared", body).await;
    let frame = next(&mut script).await;
    assert!(of_topic(&frame, "metric:shared"), "{frame:?}");
    support::quiet(&mut script).await;
}

#[tokio::test]
async fn followers_of_a_board_made_private_get_nothing_more_of_it_and_are_told() {
    let dir = boards();
    let server = server_on(dir.path(), &[]);
    followers_of_a_board_made_private(dir.path(), &server, &server).await;
}

#[tokio::test]
async fn followers_of_a_board_made_private_on_two_instances_over_redis() {
    let redis = Redis::start();
    let url = redis.url();
    let dir = boards();
    let env = [("PULSEBOARD_REDIS_URL", url.as_str())];
    let a = server_on(dir.path(), &env);
    let b = server_on(dir.path(), &env);
    followers_of_a_board_made_private(dir.path(), &b, &a).await;
}

#[tokio::test]
async fn a_stream_following_a_board_made_private_is_told_and_ends() {
    let dir = boards();
    let server = server_on(dir.path(), &[]);
    let url = format!("http://{}/sse?board=ops", server.addr);
    let response = reqwest::get(&url).await.unwrap();
    assert_eq!(response.status(), 200);
    let mut stream = EventStream::from_response(response);
    std::fs::write(
        dir.path().join("ops.toml"),
        format!("private = true\n{OPS}"),
    )
    .unwrap();
    let refusal = loop {
        if let ServerFrame::Error(error) = stream.next().await.frame {
            break error;
        }
    };
    assert_eq!(refusal.code, ErrorCode::Unauthenticated);
    assert_eq!(refusal.message, "board ops is private");
    assert!(stream.ended().await, "the stream ends");
    assert_eq!(reqwest::get(&url).await.unwrap().status(), 401);
}

#[tokio::test]
async fn a_key_whose_scopes_narrow_loses_what_they_no_longer_allow() {
    let dir = boards();
    for (name, topic) in [("red", "feed:red"), ("blue", "feed:blue")] {
        let text = format!(
            "title = \"{name}\"\nprivate = true\n[[widget]]\ntype = \"feed\"\ntopic = \"{topic}\"\n"
        );
        std::fs::write(dir.path().join(format!("{name}.toml")), text).unwrap();
    }
    let server = server_on(dir.path(), &[]);
    let (id, link) = server.create_key("tv", &["read:red", "read:blue"]).await;
    let url = format!("ws://{}/ws?token={link}", server.addr);
    let (mut tv, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    next(&mut tv).await;
    send(&mut tv, json!({"type": "join", "board": "blue"})).await;
    assert!(matches!(
        next_not_presence(&mut tv).await,
        ServerFrame::Board(_)
    ));
    let (mut reader, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    next(&mut reader).await;
    send(
        &mut reader,
        json!({"type": "subscribe", "topics": [{"topic": "feed:red"}, {"topic": "feed:blue"}]}),
    )
    .await;
    next(&mut reader).await;
    next(&mut reader).await;

    let narrowed = server
        .http()
        .patch(format!("http://{}/api/v1/keys/{id}", server.addr))
        .json(&json!({"scopes": ["read:red"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(narrowed.status(), 200);
    let (_, code, reason) = frames_until_close(&mut tv).await;
    assert_eq!((code, reason.as_str()), (4403, "board blue is private"));
    let ServerFrame::Error(told) = next(&mut reader).await else {
        panic!("the reader is told")
    };
    assert_eq!(
        (told.code, told.topics.clone()),
        (ErrorCode::Forbidden, vec!["feed:blue".to_owned()])
    );
    let body = json!({"ops": [{"op": "push", "payload": 1}]});
    server.publish("feed:blue", body.clone()).await;
    server.publish("feed:red", body).await;
    assert!(of_topic(&next(&mut reader).await, "feed:red"));
    support::quiet(&mut reader).await;
}

#[tokio::test]
async fn a_broken_edit_of_a_public_board_holds_it_private_until_it_is_fixed() {
    let dir = boards();
    let server = server_on(dir.path(), &[]);
    let (_, link) = server.create_key("tv", &["read:ops"]).await;
    let mut guest = server.connect_guest().await;
    send(&mut guest, json!({"type": "join", "board": "ops"})).await;
    next_not_presence(&mut guest).await;
    let (mut tv, _) =
        tokio_tungstenite::connect_async(format!("ws://{}/ws?token={link}", server.addr))
            .await
            .unwrap();
    next(&mut tv).await;
    send(&mut tv, json!({"type": "join", "board": "ops"})).await;
    next_not_presence(&mut tv).await;

    // The edit that makes it private, with a typo: it fails closed.
    std::fs::write(
        dir.path().join("ops.toml"),
        format!("private = true\n{OPS}title = "),
    )
    .unwrap();
    let (_, code, reason) = frames_until_close(&mut guest).await;
    assert_eq!(code, 1013, "try again later: {reason}");
    assert!(reason.contains("has a mistake"), "{reason}");
    let ServerFrame::Board(held) = next_not_presence(&mut tv).await else {
        panic!("the share link keeps the board, with the problem")
    };
    assert!(held.view.board.is_some() && held.view.problem.is_some());
    let page = reqwest::get(format!("http://{}/b/ops", server.addr))
        .await
        .unwrap();
    assert_eq!(page.status(), 503);
    assert!(page.text().await.unwrap().contains("being fixed"));

    std::fs::write(dir.path().join("ops.toml"), OPS).unwrap();
    let started = Instant::now();
    loop {
        let mut guest = server.connect_guest().await;
        send(&mut guest, json!({"type": "join", "board": "ops"})).await;
        let message = tokio::time::timeout(Duration::from_secs(5), guest.next()).await;
        if let Ok(Some(Ok(Message::Text(text)))) = message {
            if text.as_str().contains(r#""type":"board""#) {
                break;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "public again once fixed"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A raw connection that sends `GET /` and then a header line every `every`, as slowloris
/// does; resolves with how long the server kept it open.
async fn trickle(addr: String, every: Duration) -> Duration {
    let started = Instant::now();
    let Ok(mut stream) = TcpStream::connect(&addr).await else {
        return Duration::ZERO;
    };
    if stream
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
        .await
        .is_err()
    {
        return started.elapsed();
    }
    let mut buffer = [0u8; 1024];
    let mut n = 0;
    loop {
        tokio::select! {
            read = stream.read(&mut buffer) => {
                if matches!(read, Ok(0) | Err(_)) {
                    return started.elapsed();
                }
            }
            () = tokio::time::sleep(every) => {
                n += 1;
                let line = format!("X-Trickle-{n}: {n}\r\n");
                if stream.write_all(line.as_bytes()).await.is_err() {
                    return started.elapsed();
                }
            }
        }
        if started.elapsed() > Duration::from_secs(30) {
            return started.elapsed();
        }
    }
}

/// The server process' open descriptors.
fn descriptors(server: &Server) -> usize {
    std::fs::read_dir(format!("/proc/{}/fd", server.child.id()))
        .map(|dir| dir.count())
        .unwrap_or(0)
}

#[tokio::test]
async fn header_tricklers_are_closed_within_the_header_timeout_while_health_answers() {
    let server = Server::start(&[
        ("PULSEBOARD_HEADER_TIMEOUT", "3"),
        ("PULSEBOARD_HTTP_CONNECTIONS_PER_IP", "5000"),
    ]);
    let before = descriptors(&server);
    let tricklers: Vec<_> = (0..800)
        .map(|_| tokio::spawn(trickle(server.addr.clone(), Duration::from_secs(1))))
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        descriptors(&server) > before + 700,
        "the tricklers are connected"
    );
    let health = reqwest::get(format!("http://{}/healthz", server.addr))
        .await
        .unwrap();
    assert_eq!(health.status(), 200, "the server still answers");
    let mut longest = Duration::ZERO;
    for trickler in tricklers {
        longest = longest.max(trickler.await.unwrap());
    }
    assert!(
        longest < Duration::from_secs(5),
        "every trickler is closed within the header timeout (3 s) and a poll: {longest:?}"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        descriptors(&server) < before + 10,
        "and its descriptors are back"
    );
}

#[tokio::test]
async fn idle_and_slow_connections_are_closed_and_pooled_clients_carry_on() {
    let server = Server::start(&[
        ("PULSEBOARD_KEEP_ALIVE_TIMEOUT", "2"),
        ("PULSEBOARD_BODY_TIMEOUT", "2"),
    ]);
    // A connection that never sends a byte.
    let started = Instant::now();
    let mut silent = TcpStream::connect(&server.addr).await.unwrap();
    let mut buffer = [0u8; 256];
    let read = tokio::time::timeout(Duration::from_secs(5), silent.read(&mut buffer)).await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "{read:?}");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(1900) && waited < Duration::from_secs(4),
        "{waited:?}"
    );

    // A body that trickles: 408 once the body timeout has passed, and the connection closes.
    let mut slow = TcpStream::connect(&server.addr).await.unwrap();
    let head = format!(
        "POST /api/v1/topics/metric:slow HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"ops\":",
        server.key
    );
    slow.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(6), slow.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "the connection is closed");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("body_timeout"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(4));

    // A pooled keep-alive client whose connection was closed while idle just goes on.
    let pooled = server.http();
    let url = format!("http://{}/api/v1/topics/metric:pooled", server.addr);
    let body = json!({"ops": [{"op": "incr", "entity_id": "n", "by": 1}]});
    for _ in 0..3 {
        let response = pooled.post(&url).json(&body).send().await.unwrap();
        assert_eq!(response.status(), 200);
        tokio::time::sleep(Duration::from_millis(2500)).await;
    }
}

#[tokio::test]
async fn an_address_holds_at_most_its_share_of_plain_connections_too() {
    let server = Server::start(&[("PULSEBOARD_HTTP_CONNECTIONS_PER_IP", "20")]);
    let mut held = Vec::new();
    for _ in 0..20 {
        held.push(TcpStream::connect(&server.addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut over = TcpStream::connect(&server.addr).await.unwrap();
    over.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(3), over.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "closed at once");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 429"), "{answer}");
    assert!(answer.contains("too_many_connections"), "{answer}");
    drop(held.pop());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let health = reqwest::get(format!("http://{}/healthz", server.addr))
        .await
        .unwrap();
    assert_eq!(health.status(), 200, "a freed place is taken");
}

#[tokio::test]
async fn a_topic_listed_two_thousand_times_is_one_snapshot_and_asking_again_costs() {
    let dir = boards();
    let server = server_on(dir.path(), &[("PULSEBOARD_MESSAGES_PER_SECOND", "10")]);
    let ops: Vec<Value> = (0..200)
        .map(|n| json!({"op": "set", "entity_id": format!("entity-{n:03}"), "payload": {"name": "x".repeat(100), "n": n}}))
        .collect();
    assert_eq!(
        server
            .publish("metric:shared", json!({"ops": ops}))
            .await
            .status(),
        200
    );
    let mut guest = server.connect_guest().await;
    let topics: Vec<Value> = (0..2000)
        .map(|_| json!({"topic": "metric:shared"}))
        .collect();
    send(&mut guest, json!({"type": "subscribe", "topics": topics})).await;
    let ServerFrame::Snapshot(snapshot) = next(&mut guest).await else {
        panic!("a snapshot")
    };
    assert_eq!(snapshot.state.len(), 200);
    // Only one: what follows is at most the word that the connection is over its budget
    // (the frame itself costs one frame per KiB: 52 of a budget of 10 a second).
    while let Ok(Some(Ok(Message::Text(text)))) =
        tokio::time::timeout(Duration::from_millis(500), guest.next()).await
    {
        let frame = serde_json::from_str(text.as_str()).unwrap();
        assert!(
            matches!(&frame, ServerFrame::Error(e) if e.code == ErrorCode::RateLimited),
            "{frame:?}"
        );
    }

    // Asked again and again: each snapshot costs its size against the frame budget (10 a
    // second, bursts of 20), so few are made before the connection is told to slow down.
    let mut guest = server.connect_guest().await;
    subscribe(&mut guest, "metric:shared", None).await;
    assert!(matches!(next(&mut guest).await, ServerFrame::Snapshot(_)));
    for _ in 0..15 {
        send(
            &mut guest,
            json!({"type": "subscribe", "topics": [{"topic": "metric:shared"}]}),
        )
        .await;
    }
    let (mut snapshots, mut limited) = (0, false);
    while let Ok(Some(Ok(Message::Text(text)))) =
        tokio::time::timeout(Duration::from_millis(500), guest.next()).await
    {
        match serde_json::from_str(text.as_str()).unwrap() {
            ServerFrame::Snapshot(_) => snapshots += 1,
            ServerFrame::Error(e) if e.code == ErrorCode::RateLimited => limited = true,
            _ => {}
        }
    }
    assert!(limited, "told to slow down");
    assert!(snapshots <= 5, "{snapshots} snapshots of 15 asked");
}

/// The server process' resident memory, in KiB.
fn resident_kib(server: &Server) -> u64 {
    support::resident_kib(server.child.id()).expect("the server's /proc status")
}

/// 5,000 joins of boards that do not exist, from one anonymous socket: each refused.
async fn joins_of_unknown_boards(server: &Server) {
    let mut guest = server.connect_guest().await;
    for n in 0..5000 {
        let join = json!({"type": "join", "board": format!("nothing-{n}")});
        guest
            .feed(Message::Text(join.to_string().into()))
            .await
            .unwrap();
    }
    guest.flush().await.unwrap();
    for _ in 0..5000 {
        let ServerFrame::Error(error) = next(&mut guest).await else {
            panic!("every join is refused")
        };
        assert_eq!(error.code, ErrorCode::UnknownBoard);
    }
}

#[tokio::test]
async fn joins_of_unknown_boards_are_refused_without_growing_the_server() {
    let dir = boards();
    let server = server_on(dir.path(), &[("PULSEBOARD_MESSAGES_PER_SECOND", "100000")]);
    joins_of_unknown_boards(&server).await;
    let before = resident_kib(&server);
    joins_of_unknown_boards(&server).await;
    let grew = resident_kib(&server).saturating_sub(before);
    assert!(grew < 2048, "the server grew by {grew} KiB");

    // A page joins one board; a connection joins at most `max_boards`.
    let server_small = server_on(dir.path(), &[("PULSEBOARD_MAX_BOARDS", "1")]);
    let mut page = server_small.connect_guest().await;
    send(&mut page, json!({"type": "join", "board": "ops"})).await;
    assert!(matches!(
        next_not_presence(&mut page).await,
        ServerFrame::Board(_)
    ));
    send(&mut page, json!({"type": "join", "board": "lobby"})).await;
    let ServerFrame::Error(error) = next_not_presence(&mut page).await else {
        panic!("the second board is refused")
    };
    assert_eq!(error.code, ErrorCode::TooManyBoards);
}

#[tokio::test]
async fn joins_of_unknown_boards_make_no_presence_in_redis() {
    let redis = Redis::start();
    let url = redis.url();
    let dir = boards();
    let env = [
        ("PULSEBOARD_REDIS_URL", url.as_str()),
        ("PULSEBOARD_MESSAGES_PER_SECOND", "100000"),
    ];
    let a = server_on(dir.path(), &env);
    let b = server_on(dir.path(), &env);
    joins_of_unknown_boards(&a).await;
    joins_of_unknown_boards(&b).await;
    let keys = redis.cli(&["--scan", "--pattern", "pb:presence:*"]);
    assert!(!keys.contains("nothing-"), "{keys}");
}

#[tokio::test]
async fn a_frame_declaring_16_mib_is_closed_with_1009_before_1_mib_is_sent() {
    let server = Server::start(&[]);
    let mut stream = TcpStream::connect(&server.addr).await.unwrap();
    let handshake = format!(
        "GET /ws HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        server.addr
    );
    stream.write_all(handshake.as_bytes()).await.unwrap();
    // The 101, then the welcome frame.
    let mut received = Vec::new();
    let body_at = loop {
        let mut buffer = [0u8; 4096];
        let n = stream.read(&mut buffer).await.unwrap();
        assert!(n > 0, "the handshake is answered");
        received.extend_from_slice(&buffer[..n]);
        if let Some(at) = received.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
    };
    assert!(received.starts_with(b"HTTP/1.1 101"));
    let mut received = received.split_off(body_at);
    // A masked text frame whose header declares 16 MiB.
    let mut header = vec![0x81, 0x80 | 127];
    header.extend_from_slice(&(16u64 << 20).to_be_bytes());
    header.extend_from_slice(&[1, 2, 3, 4]);
    stream.write_all(&header).await.unwrap();
    let (mut reading, mut writing) = stream.into_split();
    let sender = tokio::spawn(async move {
        let chunk = vec![b'x'; 16 * 1024];
        let mut sent = 0usize;
        while sent < 16 << 20 {
            if writing.write_all(&chunk).await.is_err() {
                break;
            }
            sent += chunk.len();
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        sent
    });
    // Read until a close frame (opcode 8) arrives.
    let close = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let mut buffer = [0u8; 4096];
            let n = reading.read(&mut buffer).await.unwrap_or(0);
            if n == 0 {
                return None;
            }
            received.extend_from_slice(&buffer[..n]);
            // Frames from the server are unmasked, and these are short: 2-byte headers.
            let mut at = 0;
            while at + 2 <= received.len() {
                let (opcode, len) = (received[at] & 0x0f, (received[at + 1] & 0x7f) as usize);
                let (start, len) = if len == 126 {
                    let len = u16::from_be_bytes([received[at + 2], received[at + 3]]) as usize;
                    (at + 4, len)
                } else {
                    (at + 2, len)
                };
                if start + len > received.len() {
                    break;
                }
                if opcode == 8 {
                    return Some(received[start..start + len].to_vec());
                }
                at = start + len;
            }
        }
    })
    .await
    .expect("a close within 10 s")
    .expect("a close frame");
    let code = u16::from_be_bytes([close[0], close[1]]);
    assert_eq!(code, 1009);
    sender.abort();
    let sent = sender.await.unwrap_or(0);
    assert!(sent < 1 << 20, "closed after {sent} bytes");
}

#[tokio::test]
async fn one_idempotency_key_used_by_two_keys_applies_both() {
    idempotency_keys_belong_to_their_key(&Server::start(&[("PULSEBOARD_IDEMPOTENCY_KEYS", "3")]))
        .await;
}

#[tokio::test]
async fn one_idempotency_key_used_by_two_keys_applies_both_over_redis() {
    let redis = Redis::start();
    let url = redis.url();
    let server = Server::start(&[
        ("PULSEBOARD_REDIS_URL", url.as_str()),
        ("PULSEBOARD_IDEMPOTENCY_KEYS", "3"),
    ]);
    let a = idempotency_keys_belong_to_their_key(&server).await;
    let held = redis.cli(&["ZCARD", &format!("pb:idem-of:{a}")]);
    assert_eq!(held, "3", "Redis holds the newest three of a's keys");
}

/// Returns the id of the key that used four idempotency keys.
async fn idempotency_keys_belong_to_their_key(server: &Server) -> String {
    let (id, a) = server.create_key("a", &["publish:metric:a"]).await;
    let (_, b) = server.create_key("b", &["publish:metric:b"]).await;
    let post = |secret: &str, topic: &str, key: &str| {
        let http = client_with_key(secret);
        let url = format!("http://{}/api/v1/topics/{topic}", server.addr);
        let body = json!({"ops": [{"op": "incr", "entity_id": "n", "by": 1}]});
        let key = key.to_owned();
        async move {
            let response = http
                .post(url)
                .header("idempotency-key", key)
                .json(&body)
                .send()
                .await
                .unwrap();
            let replayed = response.headers().contains_key("idempotent-replayed");
            (
                response.status().as_u16(),
                replayed,
                response.json::<Value>().await.unwrap(),
            )
        }
    };
    let (status, _, _) = post(&a, "metric:a", "deploy-42").await;
    assert_eq!(status, 200);
    let (status, replayed, body) = post(&b, "metric:b", "deploy-42").await;
    assert_eq!((status, replayed), (200, false), "b's own key: {body}");
    let (status, replayed, _) = post(&a, "metric:a", "deploy-42").await;
    assert_eq!((status, replayed), (200, true), "a's retry replays");

    // Each key keeps its newest three: the oldest is let go, and a retry of it applies again.
    for n in 0..3 {
        assert_eq!(post(&a, "metric:a", &format!("run-{n}")).await.0, 200);
    }
    let (_, replayed, _) = post(&a, "metric:a", "run-2").await;
    assert!(replayed, "a recent key still replays");
    let (status, replayed, _) = post(&a, "metric:a", "deploy-42").await;
    assert_eq!((status, replayed), (200, false), "the oldest was let go");
    let (_, snapshot) = server.get("/api/v1/topics/metric:a").await;
    assert_eq!(snapshot["state"]["n"], 5);
    id
}

/// Posts `body` to `path` with the admin key: the status and the JSON answer.
async fn post(server: &Server, path: &str, body: Value) -> (u16, Value) {
    let url = format!("http://{}{path}", server.addr);
    let response = server.http().post(url).json(&body).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn writes_that_write_nothing_are_refused() {
    let server = Server::start(&[]);
    let (status, body) = post(&server, "/api/v1/topics/metric:x", json!({"ops": []})).await;
    assert_eq!(
        (status, body["code"].as_str(), body["field"].as_str()),
        (422, Some("invalid_ops"), Some("ops"))
    );

    let one = json!({"op": "incr", "entity_id": "n", "by": 1});
    let batch =
        json!({"writes": [{"topic": "metric:x", "ops": [one]}, {"topic": "metric:y", "ops": []}]});
    let (status, body) = post(&server, "/api/v1/batch", batch).await;
    assert_eq!(
        (status, body["field"].as_str()),
        (422, Some("writes[1].ops"))
    );

    // Twenty thousand writes of nothing are refused whole, holding no topic.
    let empty: Vec<Value> = (0..20_000)
        .map(|n| json!({"topic": format!("metric:e{n}"), "ops": []}))
        .collect();
    let (status, _) = post(&server, "/api/v1/batch", json!({"writes": empty})).await;
    assert_eq!(status, 422);

    let wide: Vec<Value> = (0..101)
        .map(|n| json!({"topic": format!("metric:w{n}"), "ops": [one]}))
        .collect();
    let (status, body) = post(&server, "/api/v1/batch", json!({"writes": wide})).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (413, Some("too_many_topics"))
    );
    let (_, snapshot) = server.get("/api/v1/topics/metric:x").await;
    assert!(
        snapshot["state"].as_object().is_none_or(|s| s.is_empty()),
        "nothing applied: {snapshot}"
    );
}

#[tokio::test]
async fn a_note_pins_to_an_entity_of_a_bounded_name() {
    let dir = boards();
    let server = server_on(dir.path(), &[]);
    let url = format!("http://{}/api/v1/boards/ops/notes", server.addr);
    let note =
        |entity: String| json!({"text": "hello", "topic": "metric:shared", "entity": entity});
    let response = server
        .http()
        .post(&url)
        .json(&note("x".repeat(10_000)))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 422);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], "invalid_note");
    let response = server
        .http()
        .post(&url)
        .json(&note("n".into()))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
}

#[tokio::test]
async fn a_guest_is_known_by_an_unreadable_cookie_and_a_128_bit_digest() {
    let dir = boards();
    let server = server_on(dir.path(), &[]);
    let page = reqwest::get(format!("http://{}/b/ops", server.addr))
        .await
        .unwrap();
    let cookie = page.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cookie.starts_with("pulseboard_guest=") && cookie.contains("HttpOnly"),
        "{cookie}"
    );
    let pair = cookie.split(';').next().unwrap().to_owned();
    let id = pair.strip_prefix("pulseboard_guest=").unwrap().to_owned();
    assert_eq!(id.len(), 32, "128 random bits");

    // Two pages of the browser (the cookie on their sockets) are one guest.
    let mut pages = Vec::new();
    for _ in 0..2 {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut request = format!("ws://{}/ws", server.addr)
            .into_client_request()
            .unwrap();
        request
            .headers_mut()
            .insert("cookie", pair.parse().unwrap());
        let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
        next(&mut socket).await;
        send(&mut socket, json!({"type": "join", "board": "ops"})).await;
        pages.push(socket);
    }
    let presence = loop {
        if let ServerFrame::Presence(p) = next(&mut pages[1]).await {
            if p.people
                .as_ref()
                .is_some_and(|people| people.len() == 1 && people[0].tabs.len() == 2)
            {
                break p;
            }
        }
    };
    let guest = &presence.people.unwrap()[0];
    assert!(guest.guest);
    assert_eq!(guest.id.len(), "g-".len() + 32);
    assert!(!guest.id.contains(&id));
    // A page that has one is not given another.
    let again = server
        .http()
        .get(format!("http://{}/b/ops", server.addr))
        .header("cookie", &pair)
        .send()
        .await
        .unwrap();
    assert!(again.headers().get("set-cookie").is_none());
}

#[tokio::test]
async fn signing_out_ends_the_sockets_and_streams_of_that_session() {
    let dir = boards();
    let server = server_on(dir.path(), &[]);
    let base = format!("http://{}", server.addr);
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let signed_in = browser
        .post(format!("{base}/login"))
        .header("origin", &base)
        .form(&[("key", server.key.as_str()), ("next", "/")])
        .send()
        .await
        .unwrap();
    let cookie = signed_in.headers()["set-cookie"].to_str().unwrap();
    let session = cookie.split(';').next().unwrap().to_owned();
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = format!("ws://{}/ws", server.addr)
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("cookie", session.parse().unwrap());
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    next(&mut socket).await;
    let stream = browser
        .get(format!("{base}/sse?topics=metric:shared"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let mut stream = EventStream::from_response(stream);

    let out = browser
        .post(format!("{base}/logout"))
        .header("cookie", &session)
        .header("origin", &base)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 303);
    let close = closed_with(&mut socket).await;
    assert_eq!(u16::from(close.code), 4401);
    loop {
        if let ServerFrame::Error(error) = stream.next().await.frame {
            assert_eq!(error.code, ErrorCode::Unauthenticated);
            break;
        }
    }
    assert!(stream.ended().await);
}

#[tokio::test]
async fn an_ipv6_host_counts_by_its_64_and_refusals_are_counted_not_each_logged() {
    let server = Server::start(&[
        ("PULSEBOARD_REQUESTS_PER_IP", "2"),
        ("PULSEBOARD_TRUST_PROXY", "true"),
    ]);
    let http = reqwest::Client::new();
    let url = format!("http://{}/healthz", server.addr);
    let from = |address: &str| {
        http.get(&url)
            .header("x-forwarded-for", address.to_owned())
            .send()
    };
    // Bursts of four for the /64, whichever address in it asks.
    let mut statuses = Vec::new();
    for n in 1..=6 {
        statuses.push(
            from(&format!("2001:db8::{n}"))
                .await
                .unwrap()
                .status()
                .as_u16(),
        );
    }
    assert_eq!(statuses, [200, 200, 200, 200, 429, 429]);
    assert_eq!(
        from("2001:db8:0:1::1").await.unwrap().status(),
        200,
        "another /64"
    );

    for _ in 0..300 {
        from("2001:db8::9").await.unwrap();
    }
    let metrics = server.metrics().await;
    assert!(support::sample(&metrics, "pulseboard_refused_requests_total") >= 300.0);
    let lines = server.log_lines(&["audit", "rate limited"]).len();
    assert!(lines <= 2, "{lines} log lines for 300 refusals");
}

#[tokio::test]
async fn a_redis_without_appendonly_is_warned_of_at_start_and_in_healthz() {
    let redis = Redis::start_with(&["--appendonly", "no"]);
    let url = redis.url();
    let server = Server::start(&[("PULSEBOARD_REDIS_URL", url.as_str())]);
    // Warned at start.
    server.logged(&["appendonly off"]).await;
    let (status, health) = server.get("/healthz").await;
    assert_eq!(status, 200);
    assert!(
        health["warnings"][0]
            .as_str()
            .unwrap()
            .contains("appendonly off"),
        "{health}"
    );
    redis.cli(&["CONFIG", "SET", "appendonly", "yes"]);
    let started = Instant::now();
    loop {
        let (_, health) = server.get("/healthz").await;
        if health.get("warnings").is_none() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the warning goes once fixed"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
