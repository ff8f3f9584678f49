//! `GET /sse`: the frames of `/ws`, as Server-Sent Events, for networks whose proxies block
//! WebSocket. The stream cannot carry the client's frames, so the address says what to
//! follow, and the server does what the client would: it joins the board, subscribes to every
//! topic the board reads, and follows the board's file as it changes.
//!
//! - `board=ops`: the board's definition, its presence, and its topics;
//! - `topics=metric:kpis,feed:activity`: more topics, or topics without a board;
//! - `from=metric:kpis=1763805600000.1291,…`: positions to resume from, as in `subscribe`;
//! - `person=…`: an anonymous client's id, as in `join` (a browser's guest cookie comes
//!   first: an id in an address ends up in proxies' logs).
//!
//! Every `snapshot` and `event` message carries `id:` with the position of every topic the
//! stream follows, in that same form, so the `Last-Event-ID` an `EventSource` sends on its own
//! reconnects (it takes precedence over `from`) resumes each topic exactly. A `pong` goes out
//! every heartbeat so a client can tell a quiet stream from a dead one.

use super::caller::{guest_id, refuse};
use super::endings::{Ending, Endings};
use super::error::{topic_name, ApiError, Code};
use super::limits::ConnectionSlot;
use super::session::Session;
use super::AppState;
use crate::access::Caller;
use crate::encoded::{encode, EncodedFrame};
use crate::hub::outbox::Inbox;
use crate::protocol::{check_person, ErrorCode, ErrorFrame, Position, ServerFrame, TopicRequest};
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

#[derive(Deserialize)]
pub(crate) struct Follow {
    board: Option<String>,
    topics: Option<String>,
    from: Option<String>,
    /// An anonymous browser's id, as `join` takes it: its pages are one person.
    person: Option<String>,
    /// The client library's `name/version`.
    client: Option<String>,
}

/// Each followed topic's position, as an event id carries it.
type Positions = BTreeMap<String, Position>;

pub(crate) async fn stream(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    caller: Caller,
    Query(follow): Query<Follow>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if let Some(person) = &follow.person {
        check_person(person).map_err(|e| {
            ApiError::new(StatusCode::BAD_REQUEST, Code::InvalidRequest, e.message).field("person")
        })?;
    }
    if let Some(board) = &follow.board {
        topic_name(board, "board")?;
        if state.boards.get(board).is_none() {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                Code::UnknownBoard,
                format!("there is no board `{board}`"),
            )
            .field("board"));
        }
        if !caller.may_see(&state.boards, board) {
            return Err(refuse(&caller, "/sse", &format!("read board `{board}`")));
        }
    }
    let extra: Vec<String> = follow
        .topics
        .iter()
        .flat_map(|list| list.split(','))
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect();
    for topic in &extra {
        topic_name(topic, "topics")?;
        if !caller.may_read_topic(&state.boards, topic) {
            return Err(refuse(&caller, "/sse", &format!("read `{topic}`")).field("topics"));
        }
    }
    if extra.len() > state.limits.max_subscriptions {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            Code::TooManySubscriptions,
            format!(
                "a stream follows at most {} topics",
                state.limits.max_subscriptions
            ),
        )
        .field("topics"));
    }
    if follow.board.is_none() && extra.is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            Code::NothingToFollow,
            "name a board (board=ops), topics (topics=metric:kpis,feed:activity), or both",
        ));
    }
    let last_event_id = headers.get("last-event-id").and_then(|id| id.to_str().ok());
    let resume_from = last_event_id.or(follow.from.as_deref()).unwrap_or("");
    let positions = parse_positions(resume_from).map_err(|message| {
        ApiError::new(StatusCode::BAD_REQUEST, Code::InvalidPosition, message).field("from")
    })?;

    let ip = state.guard.client_ip(peer, &headers);
    let Some(slot) = state.guard.open_connection(ip) else {
        return Ok(state.guard.too_many_connections(ip, "/sse"));
    };
    let endings = Endings::new(&state, &caller);
    state
        .hub
        .metrics()
        .client_connected(follow.client.as_deref());
    // The cookie first: an address with the id in it ends up in proxies' logs.
    let guest = guest_id(&headers)
        .map(str::to_owned)
        .or(follow.person.clone());
    let (mut session, inbox) = Session::open(&state, caller, guest, true);
    let library = state.boards.clone();
    let (heartbeat, reconnect_spread) = (state.heartbeat, state.reconnect_spread);
    session.welcome(heartbeat).await;
    let mut wanted = extra.clone();
    if let Some(board) = &follow.board {
        // Checked above: the caller may see it.
        let _ = session.join(board.clone(), None).await;
        let reads = library.get(board).and_then(|v| v.board).map(|b| b.topics());
        wanted.extend(reads.unwrap_or_default());
    }
    let mut followed = Followed {
        session,
        extra,
        positions: Positions::new(),
    };
    followed.follow(wanted, &positions).await;

    let ping = tokio::time::interval_at(
        tokio::time::Instant::now() + heartbeat.interval,
        heartbeat.interval,
    );
    let streaming = Streaming {
        followed,
        inbox,
        endings,
        ping,
        reconnect_spread,
        done: false,
        _slot: slot,
    };
    let events = futures_util::stream::unfold(streaming, |mut streaming| async move {
        let event = streaming.next().await?;
        Some((Ok::<_, Infallible>(event), streaming))
    });
    Ok(Sse::new(events).into_response())
}

