//! Pod CREATE: allocate every nadipam attachment and patch the results onto the Pod.

mod claim;
mod default_network;
pub(crate) mod guard;
mod lookup;
mod miss;
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) mod offline;
mod place;
mod plan;
mod reserve;
mod routes;
mod token;

use std::collections::BTreeMap;
use std::sync::Arc;

use json_patch::jsonptr::PointerBuf;
use json_patch::{AddOperation, Patch, PatchOperation};
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, Operation};

use plan::{Planned, PodIdentity, plan};
use reserve::Request;
use token::Carried;
use tracing::Instrument;

use crate::alloc::statefulset_ordinal;
use crate::annotations::{AllocationResult, Handover, keys, render_all, with_handovers};
use crate::api::OwnerKind;
use crate::context::Context;
use crate::webhook::denial::Denial;
use crate::webhook::resolve::Labels;
use crate::webhook::respond;

pub async fn mutate(ctx: Arc<Context>, req: AdmissionRequest<Pod>) -> AdmissionResponse {
    let resp = AdmissionResponse::from(&req);
    let Some(Arrival {
        pod,
        namespace,
        name,
        ann,
    }) = arrival(&req)
    else {
        return resp;
    };
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

/// What a Pod CREATE brings: the Pod, its namespace (the request's, else the Pod's), name and annotations.
struct Arrival<'a> {
    pod: &'a Pod,
    namespace: String,
    name: String,
    ann: BTreeMap<String, String>,
}

/// The Pod of a CREATE request; `None` for other operations, which are allowed unchanged.
fn arrival(req: &AdmissionRequest<Pod>) -> Option<Arrival<'_>> {
    let pod = req
        .object
        .as_ref()
        .filter(|_| req.operation == Operation::Create)?;
    Some(Arrival {
        pod,
        namespace: req
            .namespace
            .clone()
            .or_else(|| pod.namespace())
            .unwrap_or_default(),
        name: pod.metadata.name.clone().unwrap_or_default(),
        ann: pod.metadata.annotations.clone().unwrap_or_default(),
    })
}

