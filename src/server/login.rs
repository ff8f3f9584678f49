//! The admin session: `GET /login` shows a form that takes an admin key, `POST /login` checks
//! it and sets the session cookie, `POST /logout` ends the session.
//!
//! The cookie is `HttpOnly` (page scripts cannot read it), `SameSite=Strict` (no other site's
//! page or form sends it) and `Secure` when the request came over HTTPS through a proxy that
//! says so. The login and logout forms also refuse a post whose `Origin` is another site, so
//! no page elsewhere can log a browser in or out (login CSRF). A browser on the same machine
//! with the cookie may do what the admin key may; revoking the key ends its sessions.
//!
//! The form posts a key rather than a password: keys are the one credential, made and
//! revoked the same way, and an admin keeps theirs in a password manager.

use super::origin::same_site;
use super::AppState;
use crate::access::keyring::SESSION_LIFETIME;
use crate::access::Caller;
use crate::app::stylesheet_href;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::Form;
use leptos::config::LeptosOptions;
use serde::Deserialize;

use super::caller::{session_token, SESSION_COOKIE};

#[derive(Deserialize)]
pub(crate) struct Login {
    key: String,
    /// Where to go once signed in: a path on this server.
    #[serde(default)]
    next: String,
}

/// `next` if it is a plain path on this server, else `/`: never another site (an open
/// redirect would make the form a phishing aid), never anything that needs escaping.
fn local_path(next: &str) -> &str {
    let plain = next
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"/-_.?=&:,".contains(&b));
    if plain && next.starts_with('/') && !next.starts_with("//") {
        next
    } else {
        "/"
    }
}

#[derive(Deserialize)]
pub(crate) struct Next {
    #[serde(default)]
    next: String,
}

fn page(
    options: &LeptosOptions,
    message: Option<&str>,
    next: &str,
    status: StatusCode,
) -> Response {
    let stylesheet = stylesheet_href(options);
    let message = message.map_or(String::new(), |m| {
        format!("<p class=\"login-error\" role=\"alert\">{m}</p>")
    });
    let html = format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Sign in · Pulseboard</title><link rel=\"stylesheet\" href=\"{stylesheet}\"></head>\
         <body><main class=\"page login\"><h1>Sign in</h1>{message}\
         <form method=\"post\" action=\"/login\"><label>Admin key \
         <input name=\"key\" type=\"password\" autocomplete=\"current-password\" required></label>\
         <input type=\"hidden\" name=\"next\" value=\"{next}\"><button type=\"submit\">Sign in</button></form>\
         <p>An admin key is made with <code>pulseboard keys create --name you --scope admin</code>.</p>\
         </main></body></html>"
    );
    let mut response = (status, Html(html)).into_response();
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; form-action 'self'; frame-ancestors 'none'",
        ),
    );
    response
}

pub(crate) async fn form(State(state): State<AppState>, Query(next): Query<Next>) -> Response {
    page(
        &state.leptos_options,
        None,
        local_path(&next.next),
        StatusCode::OK,
    )
}

pub(crate) async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(login): Form<Login>,
) -> Response {
    if !same_site(&headers, &state.allowed_origins) {
        tracing::warn!(target: "audit", event = "login_refused", reason = "cross-site form");
        return page(
            &state.leptos_options,
            Some("This form was posted from another site."),
            "/",
            StatusCode::FORBIDDEN,
        );
    }
    let key = state
        .keyring
        .verify(login.key.trim())
        .filter(|key| Caller::with_key(key.clone()).is_admin());
    let Some(key) = key else {
        tracing::warn!(target: "audit", event = "login_failed", reason = "not an admin key in force");
        return page(
            &state.leptos_options,
            Some("That is not an admin key in force."),
            local_path(&login.next),
            StatusCode::UNAUTHORIZED,
        );
    };
    let keyring = state.keyring.clone();
    let started = tokio::task::spawn_blocking(move || {
        let token = keyring.start_session(&key);
        token.map(|token| (token, key))
    })
    .await;
    let Ok(Ok((token, key))) = started else {
        return page(
            &state.leptos_options,
            Some("The session could not be stored; try again."),
            "/",
            StatusCode::SERVICE_UNAVAILABLE,
        );
    };
    tracing::info!(target: "audit", event = "login", key = %key.id, name = %key.name);
    let https = headers
        .get("x-forwarded-proto")
        .is_some_and(|p| p == "https");
    let cookie = format!(
        "{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        SESSION_LIFETIME.as_secs(),
        if https { "; Secure" } else { "" }
    );
    let mut response = Redirect::to(local_path(&login.next)).into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

pub(crate) async fn logout(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if !same_site(&headers, &state.allowed_origins) {
        return StatusCode::FORBIDDEN.into_response();
    }
    if let Some(token) = session_token(&headers).map(str::to_owned) {
        let keyring = state.keyring.clone();
        let _ = tokio::task::spawn_blocking(move || keyring.end_session(&token)).await;
        tracing::info!(target: "audit", event = "logout");
    }
    let mut response = Redirect::to("/").into_response();
    let expired = format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    if let Ok(value) = HeaderValue::from_str(&expired) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}
