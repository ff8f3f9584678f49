//! A sparkline: the newest points of a series the server keeps (`append` ops), as a line with
//! the latest value written large above it. The newest point sits at the right edge and each
//! arrival scrolls the line one step left, as a transform animation: the path is drawn in its
//! new place and slides in from where the old one was. A note pinned to a moment of the series
//! is a marker at that moment, scrolling with the line.

use super::format::NumberStyle;
use super::markup::Element;
use super::payload::{series, timed_points};
use super::skeleton::{until_loaded, Skeleton};
use crate::boards::SparklineOptions;
use crate::live::Live;
use leptos::prelude::*;

/// The drawing's size in SVG units; the SVG stretches it to the cell.
const WIDTH: f64 = 100.0;
const HEIGHT: f64 = 32.0;
/// Room above and below the line so its stroke is not clipped at the extremes.
const MARGIN: f64 = 2.0;

/// The line and the area under it for the last `capacity` values, right-aligned, with one
/// step between points whether or not the series is full yet; `step` is how far one new
/// point scrolls the line.
#[derive(Clone, Debug, PartialEq)]
pub struct Shape {
    pub line: String,
    pub area: String,
    pub step: f64,
}

pub fn shape(values: &[f64], capacity: usize) -> Option<Shape> {
    let capacity = capacity.max(2);
    let shown = &values[values.len().saturating_sub(capacity)..];
    let (first, _) = shown.split_first()?;
    let step = WIDTH / (capacity - 1) as f64;
    let (low, high) = shown
        .iter()
        .fold((*first, *first), |(lo, hi), v| (lo.min(*v), hi.max(*v)));
    let y = |v: f64| {
        if high > low {
            MARGIN + (high - v) / (high - low) * (HEIGHT - 2.0 * MARGIN)
        } else {
            HEIGHT / 2.0
        }
    };
    let x = |i: usize| WIDTH - (shown.len() - 1 - i) as f64 * step;
    let mut line = String::with_capacity(shown.len() * 14);
    for (i, v) in shown.iter().enumerate() {
        let command = if i == 0 { 'M' } else { 'L' };
        line.push_str(&format!("{command}{:.2} {:.2} ", x(i), y(*v)));
    }
    let line = line.trim_end().to_owned();
    let area = format!("{line} L{WIDTH:.2} {HEIGHT:.2} L{:.2} {HEIGHT:.2} Z", x(0));
    Some(Shape { line, area, step })
}

/// Where a moment (the series' clock, ms) falls on the drawing of the last `capacity` points
/// timed `times`: between the two points around it, or at the right edge when it is newer
/// than the newest; `None` when it is older than the oldest point drawn.
pub fn moment_x(times: &[f64], capacity: usize, moment: f64) -> Option<f64> {
    let capacity = capacity.max(2);
    let shown = &times[times.len().saturating_sub(capacity)..];
    let step = WIDTH / (capacity - 1) as f64;
    let newest = *shown.last()?;
    if moment >= newest {
        return Some(WIDTH);
    }
    let after = shown.iter().position(|t| *t > moment)?;
    let before = after.checked_sub(1)?;
    let x = WIDTH - (shown.len() - 1 - before) as f64 * step;
    Some(x + (moment - shown[before]) / (shown[after] - shown[before]) * step)
}

