//! A board at `/b/{name}`: its title, the banner for a broken board file, and its widgets on
//! the grid the file describes. When the file changes, the server sends the new version over
//! the socket and the grid re-lays itself out without a reload.

use super::library;
use super::screen::Screen;
use crate::boards::{BoardView, Widget, WidgetKind};
use crate::live::Live;
use crate::widgets::format::age;
use crate::widgets::{
    Clock, ConnectionStatusBadge, Counter, Feed, Gauge, Leaderboard, Manual, PresenceBadge,
    Sparkline, StatusGrid, Text,
};
use leptos::prelude::*;
use leptos::server::SharedValue;
use leptos_router::hooks::{use_params_map, use_query_map};

#[component]
pub fn BoardPage() -> impl IntoView {
    let name = use_params_map()
        .read_untracked()
        .get("board")
        .unwrap_or_default();
    let screen = Screen::from_query(&use_query_map().read_untracked());
    let locked = SharedValue::new({
        let name = name.clone();
        move || library::locked(&name)
    })
    .into_inner();
    if locked {
        let login = format!("/login?next=/b/{name}");
        return view! {
            <main class="page">
                <h1>"This board is private"</h1>
                <p>
                    "Open it with its share link (the address with " <code>"?token=…"</code>
                    " an admin gave you), or " <a href=login rel="external">"sign in"</a> "."
                </p>
            </main>
        }
        .into_any();
    }
    let found = SharedValue::new({
        let name = name.clone();
        move || library::board(&name)
    })
    .into_inner();
    match found {
        Some(view) => view! { <LiveBoard name view screen/> }.into_any(),
        None => {
            library::not_found();
            view! {
                <main class="page">
                    <h1>"No board named “" {name} "”"</h1>
                    <p>"Board files live in the boards directory; " <a href="/" rel="external">"see every board"</a> "."</p>
                </main>
            }
            .into_any()
        }
    }
}

/// A board that exists: rendered from `view` and kept current by its socket, shown as the
/// address asks (`screen`).
#[component]
fn LiveBoard(name: String, view: BoardView, screen: Screen) -> impl IntoView {
    let live = Live::new(view);
    let next = screen.playlist.as_ref().map(|p| p.after(&name).to_owned());
    #[cfg(feature = "hydrate")]
    {
        let name = name.clone();
        let turn = screen.playlist.as_ref().map(|p| p.every);
        let next = next.clone();
        Effect::new(move |_| {
            crate::live::clock::start(live);
            crate::live::socket::connect(live, &name);
            if let (Some(next), Some(turn)) = (&next, turn) {
                crate::live::playlist::move_on(next, turn);
            }
        });
    }
    let board = live.board;
    let title = {
        let name = name.clone();
        move || board.with(|b| b.board.as_ref().map_or(name.clone(), |b| b.title.clone()))
    };
    let problem = move || {
        board.with(|b| {
            let problem = b.problem.as_ref()?.to_string();
            let lead = if b.board.is_some() {
                "The board file has a problem; this is its last good version."
            } else {
                "The board file has a problem."
            };
            Some(view! {
                <div class="board-problem" role="alert">
                    <strong>{lead}</strong>
                    " "
                    <code>{problem}</code>
                </div>
            })
        })
    };
    let columns = move || board.with(|b| b.board.as_ref().map_or(4, |b| b.columns));
    let widgets = move || {
        board.with(|b| {
            b.board
                .iter()
                .flat_map(|b| b.widgets.iter().cloned().enumerate())
                .collect::<Vec<_>>()
        })
    };
    view! {
        <main
            class="board"
            class:snap=move || live.snap.get()
            class:kiosk=screen.kiosk
            class:stale=move || live.stale.with(Option::is_some)
            data-theme=screen.theme
            data-board=name
        >
            <header class="board-header">
                <h1>{title}</h1>
                {next.map(|next| view! { <p class="playlist-next">"Next: " {next}</p> })}
                <PresenceBadge live/>
                <ConnectionStatusBadge live/>
            </header>
            {problem}
            {move || live.stale.get().map(|reason| view! {
                <div class="board-problem board-stale" role="status">
                    <strong>"Not updating."</strong>
                    " The server cannot reach its data (" {reason} "). This is the last it had; it catches up by itself."
                </div>
            })}
            {move || live.refusal.get().map(|reason| view! {
                <div class="board-problem board-refused" role="alert">
                    <strong>"This screen has no access to the board any more."</strong>
                    " " {reason} ". Open it with a new share link, or sign in, and reload."
                </div>
            })}
            <section class="board-grid" style=move || format!("--columns: {}", columns())>
                // Keyed by position and definition: an edited widget is rebuilt, the others
                // keep their state and motion.
                <For
                    each=widgets
                    key=|(i, widget)| format!("{i}:{}", serde_json::to_string(widget).unwrap_or_default())
                    children=move |(_, widget)| view! { <WidgetCell live widget/> }
                />
            </section>
            {move || live.writes.refused.get().map(|notice| view! {
                <div class="write-refused" role="alert">
                    <span>{notice}</span>
                    <button on:click=move |_| live.writes.refused.set(None)>"Dismiss"</button>
                </div>
            })}
            <p class="visually-hidden" role="status" aria-live="polite" aria-atomic="true">
                {move || live.announcement.get()}
            </p>
        </main>
    }
}

