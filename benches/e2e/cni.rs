//! Whereabouts against nadipam's whole path, as kubelets on `concurrency` nodes would drive them.
//!
//! Whereabouts allocates inside its CNI ADD: N ADD processes, `concurrency` at a time, each with its own Pod
//! name in `CNI_ARGS`, against the same apiserver (its CRDs installed from its module). A failed ADD is retried,
//! as the kubelet retries a sandbox. nadipam allocates at admission: N Pod creates through the webhook, each
//! followed by the `nadipam` plugin's ADD for that Pod, `concurrency` at a time. Both are checked for
//! addresses handed out twice.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use serde::Serialize;
use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;

use crate::Opts;
use crate::burst;
use crate::common::server::Server;
use crate::cpu;
use crate::env::Bed;

/// Attempts per Whereabouts ADD before the run counts it as lost (the kubelet would go on retrying).
const ATTEMPTS: usize = 20;

#[derive(Clone, Debug, Serialize)]
pub struct Side {
    pub system: String,
    /// Addresses handed out (one per ADD that succeeded).
    pub done: usize,
    /// false when the run hit its time limit first.
    pub complete: bool,
    pub wall_s: f64,
    pub per_s: f64,
    /// ADD process latency (spawn to exit) of successful ADDs.
    pub add_p50_ms: f64,
    pub add_p99_ms: f64,
    /// Pod create latency (nadipam only: the webhook allocates here).
    pub create_p50_ms: Option<f64>,
    pub create_p99_ms: Option<f64>,
    /// ADDs that failed and were retried.
    pub failed_attempts: usize,
    pub distinct_addresses: usize,
    /// The first failure's message, when there was one.
    pub first_error: Option<String>,
    /// CPU seconds per component over the run.
    pub cpu_s: BTreeMap<String, f64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct CniResult {
    pub n: usize,
    pub concurrency: usize,
    pub whereabouts: Side,
    pub nadipam: Side,
    /// nadipam ADDs one at a time on an idle machine: the plugin's own latency, not the queue of a busy one.
    pub nadipam_sequential: Sequential,
    /// Whereabouts wall time / nadipam wall time (a lower bound when Whereabouts did not finish).
    pub speedup: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Sequential {
    pub adds: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub mean_ms: f64,
}

#[derive(Default)]
struct Tally {
    /// (name, CNI_ARGS) of every Pod created, for the sequential ADDs.
    pods: Vec<(String, String)>,
    adds_ms: Vec<f64>,
    creates_ms: Vec<f64>,
    addresses: Vec<String>,
    failed: usize,
    first_error: Option<String>,
}

pub async fn run(bed: &Bed, server: &Server, opts: &Opts) -> CniResult {
    let n = opts.cni_n();
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("temporary directory: {e}"));
    let (nadipam, nadipam_sequential) = nadipam_side(bed, server, opts, n).await;
    let whereabouts = whereabouts_side(bed, opts, n, tmp.path()).await;
    let speedup = whereabouts.wall_s / nadipam.wall_s;
    eprintln!(
        "bench:   whereabouts {:.1} s vs nadipam {:.2} s: {speedup:.1}×",
        whereabouts.wall_s, nadipam.wall_s
    );
    CniResult {
        n,
        concurrency: opts.concurrency,
        whereabouts,
        nadipam,
        nadipam_sequential,
        speedup,
    }
}

async fn nadipam_side(bed: &Bed, server: &Server, opts: &Opts, n: usize) -> (Side, Sequential) {
    let ns = format!("bench-cni-{}", std::process::id());
    let subnet = ns.clone();
    burst::network(bed, &ns, &subnet, "10.97.0.0/16");
    burst::settle(bed, &ns).await;
    eprintln!(
        "bench: nadipam: {n} Pod creates + {n} nadipam ADDs, {} at a time",
        opts.concurrency
    );
    let provider = format!("net.{ns}");
    let conf = serde_json::json!({
        "cniVersion": "1.0.0", "name": "net", "type": "macvlan",
        "ipam": {"type": "nadipam", "provider": provider,
                 "kubeconfig": bed.cluster.kubeconfig.display().to_string()},
    })
    .to_string();
    let plugin = PathBuf::from(env!("CARGO_BIN_EXE_nadipam"));
    let pods: Api<Pod> = Api::namespaced(bed.client.clone(), &ns);
    let key = format!("{provider}.kubernetes.io/ip_address");
    let next = Arc::new(AtomicUsize::new(0));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let cpu_before = cpu::snapshot();
    let start = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..opts.concurrency {
        let (next, tally, pods, conf, plugin, ns, key) = (
            next.clone(),
            tally.clone(),
            pods.clone(),
            conf.clone(),
            plugin.clone(),
            ns.clone(),
            key.clone(),
        );
        let cni_path = bed.cluster.bin_dir.clone();
        workers.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= n {
                    return;
                }
                let name = format!("p-{i}");
                let pod: Pod = serde_json::from_value(serde_json::json!({
                    "metadata": {"name": name,
                                 "annotations": {"k8s.v1.cni.cncf.io/networks": format!("{ns}/net")}},
                    "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}]}
                }))
                .unwrap_or_else(|e| panic!("pod literal: {e}"));
                let t = Instant::now();
                let created = pods
                    .create(&PostParams::default(), &pod)
                    .await
                    .unwrap_or_else(|e| panic!("creating Pod {ns}/{name}: {e}"));
                let create_ms = t.elapsed().as_secs_f64() * 1000.0;
                let uid = created.metadata.uid.clone().unwrap_or_default();
                let want = created
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(&key).cloned())
                    .unwrap_or_else(|| panic!("Pod {ns}/{name} came back without {key}"));
                let args = format!(
                    "IgnoreUnknown=1;K8S_POD_NAMESPACE={ns};K8S_POD_NAME={name};K8S_POD_UID={uid}"
                );
                let (took, out) = add(&plugin, &cni_path, &conf, &format!("nadipam-{i}"), &args).await;
                let got = out
                    .as_ref()
                    .ok()
                    .and_then(|stdout| first_address(stdout))
                    .unwrap_or_else(|| panic!("nadipam ADD for {ns}/{name} failed: {out:?}"));
                assert_eq!(
                    got.split('/').next(),
                    Some(want.as_str()),
                    "nadipam ADD for {ns}/{name} reported {got}, the Pod says {want}"
                );
                let mut t = tally.lock().await;
                t.pods.push((name, args));
                t.creates_ms.push(create_ms);
                t.adds_ms.push(took);
                t.addresses.push(got);
            }
        });
    }
    while let Some(r) = workers.join_next().await {
        r.unwrap_or_else(|e| panic!("nadipam worker: {e}"));
    }
    let wall = start.elapsed();
    let cpu_s = cpu::delta(&cpu_before, &cpu::snapshot());
    let mut tally = Arc::try_unwrap(tally)
        .unwrap_or_else(|_| panic!("workers still hold the tally"))
        .into_inner();
    // The one-at-a-time ADDs measure the plugin on an idle node: not next to the paced binds of the Pods
    // just created.
    burst::binds_drained(server).await;
    let sequential = sequential_adds(
        &plugin,
        &bed.cluster.bin_dir,
        &conf,
        &std::mem::take(&mut tally.pods)[..opts.sequential_adds.min(n)],
    )
    .await;
    burst::cleanup(bed, &ns, &subnet).await;
    let side = side("nadipam", n, wall, tally, true, cpu_s);
    assert_eq!(side.distinct_addresses, n, "nadipam: distinct addresses");
    (side, sequential)
}

