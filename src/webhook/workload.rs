//! Validating workloads (Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob): the Pod template's
//! annotations are checked when the workload is applied, so a mistake is reported to the user who made it
//! instead of surfacing later as Pod creation failures only visible in the controller's events.
//!
//! Each attachment is resolved by the resolver Pod admission plans from (`resolve.rs`), so a template is
//! refused for exactly what its Pods would be; on top come the address checks and what only the workload
//! shows: how many Pods run at once, against a fixed address or an address list.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, Operation};
use kube::{Api, ResourceExt};
use serde::de::DeserializeOwned;

use crate::alloc::{AllocError, IpPair, SubnetLayout};
use crate::annotations::{
    self, AnnotationError, AttachmentRequest, NetworkRef, PoolRequest, SpiderPools, keys,
};
use crate::api::{IPPool, NetworkAttachmentDefinition, Subnet};
use crate::cache::{Cache, layout};
use crate::context::Context;
use crate::webhook::addresses::static_checker;
use crate::webhook::codes::INVALID;
use crate::webhook::denial::Denial;
use crate::webhook::pool_subnet::PoolSubnetError;
use crate::webhook::resolve::{Ask, Labels, Objects, Resolved, fixed_key, resolve};
use crate::webhook::respond::{Refusal, answer};

/// How many referenced objects missing from the cache are looked up in the apiserver before refusing.
const MAX_FETCHES: usize = 8;

pub async fn validate(
    ctx: Arc<Context>,
    req: AdmissionRequest<DynamicObject>,
) -> AdmissionResponse {
    let resp = AdmissionResponse::from(&req);
    let (Operation::Create | Operation::Update, Some(obj)) = (&req.operation, &req.object) else {
        return resp;
    };
    let kind = req.kind.kind.as_str();
    let namespace = req
        .namespace
        .clone()
        .or_else(|| obj.metadata.namespace.clone())
        .unwrap_or_default();
    let new = match read_object(kind, &namespace, obj) {
        Ok(Some(w)) => w,
        Ok(None) => return resp,
        Err(r) => return answer(&ctx, resp, Err(r)),
    };
    let old = req
        .old_object
        .as_ref()
        .and_then(|o| read_object(kind, &namespace, o).ok().flatten());
    if !needs_check(&new, old.as_ref()) {
        return resp;
    }
    let mut world = World::from_cache(&ctx.cache);
    let mut outcome = check_workload(&new, &world);
    for _ in 0..MAX_FETCHES {
        let Some(missing) = outcome.as_ref().err().and_then(WorkloadRefusal::missing) else {
            break;
        };
        if !fetch(&ctx, &missing, &mut world).await {
            break;
        }
        outcome = check_workload(&new, &world);
    }
    answer(&ctx, resp, outcome)
}

pub(crate) fn read_object(
    kind: &str,
    namespace: &str,
    obj: &DynamicObject,
) -> Result<Option<Workload>, WorkloadRefusal> {
    let value = serde_json::to_value(obj).map_err(|e| WorkloadRefusal::Malformed {
        workload: format!("{kind} {namespace}/{}", obj.name_any()),
        reason: e.to_string(),
    })?;
    read(kind, namespace, value)
}

/// An object the checks found missing from the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Missing {
    Nad(NetworkRef),
    Subnet(String),
    /// A Subnet with a pool's CIDR: only a list finds it.
    SubnetByCidr,
    Pool(String),
}

/// Looks `missing` up in the apiserver (an object applied together with the workload may not have reached
/// the cache yet); true when found and added to `world`.
async fn fetch(ctx: &Context, missing: &Missing, world: &mut World) -> bool {
    let client = ctx.client.clone();
    let found = match missing {
        Missing::Nad(r) => Api::<NetworkAttachmentDefinition>::namespaced(client, &r.namespace)
            .get_opt(&r.name)
            .await
            .ok()
            .flatten()
            .map(|n| world.nads.push(Arc::new(n))),
        Missing::Subnet(name) => Api::<Subnet>::all(client)
            .get_opt(name)
            .await
            .ok()
            .flatten()
            .map(|s| world.subnets.push(Arc::new(s))),
        Missing::SubnetByCidr => {
            let Ok(listed) = Api::<Subnet>::all(client).list(&Default::default()).await else {
                return false;
            };
            let known: Vec<String> = world.subnets.iter().map(|s| s.name_any()).collect();
            let new: Vec<Arc<Subnet>> = listed
                .items
                .into_iter()
                .filter(|s| !known.contains(&s.name_any()))
                .map(Arc::new)
                .collect();
            (!new.is_empty()).then(|| world.subnets.extend(new))
        }
        Missing::Pool(name) => Api::<IPPool>::all(client)
            .get_opt(name)
            .await
            .ok()
            .flatten()
            .map(|p| world.pools.push(Arc::new(p))),
    };
    found.is_some()
}

/// The workload kinds validated here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Deployment,
    StatefulSet,
    DaemonSet,
    ReplicaSet,
    Job,
    CronJob,
}

impl Kind {
    fn of(kind: &str) -> Option<Kind> {
        Some(match kind {
            "Deployment" => Kind::Deployment,
            "StatefulSet" => Kind::StatefulSet,
            "DaemonSet" => Kind::DaemonSet,
            "ReplicaSet" => Kind::ReplicaSet,
            "Job" => Kind::Job,
            "CronJob" => Kind::CronJob,
            _ => return None,
        })
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self, f)
    }
}

/// How many Pods a workload runs, in the terms its spec uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scale {
    /// Deployment (surge: extra Pods during a rolling update) and ReplicaSet (surge 0).
    Replicas { replicas: u32, surge: u32 },
    /// StatefulSet: Pods are numbered from `start`, and ordinal n takes entry n of an address list.
    Ordinals { start: u32, replicas: u32 },
    /// DaemonSet: one Pod per node.
    PerNode,
    /// Job, or a CronJob's job template; `overlap`: a CronJob whose runs may overlap (concurrencyPolicy Allow).
    Parallel {
        parallelism: u32,
        completions: Option<u32>,
        overlap: bool,
    },
}

impl Scale {
    /// Pods running at once in the steady state (not counting a rolling update's surge); `None` per node.
    fn steady(&self) -> Option<u32> {
        match *self {
            Scale::Replicas { replicas, .. } | Scale::Ordinals { replicas, .. } => Some(replicas),
            Scale::PerNode => None,
            Scale::Parallel {
                parallelism,
                completions,
                ..
            } => Some(completions.map_or(parallelism, |c| c.min(parallelism))),
        }
    }

    /// How many addresses of a list its Pods may need at once (by ordinal for a StatefulSet).
    fn demand(&self) -> u32 {
        match *self {
            Scale::Replicas { replicas, surge } => replicas.saturating_add(surge),
            Scale::Ordinals { replicas: 0, .. } => 0,
            Scale::Ordinals { start, replicas } => start.saturating_add(replicas),
            Scale::PerNode => 1,
            Scale::Parallel { .. } => self.steady().unwrap_or(1),
        }
    }

