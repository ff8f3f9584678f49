//! The fan-out load tool: many WebSocket subscribers, one paced publisher, and what reaches
//! them. It measures delivered messages/s, publish→receive latency (p50 / p99 / p99.9, from a
//! send timestamp in each payload), connection setup rate, and the server's resident memory
//! per idle connection (from /proc). It talks only to loopback, spreads its connections over
//! several 127.0.0.x source addresses, and stops by itself.
//!
//! ```sh
//! cargo bench --features ssr --bench fanout -- --subscribers 1000 --rate 50 --seconds 10
//! cargo bench --profile dev --features ssr --bench fanout -- --smoke   # a few seconds
//! ```
//!
//! Without `--server` it starts the server binary of the same build on an empty data dir.
//! Prints one Markdown table row.

#[path = "../tests/support/mod.rs"]
mod support;

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use support::Server;
use tokio::net::TcpSocket;
use tokio_tungstenite::tungstenite::Message;

struct Options {
    subscribers: usize,
    /// Events published per second, over all topics.
    rate: u64,
    seconds: u64,
    topics: usize,
    /// How many 127.0.0.x addresses the connections come from.
    sources: u8,
    /// A running server (`127.0.0.1:3000`); otherwise one is started.
    server: Option<String>,
}

impl Options {
    fn parse() -> Self {
        let mut options = Options {
            subscribers: 1000,
            rate: 50,
            seconds: 10,
            topics: 1,
            sources: 8,
            server: None,
        };
        let args: Vec<String> = std::env::args().skip(1).collect();
        let mut args = args.iter();
        while let Some(flag) = args.next() {
            let mut value = || args.next().cloned().unwrap_or_default();
            match flag.as_str() {
                "--subscribers" => options.subscribers = value().parse().expect("a count"),
                "--rate" => options.rate = value().parse().expect("events per second"),
                "--seconds" => options.seconds = value().parse().expect("seconds"),
                "--topics" => options.topics = value().parse().expect("a count"),
                "--sources" => options.sources = value().parse().expect("1 to 254"),
                "--server" => options.server = Some(value()),
                "--smoke" => {
                    options.subscribers = 200;
                    options.rate = 50;
                    options.seconds = 2;
                }
                // cargo bench passes --bench to every bench target.
                "--bench" => {}
                other => panic!("unknown option {other}"),
            }
        }
        assert!(
            options.subscribers <= 19_000,
            "bounded: at most 19,000 subscribers"
        );
        assert!(options.seconds <= 300, "bounded: at most 300 seconds");
        assert!((1..=254).contains(&options.sources));
        options
    }
}

