//! How the HTTP side refuses a request: JSON `{code, message, field}` with a status that
//! fits, where `code` is one of a closed list ([`Code`]) that `docs/api.md` documents in
//! full — a test holds the two together. Also the request-reading helpers every handler
//! shares: topic names and JSON bodies, refused the same way everywhere.

use crate::engine::EngineError;
use crate::names::check_name;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

/// Declares the codes once: the enum, its names on the wire, and the list of all of them.
macro_rules! codes {
    ($($(#[$doc:meta])* $variant:ident = $name:literal,)*) => {
        /// What an HTTP refusal's `code` says, for a program to match on.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub(crate) enum Code {
            $($(#[$doc])* $variant,)*
        }

        impl Code {
            /// Every code the server can answer with.
            #[cfg(test)]
            pub(crate) const ALL: &'static [Code] = &[$(Code::$variant,)*];

            pub(crate) fn as_str(self) -> &'static str {
                match self {
                    $(Code::$variant => $name,)*
                }
            }
        }
    };
}

codes! {
    /// A topic (or board) name breaks the naming rule.
    InvalidTopic = "invalid_topic",
    /// The body is not JSON.
    InvalidJson = "invalid_json",
    /// The body could not be read: not UTF-8 where text is needed, or cut off.
    UnreadableBody = "unreadable_body",
    /// JSON, but not the ops the endpoint takes.
    InvalidOps = "invalid_ops",
    /// JSON, but not what the endpoint takes (a field out of range, an unknown scope, …).
    InvalidRequest = "invalid_request",
    InvalidIdempotencyKey = "invalid_idempotency_key",
    IdempotencyKeyReused = "idempotency_key_reused",
    IdempotencyKeyInFlight = "idempotency_key_in_flight",
    /// No credential, and what was asked needs one.
    Unauthenticated = "unauthenticated",
    /// The credential presented is unknown or revoked.
    InvalidKey = "invalid_key",
    /// The credential does not allow what was asked.
    Forbidden = "forbidden",
    UnknownTopic = "unknown_topic",
    UnknownBoard = "unknown_board",
    UnknownKey = "unknown_key",
    UnknownNote = "unknown_note",
    /// `POST /api/v1/hooks/{name}` for a name no hook has.
    UnknownHook = "unknown_hook",
    /// A hook delivery without a valid signature or secret.
    InvalidSignature = "invalid_signature",
    /// A hook delivery that is not what its preset reads.
    InvalidPayload = "invalid_payload",
    /// A hook delivery sent as a form rather than JSON.
    UnsupportedMediaType = "unsupported_media_type",
    /// A note that is empty, too long, or pinned to what the board does not show.
    InvalidNote = "invalid_note",
    /// The body is over `max_body_kib`.
    BodyTooLarge = "body_too_large",
    /// The body did not arrive whole within `body_timeout`.
    BodyTimeout = "body_timeout",
    TooManyOps = "too_many_ops",
    /// A batch writes more topics than one request may.
    TooManyTopics = "too_many_topics",
    OpRefused = "op_refused",
    RateLimited = "rate_limited",
    /// `long_polls` requests are waiting already.
    TooManyWaiters = "too_many_waiters",
    TooManyConnections = "too_many_connections",
    TooManySubscriptions = "too_many_subscriptions",
    /// `/sse` was given neither a board nor topics.
    NothingToFollow = "nothing_to_follow",
    /// `/sse` was given a position it cannot read.
    InvalidPosition = "invalid_position",
    StoreUnavailable = "store_unavailable",
    /// The Redis engine cannot reach Redis.
    EngineUnavailable = "engine_unavailable",
}

impl Serialize for Code {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// A refused request.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ApiError {
    #[serde(skip)]
    status: StatusCode,
    /// Machine-readable: `invalid_json`, `invalid_ops`, `op_refused`, `invalid_topic`, …
    /// (every one is listed in docs/api.md).
    #[schema(value_type = String)]
    code: Code,
    /// For a person.
    message: String,
    /// Where the problem is: `ops[2].by`, `writes[1].topic`, `Idempotency-Key`, …
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<String>,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: Code, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            field: None,
        }
    }

    pub(crate) fn status(&self) -> StatusCode {
        self.status
    }

    pub(crate) fn message(&self) -> &str {
        &self.message
    }

    pub(crate) fn field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// The JSON body the refusal is answered with.
    pub(crate) fn body_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(&self)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// The refusal when the engine cannot answer: nothing was changed.
pub(crate) fn unavailable(e: EngineError) -> ApiError {
    tracing::error!("engine: {e}");
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        unavailable_code(&e),
        "the topics could not be read; retry later",
    )
}

/// `engine_unavailable` when the engine cannot be reached (Redis is down), and
/// `store_unavailable` when it was reached and failed.
pub(crate) fn unavailable_code(e: &EngineError) -> Code {
    match e {
        EngineError::Unreachable(_) => Code::EngineUnavailable,
        EngineError::Failed(_) => Code::StoreUnavailable,
    }
}

/// Checks a topic name from a request; `field` says where it was.
pub(crate) fn topic_name(topic: &str, field: &str) -> Result<(), ApiError> {
    check_name(topic).map_err(|e| {
        ApiError::new(StatusCode::BAD_REQUEST, Code::InvalidTopic, e.to_string()).field(field)
    })
}

/// Reads a JSON body; `invalid` is the code for JSON that is well formed but not what the
/// endpoint takes.
pub(crate) fn parse_body<T: serde::de::DeserializeOwned>(
    body: Result<Bytes, BytesRejection>,
    invalid: Code,
) -> Result<T, ApiError> {
    let body = body.map_err(|e| {
        let code = if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Code::BodyTooLarge
        } else {
            Code::UnreadableBody
        };
        ApiError::new(e.status(), code, e.body_text())
    })?;
    serde_json::from_slice(&body).map_err(|e| {
        let (status, code) = if e.is_syntax() || e.is_eof() {
            (StatusCode::BAD_REQUEST, Code::InvalidJson)
        } else {
            (StatusCode::UNPROCESSABLE_ENTITY, invalid)
        };
        ApiError::new(status, code, e.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::Code;
    use std::collections::BTreeSet;

    /// The codes in the first backticks of each row of the "Errors" table of docs/api.md.
    fn documented() -> BTreeSet<String> {
        let api = include_str!("../../docs/api.md");
        let table = api
            .split("\n## Errors\n")
            .nth(1)
            .expect("docs/api.md has an Errors section");
        table
            .lines()
            .skip_while(|line| !line.starts_with("| status"))
            .skip(2)
            .take_while(|line| line.starts_with('|'))
            .flat_map(|row| {
                let codes = row.split('|').nth(2).unwrap_or_default().to_owned();
                codes
                    .split('`')
                    .skip(1)
                    .step_by(2)
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    #[test]
    fn docs_api_lists_every_code_the_server_can_send_and_no_other() {
        let sent: BTreeSet<String> = Code::ALL.iter().map(|c| c.as_str().to_owned()).collect();
        let documented = documented();
        let undocumented: Vec<_> = sent.difference(&documented).collect();
        let unknown: Vec<_> = documented.difference(&sent).collect();
        assert!(
            undocumented.is_empty(),
            "codes the server sends that docs/api.md's Errors table does not list: {undocumented:?}"
        );
        assert!(
            unknown.is_empty(),
            "codes docs/api.md lists that the server never sends: {unknown:?}"
        );
    }
}