    /// The spec field that sets the steady count, and the count as the spec says it.
    fn knob(&self) -> (&'static str, String) {
        match *self {
            Scale::Replicas { replicas, .. } | Scale::Ordinals { replicas, .. } => {
                ("replicas", format!("replicas {replicas}"))
            }
            Scale::PerNode => ("nodes", "one per node".to_string()),
            Scale::Parallel {
                parallelism,
                completions,
                ..
            } => match completions {
                Some(c) if c < parallelism => (
                    "parallelism",
                    format!("parallelism {parallelism}, completions {c}"),
                ),
                _ => ("parallelism", format!("parallelism {parallelism}")),
            },
        }
    }
}

/// The parts of a workload the checks read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Workload {
    pub kind: Kind,
    /// `Deployment default/static-workload`: how every message names it.
    pub display: String,
    pub namespace: String,
    /// The Pod template's annotations.
    pub annotations: BTreeMap<String, String>,
    /// The Pod template's labels (what IPPool `podAffinity` selects on).
    pub labels: BTreeMap<String, String>,
    pub scale: Scale,
    /// Made by a controller (a Deployment's ReplicaSet, a CronJob's Job) from a template already validated in
    /// its owner.
    pub owned: bool,
}

/// Whether an admission needs the checks: a CREATE, or an UPDATE that changes the template's annotations or
/// lets more Pods run. Other updates (scale down, image, metadata) are never refused here: they cannot make
/// the Pods' requests worse, and refusing them could block a rollout that fixes things.
pub(crate) fn needs_check(new: &Workload, old: Option<&Workload>) -> bool {
    if new.owned {
        return false;
    }
    old.is_none_or(|o| o.annotations != new.annotations || new.scale.demand() > o.scale.demand())
}

/// Reads a workload of `kind` from its JSON; `Ok(None)` for kinds not validated here.
pub(crate) fn read(
    kind: &str,
    namespace: &str,
    value: serde_json::Value,
) -> Result<Option<Workload>, WorkloadRefusal> {
    let Some(kind) = Kind::of(kind) else {
        return Ok(None);
    };
    let display = display_name(kind, namespace, &value);
    let malformed = |e: serde_json::Error| WorkloadRefusal::Malformed {
        workload: display.clone(),
        reason: e.to_string(),
    };
    let (meta, template, scale) = match kind {
        Kind::Deployment => {
            let d: Deployment = parse(value).map_err(malformed)?;
            let spec = d.spec.unwrap_or_default();
            let replicas = count(spec.replicas, 1);
            let surge = match spec.strategy {
                Some(s) if s.type_.as_deref() == Some("Recreate") => 0,
                s => max_surge(
                    s.and_then(|s| s.rolling_update)
                        .and_then(|r| r.max_surge)
                        .as_ref(),
                    replicas,
                ),
            };
            (
                d.metadata,
                spec.template.metadata,
                Scale::Replicas { replicas, surge },
            )
        }
        Kind::StatefulSet => {
            let s: StatefulSet = parse(value).map_err(malformed)?;
            let spec = s.spec.unwrap_or_default();
            let start = count(spec.ordinals.and_then(|o| o.start), 0);
            (
                s.metadata,
                spec.template.metadata,
                Scale::Ordinals {
                    start,
                    replicas: count(spec.replicas, 1),
                },
            )
        }
        Kind::DaemonSet => {
            let d: DaemonSet = parse(value).map_err(malformed)?;
            let spec = d.spec.unwrap_or_default();
            (d.metadata, spec.template.metadata, Scale::PerNode)
        }
        Kind::ReplicaSet => {
            let r: ReplicaSet = parse(value).map_err(malformed)?;
            let spec = r.spec.unwrap_or_default();
            (
                r.metadata,
                spec.template.and_then(|t| t.metadata),
                Scale::Replicas {
                    replicas: count(spec.replicas, 1),
                    surge: 0,
                },
            )
        }
        Kind::Job => {
            let j: Job = parse(value).map_err(malformed)?;
            let spec = j.spec.unwrap_or_default();
            let scale = Scale::Parallel {
                parallelism: count(spec.parallelism, 1),
                completions: spec.completions.map(|c| count(Some(c), 1)),
                overlap: false,
            };
            (j.metadata, spec.template.metadata, scale)
        }
        Kind::CronJob => {
            let c: CronJob = parse(value).map_err(malformed)?;
            let spec = c.spec.unwrap_or_default();
            let job = spec.job_template.spec.unwrap_or_default();
            let scale = Scale::Parallel {
                parallelism: count(job.parallelism, 1),
                completions: job.completions.map(|c| count(Some(c), 1)),
                overlap: spec.concurrency_policy.as_deref().unwrap_or("Allow") == "Allow",
            };
            (c.metadata, job.template.metadata, scale)
        }
    };
    Ok(Some(Workload {
        kind,
        display,
        namespace: namespace.to_string(),
        labels: template
            .as_ref()
            .and_then(|m| m.labels.clone())
            .unwrap_or_default(),
        annotations: template.and_then(|m| m.annotations).unwrap_or_default(),
        scale,
        owned: is_owned(&meta),
    }))
}

fn parse<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, serde_json::Error> {
    serde_json::from_value(value)
}

/// `Deployment default/name`, or `Job default/pi-*` for an object created with generateName.
fn display_name(kind: Kind, namespace: &str, value: &serde_json::Value) -> String {
    let meta = &value["metadata"];
    let name = match (meta["name"].as_str(), meta["generateName"].as_str()) {
        (Some(n), _) if !n.is_empty() => n.to_string(),
        (_, Some(g)) => format!("{g}*"),
        _ => "<unnamed>".to_string(),
    };
    format!("{kind} {namespace}/{name}")
}

fn is_owned(meta: &ObjectMeta) -> bool {
    meta.owner_references
        .iter()
        .flatten()
        .any(|o| o.controller == Some(true))
}

/// A replica-like count; negative values (refused by the apiserver anyway) count as 0.
fn count(v: Option<i32>, default: u32) -> u32 {
    v.map_or(default, |n| u32::try_from(n).unwrap_or(0))
}

/// The extra Pods a rolling update may create: an absolute number or a percentage of replicas rounded up,
/// 25% when unset (the Deployment controller's rules).
pub(crate) fn max_surge(v: Option<&IntOrString>, replicas: u32) -> u32 {
    let percent = |p: u64| {
        let scaled = (u64::from(replicas) * p).div_ceil(100);
        u32::try_from(scaled).unwrap_or(u32::MAX)
    };
    match v {
        Some(IntOrString::Int(n)) => u32::try_from(*n).unwrap_or(0),
        Some(IntOrString::String(s)) => match s.strip_suffix('%').map(str::parse::<u64>) {
            Some(Ok(p)) => percent(p),
            _ => s.parse().unwrap_or_else(|_| percent(25)),
        },
        None => percent(25),
    }
}

