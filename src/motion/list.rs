//! A keyed list whose items enter, move and leave with motion.
//!
//! Items keep their DOM node for as long as they exist, and their place in the list is a
//! signal (`index`) that the stylesheet turns into a `transform`: a reorder is a transition of
//! each moved row from its old place to its new one (the FLIP effect, without measuring, since
//! rows have a fixed height). A removed item stays for `exit_ms` in the `Leaving` phase so its
//! exit can play, then goes.

use leptos::prelude::*;
use std::collections::HashSet;
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Arrived while the board was live: plays its enter animation.
    Entering,
    /// Arrived with a snapshot, or settled: back from leaving, or caught entering by a snap.
    Present,
    /// Gone from the source; playing its exit before removal.
    Leaving,
}

/// One item. Its signals are reference-counted, so they live as long as the item does.
#[derive(Clone)]
pub struct ListItem<T: Send + Sync + 'static> {
    pub key: String,
    pub value: ArcRwSignal<T>,
    pub index: ArcRwSignal<usize>,
    /// How many places the item moved in its last reorder: positive is up.
    pub moved: ArcRwSignal<i64>,
    pub phase: ArcRwSignal<Phase>,
}

/// Follows `source` (keys and values in display order) and returns the items to render.
pub fn animated_list<T>(
    source: Signal<Vec<(String, T)>>,
    snap: RwSignal<bool>,
    exit_ms: u64,
) -> ReadSignal<Vec<ListItem<T>>>
where
    T: Clone + PartialEq + Send + Sync + 'static,
{
    let (items, set_items) = signal(Vec::<ListItem<T>>::new());
    Effect::new(move |_| {
        let next = source.get();
        // Tracked: a snap settles the items still marked as entering, or their enter
        // animation would play again once the snap's `animation: none` lifts.
        let snapping = snap.get();
        let animate = !snapping && !super::reduced_motion();
        let keys: HashSet<&String> = next.iter().map(|(k, _)| k).collect();
        let mut leaving = Vec::new();
        set_items.update(|items| {
            for (index, (key, value)) in next.iter().enumerate() {
                match items.iter().find(|item| &item.key == key) {
                    Some(item) => {
                        if item.value.with_untracked(|v| v != value) {
                            item.value.set(value.clone());
                        }
                        let old = item.index.get_untracked();
                        if old != index {
                            item.moved.set(old as i64 - index as i64);
                            item.index.set(index);
                        }
                        match item.phase.get_untracked() {
                            Phase::Leaving => item.phase.set(Phase::Present),
                            Phase::Entering if snapping => item.phase.set(Phase::Present),
                            _ => {}
                        }
                    }
                    None => items.push(ListItem {
                        key: key.clone(),
                        value: ArcRwSignal::new(value.clone()),
                        index: ArcRwSignal::new(index),
                        moved: ArcRwSignal::new(0),
                        phase: ArcRwSignal::new(if animate {
                            Phase::Entering
                        } else {
                            Phase::Present
                        }),
                    }),
                }
            }
            items.retain(|item| {
                if keys.contains(&item.key) {
                    return true;
                }
                if !animate {
                    return false;
                }
                if item.phase.get_untracked() != Phase::Leaving {
                    item.phase.set(Phase::Leaving);
                    // Leave from just below the last row, so nothing overlaps the list.
                    item.index.set(next.len());
                    leaving.push(item.key.clone());
                }
                true
            });
        });
        for key in leaving {
            set_timeout(
                move || {
                    set_items.update(|items| {
                        items.retain(|item| {
                            item.key != key || item.phase.get_untracked() != Phase::Leaving
                        })
                    })
                },
                Duration::from_millis(exit_ms),
            );
        }
    });
    items
}
