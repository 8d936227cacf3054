//! The plan: every object a migration would create, with what it finds already there. Pure: from what the
//! peers (or the Pods) say is allocated ([`Desired`]) and what the cluster holds ([`World`]) to one list of
//! items, each `create`, `exists` (an equal object is there: nothing to do), `conflict` (something else is
//! there, or two Pods claim one address, or the address lies outside the Subnet) or `skip` (nothing to
//! migrate, with the reason).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;

use serde::Serialize;

use super::world::{PodInfo, World};
use crate::alloc::{Mac, SubnetLayout};
use crate::api::{
    IPLease, IPLeaseSpec, IPPool, IPPoolSpec, LeasePhase, OwnerKind, Subnet, SubnetSpec, lease_name,
};

/// Annotation on every object a migration created: where it came from (`network-status`, `kube-ovn`,
/// `spiderpool`, `whereabouts`).
pub(crate) const MIGRATED_FROM: &str = "nadipam.io/migrated-from";

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Dry run: would be created.
    Create,
    /// Applied: was created.
    Created,
    Exists,
    Conflict,
    Skip,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::Create => "create",
            Action::Created => "created",
            Action::Exists => "exists",
            Action::Conflict => "conflict",
            Action::Skip => "skip",
        })
    }
}

/// An object the plan writes.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Object {
    Subnet(Box<Subnet>),
    IPPool(Box<IPPool>),
    IPLease(Box<IPLease>),
}

/// One line of the plan.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Item {
    pub action: Action,
    /// `Subnet`, `IPPool`, `IPLease`, or for a skipped peer object its kind (`SpiderReservedIP`, `Pod`, ...).
    pub kind: String,
    pub name: String,
    /// What it comes from: a peer object or a Pod's network-status entry.
    pub source: String,
    /// Why, and for a conflict what differs.
    pub detail: String,
    /// The object to create (also shown for `exists` and `conflict`: what was wanted).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object: Option<Object>,
}

impl Item {
    pub(crate) fn note(
        action: Action,
        kind: &str,
        name: &str,
        source: &str,
        detail: String,
    ) -> Item {
        Item {
            action,
            kind: kind.to_string(),
            name: name.to_string(),
            source: source.to_string(),
            detail,
            object: None,
        }
    }
}

/// The whole plan.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Plan {
    pub items: Vec<Item>,
}

impl Plan {
    pub fn count(&self, action: Action) -> usize {
        self.items.iter().filter(|i| i.action == action).count()
    }
}

/// An address a Pod holds, according to a peer or to the Pod's network-status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Claim {
    pub ip: IpAddr,
    /// The nadipam Subnet the lease belongs to.
    pub subnet: String,
    pub provider: String,
    /// `<namespace>/<nad>`.
    pub network: String,
    pub interface: Option<String>,
    pub mac: Option<String>,
    pub pool: Option<String>,
    pub namespace: String,
    pub pod: String,
    /// The Pod UID the peer recorded, when it did: a Pod of that name with another UID is not the holder.
    pub uid: Option<String>,
    pub source: String,
}

/// What a migration wants to exist.
#[derive(Clone, Debug, Default)]
pub(crate) struct Desired {
    pub subnets: Vec<(Subnet, String)>,
    pub pools: Vec<(IPPool, String)>,
    pub claims: Vec<Claim>,
    /// Peer objects (or Pods) that give nothing to create, with the reason.
    pub notes: Vec<Item>,
}

