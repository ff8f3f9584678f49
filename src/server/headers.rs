//! Security headers on every answer.
//!
//! Pages get a Content-Security-Policy that runs only the app's own script and WASM: the
//! inline scripts Leptos writes to start hydration carry a nonce made for that one response,
//! and nothing else inline runs, so markup that slipped into a text widget cannot execute.
//! Every other answer (JSON, files) gets a policy that allows nothing, should a browser be
//! tricked into rendering one as a page. `frame_ancestors` says which sites may embed the
//! pages in a frame (only the server's own by default).
//!
//! `X-Content-Type-Options: nosniff` stops a browser guessing a type the server did not send;
//! `Referrer-Policy: same-origin` keeps a share link's token out of the `Referer` of any link
//! to another site followed from a board. (Not `no-referrer`: with it, browsers send
//! `Origin: null` on the sign-in form's post, and the form could not tell its own page from
//! a forged one.)

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use std::sync::Arc;

/// The policy for a page rendered with this nonce.
pub(crate) fn page_policy(nonce: &str, frame_ancestors: &str) -> String {
    format!(
        "default-src 'self'; script-src 'self' 'nonce-{nonce}' 'wasm-unsafe-eval'; \
         style-src 'self' 'unsafe-inline'; img-src 'self' data: https:; connect-src 'self'; \
         object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors {frame_ancestors}"
    )
}

/// `frame_ancestors` as the directive takes it.
pub(crate) fn frame_ancestors(sources: &[String]) -> Arc<str> {
    if sources.is_empty() {
        "'none'".into()
    } else {
        sources.join(" ").into()
    }
}

/// Middleware: adds the headers, and the allow-nothing policy to answers that are not pages.
pub(crate) async fn secure(
    State(ancestors): State<Arc<str>>,
    request: Request,
    next: Next,
) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        let policy = format!("default-src 'none'; frame-ancestors {ancestors}");
        if let Ok(value) = HeaderValue::from_str(&policy) {
            headers.insert(header::CONTENT_SECURITY_POLICY, value);
        }
    }
    response
}
