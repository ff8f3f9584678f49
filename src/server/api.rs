//! The HTTP API under `/api/v1` and the health check: publish ops to a topic or a batch of
//! topics, read a topic's snapshot, list topics, read the boards as their files last parsed,
//! and the OpenAPI document describing all of it, generated from these handlers and their
//! types. Every refusal is an [`ApiError`].

use super::caller::refuse;
use super::error::{parse_body, topic_name, unavailable, unavailable_code, ApiError, Code};
use super::AppState;
use crate::access::keyring::{KeyRecord, Keyring};
use crate::access::scope::Scope;
use crate::access::Caller;
use crate::boards::notes::{Note, NoteDraft};
use crate::engine::idempotency::{IdempotencyKey, MAX_KEY_LEN};
use crate::engine::{Outcome, PublishError};
use crate::ops::{Batch, BatchError, BatchPublished, Op, Publish, Published, TopicOps};
use crate::protocol::Snapshot;
use crate::store::StoreError;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use serde_json::json;
use utoipa::{OpenApi, ToSchema};

/// The API's routes; bodies over `max_body` bytes are refused with 413 unread.
pub(crate) fn routes(max_body: usize) -> Router<AppState> {
    Router::new()
        .route("/topics", get(list_topics))
        .route("/topics/{topic}", get(read_topic).post(publish))
        .route("/topics/{topic}/changes", get(super::changes::changes))
        .route("/batch", post(publish_batch))
        .route("/boards", get(list_boards))
        .route("/boards/{board}", get(read_board))
        .route("/screens/reload", post(reload_screens))
        .route("/keys", get(list_keys).post(create_key))
        .route(
            "/keys/{id}",
            axum::routing::delete(revoke_key).patch(rescope_key),
        )
        .route("/openapi.json", get(openapi))
        .merge(super::notes::routes())
        .merge(super::hooks::routes())
        .layer(DefaultBodyLimit::max(max_body))
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Pulseboard API",
        description = "Push data into topics; read them back."
    ),
    paths(
        publish,
        publish_batch,
        read_topic,
        super::changes::changes,
        list_topics,
        list_boards,
        read_board,
        reload_screens,
        list_keys,
        rescope_key,
        create_key,
        revoke_key,
        super::notes::list_notes,
        super::notes::write_note,
        super::notes::edit_note,
        super::notes::delete_note,
        health
    ),
    components(schemas(ApiError, Op, TopicOps, TopicSummary, ReloadRequest, KeyRequest, ScopesRequest, KeyRecord, NoteDraft, Note)),
    modifiers(&BearerKeys),
    security(("api_key" = []))
)]
struct ApiDoc;

/// Declares the bearer API key every protected endpoint takes.
struct BearerKeys;

impl utoipa::Modify for BearerKeys {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

/// The server's figures, for Prometheus.
pub(crate) async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.hub.metrics().render(),
    )
        .into_response()
}

/// Whether this instance can serve: 200 while it runs and its engine answers, 503 with the
/// reason when the engine cannot be reached (a load balancer then takes the instance out).
#[utoipa::path(get, path = "/healthz", responses(
    (status = 200, description = "`{\"status\": \"ok\"}`, with `warnings` (a list of sentences) when something should be fixed though the instance serves, such as Redis without `appendonly`"),
    (status = 503, description = "`{\"status\": \"unavailable\", \"reason\": …}`: the engine (Redis) cannot be reached"),
))]
pub(crate) async fn health(State(state): State<AppState>) -> Response {
    let (status, mut body) = match state.engine.health().await {
        Ok(()) => (StatusCode::OK, json!({"status": "ok"})),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"status": "unavailable", "reason": e.to_string()}),
        ),
    };
    let warnings = state.engine.warnings();
    if !warnings.is_empty() {
        body["warnings"] = json!(warnings);
    }
    (status, Json(body)).into_response()
}

