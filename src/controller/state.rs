//! What the reconciler reads: the leases (the webhook cache's store: one IPLease watch per replica), the
//! controller's own caches of trimmed Pods and trimmed StatefulSets, their indices, and the shared context.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::runtime::reflector::{self, ObjectRef, Store, store::Writer};

use super::decide::Observed;
use super::events::Events;
use super::facts::{ClaimFacts, PodFacts, SetFacts};
use super::owners::set_member;
use super::pace::Pacer;
use super::token_index::{LeaseIndex, PodIndex};
use crate::api::{IPAMClaim, IPLease, OwnerKind};
use crate::context::Context;

pub(crate) struct Ctl {
    pub ctx: Arc<Context>,
    pub leases: Store<IPLease>,
    pub pods: Store<Pod>,
    pub sets: Store<StatefulSet>,
    /// IPAMClaims, when the cluster has their CRD (`claims_watched`); otherwise a claim's lease is decided
    /// from live reads.
    pub claims: Store<IPAMClaim>,
    pub claims_watched: bool,
    pub lease_index: LeaseIndex,
    pub pod_index: PodIndex,
    pub events: Events,
    pub binds: Pacer,
    /// The resync period: every lease is looked at again within two of them (feeds.rs).
    pub resync: Duration,
}

/// The write halves of the controller's own caches, handed to the watch feeds.
pub(crate) struct Writers {
    pub pods: Writer<Pod>,
    pub sets: Writer<StatefulSet>,
    pub claims: Writer<IPAMClaim>,
}

impl Ctl {
    pub(crate) fn new(
        ctx: Arc<Context>,
        resync: Duration,
        claims_watched: bool,
    ) -> (Arc<Ctl>, Writers) {
        let leases = ctx.cache.leases.clone();
        let (pods, pod_w) = reflector::store();
        let (sets, set_w) = reflector::store();
        let (claims, claim_w) = reflector::store();
        let events = Events::new(
            ctx.client.clone(),
            &ctx.settings.identity,
            ctx.settings.allocation_events,
        );
        let binds = Pacer::new(ctx.settings.bind_rate, ctx.metrics.bind_backlog.clone());
        let ctl = Ctl {
            ctx,
            leases,
            pods,
            sets,
            claims,
            claims_watched,
            lease_index: LeaseIndex::default(),
            pod_index: PodIndex::default(),
            events,
            binds,
            resync,
        };
        let writers = Writers {
            pods: pod_w,
            sets: set_w,
            claims: claim_w,
        };
        (Arc::new(ctl), writers)
    }

    /// Waits until every cache has listed once.
    pub(crate) async fn wait_ready(&self) {
        // An error means the writer is gone, i.e. the controller is stopping; nothing to wait for then. The
        // lease store is the webhook cache's, listed before the controller starts; waiting costs nothing.
        let _ = self.leases.wait_until_ready().await;
        let _ = self.pods.wait_until_ready().await;
        let _ = self.sets.wait_until_ready().await;
        if self.claims_watched {
            let _ = self.claims.wait_until_ready().await;
        }
    }

    /// What the caches say about `lease`'s Pod and StatefulSet.
    pub(crate) fn observe(&self, lease: &IPLease, now: Instant) -> Observed {
        let spec = &lease.spec;
        let ns = &spec.pod_namespace;
        let pod = match &spec.pod_name {
            Some(name) => self.pods.get(&ObjectRef::new(name).within(ns)),
            // Only a Pod of the lease's namespace: a token copied into a Pod elsewhere never binds it.
            None => self
                .pod_index
                .by_token(&spec.token)
                .filter(|r| r.namespace.as_deref() == Some(ns.as_str()))
                .and_then(|r| self.pods.get(&r)),
        };
        let set = set_member(lease)
            .and_then(|(name, _)| self.sets.get(&ObjectRef::new(&name).within(ns)))
            .map(|s| SetFacts::of(&s));
        Observed {
            pod: pod.map(|p| PodFacts::of(&p)),
            set,
            pod_deleted: self.pod_index.deleted_pod(&spec.token, now),
            age: age(lease, Timestamp::now()),
            claim: self.claim(lease),
        }
    }

    /// What the claims cache says about a claim's lease. Which Pods use the claim it does not know: a
    /// release is confirmed by live reads, which do.
    fn claim(&self, lease: &IPLease) -> ClaimFacts {
        let spec = &lease.spec;
        let exists = match (&spec.claim, spec.owner_kind) {
            (Some(name), OwnerKind::IPAMClaim) => self
                .claims
                .get(&ObjectRef::new(name).within(&spec.pod_namespace))
                .is_some_and(|c| c.uid().as_deref() == Some(spec.token.as_str())),
            _ => false,
        };
        ClaimFacts {
            exists,
            users: Vec::new(),
        }
    }
}

/// Time since the lease was created (zero if its timestamp is missing or in the future). creationTimestamp
/// has whole-second precision, so the lease may be up to a second younger than it says: count from the end
/// of that second, so a reservation is never reclaimed before its window has passed.
pub(crate) fn age(lease: &IPLease, now: Timestamp) -> Duration {
    lease
        .creation_timestamp()
        .and_then(|t| Duration::try_from(now.duration_since(t.0)).ok())
        .map(|d| d.saturating_sub(Duration::from_secs(1)))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    #[test]
    fn age_is_never_negative() {
        let mut l: IPLease = serde_json::from_value(serde_json::json!({
            "apiVersion": "nadipam.io/v1", "kind": "IPLease", "metadata": {"name": "s.10.0.0.5"},
            "spec": {"subnet": "s", "ip": "10.0.0.5", "provider": "n.ns", "podNamespace": "ns",
                     "phase": "Reserved", "token": "t", "ownerKind": "Pod", "network": "ns/n"}
        }))
        .unwrap();
        let now = Timestamp::from_second(1_000).unwrap();
        assert_eq!(age(&l, now), Duration::ZERO);
        l.metadata.creation_timestamp = Some(Time(Timestamp::from_second(925).unwrap()));
        assert_eq!(
            age(&l, now),
            Duration::from_secs(74),
            "counted from the end of the second"
        );
        l.metadata.creation_timestamp = Some(Time(Timestamp::from_second(1_005).unwrap()));
        assert_eq!(age(&l, now), Duration::ZERO, "clock skew");
    }
}
