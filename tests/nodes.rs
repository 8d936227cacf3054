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

use common::nodes::*;
use common::server::{Server, start};

/// The server runs in its own namespace: the webhook leaves Pods of the server's namespace alone (its own
/// Pods must start without it), and the guide's Pods are in `default`.
const SERVER_NAMESPACE: &str = "nadipam-system";

fn nadipam() -> &'static Server {
    static SERVER: std::sync::OnceLock<Server> = std::sync::OnceLock::new();
    let _ = SERVER_LOG.set(|| nadipam().log_tail());
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
    let _network = guide_network();

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

    // static-ip, as the guide writes it: the fixed address and the fixed MAC are on net1. nadipam wrote the MAC
    // into the Pod's network selection element, so Multus handed it to macvlan (CNI_ARGS MAC=).
    let (ips, mac) = net1("static-ip");
    assert_eq!(ips, ["172.17.0.100/16"], "static-ip's net1");
    assert_eq!(mac, "00:00:00:53:6b:bb", "static-ip's net1 MAC");
    assert_eq!(
        leases_of("static-ip"),
        [(
            "172.17.0.100".to_string(),
            Some("00:00:00:53:6b:bb".to_string())
        )],
        "static-ip's lease"
    );
    // samplepod asked for no MAC: the one nadipam generated and leased is the link's.
    assert_eq!(
        Some(net1("samplepod").1),
        leases[0].1,
        "samplepod's net1 MAC is its leased MAC"
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
        let tokens = tokens_of(&format!("app={name}"));
        assert_eq!(
            tokens.len(),
            if nad == "macvlan" { 20 } else { 0 },
            "{name}: Pods carrying a nadipam reservation"
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
        wait_leases_released(name, &tokens);
        eprintln!(
            "{name}: 20 replicas create -> all Running {running:?}; delete -> all gone {gone:?}"
        );
    }
    let _ = c;
}

