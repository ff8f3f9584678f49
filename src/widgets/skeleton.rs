//! What a widget shows until its topic's first snapshot: a placeholder in the shape of its
//! content, swapped for the content once the topic has loaded.
//!
//! In place of Leptos' `Show`, whose fallback is a type-erased view: the placeholder is
//! one concrete element, so the WASM keeps no code for views it never hydrates.

use leptos::either::Either;
use leptos::prelude::*;

/// The placeholder's shape, as `style/main.css` draws it.
#[derive(Clone, Copy)]
pub enum Skeleton {
    /// A big figure.
    Number,
    /// A list or grid of rows.
    Rows,
    /// A small pill (the presence count).
    Chip,
}

impl Skeleton {
    fn class(self) -> &'static str {
        match self {
            Self::Number => "skeleton skeleton-number",
            Self::Rows => "skeleton skeleton-rows",
            Self::Chip => "skeleton skeleton-chip",
        }
    }
}

/// `content` once `loaded` turns true, the skeleton until then. `content` is built once
/// per change of `loaded`, not per change of what `loaded` reads.
pub fn until_loaded<V: IntoView + 'static>(
    loaded: impl Fn() -> bool + Send + Sync + 'static,
    skeleton: Skeleton,
    content: impl Fn() -> V + Send + Sync + 'static,
) -> impl IntoView {
    let loaded = Memo::new(move |_| loaded());
    move || {
        if loaded.get() {
            Either::Left(content())
        } else {
            Either::Right(view! { <span class=skeleton.class()></span> })
        }
    }
}
