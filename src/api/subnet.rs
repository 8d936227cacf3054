//! `Subnet` (`nadipam.io/v1`): a CIDR that one or more Multus networks allocate from.
//!
//! Field names follow Kube-OVN's `kubeovn.io/v1` Subnet, so a Kube-OVN Subnet manifest applies after changing
//! its `apiVersion`. Fields nadipam has no use for, such as `private` or `natOutgoing`, are kept as written and
//! ignored (peer_fields.rs); the Subnet webhook warns about each one set.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::cel;
use super::peer_fields::KubeOvnSubnetFields;
use crate::placement::{NodeScope, SelectorError};

/// Address families a Subnet serves. Serialized exactly as Kube-OVN writes them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
pub enum Protocol {
    // No doc comments on variants: schemars would turn documented variants into a `oneOf`, which is not a
    // structural schema.
    #[serde(rename = "IPv4")]
    Ipv4,
    #[serde(rename = "IPv6")]
    Ipv6,
    Dual,
}

/// A route for a Pod interface: a Subnet's `routes` entry, and the shape of CNI `ipam.routes`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[x_kube(validation = cel::route_not_empty())]
pub struct RouteSpec {
    /// Destination CIDR, e.g. 192.168.0.0/24. Leave it out to make this the default route (Kube-OVN's meaning of a
    /// route without dst).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    #[x_kube(validation = cel::cidr("dst"))]
    pub dst: Option<String>,
    /// Next hop, e.g. 172.17.0.254. Leave it out for an on-link route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    #[x_kube(validation = cel::ip("gw"))]
    pub gw: Option<String>,
}

/// Desired state of a Subnet.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[kube(
    group = "nadipam.io",
    version = "v1",
    kind = "Subnet",
    status = "SubnetStatus",
    shortname = "nsub",
    category = "nadipam",
    derive = "PartialEq",
    doc = "A CIDR that Multus networks allocate Pod addresses from. Each address handed out is recorded as one IPLease.",
    validation = cel::name_is_label_value("Subnet", "it is a label value on every IPLease of the Subnet"),
    printcolumn(name = "PROVIDER", type_ = "string", json_path = ".spec.provider"),
    printcolumn(name = "PROTOCOL", type_ = "string", json_path = ".status.protocol"),
    printcolumn(name = "CIDR", type_ = "string", json_path = ".spec.cidrBlock"),
    printcolumn(name = "V4USED", type_ = "number", json_path = ".status.v4UsingIPs"),
    printcolumn(name = "V4AVAILABLE", type_ = "number", json_path = ".status.v4AvailableIPs"),
    printcolumn(name = "V6USED", type_ = "number", json_path = ".status.v6UsingIPs"),
    printcolumn(name = "V6AVAILABLE", type_ = "number", json_path = ".status.v6AvailableIPs"),
    printcolumn(name = "AGE", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = cel::protocol_matches_cidr(), validation = cel::gateway_in_cidr())]
pub struct SubnetSpec {
    /// Address families: IPv4, IPv6 or Dual (one CIDR of each family in cidrBlock). Optional: left out, it is
    /// the families of cidrBlock (as Kube-OVN defaults it). Immutable once set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "protocol_schema")]
    #[x_kube(validation = cel::immutable("protocol", "leases already taken belong to its families; create a new Subnet instead"))]
    pub protocol: Option<Protocol>,

    /// The subnet's CIDR, e.g. 172.17.0.0/16; for Dual an IPv4 and an IPv6 CIDR separated by a comma, e.g.
    /// 172.17.0.0/16,fd00:17::/64. Immutable: create a new Subnet to renumber.
    #[schemars(length(min = 1, max = 100))]
    #[x_kube(validation = cel::immutable("cidrBlock", "leases already taken lie inside it; create a new Subnet to renumber"))]
    #[x_kube(validation = cel::cidr_block())]
    pub cidr_block: String,

    /// Gateway handed to Pods, e.g. 172.17.0.1 (Dual: 172.17.0.1,fd00:17::1). Defaults to the first usable address
    /// of each CIDR. The gateway is never allocated to a Pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 100))]
    #[x_kube(validation = cel::ip_pair("gateway"))]
    pub gateway: Option<String>,

    /// Addresses never allocated: each entry is one IP (172.17.0.5), a range written 172.17.0.1..172.17.0.10 or
    /// 172.17.0.1-172.17.0.10 (both ends included), or a CIDR (172.17.0.0/28).
    #[serde(default)]
    #[schemars(schema_with = "exclude_ips_schema")]
    pub exclude_ips: Vec<String>,

    /// Which networks allocate from this Subnet: `<nad>.<namespace>` for a NetworkAttachmentDefinition whose IPAM
    /// type is nadipam (or kube-ovn), `<nad>.<namespace>.ovn` for a Kube-OVN-type attachment, or `ovn` for a Subnet
    /// that Pods select by name with the `<provider>.kubernetes.io/logical_switch` annotation.
    #[schemars(length(min = 1, max = 253))]
    #[x_kube(validation = cel::provider())]
    pub provider: String,

    /// Namespaces whose Pods may allocate from this Subnet. Empty (the default) allows every namespace.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 1024), inner(length(max = 63)))]
    pub namespaces: Vec<String>,

    /// Routes added to every Pod interface in this Subnet (before any routes from the Pod's own annotations).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256))]
    pub routes: Vec<RouteSpec>,

    /// The nodes the Subnet's addresses are valid on (a node label selector), for all its IPPools too. A Pod that
    /// names where it runs gets an address only when one of those nodes is among them; a Pod that does not is
    /// given the selector as required node affinity. Unset: every node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<LabelSelector>,

