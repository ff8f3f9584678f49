//! The fan-out load tool: many WebSocket subscribers, one paced publisher, and what reaches
//! them. It measures delivered messages/s, publish→receive latency (p50 / p99 / p99.9, from a
//! send timestamp in each payload), connection setup rate, and the server's resident memory
//! per idle connection (from /proc). It talks only to loopback, spreads its connections over
//! several 127.0.0.x source addresses (and over several processes with `--processes`), and
//! stops by itself.
//!
//! ```sh
//! cargo bench --features ssr --bench fanout -- --subscribers 1000 --rate 100 --seconds 10
//! benches/peers/run           # every peer and the floor, the same workloads, into BENCHMARKS.md
//! benches/peers/run --quick   # Pulseboard and the floor, a few seconds: the test command runs it
//! ```
//!
//! Without `--server` it starts the Pulseboard binary of the same build on an empty data dir,
//! with an admin key and no limits per address; a running Pulseboard server needs a key in
//! `PULSEBOARD_KEY`, and `connections_per_ip` and `http_connections_per_ip` above the
//! subscribers per source address.
//! `--protocol` picks the adapter for another server (see `adapter.rs`). Prints a Markdown
//! table row, or with `--json` one JSON object.

#[path = "../../tests/support/mod.rs"]
mod support;

mod adapter;
mod clients;

use adapter::Adapter;
use clients::{micros_now, Group, Share};
use serde_json::json;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use support::Server;

/// At most this many subscribers per process: the open-file limit here is 20,000 and a
/// process needs a few descriptors of its own.
const PER_PROCESS: usize = 19_000;

struct Options {
    adapter: Adapter,
    subscribers: usize,
    /// Events published per second, over all topics.
    rate: u64,
    seconds: u64,
    topics: usize,
    /// How many 127.0.0.x addresses the connections come from.
    sources: u8,
    processes: usize,
    /// Connect, measure memory, and stop: no events.
    idle: bool,
    /// A running server; otherwise a Pulseboard server is started.
    server: Option<String>,
    /// The running server's process, for its resident memory.
    server_pid: Option<u32>,
    /// Pulseboard instances to start (on the Redis in PULSEBOARD_REDIS_URL) and spread the
    /// subscribers over.
    instances: usize,
    json: bool,
    /// Fail unless at least 99% of the expected messages arrive.
    require_delivery: bool,
    /// Run as one of a parent's client processes (see `clients.rs`).
    child: Option<usize>,
}

impl Options {
    fn parse() -> Self {
        let mut options = Options {
            adapter: Adapter::Pulseboard,
            subscribers: 1000,
            rate: 50,
            seconds: 10,
            topics: 1,
            sources: 8,
            processes: 0,
            idle: false,
            server: None,
            server_pid: None,
            instances: 1,
            json: false,
            require_delivery: false,
            child: None,
        };
        let (mut protocol, mut pusher_app) = ("pulseboard".to_owned(), None);
        let args: Vec<String> = std::env::args().skip(1).collect();
        let mut args = args.iter();
        while let Some(flag) = args.next() {
            let mut value = || args.next().cloned().unwrap_or_default();
            match flag.as_str() {
                "--protocol" => protocol = value(),
                "--pusher-app" => pusher_app = Some(value()),
                "--subscribers" => options.subscribers = value().parse().expect("a count"),
                "--rate" => options.rate = value().parse().expect("events per second"),
                "--seconds" => options.seconds = value().parse().expect("seconds"),
                "--topics" => options.topics = value().parse().expect("a count"),
                "--sources" => options.sources = value().parse().expect("1 to 254"),
                "--processes" => options.processes = value().parse().expect("a count"),
                "--idle" => options.idle = true,
                "--server" => options.server = Some(value()),
                "--server-pid" => options.server_pid = Some(value().parse().expect("a pid")),
                "--instances" => options.instances = value().parse().expect("a count"),
                "--json" => options.json = true,
                "--child" => options.child = Some(0),
                "--first" => options.child = Some(value().parse().expect("an index")),
                "--require-delivery" => options.require_delivery = true,
                // cargo bench passes --bench to every bench target.
                "--bench" => {}
                other => panic!("unknown option {other}"),
            }
        }
        options.adapter = Adapter::parse(&protocol, pusher_app.as_deref());
        assert!(
            options.subscribers <= 100_000,
            "bounded: at most 100,000 subscribers"
        );
        assert!(options.seconds <= 300, "bounded: at most 300 seconds");
        assert!(options.rate <= 100_000, "bounded: at most 100,000 events/s");
        assert!((1..=254).contains(&options.sources));
        assert!(
            options.topics == 1 || options.adapter.has_topics(),
            "a broadcast server has no topics: --topics 1"
        );
        if options.processes == 0 {
            options.processes = options.subscribers.div_ceil(PER_PROCESS).max(1);
        }
        options
    }
}

