//! Why an admission is refused. Each message names the object, the field (annotation key or spec path), the
//! value and what would be valid; each variant has a stable reason for metrics and an HTTP code for the
//! apiserver's Status.

use std::net::IpAddr;

use crate::alloc::{AllocError, Family, LayoutError};
use crate::annotations::AnnotationError;
use crate::api::NadError;
use crate::placement::SelectorError;
use crate::webhook::pool_subnet::PoolSubnetError;

#[derive(Debug, thiserror::Error)]
pub enum Denial {
    #[error("{0}")]
    Annotation(#[from] AnnotationError),
    #[error(
        "network {network}: NetworkAttachmentDefinition {network} does not exist; create it or fix the network \
         reference in {key}"
    )]
    UnknownNad { network: String, key: &'static str },
    #[error("network {network}: {source}")]
    Nad {
        network: String,
        source: Box<NadError>,
    },
    #[error(
        "network {network}: no Subnet has spec.provider {provider}; create one (or set \
         {provider}.kubernetes.io/logical_switch to a Subnet name)"
    )]
    NoSubnet { network: String, provider: String },
    #[error("network {network}: {source}")]
    PoolSubnetLookup {
        network: String,
        source: Box<PoolSubnetError>,
    },
    #[error("network {network}: Subnet {subnet} named by {key} does not exist")]
    UnknownSubnet {
        network: String,
        subnet: String,
        key: String,
    },
    #[error(
        "network {network}: Subnet {subnet} serves provider {subnet_provider}, not {provider}; a network may use a \
         Subnet whose spec.provider is its own provider or ovn"
    )]
    ForeignSubnet {
        network: String,
        subnet: String,
        subnet_provider: String,
        provider: String,
    },
    #[error(
        "network {network}: namespace {namespace} may not allocate from Subnet {subnet} (spec.namespaces: {allowed})"
    )]
    SubnetNamespace {
        network: String,
        namespace: String,
        subnet: String,
        allowed: String,
    },
    #[error(
        "network {network}: Subnet {subnet} ({cidr}) overlaps Subnet {other} ({other_cidr}), which this network \
         can also reach and which was created first; an address in both could be given twice, so only {other} \
         allocates: delete Subnet {subnet} or give it a cidrBlock of its own"
    )]
    SubnetOverlap {
        network: String,
        subnet: String,
        cidr: String,
        other: String,
        other_cidr: String,
    },
    #[error("network {network}: Subnet {subnet} is invalid: {source}")]
    Layout {
        network: String,
        subnet: String,
        source: Box<LayoutError>,
    },
    #[error("network {network}: IPPool {pool} named by {key} does not exist")]
    UnknownPool {
        network: String,
        pool: String,
        key: String,
    },
    #[error("network {network}: IPPool {pool} is invalid (spec.ips): {reason}")]
    BadPool {
        network: String,
        pool: String,
        reason: String,
    },
    #[error(
        "network {network}: IPPool {pool} belongs to Subnet {pool_subnet}, but this network allocates from Subnet \
         {subnet}"
    )]
    PoolSubnet {
        network: String,
        pool: String,
        pool_subnet: String,
        subnet: String,
    },
    #[error("network {network}: namespace {namespace} may not use IPPool {pool} ({allowed})")]
    PoolNamespace {
        network: String,
        namespace: String,
        pool: String,
        allowed: String,
    },
    #[error(
        "network {network}: IPPool {pool} serves networks {served} (spec.multusName), not {network}"
    )]
    PoolNetwork {
        network: String,
        pool: String,
        served: String,
    },
    #[error(
        "network {network}: IPPool {pool} serves only what {selector} selects, and {who} do not match; {fix}, or \
         name another IPPool"
    )]
    PoolSelects {
        network: String,
        pool: String,
        selector: String,
        who: String,
        fix: &'static str,
    },
    #[error(
        "network {network}: {} (spec.disable: true): {} no new addresses; name another IPPool, or set \
         spec.disable to false", disabled_pools(pools, *many), if *many { "they give" } else { "it gives" }
    )]
    PoolDisabled {
        network: String,
        pools: String,
        many: bool,
    },
    #[error(
        "network {network}: IPPool {pool}, the default pool of Subnet {subnet} (spec.default: true), has no free \
         {family} address left ({source}); the Pods that name no IPPool get their addresses from it: add \
         addresses to its spec.ips, or name another IPPool (ipam.spidernet.io/ippool)"
    )]
    DefaultPoolFull {
        network: String,
        pool: String,
        subnet: String,
        family: Family,
        source: Box<AllocError>,
    },
    #[error("network {network}: {object}: {source}; fix the selector")]
    BadNodeScope {
        network: String,
        object: String,
        source: SelectorError,
    },
    #[error(
        "network {network}: no IPPool it names serves a node this Pod can run on ({constraint}): {pools}; name an \
         IPPool whose nodes the Pod can run on, or change where the Pod runs (spec.nodeName, spec.nodeSelector, \
         spec.affinity.nodeAffinity)"
    )]
    NoNodeForPools {
        network: String,
        constraint: String,
        pools: String,
    },
    #[error(
        "network {network}: Subnet {subnet} serves only {scope} ({matched}), none of them a node this Pod can run \
         on ({constraint}); use a network whose Subnet serves the Pod's nodes, or change where the Pod runs \
         (spec.nodeName, spec.nodeSelector, spec.affinity.nodeAffinity)"
    )]
    NoNodeForSubnet {
        network: String,
        subnet: String,
        scope: String,
        matched: String,
        constraint: String,
    },
    #[error("network {network}: {source}")]
    Alloc { network: String, source: AllocError },
    #[error("network {network}: annotation {key}: {source}{}", request_hint(.source))]
    Requested {
        network: String,
        key: String,
        source: Box<AllocError>,
    },
    #[error("network {network}: {ip} is held by {holder}")]
    Held {
        network: String,
        ip: IpAddr,
        holder: String,
    },
    #[error("network {network}: MAC {mac} is held by {holder}")]
    MacHeld {
        network: String,
        mac: String,
        holder: String,
    },
    #[error(
        "network {network}: {ip} is requested by two attachments of this Pod; give each its own address"
    )]
    DuplicateInPod { network: String, ip: IpAddr },
    #[error(
        "network {network}: every candidate address was taken by concurrent allocations after {attempts} attempts; \
         retry the request"
    )]
    Contention { network: String, attempts: u32 },
    #[error(
        "network {network}: could not reserve {ip}: the API server answered {source}; retry the request"
    )]
    Api {
        network: String,
        ip: IpAddr,
        source: Box<kube::Error>,
    },
    #[error(
        "network {network}: could not confirm that MAC {mac} is free: the API server answered {source}; \
         retry the request"
    )]
    MacApi {
        network: String,
        mac: String,
        source: Box<kube::Error>,
    },
    #[error(
        "network {network}: annotation {key}: {ip} belongs to IPPool {pool}, whose addresses only the Pods naming \
         it receive; name the pool (ipam.spidernet.io/ippool, or {provider}.kubernetes.io/ip_pool: {pool}) or ask \
         for an address outside it"
    )]
    PoolKept {
        network: String,
        key: String,
        ip: IpAddr,
        pool: String,
        provider: String,
    },
    #[error("network {network}: {}", pools_full(pools, *family, source))]
    PoolsFull {
        network: String,
        family: Family,
        pools: String,
        source: Box<AllocError>,
    },
    #[error(
        "annotation nadipam.io/reservation: reservation {token} belongs to {holder}, not to this Pod; a Pod \
         manifest copied from another Pod must not carry nadipam's annotations: remove nadipam.io/reservation and \
         the <provider>.kubernetes.io/ annotations nadipam wrote"
    )]
    TokenHeld { token: String, holder: String },
    #[error(
        "annotation nadipam.io/reservation: could not look up reservation {token}: the API server answered \
         {source}; retry the request"
    )]
    TokenApi {
        token: String,
        source: Box<kube::Error>,
    },
    #[error(
        "could not read namespace {namespace}, whose labels an IPPool's spec.namespaceAffinity selects on: the API \
         server answered {source}; retry the request"
    )]
    NamespaceApi {
        namespace: String,
        source: Box<kube::Error>,
    },
    #[error("the Pod has no namespace")]
    NoNamespace,
    #[error(
        "network {network}: ipam-claim-reference {claim}: IPAMClaim {namespace}/{claim} does not exist; create it \
         before the Pod (an IPAMClaim is looked up in the Pod's namespace)"
    )]
    ClaimMissing {
        network: String,
        namespace: String,
        claim: String,
    },
    #[error(
        "network {network}: ipam-claim-reference {claim}: IPAMClaim {namespace}/{claim} is for network \
         {claimed:?} (spec.network), not this one; name a claim whose spec.network is {valid}"
    )]
    ClaimNetwork {
        network: String,
        namespace: String,
        claim: String,
        claimed: String,
        valid: String,
    },
    #[error(
        "network {network}: ipam-claim-reference {claim}: IPAMClaim {namespace}/{claim} is already used by pods \
         {pods}; at most two Pods share a claim at once (a live migration's source and target): wait for one to \
         end, or give this Pod a claim of its own"
    )]
    ClaimBusy {
        network: String,
        namespace: String,
        claim: String,
        pods: String,
    },
    #[error(
        "network {network}: ipam-claim-reference {claim}: IPAMClaim {namespace}/{claim} holds {held}, but the Pod \
         asks for {asked}; a claim keeps the addresses its first Pod got: drop the request, or use a new claim"
    )]
    ClaimHolds {
        network: String,
        namespace: String,
        claim: String,
        held: String,
        asked: String,
    },
    #[error(
        "network {network}: ipam-claim-reference {claim}: could not read IPAMClaim {namespace}/{claim} or its \
         Pods: the API server answered {source}; retry the request (is the IPAMClaim CRD, k8s.cni.cncf.io, \
         installed?)"
    )]
    ClaimApi {
        network: String,
        namespace: String,
        claim: String,
        source: Box<kube::Error>,
    },
}

