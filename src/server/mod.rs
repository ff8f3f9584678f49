//! The HTTP server: the axum router that mounts the pages, the socket, the API and the
//! health check, and the listener that runs it until a shutdown signal.
//!
//! - `api`: `/api/v1` and `/healthz`; `notes`: a board's notes under it; `caller`: who a
//!   request comes from;
//! - `socket` and `sse`: `/ws` and its fallback, over one `session` each (which also says
//!   what ends a stream from outside, `endings`); `changes`: the last resort, a topic's
//!   changes over plain HTTP (a long poll on a short-lived session);
//! - `origin`: whether a request comes from this server's own pages;
//! - `listener`: the accept loop, with header and keep-alive timeouts and connections per
//!   address;
//! - `limits`: requests and connections per address and key; `headers`: CSP and friends;
//! - `bodies`: request bodies refused on their declared size or when they arrive too slowly,
//!   and read out after a refusal;
//! - `error`: the JSON refusal every handler answers with, and its closed list of codes;
//! - `login`: the admin session's form and cookie; `admin`: the admin view's live part;
//! - `assets`: the site's build, compressed and cached by the version in its address.

mod admin;
pub(crate) mod api;
mod assets;
pub(crate) mod bodies;
mod caller;
mod changes;
mod endings;
mod error;
mod headers;
mod hooks;
mod influx;
pub(crate) mod limits;
pub(crate) mod listener;
mod login;
mod notes;
mod origin;
pub(crate) mod session;
pub(crate) mod socket;
mod sse;

use crate::access::keyring::{self, Keyring, REFRESH};
use crate::admin::Admin;
use crate::app::{shell, App};
use crate::audit::AuditTrail;
use crate::boards::library::{Library, POLL};
use crate::config::Config;
use crate::engine::embedded::Embedded;
use crate::engine::redis::RedisEngine;
use crate::engine::{Engine, EngineError};
use crate::hub::Hub;
use crate::metrics::Metrics;
use crate::notes::Notes;
use crate::store::sqlite::SqliteStore;
use axum::extract::FromRef;
use axum::http::request::Parts;
use axum::http::{header, HeaderValue};
use axum::middleware::from_fn_with_state;
use axum::routing::get;
use axum::Router;
use leptos::config::LeptosOptions;
use leptos::nonce::use_nonce;
use leptos::prelude::{provide_context, use_context};
use leptos_axum::{generate_route_list, LeptosRoutes, ResponseOptions};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// What every handler can reach: one allocation shared by every request. axum clones the
/// state for each extractor and middleware that asks for it, several times a request, and
/// cloning the fields themselves (the Leptos options' strings, a dozen reference counts) took
/// about 9% of the workers' CPU per publish request.
#[derive(Clone)]
pub(crate) struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What the Leptos routes render pages with.
impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos_options.clone()
    }
}

/// What the site's files are served from.
impl FromRef<AppState> for Arc<assets::Assets> {
    fn from_ref(state: &AppState) -> Self {
        state.assets.clone()
    }
}

/// The state's fields, behind the one [`AppState`] handle.
pub(crate) struct Shared {
    pub(crate) leptos_options: LeptosOptions,
    /// The site's build, at the address `leptos_options.site_pkg_dir` names.
    pub(crate) assets: Arc<assets::Assets>,
    /// What topics are, and the writes that change them.
    pub(crate) engine: Arc<dyn Engine>,
    /// Who on this instance follows which topic and board.
    pub(crate) hub: Arc<Hub>,
    /// The boards, as their files last parsed.
    pub(crate) boards: Arc<Library>,
    /// Who may write the boards' notes, and the writes that keep them.
    pub(crate) notes: Arc<Notes>,
    /// Turns true when the server is stopping, so open sockets close instead of holding it up.
    pub(crate) shutdown: watch::Receiver<bool>,
    /// Changes when a key goes out of force or the server starts stopping (see
    /// [`endings`]).
    pub(crate) endings: watch::Receiver<()>,
    pub(crate) heartbeat: session::Heartbeat,
    /// Clients told of a restart reconnect at a random moment within this.
    pub(crate) reconnect_spread: Duration,
    /// Origins besides the server's own whose pages may open `/ws`.
    pub(crate) allowed_origins: Arc<[String]>,
    pub(crate) limits: socket::Limits,
    /// How large a request body may be, and how long it may take to arrive.
    pub(crate) bodies: bodies::BodyLimits,
    pub(crate) keyring: Arc<Keyring>,
    /// Requests and connections per address and key.
    pub(crate) guard: Arc<limits::Guard>,
    /// CSP `frame-ancestors`: who may frame the pages.
    pub(crate) frame_ancestors: Arc<str>,
    /// What the admin view and the board list show of the running system.
    pub(crate) admin: Arc<Admin>,
    /// The hooks the sources directory holds, and their delivery logs.
    pub(crate) hooks: Arc<crate::ingest::hooks::Hooks>,
    /// One permit per long poll that may wait at once (`long_polls`).
    pub(crate) long_polls: Arc<tokio::sync::Semaphore>,
}

