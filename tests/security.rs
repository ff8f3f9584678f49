//! The server's refusals, against the real binary: sockets opened from other sites, and
//! frames over the size limit. Each refusal has its documented close code and reason, and
//! allowed traffic keeps flowing alongside.

mod support;

use futures_util::{SinkExt, StreamExt};
use pulseboard::protocol::ServerFrame;
use serde_json::json;
use std::time::Duration;
use support::{closed_with, next, send, Server};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

/// Opens `/ws` as a page from `origin` would, through a proxy that says it was reached at
/// `forwarded_host` if given.
async fn open_from(
    server: &Server,
    origin: Option<&str>,
    forwarded_host: Option<&str>,
) -> support::Socket {
    let mut request = server.ws_url().into_client_request().unwrap();
    let headers = request.headers_mut();
    if let Some(origin) = origin {
        headers.insert("origin", origin.parse().unwrap());
    }
    if let Some(host) = forwarded_host {
        headers.insert("x-forwarded-host", host.parse().unwrap());
    }
    tokio_tungstenite::connect_async(request).await.unwrap().0
}

#[tokio::test]
async fn a_socket_from_another_site_is_refused_with_1008_and_the_own_site_is_served() {
    let server = Server::start(&[("PULSEBOARD_ALLOWED_ORIGINS", "https://wall.example.com")]);

    let mut hijack = open_from(&server, Some("https://evil.example"), None).await;
    let close = closed_with(&mut hijack).await;
    assert_eq!(u16::from(close.code), 1008);
    assert!(
        close
            .reason
            .contains("origin https://evil.example is not allowed"),
        "{}",
        close.reason
    );

    // The server's own pages (directly, and behind a proxy that rewrites Host), a listed
    // origin, and clients that send no Origin at all.
    let own = format!("http://{}", server.addr);
    for (origin, forwarded) in [
        (Some(own.as_str()), None),
        (Some("https://board.example.org"), Some("board.example.org")),
        (Some("https://wall.example.com"), None),
        (None, None),
    ] {
        let mut socket = open_from(&server, origin, forwarded).await;
        assert!(
            matches!(next(&mut socket).await, ServerFrame::Welcome(_)),
            "{origin:?} is served"
        );
        send(&mut socket, json!({"type": "ping", "id": 1})).await;
        assert!(matches!(
            next(&mut socket).await,
            ServerFrame::Pong { id: Some(1) }
        ));
    }
}

#[tokio::test]
async fn a_frame_over_64_kib_closes_the_connection_with_1009() {
    let server = Server::start(&[]);
    let mut bystander = server.connect().await;
    let mut sender = server.connect().await;
    let huge = json!({"type": "ping", "pad": "x".repeat(100 * 1024)}).to_string();
    sender.send(Message::Text(huge.into())).await.unwrap();
    let close = closed_with(&mut sender).await;
    assert_eq!(u16::from(close.code), 1009);
    assert_eq!(close.reason.as_str(), "frames are at most 64 KiB");

    // A frame just under the limit is an ordinary frame, and others are untouched.
    let mut near = server.connect().await;
    let fits = json!({"type": "ping", "id": 2, "pad": "x".repeat(60 * 1024)}).to_string();
    near.send(Message::Text(fits.into())).await.unwrap();
    assert!(matches!(
        next(&mut near).await,
        ServerFrame::Error(_) | ServerFrame::Pong { .. }
    ));
    send(&mut bystander, json!({"type": "ping", "id": 3})).await;
    assert!(matches!(
        next(&mut bystander).await,
        ServerFrame::Pong { id: Some(3) }
    ));
}

#[tokio::test]
async fn a_client_over_its_frame_rate_is_told_then_closed_if_it_keeps_on() {
    let server = Server::start(&[("PULSEBOARD_MESSAGES_PER_SECOND", "10")]);
    let mut polite = server.connect().await;
    let mut flooder = server.connect().await;
    let started = std::time::Instant::now();
    let mut told = 0;
    let close = loop {
        assert!(
            started.elapsed() < Duration::from_secs(12),
            "still open after 12 s of flooding"
        );
        // About a hundred frames a second, ten times the limit; reading between them.
        let ping = Message::Text(json!({"type": "ping"}).to_string().into());
        let _ = flooder.send(ping).await;
        match tokio::time::timeout(Duration::from_millis(10), flooder.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => {
                told += usize::from(text.as_str().contains(r#""code":"rate_limited""#));
            }
            Ok(Some(Ok(Message::Close(Some(close))))) => break close,
            Ok(None) | Ok(Some(Err(_))) => panic!("the socket ended without a close frame"),
            _ => {}
        }
    };
    assert_eq!(
        told, 1,
        "told once per run of refused frames, not once per frame"
    );
    assert_eq!(u16::from(close.code), 1008);
    assert_eq!(close.reason.as_str(), "too many frames for too long");
    assert!(
        started.elapsed() >= Duration::from_secs(5),
        "closed only once it was sustained"
    );
    // The polite client on the same server was never limited.
    send(&mut polite, json!({"type": "ping", "id": 4})).await;
    assert!(matches!(
        next(&mut polite).await,
        ServerFrame::Pong { id: Some(4) }
    ));
}

#[tokio::test]
async fn subscriptions_past_the_limit_are_refused_by_name() {
    let server = Server::start(&[("PULSEBOARD_MAX_SUBSCRIPTIONS", "3")]);
    let mut socket = server.connect().await;
    let topics: Vec<_> = (1..=5)
        .map(|n| json!({"topic": format!("t:{n}")}))
        .collect();
    send(&mut socket, json!({"type": "subscribe", "topics": topics})).await;
    let (mut snapshots, mut refusal) = (0, None);
    while refusal.is_none() || snapshots < 3 {
        match next(&mut socket).await {
            ServerFrame::Snapshot(_) => snapshots += 1,
            ServerFrame::Error(error) => refusal = Some(error),
            other => panic!("unexpected {other:?}"),
        }
    }
    let refusal = refusal.unwrap();
    assert_eq!(
        serde_json::to_value(refusal.code).unwrap(),
        json!("too_many_subscriptions")
    );
    assert!(
        refusal.message.contains("not subscribed: t:4, t:5"),
        "{}",
        refusal.message
    );
    // Following an already-followed topic again is not a new one.
    send(
        &mut socket,
        json!({"type": "subscribe", "topics": [{"topic": "t:1"}]}),
    )
    .await;
    assert!(matches!(next(&mut socket).await, ServerFrame::Snapshot(_)));

    let (status, body) = server.get("/sse?topics=a:1,a:2,a:3,a:4").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("too_many_subscriptions"))
    );
}
