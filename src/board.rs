//! The demo board: the page at `/`. It names the topics it shows, lays out their widgets, and
//! (in the browser) opens the live connection that feeds them.

use crate::live::Live;
use crate::widgets::{ConnectionStatusBadge, Counter, Feed, Leaderboard, PresenceBadge};
use leptos::prelude::*;

/// The demo board's name, as it appears in presence frames.
pub const DEMO_BOARD: &str = "demo";
/// Key figures: entities `signups`, `orders`, `errors`, each a number.
pub const KPIS: &str = "metric:kpis";
/// Teams ranked by `score`: entities with payload `{"name", "score"}`.
pub const LEADERS: &str = "board:leaders";
/// Recent activity: items `{"kind", "text"}` added with `push`.
pub const ACTIVITY: &str = "feed:activity";
/// How many activity items the demo keeps and shows.
pub const ACTIVITY_LENGTH: usize = 8;

#[component]
pub fn DemoBoard() -> impl IntoView {
    let live = Live::new(&[KPIS, LEADERS, ACTIVITY]);
    #[cfg(feature = "hydrate")]
    Effect::new(move |_| crate::live::socket::connect(live, DEMO_BOARD));
    view! {
        <main class="board" class:snap=move || live.snap.get()>
            <header class="board-header">
                <h1>"Pulseboard" <span class="board-name">" · demo"</span></h1>
                <PresenceBadge live/>
                <ConnectionStatusBadge live/>
            </header>
            <section class="board-grid">
                <Counter live topic=KPIS entity="signups" label="Signups"/>
                <Counter live topic=KPIS entity="orders" label="Orders"/>
                <Counter live topic=KPIS entity="errors" label="Errors"/>
                <Leaderboard live topic=LEADERS title="Leaderboard" field="score" limit=5/>
                <Feed live topic=ACTIVITY title="Activity" rows=ACTIVITY_LENGTH/>
            </section>
        </main>
    }
}
