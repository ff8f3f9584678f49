//! The demo feed: writes believable data into the demo board's topics at a human rhythm, so a
//! fresh server shows a moving board. It publishes through the engine like any publisher.

use crate::engine::Engine;
use crate::ops::{Op, Publish};
use crate::protocol::Snapshot;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

// The demo board's topics; boards/demo.toml shows them.
/// Key figures: entities `signups`, `orders`, `errors`, each a number.
const KPIS: &str = "metric:kpis";
/// Teams ranked by `score`: entities with payload `{"name", "score"}`.
const LEADERS: &str = "board:leaders";
/// Recent activity: items `{"kind", "text"}` added with `push`.
const ACTIVITY: &str = "feed:activity";
/// How many activity items the demo keeps.
const ACTIVITY_LENGTH: usize = 8;
/// Machine figures: entity `cpu`, a percentage (the gauge), and `latency`, a series of
/// milliseconds added to with `append` (the sparkline).
const SYSTEM: &str = "metric:system";
/// One entity per service, payload `{"name", "state"}` (the status grid).
const HEALTH: &str = "status:services";
/// Entity `visitors`, a number people step by hand on the board (the manual widget).
const OFFICE: &str = "metric:office";

const TEAMS: [(&str, &str); 7] = [
    ("aurora", "Aurora"),
    ("borealis", "Borealis"),
    ("cirrus", "Cirrus"),
    ("dune", "Dune"),
    ("ember", "Ember"),
    ("fjord", "Fjord"),
    ("glacier", "Glacier"),
];

const SERVICES: [&str; 5] = ["api", "billing", "search", "checkout", "auth"];
const CITIES: [&str; 6] = ["Lisbon", "Osaka", "Austin", "Nairobi", "Oslo", "Recife"];

/// Seeds the demo topics unless they already hold data, then keeps writing until the task is
/// dropped.
pub(crate) async fn run(engine: Arc<dyn Engine>) {
    let mut rng = fastrand::Rng::new();
    let held = |snapshot: Option<Snapshot>| snapshot.is_some_and(|s| !s.state.is_empty());
    let seeded = held(engine.snapshot(KPIS).await.ok().flatten());
    if !seeded {
        seed(&engine, &mut rng).await;
    }
    // Seeded on its own: a data dir from before these widgets has the other topics already.
    if !held(engine.snapshot(HEALTH).await.ok().flatten()) {
        seed_health(&engine).await;
    }
    if !held(engine.snapshot(OFFICE).await.ok().flatten()) {
        publish(&engine, OFFICE, vec![set("visitors", json!(12))]).await;
    }
    loop {
        tokio::time::sleep(Duration::from_millis(900 + rng.u64(0..700))).await;
        tick(&engine, &mut rng).await;
    }
}

async fn publish(engine: &Arc<dyn Engine>, topic: &str, ops: Vec<Op>) {
    let request = Publish {
        ops,
        user_id: Some("demo".into()),
        trace_id: None,
    };
    if let Err(e) = engine
        .publish((topic.to_owned(), request).into(), None)
        .await
    {
        tracing::error!(topic, "demo feed write refused: {e}");
    }
}

fn set(id: &str, payload: Value) -> Op {
    Op::Set {
        entity_id: id.into(),
        payload,
        ttl: None,
    }
}

async fn seed(engine: &Arc<dyn Engine>, rng: &mut fastrand::Rng) {
    publish(
        engine,
        KPIS,
        vec![
            set("signups", json!(1280)),
            set("orders", json!(342)),
            set("errors", json!(3)),
        ],
    )
    .await;
    publish(
        engine,
        LEADERS,
        TEAMS
            .iter()
            .enumerate()
            .map(|(n, (id, name))| set(id, json!({"name": name, "score": 900 - 90 * n as i64})))
            .collect(),
    )
    .await;
    // A board that opens with a full feed looks like the wall screen it will be.
    for _ in 0..ACTIVITY_LENGTH {
        push_activity(engine, rng).await;
    }
}

async fn seed_health(engine: &Arc<dyn Engine>) {
    let services = SERVICES
        .iter()
        .map(|service| set(service, json!({"name": service, "state": "up"})))
        .collect();
    publish(engine, HEALTH, services).await;
}

async fn tick(engine: &Arc<dyn Engine>, rng: &mut fastrand::Rng) {
    tick_numbers(engine, rng).await;
    tick_health(engine, rng).await;
    if rng.u8(0..3) != 0 {
        push_activity(engine, rng).await;
    }
}

async fn tick_numbers(engine: &Arc<dyn Engine>, rng: &mut fastrand::Rng) {
    let incr = |id: &str, by: i64| Op::Incr {
        entity_id: id.into(),
        field: None,
        by: by.into(),
        ttl: None,
    };
    let mut kpis = vec![incr("signups", rng.i64(1..6))];
    if rng.bool() {
        kpis.push(incr("orders", rng.i64(1..4)));
    }
    if rng.u8(0..10) == 0 {
        kpis.push(incr("errors", 1));
    }
    publish(engine, KPIS, kpis).await;

    let (team, _) = TEAMS[rng.usize(0..TEAMS.len())];
    publish(
        engine,
        LEADERS,
        vec![Op::Incr {
            entity_id: team.into(),
            field: Some("score".into()),
            by: rng.i64(20..160).into(),
            ttl: None,
        }],
    )
    .await;
}

/// How many latency points the demo keeps: a little more than the sparkline shows.
const LATENCY_POINTS: usize = 60;

/// CPU wanders and latency follows it; now and then a service degrades or goes down, and
/// recovers later.
async fn tick_health(engine: &Arc<dyn Engine>, rng: &mut fastrand::Rng) {
    let cpu =
        35.0 + 30.0 * (rng.f64() + rng.f64()) / 2.0 + if rng.u8(0..12) == 0 { 30.0 } else { 0.0 };
    let latency = 40.0 + cpu * 1.5 + rng.f64() * 25.0;
    publish(
        engine,
        SYSTEM,
        vec![
            set("cpu", json!((cpu * 10.0).round() / 10.0)),
            Op::Append {
                entity_id: "latency".into(),
                value: serde_json::Number::from(latency.round() as u64),
                max_points: Some(LATENCY_POINTS),
                max_age: None,
                ttl: None,
            },
        ],
    )
    .await;
    if rng.u8(0..6) == 0 {
        let service = SERVICES[rng.usize(0..SERVICES.len())];
        let state = match rng.u8(0..10) {
            0 => "down",
            1..=3 => "degraded",
            _ => "up",
        };
        publish(
            engine,
            HEALTH,
            vec![set(service, json!({"name": service, "state": state}))],
        )
        .await;
    }
}

async fn push_activity(engine: &Arc<dyn Engine>, rng: &mut fastrand::Rng) {
    let city = CITIES[rng.usize(0..CITIES.len())];
    let item = match rng.u8(0..3) {
        0 => {
            json!({"kind": "order", "text": format!("Order #{} from {city}", rng.u32(10_000..99_999))})
        }
        1 => {
            let service = SERVICES[rng.usize(0..SERVICES.len())];
            json!({"kind": "deploy", "text": format!("Deployed {service} v1.{}.{}", rng.u8(0..30), rng.u8(0..10))})
        }
        _ => json!({"kind": "signup", "text": format!("New signup from {city}")}),
    };
    publish(
        engine,
        ACTIVITY,
        vec![Op::Push {
            payload: item,
            max: Some(ACTIVITY_LENGTH),
            ttl: None,
        }],
    )
    .await;
}