/// One ADD after another for Pods that already exist (a repeated ADD of a Pod is answered the same way).
async fn sequential_adds(
    plugin: &Path,
    cni_path: &Path,
    conf: &str,
    pods: &[(String, String)],
) -> Sequential {
    eprintln!("bench: nadipam: {} ADDs one at a time", pods.len());
    let mut took = Vec::with_capacity(pods.len());
    for (i, (name, args)) in pods.iter().enumerate() {
        let (ms, out) = add(plugin, cni_path, conf, &format!("nadipam-seq-{i}"), args).await;
        out.as_ref()
            .ok()
            .and_then(|stdout| first_address(stdout))
            .unwrap_or_else(|| panic!("sequential nadipam ADD for {name} failed: {out:?}"));
        took.push(ms);
    }
    took.sort_by(f64::total_cmp);
    let s = Sequential {
        adds: took.len(),
        p50_ms: percentile(&took, 0.5).unwrap_or(f64::NAN),
        p99_ms: percentile(&took, 0.99).unwrap_or(f64::NAN),
        mean_ms: took.iter().sum::<f64>() / took.len().max(1) as f64,
    };
    eprintln!("bench:   {s:?}");
    s
}

async fn whereabouts_side(bed: &Bed, opts: &Opts, n: usize, tmp: &Path) -> Side {
    let network = format!("bench-{}", std::process::id());
    clean_whereabouts(bed);
    // The flat file Whereabouts insists on (it fails without one): where its datastore is.
    let flat = tmp.join("whereabouts.conf");
    std::fs::write(
        &flat,
        serde_json::json!({
            "datastore": "kubernetes",
            "kubernetes": {"kubeconfig": bed.cluster.kubeconfig.display().to_string()},
            "log_level": "error",
        })
        .to_string(),
    )
    .unwrap_or_else(|e| panic!("writing {}: {e}", flat.display()));
    let log = tmp.join("whereabouts.log");
    let conf = serde_json::json!({
        "cniVersion": "0.3.1", "name": network, "type": "macvlan", "master": "eth0",
        "ipam": {"type": "whereabouts", "range": "10.96.0.0/16", "network_name": network,
                 "configuration_path": flat.display().to_string(),
                 "log_level": "error", "log_file": log.display().to_string()},
    })
    .to_string();
    eprintln!(
        "bench: whereabouts: {n} ADDs, {} at a time (limit {:?})",
        opts.concurrency,
        opts.cni_timeout()
    );
    let plugin = bed.bin("whereabouts");
    let deadline = opts.cni_timeout();
    let next = Arc::new(AtomicUsize::new(0));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let cpu_before = cpu::snapshot();
    let start = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..opts.concurrency {
        let (next, tally, conf, plugin, network) = (
            next.clone(),
            tally.clone(),
            conf.clone(),
            plugin.clone(),
            network.clone(),
        );
        let cni_path = bed.cluster.bin_dir.clone();
        workers.spawn(async move {
            loop {
                if start.elapsed() > deadline {
                    return;
                }
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= n {
                    return;
                }
                let args =
                    format!("IgnoreUnknown=1;K8S_POD_NAMESPACE=bench;K8S_POD_NAME={network}-{i}");
                for _ in 0..ATTEMPTS {
                    if start.elapsed() > deadline {
                        return;
                    }
                    let (took, out) =
                        add(&plugin, &cni_path, &conf, &format!("{network}-{i}"), &args).await;
                    let mut t = tally.lock().await;
                    match out.as_deref().ok().and_then(first_address) {
                        Some(ip) => {
                            t.adds_ms.push(took);
                            t.addresses.push(ip);
                            break;
                        }
                        None => {
                            t.failed += 1;
                            if t.first_error.is_none() {
                                t.first_error = Some(match &out {
                                    Ok(stdout) => stdout.clone(),
                                    Err(e) => e.clone(),
                                });
                            }
                        }
                    }
                }
            }
        });
    }
    while let Some(r) = workers.join_next().await {
        r.unwrap_or_else(|e| panic!("whereabouts worker: {e}"));
    }
    let wall = start.elapsed();
    let cpu_s = cpu::delta(&cpu_before, &cpu::snapshot());
    let tally = Arc::try_unwrap(tally)
        .unwrap_or_else(|_| panic!("workers still hold the tally"))
        .into_inner();
    let complete = tally.addresses.len() == n;
    let side = side("whereabouts", n, wall, tally, complete, cpu_s);
    clean_whereabouts(bed);
    side
}

