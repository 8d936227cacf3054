//! Entry points for the fuzz targets in `fuzz/` (`cargo +nightly fuzz`). Not a stable API.
//!
//! The parsers are fuzzed through their public functions; this module adds what is otherwise private: the
//! admission decisions, run against a fixed in-memory cluster (no apiserver, no lease is created). Each entry
//! point checks the invariants that must hold for any input and panics when one is broken, which is what the
//! fuzzer reports.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionReview, Operation};
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::annotations::read_result;
use crate::api::{IPLease, IPPool, NetworkAttachmentDefinition, Subnet};
use crate::cache::Cache;
use crate::webhook::{ippool, nad, pod, subnet, workload};

/// Longest denial message accepted: every user value in a message is cut (see `annotations::Shown`), so a
/// longer one means a value reached a message unbounded.
pub const MAX_MESSAGE_BYTES: usize = 8 * 1024;

/// The admission endpoint an input is sent to, chosen by the first byte of a fuzz input (`0` Pods, `1`
/// NADs, `2` Subnets, `3` IPPools, `4` workloads; other bytes wrap around).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    Pods,
    Nads,
    Subnets,
    IpPools,
    Workloads,
}

impl Endpoint {
    pub fn from_byte(b: u8) -> Endpoint {
        match b.wrapping_sub(b'0') % 5 {
            0 => Endpoint::Pods,
            1 => Endpoint::Nads,
            2 => Endpoint::Subnets,
            3 => Endpoint::IpPools,
            _ => Endpoint::Workloads,
        }
    }
}

/// What an admission came to.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Not an AdmissionReview with a request of this kind (the server answers such a body as invalid).
    Undecodable,
    /// Allowed without changes (nothing of ours asked for, or an operation we do not check).
    Allowed,
    /// Allowed with these annotations added (Pods).
    Patched(BTreeMap<String, String>),
    /// Refused with this message.
    Denied(String),
}

/// Decodes `body` as the AdmissionReview the apiserver would send to `endpoint` and decides it against the
/// fixed cluster of [`world`].
pub fn admission(endpoint: Endpoint, body: &[u8]) -> Verdict {
    let verdict = match endpoint {
        Endpoint::Pods => decode::<Pod>(body).map_or(Verdict::Undecodable, decide_pod),
        Endpoint::Nads => {
            decode::<NetworkAttachmentDefinition>(body).map_or(Verdict::Undecodable, decide_nad)
        }
        Endpoint::Subnets => decode::<Subnet>(body).map_or(Verdict::Undecodable, decide_subnet),
        Endpoint::IpPools => decode::<IPPool>(body).map_or(Verdict::Undecodable, decide_pool),
        Endpoint::Workloads => {
            decode::<DynamicObject>(body).map_or(Verdict::Undecodable, decide_workload)
        }
    };
    if let Verdict::Denied(msg) = &verdict {
        assert!(!msg.is_empty(), "empty denial message");
        assert!(
            msg.len() <= MAX_MESSAGE_BYTES,
            "denial message of {} bytes: {}…",
            msg.len(),
            msg.chars().take(300).collect::<String>()
        );
    }
    verdict
}

fn decode<T>(body: &[u8]) -> Option<AdmissionRequest<T>>
where
    T: kube::Resource + DeserializeOwned,
{
    let review: AdmissionReview<T> = serde_json::from_slice(body).ok()?;
    review.try_into().ok()
}

fn denied(e: impl std::fmt::Display) -> Verdict {
    Verdict::Denied(e.to_string())
}

