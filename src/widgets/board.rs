//! The board island: a board's widgets on the grid its file describes, kept current by the
//! board's live connection. It is the one part of a page that hydrates; the server renders
//! it with the board as its file last parsed, and passes the same board to the browser as
//! the island's props. When the file changes, the server sends the new version over the
//! socket and the grid re-lays itself out without a reload.
//!
//! Views here are concrete types (`Either…`), never `AnyView`: a type-erased view keeps the
//! code for every way it might be hydrated, and that was a tenth of the WASM.

use super::format::age;
use super::{
    Clock, ConnectionStatusBadge, Counter, Feed, Gauge, Leaderboard, Manual, PresenceBadge,
    Sparkline, StatusGrid, Text,
};
use crate::boards::screen::Screen;
use crate::boards::{BoardView, Widget, WidgetKind};
use crate::live::Live;
use leptos::either::EitherOf10;
use leptos::prelude::*;

/// A board that exists: rendered from `view` and kept current by its socket, shown as the
/// address asks (`screen`).
#[island]
pub fn LiveBoard(name: String, view: BoardView, screen: Screen) -> impl IntoView {
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
            data-theme=screen.theme.map(|theme| theme.as_str())
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
    let stale = move || stale_for.get().is_some();
    let stale_badge = move || {
        stale_for.get().map(|seconds| {
            view! { <p class="stale-badge" role="status">"No update for " {age(seconds)}</p> }
        })
    };
    let topic = widget.topic.unwrap_or_default();
    let title = widget.title;
    let content = match widget.kind {
        WidgetKind::Number(options) => {
            let label = title.unwrap_or_else(|| options.entity.clone());
            EitherOf10::A(view! { <Counter live topic label options/> })
        }
        WidgetKind::Leaderboard(options) => EitherOf10::B(view! {
            <Leaderboard
                live
                topic
                title=title.unwrap_or_else(|| "Leaderboard".into())
                field=options.field
                name_field=options.label
                limit=options.limit
            />
        }),
        WidgetKind::Feed(options) => EitherOf10::C(view! {
            <Feed live topic title=title.unwrap_or_else(|| "Activity".into()) rows=options.rows/>
        }),
        WidgetKind::Gauge(options) => {
            let title = title.unwrap_or_else(|| options.entity.clone());
            EitherOf10::D(view! { <Gauge live topic title options/> })
        }
        WidgetKind::Status(options) => EitherOf10::E(view! {
            <StatusGrid live topic title=title.unwrap_or_else(|| "Status".into()) options/>
        }),
        WidgetKind::Presence => EitherOf10::F(view! {
            <article class="widget presence-widget">
                <h2 class="widget-title">{title.unwrap_or_else(|| "Watching".into())}</h2>
                <PresenceBadge live/>
            </article>
        }),
        WidgetKind::Sparkline(options) => {
            let title = title.unwrap_or_else(|| options.entity.clone());
            EitherOf10::G(view! { <Sparkline live topic title options/> })
        }
        WidgetKind::Text(options) => EitherOf10::H(view! { <Text title options/> }),
        WidgetKind::Clock(options) => EitherOf10::I(view! { <Clock live title options/> }),
        WidgetKind::Manual(options) => {
            let title = title.unwrap_or_else(|| options.entity.clone());
            EitherOf10::J(view! { <Manual live topic title options/> })
        }
    };
    view! {
        <div class="cell" class:stale=stale style=style>
            {content}
            {stale_badge}
        </div>
    }
}

/// How long what the widget shows (its entity, or its whole topic) has gone without a
/// change by the server's account, once that is longer than the widget's `stale_after`;
/// `None` while it is fresh or has no limit. A board opened on a topic that went quiet an
/// hour ago shows it stale on its first paint.
fn stale_for(live: Live, widget: &Widget) -> Signal<Option<u64>> {
    let watched = widget
        .stale_after
        .zip(widget.topic.as_deref())
        .map(|(after, topic)| (after, live.topic(topic)));
    let entity = widget.kind.entity().map(str::to_owned);
    let clock = live.clock;
    Signal::derive(move || {
        let (after, view) = watched?;
        let since = view.with(|v| v.changed_at(entity.as_deref()))?;
        let quiet = ((clock.get() - since) / 1000.0).max(0.0) as u64;
        (quiet >= after).then_some(quiet)
    })
}