/// Apply a list of ops to one topic, in order, whole or not at all.
#[utoipa::path(
    post,
    path = "/api/v1/topics/{topic}",
    params(
        ("topic" = String, Path, description = "e.g. metric:signups"),
        ("Idempotency-Key" = Option<String>, Header, description = "makes a retried request apply once"),
    ),
    request_body = Publish,
    responses(
        (status = 200, description = "applied and stored", body = Published),
        (status = 400, description = "malformed JSON or a bad topic name", body = ApiError),
        (status = 401, description = "no API key, or one unknown or revoked", body = ApiError),
        (status = 403, description = "the key may not publish to a topic of the request", body = ApiError),
        (status = 409, description = "the Idempotency-Key was used for another request, or is in flight", body = ApiError),
        (status = 413, description = "the body is over `max_body_kib` (1 MiB by default), or carries over 1,000 ops", body = ApiError),
        (status = 422, description = "unknown or malformed ops, or an op that cannot apply; nothing changed", body = ApiError),
        (status = 503, description = "the store could not record the write; nothing changed", body = ApiError),
    )
)]
async fn publish(
    State(state): State<AppState>,
    caller: Caller,
    Path(topic): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    topic_name(&topic, "topic")?;
    reserved(&topic, "topic")?;
    if !caller.may_publish(&topic) {
        return Err(refuse(
            &caller,
            "/api/v1/topics",
            &format!("publish to `{topic}`"),
        ));
    }
    let key = idempotency_key(&caller, &headers)?;
    let request: Publish = parse_body(body, Code::InvalidOps)?;
    let Outcome {
        mut answer,
        replayed,
    } = apply(&state, (topic, request).into(), key).await?;
    let published = answer.results.swap_remove(0);
    Ok(with_replay_header(
        Json(published).into_response(),
        replayed,
    ))
}

/// Apply ops over several topics, all of them or none.
#[utoipa::path(
    post,
    path = "/api/v1/batch",
    params(
        ("Idempotency-Key" = Option<String>, Header, description = "makes a retried request apply once"),
    ),
    request_body = Batch,
    responses(
        (status = 200, description = "applied and stored", body = BatchPublished),
        (status = 400, description = "malformed JSON or a bad topic name", body = ApiError),
        (status = 401, description = "no API key, or one unknown or revoked", body = ApiError),
        (status = 403, description = "the key may not publish to a topic of the request", body = ApiError),
        (status = 409, description = "the Idempotency-Key was used for another request, or is in flight", body = ApiError),
        (status = 413, description = "the body is over `max_body_kib` (1 MiB by default), or carries over 1,000 ops", body = ApiError),
        (status = 422, description = "unknown or malformed ops, or an op that cannot apply; nothing changed", body = ApiError),
        (status = 503, description = "the store could not record the write; nothing changed", body = ApiError),
    )
)]
async fn publish_batch(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    if caller.is_anonymous() {
        return Err(refuse(&caller, "/api/v1/batch", "publish"));
    }
    let key = idempotency_key(&caller, &headers)?;
    let batch: Batch = parse_body(body, Code::InvalidOps)?;
    for (i, write) in batch.writes.iter().enumerate() {
        topic_name(&write.topic, &format!("writes[{i}].topic"))?;
        reserved(&write.topic, &format!("writes[{i}].topic"))?;
        if !caller.may_publish(&write.topic) {
            let what = format!("publish to `{}`", write.topic);
            return Err(refuse(&caller, "/api/v1/batch", &what).field(format!("writes[{i}].topic")));
        }
    }
    let Outcome { answer, replayed } = apply(&state, batch, key).await?;
    Ok(with_replay_header(Json(answer).into_response(), replayed))
}

/// Refuses ops on a board's notes topic, saying where notes are written.
fn reserved(topic: &str, field: &str) -> Result<(), ApiError> {
    match crate::notes::reserved(topic) {
        Some(why) => Err(ApiError::new(StatusCode::FORBIDDEN, Code::Forbidden, why).field(field)),
        None => Ok(()),
    }
}

/// The request's `Idempotency-Key`, as the key of the caller that sent it.
fn idempotency_key(
    caller: &Caller,
    headers: &HeaderMap,
) -> Result<Option<IdempotencyKey>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let refuse = || {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            Code::InvalidIdempotencyKey,
            format!("Idempotency-Key must be 1 to {MAX_KEY_LEN} visible ASCII characters"),
        )
        .field("Idempotency-Key")
    };
    let key = value.to_str().map_err(|_| refuse())?;
    let visible = key.bytes().all(|b| b.is_ascii_graphic());
    if key.is_empty() || key.len() > MAX_KEY_LEN || !visible {
        return Err(refuse());
    }
    Ok(Some(IdempotencyKey {
        owner: caller.who().to_owned(),
        key: key.to_owned(),
    }))
}

