//! The boards directory: every `*.toml` file in it is a board, named after the file. The
//! library reads them at start and again whenever one changes, and keeps, per board, the last
//! version that parsed plus the problem with the current file if it does not: an edit with a
//! typo never takes a wall screen down, it shows a banner over the last good board.
//!
//! It fails closed: a file that does not parse might be the edit that made its board
//! private, so a board whose last good version was public is *held* private while its file
//! is broken (its keyed screens keep it, under the banner; anonymous ones are told to come
//! back later). A private board's last good version stays as it was.
//!
//! Files are polled (size and modification time, every [`POLL`]) rather than watched with
//! inotify: polling sees edits the same way on bind mounts, network filesystems and editors
//! that replace a file instead of writing it, where change notifications go missing.

use super::file::{parse, valid_name};
use super::{Board, BoardProblem, BoardSummary, BoardView};
use parking_lot::RwLock;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

/// How often the directory is checked for changed files.
pub const POLL: Duration = Duration::from_millis(500);

/// The demo board, compiled in: shown when the directory has no `demo.toml` of its own.
const DEMO: &str = include_str!("../../boards/demo.toml");

#[derive(Default)]
struct Entry {
    /// Size and modification time the state was read from; `None` for the embedded demo.
    seen: Option<(u64, SystemTime)>,
    view: BoardView,
    /// A public board held private while its file is broken.
    withheld: bool,
    /// Size and modification time of a file that did not parse when a good version was
    /// held: acted on only if it is the same at the next poll (see [`Library::rescan`]).
    unsettled: Option<(u64, SystemTime)>,
}

pub struct Library {
    dir: PathBuf,
    demo: bool,
    entries: RwLock<BTreeMap<String, Entry>>,
}

impl Library {
    /// Reads every board in `dir` (which need not exist yet); with `demo`, the compiled-in
    /// demo board stands in for a missing `demo.toml`.
    pub fn open(dir: PathBuf, demo: bool) -> Library {
        let library = Library {
            dir,
            demo,
            entries: RwLock::new(BTreeMap::new()),
        };
        library.rescan();
        library
    }

    /// Re-reads changed, new and removed files; returns each board that changed as screens
    /// should now show it. A removed board comes back with no board and a problem saying so.
    pub fn rescan(&self) -> Vec<(String, BoardView)> {
        let mut found: BTreeMap<String, (PathBuf, u64, SystemTime)> = BTreeMap::new();
        if let Ok(listing) = std::fs::read_dir(&self.dir) {
            for entry in listing.flatten() {
                let path = entry.path();
                let Some(name) = path
                    .extension()
                    .filter(|extension| *extension == "toml")
                    .and(path.file_stem())
                    .and_then(|stem| stem.to_str())
                    .filter(|stem| valid_name(stem))
                    .map(str::to_owned)
                else {
                    continue;
                };
                if let Ok(metadata) = entry.metadata() {
                    let modified = metadata.modified().unwrap_or(SystemTime::UNIX_EPOCH);
                    found.insert(name, (path, metadata.len(), modified));
                }
            }
        }
        let mut entries = self.entries.write();
        let mut revision = entries.values().map(|e| e.view.revision).max().unwrap_or(0);
        let mut next = || {
            revision += 1;
            revision
        };
        let mut changed = Vec::new();
        let removed: Vec<String> = entries
            .iter()
            // The built-in demo has no file to lose.
            .filter(|(name, entry)| entry.seen.is_some() && !found.contains_key(*name))
            .map(|(name, _)| name.clone())
            .collect();
        for name in removed {
            entries.remove(&name);
            let view = BoardView {
                revision: next(),
                board: None,
                problem: Some(BoardProblem {
                    file: format!("{name}.toml"),
                    line: None,
                    column: None,
                    message: "the file was removed; this is its last version".into(),
                }),
            };
            changed.push((name, view));
        }
        for (name, (path, size, modified)) in found {
            let entry = entries.entry(name.clone()).or_default();
            if entry.seen == Some((size, modified)) {
                continue;
            }
            let file = path
                .file_name()
                .map_or(name.clone(), |f| f.to_string_lossy().into_owned());
            let parsed = std::fs::read_to_string(&path)
                .map_err(|error| BoardProblem {
                    file: file.clone(),
                    line: None,
                    column: None,
                    message: format!("cannot be read: {error}"),
                })
                .and_then(|text| parse(&name, &file, &text));
            // A file caught half written (an editor saving in place) does not parse either:
            // a good board is given up, or held private, only for a file that stays broken
            // from one poll to the next.
            let settled = entry.unsettled == Some((size, modified));
            if parsed.is_err() && entry.view.board.is_some() && !settled {
                entry.unsettled = Some((size, modified));
                continue;
            }
            entry.unsettled = None;
            entry.seen = Some((size, modified));
            let (board, problem) = match parsed {
                Ok(board) => {
                    entry.withheld = false;
                    (Some(board), None)
                }
                Err(problem) => {
                    let mut board = entry.view.board.clone();
                    let public = board.as_mut().filter(|board| !board.private);
                    if let Some(board) = public {
                        board.private = true;
                        entry.withheld = true;
                    }
                    tracing::warn!(%problem, withheld = entry.withheld, "board file refused; keeping its last good version");
                    (board, Some(problem))
                }
            };
            if (&board, &problem) != (&entry.view.board, &entry.view.problem) {
                entry.view = BoardView {
                    revision: next(),
                    board,
                    problem,
                };
                changed.push((name, entry.view.clone()));
            }
        }
        if self.demo && !entries.contains_key("demo") {
            let board = parse("demo", "demo.toml (built in)", DEMO)
                .expect("the built-in demo board parses (a unit test checks)");
            let view = BoardView {
                revision: next(),
                board: Some(board),
                problem: None,
            };
            changed.retain(|(name, _)| name != "demo");
            changed.push(("demo".into(), view.clone()));
            entries.insert(
                "demo".into(),
                Entry {
                    seen: None,
                    view,
                    withheld: false,
                    unsettled: None,
                },
            );
        }
        changed
    }

