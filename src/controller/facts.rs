//! The few facts about a Pod or a StatefulSet that lease decisions depend on, taken from the full objects, and
//! the trimming that keeps the controller's Pod and StatefulSet caches small.

use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetSpec};
use k8s_openapi::api::core::v1::{Pod, PodStatus};
use kube::ResourceExt;

use super::owners::pod_token;
use crate::annotations::keys;
use crate::api::CLAIM_LABEL_PREFIX;

/// What a lease needs to know about a Pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PodFacts {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    /// The `nadipam.io/reservation` annotation.
    pub token: Option<String>,
    /// `Succeeded` or `Failed`: the Pod has finished and will not run again.
    pub finished: Option<String>,
}

impl PodFacts {
    pub(crate) fn of(pod: &Pod) -> PodFacts {
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        PodFacts {
            namespace: pod.namespace().unwrap_or_default(),
            name: pod.name_any(),
            uid: pod.uid().unwrap_or_default(),
            token: pod_token(pod).map(str::to_string),
            finished: phase
                .filter(|p| matches!(*p, "Succeeded" | "Failed"))
                .map(str::to_string),
        }
    }
}

/// What a claim's lease needs to know about its IPAMClaim.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct ClaimFacts {
    /// The claim exists with the UID the lease was reserved under.
    pub exists: bool,
    /// Pods still using the claim's addresses (`namespace/name`); read live only, the cache leaves it empty.
    pub users: Vec<String>,
}

/// What a StatefulSet lease needs to know about its StatefulSet: which ordinals it keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SetFacts {
    pub replicas: i32,
    /// `spec.ordinals.start` (0 unless the StatefulSet starts elsewhere).
    pub start: i32,
}

impl SetFacts {
    pub(crate) fn of(set: &StatefulSet) -> SetFacts {
        let spec = set.spec.as_ref();
        SetFacts {
            // The apiserver defaults replicas to 1.
            replicas: spec.and_then(|s| s.replicas).unwrap_or(1),
            start: spec
                .and_then(|s| s.ordinals.as_ref())
                .and_then(|o| o.start)
                .unwrap_or(0),
        }
    }

    /// Whether the StatefulSet still runs a Pod with this ordinal.
    pub(crate) fn keeps(&self, ordinal: u32) -> bool {
        let ordinal = i64::from(ordinal);
        let start = i64::from(self.start);
        ordinal >= start && ordinal < start + i64::from(self.replicas.max(0))
    }
}

/// Drops everything the controller does not read, so a cache of every Pod in the cluster stays small:
/// identity, the reservation annotation, the IPAMClaim labels, the phase.
pub(crate) fn trim_pod(pod: &mut Pod) {
    let token = pod_token(pod).map(str::to_string);
    let m = &mut pod.metadata;
    m.annotations = token.map(|t| [(keys::RESERVATION.to_string(), t)].into());
    m.labels = m
        .labels
        .take()
        .map(|l| {
            l.into_iter()
                .filter(|(k, _)| k.starts_with(CLAIM_LABEL_PREFIX))
                .collect::<std::collections::BTreeMap<_, _>>()
        })
        .filter(|l| !l.is_empty());
    m.managed_fields = None;
    m.owner_references = None;
    m.finalizers = None;
    pod.spec = None;
    let phase = pod.status.as_ref().and_then(|s| s.phase.clone());
    pod.status = Some(PodStatus {
        phase,
        ..PodStatus::default()
    });
}

/// Keeps a StatefulSet's identity, replicas and ordinals.
pub(crate) fn trim_set(set: &mut StatefulSet) {
    let m = &mut set.metadata;
    m.annotations = None;
    m.labels = None;
    m.managed_fields = None;
    let (replicas, ordinals) = set
        .spec
        .as_ref()
        .map(|s| (s.replicas, s.ordinals.clone()))
        .unwrap_or_default();
    set.spec = Some(StatefulSetSpec {
        replicas,
        ordinals,
        ..StatefulSetSpec::default()
    });
    set.status = None;
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::StatefulSetOrdinals;

    fn pod_json() -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {
                "name": "web-1", "namespace": "ns", "uid": "u1",
                "labels": {"app": "web"},
                "annotations": {"nadipam.io/reservation": "t1", "macvlan.ns.kubernetes.io/ip_address": "10.0.0.5"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web", "uid": "s1", "controller": true}]
            },
            "spec": {"containers": [{"name": "c", "image": "pause"}]},
            "status": {"phase": "Succeeded", "podIP": "10.1.1.1"}
        }))
        .unwrap()
    }

    #[test]
    fn pod_facts_and_trim() {
        let mut pod = pod_json();
        let before = PodFacts::of(&pod);
        assert_eq!(before.token.as_deref(), Some("t1"));
        assert_eq!(before.finished.as_deref(), Some("Succeeded"));
        assert_eq!((before.uid.as_str(), before.name.as_str()), ("u1", "web-1"));
        trim_pod(&mut pod);
        assert_eq!(PodFacts::of(&pod), before, "trimming keeps every fact");
        let v = serde_json::to_value(&pod).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "web-1", "namespace": "ns", "uid": "u1",
                             "annotations": {"nadipam.io/reservation": "t1"}},
                "status": {"phase": "Succeeded"}
            })
        );

        let mut running = pod_json();
        running.status.as_mut().unwrap().phase = Some("Running".into());
        running.metadata.annotations = None;
        let f = PodFacts::of(&running);
        assert_eq!((f.token, f.finished), (None, None));
    }

    #[test]
    fn set_facts_and_trim() {
        let mut set: StatefulSet = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "namespace": "ns", "uid": "s1"},
            "spec": {"replicas": 2, "ordinals": {"start": 3}, "serviceName": "web",
                     "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "pause"}]}}},
            "status": {"replicas": 2}
        }))
        .unwrap();
        let f = SetFacts::of(&set);
        assert_eq!(
            f,
            SetFacts {
                replicas: 2,
                start: 3
            }
        );
        assert!(!f.keeps(2) && f.keeps(3) && f.keeps(4) && !f.keeps(5));
        trim_set(&mut set);
        assert_eq!(SetFacts::of(&set), f);
        assert!(set.status.is_none());
        assert_eq!(
            set.spec.as_ref().unwrap().template,
            Default::default(),
            "the Pod template is dropped"
        );

        set.spec = None;
        assert_eq!(
            SetFacts::of(&set),
            SetFacts {
                replicas: 1,
                start: 0
            }
        );
        let zero = SetFacts {
            replicas: 0,
            start: 0,
        };
        assert!(!zero.keeps(0));
        set.spec = Some(StatefulSetSpec {
            ordinals: Some(StatefulSetOrdinals { start: None }),
            ..StatefulSetSpec::default()
        });
        assert_eq!(SetFacts::of(&set).start, 0);
    }
}