fn with_replay_header(mut response: Response, replayed: bool) -> Response {
    if replayed {
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    response
}

async fn apply(
    state: &AppState,
    batch: Batch,
    key: Option<IdempotencyKey>,
) -> Result<Outcome, ApiError> {
    let single = batch.writes.len() == 1;
    state.engine.publish(batch, key).await.map_err(|e| match e {
        PublishError::Refused { write, error } => {
            let at = if single {
                format!("ops[{}].{}", error.index, error.field)
            } else {
                format!("writes[{write}].ops[{}].{}", error.index, error.field)
            };
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                Code::OpRefused,
                error.to_string(),
            )
            .field(at)
        }
        PublishError::KeyReused | PublishError::KeyInFlight => {
            let code = if matches!(e, PublishError::KeyReused) {
                Code::IdempotencyKeyReused
            } else {
                Code::IdempotencyKeyInFlight
            };
            ApiError::new(StatusCode::CONFLICT, code, e.to_string()).field("Idempotency-Key")
        }
        PublishError::Shape(BatchError::EmptyOps { write }) => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            Code::InvalidOps,
            e.to_string(),
        )
        .field(if single {
            "ops".to_owned()
        } else {
            format!("writes[{write}].ops")
        }),
        PublishError::Shape(BatchError::TooManyOps) => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            Code::TooManyOps,
            e.to_string(),
        )
        .field("ops"),
        PublishError::Shape(BatchError::TooManyTopics) => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            Code::TooManyTopics,
            e.to_string(),
        )
        .field("writes"),
        PublishError::Unavailable(e) => {
            tracing::error!("write failed: {e}");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                unavailable_code(&e),
                "the write could not be stored; nothing was applied; retry later",
            )
        }
    })
}

/// A topic's whole state at its current (epoch, offset).
#[utoipa::path(
    get,
    path = "/api/v1/topics/{topic}",
    params(("topic" = String, Path, description = "e.g. metric:signups")),
    responses(
        (status = 200, description = "the snapshot", body = Snapshot),
        (status = 400, description = "a bad topic name", body = ApiError),
        (status = 401, description = "the topic is on no public board, and no key was sent", body = ApiError),
        (status = 403, description = "the key may not read the topic", body = ApiError),
        (status = 404, description = "no such topic", body = ApiError),
    )
)]
async fn read_topic(
    State(state): State<AppState>,
    caller: Caller,
    Path(topic): Path<String>,
) -> Result<Json<Snapshot>, ApiError> {
    topic_name(&topic, "topic")?;
    if !caller.may_read_topic(&state.boards, &topic) {
        return Err(refuse(
            &caller,
            "/api/v1/topics",
            &format!("read `{topic}`"),
        ));
    }
    let snapshot = state.engine.snapshot(&topic).await.map_err(unavailable)?;
    let snapshot = snapshot.ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            Code::UnknownTopic,
            format!("no topic named `{topic}`"),
        )
        .field("topic")
    })?;
    Ok(Json(snapshot))
}

/// Every board in the boards directory the caller may see, with its title and whether its
/// file has a problem.
#[utoipa::path(
    get,
    path = "/api/v1/boards",
    responses((status = 200, description = "`{\"boards\": [{name, title, problem}]}`"))
)]
async fn list_boards(State(state): State<AppState>, caller: Caller) -> Json<serde_json::Value> {
    let mut boards = state.boards.list();
    boards.retain(|board| caller.may_see(&state.boards, &board.name));
    Json(json!({ "boards": boards }))
}

/// The longest a reload may be spread over.
pub(crate) const MAX_RELOAD_SPREAD_S: u64 = 600;

/// What `POST /api/v1/screens/reload` takes; the body may also be empty.
#[derive(Debug, serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ReloadRequest {
    /// Screens reload at random moments within this many seconds (default 10, at most 600),
    /// so a wall of them does not hit the server at once.
    #[serde(default = "ten")]
    within_s: u64,
}

fn ten() -> u64 {
    10
}

/// Reloads every open board page: after a deploy that changed the page itself, or to bring a
/// wedged screen back without walking to it.
#[utoipa::path(
    post,
    path = "/api/v1/screens/reload",
    request_body(content = Option<ReloadRequest>, description = "optional; `{\"within_s\": 10}`"),
    responses(
        (status = 200, description = "`{\"screens\": n, \"within_s\": s}`: how many open pages were told"),
        (status = 400, description = "malformed JSON", body = ApiError),
        (status = 401, description = "no API key", body = ApiError),
        (status = 403, description = "the key is not an admin key", body = ApiError),
        (status = 422, description = "`within_s` out of range or an unknown field", body = ApiError),
    )
)]
async fn reload_screens(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    if !caller.is_admin() {
        return Err(refuse(&caller, "/api/v1/screens/reload", "reload screens"));
    }
    let empty = body
        .as_ref()
        .is_ok_and(|b| b.iter().all(u8::is_ascii_whitespace));
    let request = if empty {
        ReloadRequest { within_s: ten() }
    } else {
        parse_body::<ReloadRequest>(body, Code::InvalidRequest)?
    };
    if request.within_s > MAX_RELOAD_SPREAD_S {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            Code::InvalidRequest,
            format!(
                "within_s is {}: use 0 to {MAX_RELOAD_SPREAD_S}",
                request.within_s
            ),
        )
        .field("within_s"));
    }
    let within = std::time::Duration::from_secs(request.within_s);
    let screens = state.hub.reload_screens(within).await;
    tracing::info!(
        screens,
        within_s = request.within_s,
        "asked every screen to reload"
    );
    Ok(Json(
        json!({ "screens": screens, "within_s": request.within_s }),
    ))
}

