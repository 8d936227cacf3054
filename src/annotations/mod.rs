//! The typed model of the annotations users write (Multus, Kube-OVN multi-NIC, Spiderpool) and of the result
//! annotations nadipam writes back for the CNI plugin.
//!
//! - [`keys`]: every key, in one place.
//! - [`attachments`]: Multus `networks` / `default-network` → [`AttachmentRequest`]s.
//! - [`provider_request`]: Kube-OVN `<provider>.kubernetes.io/*` requests → [`ProviderRequest`].
//! - [`spider_pools`]: Spiderpool `ippool` / `ippools` → [`SpiderPools`].
//! - [`AllocationResult::render`] / [`render_all`] and the inverse [`read_result`].
//! - [`with_handovers`]: nadipam's MAC (and fixed addresses) written into the selection element for Multus.
//! - [`validate`]: all of the above at once, for workload templates.

mod address;
mod attachment;
mod error;
pub mod keys;
mod lookup;
mod names;
mod network;
mod pool;
mod provider;
mod result;
mod route;
mod selection;
mod spider;
mod validate;

#[cfg(test)]
mod tests;

pub use attachment::{AttachmentRequest, PRIMARY_IFNAME, attachments};
pub use error::{AnnotationError, Shown};
pub use keys::has_our_annotations;
pub use lookup::{MAX_ATTACHMENTS, MAX_VALUE_BYTES};
pub(crate) use names::is_dns1123_subdomain;
pub use network::{NetworkRef, NetworkRefError};
pub use pool::PoolRequest;
pub use provider::{ProviderRequest, provider_request};
pub use result::{AllocationResult, ParsedResult, ResultAddress, read_result, render_all};
pub use route::Route;
pub use selection::{Handover, with_handovers};
pub use spider::{SpiderPoolEntry, SpiderPools, spider_pools};
pub use validate::validate;
