//! The notes panel: the board's notes, newest first, each sliding in as it arrives, with who
//! wrote it, at what time of the screen's clock, and where it is pinned; "Ana is writing…" while someone else writes one;
//! and the form to write one, pinned to the board or to a widget (on a sparkline, to the
//! moment it is written). A guest on a board that keeps notes to its writers is told why
//! there is no form. Kiosk screens hide the panel unless the board's `[notes]` says `kiosk`.

use super::markup::{escape, Element};
use crate::boards::notes::{Note, NoteDraft};
use crate::boards::{Widget, WidgetKind};
use crate::live::{wall_time, Live};
use crate::protocol::{ClientFrame, NoteFrame};
use leptos::prelude::*;

/// How often this page tells the others its person is writing.
const TYPING_EVERY_MS: f64 = 2_000.0;

/// "Ana is writing…", "Ana and Bo are writing…", "3 people are writing…".
fn writing_line(names: &[String]) -> Option<String> {
    match names {
        [] => None,
        [one] => Some(format!("{one} is writing…")),
        [one, two] => Some(format!("{one} and {two} are writing…")),
        many => Some(format!("{} people are writing…", many.len())),
    }
}

/// Where a widget pins a note: its topic and entity, and on a sparkline, this moment.
fn pin_of(widget: &Widget, now_ms: u64) -> (Option<String>, Option<String>, Option<u64>) {
    let moment = matches!(widget.kind, WidgetKind::Sparkline(_)).then_some(now_ms);
    let entity = widget.kind.entity().map(str::to_owned);
    (widget.topic.clone(), entity, moment)
}

/// What a widget is called in the pin menu and under a note pinned to it.
fn widget_name(widget: &Widget) -> String {
    widget
        .title
        .clone()
        .or_else(|| widget.kind.entity().map(str::to_owned))
        .unwrap_or_else(|| widget.kind.name().to_owned())
}

/// The note form's field `name`: its value, read through the DOM (the board has one form).
fn field(name: &str) -> String {
    form_field(name)
        .and_then(|field| js_sys::Reflect::get(&field, &"value".into()).ok())
        .and_then(|value| value.as_string())
        .unwrap_or_default()
}

fn set_field(name: &str, value: &str) {
    if let Some(field) = form_field(name) {
        let _ = js_sys::Reflect::set(&field, &"value".into(), &value.into());
    }
}

fn form_field(name: &str) -> Option<web_sys::Element> {
    document()
        .query_selector(&format!(".note-form [name={name}]"))
        .ok()
        .flatten()
}

/// The notes, newest first, as HTML text (see `markup`); `fresh` are the ids this page has
/// not shown before, which slide in. Buttons carry `data-action` and `data-note` for the
/// list's one click handler.
fn notes_html(
    notes: &[(String, Note)],
    widgets: &[Widget],
    me: Option<&str>,
    when: &dyn Fn(u64) -> String,
    fresh: &dyn Fn(&str) -> bool,
) -> String {
    let mut out = String::new();
    for (id, note) in notes.iter().rev() {
        let class = if fresh(id) { "note entering" } else { "note" };
        let pinned = note.topic.as_deref().and_then(|topic| {
            widgets
                .iter()
                .find(|w| {
                    w.topic.as_deref() == Some(topic) && note.pinned_to(topic, w.kind.entity())
                })
                .map(widget_name)
        });
        Element::open(&mut out, "li", class)
            .attr("data-note", id)
            .start();
        Element::open(&mut out, "p", "note-text").text(&note.text);
        Element::open(&mut out, "p", "note-meta").start();
        Element::open(&mut out, "span", "note-author").text(&note.author_name);
        out.push_str(" · ");
        out.push_str(&escape(&when(note.at)));
        if note.edited.is_some() {
            out.push_str(" · edited");
        }
        if let Some(name) = pinned {
            Element::open(&mut out, "span", "note-pin").text(&format!(" · on {name}"));
        }
        if let Some(link) = &note.link {
            out.push(' ');
            Element::open(&mut out, "a", "note-link")
                .attr("href", link)
                .attr("rel", "noopener noreferrer")
                .attr("target", "_blank")
                .text("link");
        }
        if me == Some(note.author.as_str()) {
            for (action, label) in [("edit", "Edit"), ("delete", "Delete")] {
                Element::open(&mut out, "button", &format!("note-{action}"))
                    .attr("type", "button")
                    .attr("data-action", action)
                    .attr("data-note", id)
                    .text(label);
            }
        }
        out.push_str("</p></li>");
    }
    out
}

