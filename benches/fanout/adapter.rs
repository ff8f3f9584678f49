//! What differs between the servers the load tool drives: where a subscriber connects, how it
//! subscribes, which keep-alives it must answer, and how an event is published. Each adapter
//! does the least its server's protocol asks for; none adds work to the server.

use futures_util::{SinkExt, StreamExt};
use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use serde_json::json;
use sha2::Sha256;
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

pub type Socket = WebSocketStream<TcpStream>;

#[derive(Clone, Debug, PartialEq)]
pub enum Adapter {
    /// Pulseboard: `subscribe` over `/ws`, publish with `POST /api/v1/topics/{topic}`.
    Pulseboard,
    /// A plain broadcast server (the floor, Node `ws`, FastAPI): every socket on `/ws` gets
    /// every body sent to `POST /publish`; a welcome frame says the socket is registered.
    Broadcast,
    /// Socket.IO 4 over its WebSocket transport (Engine.IO v4 framing).
    SocketIo,
    /// The Pusher protocol (Sockudo): subscribe to a channel, publish with the signed HTTP API.
    Pusher(PusherApp),
}

#[derive(Clone, Debug, PartialEq)]
pub struct PusherApp {
    pub id: String,
    pub key: String,
    pub secret: String,
}

impl Adapter {
    pub fn parse(name: &str, pusher_app: Option<&str>) -> Adapter {
        match name {
            "pulseboard" => Adapter::Pulseboard,
            "broadcast" => Adapter::Broadcast,
            "socketio" => Adapter::SocketIo,
            "pusher" => {
                let app = pusher_app.expect("--protocol pusher needs --pusher-app ID:KEY:SECRET");
                let mut parts = app.splitn(3, ':').map(str::to_owned);
                let (Some(id), Some(key), Some(secret)) =
                    (parts.next(), parts.next(), parts.next())
                else {
                    panic!("--pusher-app is ID:KEY:SECRET");
                };
                Adapter::Pusher(PusherApp { id, key, secret })
            }
            other => panic!("unknown protocol {other}: pulseboard, broadcast, socketio or pusher"),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Adapter::Pulseboard => "pulseboard",
            Adapter::Broadcast => "broadcast",
            Adapter::SocketIo => "socketio",
            Adapter::Pusher(_) => "pusher",
        }
    }

    /// Whether subscribers can be told apart by topic; the broadcast servers send everything
    /// to everyone.
    pub fn has_topics(&self) -> bool {
        matches!(self, Adapter::Pulseboard | Adapter::Pusher(_))
    }

    pub fn url(&self, server: &str) -> String {
        match self {
            Adapter::Pulseboard => match pulseboard_key() {
                Some(key) => format!("ws://{server}/ws?token={key}"),
                None => format!("ws://{server}/ws"),
            },
            Adapter::Broadcast => format!("ws://{server}/ws"),
            Adapter::SocketIo => format!("ws://{server}/socket.io/?EIO=4&transport=websocket"),
            Adapter::Pusher(app) => format!(
                "ws://{server}/app/{}?protocol=7&client=pulseboard-bench&version=1.0",
                app.key
            ),
        }
    }

