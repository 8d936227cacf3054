//! The reservation token a Pod already carries when it reaches the webhook.
//!
//! The apiserver gives every webhook call its own request UID, so a reinvocation (a mutating webhook ordered
//! after nadipam changed the Pod, and `reinvocationPolicy: IfNeeded` calls nadipam again) arrives with a new
//! UID and a Pod that already carries nadipam's token and results. It is recognised by the token's leases,
//! read live: they exist, were made for this namespace (and this Pod name, when the Pod has one), are not
//! bound to a Pod, and no stored Pod carries the token (the Pod of a reinvocation is not stored yet). The
//! admission then continues under that token and finds its own leases again.
//!
//! Any other Pod carrying a token with leases is a copy of a Pod nadipam admitted, and is refused: the token
//! (and the results beside it) would otherwise tie the copy to another Pod's addresses. A token without leases
//! (a manifest saved from a Pod that is gone) is dropped, and the results it carries are read as requests.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{Api, ListParams};

use crate::annotations::keys;
use crate::api::{IPLease, LeasePhase, token_selector};
use crate::context::Context;
use crate::webhook::denial::Denial;

/// What the token a Pod arrives with means.
pub(crate) enum Carried {
    /// No token, or one nothing holds: allocate under the request's UID.
    Fresh,
    /// This admission's own earlier call: continue under `token`; `leases` are what it reserved.
    Reinvoked {
        token: String,
        leases: Vec<Arc<IPLease>>,
    },
}

/// Judges the token in `ann` for a Pod `namespace/name` (`name` empty for generateName).
pub(crate) async fn judge(
    ctx: &Context,
    namespace: &str,
    name: &str,
    ann: &std::collections::BTreeMap<String, String>,
) -> Result<Carried, Denial> {
    let Some(token) = ann
        .get(keys::RESERVATION)
        .map(|t| t.trim())
        .filter(|t| is_label_value(t))
    else {
        // No token, or one that no lease can carry (every lease has it as a label value).
        return Ok(Carried::Fresh);
    };
    let api_error = |e| Denial::TokenApi {
        token: token.to_string(),
        source: Box::new(e),
    };
    let leases = live_leases(ctx, token).await.map_err(api_error)?;
    if leases.is_empty() {
        return Ok(Carried::Fresh);
    }
    let held = |holder: String| Denial::TokenHeld {
        token: token.to_string(),
        holder,
    };
    if let Some(l) = leases.iter().find(|l| !made_for(l, namespace, name)) {
        return Err(held(l.holder()));
    }
    // A stored Pod carrying the token (nadipam labels every Pod it admits with it).
    let stored = Api::<Pod>::namespaced(ctx.client.clone(), namespace)
        .list(
            &ListParams::default()
                .labels(&format!("{}={token}", keys::RESERVATION))
                .limit(1),
        )
        .await
        .map_err(api_error)?;
    if let Some(pod) = stored.items.first() {
        return Err(held(format!("pod {namespace}/{}", pod.name_any())));
    }
    Ok(Carried::Reinvoked {
        token: token.to_string(),
        leases,
    })
}

