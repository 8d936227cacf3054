//! One term of leadership: fill the caches, then reconcile leases from the queue until dropped. Dropping the
//! future stops everything it started (watch tasks, status writer, in-flight reconciles).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kube::runtime::controller::{self, applier};
use tokio::task::JoinSet;

use super::feeds;
use super::publish;
use super::reconcile::{error_policy, reconcile};
use super::state::Ctl;
use crate::context::Context;

/// Reconciles running at once: bounds the API calls in flight after a mass deletion.
const CONCURRENCY: u16 = 16;

pub(crate) async fn run(ctx: Arc<Context>, resync: Duration) {
    let claims = claims_installed(&ctx.client).await;
    let (ctl, writers) = Ctl::new(ctx, resync, claims);
    let (queue, requests) = futures::channel::mpsc::unbounded();
    let mut tasks = JoinSet::new();
    feeds::spawn(&ctl, writers, queue, resync, &mut tasks);
    ctl.wait_ready().await;
    tracing::info!(
        leases = ctl.leases.state().len(),
        pods = ctl.pods.state().len(),
        statefulsets = ctl.sets.state().len(),
        ipamclaims = ctl.claims.state().len(),
        "controller caches synced; reconciling every lease"
    );
    tasks.spawn(publish::run(ctl.clone()));
    tasks.spawn(crate::network::run(ctl.ctx.clone()));
    let store = ctl.leases.clone();
    applier(
        |lease, ctl| Box::pin(reconcile(lease, ctl)),
        error_policy,
        ctl,
        store,
        requests.map(Ok::<_, Infallible>),
        controller::Config::default().concurrency(CONCURRENCY),
    )
    .for_each(|result| async move {
        match result {
            Ok(_) => {}
            // A request for a lease deleted meanwhile: nothing to do.
            Err(controller::Error::ObjectNotFound(_)) => {}
            // Reconcile errors were logged by the error policy.
            Err(controller::Error::ReconcilerFailed(..)) => {}
            Err(e) => tracing::warn!(error = %e, "controller queue error"),
        }
    })
    .await;
}

/// Whether the cluster serves IPAMClaims (`k8s.cni.cncf.io/v1alpha1`): their CRD is not nadipam's, and a watch
/// of a kind the apiserver does not serve fails forever. Without it no claim can hold a lease; one installed
/// later is watched from the next term on, and until then a claim's lease is decided from live reads.
async fn claims_installed(client: &kube::Client) -> bool {
    let gvk = kube::api::GroupVersionKind::gvk("k8s.cni.cncf.io", "v1alpha1", "IPAMClaim");
    match kube::discovery::pinned_kind(client, &gvk).await {
        Ok(_) => true,
        Err(e) => {
            tracing::info!(error = %e, "IPAMClaims are not served (no k8s.cni.cncf.io/v1alpha1 IPAMClaim CRD); not watching them");
            false
        }
    }
}
