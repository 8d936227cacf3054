//! The decision of [`super::mutate`] without the apiserver, for the fuzz targets (`crate::fuzzing`): the same
//! request reading, planning and address choice, with candidates taken from the cached views (lowest free
//! address, MACs from a seeded generator) and no lease created. Concurrent holders are not consulted, so a
//! result here is what a lone replica would propose.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::core::admission::AdmissionRequest;
use rand::SeedableRng;

use super::plan::{Choice, for_new, plan};
use super::reserve::{
    Reserved, kept_ranges, pick_any, pick_from_pools, split_picked, take_list_entry, take_mac_in,
};
use super::{Arrival, arrival, identity, result_of};
use crate::alloc::Strategy;
use crate::annotations::{AllocationResult, render_all};
use crate::cache::Cache;
use crate::webhook::denial::Denial;
use crate::webhook::resolve::Labels;

/// What [`decide`] proposes: each attachment's result and the annotations rendered from them.
pub(crate) type Decided = (Vec<AllocationResult>, BTreeMap<String, String>);

/// Decides `req` against `cache`; `None` when the Pod is left unchanged.
pub(crate) fn decide(
    cache: &Cache,
    req: &AdmissionRequest<Pod>,
) -> Result<Option<Decided>, Denial> {
    let Some(Arrival {
        pod,
        namespace,
        name,
        ann,
    }) = arrival(req)
    else {
        return Ok(None);
    };
    if namespace.is_empty() {
        return Err(Denial::NoNamespace);
    }
    let (identity, _) = identity(pod, &namespace, &name);
    let pod_labels = pod.metadata.labels.clone().unwrap_or_default();
    // Offline there is no Namespace to read: namespace selectors are not judged.
    let labels = Labels {
        pod: &pod_labels,
        namespace: None,
    };
    let planned = plan(cache, &[], &identity, &ann, labels)?;
    if planned.is_empty() {
        return Ok(None);
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    let mut results = Vec::new();
    for p in &planned {
        let fresh = for_new(p)?;
        let p = fresh.as_ref().unwrap_or(p);
        let network = p.network.to_string();
        let avoid = kept_ranges(p);
        let (ips, mac) = cache
            .index
            .with_subnet(&p.subnet, &cache.leases, |v| {
                let mac = take_mac_in(v, p.mac, &mut rng)?;
                let ips = match &p.choice {
                    Choice::Fixed(pair) => v
                        .alloc
                        .reserve_pair(pair)
                        .map(|()| pair.addrs().map(|ip| (ip, None)).collect())?,
                    Choice::List { entries, ordinal } => {
                        take_list_entry(&mut v.alloc, entries, *ordinal)?
                            .addrs()
                            .map(|ip| (ip, None))
                            .collect()
                    }
                    Choice::Pools(plan) => {
                        pick_from_pools(&mut v.alloc, plan, &avoid, Strategy::Sequential, &mut rng)
                            .map_err(|e| *e.source)?
                    }
                    Choice::Any => pick_any(&mut v.alloc, &avoid, Strategy::Sequential, &mut rng)?,
                };
                Ok((ips, mac))
            })
            .map_err(|source| Denial::Layout {
                network: network.clone(),
                subnet: p.subnet.name_any(),
                source: Box::new(source),
            })?
            .map_err(|source| {
                Denial::Alloc { network, source }.for_request(p.request_key.as_deref())
            })?;
        let (ip, pools) = split_picked(ips);
        let reserved = Reserved {
            ip,
            mac,
            pools,
            ..Reserved::default()
        };
        results.push(result_of(cache, p, &reserved));
    }
    let out = render_all(&results)?;
    Ok(Some((results, out)))
}
