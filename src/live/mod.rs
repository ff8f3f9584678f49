//! The browser's live state: a signal per topic holding its entities and position, the board's
//! presence, and the connection status. Frames from the socket update it through [`Live::apply`],
//! which enforces the sync rule: events apply only in offset order, duplicates are ignored,
//! and a gap asks for a fresh snapshot.
//!
//! The state types compile on both sides so the server can render the same (empty, skeleton)
//! first view the browser hydrates.

#[cfg(feature = "hydrate")]
pub mod socket;

use crate::protocol::{EventKind, Position, ServerFrame, TopicRequest};
use leptos::prelude::*;
use serde_json::Value;
use std::collections::BTreeMap;

/// What the connection indicator shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectionStatus {
    /// The first connection attempt is under way.
    Connecting,
    /// The socket is open and the board is current.
    Live,
    /// The connection dropped; retrying with backoff.
    Reconnecting,
    /// The browser reports no network; retrying when it returns.
    Offline,
}

impl ConnectionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connecting => "connecting",
            Self::Live => "live",
            Self::Reconnecting => "reconnecting",
            Self::Offline => "offline",
        }
    }
}

/// One topic as the browser holds it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TopicView {
    /// False until the first snapshot: widgets show skeletons.
    pub loaded: bool,
    pub epoch: u64,
    pub offset: u64,
    pub entities: BTreeMap<String, Value>,
}

/// Who is viewing the board.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PresenceView {
    pub known: bool,
    pub viewers: Vec<String>,
    /// This page's own viewer id.
    pub me: Option<String>,
    /// How many viewers have joined since this page loaded; each join restarts the pulse.
    pub joins: u32,
}

/// The result of applying one frame.
#[derive(Debug, PartialEq, Eq)]
pub enum Applied {
    Ok,
    /// The topic's events no longer follow on from what the page holds: subscribe again
    /// without a position to get a fresh snapshot.
    Resync(String),
}

/// The live state of one board page. Cheap to copy into closures.
#[derive(Clone, Copy)]
pub struct Live {
    pub status: RwSignal<ConnectionStatus>,
    pub presence: RwSignal<PresenceView>,
    /// True while the page applies a backlog (a snapshot, a long reconnect): widgets jump to
    /// the new state instead of animating every step of it.
    pub snap: RwSignal<bool>,
    topics: StoredValue<BTreeMap<String, RwSignal<TopicView>>>,
}

impl Live {
    pub fn new(topics: &[&str]) -> Self {
        Self {
            status: RwSignal::new(ConnectionStatus::Connecting),
            presence: RwSignal::new(PresenceView::default()),
            snap: RwSignal::new(false),
            topics: StoredValue::new(
                topics
                    .iter()
                    .map(|t| (t.to_string(), RwSignal::new(TopicView::default())))
                    .collect(),
            ),
        }
    }

    /// The signal of a topic this board shows.
    ///
    /// # Panics
    /// If the board did not list `topic` when it was created: a programming error.
    pub fn topic(&self, topic: &str) -> RwSignal<TopicView> {
        self.topics
            .with_value(|t| t.get(topic).copied())
            .unwrap_or_else(|| panic!("topic `{topic}` is not part of this board"))
    }

    /// What to send in a `subscribe` frame: every topic, resuming from where the page is.
    pub fn subscriptions(&self) -> Vec<TopicRequest> {
        self.topics.with_value(|topics| {
            topics
                .iter()
                .map(|(name, view)| TopicRequest {
                    topic: name.clone(),
                    resume: view.with_untracked(|v| {
                        v.loaded.then_some(Position {
                            epoch: v.epoch,
                            offset: v.offset,
                        })
                    }),
                })
                .collect()
        })
    }

    pub fn apply(&self, frame: ServerFrame) -> Applied {
        match frame {
            ServerFrame::Welcome(welcome) => {
                self.presence.update(|p| p.me = Some(welcome.connection));
            }
            ServerFrame::Snapshot(snapshot) => {
                if let Some(view) = self.find(&snapshot.topic) {
                    view.set(TopicView {
                        loaded: true,
                        epoch: snapshot.epoch,
                        offset: snapshot.offset,
                        entities: snapshot.state,
                    });
                }
            }
            ServerFrame::Event(event) => {
                let Some(view) = self.find(&event.topic) else {
                    return Applied::Ok;
                };
                let mut gap = false;
                view.maybe_update(|v| {
                    if !v.loaded || event.epoch != v.epoch || event.offset > v.offset + 1 {
                        gap = true;
                        return false;
                    }
                    if event.offset <= v.offset {
                        return false;
                    }
                    v.offset = event.offset;
                    match event.event {
                        EventKind::Deleted => v.entities.remove(&event.entity_id),
                        _ => v.entities.insert(event.entity_id, event.payload),
                    };
                    true
                });
                if gap {
                    return Applied::Resync(event.topic);
                }
            }
            ServerFrame::Resumed(_) | ServerFrame::Pong { .. } | ServerFrame::Ack(_) => {}
            ServerFrame::Presence(presence) => {
                self.presence.update(|p| {
                    p.known = true;
                    p.viewers = presence.viewers.into_iter().map(|v| v.id).collect();
                    if presence.joined.is_some() && presence.joined != p.me {
                        p.joins += 1;
                    }
                });
            }
            ServerFrame::Error(error) => {
                leptos::logging::warn!(
                    "server refused a frame: {:?}: {}",
                    error.code,
                    error.message
                );
            }
        }
        Applied::Ok
    }

    fn find(&self, topic: &str) -> Option<RwSignal<TopicView>> {
        self.topics.with_value(|t| t.get(topic).copied())
    }
}
