//! Publish throughput over HTTP against the release server and its SQLite file.
//!
//! `cargo bench --features ssr --bench publish` (seconds per workload: PULSEBOARD_BENCH_SECS,
//! default 5). Prints a Markdown table for BENCHMARKS.md. The load generator runs on the same
//! 2 cores as the server, so the figures are a floor for what a separate client would see.

#[path = "../tests/support/mod.rs"]
mod support;

use serde_json::{json, Value};
use std::time::{Duration, Instant};
use support::Server;

struct Workload {
    name: &'static str,
    clients: usize,
    ops_per_request: usize,
    /// How many topics the clients spread over.
    topics: usize,
}

const WORKLOADS: [Workload; 4] = [
    Workload {
        name: "single op, one topic",
        clients: 32,
        ops_per_request: 1,
        topics: 1,
    },
    Workload {
        name: "single op, 16 topics",
        clients: 32,
        ops_per_request: 1,
        topics: 16,
    },
    Workload {
        name: "100-op batches, one topic",
        clients: 8,
        ops_per_request: 100,
        topics: 1,
    },
    Workload {
        name: "100-op batches, 8 topics",
        clients: 8,
        ops_per_request: 100,
        topics: 8,
    },
];

#[tokio::main]
async fn main() {
    let seconds: u64 = std::env::var("PULSEBOARD_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    // With PULSEBOARD_REDIS_URL the servers use the Redis engine (fsync is then Redis's
    // business, so only one pass); PULSEBOARD_BENCH_INSTANCES of them share the clients.
    let redis = std::env::var_os("PULSEBOARD_REDIS_URL").is_some();
    let instances: usize = std::env::var("PULSEBOARD_BENCH_INSTANCES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    assert!(
        instances == 1 || redis,
        "several instances share topics only over Redis"
    );
    println!("| workload | fsync | clients | requests/s | ops/s | p50 ms | p99 ms |");
    println!("| --- | --- | ---: | ---: | ---: | ---: | ---: |");
    let passes: &[bool] = if redis { &[false] } else { &[false, true] };
    for &fsync in passes {
        let servers: Vec<Server> = (0..instances)
            .map(|_| {
                Server::start(&[
                    ("PULSEBOARD_FSYNC", if fsync { "true" } else { "false" }),
                    ("PULSEBOARD_DEMO", "false"),
                    // Thousands of requests a second with one key is the point here.
                    ("PULSEBOARD_REQUESTS_PER_KEY", "1000000"),
                ])
            })
            .collect();
        let label = match (redis, fsync) {
            (true, _) => format!("Redis × {instances}"),
            (false, true) => "on".into(),
            (false, false) => "off".into(),
        };
        for workload in &WORKLOADS {
            run(&servers, workload, &label, Duration::from_secs(seconds)).await;
        }
    }
}

async fn run(servers: &[Server], workload: &Workload, label: &str, length: Duration) {
    let started = Instant::now();
    let deadline = started + length;
    let tasks: Vec<_> = (0..workload.clients)
        .map(|client| {
            let server = &servers[client % servers.len()];
            let url = format!(
                "http://{}/api/v1/topics/bench:{}",
                server.addr,
                client % workload.topics
            );
            let body = body(client, workload.ops_per_request);
            let http = server.http();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while Instant::now() < deadline {
                    let sent = Instant::now();
                    let response = http.post(&url).json(&body).send().await.unwrap();
                    assert_eq!(
                        response.status(),
                        200,
                        "{}",
                        response.text().await.unwrap_or_default()
                    );
                    latencies.push(sent.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.unwrap());
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort();
    let percentile = |p: f64| {
        let at = ((latencies.len() as f64 * p) as usize).min(latencies.len() - 1);
        latencies[at].as_secs_f64() * 1000.0
    };
    let requests = latencies.len() as f64 / elapsed;
    println!(
        "| {} | {} | {} | {:.0} | {:.0} | {:.2} | {:.2} |",
        workload.name,
        label,
        workload.clients,
        requests,
        requests * workload.ops_per_request as f64,
        percentile(0.50),
        percentile(0.99),
    );
}

fn body(client: usize, ops: usize) -> Value {
    let ops: Vec<Value> = (0..ops)
        .map(|n| json!({"op": "incr", "entity_id": format!("c{client}-{}", n % 10), "by": 1}))
        .collect();
    json!({ "ops": ops })
}
