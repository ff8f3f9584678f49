//! A playlist's timer (hydrate only): after the board's turn, the page goes to the next board
//! with the same address options, so the rotation carries on from there. A full page load
//! rather than an in-page swap: a screen that rotates for weeks starts each board clean.

use leptos::prelude::*;
use std::time::Duration;

pub fn move_on(next: &str, after: Duration) {
    let next = String::from(js_sys::encode_uri_component(next));
    set_timeout(
        move || {
            let location = window().location();
            let options = location.search().unwrap_or_default();
            let _ = location.assign(&format!("/b/{next}{options}"));
        },
        after,
    );
}
