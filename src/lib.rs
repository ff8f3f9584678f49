//! Pulseboard: a live dashboard server. Data pushed into topics reaches every open board
//! within milliseconds, and the board shows each change with motion.
//!
//! One crate, built twice: the server (feature `ssr`) and the browser app (feature `hydrate`,
//! compiled to WASM). Both share the socket protocol and the components.
//!
//! # Layout
//!
//! Pages are Leptos islands: the server renders them whole, and the browser hydrates only
//! the board island, so the WASM holds the live board and nothing else.
//!
//! Shared by both builds:
//! - [`protocol`]: every frame on `/ws`, shared by both sides: the server encodes with serde,
//!   the browser decodes by hand from one parsed JSON value ([`json`]).
//! - [`json`]: the browser's decoders of what the server writes (frames, boards, ops, the
//!   island's props), a leaf the wire types build on; [`names`]: the naming rule for topics
//!   and boards, and topic patterns.
//! - [`ops`]: the typed writes publishers send (set, patch, incr, delete, push).
//! - [`boards`]: boards as data (title, grid, widgets and their options, how an address asks
//!   a board to be shown, the notes pinned to it); on the server, board files, their
//!   Markdown, and the directory that hot-reloads them.
//! - [`live`]: the browser's copy of each topic and of who is on the board (people, who is
//!   writing), as signals, how frames update them, and the page's own writes (and notes)
//!   shown before the server confirms them.
//! - [`widgets`]: the board island ([`widgets::LiveBoard`]), which lays the widgets out and
//!   owns the board's live connection; one component per widget type (number, sparkline,
//!   leaderboard, feed, gauge, status, text, clock, presence, manual), the notes panel and
//!   the connection status; `widgets::markup`, lists written as escaped HTML text.
//! - [`motion`]: tweened numbers, enter/exit lists and reduced-motion detection.
//!
//! Server only (`ssr`):
//! - [`app`]: the HTML shell and the routes.
//! - [`pages`]: the board list at `/`, a board at `/b/{name}`, the admin view at `/admin`,
//!   the 404 page.
//! - [`admin`]: what the admin view and the board list show of the running system: every
//!   instance's report, topics with their rates, who is on which board, the keys.
//! - [`audit`]: the audit trail's recent lines, kept for the admin view.
//! - [`access`]: API keys, their scopes, admin sessions, and who may read and write what.
//! - [`cli`]: the command line: `serve`; `publish` / `snapshot` / `reload` against a
//!   running server; `keys`, `check` and `backup` on the configuration and data dir.
//! - [`config`]: `Leptos.toml` and its environment overrides.
//! - [`engine`]: what a topic is — its state, offsets and history — and the writes that
//!   change it, whole or not at all; [`engine::embedded`] is the one-instance engine.
//! - [`hub`]: who on this instance follows which topic and board: a copy of each followed
//!   topic, the fan-out of its events to local connections, catch-up, presence per person
//!   (with a grace, coalesced) and who is typing.
//! - `clock` and `encoded`: the server's clock, and frames encoded once for everyone.
//! - [`metrics`]: the figures `/metrics` reports.
//! - [`notes`]: who may write a board's notes, what a note may say, and the writes that
//!   keep them (bounded, expiring) in the board's notes topic.
//! - [`store`]: durable topics in SQLite, written with group commit; the file's schema and
//!   its migrations; `pulseboard backup`.
//! - [`server`]: the axum router: pages, `/ws` and its Server-Sent Events twin `/sse`,
//!   `/api/v1` (hooks' deliveries among it), `/healthz`.
//! - [`demo`]: the demo feed that keeps the demo board moving.
//! - [`ingest`]: what comes in without a script: pull sources (Prometheus, any JSON URL)
//!   that write their answers into topics on a schedule, and mark a topic as not updating
//!   while its source fails; hooks that map what Alertmanager, GitHub or anyone posts to ops.
//!
//! Browser only (`hydrate`): `live::socket`, the WebSocket connection with backoff,
//! resume and per-frame batching; `live::parse`, JSON read with the browser's own parser;
//! `live::clock`, the page clock and the clock widgets' time zones; `live::playlist`, the
//! timer that moves a playlist on.

// Leptos' view types nest deeply; the release WASM build's layout queries (a board page with
// every widget) go past rustc's default limit of 128.
#![recursion_limit = "256"]
// These docs are for the crate's maintainers, who read them with `--document-private-items`:
// a module's doc names the internals it is made of.
#![allow(rustdoc::private_intra_doc_links)]

pub mod boards;
pub mod json;
pub mod live;
pub mod motion;
pub mod names;
pub mod ops;
pub mod protocol;
pub mod widgets;

#[cfg(feature = "ssr")]
pub mod access;
#[cfg(feature = "ssr")]
pub mod admin;
#[cfg(feature = "ssr")]
pub mod app;
#[cfg(feature = "ssr")]
pub mod audit;
#[cfg(feature = "ssr")]
pub mod cli;
#[cfg(feature = "ssr")]
mod clock;
#[cfg(feature = "ssr")]
pub mod config;
#[cfg(feature = "ssr")]
pub mod demo;
#[cfg(feature = "ssr")]
mod encoded;
#[cfg(feature = "ssr")]
pub mod engine;
#[cfg(feature = "ssr")]
pub mod hub;
#[cfg(feature = "ssr")]
pub mod ingest;
#[cfg(feature = "ssr")]
pub mod metrics;
#[cfg(feature = "ssr")]
pub mod notes;
#[cfg(feature = "ssr")]
pub mod pages;
#[cfg(feature = "ssr")]
pub mod server;
#[cfg(feature = "ssr")]
pub mod store;

/// The browser entry point: readies the reactive system for the page's islands, which the
/// hydration script then hydrates one by one.
#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_islands();
}
