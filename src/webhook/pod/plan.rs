//! From a Pod's annotations to an allocation plan: which Subnet each attachment draws from and how the
//! address is chosen. Reads only the caches; nothing is reserved here.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;

use crate::alloc::{Family, IpPair, IpRange, Mac, parse_entries};
use crate::annotations::{self, NetworkRef, PoolRequest, Route, keys};
use crate::api::{IPPool, NetworkAttachmentDefinition, Subnet};
use crate::cache::Cache;
use crate::placement::NodeScope;
use crate::webhook::default_pool::serving_default;
use crate::webhook::denial::Denial;
use crate::webhook::pool_subnet::{names_subnet, pool_subnet};
use crate::webhook::resolve::{Ask, Labels, NamedPool, Objects, Resolved, fixed_key, resolve};

/// How the address of one attachment is chosen.
#[derive(Clone, Debug)]
pub(crate) enum Choice {
    /// `ip_address` or Multus `ips`.
    Fixed(IpPair),
    /// An `ip_pool` address list: the ordinal's entry for a StatefulSet Pod, else the first free entry.
    List {
        entries: Vec<IpPair>,
        ordinal: Option<u32>,
    },
    /// IPPool objects, tried in the written order per family.
    Pools(PoolPlan),
    /// Any free address of the Subnet outside its IPPools.
    Any,
}

/// One IPPool as the reservation uses it.
#[derive(Clone, Debug)]
pub(crate) struct PoolChoice {
    pub name: String,
    pub ranges: Vec<IpRange>,
    /// The pool's gateway addresses: never handed to a Pod, and the gateway of a Pod whose address the pool gave.
    pub gateway: Vec<IpAddr>,
    /// The nodes the pool serves (`None`: every node).
    pub scope: Option<Arc<NodeScope>>,
    /// The nodes the Pod could run on with an address of this pool, set by [`super::place::Placement`] when
    /// node scopes apply (`None`: the pool does not narrow where the Pod runs).
    pub reach: Option<BTreeSet<String>>,
    /// `spec.disable`: addresses already leased from the pool are kept, no new one is given.
    pub disabled: bool,
    /// `spec.excludeIPs`: never handed out.
    pub excluded: Vec<IpRange>,
}

impl PoolChoice {
    fn of(pool: &IPPool, network: &str) -> Result<PoolChoice, Denial> {
        let bad = |reason: String| Denial::BadPool {
            network: network.to_string(),
            pool: pool.name_any(),
            reason,
        };
        let ranges = parse_entries(&pool.spec.ips).map_err(|e| bad(e.to_string()))?;
        let gateway = pool.gateways().map_err(bad)?;
        let excluded = pool.excluded().map_err(bad)?;
        let scope = pool
            .node_scope()
            .map_err(|source| Denial::BadNodeScope {
                network: network.to_string(),
                object: format!("IPPool {}", pool.name_any()),
                source,
            })?
            .map(Arc::new);
        Ok(PoolChoice {
            name: pool.name_any(),
            ranges,
            gateway,
            scope,
            reach: None,
            disabled: pool.is_disabled(),
            excluded,
        })
    }

    /// What the pool never hands out: its gateway and its excludeIPs.
    pub(crate) fn withheld(&self) -> Vec<IpRange> {
        let mut out: Vec<IpRange> = self.gateway.iter().copied().map(IpRange::single).collect();
        out.extend(self.excluded.iter().copied());
        out
    }
}

/// The IPPools an attachment may draw from, per family in the order the Pod named them. A family with no pool
/// takes any free address of the Subnet outside its pools.
#[derive(Clone, Debug, Default)]
pub(crate) struct PoolPlan {
    pub v4: Vec<PoolChoice>,
    pub v6: Vec<PoolChoice>,
    /// Set (to the Subnet's name) when the Pod named no pool and this is the Subnet's default pool.
    pub default_of: Option<String>,
}

impl PoolPlan {
    pub(crate) fn for_family(&self, family: Family) -> &[PoolChoice] {
        match family {
            Family::V4 => &self.v4,
            Family::V6 => &self.v6,
        }
    }

