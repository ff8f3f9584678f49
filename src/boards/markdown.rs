//! Text widgets' Markdown, turned into HTML once, when the board file is read. What comes out
//! is safe to put in a page as is: raw HTML in the Markdown is shown as text, and links and
//! images keep only addresses that cannot run script (`http`, `https`, `mailto`, or a path on
//! this server). A board file is trusted to lay out a board, not to run code on every screen.

use pulldown_cmark::{html, CowStr, Event, Options, Parser, Tag, TagEnd};

/// The HTML for a text widget's Markdown.
pub fn to_safe_html(markdown: &str) -> String {
    let options =
        Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TASKLISTS;
    // Links whose address is refused lose their tag and keep their text; the matching end
    // tags go too, counted so that nesting stays balanced.
    let mut refused_links = Vec::new();
    let events = Parser::new_ext(markdown, options).filter_map(|event| match event {
        Event::Html(raw) | Event::InlineHtml(raw) => Some(Event::Text(raw)),
        Event::Start(Tag::Link { ref dest_url, .. }) => {
            let safe = safe_address(dest_url);
            refused_links.push(!safe);
            safe.then_some(event)
        }
        Event::End(TagEnd::Link) => (!refused_links.pop().unwrap_or(false)).then_some(event),
        Event::Start(Tag::Image {
            link_type,
            dest_url,
            title,
            id,
        }) => {
            let dest_url = if safe_address(&dest_url) {
                dest_url
            } else {
                CowStr::Borrowed("")
            };
            Some(Event::Start(Tag::Image {
                link_type,
                dest_url,
                title,
                id,
            }))
        }
        other => Some(other),
    });
    let mut out = String::with_capacity(markdown.len() * 3 / 2);
    html::push_html(&mut out, events);
    out
}

/// Whether an address is one a text widget may link to or load.
fn safe_address(address: &str) -> bool {
    let address = address.trim();
    let scheme = address
        .split_once(':')
        .map(|(scheme, _)| scheme)
        // A colon after a slash, `?` or `#` is part of a path, not a scheme.
        .filter(|scheme| !scheme.contains(['/', '?', '#']));
    match scheme {
        None => !address.starts_with("//"),
        Some(scheme) => ["http", "https", "mailto"]
            .iter()
            .any(|allowed| scheme.eq_ignore_ascii_case(allowed)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_everyday_markdown() {
        let html =
            to_safe_html("**On call**: Ana\n\n- one\n- two\n\n[runbook](https://example.com/rb)");
        assert!(html.contains("<strong>On call</strong>"), "{html}");
        assert!(html.contains("<li>two</li>"), "{html}");
        assert!(
            html.contains(r#"<a href="https://example.com/rb">runbook</a>"#),
            "{html}"
        );
    }

    #[test]
    fn raw_html_is_shown_as_text() {
        let html =
            to_safe_html("hi <script>alert(1)</script>\n\n<div onclick=\"x()\">block</div>\n");
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains("<div"), "{html}");
        assert!(html.contains("&lt;script&gt;"), "{html}");
    }

    #[test]
    fn script_addresses_are_dropped_and_their_text_kept() {
        let html = to_safe_html(
            "[a](javascript:alert(1)) [b](JavaScript:x) [c](data:text/html,x) [d](/b/ops) [e](mailto:ops@example.com)\n\n![i](javascript:x)",
        );
        assert!(!html.to_ascii_lowercase().contains("javascript"), "{html}");
        assert!(!html.contains("data:"), "{html}");
        assert!(html.contains("<p>a b c <a"), "{html}");
        assert!(html.contains(r#"<a href="/b/ops">d</a>"#), "{html}");
        assert!(
            html.contains(r#"<a href="mailto:ops@example.com">e</a>"#),
            "{html}"
        );
        assert!(html.contains(r#"<img src="" alt="i" />"#), "{html}");
    }

    #[test]
    fn addresses() {
        assert!(safe_address("https://example.com/a:b"));
        assert!(safe_address("/b/ops?x=a:b"));
        assert!(safe_address("#top"));
        assert!(!safe_address("//evil.example/x"));
        assert!(!safe_address(" vbscript:x"));
    }
}
