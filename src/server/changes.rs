//! `GET /api/v1/topics/{topic}/changes`: the sync rule over plain HTTP, for proxies that
//! break both WebSocket and event streams, and for scripts that want "what changed since".
//!
//! A request holds a position (`after=EPOCH.OFFSET`). It is answered at once with the
//! events after it when there are any, with a snapshot when its events are gone (another
//! epoch, older than the history, or ahead of the topic), or else after waiting up to
//! `wait` seconds for the next event (a long poll). The frames are those `/ws` sends,
//! found the same way: the request is a short-lived connection on the hub that subscribes
//! with `resume` and reads its queue, so both engines, the history, coalescing and the
//! topic's marks behave exactly as they do for a socket.
//!
//! Waiting requests are bounded twice: per address, with the `/ws` and `/sse` connections
//! (`connections_per_ip`), and in all (`long_polls`); past either the answer is a refusal
//! with `Retry-After`, never a queue.

use super::caller::refuse;
use super::endings::Endings;
use super::error::{topic_name, ApiError, Code};
use super::session::Session;
use super::AppState;
use crate::access::Caller;
use crate::encoded::EncodedFrame;
use crate::protocol::{Position, TopicRequest};
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::FutureExt;
use serde::Deserialize;
use std::borrow::Cow;
use std::net::SocketAddr;
use std::time::Duration;

/// The longest a request may wait: below the minute most proxies and load balancers allow
/// an idle response.
pub(crate) const MAX_WAIT_SECONDS: u64 = 55;

/// An answer stops taking frames past this many bytes of them; the client asks again from
/// the position it reached.
const MAX_ANSWER_BYTES: usize = 1 << 20;

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct Asked {
    /// The position the client holds, `EPOCH.OFFSET`; without it, a snapshot.
    after: Option<String>,
    /// Seconds to wait for the next event when nothing follows `after` yet (0 to 55; 0, the
    /// default, answers at once).
    wait: Option<u64>,
}

/// The events after a position, a snapshot, or (after up to `wait` seconds) nothing.
#[utoipa::path(
    get,
    path = "/api/v1/topics/{topic}/changes",
    params(("topic" = String, Path, description = "e.g. metric:signups"), Asked),
    responses(
        (status = 200, description = "`{\"topic\", \"epoch\", \"offset\", \"frames\": [...]}`: the frames `/ws` would send (`snapshot`, `event`, `coalesced`, `stale`, `fresh`), and the position they lead to, which is the next request's `after`"),
        (status = 400, description = "a bad topic name, `after` or `wait`", body = ApiError),
        (status = 401, description = "the topic is on no public board, and no key was sent", body = ApiError),
        (status = 403, description = "the key may not read the topic", body = ApiError),
        (status = 429, description = "this address has `connections_per_ip` connections open", body = ApiError),
        (status = 503, description = "`long_polls` requests are waiting already, or the engine cannot be reached", body = ApiError),
    )
)]
pub(crate) async fn changes(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    caller: Caller,
    Path(topic): Path<String>,
    Query(asked): Query<Asked>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    topic_name(&topic, "topic")?;
    let after = asked.after.as_deref().map(parse_position).transpose()?;
    let wait = asked.wait.unwrap_or(0);
    if wait > MAX_WAIT_SECONDS {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            Code::InvalidRequest,
            format!("wait is at most {MAX_WAIT_SECONDS} seconds"),
        )
        .field("wait"));
    }
    if !caller.may_read_topic(&state.boards, &topic) {
        return Err(refuse(
            &caller,
            "/api/v1/topics",
            &format!("read `{topic}`"),
        ));
    }
    let ip = state.guard.client_ip(peer, &headers);
    let Some(_slot) = state.guard.open_connection(ip) else {
        return Ok(state
            .guard
            .too_many_connections(ip, "/api/v1/topics/{topic}/changes"));
    };
    let Ok(_waiter) = state.long_polls.clone().try_acquire_owned() else {
        let mut refused = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            Code::TooManyWaiters,
            "the server has as many long polls waiting as it takes (`long_polls`); retry shortly",
        )
        .into_response();
        let retry = HeaderValue::from(1 + fastrand::u64(0..4));
        refused.headers_mut().insert(header::RETRY_AFTER, retry);
        return Ok(refused);
    };

    let endings = Endings::new(&state, &caller);
    let (mut session, inbox) = Session::open(&state, caller, None, false);
    let request = TopicRequest {
        topic: topic.clone(),
        resume: after,
    };
    let subscribed = session.subscribe(vec![request]).await;
    if !subscribed.unavailable.is_empty() {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            Code::StoreUnavailable,
            format!("`{topic}` cannot be read now; retry shortly"),
        ));
    }
    let mut answer = Answer {
        position: after,
        replaying: after.is_some(),
        frames: Vec::new(),
        changes: false,
        bytes: 0,
    };
    let waiting = Waiting {
        session: &session,
        inbox: &inbox,
        endings,
        until: tokio::time::Instant::now() + Duration::from_secs(wait),
    };
    waiting.fill(&mut answer).await;
    Ok(answer.into_response(&topic))
}

