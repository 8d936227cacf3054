//! Real nodes for the node suite: `e2e/cluster up --nodes N` (containerd, kubelet, Multus and the CNI plugins per
//! node; see e2e/README.md), with this build's `nadipam` plugin installed by this build's node agent.

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

use std::time::{Duration, Instant};

use serde_json::Value;

use super::{Cluster, cluster_info, log_tails};

/// The log of the nadipam that serves the suite's Pods (a server the test started, or the Helm-installed one),
/// for failure messages; set once by the test binary.
pub static SERVER_LOG: OnceLock<fn() -> String> = OnceLock::new();

fn server_log() -> String {
    SERVER_LOG.get().map(|f| f()).unwrap_or_default()
}

/// The taint every test-bed node carries (NoSchedule); Pods meant for the nodes tolerate it.
pub const TAINT_KEY: &str = "nadipam.io/test-bed";

/// The cluster with `n` nodes, started (or found running with `n` nodes) once per test binary. Panics with the
/// cluster's log tails when a node cannot start: the node suite fails, it never skips.
pub fn cluster_with_nodes(n: u32) -> &'static Cluster {
    static UP: OnceLock<()> = OnceLock::new();
    UP.get_or_init(|| {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
        let script = repo.join("e2e/cluster");
        let out = Command::new(&script)
            .args(["up", "--nodes", &n.to_string()])
            .env("NADIPAM_CNI_PLUGIN", env!("CARGO_BIN_EXE_nadipam"))
            .env(
                "NADIPAM_NODE_AGENT",
                env!("CARGO_BIN_EXE_nadipam-node-agent"),
            )
            .output()
            .unwrap_or_else(|e| panic!("running {}: {e}", script.display()));
        if !out.status.success() {
            let state = std::env::var_os("NADIPAM_STATE")
                .map(std::path::PathBuf::from)
                .unwrap_or_else(|| repo.join("e2e/.state"));
            panic!(
                "`e2e/cluster up --nodes {n}` failed ({}): the node suite needs real nodes.\n\
                 --- stdout\n{}\n--- stderr\n{}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                log_tails(&state.join("logs"))
            );
        }
    });
    cluster_info()
}

pub fn kubectl(args: &[&str]) -> Result<String, String> {
    super::kubectl(args, "")
}

pub fn apply(yaml: &str) {
    if let Err(e) = super::kubectl(&["apply", "-f", "-"], yaml) {
        panic!(
            "kubectl apply failed: {e}\n--- yaml\n{yaml}\n--- nadipam log\n{}",
            server_log()
        );
    }
}

