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
            let mut entries: Vec<(String, Entry)> = v
                .entities
                .iter()
                .map(|(id, payload)| {
                    let name = payload
                        .get(name_field.as_str())
                        .and_then(Value::as_str)
                        .unwrap_or(id)
                        .to_owned();
                    let score = payload
                        .get(field.as_str())
                        .and_then(Value::as_f64)
                        .unwrap_or(0.0);
                    (id.clone(), Entry { name, score })
                })
                .collect();
            entries.sort_by(|a, b| b.1.score.total_cmp(&a.1.score).then_with(|| a.0.cmp(&b.0)));
            entries.truncate(limit);
            entries
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
