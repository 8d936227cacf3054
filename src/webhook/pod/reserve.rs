//! Reserving a planned attachment: choose candidates from the cached free set and create one IPLease per
//! address. The create is the reservation; the cache only proposes candidates.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::core::ObjectMeta;
use kube::runtime::reflector::ObjectRef;

use rand::Rng;

use super::plan::{Choice, Planned, PodIdentity, PoolPlan, for_new};
use crate::alloc::{AllocError, Allocator, Family, IpPair, IpRange, Mac, Strategy};
use crate::api::{
    IPLease, IPLeaseSpec, LeasePhase, OwnerKind, lease_labels, lease_name, mac_selector,
};
use crate::cache::SubnetView;
use crate::context::Context;
use crate::metrics::SubnetLabels;
use crate::webhook::denial::Denial;

/// Attempts at a fresh candidate when creates keep finding addresses taken by other replicas.
const MAX_ATTEMPTS: u32 = 16;

/// The request-wide facts every reservation needs.
pub(crate) struct Request<'a> {
    pub ctx: &'a Context,
    /// The reservation token: the admission request's UID, also written on the Pod.
    pub token: &'a str,
    pub pod: &'a PodIdentity<'a>,
    pub owner: OwnerKind,
    pub dry_run: bool,
    /// The leases of `token` read live when the Pod arrived carrying it (a reinvocation): the cache may not
    /// show them yet.
    pub prior: &'a [Arc<IPLease>],
    /// The IPAMClaim holding what this request reserves (then `token` is the claim's UID).
    pub claim: Option<&'a str>,
}

/// What one attachment got.
#[derive(Default)]
pub(crate) struct Reserved {
    pub ip: IpPair,
    pub mac: Mac,
    /// The IPPool each address came from.
    pub pools: Vec<(IpAddr, String)>,
    /// Leases this request created (deleted again if a later attachment is denied).
    pub created: Vec<String>,
    /// Leases found already holding the attachment's addresses and kept for it.
    pub kept: Vec<String>,
}

impl Reserved {
    pub(crate) fn pool_of(&self, ip: IpAddr) -> Option<&str> {
        self.pools
            .iter()
            .find(|(a, _)| *a == ip)
            .map(|(_, p)| p.as_str())
    }
}

/// The requested MAC, reserved in the view, or a free one.
pub(crate) fn take_mac_in<R: Rng + ?Sized>(
    v: &mut SubnetView,
    want: Option<Mac>,
    rng: &mut R,
) -> Result<Mac, AllocError> {
    match want {
        Some(mac) => v.macs.reserve(mac).map(|_| mac),
        None => v.macs.pick(rng),
    }
}

/// The entry of an `ip_pool` address list this Pod takes (its ordinal's, else the first free), marked taken.
pub(crate) fn take_list_entry(
    alloc: &mut Allocator,
    entries: &[IpPair],
    ordinal: Option<u32>,
) -> Result<IpPair, AllocError> {
    let e = alloc.select_from_list(entries, ordinal)?;
    alloc.reserve_pair(&e).map(|_| e)
}

/// Any free address per family outside `avoid`, for a [`Choice::Any`] attachment.
pub(crate) fn pick_any<R: Rng + ?Sized>(
    alloc: &mut Allocator,
    avoid: &[IpRange],
    strategy: Strategy,
    rng: &mut R,
) -> Result<Vec<(IpAddr, Option<String>)>, AllocError> {
    alloc
        .pick_pair_avoiding(avoid, strategy, rng)
        .map(|pair| pair.addrs().map(|ip| (ip, None)).collect())
}

/// Picked addresses as the pair they form and the IPPool each came from.
pub(crate) fn split_picked(
    picked: Vec<(IpAddr, Option<String>)>,
) -> (IpPair, Vec<(IpAddr, String)>) {
    let pair = IpPair::from_addrs(picked.iter().map(|(ip, _)| *ip)).unwrap_or_default();
    let pools = picked
        .into_iter()
        .filter_map(|(ip, pool)| Some((ip, pool?)))
        .collect();
    (pair, pools)
}