/// `IPPool a is disabled` or `IPPools a, b are disabled`.
fn disabled_pools(pools: &str, many: bool) -> String {
    if many {
        format!("IPPools {pools} are disabled")
    } else {
        format!("IPPool {pools} is disabled")
    }
}

/// One pool, or several tried in order, without a free address of a family.
fn pools_full(pools: &str, family: Family, source: &AllocError) -> String {
    if pools.contains(", ") {
        format!(
            "IPPools {pools}, tried in that order, have no free {family} address left (the last: {source})"
        )
    } else {
        format!("IPPool {pools} has no free {family} address left ({source})")
    }
}

/// What to do instead, for a requested address the Subnet cannot give.
fn request_hint(source: &AllocError) -> &'static str {
    match source {
        AllocError::Outside { .. }
        | AllocError::NetworkOrBroadcast { .. }
        | AllocError::Gateway { .. }
        | AllocError::Excluded { .. }
        | AllocError::NoFamily { .. } => {
            "; use an address Pods may get: inside the Subnet, of its address families, and neither its gateway, \
             network or broadcast address nor in its excludeIps"
        }
        _ => "",
    }
}

fn alloc_reason(source: &AllocError) -> &'static str {
    match source {
        AllocError::Exhausted { .. }
        | AllocError::RangesExhausted { .. }
        | AllocError::ListTaken { .. }
        | AllocError::MacExhausted { .. } => "exhausted",
        AllocError::InUse { .. } | AllocError::MacInUse { .. } => "in_use",
        _ => "invalid_address",
    }
}

