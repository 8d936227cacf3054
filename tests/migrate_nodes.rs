//! Acceptance of adoption on real nodes (`e2e/cluster up --nodes 2`; run under the machine's node lock, see
//! e2e/README.md): Pods get addresses from host-local on a macvlan network (Multus writes their
//! network-status), `adopt --apply` leases those addresses to them, the network is switched to nadipam (the
//! same NAD, its IPAM now nadipam, and a Subnet of the same CIDR), and a Deployment of 100 more Pods each gets
//! an address from the webhook: no address is held twice among all 110 Pods. host-local hands out addresses
//! from the start of its range, which nadipam's random choice in the same /24 would meet many times over
//! without the adopted leases.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::nodes::*;
use common::server::{Server, start};
use nadipam::migrate::{Action, AdoptArgs, run_adopt};
use serde_json::Value;

const SERVER_NAMESPACE: &str = "nadipam-system";
const NET: &str = "adopt-net";
const CIDR: &str = "172.31.0.0/24";
const OLD: u32 = 10;
const NEW: u32 = 100;

fn nadipam() -> &'static Server {
    static SERVER: std::sync::OnceLock<Server> = std::sync::OnceLock::new();
    let _ = SERVER_LOG.set(|| nadipam().log_tail());
    SERVER.get_or_init(|| {
        let _ = common::cluster_info()
            .kubectl()
            .args(["create", "namespace", SERVER_NAMESPACE])
            .output();
        start(&[
            "--namespace",
            SERVER_NAMESPACE,
            "--leader-lease-seconds",
            "5",
        ])
    })
}

fn nad(ipam: &str) -> String {
    format!(
        r#"apiVersion: "k8s.cni.cncf.io/v1"
kind: NetworkAttachmentDefinition
metadata:
  name: {NET}
  namespace: default
spec:
  config: '{{"cniVersion": "0.3.1", "type": "macvlan", "master": "ul0", "mode": "bridge", "ipam": {ipam}}}'
"#
    )
}

fn deployment(name: &str, replicas: u32, node: Option<&str>) -> String {
    let selector = node
        .map(|n| format!("      nodeSelector: {{kubernetes.io/hostname: {n}}}\n"))
        .unwrap_or_default();
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}, namespace: default}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata:
      labels: {{app: {name}}}
      annotations: {{k8s.v1.cni.cncf.io/networks: default/{NET}}}
    spec:
{selector}      tolerations:
      - {{key: {TAINT_KEY}, operator: Exists, effect: NoSchedule}}
      terminationGracePeriodSeconds: 1
      containers:
      - name: c
        image: localhost/nadipam-test:latest
        imagePullPolicy: Never
        command: ["/bin/ash", "-c", "trap : TERM INT; sleep infinity & wait"]
"#
    )
}

fn pods(app: &str) -> Vec<Value> {
    let json = kubectl(&["get", "pods", "-l", &format!("app={app}"), "-o", "json"])
        .unwrap_or_else(|e| panic!("{e}"));
    let v: Value = serde_json::from_str(&json).expect("pod list JSON");
    v["items"].as_array().cloned().unwrap_or_default()
}

/// The addresses Multus recorded for the Pod on the network (host-local's Pods).
fn status_ips(pod: &Value) -> Vec<String> {
    let raw = pod["metadata"]["annotations"]["k8s.v1.cni.cncf.io/network-status"]
        .as_str()
        .unwrap_or("[]");
    let v: Value = serde_json::from_str(raw).unwrap_or(Value::Null);
    v.as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["name"] == format!("default/{NET}"))
        .flat_map(|e| e["ips"].as_array().cloned().unwrap_or_default())
        .filter_map(|ip| ip.as_str().map(str::to_string))
        .collect()
}

