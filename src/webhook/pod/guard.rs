//! Pod UPDATE: the annotations nadipam wrote at creation are the allocation the CNI plugin configures, so
//! they may not be changed afterwards. Without this, anyone allowed to patch a Pod could rewrite its
//! `ip_address` to an address held by another Pod (or outside every Subnet its namespace may use) before the
//! sandbox starts, and the plugin would configure it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, Operation};

use crate::annotations::{Shown, keys};
use crate::context::Context;
use crate::webhook::respond;

pub async fn validate(ctx: Arc<Context>, req: AdmissionRequest<Pod>) -> AdmissionResponse {
    let resp = AdmissionResponse::from(&req);
    let (Operation::Update, Some(new), Some(old)) = (&req.operation, &req.object, &req.old_object)
    else {
        return resp;
    };
    let empty = BTreeMap::new();
    let before = old.metadata.annotations.as_ref().unwrap_or(&empty);
    let after = new.metadata.annotations.as_ref().unwrap_or(&empty);
    let label = || {
        label_tampered(
            old.metadata.labels.as_ref().unwrap_or(&empty),
            new.metadata.labels.as_ref().unwrap_or(&empty),
        )
    };
    match tampered(before, after).or_else(label) {
        None => resp,
        Some(change) => {
            let pod = format!(
                "{}/{}",
                req.namespace.as_deref().unwrap_or_default(),
                req.name
            );
            tracing::info!(%pod, key = %change.key, "denied: annotation of an allocated Pod changed");
            respond::refuse(
                &ctx,
                resp,
                "allocation_tampered",
                422,
                format!("pod {pod}: {change}"),
            )
        }
    }
}

/// One changed annotation (or the reservation label) nadipam owns.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Change {
    pub key: String,
    pub before: Option<String>,
    pub after: Option<String>,
    /// The Pod label, not the annotation of that name.
    pub label: bool,
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown = |v: &Option<String>| {
            v.as_deref()
                .map_or("(absent)".to_string(), |v| Shown::new(v).to_string())
        };
        if self.label {
            return write!(
                f,
                "label {} was written by nadipam when the Pod was created and is how admission tells a copied \
                 manifest from a retry; it cannot be changed or removed ({} → {})",
                self.key,
                shown(&self.before),
                shown(&self.after)
            );
        }
        if self.before.is_none() && self.key == keys::RESERVATION {
            return write!(
                f,
                "annotation {} is written by nadipam when it admits a Pod and cannot be added afterwards (→ {}); \
                 create the Pod with its networks instead",
                self.key,
                shown(&self.after)
            );
        }
        write!(
            f,
            "annotation {} was written by nadipam when the Pod was created and records its allocation (its \
             IPLeases); it cannot be changed or removed ({} → {}); delete the Pod and create it again to change its \
             network configuration",
            self.key,
            shown(&self.before),
            shown(&self.after)
        )
    }
}

/// The first annotation nadipam owns on an admitted Pod (one carrying `nadipam.io/reservation`) that differs
/// between `before` and `after`. Owned: the reservation token, and every `<provider>.kubernetes.io/` key of
/// each provider nadipam marked allocated (requests and results alike: both are what the plugin reads).
/// Keys of the bare `ovn` provider are never ours (Kube-OVN writes them for its own network).
pub(crate) fn tampered(
    before: &BTreeMap<String, String>,
    after: &BTreeMap<String, String>,
) -> Option<Change> {
    if before.get(keys::RESERVATION).is_none() {
        // Only nadipam writes a token, when it admits the Pod: added later, it would tie this Pod to another
        // Pod's leases (the controller binds a reservation to the Pod carrying its token).
        return after.get(keys::RESERVATION).map(|t| Change {
            key: keys::RESERVATION.to_string(),
            before: None,
            after: Some(t.clone()),
            label: false,
        });
    }
    let allocated = format!(".kubernetes.io/{}", keys::ALLOCATED);
    let prefixes: Vec<String> = before
        .iter()
        .filter(|(_, v)| v.as_str() == keys::ALLOCATED_TRUE)
        .filter_map(|(k, _)| k.strip_suffix(&allocated))
        .filter(|p| *p != keys::OVN_PROVIDER)
        .map(|p| format!("{p}.kubernetes.io/"))
        .collect();
    let owned =
        |k: &str| k == keys::RESERVATION || prefixes.iter().any(|p| k.starts_with(p.as_str()));
    let names: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    names
        .into_iter()
        .filter(|k| owned(k))
        .find(|k| before.get(*k) != after.get(*k))
        .map(|k| Change {
            key: k.clone(),
            before: before.get(k).cloned(),
            after: after.get(k).cloned(),
            label: false,
        })
}

