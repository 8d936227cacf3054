//! What the migration reads from the cluster, as plain data: the Pods (the few facts a holder needs), the
//! nadipam objects that already exist, and the NADs. The pure core decides from this alone; `gather.rs` fills it.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use serde_json::Value;

use crate::alloc::statefulset_ordinal;
use crate::annotations::keys;
use crate::api::{IPLease, IPPool, NetworkAttachmentDefinition, Subnet};

/// Multus' record of a Pod's attachments and their addresses.
pub(crate) const NETWORK_STATUS: &str = "k8s.v1.cni.cncf.io/network-status";
/// Multus' request annotation.
pub(crate) const NETWORKS: &str = "k8s.v1.cni.cncf.io/networks";

/// A Pod as a holder of addresses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct PodInfo {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    /// nadipam's reservation token, when nadipam admitted the Pod.
    pub token: Option<String>,
    /// The StatefulSet controlling the Pod, when its name is `<set>-<ordinal>`.
    pub set: Option<String>,
    /// `Succeeded` or `Failed`: its addresses are free again.
    pub finished: bool,
    /// `metadata.creationTimestamp` as written (RFC 3339 sorts as text): the older of two Pods on one address
    /// keeps it.
    pub created: String,
    pub network_status: Option<String>,
    pub networks: Option<String>,
}

impl PodInfo {
    pub(crate) fn of(pod: &Pod) -> PodInfo {
        let m = &pod.metadata;
        let ann = |k: &str| m.annotations.as_ref().and_then(|a| a.get(k)).cloned();
        let name = m.name.clone().unwrap_or_default();
        let set = m
            .owner_references
            .iter()
            .flatten()
            .find(|o| o.controller == Some(true) && o.kind == "StatefulSet")
            .map(|o| o.name.clone())
            .filter(|s| {
                name.strip_prefix(s.as_str())
                    .and_then(|rest| rest.strip_prefix('-'))
                    .is_some()
                    && statefulset_ordinal(&name).is_some()
            });
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        PodInfo {
            namespace: m.namespace.clone().unwrap_or_default(),
            uid: m.uid.clone().unwrap_or_default(),
            token: ann(keys::RESERVATION).filter(|t| !t.is_empty()),
            set,
            finished: matches!(phase, Some("Succeeded" | "Failed")),
            created: m
                .creation_timestamp
                .as_ref()
                .map(|t| t.0.to_string())
                .unwrap_or_default(),
            network_status: ann(NETWORK_STATUS),
            networks: ann(NETWORKS),
            name,
        }
    }
}

/// A NAD: its reference and its config as JSON (`Value::Null` when the config is not JSON).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct NadInfo {
    pub namespace: String,
    pub name: String,
    pub config: Value,
}

impl NadInfo {
    pub(crate) fn of(nad: &NetworkAttachmentDefinition) -> NadInfo {
        NadInfo {
            namespace: nad.metadata.namespace.clone().unwrap_or_default(),
            name: nad.metadata.name.clone().unwrap_or_default(),
            config: serde_json::from_str(&nad.spec.config).unwrap_or(Value::Null),
        }
    }

    /// The IPAM section: `ipam` of the config, or of the first plugin of a conflist that has one.
    pub(crate) fn ipam(&self) -> Option<&Value> {
        self.config.get("ipam").or_else(|| {
            self.config
                .get("plugins")?
                .as_array()?
                .iter()
                .find_map(|p| p.get("ipam"))
        })
    }

    pub(crate) fn ipam_type(&self) -> Option<&str> {
        self.ipam()?.get("type")?.as_str()
    }

    /// `<namespace>/<name>`.
    pub(crate) fn network(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// `<name>.<namespace>`: the provider of a NAD whose IPAM is nadipam.
    pub(crate) fn provider(&self) -> String {
        format!("{}.{}", self.name, self.namespace)
    }
}

/// The cluster as the migration sees it.
#[derive(Clone, Debug, Default)]
pub(crate) struct World {
    /// By `(namespace, name)`.
    pub pods: BTreeMap<(String, String), PodInfo>,
    pub subnets: Vec<Subnet>,
    pub pools: Vec<IPPool>,
    /// By name.
    pub leases: BTreeMap<String, IPLease>,
    pub nads: Vec<NadInfo>,
}

impl World {
    pub(crate) fn pod(&self, namespace: &str, name: &str) -> Option<&PodInfo> {
        self.pods.get(&(namespace.to_string(), name.to_string()))
    }

    pub(crate) fn subnet(&self, name: &str) -> Option<&Subnet> {
        self.subnets
            .iter()
            .find(|s| s.metadata.name.as_deref() == Some(name))
    }

    pub(crate) fn pool(&self, name: &str) -> Option<&IPPool> {
        self.pools
            .iter()
            .find(|s| s.metadata.name.as_deref() == Some(name))
    }
}

/// The network (`<namespace>/<nad>`) a provider names: `<nad>.<namespace>` or `<nad>.<namespace>.ovn`.
pub(crate) fn network_of_provider(provider: &str) -> Option<String> {
    let plain = provider.strip_suffix(".ovn").unwrap_or(provider);
    let (nad, ns) = plain.rsplit_once('.')?;
    (!nad.is_empty() && !ns.is_empty() && !ns.contains('.')).then(|| format!("{ns}/{nad}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn providers_name_their_network() {
        assert_eq!(
            network_of_provider("macvlan.default").as_deref(),
            Some("default/macvlan")
        );
        assert_eq!(
            network_of_provider("attachnet.default.ovn").as_deref(),
            Some("default/attachnet")
        );
        assert_eq!(
            network_of_provider("ovs-conf.kube-system").as_deref(),
            Some("kube-system/ovs-conf")
        );
        assert_eq!(network_of_provider("ovn"), None);
        assert_eq!(network_of_provider(".x"), None);
    }

    #[test]
    fn pod_facts() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web-1", "namespace": "ns", "uid": "u1",
                "creationTimestamp": "2024-01-02T03:04:05Z",
                "annotations": {NETWORK_STATUS: "[]"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web", "uid": "s",
                                     "controller": true}]},
            "status": {"phase": "Running"}
        }))
        .unwrap();
        let p = PodInfo::of(&pod);
        assert_eq!(p.set.as_deref(), Some("web"));
        assert!(!p.finished);
        assert_eq!(p.created, "2024-01-02T03:04:05Z");
        assert_eq!(p.network_status.as_deref(), Some("[]"));
        let nad = NadInfo::of(
            &serde_json::from_value(serde_json::json!({
                "metadata": {"name": "m", "namespace": "ns"},
                "spec": {"config": r#"{"cniVersion":"0.4.0","plugins":[{"type":"macvlan","ipam":{"type":"whereabouts"}}]}"#}
            }))
            .unwrap(),
        );
        assert_eq!(nad.ipam_type(), Some("whereabouts"));
        assert_eq!(
            (nad.network(), nad.provider()),
            ("ns/m".into(), "m.ns".into())
        );
    }
}
