//! Which NetworkAttachmentDefinitions are nadipam's. Multus has networks nadipam never serves: NADs with
//! another IPAM, and config-file-backed NADs (empty spec; Multus reads the config on each node by the NAD's
//! name), such as the cluster default network Spiderpool's install creates. NAD writes, Pod admission and
//! workload validation all ask this one place, so a NAD is judged the same way wherever it is met.

use std::sync::Arc;

use crate::annotations::NetworkRef;
use crate::api::{IPPool, NadError, NadIpam, NetworkAttachmentDefinition, OUR_IPAM_TYPES, Subnet};

/// The NAD's IPAM settings when nadipam serves it, `None` when the NAD is not nadipam's (then it passes
/// untouched). A NAD is nadipam's when its IPAM (or Kube-OVN-type plugin) is `nadipam` or `kube-ovn`; a NAD
/// whose config cannot be read (empty, not JSON) is nadipam's only when `served` says a Subnet or IPPool names
/// it or the config mentions one of those types, and is then refused with the reason it cannot be read.
/// `provider_required`: a nadipam NAD without a provider is refused (NAD writes) rather than given its own.
pub(crate) fn judge(
    nad: &NetworkAttachmentDefinition,
    served: impl FnOnce() -> bool,
    provider_required: bool,
) -> Result<Option<NadIpam>, NadError> {
    let view = match nad.ipam_view() {
        Ok(view) if view.is_ours() => view,
        Ok(_) => return Ok(None),
        Err(e) if mentions_ours(&nad.spec.config) || served() => return Err(e),
        Err(_) => return Ok(None),
    };
    nad.check_provider(&view, provider_required)?;
    Ok(Some(view))
}

/// True when the raw config names one of nadipam's IPAM types: a config that does, but cannot be read, was
/// meant for nadipam. The same substrings select NADs for the NAD webhook (`config::NAD_MATCH`).
fn mentions_ours(config: &str) -> bool {
    OUR_IPAM_TYPES.iter().any(|t| config.contains(t))
}

/// True when nadipam is asked to serve `network`: a Subnet's `spec.provider` is its provider
/// (`<name>.<namespace>` or `<name>.<namespace>.ovn`) or an IPPool's `spec.multusName` lists it.
pub(crate) fn served(network: &NetworkRef, subnets: &[Arc<Subnet>], pools: &[Arc<IPPool>]) -> bool {
    let (plain, ovn, key) = (
        network.provider(),
        network.ovn_provider(),
        network.to_string(),
    );
    subnets
        .iter()
        .any(|s| s.spec.provider == plain || s.spec.provider == ovn)
        || pools.iter().any(|p| p.spec.multus_name.contains(&key))
}

