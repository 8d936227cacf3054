//! Fields of the peers' CRDs (Kube-OVN's Subnet, Spiderpool's SpiderIPPool) that mean nothing for secondary-network
//! IPAM. They are part of the schema so that a peer's manifest applies with only its `apiVersion` changed (a
//! strict `kubectl apply` refuses unknown fields); they are stored as written and never read. The Subnet and IPPool
//! webhooks warn about each one a user sets.
//!
//! Simple fields are typed as the peer types them; structured ones (ACLs, selectors, policy rules) are kept as
//! written (`x-kubernetes-preserve-unknown-fields`).

use schemars::{Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Kube-OVN `kubeovn.io/v1` Subnet spec fields nadipam keeps but ignores: they configure OVN logical switches,
/// NAT, gateways and DHCP of Kube-OVN's own data path, which a secondary network's IPAM has no part in.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KubeOvnSubnetFields {
    /// Kube-OVN: the cluster's default subnet. Ignored by nadipam.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<bool>,
    /// Kube-OVN: the VPC the subnet belongs to. Ignored by nadipam.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vpc: Option<String>,
    /// Kube-OVN: distributed or centralized gateway. Ignored by nadipam.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_type: Option<String>,
    /// Kube-OVN: nodes of a centralized gateway. Ignored by nadipam.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_node: Option<String>,
    /// Kube-OVN: node selectors of a centralized gateway, kept as written. Ignored by nadipam.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "objects")]
    pub gateway_node_selectors: Vec<Value>,
    /// Kube-OVN: SNAT of traffic leaving the cluster. Ignored by nadipam.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nat_outgoing: Option<bool>,
    /// Kube-OVN: SNAT policy rules, kept as written. Ignored by nadipam.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "objects")]
    pub nat_outgoing_policy_rules: Vec<Value>,
    /// Kube-OVN: external egress gateway address. Ignored by nadipam.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_egress_gateway: Option<String>,
    /// Kube-OVN: priority of the egress policy route. Ignored by nadipam.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_routing_priority: Option<i64>,
    /// Kube-OVN: routing table of the egress policy route. Ignored by nadipam.
    #[serde(
        default,
        rename = "policyRoutingTableID",
        skip_serializing_if = "Option::is_none"
    )]
    pub policy_routing_table_id: Option<i64>,
    /// Kube-OVN: MTU of the logical switch (a secondary network's MTU is in its CNI config). Ignored by nadipam.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<i64>,
    /// Kube-OVN: isolate the subnet from others. Ignored by nadipam.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private: Option<bool>,
    /// Kube-OVN: CIDRs a private subnet may reach. Ignored by nadipam.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_subnets: Vec<String>,
    /// Kube-OVN: the Vlan of an underlay subnet. Ignored by nadipam.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vlan: Option<String>,
    /// Kube-OVN: virtual IPs of the subnet. Ignored by nadipam.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vips: Vec<String>,
    /// Kube-OVN: use a logical router port as gateway of an underlay subnet. Ignored by nadipam.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logical_gateway: Option<bool>,
    /// Kube-OVN: skip the gateway reachability check at Pod start. Ignored by nadipam.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disable_gateway_check: Option<bool>,
    /// Kube-OVN: leave the subnet out of cluster interconnection. Ignored by nadipam.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disable_inter_connection: Option<bool>,
    /// Kube-OVN: OVN's DHCP for the subnet. Ignored by nadipam.
    #[serde(
        default,
        rename = "enableDHCP",
        skip_serializing_if = "Option::is_none"
    )]
    pub enable_dhcp: Option<bool>,
    /// Kube-OVN: DHCPv4 options. Ignored by nadipam.
    #[serde(
        default,
        rename = "dhcpV4Options",
        skip_serializing_if = "Option::is_none"
    )]
    pub dhcp_v4_options: Option<String>,
    /// Kube-OVN: DHCPv6 options. Ignored by nadipam.
    #[serde(
        default,
        rename = "dhcpV6Options",
        skip_serializing_if = "Option::is_none"
    )]
    pub dhcp_v6_options: Option<String>,
    /// Kube-OVN: IPv6 router advertisements. Ignored by nadipam.
    #[serde(
        default,
        rename = "enableIPv6RA",
        skip_serializing_if = "Option::is_none"
    )]
    pub enable_ipv6_ra: Option<bool>,
    /// Kube-OVN: router advertisement settings. Ignored by nadipam.
    #[serde(
        default,
        rename = "ipv6RAConfigs",
        skip_serializing_if = "Option::is_none"
    )]
    pub ipv6_ra_configs: Option<String>,
    /// Kube-OVN: OVN ACLs, kept as written. Ignored by nadipam.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "objects")]
    pub acls: Vec<Value>,
    /// Kube-OVN: east-west traffic between Pods of the subnet. Ignored by nadipam.
    #[serde(
        default,
        rename = "allowEWTraffic",
        skip_serializing_if = "Option::is_none"
    )]
    pub allow_ew_traffic: Option<bool>,
    /// Kube-OVN: underlay-to-overlay interconnection. Ignored by nadipam.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub u2o_interconnection: Option<bool>,
    /// Kube-OVN: address of the underlay-to-overlay interconnection. Ignored by nadipam.
    #[serde(
        default,
        rename = "u2oInterconnectionIP",
        skip_serializing_if = "Option::is_none"
    )]
    pub u2o_interconnection_ip: Option<String>,
    /// Kube-OVN: underlay-to-overlay features, kept as written. Ignored by nadipam.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "object")]
    pub u2o_features: Option<Value>,
    /// Kube-OVN: OVN load balancers for Services. Ignored by nadipam.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_lb: Option<bool>,
    /// Kube-OVN: ECMP for the centralized gateway. Ignored by nadipam.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_ecmp: Option<bool>,
    /// Kube-OVN: multicast snooping. Ignored by nadipam.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_multicast_snoop: Option<bool>,
    /// Kube-OVN: external load-balancer addresses. Ignored by nadipam.
    #[serde(
        default,
        rename = "enableExternalLBAddress",
        skip_serializing_if = "Option::is_none"
    )]
    pub enable_external_lb_address: Option<bool>,
    /// Kube-OVN: the OVN route table of the subnet. Ignored by nadipam.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route_table: Option<String>,
    /// Kube-OVN: namespaces bound by label selector, kept as written. Ignored by nadipam (spec.namespaces applies).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "objects")]
    pub namespace_selectors: Vec<Value>,
    /// Kube-OVN: the node network of an underlay subnet. Ignored by nadipam.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_network: Option<String>,
}

