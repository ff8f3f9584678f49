//! A clock: the time and date in the board's time zone (the screen's own when the board names
//! none), from the page clock that ticks once a second. The server renders a placeholder; the
//! browser writes the time with its own `Intl` formatting (`live::wall_time`), so the zone
//! rules and the screen's language are the browser's.

use crate::boards::ClockOptions;
use crate::live::{wall_time, Live};
use leptos::prelude::*;

#[component]
pub fn Clock(live: Live, title: Option<String>, options: ClockOptions) -> impl IntoView {
    let zone = options.timezone;
    let label = title
        .or_else(|| zone.clone())
        .unwrap_or_else(|| "Local time".into());
    let shown = Memo::new(move |_| {
        let now = live.clock.get();
        (now > 0.0)
            .then(|| wall_time(now, zone.as_deref()))
            .flatten()
    });
    view! {
        <article class="widget clock">
            <h2 class="widget-title">{label}</h2>
            <p class="clock-time">
                {move || shown.with(|s| s.as_ref().map_or_else(|| "––:––".into(), |s| s.time.clone()))}
            </p>
            <p class="clock-date">{move || shown.with(|s| s.as_ref().map(|s| s.date.clone()))}</p>
        </article>
    }
}
