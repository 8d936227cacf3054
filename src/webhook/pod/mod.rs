//! Pod CREATE: allocate every nadipam attachment and patch the results onto the Pod.

mod default_network;
pub(crate) mod guard;
mod lookup;
mod plan;
mod reserve;

use std::collections::BTreeMap;
use std::sync::Arc;

use json_patch::jsonptr::PointerBuf;
use json_patch::{AddOperation, Patch, PatchOperation};
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, Operation};

use plan::{Planned, PodIdentity, plan};
use reserve::Request;
use tracing::Instrument;

use crate::alloc::statefulset_ordinal;
use crate::annotations::{AllocationResult, keys, render_all};
use crate::api::OwnerKind;
use crate::context::Context;
use crate::webhook::denial::Denial;
use crate::webhook::respond;

pub async fn mutate(ctx: Arc<Context>, req: AdmissionRequest<Pod>) -> AdmissionResponse {
    let resp = AdmissionResponse::from(&req);
    let Some(pod) = req
        .object
        .as_ref()
        .filter(|_| req.operation == Operation::Create)
    else {
        return resp;
    };
    let ann = pod.metadata.annotations.clone().unwrap_or_default();
    // Reinvocation within the same request: our own patch is already applied.
    if ann.get(keys::RESERVATION) == Some(&req.uid) {
        return resp;
    }
    let namespace = req
        .namespace
        .clone()
        .or_else(|| pod.namespace())
        .unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let span = tracing::info_span!("mutate", uid = %req.uid, namespace = %namespace, pod = %display_name(pod));
    // Instrumented, not entered: a guard held across an await would tag whatever else runs on this thread.
    let answer = async {
        match allocate(&ctx, &req, pod, &namespace, &name, &ann).await {
            Ok(None) => resp,
            Ok(Some((patch, warnings))) => match resp.with_patch(patch) {
                Ok(mut r) => {
                    if !warnings.is_empty() {
                        r.warnings = Some(warnings);
                    }
                    r
                }
                Err(e) => respond::error(
                    &ctx,
                    AdmissionResponse::from(&req),
                    &format!("encoding the patch: {e}"),
                ),
            },
            Err(denial) => {
                tracing::info!(reason = denial.reason(), "denied: {denial}");
                respond::deny(
                    &ctx,
                    AdmissionResponse::from(&req),
                    &format!("pod {}: ", display_name(pod)),
                    &denial,
                )
            }
        }
    };
    answer.instrument(span).await
}

/// `namespace/name`, or `namespace/<generateName>*` for a Pod whose name the apiserver has not chosen yet.
fn display_name(pod: &Pod) -> String {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    match (&pod.metadata.name, &pod.metadata.generate_name) {
        (Some(n), _) if !n.is_empty() => format!("{ns}/{n}"),
        (_, Some(g)) => format!("{ns}/{g}*"),
        _ => format!("{ns}/<unnamed>"),
    }
}

type Outcome = Option<(Patch, Vec<String>)>;

/// The Pod's annotations with the cluster default network added where it applies
/// ([`default_network::implied`]) and the NAD exists. A missing one is left out (and logged) rather than
/// refusing every Pod: nadipam then is not the IPAM of the cluster default network.
async fn with_default_network(
    ctx: &Context,
    pod: &Pod,
    namespace: &str,
    ann: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut ann = ann.clone();
    let Some(network) = default_network::implied(&ctx.settings, pod, namespace, &ann) else {
        return ann;
    };
    let only = BTreeMap::from([(keys::DEFAULT_NETWORK.to_string(), network.to_string())]);
    let cached = ctx
        .cache
        .nads
        .get(&kube::runtime::reflector::ObjectRef::new(&network.name).within(&network.namespace));
    if cached.is_some() || !lookup::missing_nads(ctx, &only, namespace).await.is_empty() {
        ann.extend(only);
    } else {
        tracing::warn!(
            "the cluster default network {network} (--default-network) does not exist; no address allocated on it"
        );
    }
    ann
}

/// What [`decide_offline`] proposes: each attachment's result and the annotations rendered from them.
pub(crate) type Decided = (Vec<AllocationResult>, BTreeMap<String, String>);

