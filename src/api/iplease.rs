//! `IPLease` (`nadipam.io/v1`): one allocated address. Its name is derived from the Subnet and the address
//! (`api::lease_name`), so creating it is the atomic reservation: a second create of the same
//! address fails with AlreadyExists, whichever webhook replica sends it.

use std::collections::BTreeMap;
use std::net::IpAddr;

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::cel;
use super::lease_name::lease_name;
use crate::alloc::{Mac, MacError};

/// Label on every IPLease naming its Subnet, for listing a Subnet's leases with a label selector.
pub const LABEL_SUBNET: &str = "nadipam.io/subnet";
/// Label on every IPLease carrying its reservation token, for finding all leases of one admission.
pub const LABEL_TOKEN: &str = "nadipam.io/token";
/// Label on IPLeases taken from an IPPool, for counting a pool's allocations.
pub const LABEL_POOL: &str = "nadipam.io/pool";
/// Label holding the lease's MAC as a label value (`02-5a-00-00-00-01`), so the leases holding one MAC in a
/// Subnet can be listed live: a requested MAC is confirmed unique that way after its leases are created.
pub const LABEL_MAC: &str = "nadipam.io/mac";

/// Where a lease stands in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
pub enum LeasePhase {
    // Reserved: written at admission; held by the Pod carrying its token. Bound: the holder's name and UID
    // recorded on it (only with --bind-leases).
    Reserved,
    Bound,
}

/// What keeps the lease alive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
pub enum OwnerKind {
    // Pod: the lease dies with its Pod. StatefulSet: the lease outlives Pod restarts and is reused by the
    // Pod of the same name. IPAMClaim: held by the IPAMClaim named in spec.claim, reused by every Pod naming
    // it, released once the claim is deleted and no Pod uses it.
    Pod,
    StatefulSet,
    IPAMClaim,
}

