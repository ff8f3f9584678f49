//! A status grid: one light per entity of the topic, coloured by its state, with the state
//! written beside it so colour is never the only sign. Rows keep the topic's order (entity id),
//! so a light that changes colour stays where the eye last found it, and pulses to say so.

use super::payload::{display_name, state};
use crate::boards::StatusOptions;
use crate::live::Live;
use leptos::prelude::*;

#[derive(Clone, Debug, PartialEq)]
struct Row {
    id: String,
    name: String,
    level: Option<&'static str>,
    text: String,
    changed: bool,
}

#[component]
pub fn StatusGrid(
    live: Live,
    topic: String,
    title: String,
    options: StatusOptions,
) -> impl IntoView {
    let view = live.topic(&topic);
    let loaded = move || view.with(|v| v.loaded);
    let options = StoredValue::new(options);
    // A row whose state differs from the one drawn before is marked changed; a row's first
    // drawing (the page loading, a new entity) is not a change.
    let rows = Memo::new(move |before: Option<&Vec<Row>>| {
        options.with_value(|options| {
            view.with(|v| {
                v.entities
                    .iter()
                    .map(|(id, payload)| {
                        let (level, text) = state(payload, &options.field, &options.thresholds);
                        let level = level.map(|l| l.as_str());
                        let was = before.and_then(|rows| rows.iter().find(|row| row.id == *id));
                        Row {
                            changed: was.is_some_and(|was| was.level != level || was.text != text),
                            id: id.clone(),
                            name: display_name(id, payload),
                            level,
                            text,
                        }
                    })
                    .collect::<Vec<_>>()
            })
        })
    });
    {
        let title = title.clone();
        live.announce_level_changes(
            move || {
                rows.with(|rows| {
                    rows.iter()
                        .filter_map(|row| Some((row.id.clone(), row.level?)))
                        .collect()
                })
            },
            // Said in the service's own word ("down", "degraded"), as the light's label is.
            move |id, level| {
                let said = view.with_untracked(|v| {
                    let payload = v.entities.get(id)?;
                    let text = options.with_value(|o| state(payload, &o.field, &o.thresholds).1);
                    Some((display_name(id, payload), text))
                });
                let (name, text) = said.unwrap_or_else(|| (id.to_owned(), (*level).to_owned()));
                format!("{title}: {name} is {text}")
            },
        );
    }
    view! {
        <article class="widget status" data-topic=topic>
            <h2 class="widget-title">{title}</h2>
            <Show when=loaded fallback=|| view! { <div class="skeleton skeleton-rows"></div> }>
                <ul class="status-items">
                    // Keyed by what is drawn, so a changed row is drawn afresh and its pulse
                    // plays; whether it is marked changed is not part of the key.
                    <For
                        each=move || rows.get()
                        key=|row| (row.id.clone(), row.name.clone(), row.level, row.text.clone())
                        children=|Row { id, name, level, text, changed }| view! {
                            <li
                                class="status-item"
                                class:changed=changed
                                data-key=id
                                data-level=level.unwrap_or("unknown")
                            >
                                <span class="status-light" aria-hidden="true"></span>
                                <span class="status-name">{name}</span>
                                <span class="status-state">{text}</span>
                            </li>
                        }
                    />
                </ul>
            </Show>
        </article>
    }
}
