//! IPAMClaims at admission: an attachment whose network selection element names an `ipam-claim-reference`
//! gets the claim's addresses. The claim, not the Pod, holds the leases (their token is the claim's UID), so
//! every Pod naming it gets the same addresses, and they stay when a Pod goes.
//!
//! At most two Pods use a claim at once: a live migration's source and target. Each Pod naming a claim is
//! labelled `ipamclaims.nadipam.io/<claim>: <claim uid>`, which is how a third is found and refused, and how
//! the controller knows a deleted claim's addresses are still in use.
//!
//! Two Pods naming a new claim at the same moment must not both allocate: the claim's status is the
//! compare-and-swap point. The first allocation writes `status.ips` with the claim's resourceVersion as read
//! before it; the admission that loses that write gives its leases back and takes the winner's.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::reflector::ObjectRef;

use super::plan::Planned;
use super::reserve::{Request, Reserved};
use crate::api::{CLAIM_CONDITION, IPAMClaim, IPLease, claim_label};
use crate::context::Context;
use crate::webhook::denial::Denial;

/// Pods that may use one claim at the same time.
const MAX_USERS: usize = 2;
/// Rounds of losing the claim's first allocation to another admission before giving up.
const ATTEMPTS: u32 = 3;

/// A claim an attachment draws its addresses from, as read at admission.
pub(crate) struct Claimed {
    pub name: String,
    pub namespace: String,
    /// The claim's UID: the token of its leases, and the value of its Pod label.
    pub uid: String,
    /// `ipamclaims.nadipam.io/<claim>`.
    pub label: String,
    /// `status.ips` as read, so an unchanged status is not written again.
    ips: Vec<String>,
    generation: Option<i64>,
    /// The claim's resourceVersion as read: the precondition of the first allocation's status write.
    version: Option<String>,
    /// The claim's leases, read live.
    pub leases: Vec<Arc<IPLease>>,
}

/// The claim `p` names, read live (claims are few and the first Pod's admission must see one created a moment
/// ago), checked against the network and its current users. `None` when the element names no claim.
pub(crate) async fn resolve(
    ctx: &Context,
    namespace: &str,
    p: &Planned,
) -> Result<Option<Claimed>, Denial> {
    let Some(name) = p.claim.as_deref() else {
        return Ok(None);
    };
    let network = p.network.to_string();
    let api_error = |e: kube::Error| Denial::ClaimApi {
        network: network.clone(),
        namespace: namespace.to_string(),
        claim: name.to_string(),
        source: Box::new(e),
    };
    let claims: Api<IPAMClaim> = Api::namespaced(ctx.client.clone(), namespace);
    let claim = match claims.get_opt(name).await {
        Ok(Some(c)) => c,
        Ok(None) => {
            return Err(Denial::ClaimMissing {
                network,
                namespace: namespace.to_string(),
                claim: name.to_string(),
            });
        }
        // No IPAMClaim CRD: the claim cannot exist either.
        Err(kube::Error::Api(s)) if s.code == 404 => {
            return Err(Denial::ClaimMissing {
                network,
                namespace: namespace.to_string(),
                claim: name.to_string(),
            });
        }
        Err(e) => return Err(api_error(e)),
    };
    let accepted = network_names(ctx, p);
    let claimed = claim.spec.network.trim();
    if !claimed.is_empty() && !accepted.iter().any(|a| a == claimed) {
        return Err(Denial::ClaimNetwork {
            network,
            namespace: namespace.to_string(),
            claim: name.to_string(),
            claimed: claimed.to_string(),
            valid: accepted.join(" or "),
        });
    }
    // The attachment parser refuses names that cannot be a label.
    let label = claim_label(name).unwrap_or_default();
    let uid = claim.uid().unwrap_or_default();
    let users = users(ctx, namespace, &label, &uid)
        .await
        .map_err(api_error)?;
    if users.len() >= MAX_USERS {
        return Err(Denial::ClaimBusy {
            network,
            namespace: namespace.to_string(),
            claim: name.to_string(),
            pods: users.join(", "),
        });
    }
    let leases = super::token::live_leases(ctx, &uid)
        .await
        .map_err(api_error)?;
    Ok(Some(Claimed {
        name: name.to_string(),
        namespace: namespace.to_string(),
        uid,
        label,
        ips: claim.status.map(|s| s.ips).unwrap_or_default(),
        generation: claim.metadata.generation,
        version: claim.metadata.resource_version,
        leases,
    }))
}

