//! Node-aware pools at admission: which of an attachment's IPPools (and its Subnet) serve a node the Pod can
//! run on, and the node affinity that keeps the Pod where all its addresses are valid. Attachments narrow the
//! Pod's possible nodes in turn; nothing here reads more than the Node cache, and a Pod whose networks have
//! no node scope never reads even that.

use std::collections::BTreeSet;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Affinity, Pod};
use kube::runtime::reflector::ObjectRef;

use super::plan::{Choice, Planned, PoolPlan};
use super::reserve::Reserved;
use crate::cache::{Cache, NodeMeta, node_facts as facts};
use crate::placement::{NodeScope, PodConstraints, show_nodes, with_scopes};
use crate::webhook::denial::Denial;

/// Where a Pod may run, as its attachments are allocated one after the other.
pub(crate) struct Placement<'a> {
    cache: &'a Cache,
    pod: PodConstraints,
    /// The cached Nodes the Pod's own constraints allow; read when a node scope first applies.
    allowed: Option<Vec<Arc<NodeMeta>>>,
    /// Of those, the names still possible after the scopes of the addresses chosen so far.
    reach: Option<BTreeSet<String>>,
    /// The scopes of the chosen addresses: required node affinity for the Pod.
    chosen: Vec<Arc<NodeScope>>,
    /// What narrowed `reach`, for messages.
    steps: Vec<String>,
}

