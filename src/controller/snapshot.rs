//! The controller's decision for a lease taken from one snapshot of the cluster (Pods, StatefulSets and
//! IPAMClaims listed once) instead of its watch caches, so `kubectl nadipam orphans` predicts what the leader
//! will do with the same rules it uses. Pure: the caller lists, this only looks things up.

use std::collections::HashMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use super::decide::{Decision, Observed, Rules, decide};
use super::facts::{ClaimFacts, PodFacts, SetFacts};
use super::owners::{pod_token, set_member};
use super::state::age;
use crate::api::{IPAMClaim, IPLease, OwnerKind, claim_label};

/// Pods, StatefulSets and IPAMClaims as listed at one moment, indexed the way the controller looks them up.
#[derive(Default)]
pub(crate) struct Snapshot {
    /// `(namespace, name)` → Pod.
    pods: HashMap<(String, String), PodFacts>,
    /// `(namespace, token)` → Pod name: a token counts only in the lease's namespace, as in the controller.
    by_token: HashMap<(String, String), String>,
    /// `(namespace, label, value)` of each Pod's labels, for the Pods using a claim.
    labelled: HashMap<(String, String, String), Vec<String>>,
    sets: HashMap<(String, String), SetFacts>,
    /// `(namespace, name)` → UID.
    claims: HashMap<(String, String), String>,
}

impl Snapshot {
    pub(crate) fn new(pods: &[Pod], sets: &[StatefulSet], claims: &[IPAMClaim]) -> Snapshot {
        let mut s = Snapshot::default();
        for pod in pods {
            let facts = PodFacts::of(pod);
            let ns = facts.namespace.clone();
            if let Some(token) = pod_token(pod) {
                s.by_token
                    .insert((ns.clone(), token.to_string()), facts.name.clone());
            }
            for (k, v) in pod.labels() {
                s.labelled
                    .entry((ns.clone(), k.clone(), v.clone()))
                    .or_default()
                    .push(facts.name.clone());
            }
            s.pods.insert((ns, facts.name.clone()), facts);
        }
        for set in sets {
            s.sets.insert(
                (set.namespace().unwrap_or_default(), set.name_any()),
                SetFacts::of(set),
            );
        }
        for claim in claims {
            s.claims.insert(
                (claim.namespace().unwrap_or_default(), claim.name_any()),
                claim.uid().unwrap_or_default(),
            );
        }
        s
    }

    /// What the controller would observe about `lease` at `now`: the Pod it names (or, unnamed, the Pod of its
    /// namespace carrying its token), its StatefulSet, its claim and the claim's unfinished Pods. A Pod deleted
    /// a moment ago is not known to a snapshot, so such a lease waits for its window as after a restart.
    pub(crate) fn observe(&self, lease: &IPLease, now: Timestamp) -> Observed {
        let spec = &lease.spec;
        let ns = spec.pod_namespace.clone();
        let name = spec.pod_name.clone().or_else(|| {
            self.by_token
                .get(&(ns.clone(), spec.token.clone()))
                .cloned()
        });
        let pod = name.and_then(|n| self.pods.get(&(ns.clone(), n)).cloned());
        let set = set_member(lease).and_then(|(set, _)| self.sets.get(&(ns.clone(), set)).copied());
        Observed {
            pod,
            set,
            pod_deleted: None,
            age: age(lease, now),
            claim: self.claim(lease),
        }
    }

    fn claim(&self, lease: &IPLease) -> ClaimFacts {
        let spec = &lease.spec;
        let (OwnerKind::IPAMClaim, Some(name)) = (spec.owner_kind, spec.claim.as_deref()) else {
            return ClaimFacts::default();
        };
        let ns = &spec.pod_namespace;
        let exists = self
            .claims
            .get(&(ns.clone(), name.to_string()))
            .is_some_and(|uid| *uid == spec.token);
        let users = claim_label(name)
            .filter(|_| !exists)
            .and_then(|label| self.labelled.get(&(ns.clone(), label, spec.token.clone())))
            .into_iter()
            .flatten()
            .filter(|p| {
                self.pods
                    .get(&(ns.clone(), (*p).clone()))
                    .is_some_and(|f| f.finished.is_none())
            })
            .map(|p| format!("{ns}/{p}"))
            .collect();
        ClaimFacts { exists, users }
    }