    /// The plan for a new allocation: disabled pools left out. `Ok(None)`: the default pool is disabled, so
    /// the Pod takes an address outside every pool as if the Subnet had no default pool. Err: every pool a
    /// family names is disabled (their names).
    pub(crate) fn fresh(&self) -> Result<Option<PoolPlan>, Vec<String>> {
        let open = |pools: &[PoolChoice]| -> Vec<PoolChoice> {
            pools.iter().filter(|c| !c.disabled).cloned().collect()
        };
        let plan = PoolPlan {
            v4: open(&self.v4),
            v6: open(&self.v6),
            default_of: self.default_of.clone(),
        };
        for (before, after) in [(&self.v4, &plan.v4), (&self.v6, &plan.v6)] {
            if !before.is_empty() && after.is_empty() {
                if self.default_of.is_some() {
                    return Ok(None);
                }
                let mut names: Vec<String> = before.iter().map(|c| c.name.clone()).collect();
                names.dedup();
                return Err(names);
            }
        }
        Ok(Some(plan))
    }
}

/// `p` as a new allocation sees it ([`PoolPlan::fresh`]): run after the attachment's existing leases were
/// looked for, so what a Pod already holds from a disabled pool stays with it.
pub(crate) fn for_new(p: &Planned) -> Result<Option<Planned>, Denial> {
    let Choice::Pools(plan) = &p.choice else {
        return Ok(None);
    };
    let choice = match plan.fresh() {
        Ok(Some(fresh)) if fresh.v4.len() == plan.v4.len() && fresh.v6.len() == plan.v6.len() => {
            return Ok(None);
        }
        Ok(Some(fresh)) => Choice::Pools(fresh),
        Ok(None) => Choice::Any,
        Err(pools) => {
            return Err(Denial::PoolDisabled {
                network: p.network.to_string(),
                pools: pools.join(", "),
                many: pools.len() > 1,
            });
        }
    };
    Ok(Some(Planned {
        choice,
        ..p.clone()
    }))
}

/// One attachment nadipam allocates for.
#[derive(Clone, Debug)]
pub(crate) struct Planned {
    pub network: NetworkRef,
    /// The explicit interface name (selects per-interface result keys).
    pub interface: Option<String>,
    /// The `default-network` attachment (else one of `networks`).
    pub is_default: bool,
    pub provider: String,
    pub subnet: Arc<Subnet>,
    /// The nodes the Subnet serves (`None`: every node).
    pub subnet_scope: Option<Arc<NodeScope>>,
    pub choice: Choice,
    pub mac: Option<Mac>,
    /// The Pod's own routes annotation, else the Subnet's routes (the pool's are added to the latter once the
    /// address is known: [`super::routes::merged`]).
    pub routes: Option<Vec<Route>>,
    /// Whether `routes` is the Pod's own annotation (then no pool route is added).
    pub own_routes: bool,
    /// Multus `default-route` gateways of the element: added last, whatever else applies.
    pub default_route: Vec<Route>,
    /// The `ip_pool` address list the address came from (recorded on the lease as pool `ip_pool`).
    pub pool: Option<String>,
    /// Addresses of the Subnet kept by IPPools this attachment does not name (their ranges and gateways):
    /// never given to it, whatever it asks.
    pub kept: Vec<(String, Vec<IpRange>)>,
    /// The annotation that asked for specific addresses (`ip_address`, `ip_pool` list, Multus `ips`), named
    /// when such an address cannot be given.
    pub request_key: Option<String>,
    /// The IPAMClaim the element names (`ipam-claim-reference`): it, not the Pod, holds the addresses.
    pub claim: Option<String>,
}

/// Who is asking: the parts of the Pod the plan depends on.
pub(crate) struct PodIdentity<'a> {
    pub namespace: &'a str,
    /// Empty for a Pod created with generateName.
    pub name: &'a str,
    /// Set when a StatefulSet controls the Pod: its ordinal.
    pub ordinal: Option<u32>,
}

/// The webhook's caches, and the NADs read live because the cache did not have them yet.
struct CacheObjects<'a> {
    cache: &'a Cache,
    fetched: &'a [Arc<NetworkAttachmentDefinition>],
}

impl Objects for CacheObjects<'_> {
    fn nad(&self, network: &NetworkRef) -> Option<Arc<NetworkAttachmentDefinition>> {
        let key = network.to_string();
        self.cache
            .nads
            .get(&ObjectRef::new(&network.name).within(&network.namespace))
            .or_else(|| self.fetched.iter().find(|n| n.key() == key).cloned())
    }

    fn subnet(&self, name: &str) -> Option<Arc<Subnet>> {
        self.cache.subnets.get(&ObjectRef::new(name))
    }

    fn pool(&self, name: &str) -> Option<Arc<IPPool>> {
        self.cache.pools.get(&ObjectRef::new(name))
    }

    fn subnets(&self) -> Vec<Arc<Subnet>> {
        self.cache.subnets.state()
    }

    fn pools(&self) -> Vec<Arc<IPPool>> {
        self.cache.pools.state()
    }
}