    pub fn get(&self, name: &str) -> Option<BoardView> {
        self.entries
            .read()
            .get(name)
            .map(|entry| entry.view.clone())
    }

    /// Whether the board is public but held private while its file is broken.
    pub fn withheld(&self, name: &str) -> bool {
        self.entries.read().get(name).is_some_and(|e| e.withheld)
    }

    /// Whether any board, as last parsed, passes `test`.
    pub fn any_board(&self, test: impl Fn(&Board) -> bool) -> bool {
        self.entries
            .read()
            .values()
            .filter_map(|entry| entry.view.board.as_ref())
            .any(test)
    }

    pub fn list(&self) -> Vec<BoardSummary> {
        self.entries
            .read()
            .iter()
            .map(|(name, entry)| BoardSummary {
                name: name.clone(),
                title: entry.view.board.as_ref().map(|b| b.title.clone()),
                problem: entry.view.problem.as_ref().map(ToString::to_string),
                private: entry.view.board.as_ref().is_none_or(|b| b.private),
                topics: entry
                    .view
                    .board
                    .as_ref()
                    .map(Board::topics)
                    .unwrap_or_default(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "title = \"Ops\"\n[[widget]]\ntype = \"feed\"\ntopic = \"feed:ops\"\n";
    const BETTER: &str = "title = \"Ops wall\"\n[[widget]]\ntype = \"clock\"\n";

    /// Writes a file with a modification time of its own, as a later edit would have, even
    /// within the filesystem's timestamp resolution.
    fn write(dir: &std::path::Path, file: &str, text: &str) {
        use std::sync::atomic::{AtomicU64, Ordering};
        static EDITS: AtomicU64 = AtomicU64::new(1);
        std::fs::write(dir.join(file), text).unwrap();
        let modified = SystemTime::UNIX_EPOCH
            + Duration::from_secs(1_000_000 + EDITS.fetch_add(1, Ordering::Relaxed));
        std::fs::File::options()
            .write(true)
            .open(dir.join(file))
            .unwrap()
            .set_modified(modified)
            .unwrap();
    }

    fn names(changed: Vec<(String, BoardView)>) -> Vec<String> {
        changed.into_iter().map(|(name, _)| name).collect()
    }

    #[test]
    fn the_built_in_demo_board_parses_and_stands_in_for_a_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let library = Library::open(dir.path().into(), true);
        let demo = library.get("demo").unwrap();
        assert_eq!(demo.problem, None);
        assert!(!demo.board.unwrap().widgets.is_empty());
        assert!(Library::open(dir.path().into(), false)
            .get("demo")
            .is_none());

        write(dir.path(), "demo.toml", BETTER);
        assert_eq!(names(library.rescan()), ["demo"]);
        assert_eq!(
            library.get("demo").unwrap().board.unwrap().title,
            "Ops wall"
        );
        std::fs::remove_file(dir.path().join("demo.toml")).unwrap();
        assert_eq!(names(library.rescan()), ["demo"]);
        assert_ne!(
            library.get("demo").unwrap().board.unwrap().title,
            "Ops wall"
        );
    }

    #[test]
    fn a_bad_edit_keeps_the_last_good_board_and_reports_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "ops.toml", GOOD);
        write(dir.path(), "notes.txt", "not a board");
        let library = Library::open(dir.path().into(), false);
        assert_eq!(library.list().len(), 1);
        assert_eq!(library.get("ops").unwrap().board.unwrap().title, "Ops");

        write(
            dir.path(),
            "ops.toml",
            "title = \"Ops\"\n[[widget]]\ntype = \"pie\"\n",
        );
        assert!(
            library.rescan().is_empty(),
            "perhaps half written: looked at again at the next poll"
        );
        assert_eq!(names(library.rescan()), ["ops"]);
        let state = library.get("ops").unwrap();
        assert_eq!(
            state.board.unwrap().title,
            "Ops",
            "the last good version stays"
        );
        let problem = state.problem.unwrap().to_string();
        assert!(
            problem.starts_with("ops.toml:2:1: widget 1: unknown `type`"),
            "{problem}"
        );

        write(dir.path(), "ops.toml", BETTER);
        assert_eq!(names(library.rescan()), ["ops"]);
        let state = library.get("ops").unwrap();
        assert_eq!(state.board.unwrap().title, "Ops wall");
        assert_eq!(state.problem, None);
        assert!(library.rescan().is_empty(), "nothing changed since");

        std::fs::remove_file(dir.path().join("ops.toml")).unwrap();
        assert_eq!(names(library.rescan()), ["ops"]);
        assert!(library.get("ops").is_none());
    }

    #[test]
    fn a_broken_file_holds_a_public_board_private_until_it_is_fixed() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "ops.toml", GOOD);
        write(dir.path(), "team.toml", &format!("private = true\n{GOOD}"));
        let library = Library::open(dir.path().into(), false);
        assert!(!library.get("ops").unwrap().board.unwrap().private);

