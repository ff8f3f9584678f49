//! A number that glides to each new value instead of jumping, one step per animation frame.

use super::{now_ms, reduced_motion};
use leptos::prelude::*;

const DURATION_MS: f64 = 700.0;

/// Follows `target`, easing from the shown value to each new one. Jumps when there is no
/// previous value, when `snap` is set, or when the viewer prefers reduced motion.
pub fn tween(target: Signal<Option<f64>>, snap: RwSignal<bool>) -> ReadSignal<f64> {
    let (shown, set_shown) = signal(0.0);
    // Each new target starts a new run; older runs see the change and stop.
    let run = StoredValue::new(0u64);
    Effect::new(move |previous: Option<Option<f64>>| {
        let to = target.get()?;
        run.update_value(|r| *r += 1);
        let had_value = previous.flatten().is_some();
        if !had_value || snap.get_untracked() || reduced_motion() {
            set_shown.set(to);
        } else {
            step(
                run.get_value(),
                run,
                shown.get_untracked(),
                to,
                now_ms(),
                set_shown,
            );
        }
        Some(to)
    });
    shown
}

fn step(id: u64, run: StoredValue<u64>, from: f64, to: f64, start: f64, set: WriteSignal<f64>) {
    if run.try_get_value() != Some(id) {
        return;
    }
    let t = ((now_ms() - start) / DURATION_MS).clamp(0.0, 1.0);
    let eased = 1.0 - (1.0 - t).powi(3);
    set.set(from + (to - from) * eased);
    if t < 1.0 {
        request_animation_frame(move || step(id, run, from, to, start, set));
    }
}