/// Who the Pod is, and whether a StatefulSet controls it.
fn identity<'a>(pod: &Pod, namespace: &'a str, name: &'a str) -> (PodIdentity<'a>, bool) {
    let sts = pod
        .owner_references()
        .iter()
        .any(|o| o.controller == Some(true) && o.kind == "StatefulSet");
    let identity = PodIdentity {
        namespace,
        name,
        ordinal: if sts { statefulset_ordinal(name) } else { None },
    };
    (identity, sts)
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
    let (identity, sts) = identity(pod, namespace, name);
    // Judged first: a Pod carrying another's token is refused even when it asks for no network.
    let (token, prior) = match token::judge(ctx, namespace, name, ann).await? {
        Carried::Fresh => (req.uid.clone(), Vec::new()),
        Carried::Reinvoked { token, leases } => (token, leases),
    };
    // A Pod carrying a token carries nadipam's results: a reinvocation, a dry run reinvoked (its token
    // reserved nothing), or a manifest saved from a Pod that is gone. Read them back as requests.
    let carried = ann
        .contains_key(keys::RESERVATION)
        .then(|| token::requests_of_reinvoked(ann));
    let ann = carried.as_ref().unwrap_or(ann);
    let ann = &with_default_network(ctx, pod, namespace, ann).await;
    let fetched = lookup::missing_nads(ctx, ann, namespace).await;
    let pod_labels = pod.metadata.labels.clone().unwrap_or_default();
    let asks = ann.contains_key(keys::NETWORKS) || ann.contains_key(keys::DEFAULT_NETWORK);
    let ns_labels = match asks {
        true => namespace_labels(ctx, namespace).await?,
        // A Pod asking for no network never reaches a pool.
        false => None,
    };
    let labels = Labels {
        pod: &pod_labels,
        namespace: ns_labels.as_ref(),
    };
    let planned = match plan(&ctx.cache, &fetched, &identity, ann, labels) {
        Err(denial) if miss::caught_up(ctx, &denial).await => {
            plan(&ctx.cache, &fetched, &identity, ann, labels)?
        }
        planned => planned?,
    };
    if planned.is_empty() {
        return Ok(None);
    }
    let request = Request {
        ctx,
        token: &token,
        pod: &identity,
        owner: if sts {
            OwnerKind::StatefulSet
        } else {
            OwnerKind::Pod
        },
        dry_run: req.dry_run,
        prior: &prior,
        claim: None,
    };
    let mut claims = Vec::with_capacity(planned.len());
    for p in &planned {
        claims.push(claim::resolve(ctx, namespace, p).await?);
    }
    let mut created = Vec::new();
    let mut kept = Vec::new();
    let mut results = Vec::new();
    let mut reservations = Vec::new();
    let mut warnings = Vec::new();
    let mut placement = place::Placement::new(&ctx.cache, pod);
    for (p, claimed) in planned.iter().zip(&mut claims) {
        let narrowed = match placement.narrow(p) {
            Ok(n) => n,
            Err(denial) => {
                request.delete_all(&created).await;
                return Err(denial);
            }
        };
        let p = narrowed.as_ref().unwrap_or(p);
        let reserved = match claimed {
            Some(c) => claim::reserve(&request, p, c, name).await,
            None => request.reserve(p).await,
        };
        match reserved {
            Ok(r) => {
                placement.settle(p, &r);
                created.extend(r.created.iter().cloned());
                kept.extend(r.kept.iter().cloned());
                warnings.extend(usage_warning(ctx, p));
                results.push(result_of(&ctx.cache, p, &r));
                reservations.push(r);
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
    if let Err(e) = hand_over(&mut out, pod, namespace, &planned, &results) {
        request.delete_all(&created).await;
        return Err(e.into());
    }
    kept.extend(created.iter().cloned());
    if !req.dry_run {
        // A reinvocation whose Pod no longer asks for an attachment of the first call gives its leases back.
        let unused: Vec<String> = prior
            .iter()
            .map(|l| l.name_any())
            .filter(|n| !kept.contains(n))
            .collect();
        request.delete_all(&unused).await;
        request.drop_stale(&kept).await;
    }
    out.insert(keys::RESERVATION.to_string(), token.clone());
    if !req.dry_run {
        for ((p, r), c) in planned.iter().zip(&reservations).zip(&claims) {
            if let Some(c) = c {
                c.record(ctx, p, r, name).await;
            }
        }
    }
    let claim_labels: Vec<(String, String)> = claims
        .iter()
        .flatten()
        .map(|c| (c.label.clone(), c.uid.clone()))
        .collect();
    tracing::info!(
        attachments = results.len(),
        dry_run = req.dry_run,
        reinvoked = !prior.is_empty(),
        "allocated"
    );
    let affinity = placement.affinity(pod);
    Ok(Some((
        patch(pod, out, &token, claim_labels, affinity),
        warnings,
    )))
}

/// The labels of the Pod's namespace, read live, and only while some IPPool selects namespaces
/// (`spec.namespaceAffinity`): most clusters never pay for the read, and no Namespace watch is kept for a
/// selector few pools have. `None`: no pool needs them.
async fn namespace_labels(
    ctx: &Context,
    namespace: &str,
) -> Result<Option<BTreeMap<String, String>>, Denial> {
    let needed = ctx
        .cache
        .pools
        .state()
        .iter()
        .any(|p| p.spec.namespace_affinity.is_some());
    if !needed {
        return Ok(None);
    }
    let api: kube::Api<k8s_openapi::api::core::v1::Namespace> = kube::Api::all(ctx.client.clone());
    match api.get_metadata_opt(namespace).await {
        Ok(found) => Ok(Some(
            found.and_then(|n| n.metadata.labels).unwrap_or_default(),
        )),
        Err(e) => Err(Denial::NamespaceApi {
            namespace: namespace.to_string(),
            source: Box::new(e),
        }),
    }
}

/// Writes each attachment's MAC (and a fixed request's addresses) into the Pod's own `networks` /
/// `default-network` selection elements, so Multus hands them to the plugins ([`with_handovers`]). An
/// attachment implied by `--default-network` has no element of the Pod's to carry it.
fn hand_over(
    out: &mut BTreeMap<String, String>,
    pod: &Pod,
    namespace: &str,
    planned: &[Planned],
    results: &[AllocationResult],
) -> Result<(), crate::annotations::AnnotationError> {
    let Some(own) = pod.metadata.annotations.as_ref() else {
        return Ok(());
    };
    // A Pod carrying a token carries nadipam's results, read back as requests: every address then looks
    // fixed. Its elements already hold what the first call wrote, so only the MAC (the same one) is written
    // again; adding `ips` now would change the Pod on every reinvocation.
    let first_call = !own.contains_key(keys::RESERVATION);
    for (key, default) in [(keys::NETWORKS, false), (keys::DEFAULT_NETWORK, true)] {
        let Some(value) = own.get(key) else {
            continue;
        };
        let handovers: Vec<Handover> = planned
            .iter()
            .zip(results)
            .filter(|(p, _)| p.is_default == default)
            .map(|(p, r)| Handover {
                network: p.network.clone(),
                interface: p.interface.clone(),
                mac: r.mac,
                ips: match p.choice {
                    plan::Choice::Fixed(_) if first_call => {
                        with_prefixes(&r.ip, &p.subnet.spec.cidr_block)
                    }
                    _ => Vec::new(),
                },
            })
            .collect();
        if let Some(v) = with_handovers(key, value, namespace, &handovers)? {
            out.insert(key.to_string(), v);
        }
    }
    Ok(())
}

/// The addresses with the prefix length of the Subnet block (`v4cidr[,v6cidr]`) that holds each.
pub(super) fn with_prefixes(ip: &crate::alloc::IpPair, cidr_block: &str) -> Vec<ipnet::IpNet> {
    let blocks: Vec<ipnet::IpNet> = cidr_block
        .split(',')
        .filter_map(|c| c.trim().parse().ok())
        .collect();
    ip.addrs()
        .filter_map(|a| {
            let block = blocks.iter().find(|b| b.contains(&a))?;
            ipnet::IpNet::new(a, block.prefix_len()).ok()
        })
        .collect()
}

/// The result annotations' values for one attachment. The gateway, per address: the gateway of the IPPool
/// that gave it (its family's), else the Subnet's.
fn result_of(cache: &crate::cache::Cache, p: &Planned, r: &reserve::Reserved) -> AllocationResult {
    let subnet = &p.subnet;
    let layout = crate::cache::layout(subnet).ok();
    let gateway: Vec<String> =
        r.ip.addrs()
            .filter_map(|ip| {
                let family = crate::alloc::Family::of(ip);
                r.pool_of(ip)
                    .and_then(|name| {
                        cache
                            .pools
                            .get(&kube::runtime::reflector::ObjectRef::new(name))
                    })
                    .and_then(|pool| pool.gateways().ok())
                    .and_then(|g| {
                        g.into_iter()
                            .find(|g| crate::alloc::Family::of(*g) == family)
                    })
                    .or_else(|| layout.as_ref().and_then(|l| l.gateway(family)))
            })
            .map(|g| g.to_string())
            .collect();
    AllocationResult {
        provider: p.provider.clone(),
        interface: p.interface.clone(),
        ip: r.ip,
        mac: Some(r.mac),
        cidr: subnet.spec.cidr_block.clone(),
        gateway: gateway.join(","),
        logical_switch: subnet.name_any(),
        routes: routes_of(cache, p, r),
    }
}

/// The interface's routes ([`routes::merged`]) with those of the IPPools its addresses came from.
fn routes_of(
    cache: &crate::cache::Cache,
    p: &Planned,
    r: &reserve::Reserved,
) -> Option<Vec<crate::annotations::Route>> {
    let mut names: Vec<&str> = r.pools.iter().map(|(_, n)| n.as_str()).collect();
    names.dedup();
    let pools: Vec<Arc<crate::api::IPPool>> = names
        .into_iter()
        .filter_map(|n| {
            cache
                .pools
                .get(&kube::runtime::reflector::ObjectRef::new(n))
        })
        .collect();
    let pool_routes: Vec<&[crate::api::RouteSpec]> =
        pools.iter().map(|p| p.spec.routes.as_slice()).collect();
    routes::merged(
        p.routes.as_deref(),
        p.own_routes,
        &pool_routes,
        &p.default_route,
    )
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

/// JSON patch adding `annotations` to the Pod (creating the map when the Pod has none); as labels the
/// reservation token (a Pod copying another's token is found by it, [`token::judge`]) and the IPAMClaims the
/// Pod uses (their Pods are counted by it); and the node affinity its addresses need
/// ([`place::Placement::affinity`]), replacing `spec.affinity` as a whole.
fn patch(
    pod: &Pod,
    annotations: BTreeMap<String, String>,
    token: &str,
    claims: Vec<(String, String)>,
    affinity: Option<k8s_openapi::api::core::v1::Affinity>,
) -> Patch {
    let add = |path: PointerBuf, value: serde_json::Value| {
        PatchOperation::Add(AddOperation { path, value })
    };
    let mut ops = Vec::new();
    let mut map_or_keys = |field: &str, exists: bool, entries: BTreeMap<String, String>| {
        if !exists {
            let value = serde_json::to_value(&entries).unwrap_or_default();
            ops.push(add(PointerBuf::from_tokens(["metadata", field]), value));
            return;
        }
        for (k, v) in entries {
            ops.push(add(
                PointerBuf::from_tokens(["metadata", field, k.as_str()]),
                v.into(),
            ));
        }
    };
    map_or_keys(
        "annotations",
        pod.metadata.annotations.is_some(),
        annotations,
    );
    let mut labels: BTreeMap<String, String> = claims.into_iter().collect();
    if token::is_label_value(token) {
        labels.insert(keys::RESERVATION.to_string(), token.to_string());
    }
    if !labels.is_empty() {
        map_or_keys("labels", pod.metadata.labels.is_some(), labels);
    }
    if let Some(a) = affinity
        && pod.spec.is_some()
        && let Ok(value) = serde_json::to_value(a)
    {
        ops.push(add(PointerBuf::from_tokens(["spec", "affinity"]), value));
    }
    Patch(ops)
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
        let p = serde_json::to_value(patch(&pod, ann.clone(), "t-1", Vec::new(), None)).unwrap();
        assert_eq!(
            p,
            serde_json::json!([{"op": "add", "path": "/metadata/annotations",
                "value": {"macvlan.default.kubernetes.io/ip_address": "172.17.0.11"}},
                {"op": "add", "path": "/metadata/labels", "value": {"nadipam.io/reservation": "t-1"}}])
        );
        pod.metadata.annotations = Some(BTreeMap::new());
        pod.metadata.labels = Some(BTreeMap::new());
        let p = serde_json::to_value(patch(
            &pod,
            ann,
            "t-1",
            vec![("ipamclaims.nadipam.io/vm-a".into(), "u-1".into())],
            None,
        ))
        .unwrap();
        assert_eq!(
            p,
            serde_json::json!([{"op": "add", "path": "/metadata/annotations/macvlan.default.kubernetes.io~1ip_address",
                "value": "172.17.0.11"},
                {"op": "add", "path": "/metadata/labels/ipamclaims.nadipam.io~1vm-a", "value": "u-1"},
                {"op": "add", "path": "/metadata/labels/nadipam.io~1reservation", "value": "t-1"}])
        );
    }
}