#[component]
pub fn NotesPanel(live: Live, board: String, kiosk: bool) -> impl IntoView {
    let shown = move || {
        let options = live.board.with(|b| b.board.as_ref().map(|b| b.notes));
        !kiosk || options.is_some_and(|o| o.kiosk)
    };
    let widgets = move || {
        live.board.with(|b| {
            b.board
                .iter()
                .flat_map(|b| b.widgets.iter())
                .filter(|w| w.topic.is_some())
                .cloned()
                .collect::<Vec<_>>()
        })
    };
    let me = move || {
        live.presence
            .with(|p| p.people.iter().find(|person| p.is_me(person)).cloned())
    };
    // The notes the page has drawn: a note not among them slides in.
    let drawn = StoredValue::new(Vec::<String>::new());
    // When each note was written, as the screen's wall clock says it (a date before it when
    // not today): a time that needs no redrawing as the clock ticks.
    let when = |at: u64| {
        let today = wall_time(js_sys::Date::now(), None).map(|w| w.date);
        match wall_time(at as f64, None) {
            Some(w) if Some(&w.date) == today.as_ref() => w.time,
            Some(w) => format!("{}, {}", w.date, w.time),
            None => String::new(),
        }
    };
    let list = move || {
        let me = me();
        let widgets = widgets();
        let notes = live.notes(None);
        let before = drawn.get_value();
        let html = notes_html(
            &notes,
            &widgets,
            me.as_ref().map(|me| me.id.as_str()),
            &when,
            &|id| !before.is_empty() && !before.iter().any(|b| b == id),
        );
        drawn.set_value(notes.into_iter().map(|(id, _)| id).collect());
        html
    };
    let writing = move || {
        let now = live.clock.get();
        let names: Vec<String> = live.presence.with(|p| {
            p.writing
                .iter()
                .filter(|w| w.until > now)
                .map(|w| w.name.clone())
                .collect()
        });
        writing_line(&names)
    };
    let closed = move || {
        let open_to_all = live
            .board
            .with(|b| b.board.as_ref().is_some_and(|b| b.notes.anyone));
        !open_to_all && me().is_some_and(|me| me.guest)
    };

    // The form reads its fields when sent, and is cleared once the server takes the note.
    let editing = RwSignal::new(None::<String>);
    let typed_at = StoredValue::new(f64::MIN);
    let board_name = StoredValue::new(board);
    Effect::new(move |seen: Option<u32>| {
        let taken = live.writes.notes_taken.get();
        if seen.is_some_and(|seen| seen != taken) {
            set_field("text", "");
            set_field("link", "");
            editing.set(None);
        }
        taken
    });
    let on_input = move |_: leptos::ev::Event| {
        let now = live.clock.get_untracked();
        if now - typed_at.get_value() >= TYPING_EVERY_MS {
            typed_at.set_value(now);
            let board = board_name.get_value();
            live.writes.tell(ClientFrame::Typing { board });
        }
    };
    let submit = move |event: leptos::ev::SubmitEvent| {
        event.prevent_default();
        let chosen = field("pin")
            .parse::<usize>()
            .ok()
            .and_then(|i| widgets().get(i).cloned());
        let (topic, entity, moment) = chosen
            .as_ref()
            .map_or((None, None, None), |w| pin_of(w, live.server_now()));
        let link = Some(field("link")).filter(|l| !l.trim().is_empty());
        live.writes.note(NoteFrame {
            reference: None,
            board: board_name.get_value(),
            id: editing.get_untracked(),
            note: NoteDraft {
                text: field("text"),
                topic,
                entity,
                moment,
                link,
            },
        });
    };
    // One handler for every note's buttons.
    let on_list_click = move |event: leptos::ev::MouseEvent| {
        use wasm_bindgen::JsCast;
        let Some(button) = event
            .target()
            .and_then(|t| t.dyn_into::<web_sys::Element>().ok())
            .and_then(|t| t.closest("[data-action]").ok().flatten())
        else {
            return;
        };
        let (Some(action), Some(id)) = (
            button.get_attribute("data-action"),
            button.get_attribute("data-note"),
        ) else {
            return;
        };
        if action == "delete" {
            return live.writes.delete_note(&board_name.get_value(), &id);
        }
        let note = untrack(|| live.notes(None))
            .into_iter()
            .find(|(n, _)| *n == id)
            .map(|(_, note)| note.text);
        if let Some(note) = note {
            set_field("text", &note);
            editing.set(Some(id));
        }
    };
    // The panel is mostly markup (see `markup`); its one form is drawn afresh only when the
    // board's widgets change, and its events are handled here, on the panel.
    let head = move || {
        let count = live.notes(None).len();
        let mut out = String::new();
        Element::open(&mut out, "h2", "notes-title").start();
        out.push_str("Notes ");
        Element::open(&mut out, "span", "notes-count").text(&count.to_string());
        out.push_str("</h2>");
        if closed() {
            Element::open(&mut out, "p", "notes-closed").text(
                "Only people who may write to this board can leave notes on it: sign in, or open it with a link that may write.",
            );
        }
        if editing.with(Option::is_some) {
            Element::open(&mut out, "p", "notes-editing").text("Editing your note: Post saves it.");
        }
        out
    };
    let form = move || form_html(&widgets());

    view! {
        <aside
            class="notes-panel"
            class:closed=closed
            aria-label="Notes"
            hidden=move || !shown()
            on:click=on_list_click
            on:input=on_input
            on:submit=submit
        >
            <div class="notes-head" inner_html=head></div>
            <p class="notes-writing" class:on=move || writing().is_some() aria-live="polite">
                {move || writing().unwrap_or_default()}
            </p>
            <form class="note-form" inner_html=form></form>
            <p class="note-refused" role="alert">{move || live.writes.note_refused.get()}</p>
            <ol class="notes-list" inner_html=list></ol>
        </aside>
    }
}

