//! Whether a request comes from this server's own pages: a browser's `Origin` against the
//! addresses the server was reached at and `allowed_origins`. The one check `/ws`, the
//! login form and every cookie-carried write make against cross-site use of a viewer's
//! access.

use axum::http::HeaderMap;

/// Whether a form post comes from this server's own pages (or a client that sends no Origin).
pub(crate) fn same_site(headers: &HeaderMap, allowed: &[String]) -> bool {
    let header = |name| headers.get(name).and_then(|v| v.to_str().ok());
    match header("origin") {
        None => true,
        Some(origin) => origin_allowed(
            origin,
            &[header("host"), header("x-forwarded-host")],
            allowed,
        ),
    }
}

/// Whether a page from `origin` may open a socket: the server's own origin (an address it
/// was reached at), or one `allowed_origins` lists (`*` lists every one).
pub(crate) fn origin_allowed(origin: &str, hosts: &[Option<&str>], allowed: &[String]) -> bool {
    let own = hosts.iter().flatten().any(|host| {
        origin
            .split_once("://")
            .is_some_and(|(_, rest)| rest.eq_ignore_ascii_case(host))
    });
    own || allowed
        .iter()
        .any(|a| a == "*" || a.trim_end_matches('/').eq_ignore_ascii_case(origin))
}
