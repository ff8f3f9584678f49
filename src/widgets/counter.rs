//! A number widget: one entity's value (a number, or a series' newest point), tweened, written
//! in the board's style (decimals, compact, unit), coloured by its thresholds, with an arrow
//! that is green or red by whether a rise is good news. The arrow shows the last change, or
//! the change over a window: from the series' own points when the entity is a series, else
//! from the values this page has seen (so a plain number shows it once the page has been open
//! that long).

use super::format::{age, NumberStyle};
use super::markup::{escape, Element};
use super::payload::{change_over, latest, timed_points};
use super::skeleton::{until_loaded, Skeleton};
use crate::boards::{level_of, Delta, Level, NumberOptions};
use crate::live::{map_of, Live};
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
    let value = Memo::new(move |_| view.with(|v| v.entities.get(&entity).and_then(latest)));
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
            move || map_of(level().map(|l| (entity.clone(), l))),
            move |_, level: &Level| {
                let value = value.get_untracked().map(style).unwrap_or_default();
                format!("{label}: {value}, {}", level.spoken())
            },
        );
    }
    let shown = tween(Signal::derive(move || value.get()), live.snap);
    // The values this page has seen, with the page clock's time, for a window delta on a
    // plain number; only what the window needs is kept.
    let seen = StoredValue::new(Vec::<(f64, f64)>::new());
    let window = options.with_value(|o| match o.delta {
        Delta::Window(seconds) => Some(seconds as f64 * 1000.0),
        _ => None,
    });
    if let Some(window_ms) = window {
        Effect::new(move |_| {
            let (Some(now), at) = (value.get(), live.clock.get_untracked()) else {
                return;
            };
            if at > 0.0 {
                seen.update_value(|seen| {
                    seen.push((at, now));
                    let before_window = seen.iter().rposition(|(t, _)| *t <= at - window_ms);
                    seen.drain(..before_window.unwrap_or(0));
                });
            }
        });
    }
    let change = move || -> Option<f64> {
        let Some(window_ms) = window else {
            return options
                .with_value(|o| o.delta == Delta::Previous)
                .then(|| delta.get().1);
        };
        let points =
            view.with(|v| options.with_value(|o| v.entities.get(&o.entity).map(timed_points)));
        let points = points.unwrap_or_default();
        if let Some(newest) = points.last() {
            return change_over(&points, *newest, window_ms);
        }
        let at = live.clock.get();
        let now = value.get()?;
        (at > 0.0).then(|| seen.with_value(|seen| change_over(seen, (at, now), window_ms)))?
    };
    // The arrow and the level's badge, as markup (see `markup`): drawn afresh with each
    // change, so the arrow pops in again.
    let delta_line = move || {
        let mut out = String::new();
        if let Some(change) = change().filter(|c| *c != 0.0) {
            let up_is_good = options.with_value(|o| o.up_is_good);
            let glyph = if change > 0.0 { "▲" } else { "▼" };
            Element::open(&mut out, "span", delta_classes(change, up_is_good)).start();
            Element::open(&mut out, "span", "")
                .attr("aria-hidden", "true")
                .text(glyph);
            out.push_str(&escape(&style(change.abs())));
            if let Some(ms) = window {
                Element::open(&mut out, "span", "delta-window")
                    .text(&format!(" in {}", age((ms / 1000.0) as u64)));
            }
            out.push_str("</span>");
        }
        if let Some(level) = level().filter(|l| *l != Level::Ok) {
            Element::open(&mut out, "span", "level-badge").text(level.as_str());
        }
        out
    };
    let entity = options.with_value(|o| o.entity.clone());
    view! {
        <article class="widget counter" data-topic=topic data-entity=entity data-level=move || level().map(Level::as_str)>
            <h2 class="widget-title">{label}</h2>
            {until_loaded(loaded, Skeleton::Number, move || view! {
                <p class="counter-value" data-value=move || value.get()>
                    {move || {
                        // No number (none yet, or a NaN a source passed on as it came) is
                        // said so, never shown as 0.
                        let Some(latest) = value.get() else {
                            return "no data".to_owned();
                        };
                        // A whole-number counter counts in whole numbers while it tweens.
                        let now = shown.get();
                        style(if latest.fract() == 0.0 { now.round() } else { now })
                    }}
                </p>
                <p class="counter-delta" inner_html=delta_line></p>
            })}
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