/// The plan for `desired` in `world`; `origin` is written on every object created (see [`MIGRATED_FROM`]).
pub(crate) fn plan(desired: Desired, world: &World, origin: &str) -> Plan {
    let mut items = Vec::new();
    // Subnet names the claims use → the name they get (an equal Subnet may exist under another name), or None
    // when the Subnet will not exist.
    let mut subnet_as: BTreeMap<String, Option<String>> = BTreeMap::new();
    let mut layouts: BTreeMap<String, SubnetLayout> = BTreeMap::new();
    for s in &world.subnets {
        let name = s.metadata.name.clone().unwrap_or_default();
        if let Ok(l) = layout(&name, &s.spec) {
            layouts.insert(name, l);
        }
    }
    for (mut subnet, source) in desired.subnets {
        let name = subnet.metadata.name.clone().unwrap_or_default();
        annotate(&mut subnet.metadata, origin);
        let wanted = match layout(&name, &subnet.spec) {
            Ok(l) => l,
            Err(problem) => {
                subnet_as.insert(name.clone(), None);
                items.push(item(
                    Action::Conflict,
                    "Subnet",
                    &name,
                    &source,
                    problem,
                    Object::Subnet(Box::new(subnet)),
                ));
                continue;
            }
        };
        let (action, detail, target) = match world.subnet(&name) {
            Some(have) => {
                let diffs = subnet_diffs(&have.spec, &subnet.spec);
                if diffs.is_empty() {
                    (
                        Action::Exists,
                        "an equal Subnet exists".to_string(),
                        Some(name.clone()),
                    )
                } else {
                    // The existing Subnet is the one that allocates: leases go to it only if it holds them.
                    (
                        Action::Conflict,
                        format!("Subnet {name} exists and differs: {}", diffs.join("; ")),
                        Some(name.clone()),
                    )
                }
            }
            None => match world.subnets.iter().find(|s| {
                s.spec.provider == subnet.spec.provider
                    && layouts
                        .get(s.metadata.name.as_deref().unwrap_or_default())
                        .is_some_and(|l| l.cidr_block() == wanted.cidr_block())
            }) {
                Some(other) => {
                    let other = other.metadata.name.clone().unwrap_or_default();
                    (
                        Action::Exists,
                        format!(
                            "Subnet {other} has the same cidrBlock and provider: its leases go there"
                        ),
                        Some(other),
                    )
                }
                None => {
                    layouts.insert(name.clone(), wanted.clone());
                    (
                        Action::Create,
                        format!("{} provider {}", wanted.cidr_block(), subnet.spec.provider),
                        Some(name.clone()),
                    )
                }
            },
        };
        subnet_as.insert(name.clone(), target);
        items.push(item(
            action,
            "Subnet",
            &name,
            &source,
            detail,
            Object::Subnet(Box::new(subnet)),
        ));
    }

    for (mut pool, source) in desired.pools {
        let name = pool.metadata.name.clone().unwrap_or_default();
        annotate(&mut pool.metadata, origin);
        let (action, detail) = match world.pool(&name) {
            Some(have) => {
                let diffs = pool_diffs(&have.spec, &pool.spec);
                if diffs.is_empty() {
                    (Action::Exists, "an equal IPPool exists".to_string())
                } else {
                    (
                        Action::Conflict,
                        format!("IPPool {name} exists and differs: {}", diffs.join("; ")),
                    )
                }
            }
            None => (
                Action::Create,
                format!(
                    "subnet {} ips {}",
                    pool.spec.subnet,
                    pool.spec.ips.join(",")
                ),
            ),
        };
        items.push(item(
            action,
            "IPPool",
            &name,
            &source,
            detail,
            Object::IPPool(Box::new(pool)),
        ));
    }

    items.extend(desired.notes);
    items.extend(plan_leases(
        desired.claims,
        world,
        &subnet_as,
        &layouts,
        origin,
    ));
    Plan { items }
}

