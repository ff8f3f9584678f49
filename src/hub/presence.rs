//! Who is on each board: people, each with their open pages underneath. A board's pages are
//! this instance's own (its members here) and those other instances report through the
//! engine (`remote`). A person arrives with their first page and leaves a grace after their
//! last one closed, so a reload or a reconnect does not flap; a closed page is kept (and
//! shared) as `closing` until then. Changes are not sent as they happen: the hub flushes a
//! board a moment after its first change, and the board's pages get one frame for the whole
//! burst, encoded once, with the people listed only up to a limit (past it, a count).
//! The same members receive the board's new definition when its file changes, and who is
//! writing a note. A member whose queue is full when any of these is sent falls behind on
//! the board, and gets the board's current definition and presence when it catches up.

use super::outbox::{Outbox, Pushed};
use super::ConnectionId;
use crate::access::person::Someone;
use crate::encoded::{encode, EncodedFrame};
use crate::engine::Viewer;
use crate::protocol::{Person, Presence, ServerFrame, Typing};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

/// How often one page may tell the others its person is typing.
const TYPING_EVERY: Duration = Duration::from_millis(1000);

/// How presence is told: the grace before a person whose pages all closed has left, and how
/// many people a frame lists before it gives only their count.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PresenceSettings {
    pub(crate) grace: Duration,
    pub(crate) list_max: usize,
}

struct Member {
    someone: Someone,
    since: String,
    outbox: Outbox,
    /// When this page last said its person is typing.
    typed: Option<Instant>,
    /// Has had no presence frame yet.
    fresh: bool,
}

#[derive(Default)]
struct Board {
    members: BTreeMap<ConnectionId, Member>,
    /// Pages closed within the grace, and when it ends.
    closing: BTreeMap<ConnectionId, (Viewer, Instant)>,
    /// Pages on other instances, as last reported.
    remote: Vec<Viewer>,
    /// The people the last frame showed, by id.
    shown: BTreeSet<String>,
    /// What the last frame said: the count, and the people when listed.
    said: Option<(u64, Option<Vec<Person>>)>,
    /// A flush is due: something changed since the last frame.
    due: bool,
}

pub(crate) struct Boards {
    /// Names this instance's pages apart from every other instance's.
    tag: String,
    settings: PresenceSettings,
    boards: HashMap<String, Board>,
    /// Each board's definition as last sent to its viewers, for one that missed it.
    shown: HashMap<String, EncodedFrame>,
}

/// How a board a connection fell behind on is listed among its topics: no topic name has a
/// space in it.
pub(crate) const BOARD_KEY: &str = "board ";

/// Offers a frame to a viewer; a full queue marks it behind on the board.
fn offer(member: &Member, board: &str, frame: &EncodedFrame) {
    if member.outbox.try_push(frame.clone()) == Pushed::Full {
        member.outbox.fall_behind(&format!("{BOARD_KEY}{board}"));
    }
}

/// The people on a board from its pages, longest here first (the same order on every
/// instance). A person's `since` is their oldest page's; closing pages keep the person but
/// are not among their tabs.
fn people<'a>(viewers: impl Iterator<Item = &'a Viewer>) -> Vec<Person> {
    let mut people: BTreeMap<&str, Person> = BTreeMap::new();
    for viewer in viewers {
        let person = people.entry(&viewer.person).or_insert_with(|| Person {
            id: viewer.person.clone(),
            name: viewer.name.clone(),
            guest: viewer.guest,
            since: viewer.since.clone(),
            tabs: Vec::new(),
        });
        if viewer.since < person.since {
            person.since = viewer.since.clone();
        }
        if !viewer.closing {
            person.tabs.push(viewer.tab.clone());
        }
    }
    let mut people: Vec<Person> = people.into_values().collect();
    for person in &mut people {
        person.tabs.sort();
    }
    people.sort_by(|a, b| (&a.since, &a.id).cmp(&(&b.since, &b.id)));
    people
}

impl Boards {
    /// `tag` is this instance's part of each page id (empty when it is the only one).
    pub(crate) fn new(tag: String, settings: PresenceSettings) -> Self {
        Boards {
            tag,
            settings,
            boards: HashMap::new(),
            shown: HashMap::new(),
        }
    }

    /// The id a connection has in presence frames (as its person's tab) and in `welcome`.
    pub(crate) fn viewer_id(&self, connection: ConnectionId) -> String {
        if self.tag.is_empty() {
            format!("c{connection}")
        } else {
            format!("c{connection}.{}", self.tag)
        }
    }

