//! The workload of the chaos run. Each generator loops until the run says stop, paced so that the whole mix
//! makes roughly a dozen allocations a second on two cores:
//!
//! - `bare`: Pods created through the apiserver (named or generateName, some from the IPPool), deleted again;
//!   some are dry runs, some are labelled for the test's validating webhook, which rejects them after nadipam
//!   reserved (orphans for the reclaimer);
//! - `deployments`: three Deployments (two on the Subnet, one on the IPPool) scaled up and down;
//! - `statefulset`: a StatefulSet with an `ip_pool` list whose Pods are deleted (re-created with the same
//!   address) and which is scaled;
//! - `direct`: AdmissionReviews POSTed straight to each replica in turn, the Pod then created with the
//!   returned patch (or never created: an orphan), some dry runs;
//! - `races`: the same fixed address, or (every other round) the same fixed MAC, asked of every ready
//!   replica at once: at most one may win.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde_json::{Value, json};

use super::direct::{Answer, answer, patched, review};
use super::proxy::{Sent, post};
use super::{ChaosError, DENIED, DENY_LABEL, DIRECT_LABEL, World, inc, within};

/// Live Pods each generator keeps at most.
const BARE_CAP: usize = 30;
const DIRECT_CAP: usize = 25;
const RACE_CAP: usize = 10;
/// A directly admitted Pod is created within this long of its admission, or not at all (the reservation is
/// then an orphan): the reclaim window must never pass between admission and create.
const CREATE_DEADLINE: Duration = Duration::from_secs(3);

/// The Deployments and their largest scale.
pub const DEPLOYMENTS: [(&str, i32, bool); 3] = [
    ("web-a", 15, false),
    ("web-b", 15, false),
    ("pooled", 20, true),
];
pub const STATEFULSET: &str = "db";
pub const STATEFULSET_MAX: i32 = 6;

/// How a Pod gets its name.
pub enum Name<'a> {
    Fixed(&'a str),
    Generate(&'a str),
}

/// A Pod asking for the chaos network, with extra labels and annotations.
pub fn pod_json(
    w: &World,
    name: Name<'_>,
    labels: &[(&str, &str)],
    extra: &[(String, String)],
) -> Value {
    let mut annotations = serde_json::Map::new();
    annotations.insert("k8s.v1.cni.cncf.io/networks".into(), json!("macvlan"));
    for (k, v) in extra {
        annotations.insert(k.clone(), json!(v));
    }
    let labels: serde_json::Map<String, Value> = labels
        .iter()
        .map(|(k, v)| ((*k).to_string(), json!(v)))
        .collect();
    let mut meta = json!({"namespace": w.ns, "labels": labels, "annotations": annotations});
    match name {
        Name::Fixed(n) => meta["name"] = json!(n),
        Name::Generate(prefix) => meta["generateName"] = json!(prefix),
    }
    json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": meta,
        "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}],
                 "terminationGracePeriodSeconds": 0}
    })
}

/// A Pod template's annotations for the workloads.
pub fn template_annotations(w: &World, pooled: bool) -> Value {
    let mut a = json!({"k8s.v1.cni.cncf.io/networks": "macvlan"});
    if pooled {
        a[w.pool_key()] = json!(w.pool);
    }
    a
}

pub fn deployment(w: &World, name: &str, pooled: bool) -> Result<Deployment, ChaosError> {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name, "chaos.nadipam.io/kind": "deployment"},
                             "annotations": template_annotations(w, pooled)},
                "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}],
                         "terminationGracePeriodSeconds": 0}
            }
        }
    }))
    .map_err(|e| ChaosError::Admission(format!("deployment literal: {e}")))
}

pub fn statefulset(w: &World) -> Result<StatefulSet, ChaosError> {
    let mut annotations = template_annotations(w, false);
    annotations[format!("{}.kubernetes.io/ip_pool", w.provider)] = json!(w.sts_pool.join(","));
    serde_json::from_value(json!({
        "metadata": {"name": STATEFULSET},
        "spec": {
            "replicas": 3,
            "serviceName": STATEFULSET,
            // No kubelet: Pods never get Ready, so create and delete them without waiting on each other.
            "podManagementPolicy": "Parallel",
            "selector": {"matchLabels": {"app": STATEFULSET}},
            "template": {
                "metadata": {"labels": {"app": STATEFULSET, "chaos.nadipam.io/kind": "statefulset"},
                             "annotations": annotations},
                "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}],
                         "terminationGracePeriodSeconds": 0}
            }
        }
    }))
    .map_err(|e| ChaosError::Admission(format!("statefulset literal: {e}")))
}

