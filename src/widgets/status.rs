//! A status grid: one light per entity of the topic, coloured by its state, with the state
//! written beside it so colour is never the only sign. Rows keep the topic's order (entity id),
//! so a light that changes colour stays where the eye last found it, and pulses to say so.
//!
//! With `acknowledge = true`, a light in warning or worse can be acknowledged from the page:
//! it shows as acknowledged at once and the write (`acknowledged: true` merged into the
//! entity) goes to the server, which confirms it or has it rolled back (see `live::writes`).
//! The publisher's next `set` of the entity clears it, as a new state should.

use super::payload::{display_name, state};
use super::skeleton::{until_loaded, Skeleton};
use crate::boards::{Level, StatusOptions};
use crate::live::{map_of, Live};
use crate::ops::Op;
use leptos::prelude::*;
use serde_json::{json, Value};

#[derive(Clone, Debug, PartialEq)]
struct Row {
    id: String,
    name: String,
    level: Option<&'static str>,
    text: String,
    changed: bool,
    /// Someone acknowledged this state.
    acknowledged: bool,
    /// It can be acknowledged from this page.
    can_acknowledge: bool,
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
    let topic_name = topic.clone();
    let acknowledge = {
        let topic = StoredValue::new(topic.clone());
        move |id: String, name: String| {
            let Some(payload) = view.with_untracked(|v| v.entities.get(&id).cloned()) else {
                return;
            };
            let (acknowledged, op) = match &payload {
                // A merge patch: a state the publisher changes meanwhile is not overwritten.
                Value::Object(fields) => {
                    let mut fields = fields.clone();
                    fields.insert("acknowledged".into(), Value::Bool(true));
                    let patch = Op::Patch {
                        entity_id: id.clone(),
                        patch: json!({"acknowledged": true}),
                        ttl: None,
                    };
                    (Value::Object(fields), patch)
                }
                // A bare state becomes an object, keeping the state under the widget's field.
                bare => {
                    let field = options.with_value(|o| o.field.clone());
                    let object = json!({ field: bare, "acknowledged": true });
                    let set = Op::Set {
                        entity_id: id.clone(),
                        payload: object.clone(),
                        ttl: None,
                    };
                    (object, set)
                }
            };
            let ops = vec![op];
            let topic = topic.get_value();
            live.writes.write(
                &topic,
                &id,
                ops,
                acknowledged,
                format!("Acknowledging {name}"),
            );
        }
    };
    // A row whose state differs from the one drawn before is marked changed; a row's first
    // drawing (the page loading, a new entity) is not a change.
    let rows = Memo::new(move |before: Option<&Vec<Row>>| {
        let shown = view.with(|v| live.writes.shown(&topic_name, v.offset, &v.entities));
        options.with_value(|options| {
            shown
                .iter()
                .map(|(id, payload)| {
                    let (level, text) = state(payload, &options.field, &options.thresholds);
                    let acknowledged = payload.get("acknowledged") == Some(&Value::Bool(true));
                    let was = before.and_then(|rows| rows.iter().find(|row| row.id == *id));
                    Row {
                        changed: was.is_some_and(|was| {
                            was.level != level.map(Level::as_str) || was.text != text
                        }),
                        id: id.clone(),
                        name: display_name(id, payload),
                        can_acknowledge: options.acknowledge
                            && !acknowledged
                            && level.is_some_and(|l| l >= Level::Warn),
                        acknowledged,
                        level: level.map(Level::as_str),
                        text,
                    }
                })
                .collect::<Vec<_>>()
        })
    });
    {
        let title = title.clone();
        live.announce_level_changes(
            move || {
                rows.with(|rows| {
                    map_of(
                        rows.iter()
                            .filter_map(|row| Some((row.id.clone(), row.level?))),
                    )
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
            {until_loaded(loaded, Skeleton::Rows, move || view! {
                <ul class="status-items">
                    // Keyed by what is drawn, so a changed row is drawn afresh and its pulse
                    // plays; whether it is marked changed is not part of the key.
                    <For
                        each=move || rows.get()
                        key=|row| {
                            (row.id.clone(), row.name.clone(), row.level, row.text.clone(), row.acknowledged, row.can_acknowledge)
                        }
                        children=move |Row { id, name, level, text, changed, acknowledged, can_acknowledge }| {
                            let (key, label) = (id.clone(), name.clone());
                            view! {
                                <li
                                    class="status-item"
                                    class:changed=changed
                                    data-key=id
                                    data-level=level.unwrap_or("unknown")
                                >
                                    <span class="status-light" aria-hidden="true"></span>
                                    <span class="status-name">{name}</span>
                                    <span class="status-state">{text}</span>
                                        {acknowledged.then(|| view! { <span class="status-acknowledged">"acknowledged"</span> })}
                                        {can_acknowledge.then(|| view! {
                                            <button
                                                class="status-acknowledge"
                                                aria-label=format!("Acknowledge {label}")
                                                on:click=move |_| acknowledge(key.clone(), label.clone())
                                            >
                                                "Ack"
                                            </button>
                                        })}
                                    </li>
                                }
                            }
                        />
                    </ul>
            })}
        </article>
    }
}
