//! The page's clock (hydrate only): a signal of the wall time, ticked once a second, that
//! stale indicators and clock widgets read. One timer per page, however many widgets watch
//! it. Clock widgets get their time written by the browser's `Intl`, which knows the zones.

use super::{Live, WallTime};
use leptos::prelude::*;
use std::time::Duration;
use wasm_bindgen::{JsCast, JsValue};

const TICK: Duration = Duration::from_secs(1);

pub fn start(live: Live) {
    live.clock.set(js_sys::Date::now());
    set_interval(move || live.clock.set(js_sys::Date::now()), TICK);
}

/// `now_ms` as a clock shows it in `zone` (the browser's own zone when `None`), in the
/// screen's language. `None` if the browser does not know the zone: the server checked it
/// against its own database, but a browser's may be older.
pub fn wall_time(now_ms: f64, zone: Option<&str>) -> Option<WallTime> {
    Some(WallTime {
        time: format(now_ms, zone, &[("hour", "2-digit"), ("minute", "2-digit")])?,
        date: format(
            now_ms,
            zone,
            &[("weekday", "long"), ("day", "numeric"), ("month", "long")],
        )?,
    })
}

/// `new Intl.DateTimeFormat(undefined, {…fields, timeZone}).format(now)`, with the
/// RangeError an unknown zone throws caught instead of aborting the page.
fn format(now_ms: f64, zone: Option<&str>, fields: &[(&str, &str)]) -> Option<String> {
    let options = js_sys::Object::new();
    for (field, value) in fields {
        js_sys::Reflect::set(&options, &(*field).into(), &(*value).into()).ok()?;
    }
    if let Some(zone) = zone {
        js_sys::Reflect::set(&options, &"timeZone".into(), &zone.into()).ok()?;
    }
    let intl = js_sys::Reflect::get(&js_sys::global(), &"Intl".into()).ok()?;
    let constructor: js_sys::Function = js_sys::Reflect::get(&intl, &"DateTimeFormat".into())
        .ok()?
        .dyn_into()
        .ok()?;
    let arguments = js_sys::Array::of2(&JsValue::UNDEFINED, &options);
    let formatter: js_sys::Intl::DateTimeFormat =
        js_sys::Reflect::construct(&constructor, &arguments)
            .ok()?
            .unchecked_into();
    formatter
        .format()
        .call1(&JsValue::NULL, &js_sys::Date::new(&now_ms.into()))
        .ok()?
        .as_string()
}
