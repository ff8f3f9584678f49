//! Any other address: a 404 page that points back to the board list.

use super::library;
use leptos::prelude::*;

#[component]
pub(crate) fn NotFound() -> impl IntoView {
    library::not_found();
    view! {
        <main class="page">
            <h1>"Nothing here"</h1>
            <p><a href="/" rel="external">"See every board"</a></p>
        </main>
    }
}