/// What became of a Pod create through the apiserver.
enum Created {
    Pod(Box<Pod>),
    /// The test's validating webhook refused it after nadipam reserved: an orphan.
    Rejected,
    /// nadipam refused it; the kind of denial.
    Denied(&'static str),
    /// Anything else (apiserver away, webhook unreachable), classified.
    Failed(String),
}

/// The kind of a nadipam denial, from its message.
pub fn denial_kind(msg: &str) -> &'static str {
    if msg.contains("could not look up reservation") {
        // A reinvocation's token lookup with the API server away: retryable, like any other API error.
        "reservation_api_error"
    } else if msg.contains("nadipam.io/reservation") || held_by_itself(msg) {
        // The Pod's own reservation judged as another's: what a reinvocation must never get.
        "reservation"
    } else if msg.contains("is held by") || msg.contains("already in use") {
        "in_use"
    } else if msg.contains("no free") || msg.contains("is free") {
        "exhausted"
    } else if msg.contains("taken by concurrent allocations") {
        "contention"
    } else if msg.contains("could not reserve") {
        "api_error"
    } else if msg.contains("does not exist") {
        "unknown_object"
    } else {
        "other"
    }
}

/// A denial saying the address is held by the very Pod being admitted (`pod <ns>/<name>: … is held by pod
/// <ns>/<name>`, after the apiserver's `… denied the request: ` or as nadipam answers).
fn held_by_itself(msg: &str) -> bool {
    let answer = msg
        .split_once("denied the request: ")
        .map_or(msg, |(_, r)| r);
    let Some(rest) = answer.strip_prefix("pod ") else {
        return false;
    };
    let Some((pod, _)) = rest.split_once(": ") else {
        return false;
    };
    msg.contains(&format!("is held by pod {pod}"))
}

fn classify(e: &ChaosError) -> Created {
    match e {
        ChaosError::Api(kube::Error::Api(s)) if s.message.contains(DENIED) => Created::Rejected,
        ChaosError::Api(kube::Error::Api(s))
            if s.message.contains("\"pods.nadipam.io\" denied the request") =>
        {
            Created::Denied(denial_kind(&s.message))
        }
        ChaosError::Api(kube::Error::Api(s)) if s.message.contains("failed calling webhook") => {
            Created::Failed("webhook call failed".into())
        }
        ChaosError::Api(kube::Error::Api(s)) => {
            Created::Failed(format!("HTTP {} {}", s.code, s.reason))
        }
        ChaosError::Api(_) => Created::Failed("apiserver unreachable".into()),
        ChaosError::Timeout(..) => Created::Failed("timed out".into()),
        other => Created::Failed(other.to_string()),
    }
}

async fn create(w: &World, pod: Value, dry_run: bool) -> Created {
    let pod: Pod = match serde_json::from_value(pod) {
        Ok(p) => p,
        Err(e) => return Created::Failed(format!("pod literal: {e}")),
    };
    create_pod(w, &pod, dry_run).await
}

async fn create_pod(w: &World, pod: &Pod, dry_run: bool) -> Created {
    let api: Api<Pod> = Api::namespaced(w.client.clone(), &w.ns);
    let params = PostParams {
        dry_run,
        field_manager: None,
    };
    match within("creating a pod", api.create(&params, pod)).await {
        Ok(p) => Created::Pod(Box::new(p)),
        Err(e) => classify(&e),
    }
}

async fn delete_pod(w: &World, name: &str) {
    let api: Api<Pod> = Api::namespaced(w.client.clone(), &w.ns);
    match within(
        "deleting a pod",
        api.delete(name, &DeleteParams::default().grace_period(0)),
    )
    .await
    {
        Ok(_) => inc(&w.stats.pods_deleted),
        Err(ChaosError::Api(kube::Error::Api(s))) if s.code == 404 => {}
        // The Pod stays (until the namespace goes at the end).
        Err(e) => w.stats.error(format!("deleting a pod: {}", short(&e))),
    }
}