/// Everything one stream needs between two messages; dropping it (the client left) drops the
/// session and with it every subscription.
struct Streaming {
    followed: Followed,
    inbox: Inbox,
    /// Ends the stream when the server stops, or when the key it was opened with is
    /// revoked.
    endings: Endings,
    ping: tokio::time::Interval,
    reconnect_spread: Duration,
    done: bool,
    /// The stream's place in its address' count of connections.
    _slot: ConnectionSlot,
}

impl Streaming {
    /// The next message, or `None` to end the stream.
    async fn next(&mut self) -> Option<Event> {
        if self.done {
            return None;
        }
        loop {
            let session = &self.followed.session;
            let woke = tokio::select! {
                biased;
                // Before the frames: a stream that always has frames must still end when its
                // key is revoked, or the server stops.
                ending = self.endings.next() => Woke::Ended(ending),
                frame = session.hub.next_frame(session.id, &self.inbox) => Woke::Frame(frame),
                _ = self.ping.tick() => Woke::Ping,
            };
            return Some(match woke {
                Woke::Ended(Ending::Restart) => {
                    self.done = true;
                    let spread = self.reconnect_spread.as_millis() as u64;
                    let delay = fastrand::u64(0..spread.max(1));
                    let frame = encode(&ServerFrame::Restarting {
                        reconnect_in_ms: delay,
                    });
                    // `retry` is how long an EventSource waits before it reconnects.
                    Event::default()
                        .retry(Duration::from_millis(delay))
                        .data(frame.as_str())
                }
                Woke::Ended(Ending::Revoked) => {
                    // The stream ends with the reason; the EventSource's reconnect then gets
                    // a 401.
                    let caller = &self.followed.session.caller;
                    tracing::info!(target: "audit", event = "disconnected", key = caller.who(), reason = caller.ended());
                    self.done = true;
                    let refusal = ErrorFrame::new(ErrorCode::Unauthenticated, caller.ended());
                    Event::default().data(encode(&ServerFrame::Error(refusal)).as_str())
                }
                // What the stream may read narrowed: it goes on without what it lost (told
                // in an error frame), or ends with why when nothing is left.
                Woke::Ended(Ending::Recheck(caller)) => {
                    let session = &mut self.followed.session;
                    let Err(refusal) = Box::pin(session.recheck(caller)).await else {
                        continue;
                    };
                    self.done = true;
                    let code = if session.caller.is_anonymous() {
                        ErrorCode::Unauthenticated
                    } else {
                        ErrorCode::Forbidden
                    };
                    let refusal = ErrorFrame::new(code, refusal.reason);
                    Event::default().data(encode(&ServerFrame::Error(refusal)).as_str())
                }
                Woke::Frame(frame) => self.followed.event(&frame).await,
                Woke::Ping => Event::default().data(r#"{"type":"pong"}"#),
            });
        }
    }
}

/// What a stream woke up for.
enum Woke {
    Ended(Ending),
    Frame(EncodedFrame),
    Ping,
}

/// The stream's side of a [`Session`]: which topics it follows because the address named
/// them, and where each followed topic stands.
struct Followed {
    session: Session,
    extra: Vec<String>,
    positions: Positions,
}

impl Followed {
    /// Subscribes to `topics` not followed yet, resuming from `from` where it has them.
    async fn follow(&mut self, topics: Vec<String>, from: &Positions) {
        let requests = topics
            .into_iter()
            .filter(|t| !self.session.follows(t))
            .map(|topic| TopicRequest {
                resume: from.get(&topic).copied(),
                topic,
            })
            .collect();
        // A board's topics within the limit are followed; past it there is no client to tell
        // over a stream, so they are left out, as the limit says.
        let _subscribed = self.session.subscribe(requests).await;
    }

