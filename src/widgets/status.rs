//! A status grid: one light per entity of the topic, coloured by its state, with the state
//! written beside it so colour is never the only sign. Rows keep the topic's order (entity id),
//! so a light that changes colour stays where the eye last found it.

use super::payload::{display_name, state};
use crate::boards::StatusOptions;
use crate::live::Live;
use leptos::prelude::*;

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
    let rows = move || {
        options.with_value(|options| {
            view.with(|v| {
                v.entities
                    .iter()
                    .map(|(id, payload)| {
                        let (level, text) = state(payload, &options.field, &options.thresholds);
                        (
                            id.clone(),
                            display_name(id, payload),
                            level.map(|l| l.as_str()),
                            text,
                        )
                    })
                    .collect::<Vec<_>>()
            })
        })
    };
    {
        let title = title.clone();
        live.announce_level_changes(
            move || {
                rows()
                    .into_iter()
                    .filter_map(|(id, _, level, _)| Some((id, level?)))
                    .collect()
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
                    <For
                        each=rows
                        key=|row| row.clone()
                        children=|(id, name, level, text)| view! {
                            <li class="status-item" data-key=id data-level=level.unwrap_or("unknown")>
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
