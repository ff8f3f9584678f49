//! Server frames encoded once: an event's JSON is made when it is committed and the same
//! bytes go to every connection that sends it, from every queue that holds it.

use crate::protocol::ServerFrame;

/// A JSON frame encoded once and shared (reference-counted) by everyone who sends it.
pub(crate) type EncodedFrame = axum::extract::ws::Utf8Bytes;

/// Encodes a server frame. Serialising these types cannot fail: every map key is a string.
pub(crate) fn encode(frame: &ServerFrame) -> EncodedFrame {
    serde_json::to_string(frame)
        .expect("server frames always serialise")
        .into()
}
