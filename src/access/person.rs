//! Who a page is, as presence and notes name them: a person, not a tab. A caller with a key
//! (an admin session, a share link, an API key on a socket) is the key's person under the
//! key's name; an anonymous browser is the id in its guest cookie (or one a client gives in
//! `join`), so its tabs are one person, shown as "Guest 417" and never as anyone's name.

use super::Caller;
use sha2::{Digest, Sha256};

/// A person on a board.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Someone {
    /// Stable for the person across their pages, reloads and the instances they reach.
    pub(crate) id: String,
    pub(crate) name: String,
    /// An anonymous browser.
    pub(crate) guest: bool,
}

impl Caller {
    /// The person this caller is on a board: the key's, or for an anonymous page the guest
    /// its browser's id stands for (`anonymous`; `tab`, the page itself, when it sent none).
    pub(crate) fn someone(&self, anonymous: Option<&str>, tab: &str) -> Someone {
        match self.key() {
            Some(key) => Someone {
                id: format!("k-{}", key.id),
                name: if key.name.is_empty() {
                    key.id.clone()
                } else {
                    key.name.clone()
                },
                guest: false,
            },
            None => guest(anonymous.unwrap_or(tab)),
        }
    }
}

/// The guest a browser's id stands for. Its public id is a digest of that id, so the one a
/// browser keeps is never sent to the others (who could then speak as that guest): 128 bits
/// of SHA-256, too many to search for another id with the same digest.
fn guest(browser: &str) -> Someone {
    let digest = Sha256::digest(browser.as_bytes());
    let id: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    let number = u16::from_be_bytes([digest[16], digest[17]]) % 900 + 100;
    Someone {
        id: format!("g-{id}"),
        name: format!("Guest {number}"),
        guest: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_browser_is_the_same_guest_in_every_tab_and_never_shows_its_id() {
        let caller = Caller::default();
        let one = caller.someone(Some("browser-1234abcd"), "c1");
        assert_eq!(one, caller.someone(Some("browser-1234abcd"), "c7"));
        assert!(one.guest && one.name.starts_with("Guest "));
        assert!(!one.id.contains("browser"));
        assert_eq!(one.id.len(), "g-".len() + 32, "128 bits of digest");
        assert_ne!(one.id, caller.someone(Some("browser-5678abcd"), "c1").id);
        // A page that sent no id is a person of its own.
        assert_ne!(caller.someone(None, "c1").id, caller.someone(None, "c2").id);
    }
}
