//! `IPPool` (`nadipam.io/v1`): a named set of addresses inside one Subnet, reserved for the workloads that name it
//! (Spiderpool-style `ipam.spidernet.io/ippool` annotations, or a pool name in `<provider>.kubernetes.io/ip_pool`).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::cel;
use super::peer_fields::SpiderIPPoolFields;
use super::subnet::RouteSpec;
use crate::placement::{LabelScope, NodeScope, SelectorError};

/// A pool's Pod and namespace selectors, checked.
#[derive(Clone, Debug, Default)]
pub(crate) struct PoolSelectors {
    pub pods: Option<LabelScope>,
    pub namespaces: Option<LabelScope>,
}

/// Desired state of an IPPool.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[kube(
    group = "nadipam.io",
    version = "v1",
    kind = "IPPool",
    plural = "ippools",
    status = "IPPoolStatus",
    shortname = "nipp",
    category = "nadipam",
    derive = "PartialEq",
    doc = "A set of addresses inside one Subnet that only the Pods naming this pool receive.",
    validation = cel::name_is_label_value("IPPool", "it is a label value on every IPLease taken from the pool"),
    printcolumn(name = "SUBNET", type_ = "string", json_path = ".spec.subnet"),
    printcolumn(name = "ALLOCATED-IP-COUNT", type_ = "integer", json_path = ".status.allocatedIPCount"),
    printcolumn(name = "TOTAL-IP-COUNT", type_ = "integer", json_path = ".status.totalIPCount"),
    printcolumn(name = "NODES", type_ = "integer", json_path = ".status.matchedNodes", priority = 1),
    printcolumn(name = "DEFAULT", type_ = "boolean", json_path = ".spec.default", priority = 1),
    printcolumn(name = "DISABLE", type_ = "boolean", json_path = ".spec.disable", priority = 1),
    printcolumn(name = "AGE", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct IPPoolSpec {
    /// The Subnet the addresses belong to: its name, or (as SpiderIPPool writes it) one of the CIDRs of its
    /// cidrBlock, e.g. 172.18.0.0/16. Every entry of ips must lie inside the Subnet's cidrBlock. Immutable.
    #[schemars(length(min = 1, max = 63))]
    #[x_kube(validation = cel::immutable("subnet", "leases already taken from the pool belong to that Subnet; create a new IPPool instead"))]
    pub subnet: String,

    /// The pool's addresses: each entry is one IP (172.17.0.200), a range written 172.17.0.200..172.17.0.210 or
    /// 172.17.0.200-172.17.0.210 (both ends included), or a CIDR (172.17.0.192/28). Mix IPv4 and IPv6 entries for a
    /// dual-stack pool.
    #[schemars(schema_with = "ips_schema")]
    pub ips: Vec<String>,

    /// Namespaces whose Pods may use the pool. Empty (the default) allows every namespace.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 1024), inner(length(max = 63)))]
    pub namespaces: Vec<String>,

    /// Spiderpool's name for namespaces: a Pod's namespace must be in namespaces or namespaceName (both empty
    /// allows every namespace).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 1024), inner(length(max = 63)))]
    pub namespace_name: Vec<String>,

    /// Gateway for Pods using the pool, overriding the Subnet's (e.g. 172.17.0.254; dual stack 172.17.0.254,fd00:17::fe).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 100))]
    #[x_kube(validation = cel::ip_pair("gateway"))]
    pub gateway: Option<String>,

    /// The networks (NetworkAttachmentDefinitions, written `<namespace>/<nad>`) the pool serves, as in Spiderpool.
    /// Empty (the default) serves every network whose provider matches the Subnet.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "multus_name_schema")]
    pub multus_name: Vec<String>,

    /// The nodes the pool's addresses are valid on (a node label selector, e.g. matchLabels {rack: a}). A Pod that
    /// names where it runs gets an address only from a pool serving one of those nodes; a Pod that does not is
    /// given the selector as required node affinity. Unset: every node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<LabelSelector>,

    /// Spiderpool's node label selector: applies like nodeSelector (both must match when both are set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_affinity: Option<LabelSelector>,

    /// Spiderpool's node names: when set, the pool serves only these nodes (and those matching the selectors).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 1024), inner(length(max = 253)))]
    pub node_name: Vec<String>,

    /// The Subnet's default pool (Spiderpool's field): Pods of the Subnet's networks that name no pool get their
    /// address from it (when it selects them) instead of from outside every pool. At most one per Subnet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<bool>,

    /// Stop new allocations from the pool (Spiderpool's field): Pods naming it are refused, addresses already
    /// leased stay with their holders (a re-created StatefulSet Pod, an IPAMClaim, a reinvocation) until they go.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disable: Option<bool>,

    /// Addresses of ips never handed out (Spiderpool's field), written like ips entries; each must lie inside ips.
    #[serde(default, rename = "excludeIPs", skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 4096), inner(length(max = 100)))]
    pub exclude_ips: Vec<String>,

    /// Pods allowed to use the pool, by their labels (Spiderpool's field). Unset or empty: every Pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_affinity: Option<LabelSelector>,

    /// Namespaces allowed to use the pool, by their labels (Spiderpool's field); ANDed with namespaces and
    /// namespaceName. Unset or empty: every namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_affinity: Option<LabelSelector>,

    /// Routes added to the interface of a Pod whose address came from the pool, after the Subnet's (a pool
    /// route replaces a Subnet route of the same dst). A Pod's own routes annotation replaces both.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256))]
    pub routes: Vec<RouteSpec>,

    /// SpiderIPPool fields kept as written but not acted on.
    #[serde(flatten)]
    pub spiderpool: SpiderIPPoolFields,
}

impl IPPoolSpec {
    /// The namespaces allowed to use the pool: namespaces and namespaceName together (empty allows all).
    pub fn allowed_namespaces(&self) -> Vec<String> {
        self.namespaces
            .iter()
            .chain(&self.namespace_name)
            .cloned()
            .collect()
    }
}

impl IPPool {
    /// `spec.default: true`.
    pub(crate) fn is_default(&self) -> bool {
        self.spec.default == Some(true)
    }

    /// `spec.disable: true`.
    pub(crate) fn is_disabled(&self) -> bool {
        self.spec.disable == Some(true)
    }

    /// `spec.excludeIPs` as ranges; the error names the entry.
    pub(crate) fn excluded(&self) -> Result<Vec<crate::alloc::IpRange>, String> {
        self.spec
            .exclude_ips
            .iter()
            .enumerate()
            .map(|(i, e)| {
                crate::alloc::parse_entry(e).map_err(|err| format!("spec.excludeIPs[{i}]: {err}"))
            })
            .collect()
    }

    /// Who may use the pool: its Pod and namespace label selectors (`None` each: everyone).
    pub(crate) fn selectors(&self) -> Result<PoolSelectors, SelectorError> {
        Ok(PoolSelectors {
            pods: LabelScope::of("spec.podAffinity", self.spec.pod_affinity.as_ref())?,
            namespaces: LabelScope::of(
                "spec.namespaceAffinity",
                self.spec.namespace_affinity.as_ref(),
            )?,
        })
    }

    /// The nodes the pool serves (nodeSelector, nodeAffinity and nodeName together); `None`: every node.
    pub(crate) fn node_scope(&self) -> Result<Option<NodeScope>, SelectorError> {
        NodeScope::of(
            &[
                ("spec.nodeSelector", self.spec.node_selector.as_ref()),
                ("spec.nodeAffinity", self.spec.node_affinity.as_ref()),
            ],
            &self.spec.node_name,
            "spec.nodeName",
        )
    }

    /// `spec.gateway` (`a` or `a,b`) as addresses; the error names the entry that is not an address.
    pub fn gateways(&self) -> Result<Vec<std::net::IpAddr>, String> {
        self.spec
            .gateway
            .iter()
            .flat_map(|g| g.split(','))
            .map(str::trim)
            .filter(|g| !g.is_empty())
            .map(|g| {
                g.parse()
                    .map_err(|_| format!("spec.gateway {g} is not an IP address"))
            })
            .collect()
    }
}

fn ips_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let mut schema = cel::string_list(4096, 100, cel::address_entry("ips"));
    schema.insert("minItems".into(), 1.into());
    schema
}

