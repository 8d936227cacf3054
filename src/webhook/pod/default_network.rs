//! The cluster default network (`--default-network`). Multus puts every Pod that names no
//! `v1.multus-cni.io/default-network` on its cluster default network (eth0); when that network is nadipam's,
//! the Pod needs an address there as if it had named it. Off unless set.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;

use crate::annotations::{NetworkRef, keys};
use crate::context::Settings;

/// The network to add as the Pod's default network, if any: the setting, for a Pod that names no default
/// network itself, does not use the host's network (Multus leaves those alone) and runs neither in
/// kube-system nor in nadipam's own namespace (the webhook configuration already keeps those out; checked
/// again for registrations made by hand).
pub(crate) fn implied<'a>(
    settings: &'a Settings,
    pod: &Pod,
    namespace: &str,
    ann: &BTreeMap<String, String>,
) -> Option<&'a NetworkRef> {
    let network = settings.default_network.as_ref()?;
    let host_network = pod
        .spec
        .as_ref()
        .and_then(|s| s.host_network)
        .unwrap_or(false);
    let excluded = namespace == "kube-system" || namespace == settings.namespace;
    (!host_network && !excluded && !ann.contains_key(keys::DEFAULT_NETWORK)).then_some(network)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(host_network: Option<bool>) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c"}], "hostNetwork": host_network}
        }))
        .expect("pod literal")
    }

    #[test]
    fn only_where_multus_would_use_the_cluster_default() {
        let off = Settings::default();
        let on = Settings {
            default_network: "kube-system/ovs-conf".parse().ok(),
            ..Settings::default()
        };
        let none = BTreeMap::new();
        let ovs = on.default_network.as_ref();
        assert_eq!(implied(&off, &pod(None), "default", &none), None);
        assert_eq!(implied(&on, &pod(None), "default", &none), ovs);
        assert_eq!(implied(&on, &pod(Some(false)), "default", &none), ovs);
        assert_eq!(implied(&on, &pod(Some(true)), "default", &none), None);
        assert_eq!(implied(&on, &pod(None), "kube-system", &none), None);
        assert_eq!(implied(&on, &pod(None), "nadipam-system", &none), None);
        // Secondary networks do not replace the default one; a default network of the Pod's own does.
        let secondary = BTreeMap::from([(keys::NETWORKS.to_string(), "macvlan".to_string())]);
        assert_eq!(implied(&on, &pod(None), "default", &secondary), ovs);
        let own = BTreeMap::from([(
            keys::DEFAULT_NETWORK.to_string(),
            "default/macvlan".to_string(),
        )]);
        assert_eq!(implied(&on, &pod(None), "default", &own), None);
    }
}
