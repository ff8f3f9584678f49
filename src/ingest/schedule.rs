//! When each source runs, and what became of it. One task per source: it runs, writes what
//! changed, marks its topic as not updating while it fails (and as updating once it does not),
//! then sleeps its period — longer after failures, doubling up to eight periods (and at most
//! five minutes more than one), so a source that is down is not hammered. Every run has its
//! source's timeout; at most `in_flight` runs are in progress at once, so a hundred slow
//! sources cannot take every connection; a slow source delays nobody else's schedule.
//!
//! With several instances each source is run by the one holding its lease
//! ([`Engine::lease`]); the others stand by, asking again a few times per lease term, and one
//! of them takes over within a term of the holder's last renewal.
//!
//! The directory is polled like the boards': a source added starts, one removed stops (its
//! topic's mark is cleared), one changed starts again as written now.

use super::changes::{ops_for, Wanted};
use super::fetch::{fetch, shorten};
use super::files::{Catalog, Mistake, SourceFiles};
use super::hooks::Hooks;
use super::{Kind, Source};
use crate::clock::now_ms;
use crate::engine::Engine;
use crate::metrics::Metrics;
use crate::ops::Publish;
use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

/// How often the directory is checked for changed files.
const POLL: Duration = Duration::from_millis(500);
/// The longest a failing source waits beyond its period.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// How sources run on this instance.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    /// The sources directory; empty for none.
    pub(crate) dir: PathBuf,
    /// Runs in progress at once, across all sources.
    pub(crate) in_flight: usize,
    /// How long a lease lasts without renewal (with several instances).
    pub(crate) lease: Duration,
}

/// What one run came to.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Outcome {
    /// It wrote this many events.
    Changed(usize),
    /// The topic already was what the answer says: nothing written.
    Unchanged,
    /// Why it failed; its topic is marked with this.
    Failed(String),
}

impl Outcome {
    fn label(&self) -> &'static str {
        match self {
            Self::Changed(_) => "changed",
            Self::Unchanged => "unchanged",
            Self::Failed(_) => "failed",
        }
    }
}

/// What `/admin` shows of a source.
#[derive(Clone, Debug)]
pub(crate) struct SourceReport {
    pub(crate) name: String,
    pub(crate) kind: &'static str,
    pub(crate) topic: String,
    pub(crate) origin: String,
    pub(crate) every: Duration,
    /// False while another instance holds its lease and runs it.
    pub(crate) runs_here: bool,
    /// When its last run here started (ms since the Unix epoch), how long it took, and
    /// what it came to.
    pub(crate) last_run_ms: Option<u64>,
    pub(crate) duration: Option<Duration>,
    pub(crate) outcome: Option<Outcome>,
    /// When it runs next (or asks for its lease again).
    pub(crate) next_run_ms: Option<u64>,
    /// Failed runs since it last succeeded.
    pub(crate) failures: u32,
}

/// Every source's report and the files' mistakes, for `/admin`.
#[derive(Default)]
pub(crate) struct Status {
    sources: Mutex<BTreeMap<String, SourceReport>>,
    mistakes: Mutex<Vec<Mistake>>,
}

impl Status {
    pub(crate) fn sources(&self) -> Vec<SourceReport> {
        self.sources.lock().values().cloned().collect()
    }

    pub(crate) fn mistakes(&self) -> Vec<Mistake> {
        self.mistakes.lock().clone()
    }

    fn update(&self, name: &str, change: impl FnOnce(&mut SourceReport)) {
        if let Some(report) = self.sources.lock().get_mut(name) {
            change(report);
        }
    }
}

/// What every source's task shares.
struct Shared {
    engine: Arc<dyn Engine>,
    metrics: Arc<Metrics>,
    status: Arc<Status>,
    client: reqwest::Client,
    slots: Semaphore,
    lease: Duration,
}

