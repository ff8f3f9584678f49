//! The connection indicator: connecting, live, reconnecting or offline.

use crate::live::{ConnectionStatus, Live};
use leptos::prelude::*;

#[component]
pub fn ConnectionStatusBadge(live: Live) -> impl IntoView {
    let status = live.status;
    let label = move || match status.get() {
        ConnectionStatus::Connecting => "Connecting…",
        ConnectionStatus::Live => "Live",
        ConnectionStatus::Reconnecting => "Reconnecting…",
        ConnectionStatus::Offline => "Offline",
    };
    view! {
        <p class="connection" data-status=move || status.get().as_str() role="status">
            <span class="connection-dot" aria-hidden="true"></span>
            <span class="connection-label">{label}</span>
        </p>
    }
}
