//! Reclaiming a reservation whose Pod never appeared (another webhook denied it, the apiserver failed after
//! admission, the client went away). The reconciler only gets here after the reclaim window has passed and a
//! live read found no Pod carrying the lease's token.

use std::time::Duration;

use kube::ResourceExt;
use kube::api::Api;

use super::error::Error;
use super::events::reclaimed_note;
use super::release::{Deleted, delete};
use super::state::Ctl;
use crate::api::IPLease;
use crate::metrics::SubnetLabels;

/// Deletes the orphaned reservation, counts it and leaves a Warning Event. `Ok(false)`: decide again.
pub(crate) async fn reclaim(
    ctl: &Ctl,
    api: &Api<IPLease>,
    lease: &IPLease,
    age: Duration,
) -> Result<bool, Error> {
    match delete(
        api,
        lease,
        "reclaiming a reservation whose pod never appeared",
    )
    .await?
    {
        Deleted::Now => {
            tracing::warn!(lease = %lease.name_any(), "{}", reclaimed_note(lease, age));
            ctl.ctx
                .metrics
                .reclaimed
                .get_or_create(&SubnetLabels {
                    subnet: lease.spec.subnet.clone(),
                })
                .inc();
            ctl.events.reclaimed(lease, age).await;
            Ok(true)
        }
        Deleted::Gone => Ok(true),
        Deleted::Changed => Ok(false),
    }
}
