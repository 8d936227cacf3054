//! The multi-network community's `IPAMClaim` (`k8s.cni.cncf.io/v1alpha1`), reduced to what nadipam reads and
//! writes: an address that outlives the Pods naming it (a KubeVirt VM's, across restarts and live migration).
//!
//! Not nadipam's CRD: the cluster installs it (KubeVirt's ipam-extensions, OVN-Kubernetes). Derived without a
//! schema, since nadipam never generates its YAML.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use serde::{Deserialize, Serialize};

/// Prefix of the Pod labels naming the claims a Pod uses: `ipamclaims.nadipam.io/<claim>: <claim uid>`. The
/// webhook counts a claim's Pods by it (at most two at once: a live migration's source and target) and the
/// controller finds them when deciding whether a deleted claim's addresses are still in use.
pub const CLAIM_LABEL_PREFIX: &str = "ipamclaims.nadipam.io/";

/// The condition nadipam sets on a claim it allocated for, as OVN-Kubernetes names it.
pub const CLAIM_CONDITION: &str = "IPsAllocated";

/// What an IPAMClaim asks for: the network and the Pod interface the persistent addresses are for.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "k8s.cni.cncf.io",
    version = "v1alpha1",
    kind = "IPAMClaim",
    plural = "ipamclaims",
    namespaced,
    status = "IPAMClaimStatus",
    schema = "disabled"
)]
pub struct IPAMClaimSpec {
    /// The network the addresses are for: its CNI config `name`, or as nadipam also accepts, the
    /// NetworkAttachmentDefinition's `<namespace>/<name>` or `<name>`.
    #[serde(default)]
    pub network: String,
    /// The Pod interface the addresses are for.
    #[serde(default)]
    pub interface: String,
}

/// What was allocated for the claim.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IPAMClaimStatus {
    /// The addresses with their Subnet's prefix length (`172.17.0.5/16`).
    #[serde(default)]
    pub ips: Vec<String>,
    /// The Pod the addresses were first allocated for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_pod: Option<OwnerPod>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// A Pod by name (in the claim's namespace).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct OwnerPod {
    #[serde(default)]
    pub name: String,
}

/// The Pod label naming `claim`: `ipamclaims.nadipam.io/<claim>`. `None` when the claim's name is longer
/// than a label name may be (63 characters).
pub fn claim_label(claim: &str) -> Option<String> {
    (!claim.is_empty() && claim.len() <= 63).then(|| format!("{CLAIM_LABEL_PREFIX}{claim}"))
}

/// The claims a Pod's labels name, with the UID each had at admission.
pub fn claims_of_labels(
    labels: &std::collections::BTreeMap<String, String>,
) -> impl Iterator<Item = (&str, &str)> {
    labels.iter().filter_map(|(k, v)| {
        k.strip_prefix(CLAIM_LABEL_PREFIX)
            .map(|claim| (claim, v.as_str()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_claim_as_kubevirt_writes_it() {
        let c: IPAMClaim = serde_json::from_value(serde_json::json!({
            "apiVersion": "k8s.cni.cncf.io/v1alpha1", "kind": "IPAMClaim",
            "metadata": {"name": "vm-a.tenant", "namespace": "vms", "uid": "u-1"},
            "spec": {"network": "tenantblue", "interface": "pod16367aacb67"},
            "status": {"ips": ["172.17.0.5/16"], "ownerPod": {"name": "virt-launcher-vm-a-x"}}
        }))
        .unwrap();
        assert_eq!(c.spec.network, "tenantblue");
        let status = c.status.unwrap();
        assert_eq!(status.ips, ["172.17.0.5/16"]);
        assert_eq!(status.owner_pod.unwrap().name, "virt-launcher-vm-a-x");
    }

    #[test]
    fn labels() {
        assert_eq!(
            claim_label("vm-a.tenant").as_deref(),
            Some("ipamclaims.nadipam.io/vm-a.tenant")
        );
        assert_eq!(claim_label(&"a".repeat(64)), None);
        assert_eq!(claim_label(""), None);
        let labels = [
            ("app".to_string(), "x".to_string()),
            (
                "ipamclaims.nadipam.io/vm-a.tenant".to_string(),
                "u-1".to_string(),
            ),
        ]
        .into();
        assert_eq!(
            claims_of_labels(&labels).collect::<Vec<_>>(),
            [("vm-a.tenant", "u-1")]
        );
    }
}
