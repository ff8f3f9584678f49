//! Request bodies on a keep-alive connection: a body declared larger than `max_body_kib` is
//! refused before a byte of it is read, one that has not arrived whole within `body_timeout`
//! is refused (408) and its connection closed, so a client trickling a body cannot hold a
//! request open, and one that a refusal left unread (a 429 from the limits, a 401 for an
//! unknown key, answered from the headers alone) is read to its end and dropped before the
//! answer goes out, so the client's next request on the same connection is not mistaken for
//! the rest of this one. Where that cannot be done in bounds, the answer says
//! `Connection: close`, so a pooled client opens a new connection instead of failing on a
//! closed one.

use super::error::{ApiError, Code};
use axum::body::{Body, BodyDataStream, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures_util::{Stream, StreamExt};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::oneshot;

/// How long the unread rest of a refused request's body may take to arrive; past it the
/// connection is closed instead.
const DRAIN_WAIT: Duration = Duration::from_secs(2);

/// How large a request body may be, and how long it may take to arrive.
#[derive(Clone, Copy, Debug)]
pub(crate) struct BodyLimits {
    /// In bytes.
    pub(crate) max: usize,
    /// From the request's headers to the body's end.
    pub(crate) timeout: Duration,
}

/// What became of a body the handler did not read to its end.
enum Unread {
    /// Dropped early: the rest, to read out.
    Rest(BodyDataStream),
    /// It did not arrive within the timeout.
    TimedOut,
}

/// The error a body that took too long reads as, for the handler (which answers whatever it
/// answers; the middleware then replaces that with a 408).
#[derive(Debug)]
struct TooSlow;

impl std::fmt::Display for TooSlow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the body did not arrive in time")
    }
}

impl std::error::Error for TooSlow {}

/// Middleware: refuses bodies declared over `max_body` bytes unread, and those too slow to
/// arrive, and reads out what a refusal left unread.
pub(crate) async fn read_out(
    State(BodyLimits {
        max: max_body,
        timeout,
    }): State<BodyLimits>,
    request: Request,
    next: Next,
) -> Response {
    let headers = request.headers();
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok()?.parse::<u64>().ok());
    if let Some(length) = declared.filter(|length| *length > max_body as u64) {
        let message = format!(
            "the body is {length} bytes; at most {} KiB are taken (max_body_kib)",
            max_body / 1024
        );
        let refused = ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, Code::BodyTooLarge, message);
        return closing(refused.into_response());
    }
    let chunked = headers.contains_key(header::TRANSFER_ENCODING);
    if declared.unwrap_or(0) == 0 && !chunked {
        return next.run(request).await;
    }
    // A client waiting for `100 Continue` has not sent its body: reading it now would ask
    // for a body only to throw it away.
    let waits_to_send = headers.contains_key(header::EXPECT);

    let (parts, body) = request.into_parts();
    let (give_back, mut given_back) = oneshot::channel();
    let watched = Watched {
        body: Some(body.into_data_stream()),
        // A client told to continue starts sending only once the handler reads.
        deadline: (!waits_to_send).then(|| Box::pin(tokio::time::sleep(timeout))),
        timeout,
        ended: false,
        give_back: Some(give_back),
    };
    let mut response = next
        .run(Request::from_parts(parts, Body::from_stream(watched)))
        .await;
    // Handed back when the body was dropped unread; a body still held (nothing here holds
    // one past its answer) is left alone.
    match given_back.try_recv() {
        Ok(Unread::TimedOut) => {
            let message = format!(
                "the body did not arrive whole within {} s (body_timeout)",
                timeout.as_secs()
            );
            let refused = ApiError::new(StatusCode::REQUEST_TIMEOUT, Code::BodyTimeout, message);
            response = closing(refused.into_response());
        }
        Ok(Unread::Rest(rest)) => {
            let read_out = !waits_to_send
                && tokio::time::timeout(DRAIN_WAIT, discard(rest, max_body))
                    .await
                    .unwrap_or(false);
            if !read_out {
                response = closing(response);
            }
        }
        Err(_) => {}
    }
    response
}

/// Marks an answer as the connection's last.
fn closing(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// Reads a body to its end, keeping nothing; false if it is over `limit` or fails.
async fn discard(mut body: BodyDataStream, limit: usize) -> bool {
    let mut read = 0;
    while let Some(chunk) = body.next().await {
        match chunk {
            Ok(bytes) => read += bytes.len(),
            Err(_) => return false,
        }
        if read > limit {
            return false;
        }
    }
    true
}

/// A request body that must arrive within its deadline, and that, dropped before its end,
/// hands what is left back to [`read_out`].
struct Watched {
    body: Option<BodyDataStream>,
    /// When the whole body must have arrived by; started when the request was handed on.
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    /// What the deadline was started with, for a client that sent `Expect: 100-continue`:
    /// its timer starts with the first read.
    timeout: Duration,
    ended: bool,
    give_back: Option<oneshot::Sender<Unread>>,
}

impl Stream for Watched {
    type Item = Result<Bytes, axum::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.body.is_none() {
            return Poll::Ready(None);
        }
        let timeout = self.timeout;
        let deadline = self
            .deadline
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        if deadline.as_mut().poll(cx).is_ready() {
            self.body = None;
            if let Some(give_back) = self.give_back.take() {
                let _ = give_back.send(Unread::TimedOut);
            }
            return Poll::Ready(Some(Err(axum::Error::new(TooSlow))));
        }
        let Some(body) = self.body.as_mut() else {
            return Poll::Ready(None);
        };
        let next = body.poll_next_unpin(cx);
        if let Poll::Ready(None) = next {
            self.ended = true;
        }
        next
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        if self.ended {
            return;
        }
        if let (Some(body), Some(give_back)) = (self.body.take(), self.give_back.take()) {
            let _ = give_back.send(Unread::Rest(body));
        }
    }
}
