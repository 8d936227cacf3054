//! nadipam installed the way a user installs it, on the test bed's two real nodes: `e2e/cluster install` (the
//! Helm chart with this checkout's image, imported into each node's containerd), `helm test`, both guides served
//! by the installed webhook and CNI plugin (the node agent DaemonSet installed the plugin and its kubeconfig),
//! `helm upgrade` to a new image tag and a changed value while Pods are being created, and `helm uninstall`.
//! Its own test binary: no other nadipam may serve the cluster's Pods meanwhile.

mod common;

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::nodes::*;

const RELEASE: &str = "nadipam";
const NAMESPACE: &str = "nadipam-system";

fn helm(args: &[&str]) -> Result<String, String> {
    let c = common::cluster_info();
    let out = Command::new(c.bin("helm"))
        .arg("--kubeconfig")
        .arg(&c.kubeconfig)
        .args(args)
        .output()
        .map_err(|e| format!("helm {args:?}: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        Ok(text)
    } else {
        Err(format!(
            "helm {args:?} failed ({}):\n{text}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// `e2e/cluster install ARGS`: the image tag it installed, and how long it took.
fn install(args: &[&str]) -> (String, Duration) {
    let t = Instant::now();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/e2e/cluster");
    let out = Command::new(script)
        .arg("install")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{script}: {e}"));
    assert!(
        out.status.success(),
        "e2e/cluster install {args:?} failed ({}):\n{}\n--- server logs\n{}\n--- objects\n{}\n--- webhooks\n{:?}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        server_logs(),
        kubectl(&["get", "all,events", "-n", NAMESPACE, "-o", "wide"]).unwrap_or_else(|e| e),
        webhook_configurations()
    );
    (
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
        t.elapsed(),
    )
}

/// The installed servers' recent log lines, for failure messages.
fn server_logs() -> String {
    kubectl(&[
        "logs",
        "-n",
        NAMESPACE,
        "-l",
        "app.kubernetes.io/component=server",
        "--tail",
        "30",
        "--prefix",
    ])
    .unwrap_or_else(|e| e)
}

/// The webhook configurations nadipam registered (names containing "nadipam").
fn webhook_configurations() -> Vec<String> {
    let out = kubectl(&[
        "get",
        "mutatingwebhookconfigurations,validatingwebhookconfigurations",
        "-o",
        "name",
    ])
    .unwrap_or_else(|e| panic!("{e}"));
    out.lines()
        .filter(|l| l.contains("nadipam"))
        .map(str::to_string)
        .collect()
}

/// Gives image `from` the name `to` as well, in each node's containerd.
fn tag_image(from: &str, to: &str) {
    let state = &common::cluster_info().state;
    for node in ["node-1", "node-2"] {
        let sock = state.join(format!("nodes/{node}/containerd/containerd.sock"));
        let out = Command::new("ctr")
            .arg("--address")
            .arg(&sock)
            .args(["-n", "k8s.io", "images", "tag", "--force", from, to])
            .output()
            .unwrap_or_else(|e| panic!("ctr: {e}"));
        assert!(out.status.success(), "ctr images tag on {node}: {out:?}");
    }
}

fn load_pod(i: u32) -> String {
    let mut yaml = pod_yaml(
        &format!("load-{i}"),
        if i.is_multiple_of(2) {
            "node-1"
        } else {
            "node-2"
        },
        &[("k8s.v1.cni.cncf.io/networks", "default/macvlan")],
    );
    yaml = yaml.replace(
        "  nodeSelector:\n",
        "  terminationGracePeriodSeconds: 1\n  nodeSelector:\n",
    );
    yaml
}

#[test]
fn helm_install_test_guides_upgrade_under_load_and_uninstall() {
    cluster_with_nodes(2);
    let _ = SERVER_LOG.set(server_logs);
    // A release left by an interrupted run, and webhook configurations left by servers of earlier test
    // binaries that were killed (theirs point at processes that are gone, and would refuse every Pod create).
    let _ = helm(&["uninstall", RELEASE, "-n", NAMESPACE, "--wait"]);
    for leftover in webhook_configurations() {
        eprintln!("deleting {leftover}, left by an earlier suite");
        let _ = kubectl(&["delete", &leftover, "--ignore-not-found"]);
    }

    // Install: helm --wait returns once the server replicas are ready and the node agents run.
    let (tag, took) = install(&[]);
    eprintln!("e2e/cluster install (image {tag}): {took:?}");
    let agents = kubectl(&[
        "get",
        "pods",
        "-n",
        NAMESPACE,
        "-l",
        "app.kubernetes.io/component=node-agent",
        "-o",
        "jsonpath={.items[*].spec.nodeName}",
    ])
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        agents.contains("node-1") && agents.contains("node-2"),
        "a node agent on each node: {agents:?}"
    );

    // helm test: /readyz through the Service by name (cluster DNS, kube-proxy), certificate checked.
    let t = Instant::now();
    let test = helm(&["test", RELEASE, "-n", NAMESPACE, "--logs"])
        .unwrap_or_else(|e| panic!("{e}\n--- server logs\n{}", server_logs()));
    assert!(test.contains("Succeeded"), "helm test: {test}");
    eprintln!("helm test passed in {:?}", t.elapsed());

    // The Kube-OVN guide, served by the installed nadipam: samplepod and static-ip on different nodes.
    delete_pods(&["samplepod", "static-ip"]);
    let _network = guide_network();
    let t = Instant::now();
    apply(&pod_yaml(
        "samplepod",
        "node-1",
        &[("k8s.v1.cni.cncf.io/networks", "default/macvlan")],
    ));
    apply(&pod_yaml(
        "static-ip",
        "node-2",
        &[
            ("k8s.v1.cni.cncf.io/networks", "default/macvlan"),
            ("macvlan.default.kubernetes.io/ip_address", "172.17.0.100"),
            (
                "macvlan.default.kubernetes.io/mac_address",
                "00:00:00:53:6B:BB",
            ),
        ],
    ));
    wait_running("samplepod", t);
    wait_running("static-ip", t);
    assert_eq!(
        net1("static-ip"),
        (
            vec!["172.17.0.100/16".to_string()],
            "00:00:00:53:6b:bb".to_string()
        ),
        "static-ip's net1"
    );
    let leases = leases_of("samplepod");
    assert_eq!(leases.len(), 1, "samplepod's leases: {leases:?}");
    assert_eq!(
        net1("samplepod").0,
        [format!("{}/16", leases[0].0)],
        "samplepod's net1"
    );
    ping("samplepod", "172.17.0.100", 2);
    eprintln!("Kube-OVN guide Pods Running in {:?}", t.elapsed());

    // The Spiderpool guide: test-app's replicas, one per node, on ovs `eth0` from the IPPool.
    delete_deployment("test-app");
    let guide = spiderpool_guide();
    apply(&guide);
    let _app = common::DeleteOnDrop::new("deployment", "test-app", Some("default"));
    let ips = wait_until(
        "test-app's 2 replicas Running",
        Duration::from_secs(120),
        || {
            let out = kubectl(&[
                "get",
                "pods",
                "-l",
                "app=test-app",
                "--field-selector",
                "status.phase=Running",
                "-o",
                "jsonpath={.items[*].status.podIP}",
            ])?;
            let ips: Vec<String> = out.split_whitespace().map(str::to_string).collect();
            if ips.len() == 2 {
                Ok(ips)
            } else {
                Err(format!("Running: {ips:?}"))
            }
        },
        || kubectl(&["describe", "pods", "-l", "app=test-app"]).unwrap_or_else(|e| e),
    );
    for ip in &ips {
        let last: u8 = ip
            .rsplit('.')
            .next()
            .and_then(|o| o.parse().ok())
            .unwrap_or(0);
        assert!(
            ip.starts_with("172.18.30.") && (131..=140).contains(&last),
            "test-app address {ip} in the guide's IPPool"
        );
    }

    // Upgrade while Pods are created at a steady rate: a new image tag (the same image, tagged anew in each
    // node's containerd) and a changed value. Every create must be admitted; no address twice.
    let new_tag = format!("{tag}-upgrade");
    tag_image(
        &format!("localhost/nadipam:{tag}"),
        &format!("localhost/nadipam:{new_tag}"),
    );
    let creating = Arc::new(AtomicBool::new(true));
    let load = {
        let creating = creating.clone();
        std::thread::spawn(move || {
            let mut created = 0u32;
            let mut failed = Vec::new();
            while creating.load(Ordering::Relaxed) || created < 20 {
                match common::kubectl(&["create", "-f", "-"], &load_pod(created)) {
                    Ok(_) => {}
                    Err(e) => failed.push(format!("load-{created}: {e}")),
                }
                created += 1;
                std::thread::sleep(Duration::from_millis(200));
            }
            (created, failed)
        })
    };
    std::thread::sleep(Duration::from_secs(2));
    let (_, took) = install(&[
        "--set",
        &format!("image.tag={new_tag}"),
        "--set",
        "server.logLevel=debug\\,kube=warn",
    ]);
    std::thread::sleep(Duration::from_secs(2));
    creating.store(false, Ordering::Relaxed);
    let (created, failed) = load.join().expect("load thread");
    eprintln!(
        "helm upgrade (new tag, changed value) in {took:?}: {created} Pods created during it, {} failed",
        failed.len()
    );
    assert!(
        failed.is_empty(),
        "creates failed during the upgrade:\n{}\n--- server logs\n{}",
        failed.join("\n"),
        server_logs()
    );
    // `--wait` returns once the new replicas are ready; the old ones are still in their preStop delay
    // (server.shutdownDelaySeconds) and leave within their grace period.
    let since = Instant::now();
    wait_until(
        "only servers of the new tag",
        Duration::from_secs(60),
        || {
            let images = kubectl(&[
                "get",
                "pods",
                "-n",
                NAMESPACE,
                "-l",
                "app.kubernetes.io/component=server",
                "-o",
                "jsonpath={.items[*].spec.containers[0].image}",
            ])?;
            if images.split_whitespace().all(|i| i.ends_with(&new_tag)) {
                Ok(())
            } else {
                Err(format!("server images: {images}"))
            }
        },
        server_logs,
    );
    eprintln!(
        "old servers gone {:?} after the upgrade returned",
        since.elapsed()
    );
    // Every load Pod holds exactly one lease, and no address is held twice.
    let json = kubectl(&["get", "ipleases", "-o", "json"]).unwrap_or_else(|e| panic!("{e}"));
    let v: serde_json::Value = serde_json::from_str(&json).expect("lease list");
    let items = v["items"].as_array().cloned().unwrap_or_default();
    let mut ips: Vec<&str> = items
        .iter()
        .filter_map(|l| l["spec"]["ip"].as_str())
        .collect();
    let all = ips.len();
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), all, "an address held by two leases");
    for i in 0..created {
        let name = format!("load-{i}");
        assert_eq!(leases_of(&name).len(), 1, "{name}'s leases");
    }
    let load_names: Vec<String> = (0..created).map(|i| format!("load-{i}")).collect();
    let load_refs: Vec<&str> = load_names.iter().map(String::as_str).collect();
    delete_pods(&load_refs);

    // Uninstall: the webhook configurations go with the release (a Fail-policy webhook left behind would lock
    // Pod creation); the CRDs stay, and so do the leases of the Pods still running.
    delete_pods(&["samplepod"]);
    let t = Instant::now();
    helm(&["uninstall", RELEASE, "-n", NAMESPACE, "--wait"]).unwrap_or_else(|e| panic!("{e}"));
    eprintln!("helm uninstall in {:?}", t.elapsed());
    assert_eq!(
        webhook_configurations(),
        Vec::<String>::new(),
        "webhook configurations left after uninstall"
    );
    kubectl(&[
        "get",
        "crd",
        "subnets.nadipam.io",
        "ippools.nadipam.io",
        "ipleases.nadipam.io",
        "networks.nadipam.io",
    ])
    .unwrap_or_else(|e| panic!("CRDs kept after uninstall: {e}"));
    assert_eq!(leases_of("static-ip").len(), 1, "static-ip's lease kept");
    // Pod creation works without nadipam (a Pod without networks).
    apply(&pod_yaml("after-uninstall", "node-1", &[]));
    wait_running("after-uninstall", Instant::now());
    // Cleaning up after nadipam is the user's: the Pods, then the leases nothing releases any more.
    drop(_app);
    delete_deployment("test-app");
    delete_pods(&["after-uninstall", "static-ip"]);
    kubectl(&["delete", "ipleases", "--all"]).unwrap_or_else(|e| panic!("{e}"));

    install_yaml_applies_and_serves(&tag);
}

/// `manifests/install.yaml`, the install without Helm, applied as README says. Its image `nadipam:0.1.0` is this
/// checkout's image under that name in each node; the nodes' taint is tolerated with a patch (the file is the
/// chart's defaults). Then a guide Pod gets its address from it, and the file is deleted again (CRDs re-applied
/// for the suites that follow).
fn install_yaml_applies_and_serves(tag: &str) {
    tag_image(
        &format!("localhost/nadipam:{tag}"),
        "docker.io/library/nadipam:0.1.0",
    );
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/manifests/install.yaml");
    let t = Instant::now();
    kubectl(&["apply", "--server-side", "-f", file]).unwrap_or_else(|e| panic!("{e}"));
    let toleration = r#"[{"op": "add", "path": "/spec/template/spec/tolerations",
        "value": [{"key": "nadipam.io/test-bed", "operator": "Exists", "effect": "NoSchedule"}]}]"#;
    kubectl(&[
        "patch",
        "deployment",
        "nadipam-server",
        "-n",
        NAMESPACE,
        "--type",
        "json",
        "-p",
        toleration,
    ])
    .unwrap_or_else(|e| panic!("{e}"));
    kubectl(&[
        "rollout",
        "status",
        "deployment/nadipam-server",
        "-n",
        NAMESPACE,
        "--timeout=180s",
    ])
    .unwrap_or_else(|e| panic!("{e}\n{}", server_logs()));
    kubectl(&[
        "rollout",
        "status",
        "daemonset/nadipam-node-agent",
        "-n",
        NAMESPACE,
        "--timeout=120s",
    ])
    .unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "manifests/install.yaml applied and rolled out in {:?}",
        t.elapsed()
    );
    // A replica leads before the Pod below is deleted: a delete no controller sees is left to the reclaim
    // window (70 s after the lease's creation), by design (docs/lifecycle.md), and the uninstalled release's
    // leader Lease may still be held for a while.
    wait_until(
        "a server replica leading (the lease controller's caches synced)",
        Duration::from_secs(120),
        || {
            let logs = kubectl(&[
                "logs",
                "-n",
                NAMESPACE,
                "-l",
                "app.kubernetes.io/component=server",
                "--tail=-1",
            ])?;
            if logs.contains("controller caches synced") {
                Ok(())
            } else {
                Err("no replica leads yet".to_string())
            }
        },
        server_logs,
    );
    let _network = guide_network();
    let t = Instant::now();
    apply(&pod_yaml(
        "samplepod",
        "node-2",
        &[("k8s.v1.cni.cncf.io/networks", "default/macvlan")],
    ));
    wait_running("samplepod", t);
    let leases = leases_of("samplepod");
    assert_eq!(leases.len(), 1, "samplepod's leases: {leases:?}");
    assert_eq!(net1("samplepod").0, [format!("{}/16", leases[0].0)]);
    delete_pods(&["samplepod"]);
    wait_until(
        "samplepod's lease released",
        Duration::from_secs(60),
        || match leases_of("samplepod").as_slice() {
            [] => Ok(()),
            l => Err(format!("{l:?}")),
        },
        server_logs,
    );
    drop(_network);
    kubectl(&["delete", "-f", file, "--wait=true"]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        webhook_configurations(),
        Vec::<String>::new(),
        "webhook configurations left after deleting install.yaml"
    );
    let crds = concat!(env!("CARGO_MANIFEST_DIR"), "/manifests/crds");
    kubectl(&["apply", "--server-side", "-f", crds]).unwrap_or_else(|e| panic!("{e}"));
}
