//! Why a reconcile or the leader election failed; each message names the object and the operation.

/// A failed API call of the reconciler. The lease is retried after a pause.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("IPLease {lease}: {action} failed: {source}")]
    Lease {
        lease: String,
        /// What was attempted, e.g. `binding to pod ns/web-0`.
        action: String,
        #[source]
        source: Box<kube::Error>,
    },
    #[error("IPLease {lease}: reading {object} to confirm the release failed: {source}")]
    Read {
        lease: String,
        /// The object read, e.g. `pod ns/web-0` or `pods in namespace ns`.
        object: String,
        #[source]
        source: Box<kube::Error>,
    },
}

/// Leader election could not start or keep going.
#[derive(Debug, thiserror::Error)]
#[error(
    "leader election with Lease {namespace}/{name} failed: {source} (the namespace given by --namespace must \
     exist, and nadipam needs get, create and patch on coordination.k8s.io leases in it)"
)]
pub struct LeaderError {
    pub namespace: String,
    pub name: String,
    #[source]
    pub source: kube_lease_manager::LeaseManagerError,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn not_found() -> kube::Error {
        kube::Error::Api(
            kube::core::Status::failure("namespaces \"nadipam-system\" not found", "NotFound")
                .with_code(404)
                .boxed(),
        )
    }

    #[test]
    fn messages_name_the_object_and_operation() {
        let e = Error::Lease {
            lease: "s.10.0.0.5".into(),
            action: "binding to pod ns/web-0".into(),
            source: Box::new(not_found()),
        };
        let text = e.to_string();
        assert!(
            text.starts_with("IPLease s.10.0.0.5: binding to pod ns/web-0 failed: "),
            "{text}"
        );
        let e = Error::Read {
            lease: "s.10.0.0.5".into(),
            object: "pods in namespace ns".into(),
            source: Box::new(not_found()),
        };
        assert!(e.to_string().starts_with(
            "IPLease s.10.0.0.5: reading pods in namespace ns to confirm the release failed: "
        ));
        let e = LeaderError {
            namespace: "nadipam-system".into(),
            name: "nadipam-controller".into(),
            source: kube_lease_manager::LeaseManagerError::NonexistentLease(
                "nadipam-controller".into(),
            ),
        };
        assert_eq!(
            e.to_string(),
            "leader election with Lease nadipam-system/nadipam-controller failed: Lease resource \
             `nadipam-controller` doesn't exist (the namespace given by --namespace must exist, and nadipam needs get, \
             create and patch on coordination.k8s.io leases in it)"
        );
    }
}
