//! How a screen asks for a board to be shown, from its address alone, because a wall TV is set
//! up once with a URL and then left alone:
//!
//! - `?kiosk=1`: the board fills the screen with no scrolling, no header, no cursor;
//! - `?theme=light` or `?theme=dark`: overrides the system's colour scheme;
//! - `?playlist=ops,sales&every=30s`: after `every` (default 30 s), moves on to the next board
//!   of the list, wrapping around, with the same address options.
//!
//! The server reads the address; the board island gets the result as a prop.

use crate::json::{self, decode_fields, deserialize_via_json, named, FromJson};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use std::time::Duration;

/// How long a playlist shows each board unless `every` says otherwise.
pub const DEFAULT_DWELL: Duration = Duration::from_secs(30);
/// The shortest `every`: below it a board has barely loaded before it goes.
pub const MIN_DWELL: Duration = Duration::from_secs(2);

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Screen {
    pub kiosk: bool,
    /// `None` follows the system.
    pub theme: Option<Theme>,
    pub playlist: Option<Playlist>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Theme {
    Light,
    Dark,
}

impl Theme {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Light => "light",
            Self::Dark => "dark",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Playlist {
    pub boards: Vec<String>,
    pub every: Duration,
}

impl Screen {
    /// The screen an address asks for; `query` looks up one of its parameters.
    pub fn from_query<'a>(query: impl Fn(&str) -> Option<&'a str>) -> Screen {
        let yes = |key: &str| query(key).is_some_and(|v| matches!(v, "1" | "true" | "yes" | ""));
        let theme = match query("theme") {
            Some("light") => Some(Theme::Light),
            Some("dark") => Some(Theme::Dark),
            _ => None,
        };
        let playlist = query("playlist").and_then(|list| {
            let boards: Vec<String> = list
                .split(',')
                .map(str::trim)
                .filter(|b| !b.is_empty())
                .map(str::to_owned)
                .collect();
            (!boards.is_empty()).then(|| Playlist {
                boards,
                every: query("every").and_then(dwell).unwrap_or(DEFAULT_DWELL),
            })
        });
        Screen {
            kiosk: yes("kiosk"),
            theme,
            playlist,
        }
    }
}

impl Playlist {
    /// The board after `current`; the first one if `current` is not in the list.
    pub fn after(&self, current: &str) -> &str {
        let next = self
            .boards
            .iter()
            .position(|b| b == current)
            .map_or(0, |i| (i + 1) % self.boards.len());
        &self.boards[next]
    }
}

/// The island's props carry the screen: read as board views are (see [`FromJson`]).
impl<'de> Deserialize<'de> for Screen {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserialize_via_json(deserializer)
    }
}

decode_fields!(Screen {
    kiosk,
    theme,
    playlist
});

impl FromJson for Theme {
    fn from_json(value: Value) -> Result<Self, json::Error> {
        named(value, &[("Light", Theme::Light), ("Dark", Theme::Dark)])
    }
}

decode_fields!(Playlist { boards, every });

/// `30s`, `5m`, `1h`, or bare seconds; at least [`MIN_DWELL`].
fn dwell(text: &str) -> Option<Duration> {
    let text = text.trim();
    let (number, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let seconds = number.parse::<u64>().ok()?.checked_mul(match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        _ => return None,
    })?;
    Some(Duration::from_secs(seconds).max(MIN_DWELL))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn screen<'a>(query: &'a [(&'a str, &'a str)]) -> Screen {
        Screen::from_query(|key| query.iter().find(|(k, _)| *k == key).map(|(_, v)| *v))
    }

    #[test]
    fn a_bare_address_is_a_plain_board() {
        assert_eq!(screen(&[]), Screen::default());
        assert_eq!(
            screen(&[("theme", "purple"), ("kiosk", "0")]),
            Screen::default()
        );
    }

    #[test]
    fn kiosk_and_theme_come_from_the_address() {
        let tv = screen(&[("kiosk", "1"), ("theme", "light")]);
        assert!(tv.kiosk);
        assert_eq!(tv.theme, Some(Theme::Light));
        assert!(screen(&[("kiosk", "true")]).kiosk);
    }

    #[test]
    fn a_playlist_wraps_around_and_starts_over_from_a_stranger() {
        let tv = screen(&[("playlist", "ops, sales,,demo"), ("every", "5m")]);
        let playlist = tv.playlist.unwrap();
        assert_eq!(playlist.boards, ["ops", "sales", "demo"]);
        assert_eq!(playlist.every, Duration::from_secs(300));
        assert_eq!(playlist.after("ops"), "sales");
        assert_eq!(playlist.after("demo"), "ops");
        assert_eq!(playlist.after("elsewhere"), "ops");
    }

    #[test]
    fn a_screen_reads_back_as_the_server_wrote_it() {
        for theme in [None, Some("light"), Some("dark")] {
            let mut query = vec![("kiosk", "1"), ("playlist", "a,b"), ("every", "5m")];
            query.extend(theme.map(|t| ("theme", t)));
            let tv = screen(&query);
            let written = serde_json::to_value(&tv).unwrap();
            assert_eq!(Screen::from_json(written).unwrap(), tv);
        }
        let plain = serde_json::to_string(&Screen::default()).unwrap();
        assert_eq!(
            serde_json::from_str::<Screen>(&plain).unwrap(),
            Screen::default()
        );
    }

    #[test]
    fn dwell_times_read_like_people_write_them() {
        assert_eq!(dwell("45"), Some(Duration::from_secs(45)));
        assert_eq!(dwell("45s"), Some(Duration::from_secs(45)));
        assert_eq!(dwell("2h"), Some(Duration::from_secs(7200)));
        assert_eq!(dwell("0"), Some(MIN_DWELL));
        assert_eq!(dwell("soon"), None);
        assert_eq!(dwell("5 m"), None);
        let fallback = screen(&[("playlist", "a"), ("every", "soon")]);
        assert_eq!(fallback.playlist.unwrap().every, DEFAULT_DWELL);
    }
}