/// The rest of the Kube-OVN guide on the nodes: the `ip_pool` workload (`static-workload`), the Pod whose
/// default route is on net1, the Pod whose primary interface is the macvlan (`default-network`), and the
/// Kube-OVN-typed attachment (`.ovn` provider), which needs Kube-OVN's own CNI plugin.
#[test]
fn node_suite_kube_ovn_guide_workloads_routes_default_network_and_ovn_attachment() {
    let _serial = serial();
    let c = cluster_with_nodes(2);
    nadipam();
    let pods = [
        "samplepod-route",
        "samplepod-macvlan",
        "samplepod-attachnet",
    ];
    delete_pods(&pods);
    delete_deployment("static-workload");
    let _network = guide_network();

    // static-workload: two replicas take addresses of the Deployment's ip_pool list (the Pods are not on the
    // Kube-OVN primary network here, so `ovn.kubernetes.io/ip_pool` is not nadipam's and is left alone).
    let t = Instant::now();
    apply(STATIC_WORKLOAD);
    let _d = common::DeleteOnDrop::new("deployment", "static-workload", Some("default"));
    let replicas = wait_until(
        "static-workload's 2 replicas Running",
        Duration::from_secs(90),
        || {
            let names = kubectl(&[
                "get",
                "pods",
                "-l",
                "app=static-workload",
                "--field-selector",
                "status.phase=Running",
                "-o",
                "jsonpath={.items[*].metadata.name}",
            ])?;
            let names: Vec<String> = names.split_whitespace().map(str::to_string).collect();
            if names.len() == 2 {
                Ok(names)
            } else {
                Err(format!("{} Running", names.len()))
            }
        },
        || kubectl(&["describe", "pods", "-l", "app=static-workload"]).unwrap_or_else(|e| e),
    );
    let mut addrs: Vec<String> = replicas
        .iter()
        .map(|p| {
            let (ips, _) = net1(p);
            assert_eq!(ips.len(), 1, "{p}'s net1 has one address: {ips:?}");
            ips[0].clone()
        })
        .collect();
    addrs.sort();
    assert!(
        addrs[0] != addrs[1]
            && addrs.iter().all(
                |a| ["172.17.0.200/16", "172.17.0.201/16", "172.17.0.202/16"].contains(&a.as_str())
            ),
        "static-workload's replicas have distinct addresses of their ip_pool on net1: {addrs:?}"
    );
    eprintln!(
        "static-workload: 2 replicas Running in {:?}, net1 {addrs:?}",
        t.elapsed()
    );
    // The replicas reach each other over net1.
    ping(&replicas[0], addrs[1].trim_end_matches("/16"), 2);

    // samplepod-route: the default route goes via 172.17.0.1 on net1.
    let t = Instant::now();
    apply(&pod_yaml(
        "samplepod-route",
        "node-1",
        &[(
            NETWORKS,
            r#"[{"name": "macvlan", "namespace": "default", "default-route": ["172.17.0.1"]}]"#,
        )],
    ));
    wait_running("samplepod-route", t);
    // The route the kernel takes for traffic leaving the Pod (a lookup only: nothing is sent). Multus v4.3.0
    // also leaves eth0's default route in place (it misreads the kernel's default routes; upstream
    // k8snetworkplumbingwg/multus-cni#1552); net1's is added first, so it is the one used.
    let taken = exec("samplepod-route", &["ip", "route", "get", "192.0.2.1"])
        .unwrap_or_else(|e| panic!("{e}"));
    let routes = exec("samplepod-route", &["ip", "route"]).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        taken.contains("via 172.17.0.1 dev net1")
            && routes.contains("default via 172.17.0.1 dev net1"),
        "samplepod-route's default route is via 172.17.0.1 on net1:\n{taken}\n{routes}"
    );
    eprintln!(
        "samplepod-route: ip route get 192.0.2.1 -> {}",
        taken.trim()
    );

    // samplepod-macvlan: the macvlan is the Pod's primary interface eth0, with the leased address and MAC.
    let t = Instant::now();
    apply(&pod_yaml(
        "samplepod-macvlan",
        "node-2",
        &[("v1.multus-cni.io/default-network", "default/macvlan")],
    ));
    wait_running("samplepod-macvlan", t);
    let leases = leases_of("samplepod-macvlan");
    assert_eq!(
        leases.len(),
        1,
        "samplepod-macvlan holds one lease: {leases:?}"
    );
    let (ips, mac) = iface("samplepod-macvlan", "eth0");
    assert_eq!(
        ips,
        [format!("{}/16", leases[0].0)],
        "samplepod-macvlan's eth0"
    );
    assert_eq!(Some(mac), leases[0].1, "samplepod-macvlan's eth0 MAC");
    // eth0 is the only interface besides lo: no cluster-network interface next to it.
    let links = exec("samplepod-macvlan", &["ip", "-o", "link"]).unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<&str> = links
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n))
        .collect();
    assert_eq!(names, ["lo", "eth0"], "samplepod-macvlan's links:\n{links}");
    // Reached over the underlay from node-1's samplepod-route (its net1).
    ping("samplepod-route", &leases[0].0, 2);

    // samplepod-attachnet: a Kube-OVN-typed attachment. nadipam allocates (the Pod is admitted with its
    // address), and the sandbox fails on the node because Kube-OVN's CNI plugin is not installed there.
    apply(ATTACHNET);
    let _attachnet_subnet = common::DeleteOnDrop::new("subnet", "attachnet", None);
    let _attachnet = common::DeleteOnDrop::new(
        "network-attachment-definition",
        "attachnet",
        Some("default"),
    );
    std::thread::sleep(Duration::from_millis(500));
    apply(&pod_yaml(
        "samplepod-attachnet",
        "node-1",
        &[(NETWORKS, "default/attachnet")],
    ));
    let p = pod("samplepod-attachnet");
    let ip = p["metadata"]["annotations"]["attachnet.default.ovn.kubernetes.io/ip_address"]
        .as_str()
        .unwrap_or_else(|| panic!("samplepod-attachnet admitted with an address: {p}"))
        .to_string();
    let uid = p["metadata"]["uid"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let message = wait_until(
        "samplepod-attachnet's sandbox failure",
        Duration::from_secs(60),
        || {
            let events = kubectl(&[
                "get",
                "events",
                "--field-selector",
                &format!("involvedObject.uid={uid},reason=FailedCreatePodSandBox"),
                "-o",
                "jsonpath={.items[*].message}",
            ])?;
            if events.contains("kube-ovn") {
                Ok(events)
            } else {
                Err(format!("events: {events:?}"))
            }
        },
        || diagnose_pod("samplepod-attachnet"),
    );
    assert_ne!(pod("samplepod-attachnet")["status"]["phase"], "Running");
    eprintln!(
        "samplepod-attachnet: admitted with {ip}; the node says: {}",
        message.lines().next().unwrap_or_default()
    );

    // Its sandbox cannot be torn down either (Multus' DEL fails on the same missing plugin), so the kubelet
    // never confirms the delete: it is forced, as a user of such a node would.
    kubectl(&[
        "delete",
        "pod",
        "samplepod-attachnet",
        "--grace-period=0",
        "--force",
    ])
    .unwrap_or_else(|e| panic!("{e}"));
    let tokens = tokens_of("app=static-workload");
    assert_eq!(tokens.len(), 2, "static-workload's replicas' reservations");
    delete_pods(&pods);
    kubectl(&["delete", "deployment", "static-workload", "--wait=true"])
        .unwrap_or_else(|e| panic!("{e}"));
    for name in pods {
        wait_until(
            &format!("{name}'s lease released"),
            Duration::from_secs(60),
            || match leases_of(name).as_slice() {
                [] => Ok(()),
                l => Err(format!("leases {l:?}")),
            },
            || nadipam().log_tail(),
        );
    }
    wait_leases_released("static-workload", &tokens);
    let _ = c;
}

