//! The Subnet and IPPool rules of Pod admission, shared with workload validation so that a template is refused
//! at `kubectl apply` for exactly the reasons its Pods would be.

use std::collections::BTreeMap;
use std::sync::Arc;

use kube::ResourceExt;

use crate::annotations::keys;
use crate::api::{IPPool, Subnet};
use crate::webhook::denial::Denial;
use crate::webhook::pool_subnet::names_subnet;
use crate::webhook::resolve::Labels;

/// The Subnet serving `provider`: among those with that provider, the first by name that admits the
/// namespace (else the first, so the namespace denial names it).
pub(crate) fn subnet_by_provider(
    subnets: &[Arc<Subnet>],
    provider: &str,
    namespace: &str,
) -> Option<Arc<Subnet>> {
    let mut matching: Vec<Arc<Subnet>> = subnets
        .iter()
        .filter(|s| s.spec.provider == provider)
        .cloned()
        .collect();
    matching.sort_by_key(|s| s.name_any());
    let allowed = matching
        .iter()
        .find(|s| namespace_allowed(&s.spec.namespaces, namespace))
        .cloned();
    allowed.or_else(|| matching.into_iter().next())
}

/// An empty allow-list admits every namespace.
pub(crate) fn namespace_allowed(allowed: &[String], namespace: &str) -> bool {
    allowed.is_empty() || allowed.iter().any(|n| n == namespace)
}

/// The Subnet serves the network's provider (or is an `ovn` Subnet chosen by name) and admits the namespace.
pub(crate) fn check_subnet(
    subnet: &Subnet,
    network: &str,
    provider: &str,
    namespace: &str,
) -> Result<(), Denial> {
    let sp = &subnet.spec.provider;
    if sp != provider && sp != keys::OVN_PROVIDER {
        return Err(Denial::ForeignSubnet {
            network: network.to_string(),
            subnet: subnet.name_any(),
            subnet_provider: sp.clone(),
            provider: provider.to_string(),
        });
    }
    if !namespace_allowed(&subnet.spec.namespaces, namespace) {
        return Err(Denial::SubnetNamespace {
            network: network.to_string(),
            namespace: namespace.to_string(),
            subnet: subnet.name_any(),
            allowed: subnet.spec.namespaces.join(", "),
        });
    }
    Ok(())
}

/// An address lies in one Subnet only, as far as a network can see: of two Subnets a network of `provider` can
/// reach (its own provider's, and `ovn` ones by `logical_switch`) whose CIDRs overlap, only the older one
/// allocates. Checked at admission rather than only when a Subnet is created, so two overlapping Subnets
/// created at the same moment (both passing the Subnet webhook) still never give one address twice.
pub(crate) fn check_overlap(
    subnet: &Subnet,
    subnets: &[Arc<Subnet>],
    network: &str,
    provider: &str,
) -> Result<(), Denial> {
    let Ok(mine) = crate::cache::layout(subnet) else {
        return Ok(());
    };
    let age = |s: &Subnet| {
        (
            s.metadata.creation_timestamp.clone().map(|t| t.0),
            s.name_any(),
        )
    };
    for other in subnets {
        let op = &other.spec.provider;
        if other.name_any() == subnet.name_any() || (op != provider && op != keys::OVN_PROVIDER) {
            continue;
        }
        let Ok(theirs) = crate::cache::layout(other) else {
            continue;
        };
        for family in [crate::alloc::Family::V4, crate::alloc::Family::V6] {
            let (Some(a), Some(b)) = (mine.cidr(family), theirs.cidr(family)) else {
                continue;
            };
            let overlaps = a.contains(&b.network()) || b.contains(&a.network());
            if overlaps && age(other) < age(subnet) {
                return Err(Denial::SubnetOverlap {
                    network: network.to_string(),
                    subnet: subnet.name_any(),
                    cidr: a.to_string(),
                    other: other.name_any(),
                    other_cidr: b.to_string(),
                });
            }
        }
    }
    Ok(())
}

/// The pool belongs to the Subnet and admits the namespace, the network and the Pod's (and namespace's)
/// labels.
pub(crate) fn check_pool(
    pool: &IPPool,
    subnet: &Subnet,
    network: &str,
    namespace: &str,
    labels: Labels<'_>,
) -> Result<(), Denial> {
    if !names_subnet(&pool.spec.subnet, subnet) {
        return Err(Denial::PoolSubnet {
            network: network.to_string(),
            pool: pool.name_any(),
            pool_subnet: pool.spec.subnet.clone(),
            subnet: subnet.name_any(),
        });
    }
    if !namespace_allowed(&pool.spec.allowed_namespaces(), namespace) {
        let lists = [
            ("spec.namespaces", &pool.spec.namespaces),
            ("spec.namespaceName", &pool.spec.namespace_name),
        ];
        return Err(Denial::PoolNamespace {
            network: network.to_string(),
            namespace: namespace.to_string(),
            pool: pool.name_any(),
            allowed: lists
                .iter()
                .filter(|(_, l)| !l.is_empty())
                .map(|(field, l)| format!("{field}: {}", l.join(", ")))
                .collect::<Vec<_>>()
                .join("; "),
        });
    }
    if !pool.spec.multus_name.is_empty() && !pool.spec.multus_name.iter().any(|m| m == network) {
        return Err(Denial::PoolNetwork {
            network: network.to_string(),
            pool: pool.name_any(),
            served: pool.spec.multus_name.join(", "),
        });
    }
    check_selectors(pool, network, namespace, labels)
}

