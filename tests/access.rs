//! Keys, scopes, private boards, share links, and the limits per address and key, against
//! the real binary. Every refusal is checked for its documented status or close code and
//! body, next to the allowed traffic that keeps flowing.

mod support;

use pulseboard::protocol::{ErrorCode, ServerFrame};
use serde_json::{json, Value};
use std::time::Duration;
use support::{client_with_key, closed_with, make_key, next, send, subscribe, Server};
use tempfile::TempDir;

const PRIVATE: &str =
    "title = \"Ops\"\nprivate = true\n[[widget]]\ntype = \"feed\"\ntopic = \"feed:ops\"\n";
const PUBLIC: &str = "title = \"Lobby\"\n[[widget]]\ntype = \"number\"\ntopic = \"metric:lobby\"\nentity = \"visitors\"\n";

/// A server whose boards directory holds a private board `ops` and a public board `lobby`.
fn with_boards(env: &[(&str, &str)]) -> (Server, TempDir) {
    let boards = TempDir::new().unwrap();
    std::fs::write(boards.path().join("ops.toml"), PRIVATE).unwrap();
    std::fs::write(boards.path().join("lobby.toml"), PUBLIC).unwrap();
    let dir = boards.path().to_str().unwrap().to_owned();
    let mut env = env.to_vec();
    env.push(("PULSEBOARD_BOARDS", &dir));
    (Server::start(&env), boards)
}

async fn status_and_body(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn publish_with(server: &Server, http: &reqwest::Client, topic: &str) -> (u16, Value) {
    let body = json!({"ops": [{"op": "incr", "entity_id": "n", "by": 1}]});
    status_and_body(server.publish_with(http, topic, body).await).await
}

#[tokio::test]
async fn writes_need_a_key_whose_scope_covers_every_topic() {
    let server = Server::start(&[]);
    let anonymous = reqwest::Client::new();
    let response = anonymous
        .post(format!("http://{}/api/v1/topics/metric:a", server.addr))
        .json(&json!({"ops": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
    let (status, body) = status_and_body(response).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("unauthenticated"))
    );

    let (status, body) = publish_with(&server, &client_with_key("pb_not-a-key"), "metric:a").await;
    assert_eq!((status, body["code"].as_str()), (401, Some("invalid_key")));

    let (_, secret) = server.create_key("test", &["publish:metric:*"]).await;
    let publisher = client_with_key(&secret);
    let (status, body) = publish_with(&server, &publisher, "feed:x").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("forbidden")),
        "{body}"
    );
    assert_eq!(publish_with(&server, &publisher, "metric:a").await.0, 200);

    // A batch is refused whole when one of its topics is out of scope.
    let batch = json!({"writes": [
        {"topic": "metric:a", "ops": [{"op": "incr", "entity_id": "n", "by": 1}]},
        {"topic": "feed:x", "ops": [{"op": "incr", "entity_id": "n", "by": 1}]},
    ]});
    let url = format!("http://{}/api/v1/batch", server.addr);
    let (status, body) =
        status_and_body(publisher.post(&url).json(&batch).send().await.unwrap()).await;
    assert_eq!(
        (status, body["field"].as_str()),
        (403, Some("writes[1].topic"))
    );
    // The publisher reads back what it may write; the refused batch changed nothing.
    let url = format!("http://{}/api/v1/topics/metric:a", server.addr);
    let (status, snapshot) = status_and_body(publisher.get(&url).send().await.unwrap()).await;
    assert_eq!((status, snapshot["state"]["n"].as_i64()), (200, Some(1)));

    // Only admin keys manage keys or reload screens.
    for (method, path) in [("GET", "/api/v1/keys"), ("POST", "/api/v1/screens/reload")] {
        let url = format!("http://{}{path}", server.addr);
        let request = publisher.request(method.parse().unwrap(), url);
        let (status, body) = status_and_body(request.send().await.unwrap()).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (403, Some("forbidden")),
            "{path}"
        );
    }
}

