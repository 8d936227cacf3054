//! A Subnet's default IPPool (`spec.default: true`): where a Pod that names no pool gets its address. At most
//! one per Subnet (the IPPool webhook refuses a second); should two exist anyway (created at the same moment),
//! the older one (then the first by name) is the default, so every replica decides alike.

use std::sync::Arc;

use kube::ResourceExt;

use crate::api::{IPPool, Subnet};
use crate::webhook::denial::Denial;
use crate::webhook::resolve::Ask;
use crate::webhook::rules::check_pool;

/// The default pool among a Subnet's pools.
pub(crate) fn default_of(pools: &[Arc<IPPool>]) -> Option<Arc<IPPool>> {
    pools
        .iter()
        .filter(|p| p.is_default())
        .min_by_key(|p| {
            (
                p.metadata.creation_timestamp.clone().map(|t| t.0),
                p.name_any(),
            )
        })
        .cloned()
}

/// The Subnet's default pool when it serves this attachment. `Ok(None)`: there is none, or it does not serve
/// the Pod's network (`multusName`), namespace or labels (`podAffinity`, `namespaceAffinity`): the Pod then
/// takes an address outside every pool, as without a default pool. A selector nadipam cannot read is refused.
pub(crate) fn serving_default(
    pools: &[Arc<IPPool>],
    subnet: &Subnet,
    network: &str,
    ask: &Ask<'_>,
) -> Result<Option<Arc<IPPool>>, Denial> {
    let Some(pool) = default_of(pools) else {
        return Ok(None);
    };
    match check_pool(&pool, subnet, network, ask.namespace, ask.labels) {
        Ok(()) => Ok(Some(pool)),
        Err(bad @ Denial::BadNodeScope { .. }) => Err(bad),
        Err(skipped) => {
            tracing::debug!(pool = %pool.name_any(), "default pool skipped: {skipped}");
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pool(name: &str, default: bool, created: &str) -> Arc<IPPool> {
        Arc::new(
            serde_json::from_value(json!({"apiVersion": "nadipam.io/v1", "kind": "IPPool",
                "metadata": {"name": name, "creationTimestamp": created},
                "spec": {"subnet": "s", "ips": ["10.0.0.10"], "default": default}}))
            .unwrap(),
        )
    }

    #[test]
    fn the_oldest_default_pool_wins_then_the_first_by_name() {
        assert!(default_of(&[pool("a", false, "2026-01-01T00:00:00Z")]).is_none());
        let pools = [
            pool("plain", false, "2025-01-01T00:00:00Z"),
            pool("young", true, "2026-02-01T00:00:00Z"),
            pool("old-b", true, "2026-01-01T00:00:00Z"),
            pool("old-a", true, "2026-01-01T00:00:00Z"),
        ];
        assert_eq!(default_of(&pools).unwrap().name_any(), "old-a");
    }
}
