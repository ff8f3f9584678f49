//! The subscribers: a group of WebSocket clients in this process, or split over child
//! processes once one process's open-file limit would not hold them all. Either way the
//! group connects everyone, then counts and times what arrives between `start` and `finish`.

use crate::adapter::{stamp, Adapter};
use futures_util::{SinkExt, StreamExt};
use std::net::{Ipv4Addr, SocketAddr};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpSocket;
use tokio::process::{Child, ChildStdin, Command};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

/// How long one subscriber may take to connect and subscribe before it counts as failed.
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(30);
/// Handshakes in flight at once, per process.
const CONCURRENT_HANDSHAKES: usize = 64;

/// Each subscriber's read buffer. tungstenite zero-fills the free part of its read buffer
/// before every read, up to this size: at its default of 128 KiB that memset was over half
/// the load tool's CPU, and the tool shares the cores with the server it measures. Frames
/// here are a few hundred bytes; a larger one still grows the buffer as it needs.
const CLIENT_READ_BUFFER: usize = 4096;

/// Servers as `--server` takes them: comma-separated.
pub fn servers_arg(servers: &[SocketAddr]) -> String {
    servers
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

pub fn micros_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// Who connects where: the part of the whole that one process opens.
#[derive(Clone)]
pub struct Share {
    pub adapter: Adapter,
    /// The servers the subscribers connect to, round-robin (several instances on one Redis).
    pub servers: Vec<SocketAddr>,
    pub topics: Vec<String>,
    /// Index of this share's first subscriber in the whole, so topics and source addresses
    /// go round-robin over all processes alike.
    pub first: usize,
    pub count: usize,
    /// How many 127.0.0.x source addresses the connections come from.
    pub sources: u8,
}

/// What a group saw.
#[derive(Default)]
pub struct Tally {
    pub received: u64,
    /// Publish→receive latency of every message received while measuring, in µs.
    pub latencies: Vec<u32>,
    /// When the last measured message arrived (µs since the epoch).
    pub last_received: u64,
    pub failed: usize,
}

pub enum Group {
    InProcess(InProcess),
    Children(Vec<ChildShare>),
}

impl Group {
    /// Connects and subscribes every subscriber of `share`, in `processes` processes.
    pub async fn connect(share: Share, processes: usize) -> Group {
        if processes <= 1 {
            return Group::InProcess(InProcess::connect(share).await);
        }
        let mut children = Vec::new();
        for p in 0..processes {
            let count = share.count / processes + usize::from(p < share.count % processes);
            let first = share.first + children.iter().map(|c: &ChildShare| c.count).sum::<usize>();
            children.push(ChildShare::spawn(&share, first, count));
        }
        for child in &mut children {
            child.wait_ready().await;
        }
        Group::Children(children)
    }

    /// The processes the subscribers run in: this one, and its children if any.
    pub fn pids(&self) -> Vec<u32> {
        let mut pids = vec![std::process::id()];
        if let Group::Children(children) = self {
            pids.extend(children.iter().filter_map(|c| c.process.id()));
        }
        pids
    }

    pub fn failed(&self) -> usize {
        match self {
            Group::InProcess(group) => group.failed,
            Group::Children(children) => children.iter().map(|c| c.failed).sum(),
        }
    }

    pub async fn start(&mut self) {
        match self {
            Group::InProcess(group) => group.measuring.store(true, Ordering::Relaxed),
            Group::Children(children) => {
                for child in children {
                    child.tell("go").await;
                }
            }
        }
    }

    /// Messages received so far while measuring.
    pub fn received(&self) -> u64 {
        match self {
            Group::InProcess(group) => group.received.load(Ordering::Relaxed),
            Group::Children(children) => children
                .iter()
                .map(|c| c.received.load(Ordering::Relaxed))
                .sum(),
        }
    }

    pub async fn finish(self) -> Tally {
        match self {
            Group::InProcess(group) => group.finish().await,
            Group::Children(children) => {
                let mut tally = Tally::default();
                for child in children {
                    let part = child.finish().await;
                    tally.received += part.received;
                    tally.latencies.extend(part.latencies);
                    tally.last_received = tally.last_received.max(part.last_received);
                    tally.failed += part.failed;
                }
                tally
            }
        }
    }
}

pub struct InProcess {
    received: Arc<AtomicU64>,
    measuring: Arc<AtomicBool>,
    stop: tokio::sync::watch::Sender<bool>,
    subscribers: Vec<JoinHandle<(Vec<u32>, u64)>>,
    failed: usize,
}

impl InProcess {
    async fn connect(share: Share) -> InProcess {
        let received = Arc::new(AtomicU64::new(0));
        let measuring = Arc::new(AtomicBool::new(false));
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<bool>(share.count.max(1));
        let permits = Arc::new(tokio::sync::Semaphore::new(CONCURRENT_HANDSHAKES));
        let mut subscribers = Vec::with_capacity(share.count);
        for i in share.first..share.first + share.count {
            let source = Ipv4Addr::new(127, 0, 0, 1 + (i % share.sources as usize) as u8);
            let topic = share.topics[i % share.topics.len()].clone();
            let server = share.servers[i % share.servers.len()];
            let url = share.adapter.url(&server.to_string());
            let adapter = share.adapter.clone();
            let (received, measuring, ready, permits, mut stopped) = (
                received.clone(),
                measuring.clone(),
                ready_tx.clone(),
                permits.clone(),
                stopped.clone(),
            );
            subscribers.push(tokio::spawn(async move {
                let permit = permits.acquire_owned().await.unwrap();
                let opened = tokio::time::timeout(SUBSCRIBE_TIMEOUT, async {
                    let socket = TcpSocket::new_v4().map_err(|e| e.to_string())?;
                    socket
                        .bind(SocketAddr::new(source.into(), 0))
                        .map_err(|e| e.to_string())?;
                    let stream = socket.connect(server).await.map_err(|e| e.to_string())?;
                    let config = WebSocketConfig::default().read_buffer_size(CLIENT_READ_BUFFER);
                    let (mut ws, _) =
                        tokio_tungstenite::client_async_with_config(url, stream, Some(config))
                            .await
                            .map_err(|e| e.to_string())?;
                    adapter.subscribe(&mut ws, &topic).await?;
                    Ok::<_, String>(ws)
                })
                .await
                .unwrap_or_else(|_| Err("timed out".into()));
                drop(permit);
                let mut ws = match opened {
                    Ok(ws) => ws,
                    Err(error) => {
                        eprintln!("a subscriber failed: {error}");
                        let _ = ready.send(false).await;
                        return (Vec::new(), 0);
                    }
                };
                let _ = ready.send(true).await;
                let (mut latencies, mut last) = (Vec::new(), 0);
                loop {
                    let message = tokio::select! {
                        message = ws.next() => message,
                        _ = stopped.wait_for(|stop| *stop) => break,
                    };
                    let Some(Ok(Message::Text(text))) = message else {
                        match message {
                            Some(Ok(_)) => continue,
                            _ => break,
                        }
                    };
                    if let Some(answer) = adapter.answer(text.as_str()) {
                        let _ = ws.send(Message::Text(answer.into())).await;
                    } else if let Some(sent) = stamp(text.as_str()) {
                        if measuring.load(Ordering::Relaxed) {
                            last = micros_now();
                            latencies.push(last.saturating_sub(sent) as u32);
                            received.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                (latencies, last)
            }));
        }
        drop(ready_tx);
        let mut failed = 0;
        for _ in 0..share.count {
            // Every subscriber reports once, connected or failed, so this ends.
            failed += usize::from(!ready_rx.recv().await.unwrap_or(false));
        }
        InProcess {
            received,
            measuring,
            stop,
            subscribers,
            failed,
        }
    }

    async fn finish(self) -> Tally {
        self.measuring.store(false, Ordering::Relaxed);
        let _ = self.stop.send(true);
        let mut tally = Tally {
            received: self.received.load(Ordering::Relaxed),
            failed: self.failed,
            ..Tally::default()
        };
        for subscriber in self.subscribers {
            if let Ok((mut latencies, last)) = subscriber.await {
                tally.latencies.append(&mut latencies);
                tally.last_received = tally.last_received.max(last);
            }
        }
        tally
    }
}

/// One child process holding part of the subscribers. It speaks lines: it prints
/// `ready FAILED`, then `count N` while measuring; it reads `go` and `stop`, and answers `stop`
/// with `tally RECEIVED LAST FAILED` and a `latencies …` line.
pub struct ChildShare {
    process: Child,
    stdin: ChildStdin,
    lines: tokio::sync::mpsc::UnboundedReceiver<String>,
    received: Arc<AtomicU64>,
    count: usize,
    failed: usize,
}

impl ChildShare {
    fn spawn(share: &Share, first: usize, count: usize) -> ChildShare {
        let mut command = Command::new(std::env::current_exe().unwrap());
        command
            .args(["--child", "--protocol", share.adapter.name()])
            .args(["--server", &servers_arg(&share.servers)])
            .args(["--first", &first.to_string()])
            .args(["--subscribers", &count.to_string()])
            .args(["--topics", &share.topics.len().to_string()])
            .args(["--sources", &share.sources.to_string()]);
        if let Adapter::Pusher(app) = &share.adapter {
            command.args([
                "--pusher-app",
                &format!("{}:{}:{}", app.id, app.key, app.secret),
            ]);
        }
        let mut process = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("the load tool starts a copy of itself");
        let stdin = process.stdin.take().unwrap();
        let stdout = BufReader::new(process.stdout.take().unwrap());
        let received = Arc::new(AtomicU64::new(0));
        let (line_tx, lines) = tokio::sync::mpsc::unbounded_channel();
        let counter = received.clone();
        tokio::spawn(async move {
            let mut stdout = stdout.lines();
            while let Ok(Some(line)) = stdout.next_line().await {
                match line.strip_prefix("count ") {
                    Some(n) => counter.store(n.parse().unwrap_or(0), Ordering::Relaxed),
                    None => {
                        let _ = line_tx.send(line);
                    }
                }
            }
        });
        ChildShare {
            process,
            stdin,
            lines,
            received,
            count,
            failed: 0,
        }
    }

    async fn line(&mut self) -> String {
        self.lines
            .recv()
            .await
            .expect("a client process exited early")
    }

    async fn wait_ready(&mut self) {
        let line = self.line().await;
        let failed = line.strip_prefix("ready ").expect("ready FAILED");
        self.failed = failed.parse().unwrap();
    }

    async fn tell(&mut self, word: &str) {
        self.stdin
            .write_all(format!("{word}\n").as_bytes())
            .await
            .expect("a client process is listening");
    }

    async fn finish(mut self) -> Tally {
        self.tell("stop").await;
        let tally = self.line().await;
        let mut numbers = tally
            .strip_prefix("tally ")
            .expect("tally RECEIVED LAST FAILED")
            .split(' ')
            .map(|n| n.parse::<u64>().unwrap());
        let (received, last_received, failed) = (
            numbers.next().unwrap(),
            numbers.next().unwrap(),
            numbers.next().unwrap() as usize,
        );
        let latencies = self.line().await;
        let latencies = latencies
            .strip_prefix("latencies")
            .unwrap()
            .split_whitespace()
            .map(|n| n.parse().unwrap())
            .collect();
        let _ = self.process.wait().await;
        Tally {
            received,
            latencies,
            last_received,
            failed,
        }
    }
}

/// The child's side of [`ChildShare`]: connect the share, then follow the parent's lines.
pub async fn serve_as_child(share: Share) {
    let group = InProcess::connect(share).await;
    println!("ready {}", group.failed);
    let mut commands = BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(command)) = commands.next_line().await {
        match command.as_str() {
            "go" => {
                group.measuring.store(true, Ordering::Relaxed);
                let received = group.received.clone();
                tokio::spawn(async move {
                    loop {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        println!("count {}", received.load(Ordering::Relaxed));
                    }
                });
            }
            "stop" => break,
            _ => {}
        }
    }
    group.measuring.store(false, Ordering::Relaxed);
    let failed = group.failed;
    let tally = group.finish().await;
    let mut latencies = String::with_capacity(tally.latencies.len() * 8);
    latencies.push_str("latencies");
    for latency in &tally.latencies {
        latencies.push(' ');
        latencies.push_str(&latency.to_string());
    }
    println!("tally {} {} {failed}", tally.received, tally.last_received);
    println!("{latencies}");
}
