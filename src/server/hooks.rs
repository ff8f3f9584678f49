//! The HTTP face of hooks ([`crate::ingest::hooks`]): `POST /api/v1/hooks/{name}` checks
//! who sent a delivery (before reading it as anything), hands it to the hook's preset,
//! applies what that maps it to, records it in the hook's delivery log, and answers.
//! `?dry_run=true`, with an admin key, answers what it would write and applies nothing.
//! `GET /api/v1/hooks/{name}/deliveries` is the log, for an admin.
//!
//! Who may deliver: GitHub signs the raw body with the hook's secret (`X-Hub-Signature-256`,
//! HMAC-SHA256, compared in constant time); GitLab sends the secret as `X-Gitlab-Token`;
//! every other sender sends the secret as a bearer token (Alertmanager's and Grafana's
//! `http_config.authorization`), or an API key that may publish every topic the hook writes.

use super::caller::Identified;
use super::error::{ApiError, Code};
use super::AppState;
use crate::access::Caller;
use crate::clock::now_ms;
use crate::engine::idempotency::IdempotencyKey;
use crate::engine::PublishError;
use crate::ingest::hooks::deliveries::Delivery;
use crate::ingest::hooks::{alertmanager, generic, github, gitlab, Hook, Mapped, Preset, Taken};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/hooks/{name}", post(deliver))
        .route("/hooks/{name}/deliveries", get(deliveries))
}

#[derive(Deserialize)]
struct Options {
    #[serde(default)]
    dry_run: bool,
}

/// One delivery as it goes: what the log will say of it.
struct Taking<'a> {
    state: &'a AppState,
    hook: &'a Hook,
    delivery: Delivery,
}

impl Taking<'_> {
    /// Records the delivery with its answer, and gives the answer.
    fn answer(mut self, status: StatusCode, body: Value, error: Option<String>) -> Response {
        self.delivery.status = status.as_u16();
        self.delivery.error = error;
        self.state
            .hooks
            .deliveries
            .record(&self.hook.name, self.delivery);
        let mut response = (status, Json(body)).into_response();
        response.extensions_mut().insert(Recorded);
        response
    }

    fn refuse(self, error: ApiError) -> Response {
        let message = error.message().to_owned();
        let status = error.status();
        let body = serde_json::from_str(&error.body_json()).unwrap_or(Value::Null);
        self.answer(status, body, Some(message))
    }
}

async fn deliver(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(options): Query<Options>,
    parts: Parts,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let Some(taken) = state.hooks.get(&name) else {
        let message = format!(
            "no hook is named `{name}`: hooks are [[hook]] tables in the sources directory's files"
        );
        return ApiError::new(StatusCode::NOT_FOUND, Code::UnknownHook, message).into_response();
    };
    let hook = &taken.hook;
    if taken.limiter.check().is_err() {
        let message = format!(
            "hook `{name}` takes at most {} deliveries a second",
            hook.per_second
        );
        return ApiError::new(StatusCode::TOO_MANY_REQUESTS, Code::RateLimited, message)
            .into_response();
    }
    let headers = &parts.headers;
    let taking = Taking {
        state: &state,
        hook,
        delivery: Delivery {
            at_ms: now_ms(),
            id: delivery_id(headers),
            event: event_name(headers),
            status: 0,
            verified: false,
            dry_run: options.dry_run,
            writes: Vec::new(),
            error: None,
        },
    };
    let body = match body {
        Ok(body) => body,
        Err(rejection) => {
            let code = if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                Code::BodyTooLarge
            } else {
                Code::UnreadableBody
            };
            return taking.refuse(ApiError::new(
                rejection.status(),
                code,
                rejection.body_text(),
            ));
        }
    };
    let caller = Identified::of(&parts).unwrap_or_default();
    if let Err(error) = verify(hook, &caller, headers, &body, options.dry_run) {
        tracing::warn!(target: "audit", event = "denied", hook = %name, reason = %error.message());
        return taking.refuse(error);
    }
    take(taking, &taken, headers, body).await
}

