//! The HTTP API under `/api/v1` and the health check: publish ops to a topic, read a topic's
//! snapshot, list topics. Every refusal is JSON `{code, message, field}` with a fitting status.

use super::AppState;
use crate::hub::PublishError;
use crate::ops::Publish;
use crate::protocol::check_name;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use serde_json::json;

/// The largest request body the API reads.
pub const MAX_BODY: usize = 1024 * 1024;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/topics", get(list_topics))
        .route("/topics/{topic}", get(read_topic).post(publish))
        .layer(DefaultBodyLimit::max(MAX_BODY))
}

pub async fn health() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// A refused request.
#[derive(Debug, Serialize)]
pub struct ApiError {
    #[serde(skip)]
    status: StatusCode,
    code: &'static str,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<String>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            field: None,
        }
    }

    fn field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(&self)).into_response()
    }
}

fn topic_name(topic: &str) -> Result<(), ApiError> {
    check_name(topic).map_err(|e| {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_topic", e.to_string()).field("topic")
    })
}

async fn publish(
    State(state): State<AppState>,
    Path(topic): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<crate::ops::Published>, ApiError> {
    topic_name(&topic)?;
    let body = body.map_err(|e| {
        let code = if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            "body_too_large"
        } else {
            "unreadable_body"
        };
        ApiError::new(e.status(), code, e.body_text())
    })?;
    let request: Publish = serde_json::from_slice(&body).map_err(|e| {
        let (status, code) = if e.is_syntax() || e.is_eof() {
            (StatusCode::BAD_REQUEST, "invalid_json")
        } else {
            (StatusCode::UNPROCESSABLE_ENTITY, "invalid_ops")
        };
        ApiError::new(status, code, e.to_string())
    })?;
    state
        .hub
        .publish(&topic, request)
        .await
        .map(Json)
        .map_err(|e| match e {
            PublishError::Refused(e) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "op_refused",
                e.to_string(),
            )
            .field(format!("ops[{}].{}", e.index, e.field)),
            PublishError::Store(e) => {
                tracing::error!(topic, "write failed: {e}");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store_unavailable",
                    "the write could not be stored; nothing was applied; retry later",
                )
            }
        })
}

async fn read_topic(
    State(state): State<AppState>,
    Path(topic): Path<String>,
) -> Result<Response, ApiError> {
    topic_name(&topic)?;
    let snapshot = state.hub.snapshot(&topic).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_topic",
            format!("no topic named `{topic}`"),
        )
        .field("topic")
    })?;
    Ok(Json(json!({
        "topic": snapshot.topic,
        "epoch": snapshot.epoch,
        "offset": snapshot.offset,
        "state": snapshot.state,
    }))
    .into_response())
}

async fn list_topics(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(json!({ "topics": state.hub.topics() }))
}
