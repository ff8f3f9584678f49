//! Anonymous sockets asking for a public topic's snapshot over and over, beside one
//! legitimate screen and a publisher, against the release server: what the attack costs the
//! server (memory, CPU) and the screen (publish → event latency).
//!
//! The topic has 200 entities (about 27 KiB as a snapshot). Each of four attackers sends a
//! `subscribe` listing it 2,000 times, at the frame limit (`messages_per_second`, 100), and
//! opens a new socket whenever the server closes one. In one phase they read what they are
//! sent; in the other they never read, so the server's queue for them fills. The screen
//! follows another topic that the publisher writes 50 times a second, each event carrying the
//! moment it was sent. Each phase runs 22 s and is measured after its first 2.
//!
//! `cargo bench --features ssr --bench abuse`. Prints a Markdown table for BENCHMARKS.md.

#[path = "../tests/support/mod.rs"]
mod support;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use support::{cpu_seconds, Server};
use tokio_tungstenite::tungstenite::Message;

const ATTACKERS: usize = 4;
const PHASE: Duration = Duration::from_secs(22);
/// The start of each phase, not measured: the attackers and the queues get going.
const WARM_UP: Duration = Duration::from_secs(2);

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

/// The server process' resident memory, in KiB; 0 once it is gone.
fn resident_kib(pid: u32) -> u64 {
    support::resident_kib(pid).unwrap_or(0)
}

#[derive(Clone, Copy, PartialEq)]
enum Attack {
    None,
    Reading,
    NotReading,
}

impl Attack {
    fn name(self) -> &'static str {
        match self {
            Attack::None => "no attack",
            Attack::Reading => "4 attackers, reading",
            Attack::NotReading => "4 attackers, not reading",
        }
    }
}

