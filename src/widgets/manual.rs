//! A manual value: a number people keep by hand on the board (visitors today, cups of
//! coffee, open incidents), with buttons to step it down and up. A step shows at once and
//! goes to the server as an `incr`, so two people pressing together both count; a step the
//! server refuses is rolled back with a notice (see `live::writes`).

use super::format::NumberStyle;
use super::payload::number;
use super::skeleton::{until_loaded, Skeleton};
use crate::boards::ManualOptions;
use crate::live::Live;
use crate::ops::Op;
use leptos::prelude::*;
use serde_json::Value;

/// A number as JSON: whole numbers as integers, as the server keeps them.
fn json_number(x: f64) -> serde_json::Number {
    if x.fract() == 0.0 && x.abs() < 9e15 {
        (x as i64).into()
    } else {
        serde_json::Number::from_f64(x).unwrap_or_else(|| 0.into())
    }
}

/// The payload after a step, in the shape it came in: a bare number, or an object's `value`.
/// Anything else is taken for nothing yet, as the server takes a missing entity.
pub fn stepped(payload: Option<&Value>, by: f64) -> (Value, Option<String>) {
    match payload {
        Some(Value::Object(fields)) if fields.contains_key("value") => {
            let mut fields = fields.clone();
            let now = fields.get("value").and_then(Value::as_f64).unwrap_or(0.0) + by;
            fields.insert("value".into(), Value::Number(json_number(now)));
            (Value::Object(fields), Some("value".into()))
        }
        other => (
            Value::Number(json_number(other.and_then(number).unwrap_or(0.0) + by)),
            None,
        ),
    }
}

#[component]
pub fn Manual(live: Live, topic: String, title: String, options: ManualOptions) -> impl IntoView {
    let view = live.topic(&topic);
    let loaded = move || view.with(|v| v.loaded);
    let topic = StoredValue::new(topic);
    let options = StoredValue::new(options);
    let shown = Memo::new(move |_| {
        let entity = options.with_value(|o| o.entity.clone());
        let entities =
            view.with(|v| topic.with_value(|t| live.writes.shown(t, v.offset, &v.entities)));
        entities.get(&entity).cloned()
    });
    let text = move || {
        let value = shown.with(|p| p.as_ref().and_then(number))?;
        Some(
            options.with_value(|o| NumberStyle::plain(o.decimals, o.unit.as_deref()).format(value)),
        )
    };
    let title = StoredValue::new(title);
    let step = move |direction: f64| {
        let (entity, by) = options.with_value(|o| (o.entity.clone(), o.step * direction));
        let (payload, field) = stepped(shown.get_untracked().as_ref(), by);
        let ops = vec![Op::Incr {
            entity_id: entity.clone(),
            field,
            by: json_number(by),
            ttl: None,
        }];
        let what = format!("Changing {}", title.get_value());
        topic.with_value(|t| live.writes.write(t, &entity, ops, payload, what));
    };
    let entity = options.with_value(|o| o.entity.clone());
    view! {
        <article class="widget manual" data-topic=move || topic.get_value() data-entity=entity>
            <h2 class="widget-title">{move || title.get_value()}</h2>
            {until_loaded(loaded, Skeleton::Number, move || view! {
                <p class="manual-value" data-value=move || shown.with(|p| p.as_ref().and_then(number))>
                    {move || text().unwrap_or_else(|| "–".into())}
                </p>
                <p class="manual-steps">
                    <button class="manual-step" aria-label=format!("Decrease {}", title.get_value()) on:click=move |_| step(-1.0)>"−"</button>
                    <button class="manual-step" aria-label=format!("Increase {}", title.get_value()) on:click=move |_| step(1.0)>"+"</button>
                </p>
            })}
        </article>
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_step_keeps_the_payload_shape() {
        assert_eq!(stepped(Some(&json!(3)), 1.0), (json!(4), None));
        assert_eq!(stepped(None, -1.0), (json!(-1), None));
        assert_eq!(
            stepped(Some(&json!({"value": 2, "note": "x"})), 0.5),
            (json!({"value": 2.5, "note": "x"}), Some("value".into()))
        );
        // Not a number: shown as a step from nothing until the server says otherwise.
        assert_eq!(stepped(Some(&json!("n/a")), 1.0), (json!(1), None));
    }
}
