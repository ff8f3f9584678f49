//! A number widget: one entity's value, tweened, written in the board's style (decimals,
//! compact, unit), coloured by its thresholds, with an arrow for its last change that is green
//! or red by whether a rise is good news.

use super::format::NumberStyle;
use super::payload::number;
use crate::boards::{level_of, Delta, Level, NumberOptions};
use crate::live::Live;
use crate::motion::tween;
use leptos::prelude::*;

/// The arrow's classes: its direction, and whether that direction is good news.
fn delta_classes(change: f64, up_is_good: bool) -> &'static str {
    match (change > 0.0, up_is_good) {
        (true, true) => "delta up good",
        (true, false) => "delta up bad",
        (false, true) => "delta down bad",
        (false, false) => "delta down good",
    }
}

#[component]
pub fn Counter(live: Live, topic: String, label: String, options: NumberOptions) -> impl IntoView {
    let view = live.topic(&topic);
    let loaded = move || view.with(|v| v.loaded);
    let entity = options.entity.clone();
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
    let options = StoredValue::new(options);
    let style = move |v: f64| {
        options.with_value(|o| {
            NumberStyle {
                decimals: o.decimals,
                compact: o.compact,
                unit: o.unit.as_deref(),
            }
            .format(v)
        })
    };
    let level = move || {
        let value = value.get()?;
        options.with_value(|o| level_of(value, &o.thresholds))
    };
    {
        let (entity, label) = (options.with_value(|o| o.entity.clone()), label.clone());
        live.announce_level_changes(
            move || level().map(|l| (entity.clone(), l)).into_iter().collect(),
            move |_, level: &Level| {
                let value = value.get_untracked().map(style).unwrap_or_default();
                format!("{label}: {value}, {}", level.spoken())
            },
        );
    }
    let shown = tween(Signal::derive(move || value.get()), live.snap);
    let arrow = move || {
        let (_, change) = delta.get();
        let (show, up_is_good) = options.with_value(|o| (o.delta == Delta::Previous, o.up_is_good));
        (show && change != 0.0).then(|| {
            let glyph = if change > 0.0 { "▲" } else { "▼" };
            view! {
                <span class=delta_classes(change, up_is_good)>
                    <span aria-hidden="true">{glyph}</span>
                    {style(change.abs())}
                </span>
            }
        })
    };
    let entity = options.with_value(|o| o.entity.clone());
    view! {
        <article class="widget counter" data-topic=topic data-entity=entity data-level=move || level().map(Level::as_str)>
            <h2 class="widget-title">{label}</h2>
            <Show when=loaded fallback=|| view! { <div class="skeleton skeleton-number"></div> }>
                <p class="counter-value" data-value=move || value.get().unwrap_or_default()>
                    {move || {
                        // A whole-number counter counts in whole numbers while it tweens.
                        let whole = value.get().is_some_and(|v| v.fract() == 0.0);
                        let now = shown.get();
                        style(if whole { now.round() } else { now })
                    }}
                </p>
                <p class="counter-delta">
                    {arrow}
                    {move || level().filter(|l| *l != Level::Ok).map(|l| view! { <span class="level-badge">{l.as_str()}</span> })}
                </p>
            </Show>
        </article>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rise_is_green_unless_the_board_says_otherwise() {
        assert_eq!(delta_classes(3.0, true), "delta up good");
        assert_eq!(delta_classes(3.0, false), "delta up bad");
        assert_eq!(delta_classes(-3.0, true), "delta down bad");
        assert_eq!(delta_classes(-3.0, false), "delta down good");
    }
}