    /// Adds a page to a board. True when the board now needs a flush scheduled (it had none
    /// due).
    pub(crate) fn join(
        &mut self,
        board: &str,
        connection: ConnectionId,
        outbox: &Outbox,
        someone: Someone,
        now: &str,
    ) -> bool {
        let entry = self.boards.entry(board.to_owned()).or_default();
        if entry.members.contains_key(&connection) {
            return false;
        }
        entry.members.insert(
            connection,
            Member {
                someone,
                since: now.to_owned(),
                outbox: outbox.clone(),
                typed: None,
                fresh: true,
            },
        );
        !std::mem::replace(&mut entry.due, true)
    }

    /// Closes a page on a board: its person stays for the grace. True when the board now
    /// needs a flush scheduled.
    pub(crate) fn leave(&mut self, board: &str, connection: ConnectionId) -> bool {
        let tag = self.viewer_id(connection);
        let until = Instant::now() + self.settings.grace;
        let Some(entry) = self.boards.get_mut(board) else {
            return false;
        };
        let Some(member) = entry.members.remove(&connection) else {
            return false;
        };
        let mut viewer = Self::viewer(tag, &member);
        viewer.closing = true;
        entry.closing.insert(connection, (viewer, until));
        !std::mem::replace(&mut entry.due, true)
    }

    /// Whether the connection's page is on the board.
    pub(crate) fn is_member(&self, board: &str, connection: ConnectionId) -> bool {
        self.boards
            .get(board)
            .is_some_and(|b| b.members.contains_key(&connection))
    }

    /// Takes the pages `keep` refuses off their boards at once (no grace: they may no longer
    /// see the board, so nothing more is sent to them), but for boards `open` to everyone.
    /// Returns the boards that now need a flush scheduled.
    pub(crate) fn retain_members(
        &mut self,
        open: impl Fn(&str) -> bool,
        keep: impl Fn(&str, &Outbox) -> bool,
    ) -> Vec<String> {
        let mut due = Vec::new();
        for (name, board) in &mut self.boards {
            if open(name) {
                continue;
            }
            let before = board.members.len();
            board.members.retain(|_, member| keep(name, &member.outbox));
            if board.members.len() != before && !std::mem::replace(&mut board.due, true) {
                due.push(name.clone());
            }
        }
        due
    }

    /// Lets go of the pages on a board whose grace has ended. True when the board now needs
    /// a flush scheduled.
    pub(crate) fn end_grace(&mut self, board: &str) -> bool {
        let now = Instant::now();
        let Some(entry) = self.boards.get_mut(board) else {
            return false;
        };
        let before = entry.closing.len();
        entry.closing.retain(|_, (_, until)| *until > now);
        if entry.closing.len() == before {
            return false;
        }
        !std::mem::replace(&mut entry.due, true)
    }

    fn viewer(tab: String, member: &Member) -> Viewer {
        Viewer {
            tab,
            person: member.someone.id.clone(),
            name: member.someone.name.clone(),
            guest: member.someone.guest,
            since: member.since.clone(),
            closing: false,
        }
    }

    /// This instance's own pages on a board, open and closing, for the others.
    pub(crate) fn local_viewers(&self, board: &str) -> Vec<Viewer> {
        let Some(entry) = self.boards.get(board) else {
            return Vec::new();
        };
        let open = entry
            .members
            .iter()
            .map(|(id, member)| Self::viewer(self.viewer_id(*id), member));
        let closing = entry.closing.values().map(|(viewer, _)| viewer.clone());
        open.chain(closing).collect()
    }

    /// Whether the board has more people than a frame lists: its count is then told less
    /// often, as nobody reads a count of thousands to the person.
    pub(crate) fn crowded(&self, board: &str) -> bool {
        self.boards
            .get(board)
            .and_then(|b| b.said.as_ref())
            .is_some_and(|(count, _)| *count as usize > self.settings.list_max)
    }

    /// Each board someone here is on: the people on it (every instance's, as last told) and
    /// this instance's open pages of it.
    pub(crate) fn watched(&self) -> Vec<(String, u64, usize)> {
        let mut watched: Vec<_> = self
            .boards
            .iter()
            .map(|(name, board)| {
                let people = board.said.as_ref().map_or(0, |(count, _)| *count);
                (name.clone(), people, board.members.len())
            })
            .collect();
        watched.sort();
        watched
    }

    /// Whether anyone here is on the board (or closed a page within the grace).
    pub(crate) fn watches(&self, board: &str) -> bool {
        self.boards.contains_key(board)
    }

    /// Takes the pages other instances report for a board. True when the board now needs
    /// a flush scheduled.
    pub(crate) fn remote(&mut self, board: &str, mut viewers: Vec<Viewer>) -> bool {
        let Some(entry) = self.boards.get_mut(board) else {
            return false;
        };
        viewers.sort_by(|a, b| a.tab.cmp(&b.tab));
        if entry.remote == viewers {
            return false;
        }
        entry.remote = viewers;
        !std::mem::replace(&mut entry.due, true)
    }