fn plan_leases(
    claims: Vec<Claim>,
    world: &World,
    subnet_as: &BTreeMap<String, Option<String>>,
    layouts: &BTreeMap<String, SubnetLayout>,
    origin: &str,
) -> Vec<Item> {
    let mut items = Vec::new();
    // Lease name → the claims on it, each with its holder.
    let mut by_lease: BTreeMap<String, Vec<(Claim, &PodInfo)>> = BTreeMap::new();
    for mut claim in claims {
        let holder = format!("pod {}/{}", claim.namespace, claim.pod);
        let source = claim.source.clone();
        let pod = match holder_of(&claim, world, &holder) {
            Ok(pod) => pod,
            Err(why) => {
                items.push(Item::note(
                    Action::Skip,
                    "IPLease",
                    &claim.ip.to_string(),
                    &source,
                    why,
                ));
                continue;
            }
        };
        let subnet = match subnet_as.get(&claim.subnet) {
            Some(Some(target)) => target.clone(),
            Some(None) => {
                items.push(Item::note(
                    Action::Skip,
                    "IPLease",
                    &claim.ip.to_string(),
                    &source,
                    format!("Subnet {} is not created (see its conflict)", claim.subnet),
                ));
                continue;
            }
            None => claim.subnet.clone(),
        };
        let Some(l) = layouts.get(&subnet) else {
            items.push(Item::note(
                Action::Conflict,
                "IPLease",
                &claim.ip.to_string(),
                &source,
                format!(
                    "{holder} holds {}: Subnet {subnet} does not exist",
                    claim.ip
                ),
            ));
            continue;
        };
        if !l.contains(claim.ip) {
            let inside: Vec<String> = layouts
                .iter()
                .filter(|(_, o)| o.contains(claim.ip))
                .map(|(n, _)| n.clone())
                .collect();
            let elsewhere = if inside.is_empty() {
                "no Subnet contains it".to_string()
            } else {
                format!("only Subnet {} contains it", inside.join(", "))
            };
            items.push(Item::note(
                Action::Conflict,
                "IPLease",
                &claim.ip.to_string(),
                &source,
                format!(
                    "{holder} holds {}, outside Subnet {} ({}); {elsewhere}",
                    claim.ip,
                    l.describe(),
                    l.cidr_block()
                ),
            ));
            continue;
        }
        if l.is_reserved(claim.ip) {
            items.push(Item::note(Action::Skip, "IPLease", &lease_name(&subnet, claim.ip), &source,
                format!("{holder} holds {}, which Subnet {subnet} never hands out (network, broadcast, gateway or excludeIps): no lease needed", claim.ip)));
            continue;
        }
        claim.subnet = subnet;
        by_lease
            .entry(lease_name(&claim.subnet, claim.ip))
            .or_default()
            .push((claim, pod));
    }

    for (name, mut claims) in by_lease {
        // One holder per Pod: a peer may record the address twice (an IPPool and an endpoint object).
        let mut holders: Vec<(Claim, &PodInfo)> = Vec::new();
        claims.sort_by(|a, b| {
            (&a.1.created, &a.1.namespace, &a.1.name).cmp(&(
                &b.1.created,
                &b.1.namespace,
                &b.1.name,
            ))
        });
        for (c, p) in claims {
            match holders.iter_mut().find(|(_, h)| h.uid == p.uid) {
                Some((kept, _)) => {
                    if !kept.source.contains(&c.source) {
                        kept.source = format!("{}, {}", kept.source, c.source);
                    }
                    kept.mac = kept.mac.take().or(c.mac);
                    kept.interface = kept.interface.take().or(c.interface);
                    kept.pool = kept.pool.take().or(c.pool);
                }
                None => holders.push((c, p)),
            }
        }
        let mut holders = holders.into_iter();
        let Some((claim, pod)) = holders.next() else {
            continue;
        };
        let others: Vec<(Claim, &PodInfo)> = holders.collect();
        let mut detail = format!("{} for pod {}/{}", claim.ip, pod.namespace, pod.name);
        if !others.is_empty() {
            let names: Vec<String> = others
                .iter()
                .map(|(_, p)| format!("{}/{}", p.namespace, p.name))
                .collect();
            detail += &format!(
                " (the oldest of the Pods holding it; also held by {})",
                names.join(", ")
            );
        }
        for (c, p) in &others {
            items.push(Item::note(Action::Conflict, "IPLease", &name, &c.source, format!(
                "pods {}/{} and {}/{} both hold {}: two Pods with one address; {}/{} (the older) keeps the lease, \
                 re-create {}/{} to give it an address of its own",
                pod.namespace, pod.name, p.namespace, p.name, c.ip, pod.namespace, pod.name, p.namespace, p.name)));
        }
        let lease = build_lease(&claim, pod, origin);
        let (action, detail) = match world.leases.get(&name) {
            Some(have) if same_holder(have, pod) => {
                (Action::Exists, format!("{detail}: already leased to it"))
            }
            Some(have) => (
                Action::Conflict,
                format!("{detail}: the address is leased to {}", have.holder()),
            ),
            None => (Action::Create, detail),
        };
        items.push(item(
            action,
            "IPLease",
            &name,
            &claim.source,
            detail,
            Object::IPLease(Box::new(lease)),
        ));
    }
    items
}