/// The guide's `static-workload` (image and scheduling as in the module doc).
const STATIC_WORKLOAD: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  namespace: default
  name: static-workload
  labels:
    app: static-workload
spec:
  replicas: 2
  selector:
    matchLabels:
      app: static-workload
  template:
    metadata:
      labels:
        app: static-workload
      annotations:
        k8s.v1.cni.cncf.io/networks: default/macvlan
        ovn.kubernetes.io/ip_pool: 10.16.0.15,10.16.0.16,10.16.0.17
        macvlan.default.kubernetes.io/ip_pool: 172.17.0.200,172.17.0.201,172.17.0.202
    spec:
      tolerations:
      - {key: nadipam.io/test-bed, operator: Exists, effect: NoSchedule}
      containers:
      - name: static-workload
        command: ["/bin/ash", "-c", "trap : TERM INT; sleep infinity & wait"]
        image: localhost/nadipam-test:latest
        imagePullPolicy: Never
"#;

/// The guide's Kube-OVN-typed attachment: NAD and Subnet as written (apiVersion nadipam.io/v1).
const ATTACHNET: &str = r#"apiVersion: "k8s.cni.cncf.io/v1"
kind: NetworkAttachmentDefinition
metadata:
  name: attachnet
  namespace: default
spec:
  config: '{
      "cniVersion": "0.3.0",
      "type": "kube-ovn",
      "server_socket": "/run/openvswitch/kube-ovn-daemon.sock",
      "provider": "attachnet.default.ovn"
    }'
---
apiVersion: nadipam.io/v1
kind: Subnet
metadata:
  name: attachnet
spec:
  protocol: IPv4
  provider: attachnet.default.ovn
  cidrBlock: 172.17.0.0/16
  gateway: 172.17.0.1
  excludeIps:
  - 172.17.0.0..172.17.0.10
"#;

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

#[test]
fn node_suite_spiderpool_ovs_guide_on_two_nodes() {
    let _serial = serial();
    cluster_with_nodes(2);
    nadipam();
    let guide = spiderpool_guide();
    // An earlier run's (or the demo's) test-app, with its Pods: they would be counted as this run's.
    delete_deployment("test-app");
    for objects in [spiderpool_guide_as_network(), guide.clone()] {
        let _ = common::kubectl(
            &["delete", "--ignore-not-found", "--wait=true", "-f", "-"],
            &objects,
        );
    }
    run_spiderpool_guide(&guide);
    let _ = common::kubectl(&["delete", "--ignore-not-found", "-f", "-"], &guide);
}