/// One board: its last good version, and the problem with its current file if there is one.
/// Operators can check a board file edit here before a screen shows it.
#[utoipa::path(
    get,
    path = "/api/v1/boards/{board}",
    params(("board" = String, Path, description = "the board file's name without .toml")),
    responses(
        (status = 200, description = "`{\"board\": {...} | null, \"problem\": {file, line, column, message} | null}`"),
        (status = 401, description = "the board is private, and no key was sent", body = ApiError),
        (status = 403, description = "the key may not read the board", body = ApiError),
        (status = 404, description = "no such board", body = ApiError),
    )
)]
async fn read_board(
    State(state): State<AppState>,
    caller: Caller,
    Path(board): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    if !caller.may_see(&state.boards, &board) {
        return Err(refuse(
            &caller,
            "/api/v1/boards",
            &format!("read board `{board}`"),
        ));
    }
    let found = state.boards.get(&board).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            Code::UnknownBoard,
            format!(
                "no board named `{board}`: its file would be {board}.toml in the boards directory"
            ),
        )
        .field("board")
    })?;
    Ok(Json(
        json!({ "board": found.board, "problem": found.problem }),
    ))
}

/// Every topic the caller may read, with its position, size and subscriber count.
#[utoipa::path(
    get,
    path = "/api/v1/topics",
    responses((status = 200, description = "`{\"topics\": [...]}`", body = [TopicSummary]))
)]
async fn list_topics(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<serde_json::Value>, ApiError> {
    let topics = state.engine.topics().await.map_err(unavailable)?;
    let topics: Vec<TopicSummary> = topics
        .into_iter()
        .filter(|topic| caller.may_read_topic(&state.boards, &topic.topic))
        .map(|topic| TopicSummary {
            subscribers: state.hub.subscribers(&topic.topic),
            topic: topic.topic,
            epoch: topic.epoch,
            offset: topic.offset,
            entities: topic.entities,
        })
        .collect();
    Ok(Json(json!({ "topics": topics })))
}

/// A topic's name, position and size, and how many connections to this instance follow it.
#[derive(Debug, Serialize, ToSchema)]
struct TopicSummary {
    topic: String,
    epoch: u64,
    offset: u64,
    entities: usize,
    subscribers: usize,
}

/// What `POST /api/v1/keys` takes.
#[derive(Debug, serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct KeyRequest {
    /// What the key is for: "CI deploys", "lobby TV".
    name: String,
    /// `publish:<topic pattern>`, `read:<board>`, `admin`.
    #[schema(value_type = Vec<String>, example = json!(["publish:metric:*"]))]
    scopes: Vec<Scope>,
}

/// What `PATCH /api/v1/keys/{id}` takes.
#[derive(Debug, serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ScopesRequest {
    /// The key's scopes from now on, in place of its own.
    #[schema(value_type = Vec<String>, example = json!(["read:lobby"]))]
    scopes: Vec<Scope>,
}

/// `404 unknown_key`: `what` (no key, no key in force) has the id asked for.
fn unknown_key(id: &str, what: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        Code::UnknownKey,
        format!("{what} with id `{id}`"),
    )
    .field("id")
}

fn admin_only(caller: &Caller, path: &str) -> Result<(), ApiError> {
    if caller.is_admin() {
        Ok(())
    } else {
        Err(refuse(caller, path, "manage keys"))
    }
}

/// Runs a keyring call off the async workers: it reads and writes the SQLite file.
async fn on_keyring<T: Send + 'static>(
    state: &AppState,
    call: impl FnOnce(&Keyring) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, ApiError> {
    let keyring = state.keyring.clone();
    let done = tokio::task::spawn_blocking(move || call(&keyring))
        .await
        .unwrap_or_else(|e| Err(StoreError(e.to_string())));
    done.map_err(|e| {
        tracing::error!("keyring: {e}");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            Code::StoreUnavailable,
            "the keyring could not be read or written; retry later",
        )
    })
}