/// Polls `check` every 100 ms until it returns Ok, or panics after `timeout` with `what`, the last state and
/// `diagnose()`.
pub fn wait_until<T>(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> Result<T, String>,
    diagnose: impl Fn() -> String,
) -> T {
    let start = Instant::now();
    let mut last = String::from("never checked");
    while start.elapsed() < timeout {
        match check() {
            Ok(v) => return v,
            Err(e) => last = e,
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!(
        "timed out after {timeout:?} waiting for {what}; last state: {last}\n{}",
        diagnose()
    );
}

/// What to show when a Pod does not get where it should: its events, nadipam's log and the nodes' logs.
pub fn diagnose_pod(name: &str) -> String {
    let describe = kubectl(&["describe", "pod", name]).unwrap_or_else(|e| e);
    let state = &super::cluster_info().state;
    let mut out = format!("--- kubectl describe pod {name}\n{describe}\n");
    for node in ["node-1", "node-2"] {
        let multus = state.join(format!("nodes/{node}/logs/multus.log"));
        let text = std::fs::read_to_string(&multus).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        out += &format!(
            "--- {} (last 20 lines)\n{}\n",
            multus.display(),
            lines[lines.len().saturating_sub(20)..].join("\n")
        );
    }
    out + &format!("--- nadipam log\n{}", server_log())
}

/// A Pod of the guide, as written apart from the test-bed details listed in the module doc.
pub fn pod_yaml(name: &str, node: &str, annotations: &[(&str, &str)]) -> String {
    let ann: String = annotations
        .iter()
        .map(|(k, v)| format!("    {k}: {}\n", serde_json::to_string(v).expect("string")))
        .collect();
    format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: {name}
  namespace: default
  annotations:
{ann}spec:
  nodeSelector:
    kubernetes.io/hostname: {node}
  tolerations:
  - {{key: {TAINT_KEY}, operator: Exists, effect: NoSchedule}}
  containers:
  - name: {name}
    command: ["/bin/ash", "-c", "trap : TERM INT; sleep infinity & wait"]
    image: localhost/nadipam-test:latest
    imagePullPolicy: Never
"#
    )
}

pub fn pod(name: &str) -> Value {
    let json = kubectl(&["get", "pod", name, "-o", "json"]).unwrap_or_else(|e| panic!("{e}"));
    serde_json::from_str(&json).unwrap_or_else(|e| panic!("pod {name} JSON: {e}"))
}

/// Waits until the Pod is Running with its containers ready; returns the time it took from `since`.
pub fn wait_running(name: &str, since: Instant) -> Duration {
    wait_until(
        &format!("Pod {name} Running and Ready"),
        Duration::from_secs(90),
        || {
            let p = pod(name);
            let phase = p["status"]["phase"].as_str().unwrap_or("").to_string();
            let ready = p["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Ready" && c["status"] == "True");
            if phase == "Running" && ready {
                Ok(since.elapsed())
            } else {
                Err(format!("phase {phase:?}, ready {ready}"))
            }
        },
        || diagnose_pod(name),
    )
}

/// `count` pings from `pod` to `ip` over net1 (bounded: 2 s per reply, 10 s in all); every one must come back.
pub fn ping(pod: &str, ip: &str, count: u32) {
    let n = count.to_string();
    let out = exec(
        pod,
        &["ping", "-c", &n, "-W", "2", "-w", "10", "-I", "net1", ip],
    )
    .unwrap_or_else(|e| panic!("ping from {pod} to {ip} over net1 failed: {e}"));
    assert!(
        out.contains(&format!("{count} packets received")),
        "ping from {pod} to {ip}: {out}"
    );
}

pub fn exec(pod: &str, cmd: &[&str]) -> Result<String, String> {
    let mut args = vec!["exec", pod, "--"];
    args.extend_from_slice(cmd);
    kubectl(&args)
}

/// `ip -o -4 addr show net1` inside the Pod: the addresses (with prefix) and the link's MAC.
pub fn net1(pod: &str) -> (Vec<String>, String) {
    iface(pod, "net1")
}

/// `ip -o -4 addr show <ifname>` inside the Pod: the addresses (with prefix) and the link's MAC.
pub fn iface(pod: &str, ifname: &str) -> (Vec<String>, String) {
    let addrs = exec(pod, &["ip", "-o", "-4", "addr", "show", ifname])
        .unwrap_or_else(|e| panic!("ip addr show {ifname} in {pod}: {e}\n{}", diagnose_pod(pod)));
    let ips = addrs
        .lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            words.find(|w| *w == "inet")?;
            words.next().map(str::to_string)
        })
        .collect();
    let link = exec(pod, &["ip", "-o", "link", "show", ifname]).unwrap_or_else(|e| panic!("{e}"));
    let mac = link
        .split_whitespace()
        .skip_while(|w| *w != "link/ether")
        .nth(1)
        .unwrap_or("")
        .to_string();
    (ips, mac)
}

