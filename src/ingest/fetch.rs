//! The one HTTP request of a run: sent with the source's headers, answered within the run's
//! timeout (the caller's), refused unless 2xx, and read only up to [`MAX_ANSWER`] so that a
//! URL that answers 50 MB costs a run, not the server's memory.

use reqwest::header::CONTENT_TYPE;

/// The largest answer a source reads; a larger one fails the run.
pub(crate) const MAX_ANSWER: usize = 8 * 1024 * 1024;

/// What answered: its body, and its content type for messages.
pub(crate) struct Answer {
    pub(crate) body: Vec<u8>,
    pub(crate) content_type: String,
}

/// Sends `request` and reads the answer. `who` names the other side in messages
/// ("prometheus", "the URL"), which screens show as they are.
pub(crate) async fn fetch(request: reqwest::RequestBuilder, who: &str) -> Result<Answer, String> {
    let mut response = request.send().await.map_err(|e| unreachable(who, &e))?;
    let status = response.status();
    let content_type = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    if response
        .content_length()
        .is_some_and(|length| length > MAX_ANSWER as u64)
    {
        return Err(too_large(who));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| unreachable(who, &e))? {
        if body.len() + chunk.len() > MAX_ANSWER {
            return Err(too_large(who));
        }
        body.extend_from_slice(&chunk);
    }
    if !status.is_success() {
        return Err(format!(
            "{who} answered {}: {}",
            status.as_u16(),
            excerpt(&body, &content_type)
        ));
    }
    Ok(Answer { body, content_type })
}

fn too_large(who: &str) -> String {
    format!("{who} answered more than {} MiB", MAX_ANSWER >> 20)
}

/// Why the request failed before an answer, in words for a wall screen.
fn unreachable(who: &str, error: &reqwest::Error) -> String {
    // reqwest's own text nests its causes; the innermost says what happened.
    let mut cause: &dyn std::error::Error = error;
    while let Some(inner) = cause.source() {
        cause = inner;
    }
    if error.is_timeout() {
        format!("{who} did not answer in time")
    } else if error.is_connect() {
        format!("{who} cannot be reached: {cause}")
    } else {
        format!("{who}: {cause}")
    }
}

/// The start of an answer's body, on one line, for a message: an error page's text, a JSON
/// error's `error` field.
pub(crate) fn excerpt(body: &[u8], content_type: &str) -> String {
    if let Ok(json) = serde_json::from_slice::<serde_json::Value>(body) {
        if let Some(error) = json.get("error").and_then(|e| e.as_str()) {
            return shorten(error);
        }
    }
    if content_type.starts_with("text/html") {
        return "an HTML page".into();
    }
    let text = String::from_utf8_lossy(body);
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.is_empty() {
        "no body".into()
    } else {
        shorten(&text)
    }
}

/// `text` cut to 160 characters: what a screen and a log line can show of it.
pub(crate) fn shorten(text: &str) -> String {
    match text.char_indices().nth(160) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}