/// The objects the checks look references up in: the caches, plus anything fetched on a cache miss.
#[derive(Default)]
pub(crate) struct World {
    pub nads: Vec<Arc<NetworkAttachmentDefinition>>,
    pub subnets: Vec<Arc<Subnet>>,
    pub pools: Vec<Arc<IPPool>>,
}

impl World {
    pub(crate) fn from_cache(cache: &Cache) -> World {
        World {
            nads: cache.nads.state(),
            subnets: cache.subnets.state(),
            pools: cache.pools.state(),
        }
    }
}

impl Objects for World {
    fn nad(&self, r: &NetworkRef) -> Option<Arc<NetworkAttachmentDefinition>> {
        self.nads
            .iter()
            .find(|n| {
                n.metadata.namespace.as_deref() == Some(r.namespace.as_str())
                    && n.metadata.name.as_deref() == Some(r.name.as_str())
            })
            .cloned()
    }

    fn subnet(&self, name: &str) -> Option<Arc<Subnet>> {
        self.subnets.iter().find(|s| s.name_any() == name).cloned()
    }

    fn pool(&self, name: &str) -> Option<Arc<IPPool>> {
        self.pools.iter().find(|p| p.name_any() == name).cloned()
    }

    fn subnets(&self) -> Vec<Arc<Subnet>> {
        self.subnets.clone()
    }

    fn pools(&self) -> Vec<Arc<IPPool>> {
        self.pools.clone()
    }
}

/// Why a workload is refused. Every message starts with the workload (`Deployment default/web: `).
#[derive(Debug, thiserror::Error)]
pub(crate) enum WorkloadRefusal {
    #[error("{workload}: the object could not be read: {reason}")]
    Malformed { workload: String, reason: String },
    #[error("{workload}: {source}")]
    Annotation {
        workload: String,
        source: Box<AnnotationError>,
    },
    /// What Pod admission would refuse every replica for (unknown NAD, IPPool or Subnet, a Subnet or pool the
    /// namespace or network may not use), in Pod admission's words.
    #[error("{workload}: {denial}")]
    Plan {
        workload: String,
        denial: Box<Denial>,
    },
    #[error(
        "{workload}: {what}: {source}; use an address Pods may get: inside the Subnet, and neither its gateway, \
         network or broadcast address nor in its excludeIps"
    )]
    Address {
        workload: String,
        what: String,
        source: Box<AllocError>,
    },
    #[error(
        "{workload}: {key} {value} is a single address, but the {kind} runs {} Pods at once ({}) and every one \
         would ask for it; use {pool_key} with one address per Pod, or set {} to 1",
        scale.steady().unwrap_or_default(),
        scale.knob().1,
        scale.knob().0
    )]
    FixedShared {
        workload: String,
        key: String,
        value: IpPair,
        kind: Kind,
        scale: Scale,
        pool_key: String,
    },
    #[error(
        "{workload}: {key} has {have} but the {kind} may run {need} Pods at once ({detail}); add addresses or lower \
         {knobs}"
    )]
    ListTooShort {
        workload: String,
        key: String,
        have: String,
        kind: Kind,
        need: u32,
        detail: String,
        knobs: &'static str,
    },
    #[error(
        "{workload}: {key} has {have} but the StatefulSet's Pods take the entry of their ordinal, up to ordinal \
         {last} ({detail}); add addresses or lower replicas"
    )]
    OrdinalsBeyondList {
        workload: String,
        key: String,
        have: String,
        last: u32,
        detail: String,
    },
}

impl Refusal for WorkloadRefusal {
    fn reason(&self) -> &'static str {
        match self {
            WorkloadRefusal::Malformed { .. } => "malformed_request",
            WorkloadRefusal::Annotation { .. } => "malformed_annotation",
            WorkloadRefusal::Plan { denial, .. } => denial.reason(),
            WorkloadRefusal::Address { .. } => "invalid_address",
            WorkloadRefusal::FixedShared { .. } => "fixed_ip_replicas",
            WorkloadRefusal::ListTooShort { .. } | WorkloadRefusal::OrdinalsBeyondList { .. } => {
                "pool_too_small"
            }
        }
    }

    fn code(&self) -> u16 {
        match self {
            WorkloadRefusal::Malformed { .. } => 400,
            WorkloadRefusal::Plan { denial, .. } => denial.code(),
            _ => INVALID,
        }
    }
}

impl WorkloadRefusal {
    /// The referenced object this refusal says is missing, to be looked up before refusing for good.
    fn missing(&self) -> Option<Missing> {
        let WorkloadRefusal::Plan { denial, .. } = self else {
            return None;
        };
        match denial.as_ref() {
            Denial::UnknownNad { network, .. } => {
                network.split_once('/').map(|(namespace, name)| {
                    Missing::Nad(NetworkRef {
                        namespace: namespace.to_string(),
                        name: name.to_string(),
                    })
                })
            }
            Denial::UnknownSubnet { subnet, .. } => Some(Missing::Subnet(subnet.clone())),
            Denial::PoolSubnetLookup { source, .. } => match source.as_ref() {
                PoolSubnetError::NoName { subnet, .. } => Some(Missing::Subnet(subnet.clone())),
                PoolSubnetError::NoCidr { .. } => Some(Missing::SubnetByCidr),
                _ => None,
            },
            Denial::UnknownPool { pool, .. } => Some(Missing::Pool(pool.clone())),
            _ => None,
        }
    }
}

/// Everything Pod admission would check without allocating, for every attachment of the template that
/// nadipam serves, plus the replica-count checks. Ok carries warnings.
pub(crate) fn check_workload(w: &Workload, world: &World) -> Result<Vec<String>, WorkloadRefusal> {
    let annotation = |e: AnnotationError| WorkloadRefusal::Annotation {
        workload: w.display.clone(),
        source: Box::new(e),
    };
    let requests = annotations::validate(&w.annotations, &w.namespace).map_err(annotation)?;
    let spider = annotations::spider_pools(&w.annotations).map_err(annotation)?;
    let mut warnings = Vec::new();
    for (i, req) in requests.iter().enumerate() {
        check_attachment(w, world, req, i == 0, spider.as_ref(), &mut warnings)?;
    }
    Ok(warnings)
}

fn check_attachment(
    w: &Workload,
    world: &World,
    req: &AttachmentRequest,
    first: bool,
    spider: Option<&SpiderPools>,
    warnings: &mut Vec<String>,
) -> Result<(), WorkloadRefusal> {
    let ask = Ask {
        req,
        annotations: &w.annotations,
        namespace: &w.namespace,
        first,
        spider,
        overlap: false,
        // Namespace labels are judged when the Pods are created.
        labels: Labels {
            pod: &w.labels,
            namespace: None,
        },
    };
    let resolved = resolve(world, &ask).map_err(|denial| match denial {
        Denial::Annotation(e) => WorkloadRefusal::Annotation {
            workload: w.display.clone(),
            source: Box::new(e),
        },
        denial => WorkloadRefusal::Plan {
            workload: w.display.clone(),
            denial: Box::new(denial),
        },
    })?;
    let Some(r) = resolved else {
        return Ok(());
    };
    let (network, provider) = (&r.network, &r.provider);
    let Some(subnet) = &r.subnet else {
        warnings.push(format!(
            "{}: network {network}: no Subnet has spec.provider {provider} yet; its Pods will be refused \
             until one exists (or they name one with {})",
            w.display,
            keys::provider_key(provider, keys::LOGICAL_SWITCH)
        ));
        return Ok(());
    };
    match layout(subnet) {
        Ok(shape) => check_requested(w, req, &r, &shape, warnings),
        Err(e) => {
            warnings.push(format!(
                "{}: network {network}: Subnet {} is invalid ({}); its Pods will be refused until it is fixed",
                w.display,
                subnet.name_any(),
                e.problem
            ));
            Ok(())
        }
    }
}

