//! One client connection's view of the hub, whatever carries it (`/ws` or `/sse`): its
//! subscriptions and board memberships, the frames it asks for, and the answers it gets. It
//! releases everything it holds when dropped, which happens on every way out of a
//! connection: a close, an error, a dead peer, a lagging reader, shutdown.

use super::AppState;
use crate::access::person::Someone;
use crate::access::Caller;
use crate::boards::library::Library;
use crate::boards::Board;
use crate::clock::now_ms;
use crate::encoded::{encode, EncodedFrame};
use crate::engine::{Engine, Outcome, PublishError};
use crate::hub::outbox::{Inbox, Outbox};
use crate::hub::{ConnectionId, Hub};
use crate::notes::{NoteError, Notes};
use crate::ops::Publish;
use crate::ops::Published;
use crate::protocol::{
    Ack, BoardFrame, ClientFrame, ErrorCode, ErrorFrame, NoteFrame, PublishFrame, ServerFrame,
    TopicRequest, Welcome, CLOSE_FORBIDDEN, CLOSE_TRY_AGAIN_LATER,
};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// How often connections are pinged, and how long one may stay silent.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Heartbeat {
    pub(crate) interval: Duration,
    pub(crate) idle_timeout: Duration,
}

pub(crate) struct Session {
    pub(crate) hub: Arc<Hub>,
    engine: Arc<dyn Engine>,
    library: Arc<Library>,
    pub(crate) id: ConnectionId,
    outbox: Outbox,
    topics: Names,
    boards: Names,
    /// How many topics this connection may follow at once.
    max_topics: u32,
    /// How many boards it may be on at once.
    max_boards: u32,
    /// Whose connection this is: what it may read and write.
    pub(crate) caller: Caller,
    /// The id an anonymous browser is one person across its pages by: its guest cookie's,
    /// or else the first `join` that gives one.
    person: Option<String>,
    notes: Arc<Notes>,
    /// Over Server-Sent Events (`/sse`) rather than a WebSocket.
    stream: bool,
}

/// A connection's topics, or its boards: a few names in a plain list. A hash set's smallest
/// table is four times the size of one name, and every idle connection holds one; a list of
/// at most `max_subscriptions` names is searched in microseconds.
#[derive(Default)]
struct Names(Vec<String>);

impl Names {
    fn contains(&self, name: &str) -> bool {
        self.0.iter().any(|n| n == name)
    }

    fn insert(&mut self, name: String) {
        if !self.contains(&name) {
            // One more place, not the four a first push reserves: most connections follow a
            // topic or a few.
            self.0.reserve_exact(1);
            self.0.push(name);
        }
    }

