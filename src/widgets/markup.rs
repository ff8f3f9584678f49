//! Lists written as HTML text: the avatars of who is here, the notes of the panel. Each
//! distinct `view!` costs the board's WASM its build, hydrate and update code, kilobytes for
//! a list item with a few attributes; a list whose items are rebuilt whole on every change
//! anyway is cheaper as one escaped string set as the parent's `inner_html`. Everything
//! written here goes through [`escape`].

use std::fmt::Write;

/// Text made safe for HTML content and for quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut safe = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => safe.push_str("&amp;"),
            '<' => safe.push_str("&lt;"),
            '>' => safe.push_str("&gt;"),
            '"' => safe.push_str("&quot;"),
            '\'' => safe.push_str("&#39;"),
            c => safe.push(c),
        }
    }
    safe
}

/// An element being written: `<tag class="…" name="value"…>`, then either its text and end
/// tag ([`Element::text`]), or only the end of the start tag ([`Element::start`]), its content
/// and end tag then written by the caller.
pub struct Element<'a> {
    out: &'a mut String,
    tag: &'static str,
}

impl<'a> Element<'a> {
    pub fn open(out: &'a mut String, tag: &'static str, class: &str) -> Self {
        let _ = write!(out, "<{tag} class=\"{}\"", escape(class));
        Element { out, tag }
    }

    /// An attribute, escaped.
    pub fn attr(self, name: &str, value: &str) -> Self {
        let _ = write!(self.out, " {name}=\"{}\"", escape(value));
        self
    }

    /// Ends the start tag and writes escaped text as the content, then the end tag.
    pub fn text(self, text: &str) {
        self.out.push('>');
        self.out.push_str(&escape(text));
        self.out.push_str("</");
        self.out.push_str(self.tag);
        self.out.push('>');
    }

    /// Ends the start tag; the caller writes the content and the end tag.
    pub fn start(self) {
        self.out.push('>');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_attributes_are_escaped() {
        assert_eq!(
            escape(r#"<b onclick="x">'&'</b>"#),
            "&lt;b onclick=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/b&gt;"
        );
        let mut out = String::new();
        Element::open(&mut out, "span", "viewer me")
            .attr("title", "Ana \"A\" <Lima>")
            .text("<AL>");
        assert_eq!(
            out,
            r#"<span class="viewer me" title="Ana &quot;A&quot; &lt;Lima&gt;">&lt;AL&gt;</span>"#
        );
        let mut out = String::new();
        Element::open(&mut out, "li", "note").start();
        Element::open(&mut out, "p", "note-text").text("hi");
        assert_eq!(out, r#"<li class="note"><p class="note-text">hi</p>"#);
    }
}
