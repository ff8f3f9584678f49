//! Turns a list of ops into the entity changes they make, against a topic's current state.
//!
//! Planning is separate from committing so that a request applies whole or not at all:
//! `plan` reads the state through an overlay of its own pending changes and touches nothing;
//! the topic commits the returned changes only when every op succeeded.

use crate::ops::{
    Op, DEFAULT_FEED_LENGTH, DEFAULT_SERIES_POINTS, MAX_FEED_LENGTH, MAX_SERIES_POINTS,
};
use crate::protocol::EventKind;
use serde_json::{Number, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// The longest entity id accepted.
pub(crate) const MAX_ENTITY_ID_LEN: usize = 256;

/// One entity change, before it has an offset.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub(crate) kind: EventKind,
    pub(crate) entity_id: String,
    /// The entity's new payload; `Value::Null` when it was deleted.
    pub(crate) payload: Value,
    /// When the entity expires after this change (ms since the Unix epoch), if it does.
    pub(crate) expires_at: Option<u64>,
}

/// What a topic holds that planning reads: payloads and expiry times as committed, seen
/// through the changes of writes queued ahead of this one and not yet durable.
pub struct Entities<'a> {
    pub payloads: &'a BTreeMap<String, Value>,
    pub expiries: &'a BTreeMap<String, u64>,
    pub ahead: &'a Ahead,
}

/// The entities that writes queued but not yet durable change, each as the last of them
/// leaves it.
pub type Ahead = BTreeMap<String, AheadEntity>;

/// One entity as the writes queued ahead leave it.
#[derive(Debug, Clone, PartialEq)]
pub struct AheadEntity {
    /// The write that changed it last, numbered by the topic in queueing order.
    pub write: u64,
    /// Its payload and expiry time; `None` once deleted.
    pub value: Option<(Value, Option<u64>)>,
}

const NOTHING_AHEAD: &Ahead = &BTreeMap::new();

impl<'a> Entities<'a> {
    /// Entities with no write queued ahead.
    pub(crate) fn committed(
        payloads: &'a BTreeMap<String, Value>,
        expiries: &'a BTreeMap<String, u64>,
    ) -> Self {
        Entities {
            payloads,
            expiries,
            ahead: NOTHING_AHEAD,
        }
    }

    fn payload(&self, id: &str) -> Option<&'a Value> {
        match self.ahead.get(id) {
            Some(ahead) => ahead.value.as_ref().map(|(payload, _)| payload),
            None => self.payloads.get(id),
        }
    }

    fn expiry(&self, id: &str) -> Option<u64> {
        match self.ahead.get(id) {
            Some(ahead) => ahead.value.as_ref().and_then(|(_, expires_at)| *expires_at),
            None => self.expiries.get(id).copied(),
        }
    }

    /// Every entity id that exists once the writes ahead apply.
    fn ids(&self) -> impl Iterator<Item = &'a String> + '_ {
        let ahead = self.ahead;
        let kept = self
            .payloads
            .keys()
            .filter(move |id| ahead.get(*id).is_none_or(|a| a.value.is_some()));
        let added = ahead
            .iter()
            .filter(|(id, a)| a.value.is_some() && !self.payloads.contains_key(*id))
            .map(|(id, _)| id);
        kept.chain(added)
    }
}

/// How to treat an entity's expiry when it is written.
#[derive(Clone, Copy)]
enum Expiry {
    Keep,
    Clear,
    At(u64),
}

/// Why an op could not apply. `index` is the op's position in the request.
#[derive(Debug, Clone, PartialEq)]
pub struct OpError {
    pub(crate) index: usize,
    pub(crate) field: &'static str,
    pub(crate) message: String,
}

impl fmt::Display for OpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "op {}: {}", self.index, self.message)
    }
}

impl std::error::Error for OpError {}

/// Plans `ops` against the topic's entities at time `now_ms`. `next_offset` is the offset the
/// first change will get; `push` derives its item ids from it so that feed items sort in
/// arrival order.
pub fn plan(
    entities: Entities<'_>,
    ops: &[Op],
    next_offset: u64,
    now_ms: u64,
) -> Result<Vec<Change>, OpError> {
    let mut plan = Plan {
        entities,
        next_offset,
        now_ms,
        pending: BTreeMap::new(),
        changes: Vec::new(),
        live: None,
    };
    for (index, op) in ops.iter().enumerate() {
        plan.apply(op).map_err(|(field, message)| OpError {
            index,
            field,
            message,
        })?;
    }
    Ok(plan.changes)
}

