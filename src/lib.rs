//! nadipam: cluster-wide IPAM for Multus networks.
//!
//! Addresses are allocated synchronously by a mutating admission webhook when a Pod is created and recorded
//! as one `IPLease` object per address, so the IP exists the moment the Pod exists. The CNI plugin on the
//! node only reads what the webhook wrote.

/// Pure allocation core: ranges, free sets, pools, MACs. No Kubernetes, no I/O.
pub mod alloc;
/// The typed model of every annotation dialect users write, and the annotations nadipam writes back.
pub mod annotations;
/// CRD types (`nadipam.io/v1`) and the minimal foreign types nadipam reads or writes.
pub mod api;
