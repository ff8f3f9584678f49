//! Leases: which instance runs a pull source. `pb:lease:<name>` holds the instance that
//! holds it, with an expiry; the holder renews it, the others find it taken, and once its
//! holder stops renewing (it died) the first to ask after the expiry takes it.

use super::unreachable;
use crate::engine::EngineError;
use redis::aio::ConnectionManager;
use redis::Script;
use std::time::Duration;

/// Takes the lease if it is free, renews it if this instance holds it: 1 if held now.
const TAKE_OR_RENEW: &str = r"
local holder = redis.call('GET', KEYS[1])
if holder == false then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
";

pub(crate) struct Leases {
    script: Script,
}

impl Leases {
    pub(crate) fn new() -> Self {
        Self {
            script: Script::new(TAKE_OR_RENEW),
        }
    }

    /// Whether `instance` holds the lease `name` for the next `term`, taking or renewing it.
    pub(crate) async fn hold(
        &self,
        commands: &ConnectionManager,
        instance: &str,
        name: &str,
        term: Duration,
    ) -> Result<bool, EngineError> {
        let mut commands = commands.clone();
        let held: i64 = self
            .script
            .key(format!("pb:lease:{name}"))
            .arg(instance)
            .arg(term.as_millis().max(1) as u64)
            .invoke_async(&mut commands)
            .await
            .map_err(unreachable)?;
        Ok(held == 1)
    }
}
