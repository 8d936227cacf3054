//! Networks (`nadipam.io/v1`): the reconciler that turns each typed `Network` into the
//! NetworkAttachmentDefinition it generates and owns, and the Subnet its `spec.ipam` describes. It runs on the
//! leader with the lease controller; see docs/networks.md.
//!
//! - `render.rs`: the NAD's CNI JSON per cniType and the Subnet, without I/O (the webhook renders too).
//! - `reconcile.rs`: Subnet, NAD, status, finalizer; `status.rs`: the status and its Ready verdict.

mod error;
mod reconcile;
pub(crate) mod render;
mod status;

use std::sync::Arc;

use futures::StreamExt;
use kube::api::Api;
use kube::runtime::controller::{self, Controller};
use kube::runtime::watcher;

use crate::api::{Network, NetworkAttachmentDefinition};
use crate::context::Context;

/// Reconciles every Network until dropped (the end of the leadership term): on its own changes, on changes of
/// the NADs it owns (a hand edit or deletion is put back at once), and every resync.
pub(crate) async fn run(ctx: Arc<Context>) {
    let client = ctx.client.clone();
    let config = || watcher::Config::default().any_semantic();
    let rec = Arc::new(reconcile::Rec::new(ctx));
    Controller::new(Api::<Network>::all(client.clone()), config())
        .owns(Api::<NetworkAttachmentDefinition>::all(client), config())
        .run(reconcile::reconcile, reconcile::error_policy, rec)
        .for_each(|result| async move {
            match result {
                Ok(_) => {}
                Err(controller::Error::ObjectNotFound(_)) => {}
                // Logged by the error policy.
                Err(controller::Error::ReconcilerFailed(..)) => {}
                Err(e) => tracing::warn!(error = %e, "network controller queue error"),
            }
        })
        .await;
}
