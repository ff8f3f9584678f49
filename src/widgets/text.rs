//! A text widget: a note on the board (who is on call, what the board is for), written in
//! Markdown in the board file. The server has already turned it into HTML with no script in
//! it (`boards::markdown`), so the page only places it.

use crate::boards::TextOptions;
use leptos::prelude::*;

#[component]
pub fn Text(title: Option<String>, options: TextOptions) -> impl IntoView {
    view! {
        <article class="widget text">
            {title.map(|title| view! { <h2 class="widget-title">{title}</h2> })}
            <div class="text-body" inner_html=options.html></div>
        </article>
    }
}