/// One request's wait on its queue.
struct Waiting<'a> {
    session: &'a Session,
    inbox: &'a crate::hub::outbox::Inbox,
    /// Ends the wait when the server stops or the caller's access changes: the next request
    /// is checked afresh.
    endings: Endings,
    until: tokio::time::Instant,
}

impl Waiting<'_> {
    /// Takes frames until the answer is ready: a snapshot, the end of a replay that had
    /// events, or the first live event (with whatever is queued behind it); or until the wait
    /// is over.
    async fn fill(mut self, answer: &mut Answer) {
        let hub = &self.session.hub;
        let id = self.session.id;
        loop {
            let frame = tokio::select! {
                biased;
                _ = self.endings.next() => return,
                frame = hub.next_frame(id, self.inbox) => frame,
                _ = tokio::time::sleep_until(self.until) => return,
            };
            if answer.take(frame) {
                break;
            }
        }
        // What is queued already goes in the same answer.
        while answer.bytes < MAX_ANSWER_BYTES {
            match hub.next_frame(id, self.inbox).now_or_never() {
                Some(frame) => {
                    answer.take(frame);
                }
                None => return,
            }
        }
    }
}

/// The frames an answer carries, and where they lead.
struct Answer {
    position: Option<Position>,
    /// Replaying the events after `after`: the answer waits for the replay's end.
    replaying: bool,
    frames: Vec<EncodedFrame>,
    /// A frame that moves the topic is among them.
    changes: bool,
    bytes: usize,
}

/// What the answer needs of a frame: its type and, for those that move the topic, where to.
#[derive(Deserialize)]
struct FrameHead<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    epoch: Option<u64>,
    offset: Option<u64>,
}

impl Answer {
    /// Adds one frame; true once the answer should go.
    fn take(&mut self, frame: EncodedFrame) -> bool {
        let Ok(head) = serde_json::from_str::<FrameHead>(frame.as_str()) else {
            return false;
        };
        let moved = match (head.epoch, head.offset) {
            (Some(epoch), Some(offset)) => Some(Position { epoch, offset }),
            _ => None,
        };
        let ready = match head.kind.as_ref() {
            "snapshot" | "coalesced" => {
                self.replaying = false;
                true
            }
            "event" => !self.replaying || self.bytes >= MAX_ANSWER_BYTES,
            // The replay is over: there is something to answer if it had events.
            "resumed" => {
                self.replaying = false;
                self.position = moved.or(self.position);
                return self.changes;
            }
            // A topic's mark goes with the answer, but does not end the wait: it is sent
            // again to every request while it holds.
            "stale" | "fresh" => false,
            _ => return false,
        };
        if head.kind != "stale" && head.kind != "fresh" {
            self.position = moved.or(self.position);
            self.changes = true;
        }
        self.bytes += frame.len();
        self.frames.push(frame);
        ready
    }