/// The Spiderpool guide with its NAD (and the Subnet nadipam needs) written as one `Network`, as the guide
/// writes its SpiderMultusConfig: the controller generates the guide's NAD from it.
#[test]
fn node_suite_spiderpool_ovs_guide_from_a_network() {
    let _serial = serial();
    cluster_with_nodes(2);
    nadipam();
    let objects = spiderpool_guide_as_network();
    delete_deployment("test-app");
    for text in [spiderpool_guide(), objects.clone()] {
        let _ = common::kubectl(
            &["delete", "--ignore-not-found", "--wait=true", "-f", "-"],
            &text,
        );
    }
    // The Network first: the IPPool names its Subnet and the Deployment its NAD, which it generates.
    apply(SPIDERPOOL_NETWORK);
    wait_until(
        "Network kube-system/ovs-conf Ready",
        Duration::from_secs(30),
        || {
            let ready = kubectl(&[
                "get",
                "nnet",
                "ovs-conf",
                "-n",
                "kube-system",
                "-o",
                "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
            ])?;
            if ready == "True" { Ok(()) } else { Err(ready) }
        },
        || nadipam().log_tail(),
    );
    run_spiderpool_guide(&objects);
    // The guide's NAD config, plus the name Multus would give it, is what the Network generated.
    let guide = spiderpool_guide();
    let start = guide.find("config: '").expect("the guide's NAD config") + "config: '".len();
    let len = guide[start..].find('\'').expect("end of the config");
    let mut want: serde_json::Value =
        serde_json::from_str(&guide[start..start + len]).expect("the guide's config is JSON");
    want["name"] = "ovs-conf".into();
    let generated = wait_until(
        "the NAD generated from Network kube-system/ovs-conf",
        Duration::from_secs(30),
        || {
            kubectl(&[
                "get",
                "network-attachment-definitions.k8s.cni.cncf.io",
                "ovs-conf",
                "-n",
                "kube-system",
                "-o",
                "jsonpath={.spec.config}",
            ])
        },
        String::new,
    );
    let generated: serde_json::Value =
        serde_json::from_str(&generated).expect("the generated config is JSON");
    assert_eq!(generated, want);
    let _ = common::kubectl(&["delete", "--ignore-not-found", "-f", "-"], &objects);
}

/// The guide's objects with its NAD and Subnet replaced by a Network of the same name.
fn spiderpool_guide_as_network() -> String {
    let guide = spiderpool_guide();
    let rest: Vec<&str> = guide
        .split("\n---\n")
        .filter(|doc| {
            !doc.contains("kind: NetworkAttachmentDefinition") && !doc.contains("kind: Subnet")
        })
        .collect();
    assert_eq!(rest.len(), 2, "the guide's IPPool and Deployment remain");
    format!("{SPIDERPOOL_NETWORK}---\n{}", rest.join("\n---\n"))
}

/// The guide's SpiderMultusConfig `ovs-conf` (cniType ovs on bridge br1) as a Network, with the Subnet its
/// IPPool belongs to (172.18.0.0/16, gateway 172.18.0.1) inline.
const SPIDERPOOL_NETWORK: &str = r#"apiVersion: nadipam.io/v1
kind: Network
metadata:
  name: ovs-conf
  namespace: kube-system
spec:
  cniType: ovs
  ovs:
    bridge: br1
  ipam:
    cidrBlock: 172.18.0.0/16
    gateway: 172.18.0.1
"#;

/// Applies `objects` (the guide's, with its ovs network in one form or the other) and checks `test-app`: two
/// replicas on different nodes with addresses of the IPPool on their ovs `eth0`, ping and TCP between them,
/// the addresses released when the Deployment goes.
fn run_spiderpool_guide(guide: &str) {
    let t = Instant::now();
    apply(guide);
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

    let tokens = tokens_of("app=test-app");
    assert_eq!(tokens.len(), 2, "test-app's replicas' reservations");
    kubectl(&["delete", "deployment", "test-app", "--wait=true"]).unwrap_or_else(|e| panic!("{e}"));
    wait_leases_released("test-app", &tokens);
}