#[tokio::test]
async fn keys_are_shown_once_listed_without_secrets_and_revoked_at_once() {
    let server = Server::start(&[]);
    let (id, secret) = server.create_key("test", &["publish:*"]).await;
    assert!(secret.starts_with("pb_") && secret.len() > 60);
    let (status, list) = server.get("/api/v1/keys").await;
    assert_eq!(status, 200, "{list}");
    let listed = list["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == id.as_str())
        .unwrap();
    assert_eq!(listed["scopes"], json!(["publish:*"]));
    assert!(listed.get("secret").is_none() && !list.to_string().contains(&secret));

    let http = client_with_key(&secret);
    assert_eq!(publish_with(&server, &http, "metric:x").await.0, 200);
    let url = format!("http://{}/api/v1/keys/{id}", server.addr);
    let (status, revoked) = status_and_body(server.http().delete(&url).send().await.unwrap()).await;
    assert_eq!(status, 200);
    assert!(revoked["revoked_ms"].is_u64());
    let (status, body) = publish_with(&server, &http, "metric:x").await;
    assert_eq!((status, body["code"].as_str()), (401, Some("invalid_key")));
    let (status, body) = status_and_body(
        server
            .http()
            .delete(url.replace(&id, "nope"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, body["code"].as_str()), (404, Some("unknown_key")));

    // Bad requests for a key say what is wrong.
    let url = format!("http://{}/api/v1/keys", server.addr);
    let bad = json!({"name": "x", "scopes": ["write:everything"]});
    let (status, body) =
        status_and_body(server.http().post(&url).json(&bad).send().await.unwrap()).await;
    assert_eq!(status, 422);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("use publish:<topic pattern>"),
        "{body}"
    );
}

#[tokio::test]
async fn a_key_made_on_the_command_line_works_on_a_running_server_within_a_second() {
    let data = TempDir::new().unwrap();
    let server = Server::start_in(data.path(), &[]);
    let secret = make_key(data.path(), "publish:cli:*");
    let http = client_with_key(&secret);
    let mut status = 0;
    for _ in 0..30 {
        status = publish_with(&server, &http, "cli:x").await.0;
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, 200);
}

#[tokio::test]
async fn private_boards_and_their_topics_need_a_key_that_may_read_them() {
    let (server, _boards) = with_boards(&[]);
    for topic in ["feed:ops", "metric:lobby"] {
        let response = server
            .publish(
                topic,
                json!({"ops": [{"op": "set", "entity_id": "n", "payload": 1}]}),
            )
            .await;
        assert_eq!(response.status(), 200);
    }
    let anonymous = reqwest::Client::new();
    let get = |http: &reqwest::Client, path: &str| {
        http.get(format!("http://{}{path}", server.addr)).send()
    };

    // Anonymous: the public board and its topic, nothing of the private one.
    let (_, list) = status_and_body(get(&anonymous, "/api/v1/boards").await.unwrap()).await;
    let names: Vec<&str> = list["boards"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|b| b["name"].as_str())
        .collect();
    assert_eq!(names, ["lobby"]);
    assert_eq!(
        get(&anonymous, "/api/v1/topics/metric:lobby")
            .await
            .unwrap()
            .status(),
        200
    );
    let (status, body) =
        status_and_body(get(&anonymous, "/api/v1/topics/feed:ops").await.unwrap()).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("unauthenticated"))
    );
    let (status, body) =
        status_and_body(get(&anonymous, "/api/v1/boards/ops").await.unwrap()).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("unauthenticated"))
    );
    let page = get(&anonymous, "/b/ops").await.unwrap();
    assert_eq!(page.status(), 401);
    let html = page.text().await.unwrap();
    assert!(html.contains("This board is private") && !html.contains("feed:ops"));
    let (status, _) = status_and_body(get(&anonymous, "/sse?board=ops").await.unwrap()).await;
    assert_eq!(status, 401);

    // A share link (read:ops) opens the board, its topic and its stream; not another key's.
    let (_, link) = server.create_key("test", &["read:ops"]).await;
    let page = get(&anonymous, &format!("/b/ops?token={link}"))
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("feed:ops"));
    let with_link = client_with_key(&link);
    assert_eq!(
        get(&with_link, "/api/v1/topics/feed:ops")
            .await
            .unwrap()
            .status(),
        200
    );
    let stream = get(&anonymous, &format!("/sse?board=ops&token={link}"))
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    drop(stream);
    let (_, other) = server.create_key("test", &["read:lobby"]).await;
    let (status, body) = status_and_body(
        get(&client_with_key(&other), "/api/v1/topics/feed:ops")
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, body["code"].as_str()), (403, Some("forbidden")));
    // Share links do not write.
    let (status, _) = publish_with(&server, &with_link, "feed:ops").await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn sockets_follow_the_same_rules_with_their_own_close_codes() {
    let (server, _boards) = with_boards(&[]);
    let ws = |query: &str| format!("ws://{}/ws{query}", server.addr);
    let open = |url: String| async move {
        let (mut socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        assert!(matches!(next(&mut socket).await, ServerFrame::Welcome(_)));
        socket
    };

    // Anonymous: the public topic flows; the private one and a publish are refused by frame.
    let mut anonymous = open(ws("")).await;
    send(
        &mut anonymous,
        json!({"type": "subscribe", "topics": [{"topic": "feed:ops"}, {"topic": "metric:lobby"}]}),
    )
    .await;
    let mut refused = None;
    let mut snapshots = Vec::new();
    for _ in 0..2 {
        match next(&mut anonymous).await {
            ServerFrame::Error(error) => refused = Some(error),
            ServerFrame::Snapshot(snapshot) => snapshots.push(snapshot.topic),
            other => panic!("unexpected {other:?}"),
        }
    }
    let refused = refused.expect("an error frame for the private topic");
    assert_eq!(refused.code, ErrorCode::Unauthenticated);
    assert!(refused.message.contains("feed:ops"));
    assert_eq!(snapshots, ["metric:lobby"]);
    send(
        &mut anonymous,
        json!({"type": "publish", "ref": "w1", "topic": "metric:lobby", "ops": []}),
    )
    .await;
    let ServerFrame::Error(error) = next(&mut anonymous).await else {
        panic!("expected an error")
    };
    assert_eq!(
        (error.code, error.reference.as_deref()),
        (ErrorCode::Unauthenticated, Some("w1"))
    );
    server.set("metric:lobby", "visitors", 7).await;
    assert!(
        matches!(next(&mut anonymous).await, ServerFrame::Event(_)),
        "public data keeps flowing"
    );

    // Joining a private board without rights closes with 4403.
    send(&mut anonymous, json!({"type": "join", "board": "ops"})).await;
    let close = closed_with(&mut anonymous).await;
    assert_eq!(
        (u16::from(close.code), close.reason.as_str()),
        (4403, "board ops is private")
    );

    // A key that is not in force: 4401 at once.
    let mut bad = tokio_tungstenite::connect_async(ws("?token=pb_unknown"))
        .await
        .unwrap()
        .0;
    let close = closed_with(&mut bad).await;
    assert_eq!(u16::from(close.code), 4401);

    // A share link follows the private board; revoked, its socket is closed with 4401.
    let (id, link) = server.create_key("test", &["read:ops"]).await;
    let mut screen = open(ws(&format!("?token={link}"))).await;
    send(&mut screen, json!({"type": "join", "board": "ops"})).await;
    subscribe(&mut screen, "feed:ops", None).await;
    let mut got_snapshot = false;
    for _ in 0..3 {
        if let ServerFrame::Snapshot(snapshot) = next(&mut screen).await {
            got_snapshot = snapshot.topic == "feed:ops";
            break;
        }
    }
    assert!(got_snapshot);
    // A share link reads; it does not write.
    send(
        &mut screen,
        json!({"type": "publish", "ref": "w2", "topic": "feed:ops", "ops": []}),
    )
    .await;
    let refusal = loop {
        if let ServerFrame::Error(error) = next(&mut screen).await {
            break error;
        }
    };
    assert_eq!(
        (refusal.code, refusal.reference.as_deref()),
        (ErrorCode::Forbidden, Some("w2"))
    );
    server.revoke_key(&id).await;
    let close = closed_with(&mut screen).await;
    assert_eq!(
        (u16::from(close.code), close.reason.as_str()),
        (4401, "the key was revoked")
    );
}

#[tokio::test]
async fn requests_past_the_rate_get_429_with_retry_after_per_address_and_per_key() {
    let server = Server::start(&[
        ("PULSEBOARD_REQUESTS_PER_IP", "5"),
        ("PULSEBOARD_REQUESTS_PER_KEY", "20"),
    ]);
    let anonymous = reqwest::Client::new();
    let url = format!("http://{}/healthz", server.addr);
    let mut statuses = Vec::new();
    let mut limited = None;
    for _ in 0..30 {
        let response = anonymous.get(&url).send().await.unwrap();
        statuses.push(response.status().as_u16());
        if response.status() == 429 && limited.is_none() {
            limited = Some(response);
        }
    }
    let limited = limited.expect("an address over its rate is refused");
    let wait: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&wait));
    let (_, body) = status_and_body(limited).await;
    assert_eq!(body["code"], "rate_limited");
    assert!(
        statuses[..10].iter().all(|s| *s == 200),
        "bursts of twice the rate pass: {statuses:?}"
    );
    // A key has a budget of its own, even from the same address.
    assert_eq!(server.http().get(&url).send().await.unwrap().status(), 200);
    let mut key_limited = false;
    for _ in 0..60 {
        key_limited |= server.http().get(&url).send().await.unwrap().status() == 429;
    }
    assert!(key_limited, "a key over its rate is refused too");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(
        anonymous.get(&url).send().await.unwrap().status(),
        200,
        "and served again after the wait"
    );
}

