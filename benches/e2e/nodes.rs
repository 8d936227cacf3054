//! The node phase: Pods to Running on the test bed's real nodes (`e2e/cluster up --nodes 2`: kubelet, containerd,
//! Multus), with one macvlan secondary network on the underlay `ul0`, and three IPAMs behind that network:
//!
//! - **host-local**: node-local files, no cluster coordination at all: the floor. One NAD per node with a range of
//!   its own (host-local on two nodes with one range would hand out every address twice), each Deployment on one
//!   node, as host-local users do it;
//! - **Whereabouts**: the real plugin as Multus' delegate IPAM, installed as its DaemonSet does (e2e/nodes.sh):
//!   it allocates inside the CNI ADD, under its cluster-wide lock;
//! - **nadipam**: allocated at admission by the webhook; the plugin only reads.
//!
//! Each run: Deployments × replicas (half the Deployments per node), timed from the first create until every Pod
//! is Running and Multus reports its `net1` address (the `network-status` annotation); one Pod per Deployment is
//! then checked from inside (`ip addr show net1`). Then every Deployment is deleted, timed until every Pod is gone
//! and every address is free again (host-local's files, Whereabouts' pool allocations, nadipam's IPLeases). Rounds
//! interleave the three, each round starting with the next, 15 s apart, so drift of the machine's load and what
//! one run leaves the nodes to tear down hit each alike. Every address is checked for duplicates.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::{Client, ResourceExt};
use serde::{Deserialize, Serialize};

use crate::cni::percentile;
use crate::common::{self, nodes as bed};

const NAMESPACE: &str = "bench-nodes";
const NODES: u32 = 2;
/// How long one run may take to reach all Running, or to release, before the phase fails.
const LIMIT: Duration = Duration::from_secs(600);
/// The pause before each run (see [`run`]).
const SETTLE: Duration = Duration::from_secs(15);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Ipam {
    HostLocal,
    Whereabouts,
    Nadipam,
}

impl Ipam {
    pub fn label(self) -> &'static str {
        match self {
            Ipam::HostLocal => "host-local",
            Ipam::Whereabouts => "Whereabouts",
            Ipam::Nadipam => "nadipam",
        }
    }

    fn key(self) -> &'static str {
        match self {
            Ipam::HostLocal => "hl",
            Ipam::Whereabouts => "wa",
            Ipam::Nadipam => "np",
        }
    }
}

/// One run of one IPAM.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct Run {
    pub round: usize,
    /// First create until every Pod is Running with its net1 address.
    pub running_s: f64,
    /// First delete until every Pod is gone and every address free.
    pub release_s: f64,
    pub addresses: usize,
    pub duplicates: usize,
}

/// Every run of one IPAM, with the median and spread.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct Side {
    pub ipam: Ipam,
    pub runs: Vec<Run>,
    pub running_median_s: f64,
    pub running_min_s: f64,
    pub running_max_s: f64,
    pub release_median_s: f64,
    pub release_min_s: f64,
    pub release_max_s: f64,
}

#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct NodeResult {
    pub nodes: u32,
    pub deployments: usize,
    pub replicas: usize,
    pub rounds: usize,
    pub sides: Vec<Side>,
}

impl NodeResult {
    pub fn side(&self, ipam: Ipam) -> Option<&Side> {
        self.sides.iter().find(|s| s.ipam == ipam)
    }

    /// Median time to all Running of `ipam` over host-local's.
    pub fn vs_host_local(&self, ipam: Ipam) -> Option<f64> {
        Some(self.side(ipam)?.running_median_s / self.side(Ipam::HostLocal)?.running_median_s)
    }
}

