//! The admin view at `/admin`, for an admin session only: the instances and their health,
//! connections by transport and board, the topics, the boards and their files' problems, the
//! pull sources (each one's last run, outcome and next run) and their files' mistakes, the
//! keys and share links (made and revoked here), and the audit trail's recent lines.
//!
//! Server-rendered like every page but a board: none of it is in the board's WASM, which
//! every wall screen loads. `public/admin.js` redraws the live part from `/admin/live` (the
//! same [`AdminLive`], rendered alone) every second and makes and revokes keys through
//! `/api/v1/keys`, the admin session's cookie standing in for a key.

use super::library;
use crate::access::scope::Scope;
use crate::admin::{Admin, Overview};
use crate::clock::now_ms;
use crate::ingest::schedule::Outcome;
use leptos::either::Either;
use leptos::prelude::*;
use std::sync::Arc;

#[component]
pub(crate) fn AdminPage() -> impl IntoView {
    let caller = library::caller();
    let admin = use_context::<Arc<Admin>>();
    let (Some(admin), true) = (admin, caller.is_admin()) else {
        library::refuse(&caller);
        return Either::Left(view! {
            <main class="page">
                <h1>"The admin view is for admins"</h1>
                <p><a href="/login?next=/admin" rel="external">"Sign in"</a> " with an admin key."</p>
            </main>
        });
    };
    let overview = admin.overview();
    Either::Right(view! {
        <link rel="stylesheet" href="/pages.css"/>
        <main class="page admin">
            <header class="admin-head">
                <h1>"Pulseboard admin"</h1>
                <a href="/" rel="external">"Boards"</a>
                <form method="post" action="/logout"><button type="submit">"Sign out"</button></form>
            </header>
            <section aria-labelledby="make-key">
                <h2 id="make-key">"Make a key or a share link"</h2>
                <form id="admin-make-key" class="admin-form">
                    <label>"Name " <input name="name" required placeholder="lobby TV"/></label>
                    <label>
                        "Scopes "
                        <input name="scopes" required placeholder="read:lobby  or  publish:metric:*  or  admin"/>
                    </label>
                    <button type="submit">"Make it"</button>
                </form>
                <p class="admin-hint">
                    "A share link is a key with " <code>"read:<board>"</code>
                    ": its address opens that board without signing in. The secret is shown once."
                </p>
                <output id="admin-made" aria-live="polite"></output>
            </section>
            <div id="admin-live" aria-live="off">
                <AdminLive overview/>
            </div>
            <script src="/admin.js" defer></script>
        </main>
    })
}

