//! Leader election: one replica runs the controller, every replica keeps serving the webhook. Leadership is a
//! coordination.k8s.io Lease in the nadipam namespace (which must exist), held with kube-lease-manager. The
//! controller runs only while this replica holds the Lease and is stopped (its watches and in-flight
//! reconciles dropped) the moment the Lease is lost.

use std::future::Future;
use std::time::Duration;

use kube_lease_manager::LeaseManagerBuilder;
use tokio::sync::watch;

use super::error::LeaderError;
use crate::context::Context;

/// The Lease object's name.
pub const LEASE_NAME: &str = "nadipam-controller";
/// Pause before building the election again after an error.
const RETRY: Duration = Duration::from_secs(5);

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
    loop {
        let built = LeaseManagerBuilder::new(ctx.client.clone(), LEASE_NAME)
            .with_namespace(&ctx.settings.namespace)
            .with_identity(&ctx.settings.identity)
            .with_duration(secs)
            .with_grace((secs / 3).max(1))
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
                if pause_or_stop(&mut stop).await {
                    return;
                }
                continue;
            }
        };
        let (mut leading, task) = manager.watch().await;
        let ended = follow(&mut leading, &mut stop, &mut work).await;
        // Closing the channel makes the manager release the Lease, so another replica takes over at once.
        drop(leading);
        match tokio::time::timeout(Duration::from_secs(5), task).await {
            Ok(Ok(Err(source))) => {
                let e = LeaderError {
                    namespace: ctx.settings.namespace.clone(),
                    name: LEASE_NAME.into(),
                    source,
                };
                tracing::warn!("{e}");
            }
            Ok(_) => {}
            Err(_) => tracing::warn!("releasing the leader Lease timed out"),
        }
        match ended {
            Ended::Stop => return,
            Ended::Restart => {
                if pause_or_stop(&mut stop).await {
                    return;
                }
            }
        }
    }
}

/// True when stop was requested during the pause.
async fn pause_or_stop(stop: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(RETRY) => false,
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