pub(crate) fn router(state: AppState) -> Router {
    let routes = generate_route_list(App);
    let options = state.leptos_options.clone();
    // Pages read the boards while they render, and check who is asking.
    let boards = state.boards.clone();
    let admin = state.admin.clone();
    let ancestors = state.frame_ancestors.clone();
    let public = state.assets.public_files();
    let site = public.iter().fold(
        Router::new().route(&state.assets.route(), get(assets::serve)),
        |site, path| site.route(path, get(assets::serve_public)),
    );
    site.route("/ws", get(socket::upgrade))
        .route("/sse", get(sse::stream))
        .route("/login", get(login::form).post(login::login))
        .route("/logout", axum::routing::post(login::logout))
        .route("/admin/live", get(admin::live))
        .route("/healthz", get(api::health))
        .route("/metrics", get(api::metrics))
        .nest("/api/v1", api::routes(state.limits.max_body))
        .merge(influx::routes(state.limits.max_body))
        .leptos_routes_with_context(
            &state,
            routes,
            move || {
                provide_context(boards.clone());
                provide_context(admin.clone());
                page_context(&ancestors);
            },
            move || shell(options.clone()),
        )
        .fallback(leptos_axum::file_and_error_handler::<AppState, _>(shell))
        .layer(from_fn_with_state(state.clone(), limits::requests))
        // Outside the limits, which count a request by its key.
        .layer(from_fn_with_state(state.clone(), caller::identify))
        // Outside every early refusal, so each leaves the connection usable.
        .layer(from_fn_with_state(state.bodies, bodies::read_out))
        // Outside the body limits, whose refusals it puts in the hook's delivery log.
        .layer(from_fn_with_state(state.clone(), hooks::log_early_refusals))
        .layer(from_fn_with_state(
            state.frame_ancestors.clone(),
            headers::secure,
        ))
        .with_state(state)
}

/// For each page render: who is asking (a private board shows only to a caller who may read
/// it; a link's `token` that is not in force counts as no credential), and the page's CSP
/// with the nonce Leptos put on its inline scripts.
fn page_context(ancestors: &str) {
    if let Some(parts) = use_context::<Parts>() {
        let caller = caller::Identified::of(&parts).unwrap_or_default();
        // A browser without a guest id gets one with its first page, before its socket.
        let new_guest = caller.is_anonymous() && caller::guest_id(&parts.headers).is_none();
        if let (true, Some(response)) = (new_guest, use_context::<ResponseOptions>()) {
            let cookie = caller::new_guest_cookie(&parts.headers);
            if let Some(value) = cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
                response.append_header(header::SET_COOKIE, value);
            }
        }
        provide_context(caller);
    }
    if let (Some(nonce), Some(response)) = (use_nonce(), use_context::<ResponseOptions>()) {
        let policy = headers::page_policy(&nonce.to_string(), ancestors);
        if let Ok(value) = HeaderValue::from_str(&policy) {
            response.insert_header(header::CONTENT_SECURITY_POLICY, value);
        }
        // Rendered afresh each time, with a new nonce: a screen's reload asks again.
        response.insert_header(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    }
}

