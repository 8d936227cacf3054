//! Every annotation key nadipam reads or writes, in one place, and the recognisers built on them.

use std::collections::BTreeMap;

/// Multus: secondary networks, as `ns/name@if` text or a JSON list of network selection elements.
pub const NETWORKS: &str = "k8s.v1.cni.cncf.io/networks";
/// Multus: the network that replaces the cluster default (the Pod's `eth0`).
pub const DEFAULT_NETWORK: &str = "v1.multus-cni.io/default-network";
/// Spiderpool: pools for the first interface, `{"ipv4":[..],"ipv6":[..]}`.
pub const SPIDER_IPPOOL: &str = "ipam.spidernet.io/ippool";
/// Spiderpool: pools per interface; takes precedence over [`SPIDER_IPPOOL`].
pub const SPIDER_IPPOOLS: &str = "ipam.spidernet.io/ippools";
/// nadipam: the token of the reservation the webhook made for this Pod.
pub const RESERVATION: &str = "nadipam.io/reservation";

/// Kube-OVN's provider for the primary network; also the suffix of kube-ovn-typed NAD providers.
pub const OVN_PROVIDER: &str = "ovn";
/// The domain between a provider and a field: `<provider>.kubernetes.io/<field>`.
pub(crate) const PROVIDER_DOMAIN: &str = ".kubernetes.io/";

/// Provider fields a user writes (request) ...
pub const IP_ADDRESS: &str = "ip_address";
pub const MAC_ADDRESS: &str = "mac_address";
pub const IP_POOL: &str = "ip_pool";
pub const LOGICAL_SWITCH: &str = "logical_switch";
pub const ROUTES: &str = "routes";
/// ... and the ones only nadipam writes (result).
pub const CIDR: &str = "cidr";
pub const GATEWAY: &str = "gateway";
pub const ALLOCATED: &str = "allocated";
/// The value of [`ALLOCATED`] once the addresses are written.
pub const ALLOCATED_TRUE: &str = "true";

/// Fields a user may set to ask for something.
pub(crate) const REQUEST_FIELDS: [&str; 5] =
    [IP_ADDRESS, MAC_ADDRESS, IP_POOL, LOGICAL_SWITCH, ROUTES];
/// Fields that may carry a `.<ifname>` suffix.
pub(crate) const PER_INTERFACE_FIELDS: [&str; 2] = [IP_ADDRESS, MAC_ADDRESS];

/// `<provider>.kubernetes.io/<field>`.
pub fn provider_key(provider: &str, field: &str) -> String {
    format!("{provider}{PROVIDER_DOMAIN}{field}")
}

/// `<provider>.kubernetes.io/<field>.<ifname>`: the variant used when one network is attached twice.
pub fn interface_key(provider: &str, field: &str, ifname: &str) -> String {
    format!("{provider}{PROVIDER_DOMAIN}{field}.{ifname}")
}

/// A recognised provider request key, split into its parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProviderKey<'a> {
    pub provider: &'a str,
    pub field: &'static str,
    pub ifname: Option<&'a str>,
}

/// Splits `<provider>.kubernetes.io/<field>[.<ifname>]` when the field is one a user may set; `None` for any
/// other key (including result keys such as `cidr`, and unrelated `*.kubernetes.io/*` keys).
pub(crate) fn split_request_key(key: &str) -> Option<ProviderKey<'_>> {
    let (provider, rest) = key.split_once(PROVIDER_DOMAIN)?;
    if provider.is_empty() || provider.contains('/') {
        return None;
    }
    let (field, ifname) = match rest.split_once('.') {
        Some((f, i)) => (f, Some(i)),
        None => (rest, None),
    };
    let field = *REQUEST_FIELDS.iter().find(|f| **f == field)?;
    if ifname.is_some() && !PER_INTERFACE_FIELDS.contains(&field) {
        return None;
    }
    Some(ProviderKey {
        provider,
        field,
        ifname,
    })
}

/// True when the annotations ask nadipam (or a dialect it speaks) for anything: Multus networks, a default
/// network, Spiderpool pools, or any `<provider>.kubernetes.io/` request field.
pub fn has_our_annotations(annotations: &BTreeMap<String, String>) -> bool {
    annotations.keys().any(|k| {
        matches!(
            k.as_str(),
            NETWORKS | DEFAULT_NETWORK | SPIDER_IPPOOL | SPIDER_IPPOOLS
        ) || split_request_key(k).is_some()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_keys() {
        assert_eq!(
            provider_key("macvlan.default", IP_ADDRESS),
            "macvlan.default.kubernetes.io/ip_address"
        );
        assert_eq!(
            interface_key("attachnet.default.ovn", MAC_ADDRESS, "net2"),
            "attachnet.default.ovn.kubernetes.io/mac_address.net2"
        );
    }

    #[test]
    fn splits_request_keys() {
        let k = split_request_key("attachnet.default.ovn.kubernetes.io/routes").unwrap();
        assert_eq!(
            (k.provider, k.field, k.ifname),
            ("attachnet.default.ovn", ROUTES, None)
        );
        let k = split_request_key("macvlan.default.kubernetes.io/ip_address.net1").unwrap();
        assert_eq!(
            (k.provider, k.field, k.ifname),
            ("macvlan.default", IP_ADDRESS, Some("net1"))
        );
        for other in [
            "app.kubernetes.io/name",
            "kubernetes.io/ip_address",
            "macvlan.default.kubernetes.io/cidr",
            "macvlan.default.kubernetes.io/routes.net1",
            "a/b.kubernetes.io/ip_address",
        ] {
            assert!(split_request_key(other).is_none(), "{other}");
        }
    }

    #[test]
    fn recognises_our_annotations() {
        let with = |k: &str| BTreeMap::from([(k.to_string(), "x".to_string())]);
        assert!(has_our_annotations(&with(NETWORKS)));
        assert!(has_our_annotations(&with(DEFAULT_NETWORK)));
        assert!(has_our_annotations(&with(SPIDER_IPPOOL)));
        assert!(has_our_annotations(&with(SPIDER_IPPOOLS)));
        assert!(has_our_annotations(&with("ovn.kubernetes.io/ip_pool")));
        assert!(has_our_annotations(&with(
            "macvlan.default.kubernetes.io/mac_address.net1"
        )));
        assert!(!has_our_annotations(&with("app.kubernetes.io/name")));
        assert!(!has_our_annotations(&with(
            "macvlan.default.kubernetes.io/allocated"
        )));
        assert!(!has_our_annotations(&BTreeMap::new()));
    }
}
