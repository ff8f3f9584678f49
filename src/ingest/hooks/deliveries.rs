//! Each hook's last [`KEPT`] deliveries on this instance, newest first: when, whether it was
//! verified (and why not), what event it was, and what it wrote or why it wrote nothing. The
//! first thing anyone setting up a webhook looks at, as GitHub's own settings page shows it.

use crate::ops::TopicOps;
use parking_lot::Mutex;
use serde::Serialize;
use std::collections::{HashMap, VecDeque};

/// Deliveries kept per hook.
pub(crate) const KEPT: usize = 50;

/// One delivery, as the log shows it.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub(crate) struct Delivery {
    /// When it arrived, ms since the Unix epoch.
    pub(crate) at_ms: u64,
    /// The sender's id for it (GitHub's `X-GitHub-Delivery`), if it gave one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) id: Option<String>,
    /// The event, as the sender names it (`push`, `firing`), if known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) event: Option<String>,
    /// The HTTP status it was answered with.
    pub(crate) status: u16,
    /// Whether it proved who sent it.
    pub(crate) verified: bool,
    /// A dry run: mapped, not applied.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub(crate) dry_run: bool,
    /// What it wrote (or, in a dry run, would write).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) writes: Vec<TopicOps>,
    /// Why it was refused or wrote nothing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) error: Option<String>,
}

#[derive(Default)]
pub(crate) struct Deliveries {
    by_hook: Mutex<HashMap<String, VecDeque<Delivery>>>,
}

impl Deliveries {
    pub(crate) fn record(&self, hook: &str, delivery: Delivery) {
        let mut by_hook = self.by_hook.lock();
        let log = by_hook.entry(hook.to_owned()).or_default();
        log.push_front(delivery);
        log.truncate(KEPT);
    }

    /// A hook's deliveries, newest first.
    pub(crate) fn of(&self, hook: &str) -> Vec<Delivery> {
        self.by_hook
            .lock()
            .get(hook)
            .map(|log| log.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Forgets the hooks not in `names` (their files are gone).
    pub(crate) fn keep_only(&self, names: &[&str]) {
        self.by_hook
            .lock()
            .retain(|hook, _| names.contains(&hook.as_str()));
    }
}
