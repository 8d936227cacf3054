//! `Network` (`nadipam.io/v1`, namespaced): one typed object from which the controller generates the
//! NetworkAttachmentDefinition of the same name (CNI JSON with nadipam as its IPAM and the provider filled in)
//! and, optionally, the Subnet that serves it. Shaped like Spiderpool's SpiderMultusConfig (`cniType` plus one
//! section per type), so its users recognise it.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::core::{Message, Rule};
use kube::{CustomResource, KubeSchema, ResourceExt};
use serde::{Deserialize, Serialize};

use super::cel;
use super::subnet::{Protocol, RouteSpec};

/// Annotation on the NAD and Subnet a Network generated: `<namespace>/<name>` of that Network.
pub const NETWORK_ANNOTATION: &str = "nadipam.io/network";

/// The CNI plugins a Network can generate a NAD for. Spelled as CNI plugin types (lower case).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum CniType {
    // No doc comments on variants: schemars would turn documented variants into a `oneOf`.
    Macvlan,
    Ipvlan,
    Bridge,
    Ovs,
    Sriov,
    Custom,
}

impl CniType {
    /// Every type, in the order the CRD lists them.
    pub const ALL: [CniType; 6] = [
        CniType::Macvlan,
        CniType::Ipvlan,
        CniType::Bridge,
        CniType::Ovs,
        CniType::Sriov,
        CniType::Custom,
    ];

    /// The spelling in `cniType`, which is also the name of the type's section in the spec.
    pub fn as_str(self) -> &'static str {
        match self {
            CniType::Macvlan => "macvlan",
            CniType::Ipvlan => "ipvlan",
            CniType::Bridge => "bridge",
            CniType::Ovs => "ovs",
            CniType::Sriov => "sriov",
            CniType::Custom => "custom",
        }
    }

    /// A minimal section for this type, quoted in messages.
    fn example(self) -> &'static str {
        match self {
            CniType::Macvlan => "{master: eth0, mode: bridge}",
            CniType::Ipvlan => "{master: eth0, mode: l2}",
            CniType::Bridge => "{bridge: br0}",
            CniType::Ovs => "{bridge: br1}",
            CniType::Sriov => "{resourceName: intel.com/sriov_netdevice}",
            CniType::Custom => {
                "{config: '{\"type\": \"vlan\", \"master\": \"eth0\", \"vlanId\": 100}'}"
            }
        }
    }
}

impl std::fmt::Display for CniType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Desired state of a Network.
// Clippy reads the repeated `type_ = "string"` of the printer columns as duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[kube(
    group = "nadipam.io",
    version = "v1",
    kind = "Network",
    namespaced,
    status = "NetworkStatus",
    shortname = "nnet",
    category = "nadipam",
    derive = "PartialEq",
    doc = "A Multus network written as a typed object: the controller generates its NetworkAttachmentDefinition (same name and namespace, IPAM nadipam) and, with spec.ipam, the Subnet that serves it.",
    printcolumn(name = "TYPE", type_ = "string", json_path = ".spec.cniType"),
    printcolumn(name = "MASTER/BRIDGE", type_ = "string", json_path = ".status.device"),
    printcolumn(name = "SUBNET", type_ = "string", json_path = ".status.subnet"),
    printcolumn(name = "NAD", type_ = "string", json_path = ".status.nad"),
    printcolumn(
        name = "READY",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "AGE",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = section_required(CniType::Macvlan),
    validation = section_only(CniType::Macvlan),
    validation = section_required(CniType::Ipvlan),
    validation = section_only(CniType::Ipvlan),
    validation = section_required(CniType::Bridge),
    validation = section_only(CniType::Bridge),
    validation = section_required(CniType::Ovs),
    validation = section_only(CniType::Ovs),
    validation = section_required(CniType::Sriov),
    validation = section_only(CniType::Sriov),
    validation = section_required(CniType::Custom),
    validation = section_only(CniType::Custom),
    validation = subnet_or_ipam()
)]
pub struct NetworkSpec {
    /// The CNI plugin of the generated NAD: macvlan, ipvlan, bridge, ovs, sriov or custom. The section of the same
    /// name (and only that one) carries its settings.
    #[schemars(schema_with = "cni_type_schema")]
    pub cni_type: CniType,

