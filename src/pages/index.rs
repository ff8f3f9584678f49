//! The board list at `/`: what a visitor needs at a glance for each board they may see — its
//! title, how many people are on it now, when it last changed, whether it is private, and
//! a broken file. An install with one board opens it directly.

use super::admin::since;
use super::library;
use crate::admin::Admin;
use crate::clock::now_ms;
use leptos::prelude::*;
use std::sync::Arc;

#[component]
pub(crate) fn BoardList() -> impl IntoView {
    let mut boards = library::boards();
    boards.sort_by(|a, b| a.name.cmp(&b.name));
    if let [only] = boards.as_slice() {
        if only.problem.is_none() {
            leptos_axum::redirect(&format!("/b/{}", only.name));
        }
    }
    let admin = use_context::<Arc<Admin>>();
    let watched = admin
        .as_ref()
        .map(|admin| admin.watched())
        .unwrap_or_default();
    let now = now_ms();
    let empty = boards.is_empty();
    let rows = boards
        .into_iter()
        .map(|board| {
            let href = format!("/b/{}", board.name);
            let title = board.title.clone().unwrap_or_else(|| board.name.clone());
            let people = watched
                .iter()
                .find(|watched| watched.board == board.name)
                .map_or(0, |watched| watched.people);
            let people = match people {
                1 => "1 person here".to_owned(),
                n => format!("{n} people here"),
            };
            let changed = admin
                .as_ref()
                .and_then(|admin| admin.last_change(&board.topics))
                .map_or("no data yet".to_owned(), |ms| format!("changed {}", since(now, ms)));
            let access = board.private.then(|| view! { <span class="board-list-private">"private"</span> });
            let name = board.name.clone();
            view! {
                <li data-board=name>
                    // A full load: a board page reads its board from the server as it renders.
                    <a href=href rel="external">{title}</a>
                    <span class="board-list-name">{board.name}</span>
                    {access}
                    <p class="board-list-facts">
                        <span class="board-list-people">{people}</span> " · " <span>{changed}</span>
                    </p>
                    {board.problem.map(|problem| view! { <p class="board-problem-line">{problem}</p> })}
                </li>
            }
        })
        .collect_view();
    view! {
        <link rel="stylesheet" href="/pages.css"/>
        <main class="page board-list">
            <h1>"Pulseboard"</h1>
            <Show when=move || empty>
                <p>"No boards yet: add a " <code>"*.toml"</code> " file to the boards directory."</p>
            </Show>
            <ul>{rows}</ul>
        </main>
    }
}
