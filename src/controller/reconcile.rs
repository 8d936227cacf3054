//! One lease, one pass: observe from the caches, decide, confirm deletions with live reads, act.

use std::sync::Arc;
use std::time::{Duration, Instant};

use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Action;

use super::bind::bind;
use super::decide::{Decision, Rules, decide};
use super::error::Error;
use super::live;
use super::reclaim::reclaim;
use super::release::release;
use super::state::Ctl;
use crate::api::IPLease;

/// Added to a recheck so the reservation is past its window when it is looked at again.
const SLACK: Duration = Duration::from_millis(200);
/// After a conflict: the cache catches up within moments.
const RETRY: Duration = Duration::from_millis(300);
/// After an API error.
const ERROR_RETRY: Duration = Duration::from_secs(5);

fn rules(ctl: &Ctl) -> Rules {
    Rules {
        reclaim_after: ctl.ctx.settings.reclaim_after,
        bind: ctl.ctx.settings.binds(),
    }
}

/// A wait longer than the resync's round trip is left to the resync, which looks at the lease again before the
/// wait is over; each requeue is held per lease by the queue's timer, and a Subnet full of waiting leases held
/// 65 534 of them.
fn left_to_resync(ctl: &Ctl, wait: Duration) -> bool {
    wait + SLACK > 2 * ctl.resync
}

/// Whether `lease` needs a reconcile: what a relist and the resync ask of every lease before queuing it (the
/// same decision from the same caches a reconcile would start from). A lease with nothing to do, or only a long
/// wait ahead, is not queued: a full /16 of them would otherwise go through the queue every 30 s.
pub(crate) fn wants_reconcile(ctl: &Ctl, lease: &IPLease, now: Instant) -> bool {
    match decide(lease, &ctl.observe(lease, now), &rules(ctl)) {
        Decision::Keep => false,
        Decision::RecheckIn(wait) => !left_to_resync(ctl, wait),
        _ => true,
    }
}

pub(crate) async fn reconcile(lease: Arc<IPLease>, ctl: Arc<Ctl>) -> Result<Action, Error> {
    let rules = rules(&ctl);
    let mut seen = ctl.observe(&lease, Instant::now());
    let mut decision = decide(&lease, &seen, &rules);
    if decision.deletes() {
        // The caches may lag (a Pod created a moment ago); delete only on what the apiserver says now.
        seen = live::observe(&ctl.ctx.client, &lease, &seen).await?;
        decision = decide(&lease, &seen, &rules);
    }
    let name = lease.name_any();
    if !matches!(decision, Decision::Bind(_)) {
        ctl.binds.forget(&name);
    }
    let api: Api<IPLease> = Api::all(ctl.ctx.client.clone());
    let retry = |done: bool| {
        if done {
            Action::await_change()
        } else {
            Action::requeue(RETRY)
        }
    };
    match decision {
        Decision::Keep => Ok(Action::await_change()),
        Decision::RecheckIn(d) if left_to_resync(&ctl, d) => Ok(Action::await_change()),
        Decision::RecheckIn(d) => Ok(Action::requeue(d + SLACK)),
        Decision::Bind(pod) => {
            // The Pod carrying the token holds the lease already; the bind only records it, so it waits for
            // its slot (pace.rs) instead of competing with Pod creates.
            if let Some(wait) = ctl.binds.wait(&name, Instant::now()) {
                return Ok(Action::requeue(wait));
            }
            let done = bind(&api, &lease, &pod).await?;
            if done {
                tracing::info!(lease = %name, ip = %lease.spec.ip, pod = %format!("{}/{}", pod.namespace, pod.name), "bound");
                ctl.events.allocated(&lease, &pod).await;
            }
            Ok(retry(done))
        }
        Decision::Release(why) => Ok(retry(
            release(&ctl, &api, &lease, &why, seen.pod.as_ref()).await?,
        )),
        Decision::Reclaim { age } => Ok(retry(reclaim(&ctl, &api, &lease, age).await?)),
    }
}

pub(crate) fn error_policy(lease: Arc<IPLease>, error: &Error, _ctl: Arc<Ctl>) -> Action {
    tracing::warn!(lease = %lease.name_any(), %error, "reconcile failed; retrying in {}s", ERROR_RETRY.as_secs());
    Action::requeue(ERROR_RETRY)
}
