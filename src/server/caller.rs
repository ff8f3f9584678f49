//! Who a request comes from: the credential it presents, checked against the keyring.
//!
//! A credential comes as `Authorization: Bearer pb_…` (scripts, the CLI), a `token` query
//! parameter (a share link, and the socket of a page opened with one: browsers cannot set
//! headers on a WebSocket), or the admin session cookie. A key that is presented but unknown
//! or revoked is refused outright (401) rather than treated as anonymous, so a publisher
//! with a revoked key hears about it instead of silently losing its rights. A session
//! cookie that has ended counts as no credential: the browser still shows public boards.

use super::error::{ApiError, Code};
use super::origin::same_site;
use super::AppState;
use crate::access::Caller;
use crate::protocol::check_person;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;

/// The admin session's cookie.
pub(crate) const SESSION_COOKIE: &str = "pulseboard_session";
/// An anonymous browser's guest id, set by the first page it loads: its tabs and reloads are
/// one guest on a board. `HttpOnly`, never in an address, so no script, log or other viewer
/// learns it (the guest's public id is a digest of it).
pub(crate) const GUEST_COOKIE: &str = "pulseboard_guest";

/// A credential that was presented and is not in force.
#[derive(Clone, Debug)]
pub(crate) struct InvalidCredential;

impl InvalidCredential {
    pub(crate) fn message(&self) -> &'static str {
        "the key presented is unknown or revoked"
    }
}

impl From<InvalidCredential> for ApiError {
    fn from(invalid: InvalidCredential) -> Self {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            Code::InvalidKey,
            invalid.message(),
        )
    }
}

/// The key presented as a bearer token or `token` parameter, if any.
fn presented_key<'a>(headers: &'a HeaderMap, query: Option<&'a str>) -> Option<&'a str> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::trim);
    // An empty one (`?token=` from a client with no key to hand) is no credential at all.
    bearer
        .or_else(|| {
            query?
                .split('&')
                .find_map(|pair| pair.strip_prefix("token="))
        })
        .filter(|key| !key.is_empty())
}

/// The session token in the request's cookies, if any.
pub(crate) fn session_token(headers: &HeaderMap) -> Option<&str> {
    cookie(headers, SESSION_COOKIE)
}

/// The browser's guest id from its cookie, if it has a well-formed one.
pub(crate) fn guest_id(headers: &HeaderMap) -> Option<&str> {
    cookie(headers, GUEST_COOKIE).filter(|id| check_person(id).is_ok())
}

/// A new guest id's cookie, for a browser that has none: 128 random bits, kept a year.
pub(crate) fn new_guest_cookie(headers: &HeaderMap) -> Option<String> {
    let mut bits = [0u8; 16];
    getrandom::fill(&mut bits).ok()?;
    let id: String = bits.iter().map(|b| format!("{b:02x}")).collect();
    let https = headers
        .get("x-forwarded-proto")
        .is_some_and(|p| p == "https");
    Some(format!(
        "{GUEST_COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age=31536000{}",
        if https { "; Secure" } else { "" }
    ))
}

/// A cookie's value in the request, if it has it.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|cookies| cookies.split(';'))
        .find_map(|cookie| cookie.trim().strip_prefix(name)?.strip_prefix('='))
}

/// Who a request comes from, worked out once by [`identify`] and kept in the request's
/// extensions for the limits, the handlers, the socket and the pages.
#[derive(Clone)]
pub(crate) struct Identified(pub Result<Caller, InvalidCredential>);

impl Identified {
    /// The identity [`identify`] left on a request; anonymous if it did not run.
    pub(crate) fn of(parts: &Parts) -> Result<Caller, InvalidCredential> {
        parts
            .extensions
            .get::<Identified>()
            .map_or(Ok(Caller::default()), |identified| identified.0.clone())
    }
}

/// Middleware: works out the caller from the request's credentials.
pub(crate) async fn identify(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let (mut parts, body) = request.into_parts();
    let identified = caller_of(&state, &parts);
    parts.extensions.insert(Identified(identified));
    next.run(Request::from_parts(parts, body)).await
}

fn caller_of(state: &AppState, parts: &Parts) -> Result<Caller, InvalidCredential> {
    if let Some(secret) = presented_key(&parts.headers, parts.uri.query()) {
        return state
            .keyring
            .verify(secret)
            .map(Caller::with_key)
            .ok_or(InvalidCredential);
    }
    // A session cookie only counts for a change made from this server's own pages:
    // SameSite=Strict already keeps it off other sites' requests, and this holds even in a
    // browser that ignores SameSite.
    let changes = !matches!(parts.method, Method::GET | Method::HEAD);
    if changes && !same_site(&parts.headers, &state.allowed_origins) {
        return Ok(Caller::default());
    }
    Ok(session_token(&parts.headers)
        .and_then(|token| state.keyring.session(token))
        .unwrap_or_default())
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, ApiError> {
        Identified::of(parts).map_err(|invalid| {
            tracing::warn!(target: "audit", event = "denied", path = %parts.uri.path(), reason = "invalid key");
            ApiError::from(invalid)
        })
    }
}

/// 401 for an anonymous caller, 403 for a key without the right, each logged.
pub(crate) fn refuse(caller: &Caller, path: &str, what: &str) -> ApiError {
    tracing::warn!(target: "audit", event = "denied", key = caller.who(), path, reason = what);
    if caller.is_anonymous() {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            Code::Unauthenticated,
            format!("an API key is needed to {what}: send Authorization: Bearer pb_…"),
        )
    } else {
        ApiError::new(
            StatusCode::FORBIDDEN,
            Code::Forbidden,
            format!("key {} may not {what}", caller.who()),
        )
    }
}