/// Runs the phase: brings the nodes up (or finds them), then `rounds` rounds of the three IPAMs.
pub async fn run(deployments: usize, replicas: usize, rounds: usize) -> NodeResult {
    let cluster = bed::cluster_with_nodes(NODES);
    let client = cluster.client().await;
    common::server::install_crds(cluster);
    common::server::remove_stale_registrations(cluster);
    networks();
    leftovers(&client).await;
    let order = [Ipam::HostLocal, Ipam::Whereabouts, Ipam::Nadipam];
    let mut runs: BTreeMap<&str, Vec<Run>> = BTreeMap::new();
    for round in 0..rounds {
        // Each round starts with the next IPAM, so what a run leaves behind falls on each IPAM alike.
        for k in 0..order.len() {
            let ipam = order[(round + k) % order.len()];
            // nadipam's webhook is registered only for its own runs: the others' Pods are not slowed by a
            // webhook call they do not need.
            let server = (ipam == Ipam::Nadipam)
                .then(|| common::server::start(&["--namespace", "nadipam-system"]));
            // The kubelets and containerds finish tearing down the last run's sandboxes (after its Pods are
            // gone from the API) and a new server settles before the clock starts.
            tokio::time::sleep(SETTLE).await;
            let r = one(&client, ipam, deployments, replicas, round).await;
            if let Some(s) = server {
                s.stop();
            }
            runs.entry(ipam.label()).or_default().push(r);
        }
    }
    let sides = order
        .iter()
        .map(|&ipam| side(ipam, runs.remove(ipam.label()).unwrap_or_default()))
        .collect();
    NodeResult {
        nodes: NODES,
        deployments,
        replicas,
        rounds,
        sides,
    }
}

fn side(ipam: Ipam, runs: Vec<Run>) -> Side {
    let sorted = |f: fn(&Run) -> f64| {
        let mut v: Vec<f64> = runs.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        v
    };
    let running = sorted(|r| r.running_s);
    let release = sorted(|r| r.release_s);
    let q = |v: &[f64], p| percentile(v, p).unwrap_or(f64::NAN);
    Side {
        ipam,
        running_median_s: q(&running, 0.5),
        running_min_s: q(&running, 0.0),
        running_max_s: q(&running, 1.0),
        release_median_s: q(&release, 0.5),
        release_min_s: q(&release, 0.0),
        release_max_s: q(&release, 1.0),
        runs,
    }
}

/// The namespace, the three IPAMs' NADs (all macvlan on `ul0`, each in its own range of one /16 per IPAM) and
/// nadipam's Subnet.
fn networks() {
    let nad = |name: &str, ipam: &str| {
        format!(
            r#"---
apiVersion: k8s.cni.cncf.io/v1
kind: NetworkAttachmentDefinition
metadata: {{name: {name}, namespace: {NAMESPACE}}}
spec:
  config: '{{"cniVersion": "0.3.1", "name": "bench-{name}", "type": "macvlan", "master": "ul0", "mode": "bridge",
    "ipam": {ipam}}}'
"#
        )
    };
    // nadipam-system: where the server's leader-election Lease lives.
    let mut yaml = format!(
        "apiVersion: v1\nkind: Namespace\nmetadata: {{name: {NAMESPACE}}}\n---\n\
         apiVersion: v1\nkind: Namespace\nmetadata: {{name: nadipam-system}}\n"
    );
    for node in 1..=NODES {
        yaml += &nad(
            &format!("hl-node-{node}"),
            &format!(
                r#"{{"type": "host-local", "ranges": [[{{"subnet": "172.20.0.0/16", "rangeStart": "172.20.{node}.1", "rangeEnd": "172.20.{node}.254"}}]]}}"#
            ),
        );
    }
    yaml += &nad("wa", r#"{"type": "whereabouts", "range": "172.22.0.0/16"}"#);
    yaml += &nad(
        "np",
        &format!(r#"{{"type": "nadipam", "provider": "np.{NAMESPACE}"}}"#),
    );
    yaml += &format!(
        r#"---
apiVersion: nadipam.io/v1
kind: Subnet
metadata: {{name: bench-nodes}}
spec:
  provider: np.{NAMESPACE}
  cidrBlock: 172.21.0.0/16
"#
    );
    bed::apply(&yaml);
}

/// Deployments and Pods of an interrupted earlier run: gone before the first measurement.
async fn leftovers(client: &Client) {
    let deps: Api<Deployment> = Api::namespaced(client.clone(), NAMESPACE);
    let pods: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    let _ = deps
        .delete_collection(&DeleteParams::background(), &ListParams::default())
        .await;
    common::poll(LIMIT, Duration::from_millis(200), || {
        let pods = pods.clone();
        async move {
            match pods.list(&ListParams::default()).await {
                Ok(l) if l.items.is_empty() => Ok(()),
                Ok(l) => Err(format!("{} Pods of an earlier run left", l.items.len())),
                Err(e) => Err(e.to_string()),
            }
        }
    })
    .await
    .unwrap_or_else(|last| panic!("the node phase's namespace did not empty: {last}"));
}

/// The NAD a Pod of Deployment `d` names, and the node it runs on.
fn placement(ipam: Ipam, d: usize) -> (String, String) {
    let node = format!("node-{}", d % NODES as usize + 1);
    let nad = match ipam {
        Ipam::HostLocal => format!("hl-{node}"),
        other => other.key().to_string(),
    };
    (nad, node)
}

fn deployment(ipam: Ipam, d: usize, replicas: usize) -> Deployment {
    let name = format!("{}-{d}", ipam.key());
    let (nad, node) = placement(ipam, d);
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {
                    "labels": {"app": name, "bench-ipam": ipam.key()},
                    "annotations": {bed::NETWORKS: nad},
                },
                "spec": {
                    "nodeSelector": {"kubernetes.io/hostname": node},
                    "tolerations": [{"key": bed::TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}],
                    "terminationGracePeriodSeconds": 1,
                    "enableServiceLinks": false,
                    "automountServiceAccountToken": false,
                    "containers": [{
                        "name": "c",
                        "image": "localhost/nadipam-test:latest",
                        "imagePullPolicy": "Never",
                        "command": ["/bin/ash", "-c", "trap : TERM INT; sleep infinity & wait"],
                    }],
                },
            },
        },
    }))
    .unwrap_or_else(|e| panic!("deployment {name}: {e}"))
}