/// Picks one address per family of the Subnet for a [`Choice::Pools`] attachment: for each family, the
/// first of its pools (in the order the Pod named them) with a free address that is not the pool's gateway;
/// a family without pools takes any free address outside `avoid`. All families or none. Pools whose nodes
/// ([`PoolChoice::reach`]) share none with the pool already chosen for another family are passed over: the
/// Pod must find a node where all its addresses are valid.
pub(crate) fn pick_from_pools<R: Rng + ?Sized>(
    alloc: &mut Allocator,
    plan: &PoolPlan,
    avoid: &[IpRange],
    strategy: Strategy,
    rng: &mut R,
) -> Result<Vec<(IpAddr, Option<String>)>, PoolsFull> {
    let mut got: Vec<(IpAddr, Option<String>)> = Vec::new();
    let mut reach: Option<BTreeSet<String>> = None;
    for &family in alloc.families() {
        let pools = plan.for_family(family);
        let picked = if pools.is_empty() {
            alloc
                .pick_avoiding(family, avoid, strategy, rng)
                .map(|ip| (ip, None))
                .map_err(|source| PoolsFull {
                    family,
                    pools: Vec::new(),
                    default_of: None,
                    source: Box::new(source),
                })
        } else {
            let mut last = None;
            let mut found = None;
            for pool in pools {
                let joint = match (&reach, &pool.reach) {
                    (Some(a), Some(b)) => Some(a.intersection(b).cloned().collect()),
                    (a, b) => a.clone().or_else(|| b.clone()),
                };
                if joint.as_ref().is_some_and(BTreeSet::is_empty) {
                    continue;
                }
                let withheld = pool.withheld();
                match alloc.pick_in_avoiding(&pool.ranges, &withheld, family, strategy, rng) {
                    Ok(ip) => {
                        found = Some((ip, Some(pool.name.clone())));
                        reach = joint;
                        break;
                    }
                    Err(e) => last = Some(e),
                }
            }
            found.ok_or_else(|| PoolsFull {
                family,
                pools: pools.iter().map(|p| p.name.clone()).collect(),
                default_of: plan.default_of.clone(),
                source: Box::new(last.unwrap_or(AllocError::EmptyList)),
            })
        };
        match picked {
            Ok(one) => got.push(one),
            Err(e) => {
                for (ip, _) in got {
                    alloc.release(ip);
                }
                return Err(e);
            }
        }
    }
    Ok(got)
}

/// No address of one family in the pools an attachment named (or, without pools, in the Subnet).
#[derive(Debug)]
pub(crate) struct PoolsFull {
    pub family: Family,
    /// The pools tried, in order; empty when the family had none.
    pub pools: Vec<String>,
    /// The Subnet whose default pool this was.
    pub default_of: Option<String>,
    /// The last pool's (or the Subnet's) answer.
    pub source: Box<AllocError>,
}

impl PoolsFull {
    pub(crate) fn into_denial(self, network: String) -> Denial {
        if let (Some(subnet), [pool]) = (&self.default_of, self.pools.as_slice()) {
            return Denial::DefaultPoolFull {
                network,
                pool: pool.clone(),
                subnet: subnet.clone(),
                family: self.family,
                source: self.source,
            };
        }
        match self.pools.len() {
            0 => Denial::Alloc {
                network,
                source: *self.source,
            },
            _ => Denial::PoolsFull {
                network,
                family: self.family,
                pools: self.pools.join(", "),
                source: self.source,
            },
        }
    }
}

