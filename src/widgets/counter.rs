//! A number widget: the entity's value, tweened, with an arrow for its last change.

use crate::live::Live;
use crate::motion::tween;
use leptos::prelude::*;
use serde_json::Value;

/// Reads a number from a payload: a bare number, or an object's `value` field.
fn number(payload: &Value) -> Option<f64> {
    payload
        .as_f64()
        .or_else(|| payload.get("value").and_then(Value::as_f64))
}

/// Formats a number for a wall screen: thousands separated, at most one decimal.
pub fn format_number(value: f64) -> String {
    let rounded = (value * 10.0).round() / 10.0;
    let whole = rounded.trunc().abs() as u64;
    let digits = whole.to_string();
    let mut grouped = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    let sign = if rounded < 0.0 { "-" } else { "" };
    let tenths = ((rounded.abs() - whole as f64) * 10.0).round() as u64;
    if tenths == 0 {
        format!("{sign}{grouped}")
    } else {
        format!("{sign}{grouped}.{tenths}")
    }
}

#[component]
pub fn Counter(live: Live, topic: String, entity: String, label: String) -> impl IntoView {
    let view = live.topic(&topic);
    let loaded = move || view.with(|v| v.loaded);
    let entity_attribute = entity.clone();
    let value = Memo::new(move |_| view.with(|v| v.entities.get(&entity).and_then(number)));
    // The last change, kept while other entities of the topic change.
    let delta = Memo::new(move |previous: Option<&(Option<f64>, f64)>| {
        let now = value.get();
        match previous {
            Some((before, delta)) if *before == now => (now, *delta),
            Some((Some(before), _)) => (now, now.map_or(0.0, |n| n - before)),
            _ => (now, 0.0),
        }
    });
    let shown = tween(Signal::derive(move || value.get()), live.snap);
    let arrow = move || {
        let (_, change) = delta.get();
        (change != 0.0).then(|| {
            let (class, glyph) = if change > 0.0 {
                ("delta up", "▲")
            } else {
                ("delta down", "▼")
            };
            view! {
                <span class=class>
                    <span aria-hidden="true">{glyph}</span>
                    {format_number(change.abs())}
                </span>
            }
        })
    };
    view! {
        <article class="widget counter" data-topic=topic data-entity=entity_attribute>
            <h2 class="widget-title">{label}</h2>
            <Show when=loaded fallback=|| view! { <div class="skeleton skeleton-number"></div> }>
                <p class="counter-value" data-value=move || value.get().unwrap_or_default()>
                    {move || {
                        // A whole-number counter counts in whole numbers while it tweens.
                        let whole = value.get().is_some_and(|v| v.fract() == 0.0);
                        let now = shown.get();
                        format_number(if whole { now.round() } else { now })
                    }}
                </p>
                <p class="counter-delta">{arrow}</p>
            </Show>
        </article>
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_read_bare_or_from_value() {
        assert_eq!(number(&json!(3)), Some(3.0));
        assert_eq!(number(&json!({"value": 2.5})), Some(2.5));
        assert_eq!(number(&json!("x")), None);
    }

    #[test]
    fn numbers_format_for_a_wall() {
        assert_eq!(format_number(0.0), "0");
        assert_eq!(format_number(999.0), "999");
        assert_eq!(format_number(1280.0), "1,280");
        assert_eq!(format_number(1234567.0), "1,234,567");
        assert_eq!(format_number(-4321.25), "-4,321.3");
        assert_eq!(format_number(12.04), "12");
    }
}
