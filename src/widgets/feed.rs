//! A feed: the newest items first, bounded by the topic (the `push` op trims it). New items
//! slide in at the top and push the others down; dropped items fade out at the bottom. Each
//! says how long ago it arrived (its `at`, which the server stamps), kept current by the page
//! clock.

use super::format::ago;
use super::skeleton::{until_loaded, Skeleton};
use crate::live::Live;
use crate::motion::{animated_list, Phase};
use leptos::prelude::*;
use serde_json::Value;

/// How long a dropped item takes to fade out (matches the stylesheet).
const EXIT_MS: u64 = 400;

#[derive(Clone, Debug, PartialEq)]
struct Item {
    kind: String,
    text: String,
    /// When the item happened, ms since the Unix epoch.
    at: Option<f64>,
}

#[component]
pub fn Feed(
    live: Live,
    topic: String,
    title: String,
    /// How many items fit; the topic's own bound decides how many exist.
    rows: usize,
) -> impl IntoView {
    let view = live.topic(&topic);
    let loaded = move || view.with(|v| v.loaded);
    let newest_first = Signal::derive(move || {
        view.with(|v| {
            v.entities
                .iter()
                .rev()
                .take(rows)
                .map(|(id, payload)| {
                    let text = match payload.get("text").and_then(Value::as_str) {
                        Some(text) => text.to_owned(),
                        None => payload.to_string(),
                    };
                    let kind = payload
                        .get("kind")
                        .and_then(Value::as_str)
                        .unwrap_or("event")
                        .to_owned();
                    let at = payload.get("at").and_then(Value::as_f64);
                    (id.clone(), Item { kind, text, at })
                })
                .collect::<Vec<_>>()
        })
    });
    let items = animated_list(newest_first, live.snap, EXIT_MS);
    let clock = live.clock;
    view! {
        <article class="widget feed" data-topic=topic>
            <h2 class="widget-title">{title}</h2>
            {until_loaded(loaded, Skeleton::Rows, move || view! {
                <ul class="feed-items" style=format!("--rows: {rows}") aria-live="off">
                    <For each=move || items.get() key=|item| item.key.clone() let:item>
                        {
                            let (index, phase, value) = (item.index.clone(), item.phase.clone(), item.value.clone());
                            let (kind, kind_label, when) = (value.clone(), value.clone(), value.clone());
                            // The server renders no age (it has no page clock); the browser
                            // fills it in on its first tick.
                            let age = move || {
                                let now = clock.get();
                                when.with(|i| i.at).filter(|_| now > 0.0).map(|at| ago(now, at))
                            };
                            let entering = phase.clone();
                            view! {
                                <li
                                    class="feed-item"
                                    class:leaving=move || phase.get() == Phase::Leaving
                                    data-key=item.key.clone()
                                    style=move || format!("--i: {}", index.get())
                                >
                                    <div class="feed-card" class:enter=move || entering.get() == Phase::Entering>
                                        <span class="feed-kind" data-kind=move || kind.with(|i| i.kind.clone())>
                                            {move || kind_label.with(|i| i.kind.clone())}
                                        </span>
                                        <span class="feed-text">{move || value.with(|i| i.text.clone())}</span>
                                        <span class="feed-age">{age}</span>
                                    </div>
                                </li>
                            }
                        }
                    </For>
                </ul>
            })}
        </article>
    }
}