/// Builds the plan for every attachment whose NAD uses nadipam; other attachments are left alone.
/// `fetched`: NADs read live because the cache did not have them yet.
pub(crate) fn plan(
    cache: &Cache,
    fetched: &[Arc<NetworkAttachmentDefinition>],
    pod: &PodIdentity<'_>,
    ann: &BTreeMap<String, String>,
    labels: Labels<'_>,
) -> Result<Vec<Planned>, Denial> {
    let requests = annotations::attachments(ann, pod.namespace)?;
    let spider = annotations::spider_pools(ann)?;
    let objects = CacheObjects { cache, fetched };
    let mut out = Vec::new();
    for (i, req) in requests.iter().enumerate() {
        let ask = Ask {
            req,
            annotations: ann,
            namespace: pod.namespace,
            first: i == 0,
            spider: spider.as_ref(),
            overlap: true,
            labels,
        };
        if let Some(resolved) = resolve(&objects, &ask)? {
            out.push(plan_one(cache, pod, &ask, resolved)?);
        }
    }
    Ok(out)
}

fn plan_one(
    cache: &Cache,
    pod: &PodIdentity<'_>,
    ask: &Ask<'_>,
    resolved: Resolved,
) -> Result<Planned, Denial> {
    let Resolved {
        network,
        nad_key,
        provider,
        asks,
        pools: named,
        subnet,
    } = resolved;
    let req = ask.req;
    let Some(subnet) = subnet else {
        return Err(Denial::NoSubnet { network, provider });
    };
    let subnet_scope = subnet
        .node_scope()
        .map_err(|source| Denial::BadNodeScope {
            network: network.clone(),
            object: format!("Subnet {}", subnet.name_any()),
            source,
        })?
        .map(Arc::new);
    let fixed = asks
        .ip_address
        .map(|pair| {
            (
                pair,
                fixed_key(ask.annotations, &provider, req.interface.as_deref()),
            )
        })
        .or_else(|| {
            req.ip_pair()
                .map(|pair| (pair, format!("{nad_key} (\"ips\" of {network})")))
        });
    let mut request_key = None;
    let (choice, pool) = match (fixed, &asks.ip_pool) {
        (Some((pair, key)), _) => {
            request_key = Some(key);
            (Choice::Fixed(pair), None)
        }
        (None, Some(PoolRequest::List(entries))) => {
            request_key = Some(keys::provider_key(&provider, keys::IP_POOL));
            (
                Choice::List {
                    entries: entries.clone(),
                    ordinal: pod.ordinal,
                },
                Some(keys::IP_POOL.to_string()),
            )
        }
        (None, _) if !named.is_empty() => (Choice::Pools(pool_plan(&named, &network)?), None),
        (None, _) => {
            match serving_default(&resolving_to(cache, &subnet), &subnet, &network, ask)? {
                Some(pool) => (Choice::Pools(default_plan(&pool, &subnet, &network)?), None),
                None => (Choice::Any, None),
            }
        }
    };

    let own_routes = asks.routes.is_some();
    let routes = asks.routes.clone().or_else(|| subnet_routes(&subnet));
    let default_route = req
        .default_route
        .iter()
        .map(|gw| Route {
            dst: None,
            gw: Some(gw.to_string()),
        })
        .collect();
    // A default pool is kept from the Pod like any other: it gives addresses only through the plan.
    let pools: Vec<Arc<IPPool>> = named.into_iter().map(|(p, _)| p).collect();
    let kept = kept_by_other_pools(cache, &subnet, &pools, &network)?;
    Ok(Planned {
        network: req.network.clone(),
        interface: req.interface.clone(),
        is_default: req.is_default,
        provider,
        subnet,
        subnet_scope,
        choice,
        mac: asks.mac_address.or(req.mac),
        routes,
        own_routes,
        default_route,
        pool,
        kept,
        request_key,
        claim: req.claim.clone(),
    })
}