    /// cniVersion of the generated CNI configuration. Default 0.3.1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 16))]
    #[x_kube(validation = cni_version())]
    pub cni_version: Option<String>,

    /// macvlan settings (cniType macvlan).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub macvlan: Option<MacvlanConfig>,

    /// ipvlan settings (cniType ipvlan).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipvlan: Option<IpvlanConfig>,

    /// Linux bridge settings (cniType bridge).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bridge: Option<BridgeConfig>,

    /// ovs-cni settings (cniType ovs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ovs: Option<BridgeConfig>,

    /// SR-IOV CNI settings (cniType sriov).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sriov: Option<SriovConfig>,

    /// Any other CNI plugin (cniType custom): its configuration as JSON, without an ipam section.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom: Option<CustomConfig>,

    /// An existing Subnet to serve this network; its spec.provider must be <name>.<namespace> of this Network.
    /// Exclusive with ipam.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub subnet: Option<String>,

    /// A Subnet for the controller to create (named <name>.<namespace>, the provider of this network) and to
    /// delete with the Network once no address of it is leased. Exclusive with subnet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipam: Option<NetworkIpam>,
}

/// macvlan: a MAC address of its own per Pod on a host interface.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct MacvlanConfig {
    /// The host interface, e.g. eth0.
    #[schemars(length(min = 1, max = 15))]
    #[x_kube(validation = interface_name("macvlan.master"))]
    pub master: String,
    /// bridge (default), private, vepa or passthru.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 16))]
    #[x_kube(validation = one_of("macvlan.mode", &["bridge", "private", "vepa", "passthru"]))]
    pub mode: Option<String>,
    /// MTU of the Pod interface; default: the master's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 68, max = 65535))]
    pub mtu: Option<i32>,
}

/// ipvlan: Pods share the host interface's MAC address.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct IpvlanConfig {
    /// The host interface, e.g. eth0.
    #[schemars(length(min = 1, max = 15))]
    #[x_kube(validation = interface_name("ipvlan.master"))]
    pub master: String,
    /// l2 (default), l3 or l3s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 16))]
    #[x_kube(validation = one_of("ipvlan.mode", &["l2", "l3", "l3s"]))]
    pub mode: Option<String>,
    /// MTU of the Pod interface; default: the master's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 68, max = 65535))]
    pub mtu: Option<i32>,
}

/// A port on a bridge: the reference bridge plugin (a veth into a Linux bridge, created if missing) or ovs-cni
/// (a port on an Open vSwitch bridge that exists on every node).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct BridgeConfig {
    /// The bridge, e.g. br0 (Linux) or br1 (Open vSwitch).
    #[schemars(length(min = 1, max = 15))]
    #[x_kube(validation = interface_name("bridge"))]
    pub bridge: String,
    /// VLAN tag of the Pod's port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 4094))]
    pub vlan: Option<i32>,
    /// MTU of the Pod interface.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 68, max = 65535))]
    pub mtu: Option<i32>,
}

/// SR-IOV CNI: a virtual function handed to the Pod by the SR-IOV device plugin.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct SriovConfig {
    /// The device plugin's resource, e.g. intel.com/sriov_netdevice; written as the NAD's
    /// k8s.v1.cni.cncf.io/resourceName annotation.
    #[schemars(length(min = 1, max = 253))]
    pub resource_name: String,
    /// VLAN tag of the virtual function.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 4094))]
    pub vlan: Option<i32>,
}

/// Any CNI plugin: its configuration as written, without an ipam section (nadipam adds it).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct CustomConfig {
    /// One plugin ({"type": "vlan", "master": "eth0", "vlanId": 100}) or a conflist ({"plugins": [...]}, the
    /// first plugin gets the ipam section), as JSON.
    #[schemars(length(min = 2, max = 65536))]
    pub config: String,
}

