//! Hooks: what other systems post when something happens (an alert fires, a branch is
//! pushed), taken as they send it and turned into ops. Each preset is a pure function from a
//! payload (and, where a repeat must change nothing, the topic's state now) to the writes it
//! makes; verifying who sent it and answering is the server's (`server/hooks.rs`).
//!
//! - [`alertmanager`]: Alertmanager's (and Grafana's) alert webhook → a light per firing
//!   alert and a feed item per transition;
//! - [`github`]: GitHub's events → feed items and a light per workflow and branch;
//! - [`gitlab`]: GitLab's, the same way;
//! - [`generic`]: any JSON and a jq `select`;
//! - [`deliveries`]: each hook's recent deliveries, for `/admin` and the API.

pub(crate) mod alertmanager;
pub(crate) mod deliveries;
pub(crate) mod generic;
pub(crate) mod github;
pub(crate) mod gitlab;

use super::jq::Selection;
use crate::ops::{Batch, Op, TopicOps};
use deliveries::Deliveries;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use parking_lot::RwLock;
use serde_json::Value;
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;

/// One `[[hook]]`, as its file describes it (secret filled in).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Hook {
    /// Unique among all the files: its address is `/api/v1/hooks/{name}`.
    pub(crate) name: String,
    /// What a sender proves it knows: GitHub signs with it, GitLab sends it, the others
    /// send it as a bearer token.
    pub(crate) secret: String,
    /// Deliveries a second, with bursts of twice that; past it, 429.
    pub(crate) per_second: NonZeroU32,
    pub(crate) preset: Preset,
    /// The file and line it was written at, for `/admin`.
    pub(crate) origin: String,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Preset {
    Alertmanager {
        status_topic: String,
        feed_topic: String,
    },
    Github {
        status_topic: String,
        feed_topic: String,
    },
    Gitlab {
        status_topic: String,
        feed_topic: String,
    },
    Generic {
        topic: String,
        selection: Selection,
    },
}

impl Preset {
    pub(crate) const TYPES: [&'static str; 4] = ["alertmanager", "github", "gitlab", "generic"];

    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            Self::Alertmanager { .. } => "alertmanager",
            Self::Github { .. } => "github",
            Self::Gitlab { .. } => "gitlab",
            Self::Generic { .. } => "generic",
        }
    }

    /// The topics its deliveries write.
    pub(crate) fn topics(&self) -> Vec<&str> {
        match self {
            Self::Alertmanager {
                status_topic,
                feed_topic,
            }
            | Self::Github {
                status_topic,
                feed_topic,
            }
            | Self::Gitlab {
                status_topic,
                feed_topic,
            } => vec![status_topic, feed_topic],
            Self::Generic { topic, .. } => vec![topic],
        }
    }

    /// The topics a preset writes when its file does not say.
    pub(crate) fn default_topics(kind: &str) -> (&'static str, &'static str) {
        match kind {
            "github" => ("status:github", "feed:github"),
            "gitlab" => ("status:gitlab", "feed:gitlab"),
            _ => ("status:alerts", "feed:alerts"),
        }
    }
}

/// What a delivery comes to: the writes it makes (none for a repeat, or an event the
/// preset does not show), and what it was, for the delivery log.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Mapped {
    pub(crate) writes: Vec<TopicOps>,
    /// Said instead of writing, when the preset does not show this event (`ping`, a label
    /// added to a pull request).
    pub(crate) ignored: Option<String>,
}

impl Mapped {
    /// Adds `ops` for `topic` (none: nothing).
    pub(crate) fn write(&mut self, topic: &str, ops: Vec<Op>) {
        if ops.is_empty() {
            return;
        }
        match self.writes.iter_mut().find(|w| w.topic == topic) {
            Some(write) => write.ops.extend(ops),
            None => self.writes.push(TopicOps {
                topic: topic.to_owned(),
                ops,
            }),
        }
    }

    pub(crate) fn ignored(why: impl Into<String>) -> Self {
        Self {
            writes: Vec::new(),
            ignored: Some(why.into()),
        }
    }

    /// The batch to publish, by `hook`: none if nothing is written.
    pub(crate) fn batch(&self, hook: &str) -> Option<Batch> {
        (!self.writes.is_empty()).then(|| Batch {
            writes: self.writes.clone(),
            user_id: Some(format!("hook:{hook}")),
            trace_id: None,
        })
    }
}

/// A feed item, keeping the feed's newest [`FEED_ITEMS`].
pub(crate) fn feed_item(kind: &str, text: String, url: Option<&str>) -> Op {
    let mut item = serde_json::json!({"kind": kind, "text": text});
    if let Some(url) = url {
        item["url"] = url.into();
    }
    Op::Push {
        payload: item,
        max: Some(FEED_ITEMS),
        ttl: None,
    }
}

/// The text at a JSON pointer of a payload, or why it is not the event it says it is.
pub(crate) fn text<'a>(payload: &'a Value, event: &str, pointer: &str) -> Result<&'a str, String> {
    payload
        .pointer(pointer)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("a {event} event without {pointer}"))
}

/// The text at a JSON pointer of a payload, if there is any.
pub(crate) fn optional<'a>(payload: &'a Value, pointer: &str) -> Option<&'a str> {
    payload.pointer(pointer).and_then(Value::as_str)
}

/// How many items a hook's feed keeps.
pub(crate) const FEED_ITEMS: usize = 100;

/// The hooks the sources directory holds now, each with what taking its deliveries needs,
/// and their delivery logs.
#[derive(Default)]
pub(crate) struct Hooks {
    current: RwLock<HashMap<String, Arc<Taken>>>,
    pub(crate) deliveries: Deliveries,
}

/// A hook being taken.
pub(crate) struct Taken {
    pub(crate) hook: Arc<Hook>,
    /// Its `per_second`, with bursts of twice that.
    pub(crate) limiter: DefaultDirectRateLimiter,
    /// One delivery at a time: a preset that reads its topic before it writes (a repeat
    /// must change nothing) sees the one before it applied.
    pub(crate) applying: tokio::sync::Mutex<()>,
}

impl Hooks {
    /// The hook named so, if there is one.
    pub(crate) fn get(&self, name: &str) -> Option<Arc<Taken>> {
        self.current.read().get(name).cloned()
    }

    /// Every hook, by name.
    pub(crate) fn list(&self) -> Vec<Arc<Hook>> {
        let mut hooks: Vec<Arc<Hook>> = self
            .current
            .read()
            .values()
            .map(|t| t.hook.clone())
            .collect();
        hooks.sort_by(|a, b| a.name.cmp(&b.name));
        hooks
    }

    /// Takes the hooks the files say now; one unchanged keeps its rate budget.
    pub(crate) fn replace(&self, hooks: &[Arc<Hook>]) {
        let mut current = self.current.write();
        let kept: HashMap<String, Arc<Taken>> = hooks
            .iter()
            .map(|hook| {
                let taken = match current.get(&hook.name) {
                    Some(taken) if taken.hook == *hook => taken.clone(),
                    _ => {
                        let burst = hook
                            .per_second
                            .saturating_mul(NonZeroU32::MIN.saturating_add(1));
                        Arc::new(Taken {
                            hook: hook.clone(),
                            limiter: RateLimiter::direct(
                                Quota::per_second(hook.per_second).allow_burst(burst),
                            ),
                            applying: tokio::sync::Mutex::new(()),
                        })
                    }
                };
                (hook.name.clone(), taken)
            })
            .collect();
        *current = kept;
        let names: Vec<&str> = hooks.iter().map(|h| h.name.as_str()).collect();
        self.deliveries.keep_only(&names);
    }
}