    /// Runs the opening exchange; returns once the server has the socket subscribed.
    pub async fn subscribe(&self, socket: &mut Socket, topic: &str) -> Result<(), String> {
        match self {
            Adapter::Pulseboard => {
                let subscribe = json!({"type": "subscribe", "topics": [{"topic": topic}]});
                send(socket, subscribe.to_string()).await?;
                expect(socket, r#"{"type":"welcome""#).await?;
                expect(socket, r#"{"type":"snapshot""#).await
            }
            Adapter::Broadcast => expect(socket, r#"{"type":"welcome""#).await,
            Adapter::SocketIo => {
                expect(socket, "0{").await?;
                send(socket, "40".into()).await?;
                expect(socket, "40").await
            }
            Adapter::Pusher(_) => {
                expect(socket, r#"{"event":"pusher:connection_established""#).await?;
                let subscribe = json!({"event": "pusher:subscribe", "data": {"channel": topic}});
                send(socket, subscribe.to_string()).await?;
                expect(
                    socket,
                    r#"{"event":"pusher_internal:subscription_succeeded""#,
                )
                .await
            }
        }
    }

    /// The answer a keep-alive frame needs, if this one is one.
    pub fn answer(&self, frame: &str) -> Option<String> {
        match self {
            Adapter::SocketIo if frame == "2" => Some("3".into()),
            Adapter::Pusher(_) if frame.starts_with(r#"{"event":"pusher:ping""#) => {
                Some(r#"{"event":"pusher:pong","data":{}}"#.into())
            }
            _ => None,
        }
    }

    /// One event carrying its send time (µs since the epoch) as `sent`.
    pub fn publish(
        &self,
        http: &reqwest::Client,
        server: &str,
        topic: &str,
        sent: u64,
    ) -> reqwest::RequestBuilder {
        match self {
            Adapter::Pulseboard => http
                .post(format!("http://{server}/api/v1/topics/{topic}"))
                .bearer_auth(pulseboard_key().unwrap_or_default())
                .json(&json!({"ops": [{"op": "set", "entity_id": "last", "payload": {"sent": sent}}]})),
            Adapter::Broadcast | Adapter::SocketIo => http
                .post(format!("http://{server}/publish"))
                .body(json!({"sent": sent}).to_string()),
            Adapter::Pusher(app) => {
                let body = json!({
                    "name": "update",
                    "channels": [topic],
                    "data": json!({"sent": sent}).to_string(),
                })
                .to_string();
                let path = format!("/apps/{}/events", app.id);
                let query = app.signed_query("POST", &path, &body);
                http.post(format!("http://{server}{path}?{query}"))
                    .header("content-type", "application/json")
                    .body(body)
            }
        }
    }
}

impl PusherApp {
    /// The Pusher HTTP API's authentication: an HMAC-SHA256 over method, path and the sorted
    /// query, which carries the body's MD5.
    fn signed_query(&self, method: &str, path: &str, body: &str) -> String {
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let query = format!(
            "auth_key={}&auth_timestamp={timestamp}&auth_version=1.0&body_md5={}",
            self.key,
            hex(&Md5::digest(body.as_bytes()))
        );
        let mut mac = Hmac::<Sha256>::new_from_slice(self.secret.as_bytes()).expect("any key");
        mac.update(format!("{method}\n{path}\n{query}").as_bytes());
        format!(
            "{query}&auth_signature={}",
            hex(&mac.finalize().into_bytes())
        )
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

async fn send(socket: &mut Socket, text: String) -> Result<(), String> {
    socket
        .send(Message::Text(text.into()))
        .await
        .map_err(|error| error.to_string())
}

/// Waits for the next text frame and checks how it starts.
async fn expect(socket: &mut Socket, prefix: &str) -> Result<(), String> {
    loop {
        match socket.next().await {
            Some(Ok(Message::Text(text))) if text.starts_with(prefix) => return Ok(()),
            Some(Ok(Message::Text(text))) => {
                return Err(format!("expected {prefix}…, got {}", text.as_str()))
            }
            Some(Ok(_)) => continue,
            Some(Err(error)) => return Err(error.to_string()),
            None => return Err(format!("closed while waiting for {prefix}…")),
        }
    }
}

/// The send time stamped into an event, found without parsing the frame. Every adapter's
/// event carries `"sent":N`, or `\"sent\":N` where the payload is a JSON string (Pusher).
pub fn stamp(frame: &str) -> Option<u64> {
    let at = frame.find("sent")? + "sent".len();
    let rest = frame[at..].trim_start_matches(['\\', '"', ':']);
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    rest[..end].parse().ok().filter(|&sent| sent > 0)
}

/// The API key a Pulseboard server is driven with: its subscribers follow topics on no board
/// and its publisher writes, so both need one. `PULSEBOARD_KEY`, as for the CLI; set to the
/// started server's own admin key when the tool starts one (client processes inherit it).
pub fn pulseboard_key() -> Option<String> {
    std::env::var("PULSEBOARD_KEY").ok()
}
