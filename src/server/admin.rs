//! `GET /admin/live`: the live part of the admin view, rendered alone for the page's script
//! to swap in every second. The page itself is `pages::admin`.

use super::caller::refuse;
use super::error::ApiError;
use super::AppState;
use crate::access::Caller;
use crate::pages::AdminLive;
use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{Html, IntoResponse, Response};
use leptos::prelude::*;

pub(crate) async fn live(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Response, ApiError> {
    if !caller.is_admin() {
        return Err(refuse(
            &caller,
            "/admin/live",
            "the admin view is for admins",
        ));
    }
    let overview = state.admin.overview();
    let html = Owner::new().with(|| view! { <AdminLive overview/> }.to_html());
    let mut response = Html(html).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}
