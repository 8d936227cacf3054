//! Releasing a lease whose holder is gone or done. Every delete is guarded by the lease's UID and
//! resourceVersion, so a lease that changed since the decision (bound meanwhile, or handed to a newer
//! StatefulSet Pod) is never deleted on stale facts.

use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Preconditions};

use super::decide::Release;
use super::error::Error;
use super::facts::PodFacts;
use super::state::Ctl;
use crate::api::IPLease;
use crate::metrics::SubnetLabels;

/// How a guarded delete ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Deleted {
    /// This call deleted the lease.
    Now,
    /// It was already gone.
    Gone,
    /// It changed since it was read; decide again.
    Changed,
}

pub(crate) fn guarded(lease: &IPLease) -> DeleteParams {
    DeleteParams {
        preconditions: Some(Preconditions {
            resource_version: lease.resource_version(),
            uid: lease.uid(),
        }),
        ..DeleteParams::default()
    }
}

/// Deletes `lease` if it is still the version that was read; `why` goes into the error message.
pub(crate) async fn delete(
    api: &Api<IPLease>,
    lease: &IPLease,
    why: &str,
) -> Result<Deleted, Error> {
    let name = lease.name_any();
    match api.delete(&name, &guarded(lease)).await {
        Ok(_) => Ok(Deleted::Now),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(Deleted::Gone),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(Deleted::Changed),
        Err(e) => Err(Error::Lease {
            lease: name,
            action: format!("deleting it ({why})"),
            source: Box::new(e),
        }),
    }
}

/// Releases `lease` for `why`: delete, count, and tell a finished Pod. `Ok(false)`: decide again.
pub(crate) async fn release(
    ctl: &Ctl,
    api: &Api<IPLease>,
    lease: &IPLease,
    why: &Release,
    pod: Option<&PodFacts>,
) -> Result<bool, Error> {
    let text = why.to_string();
    match delete(api, lease, &text).await? {
        Deleted::Now => {
            tracing::info!(lease = %lease.name_any(), ip = %lease.spec.ip, "released: {text}");
            ctl.ctx
                .metrics
                .released
                .get_or_create(&SubnetLabels {
                    subnet: lease.spec.subnet.clone(),
                })
                .inc();
            if matches!(why, Release::PodFinished { .. }) {
                ctl.events.released(lease, why, pod).await;
            }
            Ok(true)
        }
        Deleted::Gone => Ok(true),
        Deleted::Changed => Ok(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deletes_are_guarded_by_uid_and_version() {
        let mut lease: IPLease = serde_json::from_value(serde_json::json!({
            "apiVersion": "nadipam.io/v1", "kind": "IPLease",
            "metadata": {"name": "s.10.0.0.5", "uid": "u1", "resourceVersion": "7"},
            "spec": {"subnet": "s", "ip": "10.0.0.5", "provider": "n.ns", "podNamespace": "ns",
                     "phase": "Bound", "token": "t", "ownerKind": "Pod", "network": "ns/n"}
        }))
        .unwrap();
        let p = guarded(&lease).preconditions.unwrap();
        assert_eq!(
            (p.uid.as_deref(), p.resource_version.as_deref()),
            (Some("u1"), Some("7"))
        );
        lease.metadata.resource_version = None;
        assert_eq!(
            guarded(&lease).preconditions.unwrap().resource_version,
            None
        );
    }
}