/// A KubeVirt-style persistent address: a Pod naming an IPAMClaim gets the claim's address; deleted and
/// re-created on the other node (a VM restarted elsewhere) it has the same address and MAC on net1, reachable by
/// ping; the address goes once the claim is deleted and the last Pod using it is gone.
#[test]
fn node_suite_ipamclaim_address_follows_the_vm_across_pods_and_nodes() {
    let _serial = serial();
    cluster_with_nodes(2);
    nadipam();
    let pods = ["vm-a-1", "vm-a-2", "peer"];
    delete_pods(&pods);
    let _network = guide_network();
    let _ = kubectl(&[
        "delete",
        "ipamclaim",
        "vm-a",
        "--ignore-not-found",
        "--wait=true",
    ]);
    apply(
        r#"apiVersion: k8s.cni.cncf.io/v1alpha1
kind: IPAMClaim
metadata:
  name: vm-a
  namespace: default
spec:
  network: default/macvlan
  interface: net1
"#,
    );
    let element = r#"[{"name": "macvlan", "namespace": "default", "interface": "net1", "ipam-claim-reference": "vm-a"}]"#;

    let t0 = Instant::now();
    apply(&pod_yaml("vm-a-1", "node-1", &[(NETWORKS, element)]));
    wait_running("vm-a-1", t0);
    let (first_ips, first_mac) = net1("vm-a-1");
    assert_eq!(first_ips.len(), 1, "vm-a-1's net1: {first_ips:?}");
    let claim = kubectl(&[
        "get",
        "ipamclaim",
        "vm-a",
        "-o",
        "jsonpath={.status.ips[0]}",
    ])
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        claim, first_ips[0],
        "the claim's status.ips is the Pod's net1 address"
    );

    // The VM restarts on the other node: the Pod is deleted and another one names the same claim.
    delete_pods(&["vm-a-1"]);
    let t1 = Instant::now();
    apply(&pod_yaml("vm-a-2", "node-2", &[(NETWORKS, element)]));
    let again = wait_running("vm-a-2", t1);
    eprintln!("claim Pod re-created on the other node -> Running: {again:?}");
    let (ips, mac) = net1("vm-a-2");
    assert_eq!(ips, first_ips, "same address on net1 after re-creation");
    assert_eq!(mac, first_mac, "same MAC on net1 after re-creation");

    // Reachable at that address from a Pod on the first node.
    apply(&pod_yaml(
        "peer",
        "node-1",
        &[(NETWORKS, "default/macvlan")],
    ));
    wait_running("peer", Instant::now());
    let addr = ips[0].split('/').next().unwrap_or_default().to_string();
    ping("peer", &addr, 3);

    // The claim deleted while vm-a-2 runs: the address stays until the Pod is gone, then it is released.
    kubectl(&["delete", "ipamclaim", "vm-a", "--wait=true"]).unwrap_or_else(|e| panic!("{e}"));
    std::thread::sleep(Duration::from_secs(2));
    let held = kubectl(&["get", "ipleases", "-o", "jsonpath={.items[*].spec.claim}"])
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        held.contains("vm-a"),
        "the claim's lease stays while its Pod runs: {held:?}"
    );
    delete_pods(&["vm-a-2", "peer"]);
    wait_until(
        "the deleted claim's lease released",
        Duration::from_secs(60),
        || {
            let held = kubectl(&["get", "ipleases", "-o", "jsonpath={.items[*].spec.claim}"])?;
            if held.contains("vm-a") {
                Err(held)
            } else {
                Ok(())
            }
        },
        || nadipam().log_tail(),
    );
}

/// The rack label of the node-aware pool test, removed from the nodes again when dropped.
struct RackLabels;

impl Drop for RackLabels {
    fn drop(&mut self) {
        for node in ["node-1", "node-2"] {
            let _ = kubectl(&["label", "node", node, "e2e.nadipam.io/rack-"]);
        }
    }
}

