//! The page's clock (hydrate only): a signal of the wall time, ticked once a second, that
//! stale indicators compare each topic's last change against. One timer per page, however
//! many widgets watch it.

use super::Live;
use leptos::prelude::*;
use std::time::Duration;

const TICK: Duration = Duration::from_secs(1);

pub fn start(live: Live) {
    live.clock.set(js_sys::Date::now());
    set_interval(move || live.clock.set(js_sys::Date::now()), TICK);
}
