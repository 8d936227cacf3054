//! A plan refused because a Subnet or IPPool was missing from the cache is checked against the apiserver before
//! the refusal stands: an object applied together with the Pod (one `kubectl apply -f` of Subnet, IPPool and
//! Pod) may not have reached the watch yet. NADs are read live before planning (`super::lookup`).

use std::time::{Duration, Instant};

use kube::api::{Api, ListParams};
use kube::runtime::reflector::ObjectRef;

use crate::api::{IPPool, Subnet};
use crate::context::Context;
use crate::webhook::denial::Denial;

/// How long to wait for the cache to show an object the apiserver already has.
const CATCH_UP: Duration = Duration::from_secs(3);

/// True when the object `denial` says is missing exists in the apiserver and has reached the cache within
/// [`CATCH_UP`]: plan again. False: the denial stands.
pub(crate) async fn caught_up(ctx: &Context, denial: &Denial) -> bool {
    let client = ctx.client.clone();
    let cache = &ctx.cache;
    let exists = match denial {
        Denial::UnknownSubnet { subnet, .. } => Api::<Subnet>::all(client)
            .get_opt(subnet)
            .await
            .is_ok_and(|o| o.is_some()),
        Denial::UnknownPool { pool, .. } => Api::<IPPool>::all(client)
            .get_opt(pool)
            .await
            .is_ok_and(|o| o.is_some()),
        Denial::NoSubnet { provider, .. } => Api::<Subnet>::all(client)
            .list(&ListParams::default())
            .await
            .is_ok_and(|l| l.items.iter().any(|s| &s.spec.provider == provider)),
        _ => false,
    };
    if !exists {
        return false;
    }
    let in_cache = || match denial {
        Denial::UnknownSubnet { subnet, .. } => {
            cache.subnets.get(&ObjectRef::new(subnet)).is_some()
        }
        Denial::UnknownPool { pool, .. } => cache.pools.get(&ObjectRef::new(pool)).is_some(),
        Denial::NoSubnet { provider, .. } => cache
            .subnets
            .state()
            .iter()
            .any(|s| &s.spec.provider == provider),
        _ => false,
    };
    let start = Instant::now();
    while start.elapsed() < CATCH_UP {
        if in_cache() {
            tracing::info!(
                waited_ms = start.elapsed().as_millis() as u64,
                "cache caught up with an object the plan missed: {denial}"
            );
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}