    fn into_response(self, topic: &str) -> Response {
        let position = self.position.unwrap_or_default();
        let mut body = String::with_capacity(self.bytes + 128);
        body.push_str(r#"{"topic":"#);
        body.push_str(&serde_json::to_string(topic).unwrap_or_default());
        body.push_str(&format!(
            r#","epoch":{},"offset":{},"frames":["#,
            position.epoch, position.offset
        ));
        for (i, frame) in self.frames.iter().enumerate() {
            if i > 0 {
                body.push(',');
            }
            body.push_str(frame.as_str());
        }
        body.push_str("]}");
        (
            [
                (header::CONTENT_TYPE, "application/json"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            body,
        )
            .into_response()
    }
}

/// `1763805600000.1291`
fn parse_position(text: &str) -> Result<Position, ApiError> {
    let parsed = text.split_once('.').and_then(|(epoch, offset)| {
        Some(Position {
            epoch: epoch.parse().ok()?,
            offset: offset.parse().ok()?,
        })
    });
    parsed.ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            Code::InvalidPosition,
            format!("`{text}` is not a position: write EPOCH.OFFSET, e.g. 1763805600000.1291"),
        )
        .field("after")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoded::encode;
    use crate::protocol::{Event, Resumed, ServerFrame, Snapshot};

    fn event(offset: u64) -> EncodedFrame {
        encode(&ServerFrame::Event(Event {
            topic: "t".into(),
            epoch: 7,
            offset,
            event: "UPDATED".to_owned().into(),
            entity_id: "a".into(),
            payload: serde_json::json!(offset),
            ts: String::new(),
            user_id: None,
            trace_id: None,
        }))
    }

    fn resumed(offset: u64, replayed: u64) -> EncodedFrame {
        encode(&ServerFrame::Resumed(Resumed {
            topic: "t".into(),
            epoch: 7,
            offset,
            replayed,
        }))
    }

    fn answer(after: Option<Position>) -> Answer {
        Answer {
            position: after,
            replaying: after.is_some(),
            frames: Vec::new(),
            changes: false,
            bytes: 0,
        }
    }

    #[test]
    fn a_replay_with_events_is_answered_at_its_end() {
        let mut answer = answer(Some(Position {
            epoch: 7,
            offset: 3,
        }));
        assert!(!answer.take(event(4)));
        assert!(!answer.take(event(5)));
        assert!(answer.take(resumed(5, 2)));
        assert_eq!(
            answer.position,
            Some(Position {
                epoch: 7,
                offset: 5
            })
        );
        assert_eq!(answer.frames.len(), 2, "`resumed` is not passed on");
    }

    #[test]
    fn an_empty_replay_waits_for_the_next_event() {
        let mut answer = answer(Some(Position {
            epoch: 7,
            offset: 5,
        }));
        assert!(!answer.take(resumed(5, 0)));
        assert!(answer.take(event(6)));
        assert_eq!(
            answer.position,
            Some(Position {
                epoch: 7,
                offset: 6
            })
        );
    }

    #[test]
    fn a_snapshot_is_answered_at_once() {
        let mut answer = answer(None);
        let snapshot = encode(&ServerFrame::Snapshot(Snapshot {
            topic: "t".into(),
            epoch: 8,
            offset: 0,
            state: Default::default(),
            changed: Default::default(),
        }));
        assert!(answer.take(snapshot));
        assert_eq!(
            answer.position,
            Some(Position {
                epoch: 8,
                offset: 0
            })
        );
        let body = answer.into_response("t");
        assert_eq!(body.status(), StatusCode::OK);
    }

    #[test]
    fn positions_are_epoch_dot_offset() {
        assert_eq!(
            parse_position("17.1291").unwrap(),
            Position {
                epoch: 17,
                offset: 1291
            }
        );
        assert!(parse_position("17").is_err());
        assert!(parse_position("a.b").is_err());
        assert!(parse_position("17.-1").is_err());
    }
}
