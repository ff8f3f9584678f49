//! InfluxDB's write endpoints, so that Telegraf's, Vector's and InfluxDB's client libraries'
//! stock outputs feed boards unchanged: `POST /api/v2/write?bucket=…` (v2, the key as
//! `Authorization: Token …`) and `POST /write?db=…` (v1, the key as `Token` or `p=`). The
//! body (gzipped or not) is line protocol; [`crate::ingest::line_protocol`] says what it
//! writes. Answered 204 as InfluxDB answers, or the usual JSON error.

use super::caller::Identified;
use super::error::{unavailable, ApiError, Code};
use super::AppState;
use crate::access::Caller;
use crate::engine::PublishError;
use crate::ingest::line_protocol::{batches, parse};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde::Deserialize;
use std::io::Read;

pub(crate) fn routes(max_body: usize) -> Router<AppState> {
    Router::new()
        .route("/api/v2/write", post(write))
        .route("/write", post(write))
        .layer(DefaultBodyLimit::max(max_body))
}

#[derive(Deserialize)]
struct Target {
    /// v2's bucket.
    bucket: Option<String>,
    /// v1's database.
    db: Option<String>,
    /// v1's password: the API key.
    p: Option<String>,
}

async fn write(
    State(state): State<AppState>,
    Query(target): Query<Target>,
    parts: Parts,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let caller = caller(&state, &parts, target.p.as_deref())?;
    let namespace = target.bucket.or(target.db).ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            Code::InvalidRequest,
            "name a bucket (`?bucket=` for v2) or a database (`?db=` for v1): it is the topics' namespace",
        )
    })?;
    let body = body.map_err(|e| ApiError::new(e.status(), Code::BodyTooLarge, e.body_text()))?;
    let text = decoded(&parts.headers, &body, state.limits.max_body)?;
    let points = parse(&text).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            Code::InvalidRequest,
            format!("line {}: {}", e.line, e.message),
        )
    })?;
    let by = format!("influx:{}", caller.who());
    let batches = batches(&namespace, &points, &by)
        .map_err(|e| ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, Code::TooManyOps, e))?;
    for batch in &batches {
        for write in &batch.writes {
            if !caller.may_publish(&write.topic) {
                let what = format!("publish to `{}`", write.topic);
                return Err(super::caller::refuse(&caller, "/api/v2/write", &what));
            }
        }
    }
    for batch in batches {
        state
            .engine
            .publish(batch, None)
            .await
            .map_err(|e| match e {
                PublishError::Unavailable(e) => unavailable(e),
                other => ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    Code::OpRefused,
                    other.to_string(),
                ),
            })?;
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The writer's key: `Authorization: Token …` as InfluxDB's clients send it, a bearer token,
/// or v1's `p=`. Anonymous writers are refused.
fn caller(state: &AppState, parts: &Parts, password: Option<&str>) -> Result<Caller, ApiError> {
    let token = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Token "))
        .or(password)
        .map(str::trim);
    let caller = match token {
        Some(secret) => state
            .keyring
            .verify(secret)
            .map(Caller::with_key)
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    Code::InvalidKey,
                    "the token is not a key in force",
                )
            })?,
        None => Identified::of(parts).map_err(ApiError::from)?,
    };
    if caller.is_anonymous() {
        return Err(super::caller::refuse(
            &caller,
            "/api/v2/write",
            "write line protocol",
        ));
    }
    Ok(caller)
}

/// The body as text, gunzipped if it came so (Telegraf's default), never past `max` bytes.
fn decoded(headers: &HeaderMap, body: &[u8], max: usize) -> Result<String, ApiError> {
    let gzipped = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("gzip"));
    let mut text = String::new();
    let read = if gzipped {
        flate2::read::GzDecoder::new(body)
            .take(max as u64 + 1)
            .read_to_string(&mut text)
    } else {
        std::str::from_utf8(body)
            .map(|t| text.push_str(t))
            .map(|()| body.len())
            .map_err(std::io::Error::other)
    };
    match read {
        Ok(_) if text.len() > max => Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            Code::BodyTooLarge,
            format!(
                "the body is over {} KiB once unzipped (max_body_kib)",
                max / 1024
            ),
        )),
        Ok(_) => Ok(text),
        Err(e) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            Code::UnreadableBody,
            format!(
                "the body is not UTF-8 line protocol{}: {e}",
                if gzipped { " once unzipped" } else { "" }
            ),
        )),
    }
}