/// Every API key, revoked ones included; never their secrets. Admin only.
#[utoipa::path(
    get,
    path = "/api/v1/keys",
    responses(
        (status = 200, description = "`{\"keys\": [...]}`", body = [KeyRecord]),
        (status = 401, description = "no API key", body = ApiError),
        (status = 403, description = "not an admin key", body = ApiError),
    )
)]
async fn list_keys(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<serde_json::Value>, ApiError> {
    admin_only(&caller, "/api/v1/keys")?;
    let keys = on_keyring(&state, Keyring::list).await?;
    Ok(Json(json!({ "keys": keys })))
}

/// Makes an API key. Its `secret` is in this answer only: it is stored hashed. Admin only.
#[utoipa::path(
    post,
    path = "/api/v1/keys",
    request_body = KeyRequest,
    responses(
        (status = 201, description = "the key, with `secret`"),
        (status = 401, description = "no API key", body = ApiError),
        (status = 403, description = "not an admin key", body = ApiError),
        (status = 422, description = "an unknown scope, no scopes, or an empty name", body = ApiError),
    )
)]
async fn create_key(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    admin_only(&caller, "/api/v1/keys")?;
    let request: KeyRequest = parse_body(body, Code::InvalidRequest)?;
    if request.name.trim().is_empty() || request.scopes.is_empty() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            Code::InvalidRequest,
            "a key needs a name and at least one scope",
        ));
    }
    let made = on_keyring(&state, move |keyring| {
        keyring.create(&request.name, request.scopes)
    })
    .await?;
    let record = &made.record;
    tracing::info!(target: "audit", event = "key_created", id = %record.id, name = %record.name,
        scopes = ?record.scopes.iter().map(ToString::to_string).collect::<Vec<_>>(), by = caller.who());
    let mut body = serde_json::to_value(record).unwrap_or_default();
    body["secret"] = made.secret.into();
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// Gives an API key new scopes, in place of its own: a share link narrowed to one board
/// keeps its address. Screens open with it lose, within a second, what the new scopes do not
/// allow. Admin only.
#[utoipa::path(
    patch,
    path = "/api/v1/keys/{id}",
    params(("id" = String, Path, description = "the key's id, as listed")),
    request_body = ScopesRequest,
    responses(
        (status = 200, description = "the key as it now stands", body = KeyRecord),
        (status = 401, description = "no API key", body = ApiError),
        (status = 403, description = "not an admin key", body = ApiError),
        (status = 404, description = "no key in force with that id", body = ApiError),
        (status = 422, description = "an unknown scope, or none", body = ApiError),
    )
)]
async fn rescope_key(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<KeyRecord>, ApiError> {
    admin_only(&caller, "/api/v1/keys")?;
    let request: ScopesRequest = parse_body(body, Code::InvalidRequest)?;
    if request.scopes.is_empty() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            Code::InvalidRequest,
            "a key needs at least one scope; revoke it instead",
        )
        .field("scopes"));
    }
    let lookup = id.clone();
    let rescoped = on_keyring(&state, move |keyring| {
        keyring.rescope(&lookup, request.scopes)
    })
    .await?
    .ok_or_else(|| unknown_key(&id, "no key in force"))?;
    tracing::info!(target: "audit", event = "key_rescoped", id = %rescoped.id, name = %rescoped.name,
        scopes = ?rescoped.scopes.iter().map(ToString::to_string).collect::<Vec<_>>(), by = caller.who());
    Ok(Json(rescoped))
}

/// Revokes an API key at once, with every session it logged in. Admin only.
#[utoipa::path(
    delete,
    path = "/api/v1/keys/{id}",
    params(("id" = String, Path, description = "the key's id, as listed")),
    responses(
        (status = 200, description = "the key as it now stands, with `revoked_ms`", body = KeyRecord),
        (status = 401, description = "no API key", body = ApiError),
        (status = 403, description = "not an admin key", body = ApiError),
        (status = 404, description = "no such key", body = ApiError),
    )
)]
async fn revoke_key(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<KeyRecord>, ApiError> {
    admin_only(&caller, "/api/v1/keys")?;
    let lookup = id.clone();
    let revoked = on_keyring(&state, move |keyring| keyring.revoke(&lookup))
        .await?
        .ok_or_else(|| unknown_key(&id, "no key"))?;
    tracing::info!(target: "audit", event = "key_revoked", id = %revoked.id, name = %revoked.name, by = caller.who());
    Ok(Json(revoked))
}
