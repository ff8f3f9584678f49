//! Hooks and line protocol under load, against the release server: what Alertmanager
//! notifications at 20 a second cost (CPU per notification and per alert, the answer's
//! latency), and how many line protocol points a second it takes and at what CPU per point.
//!
//! Alertmanager: each notification is a group of 10 alerts as Alertmanager sends them
//! (version 4); each second one alert of the group fires anew, one resolves, and the rest
//! are repeats, so most of each notification writes nothing (as most of Alertmanager's do).
//! Sent with one keep-alive client, paced at 20 a second for 30 s.
//!
//! Line protocol: two writers post batches of 1,000 lines (Telegraf's default batch) of 4
//! fields over 50 hosts, as fast as the server answers, for 20 s.
//!
//! `cargo bench --features ssr --bench hooks`. Prints a Markdown table for BENCHMARKS.md.

#[path = "../tests/support/mod.rs"]
mod support;

use serde_json::{json, Value};
use std::time::{Duration, Instant};
use support::{cpu_seconds, Server};

const SECRET: &str = "a-secret-for-the-bench";
const RATE: u64 = 20;
const ALERTS_PHASE: Duration = Duration::from_secs(30);
const LINES_PHASE: Duration = Duration::from_secs(20);
const GROUP: usize = 10;

fn notification(second: u64) -> Value {
    // Alerts `second .. second + GROUP` fire; the one before them has just resolved.
    let alert = |n: u64, status: &str| {
        json!({
            "status": status,
            "labels": {"alertname": "DiskFull", "instance": format!("host-{n}"), "severity": "warning"},
            "annotations": {"summary": "disk over 90 %"},
            "startsAt": "2026-12-07T10:00:00Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus:9090/graph",
            "fingerprint": format!("{n:016x}"),
        })
    };
    let mut alerts: Vec<Value> = (second..second + GROUP as u64)
        .map(|n| alert(n, "firing"))
        .collect();
    if second > 0 {
        alerts.push(alert(second - 1, "resolved"));
    }
    json!({
        "version": "4", "groupKey": "{}:{alertname=\"DiskFull\"}", "truncatedAlerts": 0,
        "status": "firing", "receiver": "pulseboard", "groupLabels": {"alertname": "DiskFull"},
        "commonLabels": {"alertname": "DiskFull"}, "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093", "alerts": alerts,
    })
}

fn lines(batch: u64) -> String {
    let mut body = String::new();
    for n in 0..1000u64 {
        let host = n % 50;
        let cpu = n / 50;
        body.push_str(&format!(
            "cpu,host=host-{host},cpu=cpu{cpu} usage_idle={}.5,usage_user={}i,usage_system=0.25,ok=true {}\n",
            (batch + n) % 100,
            n % 7,
            1_700_000_000_000_000_000u64 + batch * 1000 + n,
        ));
    }
    body
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * q).round() as usize]
}

#[tokio::main]
async fn main() {
    let dir = tempfile::TempDir::new().unwrap();
    std::fs::write(
        dir.path().join("hooks.toml"),
        "[[hook]]\nname = \"alerts\"\ntype = \"alertmanager\"\nsecret = \"${HOOK_SECRET}\"\nper_second = 100\n",
    )
    .unwrap();
    let server = Server::start(&[
        ("PULSEBOARD_SOURCES", dir.path().to_str().unwrap()),
        ("HOOK_SECRET", SECRET),
        ("PULSEBOARD_REQUESTS_PER_IP", "1000"),
        ("PULSEBOARD_REQUESTS_PER_KEY", "1000"),
    ]);
    let pid = server.child.id();
    let client = reqwest::Client::new();
    let url = format!("http://{}/api/v1/hooks/alerts", server.addr);

    let (cpu_start, started) = (cpu_seconds(pid).unwrap(), Instant::now());
    let mut latencies = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(1000 / RATE));
    let mut sent = 0u64;
    while started.elapsed() < ALERTS_PHASE {
        tick.tick().await;
        let body = notification(sent / RATE).to_string();
        let at = Instant::now();
        let answer = client
            .post(&url)
            .bearer_auth(SECRET)
            .body(body)
            .header("content-type", "application/json")
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200, "{}", answer.text().await.unwrap());
        latencies.push(at.elapsed().as_secs_f64() * 1000.0);
        sent += 1;
    }
    let seconds = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds(pid).unwrap() - cpu_start;
    latencies.sort_by(f64::total_cmp);
    let (_, feed) = server.get("/api/v1/topics/feed:alerts").await;
    let transitions = feed["offset"].as_u64().unwrap_or(0);
    println!("| load | figure |");
    println!("| --- | --- |");
    println!(
        "| Alertmanager: {sent} notifications of {GROUP}–{} alerts in {seconds:.0} s ({:.1}/s) | server CPU {:.1} % of a core: {:.0} µs a notification, {:.0} µs an alert; {transitions} feed events written |",
        GROUP + 1,
        sent as f64 / seconds,
        cpu / seconds * 100.0,
        cpu / sent as f64 * 1e6,
        cpu / (sent as f64 * GROUP as f64) * 1e6,
    );
    println!(
        "| … answer latency | p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms |",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        percentile(&latencies, 1.0)
    );

    let (_, key) = server.create_key("telegraf", &["publish:telegraf:*"]).await;
    let write_url = format!(
        "http://{}/api/v2/write?org=ops&bucket=telegraf",
        server.addr
    );
    let (cpu_start, started) = (cpu_seconds(pid).unwrap(), Instant::now());
    let writers: Vec<_> = (0..2u64)
        .map(|writer| {
            let (client, url, key) = (client.clone(), write_url.clone(), key.clone());
            tokio::spawn(async move {
                let mut batches = 0u64;
                while started.elapsed() < LINES_PHASE {
                    let body = lines(writer * 1_000_000 + batches);
                    let answer = client
                        .post(&url)
                        .header("authorization", format!("Token {key}"))
                        .body(body)
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(answer.status(), 204, "{}", answer.text().await.unwrap());
                    batches += 1;
                }
                batches
            })
        })
        .collect();
    let mut batches = 0;
    for writer in writers {
        batches += writer.await.unwrap();
    }
    let seconds = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds(pid).unwrap() - cpu_start;
    let points = batches * 1000;
    let fields = points * 4;
    println!(
        "| line protocol: {points} points ({fields} fields) in {seconds:.0} s, 2 writers, batches of 1,000 | {:.0} points/s ({:.0} fields/s); server CPU {:.0} % of a core: {:.1} µs a point |",
        points as f64 / seconds,
        fields as f64 / seconds,
        cpu / seconds * 100.0,
        cpu / points as f64 * 1e6,
    );
}
