//! The state every handler and reconciler shares, passed as one `Arc<Context>` instead of long argument lists.

use std::sync::Arc;
use std::time::Duration;

use kube::Client;

use crate::annotations::NetworkRef;
use crate::cache::Cache;
use crate::metrics::Metrics;

/// Knobs that change behaviour; set from the server's flags.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Namespace nadipam runs in (its Secret, Lease and Events live here).
    pub namespace: String,
    /// This replica's identity, for leader election and logs.
    pub identity: String,
    /// How long a Reserved lease may wait for its Pod before the controller reclaims it.
    /// Must exceed the webhook timeout so a Pod still being admitted is never robbed.
    pub reclaim_after: Duration,
    /// Subnet usage (percent) above which an allocation carries an admission warning.
    pub warn_usage_percent: u8,
    /// Publish an `Allocated` Event on every Pod whose lease is bound (which turns binding on). Off by default:
    /// it is one more apiserver write per Pod (about as costly as the Pod create itself), and the Pod's
    /// annotations and its IPLease already say what was allocated.
    pub allocation_events: bool,
    /// Bind each lease to the Pod carrying its token (podName, podUid, phase Bound). Off by default: the token
    /// already proves the holder, and a bind is one more apiserver write per lease.
    pub bind_leases: bool,
    /// Binds per second (0: no limit). Binding records a holder the Pod's token already proves, so it is
    /// paced to leave the apiserver to Pod creates during bursts (`controller/pace.rs`).
    pub bind_rate: u32,
    /// The cluster default network (`--default-network`): Pods that name no
    /// `v1.multus-cni.io/default-network` get an address on it, as Multus gives them an interface on it.
    pub default_network: Option<NetworkRef>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            namespace: "nadipam-system".to_string(),
            identity: "nadipam".to_string(),
            reclaim_after: Duration::from_secs(70),
            warn_usage_percent: 90,
            allocation_events: false,
            bind_leases: false,
            bind_rate: 20,
            default_network: None,
        }
    }
}

impl Settings {
    /// Whether the controller binds leases: asked for, or needed for the `Allocated` Event, which is published
    /// with the bind (so once per lease, across restarts).
    pub fn binds(&self) -> bool {
        self.bind_leases || self.allocation_events
    }
}

pub struct Context {
    pub client: Client,
    pub cache: Arc<Cache>,
    pub metrics: Metrics,
    pub settings: Settings,
}