/// Whereabouts keeps its pools and reservations in kube-system (the admin kubeconfig names no namespace).
fn clean_whereabouts(bed: &Bed) {
    for kind in [
        "ippools.whereabouts.cni.cncf.io",
        "overlappingrangeipreservations.whereabouts.cni.cncf.io",
    ] {
        let _ = bed
            .cluster
            .kubectl()
            .args(["delete", kind, "--all", "-n", "kube-system", "--wait=false"])
            .output();
    }
}

fn side(
    system: &str,
    n: usize,
    wall: Duration,
    mut t: Tally,
    complete: bool,
    cpu_s: BTreeMap<String, f64>,
) -> Side {
    t.adds_ms.sort_by(f64::total_cmp);
    t.creates_ms.sort_by(f64::total_cmp);
    let distinct: HashSet<&str> = t
        .addresses
        .iter()
        .map(|a| a.split('/').next().unwrap_or(a))
        .collect();
    let side = Side {
        system: system.to_owned(),
        done: t.addresses.len(),
        complete,
        wall_s: wall.as_secs_f64(),
        per_s: t.addresses.len() as f64 / wall.as_secs_f64(),
        add_p50_ms: percentile(&t.adds_ms, 0.5).unwrap_or(f64::NAN),
        add_p99_ms: percentile(&t.adds_ms, 0.99).unwrap_or(f64::NAN),
        create_p50_ms: percentile(&t.creates_ms, 0.5),
        create_p99_ms: percentile(&t.creates_ms, 0.99),
        failed_attempts: t.failed,
        distinct_addresses: distinct.len(),
        first_error: t.first_error,
        cpu_s,
    };
    eprintln!("bench:   {side:?}");
    assert_eq!(
        side.distinct_addresses, side.done,
        "{system}: {} addresses handed out, only {} distinct (n = {n})",
        side.done, side.distinct_addresses
    );
    side
}