/// Publishes `total` events at `rate` to `addr`, open loop, and returns how many were
/// accepted. It runs on a thread and runtime of its own: among the subscribers' tasks each
/// publish would wait its turn behind thousands of them before going out, and that wait
/// would count as the server's latency.
fn publish_paced(
    (adapter, addr, topics, rate): (Adapter, String, Vec<String>, u64),
    total: u64,
) -> u64 {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime for the publisher");
    runtime.block_on(async {
        let http = reqwest::Client::new();
        let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
        let mut publishes = Vec::with_capacity(total as usize);
        for n in 0..total {
            ticker.tick().await;
            let topic = &topics[n as usize % topics.len()];
            let request = adapter.publish(&http, &addr, topic, micros_now());
            publishes.push(tokio::spawn(async move {
                request
                    .send()
                    .await
                    .is_ok_and(|answer| answer.status().is_success())
            }));
        }
        let mut published = 0;
        for publish in publishes {
            published += u64::from(publish.await.unwrap_or(false));
        }
        published
    })
}

/// CPU time of several processes, in seconds.
fn cpu_of(pids: &[u32]) -> Option<f64> {
    pids.iter().map(|pid| support::cpu_seconds(*pid)).sum()
}

#[tokio::main]
async fn main() {
    let options = Options::parse();
    let topics: Vec<String> = (0..options.topics)
        .map(|t| format!("bench-fanout{t}"))
        .collect();
    if let Some(first) = options.child {
        let server = options
            .server
            .as_deref()
            .expect("a child is given --server");
        return clients::serve_as_child(Share {
            adapter: options.adapter,
            servers: server
                .split(',')
                .map(|s| s.parse().expect("host:port"))
                .collect(),
            topics,
            first,
            count: options.subscribers,
            sources: options.sources,
        })
        .await;
    }

    let started_servers: Vec<Server>;
    let (addrs, pids): (Vec<String>, Vec<u32>) = match &options.server {
        Some(addr) => (vec![addr.clone()], options.server_pid.into_iter().collect()),
        None => {
            assert_eq!(
                options.adapter,
                Adapter::Pulseboard,
                "give --server for another protocol"
            );
            assert!(
                options.instances == 1 || std::env::var_os("PULSEBOARD_REDIS_URL").is_some(),
                "several instances share topics only over Redis: set PULSEBOARD_REDIS_URL"
            );
            // The tool's own connections and publishes are the load: the limits per address
            // and per key would refuse them. With PULSEBOARD_REDIS_URL in the environment the
            // servers (and the key the first makes) use that Redis.
            started_servers = (0..options.instances)
                .map(|_| {
                    Server::start(&[
                        ("PULSEBOARD_DEMO", "false"),
                        ("PULSEBOARD_CONNECTIONS_PER_IP", "1000000"),
                        ("PULSEBOARD_HTTP_CONNECTIONS_PER_IP", "1000000"),
                        ("PULSEBOARD_REQUESTS_PER_KEY", "1000000"),
                    ])
                })
                .collect();
            std::env::set_var("PULSEBOARD_KEY", &started_servers[0].key);
            started_servers
                .iter()
                .map(|s| (s.addr.clone(), s.child.id()))
                .unzip()
        }
    };
    let servers: Vec<SocketAddr> = addrs
        .iter()
        .map(|a| a.parse().expect("--server is host:port on loopback"))
        .collect();
    assert!(
        servers.iter().all(|s| s.ip().is_loopback()),
        "the load tool only talks to loopback"
    );
    // Events are published to the first server; subscribers are spread over all of them.
    let (addr, servers_count) = (addrs[0].clone(), servers.len());
    let resident =
        |pids: &[u32]| -> Option<u64> { pids.iter().map(|p| support::resident_kib(*p)).sum() };
    let rss_before = resident(&pids);

    let connect_started = Instant::now();
    let share = Share {
        adapter: options.adapter.clone(),
        servers,
        topics: topics.clone(),
        first: 0,
        count: options.subscribers,
        sources: options.sources,
    };
    let mut group = Group::connect(share, options.processes).await;
    let connect_seconds = connect_started.elapsed().as_secs_f64();
    let connected = options.subscribers - group.failed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_idle = resident(&pids);
    let kib_per_connection = match (rss_before, rss_idle) {
        (Some(before), Some(idle)) if connected > 0 => {
            Some(idle.saturating_sub(before) as f64 / connected as f64)
        }
        _ => None,
    };

    // Publish at the set rate, open loop: a slow answer does not slow the next event.
    let (mut expected, mut publish_started) = (0, None);
    // CPU per delivered message, of the server and of this tool (its publisher and every
    // subscriber process): a protocol whose frames cost the clients more to read takes CPU
    // the server under test shares, so the comparison states both.
    let (tool_pids, mut server_cpu, mut tool_cpu) = (group.pids(), None, None);
    if !options.idle {
        server_cpu = cpu_of(&pids);
        tool_cpu = cpu_of(&tool_pids);
        group.start().await;
        publish_started = Some(micros_now());
        let total = options.rate * options.seconds;
        let paced = (
            options.adapter.clone(),
            addr.clone(),
            topics.clone(),
            options.rate,
        );
        let published = tokio::task::spawn_blocking(move || publish_paced(paced, total))
            .await
            .expect("the publisher finishes");
        assert_eq!(published, total, "every publish is accepted");
        expected = total * connected as u64 / options.topics as u64;
        // Let the queued messages drain: stop once all have arrived, or nothing has for 2 s.
        let (mut seen, mut quiet) = (group.received(), 0);
        while seen < expected && quiet < 20 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let now = group.received();
            quiet = if now == seen { quiet + 1 } else { 0 };
            seen = now;
        }
        let spent = |before: Option<f64>, pids: &[u32]| Some(cpu_of(pids)? - before?);
        server_cpu = spent(server_cpu, &pids);
        tool_cpu = spent(tool_cpu, &tool_pids);
    }
    let mut tally = group.finish().await;
    // From the first publish to the last message received.
    let elapsed = publish_started.map_or(0.0, |started| {
        tally.last_received.saturating_sub(started) as f64 / 1e6
    });
    tally.latencies.sort_unstable();
    let percentile = |p: f64| -> Option<f64> {
        let latencies = &tally.latencies;
        let at = ((latencies.len() as f64 * p) as usize).min(latencies.len().checked_sub(1)?);
        Some(latencies[at] as f64 / 1000.0)
    };
    let delivered_per_second = (elapsed > 0.0).then(|| tally.received as f64 / elapsed);
    let per_message = |cpu: Option<f64>| {
        cpu.filter(|_| tally.received > 0)
            .map(|seconds| seconds * 1e6 / tally.received as f64)
    };
    let result = json!({
        "protocol": options.adapter.name(),
        "instances": servers_count,
        "subscribers": options.subscribers,
        "connected": connected,
        "processes": options.processes,
        "events_per_second": if options.idle { 0 } else { options.rate },
        "seconds": options.seconds,
        "delivered": tally.received,
        "expected": expected,
        "delivered_per_second": delivered_per_second,
        "p50_ms": percentile(0.50),
        "p99_ms": percentile(0.99),
        "p999_ms": percentile(0.999),
        "connections_per_second": connected as f64 / connect_seconds,
        "kib_per_idle_connection": kib_per_connection,
        "server_rss_kib_idle": rss_idle,
        "server_cpu_us_per_message": per_message(server_cpu),
        "tool_cpu_us_per_message": per_message(tool_cpu),
    });
    if options.json {
        println!("{result}");
    } else {
        let show = |value: &serde_json::Value| match value.as_f64() {
            Some(number) => format!("{number:.2}"),
            None => "n/a".into(),
        };
        println!("| protocol | subscribers | events/s | delivered msgs/s | delivered / expected | p50 ms | p99 ms | p99.9 ms | connections/s | KiB per idle connection | CPU µs per message: server · load tool |");
        println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
        println!(
            "| {} | {} | {} | {} | {}/{} | {} | {} | {} | {:.0} | {} | {} · {} |",
            options.adapter.name(),
            connected,
            options.rate,
            result["delivered_per_second"]
                .as_f64()
                .map_or("n/a".into(), |n| format!("{n:.0}")),
            tally.received,
            expected,
            show(&result["p50_ms"]),
            show(&result["p99_ms"]),
            show(&result["p999_ms"]),
            connected as f64 / connect_seconds,
            show(&result["kib_per_idle_connection"]),
            show(&result["server_cpu_us_per_message"]),
            show(&result["tool_cpu_us_per_message"]),
        );
    }
    if options.require_delivery {
        assert_eq!(connected, options.subscribers, "every subscriber connects");
        assert!(
            tally.received * 100 >= expected * 99,
            "fewer than 99% of the expected messages arrived"
        );
    }
}