/// The IPLeases naming Pod default/`name`, as (ip, mac).
pub fn leases_of(name: &str) -> Vec<(String, Option<String>)> {
    let json = kubectl(&["get", "ipleases", "-o", "json"]).unwrap_or_else(|e| panic!("{e}"));
    let v: Value = serde_json::from_str(&json).expect("lease list JSON");
    v["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|l| l["spec"]["podNamespace"] == "default" && l["spec"]["podName"] == name)
        .map(|l| {
            (
                l["spec"]["ip"].as_str().unwrap_or("").to_string(),
                l["spec"]["mac"].as_str().map(str::to_string),
            )
        })
        .collect()
}

/// The reservation tokens (`nadipam.io/reservation`) of the Pods in `default` matching the label `selector`: how
/// their leases are found, named or not (the controller records no Pod name on a lease by default, and a
/// Deployment's Pod has none at admission).
pub fn tokens_of(selector: &str) -> Vec<String> {
    let json =
        kubectl(&["get", "pods", "-l", selector, "-o", "json"]).unwrap_or_else(|e| panic!("{e}"));
    let v: Value = serde_json::from_str(&json).expect("pod list JSON");
    v["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["metadata"]["annotations"]["nadipam.io/reservation"].as_str())
        .map(str::to_string)
        .collect()
}

/// Waits until no IPLease carries one of `tokens` (see [`tokens_of`]).
pub fn wait_leases_released(what: &str, tokens: &[String]) {
    wait_until(
        &format!("the leases of {what} released"),
        Duration::from_secs(90),
        || {
            let json = kubectl(&["get", "ipleases", "-o", "json"])?;
            let v: Value = serde_json::from_str(&json).map_err(|e| e.to_string())?;
            let held: Vec<&str> = v["items"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|l| {
                    l["spec"]["token"]
                        .as_str()
                        .is_some_and(|t| tokens.iter().any(|x| x == t))
                })
                .filter_map(|l| l["spec"]["ip"].as_str())
                .collect();
            if held.is_empty() {
                Ok(())
            } else {
                Err(format!("still held: {held:?}"))
            }
        },
        server_log,
    );
}

/// Deletes a Deployment and waits until its Pods are gone too (foreground cascade).
pub fn delete_deployment(name: &str) {
    kubectl(&[
        "delete",
        "deployment",
        name,
        "--ignore-not-found",
        "--cascade=foreground",
        "--wait=true",
        "--timeout=90s",
    ])
    .unwrap_or_else(|e| panic!("deleting deployment {name}: {e}"));
}

pub fn delete_pods(names: &[&str]) {
    let mut args = vec![
        "delete",
        "pod",
        "--ignore-not-found",
        "--wait=true",
        "--timeout=60s",
    ];
    args.extend_from_slice(names);
    kubectl(&args).unwrap_or_else(|e| panic!("deleting {names:?}: {e}"));
}

/// Applies the guide's NAD and Subnet; they are deleted when the guards drop.
pub fn guide_network() -> [super::DeleteOnDrop; 2] {
    apply(NAD);
    apply(SUBNET);
    let guards = [
        super::DeleteOnDrop::new("subnet", "macvlan", None),
        super::DeleteOnDrop::new("network-attachment-definition", "macvlan", Some("default")),
    ];
    // The webhook allocates from its caches: give them the new NAD and Subnet.
    std::thread::sleep(Duration::from_millis(500));
    guards
}

/// The guide's NAD, master `ul0`, IPAM `nadipam`; nothing else about the test bed in it.
pub const NAD: &str = r#"apiVersion: "k8s.cni.cncf.io/v1"
kind: NetworkAttachmentDefinition
metadata:
  name: macvlan
  namespace: default
spec:
  config: '{
      "cniVersion": "0.3.0",
      "type": "macvlan",
      "master": "ul0",
      "mode": "bridge",
      "ipam": {
        "type": "nadipam",
        "provider": "macvlan.default"
      }
    }'
"#;

/// The guide's Subnet (apiVersion nadipam.io/v1).
pub const SUBNET: &str = r#"apiVersion: nadipam.io/v1
kind: Subnet
metadata:
  name: macvlan
spec:
  protocol: IPv4
  provider: macvlan.default
  cidrBlock: 172.17.0.0/16
  gateway: 172.17.0.1
  excludeIps:
  - 172.17.0.0..172.17.0.10
"#;

pub const NETWORKS: &str = "k8s.v1.cni.cncf.io/networks";

/// The Spiderpool ovs-cni guide's objects as nadipam objects (e2e/demo/spiderpool-ovs-cni.yaml: NAD
/// kube-system/ovs-conf on bridge br1 with nadipam IPAM, its Subnet, the guide's IPPool 172.18.30.131-140 and
/// `test-app` with 2 replicas and its podAntiAffinity), with the image and toleration of the test bed.
pub fn spiderpool_guide() -> String {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/e2e/demo/spiderpool-ovs-cni.yaml"
    );
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    assert!(
        text.contains("image: localhost/nadipam-test:latest") && text.contains(TAINT_KEY),
        "{path} no longer runs on the test bed's nodes (image, toleration):\n{text}"
    );
    text
}