/// Two IPPools pinned by a node label to one node each (the first with room for 3 Pods), and a Deployment of
/// 6 replicas with no node constraint naming both: the first 3 get rack 1's addresses, the rest rack 2's, and
/// every Pod runs on the node whose pool gave its `net1` address (read inside the Pod).
#[test]
fn node_suite_pools_pinned_to_nodes_place_every_pod_on_its_pools_node() {
    let _serial = serial();
    cluster_with_nodes(2);
    nadipam();
    delete_deployment("racks");
    let _labels = RackLabels;
    for (node, rack) in [("node-1", "r1"), ("node-2", "r2")] {
        kubectl(&[
            "label",
            "node",
            node,
            &format!("e2e.nadipam.io/rack={rack}"),
            "--overwrite",
        ])
        .unwrap_or_else(|e| panic!("labelling {node}: {e}"));
    }
    apply(
        r#"apiVersion: "k8s.cni.cncf.io/v1"
kind: NetworkAttachmentDefinition
metadata: {name: racks, namespace: default}
spec:
  config: '{"cniVersion": "0.3.0", "type": "macvlan", "master": "ul0", "mode": "bridge",
    "ipam": {"type": "nadipam", "provider": "racks.default"}}'
---
apiVersion: nadipam.io/v1
kind: Subnet
metadata: {name: racks}
spec: {provider: racks.default, cidrBlock: 172.29.0.0/24}
---
apiVersion: nadipam.io/v1
kind: IPPool
metadata: {name: rack-1}
spec:
  subnet: racks
  ips: [172.29.0.10-172.29.0.12]
  nodeSelector: {matchLabels: {e2e.nadipam.io/rack: r1}}
---
apiVersion: nadipam.io/v1
kind: IPPool
metadata: {name: rack-2}
spec:
  subnet: racks
  ips: [172.29.0.20-172.29.0.29]
  nodeSelector: {matchLabels: {e2e.nadipam.io/rack: r2}}
"#,
    );
    let _objects = (
        common::DeleteOnDrop::new("network-attachment-definition", "racks", Some("default")),
        common::DeleteOnDrop::new("subnet", "racks", None),
        common::DeleteOnDrop::new("ippool", "rack-2", None),
        common::DeleteOnDrop::new("ippool", "rack-1", None),
    );
    std::thread::sleep(Duration::from_millis(500));
    let deployment = deployment_yaml("racks", "racks", 6).replace(
        "        k8s.v1.cni.cncf.io/networks: default/racks\n",
        "        k8s.v1.cni.cncf.io/networks: default/racks\n        ipam.spidernet.io/ippool: '{\"ipv4\": [\"rack-1\", \"rack-2\"]}'\n",
    );
    assert!(deployment.contains("rack-1"), "{deployment}");
    apply(&deployment);
    let _cleanup = common::DeleteOnDrop::new("deployment", "racks", Some("default"));
    let pods: Vec<(String, String)> = wait_until(
        "racks' 6 replicas Running",
        Duration::from_secs(120),
        || {
            let out = kubectl(&[
                "get",
                "pods",
                "-l",
                "app=racks",
                "--field-selector",
                "status.phase=Running",
                "-o",
                "jsonpath={range .items[*]}{.metadata.name} {.spec.nodeName}{\"\\n\"}{end}",
            ])?;
            let pods: Vec<(String, String)> = out
                .lines()
                .filter_map(|l| l.split_once(' '))
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect();
            if pods.len() == 6 {
                Ok(pods)
            } else {
                Err(format!("Running: {out:?}"))
            }
        },
        || {
            kubectl(&["describe", "pods", "-l", "app=racks"]).unwrap_or_else(|e| e)
                + "\n--- nadipam log\n"
                + &nadipam().log_tail()
        },
    );
    let mut per_node = std::collections::BTreeMap::<String, usize>::new();
    for (pod, node) in &pods {
        let (ips, _) = net1(pod);
        let ip = ips
            .first()
            .unwrap_or_else(|| panic!("{pod} has no net1 address"));
        let last: u8 = ip
            .split('/')
            .next()
            .and_then(|a| a.rsplit('.').next())
            .and_then(|o| o.parse().ok())
            .unwrap_or(0);
        let pool_node = match last {
            10..=12 => "node-1",
            20..=29 => "node-2",
            _ => panic!("{pod}'s net1 {ip} is in neither rack pool"),
        };
        assert_eq!(
            node, pool_node,
            "{pod} runs on {node} but its net1 address {ip} is valid on {pool_node}"
        );
        *per_node.entry(node.clone()).or_default() += 1;
    }
    // Rack 1's pool had room for 3: both nodes, and so both pools, were used.
    assert_eq!(
        per_node,
        [("node-1".to_string(), 3), ("node-2".to_string(), 3)].into(),
        "{pods:?}"
    );
    let tokens = tokens_of("app=racks");
    kubectl(&["delete", "deployment", "racks", "--wait=true"]).unwrap_or_else(|e| panic!("{e}"));
    wait_leases_released("racks", &tokens);
}