/// The named pools per family, in the order the Pod named them; a pool without a family serves both.
fn pool_plan(named: &[NamedPool], network: &str) -> Result<PoolPlan, Denial> {
    let mut plan = PoolPlan::default();
    for (pool, family) in named {
        let choice = PoolChoice::of(pool, network)?;
        if *family != Some(Family::V6) {
            plan.v4.push(choice.clone());
        }
        if *family != Some(Family::V4) {
            plan.v6.push(choice);
        }
    }
    Ok(plan)
}

/// The plan of a Subnet's default pool: the families it has addresses of.
fn default_plan(pool: &IPPool, subnet: &Subnet, network: &str) -> Result<PoolPlan, Denial> {
    let choice = PoolChoice::of(pool, network)?;
    let has = |f: Family| choice.ranges.iter().any(|r| r.family() == f);
    Ok(PoolPlan {
        v4: if has(Family::V4) {
            vec![choice.clone()]
        } else {
            Vec::new()
        },
        v6: if has(Family::V6) {
            vec![choice]
        } else {
            Vec::new()
        },
        default_of: Some(subnet.name_any()),
    })
}

/// The address ranges (and gateways) of the Subnet's IPPools other than `named`, per pool: what only the
/// Pods naming those pools receive.
fn kept_by_other_pools(
    cache: &Cache,
    subnet: &Subnet,
    named: &[Arc<IPPool>],
    network: &str,
) -> Result<Vec<(String, Vec<IpRange>)>, Denial> {
    let mut kept = Vec::new();
    for pool in pools_of(cache, subnet) {
        if named.iter().any(|n| n.name_any() == pool.name_any()) {
            continue;
        }
        let choice = PoolChoice::of(&pool, network)?;
        let mut ranges = choice.ranges;
        ranges.extend(choice.gateway.into_iter().map(IpRange::single));
        kept.push((choice.name, ranges));
    }
    Ok(kept)
}

/// The IPPools of a Subnet (named by its name or one of its CIDRs).
pub(crate) fn pools_of(cache: &Cache, subnet: &Subnet) -> Vec<Arc<IPPool>> {
    cache
        .pools
        .state()
        .into_iter()
        .filter(|p| names_subnet(&p.spec.subnet, subnet))
        .collect()
}

/// The IPPools whose spec.subnet resolves to `subnet` ([`pool_subnet`]): a pool naming a CIDR that Subnets of
/// other providers have too belongs to one of them only, so another Subnet's default pool is never this one's.
fn resolving_to(cache: &Cache, subnet: &Subnet) -> Vec<Arc<IPPool>> {
    let subnets = cache.subnets.state();
    pools_of(cache, subnet)
        .into_iter()
        .filter(|p| pool_subnet(p, &subnets).is_ok_and(|s| s.name_any() == subnet.name_any()))
        .collect()
}

