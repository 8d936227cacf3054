//! One attachment resolved: its NAD, provider, requests, named IPPools and Subnet, with the Subnet and pool
//! rules applied. Pod admission plans from the result and workload validation checks templates with it, so
//! the two read an attachment the same way and refuse it for the same reasons.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::alloc::Family;
use crate::annotations::{
    AttachmentRequest, NetworkRef, PoolRequest, ProviderRequest, SpiderPools, keys,
    provider_request,
};
use crate::api::{IPPool, NetworkAttachmentDefinition, Subnet};
use crate::webhook::denial::Denial;
use crate::webhook::pool_subnet::pool_subnet;
use crate::webhook::rules::{check_overlap, check_pool, check_subnet, subnet_by_provider};
use crate::webhook::scope;

/// Where references are looked up: the webhook's caches (Pod admission) or the workload view (caches plus
/// objects fetched on a miss).
pub(crate) trait Objects {
    fn nad(&self, network: &NetworkRef) -> Option<Arc<NetworkAttachmentDefinition>>;
    fn subnet(&self, name: &str) -> Option<Arc<Subnet>>;
    fn pool(&self, name: &str) -> Option<Arc<IPPool>>;
    fn subnets(&self) -> Vec<Arc<Subnet>>;
    fn pools(&self) -> Vec<Arc<IPPool>>;
}

/// One attachment to resolve, with what the Pod (or template) around it says.
pub(crate) struct Ask<'a> {
    pub req: &'a AttachmentRequest,
    pub annotations: &'a BTreeMap<String, String>,
    pub namespace: &'a str,
    /// The Pod's first attachment (takes the Spiderpool entry without an interface).
    pub first: bool,
    pub spider: Option<&'a SpiderPools>,
    /// Also refuse a Subnet overlapping an older one the network can reach. Pod admission checks this at
    /// allocation time; a template is not refused for it, since the overlap may be gone when its Pods come.
    pub overlap: bool,
    /// What IPPool selectors (`podAffinity`, `namespaceAffinity`) are matched against.
    pub labels: Labels<'a>,
}

/// The labels of the Pod (or template) and its namespace.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Labels<'a> {
    pub pod: &'a BTreeMap<String, String>,
    /// `None` when not read: no IPPool selects namespaces, or a workload template (its Pods are judged when
    /// they are created).
    pub namespace: Option<&'a BTreeMap<String, String>>,
}

impl Labels<'static> {
    /// No labels, and the namespace's not read.
    #[cfg(test)]
    pub(crate) fn none() -> Labels<'static> {
        static EMPTY: BTreeMap<String, String> = BTreeMap::new();
        Labels {
            pod: &EMPTY,
            namespace: None,
        }
    }
}

/// An IPPool the attachment names, with the family a Spiderpool entry gave it (`None`: both).
pub(crate) type NamedPool = (Arc<IPPool>, Option<Family>);

/// An attachment nadipam serves, resolved.
pub(crate) struct Resolved {
    /// `<namespace>/<name>` of the NAD.
    pub network: String,
    /// The annotation that named the NAD.
    pub nad_key: &'static str,
    pub provider: String,
    pub asks: ProviderRequest,
    /// The IPPools the attachment names, in written order, with the family a Spiderpool entry gave each.
    pub pools: Vec<NamedPool>,
    /// `None` when no Subnet has the provider and no named pool leads to one.
    pub subnet: Option<Arc<Subnet>>,
}