/// The net1 addresses Multus reports for a Running Pod (its `network-status` element of our network), or None
/// while the Pod is not Running or Multus has not reported yet.
fn net1_addresses(pod: &Pod) -> Option<Vec<String>> {
    if pod.status.as_ref()?.phase.as_deref() != Some("Running")
        || pod.metadata.deletion_timestamp.is_some()
    {
        return None;
    }
    let status = pod.annotations().get("k8s.v1.cni.cncf.io/network-status")?;
    let v: serde_json::Value = serde_json::from_str(status).ok()?;
    let ips: Vec<String> = v.as_array()?.iter().find(|e| e["interface"] == "net1")?["ips"]
        .as_array()?
        .iter()
        .filter_map(|i| i.as_str().map(str::to_owned))
        .collect();
    (!ips.is_empty()).then_some(ips)
}

async fn one(
    client: &Client,
    ipam: Ipam,
    deployments: usize,
    replicas: usize,
    round: usize,
) -> Run {
    let n = deployments * replicas;
    let pods: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    let deps: Api<Deployment> = Api::namespaced(client.clone(), NAMESPACE);
    let selector = ListParams::default().labels(&format!("bench-ipam={}", ipam.key()));
    eprintln!(
        "bench: nodes round {round}, {}: {deployments} × {replicas} Pods on {NODES} nodes",
        ipam.label()
    );

    let start = Instant::now();
    let mut creates = tokio::task::JoinSet::new();
    for d in 0..deployments {
        let (deps, dep) = (deps.clone(), deployment(ipam, d, replicas));
        creates.spawn(async move { deps.create(&PostParams::default(), &dep).await });
    }
    while let Some(r) = creates.join_next().await {
        r.unwrap_or_else(|e| panic!("create task: {e}"))
            .unwrap_or_else(|e| panic!("creating a {} Deployment: {e}", ipam.label()));
    }
    let addresses = poll(ipam, "every Pod Running with its net1 address", || {
        let pods = pods.clone();
        let selector = selector.clone();
        async move {
            let list = pods.list(&selector).await.map_err(|e| e.to_string())?;
            let ready: Vec<(String, Vec<String>)> = list
                .items
                .iter()
                .filter_map(|p| Some((p.name_any(), net1_addresses(p)?)))
                .collect();
            if ready.len() >= n {
                Ok(ready)
            } else {
                Err(format!("{} of {n} Running with net1", ready.len()))
            }
        }
    })
    .await;
    let running_s = start.elapsed().as_secs_f64();

    let mut all: Vec<String> = addresses.iter().flat_map(|(_, a)| a.clone()).collect();
    let count = all.len();
    all.sort();
    all.dedup();
    let duplicates = count - all.len();
    assert_eq!(
        duplicates,
        0,
        "{}: addresses handed out twice",
        ipam.label()
    );
    inside(ipam, &addresses, deployments);
    eprintln!("bench:   all Running in {running_s:.2} s ({count} addresses, 0 twice)");

    let start = Instant::now();
    for d in 0..deployments {
        deps.delete(&format!("{}-{d}", ipam.key()), &DeleteParams::background())
            .await
            .unwrap_or_else(|e| panic!("deleting a {} Deployment: {e}", ipam.label()));
    }
    poll(ipam, "every Pod gone and every address free", || {
        let (pods, selector, client) = (pods.clone(), selector.clone(), client.clone());
        async move {
            let left = pods
                .list(&selector)
                .await
                .map_err(|e| e.to_string())?
                .items
                .len();
            let held = held(&client, ipam).await?;
            if left == 0 && held == 0 {
                Ok(())
            } else {
                Err(format!("{left} Pods left, {held} addresses held"))
            }
        }
    })
    .await;
    let release_s = start.elapsed().as_secs_f64();
    eprintln!("bench:   released in {release_s:.2} s");
    Run {
        round,
        running_s,
        release_s,
        addresses: count,
        duplicates,
    }
}