/// Routes the Subnet gives every interface, when the Pod names none. (The NAD's own `ipam.routes` are
/// added by the CNI plugin, which reads the config.)
fn subnet_routes(subnet: &Subnet) -> Option<Vec<Route>> {
    let routes: Vec<Route> = subnet
        .spec
        .routes
        .iter()
        .map(|r| Route {
            dst: r.dst.clone(),
            gw: r.gw.clone(),
        })
        .collect();
    (!routes.is_empty()).then_some(routes)
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use serde_json::json;

    use super::*;
    use crate::alloc::{Allocator, Strategy, SubnetLayout};
    use crate::webhook::pod::reserve::pick_from_pools;

    fn pool(name: &str, spec: serde_json::Value) -> IPPool {
        let mut spec = spec;
        spec["subnet"] = json!("s");
        if spec.get("ips").is_none() {
            spec["ips"] = json!(["10.0.0.10-10.0.0.12"]);
        }
        serde_json::from_value(json!({"apiVersion": "nadipam.io/v1", "kind": "IPPool",
            "metadata": {"name": name}, "spec": spec}))
        .unwrap()
    }

    fn subnet() -> Subnet {
        serde_json::from_value(json!({"apiVersion": "nadipam.io/v1", "kind": "Subnet",
            "metadata": {"name": "s"}, "spec": {"cidrBlock": "10.0.0.0/24", "provider": "n.ns"}}))
        .unwrap()
    }

    fn named(pools: &[&IPPool]) -> PoolPlan {
        let named: Vec<NamedPool> = pools
            .iter()
            .map(|p| (Arc::new((*p).clone()), Some(Family::V4)))
            .collect();
        pool_plan(&named, "ns/n").unwrap()
    }

    fn names(plan: &PoolPlan) -> Vec<&str> {
        plan.v4.iter().map(|c| c.name.as_str()).collect()
    }

    #[test]
    fn disabled_named_pools_are_passed_over_and_refused_when_none_is_left() {
        let off = pool("off", json!({"disable": true}));
        let on = pool("on", json!({"ips": ["10.0.0.20"]}));
        let fresh = named(&[&off, &on]).fresh().unwrap().unwrap();
        assert_eq!(names(&fresh), ["on"]);
        assert_eq!(named(&[&off]).fresh().unwrap_err(), ["off"]);
        let also_off = pool("off2", json!({"disable": true, "ips": ["10.0.0.30"]}));
        assert_eq!(
            named(&[&off, &also_off]).fresh().unwrap_err(),
            ["off", "off2"]
        );
    }

    #[test]
    fn a_disabled_default_pool_gives_way_to_any_address() {
        let off = pool("dflt", json!({"default": true, "disable": true}));
        let plan = default_plan(&off, &subnet(), "ns/n").unwrap();
        assert_eq!(plan.default_of.as_deref(), Some("s"));
        assert!(plan.v6.is_empty(), "an IPv4-only pool serves IPv4 only");
        assert!(plan.fresh().unwrap().is_none());
    }

    #[test]
    fn the_disabled_denial_names_the_pool_and_the_field() {
        let off = pool("off", json!({"disable": true}));
        let mut p = crate::webhook::pod::place::tests::planned_for(&subnet(), &[&off]);
        p.choice = Choice::Pools(named(&[&off]));
        let d = for_new(&p).unwrap_err();
        assert_eq!(
            d.to_string(),
            "network ns/n: IPPool off is disabled (spec.disable: true): it gives no new addresses; name another \
             IPPool, or set spec.disable to false"
        );
        assert_eq!((d.reason(), d.code()), ("pool_disabled", 409));
        let on = pool("on", json!({"ips": ["10.0.0.20"]}));
        p.choice = Choice::Pools(named(&[&on]));
        assert!(for_new(&p).unwrap().is_none(), "nothing to leave out");
    }

    #[test]
    fn exclude_ips_and_the_gateway_are_never_picked() {
        let layout = SubnetLayout::parse("s", None, "10.0.0.0/24", None, &[] as &[String]).unwrap();
        let mut alloc = Allocator::new(&layout);
        let p = pool(
            "p",
            json!({"ips": ["10.0.0.10-10.0.0.13"], "gateway": "10.0.0.13", "excludeIPs": ["10.0.0.10..10.0.0.11"]}),
        );
        let plan = named(&[&p]);
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let got = pick_from_pools(&mut alloc, &plan, &[], Strategy::Random, &mut rng).unwrap();
        assert_eq!(got, [("10.0.0.12".parse().unwrap(), Some("p".to_string()))]);
        let full = pick_from_pools(&mut alloc, &plan, &[], Strategy::Random, &mut rng).unwrap_err();
        assert_eq!(full.pools, ["p"]);
    }

    #[test]
    fn a_full_default_pool_is_refused_naming_the_subnet_and_the_field() {
        let layout = SubnetLayout::parse("s", None, "10.0.0.0/24", None, &[] as &[String]).unwrap();
        let mut alloc = Allocator::new(&layout);
        let d = pool("dflt", json!({"default": true, "ips": ["10.0.0.10"]}));
        let plan = default_plan(&d, &subnet(), "ns/n").unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        pick_from_pools(&mut alloc, &plan, &[], Strategy::Random, &mut rng).unwrap();
        let full = pick_from_pools(&mut alloc, &plan, &[], Strategy::Random, &mut rng)
            .unwrap_err()
            .into_denial("ns/n".into());
        let text = full.to_string();
        assert!(
            text.starts_with(
                "network ns/n: IPPool dflt, the default pool of Subnet s (spec.default: true), has no free IPv4 \
                 address left ("
            ),
            "{text}"
        );
        assert!(
            text.ends_with(
                "); the Pods that name no IPPool get their addresses from it: add addresses to its spec.ips, or \
                 name another IPPool (ipam.spidernet.io/ippool)"
            ),
            "{text}"
        );
        assert_eq!((full.reason(), full.code()), ("exhausted", 409));
    }
}
