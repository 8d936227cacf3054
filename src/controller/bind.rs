//! Binding: the lease records the Pod that holds it (name, UID) and turns Bound.
//!
//! No ownerReference is written: an IPLease is cluster-scoped and Kubernetes' garbage collector does not
//! delete a cluster-scoped object for a namespaced owner (it reports `OwnerRefInvalidNamespace` instead), so
//! the controller itself releases the lease when the Pod goes.

use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};

use super::error::Error;
use super::facts::PodFacts;
use crate::api::{IPLease, LeasePhase};

/// The merge patch that binds `lease` to `pod`. It carries the lease's resourceVersion, so it fails with a
/// conflict if the lease changed since it was read (e.g. the webhook handed a StatefulSet lease to a newer Pod).
pub(crate) fn bind_patch(lease: &IPLease, pod: &PodFacts) -> serde_json::Value {
    serde_json::json!({
        "metadata": { "resourceVersion": lease.resource_version() },
        "spec": {
            "podName": pod.name,
            "podUid": pod.uid,
            "phase": LeasePhase::Bound,
        },
    })
}

/// Applies [`bind_patch`]. `Ok(false)`: the lease changed meanwhile (conflict) or is gone; look again.
pub(crate) async fn bind(
    api: &Api<IPLease>,
    lease: &IPLease,
    pod: &PodFacts,
) -> Result<bool, Error> {
    let name = lease.name_any();
    match api
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(bind_patch(lease, pod)),
        )
        .await
    {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 409 || s.code == 404 => Ok(false),
        Err(e) => Err(Error::Lease {
            lease: name,
            action: format!("binding to pod {}/{}", pod.namespace, pod.name),
            source: Box::new(e),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::OwnerKind;
    use crate::controller::decide::tests::lease;

    #[test]
    fn patch_sets_holder_and_guards_the_version() {
        let mut lease = lease(OwnerKind::Pod, LeasePhase::Reserved, None, None);
        lease.metadata.resource_version = Some("42".into());
        let pod = PodFacts {
            namespace: "ns".into(),
            name: "web-x".into(),
            uid: "u1".into(),
            token: Some("t".into()),
            finished: None,
        };
        assert_eq!(
            bind_patch(&lease, &pod),
            serde_json::json!({
                "metadata": {"resourceVersion": "42"},
                "spec": {"podName": "web-x", "podUid": "u1", "phase": "Bound"}
            })
        );
    }
}