/// One allocated address and the Pod interface that holds it. Written whole by the webhook.
#[derive(CustomResource, Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[kube(
    group = "nadipam.io",
    version = "v1",
    kind = "IPLease",
    plural = "ipleases",
    shortname = "nlease",
    category = "nadipam",
    derive = "PartialEq",
    doc = "One address allocated from a Subnet to one Pod interface. The name is <subnet>.<address> (IPv6 with ':' written as '-'), so each address can be leased once.",
    validation = cel::lease_name_matches_spec(),
    printcolumn(name = "IP", type_ = "string", json_path = ".spec.ip"),
    printcolumn(name = "MAC", type_ = "string", json_path = ".spec.mac"),
    printcolumn(name = "NAMESPACE", type_ = "string", json_path = ".spec.podNamespace"),
    printcolumn(name = "POD", type_ = "string", json_path = ".spec.podName"),
    printcolumn(name = "PROVIDER", type_ = "string", json_path = ".spec.provider"),
    printcolumn(name = "PHASE", type_ = "string", json_path = ".spec.phase"),
    printcolumn(name = "TOKEN", type_ = "string", json_path = ".spec.token", priority = 1),
    printcolumn(name = "SUBNET", type_ = "string", json_path = ".spec.subnet", priority = 1),
    printcolumn(name = "POOL", type_ = "string", json_path = ".spec.pool", priority = 1),
    printcolumn(name = "CLAIM", type_ = "string", json_path = ".spec.claim", priority = 1),
    printcolumn(name = "AGE", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct IPLeaseSpec {
    /// Name of the Subnet the address belongs to. Immutable.
    #[schemars(length(min = 1, max = 63))]
    #[x_kube(validation = cel::immutable("subnet", "the lease name is derived from it"))]
    pub subnet: String,

    /// The leased address in canonical form (e.g. 172.17.0.100 or fd00:17::64). Immutable.
    #[schemars(length(min = 1, max = 45))]
    #[x_kube(validation = cel::immutable("ip", "the lease name is derived from it"))]
    #[x_kube(validation = cel::canonical_ip("ip"))]
    pub ip: String,

    /// MAC address assigned to the interface, lower case (e.g. 00:00:00:53:6b:bb).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 17))]
    #[x_kube(validation = cel::mac("mac"))]
    pub mac: Option<String>,

    /// Provider of the network the address was allocated for (`<nad>.<namespace>`, `<nad>.<namespace>.ovn` or
    /// `ovn`); the Pod annotations carrying the address start with it.
    #[schemars(length(min = 1, max = 253))]
    pub provider: String,

    /// Interface name inside the Pod (e.g. net1), when the Pod asked for one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 15))]
    pub interface: Option<String>,

    /// Namespace of the Pod holding the address.
    #[schemars(length(min = 1, max = 63))]
    pub pod_namespace: String,

    /// Name of the Pod holding the address. Empty for a Pod created with generateName (its name is not known at
    /// admission) unless the lease is bound: find it by its token, `kubectl get pods -l
    /// nadipam.io/reservation=<token>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub pod_name: Option<String>,

    /// UID of the Pod holding the address; set when the lease is bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub pod_uid: Option<String>,

    /// Reserved: written at admission; held by the Pod carrying its token from then on, and released when that
    /// Pod goes (or, for a StatefulSet lease, when the StatefulSet no longer wants the ordinal). Bound: the
    /// same, with the holder's name and UID recorded (only when the server binds leases, --bind-leases).
    pub phase: LeasePhase,

    /// Reservation token of the admission that wrote the lease; the Pod carries the same value in its
    /// nadipam.io/reservation annotation, which is how the lease finds its Pod before the Pod has a UID.
    #[schemars(length(min = 1, max = 63))]
    pub token: String,

    /// Pod: released when the Pod is deleted. StatefulSet: kept across restarts and reused by the Pod with the same
    /// name, released when the StatefulSet is deleted or scaled below the Pod's ordinal. IPAMClaim: held by the
    /// IPAMClaim in claim (token is the claim's UID), released when the claim is deleted and no Pod uses it.
    pub owner_kind: OwnerKind,

    /// The IPAMClaim (k8s.cni.cncf.io, in podNamespace) holding the address, for ownerKind IPAMClaim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub claim: Option<String>,

    /// The IPPool the address came from, `ip_pool` for a list written in the `<provider>.kubernetes.io/ip_pool`
    /// annotation, or absent for an address taken from the whole Subnet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 63))]
    pub pool: Option<String>,

    /// The network (NetworkAttachmentDefinition) the interface attaches to, written `<namespace>/<nad>`.
    #[schemars(length(min = 1, max = 317))]
    #[x_kube(validation = cel::nad_ref("network"))]
    pub network: String,
}

/// An IPLease whose fields cannot be used; names the lease and the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LeaseError {
    #[error(
        "IPLease {lease}: spec.ip {value:?} is not an IP address (expected e.g. 172.17.0.100 or fd00:17::64)"
    )]
    BadIp { lease: String, value: String },
    #[error("IPLease {lease}: spec.mac: {source}")]
    BadMac {
        lease: String,
        #[source]
        source: MacError,
    },
}

impl IPLease {
    /// The lease for `spec`, named by [`lease_name`] and labelled by [`lease_labels`]; `spec.ip` is rewritten in
    /// canonical form, as the CRD requires. Fails only if `spec.ip` is not an IP address.
    pub fn build(mut spec: IPLeaseSpec) -> Result<IPLease, LeaseError> {
        let ip: IpAddr = spec.ip.parse().map_err(|_| LeaseError::BadIp {
            lease: format!("for subnet {}", spec.subnet),
            value: spec.ip.clone(),
        })?;
        spec.ip = ip.to_string();
        let mut lease = IPLease::new(&lease_name(&spec.subnet, ip), spec);
        lease.metadata.labels = Some(lease_labels(
            &lease.spec.subnet,
            &lease.spec.token,
            lease.spec.pool.as_deref(),
            lease.spec.mac.as_deref(),
        ));
        Ok(lease)
    }

    fn display_name(&self) -> String {
        self.metadata.name.clone().unwrap_or_default()
    }

    /// The leased address.
    pub fn ip(&self) -> Result<IpAddr, LeaseError> {
        self.spec.ip.parse().map_err(|_| LeaseError::BadIp {
            lease: self.display_name(),
            value: self.spec.ip.clone(),
        })
    }