fn short(e: &ChaosError) -> String {
    match classify(e) {
        Created::Failed(s) => s,
        _ => e.to_string(),
    }
}

async fn pace(rng: &mut StdRng, lo: u64, hi: u64) {
    tokio::time::sleep(Duration::from_millis(rng.random_range(lo..hi))).await;
}

/// Deletes one of `mine`, chosen at random, when there are `cap` of them, else with probability `p`; true
/// when it did.
async fn churn(w: &World, rng: &mut StdRng, mine: &mut Vec<String>, cap: usize, p: f64) -> bool {
    if mine.len() >= cap || (!mine.is_empty() && rng.random_bool(p)) {
        let name = mine.swap_remove(rng.random_range(0..mine.len()));
        delete_pod(w, &name).await;
        return true;
    }
    false
}

/// Pods through the apiserver: creates (plain, from the IPPool, dry runs, rejected) and deletes.
pub async fn bare(w: Arc<World>, seed: u64, worker: usize) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut mine: Vec<String> = Vec::new();
    let mut n = 0u64;
    while !w.stopping() {
        pace(&mut rng, 120, 260).await;
        if churn(&w, &mut rng, &mut mine, BARE_CAP, 0.35).await {
            continue;
        }
        n += 1;
        let roll = rng.random_range(0..100);
        let (dry, rejected) = (roll < 10, (10..22).contains(&roll));
        let base = format!("bare-{worker}-{n}");
        let name = if rng.random_bool(0.5) {
            Name::Fixed(&base)
        } else {
            Name::Generate("bare-")
        };
        let mut labels = vec![("chaos.nadipam.io/kind", "bare")];
        if rejected {
            labels.push((DENY_LABEL, "true"));
        }
        let mut extra = Vec::new();
        if rng.random_bool(0.2) {
            extra.push((w.pool_key(), w.pool.clone()));
        }
        match create(&w, pod_json(&w, name, &labels, &extra), dry).await {
            Created::Pod(_) if dry => inc(&w.stats.dry_runs),
            Created::Pod(p) => {
                mine.push(p.name_any());
                inc(&w.stats.bare_created)
            }
            Created::Rejected => inc(&w.stats.rejected),
            Created::Denied(kind) => w.stats.denial(format!("apiserver: {kind}")),
            Created::Failed(why) => w.stats.error(format!("pod create: {why}")),
        };
    }
}

/// Sets a workload's `spec.replicas`.
async fn scale<K>(w: &World, api: &Api<K>, name: &str, replicas: i32)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let patch = Patch::Merge(json!({"spec": {"replicas": replicas}}));
    match within(
        "scaling a workload",
        api.patch(name, &PatchParams::default(), &patch),
    )
    .await
    {
        Ok(_) => inc(&w.stats.scales),
        Err(e) => w.stats.error(format!("scaling {name}: {}", short(&e))),
    }
}

/// Scales the Deployments up and down.
pub async fn deployments(w: Arc<World>, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let api: Api<Deployment> = Api::namespaced(w.client.clone(), &w.ns);
    while !w.stopping() {
        pace(&mut rng, 1200, 2500).await;
        let (name, max, _) = DEPLOYMENTS[rng.random_range(0..DEPLOYMENTS.len())];
        scale(&w, &api, name, rng.random_range(0..=max)).await;
    }
}

/// Deletes StatefulSet Pods (re-created with their address) and scales the StatefulSet.
pub async fn statefulset_churn(w: Arc<World>, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let sets: Api<StatefulSet> = Api::namespaced(w.client.clone(), &w.ns);
    let pods: Api<Pod> = Api::namespaced(w.client.clone(), &w.ns);
    while !w.stopping() {
        pace(&mut rng, 1500, 3000).await;
        if rng.random_bool(0.65) {
            let listed = within(
                "listing statefulset pods",
                pods.list(&ListParams::default().labels(&format!("app={STATEFULSET}"))),
            )
            .await;
            match listed {
                Ok(list) if !list.items.is_empty() => {
                    let victim = list.items[rng.random_range(0..list.items.len())].name_any();
                    delete_pod(&w, &victim).await;
                    inc(&w.stats.sts_deletes);
                }
                Ok(_) => {}
                Err(e) => w
                    .stats
                    .error(format!("listing statefulset pods: {}", short(&e))),
            }
        } else {
            scale(
                &w,
                &sets,
                STATEFULSET,
                rng.random_range(1..=STATEFULSET_MAX),
            )
            .await;
        }
    }
}