async fn allocate(
    ctx: &Context,
    req: &AdmissionRequest<Pod>,
    pod: &Pod,
    namespace: &str,
    name: &str,
    ann: &BTreeMap<String, String>,
) -> Result<Outcome, Denial> {
    if namespace.is_empty() {
        return Err(Denial::NoNamespace);
    }
    let sts = pod
        .owner_references()
        .iter()
        .any(|o| o.controller == Some(true) && o.kind == "StatefulSet");
    let identity = PodIdentity {
        namespace,
        name,
        ordinal: if sts { statefulset_ordinal(name) } else { None },
    };
    let ann = &with_default_network(ctx, pod, namespace, ann).await;
    let fetched = lookup::missing_nads(ctx, ann, namespace).await;
    let planned = plan(&ctx.cache, &fetched, &identity, ann)?;
    if planned.is_empty() {
        return Ok(None);
    }
    let request = Request {
        ctx,
        token: &req.uid,
        pod: &identity,
        owner: if sts {
            OwnerKind::StatefulSet
        } else {
            OwnerKind::Pod
        },
        dry_run: req.dry_run,
    };
    let mut created = Vec::new();
    let mut results = Vec::new();
    let mut warnings = Vec::new();
    for p in &planned {
        match request.reserve(p).await {
            Ok(r) => {
                created.extend(r.created.iter().cloned());
                warnings.extend(usage_warning(ctx, p));
                results.push(result_of(p, &r));
            }
            Err(denial) => {
                request.delete_all(&created).await;
                return Err(denial);
            }
        }
    }
    let mut out = match render_all(&results) {
        Ok(out) => out,
        Err(e) => {
            request.delete_all(&created).await;
            return Err(e.into());
        }
    };
    out.insert(keys::RESERVATION.to_string(), req.uid.clone());
    tracing::info!(
        attachments = results.len(),
        dry_run = req.dry_run,
        "allocated"
    );
    Ok(Some((patch(pod, out), warnings)))
}

