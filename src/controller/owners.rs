//! Who a lease or a Pod belongs to: the StatefulSet member a lease is kept for, the token a Pod carries. Read
//! by the decisions and the indices alike.

use k8s_openapi::api::core::v1::Pod;

use crate::alloc::statefulset_ordinal;
use crate::annotations::keys;
use crate::api::{IPLease, OwnerKind};

/// The StatefulSet name and ordinal of a StatefulSet lease.
pub(crate) fn set_member(lease: &IPLease) -> Option<(String, u32)> {
    if lease.spec.owner_kind != OwnerKind::StatefulSet {
        return None;
    }
    let pod = lease.spec.pod_name.as_deref()?;
    let ordinal = statefulset_ordinal(pod)?;
    let (set, _) = pod.rsplit_once('-')?;
    Some((set.to_string(), ordinal))
}

/// The reservation token a Pod carries, if nadipam allocated for it.
pub(crate) fn pod_token(pod: &Pod) -> Option<&str> {
    pod.metadata
        .annotations
        .as_ref()?
        .get(keys::RESERVATION)
        .map(String::as_str)
        .filter(|t| !t.is_empty())
}
