//! Scopes: what one API key allows, written the way the CLI and the admin API take them.
//!
//! - `publish:<topic pattern>` writes topics the pattern covers (`publish:metric:*`,
//!   `publish:*`) and reads them back;
//! - `read:<board>` shows a board, private or not, and reads its topics (`read:*`: every
//!   board) — what a share link for a TV carries;
//! - `admin` does all of that and manages keys.

use crate::boards::file::valid_name;
use crate::names::{check_name, pattern_matches};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    Publish(String),
    Read(String),
    Admin,
}

impl Scope {
    pub(crate) fn allows_publish(&self, topic: &str) -> bool {
        match self {
            Scope::Admin => true,
            Scope::Publish(pattern) => pattern_matches(pattern, topic),
            Scope::Read(_) => false,
        }
    }

    pub(crate) fn allows_board(&self, board: &str) -> bool {
        match self {
            Scope::Admin => true,
            Scope::Read(name) => name == "*" || name == board,
            Scope::Publish(_) => false,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct InvalidScope(String);

impl fmt::Display for InvalidScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InvalidScope {}

impl FromStr for Scope {
    type Err = InvalidScope;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = |why: &str| Err(InvalidScope(format!("scope `{text}`: {why}")));
        if text == "admin" {
            return Ok(Scope::Admin);
        }
        if let Some(pattern) = text.strip_prefix("publish:") {
            let prefix = pattern.strip_suffix('*').unwrap_or(pattern);
            if pattern.is_empty() || (!prefix.is_empty() && check_name(prefix).is_err()) {
                return invalid("the topic pattern is a topic name, or its start followed by `*`");
            }
            return Ok(Scope::Publish(pattern.to_owned()));
        }
        if let Some(board) = text.strip_prefix("read:") {
            if board != "*" && !valid_name(board) {
                return invalid("name a board (its file name without .toml), or `*`");
            }
            return Ok(Scope::Read(board.to_owned()));
        }
        invalid("use publish:<topic pattern>, read:<board> or admin")
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Publish(pattern) => write!(f, "publish:{pattern}"),
            Scope::Read(board) => write!(f, "read:{board}"),
            Scope::Admin => f.write_str("admin"),
        }
    }
}

impl Serialize for Scope {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Scope {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_read_back_as_written() {
        for text in [
            "admin",
            "publish:*",
            "publish:metric:*",
            "publish:feed:ops",
            "read:ops",
            "read:*",
        ] {
            assert_eq!(text.parse::<Scope>().unwrap().to_string(), text);
        }
    }

    #[test]
    fn malformed_scopes_say_what_is_expected() {
        for (text, expected) in [
            (
                "write:x",
                "use publish:<topic pattern>, read:<board> or admin",
            ),
            ("publish:", "topic pattern"),
            ("publish:no spaces*", "topic pattern"),
            ("read:../etc", "name a board"),
            ("Admin", "use publish:"),
        ] {
            let error = text.parse::<Scope>().unwrap_err().to_string();
            assert!(error.contains(expected), "{text}: {error}");
        }
    }

    #[test]
    fn publish_patterns_cover_what_they_name() {
        let scope: Scope = "publish:metric:*".parse().unwrap();
        assert!(scope.allows_publish("metric:signups"));
        assert!(!scope.allows_publish("feed:metric:x"));
        assert!(!scope.allows_board("metric"));
        let exact: Scope = "publish:feed:ops".parse().unwrap();
        assert!(exact.allows_publish("feed:ops"));
        assert!(!exact.allows_publish("feed:ops2"));
        assert!(Scope::Admin.allows_publish("anything") && Scope::Admin.allows_board("x"));
        let read: Scope = "read:ops".parse().unwrap();
        assert!(read.allows_board("ops") && !read.allows_board("sales"));
        assert!(!read.allows_publish("ops"));
    }
}
