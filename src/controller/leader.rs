//! Leader election: one replica runs the controller, every replica keeps serving the webhook. Leadership is a
//! coordination.k8s.io Lease in the nadipam namespace (which must exist), held with kube-lease-manager. The
//! controller runs only while this replica holds the Lease and is stopped (its watches and in-flight
//! reconciles dropped) the moment the Lease is lost.
//!
//! The election is followed with [`LeaseManager::changed`] rather than `LeaseManager::watch`: the latter
//! retries an error forever, and once the Lease is deleted every attempt fails the same way (a renewal is a
//! merge patch, which cannot create the object): no replica would lead again, and the last leader would go
//! on running the controller with nothing to renew. Here a deleted Lease, or an error that lasts past the
//! grace period, ends the election and it is built again, which creates the Lease when missing and finds
//! this replica's own term when it still holds one.

use std::future::Future;
use std::time::{Duration, Instant};

use kube_lease_manager::{LeaseManager, LeaseManagerBuilder, LeaseManagerError};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::error::LeaderError;
use crate::context::Context;

/// The Lease object's name.
pub const LEASE_NAME: &str = "nadipam-controller";
/// Pause before building the election again after an error (other than a deleted Lease).
const RETRY: Duration = Duration::from_secs(5);
/// Pause between attempts after an API error within a term.
const ERROR_PAUSE: Duration = Duration::from_millis(500);

/// Why following the election ended.
enum Ended {
    /// Shutdown was requested.
    Stop,
    /// The election's task ended (an API error); build it again.
    Restart,
}

/// Runs `work` whenever this replica leads, until `stop` turns true. `duration` is the Lease duration: how
/// long a crashed leader blocks the others.
pub(crate) async fn lead<F, Fut>(
    ctx: &Context,
    duration: Duration,
    mut stop: watch::Receiver<bool>,
    mut work: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let secs = duration.as_secs().max(3);
    let grace = (secs / 3).max(1);
    loop {
        let built = LeaseManagerBuilder::new(ctx.client.clone(), LEASE_NAME)
            .with_namespace(&ctx.settings.namespace)
            .with_identity(&ctx.settings.identity)
            .with_duration(secs)
            .with_grace(grace)
            .build()
            .await;
        let manager = match built {
            Ok(m) => m,
            Err(source) => {
                let e = LeaderError {
                    namespace: ctx.settings.namespace.clone(),
                    name: LEASE_NAME.into(),
                    source,
                };
                tracing::error!("{e}; retrying in {}s", RETRY.as_secs());
                if pause_or_stop(&mut stop, RETRY).await {
                    return;
                }
                continue;
            }
        };
        let (mut leading, task) = elect(manager, Duration::from_secs(grace));
        let ended = follow(&mut leading, &mut stop, &mut work).await;
        // Closing the channel makes the election release the Lease, so another replica takes over at once.
        drop(leading);
        // A deleted Lease is created again at once (by whichever replica builds first); any other error
        // waits, so a failing apiserver is not hammered.
        let pause = match tokio::time::timeout(Duration::from_secs(5), task).await {
            Ok(Ok(Err(source))) if deleted(&source) => {
                tracing::warn!(
                    "the leader Lease {}/{LEASE_NAME} was deleted; electing again now (which creates it)",
                    ctx.settings.namespace
                );
                ERROR_PAUSE
            }
            Ok(Ok(Err(source))) => {
                let e = LeaderError {
                    namespace: ctx.settings.namespace.clone(),
                    name: LEASE_NAME.into(),
                    source,
                };
                tracing::warn!("{e}; electing again in {}s", RETRY.as_secs());
                RETRY
            }
            Ok(_) => RETRY,
            Err(_) => {
                tracing::warn!("releasing the leader Lease timed out");
                RETRY
            }
        };
        match ended {
            Ended::Stop => return,
            Ended::Restart => {
                if pause_or_stop(&mut stop, pause).await {
                    return;
                }
            }
        }
    }
}

/// Follows the election in a task: sends whether this replica leads at each change; releases the Lease
/// when every receiver is gone. An API error is retried for up to `patience` (a renewal starts that long
/// before the term ends, so a leader that cannot renew gives up about when its term expires); after that,
/// or at once when the Lease was deleted, the task ends, which drops the sender, so [`follow`] stops the
/// controller and the election is built again.
fn elect(
    manager: LeaseManager,
    patience: Duration,
) -> (
    watch::Receiver<bool>,
    JoinHandle<Result<(), LeaseManagerError>>,
) {
    let (tx, rx) = watch::channel(false);
    let task = tokio::spawn(async move {
        let mut failing_since: Option<Instant> = None;
        loop {
            tokio::select! {
                biased;
                _ = tx.closed() => return manager.release().await,
                changed = manager.changed() => match changed {
                    Ok(leading) => {
                        failing_since = None;
                        if tx.send(leading).is_err() {
                            return manager.release().await;
                        }
                    }
                    Err(e) => {
                        let since = *failing_since.get_or_insert_with(Instant::now);
                        if deleted(&e) || since.elapsed() >= patience {
                            return Err(e);
                        }
                        tracing::debug!(error = %e, "leader election: retrying");
                        tokio::time::sleep(ERROR_PAUSE).await;
                    }
                },
            }
        }
    });
    (rx, task)
}

/// Whether the error says the Lease is gone: the library's own check, or the API's 404 for a renewal.
fn deleted(e: &LeaseManagerError) -> bool {
    match e {
        LeaseManagerError::NonexistentLease(_) => true,
        LeaseManagerError::KubeError(kube::Error::Api(status)) => status.code == 404,
        _ => false,
    }
}

/// True when stop was requested during the pause.
async fn pause_or_stop(stop: &mut watch::Receiver<bool>, pause: Duration) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(pause) => false,
        _ = until(stop, true) => true,
    }
}

/// Waits until the channel holds `want`; false when its sender is gone.
async fn until(rx: &mut watch::Receiver<bool>, want: bool) -> bool {
    rx.wait_for(|v| *v == want).await.is_ok()
}

async fn follow<F, Fut>(
    leading: &mut watch::Receiver<bool>,
    stop: &mut watch::Receiver<bool>,
    work: &mut F,
) -> Ended
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    loop {
        tokio::select! {
            ok = until(leading, true) => if !ok { return Ended::Restart },
            _ = until(stop, true) => return Ended::Stop,
        }
        tracing::info!("elected leader; starting the lease controller");
        let outcome = tokio::select! {
            _ = work() => None,
            ok = until(leading, false) => Some(ok),
            _ = until(stop, true) => return Ended::Stop,
        };
        match outcome {
            None => {
                tracing::error!("the lease controller stopped by itself; restarting it");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Some(ok) => {
                tracing::warn!("lost the leader Lease; stopping the lease controller");
                if !ok {
                    return Ended::Restart;
                }
            }
        }
    }
}