    /// Whether the name was there.
    fn remove(&mut self, name: &str) -> bool {
        let at = self.0.iter().position(|n| n == name);
        at.map(|at| self.0.swap_remove(at)).is_some()
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn iter(&self) -> impl Iterator<Item = &String> {
        self.0.iter()
    }
}

/// What a `subscribe` did: the topics it did not take, and why, and what it cost.
#[derive(Default)]
pub(crate) struct Subscribed {
    /// The connection follows as many topics as it may.
    pub(crate) over_limit: Vec<String>,
    /// The caller may not read them.
    pub(crate) forbidden: Vec<String>,
    /// The engine could not give them.
    pub(crate) unavailable: Vec<String>,
    /// What the snapshots asked for again cost, in frames of the connection's budget.
    pub(crate) cost: u32,
}

/// The `client=name/version` a client library adds to the address of `/ws` or `/sse`, so
/// an operator sees which libraries connect (`pulseboard_client_connections_total`).
#[derive(serde::Deserialize)]
pub(crate) struct ClientName {
    pub(crate) client: Option<String>,
}

/// Why a connection is closed from its own side: the close code and reason it gets.
pub(crate) struct Refusal {
    pub(crate) code: u16,
    pub(crate) reason: String,
}

impl Refusal {
    /// For a board the caller may not see: 4403, or, while its file is broken and held
    /// private, 1013 (try again later), which a page retries on its own until it is fixed.
    fn board(library: &Library, board: &str) -> Self {
        if library.withheld(board) {
            Refusal {
                code: CLOSE_TRY_AGAIN_LATER,
                reason: format!("board {board}'s file has a mistake; it shows again once fixed"),
            }
        } else {
            Refusal {
                code: CLOSE_FORBIDDEN,
                reason: format!("board {board} is private"),
            }
        }
    }
}

/// A snapshot asked for again costs a frame of the connection's budget per this many bytes.
pub(crate) const SNAPSHOT_COST_BYTES: usize = 4096;

/// The requests of one `subscribe`, each topic once, from the last position it was given
/// with, in the order topics first appear.
fn distinct(requests: Vec<TopicRequest>) -> Vec<TopicRequest> {
    let mut at: HashMap<String, usize> = HashMap::new();
    let mut unique: Vec<TopicRequest> = Vec::new();
    for request in requests {
        match at.get(&request.topic) {
            Some(i) => unique[*i].resume = request.resume,
            None => {
                at.insert(request.topic.clone(), unique.len());
                unique.push(request);
            }
        }
    }
    unique
}

impl Session {
    /// Opens a connection on the hub for `caller` (`guest`: an anonymous browser's id, from
    /// its cookie): its session, and the inbox the transport (`/ws` or `/sse`) writes out.
    pub(crate) fn open(
        state: &AppState,
        caller: Caller,
        guest: Option<String>,
        stream: bool,
    ) -> (Self, Inbox) {
        let (id, outbox, inbox) = state.hub.connect(caller.clone());
        state.hub.metrics().connections.inc();
        if stream {
            state.hub.metrics().streams.inc();
        }
        let session = Session {
            hub: state.hub.clone(),
            engine: state.engine.clone(),
            library: state.boards.clone(),
            id,
            outbox,
            topics: Names::default(),
            boards: Names::default(),
            // Narrow: these sit in every connection's memory.
            max_topics: u32::try_from(state.limits.max_subscriptions).unwrap_or(u32::MAX),
            max_boards: u32::try_from(state.limits.max_boards).unwrap_or(u32::MAX),
            caller,
            person: guest,
            notes: state.notes.clone(),
            stream,
        };
        (session, inbox)
    }

    /// The first frame on every connection: its viewer id and the heartbeat it will get.
    pub(crate) async fn welcome(&self, heartbeat: Heartbeat) {
        self.reply(ServerFrame::Welcome(Welcome {
            connection: self.hub.viewer_id(self.id),
            server: env!("CARGO_PKG_VERSION").into(),
            protocol: crate::protocol::PROTOCOL,
            heartbeat_ms: heartbeat.interval.as_millis() as u64,
            idle_timeout_ms: heartbeat.idle_timeout.as_millis() as u64,
            server_time_ms: now_ms(),
        }))
        .await;
    }

    /// Decodes and answers one client frame; returns what it cost besides itself, in frames
    /// of the connection's budget (snapshots asked for again). An error ends the connection.
    pub(crate) async fn handle(&mut self, text: &str) -> Result<u32, Refusal> {
        let frame = match ClientFrame::decode(text) {
            Ok(frame) => frame,
            Err(error) => {
                self.error(error).await;
                return Ok(0);
            }
        };
        match frame {
            ClientFrame::Subscribe { topics } => {
                let subscribed = self.subscribe(topics).await;
                let cost = subscribed.cost;
                if !subscribed.forbidden.is_empty() {
                    let message = format!(
                        "not subscribed: {} (on no board this connection may read)",
                        subscribed.forbidden.join(", ")
                    );
                    self.refuse(None, message).await;
                }
                if !subscribed.over_limit.is_empty() {
                    let message = format!(
                        "a connection follows at most {} topics; not subscribed: {}",
                        self.max_topics,
                        subscribed.over_limit.join(", ")
                    );
                    self.error(ErrorFrame::new(ErrorCode::TooManySubscriptions, message))
                        .await;
                }
                if !subscribed.unavailable.is_empty() {
                    let message = format!(
                        "not subscribed: {} (the topics could not be read; subscribe again later)",
                        subscribed.unavailable.join(", ")
                    );
                    self.error(ErrorFrame::new(ErrorCode::StoreUnavailable, message))
                        .await;
                }
                return Ok(cost);
            }
            ClientFrame::Unsubscribe { topics } => self.unsubscribe(&topics),
            ClientFrame::Join { board, person } => {
                return self.join(board, person).await.map(|()| 0)
            }
            ClientFrame::Leave { board } => {
                self.hub.leave(&board, self.id);
                self.boards.remove(&board);
            }
            ClientFrame::Ping { id } => self.reply(ServerFrame::Pong { id }).await,
            ClientFrame::Publish(publish) => self.publish(publish).await,
            // Only someone who could send the note is shown writing one.
            ClientFrame::Typing { board } => {
                let writer = self
                    .joined_board(&board)
                    .is_ok_and(|board| crate::notes::may_write(&self.caller, &board).is_ok());
                if writer {
                    self.hub.typing(&board, self.id).await;
                }
            }
            ClientFrame::Note(note) => self.note(note).await,
            ClientFrame::DeleteNote {
                reference,
                board,
                id,
            } => self.delete_note(reference, board, id).await,
        }
        Ok(0)
    }