/// Deletes for every entity whose expiry is at or before `now_ms`.
pub(crate) fn expired(entities: Entities<'_>, now_ms: u64) -> Vec<Change> {
    let mut due: BTreeSet<&String> = entities.expiries.keys().collect();
    due.extend(entities.ahead.keys());
    due.retain(|id| {
        entities.payload(id).is_some() && entities.expiry(id).is_some_and(|at| at <= now_ms)
    });
    due.into_iter()
        .map(|id| Change {
            kind: EventKind::Deleted,
            entity_id: id.clone(),
            payload: Value::Null,
            expires_at: None,
        })
        .collect()
}

/// The id `push` gives the item written at `offset`: zero-padded so that ids sort like offsets.
pub(crate) fn feed_item_id(offset: u64) -> String {
    format!("{offset:012}")
}

/// An entity as this request has left it so far.
struct Pending {
    payload: Value,
    expires_at: Option<u64>,
}

struct Plan<'a> {
    entities: Entities<'a>,
    next_offset: u64,
    now_ms: u64,
    /// Entities changed so far by this request: `None` means deleted.
    pending: BTreeMap<String, Option<Pending>>,
    changes: Vec<Change>,
    /// Every entity id that exists now, kept once a `push` or `clear` needs it.
    live: Option<BTreeSet<String>>,
}

type Refusal = (&'static str, String);

impl Plan<'_> {
    fn current(&self, id: &str) -> Option<&Value> {
        match self.pending.get(id) {
            Some(pending) => pending.as_ref().map(|p| &p.payload),
            None => self.entities.payload(id),
        }
    }

    fn current_expiry(&self, id: &str) -> Option<u64> {
        match self.pending.get(id) {
            Some(pending) => pending.as_ref().and_then(|p| p.expires_at),
            None => self.entities.expiry(id),
        }
    }

    fn expiry(&self, ttl: Option<u64>, otherwise: Expiry) -> Expiry {
        match ttl {
            Some(seconds) => Expiry::At(self.now_ms.saturating_add(seconds.saturating_mul(1000))),
            None => otherwise,
        }
    }

    fn write(&mut self, id: &str, payload: Value, expiry: Expiry) {
        let kind = if self.current(id).is_some() {
            EventKind::Updated
        } else {
            EventKind::Added
        };
        let expires_at = match expiry {
            Expiry::Keep => self.current_expiry(id),
            Expiry::Clear => None,
            Expiry::At(at) => Some(at),
        };
        self.pending.insert(
            id.to_owned(),
            Some(Pending {
                payload: payload.clone(),
                expires_at,
            }),
        );
        if let Some(live) = &mut self.live {
            live.insert(id.to_owned());
        }
        self.changes.push(Change {
            kind,
            entity_id: id.to_owned(),
            payload,
            expires_at,
        });
    }

    fn remove(&mut self, id: &str) {
        if self.current(id).is_some() {
            self.pending.insert(id.to_owned(), None);
            if let Some(live) = &mut self.live {
                live.remove(id);
            }
            self.changes.push(Change {
                kind: EventKind::Deleted,
                entity_id: id.to_owned(),
                payload: Value::Null,
                expires_at: None,
            });
        }
    }

    fn apply(&mut self, op: &Op) -> Result<(), Refusal> {
        match op {
            Op::Set {
                entity_id,
                payload,
                ttl,
            } => {
                check_entity_id(entity_id)?;
                let expiry = self.expiry(*ttl, Expiry::Clear);
                self.write(entity_id, payload.clone(), expiry);
            }
            Op::Patch {
                entity_id,
                patch,
                ttl,
            } => {
                check_entity_id(entity_id)?;
                let mut payload = self.current(entity_id).cloned().unwrap_or(Value::Null);
                json_patch::merge(&mut payload, patch);
                let expiry = self.expiry(*ttl, Expiry::Keep);
                self.write(entity_id, payload, expiry);
            }
            Op::Incr {
                entity_id,
                field,
                by,
                ttl,
            } => {
                check_entity_id(entity_id)?;
                let payload = incremented(self.current(entity_id), field.as_deref(), by)?;
                let expiry = self.expiry(*ttl, Expiry::Keep);
                self.write(entity_id, payload, expiry);
            }
            Op::Delete { entity_id } => {
                check_entity_id(entity_id)?;
                self.remove(entity_id);
            }
            Op::Append {
                entity_id,
                value,
                max_points,
                max_age,
                ttl,
            } => {
                check_entity_id(entity_id)?;
                let max_points = max_points.unwrap_or(DEFAULT_SERIES_POINTS);
                if max_points == 0 || max_points > MAX_SERIES_POINTS {
                    return Err((
                        "max_points",
                        format!("max_points must be from 1 to {MAX_SERIES_POINTS}"),
                    ));
                }
                let payload = appended(
                    self.current(entity_id),
                    value,
                    self.now_ms,
                    max_points,
                    *max_age,
                )?;
                let expiry = self.expiry(*ttl, Expiry::Keep);
                self.write(entity_id, payload, expiry);
            }
            Op::Push { payload, max, ttl } => {
                let max = max.unwrap_or(DEFAULT_FEED_LENGTH);
                if max == 0 || max > MAX_FEED_LENGTH {
                    return Err(("max", format!("max must be from 1 to {MAX_FEED_LENGTH}")));
                }
                let id = feed_item_id(self.next_offset + self.changes.len() as u64);
                let expiry = self.expiry(*ttl, Expiry::Clear);
                self.write(&id, stamped(payload, self.now_ms), expiry);
                while self.live_ids().len() > max {
                    let Some(oldest) = self.live_ids().first().cloned() else {
                        break;
                    };
                    self.remove(&oldest);
                }
            }
            Op::Clear => {
                let ids: Vec<String> = self.live_ids().iter().cloned().collect();
                for id in ids {
                    self.remove(&id);
                }
            }
        }
        Ok(())
    }

    /// Every entity id that exists with this request's changes applied, in order. Built once
    /// per request, then kept up to date by `write` and `remove`.
    fn live_ids(&mut self) -> &BTreeSet<String> {
        let (entities, pending) = (&self.entities, &self.pending);
        self.live.get_or_insert_with(|| {
            let mut live: BTreeSet<String> = entities
                .ids()
                .filter(|id| !matches!(pending.get(*id), Some(None)))
                .cloned()
                .collect();
            live.extend(
                pending
                    .iter()
                    .filter(|(_, v)| v.is_some())
                    .map(|(id, _)| id.clone()),
            );
            live
        })
    }
}

