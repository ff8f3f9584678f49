//! The connection indicator: connecting, live, reconnecting or offline, and which transport
//! is live when it is not the WebSocket.

use crate::live::{ConnectionStatus, Live, Transport};
use leptos::prelude::*;

#[component]
pub fn ConnectionStatusBadge(live: Live) -> impl IntoView {
    let (status, transport) = (live.status, live.transport);
    let label = move || match (status.get(), transport.get()) {
        (ConnectionStatus::Connecting, _) => "Connecting…",
        (ConnectionStatus::Live, Transport::WebSocket) => "Live",
        (ConnectionStatus::Live, Transport::EventStream) => "Live · SSE",
        (ConnectionStatus::Reconnecting, _) => "Reconnecting…",
        (ConnectionStatus::Offline, _) => "Offline",
        (ConnectionStatus::Refused, _) => "No access",
    };
    let explained = move || {
        (transport.get() == Transport::EventStream).then_some(
            "This network refuses WebSocket: updates arrive as Server-Sent Events, and the page tries WebSocket again now and then.",
        )
    };
    view! {
        <p
            class="connection"
            data-status=move || status.get().as_str()
            data-transport=move || transport.get().as_str()
            title=explained
            role="status"
        >
            <span class="connection-dot" aria-hidden="true"></span>
            <span class="connection-label">{label}</span>
        </p>
    }
}