    /// Sends the board's pages what changed since the last frame, in one frame: to every
    /// page when who is here (or their pages) changed, else only to pages that have had no
    /// frame yet. A board nobody is on any more is forgotten.
    pub(crate) fn flush(&mut self, board: &str) {
        let Some(entry) = self.boards.get_mut(board) else {
            return;
        };
        entry.due = false;
        if entry.members.is_empty() && entry.closing.is_empty() {
            self.boards.remove(board);
            return;
        }
        let (frame, changed) = self.presence_frame(board, true);
        let entry = self.boards.get_mut(board).expect("the board is here");
        for member in entry.members.values_mut() {
            if changed || member.fresh {
                offer(member, board, &frame);
            }
            member.fresh = false;
        }
    }

    /// The board's presence now, as a frame (with what changed since the last one, when
    /// `record` makes this the last one), and whether it says something the last did not.
    fn presence_frame(&mut self, board: &str, record: bool) -> (EncodedFrame, bool) {
        let local = self.local_viewers(board);
        let entry = self.boards.get_mut(board).expect("the board is here");
        let people = people(local.iter().chain(&entry.remote));
        let count = people.len() as u64;
        let listed = (people.len() <= self.settings.list_max).then_some(people);
        let said = Some((count, listed.clone()));
        let changed = entry.said != said;
        let (mut joined, mut left) = (Vec::new(), Vec::new());
        if record {
            let now: BTreeSet<String> = listed.iter().flatten().map(|p| p.id.clone()).collect();
            if listed.is_some() {
                joined = now.difference(&entry.shown).cloned().collect();
                left = entry.shown.difference(&now).cloned().collect();
            }
            entry.shown = now;
            entry.said = said;
        }
        let frame = encode(&ServerFrame::Presence(Presence {
            board: board.to_owned(),
            count,
            people: listed,
            joined,
            left,
        }));
        (frame, changed)
    }

    /// Who of this board's pages is writing a note, for its other pages here and on the
    /// other instances; `None` when the page said so too recently or is not on the board.
    pub(crate) fn typing(&mut self, board: &str, connection: ConnectionId) -> Option<Typing> {
        let member = self.boards.get_mut(board)?.members.get_mut(&connection)?;
        let now = Instant::now();
        if member.typed.is_some_and(|at| now - at < TYPING_EVERY) {
            return None;
        }
        member.typed = Some(now);
        Some(Typing {
            board: board.to_owned(),
            person: member.someone.id.clone(),
            name: member.someone.name.clone(),
        })
    }

    /// Tells a board's pages here, but the writer's own, who is writing a note.
    pub(crate) fn tell_typing(&self, typing: &Typing) {
        let Some(entry) = self.boards.get(&typing.board) else {
            return;
        };
        let frame = encode(&ServerFrame::Typing(typing.clone()));
        for member in entry
            .members
            .values()
            .filter(|m| m.someone.id != typing.person)
        {
            offer(member, &typing.board, &frame);
        }
    }

    /// Sends a board's new definition to every viewer of it.
    pub(crate) fn show(&mut self, board: &str, frame: EncodedFrame) {
        for member in self
            .boards
            .get(board)
            .into_iter()
            .flat_map(|b| b.members.values())
        {
            offer(member, board, &frame);
        }
        self.shown.insert(board.to_owned(), frame);
    }

    /// Sends a viewer that fell behind on a board its current definition and presence.
    /// False if its queue is still too full.
    pub(crate) fn catch_up(&mut self, board: &str, connection: ConnectionId) -> bool {
        let Some(member) = self
            .boards
            .get(board)
            .and_then(|b| b.members.get(&connection))
        else {
            return true;
        };
        if member.outbox.room() < 2 {
            return false;
        }
        let outbox = member.outbox.clone();
        let definition = self.shown.get(board).cloned();
        let (presence, _) = self.presence_frame(board, false);
        for frame in definition.into_iter().chain([presence]) {
            outbox.try_push(frame);
        }
        true
    }