    /// The board of a note frame, if this connection joined it and it parses.
    fn joined_board(&self, board: &str) -> Result<Board, ErrorFrame> {
        let found = self
            .boards
            .contains(board)
            .then(|| self.library.get(board).and_then(|view| view.board))
            .flatten();
        found.ok_or_else(|| {
            ErrorFrame::new(
                ErrorCode::InvalidFrame,
                format!("join board {board} before writing notes on it"),
            )
        })
    }

    /// Writes a note from this page, as its person.
    async fn note(&mut self, frame: NoteFrame) {
        let reference = frame.reference.clone();
        let board = match self.joined_board(&frame.board) {
            Ok(board) => board,
            Err(error) => return self.error_for(reference, error).await,
        };
        let written = self
            .notes
            .write(&self.caller, &self.someone(), &board, frame.id, frame.note)
            .await;
        match written {
            Ok((_, _, published)) => self.ack(reference, published).await,
            Err(e) => self.note_refused(reference, e).await,
        }
    }

    async fn delete_note(&mut self, reference: Option<String>, board: String, id: String) {
        let board = match self.joined_board(&board) {
            Ok(board) => board,
            Err(error) => return self.error_for(reference, error).await,
        };
        let deleted = self
            .notes
            .delete(&self.caller, &self.someone(), &board, id)
            .await;
        match deleted {
            Ok(published) => self.ack(reference, published).await,
            Err(e) => self.note_refused(reference, e).await,
        }
    }

    async fn note_refused(&self, reference: Option<String>, error: NoteError) {
        let code = match &error {
            NoteError::NotAllowed(why) => return self.refuse(reference, why.clone()).await,
            NoteError::Invalid(_) | NoteError::NoSuchNote(_) => ErrorCode::InvalidFrame,
            NoteError::Unavailable(_) => ErrorCode::StoreUnavailable,
        };
        self.error_for(reference, ErrorFrame::new(code, error.to_string()))
            .await;
    }

    async fn ack(&self, reference: Option<String>, published: Published) {
        self.reply(ServerFrame::Ack(Ack {
            reference,
            published,
        }))
        .await;
    }

    async fn error_for(&self, reference: Option<String>, mut error: ErrorFrame) {
        error.reference = reference;
        self.error(error).await;
    }

    /// The person this connection's pages are.
    fn someone(&self) -> Someone {
        self.caller
            .someone(self.person.as_deref(), &self.hub.viewer_id(self.id))
    }

    /// Answers a request the caller may not make: `unauthenticated` for a connection without
    /// a key, `forbidden` for one whose key does not allow it. Logged for the audit.
    async fn refuse(&self, reference: Option<String>, message: String) {
        tracing::warn!(target: "audit", event = "denied", key = self.caller.who(), connection = self.id, reason = %message);
        let code = if self.caller.is_anonymous() {
            ErrorCode::Unauthenticated
        } else {
            ErrorCode::Forbidden
        };
        let mut error = ErrorFrame::new(code, message);
        error.reference = reference;
        self.error(error).await;
    }