/// A feed item as stored: an object gets the time it arrived as `at`, unless the publisher
/// gave one (an event's own time is better than its arrival).
fn stamped(item: &Value, now_ms: u64) -> Value {
    match item {
        Value::Object(fields) if !fields.contains_key("at") => {
            let mut fields = fields.clone();
            fields.insert("at".into(), now_ms.into());
            Value::Object(fields)
        }
        other => other.clone(),
    }
}

/// A series payload with a point added and old points dropped.
fn appended(
    current: Option<&Value>,
    value: &Number,
    now_ms: u64,
    max_points: usize,
    max_age: Option<u64>,
) -> Result<Value, Refusal> {
    let mut points = match current {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Object(series)) => match series.get("points") {
            Some(Value::Array(points)) => points.clone(),
            _ => {
                return Err((
                    "entity_id",
                    "append needs a series payload {\"points\": [...]}".into(),
                ))
            }
        },
        Some(other) => {
            return Err((
                "entity_id",
                format!("append needs a series payload, found {}", kind_of(other)),
            ))
        }
    };
    points.push(serde_json::json!([now_ms, value]));
    if let Some(age) = max_age {
        let oldest = now_ms.saturating_sub(age.saturating_mul(1000));
        points.retain(|point| {
            point
                .get(0)
                .and_then(Value::as_u64)
                .is_some_and(|t| t >= oldest)
        });
    }
    let excess = points.len().saturating_sub(max_points);
    points.drain(..excess);
    Ok(serde_json::json!({ "points": points }))
}

fn check_entity_id(id: &str) -> Result<(), Refusal> {
    if id.is_empty() || id.len() > MAX_ENTITY_ID_LEN {
        return Err((
            "entity_id",
            format!("entity_id must be 1 to {MAX_ENTITY_ID_LEN} bytes"),
        ));
    }
    Ok(())
}