fn micros_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// Resident memory of a process, from /proc.
fn resident_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// The send time stamped into an event's payload, found without parsing the whole frame.
fn stamp(frame: &str) -> Option<u64> {
    if !frame.starts_with(r#"{"type":"event""#) {
        return None;
    }
    let at = frame.find(r#""payload":{"sent":"#)? + r#""payload":{"sent":"#.len();
    let digits: String = frame[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

#[tokio::main]
async fn main() {
    let options = Options::parse();
    let started_server;
    let (addr, pid) = match &options.server {
        Some(addr) => (addr.clone(), None),
        None => {
            started_server = Server::start(&[("PULSEBOARD_DEMO", "false")]);
            (started_server.addr.clone(), Some(started_server.child.id()))
        }
    };
    let target: SocketAddr = addr.parse().expect("--server is host:port on loopback");
    assert!(
        target.ip().is_loopback(),
        "the load tool only talks to loopback"
    );
    let topics: Vec<String> = (0..options.topics)
        .map(|t| format!("bench:fanout{t}"))
        .collect();
    let http = reqwest::Client::new();
    for topic in &topics {
        http.post(format!("http://{addr}/api/v1/topics/{topic}"))
            .json(&json!({"ops": [{"op": "set", "entity_id": "last", "payload": {"sent": 0}}]}))
            .send()
            .await
            .unwrap();
    }
    let rss_before = pid.and_then(resident_kib);

    // Connect and subscribe everyone, a bounded number at a time.
    let received = Arc::new(AtomicU64::new(0));
    let measuring = Arc::new(AtomicBool::new(false));
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let connect_started = Instant::now();
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<()>(options.subscribers);
    let permits = Arc::new(tokio::sync::Semaphore::new(64));
    let mut subscribers = Vec::with_capacity(options.subscribers);
    for i in 0..options.subscribers {
        let source = Ipv4Addr::new(127, 0, 0, 1 + (i % options.sources as usize) as u8);
        let topic = topics[i % topics.len()].clone();
        let (received, measuring, ready, permits, mut stop) = (
            received.clone(),
            measuring.clone(),
            ready_tx.clone(),
            permits.clone(),
            stop.clone(),
        );
        subscribers.push(tokio::spawn(async move {
            let permit = permits.acquire_owned().await.unwrap();
            let socket = TcpSocket::new_v4().unwrap();
            socket.bind(SocketAddr::new(source.into(), 0)).unwrap();
            let stream = socket.connect(target).await.expect("connect");
            let url = format!("ws://{target}/ws");
            let (mut ws, _) = tokio_tungstenite::client_async(url, stream)
                .await
                .expect("handshake");
            let subscribe = json!({"type": "subscribe", "topics": [{"topic": topic}]});
            ws.send(Message::Text(subscribe.to_string().into()))
                .await
                .unwrap();
            // Welcome, then the snapshot: subscribed.
            for _ in 0..2 {
                ws.next().await;
            }
            drop(permit);
            let _ = ready.send(()).await;
            let mut latencies = Vec::new();
            loop {
                let message = tokio::select! {
                    message = ws.next() => message,
                    _ = stop.wait_for(|stop| *stop) => break,
                };
                let Some(Ok(message)) = message else { break };
                if let Message::Text(text) = message {
                    if let Some(sent) = stamp(text.as_str()) {
                        if measuring.load(Ordering::Relaxed) && sent > 0 {
                            latencies.push(micros_now().saturating_sub(sent) as u32);
                            received.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }
            latencies
        }));
    }
    drop(ready_tx);
    for _ in 0..options.subscribers {
        ready_rx.recv().await.expect("every subscriber gets ready");
    }
    let connect_seconds = connect_started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_idle = pid.and_then(resident_kib);

    // Publish at the set rate for the set time.
    measuring.store(true, Ordering::Relaxed);
    let publish_started = Instant::now();
    let total = options.rate * options.seconds;
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / options.rate as f64));
    for n in 0..total {
        ticker.tick().await;
        let topic = &topics[n as usize % topics.len()];
        let body =
            json!({"ops": [{"op": "set", "entity_id": "last", "payload": {"sent": micros_now()}}]});
        http.post(format!("http://{addr}/api/v1/topics/{topic}"))
            .json(&body)
            .send()
            .await
            .unwrap();
    }
    // Let the last events arrive, then stop counting.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let elapsed = publish_started.elapsed().as_secs_f64();
    measuring.store(false, Ordering::Relaxed);
    let _ = stop_tx.send(true);
    let delivered = received.load(Ordering::Relaxed);
    let expected = total * options.subscribers as u64 / options.topics as u64;
    let mut latencies: Vec<u32> = Vec::new();
    for subscriber in subscribers {
        if let Ok(mut list) = subscriber.await {
            latencies.append(&mut list);
        }
    }
    latencies.sort_unstable();
    let percentile = |p: f64| -> f64 {
        if latencies.is_empty() {
            return f64::NAN;
        }
        latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)] as f64 / 1000.0
    };
    let per_connection = match (rss_before, rss_idle) {
        (Some(before), Some(idle)) => {
            format!(
                "{:.1}",
                (idle.saturating_sub(before)) as f64 / options.subscribers as f64
            )
        }
        _ => "n/a".into(),
    };
    println!("| subscribers | events/s | delivered msgs/s | delivered / expected | p50 ms | p99 ms | p99.9 ms | connections/s | KiB per idle connection |");
    println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    println!(
        "| {} | {} | {:.0} | {}/{} | {:.2} | {:.2} | {:.2} | {:.0} | {} |",
        options.subscribers,
        options.rate,
        delivered as f64 / elapsed,
        delivered,
        expected,
        percentile(0.50),
        percentile(0.99),
        percentile(0.999),
        options.subscribers as f64 / connect_seconds,
        per_connection,
    );
    assert!(
        delivered * 100 >= expected * 99,
        "fewer than 99% of the expected messages arrived"
    );
}