/// The pool's `podAffinity` selects the Pod and its `namespaceAffinity` the namespace (when its labels were
/// read).
fn check_selectors(
    pool: &IPPool,
    network: &str,
    namespace: &str,
    labels: Labels<'_>,
) -> Result<(), Denial> {
    let selectors = pool.selectors().map_err(|source| Denial::BadNodeScope {
        network: network.to_string(),
        object: format!("IPPool {}", pool.name_any()),
        source,
    })?;
    if let Some(s) = &selectors.pods
        && !s.matches(labels.pod)
    {
        return Err(Denial::PoolSelects {
            network: network.to_string(),
            pool: pool.name_any(),
            selector: s.to_string(),
            who: format!("this Pod's labels ({})", show_labels(labels.pod)),
            fix: "label the Pod to match",
        });
    }
    if let (Some(s), Some(ns_labels)) = (&selectors.namespaces, labels.namespace)
        && !s.matches(ns_labels)
    {
        return Err(Denial::PoolSelects {
            network: network.to_string(),
            pool: pool.name_any(),
            selector: s.to_string(),
            who: format!(
                "namespace {namespace}'s labels ({})",
                show_labels(ns_labels)
            ),
            fix: "label the namespace to match",
        });
    }
    Ok(())
}

/// `k=v,k2=v2`, or `none`.
fn show_labels(labels: &BTreeMap<String, String>) -> String {
    if labels.is_empty() {
        return "none".to_string();
    }
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pool(spec: serde_json::Value) -> IPPool {
        let mut spec = spec;
        spec["subnet"] = json!("s");
        spec["ips"] = json!(["10.0.0.10"]);
        serde_json::from_value(json!({"apiVersion": "nadipam.io/v1", "kind": "IPPool",
            "metadata": {"name": "db-pool"}, "spec": spec}))
        .unwrap()
    }

    fn subnet() -> Subnet {
        serde_json::from_value(json!({"apiVersion": "nadipam.io/v1", "kind": "Subnet",
            "metadata": {"name": "s"}, "spec": {"cidrBlock": "10.0.0.0/24", "provider": "n.ns"}}))
        .unwrap()
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn pod_and_namespace_selectors_refuse_naming_the_selector_and_the_labels() {
        let p = pool(json!({"podAffinity": {"matchLabels": {"app": "db"}},
            "namespaceAffinity": {"matchExpressions": [{"key": "team", "operator": "In", "values": ["a"]}]}}));
        let (db, web) = (labels(&[("app", "db")]), labels(&[("app", "web")]));
        let (team_a, team_b) = (labels(&[("team", "a")]), labels(&[("team", "b")]));
        let check =
            |pod, ns| check_pool(&p, &subnet(), "ns/n", "ns", Labels { pod, namespace: ns });
        assert!(check(&db, Some(&team_a)).is_ok());
        assert!(
            check(&db, None).is_ok(),
            "namespace labels not read: not judged"
        );
        let d = check(&web, Some(&team_a)).unwrap_err();
        assert_eq!(
            d.to_string(),
            "network ns/n: IPPool db-pool serves only what spec.podAffinity app=db selects, and this Pod's labels \
             (app=web) do not match; label the Pod to match, or name another IPPool"
        );
        assert_eq!((d.reason(), d.code()), ("pool_not_selected", 403));
        assert_eq!(
            check(&db, Some(&team_b)).unwrap_err().to_string(),
            "network ns/n: IPPool db-pool serves only what spec.namespaceAffinity team=a selects, and namespace \
             ns's labels (team=b) do not match; label the namespace to match, or name another IPPool"
        );
        assert!(
            check(&labels(&[]), None)
                .unwrap_err()
                .to_string()
                .contains("this Pod's labels (none) do not match")
        );
    }

    #[test]
    fn an_unreadable_stored_selector_is_named() {
        let p = pool(
            json!({"namespaceAffinity": {"matchExpressions": [{"key": "team", "operator": "Exists",
            "values": ["x"]}]}}),
        );
        let d = check_pool(&p, &subnet(), "ns/n", "ns", Labels::none()).unwrap_err();
        assert_eq!(
            d.to_string(),
            "network ns/n: IPPool db-pool: spec.namespaceAffinity.matchExpressions[0]: operator Exists takes no \
             values (found 1); fix the selector"
        );
    }
}
