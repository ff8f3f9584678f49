//! Publish throughput over HTTP against the release server and its SQLite file.
//!
//! `cargo bench --features ssr --bench publish` (seconds per workload: PULSEBOARD_BENCH_SECS,
//! default 5). Prints a Markdown table for BENCHMARKS.md. The load generator runs on the same
//! 2 cores as the server, so the figures are a floor for what a separate client would see;
//! its clients are written against the socket (see [`Connection`]) so that their own work
//! takes as little of those cores as it can.

#[path = "../tests/support/mod.rs"]
mod support;

use serde_json::{json, Value};
use std::time::{Duration, Instant};
use support::Server;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

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
    println!(
        "| workload | fsync | clients | requests/s | ops/s | p50 ms | p99 ms | server CPU µs/request |"
    );
    println!("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |");
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
    // What the servers spent, beside what the clients on the same cores let them do.
    let server_cpu = || -> f64 {
        let pids = servers.iter().map(|server| server.child.id());
        pids.map(|pid| support::cpu_seconds(pid).unwrap()).sum()
    };
    let cpu_before = server_cpu();
    let started = Instant::now();
    let deadline = started + length;
    let tasks: Vec<_> = (0..workload.clients)
        .map(|client| {
            let server = &servers[client % servers.len()];
            let path = format!("/api/v1/topics/bench:{}", client % workload.topics);
            let body = body(client, workload.ops_per_request);
            let (addr, key) = (server.addr.clone(), server.key.clone());
            tokio::spawn(async move {
                let mut connection = Connection::open(&addr, &path, &key, &body).await;
                let mut latencies = Vec::new();
                while Instant::now() < deadline {
                    let sent = Instant::now();
                    connection.send().await;
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
    let cpu_per_request = (server_cpu() - cpu_before) / latencies.len() as f64;
    latencies.sort();
    let percentile = |p: f64| {
        let at = ((latencies.len() as f64 * p) as usize).min(latencies.len() - 1);
        latencies[at].as_secs_f64() * 1000.0
    };
    let requests = latencies.len() as f64 / elapsed;
    println!(
        "| {} | {} | {} | {:.0} | {:.0} | {:.2} | {:.2} | {:.0} |",
        workload.name,
        label,
        workload.clients,
        requests,
        requests * workload.ops_per_request as f64,
        percentile(0.50),
        percentile(0.99),
        cpu_per_request * 1e6,
    );
}

fn body(client: usize, ops: usize) -> Vec<u8> {
    let ops: Vec<Value> = (0..ops)
        .map(|n| json!({"op": "incr", "entity_id": format!("c{client}-{}", n % 10), "by": 1}))
        .collect();
    serde_json::to_vec(&json!({ "ops": ops })).unwrap()
}

/// One keep-alive HTTP/1.1 connection sending the same request again and again, the next
/// once the last is answered, as a pooled client does. It is written against the socket, the
/// request's bytes made once, because a general client's own work counts here: on the machine
/// of 2026-12-04, `reqwest` spent 50 µs of CPU per request on the same two cores as the
/// server, a third of what the server itself spent.
struct Connection {
    stream: TcpStream,
    request: Vec<u8>,
    /// What has been read and not yet taken as a whole response.
    read: Vec<u8>,
}

impl Connection {
    async fn open(addr: &str, path: &str, key: &str, body: &[u8]) -> Self {
        let stream = TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        let mut request = format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        request.extend_from_slice(body);
        Connection {
            stream,
            request,
            read: Vec::with_capacity(4096),
        }
    }

    /// Sends the request and reads its response; anything but a 200 ends the bench.
    async fn send(&mut self) {
        self.stream.write_all(&self.request).await.unwrap();
        loop {
            if let Some((status, length)) = self.response() {
                if status != 200 {
                    panic!(
                        "{status}: {}",
                        String::from_utf8_lossy(&self.read[..length])
                    );
                }
                self.read.drain(..length);
                return;
            }
            let mut chunk = [0; 4096];
            let n = self.stream.read(&mut chunk).await.unwrap();
            assert!(n > 0, "the server closed a keep-alive connection");
            self.read.extend_from_slice(&chunk[..n]);
        }
    }

    /// The status and the whole length of the response at the start of what was read, once
    /// all of it has arrived.
    fn response(&self) -> Option<(u16, usize)> {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut response = httparse::Response::new(&mut headers);
        let httparse::Status::Complete(head) = response.parse(&self.read).unwrap() else {
            return None;
        };
        let body: usize = response
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case("content-length"))
            .map(|h| std::str::from_utf8(h.value).unwrap().parse().unwrap())
            .expect("the API answers with a Content-Length");
        let status = response.code.unwrap();
        (self.read.len() >= head + body).then_some((status, head + body))
    }
}