    /// Who holds the address, for messages: `pod <ns>/<name>`, or before the lease is bound to a Pod created
    /// with `generateName` (whose name admission cannot know), the namespace and the reservation token the
    /// Pod carries in its `nadipam.io/reservation` annotation.
    pub fn holder(&self) -> String {
        if let Some(claim) = self.spec.claim.as_deref() {
            return format!("ipamclaim {}/{claim}", self.spec.pod_namespace);
        }
        match self.spec.pod_name.as_deref().filter(|n| !n.is_empty()) {
            Some(name) => format!("pod {}/{name}", self.spec.pod_namespace),
            None => format!(
                "the pod in namespace {} that carries reservation {}",
                self.spec.pod_namespace, self.spec.token
            ),
        }
    }

    /// The interface's MAC, if the lease records one.
    pub fn mac(&self) -> Result<Option<Mac>, LeaseError> {
        self.spec
            .mac
            .as_deref()
            .map(|m| {
                m.parse::<Mac>().map_err(|source| LeaseError::BadMac {
                    lease: self.display_name(),
                    source,
                })
            })
            .transpose()
    }
}

/// The labels every IPLease carries, so the webhook and controller can select a Subnet's, a reservation's or a
/// pool's leases without listing them all.
///
/// Callers pass names that are already valid label values: Subnet and IPPool names are limited to 63 characters by
/// their CRDs, and tokens are UUIDs. The MAC is written as [`mac_label`] spells it.
pub fn lease_labels(
    subnet: &str,
    token: &str,
    pool: Option<&str>,
    mac: Option<&str>,
) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    labels.insert(LABEL_SUBNET.to_string(), subnet.to_string());
    labels.insert(LABEL_TOKEN.to_string(), token.to_string());
    if let Some(pool) = pool {
        labels.insert(LABEL_POOL.to_string(), pool.to_string());
    }
    if let Some(mac) = mac {
        labels.insert(LABEL_MAC.to_string(), mac_label(mac));
    }
    labels
}

/// A MAC as a label value: lower case, '-' for ':' (`02:5A:00:00:00:01` → `02-5a-00-00-00-01`).
pub fn mac_label(mac: &str) -> String {
    mac.to_ascii_lowercase().replace(':', "-")
}

/// A label selector string for the leases of `subnet` holding `mac`.
pub fn mac_selector(subnet: &str, mac: &str) -> String {
    format!("{LABEL_SUBNET}={subnet},{LABEL_MAC}={}", mac_label(mac))
}

/// A label selector string for [`LABEL_SUBNET`], e.g. for `ListParams::labels`.
pub fn subnet_selector(subnet: &str) -> String {
    format!("{LABEL_SUBNET}={subnet}")
}

/// A label selector string for [`LABEL_TOKEN`].
pub fn token_selector(token: &str) -> String {
    format!("{LABEL_TOKEN}={token}")
}

