//! A gauge: one entity's number on a half dial between the board's `min` and `max`. The
//! needle turns (a transform transition, so it honours reduced motion like every other
//! motion here), the value is written in the board's number style, and thresholds colour it.

use super::format::NumberStyle;
use super::payload::number;
use super::skeleton::{until_loaded, Skeleton};
use crate::boards::{level_of, GaugeOptions, Level};
use crate::live::{map_of, Live};
use leptos::prelude::*;

/// The needle's angle in degrees: -90 at `min`, 90 at `max`, held at the ends beyond them.
pub fn needle_angle(value: f64, min: f64, max: f64) -> f64 {
    if max <= min || !value.is_finite() {
        return -90.0;
    }
    ((value - min) / (max - min)).clamp(0.0, 1.0) * 180.0 - 90.0
}

#[component]
pub fn Gauge(live: Live, topic: String, title: String, options: GaugeOptions) -> impl IntoView {
    let view = live.topic(&topic);
    let loaded = move || view.with(|v| v.loaded);
    let entity = options.entity.clone();
    let value = Memo::new(move |_| view.with(|v| v.entities.get(&entity).and_then(number)));
    let options = StoredValue::new(options);
    let angle =
        move || options.with_value(|o| needle_angle(value.get().unwrap_or(o.min), o.min, o.max));
    let level = move || {
        let value = value.get()?;
        options.with_value(|o| level_of(value, &o.thresholds))
    };
    let text = move || {
        options.with_value(|o| {
            let style = NumberStyle::plain(o.decimals, o.unit.as_deref());
            value
                .get()
                .map_or_else(|| "–".to_owned(), |v| style.format(v))
        })
    };
    {
        let (entity, title) = (options.with_value(|o| o.entity.clone()), title.clone());
        live.announce_level_changes(
            move || map_of(level().map(|l| (entity.clone(), l))),
            move |_, level: &Level| format!("{title}: {}, {}", text(), level.spoken()),
        );
    }
    let (low, high) = options.with_value(|o| {
        let style = NumberStyle::default();
        (style.format(o.min), style.format(o.max))
    });
    let entity = options.with_value(|o| o.entity.clone());
    view! {
        <article class="widget gauge" data-topic=topic data-entity=entity data-level=move || level().map(Level::as_str)>
            <h2 class="widget-title">{title}</h2>
            {until_loaded(loaded, Skeleton::Number, move || view! {
                <svg class="gauge-dial" viewBox="0 0 120 68" aria-hidden="true">
                    <path class="gauge-track" d="M10 62 A50 50 0 0 1 110 62"/>
                    <line
                        class="gauge-needle"
                        x1="60" y1="62" x2="60" y2="20"
                        style=move || format!("transform: rotate({:.2}deg)", angle())
                    />
                    <circle class="gauge-hub" cx="60" cy="62" r="4"/>
                </svg>
                <p class="gauge-value" data-value=move || value.get().unwrap_or_default()>{text}</p>
                <p class="gauge-range"><span>{low.clone()}</span><span>{high.clone()}</span></p>
            })}
        </article>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_needle_spans_a_half_turn_and_stops_at_the_ends() {
        assert_eq!(needle_angle(0.0, 0.0, 100.0), -90.0);
        assert_eq!(needle_angle(50.0, 0.0, 100.0), 0.0);
        assert_eq!(needle_angle(100.0, 0.0, 100.0), 90.0);
        assert_eq!(needle_angle(250.0, 0.0, 100.0), 90.0);
        assert_eq!(needle_angle(-5.0, 0.0, 100.0), -90.0);
        assert_eq!(needle_angle(15.0, 10.0, 20.0), 0.0);
        assert_eq!(needle_angle(f64::NAN, 0.0, 1.0), -90.0);
    }
}
