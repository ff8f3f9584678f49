//! The fan-out floor: the least a WebSocket broadcast server can do on this machine. It
//! accepts WebSocket connections on `/ws`, and for every `POST /publish` frames the body once
//! and writes those same bytes to every socket. No topics, no history, no JSON, no store: what
//! is left is the kernel, tokio and the handshake, so its delivered msgs/s is the ceiling the
//! real servers are measured against (`benches/peers/run`).
//!
//! ```sh
//! cargo bench --features ssr --bench floor -- --listen 127.0.0.1:4001
//! ```
//!
//! It answers the same adapter as the other broadcast peers: a `{"type":"welcome"}` frame once
//! a socket is registered, then every published body as a text frame.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

/// How many frames may wait for one slow socket before it is dropped from the broadcast.
const QUEUE: usize = 256;

type Frame = Arc<[u8]>;

#[derive(Default)]
struct Subscribers {
    next_id: AtomicU64,
    senders: Mutex<HashMap<u64, mpsc::Sender<Frame>>>,
}

impl Subscribers {
    fn broadcast(&self, frame: Frame) {
        let mut senders = self.senders.lock().unwrap();
        senders.retain(|_, sender| sender.try_send(frame.clone()).is_ok());
    }
}

/// A server-to-client text frame: FIN + text opcode, unmasked, then the payload length.
fn text_frame(payload: &[u8]) -> Frame {
    let mut frame = Vec::with_capacity(payload.len() + 10);
    frame.push(0x81);
    match payload.len() {
        n if n < 126 => frame.push(n as u8),
        n if n <= u16::MAX as usize => {
            frame.push(126);
            frame.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            frame.push(127);
            frame.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    frame.extend_from_slice(payload);
    frame.into()
}

/// Reads one request head; the header names are lower-cased.
async fn read_head(reader: &mut BufReader<TcpStream>) -> Option<(String, HashMap<String, String>)> {
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).await.ok()? == 0 {
        return None;
    }
    let mut headers = HashMap::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).await.ok()?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':')?;
        headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
    }
    Some((request_line, headers))
}

async fn serve(stream: TcpStream, subscribers: Arc<Subscribers>) {
    let _ = stream.set_nodelay(true);
    let mut reader = BufReader::with_capacity(1024, stream);
    while let Some((request_line, headers)) = read_head(&mut reader).await {
        if request_line.starts_with("GET /ws ") {
            let Some(key) = headers.get("sec-websocket-key") else {
                return;
            };
            let response = format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
                derive_accept_key(key.as_bytes())
            );
            let mut stream = reader.into_inner();
            if stream.write_all(response.as_bytes()).await.is_err() {
                return;
            }
            return subscribe(stream, subscribers).await;
        }
        if request_line.starts_with("POST /publish ") {
            let length: usize = headers
                .get("content-length")
                .and_then(|length| length.parse().ok())
                .unwrap_or(0);
            let mut body = vec![0; length];
            if reader.read_exact(&mut body).await.is_err() {
                return;
            }
            subscribers.broadcast(text_frame(&body));
            let answer = b"HTTP/1.1 204 No Content\r\n\r\n";
            if reader.get_mut().write_all(answer).await.is_err() {
                return;
            }
            continue;
        }
        let _ = reader
            .get_mut()
            .write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n")
            .await;
    }
}

/// One task per socket: write whatever is broadcast, read (and drop) whatever the client sends
/// until it goes away.
async fn subscribe(stream: TcpStream, subscribers: Arc<Subscribers>) {
    let (mut read, mut write) = stream.into_split();
    let (sender, mut frames) = mpsc::channel(QUEUE);
    let id = subscribers.next_id.fetch_add(1, Ordering::Relaxed);
    subscribers.senders.lock().unwrap().insert(id, sender);
    if write
        .write_all(&text_frame(br#"{"type":"welcome"}"#))
        .await
        .is_ok()
    {
        let mut discard = [0u8; 64];
        loop {
            tokio::select! {
                frame = frames.recv() => match frame {
                    Some(frame) if write.write_all(&frame).await.is_ok() => {}
                    _ => break,
                },
                read = read.read(&mut discard) => match read {
                    Ok(n) if n > 0 => {}
                    _ => break,
                },
            }
        }
    }
    subscribers.senders.lock().unwrap().remove(&id);
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let mut listen = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--listen" => listen = args.next(),
            // cargo bench passes --bench to every bench target.
            "--bench" => {}
            other => panic!("unknown option {other}"),
        }
    }
    let Some(listen) = listen else {
        println!("the fan-out floor is a server for benches/peers/run; give it --listen ADDR");
        return;
    };
    let listener = TcpListener::bind(&listen).await.expect("--listen ADDR");
    println!("listening on {}", listener.local_addr().unwrap());
    let subscribers = Arc::new(Subscribers::default());
    loop {
        if let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve(stream, subscribers.clone()));
        }
    }
}
