//! The feeds that fill the controller's caches and turn every relevant change into lease reconcile
//! requests: a lease changed; a Pod carrying a token appeared, changed or went; a StatefulSet changed or went;
//! a relist finished; the periodic resync fired.
//!
//! Leases come from the webhook cache's IPLease watch (one per replica, see `cache`): the term starts from
//! its store, as after a relist, and follows its events. Pods and StatefulSets are watched here, only while
//! this replica leads.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::channel::mpsc::UnboundedSender;
use futures::{Stream, StreamExt};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher::{self, Event};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio::sync::broadcast;
use tokio::task::JoinSet;

use super::facts::{trim_pod, trim_set};
use super::owners::pod_token;
use super::reconcile::wants_reconcile;
use super::state::{Ctl, Writers};
use crate::api::{IPAMClaim, IPLease, claims_of_labels};
use crate::cache::LeaseEvent;

/// Where reconcile requests go.
pub(crate) type Queue = UnboundedSender<ObjectRef<IPLease>>;

/// Spawns the lease feed, the two watches and the resync ticker into `tasks` (they stop when the set is
/// dropped).
pub(crate) fn spawn(
    ctl: &Arc<Ctl>,
    writers: Writers,
    queue: Queue,
    resync: Duration,
    tasks: &mut JoinSet<()>,
) {
    let client = ctl.ctx.client.clone();
    let config = || watcher::Config::default().any_semantic();

    // Subscribed before the store is read (in `follow_leases`), so no event falls in between.
    let events = ctl.ctx.cache.lease_events();
    tasks.spawn(follow_leases(events, ctl.clone(), queue.clone()));

    let pods = watcher::watcher(Api::<Pod>::all(client.clone()), config())
        .default_backoff()
        .modify(trim_pod)
        .reflect(writers.pods);
    tasks.spawn(drive(pods, ctl.clone(), queue.clone(), on_pod));

    let sets = watcher::watcher(Api::<StatefulSet>::all(client.clone()), config())
        .default_backoff()
        .modify(trim_set)
        .reflect(writers.sets);
    tasks.spawn(drive(sets, ctl.clone(), queue.clone(), on_set));

    if ctl.claims_watched {
        let claims = watcher::watcher(Api::<IPAMClaim>::all(client), config())
            .default_backoff()
            .modify(trim_claim)
            .reflect(writers.claims);
        tasks.spawn(drive(claims, ctl.clone(), queue.clone(), on_claim));
    }

    tasks.spawn(resync_spread(ctl.clone(), queue, resync));
}

/// How often the resync hands the queue its next share of the leases.
const RESYNC_STEP: Duration = Duration::from_secs(1);

/// The resync, spread over its period: every lease is looked at once per `period`, a share each second, and
/// queued only when it has something to do. Queued all at once, a full /16 (65 534 leases) kept a core busy
/// for seconds every period, and admissions served meanwhile waited for it.
async fn resync_spread(ctl: Arc<Ctl>, queue: Queue, period: Duration) {
    let steps = (period.as_secs_f64() / RESYNC_STEP.as_secs_f64())
        .ceil()
        .max(1.0) as usize;
    let mut tick = tokio::time::interval(RESYNC_STEP);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    // The term started with every lease queued (`relisted`): the first round starts one period later.
    tokio::time::sleep(period).await;
    loop {
        // Names only: the queue's requests are matched by name, and a round's list lives for a whole period.
        let round: Vec<String> = ctl.leases.state().iter().map(|l| l.name_any()).collect();
        let mut shares = round.chunks(round.len().div_ceil(steps).max(1));
        for _ in 0..steps {
            tick.tick().await;
            let now = Instant::now();
            let wanted = shares
                .next()
                .unwrap_or_default()
                .iter()
                .map(|n| ObjectRef::new(n))
                .filter(|r| {
                    ctl.leases
                        .get(r)
                        .is_some_and(|l| wants_reconcile(&ctl, &l, now))
                })
                .collect();
            if !send(&queue, wanted) {
                return;
            }
        }
    }
}

/// Requests a reconcile of every cached lease that has something to do ([`wants_reconcile`]); false once the
/// queue is closed.
fn all(ctl: &Ctl, queue: &Queue) -> bool {
    let now = Instant::now();
    ctl.leases.state().iter().all(|l| {
        !wants_reconcile(ctl, l, now) || queue.unbounded_send(ObjectRef::new(&l.name_any())).is_ok()
    })
}

fn send(queue: &Queue, refs: Vec<ObjectRef<IPLease>>) -> bool {
    refs.into_iter().all(|r| queue.unbounded_send(r).is_ok())
}

/// Runs one watch until the queue closes; `handle` updates indices and returns false when the queue is gone.
async fn drive<K, S>(
    stream: S,
    ctl: Arc<Ctl>,
    queue: Queue,
    handle: fn(&Ctl, &Queue, &Event<K>) -> bool,
) where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug + Send + 'static,
    S: Stream<Item = Result<Event<K>, watcher::Error>>,
{
    let mut stream = std::pin::pin!(stream);
    while let Some(item) = stream.next().await {
        match item {
            Ok(ev) => {
                if !handle(&ctl, &queue, &ev) {
                    return;
                }
            }
            Err(e) => {
                tracing::warn!(kind = %K::kind(&()), error = %e, "controller watch error; retrying")
            }
        }
    }
}

