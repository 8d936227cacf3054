//! The lease lifecycle controller: binds each IPLease to the Pod that carries its reservation token, releases
//! it when the Pod is deleted or finishes (StatefulSet leases: when the StatefulSet is deleted or scaled below
//! the ordinal), reclaims reservations whose Pod never appeared, and keeps Subnet and IPPool status current.
//! One replica runs it (leader election); see docs/lifecycle.md.
//!
//! - `leader.rs`: the election; `run.rs`: one term of leadership; `feeds.rs`: watches → caches → queue.
//! - `state.rs`, `token_index.rs`, `facts.rs`, `owners.rs`: what the reconciler reads.
//! - `reconcile.rs`: observe → `decide.rs` → confirm with `live.rs` reads → act: `bind.rs` (paced by
//!   `pace.rs`), `release.rs`, `reclaim.rs`.
//! - `status.rs`, `publish.rs`: Subnet and IPPool status; `events.rs`: Kubernetes Events.
//! - `snapshot.rs`: the same decision from one listing of the cluster, for `kubectl nadipam orphans`.

mod bind;
pub(crate) mod decide;
mod drain;
mod error;
mod events;
mod facts;
mod feeds;
mod leader;
mod live;
mod owners;
mod pace;
mod publish;
mod reclaim;
mod reconcile;
mod release;
mod run;
pub(crate) mod snapshot;
mod state;
pub(crate) mod status;
mod token_index;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use error::{Error, LeaderError};
pub(crate) use events::REPORTER;
pub use leader::LEASE_NAME;

use crate::context::Context;

/// Knobs of the controller.
#[derive(Clone, Debug)]
pub struct Options {
    /// Leader Lease duration: how long a crashed leader blocks the other replicas.
    pub lease_duration: Duration,
    /// Period of the full resync that re-examines every lease (a safety net behind the watches).
    pub resync: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            lease_duration: Duration::from_secs(15),
            resync: Duration::from_secs(30),
        }
    }
}

/// The running controller; [`Handle::shutdown`] stops it and releases the leader Lease.
pub struct Handle {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// Starts the controller in the background: it waits for the shared caches, then takes part in the leader
/// election and reconciles while it leads.
pub fn start(ctx: Arc<Context>, options: Options) -> Handle {
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(async move {
        let mut early = stopped.clone();
        tokio::select! {
            _ = ctx.cache.wait_ready() => {}
            _ = async { early.wait_for(|s| *s).await.is_ok() } => return,
        }
        let work = || run::run(ctx.clone(), options.resync);
        leader::lead(&ctx, options.lease_duration, stopped, work).await;
    });
    Handle { stop, task }
}

impl Handle {
    /// Stops reconciling and releases the leader Lease (waits at most a few seconds).
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        if tokio::time::timeout(Duration::from_secs(8), self.task)
            .await
            .is_err()
        {
            tracing::warn!("the lease controller did not stop within 8s");
        }
    }
}
