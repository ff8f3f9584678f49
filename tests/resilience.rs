//! Failures a wall screen lives through, against the real server: peers that go silent.

mod support;

use pulseboard::protocol::ServerFrame;
use serde_json::json;
use std::time::Duration;
use support::{next, sample, send, Server};

#[tokio::test]
async fn a_silent_peer_is_closed_after_the_idle_timeout_and_a_listening_one_is_kept() {
    let server = Server::start(&[
        ("PULSEBOARD_HEARTBEAT", "1"),
        ("PULSEBOARD_IDLE_TIMEOUT", "3"),
    ]);
    // The settings reach clients in the welcome, so browsers ping at the same rate.
    let (mut listening, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws", server.addr))
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
    let mut silent = server.connect().await;
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
            most = most.max(presence.viewers.len());
            if most == 2 && presence.viewers.len() == 1 {
                break presence.left;
            }
        }
    };
    assert!(left.is_some());
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
    let metrics = reqwest::get(format!("http://{}/metrics", server.addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(sample(&metrics, "pulseboard_idle_closed_total"), 1.0);
    assert_eq!(sample(&metrics, "pulseboard_connections"), 1.0);
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