/// Follows the shared IPLease watch until the queue closes. The term starts as a relist does (index rebuilt
/// from the store, every lease reconciled); a follower that fell behind the channel has lost events, and
/// starts over the same way.
async fn follow_leases(mut events: broadcast::Receiver<LeaseEvent>, ctl: Arc<Ctl>, queue: Queue) {
    if !relisted(&ctl, &queue) {
        return;
    }
    loop {
        let alive = match events.recv().await {
            Ok(ev) => on_lease(&ctl, &queue, &ev),
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                tracing::warn!(
                    missed,
                    "the controller fell behind the lease watch; reconciling every lease"
                );
                relisted(&ctl, &queue)
            }
            // The cache's watch is gone: the replica is stopping.
            Err(broadcast::error::RecvError::Closed) => false,
        };
        if !alive {
            return;
        }
    }
}

/// The store now holds exactly the listed leases: rebuild the index, drop bind slots of leases that went, and
/// look at every lease.
fn relisted(ctl: &Ctl, queue: &Queue) -> bool {
    let state = ctl.leases.state();
    ctl.lease_index.rebuild(state.iter().map(|l| l.as_ref()));
    ctl.binds
        .retain(|name| ctl.leases.get(&ObjectRef::new(name)).is_some());
    all(ctl, queue)
}

fn on_lease(ctl: &Ctl, queue: &Queue, ev: &Event<IPLease>) -> bool {
    match ev {
        Event::Apply(l) => {
            ctl.lease_index.apply(l);
            send(queue, vec![ObjectRef::from_obj(l)])
        }
        Event::Delete(l) => {
            ctl.lease_index.remove(l);
            ctl.binds.forget(&l.name_any());
            true
        }
        // A relist of the shared watch is complete.
        Event::InitDone => relisted(ctl, queue),
        Event::Init | Event::InitApply(_) => true,
    }
}

fn on_pod(ctl: &Ctl, queue: &Queue, ev: &Event<Pod>) -> bool {
    match ev {
        Event::Apply(p) => {
            ctl.pod_index.apply(p);
            send(queue, leases_of(ctl, p))
        }
        Event::Delete(p) => {
            ctl.pod_index.deleted(p, Instant::now());
            send(queue, leases_of(ctl, p))
        }
        // Pods deleted while the watch was down sent no event: look at every lease.
        Event::InitDone => {
            let state = ctl.pods.state();
            ctl.pod_index.rebuild(state.iter().map(|p| p.as_ref()));
            all(ctl, queue)
        }
        Event::Init | Event::InitApply(_) => true,
    }
}

/// The leases reserved under `pod`'s token, those of the IPAMClaims it uses (their token is the claim's
/// UID, the value of the Pod's claim label), and those adopted for it (`kubectl nadipam adopt|import`: their
/// token is the Pod's UID, since the Pod carries no reservation), by the webhook cache's index (see
/// `token_index`).
fn leases_of(ctl: &Ctl, pod: &Pod) -> Vec<ObjectRef<IPLease>> {
    let claims = pod
        .metadata
        .labels
        .as_ref()
        .into_iter()
        .flat_map(|l| claims_of_labels(l).map(|(_, uid)| uid));
    let uid = pod.metadata.uid.as_deref().filter(|u| !u.is_empty());
    pod_token(pod)
        .into_iter()
        .chain(claims)
        .chain(uid)
        .flat_map(|t| ctl.ctx.cache.index.by_token(t))
        .map(|n| ObjectRef::new(&n))
        .collect()
}

/// A claim created, changed or deleted: its leases (token: the claim's UID).
fn on_claim(ctl: &Ctl, queue: &Queue, ev: &Event<IPAMClaim>) -> bool {
    match ev {
        Event::Apply(c) | Event::Delete(c) => send(
            queue,
            ctl.ctx
                .cache
                .index
                .by_token(&c.uid().unwrap_or_default())
                .iter()
                .map(|n| ObjectRef::new(n))
                .collect(),
        ),
        Event::InitDone => all(ctl, queue),
        Event::Init | Event::InitApply(_) => true,
    }
}

/// A claim's identity is all its leases need.
fn trim_claim(claim: &mut IPAMClaim) {
    let m = &mut claim.metadata;
    m.annotations = None;
    m.labels = None;
    m.managed_fields = None;
    claim.status = None;
}

fn on_set(ctl: &Ctl, queue: &Queue, ev: &Event<StatefulSet>) -> bool {
    match ev {
        Event::Apply(s) | Event::Delete(s) => send(
            queue,
            ctl.lease_index
                .by_set(&s.namespace().unwrap_or_default(), &s.name_any()),
        ),
        Event::InitDone => all(ctl, queue),
        Event::Init | Event::InitApply(_) => true,
    }
}