fn decide_pod(req: AdmissionRequest<Pod>) -> Verdict {
    if let (Operation::Update, Some(new), Some(old)) =
        (&req.operation, &req.object, &req.old_object)
    {
        let empty = BTreeMap::new();
        let before = old.metadata.annotations.as_ref().unwrap_or(&empty);
        let after = new.metadata.annotations.as_ref().unwrap_or(&empty);
        return pod::guard::tampered(before, after).map_or(Verdict::Allowed, denied);
    }
    let cache = world();
    match pod::offline::decide(&cache, &req) {
        Ok(None) => Verdict::Allowed,
        Ok(Some((results, out))) => {
            for r in &results {
                let subnet = cache
                    .subnets
                    .get(&kube::runtime::reflector::ObjectRef::new(&r.logical_switch))
                    .unwrap_or_else(|| panic!("result names unknown Subnet {}", r.logical_switch));
                let layout = crate::cache::layout(&subnet)
                    .unwrap_or_else(|e| panic!("allocated from an invalid Subnet: {e}"));
                for ip in r.ip.addrs() {
                    assert!(layout.contains(ip), "{ip} outside {}", layout.describe());
                    assert!(
                        !layout.is_reserved(ip),
                        "{ip} is reserved in {}",
                        layout.describe()
                    );
                }
                assert!(!r.ip.is_empty(), "an attachment got no address");
                // What the webhook writes, the CNI plugin reads back unchanged.
                let back = read_result(&out, &r.provider, r.interface.as_deref())
                    .unwrap_or_else(|e| panic!("rendered result does not read back: {e}\n{out:?}"))
                    .unwrap_or_else(|| panic!("rendered result is not marked allocated: {out:?}"));
                assert_eq!(back.ip, r.ip, "{out:?}");
                assert_eq!(back.mac, r.mac, "{out:?}");
            }
            let mut ips: Vec<_> = results
                .iter()
                .flat_map(|r| r.ip.addrs().map(|ip| (r.logical_switch.clone(), ip)))
                .collect();
            let n = ips.len();
            ips.sort();
            ips.dedup();
            assert_eq!(
                n,
                ips.len(),
                "one address given twice in a Pod: {results:?}"
            );
            Verdict::Patched(out)
        }
        Err(denial) => denied(denial),
    }
}

fn decide_nad(req: AdmissionRequest<NetworkAttachmentDefinition>) -> Verdict {
    let Some(obj) = req
        .object
        .as_ref()
        .filter(|_| matches!(req.operation, Operation::Create | Operation::Update))
    else {
        return Verdict::Allowed;
    };
    match nad::check(&world(), obj) {
        Ok(_) => Verdict::Allowed,
        Err((_, msg)) => Verdict::Denied(msg),
    }
}

fn decide_subnet(req: AdmissionRequest<Subnet>) -> Verdict {
    let cache = world();
    let outcome = match (&req.operation, &req.object) {
        (Operation::Create | Operation::Update, Some(new)) => {
            let name = new.name_any();
            let leases = cache.leases.state_filter(|l| l.spec.subnet == name);
            subnet::check_subnet(
                new,
                req.old_object.as_ref(),
                &cache.subnets.state(),
                &leases,
            )
        }
        (Operation::Delete, _) => {
            let leases = cache.leases.state_filter(|l| l.spec.subnet == req.name);
            let pools =
                subnet::pools_naming(cache.pools.state(), &req.name, &cache.subnets.state());
            subnet::check_delete(&req.name, &leases, &pools)
        }
        _ => return Verdict::Allowed,
    };
    outcome.map_or_else(denied, |_| Verdict::Allowed)
}

fn decide_pool(req: AdmissionRequest<IPPool>) -> Verdict {
    let cache = world();
    let outcome = match (&req.operation, &req.object) {
        (Operation::Create | Operation::Update, Some(new)) => {
            let subnets = cache.subnets.state();
            let pools = cache.pools.state();
            let leases = cache.leases.state();
            let nads = cache.nads.state();
            let scope = ippool::Scope {
                subnets: &subnets,
                pools: &pools,
                leases: &leases,
                nads: &nads,
            };
            ippool::check_pool(new, req.old_object.as_ref(), &scope)
        }
        (Operation::Delete, _) => {
            let leases = cache
                .leases
                .state_filter(|l| l.spec.pool.as_deref() == Some(req.name.as_str()));
            ippool::check_delete(&req.name, &leases).map(|()| Vec::new())
        }
        _ => return Verdict::Allowed,
    };
    outcome.map_or_else(denied, |_| Verdict::Allowed)
}

fn decide_workload(req: AdmissionRequest<DynamicObject>) -> Verdict {
    let (Operation::Create | Operation::Update, Some(obj)) = (&req.operation, &req.object) else {
        return Verdict::Allowed;
    };
    let namespace = req
        .namespace
        .clone()
        .or_else(|| obj.metadata.namespace.clone())
        .unwrap_or_default();
    let kind = req.kind.kind.as_str();
    let new = match workload::read_object(kind, &namespace, obj) {
        Ok(Some(w)) => w,
        Ok(None) => return Verdict::Allowed,
        Err(r) => return denied(r),
    };
    let old = req
        .old_object
        .as_ref()
        .and_then(|o| workload::read_object(kind, &namespace, o).ok().flatten());
    if !workload::needs_check(&new, old.as_ref()) {
        return Verdict::Allowed;
    }
    let world = workload::World::from_cache(&world());
    workload::check_workload(&new, &world).map_or_else(denied, |_| Verdict::Allowed)
}

