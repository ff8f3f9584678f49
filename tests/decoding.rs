//! Property tests of what the server takes from the outside: client frames from any bytes,
//! and the ops inside them, planned against a topic. Whatever arrives, decoding answers with
//! a frame or a typed error, and planning with changes or a typed refusal; neither panics.
//! Each property runs a bounded number of cases, so the suite's time stays fixed.

use proptest::prelude::*;
use pulseboard::engine::plan::{plan, AheadEntity, Entities};
use pulseboard::protocol::{ClientFrame, CLIENT_FRAME_TYPES};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// Field names the frames and ops use, so generated objects often look nearly right.
const KEYS: &[&str] = &[
    "type",
    "topics",
    "topic",
    "resume",
    "epoch",
    "offset",
    "board",
    "id",
    "ref",
    "ops",
    "op",
    "entity_id",
    "payload",
    "patch",
    "by",
    "field",
    "ttl",
    "value",
    "max_points",
    "max_age",
    "max",
    "user_id",
    "trace_id",
];
/// Op names, for generated ops that are nearly right.
const OPS: &[&str] = &["set", "patch", "incr", "delete", "append", "push", "clear"];
/// Other strings worth trying: names that are valid, empty, climbing, or not ASCII.
const NAMES: &[&str] = &["metric:kpis", "a", "", "../x", "ünï cödé"];

/// Values the frames and ops expect, among the random ones.
fn word() -> impl Strategy<Value = &'static str> {
    let words: Vec<&'static str> = CLIENT_FRAME_TYPES
        .iter()
        .chain(OPS)
        .chain(NAMES)
        .copied()
        .collect();
    prop::sample::select(words)
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        word().prop_map(Value::from),
        ".{0,40}".prop_map(Value::from),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..8).prop_map(|fields| {
                Value::Object(
                    fields
                        .into_iter()
                        .map(|(k, v)| (k.to_owned(), v))
                        .collect::<Map<_, _>>(),
                )
            }),
        ]
    })
}

/// A publish frame whose ops are each a near-miss: a real op name with random fields.
fn publish_frame() -> impl Strategy<Value = Value> {
    let op = (
        prop::sample::select(OPS),
        prop::collection::vec((prop::sample::select(KEYS), json_value()), 0..5),
    )
        .prop_map(|(name, fields)| {
            let mut op: Map<String, Value> =
                fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
            op.insert("op".into(), json!(name));
            Value::Object(op)
        });
    prop::collection::vec(op, 0..6)
        .prop_map(|ops| json!({"type": "publish", "topic": "metric:kpis", "ops": ops}))
}

fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(json!(0), Value::Number)),
        Just(json!(i64::MAX)),
        Just(json!(i64::MIN)),
        Just(json!(1e308)),
    ]
}

/// Ops of the right shape with values at their edges: the planner's inputs once decoding
/// has accepted them.
fn well_formed_op() -> impl Strategy<Value = Value> {
    let id = prop_oneof![word().prop_map(str::to_owned), ".{0,300}"];
    let small = prop_oneof![
        Just(0u64),
        Just(1u64),
        Just(1_000u64),
        Just(u64::MAX),
        any::<u64>()
    ];
    prop_oneof![
        (id.clone(), json_value(), prop::option::of(small.clone()))
            .prop_map(|(id, payload, ttl)| json!({"op": "set", "entity_id": id, "payload": payload, "ttl": ttl})),
        (id.clone(), json_value())
            .prop_map(|(id, patch)| json!({"op": "patch", "entity_id": id, "patch": patch})),
        (id.clone(), number(), prop::option::of(prop::sample::select(&["value", "n", ""][..])))
            .prop_map(|(id, by, field)| json!({"op": "incr", "entity_id": id, "by": by, "field": field})),
        (id.clone(), number(), prop::option::of(small.clone()), prop::option::of(small.clone()))
            .prop_map(|(id, value, points, age)| {
                json!({"op": "append", "entity_id": id, "value": value, "max_points": points, "max_age": age})
            }),
        (json_value(), prop::option::of(small.clone()))
            .prop_map(|(payload, max)| json!({"op": "push", "payload": payload, "max": max})),
        id.prop_map(|id| json!({"op": "delete", "entity_id": id})),
        Just(json!({"op": "clear"})),
    ]
    .prop_map(|mut op| {
        // An absent option is left out, as a client would, rather than sent as `null`.
        if let Value::Object(fields) = &mut op {
            for option in ["ttl", "field", "max_points", "max_age", "max"] {
                if fields.get(option) == Some(&Value::Null) {
                    fields.remove(option);
                }
            }
        }
        op
    })
}

/// Plans a decoded publish against a topic that already holds a few kinds of payload.
fn plan_publish(frame: &ClientFrame) {
    let ClientFrame::Publish(publish) = frame else {
        return;
    };
    let payloads = BTreeMap::from([
        ("a".to_owned(), json!(3)),
        ("set".to_owned(), json!({"value": 1.5, "name": "x"})),
        (
            "metric:kpis".to_owned(),
            json!({"points": [[1, 2], "junk"]}),
        ),
        ("".to_owned(), json!("text")),
    ]);
    let expiries = BTreeMap::from([("a".to_owned(), u64::MAX)]);
    // Offsets count events, so they stay far below u64::MAX; times are today's.
    // Writes queued ahead: one deletes an entity the state has, one adds another.
    let ahead = BTreeMap::from([
        (
            "a".to_owned(),
            AheadEntity {
                write: 0,
                value: None,
            },
        ),
        (
            "queued".to_owned(),
            AheadEntity {
                write: 1,
                value: Some((json!({"points": [[1, 2]]}), Some(u64::MAX))),
            },
        ),
    ]);
    let entities = Entities {
        payloads: &payloads,
        expiries: &expiries,
        ahead: &ahead,
    };
    // Refused or planned, both are answers; a panic is the failure.
    let _ = plan(entities, &publish.ops, 1 << 40, 1_795_000_000_000);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, .. ProptestConfig::default() })]

    #[test]
    fn any_text_decodes_to_a_frame_or_an_error(text in ".{0,200}") {
        let _ = ClientFrame::decode(&text);
    }

    #[test]
    fn any_json_decodes_to_a_frame_or_an_error(value in json_value()) {
        if let Ok(frame) = ClientFrame::decode(&value.to_string()) {
            plan_publish(&frame);
        }
    }

    #[test]
    fn near_miss_publishes_decode_and_plan_without_a_panic(value in publish_frame()) {
        if let Ok(frame) = ClientFrame::decode(&value.to_string()) {
            plan_publish(&frame);
        }
    }

    #[test]
    fn well_formed_ops_at_their_edges_plan_without_a_panic(ops in prop::collection::vec(well_formed_op(), 1..8)) {
        let text = json!({"type": "publish", "topic": "metric:kpis", "ops": ops}).to_string();
        let frame = ClientFrame::decode(&text);
        // Every op here is one the protocol accepts, so decoding must too.
        prop_assert!(frame.is_ok(), "{:?}", frame.err().map(|e| e.message));
        plan_publish(&frame.unwrap());
    }
}
