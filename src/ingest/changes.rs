//! What a run writes: its result against the topic's state now. Only what differs becomes
//! an op, so a source whose answer did not change writes nothing (no event, no offset, no
//! history, no screen woken), and one whose answer changed in one series writes one event.
//! Every entity id is checked before anything is written, so a bad answer writes nothing.

use crate::engine::plan::MAX_ENTITY_ID_LEN;
use crate::ops::{Op, MAX_OPS_PER_REQUEST};
use serde_json::Value;
use std::collections::BTreeMap;

/// The most entities one source may give a topic.
pub(crate) const MAX_ENTITIES: usize = 10_000;

/// What a run's answer says the topic should be.
#[derive(Debug, PartialEq)]
pub(crate) enum Wanted {
    /// The entities the topic should hold: each is set unless it holds that payload already;
    /// with `replace`, the topic's other entities are deleted.
    Entities {
        state: BTreeMap<String, Value>,
        replace: bool,
    },
    /// Ops a `select` gave, applied as given, but for a `set` of the payload an entity
    /// already has and a `delete` of one that is not there, which would change nothing.
    Ops(Vec<Op>),
}

/// The ops that make the topic (now `current`) what `wanted` says, in writes of at most
/// [`MAX_OPS_PER_REQUEST`]; none if it is so already.
pub(crate) fn ops_for(
    wanted: Wanted,
    current: &BTreeMap<String, Value>,
) -> Result<Vec<Vec<Op>>, String> {
    let ops: Vec<Op> = match wanted {
        Wanted::Entities { state, replace } => {
            if state.len() > MAX_ENTITIES {
                return Err(format!(
                    "the answer gives {} entities; a source may give at most {MAX_ENTITIES}",
                    state.len()
                ));
            }
            for id in state.keys() {
                check_id(id)?;
            }
            let deletes = current
                .keys()
                .filter(|id| replace && !state.contains_key(*id))
                .map(|id| Op::Delete {
                    entity_id: id.clone(),
                });
            let deletes: Vec<Op> = deletes.collect();
            state
                .into_iter()
                .filter(|(id, payload)| current.get(id) != Some(payload))
                .map(|(entity_id, payload)| Op::Set {
                    entity_id,
                    payload,
                    ttl: None,
                })
                .chain(deletes)
                .collect()
        }
        Wanted::Ops(ops) => {
            if ops.len() > MAX_OPS_PER_REQUEST {
                return Err(format!(
                    "select gave {} ops; at most {MAX_OPS_PER_REQUEST}",
                    ops.len()
                ));
            }
            ops.into_iter()
                .filter(|op| match op {
                    Op::Set {
                        entity_id,
                        payload,
                        ttl: None,
                    } => current.get(entity_id) != Some(payload),
                    Op::Delete { entity_id } => current.contains_key(entity_id),
                    _ => true,
                })
                .collect()
        }
    };
    Ok(ops
        .chunks(MAX_OPS_PER_REQUEST)
        .map(<[Op]>::to_vec)
        .collect())
}

fn check_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > MAX_ENTITY_ID_LEN {
        let shown: String = id.chars().take(40).collect();
        return Err(format!(
            "an entity id must be 1 to {MAX_ENTITY_ID_LEN} bytes: \"{shown}\""
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn state(pairs: &[(&str, Value)]) -> BTreeMap<String, Value> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    #[test]
    fn only_what_differs_is_written() {
        let current = state(&[("a", json!(1)), ("b", json!(2)), ("gone", json!(3))]);
        let same = Wanted::Entities {
            state: state(&[("a", json!(1)), ("b", json!(2)), ("gone", json!(3))]),
            replace: true,
        };
        assert!(ops_for(same, &current).unwrap().is_empty());
        let changed = Wanted::Entities {
            state: state(&[("a", json!(1)), ("b", json!(5)), ("new", json!(0))]),
            replace: true,
        };
        let ops = ops_for(changed, &current).unwrap().concat();
        assert_eq!(
            ops,
            vec![
                Op::Set {
                    entity_id: "b".into(),
                    payload: json!(5),
                    ttl: None
                },
                Op::Set {
                    entity_id: "new".into(),
                    payload: json!(0),
                    ttl: None
                },
                Op::Delete {
                    entity_id: "gone".into()
                },
            ]
        );
        let kept = Wanted::Entities {
            state: state(&[("a", json!(2))]),
            replace: false,
        };
        assert_eq!(ops_for(kept, &current).unwrap().concat().len(), 1);
    }

    #[test]
    fn bad_ids_write_nothing() {
        let wanted = Wanted::Entities {
            state: state(&[("a", json!(1)), ("", json!(2))]),
            replace: false,
        };
        assert!(ops_for(wanted, &BTreeMap::new()).is_err());
    }
}
