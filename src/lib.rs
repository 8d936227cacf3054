//! nadipam: cluster-wide IPAM for Multus networks.
//!
//! Addresses are allocated synchronously by a mutating admission webhook when a Pod is created and recorded
//! as one `IPLease` object per address, so the IP exists the moment the Pod exists. The CNI plugin on the
//! node only reads what the webhook wrote.

/// The node agent: installs the CNI plugin and keeps its kubeconfig current.
pub mod agent;
/// Pure allocation core: ranges, free sets, pools, MACs. No Kubernetes, no I/O.
pub mod alloc;
/// The typed model of every annotation dialect users write, and the annotations nadipam writes back.
pub mod annotations;
/// CRD types (`nadipam.io/v1`) and the minimal foreign types nadipam reads or writes.
pub mod api;
/// Reflector caches and the per-subnet allocation index the webhook decides from.
pub mod cache;
/// The webhook's serving certificate when nadipam issues, rotates and publishes it itself.
pub mod certs;
/// The server's API client over HTTP/2 (`--api-http2`): kube's middleware, one shared connection.
pub mod client;
/// The node-side CNI IPAM plugin: reports the webhook's allocation from the Pod's annotations.
pub mod cni;
/// The state shared by every handler and reconciler.
pub mod context;
/// The lease lifecycle controller: binding, release, reclaim, Subnet and IPPool status (leader only).
pub mod controller;
/// Durations in flags (`8760h`, `1y`).
pub mod duration;
/// Entry points for the fuzz targets in `fuzz/` (feature `fuzzing`); not a stable API.
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzzing;
/// `kubectl nadipam` (binary `kubectl-nadipam`): who holds an address, a Pod's addresses, usage, orphans.
pub mod kubectl;
/// Log output: text or JSON lines (`--log-format`).
pub mod logging;
/// Prometheus metrics.
pub mod metrics;
/// Moving onto nadipam: adopting running Pods' addresses, importing Kube-OVN, Spiderpool and Whereabouts.
pub mod migrate;
/// Networks: the NAD (and Subnet) each typed `Network` generates (leader only).
pub mod network;
/// Node-aware pools: node scopes, Pod node constraints, node affinity.
pub(crate) mod placement;
/// The admission webhook: allocation at Pod creation and validation of everything users apply.
pub mod webhook;