/// The note form: the text, what to pin it to (the board, or one of its widgets), a link.
fn form_html(widgets: &[Widget]) -> String {
    let mut out = String::from(concat!(
        r#"<label class="visually-hidden" for="note-text">Note</label>"#,
        r#"<textarea id="note-text" name="text" rows="2" maxlength="2000" "#,
        r#"placeholder="What is going on?"></textarea>"#,
        r#"<div class="note-form-row"><select name="pin" aria-label="Pin to">"#,
        r#"<option value="">The board</option>"#,
    ));
    for (i, widget) in widgets.iter().enumerate() {
        Element::open(&mut out, "option", "")
            .attr("value", &i.to_string())
            .text(&widget_name(widget));
    }
    out.push_str(concat!(
        r#"</select><input name="link" type="url" placeholder="Link (optional)" aria-label="Link">"#,
        r#"<button type="submit">Post</button></div>"#,
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_note_is_written_escaped_with_buttons_only_for_its_author() {
        let note = Note {
            text: "<b>failover</b>".into(),
            author: "k-ana".into(),
            author_name: "Ana".into(),
            at: 0,
            edited: None,
            topic: None,
            entity: None,
            moment: None,
            link: Some("https://ci.example.com/?a=1&b=2".into()),
        };
        let notes = vec![("000000000001".to_owned(), note)];
        let html = |me| notes_html(&notes, &[], me, &|_| "14:02".into(), &|_| true);
        let mine = html(Some("k-ana"));
        assert!(mine.contains("&lt;b&gt;failover&lt;/b&gt;"));
        assert!(mine.contains(r#"href="https://ci.example.com/?a=1&amp;b=2""#));
        assert!(mine.contains(r#"class="note entering""#));
        assert!(mine.contains(r#"data-action="delete" data-note="000000000001""#));
        assert!(!html(Some("k-bo")).contains("data-action"));
    }

    #[test]
    fn who_is_writing_reads_as_a_sentence() {
        assert_eq!(writing_line(&[]), None);
        assert_eq!(writing_line(&["Ana".into()]).unwrap(), "Ana is writing…");
        assert_eq!(
            writing_line(&["Ana".into(), "Bo".into()]).unwrap(),
            "Ana and Bo are writing…"
        );
        assert_eq!(
            writing_line(&["A".into(), "B".into(), "C".into()]).unwrap(),
            "3 people are writing…"
        );
    }
}