/// Nearest-rank percentile of sorted values.
pub fn percentile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

/// One CNI ADD as a runtime runs it: a process with the CNI environment and the network config on stdin.
/// Returns its latency in ms and its stdout, or what went wrong.
async fn add(
    plugin: &Path,
    cni_path: &Path,
    conf: &str,
    container: &str,
    args: &str,
) -> (f64, Result<String, String>) {
    let start = Instant::now();
    let child = tokio::process::Command::new(plugin)
        .env("CNI_COMMAND", "ADD")
        .env("CNI_CONTAINERID", container)
        .env("CNI_NETNS", format!("/var/run/netns/{container}"))
        .env("CNI_IFNAME", "net1")
        .env("CNI_PATH", cni_path)
        .env("CNI_ARGS", args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => return (0.0, Err(format!("starting {}: {e}", plugin.display()))),
    };
    if let Some(mut stdin) = child.stdin.take() {
        // A plugin may answer (an error) before reading its input; a broken pipe then is not the failure.
        let _ = stdin.write_all(conf.as_bytes()).await;
    }
    let out = child.wait_with_output().await;
    let took = start.elapsed().as_secs_f64() * 1000.0;
    match out {
        Ok(o) if o.status.success() => (took, Ok(String::from_utf8_lossy(&o.stdout).into_owned())),
        Ok(o) => (
            took,
            Err(format!(
                "exit {}: {} {}",
                o.status,
                String::from_utf8_lossy(&o.stdout).trim(),
                String::from_utf8_lossy(&o.stderr).trim()
            )),
        ),
        Err(e) => (took, Err(format!("waiting for {}: {e}", plugin.display()))),
    }
}

/// The first `ips[].address` of a CNI result.
fn first_address(stdout: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(stdout).ok()?;
    v.get("ips")?
        .as_array()?
        .first()?
        .get("address")?
        .as_str()
        .map(str::to_owned)
}
