//! Kubernetes Events that tell users what happened to their addresses: `Allocated` on the Pod when its lease
//! is bound (only with `--allocation-events`: one more write per Pod), `Released` on a finished Pod, and a
//! `Reclaimed` Warning on the lease when a reservation whose Pod never appeared is taken back. Publishing is
//! best effort: a lost Event never fails a reconcile.

use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Client, ResourceExt};

use super::decide::Release;
use super::facts::PodFacts;
use crate::api::IPLease;

/// The reporting controller named in every Event.
pub(crate) const REPORTER: &str = "nadipam-controller";

pub(crate) struct Events {
    recorder: Recorder,
    /// Whether [`Events::allocated`] publishes (`Settings::allocation_events`).
    allocated: bool,
}

/// `Allocated 172.17.0.11 (default/macvlan) from subnet macvlan`.
pub(crate) fn allocated_note(lease: &IPLease) -> String {
    format!(
        "Allocated {} ({}) from subnet {}",
        lease.spec.ip, lease.spec.network, lease.spec.subnet
    )
}

pub(crate) fn released_note(lease: &IPLease, why: &Release) -> String {
    format!(
        "Released {} ({}) to subnet {}: {why}",
        lease.spec.ip, lease.spec.network, lease.spec.subnet
    )
}

pub(crate) fn reclaimed_note(lease: &IPLease, age: Duration) -> String {
    format!(
        "Reclaimed {} of subnet {}: reserved {}s ago for a pod in namespace {} (reservation {}), and no pod \
         carries it; its creation was probably rejected after nadipam reserved the address, or the pod was \
         deleted while no controller was running",
        lease.spec.ip,
        lease.spec.subnet,
        age.as_secs(),
        lease.spec.pod_namespace,
        lease.spec.token
    )
}

fn pod_ref(pod: &PodFacts) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Pod".into()),
        name: Some(pod.name.clone()),
        namespace: Some(pod.namespace.clone()),
        uid: Some(pod.uid.clone()),
        ..ObjectReference::default()
    }
}

fn lease_ref(lease: &IPLease) -> ObjectReference {
    ObjectReference {
        api_version: Some("nadipam.io/v1".into()),
        kind: Some("IPLease".into()),
        name: Some(lease.name_any()),
        uid: lease.uid(),
        ..ObjectReference::default()
    }
}

impl Events {
    pub(crate) fn new(client: Client, identity: &str, allocated: bool) -> Events {
        let reporter = Reporter {
            controller: REPORTER.into(),
            instance: Some(identity.to_string()),
        };
        Events {
            recorder: Recorder::new(client, reporter),
            allocated,
        }
    }

    async fn publish(&self, event: Event, regarding: &ObjectReference) {
        if let Err(e) = self.recorder.publish(&event, regarding).await {
            tracing::debug!(reason = %event.reason, object = ?regarding.name, error = %e, "could not publish an Event");
        }
    }

    pub(crate) async fn allocated(&self, lease: &IPLease, pod: &PodFacts) {
        if !self.allocated {
            return;
        }
        let event = Event {
            type_: EventType::Normal,
            reason: "Allocated".into(),
            note: Some(allocated_note(lease)),
            action: "Bind".into(),
            secondary: Some(lease_ref(lease)),
        };
        self.publish(event, &pod_ref(pod)).await;
    }

    /// On the Pod, when it still exists to carry the Event (it finished).
    pub(crate) async fn released(&self, lease: &IPLease, why: &Release, pod: Option<&PodFacts>) {
        let Some(pod) = pod else { return };
        let event = Event {
            type_: EventType::Normal,
            reason: "Released".into(),
            note: Some(released_note(lease, why)),
            action: "Release".into(),
            secondary: Some(lease_ref(lease)),
        };
        self.publish(event, &pod_ref(pod)).await;
    }

    pub(crate) async fn reclaimed(&self, lease: &IPLease, age: Duration) {
        let event = Event {
            type_: EventType::Warning,
            reason: "Reclaimed".into(),
            note: Some(reclaimed_note(lease, age)),
            action: "Reclaim".into(),
            secondary: None,
        };
        self.publish(event, &lease_ref(lease)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{IPLeaseSpec, LeasePhase, OwnerKind};

    fn lease() -> IPLease {
        IPLease::new(
            "macvlan.172.17.0.11",
            IPLeaseSpec {
                subnet: "macvlan".into(),
                ip: "172.17.0.11".into(),
                mac: None,
                provider: "macvlan.default".into(),
                interface: None,
                pod_namespace: "default".into(),
                pod_name: None,
                pod_uid: None,
                phase: LeasePhase::Reserved,
                token: "0c9a8d74".into(),
                owner_kind: OwnerKind::Pod,
                claim: None,
                pool: None,
                network: "default/macvlan".into(),
            },
        )
    }

    #[test]
    fn notes_name_address_network_and_subnet() {
        let l = lease();
        assert_eq!(
            allocated_note(&l),
            "Allocated 172.17.0.11 (default/macvlan) from subnet macvlan"
        );
        let why = Release::PodFinished {
            namespace: "default".into(),
            pod: "job-x".into(),
            phase: "Succeeded".into(),
        };
        assert_eq!(
            released_note(&l, &why),
            "Released 172.17.0.11 (default/macvlan) to subnet macvlan: pod default/job-x has finished (phase Succeeded)"
        );
        assert_eq!(
            reclaimed_note(&l, Duration::from_secs(75)),
            "Reclaimed 172.17.0.11 of subnet macvlan: reserved 75s ago for a pod in namespace default (reservation \
             0c9a8d74), and no pod carries it; its creation was probably rejected after nadipam reserved the \
             address, or the pod was deleted while no controller was running"
        );
    }

    #[test]
    fn references() {
        let r = lease_ref(&lease());
        assert_eq!(r.kind.as_deref(), Some("IPLease"));
        assert_eq!(r.namespace, None, "IPLeases are cluster-scoped");
        let p = pod_ref(&PodFacts {
            namespace: "ns".into(),
            name: "p".into(),
            uid: "u".into(),
            token: None,
            finished: None,
        });
        assert_eq!(
            (p.kind.as_deref(), p.namespace.as_deref(), p.uid.as_deref()),
            (Some("Pod"), Some("ns"), Some("u"))
        );
    }
}