/// Whether the delivery proves it comes from who the hook is for. A dry run is an admin's.
fn verify(
    hook: &Hook,
    caller: &Caller,
    headers: &HeaderMap,
    body: &[u8],
    dry_run: bool,
) -> Result<(), ApiError> {
    let refuse =
        |message: String| ApiError::new(StatusCode::UNAUTHORIZED, Code::InvalidSignature, message);
    if dry_run {
        return if caller.is_admin() {
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                Code::Forbidden,
                "a dry run is for an admin key",
            ))
        };
    }
    if let Preset::Github { .. } = hook.preset {
        let Some(signature) = header_text(headers, "x-hub-signature-256") else {
            return Err(refuse(
                "no X-Hub-Signature-256: set the webhook's secret in GitHub to the hook's".into(),
            ));
        };
        return if signed(&hook.secret, body, signature) {
            Ok(())
        } else {
            Err(refuse(
                "X-Hub-Signature-256 does not match the body signed with the hook's secret".into(),
            ))
        };
    }
    if let Preset::Gitlab { .. } = hook.preset {
        return match header_text(headers, "x-gitlab-token") {
            Some(token) if same_secret(token, &hook.secret) => Ok(()),
            Some(_) => Err(refuse("X-Gitlab-Token is not the hook's secret".into())),
            None => Err(refuse(
                "no X-Gitlab-Token: set the webhook's secret token in GitLab to the hook's".into(),
            )),
        };
    }
    let bearer = header_text(headers, header::AUTHORIZATION.as_str())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::trim);
    if bearer.is_some_and(|token| same_secret(token, &hook.secret)) {
        return Ok(());
    }
    let topics = hook.preset.topics();
    if !caller.is_anonymous() && topics.iter().all(|topic| caller.may_publish(topic)) {
        return Ok(());
    }
    Err(refuse(match bearer {
        None => {
            "no Authorization: Bearer with the hook's secret (or a key that may publish its topics)"
                .into()
        }
        Some(_) => {
            "the bearer token is neither the hook's secret nor a key that may publish its topics"
                .into()
        }
    }))
}

/// Whether `signature` (`sha256=<hex>`) is the body's HMAC-SHA256 with `secret`, compared
/// in constant time.
pub(crate) fn signed(secret: &str, body: &[u8], signature: &str) -> bool {
    let Some(hex) = signature.strip_prefix("sha256=") else {
        return false;
    };
    let Some(expected) = decode_hex(hex) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Compares two secrets in time that does not depend on where they differ (or their length:
/// their digests are compared).
fn same_secret(given: &str, secret: &str) -> bool {
    let (a, b) = (
        Sha256::digest(given.as_bytes()),
        Sha256::digest(secret.as_bytes()),
    );
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

/// The sender's id for a delivery, the same when it retries: GitHub's, GitLab's.
fn delivery_id(headers: &HeaderMap) -> Option<String> {
    [
        "x-github-delivery",
        "idempotency-key",
        "x-gitlab-event-uuid",
    ]
    .iter()
    .find_map(|name| header_text(headers, name))
    .map(str::to_owned)
}

/// The event a delivery says it is: GitHub's, GitLab's.
fn event_name(headers: &HeaderMap) -> Option<String> {
    ["x-github-event", "x-gitlab-event"]
        .iter()
        .find_map(|name| header_text(headers, name))
        .map(str::to_owned)
}

fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

/// A verified delivery: mapped by its preset, then applied (or, in a dry run, answered).
async fn take(mut taking: Taking<'_>, taken: &Taken, headers: &HeaderMap, body: Bytes) -> Response {
    taking.delivery.verified = true;
    let form = header_text(headers, header::CONTENT_TYPE.as_str())
        .is_some_and(|kind| kind.starts_with("application/x-www-form-urlencoded"));
    if form {
        return taking.refuse(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Code::UnsupportedMediaType,
            "the delivery is a form: set the sender's content type to application/json",
        ));
    }
    let payload: Value = match serde_json::from_slice(&body) {
        Ok(payload) => payload,
        Err(e) => {
            return taking.refuse(ApiError::new(
                StatusCode::BAD_REQUEST,
                Code::InvalidJson,
                format!("the delivery is not JSON: {e}"),
            ))
        }
    };
    let hook = taking.hook;
    if let Preset::Alertmanager { .. } = hook.preset {
        taking.delivery.event = alertmanager::event(&payload);
    }
    // One at a time per hook: a preset that reads its topic sees the last delivery applied.
    let _applying = taken.applying.lock().await;
    let mapped = match map(
        taking.state,
        hook,
        taking.delivery.event.as_deref(),
        &payload,
        body,
    )
    .await
    {
        Ok(mapped) => mapped,
        Err(MapError::Payload(message)) => {
            return taking.refuse(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                Code::InvalidPayload,
                message,
            ))
        }
        Err(MapError::Unavailable(error)) => return taking.refuse(error),
    };
    taking.delivery.writes = mapped.writes.clone();
    let dry_run = taking.delivery.dry_run;
    let batch = match (&mapped.ignored, mapped.batch(&hook.name)) {
        (Some(why), _) => {
            let why = why.clone();
            return taking.answer(StatusCode::OK, json!({"ignored": why}), None);
        }
        (None, None) => {
            return taking.answer(
                StatusCode::OK,
                json!({"writes": [], "dry_run": dry_run}),
                None,
            )
        }
        (None, Some(_)) if dry_run => {
            let writes = json!(mapped.writes);
            return taking.answer(
                StatusCode::OK,
                json!({"writes": writes, "dry_run": true}),
                None,
            );
        }
        (None, Some(batch)) => batch,
    };
    // GitHub's redelivery of the same event applies once.
    let key = taking.delivery.id.clone().map(|id| IdempotencyKey {
        owner: format!("hook-{}", hook.name),
        key: id,
    });
    match taking.state.engine.publish(batch, key).await {
        Ok(outcome) => {
            let events: usize = outcome.answer.results.iter().map(|r| r.offsets.len()).sum();
            let body =
                json!({"writes": mapped.writes, "events": events, "replayed": outcome.replayed});
            taking.answer(StatusCode::OK, body, None)
        }
        Err(PublishError::Unavailable(e)) => taking.refuse(super::error::unavailable(e)),
        Err(e) => taking.refuse(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            Code::InvalidPayload,
            e.to_string(),
        )),
    }
}