/// The Subnet a Network creates: the fields of a Subnet except provider (the Network's).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = cel::protocol_matches_cidr(), validation = cel::gateway_in_cidr())]
pub struct NetworkIpam {
    /// IPv4, IPv6 or Dual; left out, the families of cidrBlock. Immutable once set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "protocol_schema")]
    #[x_kube(validation = cel::immutable("ipam.protocol", "leases already taken belong to its families; create a new Network instead"))]
    pub protocol: Option<Protocol>,
    /// The Subnet's CIDR, e.g. 172.18.0.0/16 (Dual: 172.18.0.0/16,fd00:18::/64). Immutable.
    #[schemars(length(min = 1, max = 100))]
    #[x_kube(validation = cel::immutable("ipam.cidrBlock", "leases already taken lie inside it; create a new Network to renumber"))]
    #[x_kube(validation = cel::cidr_block())]
    pub cidr_block: String,
    /// Gateway handed to Pods; defaults to the first usable address of each CIDR.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 100))]
    #[x_kube(validation = cel::ip_pair("gateway"))]
    pub gateway: Option<String>,
    /// Addresses never allocated: IPs, ranges a..b or a-b, or CIDRs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "exclude_ips_schema")]
    pub exclude_ips: Vec<String>,
    /// Namespaces whose Pods may allocate from the Subnet; empty allows every namespace.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 1024), inner(length(max = 63)))]
    pub namespaces: Vec<String>,
    /// Routes added to every Pod interface on this network.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256))]
    pub routes: Vec<RouteSpec>,
    /// The nodes the addresses are valid on (a node label selector; the Subnet's spec.nodeSelector, see
    /// docs/node-aware-pools.md). Unset: every node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector>,
}

/// Observed state of a Network, written by the controller.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkStatus {
    /// The generated NetworkAttachmentDefinition (same namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nad: Option<String>,
    /// The Subnet serving the network: spec.subnet, or the one created from spec.ipam.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet: Option<String>,
    /// The host interface or bridge the network is on (master, bridge or SR-IOV resource).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// The metadata.generation the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready: the NAD matches the spec and the Subnet exists and serves this network.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

impl Network {
    /// `<namespace>/<name>`.
    pub fn key(&self) -> String {
        format!(
            "{}/{}",
            self.namespace().unwrap_or_default(),
            self.name_any()
        )
    }

    /// The provider of the generated NAD, `<name>.<namespace>`: what its Subnet's spec.provider must be.
    pub fn provider(&self) -> String {
        format!(
            "{}.{}",
            self.name_any(),
            self.namespace().unwrap_or_default()
        )
    }

    /// The Subnet serving the network: spec.subnet, else (with spec.ipam) the one the controller creates,
    /// named like the provider.
    pub fn subnet_name(&self) -> Option<String> {
        match (&self.spec.subnet, &self.spec.ipam) {
            (Some(s), _) => Some(s.clone()),
            (None, Some(_)) => Some(self.provider()),
            (None, None) => None,
        }
    }
}

impl NetworkSpec {
    /// The host interface, bridge or resource the network is on (the MASTER/BRIDGE column).
    pub fn device(&self) -> Option<String> {
        match self.cni_type {
            CniType::Macvlan => self.macvlan.as_ref().map(|c| c.master.clone()),
            CniType::Ipvlan => self.ipvlan.as_ref().map(|c| c.master.clone()),
            CniType::Bridge => self.bridge.as_ref().map(|c| c.bridge.clone()),
            CniType::Ovs => self.ovs.as_ref().map(|c| c.bridge.clone()),
            CniType::Sriov => self.sriov.as_ref().map(|c| c.resource_name.clone()),
            CniType::Custom => None,
        }
    }
}

fn cni_type_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let types: Vec<&str> = CniType::ALL.iter().map(|t| t.as_str()).collect();
    schemars::json_schema!({"type": "string", "enum": types})
}

fn protocol_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({"type": "string", "enum": ["IPv4", "IPv6", "Dual"]})
}

fn exclude_ips_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    cel::string_list(4096, 100, cel::address_entry("ipam.excludeIps"))
}