/// A label selector string for [`LABEL_POOL`].
pub fn pool_selector(pool: &str) -> String {
    format!("{LABEL_POOL}={pool}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEASE_YAML: &str = r#"
apiVersion: nadipam.io/v1
kind: IPLease
metadata:
  name: macvlan.172.17.0.100
spec:
  subnet: macvlan
  ip: 172.17.0.100
  mac: 00:00:00:53:6b:bb
  provider: macvlan.default
  interface: net1
  podNamespace: default
  podName: static-ip
  podUid: 6d1c1f5e-0000-4000-8000-000000000001
  phase: Bound
  token: 0c9a8d74-9cb7-44dd-b98e-09fd62def2f4
  ownerKind: StatefulSet
  pool: ip_pool
  network: default/macvlan
"#;

    #[test]
    fn round_trips_user_yaml() {
        let lease: IPLease = serde_saphyr::from_str(LEASE_YAML).unwrap();
        assert_eq!(lease.spec.phase, LeasePhase::Bound);
        assert_eq!(lease.spec.owner_kind, OwnerKind::StatefulSet);
        assert_eq!(
            lease.spec.pod_uid.as_deref(),
            Some("6d1c1f5e-0000-4000-8000-000000000001")
        );
        assert_eq!(lease.ip().unwrap().to_string(), "172.17.0.100");
        assert_eq!(
            lease.mac().unwrap().unwrap().to_string(),
            "00:00:00:53:6b:bb"
        );
        let v = serde_json::to_value(&lease).unwrap();
        assert_eq!(v["spec"]["podNamespace"], "default");
        assert_eq!(v["spec"]["ownerKind"], "StatefulSet");
        assert!(v.get("status").is_none());
        let back: IPLease = serde_json::from_value(v).unwrap();
        assert_eq!(back, lease);
    }

    #[test]
    fn optional_fields_are_omitted() {
        let lease: IPLease = serde_saphyr::from_str(
            "apiVersion: nadipam.io/v1\nkind: IPLease\nmetadata: {name: s.fd00--5}\nspec: {subnet: s, ip: 'fd00::5', \
             provider: s.default, podNamespace: default, phase: Reserved, token: t, ownerKind: Pod, network: default/s}\n",
        )
        .unwrap();
        assert_eq!(lease.spec.pod_name, None);
        assert_eq!(lease.mac().unwrap(), None);
        let spec = serde_json::to_value(&lease.spec).unwrap();
        let keys: Vec<&String> = spec.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            [
                "ip",
                "network",
                "ownerKind",
                "phase",
                "podNamespace",
                "provider",
                "subnet",
                "token"
            ]
        );
    }

    #[test]
    fn build_names_labels_and_canonicalizes() {
        let mut spec: IPLeaseSpec = serde_saphyr::from_str::<IPLease>(LEASE_YAML).unwrap().spec;
        spec.ip = "FD00:17:0::0064".into();
        let lease = IPLease::build(spec.clone()).unwrap();
        assert_eq!(lease.metadata.name.as_deref(), Some("macvlan.fd00-17--64"));
        assert_eq!(lease.spec.ip, "fd00:17::64");
        let labels = lease.metadata.labels.unwrap();
        assert_eq!(labels[LABEL_SUBNET], "macvlan");
        assert_eq!(labels[LABEL_TOKEN], "0c9a8d74-9cb7-44dd-b98e-09fd62def2f4");
        assert_eq!(labels[LABEL_POOL], "ip_pool");

        spec.ip = "172.17.0.300".into();
        assert_eq!(
            IPLease::build(spec).unwrap_err().to_string(),
            "IPLease for subnet macvlan: spec.ip \"172.17.0.300\" is not an IP address (expected e.g. 172.17.0.100 or fd00:17::64)"
        );
    }

    #[test]
    fn field_errors_name_the_lease() {
        let mut lease: IPLease = serde_saphyr::from_str(LEASE_YAML).unwrap();
        lease.spec.mac = Some("ff:ff:ff:ff:ff:ff".into());
        assert_eq!(
            lease.mac().unwrap_err().to_string(),
            "IPLease macvlan.172.17.0.100: spec.mac: ff:ff:ff:ff:ff:ff is a multicast or broadcast MAC; an interface \
             needs a unicast MAC (lowest bit of the first octet clear)"
        );
        lease.spec.ip = "x".into();
        assert_eq!(
            lease.ip().unwrap_err().to_string(),
            "IPLease macvlan.172.17.0.100: spec.ip \"x\" is not an IP address (expected e.g. 172.17.0.100 or fd00:17::64)"
        );
    }

    #[test]
    fn labels_and_selectors() {
        let l = lease_labels("macvlan", "tok", None, None);
        assert_eq!(l.len(), 2);
        assert_eq!(l["nadipam.io/subnet"], "macvlan");
        assert_eq!(l["nadipam.io/token"], "tok");
        assert_eq!(
            lease_labels("m", "t", Some("p"), None)["nadipam.io/pool"],
            "p"
        );
        let l = lease_labels("m", "t", None, Some("02:5A:00:00:00:01"));
        assert_eq!(l["nadipam.io/mac"], "02-5a-00-00-00-01");
        assert_eq!(
            mac_selector("macvlan", "02:5a:00:00:00:01"),
            "nadipam.io/subnet=macvlan,nadipam.io/mac=02-5a-00-00-00-01"
        );
        assert_eq!(subnet_selector("macvlan"), "nadipam.io/subnet=macvlan");
        assert_eq!(token_selector("tok"), "nadipam.io/token=tok");
        assert_eq!(pool_selector("p"), "nadipam.io/pool=p");
    }
}
