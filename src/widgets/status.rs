//! A status grid: one light per entity of the topic, coloured by its state, with the state
//! written beside it so colour is never the only sign. Rows keep the topic's order (entity id),
//! so a light that changes colour stays where the eye last found it, and pulses to say so.
//!
//! With `acknowledge = true`, a light in warning or worse can be acknowledged from the page:
//! it shows as acknowledged at once and the write (`acknowledged: true` merged into the
//! entity) goes to the server, which confirms it or has it rolled back (see `live::writes`).
//! The publisher's next `set` of the entity clears it, as a new state should.

use super::markup::Element;
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
    // A row whose state differs from the one drawn before is marked changed, and so is a
    // row that appears once the topic has loaded (an alert that fires); the rows the page
    // loads with are not changes.
    let loaded_before = StoredValue::new(false);
    let rows = Memo::new(move |before: Option<&Vec<Row>>| {
        let (shown, loaded) = view.with(|v| {
            (
                live.writes.shown(&topic_name, v.offset, &v.entities),
                v.loaded,
            )
        });
        let arrival = loaded_before.get_value();
        loaded_before.set_value(loaded);
        options.with_value(|options| {
            shown
                .iter()
                .map(|(id, payload)| {
                    let (level, text) = state(payload, &options.field, &options.thresholds);
                    let acknowledged = payload.get("acknowledged") == Some(&Value::Bool(true));
                    let was = before.and_then(|rows| rows.iter().find(|row| row.id == *id));
                    Row {
                        changed: was.map_or(arrival, |was| {
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
    let on_click = move |event: leptos::ev::MouseEvent| {
        use wasm_bindgen::JsCast;
        let button = event
            .target()
            .and_then(|t| t.dyn_into::<web_sys::Element>().ok())
            .and_then(|t| t.closest("[data-ack]").ok().flatten());
        let Some(id) = button.and_then(|b| b.get_attribute("data-ack")) else {
            return;
        };
        let name = rows.with_untracked(|rows| {
            rows.iter()
                .find(|row| row.id == id)
                .map(|row| row.name.clone())
        });
        acknowledge(id, name.unwrap_or_default());
    };
    view! {
        <article class="widget status" data-topic=topic>
            <h2 class="widget-title">{title}</h2>
            {until_loaded(loaded, Skeleton::Rows, move || view! {
                // Written as markup (see `markup`), drawn afresh on each change: a row marked
                // changed pulses, the others are drawn as they were.
                <ul class="status-items" inner_html=move || rows.with(|rows| rows_html(rows)) on:click=on_click></ul>
            })}
        </article>
    }
}

/// The rows as HTML text; an Ack button carries its entity in `data-ack`.
fn rows_html(rows: &[Row]) -> String {
    let mut out = String::new();
    for row in rows {
        let class = if row.changed {
            "status-item changed"
        } else {
            "status-item"
        };
        Element::open(&mut out, "li", class)
            .attr("data-key", &row.id)
            .attr("data-level", row.level.unwrap_or("unknown"))
            .start();
        Element::open(&mut out, "span", "status-light")
            .attr("aria-hidden", "true")
            .text("");
        Element::open(&mut out, "span", "status-name").text(&row.name);
        Element::open(&mut out, "span", "status-state").text(&row.text);
        if row.acknowledged {
            Element::open(&mut out, "span", "status-acknowledged").text("acknowledged");
        }
        if row.can_acknowledge {
            Element::open(&mut out, "button", "status-acknowledge")
                .attr("type", "button")
                .attr("aria-label", &format!("Acknowledge {}", row.name))
                .attr("data-ack", &row.id)
                .text("Ack");
        }
        out.push_str("</li>");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_written_escaped_with_ack_only_where_it_applies() {
        let row = |id: &str, can_acknowledge| Row {
            id: id.into(),
            name: format!("<{id}>"),
            level: Some("warn"),
            text: "degraded".into(),
            changed: id == "api",
            acknowledged: false,
            can_acknowledge,
        };
        let html = rows_html(&[row("api", true), row("db", false)]);
        assert!(
            html.contains(r#"<li class="status-item changed" data-key="api" data-level="warn">"#)
        );
        assert!(html.contains("&lt;api&gt;"));
        assert!(html.contains(r#"data-ack="api""#));
        assert!(!html.contains(r#"data-ack="db""#));
    }
}
