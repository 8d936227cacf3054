//! CRD types (`nadipam.io/v1`) and the minimal foreign types nadipam reads or writes.
//!
//! Spec fields are plain strings (CIDRs, IPs, ranges) so the CRD schemas stay structural and users' spelling
//! round-trips; the allocation core parses them. CEL rules (cel.rs) let the apiserver refuse malformed objects
//! on its own.

mod cel;
mod certmanager;
mod crds;
mod ipamclaim;
mod iplease;
mod ippool;
mod lease_name;
mod nad;
mod nad_config;
mod network;
mod peer_fields;
#[cfg(test)]
mod schema_tests;
mod subnet;

pub use certmanager::{
    CaIssuer, CertManagerCondition, Certificate, CertificateSpec, CertificateStatus, Issuer,
    IssuerRef, IssuerSpec, IssuerStatus, SelfSignedIssuer, is_ready,
};
pub use crds::{crd_yaml, crds, manifest_yaml};
pub use ipamclaim::{
    CLAIM_CONDITION, CLAIM_LABEL_PREFIX, IPAMClaim, IPAMClaimSpec, IPAMClaimStatus, OwnerPod,
    claim_label, claims_of_labels,
};
pub use iplease::{
    IPLease, IPLeaseSpec, LABEL_MAC, LABEL_POOL, LABEL_SUBNET, LABEL_TOKEN, LeaseError, LeasePhase,
    OwnerKind, lease_labels, mac_selector, pool_selector, subnet_selector, token_selector,
};
pub use ippool::{IPPool, IPPoolSpec, IPPoolStatus};
pub use lease_name::{lease_name, parse_lease_name};
pub use nad::{NadError, NetworkAttachmentDefinition, NetworkAttachmentDefinitionSpec};
pub use nad_config::{NadConfigError, NadIpam, OUR_IPAM_TYPES, ipam_view};
pub use network::{
    BridgeConfig, CniType, CustomConfig, IpvlanConfig, MacvlanConfig, NETWORK_ANNOTATION, Network,
    NetworkIpam, NetworkSpec, NetworkStatus, SriovConfig,
};
pub(crate) use peer_fields::set_fields;
pub use peer_fields::{KubeOvnSubnetFields, SpiderIPPoolFields};
pub use subnet::{Protocol, RouteSpec, Subnet, SubnetSpec, SubnetStatus};