/// Polls every 200 ms until `check` is Ok; panics after [`LIMIT`] with the last state and the nodes' logs.
async fn poll<T, F, Fut>(ipam: Ipam, what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    common::poll(LIMIT, Duration::from_millis(200), check)
        .await
        .unwrap_or_else(|last| {
            panic!(
                "{}: timed out after {LIMIT:?} waiting for {what}: {last}\n{}",
                ipam.label(),
                common::log_tails(&common::cluster_info().state.join("logs"))
            )
        })
}

/// One Pod per Deployment, from inside: net1 carries the address Multus reported.
fn inside(ipam: Ipam, addresses: &[(String, Vec<String>)], deployments: usize) {
    for d in 0..deployments {
        let prefix = format!("{}-{d}-", ipam.key());
        let Some((pod, want)) = addresses.iter().find(|(p, _)| p.starts_with(&prefix)) else {
            panic!("{}: no Running Pod of Deployment {prefix}*", ipam.label());
        };
        let out = common::kubectl(
            &[
                "exec", "-n", NAMESPACE, pod, "--", "ip", "-o", "-4", "addr", "show", "net1",
            ],
            "",
        )
        .unwrap_or_else(|e| panic!("ip addr show net1 in {pod}: {e}"));
        for ip in want {
            assert!(
                out.contains(&format!("inet {ip}/")),
                "{}: {pod}'s net1 should carry {ip}: {out}",
                ipam.label()
            );
        }
    }
}

/// Addresses the IPAM still holds for the phase's network.
async fn held(client: &Client, ipam: Ipam) -> Result<usize, String> {
    match ipam {
        Ipam::HostLocal => Ok((1..=NODES)
            .map(|i| host_local_files(i, &format!("bench-hl-node-{i}")))
            .sum()),
        Ipam::Nadipam => Api::<nadipam::api::IPLease>::all(client.clone())
            .list(&ListParams::default().labels(&nadipam::api::subnet_selector("bench-nodes")))
            .await
            .map(|l| l.items.len())
            .map_err(|e| e.to_string()),
        Ipam::Whereabouts => {
            let pools: Api<kube::api::DynamicObject> = Api::namespaced_with(
                client.clone(),
                "kube-system",
                &kube::api::ApiResource {
                    group: "whereabouts.cni.cncf.io".into(),
                    version: "v1alpha1".into(),
                    api_version: "whereabouts.cni.cncf.io/v1alpha1".into(),
                    kind: "IPPool".into(),
                    plural: "ippools".into(),
                },
            );
            let list = pools
                .list(&ListParams::default())
                .await
                .map_err(|e| e.to_string())?;
            Ok(list
                .items
                .iter()
                .map(|p| {
                    p.data["spec"]["allocations"]
                        .as_object()
                        .map_or(0, |a| a.len())
                })
                .sum())
        }
    }
}

/// host-local's reservations on node `i` for `network`: one file per address in /var/lib/cni/networks/<name>
/// (the node's own directory, bound there in its containerd's mount namespace).
fn host_local_files(i: u32, network: &str) -> usize {
    let dir: PathBuf = common::cluster_info()
        .state
        .join(format!("nodes/node-{i}/mnt/var-lib-cni/networks/{network}"));
    std::fs::read_dir(&dir)
        .map(|d| {
            d.flatten()
                .filter(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .parse::<std::net::IpAddr>()
                        .is_ok()
                })
                .count()
        })
        .unwrap_or(0)
}
