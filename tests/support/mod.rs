//! A real server process and a real WebSocket client, for the integration tests.

#![allow(dead_code)] // each test file uses a different part of this

use futures_util::{SinkExt, StreamExt};
use pulseboard::protocol::{Position, ServerFrame};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tempfile::TempDir;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A real `redis-server` on a free loopback port, in a temp dir of its own, with its
/// append-only file on (fsynced on every write); killed when dropped.
pub struct Redis {
    child: Option<Child>,
    pub port: u16,
    dir: TempDir,
    /// Settings in place of the append-only file on, fsynced on every write.
    durability: Vec<String>,
}

/// CPU time a process has used (user and system), in seconds, from /proc.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command name (which may hold spaces) in parentheses: utime and
    // stime are the 12th and 13th, in clock ticks of 1/100 s.
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some((user + system) as f64 / 100.0)
}

/// Resident memory of a process (VmRSS), in KiB, from /proc.
pub fn resident_kib(pid: u32) -> Option<u64> {
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

/// A loopback port nothing listens on right now.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

impl Redis {
    pub fn start() -> Self {
        Self::start_with(&["--appendonly", "yes", "--appendfsync", "always"])
    }

    /// One started with these settings about its files instead.
    pub fn start_with(durability: &[&str]) -> Self {
        let mut redis = Redis {
            child: None,
            port: free_port(),
            dir: TempDir::new().unwrap(),
            durability: durability.iter().map(|s| s.to_string()).collect(),
        };
        redis.start_again();
        redis
    }

    /// `redis://…` for `PULSEBOARD_REDIS_URL`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Starts it (again) on the same port and directory, so it reads its append-only file.
    pub fn start_again(&mut self) {
        let port = self.port.to_string();
        let child = Command::new("redis-server")
            .args(["--port", &port, "--bind", "127.0.0.1", "--save", ""])
            .args(&self.durability)
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server runs (scripts/setup --tests installs it)");
        self.child = Some(child);
        for _ in 0..100 {
            if self.cli(&["PING"]) == "PONG" {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("redis-server did not answer on port {port}");
    }

    /// Kills it as a crash would (SIGKILL): nothing is written out on the way.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops it as an operator would (SHUTDOWN, which writes out its files).
    pub fn stop(&mut self) {
        let _ = self.cli(&["SHUTDOWN"]);
        if let Some(mut child) = self.child.take() {
            let _ = child.wait();
        }
    }

    /// What `redis-cli` prints for a command, trimmed.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli runs");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A real `prometheus` (Debian's) on a free loopback port, with a temp data dir, scraping
/// the given targets every second; killed when dropped.
pub struct Prometheus {
    child: Option<Child>,
    pub port: u16,
    dir: TempDir,
}

impl Prometheus {
    /// One on a port chosen now, not started yet: a source file can name it before the server
    /// it scrapes exists.
    pub fn on_free_port() -> Self {
        Prometheus {
            child: None,
            port: free_port(),
            dir: TempDir::new().unwrap(),
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Writes its configuration: these `host:port` targets, scraped every second.
    pub fn scrape(&self, targets: &[&str]) {
        let targets: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: pulseboard\n    static_configs:\n      - targets: [{}]\n",
            targets.join(", ")
        );
        std::fs::write(self.dir.path().join("prometheus.yml"), config).unwrap();
    }

    /// Starts it (again, on the same port and data) and waits until it is ready.
    pub async fn start(&mut self) {
        let child = Command::new("prometheus")
            .arg(format!(
                "--config.file={}",
                self.dir.path().join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                self.dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{}", self.port))
            .arg("--web.enable-lifecycle")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus runs (scripts/setup --tests installs it)");
        self.child = Some(child);
        let ready = format!("{}/-/ready", self.url());
        for _ in 0..300 {
            if let Ok(answer) = reqwest::get(&ready).await {
                if answer.status().is_success() {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("prometheus did not get ready on port {}", self.port);
    }

    /// Has it read its configuration again (after [`Prometheus::scrape`]).
    pub async fn reload(&self) {
        let answer = reqwest::Client::new()
            .post(format!("{}/-/reload", self.url()))
            .send()
            .await
            .unwrap();
        assert!(
            answer.status().is_success(),
            "prometheus reloads its configuration"
        );
    }

    /// Kills it, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A server process; killed when dropped.
pub struct Server {
    pub child: Child,
    pub addr: String,
    /// The secret of an admin key made for this server: the helpers send it.
    pub key: String,
    http: reqwest::Client,
    /// Every line the server has written to standard output so far.
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    /// The data dir, when this server made its own.
    _data: Option<TempDir>,
}

impl Server {
    /// A server with a data dir of its own.
    pub fn start(env: &[(&str, &str)]) -> Self {
        let data = TempDir::new().unwrap();
        let mut server = Self::start_in(data.path(), env);
        server._data = Some(data);
        server
    }

    /// A server on the given data dir.
    pub fn start_in(data: &Path, env: &[(&str, &str)]) -> Self {
        let key = make_key_in(data, "admin", env);
        let mut command = Command::new(env!("CARGO_BIN_EXE_pulseboard"));
        command
            .env("PULSEBOARD_DATA_DIR", data)
            .env("PULSEBOARD_LISTEN", "127.0.0.1:0")
            .env("PULSEBOARD_DEMO", "false")
            // A person leaves a second after their last page closes, so tests need not wait long.
            .env("PULSEBOARD_PRESENCE_GRACE", "1")
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("the server binary starts");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let mut started = Vec::new();
        let addr = loop {
            let line = lines
                .next()
                .expect("the server prints its address before exiting")
                .unwrap();
            if let Some((_, addr)) = line.split_once("listening on http://") {
                break addr.trim().to_owned();
            }
            started.push(line);
        };
        // Keep reading the server's output, so it never blocks on a full pipe and tests can
        // look at its log (from its start).
        let log = std::sync::Arc::new(std::sync::Mutex::new(started));
        let keep = log.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                keep.lock().unwrap().push(line);
            }
        });
        Self {
            child,
            addr,
            http: client_with_key(&key),
            key,
            log,
            _data: None,
        }
    }

    /// The log lines written so far that contain every one of `words`.
    pub fn log_lines(&self, words: &[&str]) -> Vec<String> {
        let log = self.log.lock().unwrap();
        let matching = log
            .iter()
            .filter(|line| words.iter().all(|w| line.contains(w)));
        matching.cloned().collect()
    }

    /// Waits up to two seconds for a log line holding every one of `words`: the log is read
    /// off the server's output by a thread of its own, a moment after the server writes it.
    pub async fn logged(&self, words: &[&str]) -> String {
        for _ in 0..40 {
            if let Some(line) = self.log_lines(words).pop() {
                return line;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no log line with {words:?}");
    }

    /// An HTTP client that sends the admin key.
    pub fn http(&self) -> reqwest::Client {
        self.http.clone()
    }

    /// The socket's address, with the admin key as its `token`.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws?token={}", self.addr, self.key)
    }

    /// Stops the server as an operator would (SIGTERM) and waits for it to exit.
    pub fn stop(mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let exit = self.child.wait().unwrap();
        assert!(
            exit.success(),
            "the server exits cleanly on SIGTERM: {exit}"
        );
    }

    /// Kills the server process outright, as a crash or `kill -9` would.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// A socket with the admin key: every one is the same person on a board.
    pub async fn connect(&self) -> Socket {
        self.connect_to(&self.ws_url()).await
    }

    /// A socket without a key: an anonymous page, a guest on a public board.
    pub async fn connect_guest(&self) -> Socket {
        self.connect_to(&format!("ws://{}/ws", self.addr)).await
    }

    async fn connect_to(&self, url: &str) -> Socket {
        let (mut socket, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("the socket opens");
        match next(&mut socket).await {
            ServerFrame::Welcome(_) => socket,
            other => panic!("expected welcome first, got {other:?}"),
        }
    }

    pub async fn publish(&self, topic: &str, body: Value) -> reqwest::Response {
        self.publish_with(&self.http, topic, body).await
    }

    /// Publishes as whoever `http` carries the key of (see [`client_with_key`]).
    pub async fn publish_with(
        &self,
        http: &reqwest::Client,
        topic: &str,
        body: Value,
    ) -> reqwest::Response {
        http.post(format!("http://{}/api/v1/topics/{topic}", self.addr))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// Makes a key over the admin API, as an operator would; returns its id and secret.
    pub async fn create_key(&self, name: &str, scopes: &[&str]) -> (String, String) {
        let response = self
            .http
            .post(format!("http://{}/api/v1/keys", self.addr))
            .json(&json!({"name": name, "scopes": scopes}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "a key is made");
        let made: Value = response.json().await.unwrap();
        (
            made["id"].as_str().unwrap().into(),
            made["secret"].as_str().unwrap().into(),
        )
    }

    /// Revokes a key over the admin API.
    pub async fn revoke_key(&self, id: &str) {
        let response = self
            .http
            .delete(format!("http://{}/api/v1/keys/{id}", self.addr))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "the key is revoked");
    }

    pub async fn set(&self, topic: &str, id: &str, value: i64) -> Value {
        let response = self
            .publish(
                topic,
                json!({"ops": [{"op": "set", "entity_id": id, "payload": value}]}),
            )
            .await;
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    /// The `/metrics` text.
    pub async fn metrics(&self) -> String {
        let url = format!("http://{}/metrics", self.addr);
        self.http
            .get(url)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let response = self
            .http
            .get(format!("http://{}{path}", self.addr))
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.json().await.unwrap())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Makes a key in a data dir with the CLI, as an operator would; returns its secret.
pub fn make_key(data: &Path, scope: &str) -> String {
    make_key_in(data, scope, &[])
}

/// Makes a key with the CLI where a server with this environment keeps its keys (its data
/// dir, or the Redis it names).
pub fn make_key_in(data: &Path, scope: &str, env: &[(&str, &str)]) -> String {
    let made = Command::new(env!("CARGO_BIN_EXE_pulseboard"))
        .args(["keys", "create", "--name", "tests", "--scope", scope])
        .env("PULSEBOARD_DATA_DIR", data)
        .envs(env.iter().copied())
        .output()
        .expect("the CLI runs");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    String::from_utf8(made.stdout).unwrap().trim().to_owned()
}

/// An HTTP client that sends `key` as its bearer token.
pub fn client_with_key(key: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    let bearer = format!("Bearer {key}").parse().unwrap();
    headers.insert(reqwest::header::AUTHORIZATION, bearer);
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap()
}

/// The frames the server sends until it closes the socket, and the close frame.
pub async fn frames_until_close(socket: &mut Socket) -> (Vec<ServerFrame>, CloseFrame) {
    let mut frames = Vec::new();
    loop {
        let message = tokio::time::timeout(Duration::from_secs(5), socket.next())
            .await
            .expect("the server closes within 5 s")
            .expect("a close frame before the end")
            .unwrap();
        match message {
            Message::Text(text) => frames.push(serde_json::from_str(text.as_str()).unwrap()),
            Message::Close(Some(close)) => return (frames, close),
            _ => {}
        }
    }
}

/// The close frame the server ends the socket with.
pub async fn closed_with(socket: &mut Socket) -> CloseFrame {
    frames_until_close(socket).await.1
}

pub async fn send(socket: &mut Socket, frame: Value) {
    socket
        .send(Message::Text(frame.to_string().into()))
        .await
        .unwrap();
}

pub async fn next(socket: &mut Socket) -> ServerFrame {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(5), socket.next())
            .await
            .expect("a frame within 5 s")
            .expect("the socket is open")
            .unwrap();
        if let Message::Text(text) = message {
            return serde_json::from_str(text.as_str()).expect("a valid server frame");
        }
    }
}

/// Asserts that nothing arrives for a short while.
pub async fn quiet(socket: &mut Socket) {
    if let Ok(Some(Ok(Message::Text(text)))) =
        tokio::time::timeout(Duration::from_millis(300), socket.next()).await
    {
        panic!("expected no frame, got {text}");
    }
}

pub async fn subscribe(socket: &mut Socket, topic: &str, resume: Option<Position>) {
    let mut request = json!({"topic": topic});
    if let Some(position) = resume {
        request["resume"] = json!(position);
    }
    send(socket, json!({"type": "subscribe", "topics": [request]})).await;
}

pub fn event_offset(frame: &ServerFrame) -> u64 {
    match frame {
        ServerFrame::Event(event) => event.offset,
        other => panic!("expected an event, got {other:?}"),
    }
}

/// A sample's value in `/metrics` text.
pub fn sample(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no sample {name} in:\n{metrics}"))
}

/// One Server-Sent Events stream, read message by message.
pub struct EventStream {
    response: reqwest::Response,
    buffered: String,
}

/// A message of the stream: its id, if it had one, and its frame.
pub struct SseMessage {
    pub id: Option<String>,
    pub frame: ServerFrame,
}

impl EventStream {
    pub async fn open(server: &Server, query: &str, last_event_id: Option<&str>) -> EventStream {
        let mut request = server
            .http()
            .get(format!("http://{}/sse?{query}", server.addr));
        if let Some(id) = last_event_id {
            request = request.header("Last-Event-ID", id);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers()["content-type"].to_str().unwrap(),
            "text/event-stream"
        );
        EventStream {
            response,
            buffered: String::new(),
        }
    }

    /// A stream from a response already checked by the caller.
    pub fn from_response(response: reqwest::Response) -> EventStream {
        EventStream {
            response,
            buffered: String::new(),
        }
    }

    /// Whether the server ends the stream within 5 s, with no message before its end.
    pub async fn ended(&mut self) -> bool {
        let end = tokio::time::timeout(Duration::from_secs(5), self.response.chunk()).await;
        matches!(end, Ok(Ok(None)) | Ok(Err(_)))
    }

    pub async fn next(&mut self) -> SseMessage {
        loop {
            if let Some((message, rest)) = self.buffered.split_once("\n\n") {
                let (message, rest) = (message.to_owned(), rest.to_owned());
                self.buffered = rest;
                let field = |name: &str| {
                    message
                        .lines()
                        .find_map(|line| line.strip_prefix(name))
                        .map(|value| value.trim_start().to_owned())
                };
                let Some(data) = field("data:") else { continue };
                return SseMessage {
                    id: field("id:"),
                    frame: serde_json::from_str(&data).unwrap(),
                };
            }
            let chunk = tokio::time::timeout(Duration::from_secs(5), self.response.chunk())
                .await
                .expect("a message within 5 s")
                .unwrap()
                .expect("the stream is open");
            self.buffered.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }
}

/// A topic as `GET /api/v1/topics/{topic}` answers it: its offset and state; `None` while
/// nobody has written it.
pub async fn topic(server: &Server, name: &str) -> Option<(u64, Value)> {
    let (status, body) = server.get(&format!("/api/v1/topics/{name}")).await;
    (status == 200).then(|| (body["offset"].as_u64().unwrap(), body["state"].clone()))
}

/// Asks `check` every 100 ms until it gives something, for up to `seconds`.
pub async fn eventually<T, F: std::future::Future<Output = Option<T>>>(
    seconds: u64,
    what: &str,
    mut check: impl FnMut() -> F,
) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(seconds);
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} within {seconds} s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
