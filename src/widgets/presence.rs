//! Presence: how many people are on this board, each as an avatar with their initials, and
//! a pulse on the avatar of whoever arrived last. A person with several pages open is one
//! avatar; a board too busy to list its people shows their count.

use super::markup::Element;
use super::skeleton::{until_loaded, Skeleton};
use crate::live::{Live, PresenceView};
use leptos::prelude::*;

/// Up to two initials of a name: "Ana Lima" → "AL", "Guest 417" → "G4".
fn initials(name: &str) -> String {
    name.split_whitespace()
        .filter_map(|word| word.chars().next())
        .take(2)
        .collect::<String>()
        .to_uppercase()
}

/// One avatar per person: their initials, their name as its title; after an arrival, the
/// pulse (drawn afresh, so it plays again).
fn avatars_html(presence: &PresenceView) -> String {
    let mut out = String::new();
    if presence.arrival {
        Element::open(&mut out, "span", "presence-pulse")
            .attr("data-join", &presence.joins.to_string())
            .attr("aria-hidden", "true")
            .text("");
    }
    for person in &presence.people {
        let me = presence.is_me(person);
        let class = match (me, person.guest) {
            (true, true) => "viewer me guest",
            (true, false) => "viewer me",
            (false, true) => "viewer guest",
            (false, false) => "viewer",
        };
        let title = if me {
            format!("{} (you)", person.name)
        } else {
            person.name.clone()
        };
        let mut avatar = Element::open(&mut out, "span", class)
            .attr("title", &title)
            .attr("data-person", &person.id);
        if presence.newest.as_ref() == Some(&person.id) {
            avatar = avatar.attr("data-pulse", "");
        }
        avatar.text(&initials(&person.name));
    }
    out
}

#[component]
pub fn PresenceBadge(live: Live) -> impl IntoView {
    let presence = live.presence;
    let label = move || match presence.with(|p| p.count) {
        1 => "1 person".to_owned(),
        n => format!("{n} people"),
    };
    // Written as HTML text (see `markup`): drawn afresh on every change, so the newest
    // arrival's avatar, and the pulse, play again.
    let avatars = move || presence.with(avatars_html);
    view! {
        <div class="presence" data-people=move || presence.with(|p| p.known.then_some(p.count))>
            {until_loaded(move || presence.with(|p| p.known), Skeleton::Chip, move || view! {
                <span class="presence-dots" inner_html=avatars></span>
                <span class="presence-count">{label}</span>
            })}
        </div>
    }
}

#[cfg(test)]
mod tests {
    use super::initials;

    #[test]
    fn an_avatar_shows_up_to_two_initials() {
        assert_eq!(initials("Ana Lima"), "AL");
        assert_eq!(initials("Guest 417"), "G4");
        assert_eq!(initials("ops"), "O");
        assert_eq!(initials(""), "");
    }
}