/// Marks an answer whose delivery is in the log already.
#[derive(Clone, Copy)]
struct Recorded;

/// Middleware, outside the body limits: a delivery refused before its hook saw it (a body
/// declared over `max_body_kib`, one too slow to arrive) is in the hook's log too.
pub(crate) async fn log_early_refusals(
    State(state): State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let hook = request
        .uri()
        .path()
        .strip_prefix("/api/v1/hooks/")
        .filter(|rest| !rest.contains('/'))
        .map(str::to_owned);
    let headers = request.headers().clone();
    let response = next.run(request).await;
    let refused =
        response.status().is_client_error() && response.extensions().get::<Recorded>().is_none();
    if let (true, Some(hook)) = (refused, hook) {
        if state.hooks.get(&hook).is_some() {
            state.hooks.deliveries.record(
                &hook,
                Delivery {
                    at_ms: now_ms(),
                    id: delivery_id(&headers),
                    event: event_name(&headers),
                    status: response.status().as_u16(),
                    verified: false,
                    dry_run: false,
                    writes: Vec::new(),
                    error: Some(format!(
                        "refused before it was read ({})",
                        response.status()
                    )),
                },
            );
        }
    }
    response
}

enum MapError {
    /// The payload is not what the preset reads.
    Payload(String),
    /// The topic it must read first cannot be read.
    Unavailable(ApiError),
}

/// What the hook's preset makes of a payload, reading the topic it compares against first.
async fn map(
    state: &AppState,
    hook: &Hook,
    event: Option<&str>,
    payload: &Value,
    body: Bytes,
) -> Result<Mapped, MapError> {
    let current = |topic: String| async move {
        state
            .engine
            .snapshot(&topic)
            .await
            .map(|snapshot| snapshot.map(|s| s.state).unwrap_or_default())
            .map_err(|e| MapError::Unavailable(super::error::unavailable(e)))
    };
    match &hook.preset {
        Preset::Alertmanager {
            status_topic,
            feed_topic,
        } => {
            let lights: BTreeMap<String, Value> = current(status_topic.clone()).await?;
            alertmanager::map(&body, &lights, status_topic, feed_topic).map_err(MapError::Payload)
        }
        Preset::Github {
            status_topic,
            feed_topic,
        } => {
            let event =
                event.ok_or_else(|| MapError::Payload("no X-GitHub-Event header".into()))?;
            github::map(event, payload, status_topic, feed_topic).map_err(MapError::Payload)
        }
        Preset::Gitlab {
            status_topic,
            feed_topic,
        } => {
            let event =
                event.ok_or_else(|| MapError::Payload("no X-Gitlab-Event header".into()))?;
            gitlab::map(event, payload, status_topic, feed_topic).map_err(MapError::Payload)
        }
        Preset::Generic { topic, selection } => {
            let now = current(topic.clone()).await?;
            let (selection, topic) = (selection.clone(), topic.clone());
            tokio::task::spawn_blocking(move || generic::map(&selection, &body, &topic, &now))
                .await
                .map_err(|e| MapError::Payload(format!("select did not finish: {e}")))?
                .map_err(MapError::Payload)
        }
    }
}

/// A hook's last deliveries, newest first, for an admin.
async fn deliveries(
    State(state): State<AppState>,
    Path(name): Path<String>,
    caller: Caller,
) -> Result<Response, ApiError> {
    if !caller.is_admin() {
        return Err(super::caller::refuse(
            &caller,
            "/api/v1/hooks",
            "read a hook's deliveries",
        ));
    }
    if state.hooks.get(&name).is_none() {
        let message = format!("no hook is named `{name}`");
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            Code::UnknownHook,
            message,
        ));
    }
    Ok(Json(json!({"deliveries": state.hooks.deliveries.of(&name)})).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// GitHub's published test vector ("Validating webhook deliveries").
    #[test]
    fn githubs_own_example_signature_verifies() {
        let signature = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert!(signed(
            "It's a Secret to Everybody",
            b"Hello, World!",
            signature
        ));
        assert!(!signed(
            "It's a Secret to Everybody",
            b"Hello, World?",
            signature
        ));
        assert!(!signed("another secret", b"Hello, World!", signature));
        assert!(!signed(
            "It's a Secret to Everybody",
            b"Hello, World!",
            "sha1=757107"
        ));
        assert!(same_secret("a secret of sorts", "a secret of sorts"));
        assert!(!same_secret("a secret of sorts", "a secret of sort"));
    }
}
