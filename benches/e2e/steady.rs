//! Latency at a steady rate: Pods created directly (open loop: one create every 1/rate s, whether or not
//! earlier ones have returned) for a fixed time; admission p50/p99 from nadipam's histogram over exactly
//! that window, next to what the client saw.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use serde::Serialize;

use crate::Opts;
use crate::burst::{self, Latency, admission_buckets};
use crate::cni::percentile;
use crate::common::server::Server;
use crate::cpu;
use crate::env::Bed;
use crate::profile::{self, Profile};
use crate::promtext;

#[derive(Clone, Debug, Serialize)]
pub struct SteadyResult {
    pub target_rate: u32,
    pub achieved_rate: f64,
    pub seconds: f64,
    pub pods: usize,
    /// nadipam's admission histogram over the window.
    pub admission: Latency,
    /// Pod create round trip as the client saw it (apiserver, webhook, etcd).
    pub client_p50_ms: f64,
    pub client_p99_ms: f64,
    pub apiserver: burst::Breakdown,
    /// CPU seconds per component over the window (until the last create returned).
    pub cpu_s: BTreeMap<String, f64>,
    /// kube-apiserver's CPU profile over the middle of the phase, split by request kind.
    pub profile: Option<Profile>,
}

/// Phases run so far, for each its own address range.
static PHASE: AtomicUsize = AtomicUsize::new(0);

/// One phase at `rate`; with `profile`, kube-apiserver's CPU profile over all of it but its first and last
/// second.
pub async fn run(
    bed: &Bed,
    server: &Server,
    opts: &Opts,
    rate: u32,
    profile: bool,
) -> SteadyResult {
    let ns = format!("bench-steady-{rate}-{}", std::process::id());
    let subnet = ns.clone();
    // Each phase its own /16 (10.90 and up), so a Subnet still being deleted never overlaps the next one.
    let k = PHASE.fetch_add(1, Ordering::SeqCst);
    // The phase before may leave binds waiting (or releases of the leases it deleted): let them finish.
    burst::binds_drained(server).await;
    burst::network(bed, &ns, &subnet, &format!("10.{}.0.0/16", 90 + k));
    burst::settle(bed, &ns).await;
    let pods: Api<Pod> = Api::namespaced(bed.client.clone(), &ns);
    let total = (rate as u64 * opts.steady_seconds) as usize;
    eprintln!(
        "bench: steady {} Pods/s for {} s ({total} Pods)",
        rate, opts.steady_seconds
    );
    let key = format!("net.{ns}.kubernetes.io/ip_address");
    let template: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"annotations": {"k8s.v1.cni.cncf.io/networks": format!("{ns}/net")}},
        "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}]}
    }))
    .unwrap_or_else(|e| panic!("pod literal: {e}"));

    let api_before = bed.apiserver_metrics().await;
    let web_before = admission_buckets(server);
    let cpu_before = cpu::snapshot();
    let prof_seconds = opts.steady_seconds.saturating_sub(2);
    let prof = (profile && prof_seconds >= 2)
        .then(|| profile::start(bed, Duration::from_secs(1), prof_seconds));
    let (issued, latencies, _) = create_at_rate(&pods, &template, &key, rate, total, "p").await;
    let cpu_s = cpu::delta(&cpu_before, &cpu::snapshot());
    let api_after = bed.apiserver_metrics().await;
    let during = promtext::bucket_delta(&web_before, &admission_buckets(server));
    let profile = match prof {
        Some(task) => task.await.ok().flatten().and_then(|file| {
            profile::summarize(
                &bed.cluster.bin_dir,
                &file,
                Duration::from_secs(prof_seconds),
                f64::from(rate) * prof_seconds as f64,
            )
        }),
        None => None,
    };
    let pick = |q: f64| percentile(&latencies, q).unwrap_or(f64::NAN);
    let result = SteadyResult {
        target_rate: rate,
        achieved_rate: total as f64 / issued.as_secs_f64(),
        seconds: issued.as_secs_f64(),
        pods: total,
        admission: Latency::from_buckets(&during)
            .unwrap_or_else(|| panic!("steady: nadipam's histogram saw no Pod admission")),
        client_p50_ms: pick(0.5),
        client_p99_ms: pick(0.99),
        apiserver: burst::breakdown(&api_before, &api_after),
        cpu_s,
        profile,
    };
    eprintln!("bench:   {result:?}");
    burst::cleanup(bed, &ns, &subnet).await;
    result
}

/// Creates `total` Pods from `template` (named `<prefix>-<i>`) open loop, one every 1/`rate` s whether or not
/// earlier ones have returned. Returns how long issuing took, each create's round trip in ms (sorted) and the
/// addresses (the `key` annotation) the Pods came back with; panics on a failed create, a Pod without its address
/// or an address handed out twice.
pub async fn create_at_rate(
    pods: &Api<Pod>,
    template: &Pod,
    key: &str,
    rate: u32,
    total: usize,
    prefix: &str,
) -> (Duration, Vec<f64>, HashSet<String>) {
    let period = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..total {
        ticker.tick().await;
        let (pods, mut pod, key) = (pods.clone(), template.clone(), key.to_owned());
        let name = format!("{prefix}-{i}");
        pod.metadata.name = Some(name.clone());
        tasks.spawn(async move {
            let t = Instant::now();
            let created = pods.create(&PostParams::default(), &pod).await;
            let took = t.elapsed();
            let ip = created
                .unwrap_or_else(|e| panic!("creating Pod {name}: {e}"))
                .metadata
                .annotations
                .and_then(|a| a.get(&key).cloned())
                .unwrap_or_else(|| panic!("Pod {name} came back without {key}"));
            (took, ip)
        });
    }
    let issued = start.elapsed();
    let mut latencies = Vec::with_capacity(total);
    let mut ips = HashSet::new();
    while let Some(r) = tasks.join_next().await {
        let (took, ip) = r.unwrap_or_else(|e| panic!("create task: {e}"));
        latencies.push(took.as_secs_f64() * 1000.0);
        assert!(
            ips.insert(ip.clone()),
            "steady: address {ip} handed out twice"
        );
    }
    latencies.sort_by(f64::total_cmp);
    (issued, latencies, ips)
}
