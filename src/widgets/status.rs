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