/// The reservation label of an admitted Pod changed or removed. Admission finds the Pods carrying a token by
/// this label: without it, a copy of the Pod's manifest (same token, same namespace) would pass as a retried
/// admission and be handed the same addresses.
pub(crate) fn label_tampered(
    before: &BTreeMap<String, String>,
    after: &BTreeMap<String, String>,
) -> Option<Change> {
    let was = before.get(keys::RESERVATION)?;
    (after.get(keys::RESERVATION) != Some(was)).then(|| Change {
        key: keys::RESERVATION.to_string(),
        before: Some(was.clone()),
        after: after.get(keys::RESERVATION).cloned(),
        label: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ann(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const IP: &str = "macvlan.default.kubernetes.io/ip_address";

    fn admitted() -> BTreeMap<String, String> {
        ann(&[
            (keys::NETWORKS, "default/macvlan"),
            (keys::RESERVATION, "0c9a8d74"),
            ("macvlan.default.kubernetes.io/allocated", "true"),
            (IP, "172.17.0.11"),
            (
                "macvlan.default.kubernetes.io/mac_address",
                "02:00:00:00:00:01",
            ),
            ("ovn.kubernetes.io/allocated", "true"),
            ("ovn.kubernetes.io/ip_address", "10.16.0.5"),
        ])
    }

    #[test]
    fn the_reservation_label_stays_as_admission_wrote_it() {
        let before = ann(&[(keys::RESERVATION, "0c9a8d74"), ("app", "web")]);
        let mut after = before.clone();
        after.insert("app".into(), "api".into());
        assert_eq!(
            label_tampered(&before, &after),
            None,
            "other labels are free"
        );
        assert_eq!(
            label_tampered(&ann(&[]), &before),
            None,
            "a Pod nadipam did not label"
        );
        after.remove(keys::RESERVATION);
        let change = label_tampered(&before, &after).expect("refused");
        assert_eq!(
            change.to_string(),
            "label nadipam.io/reservation was written by nadipam when the Pod was created and is how admission \
             tells a copied manifest from a retry; it cannot be changed or removed (\"0c9a8d74\" → (absent))"
        );
        after.insert(keys::RESERVATION.into(), "other".into());
        assert!(label_tampered(&before, &after).is_some(), "changed");
    }

    #[test]
    fn changing_the_allocation_is_refused() {
        let before = admitted();
        let mut after = before.clone();
        after.insert(IP.into(), "172.17.0.50".into());
        let change = tampered(&before, &after).expect("refused");
        assert_eq!(
            change.to_string(),
            "annotation macvlan.default.kubernetes.io/ip_address was written by nadipam when the Pod was created and \
             records its allocation (its IPLeases); it cannot be changed or removed (\"172.17.0.11\" → \
             \"172.17.0.50\"); delete the Pod and create it again to change its network configuration"
        );
        let mut removed = before.clone();
        removed.remove(keys::RESERVATION);
        assert_eq!(
            tampered(&before, &removed).map(|c| c.key),
            Some(keys::RESERVATION.to_string())
        );
        let mut added = before.clone();
        added.insert(
            "macvlan.default.kubernetes.io/ip_address.net2".into(),
            "172.17.0.9".into(),
        );
        let c = tampered(&before, &added).expect("refused");
        assert!(c.to_string().contains("(absent) → \"172.17.0.9\""), "{c}");
    }

    #[test]
    fn adding_a_token_later_is_refused() {
        let before = ann(&[("team", "blue")]);
        let after = ann(&[("team", "blue"), (keys::RESERVATION, "0c9a8d74")]);
        let c = tampered(&before, &after).expect("refused");
        assert_eq!(
            c.to_string(),
            "annotation nadipam.io/reservation is written by nadipam when it admits a Pod and cannot be added \
             afterwards (→ \"0c9a8d74\"); create the Pod with its networks instead"
        );
    }

    #[test]
    fn other_changes_pass() {
        let before = admitted();
        let mut after = before.clone();
        after.insert("team".into(), "blue".into());
        after.insert("ovn.kubernetes.io/ip_address".into(), "10.16.0.6".into());
        assert_eq!(tampered(&before, &after), None);
        // A Pod nadipam did not admit is not guarded.
        let mut plain = before.clone();
        plain.remove(keys::RESERVATION);
        let mut changed = plain.clone();
        changed.insert(IP.into(), "172.17.0.50".into());
        assert_eq!(tampered(&plain, &changed), None);
    }
}
