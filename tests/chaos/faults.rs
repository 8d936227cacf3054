//! The faults of the chaos run: a random replica SIGKILLed every few seconds and started again, the leader
//! Lease stolen or deleted (the leader must notice it lost it and another replica take over), and one
//! kube-apiserver restart (`e2e/cluster restart-apiserver`: killed and started again).

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde_json::json;

use super::{ChaosError, World, inc, within};

/// The identity the thief writes into the leader Lease.
pub const THIEF: &str = "chaos-thief";

/// Sleeps up to `total`, waking early when the faults are to stop; true if they are.
async fn nap(w: &World, total: Duration) -> bool {
    let end = Instant::now() + total;
    while Instant::now() < end {
        if w.faults_stopping() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100).min(end - Instant::now())).await;
    }
    w.faults_stopping()
}

/// Reports replicas that exited by themselves (a crash is a finding) and starts them again.
pub fn revive_crashed(w: &World) {
    for (i, r) in w.replicas.iter().enumerate() {
        let mut r = r.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = r.check() {
            inc(&w.stats.crashes);
            w.stats
                .example(format!("replica {i} crashed: {e}\n{}", r.log_tail(30)));
            if let Err(e) = r.start() {
                w.stats
                    .error(format!("restarting crashed replica {i}: {e}"));
            }
        }
    }
}

/// Every 3–6 s: SIGKILL a random replica, wait 0.5–2 s, start it again on the same port.
pub async fn killer(w: Arc<World>, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    loop {
        if nap(&w, Duration::from_millis(rng.random_range(3000..6000))).await {
            return;
        }
        revive_crashed(&w);
        let i = rng.random_range(0..w.replicas.len());
        {
            let mut r = w.replicas[i].lock().unwrap_or_else(|p| p.into_inner());
            r.kill();
        }
        w.backends.mark_down(i);
        inc(&w.stats.kills);
        // Restart even when asked to stop meanwhile: the run ends with every replica up.
        nap(&w, Duration::from_millis(rng.random_range(500..2000))).await;
        let started = w.replicas[i]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .start();
        match started {
            Ok(()) => inc(&w.stats.restarts),
            Err(e) => w.stats.error(format!("restarting replica {i}: {e}")),
        };
    }
}

/// Every 10–14 s, alternately: write another holder into the leader Lease (the leader finds it is no
/// longer the holder at its next renewal and stops; another replica takes over once the thief's term
/// expires), or delete the Lease (recreated by whoever elects next).
pub async fn thief(w: Arc<World>, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let api: Api<Lease> = Api::namespaced(w.client.clone(), &w.sys_ns);
    let mut steal = true;
    loop {
        if nap(&w, Duration::from_millis(rng.random_range(10_000..14_000))).await {
            return;
        }
        let done: Result<(), ChaosError> = if steal {
            let now = MicroTime(Timestamp::now());
            let patch = json!({"spec": {"holderIdentity": THIEF, "acquireTime": now, "renewTime": now,
                                        "leaseDurationSeconds": w.leader_lease.as_secs()}});
            within(
                "stealing the leader Lease",
                api.patch(
                    nadipam::controller::LEASE_NAME,
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                ),
            )
            .await
            .map(|_| ())
        } else {
            within(
                "deleting the leader Lease",
                api.delete(nadipam::controller::LEASE_NAME, &DeleteParams::default()),
            )
            .await
            .map(|_| ())
        };
        match done {
            Ok(()) if steal => inc(&w.stats.steals),
            Ok(()) => inc(&w.stats.lease_deletes),
            Err(e) => w.stats.error(format!("leader fault: {e}")),
        };
        steal = !steal;
    }
}

/// The current holder of the leader Lease, if its term has not expired.
pub async fn leader(w: &World) -> Option<String> {
    let api: Api<Lease> = Api::namespaced(w.client.clone(), &w.sys_ns);
    let lease = within(
        "reading the leader Lease",
        api.get_opt(nadipam::controller::LEASE_NAME),
    )
    .await
    .ok()??;
    let spec = lease.spec?;
    let holder = spec.holder_identity?;
    let renewed = spec.renew_time?.0;
    let secs = i64::from(spec.lease_duration_seconds.unwrap_or(0));
    let until = renewed
        .checked_add(k8s_openapi::jiff::SignedDuration::from_secs(secs))
        .ok()?;
    (until > Timestamp::now()).then_some(holder)
}

/// Follows the leader Lease: counts changes of leader among the replicas and the time with none.
pub async fn leader_watch(w: Arc<World>) {
    let mut last: Option<String> = None;
    let mut since = Instant::now();
    loop {
        if nap(&w, Duration::from_millis(250)).await {
            return;
        }
        let now = leader(&w).await.filter(|h| h != THIEF);
        if now != last {
            if last.is_none() {
                w.stats
                    .leaderless_ms
                    .fetch_add(since.elapsed().as_millis() as u64, Ordering::Relaxed);
            }
            if now.is_some() {
                inc(&w.stats.leader_changes);
            }
            since = Instant::now();
            last = now;
        }
    }
}

/// `e2e/cluster restart-apiserver`; returns how long the apiserver was away.
pub fn restart_apiserver(repo: &Path) -> Result<Duration, ChaosError> {
    let t0 = Instant::now();
    let out = Command::new(repo.join("e2e/cluster"))
        .arg("restart-apiserver")
        .output()
        .map_err(|e| ChaosError::Process(format!("running e2e/cluster restart-apiserver: {e}")))?;
    if !out.status.success() {
        return Err(ChaosError::Process(format!(
            "e2e/cluster restart-apiserver failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(t0.elapsed())
}
