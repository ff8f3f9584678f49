//! Presence: how many people are viewing this board, with a pulse each time someone joins.

use super::skeleton::{until_loaded, Skeleton};
use crate::live::Live;
use leptos::prelude::*;

#[component]
pub fn PresenceBadge(live: Live) -> impl IntoView {
    let presence = live.presence;
    let count = move || presence.with(|p| p.viewers.len());
    let label = move || match count() {
        1 => "1 viewer".to_owned(),
        n => format!("{n} viewers"),
    };
    let dots = move || {
        presence.with(|p| {
            p.viewers
                .iter()
                .map(|id| {
                    let me = p.me.as_ref() == Some(id);
                    view! { <span class="viewer" class:me=me title=id.clone()></span> }
                })
                .collect_view()
        })
    };
    // Re-created on every join, so its animation plays again.
    let pulse = move || {
        let joins = presence.with(|p| p.joins);
        (joins > 0).then(
            || view! { <span class="presence-pulse" data-join=joins aria-hidden="true"></span> },
        )
    };
    view! {
        <div class="presence" data-viewers=move || presence.with(|p| p.known.then_some(p.viewers.len()))>
            {until_loaded(move || presence.with(|p| p.known), Skeleton::Chip, move || view! {
                <span class="presence-dots">{pulse}{dots}</span>
                <span class="presence-count">{label}</span>
            })}
        </div>
    }
}
