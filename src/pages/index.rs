//! The board list at `/`: every board file, linked, with its problem if it has one.

use super::library;
use leptos::prelude::*;

#[component]
pub fn BoardList() -> impl IntoView {
    let boards = library::boards();
    let empty = boards.is_empty();
    let rows = boards
        .into_iter()
        .map(|board| {
            let href = format!("/b/{}", board.name);
            let title = board.title.unwrap_or_else(|| board.name.clone());
            view! {
                <li>
                    // A full load: a board page reads its board from the server as it renders.
                    <a href=href rel="external">{title}</a>
                    <span class="board-list-name">{board.name}</span>
                    {board.problem.map(|problem| view! { <p class="board-problem-line">{problem}</p> })}
                </li>
            }
        })
        .collect_view();
    view! {
        <main class="page board-list">
            <h1>"Pulseboard"</h1>
            <Show when=move || empty>
                <p>"No boards yet: add a " <code>"*.toml"</code> " file to the boards directory."</p>
            </Show>
            <ul>{rows}</ul>
        </main>
    }
}