    /// Subscribes to each topic from the position given (a snapshot without one); a topic
    /// listed more than once in one frame counts once, from its last position. Subscribing
    /// again restarts the topic from the new position, and a snapshot asked for again costs
    /// the connection a frame of its budget per [`SNAPSHOT_COST_BYTES`] it holds. Returns the
    /// topics not taken: those the caller may not read, those past the connection's limit,
    /// and those the engine could not give.
    pub(crate) async fn subscribe(&mut self, topics: Vec<TopicRequest>) -> Subscribed {
        let mut outcome = Subscribed::default();
        for request in distinct(topics) {
            if !self.caller.may_read_topic(&self.library, &request.topic) {
                outcome.forbidden.push(request.topic);
                continue;
            }
            let had = self.topics.contains(&request.topic);
            if !had && self.topics.len() >= self.max_topics as usize {
                outcome.over_limit.push(request.topic);
                continue;
            }
            let subscribed = self
                .hub
                .subscribe(self.id, &self.outbox, &request.topic, request.resume)
                .await;
            match subscribed {
                Ok(queued) => {
                    if had {
                        let cost = (queued / SNAPSHOT_COST_BYTES) as u32;
                        outcome.cost = outcome.cost.saturating_add(cost);
                    } else {
                        self.hub.metrics().subscriptions.inc();
                        self.topics.insert(request.topic);
                    }
                }
                Err(e) => {
                    tracing::warn!(topic = %request.topic, "could not follow: {e}");
                    if had {
                        self.hub.unsubscribe(self.id, &request.topic);
                        self.topics.remove(&request.topic);
                        self.hub.metrics().subscriptions.dec();
                    }
                    outcome.unavailable.push(request.topic);
                }
            }
        }
        outcome
    }

    /// Catches up with what the hub decided after a board file or a key changed: it has
    /// already dropped what this connection may no longer read ([`Hub::enforce`], which runs
    /// before every recheck), so what it no longer holds for the connection is what was lost.
    /// This lets go of it here too, takes `caller` (the connection's caller as it stands
    /// now) for what comes next, and tells the client: an `error` frame naming the topics or
    /// the board, or, once the connection has nothing left it was following, a close (4403;
    /// 1013 for a board whose file is broken).
    pub(crate) async fn recheck(&mut self, caller: Caller) -> Result<(), Refusal> {
        self.outbox.set_reader(caller.clone());
        self.caller = caller;
        let lost_topics: Vec<String> = self
            .topics
            .iter()
            .filter(|topic| !self.hub.is_subscribed(self.id, topic))
            .cloned()
            .collect();
        let lost_boards: Vec<String> = self
            .boards
            .iter()
            .filter(|board| !self.hub.is_member(self.id, board))
            .cloned()
            .collect();
        if lost_topics.is_empty() && lost_boards.is_empty() {
            return Ok(());
        }
        self.unsubscribe(&lost_topics);
        for board in &lost_boards {
            self.hub.leave(board, self.id);
            self.boards.remove(board);
        }
        tracing::info!(target: "audit", event = "narrowed", key = self.caller.who(), connection = self.id, topics = ?lost_topics, boards = ?lost_boards);
        let code = if self.caller.is_anonymous() {
            ErrorCode::Unauthenticated
        } else {
            ErrorCode::Forbidden
        };
        // A page is its board: without it nothing is left to show, whatever topics remain.
        if self.boards.is_empty() {
            if let Some(board) = lost_boards.first() {
                return Err(Refusal::board(&self.library, board));
            }
            if self.topics.is_empty() {
                return Err(Refusal {
                    code: CLOSE_FORBIDDEN,
                    reason: format!("no longer allowed to read {}", lost_topics.join(", ")),
                });
            }
        }
        if !lost_topics.is_empty() {
            let message = format!(
                "no longer subscribed: {} (on no board this connection may read now)",
                lost_topics.join(", ")
            );
            self.error(ErrorFrame::new(code, message).about_topics(lost_topics))
                .await;
        }
        for board in lost_boards {
            let message = format!("left board {board}: this connection may no longer see it");
            self.error(ErrorFrame::new(code, message).about_board(board))
                .await;
        }
        Ok(())
    }

