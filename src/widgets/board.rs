//! The board island: a board's widgets on the grid its file describes, kept current by the
//! board's live connection. It is the one part of a page that hydrates; the server renders
//! it with the board as its file last parsed, and passes the same board to the browser as
//! the island's props. When the file changes, the server sends the new version over the
//! socket and the grid re-lays itself out without a reload.
//!
//! Views here are concrete types (`Either…`), never `AnyView`: a type-erased view keeps the
//! code for every way it might be hydrated, and that was a tenth of the WASM.

use super::format::age;
use super::markup::Element;
use super::{
    Clock, ConnectionStatusBadge, Counter, Feed, Gauge, Leaderboard, Manual, NotesPanel,
    PresenceBadge, Sparkline, StatusGrid, Text,
};
use crate::boards::screen::Screen;
use crate::boards::{BoardView, Widget, WidgetKind};
use crate::json::decode_fields;
use crate::live::Live;
use leptos::either::EitherOf10;
use leptos::prelude::*;
use serde::Serialize;

/// What the board island is given: the board's name and definition, and how the address asks
/// it to be shown. The page provides it on the server and writes it into the page for the
/// browser (`BoardProps::script`), which reads it with its own JSON parser: as the island's
/// own props, serde_json's parser would be linked into the WASM for this alone.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BoardProps {
    pub name: String,
    pub view: BoardView,
    pub screen: Screen,
}

decode_fields!(BoardProps { name, view, screen });

/// The element that carries the props in the page.
const PROPS_ID: &str = "board-props";

#[cfg(feature = "ssr")]
impl BoardProps {
    fn here() -> Self {
        use_context().expect("the board page provides the board island's props")
    }

    /// The page's copy of the props, for the browser, beside the island.
    pub fn element(&self) -> impl IntoView {
        let json = serde_json::to_string(self).expect("board props encode");
        view! { <template id=PROPS_ID data-props=json></template> }
    }
}

#[cfg(not(feature = "ssr"))]
impl BoardProps {
    fn here() -> Self {
        let json = document()
            .get_element_by_id(PROPS_ID)
            .and_then(|element| element.get_attribute("data-props"));
        json.map(wasm_bindgen::JsValue::from)
            .and_then(|json| crate::live::parse::parse(&json))
            .and_then(|props| <Self as crate::json::FromJson>::from_json(props).ok())
            .expect("the board page carries the board island's props")
    }
}

/// A board that exists: rendered from its definition and kept current by its socket, shown
/// as the address asks.
#[island]
pub fn LiveBoard() -> impl IntoView {
    let BoardProps { name, view, screen } = BoardProps::here();
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
    // Each position's widget and how often its definition changed: an edited widget gets a
    // new key and is rebuilt, the others keep their state and motion.
    let changes = StoredValue::new(Vec::<(Widget, usize)>::new());
    let widgets = move || {
        board.with(|b| {
            let now: Vec<Widget> = b.board.iter().flat_map(|b| b.widgets.clone()).collect();
            changes.update_value(|known| {
                known.truncate(now.len());
                for (i, widget) in now.iter().enumerate() {
                    match known.get_mut(i) {
                        Some((was, _)) if was == widget => {}
                        Some((was, changed)) => {
                            *was = widget.clone();
                            *changed += 1;
                        }
                        None => known.push((widget.clone(), 0)),
                    }
                }
            });
            changes.with_value(|known| {
                known
                    .iter()
                    .enumerate()
                    .map(|(i, (widget, changed))| ((i, *changed), widget.clone()))
                    .collect::<Vec<_>>()
            })
        })
    };
    let notes_board = name.clone();
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
                <For
                    each=widgets
                    key=|(key, _)| *key
                    children=move |(_, widget)| view! { <WidgetCell live widget/> }
                />
            </section>
            <NotesPanel live board=notes_board kiosk=screen.kiosk/>
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
    let badge = stale_badge(live, &widget);
    let stale = move || badge.with(Option::is_some);
    let notes = notes_on(live, &widget);
    // The stale badge and the notes badge, as markup (see `markup`), each redrawn only by
    // what it shows: the clock, or the notes.
    let stale_badge = move || {
        let mut out = String::new();
        if let Some(text) = badge.get() {
            Element::open(&mut out, "p", "stale-badge")
                .attr("role", "status")
                .text(&text);
        }
        out
    };
    let notes_badge = move || {
        let mut out = String::new();
        let label = match notes() {
            0 => return out,
            1 => "1 note".to_owned(),
            n => format!("{n} notes"),
        };
        Element::open(&mut out, "p", "note-badge")
            .attr("title", "Notes pinned here: see the notes panel")
            .text(&label);
        out
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
            <div class="cell-badges" inner_html=stale_badge></div>
            <div class="cell-badges" inner_html=notes_badge></div>
        </div>
    }
}

/// How many of the board's notes are pinned to this widget (its topic, and its entity).
fn notes_on(live: Live, widget: &Widget) -> impl Fn() -> usize {
    let topic = widget.topic.clone();
    let entity = widget.kind.entity().map(str::to_owned);
    move || {
        let Some(topic) = topic.as_deref() else {
            return 0;
        };
        live.notes(Some(topic))
            .iter()
            .filter(|(_, note)| note.pinned_to(topic, entity.as_deref()))
            .count()
    }
}

/// What the widget's stale badge says, while it has one: why its topic is not updating,
/// while the server marks it so (its source fails); else how long what it shows (its
/// entity, or its whole topic) has gone without a change by the server's account, once that
/// is longer than the widget's `stale_after`. A board opened on a topic that went quiet an
/// hour ago shows it stale on its first paint.
fn stale_badge(live: Live, widget: &Widget) -> Signal<Option<String>> {
    let view = widget.topic.as_deref().map(|topic| live.topic(topic));
    let after = widget.stale_after;
    let entity = widget.kind.entity().map(str::to_owned);
    let clock = live.clock;
    Signal::derive(move || {
        let view = view?;
        if let Some(reason) = view.with(|v| v.not_updating.clone()) {
            return Some(format!("Not updating: {reason}"));
        }
        let after = after?;
        let since = view.with(|v| v.changed_at(entity.as_deref()))?;
        let quiet = ((clock.get() - since) / 1000.0).max(0.0) as u64;
        (quiet >= after).then(|| format!("No update for {}", age(quiet)))
    })
}