    /// Sends a frame to every viewer of every board, once per connection; returns how many
    /// connections it was queued for.
    pub(crate) fn send_to_all(&self, frame: &EncodedFrame) -> usize {
        let mut sent = BTreeSet::new();
        for (connection, member) in self.boards.values().flat_map(|b| b.members.iter()) {
            if sent.insert(*connection) {
                member.outbox.try_push(frame.clone());
            }
        }
        sent.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::outbox::{of_frames as outbox, Inbox, Next};
    use crate::protocol::ServerFrame;

    fn settings() -> PresenceSettings {
        PresenceSettings {
            grace: Duration::from_millis(0),
            list_max: 3,
        }
    }

    fn someone(id: &str) -> Someone {
        Someone {
            id: id.into(),
            name: id.to_uppercase(),
            guest: false,
        }
    }

    /// The presence frames queued for a page, decoded.
    fn received(inbox: &Inbox) -> Vec<Presence> {
        let mut frames = Vec::new();
        while let Some(Next::Frame(frame)) = inbox.try_next() {
            if let Ok(ServerFrame::Presence(p)) = ServerFrame::decode(frame.as_str()) {
                frames.push(p);
            }
        }
        frames
    }

    #[test]
    fn a_person_with_several_pages_is_one_person_until_the_last_one_closes() {
        let mut boards = Boards::new(String::new(), settings());
        let (ana_1, ana_inbox) = outbox(16);
        let (ana_2, _) = outbox(16);
        let (bo, bo_inbox) = outbox(16);
        boards.join("ops", 1, &ana_1, someone("ana"), "t1");
        boards.join("ops", 2, &ana_2, someone("ana"), "t2");
        boards.join("ops", 3, &bo, someone("bo"), "t3");
        boards.flush("ops");
        let first = received(&bo_inbox);
        assert_eq!(first.len(), 1, "a burst of joins is one frame");
        assert_eq!(first[0].count, 2);
        assert_eq!(first[0].joined, ["ana", "bo"]);
        let people = first[0].people.as_ref().unwrap();
        assert_eq!(people[0].tabs, ["c1", "c2"]);
        received(&ana_inbox);

        boards.leave("ops", 2);
        boards.flush("ops");
        let after = received(&bo_inbox);
        assert_eq!(after[0].count, 2);
        assert!(
            after[0].left.is_empty(),
            "closing one of two pages is no leave"
        );

        // The last page closes: Ana stays through the grace, then leaves.
        boards.leave("ops", 1);
        boards.flush("ops");
        assert!(received(&bo_inbox)
            .iter()
            .all(|p| p.count == 2 && p.left.is_empty()));
        assert!(boards.end_grace("ops"));
        boards.flush("ops");
        let gone = received(&bo_inbox);
        assert_eq!(
            (gone[0].count, gone[0].left.clone()),
            (1, vec!["ana".to_owned()])
        );
    }

    #[test]
    fn past_the_list_limit_a_board_gets_a_count() {
        let mut boards = Boards::new(String::new(), settings());
        let (page, inbox) = outbox(16);
        for (n, id) in ["a", "b", "c", "d"].into_iter().enumerate() {
            boards.join("ops", n as u64 + 1, &page, someone(id), "t");
        }
        boards.flush("ops");
        let frame = &received(&inbox)[0];
        assert_eq!((frame.count, frame.people.is_none()), (4, true));
        assert!(frame.joined.is_empty());
    }

    #[test]
    fn a_person_on_two_instances_counts_once() {
        let mut boards = Boards::new("a".into(), settings());
        let (page, inbox) = outbox(16);
        boards.join("ops", 1, &page, someone("ana"), "t1");
        let elsewhere = Viewer {
            tab: "c1.b".into(),
            person: "ana".into(),
            name: "ANA".into(),
            guest: false,
            since: "t0".into(),
            closing: false,
        };
        boards.remote("ops", vec![elsewhere]);
        boards.flush("ops");
        let frame = &received(&inbox)[0];
        assert_eq!(frame.count, 1);
        let ana = &frame.people.as_ref().unwrap()[0];
        assert_eq!(
            (ana.since.as_str(), ana.tabs.clone()),
            ("t0", vec!["c1.a".to_owned(), "c1.b".to_owned()])
        );
    }

    #[test]
    fn typing_reaches_the_others_at_most_once_a_second_per_page() {
        let mut boards = Boards::new(String::new(), settings());
        let (ana, ana_inbox) = outbox(16);
        let (bo, bo_inbox) = outbox(16);
        boards.join("ops", 1, &ana, someone("ana"), "t");
        boards.join("ops", 2, &bo, someone("bo"), "t");
        boards.flush("ops");
        received(&ana_inbox);
        received(&bo_inbox);
        let typing = boards.typing("ops", 1).expect("the first one goes out");
        assert!(boards.typing("ops", 1).is_none());
        boards.tell_typing(&typing);
        assert!(
            ana_inbox.try_next().is_none(),
            "not to the writer's own pages"
        );
        let Some(Next::Frame(frame)) = bo_inbox.try_next() else {
            panic!("Bo hears of it")
        };
        assert!(frame.as_str().contains(r#""type":"typing""#));
    }
}