#[tokio::test]
async fn an_address_gets_at_most_its_share_of_connections() {
    let server = Server::start(&[("PULSEBOARD_CONNECTIONS_PER_IP", "2")]);
    let first = server.connect().await;
    let _second = server.connect().await;
    let refused = tokio_tungstenite::connect_async(server.ws_url())
        .await
        .unwrap_err();
    let tokio_tungstenite::tungstenite::Error::Http(response) = refused else {
        panic!("expected an HTTP refusal, got {refused}")
    };
    assert_eq!(response.status(), 429);
    assert!(response.headers().contains_key("retry-after"));
    let sse = server
        .http()
        .get(format!("http://{}/sse?topics=a", server.addr))
        .send()
        .await
        .unwrap();
    let (status, body) = status_and_body(sse).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (429, Some("too_many_connections"))
    );
    // A closed connection frees its place.
    drop(first);
    let mut freed = false;
    for _ in 0..20 {
        if tokio_tungstenite::connect_async(server.ws_url())
            .await
            .is_ok()
        {
            freed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(freed);
}

#[tokio::test]
async fn pages_carry_a_nonce_policy_and_every_answer_the_other_headers() {
    let server = Server::start(&[(
        "PULSEBOARD_FRAME_ANCESTORS",
        "'self',https://intranet.example.com",
    )]);
    let page = reqwest::get(format!("http://{}/b/demo", server.addr))
        .await
        .unwrap();
    let policy = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(page.headers()["x-content-type-options"], "nosniff");
    let nonce = policy
        .split("'nonce-")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .expect("a nonce in script-src")
        .to_owned();
    assert!(policy.contains("script-src 'self' 'nonce-"), "{policy}");
    assert!(!policy.contains("unsafe-eval'") || policy.contains("'wasm-unsafe-eval'"));
    assert!(
        policy.ends_with("frame-ancestors 'self' https://intranet.example.com"),
        "{policy}"
    );
    let html = page.text().await.unwrap();
    let scripts = html.matches("<script").count();
    assert!(
        scripts > 0 && html.matches(&format!("nonce=\"{nonce}\"")).count() >= scripts,
        "every inline script carries the nonce"
    );
    let again = reqwest::get(format!("http://{}/b/demo", server.addr))
        .await
        .unwrap();
    assert!(
        !again.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains(&nonce),
        "a nonce per response"
    );

    let api = reqwest::get(format!("http://{}/healthz", server.addr))
        .await
        .unwrap();
    assert_eq!(api.headers()["x-content-type-options"], "nosniff");
    assert!(api.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .starts_with("default-src 'none'"));
}

#[tokio::test]
async fn body_and_frame_sizes_follow_the_configuration() {
    let server = Server::start(&[
        ("PULSEBOARD_MAX_BODY_KIB", "4"),
        ("PULSEBOARD_MAX_FRAME_KIB", "2"),
    ]);
    let body = format!("{{\"ops\": [], \"pad\": \"{}\"}}", "x".repeat(5 * 1024));
    let url = format!("http://{}/api/v1/topics/metric:big", server.addr);
    // A client of its own: the refused body is not read, which can break its connection.
    let response = client_with_key(&server.key)
        .post(url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let (status, body) = status_and_body(response).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (413, Some("body_too_large"))
    );
    assert_eq!(
        server.set("metric:big", "n", 1).await["offsets"],
        json!([1]),
        "smaller bodies go through"
    );

    let mut socket = server.connect().await;
    let frame = json!({"type": "ping", "pad": "x".repeat(3 * 1024)}).to_string();
    send(&mut socket, serde_json::from_str(&frame).unwrap()).await;
    let close = closed_with(&mut socket).await;
    assert_eq!(
        (u16::from(close.code), close.reason.as_str()),
        (1009, "frames are at most 2 KiB")
    );
}

#[tokio::test]
async fn an_admin_signs_in_with_a_key_and_the_cookie_only_works_from_the_own_site() {
    let (server, _boards) = with_boards(&[]);
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let base = format!("http://{}", server.addr);
    let form = browser
        .get(format!("{base}/login?next=/b/ops"))
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), 200);
    assert!(form
        .text()
        .await
        .unwrap()
        .contains("name=\"next\" value=\"/b/ops\""));

    let (_, reader) = server.create_key("test", &["read:ops"]).await;
    let post = |key: &str, origin: &str| {
        browser
            .post(format!("{base}/login"))
            .header("origin", origin)
            .form(&[("key", key), ("next", "/b/ops")])
            .send()
    };
    assert_eq!(
        post(&reader, &base).await.unwrap().status(),
        401,
        "only admin keys sign in"
    );
    let cross = post(&server.key, "https://evil.example").await.unwrap();
    assert_eq!(cross.status(), 403, "no login from another site's form");
    assert!(cross.headers().get("set-cookie").is_none());
    let signed_in = post(&server.key, &base).await.unwrap();
    assert_eq!(signed_in.status(), 303);
    assert_eq!(signed_in.headers()["location"], "/b/ops");
    let cookie = signed_in.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let session = cookie.split(';').next().unwrap().to_owned();

    let page = browser
        .get(format!("{base}/b/ops"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200, "the session reads private boards");
    let write = |origin: &str| {
        browser
            .post(format!("{base}/api/v1/topics/feed:ops"))
            .header("cookie", &session)
            .header("origin", origin)
            .json(&json!({"ops": [{"op": "set", "entity_id": "n", "payload": 1}]}))
            .send()
    };
    assert_eq!(
        write("https://evil.example").await.unwrap().status(),
        401,
        "a cross-site write with the cookie is anonymous"
    );
    assert_eq!(write(&base).await.unwrap().status(), 200);

    let out = browser
        .post(format!("{base}/logout"))
        .header("cookie", &session)
        .header("origin", &base)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 303);
    let page = browser
        .get(format!("{base}/b/ops"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 401, "the session ended");
}