/// Splits a fuzz input into its selector byte and the UTF-8 text after it; `None` when there is no such text.
pub fn selector_and_text(data: &[u8]) -> Option<(u8, &str)> {
    let (&sel, rest) = data.split_first()?;
    Some((sel, std::str::from_utf8(rest).ok()?))
}

/// A deterministic generator, so a crashing input reproduces.
pub fn seeded_rng() -> rand::rngs::StdRng {
    rand::SeedableRng::seed_from_u64(0)
}

/// Annotations written one per line as `key=value` (split at the first `=`; `\\n` in a value is a newline),
/// the form the annotation fuzz targets and their corpus use.
pub fn annotations_from_text(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.replace("\\n", "\n")))
        .collect()
}

/// Runs every annotation parser over a Pod's annotations (namespace `default`), then the whole Pod admission
/// against [`world`], checking that the parsers agree with each other, that errors stay bounded, and that
/// what the webhook would write reads back unchanged.
pub fn annotation_map(ann: &BTreeMap<String, String>) -> Verdict {
    use crate::annotations::{
        AllocationResult, MAX_ATTACHMENTS, attachments, provider_request, spider_pools, validate,
    };
    let bounded = |e: &crate::annotations::AnnotationError| {
        let msg = e.to_string();
        assert!(
            msg.len() <= MAX_MESSAGE_BYTES,
            "message of {} bytes: {}…",
            msg.len(),
            msg.chars().take(300).collect::<String>()
        );
    };
    let list = attachments(ann, "default");
    let spider = spider_pools(ann);
    let all = validate(ann, "default");
    for e in [
        list.as_ref().err(),
        spider.as_ref().err(),
        all.as_ref().err(),
    ]
    .into_iter()
    .flatten()
    {
        bounded(e);
    }
    if let Ok(v) = &all {
        assert_eq!(
            Some(v),
            list.as_ref().ok(),
            "validate and attachments disagree"
        );
        assert!(
            spider.is_ok(),
            "validate accepted what spider_pools refuses"
        );
    }
    if let Ok(list) = &list {
        assert!(list.len() <= MAX_ATTACHMENTS, "{} attachments", list.len());
        for a in list {
            let base = format!("{}.{}", a.network.name, a.network.namespace);
            for provider in [base.clone(), format!("{base}.ovn")] {
                let asked = match provider_request(ann, &provider, a.interface.as_deref()) {
                    Ok(r) => r,
                    Err(e) => {
                        bounded(&e);
                        continue;
                    }
                };
                if let Err(e) = read_result(ann, &provider, a.interface.as_deref()) {
                    bounded(&e);
                }
                // A fixed request rendered as a result reads back as itself.
                let Some(ip) = asked.ip_address.filter(|ip| !ip.is_empty()) else {
                    continue;
                };
                let cidr = ip
                    .addrs()
                    .map(|a| format!("{a}/{}", if a.is_ipv4() { 32 } else { 128 }))
                    .collect::<Vec<_>>()
                    .join(",");
                let result = AllocationResult {
                    provider: provider.clone(),
                    interface: a.interface.clone(),
                    ip,
                    mac: asked.mac_address,
                    cidr,
                    gateway: String::new(),
                    logical_switch: "s-fuzz".to_string(),
                    routes: asked.routes.clone(),
                };
                let out = result.render();
                let back = read_result(&out, &provider, a.interface.as_deref())
                    .unwrap_or_else(|e| panic!("{out:?} does not read back: {e}"))
                    .unwrap_or_else(|| panic!("{out:?} is not allocated"));
                assert_eq!(back.ip, ip, "{out:?}");
                assert_eq!(back.mac, asked.mac_address, "{out:?}");
                assert_eq!(back.routes, asked.routes, "{out:?}");
            }
        }
    }
    let review = json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": "fuzz", "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "operation": "CREATE", "namespace": "default", "userInfo": {},
            "object": {"apiVersion": "v1", "kind": "Pod",
                       "metadata": {"name": "web-0", "namespace": "default", "annotations": ann},
                       "spec": {"containers": []}},
        }
    });
    let body = serde_json::to_vec(&review).unwrap_or_default();
    let verdict = admission(Endpoint::Pods, &body);
    if list.is_err() || spider.is_err() {
        assert!(
            matches!(verdict, Verdict::Denied(_)),
            "admission allowed annotations the parsers refuse: {verdict:?}"
        );
    }
    verdict
}

/// The objects of the in-memory cluster, parsed once.
struct Objects {
    nads: Vec<NetworkAttachmentDefinition>,
    subnets: Vec<Subnet>,
    pools: Vec<IPPool>,
    leases: Vec<IPLease>,
}