/// The addresses the template asks for are ones Pods may get from the Subnet, and enough for its Pods.
fn check_requested(
    w: &Workload,
    req: &AttachmentRequest,
    r: &Resolved,
    shape: &SubnetLayout,
    warnings: &mut Vec<String>,
) -> Result<(), WorkloadRefusal> {
    let (provider, asks) = (&r.provider, &r.asks);
    let pool_key = keys::provider_key(provider, keys::IP_POOL);
    let checker = static_checker(shape);
    let unusable = |what: String, e: AllocError| WorkloadRefusal::Address {
        workload: w.display.clone(),
        what,
        source: Box::new(e),
    };

    let fixed = match asks.ip_address {
        Some(pair) => Some((
            fixed_key(&w.annotations, provider, req.interface.as_deref()),
            pair,
        )),
        None => req.ip_pair().map(|pair| (r.nad_key.to_string(), pair)),
    };
    if let Some((key, pair)) = fixed {
        for ip in pair.addrs() {
            checker
                .check(ip)
                .map_err(|e| unusable(format!("{key} {pair}"), e))?;
        }
        return check_fixed_scale(w, key, pair, pool_key, warnings);
    }
    if let Some(PoolRequest::List(entries)) = &asks.ip_pool {
        for entry in entries {
            for ip in entry.addrs() {
                checker
                    .check(ip)
                    .map_err(|e| unusable(format!("{pool_key} entry {entry}"), e))?;
            }
        }
        check_list_scale(w, pool_key, entries)?;
    }
    Ok(())
}

/// A fixed address can serve one Pod at a time.
fn check_fixed_scale(
    w: &Workload,
    key: String,
    value: IpPair,
    pool_key: String,
    warnings: &mut Vec<String>,
) -> Result<(), WorkloadRefusal> {
    match w.scale {
        _ if w.scale.steady().is_some_and(|n| n > 1) => {
            return Err(WorkloadRefusal::FixedShared {
                workload: w.display.clone(),
                key,
                value,
                kind: w.kind,
                scale: w.scale,
                pool_key,
            });
        }
        Scale::Replicas { replicas: 1, surge } if surge > 0 => warnings.push(format!(
            "{}: {key} {value} is a single address, so a rolling update stalls: the new Pod (maxSurge {surge}) asks \
             for it while the old Pod still holds it; set spec.strategy.type to Recreate or maxSurge to 0",
            w.display
        )),
        Scale::PerNode => warnings.push(format!(
            "{}: {key} {value} is a single address, but a DaemonSet runs one Pod per node and each would ask for \
             it; only one node's Pod can start",
            w.display
        )),
        Scale::Parallel { overlap: true, .. } => warnings.push(format!(
            "{}: {key} {value} is a single address, but concurrencyPolicy Allow lets runs overlap, and a later \
             run's Pod is refused while an earlier one holds it; set spec.concurrencyPolicy to Forbid or Replace",
            w.display
        )),
        _ => {}
    }
    Ok(())
}

