//! `type = "generic"`: any JSON, and a jq `select` from it to what its topic should hold, as
//! an http source's `select` says it ([`Selection`]): an entity's payload, an object of
//! entities, or a list of ops. Sets of what an entity holds already write nothing.

use super::Mapped;
use crate::ingest::changes::ops_for;
use crate::ingest::jq::Selection;
use serde_json::Value;
use std::collections::BTreeMap;

/// What a payload writes to `topic`, which holds `current` now. Runs the program: CPU work,
/// for a blocking task.
pub(crate) fn map(
    selection: &Selection,
    payload: &[u8],
    topic: &str,
    current: &BTreeMap<String, Value>,
) -> Result<Mapped, String> {
    let wanted = selection.wanted(payload)?;
    let mut mapped = Mapped::default();
    for ops in ops_for(wanted, current)? {
        mapped.write(topic, ops);
    }
    Ok(mapped)
}