    /// The decision for `lease` at `now` under `reclaim_after`, as the leader makes it without `--bind-leases`
    /// (binding does not decide whether a lease is held).
    pub(crate) fn decide(
        &self,
        lease: &IPLease,
        now: Timestamp,
        reclaim_after: Duration,
    ) -> (Decision, Observed) {
        let seen = self.observe(lease, now);
        let rules = Rules {
            reclaim_after,
            bind: false,
        };
        (decide(lease, &seen, &rules), seen)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::LeasePhase;
    use crate::controller::decide::Release;
    use crate::controller::decide::tests::lease;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    const TTL: Duration = Duration::from_secs(70);

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(secs).unwrap()
    }

    fn created(mut l: IPLease, secs: i64) -> IPLease {
        l.metadata.creation_timestamp = Some(Time(at(secs)));
        l
    }

    #[test]
    fn a_pod_carrying_the_token_holds_the_lease() {
        let l = created(lease(OwnerKind::Pod, LeasePhase::Reserved, None, None), 0);
        let p = pod(
            serde_json::json!({"metadata": {"name": "web-x", "namespace": "ns", "uid": "u1",
            "annotations": {"nadipam.io/reservation": "t1"}}}),
        );
        let snap = Snapshot::new(&[p], &[], &[]);
        assert_eq!(snap.decide(&l, at(1000), TTL).0, Decision::Keep);
        // The same token in another namespace does not hold it: reclaimed, as the controller would.
        let other = pod(
            serde_json::json!({"metadata": {"name": "web-x", "namespace": "other", "uid": "u1",
            "annotations": {"nadipam.io/reservation": "t1"}}}),
        );
        let snap = Snapshot::new(&[other], &[], &[]);
        assert!(matches!(
            snap.decide(&l, at(1000), TTL).0,
            Decision::Reclaim { .. }
        ));
        // Inside the window (created at 0, now 11: age 10 counted from the end of the second).
        assert_eq!(
            snap.decide(&l, at(11), TTL).0,
            Decision::RecheckIn(Duration::from_secs(60))
        );
    }

    #[test]
    fn a_deleted_claim_waits_for_its_unfinished_pods() {
        let mut l = lease(OwnerKind::IPAMClaim, LeasePhase::Reserved, None, None);
        l.spec.claim = Some("vm-a".into());
        let user = |phase: &str| {
            pod(
                serde_json::json!({"metadata": {"name": "virt-a", "namespace": "ns", "uid": "u1",
                "labels": {"ipamclaims.nadipam.io/vm-a": "t1"}}, "status": {"phase": phase}}),
            )
        };
        let snap = Snapshot::new(&[user("Running")], &[], &[]);
        let (d, seen) = snap.decide(&l, at(0), TTL);
        assert_eq!(d, Decision::Keep);
        assert_eq!(seen.claim.users, ["ns/virt-a"]);
        let snap = Snapshot::new(&[user("Succeeded")], &[], &[]);
        assert_eq!(
            snap.decide(&l, at(0), TTL).0,
            Decision::Release(Release::ClaimDeleted {
                namespace: "ns".into(),
                claim: "vm-a".into()
            })
        );
        // The claim re-created with another UID is not the lease's.
        let claim: IPAMClaim = serde_json::from_value(serde_json::json!({
            "apiVersion": "k8s.cni.cncf.io/v1alpha1", "kind": "IPAMClaim",
            "metadata": {"name": "vm-a", "namespace": "ns", "uid": "t2"}, "spec": {}}))
        .unwrap();
        let snap = Snapshot::new(&[], &[], &[claim]);
        assert!(snap.decide(&l, at(0), TTL).0.deletes());
    }
}
