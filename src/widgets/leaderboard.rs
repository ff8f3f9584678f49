//! A leaderboard: the top entities by a numeric field. Rows keep their DOM node and move to
//! their new rank with a transform transition; rows that drop out fade below the list.

use super::skeleton::{until_loaded, Skeleton};
use crate::live::Live;
use crate::motion::{animated_list, Phase};
use crate::widgets::format::grouped;
use leptos::prelude::*;
use serde_json::Value;

/// How long a row that left the top takes to fade out (matches the stylesheet).
const EXIT_MS: u64 = 400;

#[derive(Clone, Debug, PartialEq)]
struct Entry {
    name: String,
    score: f64,
}

#[component]
pub fn Leaderboard(
    live: Live,
    topic: String,
    title: String,
    /// The field to rank by.
    field: String,
    /// The field that names each row; the entity id when absent.
    name_field: String,
    /// How many rows to show.
    limit: usize,
) -> impl IntoView {
    let view = live.topic(&topic);
    let loaded = move || view.with(|v| v.loaded);
    let ranked = Signal::derive(move || {
        view.with(|v| {
            // The best `limit`, picked in one pass over the topic: each entity goes in after
            // every one scoring at least as much, so ties keep the map's (entity id) order.
            let mut top: Vec<(String, Entry)> = Vec::with_capacity(limit + 1);
            for (id, payload) in &v.entities {
                let score = payload
                    .get(field.as_str())
                    .and_then(Value::as_f64)
                    .unwrap_or(0.0);
                let at = top
                    .iter()
                    .position(|(_, ranked)| ranked.score < score)
                    .unwrap_or(top.len());
                if at < limit {
                    let name = payload
                        .get(name_field.as_str())
                        .and_then(Value::as_str)
                        .unwrap_or(id)
                        .to_owned();
                    top.insert(at, (id.clone(), Entry { name, score }));
                    top.truncate(limit);
                }
            }
            top
        })
    });
    let rows = animated_list(ranked, live.snap, EXIT_MS);
    view! {
        <article class="widget leaderboard" data-topic=topic>
            <h2 class="widget-title">{title}</h2>
            {until_loaded(loaded, Skeleton::Rows, move || view! {
                <ol class="leaderboard-rows" style=format!("--rows: {limit}")>
                    <For each=move || rows.get() key=|row| row.key.clone() let:row>
                        {
                            let (index, moved, phase, value) = (
                                row.index.clone(),
                                row.moved.clone(),
                                row.phase.clone(),
                                row.value.clone(),
                            );
                            let rank = index.clone();
                            let marker = move || match moved.get() {
                                m if m > 0 => Some(view! { <span class="rank-change up" aria-label="moved up">"▲"</span> }),
                                m if m < 0 => Some(view! { <span class="rank-change down" aria-label="moved down">"▼"</span> }),
                                _ => None,
                            };
                            let name = value.clone();
                            view! {
                                <li
                                    class="leaderboard-row"
                                    class:enter={let phase = phase.clone(); move || phase.get() == Phase::Entering}
                                    class:leaving=move || phase.get() == Phase::Leaving
                                    data-key=row.key.clone()
                                    style=move || format!("--rank: {}", index.get())
                                >
                                    <span class="rank">{move || rank.get() + 1}</span>
                                    <span class="name">{move || name.with(|e| e.name.clone())}</span>
                                    {marker}
                                    <span class="score">{move || value.with(|e| score_text(e.score))}</span>
                                </li>
                            }
                        }
                    </For>
                </ol>
            })}
        </article>
    }
}

/// Whole scores as whole numbers; fractional ones keep a decimal.
fn score_text(score: f64) -> String {
    grouped(score, if score.fract() == 0.0 { 0 } else { 1 })
}