/// The payload after adding `by`. Integers stay integers while they fit in an i64.
fn incremented(
    current: Option<&Value>,
    field: Option<&str>,
    by: &Number,
) -> Result<Value, Refusal> {
    let add = |old: Option<&Value>| -> Result<Value, Refusal> {
        let old = match old {
            None | Some(Value::Null) => Number::from(0),
            Some(Value::Number(n)) => n.clone(),
            Some(other) => {
                return Err((
                    "field",
                    format!("cannot increment a non-number ({})", kind_of(other)),
                ))
            }
        };
        if let (Some(a), Some(b)) = (old.as_i64(), by.as_i64()) {
            if let Some(sum) = a.checked_add(b) {
                return Ok(Value::from(sum));
            }
        }
        let sum = old.as_f64().unwrap_or(0.0) + by.as_f64().unwrap_or(0.0);
        Number::from_f64(sum)
            .map(Value::Number)
            .ok_or_else(|| ("by", "the sum is not a finite number".to_string()))
    };
    match field {
        None => add(current),
        Some(field) => {
            let mut object = match current {
                None | Some(Value::Null) => serde_json::Map::new(),
                Some(Value::Object(map)) => map.clone(),
                Some(other) => {
                    return Err((
                        "field",
                        format!("`field` needs an object payload, found {}", kind_of(other)),
                    ))
                }
            };
            let sum = add(object.get(field))?;
            object.insert(field.to_owned(), sum);
            Ok(Value::Object(object))
        }
    }
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ops(value: Value) -> Vec<Op> {
        serde_json::from_value(value).unwrap()
    }

    const NO_EXPIRIES: &BTreeMap<String, u64> = &BTreeMap::new();

    fn on(payloads: &BTreeMap<String, Value>) -> Entities<'_> {
        Entities::committed(payloads, NO_EXPIRIES)
    }

    #[test]
    fn set_then_update_then_delete() {
        let state = BTreeMap::new();
        let changes = plan(
            on(&state),
            &ops(json!([
                {"op": "set", "entity_id": "a", "payload": {"n": 1}},
                {"op": "patch", "entity_id": "a", "patch": {"m": 2}},
                {"op": "delete", "entity_id": "a"},
                {"op": "delete", "entity_id": "missing"}
            ])),
            1,
            0,
        )
        .unwrap();
        let kinds: Vec<_> = changes.iter().map(|c| c.kind.clone()).collect();
        assert_eq!(
            kinds,
            [EventKind::Added, EventKind::Updated, EventKind::Deleted]
        );
        assert_eq!(changes[1].payload, json!({"n": 1, "m": 2}));
    }

    #[test]
    fn incr_keeps_integers_and_refuses_non_numbers() {
        let state = BTreeMap::from([("n".to_string(), json!(5)), ("s".to_string(), json!("x"))]);
        let changes = plan(
            on(&state),
            &ops(json!([
                {"op": "incr", "entity_id": "n", "by": 2},
                {"op": "incr", "entity_id": "o", "field": "score", "by": 1.5}
            ])),
            1,
            0,
        )
        .unwrap();
        assert_eq!(changes[0].payload, json!(7));
        assert_eq!(changes[1].payload, json!({"score": 1.5}));
        let err = plan(
            on(&state),
            &ops(json!([{"op": "incr", "entity_id": "s", "by": 1}])),
            1,
            0,
        )
        .unwrap_err();
        assert_eq!(err.index, 0);
        assert!(err.message.contains("a string"), "{}", err.message);
    }

    #[test]
    fn push_keeps_the_newest_items() {
        let mut state = BTreeMap::new();
        let mut offset = 1;
        for n in 0..5 {
            let changes = plan(
                on(&state),
                &ops(json!([{"op": "push", "payload": n, "max": 3}])),
                offset,
                0,
            )
            .unwrap();
            for change in changes {
                offset += 1;
                match change.kind {
                    EventKind::Deleted => state.remove(&change.entity_id),
                    _ => state.insert(change.entity_id, change.payload),
                };
            }
        }
        let values: Vec<_> = state.values().cloned().collect();
        assert_eq!(values, [json!(2), json!(3), json!(4)]);
    }

    #[test]
    fn pushed_objects_are_stamped_with_their_arrival_unless_they_have_a_time() {
        assert_eq!(
            stamped(&json!({"text": "hi"}), 1_700),
            json!({"text": "hi", "at": 1_700})
        );
        assert_eq!(
            stamped(&json!({"text": "hi", "at": "2026-01-01T00:00:00Z"}), 1_700),
            json!({"text": "hi", "at": "2026-01-01T00:00:00Z"})
        );
        assert_eq!(stamped(&json!("bare"), 1_700), json!("bare"));
    }
}