        // Perhaps the edit that made it private, with a typo: nobody can tell.
        write(
            dir.path(),
            "ops.toml",
            &format!("private = true\n{GOOD}title = "),
        );
        write(dir.path(), "team.toml", "title = ");
        library.rescan();
        assert!(!library.withheld("ops"), "not at the first look");
        library.rescan();
        let held = library.get("ops").unwrap();
        assert!(held.board.unwrap().private, "held private");
        assert!(library.withheld("ops"));
        assert!(held.problem.is_some());
        let team = library.get("team").unwrap();
        assert!(team.board.unwrap().private, "a private board stays private");
        assert!(!library.withheld("team"));

        write(dir.path(), "ops.toml", GOOD);
        library.rescan();
        assert!(!library.get("ops").unwrap().board.unwrap().private);
        assert!(!library.withheld("ops"));
    }

    #[test]
    fn a_board_that_never_parsed_is_listed_with_its_problem() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "broken.toml", "title = ");
        let library = Library::open(dir.path().into(), false);
        let state = library.get("broken").unwrap();
        assert_eq!(state.board, None);
        let list = library.list();
        assert_eq!(list[0].name, "broken");
        assert!(list[0]
            .problem
            .as_deref()
            .unwrap()
            .starts_with("broken.toml:1:"));
    }
}
