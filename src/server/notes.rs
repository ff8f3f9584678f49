//! `/api/v1/boards/{board}/notes`: a board's notes over HTTP, for a deploy script to mark
//! itself ("deploy 14:02") and for anything that lists them. Reading needs what reading the
//! board needs; writing, what [`crate::notes::may_write`] says, with a key: over HTTP the
//! author is the key's name (an anonymous request has no person to name).

use super::caller::refuse;
use super::error::{parse_body, ApiError, Code};
use super::AppState;
use crate::access::Caller;
use crate::boards::notes::{Note, NoteDraft};
use crate::boards::Board;
use crate::notes::{self, NoteError};
use crate::ops::Published;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, put};
use axum::{Json, Router};
use serde::Serialize;
use utoipa::ToSchema;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/boards/{board}/notes", get(list_notes).post(write_note))
        .route(
            "/boards/{board}/notes/{id}",
            put(edit_note).delete(delete_note),
        )
}

/// A note with its id.
#[derive(Serialize, ToSchema)]
pub(crate) struct NoteWithId {
    id: String,
    #[serde(flatten)]
    note: Note,
}

/// A written note, and where it landed in the board's notes topic.
#[derive(Serialize, ToSchema)]
pub(crate) struct NoteWritten {
    id: String,
    note: Note,
    published: Published,
}

/// The board at `name`, if the caller may see it.
fn board(state: &AppState, caller: &Caller, name: &str) -> Result<Board, ApiError> {
    let path = format!("/api/v1/boards/{name}/notes");
    if !caller.may_see(&state.boards, name) {
        return Err(refuse(caller, &path, &format!("read board `{name}`")));
    }
    state
        .boards
        .get(name)
        .and_then(|view| view.board)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                Code::UnknownBoard,
                format!("no board named `{name}` (or its file does not parse)"),
            )
            .field("board")
        })
}

fn refused(caller: &Caller, board: &str, error: NoteError) -> ApiError {
    match error {
        NoteError::NotAllowed(why) => {
            tracing::warn!(target: "audit", event = "denied", key = caller.who(), board, reason = %why);
            let (status, code) = if caller.is_anonymous() {
                (StatusCode::UNAUTHORIZED, Code::Unauthenticated)
            } else {
                (StatusCode::FORBIDDEN, Code::Forbidden)
            };
            ApiError::new(status, code, why)
        }
        NoteError::Invalid(why) => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, Code::InvalidNote, why)
        }
        NoteError::NoSuchNote(_) => {
            ApiError::new(StatusCode::NOT_FOUND, Code::UnknownNote, error.to_string()).field("id")
        }
        NoteError::Unavailable(e) => super::error::unavailable(e),
    }
}

/// Over HTTP a note needs a key: its name is the author.
fn writer(caller: &Caller, board: &str) -> Result<(), ApiError> {
    if caller.is_anonymous() {
        return Err(refuse(
            caller,
            &format!("/api/v1/boards/{board}/notes"),
            "write notes over HTTP",
        ));
    }
    Ok(())
}

/// A board's notes, oldest first.
#[utoipa::path(
    get,
    path = "/api/v1/boards/{board}/notes",
    params(("board" = String, Path, description = "e.g. ops")),
    responses(
        (status = 200, description = "`{\"notes\": [...]}`", body = [NoteWithId]),
        (status = 401, description = "the board is private, and no key was sent", body = ApiError),
        (status = 403, description = "the key may not read the board", body = ApiError),
        (status = 404, description = "no such board", body = ApiError),
    )
)]
async fn list_notes(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    board(&state, &caller, &name)?;
    let notes = notes::list(state.engine.as_ref(), &name)
        .await
        .map_err(|e| refused(&caller, &name, e))?;
    let notes: Vec<NoteWithId> = notes
        .into_iter()
        .map(|(id, note)| NoteWithId { id, note })
        .collect();
    Ok(Json(serde_json::json!({ "notes": notes })))
}

/// Pins a note to the board (or to a topic of it, or a moment of that series); every open
/// screen of the board shows it at once.
#[utoipa::path(
    post,
    path = "/api/v1/boards/{board}/notes",
    params(("board" = String, Path, description = "e.g. ops")),
    request_body = NoteDraft,
    responses(
        (status = 201, description = "written", body = NoteWritten),
        (status = 400, description = "malformed JSON", body = ApiError),
        (status = 401, description = "no API key", body = ApiError),
        (status = 403, description = "the key may not write to the board", body = ApiError),
        (status = 404, description = "no such board", body = ApiError),
        (status = 422, description = "the note is empty, too long, or pinned to a topic the board does not show", body = ApiError),
    )
)]
async fn write_note(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<NoteWritten>), ApiError> {
    let written = write(&state, &caller, &name, None, body).await?;
    Ok((StatusCode::CREATED, Json(written)))
}

/// Writes a new note, or note `id`, from a request's body, as the caller's key.
async fn write(
    state: &AppState,
    caller: &Caller,
    name: &str,
    id: Option<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<NoteWritten, ApiError> {
    let board = board(state, caller, name)?;
    writer(caller, name)?;
    let draft: NoteDraft = parse_body(body, Code::InvalidNote)?;
    let author = caller.someone(None, "http");
    let (id, note, published) = state
        .notes
        .write(caller, &author, &board, id, draft)
        .await
        .map_err(|e| refused(caller, name, e))?;
    tracing::info!(target: "audit", event = "note", key = caller.who(), board = name, id);
    Ok(NoteWritten {
        id,
        note,
        published,
    })
}

/// Replaces a note's text and pins; only its author or an admin may.
#[utoipa::path(
    put,
    path = "/api/v1/boards/{board}/notes/{id}",
    params(
        ("board" = String, Path, description = "e.g. ops"),
        ("id" = String, Path, description = "the note's id"),
    ),
    request_body = NoteDraft,
    responses(
        (status = 200, description = "written", body = NoteWritten),
        (status = 401, description = "no API key", body = ApiError),
        (status = 403, description = "not the note's author, nor an admin", body = ApiError),
        (status = 404, description = "no such board or note", body = ApiError),
        (status = 422, description = "the note is empty, too long, or badly pinned", body = ApiError),
    )
)]
async fn edit_note(
    State(state): State<AppState>,
    caller: Caller,
    Path((name, id)): Path<(String, String)>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<NoteWritten>, ApiError> {
    write(&state, &caller, &name, Some(id), body)
        .await
        .map(Json)
}

/// Deletes a note; only its author or an admin may.
#[utoipa::path(
    delete,
    path = "/api/v1/boards/{board}/notes/{id}",
    params(
        ("board" = String, Path, description = "e.g. ops"),
        ("id" = String, Path, description = "the note's id"),
    ),
    responses(
        (status = 200, description = "deleted", body = Published),
        (status = 401, description = "no API key", body = ApiError),
        (status = 403, description = "not the note's author, nor an admin", body = ApiError),
        (status = 404, description = "no such board or note", body = ApiError),
    )
)]
async fn delete_note(
    State(state): State<AppState>,
    caller: Caller,
    Path((name, id)): Path<(String, String)>,
) -> Result<Json<Published>, ApiError> {
    let board = board(&state, &caller, &name)?;
    writer(&caller, &name)?;
    let author = caller.someone(None, "http");
    let published = state
        .notes
        .delete(&caller, &author, &board, id)
        .await
        .map_err(|e| refused(&caller, &name, e))?;
    Ok(Json(published))
}
