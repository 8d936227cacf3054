//! How the cost grows with the leases a network holds: one Subnet (a /16 in the full run) filled step by step
//! with IPLeases until the last address, and at each step a freshly started nadipam-server measured: start-up
//! until its caches are synced and it is ready, its memory (RSS), and admission at a steady rate (whose Pods take
//! the next addresses; at the last step they are the Subnet's last picks). Then one more Pod is refused, naming
//! the full Subnet.
//!
//! The leases standing in for Pods are created directly, as Reserved leases of Pods that have not appeared yet;
//! the server runs with a reclaim window longer than the phase, so it keeps them (a real cluster's 65 534 Pods
//! would not fit this machine, and the server's work per lease is the same: watch, index, status).

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use futures::StreamExt;
use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use nadipam::api::{IPLease, IPLeaseSpec, LeasePhase, OwnerKind, subnet_selector};
use serde::Serialize;

use crate::burst::{self, Latency, admission_buckets};
use crate::cni::percentile;
use crate::common::server::Server;
use crate::env::Bed;
use crate::{promtext, steady};

const NAMESPACE: &str = "bench-scale";

/// One step: the server started with `leases` leases in the Subnet.
#[derive(Clone, Debug, Serialize)]
pub struct Point {
    pub leases: usize,
    /// Creating the leases that brought the Subnet to `leases` (not the server's work).
    pub fill_s: f64,
    /// Process start until `/readyz` answers 200 (caches synced, webhook registered).
    pub startup_s: f64,
    pub rss_ready_mib: f64,
    /// After the steady phase (its Pods' leases added).
    pub rss_after_mib: f64,
    pub rate: u32,
    pub pods: usize,
    pub admission: Latency,
    pub client_p50_ms: f64,
    pub client_p99_ms: f64,
    /// CPU seconds per component over the steady phase.
    pub cpu_s: std::collections::BTreeMap<String, f64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ScaleResult {
    pub cidr: String,
    /// Addresses the Subnet can hand out (its hosts less the gateway).
    pub capacity: usize,
    pub points: Vec<Point>,
    /// The refusal of the create after the last address went.
    pub full_refusal: String,
}

/// Runs the steps `levels` (lease counts, ascending, each below capacity − `pods`) and then the full Subnet.
pub async fn run(bed: &Bed, prefix: u8, levels: &[usize], rate: u32, pods: usize) -> ScaleResult {
    let net = Ipv4Net::new(Ipv4Addr::new(10, 200, 0, 0), prefix)
        .unwrap_or_else(|e| panic!("scale: /{prefix}: {e}"));
    // The Subnet's gateway is its first address (no `gateway` given), never handed out.
    let capacity = net.hosts().count() - 1;
    let leases: Api<IPLease> = Api::all(bed.client.clone());
    cleanup(bed, &leases).await;
    burst::network(bed, NAMESPACE, NAMESPACE, &net.to_string());
    burst::settle(bed, NAMESPACE).await;
    let mut steps: Vec<usize> = levels
        .iter()
        .copied()
        .filter(|&l| l + pods < capacity)
        .collect();
    steps.push(capacity - pods);
    let mut points = Vec::new();
    let mut taken: HashSet<Ipv4Addr> = HashSet::new();
    for (k, &level) in steps.iter().enumerate() {
        taken.extend(held(&leases).await);
        let t = Instant::now();
        fill(&leases, &net, &mut taken, level).await;
        let fill_s = t.elapsed().as_secs_f64();
        let (server, startup_s) = start_server().await;
        let rss_ready_mib = rss_mib(&server);
        eprintln!(
            "bench: scale {level} leases: filled in {fill_s:.1} s; server ready in {startup_s:.2} s, {rss_ready_mib:.1} MiB"
        );
        let cpu_before = crate::cpu::snapshot();
        let (admission, client) = steady_phase(&server, rate, pods, k).await;
        let cpu_s = crate::cpu::delta(&cpu_before, &crate::cpu::snapshot());
        let rss_after_mib = rss_mib(&server);
        eprintln!(
            "bench:   admission p50 {:.2} ms p99 {:.2} ms at {rate}/s; {rss_after_mib:.1} MiB after; CPU {cpu_s:?}",
            admission.p50_ms, admission.p99_ms
        );
        points.push(Point {
            leases: level,
            fill_s,
            startup_s,
            rss_ready_mib,
            rss_after_mib,
            rate,
            pods,
            admission,
            client_p50_ms: client.0,
            client_p99_ms: client.1,
            cpu_s,
        });
        if k + 1 < steps.len() {
            server.stop();
        } else {
            let full_refusal = refused(bed).await;
            server.stop();
            cleanup(bed, &leases).await;
            return ScaleResult {
                cidr: net.to_string(),
                capacity,
                points,
                full_refusal,
            };
        }
    }
    unreachable!("the last step returns")
}

/// The addresses the Subnet's leases hold now.
async fn held(leases: &Api<IPLease>) -> Vec<Ipv4Addr> {
    leases
        .list(&ListParams::default().labels(&subnet_selector(NAMESPACE)))
        .await
        .unwrap_or_else(|e| panic!("listing the scale Subnet's leases: {e}"))
        .items
        .iter()
        .filter_map(|l| l.spec.ip.parse().ok())
        .collect()
}

/// Creates leases (64 at a time) on the lowest free addresses but the gateway until `taken` holds `level`.
async fn fill(leases: &Api<IPLease>, net: &Ipv4Net, taken: &mut HashSet<Ipv4Addr>, level: usize) {
    let want = level.saturating_sub(taken.len());
    let free: Vec<Ipv4Addr> = net
        .hosts()
        .skip(1)
        .filter(|ip| !taken.contains(ip))
        .take(want)
        .collect();
    let creates = futures::stream::iter(free.iter().copied().map(|ip| {
        let leases = leases.clone();
        async move {
            let lease = IPLease::build(IPLeaseSpec {
                subnet: NAMESPACE.into(),
                ip: ip.to_string(),
                mac: None,
                provider: format!("net.{NAMESPACE}"),
                interface: None,
                pod_namespace: NAMESPACE.into(),
                pod_name: None,
                pod_uid: None,
                phase: LeasePhase::Reserved,
                token: format!("scale-{}", u32::from(ip)),
                owner_kind: OwnerKind::Pod,
                claim: None,
                pool: None,
                network: format!("{NAMESPACE}/net"),
            })
            .unwrap_or_else(|e| panic!("{e}"));
            leases
                .create(&PostParams::default(), &lease)
                .await
                .unwrap_or_else(|e| panic!("creating the lease of {ip}: {e}"));
        }
    }))
    .buffer_unordered(64);
    creates.collect::<Vec<()>>().await;
    taken.extend(free);
}

/// A server that keeps the stand-in leases (reclaim window of a day) and binds at once; returns it with the time
/// from its start until `/readyz` answered 200.
async fn start_server() -> (Server, f64) {
    let t = Instant::now();
    let server = crate::common::server::start(&[
        "--namespace",
        "default",
        "--reclaim-after",
        "86400",
        "--bind-rate",
        "0",
    ]);
    let ready = format!("{}/readyz", server.metrics_url);
    crate::env::until(
        "nadipam-server ready",
        Duration::from_secs(300),
        Duration::from_millis(20),
        || {
            let ready = ready.clone();
            async move {
                let out = tokio::process::Command::new("curl")
                    .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", &ready])
                    .output()
                    .await
                    .map_err(|e| e.to_string())?;
                let code = String::from_utf8_lossy(&out.stdout).into_owned();
                if code == "200" {
                    Ok(())
                } else {
                    Err(format!("/readyz: {code}"))
                }
            }
        },
    )
    .await;
    (server, t.elapsed().as_secs_f64())
}

/// The server's resident memory, from /proc.
fn rss_mib(server: &Server) -> f64 {
    let status =
        std::fs::read_to_string(format!("/proc/{}/status", server.pid())).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn template() -> Pod {
    serde_json::from_value(serde_json::json!({
        "metadata": {"annotations": {"k8s.v1.cni.cncf.io/networks": format!("{NAMESPACE}/net")}},
        "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}]}
    }))
    .unwrap_or_else(|e| panic!("pod literal: {e}"))
}

/// `pods` Pods at `rate` from the Subnet: the webhook's histogram over them, and the client's p50/p99.
async fn steady_phase(
    server: &Server,
    rate: u32,
    pods: usize,
    step: usize,
) -> (Latency, (f64, f64)) {
    let api: Api<Pod> = Api::namespaced(crate::common::cluster_info().client().await, NAMESPACE);
    let key = format!("net.{NAMESPACE}.kubernetes.io/ip_address");
    let before = admission_buckets(server);
    let (_, latencies, _) =
        steady::create_at_rate(&api, &template(), &key, rate, pods, &format!("s{step}")).await;
    let during = promtext::bucket_delta(&before, &admission_buckets(server));
    let admission = Latency::from_buckets(&during)
        .unwrap_or_else(|| panic!("scale: nadipam's histogram saw no Pod admission"));
    let pick = |q| percentile(&latencies, q).unwrap_or(f64::NAN);
    (admission, (pick(0.5), pick(0.99)))
}

/// One more Pod once the last address is gone: refused, with a message naming the Subnet.
async fn refused(bed: &Bed) -> String {
    let api: Api<Pod> = Api::namespaced(bed.client.clone(), NAMESPACE);
    let mut pod = template();
    pod.metadata.name = Some("one-too-many".into());
    match api.create(&PostParams::default(), &pod).await {
        Ok(_) => panic!("scale: a Pod was admitted after the Subnet's last address went"),
        Err(kube::Error::Api(s)) => {
            assert!(
                s.message.contains(NAMESPACE),
                "the refusal should name the Subnet: {}",
                s.message
            );
            s.message
        }
        Err(e) => panic!("scale: creating one Pod too many: {e}"),
    }
}

/// Deletes the namespace (its Pods), the Subnet and every lease of the Subnet (also before the first step: an
/// interrupted run leaves them). A DELETE of the whole collection can outlast its request timeout at 65 534
/// leases, so it is sent again until none is left.
async fn cleanup(bed: &Bed, leases: &Api<IPLease>) {
    burst::cleanup(bed, NAMESPACE, NAMESPACE).await;
    crate::env::until(
        "the scale Subnet's leases deleted",
        Duration::from_secs(900),
        Duration::from_secs(1),
        || async {
            if held(leases).await.is_empty() {
                return Ok(());
            }
            let _ = leases
                .delete_collection(
                    &DeleteParams::default(),
                    &ListParams::default().labels(&subnet_selector(NAMESPACE)),
                )
                .await;
            Err("leases left".into())
        },
    )
    .await;
}