fn alloc_code(source: &AllocError) -> u16 {
    match source {
        AllocError::InUse { .. } | AllocError::MacInUse { .. } => 409,
        AllocError::Exhausted { .. }
        | AllocError::RangesExhausted { .. }
        | AllocError::ListTaken { .. } => 409,
        _ => 422,
    }
}

impl Denial {
    /// Names the annotation that asked for the address when an allocation error is about that request
    /// (an address the Subnet cannot give, a StatefulSet ordinal past the list, a list all taken).
    pub(crate) fn for_request(self, key: Option<&str>) -> Denial {
        match (self, key) {
            (Denial::Alloc { network, source }, Some(key))
                if !matches!(
                    source,
                    AllocError::MacInUse { .. } | AllocError::MacExhausted { .. }
                ) =>
            {
                Denial::Requested {
                    network,
                    key: key.to_string(),
                    source: Box::new(source),
                }
            }
            (d, _) => d,
        }
    }

    /// Stable reason label for the denials metric.
    pub fn reason(&self) -> &'static str {
        match self {
            Denial::Annotation(_) => "malformed_annotation",
            Denial::UnknownNad { .. } => "unknown_nad",
            Denial::Nad { source, .. } if source.source.is_provider() => "nad_provider",
            Denial::Nad { .. } => "bad_nad",
            Denial::NoSubnet { .. } | Denial::UnknownSubnet { .. } => "no_subnet",
            Denial::PoolSubnetLookup { source, .. } => source.reason(),
            Denial::ForeignSubnet { .. } => "foreign_subnet",
            Denial::SubnetNamespace { .. } | Denial::PoolNamespace { .. } => {
                "namespace_not_allowed"
            }
            Denial::PoolSelects { .. } => "pool_not_selected",
            Denial::PoolDisabled { .. } => "pool_disabled",
            Denial::DefaultPoolFull { .. } => "exhausted",
            Denial::Layout { .. } => "bad_subnet",
            Denial::UnknownPool { .. } | Denial::BadPool { .. } | Denial::BadNodeScope { .. } => {
                "bad_pool"
            }
            Denial::NoNodeForPools { .. } | Denial::NoNodeForSubnet { .. } => "no_node",
            Denial::PoolSubnet { .. } | Denial::PoolNetwork { .. } => "pool_mismatch",
            Denial::Alloc { source, .. } => alloc_reason(source),
            Denial::Requested { source, .. } => alloc_reason(source),
            Denial::Held { .. } | Denial::MacHeld { .. } | Denial::DuplicateInPod { .. } => {
                "in_use"
            }
            Denial::Contention { .. } => "contention",
            Denial::SubnetOverlap { .. } => "subnet_overlap",
            Denial::PoolKept { .. } => "pool_kept",
            Denial::PoolsFull { .. } => "exhausted",
            Denial::TokenHeld { .. } => "reservation_held",
            Denial::Api { .. }
            | Denial::MacApi { .. }
            | Denial::TokenApi { .. }
            | Denial::NamespaceApi { .. } => "api_error",
            Denial::NoNamespace => "malformed_request",
            Denial::ClaimMissing { .. } => "unknown_claim",
            Denial::ClaimNetwork { .. } | Denial::ClaimHolds { .. } => "claim_mismatch",
            Denial::ClaimBusy { .. } => "claim_in_use",
            Denial::ClaimApi { .. } => "api_error",
        }
    }

    /// HTTP status code carried in the AdmissionResponse's Status.
    pub fn code(&self) -> u16 {
        match self {
            Denial::Annotation(_)
            | Denial::Nad { .. }
            | Denial::NoNamespace
            | Denial::DuplicateInPod { .. } => 400,
            Denial::SubnetNamespace { .. }
            | Denial::PoolNamespace { .. }
            | Denial::PoolSelects { .. }
            | Denial::ForeignSubnet { .. } => 403,
            Denial::UnknownNad { .. }
            | Denial::NoSubnet { .. }
            | Denial::UnknownSubnet { .. }
            | Denial::UnknownPool { .. }
            | Denial::ClaimMissing { .. } => 404,
            Denial::PoolSubnetLookup { source, .. } => source.code(),
            Denial::Held { .. }
            | Denial::MacHeld { .. }
            | Denial::Contention { .. }
            | Denial::PoolKept { .. }
            | Denial::SubnetOverlap { .. }
            | Denial::PoolsFull { .. }
            | Denial::PoolDisabled { .. }
            | Denial::DefaultPoolFull { .. }
            | Denial::NoNodeForPools { .. }
            | Denial::NoNodeForSubnet { .. }
            | Denial::TokenHeld { .. }
            | Denial::ClaimBusy { .. }
            | Denial::ClaimHolds { .. } => 409,
            Denial::Alloc { source, .. } => alloc_code(source),
            Denial::Requested { source, .. } => alloc_code(source),
            Denial::Layout { .. }
            | Denial::BadPool { .. }
            | Denial::BadNodeScope { .. }
            | Denial::PoolSubnet { .. }
            | Denial::PoolNetwork { .. }
            | Denial::ClaimNetwork { .. } => 422,
            Denial::Api { .. }
            | Denial::MacApi { .. }
            | Denial::TokenApi { .. }
            | Denial::NamespaceApi { .. }
            | Denial::ClaimApi { .. } => 500,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_mac_check_names_the_network_the_mac_and_the_api_answer() {
        let status: kube::core::Status = serde_json::from_value(serde_json::json!({
            "status": "Failure", "message": "etcdserver: request timed out", "reason": "Timeout", "code": 504
        }))
        .unwrap();
        let d = Denial::MacApi {
            network: "default/macvlan".into(),
            mac: "02:5a:00:00:00:01".into(),
            source: Box::new(kube::Error::Api(status.into())),
        };
        let text = d.to_string();
        assert!(
            text.starts_with(
                "network default/macvlan: could not confirm that MAC 02:5a:00:00:00:01 is free: the API server \
                 answered "
            ),
            "{text}"
        );
        assert!(text.contains("etcdserver: request timed out"), "{text}");
        assert!(text.ends_with("; retry the request"), "{text}");
        assert_eq!((d.reason(), d.code()), ("api_error", 500));
    }

    #[test]
    fn a_requested_address_names_its_annotation_and_what_is_valid() {
        let key = "macvlan.default.kubernetes.io/ip_address";
        let d = Denial::Alloc {
            network: "default/macvlan".into(),
            source: AllocError::Gateway {
                ip: "172.17.0.1".parse().unwrap(),
                subnet: "macvlan (172.17.0.0/16)".into(),
            },
        }
        .for_request(Some(key));
        assert_eq!(
            d.to_string(),
            "network default/macvlan: annotation macvlan.default.kubernetes.io/ip_address: 172.17.0.1 is the gateway \
             of subnet macvlan (172.17.0.0/16) and cannot be assigned to a Pod; use an address Pods may get: inside \
             the Subnet, of its address families, and neither its gateway, network or broadcast address nor in its \
             excludeIps"
        );
        assert_eq!((d.reason(), d.code()), ("invalid_address", 422));
        let d = Denial::Alloc {
            network: "default/macvlan".into(),
            source: AllocError::OrdinalOutOfRange {
                ordinal: 5,
                size: 2,
            },
        }
        .for_request(Some("macvlan.default.kubernetes.io/ip_pool"));
        assert_eq!(
            d.to_string(),
            "network default/macvlan: annotation macvlan.default.kubernetes.io/ip_pool: StatefulSet ordinal 5 has no \
             entry in an address list of 2 entries (ordinals 0 to 1); add entries or scale down"
        );
        // MAC errors and allocations nobody asked for by address keep their plain form.
        let mac = Denial::Alloc {
            network: "n".into(),
            source: AllocError::MacExhausted {
                subnet: "s".into(),
                tries: 3,
            },
        };
        assert!(matches!(mac.for_request(Some(key)), Denial::Alloc { .. }));
        let any = Denial::Alloc {
            network: "n".into(),
            source: AllocError::EmptyList,
        };
        assert!(matches!(any.for_request(None), Denial::Alloc { .. }));
    }
}