#[tokio::test]
async fn key_changes_logins_and_refusals_leave_audit_lines_without_secrets() {
    let (server, _boards) = with_boards(&[]);
    let (id, secret) = server.create_key("test", &["publish:metric:*"]).await;
    let created = server.logged(&["audit", "key_created", &id]).await;
    assert!(
        created.contains("publish:metric:*") && !created.contains(&secret),
        "{created}"
    );

    let anonymous = reqwest::Client::new();
    publish_with(&server, &anonymous, "metric:a").await;
    server
        .logged(&["audit", "denied", "anonymous", "publish to `metric:a`"])
        .await;
    publish_with(&server, &client_with_key(&secret), "feed:x").await;
    server
        .logged(&["audit", "denied", &id, "publish to `feed:x`"])
        .await;
    publish_with(&server, &client_with_key("pb_forged"), "metric:a").await;
    server.logged(&["audit", "denied", "invalid key"]).await;

    let login = |key: &str| {
        anonymous
            .post(format!("http://{}/login", server.addr))
            .form(&[("key", key)])
            .send()
    };
    login("pb_guess").await.unwrap();
    server.logged(&["audit", "login_failed"]).await;
    login(&server.key).await.unwrap();
    server.logged(&["audit", "event=\"login\""]).await;

    server.revoke_key(&id).await;
    server.logged(&["audit", "key_revoked", &id]).await;
    let everything = server.log_lines(&["audit"]).join("\n");
    assert!(!everything.contains(&secret) && !everything.contains(&server.key));
}

#[tokio::test]
async fn an_event_stream_ends_when_its_key_is_revoked() {
    let (server, _boards) = with_boards(&[]);
    let (id, link) = server.create_key("test", &["read:ops"]).await;
    let url = format!("http://{}/sse?board=ops&token={link}", server.addr);
    let mut stream = reqwest::get(&url).await.unwrap();
    assert_eq!(stream.status(), 200);
    server.revoke_key(&id).await;
    let mut text = String::new();
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(chunk) = stream.chunk().await.unwrap() {
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
    })
    .await;
    assert!(ended.is_ok(), "the stream ends: {text}");
    assert!(
        text.contains(r#""code":"unauthenticated","message":"the key was revoked""#),
        "{text}"
    );
    assert_eq!(
        reqwest::get(&url).await.unwrap().status(),
        401,
        "and its reconnect is refused"
    );
}