/// The Pod holding `claim`'s address, or why the address is free (a stale allocation of the peer).
fn holder_of<'w>(claim: &Claim, world: &'w World, holder: &str) -> Result<&'w PodInfo, String> {
    let Some(pod) = world.pod(&claim.namespace, &claim.pod) else {
        return Err(format!(
            "{holder} no longer exists: a stale allocation, nothing to keep"
        ));
    };
    if let Some(uid) = claim
        .uid
        .as_deref()
        .filter(|u| !u.is_empty() && *u != pod.uid)
    {
        return Err(format!(
            "{holder} was re-created (UID {} now, {uid} recorded): a stale allocation",
            pod.uid
        ));
    }
    if pod.finished {
        return Err(format!("{holder} has finished: its address is free"));
    }
    Ok(pod)
}

/// The lease of an adopted address: held by its Pod the way the controller reads it (docs/lifecycle.md): Bound
/// to the Pod's name and UID, token the Pod's UID (the Pod carries no reservation), ownerKind StatefulSet for a
/// StatefulSet's Pod (kept across its re-creation), Pod otherwise (released when the Pod goes or finishes).
pub(crate) fn build_lease(claim: &Claim, pod: &PodInfo, origin: &str) -> IPLease {
    let spec = IPLeaseSpec {
        subnet: claim.subnet.clone(),
        ip: claim.ip.to_string(),
        mac: claim
            .mac
            .as_deref()
            .and_then(|m| m.parse::<Mac>().ok())
            .map(|m| m.to_string()),
        provider: claim.provider.clone(),
        interface: claim
            .interface
            .clone()
            .filter(|i| !i.is_empty() && i.len() <= 15),
        pod_namespace: pod.namespace.clone(),
        pod_name: Some(pod.name.clone()),
        pod_uid: Some(pod.uid.clone()),
        phase: LeasePhase::Bound,
        token: pod.uid.clone(),
        owner_kind: if pod.set.is_some() {
            OwnerKind::StatefulSet
        } else {
            OwnerKind::Pod
        },
        claim: None,
        pool: claim.pool.clone(),
        network: claim.network.clone(),
    };
    let mut lease = IPLease::build(spec.clone())
        .unwrap_or_else(|_| IPLease::new(&lease_name(&claim.subnet, claim.ip), spec));
    annotate(&mut lease.metadata, origin);
    lease
}

/// Whether `lease` is held by `pod`: bound to its UID, reserved under its UID (adopted), or under the token
/// it carries (admitted by nadipam).
pub(crate) fn same_holder(lease: &IPLease, pod: &PodInfo) -> bool {
    let s = &lease.spec;
    s.pod_namespace == pod.namespace
        && (s.pod_uid.as_deref() == Some(pod.uid.as_str())
            || s.token == pod.uid
            || pod.token.as_deref() == Some(s.token.as_str()))
}