    pub(crate) fn unsubscribe(&mut self, topics: &[String]) {
        for topic in topics {
            self.hub.unsubscribe(self.id, topic);
            if self.topics.remove(topic) {
                self.hub.metrics().subscriptions.dec();
            }
        }
    }

    /// Whether this connection follows the topic.
    pub(crate) fn follows(&self, topic: &str) -> bool {
        self.topics.contains(topic)
    }

    /// Joins a board's presence as this connection's person (`person`: an anonymous
    /// browser's id, kept from the first join that gives one) and sends the board's
    /// definition, if the caller may see it.
    pub(crate) async fn join(
        &mut self,
        board: String,
        person: Option<String>,
    ) -> Result<(), Refusal> {
        if self.boards.contains(&board) {
            return Ok(());
        }
        if self.library.get(&board).is_none() {
            let message = format!("there is no board {board}; not joined");
            let error = ErrorFrame::new(ErrorCode::UnknownBoard, message).about_board(board);
            self.error(error).await;
            return Ok(());
        }
        if !self.caller.may_see(&self.library, &board) {
            tracing::warn!(target: "audit", event = "denied", key = self.caller.who(), connection = self.id, board, reason = "private board");
            return Err(Refusal::board(&self.library, &board));
        }
        if self.boards.len() >= self.max_boards as usize {
            let message = format!(
                "a connection is on at most {} boards at once; leave one first. Not joined: {board}",
                self.max_boards
            );
            let error = ErrorFrame::new(ErrorCode::TooManyBoards, message).about_board(board);
            self.error(error).await;
            return Ok(());
        }
        // Joined first, read second: a change in between reaches this page as a frame of its
        // own, and the page keeps whichever has the higher revision.
        if self.person.is_none() {
            self.person = person;
        }
        self.hub.join(&board, self.id, &self.outbox, self.someone());
        if let Some(view) = self.library.get(&board) {
            let name = board.clone();
            self.reply(ServerFrame::Board(BoardFrame { name, view }))
                .await;
        }
        self.boards.insert(board);
        Ok(())
    }

    async fn publish(&mut self, publish: PublishFrame) {
        let reference = publish.reference.clone();
        if let Some(why) = crate::notes::reserved(&publish.topic) {
            let error = ErrorFrame::new(ErrorCode::Forbidden, why);
            return self.error_for(reference, error).await;
        }
        if !self.caller.may_publish(&publish.topic) {
            let message = format!("may not publish to `{}`", publish.topic);
            return self.refuse(reference, message).await;
        }
        let batch = (
            publish.topic,
            Publish {
                ops: publish.ops,
                user_id: publish.user_id,
                trace_id: publish.trace_id,
            },
        )
            .into();
        let answer = match self.engine.publish(batch, None).await {
            Ok(Outcome { mut answer, .. }) => ServerFrame::Ack(Ack {
                reference,
                published: answer.results.swap_remove(0),
            }),
            Err(e) => {
                let code = match e {
                    PublishError::Refused { .. } => ErrorCode::OpRefused,
                    PublishError::Shape(_) => ErrorCode::InvalidFrame,
                    _ => ErrorCode::StoreUnavailable,
                };
                let mut error = ErrorFrame::new(code, e.to_string());
                error.reference = reference;
                ServerFrame::Error(error)
            }
        };
        self.reply(answer).await;
    }

    pub(crate) async fn reply(&self, frame: ServerFrame) {
        self.send(encode(&frame)).await;
    }

    pub(crate) async fn error(&self, error: ErrorFrame) {
        self.reply(ServerFrame::Error(error)).await;
    }

    async fn send(&self, frame: EncodedFrame) {
        // Waiting here only slows this connection's own reading, never the hub.
        let _ = self.outbox.push(frame).await;
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let metrics = self.hub.metrics();
        metrics.connections.dec();
        if self.stream {
            metrics.streams.dec();
        }
        metrics.subscriptions.dec_by(self.topics.len() as i64);
        for topic in self.topics.iter() {
            self.hub.unsubscribe(self.id, topic);
        }
        for board in self.boards.iter() {
            self.hub.leave(board, self.id);
        }
    }
}
