//! Turns a list of ops into the entity changes they make, against a topic's current state.
//!
//! Planning is separate from committing so that a request applies whole or not at all:
//! `plan` reads the state through an overlay of its own pending changes and touches nothing;
//! the topic commits the returned changes only when every op succeeded.

use crate::ops::{Op, DEFAULT_FEED_LENGTH, MAX_FEED_LENGTH};
use crate::protocol::EventKind;
use serde_json::{Number, Value};
use std::collections::BTreeMap;
use std::fmt;

/// The longest entity id accepted.
pub const MAX_ENTITY_ID_LEN: usize = 256;

/// One entity change, before it has an offset.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub kind: EventKind,
    pub entity_id: String,
    /// The entity's new payload; `Value::Null` when it was deleted.
    pub payload: Value,
}

/// Why an op could not apply. `index` is the op's position in the request.
#[derive(Debug, Clone, PartialEq)]
pub struct OpError {
    pub index: usize,
    pub field: &'static str,
    pub message: String,
}

impl fmt::Display for OpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "op {}: {}", self.index, self.message)
    }
}

impl std::error::Error for OpError {}

/// Plans `ops` against `state`. `next_offset` is the offset the first change will get; `push`
/// derives its item ids from it so that feed items sort in arrival order.
pub fn plan(
    state: &BTreeMap<String, Value>,
    ops: &[Op],
    next_offset: u64,
) -> Result<Vec<Change>, OpError> {
    let mut plan = Plan {
        state,
        next_offset,
        pending: BTreeMap::new(),
        changes: Vec::new(),
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

/// The id `push` gives the item written at `offset`: zero-padded so that ids sort like offsets.
fn feed_item_id(offset: u64) -> String {
    format!("{offset:012}")
}

struct Plan<'a> {
    state: &'a BTreeMap<String, Value>,
    next_offset: u64,
    /// Entities changed so far by this request: `None` means deleted.
    pending: BTreeMap<String, Option<Value>>,
    changes: Vec<Change>,
}

type Refusal = (&'static str, String);

impl Plan<'_> {
    fn current(&self, id: &str) -> Option<&Value> {
        match self.pending.get(id) {
            Some(pending) => pending.as_ref(),
            None => self.state.get(id),
        }
    }

    fn write(&mut self, id: &str, payload: Value) {
        let kind = if self.current(id).is_some() {
            EventKind::Updated
        } else {
            EventKind::Added
        };
        self.pending.insert(id.to_owned(), Some(payload.clone()));
        self.changes.push(Change {
            kind,
            entity_id: id.to_owned(),
            payload,
        });
    }

    fn remove(&mut self, id: &str) {
        if self.current(id).is_some() {
            self.pending.insert(id.to_owned(), None);
            self.changes.push(Change {
                kind: EventKind::Deleted,
                entity_id: id.to_owned(),
                payload: Value::Null,
            });
        }
    }

    fn apply(&mut self, op: &Op) -> Result<(), Refusal> {
        match op {
            Op::Set { entity_id, payload } => {
                check_entity_id(entity_id)?;
                self.write(entity_id, payload.clone());
            }
            Op::Patch { entity_id, patch } => {
                check_entity_id(entity_id)?;
                let mut payload = self.current(entity_id).cloned().unwrap_or(Value::Null);
                json_patch::merge(&mut payload, patch);
                self.write(entity_id, payload);
            }
            Op::Incr {
                entity_id,
                field,
                by,
            } => {
                check_entity_id(entity_id)?;
                let payload = incremented(self.current(entity_id), field.as_deref(), by)?;
                self.write(entity_id, payload);
            }
            Op::Delete { entity_id } => {
                check_entity_id(entity_id)?;
                self.remove(entity_id);
            }
            Op::Push { payload, max } => {
                let max = max.unwrap_or(DEFAULT_FEED_LENGTH);
                if max == 0 || max > MAX_FEED_LENGTH {
                    return Err(("max", format!("max must be from 1 to {MAX_FEED_LENGTH}")));
                }
                let id = feed_item_id(self.next_offset + self.changes.len() as u64);
                self.write(&id, payload.clone());
                let live = self.live_ids();
                for old in &live[..live.len().saturating_sub(max)] {
                    self.remove(old);
                }
            }
        }
        Ok(())
    }

    /// Every entity id that exists with this request's changes applied, sorted.
    fn live_ids(&self) -> Vec<String> {
        let kept = self
            .state
            .keys()
            .filter(|id| !matches!(self.pending.get(*id), Some(None)));
        let added = self
            .pending
            .iter()
            .filter(|(id, v)| v.is_some() && !self.state.contains_key(*id))
            .map(|(id, _)| id);
        let mut ids: Vec<String> = kept.chain(added).cloned().collect();
        ids.sort();
        ids
    }
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

    #[test]
    fn set_then_update_then_delete() {
        let state = BTreeMap::new();
        let changes = plan(
            &state,
            &ops(json!([
                {"op": "set", "entity_id": "a", "payload": {"n": 1}},
                {"op": "patch", "entity_id": "a", "patch": {"m": 2}},
                {"op": "delete", "entity_id": "a"},
                {"op": "delete", "entity_id": "missing"}
            ])),
            1,
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
            &state,
            &ops(json!([
                {"op": "incr", "entity_id": "n", "by": 2},
                {"op": "incr", "entity_id": "o", "field": "score", "by": 1.5}
            ])),
            1,
        )
        .unwrap();
        assert_eq!(changes[0].payload, json!(7));
        assert_eq!(changes[1].payload, json!({"score": 1.5}));
        let err = plan(
            &state,
            &ops(json!([{"op": "incr", "entity_id": "s", "by": 1}])),
            1,
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
                &state,
                &ops(json!([{"op": "push", "payload": n, "max": 3}])),
                offset,
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
}
