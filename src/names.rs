//! The naming rule for topics and boards, and topic patterns (`metric:*`): what a name may
//! be wherever one comes in (a request, a frame, a board file, a key's scope, a setting).

use std::fmt;

/// The longest topic name the server accepts.
pub const MAX_TOPIC_LEN: usize = 128;

/// Why a topic or board name was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidName {
    pub name: String,
    pub reason: &'static str,
}

impl fmt::Display for InvalidName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid name `{}`: {}", self.name, self.reason)
    }
}

impl std::error::Error for InvalidName {}

/// The naming rule for topics and boards: 1 to 128 characters from `A-Z a-z 0-9 _ - . :`,
/// starting with a letter or digit (`metric:signups`, `board:leaders`, `orders.eu-1`).
pub fn check_name(name: &str) -> Result<(), InvalidName> {
    let refuse = |reason| {
        Err(InvalidName {
            name: name.chars().take(MAX_TOPIC_LEN).collect(),
            reason,
        })
    };
    if name.is_empty() {
        return refuse("it is empty");
    }
    if name.len() > MAX_TOPIC_LEN {
        return refuse("it is longer than 128 characters");
    }
    if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return refuse("it must start with a letter or a digit");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'))
    {
        return refuse("only letters, digits and _ - . : are allowed");
    }
    Ok(())
}

/// Whether a topic pattern covers a topic: a pattern ending in `*` covers every topic that
/// starts with what precedes it (`*` alone covers all), any other only the topic it names.
/// Retention settings and API key scopes both name topics this way.
pub fn pattern_matches(pattern: &str, topic: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => topic.starts_with(prefix),
        None => topic == pattern,
    }
}