fn cleanup() {
    for d in ["adopt-old", "adopt-new"] {
        let _ = kubectl(&[
            "delete",
            "deployment",
            d,
            "--ignore-not-found",
            "--wait=false",
        ]);
    }
    let _ = kubectl(&[
        "delete",
        "pods",
        "-l",
        "app in (adopt-old,adopt-new)",
        "--ignore-not-found",
        "--grace-period=0",
        "--force",
        "--wait=true",
        "--timeout=120s",
    ]);
    let _ = kubectl(&[
        "delete",
        "network-attachment-definition",
        NET,
        "--ignore-not-found",
    ]);
    let _ = kubectl(&[
        "delete",
        "ipleases",
        "-l",
        &format!("nadipam.io/subnet={NET}"),
        "--ignore-not-found",
    ]);
    let _ = kubectl(&["delete", "subnets.nadipam.io", NET, "--ignore-not-found"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_suite_adopt_host_local_then_100_pods_without_a_duplicate() {
    cluster_with_nodes(2);
    nadipam();
    cleanup();

    // Before nadipam: 10 Pods on node-1 with host-local addresses (host-local's state is per node, so one node
    // keeps its own addresses unique).
    apply(&nad(&format!(
        r#"{{"type": "host-local", "ranges": [[{{"subnet": "{CIDR}"}}]]}}"#
    )));
    let t0 = Instant::now();
    apply(&deployment("adopt-old", OLD, Some("node-1")));
    let old: BTreeMap<String, String> = wait_until(
        &format!("{OLD} host-local Pods Running with their network-status"),
        Duration::from_secs(180),
        || {
            let got: BTreeMap<String, String> = pods("adopt-old")
                .iter()
                .filter(|p| p["status"]["phase"] == "Running")
                .filter_map(|p| {
                    let ips = status_ips(p);
                    Some((
                        p["metadata"]["name"].as_str()?.to_string(),
                        ips.first()?.clone(),
                    ))
                })
                .collect();
            if got.len() == OLD as usize {
                Ok(got)
            } else {
                Err(format!("{got:?}"))
            }
        },
        || diagnose_pod("adopt-old"),
    );
    eprintln!(
        "{OLD} host-local Pods Running in {:?}: {old:?}",
        t0.elapsed()
    );
    assert!(
        old.values().all(|ip| ip.starts_with("172.31.0.")),
        "host-local addresses come from {CIDR}: {old:?}"
    );

    // Moving in: the Subnet the network will allocate from, adopt, then the NAD's IPAM becomes nadipam.
    apply(&format!(
        "apiVersion: nadipam.io/v1\nkind: Subnet\nmetadata: {{name: {NET}}}\nspec: {{cidrBlock: {CIDR}, provider: {NET}.default}}\n"
    ));
    let client = common::cluster_info().client().await;
    let args = AdoptArgs {
        network: format!("default/{NET}"),
        subnet: None,
        apply: false,
        output: None,
    };
    let mut out = Vec::new();
    let dry = run_adopt(&client, &args, &mut out)
        .await
        .unwrap_or_else(|e| panic!("adopt: {e}"));
    eprintln!("--- adopt (dry run)\n{}", String::from_utf8_lossy(&out));
    assert_eq!(dry.count(Action::Create), OLD as usize, "{:#?}", dry.plan);
    let mut out = Vec::new();
    let applied = run_adopt(
        &client,
        &AdoptArgs {
            apply: true,
            ..args.clone()
        },
        &mut out,
    )
    .await
    .unwrap_or_else(|e| panic!("adopt --apply: {e}"));
    eprintln!("--- adopt --apply\n{}", String::from_utf8_lossy(&out));
    assert_eq!(
        (
            applied.count(Action::Created),
            applied.count(Action::Conflict)
        ),
        (OLD as usize, 0)
    );

    apply(&nad(&format!(
        r#"{{"type": "nadipam", "provider": "{NET}.default"}}"#
    )));
    tokio::time::sleep(Duration::from_millis(800)).await;

    // 100 more Pods on both nodes: every one gets its address from the webhook at admission.
    let t1 = Instant::now();
    apply(&deployment("adopt-new", NEW, None));
    let key = format!("{NET}.default.kubernetes.io/ip_address");
    let new: BTreeMap<String, String> = wait_until(
        &format!("{NEW} new Pods admitted with an address from nadipam"),
        Duration::from_secs(240),
        || {
            let got: BTreeMap<String, String> = pods("adopt-new")
                .iter()
                .filter_map(|p| {
                    Some((
                        p["metadata"]["name"].as_str()?.to_string(),
                        p["metadata"]["annotations"][&key].as_str()?.to_string(),
                    ))
                })
                .collect();
            if got.len() == NEW as usize {
                Ok(got)
            } else {
                Err(format!("{} with an address", got.len()))
            }
        },
        || nadipam().log_tail(),
    );
    let running = pods("adopt-new")
        .iter()
        .filter(|p| p["status"]["phase"] == "Running")
        .count();
    eprintln!(
        "{NEW} Pods admitted in {:?}; {running} Running so far",
        t1.elapsed()
    );

    // No address twice among all Pods, and the adopted Pods still hold theirs.
    let mut holders: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (pod, ip) in old.iter().chain(new.iter()) {
        holders.entry(ip.as_str()).or_default().push(pod.as_str());
    }
    let duplicates: Vec<_> = holders.iter().filter(|(_, p)| p.len() > 1).collect();
    assert!(
        duplicates.is_empty(),
        "addresses held twice: {duplicates:?}"
    );
    assert_eq!(holders.len(), (OLD + NEW) as usize);
    let leases = kubectl(&[
        "get",
        "ipleases",
        "-l",
        &format!("nadipam.io/subnet={NET}"),
        "-o",
        "json",
    ])
    .unwrap_or_else(|e| panic!("{e}"));
    let leases: Value = serde_json::from_str(&leases).expect("lease list JSON");
    let leased: Vec<&str> = leases["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| l["spec"]["ip"].as_str())
        .collect();
    for ip in old.values() {
        assert!(
            leased.contains(&ip.as_str()),
            "adopted {ip} still leased: {leased:?}"
        );
    }
    assert_eq!(leased.len(), (OLD + NEW) as usize, "one lease per address");
    cleanup();
}