/// Resolves `ask`; `None` when its NAD does not use nadipam. The Subnet, when found, has passed the Subnet
/// rules and every named pool the pool rules.
pub(crate) fn resolve(objects: &impl Objects, ask: &Ask<'_>) -> Result<Option<Resolved>, Denial> {
    let req = ask.req;
    let network = req.network.to_string();
    let nad_key = if req.is_default {
        keys::DEFAULT_NETWORK
    } else {
        keys::NETWORKS
    };
    let nad = objects
        .nad(&req.network)
        .ok_or_else(|| Denial::UnknownNad {
            network: network.clone(),
            key: nad_key,
        })?;
    let served = || scope::served(&req.network, &objects.subnets(), &objects.pools());
    let Some(view) = scope::judge(&nad, served, false).map_err(|source| Denial::Nad {
        network: network.clone(),
        source: Box::new(source),
    })?
    else {
        return Ok(None);
    };
    let provider = nad.provider(&view);
    let asks = provider_request(ask.annotations, &provider, req.interface.as_deref())?;
    // Pools before the Subnet: a pool also says which Subnet it belongs to.
    let pools = named_pools(objects, ask, &asks, &network, &provider)?;
    let subnet = subnet(objects, ask, &asks, &pools, &network, &provider)?;
    if let Some(subnet) = &subnet {
        check_subnet(subnet, &network, &provider, ask.namespace)?;
        if ask.overlap {
            check_overlap(subnet, &objects.subnets(), &network, &provider)?;
        }
        for (pool, _) in &pools {
            check_pool(pool, subnet, &network, ask.namespace, ask.labels)?;
        }
    }
    Ok(Some(Resolved {
        network,
        nad_key,
        provider,
        asks,
        pools,
        subnet,
    }))
}

/// The pools of `ip_pool` (a pool name), else of the Spiderpool annotation's entry for this interface.
fn named_pools(
    objects: &impl Objects,
    ask: &Ask<'_>,
    asks: &ProviderRequest,
    network: &str,
    provider: &str,
) -> Result<Vec<NamedPool>, Denial> {
    let find = |name: &str, key: &str| {
        objects.pool(name).ok_or_else(|| Denial::UnknownPool {
            network: network.to_string(),
            pool: name.to_string(),
            key: key.to_string(),
        })
    };
    let mut named = Vec::new();
    if let Some(PoolRequest::Named(name)) = &asks.ip_pool {
        let key = keys::provider_key(provider, keys::IP_POOL);
        named.push((find(name, &key)?, None));
    } else if asks.ip_pool.is_none()
        && let Some(spider) = ask.spider
        && let Some(entry) = spider.for_interface(&ask.req.ifname, ask.first)
    {
        for name in &entry.ipv4 {
            named.push((find(name, spider.key)?, Some(Family::V4)));
        }
        for name in &entry.ipv6 {
            named.push((find(name, spider.key)?, Some(Family::V6)));
        }
    }
    Ok(named)
}

/// The Subnet `logical_switch` names, else the one serving the provider, else the first named pool's.
fn subnet(
    objects: &impl Objects,
    ask: &Ask<'_>,
    asks: &ProviderRequest,
    pools: &[NamedPool],
    network: &str,
    provider: &str,
) -> Result<Option<Arc<Subnet>>, Denial> {
    if let Some(name) = &asks.logical_switch {
        return objects
            .subnet(name)
            .map(Some)
            .ok_or_else(|| Denial::UnknownSubnet {
                network: network.to_string(),
                subnet: name.clone(),
                key: keys::provider_key(provider, keys::LOGICAL_SWITCH),
            });
    }
    let subnets = objects.subnets();
    if let Some(s) = subnet_by_provider(&subnets, provider, ask.namespace) {
        return Ok(Some(s));
    }
    let Some((pool, _)) = pools.first() else {
        return Ok(None);
    };
    pool_subnet(pool, &subnets)
        .cloned()
        .map(Some)
        .map_err(|e| Denial::PoolSubnetLookup {
            network: network.to_string(),
            source: Box::new(e),
        })
}

/// The key a fixed `ip_address` came from: the per-interface one when the attachment names its interface and
/// that key is set, else the provider's.
pub(crate) fn fixed_key(
    annotations: &BTreeMap<String, String>,
    provider: &str,
    interface: Option<&str>,
) -> String {
    interface
        .map(|i| keys::interface_key(provider, keys::IP_ADDRESS, i))
        .filter(|k| annotations.get(k).is_some_and(|v| !v.trim().is_empty()))
        .unwrap_or_else(|| keys::provider_key(provider, keys::IP_ADDRESS))
}