/// The part of the view that follows the server, redrawn every second.
#[component]
pub(crate) fn AdminLive(overview: Overview) -> impl IntoView {
    let now = now_ms();
    let ago = move |ms: Option<u64>| ms.map_or("never".to_owned(), |ms| since(now, ms));
    let instances = overview
        .instances
        .into_iter()
        .map(|instance| {
            let name = if instance.instance.is_empty() {
                "this instance (the only one)".to_owned()
            } else {
                instance.instance.clone()
            };
            let health = instance.problem.clone().unwrap_or_else(|| "serving".into());
            let state = if instance.problem.is_some() {
                "admin-bad"
            } else {
                "admin-good"
            };
            view! {
                <tr>
                    <td>{name}</td>
                    <td>{instance.version}</td>
                    <td>{ago(Some(instance.started_ms))}</td>
                    <td class="num">{instance.websockets}</td>
                    <td class="num">{instance.streams}</td>
                    <td class=state>{health}</td>
                </tr>
            }
        })
        .collect_view();
    let (connections, streams) = overview.connections;
    let watched = overview
        .watched
        .into_iter()
        .map(|watched| {
            let href = format!("/b/{}", watched.board);
            let board = watched.board.clone();
            view! {
                <tr data-board=board>
                    <td><a href=href rel="external">{watched.board}</a></td>
                    <td class="num">{watched.people}</td>
                    <td class="num admin-pages">{watched.pages}</td>
                </tr>
            }
        })
        .collect_view();
    let topics = overview
        .topics
        .into_iter()
        .map(|row| {
            view! {
                <tr>
                    <td><code>{row.info.topic}</code></td>
                    <td class="num">{row.info.entities}</td>
                    <td class="num">{row.info.epoch}</td>
                    <td class="num">{row.info.offset}</td>
                    <td>{ago(row.info.changed_ms)}</td>
                    <td class="num">{row.subscribers}</td>
                    <td class="num">{format!("{:.1}", row.per_second)}</td>
                </tr>
            }
        })
        .collect_view();
    let boards = overview
        .boards
        .into_iter()
        .map(|board| {
            let href = format!("/b/{}", board.name);
            let access = if board.private { "private" } else { "public" };
            let file = format!("{}.toml", board.name);
            let problem = board.problem.unwrap_or_else(|| "—".into());
            view! {
                <tr>
                    <td><a href=href rel="external">{board.name}</a></td>
                    <td>{board.title.unwrap_or_default()}</td>
                    <td>{access}</td>
                    <td><code>{file}</code></td>
                    <td>{problem}</td>
                </tr>
            }
        })
        .collect_view();
    let sources = overview
        .sources
        .into_iter()
        .map(|source| {
            let (outcome, reason) = match &source.outcome {
                None => ("not run yet".to_owned(), String::new()),
                Some(Outcome::Changed(events)) => (format!("wrote {events} events"), String::new()),
                Some(Outcome::Unchanged) => ("unchanged".to_owned(), String::new()),
                Some(Outcome::Failed(reason)) => (
                    format!("failed ({} in a row)", source.failures),
                    reason.clone(),
                ),
            };
            let last = source
                .last_run_ms
                .map_or("—".to_owned(), |ms| since(now, ms));
            let took = source
                .duration
                .map_or("—".to_owned(), |d| format!("{} ms", d.as_millis()));
            let next = match (source.runs_here, source.next_run_ms) {
                (false, _) => "another instance runs it".to_owned(),
                (true, Some(ms)) => until(now, ms),
                (true, None) => "—".to_owned(),
            };
            let failed = matches!(source.outcome, Some(Outcome::Failed(_)));
            let name = source.name.clone();
            view! {
                <tr data-source=name class:failed=failed>
                    <td>{source.name}</td>
                    <td>{source.kind}</td>
                    <td><code>{source.topic}</code></td>
                    <td>{humantime::format_duration(source.every).to_string()}</td>
                    <td>{last}</td>
                    <td class="num">{took}</td>
                    <td>{outcome}</td>
                    <td>{reason}</td>
                    <td>{next}</td>
                    <td><code>{source.origin}</code></td>
                </tr>
            }
        })
        .collect_view();
    let source_mistakes = overview
        .source_mistakes
        .into_iter()
        .map(|mistake| view! { <li><code>{mistake.to_string()}</code></li> })
        .collect_view();
    let hooks = overview
        .hooks
        .into_iter()
        .map(|(hook, newest)| {
            let address = format!("/api/v1/hooks/{}", hook.name);
            let topics = hook.preset.topics().join(" ");
            let (last, outcome) = match newest {
                None => ("—".to_owned(), "no delivery yet".to_owned()),
                Some(delivery) => (
                    since(now, delivery.at_ms),
                    match delivery.error {
                        Some(error) => format!("{}: {error}", delivery.status),
                        None => format!(
                            "{} ({})",
                            delivery.status,
                            delivery.event.unwrap_or_default()
                        ),
                    },
                ),
            };
            let name = hook.name.clone();
            view! {
                <tr data-hook=name>
                    <td>{hook.name.clone()}</td>
                    <td>{hook.preset.type_name()}</td>
                    <td><code>{address}</code></td>
                    <td><code>{topics}</code></td>
                    <td>{last}</td>
                    <td>{outcome}</td>
                    <td><code>{hook.origin.clone()}</code></td>
                </tr>
            }
        })
        .collect_view();
    let (links, keys): (Vec<_>, Vec<_>) = overview.keys.into_iter().partition(|key| {
        key.scopes
            .iter()
            .all(|scope| matches!(scope, Scope::Read(board) if board != "*"))
    });
    let key_row = move |key: crate::access::keyring::KeyRecord, share: bool| {
        let scopes: Vec<String> = key.scopes.iter().map(ToString::to_string).collect();
        let boards: Vec<String> = key
            .scopes
            .iter()
            .filter_map(|scope| match scope {
                Scope::Read(board) => Some(format!("/b/{board}?token=…")),
                _ => None,
            })
            .collect();
        let revoke = key.revoked_ms.is_none().then(|| {
            view! { <button type="button" data-revoke=key.id.clone()>"Revoke"</button> }
        });
        let status = key.revoked_ms.map_or("in force".to_owned(), |ms| {
            format!("revoked {}", since(now, ms))
        });
        let id = key.id.clone();
        view! {
            <tr data-key=id>
                <td><code>{key.id}</code></td>
                <td>{key.name}</td>
                <td>{if share { boards.join(" ") } else { scopes.join(" ") }}</td>
                <td>{since(now, key.created_ms)}</td>
                <td>{status}</td>
                <td>{revoke}</td>
            </tr>
        }
    };
    let links = links
        .into_iter()
        .map(|key| key_row(key, true))
        .collect_view();
    let keys = keys
        .into_iter()
        .map(|key| key_row(key, false))
        .collect_view();
    let audit = overview
        .audit
        .into_iter()
        .map(|line| {
            view! {
                <tr>
                    <td>{crate::clock::iso8601(line.at_ms)}</td>
                    <td>{line.level}</td>
                    <td><code>{line.text}</code></td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <section aria-labelledby="instances">
            <h2 id="instances">"Instances"</h2>
            <Table heads=&["Instance", "Version", "Started", "WebSockets", "SSE streams", "Health"]>{instances}</Table>
        </section>
        <section aria-labelledby="connections">
            <h2 id="connections">"Connections"</h2>
            <p id="admin-connections">
                <span class="num">{connections}</span> " open here: "
                <span class="num">{connections.saturating_sub(streams)}</span> " WebSocket, "
                <span class="num">{streams}</span> " Server-Sent Events"
            </p>
            <Table heads=&["Board", "People (every instance)", "Pages here"]>{watched}</Table>
        </section>
        <section aria-labelledby="topics">
            <h2 id="topics">"Topics"</h2>
            <Table heads=&["Topic", "Entities", "Epoch", "Offset", "Last change", "Subscribers here", "Events/s"]>{topics}</Table>
        </section>
        <section aria-labelledby="boards">
            <h2 id="boards">"Boards"</h2>
            <Table heads=&["Board", "Title", "Access", "File", "Problem"]>{boards}</Table>
        </section>
        <section aria-labelledby="sources">
            <h2 id="sources">"Sources"</h2>
            <ul id="admin-source-mistakes" class="problems">{source_mistakes}</ul>
            <Table id="admin-sources" heads=&["Source", "Type", "Topic", "Every", "Last run", "Took", "Outcome", "Why", "Next run", "File"]>{sources}</Table>
            <h2 id="hooks">"Hooks"</h2>
            <p>"Each hook's last 50 deliveries: " <code>"GET /api/v1/hooks/{name}/deliveries"</code></p>
            <Table id="admin-hooks" heads=&["Hook", "Type", "Address", "Writes", "Last delivery", "Answer", "File"]>{hooks}</Table>
        </section>
        <section aria-labelledby="keys">
            <h2 id="keys">"Keys"</h2>
            <Table id="admin-keys" heads=&["Id", "Name", "Scopes", "Made", "Status", ""]>{keys}</Table>
            <h2 id="links">"Share links"</h2>
            <Table id="admin-links" heads=&["Id", "Name", "Opens", "Made", "Status", ""]>{links}</Table>
        </section>
        <section aria-labelledby="audit">
            <h2 id="audit">"Audit, newest first"</h2>
            <Table heads=&["When (UTC)", "Level", "What"]>{audit}</Table>
        </section>
    }
}

/// One of the view's tables: its column heads over the rows it is given.
#[component]
fn Table(
    heads: &'static [&'static str],
    #[prop(optional)] id: Option<&'static str>,
    children: Children,
) -> impl IntoView {
    let heads = heads
        .iter()
        .map(|head| view! { <th>{*head}</th> })
        .collect_view();
    view! {
        <table id=id>
            <thead><tr>{heads}</tr></thead>
            <tbody>{children()}</tbody>
        </table>
    }
}

/// How long after `now` a moment is.
fn until(now: u64, ms: u64) -> String {
    match ms.saturating_sub(now) / 1000 {
        0 => "now".into(),
        seconds @ 1..=119 => format!("in {seconds} s"),
        seconds => format!("in {} min", seconds / 60),
    }
}

/// How long before `now` a moment was, as a person reads it at a glance.
pub(crate) fn since(now: u64, ms: u64) -> String {
    let seconds = now.saturating_sub(ms) / 1000;
    match seconds {
        0..=1 => "just now".into(),
        2..=119 => format!("{seconds} s ago"),
        120..=7_199 => format!("{} min ago", seconds / 60),
        7_200..=172_799 => format!("{} h ago", seconds / 3600),
        _ => format!("{} days ago", seconds / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::since;

    #[test]
    fn a_moment_reads_in_the_unit_that_fits() {
        let now = 1_000_000_000;
        assert_eq!(since(now, now), "just now");
        assert_eq!(since(now, now - 42_000), "42 s ago");
        assert_eq!(since(now, now - 300_000), "5 min ago");
        assert_eq!(since(now, now - 3 * 3_600_000), "3 h ago");
        assert_eq!(since(now, now - 3 * 86_400_000), "3 days ago");
        assert_eq!(
            since(now, now + 5_000),
            "just now",
            "a clock a little ahead"
        );
    }
}
