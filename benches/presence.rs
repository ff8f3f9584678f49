//! Presence in a burst: N viewers (10,000; `PULSEBOARD_BENCH_VIEWERS`) open one board at
//! once, each a person of its own, against the release server. Counts every presence frame
//! and byte the server sent until every viewer has seen all N, beside what one frame per
//! arrival to every viewer, each listing everyone, would have cost.
//!
//! `cargo bench --features ssr --bench presence`. Prints a Markdown table for BENCHMARKS.md.

#[path = "../tests/support/mod.rs"]
mod support;

use futures_util::{SinkExt, StreamExt};
use pulseboard::protocol::{Person, ServerFrame};
use serde_json::json;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::Server;
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::Message;

/// Handshakes in flight at once.
const CONCURRENT_HANDSHAKES: usize = 64;

#[derive(Default)]
struct Counted {
    frames: AtomicU64,
    bytes: AtomicU64,
    settled: AtomicU64,
}

/// Bytes in MB, or in TB where MB would be unreadable.
fn size(bytes: f64) -> String {
    if bytes >= 1e12 {
        format!("{:.1} TB", bytes / 1e12)
    } else {
        format!("{:.1} MB", bytes / 1e6)
    }
}

#[tokio::main]
async fn main() {
    let viewers: u64 = std::env::var("PULSEBOARD_BENCH_VIEWERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000);
    // The demo board's file, without the demo feed: a join names a board that exists.
    let server = Server::start(&[
        ("PULSEBOARD_CONNECTIONS_PER_IP", "100000"),
        ("PULSEBOARD_REQUESTS_PER_IP", "1000000"),
        ("PULSEBOARD_DEMO", "false"),
        (
            "PULSEBOARD_BOARDS",
            concat!(env!("CARGO_MANIFEST_DIR"), "/boards"),
        ),
    ]);
    let url = format!("ws://{}/ws", server.addr);
    let counted = Arc::new(Counted::default());
    let handshakes = Arc::new(Semaphore::new(CONCURRENT_HANDSHAKES));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..viewers {
        let (url, counted, handshakes) = (url.clone(), counted.clone(), handshakes.clone());
        tasks.push(tokio::spawn(async move {
            let permit = handshakes.acquire_owned().await.unwrap();
            let (mut socket, _) = tokio_tungstenite::connect_async(&url)
                .await
                .expect("the socket opens");
            let join = json!({"type": "join", "board": "demo", "person": format!("bench-{i:08}")});
            socket
                .send(Message::Text(join.to_string().into()))
                .await
                .unwrap();
            drop(permit);
            let mut settled = false;
            while let Some(Ok(message)) = socket.next().await {
                let Message::Text(text) = message else {
                    continue;
                };
                if !text.as_str().starts_with(r#"{"type":"presence""#) {
                    continue;
                }
                counted.frames.fetch_add(1, Ordering::Relaxed);
                counted
                    .bytes
                    .fetch_add(text.len() as u64, Ordering::Relaxed);
                let Ok(ServerFrame::Presence(presence)) = ServerFrame::decode(text.as_str()) else {
                    continue;
                };
                if presence.count == viewers && !settled {
                    settled = true;
                    counted.settled.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    while counted.settled.load(Ordering::Relaxed) < viewers {
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "only {} of {viewers} viewers saw everyone",
            counted.settled.load(Ordering::Relaxed)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let took = started.elapsed();
    // Anything still on its way after everyone has seen everyone counts too.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let frames = counted.frames.load(Ordering::Relaxed);
    let bytes = counted.bytes.load(Ordering::Relaxed);
    // One frame per arrival to everyone there then, each listing them all.
    let n = viewers as f64;
    let naive_frames = n * (n + 1.0) / 2.0;
    // A listed frame's size is an envelope plus so much per person, as this server writes one.
    let envelope = r#"{"type":"presence","board":"demo","count":10000,"people":[]}"#.len() as f64;
    let person = Person {
        id: "g-4be0a91c22d7".into(),
        name: "Guest 417".into(),
        guest: true,
        since: "2026-12-02T10:04:40.900Z".into(),
        tabs: vec!["c12345".into()],
    };
    let per_person = serde_json::to_string(&person).unwrap().len() as f64 + 1.0;
    // Arrival i sends i frames, each listing i people.
    let naive_bytes = envelope * naive_frames + per_person * n * (n + 1.0) * (2.0 * n + 1.0) / 6.0;
    println!("| viewers | all see all after | presence frames | per viewer | bytes sent | naive frames | naive bytes |");
    println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    println!(
        "| {viewers} | {:.1} s | {frames} | {:.1} | {} | {:.0} | {} |",
        took.as_secs_f64(),
        frames as f64 / n,
        size(bytes as f64),
        naive_frames,
        size(naive_bytes),
    );
    for task in tasks {
        task.abort();
    }
    server.stop();
}
