//! Why an admission is refused. Each message names the object, the field (annotation key or spec path), the
//! value and what would be valid; each variant has a stable reason for metrics and an HTTP code for the
//! apiserver's Status.

use std::net::IpAddr;

use crate::alloc::{AllocError, LayoutError};
use crate::annotations::AnnotationError;
use crate::api::NadError;

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
    #[error(
        "network {network}: namespace {namespace} may not use IPPool {pool} (spec.namespaces: {allowed})"
    )]
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
    #[error("network {network}: {source}")]
    Alloc { network: String, source: AllocError },
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
    #[error("the Pod has no namespace")]
    NoNamespace,
}

impl Denial {
    /// Stable reason label for the denials metric.
    pub fn reason(&self) -> &'static str {
        match self {
            Denial::Annotation(_) => "malformed_annotation",
            Denial::UnknownNad { .. } => "unknown_nad",
            Denial::Nad { .. } => "bad_nad",
            Denial::NoSubnet { .. } | Denial::UnknownSubnet { .. } => "no_subnet",
            Denial::ForeignSubnet { .. } => "foreign_subnet",
            Denial::SubnetNamespace { .. } | Denial::PoolNamespace { .. } => {
                "namespace_not_allowed"
            }
            Denial::Layout { .. } => "bad_subnet",
            Denial::UnknownPool { .. } | Denial::BadPool { .. } => "bad_pool",
            Denial::PoolSubnet { .. } | Denial::PoolNetwork { .. } => "pool_mismatch",
            Denial::Alloc { source, .. } => match source {
                AllocError::Exhausted { .. }
                | AllocError::RangesExhausted { .. }
                | AllocError::ListTaken { .. }
                | AllocError::MacExhausted { .. } => "exhausted",
                AllocError::InUse { .. } | AllocError::MacInUse { .. } => "in_use",
                _ => "invalid_address",
            },
            Denial::Held { .. } | Denial::MacHeld { .. } | Denial::DuplicateInPod { .. } => {
                "in_use"
            }
            Denial::Contention { .. } => "contention",
            Denial::Api { .. } => "api_error",
            Denial::NoNamespace => "malformed_request",
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
            | Denial::ForeignSubnet { .. } => 403,
            Denial::UnknownNad { .. }
            | Denial::NoSubnet { .. }
            | Denial::UnknownSubnet { .. }
            | Denial::UnknownPool { .. } => 404,
            Denial::Held { .. } | Denial::MacHeld { .. } | Denial::Contention { .. } => 409,
            Denial::Alloc { source, .. } => match source {
                AllocError::InUse { .. } | AllocError::MacInUse { .. } => 409,
                AllocError::Exhausted { .. }
                | AllocError::RangesExhausted { .. }
                | AllocError::ListTaken { .. } => 409,
                _ => 422,
            },
            Denial::Layout { .. }
            | Denial::BadPool { .. }
            | Denial::PoolSubnet { .. }
            | Denial::PoolNetwork { .. } => 422,
            Denial::Api { .. } => 500,
        }
    }
}