impl<'a> Request<'a> {
    /// The same request for an attachment whose addresses an IPAMClaim holds: its leases carry the claim's
    /// UID as their token, so every Pod naming the claim finds them.
    /// `leases`: the claim's leases read live (the first Pod's may not be cached yet when the next arrives).
    pub(crate) fn held_by_claim(
        &self,
        name: &'a str,
        uid: &'a str,
        leases: &'a [Arc<IPLease>],
    ) -> Request<'a> {
        Request {
            ctx: self.ctx,
            token: uid,
            pod: self.pod,
            owner: OwnerKind::IPAMClaim,
            dry_run: self.dry_run,
            prior: leases,
            claim: Some(name),
        }
    }

    fn api(&self) -> Api<IPLease> {
        Api::all(self.ctx.client.clone())
    }

    /// Reserves addresses and a MAC for `p`. A requested address that cannot be given is refused naming
    /// the annotation that asked for it.
    pub async fn reserve(&self, p: &Planned) -> Result<Reserved, Denial> {
        self.reserve_planned(p)
            .await
            .map_err(|d| d.for_request(p.request_key.as_deref()))
    }

    async fn reserve_planned(&self, p: &Planned) -> Result<Reserved, Denial> {
        if let Some(found) = self.reuse(p).await? {
            return Ok(found);
        }
        // Only now, so what the Pod already holds from a disabled pool stays with it.
        let fresh = for_new(p)?;
        let p = fresh.as_ref().unwrap_or(p);
        if let Choice::Fixed(pair) = &p.choice {
            self.precheck_fixed(p, *pair)?;
        }
        let mac = self.take_mac(p)?;
        let mut result = self.reserve_addresses(p, mac).await;
        if let (Ok(done), Some(_)) = (&result, p.mac)
            && let Err(denial) = self.confirm_mac(p, done).await
        {
            self.undo(p, done).await;
            result = Err(denial);
        }
        // A MAC found held elsewhere stays marked in the view: its holder's lease is what marks it.
        let held_elsewhere = matches!(result, Err(Denial::MacHeld { .. }));
        if (result.is_err() && !held_elsewhere) || self.dry_run {
            self.with_view(p, |v| v.release_mac(mac)).ok();
        }
        result
    }

    /// Leases this Pod already holds for the attachment: its own earlier call (a reinvocation, or the same
    /// admission retried), or a former incarnation of a re-created StatefulSet Pod. Reused instead of
    /// allocating again when they still give what the Pod asks now.
    async fn reuse(&self, p: &Planned) -> Result<Option<Reserved>, Denial> {
        let leases: Vec<Arc<IPLease>> = self
            .leases_of(p)
            .into_iter()
            .filter(|l| l.spec.token == self.token || self.may_take_over(l))
            .collect();
        let ip = IpPair::from_addrs(leases.iter().filter_map(|l| l.spec.ip.parse().ok()));
        let mac = leases
            .iter()
            .find_map(|l| l.spec.mac.as_deref().and_then(|m| m.parse::<Mac>().ok()));
        let (Some(ip), Some(mac)) = (ip.filter(|i| !i.is_empty()), mac) else {
            return Ok(None);
        };
        if !satisfies(p, &leases, mac) {
            return match self.claim {
                // A claim keeps what its first Pod got.
                Some(claim) => Err(Denial::ClaimHolds {
                    network: p.network.to_string(),
                    namespace: self.pod.namespace.to_string(),
                    claim: claim.to_string(),
                    held: format!("{ip} (MAC {mac})"),
                    asked: asked(p),
                }),
                None => Ok(None),
            };
        }
        let takeover: Vec<&Arc<IPLease>> = leases
            .iter()
            .filter(|l| l.spec.token != self.token)
            .collect();
        if !self.dry_run && !takeover.is_empty() {
            self.check_gone(p, &takeover).await?;
            for l in takeover {
                // The lease moves to the new Pod incarnation: the controller binds by token. The patch carries
                // the version the decision was made on, so of two admissions racing for the lease only one
                // takes it.
                let patch = serde_json::json!({
                    "metadata": {
                        "resourceVersion": l.resource_version(),
                        "labels": lease_labels(
                            &l.spec.subnet,
                            self.token,
                            l.spec.pool.as_deref(),
                            l.spec.mac.as_deref(),
                        ),
                    },
                    "spec": { "token": self.token, "phase": LeasePhase::Reserved, "podUid": null },
                });
                let ipaddr = l.spec.ip.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]));
                self.api()
                    .patch(
                        &l.name_any(),
                        &PatchParams::default(),
                        &Patch::Merge(&patch),
                    )
                    .await
                    .map_err(|e| Denial::Api {
                        network: p.network.to_string(),
                        ip: ipaddr,
                        source: Box::new(e),
                    })?;
            }
        }
        Ok(Some(Reserved {
            ip,
            mac,
            pools: leases
                .iter()
                .filter_map(|l| Some((l.spec.ip.parse().ok()?, l.spec.pool.clone()?)))
                .collect(),
            created: Vec::new(),
            kept: leases.iter().map(|l| l.name_any()).collect(),
        }))
    }

    /// The leases of this attachment held under this admission's token or by a Pod of this name: the live
    /// ones read at the start of a reinvocation first, then the cache's.
    fn leases_of(&self, p: &Planned) -> Vec<Arc<IPLease>> {
        let index = &self.ctx.cache.index;
        // A claim's leases are read live for each admission (claim::resolve): the cache may still hold one a
        // racing admission has just given back.
        let mut names = match self.claim {
            Some(_) => Vec::new(),
            None => index.by_token(self.token),
        };
        if !self.pod.name.is_empty() && self.claim.is_none() {
            names.extend(index.by_pod(self.pod.namespace, self.pod.name));
        }
        let mut leases: Vec<Arc<IPLease>> = self.prior.to_vec();
        for n in names {
            if leases.iter().all(|l| l.name_any() != n)
                && let Some(l) = self.ctx.cache.leases.get(&ObjectRef::new(&n))
            {
                leases.push(l);
            }
        }
        let subnet = p.subnet.name_any();
        let network = p.network.to_string();
        // A claim's leases serve whichever interface name the Pod naming it gives the attachment.
        leases.retain(|l| {
            l.spec.subnet == subnet
                && l.spec.network == network
                && (self.claim.is_some() || l.spec.interface == p.interface)
        });
        leases
    }

    /// Whether a lease of another token may pass to this Pod: a StatefulSet Pod's lease of the same name, once
    /// the incarnation holding it is gone ([`Self::check_gone`]).
    fn may_take_over(&self, l: &IPLease) -> bool {
        self.owner == OwnerKind::StatefulSet
            && l.spec.owner_kind == OwnerKind::StatefulSet
            && !self.pod.name.is_empty()
            && l.spec.pod_namespace == self.pod.namespace
            && l.spec.pod_name.as_deref() == Some(self.pod.name)
    }

    /// Leases a former incarnation of this Pod name holds that this admission did not keep: a StatefulSet Pod
    /// re-created with another fixed address, pool, MAC or network. Deleted once that incarnation is gone,
    /// so its addresses do not stay reserved for a Pod that no longer asks for them.
    pub async fn drop_stale(&self, keep: &[String]) {
        if self.dry_run || self.pod.name.is_empty() {
            return;
        }
        let stale: Vec<Arc<IPLease>> = self
            .ctx
            .cache
            .index
            .by_pod(self.pod.namespace, self.pod.name)
            .iter()
            .filter(|n| !keep.contains(n))
            .filter_map(|n| self.ctx.cache.leases.get(&ObjectRef::new(n)))
            .filter(|l| l.spec.token != self.token && self.may_take_over(l))
            .collect();
        if stale.is_empty() {
            return;
        }
        let pods: Api<Pod> = Api::namespaced(self.ctx.client.clone(), self.pod.namespace);
        if !matches!(pods.get_opt(self.pod.name).await, Ok(None)) {
            return;
        }
        for l in stale {
            let name = l.name_any();
            let guarded = DeleteParams {
                preconditions: Some(kube::api::Preconditions {
                    resource_version: l.resource_version(),
                    uid: None,
                }),
                ..DeleteParams::default()
            };
            match self.api().delete(&name, &guarded).await {
                Ok(_) => {
                    tracing::info!(lease = %name, "released: the re-created Pod no longer asks for it")
                }
                Err(e) => {
                    tracing::warn!(lease = %name, error = %e, "stale lease of a former incarnation kept")
                }
            }
        }
    }

    /// A StatefulSet lease is taken over only from a Pod incarnation that is gone. While a Pod of this name
    /// exists, this admission is for a create that will fail with AlreadyExists (a controller acting on a
    /// stale cache sends such creates); taking the lease would leave the live Pod with an address whose
    /// lease names a Pod that never existed, and let the address go while that Pod still uses it. Checked
    /// with a live read: the webhook caches no Pods.
    async fn check_gone(&self, p: &Planned, leases: &[&Arc<IPLease>]) -> Result<(), Denial> {
        let ip = leases
            .first()
            .and_then(|l| l.spec.ip.parse().ok())
            .unwrap_or(IpAddr::from([0, 0, 0, 0]));
        let pods: Api<Pod> = Api::namespaced(self.ctx.client.clone(), self.pod.namespace);
        match pods.get_opt(self.pod.name).await {
            Ok(None) => Ok(()),
            Ok(Some(_)) => Err(Denial::Held {
                network: p.network.to_string(),
                ip,
                holder: format!(
                    "pod {}/{}, which still exists",
                    self.pod.namespace, self.pod.name
                ),
            }),
            Err(e) => Err(Denial::Api {
                network: p.network.to_string(),
                ip,
                source: Box::new(e),
            }),
        }
    }

    fn with_view<R>(&self, p: &Planned, f: impl FnOnce(&mut SubnetView) -> R) -> Result<R, Denial> {
        self.ctx
            .cache
            .index
            .with_subnet(&p.subnet, &self.ctx.cache.leases, f)
            .map_err(|source| Denial::Layout {
                network: p.network.to_string(),
                subnet: p.subnet.name_any(),
                source: Box::new(source),
            })
    }

    fn take_mac(&self, p: &Planned) -> Result<Mac, Denial> {
        let network = p.network.to_string();
        let picked = self.with_view(p, |v| take_mac_in(v, p.mac, &mut rand::rng()))?;
        picked.map_err(|source| match (&source, p.mac) {
            (AllocError::MacInUse { .. }, Some(mac)) => {
                let subnet = p.subnet.name_any();
                let text = mac.to_string();
                let holder = self.ctx.cache.leases.state().into_iter().find(|l| {
                    l.spec.subnet == subnet
                        && l.spec
                            .mac
                            .as_deref()
                            .is_some_and(|m| m.eq_ignore_ascii_case(&text))
                });
                match holder {
                    Some(l) => Denial::MacHeld {
                        network,
                        mac: text,
                        holder: l.holder(),
                    },
                    None => Denial::Alloc { network, source },
                }
            }
            _ => Denial::Alloc { network, source },
        })
    }

    async fn reserve_addresses(&self, p: &Planned, mac: Mac) -> Result<Reserved, Denial> {
        let network = p.network.to_string();
        let deny = |source: AllocError| Denial::Alloc {
            network: network.clone(),
            source,
        };
        match &p.choice {
            Choice::Fixed(pair) => self.reserve_fixed(p, *pair, mac).await,
            Choice::List {
                entries,
                ordinal: Some(ordinal),
            } => {
                let entry = self
                    .with_view(p, |v| v.alloc.select_from_list(entries, Some(*ordinal)))?
                    .map_err(deny)?;
                self.reserve_fixed(p, entry, mac).await
            }
            Choice::List {
                entries,
                ordinal: None,
            } => {
                for _ in 0..entries.len().max(1) {
                    let entry = self
                        .with_view(p, |v| take_list_entry(&mut v.alloc, entries, None))?
                        .map_err(deny)?;
                    if let Some(done) = self.create_pair(p, entry, mac, &[]).await? {
                        return Ok(done);
                    }
                }
                Err(Denial::Contention {
                    network,
                    attempts: entries.len() as u32,
                })
            }
            Choice::Pools(plan) => {
                let avoid = kept_ranges(p);
                self.reserve_picked(p, mac, |v| {
                    pick_from_pools(
                        &mut v.alloc,
                        plan,
                        &avoid,
                        Strategy::Random,
                        &mut rand::rng(),
                    )
                    .map_err(|e| e.into_denial(network.clone()))
                })
                .await
            }
            Choice::Any => {
                let avoid = kept_ranges(p);
                self.reserve_picked(p, mac, |v| {
                    pick_any(&mut v.alloc, &avoid, Strategy::Random, &mut rand::rng()).map_err(deny)
                })
                .await
            }
        }
    }

    /// Random candidates: pick (which marks the view), create; on a lost race pick again.
    async fn reserve_picked(
        &self,
        p: &Planned,
        mac: Mac,
        pick: impl Fn(&mut SubnetView) -> Result<Vec<(IpAddr, Option<String>)>, Denial>,
    ) -> Result<Reserved, Denial> {
        for _ in 0..MAX_ATTEMPTS {
            let (pair, pools) = split_picked(self.with_view(p, &pick)??);
            if let Some(done) = self.create_pair(p, pair, mac, &pools).await? {
                return Ok(done);
            }
        }
        Err(Denial::Contention {
            network: p.network.to_string(),
            attempts: MAX_ATTEMPTS,
        })
    }

    /// A requested MAC, confirmed unique in the Subnet once this admission's leases exist: the cache only
    /// shows leases other replicas made before it was updated, so two replicas admitting the same MAC at
    /// once would both pass [`Self::take_mac`]. Each lists the leases labelled with the MAC after creating
    /// its own; of two such creates, at least one sees the other (every list comes after its own create), so
    /// at most one admission keeps the MAC. Both may give it up in an exact race; the retried create then
    /// finds the MAC free or held.
    async fn confirm_mac(&self, p: &Planned, done: &Reserved) -> Result<(), Denial> {
        if self.dry_run {
            return Ok(());
        }
        let network = p.network.to_string();
        let mac = done.mac.to_string();
        let listed = self
            .api()
            .list(&ListParams::default().labels(&mac_selector(&p.subnet.name_any(), &mac)))
            .await
            .map_err(|e| Denial::MacApi {
                network: network.clone(),
                mac: mac.clone(),
                source: Box::new(e),
            })?;
        match listed.items.iter().find(|l| l.spec.token != self.token) {
            None => Ok(()),
            Some(other) => Err(Denial::MacHeld {
                network,
                mac,
                holder: other.holder(),
            }),
        }
    }

    /// Gives back what a reservation took: its leases deleted, its addresses unmarked in the view.
    pub(crate) async fn undo(&self, p: &Planned, done: &Reserved) {
        self.delete_all(&done.created).await;
        self.with_view(p, |v| {
            done.ip.addrs().for_each(|ip| _ = v.alloc.release(ip))
        })
        .ok();
    }

    /// Checks requested addresses against the cache: valid and free, or a denial naming the holder.
    fn precheck_fixed(&self, p: &Planned, pair: IpPair) -> Result<(), Denial> {
        for ip in pair.addrs() {
            if let Some((pool, _)) = p
                .kept
                .iter()
                .find(|(_, ranges)| ranges.iter().any(|r| r.contains(ip)))
            {
                return Err(Denial::PoolKept {
                    network: p.network.to_string(),
                    key: p.request_key.clone().unwrap_or_default(),
                    ip,
                    pool: pool.clone(),
                    provider: p.provider.clone(),
                });
            }
            match self.with_view(p, |v| v.alloc.check(ip))? {
                Ok(()) => {}
                Err(AllocError::InUse { .. }) => {
                    let name = lease_name(&p.subnet.name_any(), ip);
                    let holder = self.ctx.cache.leases.get(&ObjectRef::new(&name));
                    return Err(self.held(p, ip, holder.as_deref()));
                }
                Err(source) => {
                    return Err(Denial::Alloc {
                        network: p.network.to_string(),
                        source,
                    });
                }
            }
        }
        Ok(())
    }

    /// A requested address (or a StatefulSet ordinal's entry): valid, free, or a denial naming the holder.
    async fn reserve_fixed(&self, p: &Planned, pair: IpPair, mac: Mac) -> Result<Reserved, Denial> {
        let network = p.network.to_string();
        self.precheck_fixed(p, pair)?;
        self.with_view(p, |v| v.alloc.reserve_pair(&pair))?
            .map_err(|source| Denial::Alloc {
                network: network.clone(),
                source,
            })?;
        match self.create_pair(p, pair, mac, &[]).await? {
            Some(done) => Ok(done),
            None => {
                // Lost a race the cache did not show: name the holder from a live read.
                for ip in pair.addrs() {
                    let name = lease_name(&p.subnet.name_any(), ip);
                    if let Ok(Some(l)) = self.api().get_opt(&name).await {
                        return Err(self.held(p, ip, Some(&l)));
                    }
                }
                Err(Denial::Contention {
                    network,
                    attempts: 1,
                })
            }
        }
    }

    fn held(&self, p: &Planned, ip: IpAddr, holder: Option<&IPLease>) -> Denial {
        let network = p.network.to_string();
        match holder {
            Some(l) if l.spec.token == self.token => Denial::DuplicateInPod { network, ip },
            Some(l) => Denial::Held {
                network,
                ip,
                holder: l.holder(),
            },
            None => Denial::Alloc {
                network,
                source: AllocError::InUse {
                    ip,
                    subnet: p.subnet.name_any(),
                },
            },
        }
    }

    /// Creates the leases of `pair` (already marked in the view). `Ok(None)`: an address was taken
    /// meanwhile (it stays marked; the caller tries another). All or none: a partial pair is rolled back.
    async fn create_pair(
        &self,
        p: &Planned,
        pair: IpPair,
        mac: Mac,
        pools: &[(IpAddr, String)],
    ) -> Result<Option<Reserved>, Denial> {
        let subnet = p.subnet.name_any();
        if self.dry_run {
            self.with_view(p, |v| pair.addrs().for_each(|ip| _ = v.alloc.release(ip)))?;
            return Ok(Some(Reserved {
                ip: pair,
                mac,
                pools: pools.to_vec(),
                ..Reserved::default()
            }));
        }
        let mut created = Vec::new();
        for ip in pair.addrs() {
            let pool = pools
                .iter()
                .find(|(a, _)| *a == ip)
                .map(|(_, n)| n.as_str())
                .or(p.pool.as_deref());
            let lease = self.lease(p, ip, mac, pool);
            match self.create_lease(&lease).await {
                Ok(_) => created.push(lease.name_any()),
                Err(e) => {
                    let taken = matches!(&e, kube::Error::Api(s) if s.code == 409);
                    // Free what this attempt holds; a taken address stays marked as someone else's.
                    self.with_view(p, |v| {
                        pair.addrs()
                            .filter(|a| *a != ip || !taken)
                            .for_each(|a| _ = v.alloc.release(a))
                    })?;
                    self.delete_all(&created).await;
                    if taken {
                        self.ctx
                            .metrics
                            .lease_conflicts
                            .get_or_create(&SubnetLabels { subnet })
                            .inc();
                        return Ok(None);
                    }
                    return Err(Denial::Api {
                        network: p.network.to_string(),
                        ip,
                        source: Box::new(e),
                    });
                }
            }
        }
        self.ctx
            .metrics
            .allocations
            .get_or_create(&SubnetLabels { subnet })
            .inc_by(created.len() as u64);
        Ok(Some(Reserved {
            ip: pair,
            mac,
            pools: pools.to_vec(),
            created,
            kept: Vec::new(),
        }))
    }

    /// Creates one lease. A request that failed in transport (a pooled connection the apiserver had closed)
    /// is sent once more; if that finds the lease existing, a read tells whether it is this admission's own
    /// (the first request did arrive) or another's (taken: 409 as usual).
    async fn create_lease(&self, lease: &IPLease) -> Result<(), kube::Error> {
        let api = self.api();
        match api.create(&PostParams::default(), lease).await {
            Err(e) if !matches!(e, kube::Error::Api(_)) => {
                tracing::warn!(lease = %lease.name_any(), error = %e, "lease create failed in transport; sending it again");
                match api.create(&PostParams::default(), lease).await {
                    Err(kube::Error::Api(s)) if s.code == 409 => {
                        match api.get_opt(&lease.name_any()).await? {
                            Some(found) if found.spec.token == self.token => Ok(()),
                            _ => Err(kube::Error::Api(s)),
                        }
                    }
                    other => other.map(|_| ()),
                }
            }
            other => other.map(|_| ()),
        }
    }

    fn lease(&self, p: &Planned, ip: IpAddr, mac: Mac, pool: Option<&str>) -> IPLease {
        let subnet = p.subnet.name_any();
        let mut lease = IPLease::new(
            &lease_name(&subnet, ip),
            IPLeaseSpec {
                subnet: subnet.clone(),
                ip: ip.to_string(),
                mac: Some(mac.to_string()),
                provider: p.provider.clone(),
                interface: p.interface.clone(),
                pod_namespace: self.pod.namespace.to_string(),
                // A claim's lease is held by the claim, whichever Pod uses it.
                pod_name: (!self.pod.name.is_empty() && self.claim.is_none())
                    .then(|| self.pod.name.to_string()),
                pod_uid: None,
                phase: LeasePhase::Reserved,
                token: self.token.to_string(),
                owner_kind: self.owner,
                claim: self.claim.map(str::to_string),
                pool: pool.map(str::to_string),
                network: p.network.to_string(),
            },
        );
        lease.metadata = ObjectMeta {
            labels: Some(lease_labels(
                &subnet,
                self.token,
                pool,
                lease.spec.mac.as_deref(),
            )),
            ..lease.metadata
        };
        lease
    }

    /// Best-effort rollback; a lease left behind is Reserved without a Pod and the controller reclaims it.
    pub async fn delete_all(&self, names: &[String]) {
        for name in names {
            if let Err(e) = self.api().delete(name, &DeleteParams::default()).await {
                tracing::warn!(lease = %name, error = %e, "rollback delete failed; the reclaimer will remove it");
            }
        }
    }
}