/// A fresh cache over the fixed cluster (fresh so that one input's allocations do not leak into the next):
/// NADs in `default` and `other` (nadipam, Kube-OVN-type, dual stack, IPv6, a foreign IPAM, one without a
/// provider, one with an empty spec), Subnets for them (one limited to `other`, one `ovn`), IPPools, and one
/// lease.
pub fn world() -> Arc<Cache> {
    static OBJECTS: OnceLock<Objects> = OnceLock::new();
    let o = OBJECTS.get_or_init(objects);
    Arc::new(Cache::offline(
        o.nads.clone(),
        o.subnets.clone(),
        o.pools.clone(),
        o.leases.clone(),
    ))
}

/// A `nadipam.io/v1` object of `kind` with this spec.
fn crd<T: DeserializeOwned>(kind: &str, name: &str, spec: serde_json::Value) -> T {
    serde_json::from_value(json!({
        "apiVersion": "nadipam.io/v1", "kind": kind,
        "metadata": {"name": name, "resourceVersion": "1"}, "spec": spec,
    }))
    .unwrap_or_else(|e| panic!("{kind} {name}: {e}"))
}

fn objects() -> Objects {
    let nad =
        |ns: &str, name: &str, config: &str| NetworkAttachmentDefinition::new(ns, name, config);
    let nads = vec![
        nad(
            "default",
            "macvlan",
            r#"{"cniVersion":"0.3.1","type":"macvlan","master":"eth0","ipam":{"type":"nadipam","provider":"macvlan.default"}}"#,
        ),
        nad(
            "default",
            "attachnet",
            r#"{"cniVersion":"0.3.0","type":"kube-ovn","server_socket":"/run/openvswitch/kube-ovn-daemon.sock","provider":"attachnet.default.ovn"}"#,
        ),
        nad(
            "default",
            "dual",
            r#"{"cniVersion":"1.0.0","plugins":[{"type":"bridge","ipam":{"type":"nadipam","provider":"dual.default"}},{"type":"tuning"}]}"#,
        ),
        nad(
            "default",
            "v6",
            r#"{"type":"macvlan","ipam":{"type":"kube-ovn","provider":"v6.default"}}"#,
        ),
        nad(
            "default",
            "hostlocal",
            r#"{"type":"macvlan","ipam":{"type":"host-local","subnet":"10.1.0.0/24"}}"#,
        ),
        nad(
            "default",
            "noprov",
            r#"{"type":"macvlan","ipam":{"type":"nadipam"}}"#,
        ),
        nad("default", "empty", ""),
        nad(
            "other",
            "macvlan",
            r#"{"type":"macvlan","ipam":{"type":"nadipam","provider":"macvlan.other"}}"#,
        ),
    ];
    let subnets: Vec<Subnet> = [
        ("s-macvlan", json!({"protocol": "IPv4", "provider": "macvlan.default", "cidrBlock": "172.17.0.0/24", "gateway": "172.17.0.1",
                   "excludeIps": ["172.17.0.2..172.17.0.10"]})),
        ("s-attach", json!({"protocol": "IPv4", "provider": "attachnet.default.ovn", "cidrBlock": "172.18.0.0/28"})),
        ("s-dual", json!({"protocol": "Dual", "provider": "dual.default", "cidrBlock": "10.20.0.0/28,fd00:20::/124"})),
        ("s-v6", json!({"protocol": "IPv6", "provider": "v6.default", "cidrBlock": "fd00:30::/120"})),
        ("s-ovn", json!({"protocol": "IPv4", "provider": "ovn", "cidrBlock": "172.19.0.0/29"})),
        ("s-other", json!({"protocol": "IPv4", "provider": "macvlan.other", "cidrBlock": "10.9.0.0/24", "namespaces": ["other"]})),
    ]
    .into_iter()
    .map(|(name, spec)| crd("Subnet", name, spec))
    .collect();
    let pool = |name: &str, spec: serde_json::Value| -> IPPool { crd("IPPool", name, spec) };
    let pools = vec![
        pool(
            "pool-a",
            json!({"subnet": "s-macvlan", "ips": ["172.17.0.100-172.17.0.110"]}),
        ),
        pool(
            "pool-other",
            json!({"subnet": "s-macvlan", "ips": ["172.17.0.200"], "namespaces": ["other"]}),
        ),
        pool(
            "pool-dual",
            json!({"subnet": "s-dual", "ips": ["10.20.0.5..10.20.0.8", "fd00:20::5-fd00:20::8"],
                   "multusName": ["default/dual"], "gateway": "10.20.0.1"}),
        ),
    ];
    let lease: IPLease = serde_json::from_value(json!({
        "apiVersion": "nadipam.io/v1", "kind": "IPLease",
        "metadata": {"name": "s-macvlan.172.17.0.50", "resourceVersion": "1",
                     "labels": {"nadipam.io/subnet": "s-macvlan"}},
        "spec": {"subnet": "s-macvlan", "ip": "172.17.0.50", "mac": "02:00:00:00:00:01",
                 "provider": "macvlan.default", "network": "default/macvlan", "podNamespace": "default",
                 "podName": "holder", "token": "t-holder", "phase": "Bound", "ownerKind": "Pod"},
    }))
    .unwrap_or_else(|e| panic!("IPLease: {e}"));
    Objects {
        nads,
        subnets,
        pools,
        leases: vec![lease],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn review(
        kind: (&str, &str, &str),
        resource: &str,
        op: &str,
        object: serde_json::Value,
    ) -> Vec<u8> {
        let (group, version, k) = kind;
        serde_json::to_vec(&json!({
            "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {
                "uid": "0c9a8d74-9cb7-44dd-b98e-09fd62def2f4",
                "kind": {"group": group, "version": version, "kind": k},
                "resource": {"group": group, "version": version, "resource": resource},
                "operation": op, "namespace": "default", "name": object["metadata"]["name"],
                "userInfo": {"username": "tester"}, "object": object, "dryRun": false,
            }
        }))
        .expect("review")
    }

    fn pod(annotations: serde_json::Value) -> Vec<u8> {
        review(
            ("", "v1", "Pod"),
            "pods",
            "CREATE",
            json!({"apiVersion": "v1", "kind": "Pod",
                   "metadata": {"name": "p", "namespace": "default", "annotations": annotations},
                   "spec": {"containers": [{"name": "c", "image": "pause"}]}}),
        )
    }

    #[test]
    fn the_world_parses_and_a_pod_is_patched() {
        let Verdict::Patched(out) = admission(
            Endpoint::Pods,
            &pod(json!({"k8s.v1.cni.cncf.io/networks": "macvlan, dual@net2"})),
        ) else {
            panic!("not patched")
        };
        assert_eq!(
            out["macvlan.default.kubernetes.io/ip_address"],
            "172.17.0.11"
        );
        assert_eq!(
            out["dual.default.kubernetes.io/ip_address"],
            "10.20.0.2,fd00:20::2"
        );
    }

    #[test]
    fn denials_and_undecodable_bodies() {
        let v = admission(
            Endpoint::Pods,
            &pod(json!({"k8s.v1.cni.cncf.io/networks": "macvlan",
                        "macvlan.default.kubernetes.io/ip_address": "172.17.0.50"})),
        );
        assert!(
            matches!(&v, Verdict::Denied(m) if m.contains("172.17.0.50")),
            "{v:?}"
        );
        let v = admission(
            Endpoint::Pods,
            &pod(json!({"k8s.v1.cni.cncf.io/networks": "other/macvlan"})),
        );
        assert!(
            matches!(&v, Verdict::Denied(m) if m.contains("namespace default may not allocate from Subnet s-other")),
            "{v:?}"
        );
        assert_eq!(admission(Endpoint::Pods, b"{}"), Verdict::Undecodable);
        assert_eq!(admission(Endpoint::Nads, b"[1"), Verdict::Undecodable);
        let v = admission(
            Endpoint::Nads,
            &review(
                ("k8s.cni.cncf.io", "v1", "NetworkAttachmentDefinition"),
                "network-attachment-definitions",
                "CREATE",
                json!({"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
                       "metadata": {"name": "x", "namespace": "default"},
                       "spec": {"config": r#"{"type":"macvlan","ipam":{"type":"nadipam","provider":"macvlan.other"}}"#}}),
            ),
        );
        assert!(
            matches!(&v, Verdict::Denied(m) if m.contains("is not this NAD's provider")),
            "{v:?}"
        );
        let v = admission(
            Endpoint::Subnets,
            &review(
                ("nadipam.io", "v1", "Subnet"),
                "subnets",
                "CREATE",
                json!({"apiVersion": "nadipam.io/v1", "kind": "Subnet", "metadata": {"name": "s-new"},
                       "spec": {"protocol": "IPv4", "provider": "macvlan.default", "cidrBlock": "172.17.0.128/25"}}),
            ),
        );
        assert!(
            matches!(&v, Verdict::Denied(m) if m.contains("s-macvlan")),
            "{v:?}"
        );
        assert_eq!(Endpoint::from_byte(b'2'), Endpoint::Subnets);
        assert_eq!(Endpoint::from_byte(b'5'), Endpoint::Pods);
    }
}