/// Runs the sources of the directory until dropped, keeping up with its files, and hands
/// its hooks to `hooks` each time they change.
pub(crate) async fn run(
    settings: Settings,
    mut files: SourceFiles,
    engine: Arc<dyn Engine>,
    metrics: Arc<Metrics>,
    status: Arc<Status>,
    hooks: Arc<Hooks>,
) {
    if settings.dir.as_os_str().is_empty() {
        return;
    }
    let client = reqwest::Client::builder()
        .user_agent(concat!("pulseboard/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("the HTTP client builds");
    let shared = Arc::new(Shared {
        engine,
        metrics,
        status,
        client,
        slots: Semaphore::new(settings.in_flight.max(1)),
        lease: settings.lease,
    });
    let mut running: HashMap<String, (Arc<Source>, Task)> = HashMap::new();
    let mut changed = true;
    loop {
        if changed {
            let Catalog {
                sources,
                hooks: taken,
                mistakes,
            } = files.current();
            *shared.status.mistakes.lock() = mistakes;
            hooks.replace(&taken);
            let wanted: HashMap<&str, &Arc<Source>> =
                sources.iter().map(|s| (s.name.as_str(), s)).collect();
            running.retain(|name, (source, _)| {
                let same = wanted
                    .get(name.as_str())
                    .is_some_and(|now| now.as_ref() == source.as_ref());
                if !same {
                    shared.status.sources.lock().remove(name);
                    let still_written = sources.iter().any(|s| s.topic == source.topic);
                    if !still_written {
                        let (engine, topic) = (shared.engine.clone(), source.topic.clone());
                        tokio::spawn(async move { engine.mark(&topic, None).await });
                    }
                    tracing::info!(source = %name, "source stopped: its file changed or is gone");
                }
                same
            });
            for source in sources {
                if running.contains_key(&source.name) {
                    continue;
                }
                shared.status.sources.lock().insert(
                    source.name.clone(),
                    SourceReport {
                        name: source.name.clone(),
                        kind: source.kind.type_name(),
                        topic: source.topic.clone(),
                        origin: source.origin.clone(),
                        every: source.every,
                        runs_here: false,
                        last_run_ms: None,
                        duration: None,
                        outcome: None,
                        next_run_ms: Some(now_ms()),
                        failures: 0,
                    },
                );
                tracing::info!(source = %source.name, topic = %source.topic, "source started");
                let task = Task(tokio::spawn(keep_running(source.clone(), shared.clone())));
                running.insert(source.name.clone(), (source, task));
            }
        }
        tokio::time::sleep(POLL).await;
        changed = files.rescan();
    }
}

/// A source's task, stopped when its source is.
struct Task(JoinHandle<()>);

impl Drop for Task {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One source's schedule, for as long as it runs.
async fn keep_running(source: Arc<Source>, shared: Arc<Shared>) {
    let mut failures: u32 = 0;
    // Unknown at first: a mark left by an earlier process (or instance) is set right by the
    // first run.
    let mut told: Option<Option<String>> = None;
    let lease_name = format!("source:{}", source.name);
    loop {
        let held = shared
            .engine
            .lease(&lease_name, shared.lease)
            .await
            .unwrap_or(false);
        if !held {
            let wait = (shared.lease / 4).max(Duration::from_millis(200));
            shared.status.update(&source.name, |report| {
                report.runs_here = false;
                report.next_run_ms = Some(now_ms() + wait.as_millis() as u64);
            });
            tokio::time::sleep(wait).await;
            continue;
        }
        let started_ms = now_ms();
        let started = Instant::now();
        let outcome = {
            let _slot = shared.slots.acquire().await;
            match tokio::time::timeout(source.timeout, run_once(&source, &shared)).await {
                Ok(outcome) => outcome,
                Err(_) => Outcome::Failed(format!(
                    "no answer within {}",
                    humantime::format_duration(source.timeout)
                )),
            }
        };
        let took = started.elapsed();
        let mark = match &outcome {
            Outcome::Failed(reason) => {
                failures += 1;
                Some(reason.clone())
            }
            _ => {
                failures = 0;
                let seconds = now_ms() as f64 / 1000.0;
                shared
                    .metrics
                    .source_last_success
                    .get_or_create(&vec![("source", source.name.clone())])
                    .set(seconds);
                None
            }
        };
        shared
            .metrics
            .source_runs
            .get_or_create(&vec![
                ("source", source.name.clone()),
                ("outcome", outcome.label().to_owned()),
            ])
            .inc();
        if told.as_ref() != Some(&mark) {
            match &mark {
                Some(reason) => {
                    tracing::warn!(source = %source.name, topic = %source.topic, "source failing: {reason}")
                }
                None if told.is_some() => {
                    tracing::info!(source = %source.name, "source runs again")
                }
                None => {}
            }
            if shared
                .engine
                .mark(&source.topic, mark.clone())
                .await
                .is_ok()
            {
                told = Some(mark);
            }
        }
        let wait = next_wait(source.every, failures);
        shared.status.update(&source.name, |report| {
            report.runs_here = true;
            report.last_run_ms = Some(started_ms);
            report.duration = Some(took);
            report.outcome = Some(outcome);
            report.failures = failures;
            report.next_run_ms = Some(now_ms() + wait.as_millis() as u64);
        });
        // Sleeps through the wait, renewing the lease as it goes, so a long period does not
        // let it lapse. Losing it (another instance took it) stops the wait.
        let until = tokio::time::Instant::now() + wait;
        loop {
            let left = until.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                break;
            }
            tokio::time::sleep(left.min(shared.lease / 3)).await;
            if tokio::time::Instant::now() >= until {
                break;
            }
            let renewed = shared.engine.lease(&lease_name, shared.lease).await;
            if !matches!(renewed, Ok(true)) {
                break;
            }
        }
    }
}

/// How long to wait before the next run: the period, or after failures longer, doubling up
/// to eight periods (at most [`MAX_BACKOFF`] beyond one), with a tenth of jitter so sources
/// that failed together do not all come back together.
fn next_wait(every: Duration, failures: u32) -> Duration {
    if failures == 0 {
        return every;
    }
    let factor = 1u32 << (failures - 1).min(3);
    let longest = every + MAX_BACKOFF;
    let wait = (every * factor).min(longest);
    wait + wait.mul_f64(fastrand::f64() / 10.0)
}

/// One run: ask, read the answer, write what changed.
async fn run_once(source: &Source, shared: &Shared) -> Outcome {
    match attempt(source, shared).await {
        Ok(0) => Outcome::Unchanged,
        Ok(events) => Outcome::Changed(events),
        // A jq error can quote the whole value it failed on: a screen shows the start.
        Err(reason) => Outcome::Failed(shorten(&reason)),
    }
}

async fn attempt(source: &Source, shared: &Shared) -> Result<usize, String> {
    let (request, who) = match &source.kind {
        Kind::Prometheus(query) => (
            query.request(&shared.client, now_ms()),
            "prometheus".to_owned(),
        ),
        Kind::Http(request) => {
            let host = reqwest::Url::parse(&request.url)
                .ok()
                .and_then(|url| url.host_str().map(str::to_owned))
                .unwrap_or_else(|| "the URL".into());
            (request.request(&shared.client, &source.headers), host)
        }
    };
    let request = source
        .headers
        .iter()
        .fold(request, |request, (name, value)| {
            request.header(name, value)
        });
    let answer = fetch(request, &who).await?;
    let kind = source.kind.clone();
    let wanted: Wanted = tokio::task::spawn_blocking(move || match kind {
        Kind::Prometheus(query) => query.read(&answer.body),
        Kind::Http(request) => request.read(&answer),
    })
    .await
    .map_err(|e| format!("reading the answer failed: {e}"))??;
    let current = shared
        .engine
        .snapshot(&source.topic)
        .await
        .map_err(|e| format!("cannot read topic {}: {e}", source.topic))?
        .map(|snapshot| snapshot.state)
        .unwrap_or_default();
    let mut events = 0;
    for ops in ops_for(wanted, &current)? {
        let publish = Publish {
            ops,
            user_id: Some(format!("source:{}", source.name)),
            trace_id: None,
        };
        let outcome = shared
            .engine
            .publish((source.topic.clone(), publish).into(), None)
            .await
            .map_err(|e| format!("writing topic {}: {e}", source.topic))?;
        events += outcome
            .answer
            .results
            .iter()
            .map(|published| published.offsets.len())
            .sum::<usize>();
    }
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_back_off_up_to_eight_periods() {
        let every = Duration::from_secs(10);
        assert_eq!(next_wait(every, 0), every);
        let waits: Vec<u64> = (1..=6).map(|n| next_wait(every, n).as_secs()).collect();
        for (wait, base) in waits.iter().zip([10, 20, 40, 80, 80, 80]) {
            assert!((base..=base + base / 10).contains(wait), "{waits:?}");
        }
        let hourly = Duration::from_secs(3600);
        assert!(next_wait(hourly, 5) <= (hourly + MAX_BACKOFF).mul_f64(1.1));
    }
}