impl<'a> Placement<'a> {
    pub(crate) fn new(cache: &'a Cache, pod: &Pod) -> Placement<'a> {
        Placement {
            cache,
            pod: PodConstraints::of(pod.spec.as_ref()),
            allowed: None,
            reach: None,
            chosen: Vec::new(),
            steps: Vec::new(),
        }
    }

    fn load(&mut self) {
        if self.allowed.is_some() {
            return;
        }
        let allowed: Vec<Arc<NodeMeta>> = self
            .cache
            .nodes
            .state()
            .into_iter()
            .filter(|n| facts(n).is_some_and(|f| self.pod.can_run_on(f)))
            .collect();
        self.reach = Some(
            allowed
                .iter()
                .filter_map(|n| n.metadata.name.clone())
                .collect(),
        );
        self.allowed = Some(allowed);
    }

    /// The names of the nodes still possible that every scope given serves.
    fn within(&mut self, scopes: &[&NodeScope]) -> BTreeSet<String> {
        self.load();
        let reach = self.reach.clone().unwrap_or_default();
        self.allowed
            .iter()
            .flatten()
            .filter_map(|n| facts(n))
            .filter(|f| reach.contains(f.name) && scopes.iter().all(|s| s.matches(*f)))
            .map(|f| f.name.to_string())
            .collect()
    }

    /// The Pod's constraint and what narrowed it, with the nodes left: the "can run on" of a denial.
    fn constraint(&mut self) -> String {
        self.load();
        let mut why = vec![self.pod.to_string()];
        why.extend(self.steps.iter().cloned());
        let left = show_nodes(self.reach.iter().flatten().map(String::as_str));
        format!("{}: {left}", why.join(", and "))
    }

    /// `p` with the pools that serve none of the Pod's possible nodes left out and the others' nodes noted;
    /// `None` when no node scope applies to it. Denied when the Subnet, or every pool of a family, serves none.
    pub(crate) fn narrow(&mut self, p: &Planned) -> Result<Option<Planned>, Denial> {
        let subnet_scope = p.subnet_scope.as_deref();
        if let Some(scope) = subnet_scope
            && self.within(&[scope]).is_empty()
        {
            let matched = show_nodes(
                self.cache
                    .nodes
                    .state()
                    .iter()
                    .filter_map(|n| facts(n))
                    .filter(|f| scope.matches(*f))
                    .map(|f| f.name),
            );
            return Err(Denial::NoNodeForSubnet {
                network: p.network.to_string(),
                subnet: kube::ResourceExt::name_any(p.subnet.as_ref()),
                scope: scope.to_string(),
                matched: format!("matching {matched}"),
                constraint: self.constraint(),
            });
        }
        let Choice::Pools(plan) = &p.choice else {
            return Ok(None);
        };
        let scoped = plan.v4.iter().chain(&plan.v6).any(|c| c.scope.is_some());
        if !scoped {
            return Ok(None);
        }
        let mut narrowed = PoolPlan {
            default_of: plan.default_of.clone(),
            ..PoolPlan::default()
        };
        for (from, to) in [(&plan.v4, &mut narrowed.v4), (&plan.v6, &mut narrowed.v6)] {
            let mut described = Vec::new();
            for c in from {
                let mut scopes: Vec<&NodeScope> = subnet_scope.into_iter().collect();
                scopes.extend(c.scope.as_deref());
                let reach = self.within(&scopes);
                described.push(match c.scope.as_deref() {
                    Some(s) => format!("IPPool {} ({s}) serves {}", c.name, self.served(s)),
                    None => format!("IPPool {} serves every node", c.name),
                });
                if !reach.is_empty() {
                    let mut c = c.clone();
                    c.reach = Some(reach);
                    to.push(c);
                }
            }
            if !from.is_empty() && to.is_empty() {
                return Err(Denial::NoNodeForPools {
                    network: p.network.to_string(),
                    constraint: self.constraint(),
                    pools: described.join("; "),
                });
            }
        }
        Ok(Some(Planned {
            choice: Choice::Pools(narrowed),
            ..p.clone()
        }))
    }

    /// The cluster's nodes a scope serves, in words.
    fn served(&self, scope: &NodeScope) -> String {
        show_nodes(
            self.cache
                .nodes
                .state()
                .iter()
                .filter_map(|n| facts(n))
                .filter(|f| scope.matches(*f))
                .map(|f| f.name),
        )
    }

    /// Records where `p`'s reserved addresses are valid: its Subnet's scope and the scope of each IPPool an
    /// address came from (looked up by name, so a reused lease counts as a new one does).
    pub(crate) fn settle(&mut self, p: &Planned, r: &Reserved) {
        let mut scopes: Vec<(String, Arc<NodeScope>)> = Vec::new();
        if let Some(s) = &p.subnet_scope {
            let subnet = kube::ResourceExt::name_any(p.subnet.as_ref());
            scopes.push((
                format!("network {}'s Subnet {subnet} ({s})", p.network),
                s.clone(),
            ));
        }
        for (_, pool) in &r.pools {
            let scope = self
                .cache
                .pools
                .get(&ObjectRef::new(pool))
                .and_then(|c| c.node_scope().ok().flatten());
            if let Some(s) = scope {
                scopes.push((
                    format!("network {}'s IPPool {pool} ({s})", p.network),
                    Arc::new(s),
                ));
            }
        }
        for (step, scope) in scopes {
            if self.chosen.iter().any(|c| **c == *scope) {
                continue;
            }
            let reach = self.within(&[&scope]);
            self.reach = Some(reach);
            self.steps.push(step);
            self.chosen.push(scope);
        }
    }

    /// The Pod's affinity requiring every chosen scope; `None` when there is none or the Pod has it already.
    pub(crate) fn affinity(&self, pod: &Pod) -> Option<Affinity> {
        if self.chosen.is_empty() {
            return None;
        }
        let scopes: Vec<&NodeScope> = self.chosen.iter().map(AsRef::as_ref).collect();
        let current = pod.spec.as_ref().and_then(|s| s.affinity.as_ref());
        with_scopes(current, &scopes)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use serde_json::json;

    use super::*;
    use crate::annotations::NetworkRef;
    use crate::api::{IPPool, Subnet};
    use crate::webhook::pod::plan::PoolChoice;

    fn pool(name: &str, spec: serde_json::Value) -> IPPool {
        let mut spec = spec;
        spec["subnet"] = json!("s");
        spec["ips"] = json!(["10.0.0.10-10.0.0.20"]);
        serde_json::from_value(json!({"apiVersion": "nadipam.io/v1", "kind": "IPPool",
            "metadata": {"name": name}, "spec": spec}))
        .unwrap()
    }

    fn subnet(selector: Option<serde_json::Value>) -> Subnet {
        let mut spec = json!({"cidrBlock": "10.0.0.0/24", "provider": "n.ns"});
        if let Some(s) = selector {
            spec["nodeSelector"] = s;
        }
        serde_json::from_value(json!({"apiVersion": "nadipam.io/v1", "kind": "Subnet",
            "metadata": {"name": "s"}, "spec": spec}))
        .unwrap()
    }

    fn choice(p: &IPPool) -> PoolChoice {
        PoolChoice {
            name: kube::ResourceExt::name_any(p),
            ranges: Vec::new(),
            gateway: Vec::new(),
            scope: p.node_scope().unwrap().map(Arc::new),
            reach: None,
            disabled: false,
            excluded: Vec::new(),
        }
    }

    /// An attachment of network ns/n drawing from `pools` (IPv4), for tests elsewhere.
    pub(crate) fn planned_for(subnet: &Subnet, pools: &[&IPPool]) -> Planned {
        planned(subnet, pools)
    }

    fn planned(subnet: &Subnet, pools: &[&IPPool]) -> Planned {
        Planned {
            network: NetworkRef {
                namespace: "ns".into(),
                name: "n".into(),
            },
            interface: None,
            is_default: false,
            provider: "n.ns".into(),
            subnet: Arc::new(subnet.clone()),
            subnet_scope: subnet.node_scope().unwrap().map(Arc::new),
            choice: Choice::Pools(PoolPlan {
                v4: pools.iter().map(|p| choice(p)).collect(),
                v6: Vec::new(),
                default_of: None,
            }),
            mac: None,
            routes: None,
            own_routes: false,
            default_route: Vec::new(),
            pool: None,
            claim: None,
            kept: Vec::new(),
            request_key: None,
        }
    }

    fn pod(spec: serde_json::Value) -> Pod {
        let mut spec = spec;
        spec["containers"] = json!([]);
        serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": spec})).unwrap()
    }

    fn cache(pools: Vec<IPPool>) -> Cache {
        Cache::offline(vec![], vec![], pools, vec![]).with_nodes(&[
            ("n1", &[("rack", "a")]),
            ("n2", &[("rack", "b")]),
            ("n3", &[("rack", "b"), ("disk", "ssd")]),
        ])
    }

    fn reach(p: &Planned) -> Vec<(String, Vec<String>)> {
        let Choice::Pools(plan) = &p.choice else {
            panic!("not pools")
        };
        plan.v4
            .iter()
            .map(|c| (c.name.clone(), c.reach.iter().flatten().cloned().collect()))
            .collect()
    }

    fn reserved(pool: &str) -> Reserved {
        Reserved {
            pools: vec![("10.0.0.10".parse().unwrap(), pool.to_string())],
            ..Reserved::default()
        }
    }

    #[test]
    fn an_unconstrained_pod_may_use_every_pool_with_nodes_and_is_pinned_to_the_one_it_got() {
        let a = pool(
            "rack-a",
            json!({"nodeSelector": {"matchLabels": {"rack": "a"}}}),
        );
        let b = pool(
            "rack-b",
            json!({"nodeAffinity": {"matchLabels": {"rack": "b"}}}),
        );
        let none = pool(
            "rack-c",
            json!({"nodeSelector": {"matchLabels": {"rack": "c"}}}),
        );
        let cache = cache(vec![a.clone(), b.clone(), none.clone()]);
        let p = pod(json!({}));
        let mut place = Placement::new(&cache, &p);
        let narrowed = place
            .narrow(&planned(&subnet(None), &[&none, &a, &b]))
            .unwrap()
            .unwrap();
        assert_eq!(
            reach(&narrowed),
            [
                ("rack-a".to_string(), vec!["n1".to_string()]),
                (
                    "rack-b".to_string(),
                    vec!["n2".to_string(), "n3".to_string()]
                )
            ]
        );
        place.settle(&narrowed, &reserved("rack-b"));
        let affinity = serde_json::to_value(place.affinity(&p).unwrap()).unwrap();
        assert_eq!(
            affinity,
            json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": "rack", "operator": "In", "values": ["b"]}]}]}}})
        );
    }

    #[test]
    fn a_constrained_pod_gets_only_pools_of_its_nodes_or_a_denial_naming_everything() {
        let a = pool(
            "rack-a",
            json!({"nodeSelector": {"matchLabels": {"rack": "a"}}}),
        );
        let b = pool("rack-b", json!({"nodeName": ["n2"]}));
        let cache = cache(vec![a.clone(), b.clone()]);
        let p = pod(json!({"nodeSelector": {"rack": "b"}}));
        let narrowed = Placement::new(&cache, &p)
            .narrow(&planned(&subnet(None), &[&a, &b]))
            .unwrap()
            .unwrap();
        assert_eq!(
            reach(&narrowed),
            [("rack-b".to_string(), vec!["n2".to_string()])]
        );
        let ssd = pod(json!({"nodeSelector": {"disk": "ssd"}}));
        let denial = Placement::new(&cache, &ssd)
            .narrow(&planned(&subnet(None), &[&a, &b]))
            .unwrap_err();
        assert_eq!(
            denial.to_string(),
            "network ns/n: no IPPool it names serves a node this Pod can run on (spec.nodeSelector disk=ssd: node \
             n3): IPPool rack-a (spec.nodeSelector rack=a) serves node n1; IPPool rack-b (spec.nodeName n2) \
             serves node n2; name an IPPool whose nodes the Pod can run on, or change where the Pod runs \
             (spec.nodeName, spec.nodeSelector, spec.affinity.nodeAffinity)"
        );
        assert_eq!((denial.reason(), denial.code()), ("no_node", 409));
    }

    #[test]
    fn attachments_narrow_in_turn() {
        let a = pool(
            "rack-a",
            json!({"nodeSelector": {"matchLabels": {"rack": "a"}}}),
        );
        let b = pool(
            "rack-b",
            json!({"nodeSelector": {"matchLabels": {"rack": "b"}}}),
        );
        let cache = cache(vec![a.clone(), b.clone()]);
        let p = pod(json!({"nodeName": "n1"}));
        let mut place = Placement::new(&cache, &p);
        let first = place
            .narrow(&planned(&subnet(None), &[&a]))
            .unwrap()
            .unwrap();
        place.settle(&first, &reserved("rack-a"));
        let denial = place.narrow(&planned(&subnet(None), &[&b])).unwrap_err();
        assert_eq!(
            denial.to_string(),
            "network ns/n: no IPPool it names serves a node this Pod can run on (spec.nodeName n1, and network \
             ns/n's IPPool rack-a (spec.nodeSelector rack=a): node n1): IPPool rack-b (spec.nodeSelector rack=b) \
             serves nodes n2, n3; name an IPPool whose nodes the Pod can run on, or change where the Pod runs \
             (spec.nodeName, spec.nodeSelector, spec.affinity.nodeAffinity)"
        );
    }

    #[test]
    fn a_subnet_scope_applies_to_the_subnet_and_its_pools() {
        let s = subnet(Some(json!({"matchExpressions": [
            {"key": "rack", "operator": "In", "values": ["b"]}]})));
        let cache = cache(vec![]);
        let p = pod(json!({"nodeName": "n1"}));
        let denial = Placement::new(&cache, &p)
            .narrow(&Planned {
                choice: Choice::Any,
                ..planned(&s, &[])
            })
            .unwrap_err();
        assert_eq!(
            denial.to_string(),
            "network ns/n: Subnet s serves only spec.nodeSelector rack=b (matching nodes n2, n3), none of them a \
             node this Pod can run on (spec.nodeName n1: node n1); use a network whose Subnet serves the Pod's \
             nodes, or change where the Pod runs (spec.nodeName, spec.nodeSelector, spec.affinity.nodeAffinity)"
        );
        assert_eq!((denial.reason(), denial.code()), ("no_node", 409));
        // An unconstrained Pod on such a Subnet is pinned to its nodes.
        let free = pod(json!({}));
        let mut place = Placement::new(&cache, &free);
        let any = Planned {
            choice: Choice::Any,
            ..planned(&s, &[])
        };
        assert!(place.narrow(&any).unwrap().is_none());
        place.settle(&any, &Reserved::default());
        assert!(place.affinity(&free).is_some());
    }

    #[test]
    fn pools_without_scopes_read_no_nodes_and_change_nothing() {
        let plain = pool("plain", json!({}));
        let cache = cache(vec![plain.clone()]);
        let p = pod(json!({"nodeName": "elsewhere"}));
        let mut place = Placement::new(&cache, &p);
        let planned = planned(&subnet(None), &[&plain]);
        assert!(place.narrow(&planned).unwrap().is_none());
        place.settle(&planned, &reserved("plain"));
        assert!(place.affinity(&p).is_none());
        assert!(place.allowed.is_none(), "the Node cache was read");
    }

    #[test]
    fn a_bad_stored_selector_is_named() {
        let d = Denial::BadNodeScope {
            network: "ns/n".into(),
            object: "IPPool rack-a".into(),
            source: crate::placement::SelectorError::NoValues {
                field: "spec.nodeSelector.matchExpressions[0]".into(),
                operator: "In".into(),
            },
        };
        assert_eq!(
            d.to_string(),
            "network ns/n: IPPool rack-a: spec.nodeSelector.matchExpressions[0]: operator In needs at least one \
             value in values; fix the selector"
        );
        assert_eq!((d.reason(), d.code()), ("bad_pool", 422));
    }
}