#[component]
pub fn Sparkline(
    live: Live,
    topic: String,
    title: String,
    options: SparklineOptions,
) -> impl IntoView {
    let view = live.topic(&topic);
    let loaded = move || view.with(|v| v.loaded);
    let entity = options.entity.clone();
    let values = {
        let entity = entity.clone();
        Memo::new(move |_| view.with(|v| v.entities.get(&entity).map(series).unwrap_or_default()))
    };
    let times = {
        let entity = entity.clone();
        Memo::new(move |_| {
            view.with(|v| {
                let points = v
                    .entities
                    .get(&entity)
                    .map(timed_points)
                    .unwrap_or_default();
                points.into_iter().map(|(at, _)| at).collect::<Vec<f64>>()
            })
        })
    };
    let capacity = options.points;
    let options = StoredValue::new(options);
    let latest = move || {
        let value = values.with(|v| v.last().copied())?;
        Some(
            options.with_value(|o| NumberStyle::plain(o.decimals, o.unit.as_deref()).format(value)),
        )
    };
    // Drawn afresh for every change, so the scroll animation starts over each time; the
    // first drawing does not scroll in.
    let drawn = StoredValue::new(false);
    let (marker_topic, marker_entity) = (StoredValue::new(topic.clone()), StoredValue::new(entity));
    // The line, its area and the notes' markers, as markup (see `markup`): drawn afresh for
    // every change, so the scroll animation starts over each time; the first drawing does
    // not scroll in.
    let line = move || {
        let mut out = String::new();
        let Some(shape) = values.with(|v| shape(v, capacity)) else {
            return out;
        };
        let class = if drawn.get_value() {
            "sparkline-path scrolls"
        } else {
            "sparkline-path"
        };
        drawn.set_value(true);
        Element::open(&mut out, "g", class)
            .attr("style", &format!("--step: {:.3}px", shape.step))
            .start();
        Element::open(&mut out, "path", "sparkline-area")
            .attr("d", &shape.area)
            .text("");
        Element::open(&mut out, "path", "sparkline-line")
            .attr("d", &shape.line)
            .text("");
        times.with(|times| {
            for (id, note) in &marker_topic.with_value(|topic| live.notes(Some(topic))) {
                let pinned = marker_topic.with_value(|topic| {
                    marker_entity.with_value(|entity| note.pinned_to(topic, Some(entity)))
                });
                let at = note.moment.filter(|_| pinned);
                let Some(x) = at.and_then(|at| moment_x(times, capacity, at as f64)) else {
                    continue;
                };
                let x = format!("{x:.2}");
                Element::open(&mut out, "line", "note-marker")
                    .attr("data-note", id)
                    .attr("x1", &x)
                    .attr("x2", &x)
                    .attr("y1", "0")
                    .attr("y2", &HEIGHT.to_string())
                    .text("");
            }
        });
        out.push_str("</g>");
        out
    };
    let entity = options.with_value(|o| o.entity.clone());
    view! {
        <article class="widget sparkline" data-topic=topic data-entity=entity>
            <h2 class="widget-title">{title}</h2>
            {until_loaded(loaded, Skeleton::Number, move || view! {
                <p class="sparkline-value" data-points=move || values.with(Vec::len)>
                    {move || latest().unwrap_or_else(|| "–".into())}
                </p>
                <svg
                    class="sparkline-chart"
                    viewBox=format!("0 0 {WIDTH} {HEIGHT}")
                    preserveAspectRatio="none"
                    aria-hidden="true"
                    inner_html=line
                ></svg>
            })}
        </article>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_point_is_at_the_right_edge_one_step_from_the_last() {
        let shape = shape(&[1.0, 3.0, 2.0], 5).unwrap();
        assert_eq!(shape.step, 25.0);
        // Highest value at the top margin, lowest at the bottom one.
        assert_eq!(shape.line, "M50.00 30.00 L75.00 2.00 L100.00 16.00");
        assert!(shape.area.ends_with("L100.00 32.00 L50.00 32.00 Z"));
    }

    #[test]
    fn only_the_newest_points_are_drawn() {
        let shape = shape(&[9.0, 9.0, 1.0, 2.0], 2).unwrap();
        assert_eq!(shape.line, "M0.00 30.00 L100.00 2.00");
    }

    #[test]
    fn a_notes_moment_sits_between_the_points_around_it() {
        let times = [1_000.0, 2_000.0, 3_000.0];
        // Five places, three points: they take the right half, 25 units apart.
        assert_eq!(moment_x(&times, 5, 1_500.0), Some(62.5));
        assert_eq!(moment_x(&times, 5, 3_000.0), Some(100.0));
        assert_eq!(
            moment_x(&times, 5, 9_000.0),
            Some(100.0),
            "newer: at the edge"
        );
        assert_eq!(moment_x(&times, 5, 500.0), None, "older than the drawing");
        assert_eq!(
            moment_x(&times, 2, 1_500.0),
            None,
            "scrolled out of the drawing"
        );
        assert_eq!(moment_x(&[], 5, 1.0), None);
    }

    #[test]
    fn a_single_or_flat_series_is_a_level_line() {
        assert_eq!(shape(&[4.0], 60).unwrap().line, "M100.00 16.00");
        assert_eq!(
            shape(&[4.0, 4.0], 2).unwrap().line,
            "M0.00 16.00 L100.00 16.00"
        );
        assert_eq!(shape(&[], 60), None);
    }
}