/// cniType `t` needs its section.
fn section_required(t: CniType) -> Rule {
    Rule::new(format!("self.cniType != '{t}' || has(self.{t})"))
        .message(Message::Message(format!(
            "cniType {t} needs spec.{t}, e.g. {t}: {}",
            t.example()
        )))
        .field_path(format!(".{t}"))
}

/// Only the section of cniType may be set, so a spec never carries settings that are silently unused.
fn section_only(t: CniType) -> Rule {
    Rule::new(format!("!has(self.{t}) || self.cniType == '{t}'"))
        .message(Message::Expression(format!(
            "'spec.{t} is set but cniType is ' + self.cniType + '; set only spec.' + self.cniType + ' (or make \
             cniType {t})'"
        )))
        .field_path(format!(".{t}"))
}

fn subnet_or_ipam() -> Rule {
    Rule::new("!has(self.subnet) || !has(self.ipam)")
        .message(Message::Message(
            "spec.subnet and spec.ipam are exclusive: name an existing Subnet in spec.subnet, or describe the \
             Subnet to create in spec.ipam"
                .into(),
        ))
        .field_path(".ipam")
}

/// A Linux interface name: 1-15 characters, no '/', ':' or whitespace.
fn interface_name(field: &str) -> Rule {
    Rule::new("self.matches('^[^/:\\\\s]{1,15}$') && self != '.' && self != '..'").message(
        Message::Expression(format!(
            "'{field} ' + self + ' is not a Linux interface name (1-15 characters without /, : or spaces, e.g. eth0)'"
        )),
    )
}

/// One of a few words.
fn one_of(field: &str, values: &[&str]) -> Rule {
    let list = values
        .iter()
        .map(|v| format!("'{v}'"))
        .collect::<Vec<_>>()
        .join(", ");
    Rule::new(format!("self in [{list}]")).message(Message::Expression(format!(
        "'{field} ' + self + ' must be one of {}'",
        values.join(", ")
    )))
}

fn cni_version() -> Rule {
    Rule::new("self.matches('^[0-9]+[.][0-9]+[.][0-9]+$')").message(Message::Expression(
        "'cniVersion ' + self + ' must be a CNI version such as 0.3.1 or 1.0.0'".into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spiderpool_guide_network_parses() {
        let n: Network = serde_saphyr::from_str(
            r#"
apiVersion: nadipam.io/v1
kind: Network
metadata: {name: ovs-conf, namespace: kube-system}
spec:
  cniType: ovs
  ovs: {bridge: br1}
  ipam: {cidrBlock: 172.18.0.0/16, gateway: 172.18.0.1}
"#,
        )
        .unwrap();
        assert_eq!(n.spec.cni_type, CniType::Ovs);
        assert_eq!(n.key(), "kube-system/ovs-conf");
        assert_eq!(n.provider(), "ovs-conf.kube-system");
        assert_eq!(n.subnet_name().as_deref(), Some("ovs-conf.kube-system"));
        assert_eq!(n.spec.device().as_deref(), Some("br1"));
        let v = serde_json::to_value(&n).unwrap();
        assert_eq!(v["spec"]["cniType"], "ovs");
        assert!(v["spec"].get("macvlan").is_none());
        assert_eq!(v["spec"]["ipam"]["cidrBlock"], "172.18.0.0/16");
        let back: Network = serde_json::from_value(v).unwrap();
        assert_eq!(back, n);
    }

    #[test]
    fn subnet_name_prefers_the_named_subnet() {
        let mut n = Network::new(
            "macvlan",
            NetworkSpec {
                cni_type: CniType::Macvlan,
                cni_version: None,
                macvlan: Some(MacvlanConfig {
                    master: "eth0".into(),
                    ..Default::default()
                }),
                ipvlan: None,
                bridge: None,
                ovs: None,
                sriov: None,
                custom: None,
                subnet: Some("macvlan".into()),
                ipam: None,
            },
        );
        n.metadata.namespace = Some("default".into());
        assert_eq!(n.subnet_name().as_deref(), Some("macvlan"));
        n.spec.subnet = None;
        assert_eq!(n.subnet_name(), None);
    }
}
