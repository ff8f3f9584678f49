//! Pull sources at scale, against the release server and a real `prometheus` (Debian's)
//! scraping it every second: what 200 sources polling every 5 s cost the server (CPU per
//! run, memory), and how long a change in Prometheus takes to reach a screen.
//!
//! The server starts with an empty sources directory; its memory is read, then a file with
//! the 200 sources is written (the directory is hot-reloaded) and, after a warm-up, the
//! server's CPU time and its runs (`pulseboard_source_runs_total`) are counted over a minute.
//! Each source queries a different expression of the server's own metrics, one entity per
//! series, so most runs find what the topic holds already (as most polls of a real board
//! do) and some write.
//!
//! The latency: one more source polls `sum(pulseboard_connections)` every second, and a
//! screen follows its topic. The bench opens (or closes) a WebSocket, which changes that
//! figure, and times how long until the screen gets the event. What it waits for is
//! Prometheus' next scrape (up to 1 s) and the source's next poll (up to 1 s).
//!
//! `cargo bench --features ssr --bench sources`. Prints a Markdown table for BENCHMARKS.md.

#[path = "../tests/support/mod.rs"]
mod support;

use futures_util::StreamExt;
use serde_json::json;
use std::time::{Duration, Instant};
use support::{cpu_seconds, resident_kib, sample, send, Prometheus, Server, Socket};
use tokio_tungstenite::tungstenite::Message;

const SOURCES: usize = 200;
const WARM_UP: Duration = Duration::from_secs(20);
const MEASURED: Duration = Duration::from_secs(60);
const CHANGES: usize = 20;

/// The expressions the sources query, in turn: each of the server's own figures.
const QUERIES: [&str; 5] = [
    "up",
    "pulseboard_connections",
    "pulseboard_subscriptions",
    "rate(pulseboard_events_published_total[1m])",
    "pulseboard_engine_up",
];

fn sources_file(prometheus: &Prometheus) -> String {
    let mut file = String::new();
    for n in 0..SOURCES {
        file.push_str(&format!(
            "[[source]]\nname = \"s{n}\"\ntype = \"prometheus\"\nurl = \"{}\"\nquery = \"{}\"\nentity = \"{{instance}}\"\ntopic = \"bench:s{n}\"\nevery = \"5s\"\n\n",
            prometheus.url(),
            QUERIES[n % QUERIES.len()],
        ));
    }
    file.push_str(&format!(
        "[[source]]\nname = \"latency\"\ntype = \"prometheus\"\nurl = \"{}\"\nquery = \"sum(pulseboard_connections)\"\nentity = \"open\"\ntopic = \"bench:latency\"\nevery = \"1s\"\n",
        prometheus.url()
    ));
    file
}

fn runs(metrics: &str) -> f64 {
    metrics
        .lines()
        .filter(|line| line.starts_with("pulseboard_source_runs_total{"))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The value of the next event on the screen's topic.
async fn next_value(screen: &mut Socket) -> f64 {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), screen.next())
            .await
            .expect("an event within 10 s")
            .unwrap()
            .unwrap();
        if let Message::Text(text) = message {
            let frame: serde_json::Value = serde_json::from_str(text.as_str()).unwrap();
            if frame["type"] == "event" {
                return frame["payload"]["value"].as_f64().unwrap_or(f64::NAN);
            }
        }
    }
}

#[tokio::main]
async fn main() {
    let dir = tempfile::TempDir::new().unwrap();
    let mut prometheus = Prometheus::on_free_port();
    let server = Server::start(&[("PULSEBOARD_SOURCES", dir.path().to_str().unwrap())]);
    let pid = server.child.id();
    prometheus.scrape(&[&server.addr]);
    prometheus.start().await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let memory_before = resident_kib(pid).unwrap();

    std::fs::write(dir.path().join("bench.toml"), sources_file(&prometheus)).unwrap();
    tokio::time::sleep(WARM_UP).await;
    let (cpu_start, runs_start) = (cpu_seconds(pid).unwrap(), runs(&server.metrics().await));
    let started = Instant::now();
    let mut memory_peak = 0;
    while started.elapsed() < MEASURED {
        tokio::time::sleep(Duration::from_secs(1)).await;
        memory_peak = memory_peak.max(resident_kib(pid).unwrap());
    }
    let seconds = started.elapsed().as_secs_f64();
    let metrics = server.metrics().await;
    let (cpu, ran) = (
        cpu_seconds(pid).unwrap() - cpu_start,
        runs(&metrics) - runs_start,
    );
    let failed: f64 = metrics
        .lines()
        .filter(|l| {
            l.starts_with("pulseboard_source_runs_total{") && l.contains("outcome=\"failed\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    // An empty sum of floats is -0.
    let failed = failed + 0.0;
    let events = sample(&metrics, "pulseboard_events_published_total");

    // The screen, and the changes it sees.
    let mut screen = server.connect().await;
    send(
        &mut screen,
        json!({"type": "subscribe", "topics": [{"topic": "bench:latency"}]}),
    )
    .await;
    let mut extra: Vec<Socket> = Vec::new();
    // Settle: the screen's own connection reaches the topic first.
    tokio::time::sleep(Duration::from_secs(4)).await;
    while let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(100), screen.next()).await {}
    let mut latencies = Vec::new();
    for n in 0..CHANGES {
        let changed = Instant::now();
        if n % 2 == 0 {
            extra.push(server.connect().await);
        } else {
            extra.pop();
        }
        next_value(&mut screen).await;
        latencies.push(changed.elapsed().as_secs_f64() * 1000.0);
        // Past the next scrape and poll, so each change is measured from quiet.
        tokio::time::sleep(Duration::from_millis(2500)).await;
        while let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(50), screen.next()).await
        {
        }
    }
    latencies.sort_by(f64::total_cmp);
    let at = |q: f64| latencies[((latencies.len() as f64 - 1.0) * q).round() as usize];

    println!("| {SOURCES} sources every 5 s, one prometheus scraped every 1 s | figure |");
    println!("| --- | --- |");
    println!(
        "| runs in {seconds:.0} s | {ran:.0} ({:.1}/s; {failed:.0} failed in all) |",
        ran / seconds
    );
    println!(
        "| server CPU | {:.1} % of one core; {:.0} µs per run |",
        cpu / seconds * 100.0,
        cpu / ran * 1e6
    );
    println!("| server memory | {:.1} MiB before the sources, {:.1} MiB at most with them (+{:.1} MiB, {:.1} KiB a source) |",
        memory_before as f64 / 1024.0,
        memory_peak as f64 / 1024.0,
        (memory_peak.saturating_sub(memory_before)) as f64 / 1024.0,
        (memory_peak.saturating_sub(memory_before)) as f64 / SOURCES as f64,
    );
    println!("| events written since start | {events:.0} |");
    println!("| change in Prometheus → screen ({CHANGES} changes; scrape 1 s, poll 1 s) | p50 {:.0} ms, p90 {:.0} ms, max {:.0} ms |", at(0.5), at(0.9), at(1.0));
    drop(extra);
    prometheus.kill();
}