/// One attacker: sockets one after the other, each sending the subscribe frame at the
/// frame limit until the server closes it. Returns how many sockets it opened.
async fn attack(
    url: String,
    reading: bool,
    stop: Arc<AtomicBool>,
    snapshots: Arc<AtomicU64>,
) -> u64 {
    let topics: Vec<Value> = (0..2000).map(|_| json!({"topic": "metric:big"})).collect();
    let frame = json!({"type": "subscribe", "topics": topics}).to_string();
    let mut sockets = 0;
    while !stop.load(Ordering::Relaxed) {
        let Ok((socket, _)) = tokio_tungstenite::connect_async(&url).await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        sockets += 1;
        let (mut sink, mut stream) = socket.split();
        let counting = snapshots.clone();
        let reader = tokio::spawn(async move {
            if !reading {
                return;
            }
            while let Some(Ok(message)) = stream.next().await {
                if let Message::Text(text) = message {
                    if text.as_str().starts_with(r#"{"type":"snapshot""#) {
                        counting.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        });
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        while !stop.load(Ordering::Relaxed) {
            tick.tick().await;
            let sent = tokio::time::timeout(
                Duration::from_secs(1),
                sink.send(Message::Text(frame.clone().into())),
            )
            .await;
            if !matches!(sent, Ok(Ok(()))) {
                break;
            }
        }
        reader.abort();
    }
    sockets
}

struct Measured {
    latencies_ms: Vec<f64>,
    extra_mib: f64,
    cpu_s: f64,
    sockets: u64,
    snapshots: u64,
}

async fn phase(server: &Server, attack_mode: Attack) -> Measured {
    let pid = server.child.id();
    let base_kib = resident_kib(pid);
    let stop = Arc::new(AtomicBool::new(false));
    let snapshots = Arc::new(AtomicU64::new(0));
    let url = format!("ws://{}/ws", server.addr);
    let attackers: Vec<_> = (0..ATTACKERS)
        .filter(|_| attack_mode != Attack::None)
        .map(|_| {
            let reading = attack_mode == Attack::Reading;
            tokio::spawn(attack(
                url.clone(),
                reading,
                stop.clone(),
                snapshots.clone(),
            ))
        })
        .collect();

    // The legitimate screen.
    let (mut screen, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    let subscribe = json!({"type": "subscribe", "topics": [{"topic": "metric:live"}]});
    screen
        .send(Message::Text(subscribe.to_string().into()))
        .await
        .unwrap();
    let measuring_from = Instant::now() + WARM_UP;
    let until = Instant::now() + PHASE;
    let publisher = {
        let http = server.http();
        let url = format!("http://{}/api/v1/topics/metric:live", server.addr);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(20));
            while Instant::now() < until {
                tick.tick().await;
                let body = json!({"ops": [{"op": "set", "entity_id": "t", "payload": now_us()}]});
                let _ = http.post(&url).json(&body).send().await;
            }
        })
    };
    let mut peak_kib = base_kib;
    let cpu_before = cpu_seconds(pid).unwrap_or(0.0);
    let mut latencies_ms = Vec::new();
    let mut memory = tokio::time::interval(Duration::from_millis(100));
    while Instant::now() < until {
        tokio::select! {
            message = screen.next() => {
                let Some(Ok(Message::Text(text))) = message else { break };
                let frame: Value = serde_json::from_str(text.as_str()).unwrap();
                if frame["type"] == "event" && Instant::now() > measuring_from {
                    let sent = frame["payload"].as_u64().unwrap_or(0);
                    latencies_ms.push(now_us().saturating_sub(sent) as f64 / 1000.0);
                }
            }
            _ = memory.tick() => peak_kib = peak_kib.max(resident_kib(pid)),
        }
    }
    let cpu_s = cpu_seconds(pid).unwrap_or(0.0) - cpu_before;
    stop.store(true, Ordering::Relaxed);
    let _ = publisher.await;
    let mut sockets = 0;
    for attacker in attackers {
        sockets += attacker.await.unwrap_or(0);
    }
    latencies_ms.sort_by(f64::total_cmp);
    Measured {
        latencies_ms,
        extra_mib: peak_kib.saturating_sub(base_kib) as f64 / 1024.0,
        cpu_s,
        sockets,
        snapshots: snapshots.load(Ordering::Relaxed),
    }
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

#[tokio::main]
async fn main() {
    let boards = tempfile::TempDir::new().unwrap();
    std::fs::write(
        boards.path().join("wall.toml"),
        "title = \"Wall\"\n[[widget]]\ntype = \"leaderboard\"\ntopic = \"metric:big\"\n\
         [[widget]]\ntype = \"number\"\ntopic = \"metric:live\"\nentity = \"t\"\n",
    )
    .unwrap();
    let dir = boards.path().to_str().unwrap().to_owned();
    let server = Server::start(&[
        ("PULSEBOARD_BOARDS", dir.as_str()),
        ("PULSEBOARD_REQUESTS_PER_KEY", "100000"),
    ]);
    let ops: Vec<Value> = (0..200)
        .map(|n| json!({"op": "set", "entity_id": format!("player-{n:03}"), "payload": {"name": format!("Player {n} of the big board"), "score": n * 10, "team": "blue"}}))
        .collect();
    let response = server.publish("metric:big", json!({"ops": ops})).await;
    assert_eq!(response.status(), 200);
    let size = server
        .http()
        .get(format!("http://{}/api/v1/topics/metric:big", server.addr))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap()
        .len();
    println!("The topic's snapshot: {:.1} KiB.\n", size as f64 / 1024.0);
    println!("| phase | screen p50 ms | p99 ms | max ms | server extra memory (peak) | server CPU s | attacker sockets | snapshots read |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    for attack_mode in [
        Attack::None,
        Attack::Reading,
        Attack::None,
        Attack::NotReading,
    ] {
        let measured = phase(&server, attack_mode).await;
        let l = &measured.latencies_ms;
        println!(
            "| {} | {:.2} | {:.2} | {:.2} | {:.1} MiB | {:.2} | {} | {} |",
            attack_mode.name(),
            quantile(l, 0.5),
            quantile(l, 0.99),
            l.last().copied().unwrap_or(f64::NAN),
            measured.extra_mib,
            measured.cpu_s,
            measured.sockets,
            measured.snapshots,
        );
        // The server settles between phases: queues drain, sockets close.
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}