/// The annotations of a Pod carrying nadipam's results (reinvoked, a reinvoked dry run, or a saved manifest)
/// as its creator wrote them, as far as they matter to the plan: the
/// `ip_address` nadipam wrote next to an `ip_pool` request (the same key is a request when the user writes
/// it, and a fixed address together with a pool is refused) is dropped. Every other result nadipam wrote
/// reads back as the request it answered (the same address, MAC, Subnet and routes).
pub(crate) fn requests_of_reinvoked(
    ann: &std::collections::BTreeMap<String, String>,
) -> std::collections::BTreeMap<String, String> {
    let ip_address = format!("{}{}", keys::PROVIDER_DOMAIN, keys::IP_ADDRESS);
    let ip_pool = format!("{}{}", keys::PROVIDER_DOMAIN, keys::IP_POOL);
    ann.iter()
        .filter(|(k, _)| {
            let Some((provider, rest)) = k.split_once(ip_address.as_str()) else {
                return true;
            };
            // `rest` is empty, or `.<ifname>` for a per-interface key.
            !ann.contains_key(&format!("{provider}{ip_pool}{rest}"))
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Whether a lease is one a not-yet-stored Pod `namespace/name` may have reserved: same namespace, same
/// name (or none on either side, for generateName), and not bound to a stored Pod.
fn made_for(l: &IPLease, namespace: &str, name: &str) -> bool {
    let lease_name = l.spec.pod_name.as_deref().unwrap_or_default();
    l.spec.pod_namespace == namespace
        && lease_name == name
        && l.spec.phase == LeasePhase::Reserved
        && l.spec.pod_uid.is_none()
}

/// Kubernetes' label value syntax: at most 63 characters, alphanumerics and `-_.` inside, alphanumeric ends.
pub(crate) fn is_label_value(v: &str) -> bool {
    let ok_end = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    !v.is_empty()
        && v.len() <= 63
        && ok_end(v.chars().next())
        && ok_end(v.chars().last())
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// The leases reserved under `token`, read live (the cache may not show a lease created a moment ago).
pub(super) async fn live_leases(
    ctx: &Context,
    token: &str,
) -> Result<Vec<Arc<IPLease>>, kube::Error> {
    Ok(Api::<IPLease>::all(ctx.client.clone())
        .list(&ListParams::default().labels(&token_selector(token)))
        .await?
        .items
        .into_iter()
        .map(Arc::new)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::OwnerKind;

    /// The controller tests' lease of namespace `ns`, in `ns` instead of theirs.
    fn lease(ns: &str, pod: Option<&str>, phase: LeasePhase, uid: Option<&str>) -> IPLease {
        let mut l = crate::controller::decide::tests::lease(OwnerKind::Pod, phase, pod, uid);
        l.spec.pod_namespace = ns.into();
        l
    }

    #[test]
    fn only_an_unbound_reservation_of_this_pod_is_its_own() {
        let r = LeasePhase::Reserved;
        assert!(made_for(&lease("ns", None, r, None), "ns", ""));
        assert!(made_for(&lease("ns", Some("a"), r, None), "ns", "a"));
        assert!(!made_for(&lease("ns", Some("a"), r, None), "ns", "b"));
        assert!(!made_for(&lease("ns", Some("a"), r, None), "ns", ""));
        assert!(!made_for(&lease("ns", None, r, None), "ns", "a"));
        assert!(!made_for(&lease("other", None, r, None), "ns", ""));
        assert!(!made_for(
            &lease("ns", Some("a"), LeasePhase::Bound, Some("u")),
            "ns",
            "a"
        ));
    }

    #[test]
    fn a_reinvoked_pods_own_address_next_to_its_pool_request_is_not_a_request() {
        let ann: std::collections::BTreeMap<String, String> = [
            ("n.ns.kubernetes.io/ip_pool", "10.0.0.5,10.0.0.6"),
            ("n.ns.kubernetes.io/ip_address", "10.0.0.5"),
            ("n.ns.kubernetes.io/ip_pool.net2", "10.0.0.7"),
            ("n.ns.kubernetes.io/ip_address.net2", "10.0.0.7"),
            ("m.ns.kubernetes.io/ip_address", "10.1.0.5"),
            ("m.ns.kubernetes.io/mac_address", "02:00:00:00:00:01"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let kept: Vec<String> = requests_of_reinvoked(&ann).into_keys().collect();
        assert_eq!(
            kept,
            [
                "m.ns.kubernetes.io/ip_address",
                "m.ns.kubernetes.io/mac_address",
                "n.ns.kubernetes.io/ip_pool",
                "n.ns.kubernetes.io/ip_pool.net2"
            ]
        );
    }

    #[test]
    fn label_values() {
        assert!(is_label_value("0c9a8d74-9cb7-44dd-b98e-09fd62def2f4"));
        assert!(!is_label_value(""));
        assert!(!is_label_value("-a"));
        assert!(!is_label_value("a b"));
        assert!(!is_label_value(&"a".repeat(64)));
    }

    #[test]
    fn a_copied_token_is_refused_naming_its_holder_and_the_fix() {
        let d = Denial::TokenHeld {
            token: "t1".into(),
            holder: "pod ns/web-1".into(),
        };
        assert_eq!(
            d.to_string(),
            "annotation nadipam.io/reservation: reservation t1 belongs to pod ns/web-1, not to this Pod; a Pod \
             manifest copied from another Pod must not carry nadipam's annotations: remove nadipam.io/reservation \
             and the <provider>.kubernetes.io/ annotations nadipam wrote"
        );
        assert_eq!((d.reason(), d.code()), ("reservation_held", 409));
    }
}