/// Reserves `p`'s addresses for the claim: its leases when it has them, else new ones, committed by the
/// claim's status write ([`Claimed::commit`]). Losing that write to another admission (the same claim's
/// first allocation, at the same moment) gives the new leases back and starts over from the claim as it is now.
pub(crate) async fn reserve(
    request: &Request<'_>,
    p: &Planned,
    claimed: &mut Claimed,
    pod: &str,
) -> Result<Reserved, Denial> {
    let ctx = request.ctx;
    for _ in 0..ATTEMPTS {
        let held = request.held_by_claim(&claimed.name, &claimed.uid, &claimed.leases);
        let r = held.reserve(p).await?;
        if r.created.is_empty() || request.dry_run {
            return Ok(r);
        }
        match claimed.commit(ctx, p, &r, pod).await {
            Ok(ips) => {
                claimed.ips = ips;
                return Ok(r);
            }
            Err(e) if matches!(&e, kube::Error::Api(s) if s.code == 409) => {
                tracing::info!(claim = %format!("{}/{}", claimed.namespace, claimed.name), "another admission allocated for the claim first; taking its addresses");
                held.undo(p, &r).await;
                *claimed = resolve(ctx, &claimed.namespace, p).await?.ok_or_else(|| {
                    Denial::Contention {
                        network: p.network.to_string(),
                        attempts: 1,
                    }
                })?;
            }
            Err(e) => {
                // The leases hold the addresses; the status is a record of them.
                tracing::warn!(claim = %format!("{}/{}", claimed.namespace, claimed.name), error = %e, "could not record the claim's addresses in its status");
                return Ok(r);
            }
        }
    }
    Err(Denial::Contention {
        network: p.network.to_string(),
        attempts: ATTEMPTS,
    })
}

/// What a claim's `spec.network` may say for this attachment: the NAD's CNI config `name` (as KubeVirt and
/// OVN-Kubernetes write it), `<namespace>/<nad>`, or `<nad>`.
fn network_names(ctx: &Context, p: &Planned) -> Vec<String> {
    let mut names = Vec::new();
    let nad = ctx
        .cache
        .nads
        .get(&ObjectRef::new(&p.network.name).within(&p.network.namespace));
    if let Some(name) = nad
        .and_then(|n| serde_json::from_str::<serde_json::Value>(&n.spec.config).ok())
        .and_then(|c| c.get("name")?.as_str().map(str::to_string))
    {
        names.push(name);
    }
    for n in [p.network.to_string(), p.network.name.clone()] {
        if !names.contains(&n) {
            names.push(n);
        }
    }
    names
}

/// The Pods of the namespace using the claim (this UID of it) now: not finished and not being deleted.
async fn users(
    ctx: &Context,
    namespace: &str,
    label: &str,
    uid: &str,
) -> Result<Vec<String>, kube::Error> {
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), namespace);
    let listed = pods
        .list(&ListParams::default().labels(&format!("{label}={uid}")))
        .await?;
    Ok(listed
        .items
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| {
            !p.status
                .as_ref()
                .and_then(|s| s.phase.as_deref())
                .is_some_and(|ph| matches!(ph, "Succeeded" | "Failed"))
        })
        .map(|p| format!("{namespace}/{}", p.name_any()))
        .collect())
}

impl Claimed {
    /// The status that records `ips`: the addresses, the first Pod by name when it has one, `IPsAllocated`.
    fn status(&self, ips: &[String], pod: &str, network: &str) -> serde_json::Value {
        let condition = Condition {
            type_: CLAIM_CONDITION.to_string(),
            status: "True".to_string(),
            reason: "SuccessfulAllocation".to_string(),
            message: format!("nadipam allocated {} on network {network}", ips.join(", ")),
            last_transition_time: Time(jiff::Timestamp::now()),
            observed_generation: self.generation,
        };
        let mut status = serde_json::json!({ "ips": ips, "conditions": [condition] });
        if !pod.is_empty() {
            status["ownerPod"] = serde_json::json!({ "name": pod });
        }
        status
    }

    async fn patch_status(
        &self,
        ctx: &Context,
        body: serde_json::Value,
    ) -> Result<IPAMClaim, kube::Error> {
        Api::<IPAMClaim>::namespaced(ctx.client.clone(), &self.namespace)
            .patch_status(&self.name, &PatchParams::default(), &Patch::Merge(body))
            .await
    }

    /// The first allocation's status write, on the claim as it was read: a 409 means another admission
    /// wrote the claim meanwhile.
    async fn commit(
        &self,
        ctx: &Context,
        p: &Planned,
        r: &Reserved,
        pod: &str,
    ) -> Result<Vec<String>, kube::Error> {
        let ips = prefixed(p, r);
        let body = serde_json::json!({
            "metadata": { "resourceVersion": self.version },
            "status": self.status(&ips, pod, &p.network.to_string()),
        });
        self.patch_status(ctx, body).await?;
        Ok(ips)
    }

    /// Records the claim's addresses in its status unless it already says so (a Pod reusing them, a status
    /// written by someone else). The leases are what holds the addresses: a failed write is logged, not
    /// refused.
    pub(crate) async fn record(&self, ctx: &Context, p: &Planned, r: &Reserved, pod: &str) {
        let ips = prefixed(p, r);
        if ips == self.ips {
            return;
        }
        let body = serde_json::json!({ "status": self.status(&ips, pod, &p.network.to_string()) });
        if let Err(e) = self.patch_status(ctx, body).await {
            tracing::warn!(claim = %format!("{}/{}", self.namespace, self.name), error = %e, "could not record the claim's addresses in its status");
        }
    }
}

/// The reserved addresses with the prefix length of their Subnet block, as `status.ips` holds them.
fn prefixed(p: &Planned, r: &Reserved) -> Vec<String> {
    super::with_prefixes(&r.ip, &p.subnet.spec.cidr_block)
        .iter()
        .map(ToString::to_string)
        .collect()
}
