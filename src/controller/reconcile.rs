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

pub(crate) async fn reconcile(lease: Arc<IPLease>, ctl: Arc<Ctl>) -> Result<Action, Error> {
    let rules = Rules {
        reclaim_after: ctl.ctx.settings.reclaim_after,
        bind: ctl.ctx.settings.binds(),
    };
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