/// Sends one AdmissionReview to replica `i`; blocking work runs off the runtime.
async fn admit(
    w: &World,
    i: usize,
    uid: &str,
    pod: &Value,
    dry_run: bool,
) -> Result<Answer, String> {
    let url = format!("{}/mutate-pods", w.backends.urls[i]);
    let body = review(uid, &w.ns, pod, dry_run).to_string();
    let agent = w.direct_agent.clone();
    let sent = tokio::task::spawn_blocking(move || post(&agent, &url, body.as_bytes()))
        .await
        .unwrap_or_else(|e| Sent::Cut(format!("request task: {e}")));
    match sent {
        Sent::Answer(200, body) => answer(uid, &body).map_err(|e| e.to_string()),
        Sent::Answer(code, _) => Err(format!("HTTP {code}")),
        Sent::NotDelivered => Err("replica down".into()),
        Sent::Cut(_) => Err("connection cut".into()),
    }
}

/// Creates a directly admitted Pod if its admission is recent enough; false when it was not created.
async fn create_admitted(
    w: &World,
    pod: &Value,
    patch: &json_patch::Patch,
    admitted: Instant,
) -> Option<String> {
    if admitted.elapsed() > CREATE_DEADLINE {
        w.stats.error("direct: too late to create the pod".into());
        return None;
    }
    let pod = match patched(pod, patch) {
        Ok(p) => p,
        Err(e) => {
            w.stats.error(format!("direct: {e}"));
            return None;
        }
    };
    match create_pod(w, &pod, false).await {
        Created::Pod(p) => Some(p.name_any()),
        Created::Failed(why) => {
            w.stats.error(format!("direct: pod create: {why}"));
            None
        }
        Created::Rejected | Created::Denied(_) => {
            w.stats
                .error("direct: pod create refused by a webhook".into());
            None
        }
    }
}

/// AdmissionReviews straight to each replica in turn, then the Pod created (mostly) with the patch.
pub async fn direct(w: Arc<World>, seed: u64, worker: usize) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut mine: Vec<String> = Vec::new();
    let replicas = w.backends.urls.len();
    let mut turn = worker;
    let mut n = 0u64;
    while !w.stopping() {
        pace(&mut rng, 130, 300).await;
        if churn(&w, &mut rng, &mut mine, DIRECT_CAP, 0.3).await {
            continue;
        }
        turn = (turn + 1) % replicas;
        if !w.backends.is_ready(turn) {
            inc(&w.stats.direct_skipped);
            continue;
        }
        n += 1;
        let dry = rng.random_bool(0.08);
        let base = format!("direct-{worker}-{n}");
        let name = if rng.random_bool(0.5) {
            Name::Fixed(&base)
        } else {
            Name::Generate("direct-")
        };
        let mut extra = Vec::new();
        if rng.random_bool(0.25) {
            extra.push((w.pool_key(), w.pool.clone()));
        }
        let pod = pod_json(
            &w,
            name,
            &[("chaos.nadipam.io/kind", "direct"), (DIRECT_LABEL, "true")],
            &extra,
        );
        let uid = uuid::Uuid::new_v4().to_string();
        w.stats.direct_sent[turn].fetch_add(1, Ordering::Relaxed);
        let answered = admit(&w, turn, &uid, &pod, dry).await;
        let admitted = Instant::now();
        match answered {
            Ok(Answer::Patched(_)) if dry => inc(&w.stats.direct_dry),
            Ok(Answer::Patched(patch)) => {
                let created = if rng.random_bool(0.2) {
                    None
                } else {
                    create_admitted(&w, &pod, &patch, admitted).await
                };
                match created {
                    Some(name) => {
                        mine.push(name);
                        inc(&w.stats.direct_created)
                    }
                    None => w.stats.orphan(uid),
                }
            }
            Ok(Answer::Allowed) => w.stats.error("direct: allowed without a patch".into()),
            Ok(Answer::Denied(msg)) => w.stats.denial(format!("direct: {}", denial_kind(&msg))),
            Err(why) => w.stats.error(format!("direct: {why}")),
        };
    }
}