/// Opens the engine, binds the listener, starts the demo feed if configured, and serves until
/// SIGINT/SIGTERM. Then it stops accepting, tells every socket to reconnect later (each with
/// its own random delay) and closes it, lets open requests finish, closes the engine, and is
/// gone within `shutdown_grace` of the signal.
pub async fn run(config: Config, audit: AuditTrail) -> std::io::Result<()> {
    let started_ms = crate::clock::now_ms();
    let metrics = Arc::new(Metrics::default());
    let engine = open_engine(&config, metrics.clone())
        .await
        .map_err(std::io::Error::other)?;
    let hub = Hub::new(
        config.queue_limits(),
        config.presence(),
        engine.clone(),
        metrics.clone(),
    );
    let notes = Arc::new(Notes {
        engine: engine.clone(),
        settings: config.notes(),
    });
    let (stop, shutdown) = watch::channel(false);
    let boards = Arc::new(Library::open(config.boards.clone(), config.demo));
    let keyring =
        keyring::open(&config.data_dir, &config.redis_url).map_err(std::io::Error::other)?;
    let keyring = Arc::new(keyring);
    let (endings_now, endings) = watch::channel(());
    let (boards_changed, board_changes) = watch::channel(0u64);
    let relay = tokio::spawn(endings::relay(
        keyring.narrowings(),
        board_changes,
        shutdown.clone(),
        endings_now,
        {
            let (hub, boards, keyring) = (hub.clone(), boards.clone(), keyring.clone());
            move || narrow(&hub, &boards, &keyring)
        },
    ));
    let sources = Arc::new(crate::ingest::schedule::Status::default());
    let hooks = Arc::new(crate::ingest::hooks::Hooks::default());
    let admin = Admin::new(
        hub.clone(),
        keyring.clone(),
        boards.clone(),
        audit,
        sources.clone(),
        hooks.clone(),
    );
    let gathering = tokio::spawn(crate::admin::keep_current(
        admin.clone(),
        engine.clone(),
        started_ms,
    ));
    let guard = limits::Guard::new(config.client_limits(), metrics.clone());
    let reloading = tokio::spawn(reload_boards(
        boards.clone(),
        hub.clone(),
        keyring.clone(),
        boards_changed,
    ));
    let mut leptos_options = config.leptos_options();
    let assets = assets::Assets::open(&leptos_options.site_root, &leptos_options.site_pkg_dir);
    leptos_options.site_pkg_dir = assets.address().into();
    let state = AppState(Arc::new(Shared {
        leptos_options,
        assets,
        engine: engine.clone(),
        hub: hub.clone(),
        boards,
        notes,
        shutdown,
        endings,
        heartbeat: config.heartbeat(),
        reconnect_spread: Duration::from_secs(config.reconnect_spread),
        allowed_origins: config.allowed_origins.clone().into(),
        limits: config.limits(),
        bodies: config.body_limits(),
        keyring: keyring.clone(),
        guard: guard.clone(),
        frame_ancestors: headers::frame_ancestors(&config.frame_ancestors),
        admin,
        hooks: hooks.clone(),
        long_polls: Arc::new(tokio::sync::Semaphore::new(config.long_polls)),
    }));
    let grace = Duration::from_secs(config.shutdown_grace);
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    // Tests and scripts read this line to learn the port when `listen` ends in :0.
    tracing::info!("listening on http://{}", listener.local_addr()?);
    let expiry = tokio::spawn(expire_entities(engine.clone()));
    let health = tokio::spawn(watch_health(engine.clone(), hub.clone()));
    let upkeep = tokio::spawn(keep_access_current(keyring, guard.clone()));
    let demo = config
        .demo
        .then(|| tokio::spawn(crate::demo::run(engine.clone())));
    let source_files = crate::ingest::files::SourceFiles::open(&config.sources);
    // Before the first request: a delivery that arrives as the server starts finds its hook.
    hooks.replace(&source_files.current().hooks);
    let pulling = tokio::spawn(crate::ingest::schedule::run(
        config.sources(),
        source_files,
        engine.clone(),
        metrics.clone(),
        sources,
        hooks,
    ));
    let mut stopping = stop.subscribe();
    let signalled = Arc::new(std::sync::OnceLock::new());
    let server = listener::serve(listener, router(state), guard.clone(), config.timeouts(), {
        let signalled = signalled.clone();
        async move {
            shutdown_signal().await;
            let _ = signalled.set(tokio::time::Instant::now());
            let _ = stop.send(true);
        }
    });
    let deadline = async {
        let _ = stopping.wait_for(|stop| *stop).await;
        tokio::time::sleep(grace).await;
    };
    // The HTTP server is done once its requests are; sockets and streams run in tasks of
    // their own, still telling their clients to come back later. Exiting before they have
    // would drop some connections without the word.
    let connections = guard.clone();
    let finished = async move {
        server.await;
        connections.until_all_closed().await;
    };
    tokio::select! {
        () = finished => {},
        _ = deadline => tracing::warn!("open requests and connections did not finish in {grace:?}; exiting"),
    }
    expiry.abort();
    gathering.abort();
    health.abort();
    upkeep.abort();
    reloading.abort();
    relay.abort();
    if let Some(demo) = demo {
        demo.abort();
    }
    pulling.abort();
    // The engine gets what is left of the grace, and at least a second; acknowledged writes
    // are committed already, so cutting it short loses none.
    let left = signalled
        .get()
        .map_or(grace, |at: &tokio::time::Instant| {
            grace.saturating_sub(at.elapsed())
        })
        .max(Duration::from_secs(1));
    if tokio::time::timeout(left, engine.close()).await.is_err() {
        tracing::warn!("the engine did not close in {left:?}; exiting");
    }
    Ok(())
}