/// An address list needs an entry per Pod that may run at once (Deployment, ReplicaSet) or per ordinal
/// (StatefulSet). Other kinds have no count to compare with.
fn check_list_scale(w: &Workload, key: String, entries: &[IpPair]) -> Result<(), WorkloadRefusal> {
    let have_n = u32::try_from(entries.len()).unwrap_or(u32::MAX);
    let need = w.scale.demand();
    if have_n >= need {
        return Ok(());
    }
    let dual = entries
        .first()
        .is_some_and(|e| e.v4.is_some() && e.v6.is_some());
    let have = match (have_n, dual) {
        (1, false) => "1 address".to_string(),
        (1, true) => "1 address pair".to_string(),
        (n, false) => format!("{n} addresses"),
        (n, true) => format!("{n} address pairs"),
    };
    match (w.kind, w.scale) {
        (Kind::Deployment | Kind::ReplicaSet, Scale::Replicas { replicas, surge }) => {
            let (detail, knobs) = if surge > 0 {
                (
                    format!("replicas {replicas} + maxSurge {surge}"),
                    "replicas/maxSurge",
                )
            } else {
                (format!("replicas {replicas}"), "replicas")
            };
            Err(WorkloadRefusal::ListTooShort {
                workload: w.display.clone(),
                key,
                have,
                kind: w.kind,
                need,
                detail,
                knobs,
            })
        }
        (Kind::StatefulSet, Scale::Ordinals { start, replicas }) => {
            let detail = if start > 0 {
                format!("replicas {replicas} from ordinals.start {start}")
            } else {
                format!("replicas {replicas}")
            };
            Err(WorkloadRefusal::OrdinalsBeyondList {
                workload: w.display.clone(),
                key,
                have,
                last: need - 1,
                detail,
            })
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::api::{IPPoolSpec, Protocol, SubnetSpec};

    const MACVLAN_CONFIG: &str = r#"{"cniVersion": "0.3.1", "type": "macvlan", "master": "eth0", "mode": "bridge",
        "ipam": {"type": "nadipam", "provider": "macvlan.default"}}"#;
    const HOST_LOCAL_CONFIG: &str = r#"{"cniVersion": "0.3.1", "type": "macvlan", "master": "eth0",
        "ipam": {"type": "host-local", "subnet": "10.9.0.0/24"}}"#;

    fn subnet(name: &str, provider: &str, cidr: &str, namespaces: &[&str]) -> Arc<Subnet> {
        Arc::new(Subnet::new(
            name,
            SubnetSpec {
                protocol: Some(if cidr.contains(',') {
                    Protocol::Dual
                } else {
                    Protocol::Ipv4
                }),
                cidr_block: cidr.into(),
                gateway: None,
                exclude_ips: if name == "macvlan" {
                    vec!["172.17.0.0..172.17.0.10".into()]
                } else {
                    Vec::new()
                },
                provider: provider.into(),
                namespaces: namespaces.iter().map(|s| s.to_string()).collect(),
                routes: Vec::new(),
                node_selector: None,
                kube_ovn: Default::default(),
            },
        ))
    }

    fn pool(name: &str, subnet: &str, namespaces: &[&str]) -> Arc<IPPool> {
        Arc::new(IPPool::new(
            name,
            IPPoolSpec {
                subnet: subnet.into(),
                ips: vec!["172.17.0.200-172.17.0.210".into()],
                namespaces: namespaces.iter().map(|s| s.to_string()).collect(),
                ..IPPoolSpec::default()
            },
        ))
    }

    /// The seed guide's objects: NAD default/macvlan (ours), default/hostlocal (not ours), Subnet macvlan
    /// (172.17.0.0/16, gateway .1, excluding .0-.10), IPPool ippool-test, plus a Subnet only team-a may use.
    fn world() -> World {
        World {
            nads: vec![
                Arc::new(NetworkAttachmentDefinition::new(
                    "default",
                    "macvlan",
                    MACVLAN_CONFIG,
                )),
                Arc::new(NetworkAttachmentDefinition::new(
                    "default",
                    "hostlocal",
                    HOST_LOCAL_CONFIG,
                )),
            ],
            subnets: vec![
                subnet("macvlan", "macvlan.default", "172.17.0.0/16", &[]),
                subnet("team-a", "ovn", "10.20.0.0/16", &["team-a"]),
                subnet("dual", "ovn", "10.30.0.0/16,fd00:30::/64", &[]),
            ],
            pools: vec![
                pool("ippool-test", "macvlan", &[]),
                pool("team-a-pool", "macvlan", &["team-a"]),
                pool("other-subnet-pool", "team-a", &[]),
            ],
        }
    }

    fn template(ann: Value) -> Value {
        json!({"metadata": {"annotations": ann}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}})
    }

    fn object(kind: &str, name: &str, spec: Value) -> Value {
        let group = if matches!(kind, "Job" | "CronJob") {
            "batch/v1"
        } else {
            "apps/v1"
        };
        json!({"apiVersion": group, "kind": kind, "metadata": {"name": name, "namespace": "default"}, "spec": spec})
    }

    fn deployment(replicas: i32, strategy: Value, ann: Value) -> Value {
        object(
            "Deployment",
            "static-workload",
            json!({"replicas": replicas, "strategy": strategy, "selector": {"matchLabels": {"app": "a"}},
                   "template": template(ann)}),
        )
    }

    fn statefulset(replicas: i32, start: Option<i32>, ann: Value) -> Value {
        let mut spec = json!({"replicas": replicas, "selector": {"matchLabels": {"app": "a"}}, "serviceName": "web",
                              "template": template(ann)});
        if let Some(s) = start {
            spec["ordinals"] = json!({"start": s});
        }
        object("StatefulSet", "web", spec)
    }

    fn workload(kind: &str, value: Value) -> Workload {
        read(kind, "default", value).unwrap().unwrap()
    }

    fn run(kind: &str, value: Value) -> Result<Vec<String>, WorkloadRefusal> {
        check_workload(&workload(kind, value), &world())
    }

    fn refused(kind: &str, value: Value) -> (String, &'static str, u16) {
        let e = run(kind, value).unwrap_err();
        (e.to_string(), e.reason(), e.code())
    }

    fn macvlan(key: &str, value: &str) -> Value {
        json!({"k8s.v1.cni.cncf.io/networks": "default/macvlan", format!("macvlan.default.kubernetes.io/{key}"): value})
    }

    /// The message's fixed tail for an unusable address.
    const USE: &str = "; use an address Pods may get: inside the Subnet, and neither its gateway, network or broadcast \
                       address nor in its excludeIps";

    #[test]
    fn the_guide_workload_passes() {
        let seed = deployment(
            2,
            Value::Null,
            json!({"k8s.v1.cni.cncf.io/networks": "default/macvlan",
                   "ovn.kubernetes.io/ip_pool": "10.16.0.15,10.16.0.16,10.16.0.17",
                   "macvlan.default.kubernetes.io/ip_pool": "172.17.0.200,172.17.0.201,172.17.0.202"}),
        );
        let w = workload("Deployment", seed.clone());
        assert_eq!(w.display, "Deployment default/static-workload");
        assert_eq!(
            w.scale,
            Scale::Replicas {
                replicas: 2,
                surge: 1
            }
        );
        assert!(!w.owned);
        assert_eq!(run("Deployment", seed).unwrap(), Vec::<String>::new());
        // Random allocation, a named pool, a network nadipam does not serve.
        assert!(
            run(
                "Deployment",
                deployment(
                    5,
                    Value::Null,
                    json!({"k8s.v1.cni.cncf.io/networks": "default/macvlan"})
                )
            )
            .unwrap()
            .is_empty()
        );
        assert!(
            run(
                "Deployment",
                deployment(5, Value::Null, macvlan("ip_pool", "ippool-test"))
            )
            .unwrap()
            .is_empty()
        );
        let other = json!({"k8s.v1.cni.cncf.io/networks": "default/hostlocal",
                           "hostlocal.default.kubernetes.io/ip_address": "10.0.0.1"});
        assert!(
            run("Deployment", deployment(3, Value::Null, other))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn reading_kinds() {
        assert_eq!(read("Pod", "default", json!({})).unwrap(), None);
        let e = read(
            "Deployment",
            "default",
            object(
                "Deployment",
                "x",
                json!({"replicas": "three", "selector": {}, "template": template(json!({}))}),
            ),
        )
        .unwrap_err();
        assert_eq!(
            (e.to_string(), e.reason(), e.code()),
            (
                "Deployment default/x: the object could not be read: invalid type: string \"three\", expected i32"
                    .into(),
                "malformed_request",
                400
            )
        );
        let mut job = object(
            "Job",
            "",
            json!({"parallelism": 3, "completions": 2, "template": template(json!({"a": "b"}))}),
        );
        job["metadata"] = json!({"generateName": "pi-", "namespace": "default",
                                 "ownerReferences": [{"apiVersion": "batch/v1", "kind": "CronJob", "name": "pi",
                                                      "uid": "u", "controller": true}]});
        let j = workload("Job", job);
        assert_eq!(j.display, "Job default/pi-*");
        assert!(j.owned);
        assert_eq!(j.annotations["a"], "b");
        assert_eq!(j.scale.steady(), Some(2));
        let cron = object(
            "CronJob",
            "c",
            json!({"schedule": "* * * * *", "concurrencyPolicy": "Forbid",
            "jobTemplate": {"spec": {"template": template(json!({"k": "v"}))}}}),
        );
        let c = workload("CronJob", cron);
        assert_eq!(c.annotations["k"], "v");
        assert_eq!(
            c.scale,
            Scale::Parallel {
                parallelism: 1,
                completions: None,
                overlap: false
            }
        );
        let ds = object(
            "DaemonSet",
            "d",
            json!({"selector": {}, "template": template(json!({}))}),
        );
        assert_eq!(workload("DaemonSet", ds).scale, Scale::PerNode);
        let rs = object(
            "ReplicaSet",
            "r",
            json!({"replicas": 4, "selector": {}, "template": template(json!({}))}),
        );
        assert_eq!(
            workload("ReplicaSet", rs).scale,
            Scale::Replicas {
                replicas: 4,
                surge: 0
            }
        );
        let sts = workload("StatefulSet", statefulset(3, Some(2), json!({})));
        assert_eq!(
            sts.scale,
            Scale::Ordinals {
                start: 2,
                replicas: 3
            }
        );
        assert_eq!(sts.scale.demand(), 5);
    }

    #[test]
    fn surge_rules() {
        let s = |v: Option<IntOrString>, r| max_surge(v.as_ref(), r);
        assert_eq!(s(None, 3), 1);
        assert_eq!(s(None, 4), 1);
        assert_eq!(s(None, 5), 2);
        assert_eq!(s(None, 0), 0);
        assert_eq!(s(Some(IntOrString::Int(2)), 3), 2);
        assert_eq!(s(Some(IntOrString::String("50%".into())), 3), 2);
        assert_eq!(s(Some(IntOrString::String("0%".into())), 3), 0);
        assert_eq!(s(Some(IntOrString::String("100%".into())), 3), 3);
        let w = |strategy| workload("Deployment", deployment(3, strategy, json!({}))).scale;
        assert_eq!(
            w(json!({"type": "Recreate"})),
            Scale::Replicas {
                replicas: 3,
                surge: 0
            }
        );
        assert_eq!(
            w(
                json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}})
            ),
            Scale::Replicas {
                replicas: 3,
                surge: 0
            }
        );
        assert_eq!(
            w(json!({"rollingUpdate": {"maxSurge": "60%"}})),
            Scale::Replicas {
                replicas: 3,
                surge: 2
            }
        );
    }

    #[test]
    fn address_lists_must_cover_every_pod() {
        let surge1 = json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}});
        let list = macvlan("ip_pool", "172.17.0.200,172.17.0.201,172.17.0.202");
        assert_eq!(
            refused("Deployment", deployment(3, surge1.clone(), list.clone())),
            (
                "Deployment default/static-workload: macvlan.default.kubernetes.io/ip_pool has 3 addresses but the \
                 Deployment may run 4 Pods at once (replicas 3 + maxSurge 1); add addresses or lower \
                 replicas/maxSurge"
                    .into(),
                "pool_too_small",
                422
            )
        );
        assert!(
            run(
                "Deployment",
                deployment(3, json!({"type": "Recreate"}), list.clone())
            )
            .is_ok()
        );
        let rs = object(
            "ReplicaSet",
            "rs",
            json!({"replicas": 4, "selector": {}, "template": template(list.clone())}),
        );
        assert_eq!(
            refused("ReplicaSet", rs).0,
            "ReplicaSet default/rs: macvlan.default.kubernetes.io/ip_pool has 3 addresses but the ReplicaSet may run \
             4 Pods at once (replicas 4); add addresses or lower replicas"
        );
        assert_eq!(
            refused("StatefulSet", statefulset(4, None, list.clone())).0,
            "StatefulSet default/web: macvlan.default.kubernetes.io/ip_pool has 3 addresses but the StatefulSet's \
             Pods take the entry of their ordinal, up to ordinal 3 (replicas 4); add addresses or lower replicas"
        );
        assert!(run("StatefulSet", statefulset(3, None, list.clone())).is_ok());
        assert_eq!(
            refused("StatefulSet", statefulset(2, Some(2), list.clone())).0,
            "StatefulSet default/web: macvlan.default.kubernetes.io/ip_pool has 3 addresses but the StatefulSet's \
             Pods take the entry of their ordinal, up to ordinal 3 (replicas 2 from ordinals.start 2); add \
             addresses or lower replicas"
        );
        let one = macvlan("ip_pool", "172.17.0.200");
        assert_eq!(
            refused("Deployment", deployment(1, surge1, one)).0,
            "Deployment default/static-workload: macvlan.default.kubernetes.io/ip_pool has 1 address but the \
             Deployment may run 2 Pods at once (replicas 1 + maxSurge 1); add addresses or lower replicas/maxSurge"
        );
        let dual = json!({"k8s.v1.cni.cncf.io/networks": "default/dualnet",
                          "dualnet.default.kubernetes.io/logical_switch": "dual",
                          "dualnet.default.kubernetes.io/ip_pool": "10.30.0.5,fd00:30::5"});
        let mut w = world();
        w.nads.push(Arc::new(NetworkAttachmentDefinition::new(
            "default",
            "dualnet",
            MACVLAN_CONFIG.replace("macvlan.default", "dualnet.default"),
        )));
        let e = check_workload(
            &workload(
                "Deployment",
                deployment(2, json!({"type": "Recreate"}), dual),
            ),
            &w,
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "Deployment default/static-workload: dualnet.default.kubernetes.io/ip_pool has 1 address pair but the \
             Deployment may run 2 Pods at once (replicas 2); add addresses or lower replicas"
        );
        // Kinds without a count to compare are not checked.
        let job = object(
            "Job",
            "j",
            json!({"parallelism": 5, "template": template(list)}),
        );
        assert!(run("Job", job).is_ok());
    }

    #[test]
    fn addresses_must_be_assignable() {
        let d = |ann| deployment(1, json!({"type": "Recreate"}), ann);
        assert_eq!(
            refused("Deployment", d(macvlan("ip_address", "10.0.0.5"))),
            (
                format!(
                    "Deployment default/static-workload: macvlan.default.kubernetes.io/ip_address 10.0.0.5: 10.0.0.5 \
                     is outside subnet macvlan (172.17.0.0/16){USE}"
                ),
                "invalid_address",
                422
            )
        );
        assert_eq!(
            refused("Deployment", d(macvlan("ip_address", "172.17.0.1"))).0,
            format!(
                "Deployment default/static-workload: macvlan.default.kubernetes.io/ip_address 172.17.0.1: 172.17.0.1 \
                 is the gateway of subnet macvlan (172.17.0.0/16) and cannot be assigned to a Pod{USE}"
            )
        );
        assert_eq!(
            refused("Deployment", d(macvlan("ip_address", "172.17.0.5"))).0,
            format!(
                "Deployment default/static-workload: macvlan.default.kubernetes.io/ip_address 172.17.0.5: 172.17.0.5 \
                 is excluded from subnet macvlan (172.17.0.0/16) by excludeIps entry 172.17.0.0..172.17.0.10{USE}"
            )
        );
        assert_eq!(
            refused(
                "Deployment",
                d(macvlan("ip_pool", "172.17.0.200,172.17.255.255"))
            )
            .0,
            format!(
                "Deployment default/static-workload: macvlan.default.kubernetes.io/ip_pool entry 172.17.255.255: \
                 172.17.255.255 is the broadcast address of subnet macvlan (172.17.0.0/16) and cannot be assigned \
                 to a Pod{USE}"
            )
        );
        let per_if = json!({"k8s.v1.cni.cncf.io/networks": "default/macvlan@net1",
                            "macvlan.default.kubernetes.io/ip_address.net1": "172.17.0.3"});
        assert!(
            refused("Deployment", d(per_if)).0.starts_with(
                "Deployment default/static-workload: macvlan.default.kubernetes.io/ip_address.net1 172.17.0.3: \
                 172.17.0.3 is excluded"
            )
        );
        let multus_ips = json!({"k8s.v1.cni.cncf.io/networks":
            r#"[{"name": "macvlan", "namespace": "default", "ips": ["172.18.0.7/16"]}]"#});
        assert!(
            refused("Deployment", d(multus_ips))
                .0
                .starts_with("Deployment default/static-workload: k8s.v1.cni.cncf.io/networks 172.18.0.7: 172.18.0.7 is outside")
        );
        assert!(
            run("Deployment", d(macvlan("ip_address", "172.17.0.100")))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn a_fixed_address_serves_one_pod() {
        let fixed = macvlan("ip_address", "172.17.0.100");
        assert_eq!(
            refused("Deployment", deployment(3, Value::Null, fixed.clone())),
            (
                "Deployment default/static-workload: macvlan.default.kubernetes.io/ip_address 172.17.0.100 is a \
                 single address, but the Deployment runs 3 Pods at once (replicas 3) and every one would ask for it; \
                 use macvlan.default.kubernetes.io/ip_pool with one address per Pod, or set replicas to 1"
                    .into(),
                "fixed_ip_replicas",
                422
            )
        );
        assert_eq!(
            refused("StatefulSet", statefulset(2, None, fixed.clone())).0,
            "StatefulSet default/web: macvlan.default.kubernetes.io/ip_address 172.17.0.100 is a single address, but \
             the StatefulSet runs 2 Pods at once (replicas 2) and every one would ask for it; use \
             macvlan.default.kubernetes.io/ip_pool with one address per Pod, or set replicas to 1"
        );
        let job = object(
            "Job",
            "j",
            json!({"parallelism": 2, "template": template(fixed.clone())}),
        );
        assert_eq!(
            refused("Job", job).0,
            "Job default/j: macvlan.default.kubernetes.io/ip_address 172.17.0.100 is a single address, but the Job \
             runs 2 Pods at once (parallelism 2) and every one would ask for it; use \
             macvlan.default.kubernetes.io/ip_pool with one address per Pod, or set parallelism to 1"
        );
        // One Pod, but more at times: warnings.
        assert_eq!(
            run("Deployment", deployment(1, Value::Null, fixed.clone())).unwrap(),
            [
                "Deployment default/static-workload: macvlan.default.kubernetes.io/ip_address 172.17.0.100 is a single \
              address, so a rolling update stalls: the new Pod (maxSurge 1) asks for it while the old Pod still \
              holds it; set spec.strategy.type to Recreate or maxSurge to 0"
            ]
        );
        assert!(
            run(
                "Deployment",
                deployment(1, json!({"type": "Recreate"}), fixed.clone())
            )
            .unwrap()
            .is_empty()
        );
        let ds = object(
            "DaemonSet",
            "d",
            json!({"selector": {}, "template": template(fixed.clone())}),
        );
        assert_eq!(
            run("DaemonSet", ds).unwrap(),
            [
                "DaemonSet default/d: macvlan.default.kubernetes.io/ip_address 172.17.0.100 is a single address, but a \
              DaemonSet runs one Pod per node and each would ask for it; only one node's Pod can start"
            ]
        );
        let cron = |policy: &str| {
            object(
                "CronJob",
                "c",
                json!({"schedule": "* * * * *", "concurrencyPolicy": policy,
                "jobTemplate": {"spec": {"template": template(fixed.clone())}}}),
            )
        };
        assert_eq!(
            run("CronJob", cron("Allow")).unwrap(),
            [
                "CronJob default/c: macvlan.default.kubernetes.io/ip_address 172.17.0.100 is a single address, but \
              concurrencyPolicy Allow lets runs overlap, and a later run's Pod is refused while an earlier one holds \
              it; set spec.concurrencyPolicy to Forbid or Replace"
            ]
        );
        assert!(run("CronJob", cron("Forbid")).unwrap().is_empty());
    }

    #[test]
    fn references_must_resolve() {
        let d = |ann| deployment(1, json!({"type": "Recreate"}), ann);
        let e = run(
            "Deployment",
            d(json!({"k8s.v1.cni.cncf.io/networks": "default/nope"})),
        )
        .unwrap_err();
        assert_eq!(
            (e.to_string(), e.reason(), e.code()),
            (
                "Deployment default/static-workload: network default/nope: NetworkAttachmentDefinition default/nope \
                 does not exist; create it or fix the network reference in k8s.v1.cni.cncf.io/networks"
                    .into(),
                "unknown_nad",
                404
            )
        );
        assert_eq!(
            e.missing(),
            Some(Missing::Nad(NetworkRef {
                namespace: "default".into(),
                name: "nope".into()
            }))
        );
        let e = run("Deployment", d(macvlan("ip_pool", "my-pool"))).unwrap_err();
        assert_eq!(
            (e.to_string(), e.reason(), e.code()),
            (
                "Deployment default/static-workload: network default/macvlan: IPPool my-pool named by \
                 macvlan.default.kubernetes.io/ip_pool does not exist"
                    .into(),
                "bad_pool",
                404
            )
        );
        assert_eq!(e.missing(), Some(Missing::Pool("my-pool".into())));
        let spider = json!({"k8s.v1.cni.cncf.io/networks": "default/macvlan",
                            "ipam.spidernet.io/ippool": r#"{"ipv4": ["gone"]}"#});
        assert_eq!(
            refused("Deployment", d(spider)).0,
            "Deployment default/static-workload: network default/macvlan: IPPool gone named by \
             ipam.spidernet.io/ippool does not exist"
        );
        let e = run("Deployment", d(macvlan("logical_switch", "nosuch"))).unwrap_err();
        assert_eq!(
            (e.to_string(), e.code()),
            (
                "Deployment default/static-workload: network default/macvlan: Subnet nosuch named by \
                 macvlan.default.kubernetes.io/logical_switch does not exist"
                    .into(),
                404
            )
        );
        assert_eq!(e.missing(), Some(Missing::Subnet("nosuch".into())));
        // A pool is the only way to its Subnet when no Subnet serves the network's provider.
        let mut w = world();
        w.subnets.retain(|s| s.name_any() != "macvlan");
        w.pools.push(pool("by-cidr", "172.17.0.0/16", &[]));
        let e = check_workload(
            &workload("Deployment", d(macvlan("ip_pool", "by-cidr"))),
            &w,
        )
        .unwrap_err();
        assert_eq!(
            (e.to_string(), e.reason(), e.code()),
            (
                "Deployment default/static-workload: network default/macvlan: IPPool by-cidr: spec.subnet \
                 172.17.0.0/16: no Subnet has cidrBlock 172.17.0.0/16; create a Subnet with spec.cidrBlock: \
                 172.17.0.0/16 and spec.provider: <nad>.<namespace> of its network first, or name an existing \
                 Subnet"
                    .into(),
                "no_subnet",
                404
            )
        );
        assert_eq!(e.missing(), Some(Missing::SubnetByCidr));
        w.subnets
            .push(subnet("macvlan", "macvlan.default", "172.17.0.0/16", &[]));
        assert!(
            check_workload(
                &workload("Deployment", d(macvlan("ip_pool", "by-cidr"))),
                &w
            )
            .is_ok()
        );
        w.pools.push(pool("by-name", "gone", &[]));
        w.subnets.clear();
        let e = check_workload(
            &workload("Deployment", d(macvlan("ip_pool", "by-name"))),
            &w,
        )
        .unwrap_err();
        assert_eq!(e.missing(), Some(Missing::Subnet("gone".into())));
        // Found once fetched: the same check passes with the object added.
        let mut w = world();
        w.pools.push(pool("my-pool", "macvlan", &[]));
        assert!(
            check_workload(
                &workload("Deployment", d(macvlan("ip_pool", "my-pool"))),
                &w
            )
            .is_ok()
        );
    }

    #[test]
    fn subnet_and_pool_rules_of_pod_admission() {
        let d = |ann| deployment(1, json!({"type": "Recreate"}), ann);
        let e = run("Deployment", d(macvlan("logical_switch", "team-a"))).unwrap_err();
        assert_eq!(
            (e.to_string(), e.reason(), e.code()),
            (
                "Deployment default/static-workload: network default/macvlan: namespace default may not allocate \
                 from Subnet team-a (spec.namespaces: team-a)"
                    .into(),
                "namespace_not_allowed",
                403
            )
        );
        assert_eq!(
            refused("Deployment", d(macvlan("ip_pool", "team-a-pool"))).0,
            "Deployment default/static-workload: network default/macvlan: namespace default may not use IPPool \
             team-a-pool (spec.namespaces: team-a)"
        );
        let e = run("Deployment", d(macvlan("ip_pool", "other-subnet-pool"))).unwrap_err();
        assert_eq!(
            (e.to_string(), e.code()),
            (
                "Deployment default/static-workload: network default/macvlan: IPPool other-subnet-pool belongs to \
                 Subnet team-a, but this network allocates from Subnet macvlan"
                    .into(),
                422
            )
        );
        let mut w = world();
        w.subnets
            .push(subnet("foreign", "other.default", "10.40.0.0/16", &[]));
        let mut served = (*pool("served-elsewhere", "macvlan", &[])).clone();
        served.spec.multus_name = vec!["default/other".into()];
        w.pools.push(Arc::new(served));
        w.nads.push(Arc::new(NetworkAttachmentDefinition::new(
            "default", "broken", "{",
        )));
        // An unreadable NAD is refused only where nadipam is asked to serve it.
        w.subnets
            .push(subnet("broken", "broken.default", "10.41.0.0/16", &[]));
        w.nads.push(Arc::new(NetworkAttachmentDefinition::new(
            "default",
            "from-file",
            "",
        )));
        assert_eq!(
            check_workload(
                &workload(
                    "Deployment",
                    d(json!({"k8s.v1.cni.cncf.io/networks": "default/from-file"}))
                ),
                &w
            )
            .map_err(|e| e.to_string()),
            Ok(Vec::<String>::new())
        );
        let refuse = |ann: Value| {
            let e = check_workload(&workload("Deployment", d(ann)), &w).unwrap_err();
            (e.to_string(), e.code())
        };
        assert_eq!(
            refuse(macvlan("logical_switch", "foreign")),
            (
                "Deployment default/static-workload: network default/macvlan: Subnet foreign serves provider \
                 other.default, not macvlan.default; a network may use a Subnet whose spec.provider is its own \
                 provider or ovn"
                    .into(),
                403
            )
        );
        assert_eq!(
            refuse(macvlan("ip_pool", "served-elsewhere")),
            (
                "Deployment default/static-workload: network default/macvlan: IPPool served-elsewhere serves \
                 networks default/other (spec.multusName), not default/macvlan"
                    .into(),
                422
            )
        );
        assert_eq!(
            refuse(json!({"k8s.v1.cni.cncf.io/networks": "default/broken"})),
            (
                "Deployment default/static-workload: network default/broken: NetworkAttachmentDefinition \
                 default/broken: spec.config is not valid JSON (EOF while parsing an object at line 1 column 1); \
                 expected a CNI configuration such as \
                 {\"cniVersion\":\"0.3.1\",\"type\":\"macvlan\",\"ipam\":{\"type\":\"nadipam\"}}"
                    .into(),
                400
            )
        );
        // No Subnet for the provider yet: a warning, the Pods are refused until one exists.
        let mut w = world();
        w.subnets.retain(|s| s.name_any() != "macvlan");
        assert_eq!(
            check_workload(
                &workload("Deployment", d(macvlan("ip_address", "172.17.0.100"))),
                &w
            )
            .unwrap(),
            [
                "Deployment default/static-workload: network default/macvlan: no Subnet has spec.provider \
              macvlan.default yet; its Pods will be refused until one exists (or they name one with \
              macvlan.default.kubernetes.io/logical_switch)"
            ]
        );
    }

    #[test]
    fn annotation_syntax() {
        let e = run(
            "Deployment",
            deployment(
                1,
                Value::Null,
                json!({"k8s.v1.cni.cncf.io/networks": "default/mac vlan"}),
            ),
        )
        .unwrap_err();
        assert_eq!(
            (e.to_string(), e.reason(), e.code()),
            (
                "Deployment default/static-workload: annotation k8s.v1.cni.cncf.io/networks: \"default/mac vlan\" is \
                 not a valid network reference (expected name, namespace/name or namespace/name@interface; names are \
                 DNS-1123 labels)"
                    .into(),
                "malformed_annotation",
                422
            )
        );
        let e = run(
            "Deployment",
            deployment(1, Value::Null, macvlan("ip_pool", "10.0.0.1,,10.0.0.2")),
        )
        .unwrap_err();
        assert!(
            e.to_string().starts_with(
                "Deployment default/static-workload: annotation macvlan.default.kubernetes.io/ip_pool: \
                 \"10.0.0.1,,10.0.0.2\" has an empty entry"
            ),
            "{e}"
        );
    }

    #[test]
    fn which_admissions_are_checked() {
        let base = workload(
            "Deployment",
            deployment(2, Value::Null, macvlan("ip_pool", "ippool-test")),
        );
        assert!(needs_check(&base, None));
        assert!(!needs_check(&base, Some(&base)));
        let mut fewer = base.clone();
        fewer.scale = Scale::Replicas {
            replicas: 1,
            surge: 1,
        };
        assert!(!needs_check(&fewer, Some(&base)));
        assert!(needs_check(&base, Some(&fewer)));
        let mut changed = base.clone();
        changed.annotations.insert(
            "macvlan.default.kubernetes.io/ip_pool".into(),
            "other".into(),
        );
        assert!(needs_check(&changed, Some(&base)));
        let mut owned = base.clone();
        owned.owned = true;
        assert!(!needs_check(&owned, None));
    }
}
