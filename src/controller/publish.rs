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

use super::drain::with_pool_disabled;
use super::state::Ctl;
use super::status::{
    pool_status_among, status_from, subnet_status, with_pool_nodes, with_subnet_nodes,
};
use crate::api::{IPLease, IPPool, IPPoolStatus, Subnet, SubnetStatus};
use crate::cache::{NodeMeta, node_facts};
use crate::placement::NodeFacts;

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
        let now = fingerprint_of(&cache.subnets)
            .wrapping_add(fingerprint_of(&cache.pools))
            .wrapping_add(node_fingerprint(&cache.nodes));
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

/// Order-independent hash of the Nodes' names and labels: what node-scoped status counts.
fn node_fingerprint(store: &Store<NodeMeta>) -> u64 {
    store
        .state()
        .iter()
        .map(|n| {
            let mut h = DefaultHasher::new();
            (n.metadata.name.as_deref(), n.metadata.labels.as_ref()).hash(&mut h);
            h.finish()
        })
        .fold(0u64, u64::wrapping_add)
}

async fn write_all(ctl: &Arc<Ctl>, written: &mut Written) {
    // Reads every Subnet's and pool's counts and, for a Subnet whose allocation view is missing, builds it from
    // every lease of the Subnet (65 534 in a full /16): not on the async workers, where admissions would wait.
    let c = ctl.clone();
    let Ok(Statuses { subnets, pools }) =
        tokio::task::spawn_blocking(move || compute(&c, Timestamp::now())).await
    else {
        return;
    };
    let api: Api<Subnet> = Api::all(ctl.ctx.client.clone());
    for (name, status) in subnets {
        if written.subnets.get(&name) == Some(&status) {
            continue;
        }
        if patch_status(&api, &name, &status).await {
            written.subnets.insert(name, status);
        }
    }
    let api: Api<IPPool> = Api::all(ctl.ctx.client.clone());
    for (name, status) in pools {
        if written.pools.get(&name) == Some(&status) {
            continue;
        }
        if patch_status(&api, &name, &status).await {
            written.pools.insert(name, status);
        }
    }
}

/// The statuses that differ from what the cached objects carry.
struct Statuses {
    subnets: Vec<(String, SubnetStatus)>,
    pools: Vec<(String, IPPoolStatus)>,
}

/// Each Subnet's addresses in use come from the allocation index the webhook keeps current (kept per lease
/// event, so a write costs the same for a full /16 as for a /28); each pool's count from the controller's own.
fn compute(ctl: &Ctl, now: Timestamp) -> Statuses {
    let cache = &ctl.ctx.cache;
    let all_subnets = cache.subnets.state();
    let node_objects = cache.nodes.state();
    let nodes: Vec<NodeFacts<'_>> = node_objects.iter().filter_map(|n| node_facts(n)).collect();
    let subnets = all_subnets
        .iter()
        .filter_map(|s| {
            let counted = cache.index.with_subnet(s, &ctl.leases, |v| {
                let c = v.alloc.counts();
                (c.v4_using, c.v6_using)
            });
            let status = match counted {
                Ok(using) => with_subnet_nodes(status_from(s, using, now), s, &nodes, now),
                // A spec that cannot be used has no allocation view: count its leases.
                Err(_) => {
                    let name = s.name_any();
                    let leases = ctl.leases.state_filter(|l| l.spec.subnet == name);
                    let mine: Vec<&IPLease> = leases.iter().map(AsRef::as_ref).collect();
                    with_subnet_nodes(subnet_status(s, &mine, now), s, &nodes, now)
                }
            };
            (s.status.as_ref() != Some(&status)).then(|| (s.name_any(), status))
        })
        .collect();
    let counts = ctl.lease_index.pool_counts();
    let pools = cache
        .pools
        .state()
        .iter()
        .filter_map(|p| {
            let status =
                with_pool_nodes(pool_status_among(p, &all_subnets, &counts), p, &nodes, now);
            let status = with_pool_disabled(status, p, now);
            (p.status.as_ref() != Some(&status)).then(|| (p.name_any(), status))
        })
        .collect();
    Statuses { subnets, pools }
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