/// The engine `redis_url` asks for: Redis, shared by every instance that names it, or this
/// instance's own SQLite file under `data_dir`.
async fn open_engine(
    config: &Config,
    metrics: Arc<Metrics>,
) -> Result<Arc<dyn Engine>, EngineError> {
    if config.redis_url.is_empty() {
        let store = SqliteStore::open(&config.data_dir, config.fsync)
            .map_err(|e| EngineError::Failed(e.to_string()))?;
        let engine = Embedded::open(config.retention(), Arc::new(store), metrics)?;
        return Ok(Arc::new(engine));
    }
    let engine = RedisEngine::open(&config.redis_url, config.retention(), metrics).await?;
    tracing::info!("topics are in Redis, shared by every instance that uses it");
    Ok(Arc::new(engine))
}

/// Re-reads the boards directory every [`POLL`]. When boards changed, first stops sending
/// anyone what they may no longer read ([`narrow`]), then shows each changed board to its
/// viewers, then has every connection check what it follows (`changed`).
async fn reload_boards(
    boards: Arc<Library>,
    hub: Arc<Hub>,
    keyring: Arc<Keyring>,
    changed: watch::Sender<u64>,
) {
    loop {
        tokio::time::sleep(POLL).await;
        let scan = boards.clone();
        let changes = tokio::task::spawn_blocking(move || scan.rescan())
            .await
            .unwrap_or_default();
        if changes.is_empty() {
            continue;
        }
        narrow(&hub, &boards, &keyring);
        for (name, view) in changes {
            tracing::info!(board = %name, revision = view.revision, "board file changed");
            hub.show_board(&name, view);
        }
        changed.send_modify(|count| *count += 1);
    }
}

/// Has the hub stop sending every connection what its caller, as they stand now, may no
/// longer read: after a board file changed, or a key or session changed.
fn narrow(hub: &Hub, boards: &Library, keyring: &Keyring) {
    hub.enforce(
        |caller, topic| {
            keyring
                .current(caller)
                .is_some_and(|caller| caller.may_read_topic(boards, topic))
        },
        |caller, board| {
            keyring
                .current(caller)
                .is_some_and(|caller| caller.may_see(boards, board))
        },
    );
}

/// Re-reads the keyring every [`REFRESH`], so keys made or revoked from the command line
/// count within a second, and lets the rate limiters forget clients gone quiet.
async fn keep_access_current(keyring: Arc<Keyring>, guard: Arc<limits::Guard>) {
    let mut tick = tokio::time::interval(REFRESH);
    let mut ticks: u64 = 0;
    loop {
        tick.tick().await;
        let reading = keyring.clone();
        match tokio::task::spawn_blocking(move || reading.refresh()).await {
            Ok(Err(e)) => tracing::error!("reading the keyring: {e}"),
            Err(e) => tracing::error!("reading the keyring: {e}"),
            Ok(Ok(())) => {}
        }
        ticks += 1;
        if ticks.is_multiple_of(60) {
            guard.forget_idle();
        }
    }
}

/// Asks the engine every second whether it can serve, and has the hub tell every page when
/// that changes.
async fn watch_health(engine: Arc<dyn Engine>, hub: Arc<Hub>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let health = engine.health().await;
        hub.engine_health(health.err().map(|e| e.to_string()));
    }
}

/// Deletes entities whose TTL ran out, checking every quarter second.
async fn expire_entities(engine: Arc<dyn Engine>) {
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tick.tick().await;
        if let Err(e) = engine.expire_due().await {
            tracing::error!("expiring entities: {e}");
        }
    }
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("a SIGTERM handler can be installed");
    tokio::select! {
        _ = interrupt => {},
        _ = terminate.recv() => {},
    }
    tracing::info!("shutting down");
}