fn multus_name_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    cel::string_list(256, 317, cel::nad_ref("multusName entry"))
}

/// Observed state of an IPPool, maintained by the nadipam controller (`kubectl get nipp` shows it like Spiderpool's
/// `kubectl get sp`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IPPoolStatus {
    /// Number of addresses in ips, minus the gateway, excludeIPs and the Subnet's excludeIps.
    #[serde(default, rename = "totalIPCount")]
    pub total_ip_count: i64,
    /// Number of the pool's addresses held by IPLeases.
    #[serde(default, rename = "allocatedIPCount")]
    pub allocated_ip_count: i64,
    /// Number of Nodes the pool serves; absent when it serves every node (no node selector).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matched_nodes: Option<i64>,
    /// `NodesMatched` (only with a node selector): False when no Node matches, so no Pod can use the pool.
    /// `Disabled` (only with spec.disable): reason `Draining` while leases taken from the pool remain (the
    /// message counts them), `Drained` once none does.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_user_yaml() {
        let p: IPPool = serde_saphyr::from_str(
            r#"
apiVersion: nadipam.io/v1
kind: IPPool
metadata: {name: ippool-test}
spec:
  subnet: macvlan
  ips: [172.17.0.200-172.17.0.210, 172.17.0.220, "fd00:17::c8..fd00:17::d2"]
  gateway: 172.17.0.254
  multusName: [kube-system/ovs-conf]
status: {totalIPCount: 11, allocatedIPCount: 2}
"#,
        )
        .unwrap();
        assert_eq!(p.spec.subnet, "macvlan");
        assert_eq!(p.spec.ips.len(), 3);
        assert_eq!(p.spec.multus_name, ["kube-system/ovs-conf"]);
        assert!(p.spec.namespaces.is_empty());
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(v["spec"]["multusName"][0], "kube-system/ovs-conf");
        assert_eq!(
            v["status"],
            serde_json::json!({"totalIPCount": 11, "allocatedIPCount": 2})
        );
        assert!(v["spec"].get("namespaces").is_none());
        let back: IPPool = serde_json::from_value(v).unwrap();
        assert_eq!(back, p);
    }
}