    /// The message for one queued frame; a board frame also moves the subscriptions to the
    /// topics the board reads now.
    async fn event(&mut self, frame: &EncodedFrame) -> Event {
        let event = Event::default().data(frame.as_str());
        // Every stream reads the frames it is sent, so only their head is parsed (the
        // payload is skipped, not built); a board frame, rare, is read whole.
        let Ok(head) = serde_json::from_str::<FrameHead>(frame.as_str()) else {
            return event;
        };
        match (head.kind.as_ref(), head.topic, head.epoch, head.offset) {
            ("snapshot" | "event" | "coalesced", Some(topic), Some(epoch), Some(offset)) => {
                self.moved(topic.into_owned(), epoch, offset, event)
            }
            ("board", ..) => {
                let Ok(ServerFrame::Board(board)) = serde_json::from_str(frame.as_str()) else {
                    return event;
                };
                if let Some(reads) = board.view.board.map(|b| b.topics()) {
                    let dropped: Vec<String> = self
                        .positions
                        .keys()
                        .filter(|t| !reads.contains(t) && !self.extra.contains(t))
                        .cloned()
                        .collect();
                    self.session.unsubscribe(&dropped);
                    for topic in &dropped {
                        self.positions.remove(topic);
                    }
                    Box::pin(self.follow(reads, &Positions::new())).await;
                }
                event
            }
            _ => event,
        }
    }

    fn moved(&mut self, topic: String, epoch: u64, offset: u64, event: Event) -> Event {
        self.positions.insert(topic, Position { epoch, offset });
        event.id(format_positions(&self.positions))
    }
}

/// What a stream needs of a frame to keep its positions: its type and, for the frames that
/// move a topic, where to.
#[derive(Deserialize)]
struct FrameHead<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    topic: Option<Cow<'a, str>>,
    epoch: Option<u64>,
    offset: Option<u64>,
}

/// `metric:kpis=1763805600000.1291,feed:activity=1763805600000.88`
pub(crate) fn format_positions(positions: &Positions) -> String {
    positions
        .iter()
        .map(|(topic, p)| format!("{topic}={}.{}", p.epoch, p.offset))
        .collect::<Vec<_>>()
        .join(",")
}

pub(crate) fn parse_positions(text: &str) -> Result<Positions, String> {
    let mut positions = Positions::new();
    for item in text.split(',').filter(|i| !i.is_empty()) {
        let parsed = item.rsplit_once('=').and_then(|(topic, at)| {
            let (epoch, offset) = at.split_once('.')?;
            Some((
                topic.to_owned(),
                Position {
                    epoch: epoch.parse().ok()?,
                    offset: offset.parse().ok()?,
                },
            ))
        });
        let Some((topic, position)) = parsed else {
            return Err(format!(
                "`{item}` is not a position: write topic=epoch.offset, e.g. metric:kpis=1763805600000.1291"
            ));
        };
        positions.insert(topic, position);
    }
    Ok(positions)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_round_trip_through_an_event_id() {
        let positions = parse_positions("metric:kpis=17.1291,feed:a-b_c.d=17.88").unwrap();
        assert_eq!(
            positions["feed:a-b_c.d"],
            Position {
                epoch: 17,
                offset: 88
            }
        );
        assert_eq!(
            format_positions(&positions),
            "feed:a-b_c.d=17.88,metric:kpis=17.1291"
        );
        assert!(parse_positions("").unwrap().is_empty());
        assert!(parse_positions("metric:kpis=17").is_err());
        assert!(parse_positions("metric:kpis").is_err());
    }
}