/// The NAD's `<namespace>/<name>`.
pub(crate) fn network_of(nad: &NetworkAttachmentDefinition) -> NetworkRef {
    NetworkRef {
        namespace: nad.metadata.namespace.clone().unwrap_or_default(),
        name: nad.metadata.name.clone().unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{IPPoolSpec, SubnetSpec};

    fn subnet(provider: &str) -> Arc<Subnet> {
        Arc::new(Subnet::new(
            "s",
            serde_json::from_value::<SubnetSpec>(
                serde_json::json!({"provider": provider, "cidrBlock": "10.0.0.0/24"}),
            )
            .expect("subnet spec"),
        ))
    }

    fn pool(multus: &[&str]) -> Arc<IPPool> {
        Arc::new(IPPool::new(
            "p",
            serde_json::from_value::<IPPoolSpec>(
                serde_json::json!({"subnet": "s", "ips": ["10.0.0.5"], "multusName": multus}),
            )
            .expect("pool spec"),
        ))
    }

    fn net(ns: &str, name: &str) -> NetworkRef {
        NetworkRef {
            namespace: ns.into(),
            name: name.into(),
        }
    }

    #[test]
    fn served_by_a_subnet_provider_or_a_pool() {
        let ovs = net("kube-system", "ovs-conf");
        assert!(!served(&ovs, &[], &[]));
        assert!(served(&ovs, &[subnet("ovs-conf.kube-system")], &[]));
        assert!(served(&ovs, &[subnet("ovs-conf.kube-system.ovn")], &[]));
        assert!(!served(&ovs, &[subnet("ovs-conf.default")], &[]));
        assert!(served(&ovs, &[], &[pool(&["kube-system/ovs-conf"])]));
        assert!(!served(&ovs, &[], &[pool(&["default/ovs-conf"])]));
    }

    #[test]
    fn only_nadipam_networks_are_judged() {
        let nad =
            |config: &str| NetworkAttachmentDefinition::new("kube-system", "ovs-conf", config);
        let yes = || true;
        let no = || false;
        // Config-file-backed and foreign-IPAM NADs pass unless nadipam is asked to serve them.
        assert_eq!(judge(&nad(""), no, true), Ok(None));
        assert_eq!(judge(&nad("  "), no, true), Ok(None));
        assert_eq!(judge(&nad("{not json"), no, true), Ok(None));
        let host_local =
            r#"{"type":"macvlan","ipam":{"type":"host-local","subnet":"10.1.0.0/24"}}"#;
        assert_eq!(judge(&nad(host_local), yes, true), Ok(None));
        assert_eq!(
            judge(&nad(""), yes, true).map_err(|e| e.to_string()),
            Err(
                "NetworkAttachmentDefinition kube-system/ovs-conf: spec.config is empty: nadipam reads the IPAM \
                 type and provider from it, so a NAD whose config lives in a file on each node cannot use \
                 nadipam; put the CNI configuration in spec.config"
                    .to_string()
            )
        );
        // A config naming nadipam that cannot be read was meant for nadipam.
        assert_eq!(
            judge(&nad(r#"{"type":"ovs","ipam":{"type":"nadipam"}"#), no, true)
                .map_err(|e| e.to_string()),
            Err(
                "NetworkAttachmentDefinition kube-system/ovs-conf: spec.config is not valid JSON (EOF while \
                 parsing an object at line 1 column 39); expected a CNI configuration such as \
                 {\"cniVersion\":\"0.3.1\",\"type\":\"macvlan\",\"ipam\":{\"type\":\"nadipam\"}}"
                    .to_string()
            )
        );
        // nadipam's own: the provider rules apply, a missing provider only where it is required.
        let missing = r#"{"type":"ovs","ipam":{"type":"nadipam"}}"#;
        assert!(judge(&nad(missing), no, false).is_ok_and(|v| v.is_some()));
        assert_eq!(
            judge(&nad(missing), no, true).map_err(|e| e.to_string()),
            Err(
                "NetworkAttachmentDefinition kube-system/ovs-conf: spec.config ipam.provider is missing; nadipam \
                 finds the Subnet by it: set it to \"ovs-conf.kube-system\" (or \"ovs-conf.kube-system.ovn\")"
                    .to_string()
            )
        );
        let foreign = r#"{"type":"kube-ovn","provider":"net.tenant-a"}"#;
        for required in [true, false] {
            assert_eq!(
                judge(&nad(foreign), no, required).map_err(|e| e.to_string()),
                Err(
                    "NetworkAttachmentDefinition kube-system/ovs-conf: spec.config provider \"net.tenant-a\" is \
                     not this NAD's provider; a NAD may only claim its own: \"ovs-conf.kube-system\" or \
                     \"ovs-conf.kube-system.ovn\""
                        .to_string()
                )
            );
        }
        let own =
            r#"{"type":"ovs","ipam":{"type":"nadipam","provider":"ovs-conf.kube-system.ovn"}}"#;
        assert!(judge(&nad(own), no, true).is_ok_and(|v| v.is_some()));
    }
}
