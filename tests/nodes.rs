//! The node suite: real kubelets and containerd on two test-bed nodes (`e2e/cluster up --nodes 2`), Multus as the
//! primary CNI, and the Kube-OVN multi-NIC guide's macvlan network with nadipam as its IPAM. Everything is checked
//! from inside the Pods (`kubectl exec … ip addr`, `ping`), not by reading annotations.
//!
//! The guide's NAD is applied as written except `master` (`ul0`, the test bed's underlay bridge: Pods on both
//! nodes share its L2 segment) and the IPAM type (`nadipam`); its Pods as written except the image
//! (`localhost/nadipam-test:latest`, imported into each node), `imagePullPolicy: Never`, a node selector (one
//! Pod per node) and the toleration of the nodes' `nadipam.io/test-bed` taint.

mod common;

use std::time::{Duration, Instant};

use common::nodes::{TAINT_KEY, cluster_with_nodes};
use common::server::{Server, start};
use serde_json::Value;

/// The server runs in its own namespace: the webhook leaves Pods of the server's namespace alone (its own
/// Pods must start without it), and the guide's Pods are in `default`.
const SERVER_NAMESPACE: &str = "nadipam-system";

fn nadipam() -> &'static Server {
    static SERVER: std::sync::OnceLock<Server> = std::sync::OnceLock::new();
    SERVER.get_or_init(|| {
        let c = common::cluster_info();
        let _ = c
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

fn kubectl(args: &[&str]) -> Result<String, String> {
    common::kubectl(args, "")
}

fn apply(yaml: &str) {
    if let Err(e) = common::kubectl(&["apply", "-f", "-"], yaml) {
        panic!(
            "kubectl apply failed: {e}\n--- yaml\n{yaml}\n--- nadipam log\n{}",
            nadipam().log_tail()
        );
    }
}

/// Polls `check` every 100 ms until it returns Ok, or panics after `timeout` with `what`, the last state and
/// `diagnose()`.
fn wait_until<T>(
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
fn diagnose_pod(name: &str) -> String {
    let describe = kubectl(&["describe", "pod", name]).unwrap_or_else(|e| e);
    let state = &common::cluster_info().state;
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
    out + &format!("--- nadipam log\n{}", nadipam().log_tail())
}

/// A Pod of the guide, as written apart from the test-bed details listed in the module doc.
fn pod_yaml(name: &str, node: &str, annotations: &[(&str, &str)]) -> String {
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

fn pod(name: &str) -> Value {
    let json = kubectl(&["get", "pod", name, "-o", "json"]).unwrap_or_else(|e| panic!("{e}"));
    serde_json::from_str(&json).unwrap_or_else(|e| panic!("pod {name} JSON: {e}"))
}

/// Waits until the Pod is Running with its containers ready; returns the time it took from `since`.
fn wait_running(name: &str, since: Instant) -> Duration {
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
fn ping(pod: &str, ip: &str, count: u32) {
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

fn exec(pod: &str, cmd: &[&str]) -> Result<String, String> {
    let mut args = vec!["exec", pod, "--"];
    args.extend_from_slice(cmd);
    kubectl(&args)
}

/// `ip -o -4 addr show net1` inside the Pod: the addresses (with prefix) and the link's MAC.
fn net1(pod: &str) -> (Vec<String>, String) {
    let addrs = exec(pod, &["ip", "-o", "-4", "addr", "show", "net1"])
        .unwrap_or_else(|e| panic!("ip addr show net1 in {pod}: {e}\n{}", diagnose_pod(pod)));
    let ips = addrs
        .lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            words.find(|w| *w == "inet")?;
            words.next().map(str::to_string)
        })
        .collect();
    let link = exec(pod, &["ip", "-o", "link", "show", "net1"]).unwrap_or_else(|e| panic!("{e}"));
    let mac = link
        .split_whitespace()
        .skip_while(|w| *w != "link/ether")
        .nth(1)
        .unwrap_or("")
        .to_string();
    (ips, mac)
}

/// The IPLeases naming Pod default/`name`, as (ip, mac).
fn leases_of(name: &str) -> Vec<(String, Option<String>)> {
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

/// Waits until no IPLease names a Pod whose name starts with `prefix`.
fn wait_leases_released(prefix: &str) {
    wait_until(
        &format!("the leases of Pods {prefix}* released"),
        Duration::from_secs(90),
        || {
            let json = kubectl(&["get", "ipleases", "-o", "json"])?;
            let v: Value = serde_json::from_str(&json).map_err(|e| e.to_string())?;
            let held = v["items"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|l| {
                    l["spec"]["podName"]
                        .as_str()
                        .is_some_and(|p| p.starts_with(prefix))
                })
                .count();
            if held == 0 {
                Ok(())
            } else {
                Err(format!("{held} leases held"))
            }
        },
        || nadipam().log_tail(),
    );
}

fn delete_pods(names: &[&str]) {
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

/// The guide's NAD, master `ul0`, IPAM `nadipam`; nothing else about the test bed in it.
const NAD: &str = r#"apiVersion: "k8s.cni.cncf.io/v1"
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
const SUBNET: &str = r#"apiVersion: nadipam.io/v1
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

const NETWORKS: &str = "k8s.v1.cni.cncf.io/networks";

/// One guide at a time: both use the two nodes, and their timings are printed.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

#[test]
fn node_suite_kube_ovn_guide_on_two_nodes() {
    let _serial = serial();
    let c = cluster_with_nodes(2);
    let nodes = kubectl(&["get", "nodes", "-o", "name"]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        nodes.split_whitespace().collect::<Vec<_>>(),
        ["node/node-1", "node/node-2"],
        "the test bed should have exactly two nodes"
    );
    nadipam();
    let pods = ["samplepod", "static-ip", "static-mac"];
    delete_pods(&pods);
    apply(NAD);
    apply(SUBNET);
    let _subnet = common::DeleteOnDrop::new("subnet", "macvlan", None);
    let _nad =
        common::DeleteOnDrop::new("network-attachment-definition", "macvlan", Some("default"));
    // The webhook allocates from its caches: give them the new NAD and Subnet.
    std::thread::sleep(Duration::from_millis(500));

    // samplepod on node-1, static-ip on node-2: the guide's annotations as written.
    let t0 = Instant::now();
    apply(&pod_yaml(
        "samplepod",
        "node-1",
        &[(NETWORKS, "default/macvlan")],
    ));
    let samplepod_running = wait_running("samplepod", t0);
    let t1 = Instant::now();
    apply(&pod_yaml(
        "static-ip",
        "node-2",
        &[
            (NETWORKS, "default/macvlan"),
            ("ovn.kubernetes.io/ip_address", "10.16.0.15"),
            ("ovn.kubernetes.io/mac_address", "00:00:00:53:6B:B6"),
            ("macvlan.default.kubernetes.io/ip_address", "172.17.0.100"),
            (
                "macvlan.default.kubernetes.io/mac_address",
                "00:00:00:53:6B:BB",
            ),
        ],
    ));
    let static_running = wait_running("static-ip", t1);
    eprintln!("create -> Running: samplepod {samplepod_running:?}, static-ip {static_running:?}");
    for (name, node) in [("samplepod", "node-1"), ("static-ip", "node-2")] {
        assert_eq!(pod(name)["spec"]["nodeName"], node, "{name} runs on {node}");
    }

    // samplepod: net1 carries the address nadipam leased for it, from the Subnet, outside excludeIps.
    let leases = leases_of("samplepod");
    assert_eq!(leases.len(), 1, "samplepod holds one lease: {leases:?}");
    let (ips, _) = net1("samplepod");
    assert_eq!(ips, [format!("{}/16", leases[0].0)], "samplepod's net1");
    let last: u8 = leases[0]
        .0
        .rsplit('.')
        .next()
        .and_then(|o| o.parse().ok())
        .unwrap_or(0);
    assert!(
        leases[0].0.starts_with("172.17.") && !(leases[0].0.starts_with("172.17.0.") && last <= 10),
        "samplepod's address {} is in 172.17.0.0/16 outside 172.17.0.0..172.17.0.10",
        leases[0].0
    );

    // static-ip: the fixed address is on net1. The fixed MAC is leased and written to the Pod's annotations,
    // but with the guide's short-form `networks` annotation Multus gets no `mac` from the network selection
    // element, so nothing hands it to macvlan: the link keeps the MAC the kernel gave it.
    let (ips, mac) = net1("static-ip");
    assert_eq!(ips, ["172.17.0.100/16"], "static-ip's net1");
    assert_eq!(
        leases_of("static-ip"),
        [(
            "172.17.0.100".to_string(),
            Some("00:00:00:53:6b:bb".to_string())
        )],
        "static-ip's lease"
    );
    eprintln!(
        "static-ip (guide as written): net1 MAC {mac} (annotated 00:00:00:53:6b:bb; Multus passes no MAC \
         for a short-form networks annotation)"
    );

    // The same Pod with the MAC in the network selection element (the JSON form of `networks`): Multus hands
    // it to macvlan (CNI_ARGS MAC=), and nadipam leases that MAC. On node-1, next to samplepod.
    let t2 = Instant::now();
    apply(&pod_yaml(
        "static-mac",
        "node-1",
        &[
            (
                NETWORKS,
                r#"[{"name": "macvlan", "namespace": "default", "mac": "00:00:00:53:6b:bc"}]"#,
            ),
            ("macvlan.default.kubernetes.io/ip_address", "172.17.0.101"),
        ],
    ));
    wait_running("static-mac", t2);
    let (ips, mac) = net1("static-mac");
    assert_eq!(ips, ["172.17.0.101/16"], "static-mac's net1");
    assert_eq!(mac, "00:00:00:53:6b:bc", "static-mac's net1 MAC");
    assert_eq!(
        leases_of("static-mac"),
        [(
            "172.17.0.101".to_string(),
            Some("00:00:00:53:6b:bc".to_string())
        )],
        "static-mac's lease"
    );

    // Across nodes over the underlay: samplepod (node-1) pings static-ip (node-2) on net1.
    ping("samplepod", "172.17.0.100", 3);
    // And the other way, to the Pod whose MAC Multus set.
    ping("static-ip", "172.17.0.101", 2);

    // Pod delete: the kubelet runs CNI DEL, and the address is released.
    let t3 = Instant::now();
    delete_pods(&["static-ip"]);
    wait_until(
        "static-ip's lease released",
        Duration::from_secs(60),
        || match leases_of("static-ip").as_slice() {
            [] => Ok(()),
            l => Err(format!("leases {l:?}")),
        },
        || nadipam().log_tail(),
    );
    eprintln!(
        "static-ip deleted and its lease released in {:?}",
        t3.elapsed()
    );
    // ... and can be handed out again.
    let t4 = Instant::now();
    apply(&pod_yaml(
        "static-ip",
        "node-2",
        &[
            (NETWORKS, "default/macvlan"),
            ("macvlan.default.kubernetes.io/ip_address", "172.17.0.100"),
        ],
    ));
    wait_running("static-ip", t4);
    assert_eq!(net1("static-ip").0, ["172.17.0.100/16"], "static-ip again");

    delete_pods(&pods);
    for name in pods {
        assert_eq!(leases_of(name), [], "{name}'s leases after delete");
    }

    // 20 replicas over both nodes, with nadipam's IPAM and with host-local's (same macvlan on ul0): every
    // replica Running with its address on net1; the times are printed for docs and comparisons.
    apply(HOST_LOCAL_NAD);
    let _hl = common::DeleteOnDrop::new(
        "network-attachment-definition",
        "macvlan-host-local",
        Some("default"),
    );
    std::thread::sleep(Duration::from_millis(300));
    for (name, nad) in [
        ("replicas-nadipam", "macvlan"),
        ("replicas-host-local", "macvlan-host-local"),
    ] {
        let t = Instant::now();
        apply(&deployment_yaml(name, nad, 20));
        let _d = common::DeleteOnDrop::new("deployment", name, Some("default"));
        wait_until(
            &format!("20 replicas of {name} Running"),
            Duration::from_secs(180),
            || {
                let running = kubectl(&[
                    "get",
                    "pods",
                    "-l",
                    &format!("app={name}"),
                    "--field-selector",
                    "status.phase=Running",
                    "-o",
                    "name",
                ])?;
                match running.lines().count() {
                    20 => Ok(()),
                    n => Err(format!("{n} Running")),
                }
            },
            || kubectl(&["get", "pods", "-o", "wide"]).unwrap_or_else(|e| e),
        );
        let running = t.elapsed();
        let nodes = kubectl(&[
            "get",
            "pods",
            "-l",
            &format!("app={name}"),
            "-o",
            "jsonpath={.items[*].spec.nodeName}",
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            nodes.contains("node-1") && nodes.contains("node-2"),
            "{name}'s replicas on both nodes: {nodes}"
        );
        let t = Instant::now();
        kubectl(&["delete", "deployment", name, "--wait=true"]).unwrap_or_else(|e| panic!("{e}"));
        wait_until(
            &format!("{name}'s Pods gone"),
            Duration::from_secs(120),
            || match kubectl(&["get", "pods", "-l", &format!("app={name}"), "-o", "name"])?
                .lines()
                .count()
            {
                0 => Ok(()),
                n => Err(format!("{n} Pods left")),
            },
            || kubectl(&["get", "pods", "-o", "wide"]).unwrap_or_else(|e| e),
        );
        let gone = t.elapsed();
        // Every address nadipam leased to the replicas is released.
        wait_leases_released(name);
        eprintln!(
            "{name}: 20 replicas create -> all Running {running:?}; delete -> all gone {gone:?}"
        );
    }
    let _ = c;
}

/// The same macvlan on ul0 with host-local IPAM (per node, so not cluster-wide): the baseline for timings.
const HOST_LOCAL_NAD: &str = r#"apiVersion: "k8s.cni.cncf.io/v1"
kind: NetworkAttachmentDefinition
metadata:
  name: macvlan-host-local
  namespace: default
spec:
  config: '{"cniVersion": "0.3.0", "type": "macvlan", "master": "ul0", "mode": "bridge",
    "ipam": {"type": "host-local", "ranges": [[{"subnet": "172.30.0.0/24"}]]}}'
"#;

fn deployment_yaml(name: &str, nad: &str, replicas: u32) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  namespace: default
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
      annotations:
        k8s.v1.cni.cncf.io/networks: default/{nad}
    spec:
      tolerations:
      - {{key: {TAINT_KEY}, operator: Exists, effect: NoSchedule}}
      terminationGracePeriodSeconds: 5
      containers:
      - name: c
        image: localhost/nadipam-test:latest
        imagePullPolicy: Never
"#
    )
}

/// The Spiderpool ovs-cni guide's objects as nadipam objects (e2e/demo/spiderpool-ovs-cni.yaml: NAD
/// kube-system/ovs-conf on bridge br1 with nadipam IPAM, its Subnet, the guide's IPPool 172.18.30.131-140 and
/// `test-app` with 2 replicas and its podAntiAffinity), with the image and toleration of the test bed.
fn spiderpool_guide() -> String {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/e2e/demo/spiderpool-ovs-cni.yaml"
    );
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    let out = text
        .replace("image: nginx", "image: localhost/nadipam-test:latest")
        .replace("imagePullPolicy: IfNotPresent", "imagePullPolicy: Never")
        .replace(
            "      affinity:",
            &format!(
                "      tolerations: [{{key: {TAINT_KEY}, operator: Exists, effect: NoSchedule}}]\n      affinity:"
            ),
        );
    assert!(
        out.contains("localhost/nadipam-test") && out.contains(TAINT_KEY),
        "{path} changed shape; update the node suite's edits:\n{out}"
    );
    out
}

#[test]
fn node_suite_spiderpool_ovs_guide_on_two_nodes() {
    let _serial = serial();
    cluster_with_nodes(2);
    nadipam();
    let guide = spiderpool_guide();
    let _ = common::kubectl(
        &["delete", "--ignore-not-found", "--wait=true", "-f", "-"],
        &guide,
    );
    let t = Instant::now();
    apply(&guide);
    let _cleanup = common::DeleteOnDrop::new("deployment", "test-app", Some("default"));
    wait_until(
        "test-app's 2 replicas Running",
        Duration::from_secs(90),
        || {
            let out = kubectl(&[
                "get",
                "pods",
                "-l",
                "app=test-app",
                "--field-selector",
                "status.phase=Running",
                "-o",
                "jsonpath={range .items[*]}{.metadata.name} {.spec.nodeName} {.status.podIP}{\"\\n\"}{end}",
            ])?;
            let pods: Vec<Vec<String>> = out
                .lines()
                .map(|l| l.split_whitespace().map(str::to_string).collect())
                .filter(|w: &Vec<String>| w.len() == 3)
                .collect();
            if pods.len() == 2 {
                Ok(pods)
            } else {
                Err(format!("Running: {out:?}"))
            }
        },
        || {
            kubectl(&["describe", "pods", "-l", "app=test-app"]).unwrap_or_else(|e| e)
                + "\n--- nadipam log\n"
                + &nadipam().log_tail()
        },
    );
    eprintln!("test-app: 2 replicas create -> Running {:?}", t.elapsed());
    let pods = kubectl(&[
        "get",
        "pods",
        "-l",
        "app=test-app",
        "-o",
        "jsonpath={range .items[*]}{.metadata.name} {.spec.nodeName}{\"\\n\"}{end}",
    ])
    .unwrap_or_else(|e| panic!("{e}"));
    let pods: Vec<(String, String)> = pods
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    assert_eq!(pods.len(), 2, "test-app's Pods: {pods:?}");
    assert_ne!(
        pods[0].1, pods[1].1,
        "podAntiAffinity: one replica per node: {pods:?}"
    );

    // eth0 (the ovs network is the Pods' default network) carries an address of the guide's IPPool.
    let mut ips = Vec::new();
    for (pod, _) in &pods {
        let out = exec(pod, &["ip", "-o", "-4", "addr", "show", "eth0"])
            .unwrap_or_else(|e| panic!("ip addr in {pod}: {e}"));
        let ip = out
            .split_whitespace()
            .skip_while(|w| *w != "inet")
            .nth(1)
            .unwrap_or_else(|| panic!("no IPv4 address on {pod}'s eth0: {out}"))
            .to_string();
        let (addr, prefix) = ip.split_once('/').expect("address/prefix");
        let last: u8 = addr
            .rsplit('.')
            .next()
            .and_then(|o| o.parse().ok())
            .unwrap_or(0);
        assert!(
            addr.starts_with("172.18.30.") && (131..=140).contains(&last) && prefix == "16",
            "{pod}'s eth0 {ip} is in the IPPool 172.18.30.131-140 of 172.18.0.0/16"
        );
        ips.push(addr.to_string());
    }
    // Across nodes through Open vSwitch (userspace datapath): ping, then a TCP exchange.
    let out = exec(
        &pods[0].0,
        &["ping", "-c", "3", "-W", "2", "-w", "10", &ips[1]],
    )
    .unwrap_or_else(|e| panic!("ping {} -> {}: {e}", pods[0].0, ips[1]));
    assert!(out.contains("3 packets received"), "ping: {out}");
    exec(
        &pods[1].0,
        &[
            "sh",
            "-c",
            "nc -l -p 8080 -e echo hello-over-ovs >/dev/null 2>&1 &",
        ],
    )
    .unwrap_or_else(|e| panic!("starting a listener in {}: {e}", pods[1].0));
    let reply = wait_until(
        "a TCP reply across Open vSwitch",
        Duration::from_secs(15),
        || {
            let out = exec(
                &pods[0].0,
                &["sh", "-c", &format!("echo hi | nc -w 3 {} 8080", ips[1])],
            )?;
            if out.contains("hello-over-ovs") {
                Ok(out)
            } else {
                Err(out)
            }
        },
        String::new,
    );
    assert!(reply.contains("hello-over-ovs"));

    kubectl(&["delete", "deployment", "test-app", "--wait=true"]).unwrap_or_else(|e| panic!("{e}"));
    wait_leases_released("test-app-");
    let _ = common::kubectl(&["delete", "--ignore-not-found", "-f", "-"], &guide);
}