/// The decision of [`mutate`] without the apiserver: plan, take candidates from the cached views as
/// `reserve` would (lowest free address, MACs from a seeded generator), render. No lease is created and
/// concurrent holders are not consulted, so a result here is what a lone replica would propose. For the fuzz
/// targets (`crate::fuzzing`).
pub(crate) fn decide_offline(
    cache: &crate::cache::Cache,
    req: &AdmissionRequest<Pod>,
) -> Result<Option<Decided>, Denial> {
    use rand::SeedableRng;

    use crate::alloc::Strategy;
    use plan::Choice;

    let Some(pod) = req
        .object
        .as_ref()
        .filter(|_| req.operation == Operation::Create)
    else {
        return Ok(None);
    };
    let ann = pod.metadata.annotations.clone().unwrap_or_default();
    let namespace = req
        .namespace
        .clone()
        .or_else(|| pod.namespace())
        .unwrap_or_default();
    if namespace.is_empty() {
        return Err(Denial::NoNamespace);
    }
    let name = pod.metadata.name.clone().unwrap_or_default();
    let sts = pod
        .owner_references()
        .iter()
        .any(|o| o.controller == Some(true) && o.kind == "StatefulSet");
    let identity = PodIdentity {
        namespace: &namespace,
        name: &name,
        ordinal: if sts {
            statefulset_ordinal(&name)
        } else {
            None
        },
    };
    let planned = plan(cache, &[], &identity, &ann)?;
    if planned.is_empty() {
        return Ok(None);
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    let mut results = Vec::new();
    for p in &planned {
        let network = p.network.to_string();
        let picked = cache
            .index
            .with_subnet(&p.subnet, &cache.leases, |v| {
                let mac = match p.mac {
                    Some(mac) => v.macs.reserve(mac).map(|()| mac)?,
                    None => v.macs.pick(&mut rng)?,
                };
                let ip = match &p.choice {
                    Choice::Fixed(pair) => v.alloc.reserve_pair(pair).map(|()| *pair)?,
                    Choice::List { entries, ordinal } => {
                        let e = v.alloc.select_from_list(entries, *ordinal)?;
                        v.alloc.reserve_pair(&e).map(|()| e)?
                    }
                    Choice::Ranges(ranges) => {
                        v.alloc
                            .pick_pair_in(ranges, Strategy::Sequential, &mut rng)?
                    }
                    Choice::Any => v.alloc.pick_pair(Strategy::Sequential, &mut rng)?,
                };
                Ok((ip, mac))
            })
            .map_err(|source| Denial::Layout {
                network: network.clone(),
                subnet: p.subnet.name_any(),
                source: Box::new(source),
            })?
            .map_err(|source| {
                Denial::Alloc { network, source }.for_request(p.request_key.as_deref())
            })?;
        let reserved = reserve::Reserved {
            ip: picked.0,
            mac: picked.1,
            created: Vec::new(),
        };
        results.push(result_of(p, &reserved));
    }
    let out = render_all(&results)?;
    Ok(Some((results, out)))
}

fn result_of(p: &Planned, r: &reserve::Reserved) -> AllocationResult {
    let subnet = &p.subnet;
    let gateway = p.gateway.clone().unwrap_or_else(|| {
        crate::cache::layout(subnet)
            .map(|l| l.gateways().to_string())
            .unwrap_or_default()
    });
    AllocationResult {
        provider: p.provider.clone(),
        interface: p.interface.clone(),
        ip: r.ip,
        mac: Some(r.mac),
        cidr: subnet.spec.cidr_block.clone(),
        gateway,
        logical_switch: subnet.name_any(),
        routes: p.routes.clone(),
    }
}

/// A warning when the Subnet is at or above the configured usage after this allocation.
fn usage_warning(ctx: &Context, p: &Planned) -> Option<String> {
    let counts = ctx
        .cache
        .index
        .with_subnet(&p.subnet, &ctx.cache.leases, |v| v.alloc.counts())
        .ok()?;
    let limit = u128::from(ctx.settings.warn_usage_percent);
    [("IPv4", counts.v4_using, counts.v4_available), ("IPv6", counts.v6_using, counts.v6_available)]
        .into_iter()
        .find(|(_, using, avail)| {
            let total = using + avail;
            total > 0 && using * 100 >= limit * total
        })
        .map(|(family, using, avail)| {
            format!(
                "subnet {} is {}% used ({using} of {} {family} addresses); add addresses or a Subnet before it runs out",
                p.subnet.name_any(),
                using * 100 / (using + avail),
                using + avail
            )
        })
}

/// JSON patch adding `annotations` to the Pod (creating the map when the Pod has none).
fn patch(pod: &Pod, annotations: BTreeMap<String, String>) -> Patch {
    let add = |path: PointerBuf, value: serde_json::Value| {
        PatchOperation::Add(AddOperation { path, value })
    };
    if pod.metadata.annotations.is_none() {
        let value = serde_json::to_value(&annotations).unwrap_or_default();
        return Patch(vec![add(
            PointerBuf::from_tokens(["metadata", "annotations"]),
            value,
        )]);
    }
    Patch(
        annotations
            .into_iter()
            .map(|(k, v)| {
                add(
                    PointerBuf::from_tokens(["metadata", "annotations", k.as_str()]),
                    v.into(),
                )
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patch_escapes_keys_and_creates_the_map() {
        let mut pod = Pod::default();
        let mut ann = BTreeMap::new();
        ann.insert(
            "macvlan.default.kubernetes.io/ip_address".to_string(),
            "172.17.0.11".to_string(),
        );
        let p = serde_json::to_value(patch(&pod, ann.clone())).unwrap();
        assert_eq!(
            p,
            serde_json::json!([{"op": "add", "path": "/metadata/annotations",
                "value": {"macvlan.default.kubernetes.io/ip_address": "172.17.0.11"}}])
        );
        pod.metadata.annotations = Some(BTreeMap::new());
        let p = serde_json::to_value(patch(&pod, ann)).unwrap();
        assert_eq!(
            p,
            serde_json::json!([{"op": "add", "path": "/metadata/annotations/macvlan.default.kubernetes.io~1ip_address",
                "value": "172.17.0.11"}])
        );
    }
}
