//! Writes Subnet and IPPool status through the status subresource, batched: at most once a second, only for
//! objects whose status changed, and only when a lease, Subnet or IPPool changed (plus a periodic check).

use std::collections::HashMap;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::reflector::Store;
use kube::{Resource, ResourceExt};

use super::state::Ctl;
use super::status::{pool_counts, pool_status_among, subnet_status};
use crate::api::{IPLease, IPPool, IPPoolStatus, Subnet, SubnetStatus};

/// How often the writer looks for work.
const TICK: Duration = Duration::from_secs(1);
/// How often every status is recomputed even without a change seen.
const FULL: Duration = Duration::from_secs(30);

/// What has been written, to skip rewriting a status the cache has not caught up with yet.
#[derive(Default)]
struct Written {
    subnets: HashMap<String, SubnetStatus>,
    pools: HashMap<String, IPPoolStatus>,
}

/// Runs until dropped.
pub(crate) async fn run(ctl: Arc<Ctl>) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut fingerprint = 0u64;
    let mut last_full: Option<Instant> = None;
    let mut written = Written::default();
    loop {
        tick.tick().await;
        let cache = &ctl.ctx.cache;
        let now = fingerprint_of(&cache.subnets).wrapping_add(fingerprint_of(&cache.pools));
        let full = last_full.is_none_or(|t| t.elapsed() >= FULL);
        let leases_changed = ctl.lease_index.take_changed();
        if !(full || leases_changed || now != fingerprint) {
            continue;
        }
        fingerprint = now;
        if full {
            last_full = Some(Instant::now());
            written = Written::default();
        }
        write_all(&ctl, &mut written).await;
    }
}

/// Order-independent hash of the objects' names and generations (spec changes; status writes do not count).
fn fingerprint_of<K>(store: &Store<K>) -> u64
where
    K: Resource + Clone + 'static,
    K::DynamicType: Eq + Hash + Clone,
{
    store
        .state()
        .iter()
        .map(|o| {
            let mut h = DefaultHasher::new();
            (
                o.meta().name.as_deref(),
                o.meta().uid.as_deref(),
                o.meta().generation,
            )
                .hash(&mut h);
            h.finish()
        })
        .fold(0u64, u64::wrapping_add)
}

async fn write_all(ctl: &Ctl, written: &mut Written) {
    let leases = ctl.leases.state();
    let mut by_subnet: HashMap<&str, Vec<&IPLease>> = HashMap::new();
    for l in &leases {
        by_subnet.entry(l.spec.subnet.as_str()).or_default().push(l);
    }
    let now = Timestamp::now();
    let subnets: Api<Subnet> = Api::all(ctl.ctx.client.clone());
    for s in ctl.ctx.cache.subnets.state() {
        let name = s.name_any();
        let mine = by_subnet
            .get(name.as_str())
            .map(Vec::as_slice)
            .unwrap_or_default();
        let status = subnet_status(&s, mine, now);
        if s.status.as_ref() == Some(&status) || written.subnets.get(&name) == Some(&status) {
            continue;
        }
        if patch_status(&subnets, &name, &status).await {
            written.subnets.insert(name, status);
        }
    }
    let counts = pool_counts(leases.iter().map(|l| l.as_ref()));
    let pools: Api<IPPool> = Api::all(ctl.ctx.client.clone());
    let all_subnets = ctl.ctx.cache.subnets.state();
    for p in ctl.ctx.cache.pools.state() {
        let name = p.name_any();
        let status = pool_status_among(&p, &all_subnets, &counts);
        if p.status.as_ref() == Some(&status) || written.pools.get(&name) == Some(&status) {
            continue;
        }
        if patch_status(&pools, &name, &status).await {
            written.pools.insert(name, status);
        }
    }
}

async fn patch_status<K, S>(api: &Api<K>, name: &str, status: &S) -> bool
where
    K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    S: serde::Serialize,
{
    let patch = serde_json::json!({ "status": status });
    match api
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => true,
        // Deleted meanwhile: nothing to write.
        Err(kube::Error::Api(s)) if s.code == 404 => false,
        Err(e) => {
            tracing::warn!(kind = %K::kind(&()), object = %name, error = %e, "writing status failed; retrying on the next change");
            false
        }
    }
}