/// One widget in its grid cell.
#[component]
fn WidgetCell(live: Live, widget: Widget) -> impl IntoView {
    let (columns, rows) = widget.span;
    let style = format!("--span-columns: {columns}; --span-rows: {rows}");
    let stale_for = stale_for(live, &widget);
    let stale = move || stale_for().is_some();
    let stale_badge = move || {
        stale_for().map(|seconds| {
            view! { <p class="stale-badge" role="status">"No update for " {age(seconds)}</p> }
        })
    };
    let topic = widget.topic.unwrap_or_default();
    let title = widget.title;
    let content = match widget.kind {
        WidgetKind::Number(options) => {
            let label = title.unwrap_or_else(|| options.entity.clone());
            view! { <Counter live topic label options/> }.into_any()
        }
        WidgetKind::Leaderboard(options) => view! {
            <Leaderboard
                live
                topic
                title=title.unwrap_or_else(|| "Leaderboard".into())
                field=options.field
                name_field=options.label
                limit=options.limit
            />
        }
        .into_any(),
        WidgetKind::Feed(options) => view! {
            <Feed live topic title=title.unwrap_or_else(|| "Activity".into()) rows=options.rows/>
        }
        .into_any(),
        WidgetKind::Gauge(options) => {
            let title = title.unwrap_or_else(|| options.entity.clone());
            view! { <Gauge live topic title options/> }.into_any()
        }
        WidgetKind::Status(options) => view! {
            <StatusGrid live topic title=title.unwrap_or_else(|| "Status".into()) options/>
        }
        .into_any(),
        WidgetKind::Presence => view! {
            <article class="widget presence-widget">
                <h2 class="widget-title">{title.unwrap_or_else(|| "Watching".into())}</h2>
                <PresenceBadge live/>
            </article>
        }
        .into_any(),
        WidgetKind::Sparkline(options) => {
            let title = title.unwrap_or_else(|| options.entity.clone());
            view! { <Sparkline live topic title options/> }.into_any()
        }
        WidgetKind::Text(options) => view! { <Text title options/> }.into_any(),
        WidgetKind::Clock(options) => view! { <Clock live title options/> }.into_any(),
        WidgetKind::Manual(options) => {
            let title = title.unwrap_or_else(|| options.entity.clone());
            view! { <Manual live topic title options/> }.into_any()
        }
    };
    view! {
        <div class="cell" class:stale=stale style=style>
            {content}
            {stale_badge}
        </div>
    }
}

/// How long the widget's topic has gone without a change, once that is longer than the
/// widget's `stale_after`; `None` while it is fresh or has no limit.
fn stale_for(live: Live, widget: &Widget) -> impl Fn() -> Option<u64> + Copy + 'static {
    let watched = widget
        .stale_after
        .zip(widget.topic.as_deref())
        .map(|(after, topic)| (after, live.topic(topic)));
    let clock = live.clock;
    move || {
        let (after, view) = watched?;
        let quiet_ms = clock.get() - view.with(|v| v.changed_at)?;
        let quiet = (quiet_ms / 1000.0).max(0.0) as u64;
        (quiet >= after).then_some(quiet)
    }
}