/// Every address IPPools keep from an attachment that does not name them.
pub(crate) fn kept_ranges(p: &Planned) -> Vec<IpRange> {
    p.kept.iter().flat_map(|(_, r)| r.iter().copied()).collect()
}

/// What an attachment asks for, for a message.
fn asked(p: &Planned) -> String {
    let what = match &p.choice {
        Choice::Fixed(pair) => pair.to_string(),
        Choice::List { .. } => "an entry of its ip_pool list".to_string(),
        Choice::Pools(plan) => {
            let mut names: Vec<&str> = plan
                .v4
                .iter()
                .chain(&plan.v6)
                .map(|c| c.name.as_str())
                .collect();
            names.dedup();
            format!("an address of IPPool {}", names.join(", "))
        }
        Choice::Any => "an address outside every IPPool".to_string(),
    };
    match p.mac {
        Some(mac) => format!("{what} with MAC {mac}"),
        None => what,
    }
}

/// Whether leases found for an attachment still give what it asks now: the requested addresses, an entry of
/// the requested list, addresses of the named pools, or (asking nothing in particular) no pool's; and the
/// requested MAC.
fn satisfies(p: &Planned, leases: &[Arc<IPLease>], mac: Mac) -> bool {
    if p.mac.is_some_and(|m| m != mac) {
        return false;
    }
    let ips: Vec<IpAddr> = leases
        .iter()
        .filter_map(|l| l.spec.ip.parse().ok())
        .collect();
    let pair = IpPair::from_addrs(ips.iter().copied());
    match &p.choice {
        Choice::Fixed(want) => pair.as_ref() == Some(want),
        Choice::List { entries, ordinal } => match (pair, ordinal) {
            (Some(pair), Some(o)) => entries.get(*o as usize) == Some(&pair),
            (Some(pair), None) => entries.contains(&pair),
            (None, _) => false,
        },
        Choice::Pools(plan) => leases.iter().all(|l| {
            let Ok(ip) = l.spec.ip.parse::<IpAddr>() else {
                return false;
            };
            let family = plan.for_family(Family::of(ip));
            match l.spec.pool.as_deref() {
                Some(name) => family
                    .iter()
                    .any(|c| c.name == name && c.ranges.iter().any(|r| r.contains(ip))),
                // An address taken before the Subnet had its default pool stays with its holder.
                None => family.is_empty() || plan.default_of.is_some(),
            }
        }),
        Choice::Any => leases
            .iter()
            .all(|l| l.spec.pool.is_none() || l.spec.pool.as_deref() == p.pool.as_deref()),
    }
}
