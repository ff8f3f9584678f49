//! A board at `/b/{name}`: the board island ([`LiveBoard`]) with the board as its file last
//! parsed, shown as the address asks; or why there is none to show.

use super::library;
use crate::boards::screen::Screen;
use crate::widgets::{BoardProps, LiveBoard};
use leptos::either::EitherOf4;
use leptos::prelude::*;
use leptos_router::hooks::{use_params_map, use_query_map};

#[component]
pub(crate) fn BoardPage() -> impl IntoView {
    let name = use_params_map()
        .read_untracked()
        .get("board")
        .unwrap_or_default();
    let query = use_query_map().read_untracked();
    let screen = Screen::from_query(|key| query.get_str(key));
    if library::locked(&name) && library::withheld(&name) {
        // A wall screen reloads itself until the file is fixed: nobody has to walk to it.
        return EitherOf4::A(view! {
            <meta http-equiv="refresh" content="30"/>
            <main class="page">
                <h1>"This board is being fixed"</h1>
                <p>"Its file has a mistake; it shows again once that is fixed. This page tries again every 30 seconds."</p>
            </main>
        });
    }
    if library::locked(&name) {
        let login = format!("/login?next=/b/{name}");
        return EitherOf4::B(view! {
            <main class="page">
                <h1>"This board is private"</h1>
                <p>
                    "Open it with its share link (the address with " <code>"?token=…"</code>
                    " an admin gave you), or " <a href=login rel="external">"sign in"</a> "."
                </p>
            </main>
        });
    }
    match library::board(&name) {
        Some(view) => {
            let props = BoardProps { name, view, screen };
            let element = props.element();
            provide_context(props);
            EitherOf4::C(view! { {element} <LiveBoard/> })
        }
        None => {
            library::not_found();
            EitherOf4::D(view! {
                <main class="page">
                    <h1>"No board named “" {name} "”"</h1>
                    <p>"Board files live in the boards directory; " <a href="/" rel="external">"see every board"</a> "."</p>
                </main>
            })
        }
    }
}