/// Spiderpool `spiderpool.spidernet.io/v2beta1` SpiderIPPool spec fields nadipam keeps but does not act on
/// (the others are IPPool fields of their own).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SpiderIPPoolFields {
    /// Spiderpool: the pool's family, 4 or 6. Ignored by nadipam (the family is that of ips).
    #[serde(default, rename = "ipVersion", skip_serializing_if = "Option::is_none")]
    pub ip_version: Option<i64>,
    /// Spiderpool (older versions): VLAN ID of the pool. Ignored by nadipam.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vlan: Option<i64>,
}

/// The JSON names of the fields a user set, in alphabetical order: the serialized form leaves out every field
/// left unset, so this cannot drift from the struct.
pub(crate) fn set_fields<T: Serialize>(fields: &T) -> Vec<String> {
    match serde_json::to_value(fields) {
        Ok(Value::Object(map)) => map.keys().cloned().collect(),
        _ => Vec::new(),
    }
}

/// An object kept as written.
fn object(_: &mut SchemaGenerator) -> Schema {
    json_schema!({"type": "object", "x-kubernetes-preserve-unknown-fields": true})
}

/// A list of objects kept as written.
fn objects(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "array",
        "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_fields_lists_what_was_written() {
        assert!(set_fields(&KubeOvnSubnetFields::default()).is_empty());
        let f: KubeOvnSubnetFields = serde_json::from_value(serde_json::json!({
            "natOutgoing": false,
            "policyRoutingTableID": 1000,
            "enableDHCP": true,
            "acls": [{"action": "drop", "direction": "to-lport", "match": "ip4.dst == 10.10.0.2", "priority": 1002}],
            "u2oFeatures": {"overlayOnlyRouting": true},
        }))
        .unwrap();
        assert_eq!(
            set_fields(&f),
            [
                "acls",
                "enableDHCP",
                "natOutgoing",
                "policyRoutingTableID",
                "u2oFeatures"
            ]
        );
        let p: SpiderIPPoolFields = serde_json::from_value(serde_json::json!({
            "ipVersion": 4,
            "vlan": 0,
        }))
        .unwrap();
        assert_eq!(set_fields(&p), ["ipVersion", "vlan"]);
    }
}