/// One fixed address asked of every ready replica at the same moment.
pub async fn races(w: Arc<World>, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut mine: Vec<String> = Vec::new();
    let mut n = 0u64;
    while !w.stopping() {
        pace(&mut rng, 2000, 4000).await;
        if mine.len() >= RACE_CAP {
            let name = mine.remove(0);
            delete_pod(&w, &name).await;
        }
        let ready: Vec<usize> = (0..w.backends.urls.len())
            .filter(|&i| w.backends.is_ready(i))
            .collect();
        if ready.len() < 2 {
            continue;
        }
        n += 1;
        let (key, wanted) = if n.is_multiple_of(2) {
            inc(&w.stats.mac_races);
            let mac = &w.race_macs[rng.random_range(0..w.race_macs.len())];
            (&w.mac_key, mac.clone())
        } else {
            (
                &w.ip_key,
                w.race_ips[rng.random_range(0..w.race_ips.len())].clone(),
            )
        };
        let entrants: Vec<(usize, String, Value)> = ready
            .iter()
            .map(|&i| {
                let name = format!("race-{n}-{i}");
                let extra = [(key.clone(), wanted.clone())];
                let labels = [("chaos.nadipam.io/kind", "race"), (DIRECT_LABEL, "true")];
                let pod = pod_json(&w, Name::Fixed(&name), &labels, &extra);
                (i, uuid::Uuid::new_v4().to_string(), pod)
            })
            .collect();
        let answers = futures::future::join_all(
            entrants
                .iter()
                .map(|(i, uid, pod)| admit(&w, *i, uid, pod, false)),
        )
        .await;
        let admitted = Instant::now();
        let winners: Vec<usize> = answers
            .iter()
            .enumerate()
            .filter(|(_, a)| matches!(a, Ok(Answer::Patched(_))))
            .map(|(k, _)| k)
            .collect();
        inc(&w.stats.races);
        w.stats
            .race_winners
            .fetch_add(winners.len() as u64, Ordering::Relaxed);
        w.stats
            .race_max_winners
            .fetch_max(winners.len() as u64, Ordering::Relaxed);
        if winners.len() > 1 {
            w.stats.example(format!(
                "race for {wanted}: {} replicas reserved it",
                winners.len()
            ));
        }
        for a in &answers {
            match a {
                Ok(Answer::Denied(msg)) => w.stats.denial(format!("race: {}", denial_kind(msg))),
                Err(why) => w.stats.error(format!("race: {why}")),
                Ok(_) => {}
            }
        }
        for k in winners {
            let Ok(Answer::Patched(patch)) = &answers[k] else {
                continue;
            };
            let created = if rng.random_bool(0.5) {
                create_admitted(&w, &entrants[k].2, patch, admitted).await
            } else {
                None
            };
            match created {
                Some(name) => {
                    mine.push(name);
                    inc(&w.stats.direct_created);
                }
                None => w.stats.orphan(entrants[k].1.clone()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::denial_kind;

    #[test]
    fn a_pods_own_reservation_refused_is_told_from_an_address_held_by_another() {
        let apiserver = "admission webhook \"pods.nadipam.io\" denied the request: pod chaos-1/web-x: network \
                         chaos-1/macvlan: 10.88.0.7 is held by pod chaos-1/web-x";
        assert_eq!(denial_kind(apiserver), "reservation");
        let direct = "pod chaos-1/race-3-0: network chaos-1/macvlan: 10.88.3.200 is held by pod chaos-1/race-3-1";
        assert_eq!(denial_kind(direct), "in_use");
        let token = "pod chaos-1/a: annotation nadipam.io/reservation: reservation t belongs to pod chaos-1/b, \
                     not to this Pod";
        assert_eq!(denial_kind(token), "reservation");
        let away = "pod chaos-1/a: annotation nadipam.io/reservation: could not look up reservation t: the API \
                    server answered ServiceError; retry the request";
        assert_eq!(denial_kind(away), "reservation_api_error");
        let unnamed = "pod chaos-1/web-*: network chaos-1/macvlan: 10.88.3.200 is held by the pod in namespace \
                       chaos-1 that carries reservation t";
        assert_eq!(denial_kind(unnamed), "in_use");
    }
}