fn annotate(meta: &mut k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta, origin: &str) {
    meta.annotations
        .get_or_insert_with(Default::default)
        .insert(MIGRATED_FROM.to_string(), origin.to_string());
}

fn item(
    action: Action,
    kind: &str,
    name: &str,
    source: &str,
    detail: String,
    object: Object,
) -> Item {
    Item {
        action,
        kind: kind.to_string(),
        name: name.to_string(),
        source: source.to_string(),
        detail,
        object: Some(object),
    }
}

pub(crate) fn layout(name: &str, spec: &SubnetSpec) -> Result<SubnetLayout, String> {
    crate::cache::layout(&Subnet::new(name, spec.clone())).map_err(|e| e.to_string())
}

fn set<S: AsRef<str>>(v: &[S]) -> BTreeSet<String> {
    v.iter()
        .map(|s| s.as_ref().split_whitespace().collect::<String>())
        .collect()
}

fn show(v: &BTreeSet<String>) -> String {
    format!("[{}]", v.iter().cloned().collect::<Vec<_>>().join(", "))
}

/// What differs between an existing Subnet and the wanted one, in the fields that decide allocation.
pub(crate) fn subnet_diffs(have: &SubnetSpec, want: &SubnetSpec) -> Vec<String> {
    let mut out = Vec::new();
    let (lh, lw) = (layout("", have), layout("", want));
    let block = |l: &Result<SubnetLayout, String>, raw: &str| {
        l.as_ref()
            .map(|l| l.cidr_block().to_string())
            .unwrap_or_else(|_| raw.to_string())
    };
    let (bh, bw) = (block(&lh, &have.cidr_block), block(&lw, &want.cidr_block));
    if bh != bw {
        out.push(format!("spec.cidrBlock {bh} (wanted {bw})"));
    }
    if have.provider != want.provider {
        out.push(format!(
            "spec.provider {} (wanted {})",
            have.provider, want.provider
        ));
    }
    if let (Ok(h), Ok(w)) = (&lh, &lw)
        && h.gateways() != w.gateways()
    {
        out.push(format!(
            "spec.gateway {} (wanted {})",
            h.gateways(),
            w.gateways()
        ));
    }
    let (eh, ew) = (set(&have.exclude_ips), set(&want.exclude_ips));
    if eh != ew {
        out.push(format!(
            "spec.excludeIps {} (wanted {})",
            show(&eh),
            show(&ew)
        ));
    }
    let (nh, nw) = (set(&have.namespaces), set(&want.namespaces));
    if nh != nw {
        out.push(format!(
            "spec.namespaces {} (wanted {})",
            show(&nh),
            show(&nw)
        ));
    }
    if have.routes != want.routes {
        out.push("spec.routes differ".to_string());
    }
    out
}

/// What differs between an existing IPPool and the wanted one.
pub(crate) fn pool_diffs(have: &IPPoolSpec, want: &IPPoolSpec) -> Vec<String> {
    let mut out = Vec::new();
    if have.subnet != want.subnet {
        out.push(format!(
            "spec.subnet {} (wanted {})",
            have.subnet, want.subnet
        ));
    }
    let (ih, iw) = (set(&have.ips), set(&want.ips));
    if ih != iw {
        out.push(format!("spec.ips {} (wanted {})", show(&ih), show(&iw)));
    }
    let (nh, nw) = (
        set(&have.allowed_namespaces()),
        set(&want.allowed_namespaces()),
    );
    if nh != nw {
        out.push(format!("namespaces {} (wanted {})", show(&nh), show(&nw)));
    }
    if have.gateway != want.gateway {
        out.push(format!(
            "spec.gateway {:?} (wanted {:?})",
            have.gateway, want.gateway
        ));
    }
    let (mh, mw) = (set(&have.multus_name), set(&want.multus_name));
    if mh != mw {
        out.push(format!(
            "spec.multusName {} (wanted {})",
            show(&mh),
            show(&mw)
        ));
    }
    out
}