    /// Kube-OVN fields kept as written but ignored.
    #[serde(flatten)]
    pub kube_ovn: KubeOvnSubnetFields,
}

/// An optional string enum. schemars would list `null` among an `Option`'s enum values, which a structural
/// schema forbids; absence already says "infer it".
fn protocol_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({"type": "string", "enum": ["IPv4", "IPv6", "Dual"]})
}

fn exclude_ips_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    cel::string_list(4096, 100, cel::address_entry("excludeIps"))
}

impl Subnet {
    /// The nodes the Subnet serves (spec.nodeSelector); `None`: every node.
    pub(crate) fn node_scope(&self) -> Result<Option<NodeScope>, SelectorError> {
        NodeScope::of(
            &[("spec.nodeSelector", self.spec.node_selector.as_ref())],
            &[],
            "",
        )
    }
}

/// Observed state of a Subnet, maintained by the nadipam controller.
///
/// Counts are JSON numbers held as f64, like Kube-OVN's: an IPv6 /64 holds 2^64 addresses, beyond both i64 and the
/// 2^53 range where JSON numbers stay exact. Counts below 2^53 are exact; larger ones are rounded.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SubnetStatus {
    /// The families the Subnet serves: spec.protocol, or the families of cidrBlock when it is left out.
    /// Absent while the spec is unusable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "protocol_schema")]
    pub protocol: Option<Protocol>,
    /// IPv4 addresses still free (excludes the gateway, excludeIps and addresses in use).
    #[serde(default, rename = "v4AvailableIPs")]
    pub v4_available_ips: f64,
    /// IPv4 addresses held by IPLeases.
    #[serde(default, rename = "v4UsingIPs")]
    pub v4_using_ips: f64,
    /// IPv6 addresses still free; rounded above 2^53.
    #[serde(default, rename = "v6AvailableIPs")]
    pub v6_available_ips: f64,
    /// IPv6 addresses held by IPLeases.
    #[serde(default, rename = "v6UsingIPs")]
    pub v6_using_ips: f64,
    /// Number of Nodes the Subnet serves; absent when it serves every node (no node selector).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matched_nodes: Option<i64>,
    /// Standard conditions; `Ready` is False with a reason while the spec is unusable; `NodesMatched` (only with
    /// a node selector) is False when no Node matches.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Kube-OVN seed guide's Subnet, with only the apiVersion changed.
    const SEED: &str = r#"
apiVersion: nadipam.io/v1
kind: Subnet
metadata:
  name: macvlan
spec:
  protocol: IPv4
  provider: macvlan.default
  cidrBlock: 172.17.0.0/16
  gateway: 172.17.0.1
  excludeIps:
  - 172.17.0.0..172.17.0.10
"#;

    #[test]
    fn seed_subnet_parses() {
        let s: Subnet = serde_saphyr::from_str(SEED).unwrap();
        assert_eq!(s.metadata.name.as_deref(), Some("macvlan"));
        assert_eq!(s.spec.protocol, Some(Protocol::Ipv4));
        assert_eq!(s.spec.provider, "macvlan.default");
        assert_eq!(s.spec.cidr_block, "172.17.0.0/16");
        assert_eq!(s.spec.gateway.as_deref(), Some("172.17.0.1"));
        assert_eq!(s.spec.exclude_ips, ["172.17.0.0..172.17.0.10"]);
        assert!(s.spec.namespaces.is_empty() && s.spec.routes.is_empty());
        assert_eq!(s.status, None);
    }

    #[test]
    fn round_trips_with_user_field_names() {
        let s: Subnet = serde_saphyr::from_str(
            r#"
apiVersion: nadipam.io/v1
kind: Subnet
metadata: {name: dual}
spec:
  protocol: Dual
  provider: attachnet.default.ovn
  cidrBlock: 172.17.0.0/16,fd00:17::/64
  excludeIps: [172.17.0.1-172.17.0.9, 172.17.1.0/24, fd00:17::5]
  namespaces: [team-a]
  routes:
  - {dst: 192.168.0.0/24, gw: 172.17.0.254}
  - {gw: 172.17.0.254}
status:
  v4AvailableIPs: 65000
  v4UsingIPs: 3
  v6AvailableIPs: 1.8446744073709552e19
  v6UsingIPs: 2
"#,
        )
        .unwrap();
        assert_eq!(s.spec.protocol, Some(Protocol::Dual));
        assert_eq!(s.spec.routes[1].dst, None);
        let status = s.status.as_ref().unwrap();
        assert_eq!(status.v6_available_ips, 2f64.powi(64));
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["apiVersion"], "nadipam.io/v1");
        assert_eq!(v["spec"]["protocol"], "Dual");
        assert_eq!(v["spec"]["cidrBlock"], "172.17.0.0/16,fd00:17::/64");
        assert_eq!(v["spec"]["excludeIps"][0], "172.17.0.1-172.17.0.9");
        assert_eq!(
            v["spec"]["routes"][1],
            serde_json::json!({"gw": "172.17.0.254"})
        );
        assert_eq!(v["status"]["v4UsingIPs"], 3.0);
        assert!(v["spec"].get("gateway").is_none());
        let back: Subnet = serde_json::from_value(v).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn protocol_spellings() {
        for (p, text) in [
            (Protocol::Ipv4, "IPv4"),
            (Protocol::Ipv6, "IPv6"),
            (Protocol::Dual, "Dual"),
        ] {
            assert_eq!(serde_json::to_value(p).unwrap(), text);
        }
        let err = serde_json::from_str::<Protocol>("\"ipv4\"")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("expected one of `IPv4`, `IPv6`, `Dual`"),
            "{err}"
        );
    }
}
