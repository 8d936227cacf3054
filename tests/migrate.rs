//! Moving onto nadipam through the real apiserver: `adopt` (Pods' network-status → leases, and the controller
//! keeping them while their Pod lives and releasing them when it goes) and `import --from` Kube-OVN,
//! Spiderpool and Whereabouts (the peers' CRDs applied as their installs do, their objects created as their
//! users and controllers write them): a dry run writes nothing and shows the plan, `--apply` creates the
//! Subnets, IPPools and leases, applying again creates nothing, and conflicts are reported. No kubelet: Pods
//! stay Pending, so the test writes the network-status Multus would write.

mod common;

use std::time::Duration;

use common::server::{Server, run, start, wait_established};
use common::{cluster, cluster_info, test_namespace};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use nadipam::api::{IPLease, IPPool, LeasePhase, Subnet};
use nadipam::migrate::{Action, AdoptArgs, ImportArgs, Peer, Summary, run_adopt, run_import};
use serde_json::{Value, json};

fn server() -> &'static Server {
    static SERVER: std::sync::OnceLock<Server> = std::sync::OnceLock::new();
    SERVER.get_or_init(|| start(&["--namespace", "default", "--leader-lease-seconds", "5"]))
}

/// The peers' CRDs (Kube-OVN's and Spiderpool's from e2e/manifests, Whereabouts' from its module), installed
/// while a test uses them: Kube-OVN's `subnets`/`ippools` and Whereabouts' `ippools` take kubectl's short
/// names `subnet`/`ippool` from nadipam's, which the other suites sharing this control plane use, so the last
/// test to finish deletes them (and Whereabouts' only when it installed them: the node bed installs those).
struct PeerCrds;

const PEER_CRDS: [&str; 9] = [
    "subnets.kubeovn.io",
    "ips.kubeovn.io",
    "ippools.kubeovn.io",
    "spiderippools.spiderpool.spidernet.io",
    "spidersubnets.spiderpool.spidernet.io",
    "spiderendpoints.spiderpool.spidernet.io",
    "spiderreservedips.spiderpool.spidernet.io",
    "ippools.whereabouts.cni.cncf.io",
    "overlappingrangeipreservations.whereabouts.cni.cncf.io",
];

/// Users of the peers' CRDs, and whether Whereabouts' were there before.
static PEER_USERS: std::sync::Mutex<(usize, bool)> = std::sync::Mutex::new((0, false));

fn peer_crds() -> PeerCrds {
    let mut users = PEER_USERS.lock().unwrap_or_else(|e| e.into_inner());
    if users.0 == 0 {
        let c = cluster_info();
        users.1 = c
            .kubectl()
            .args(["get", "crd", "ippools.whereabouts.cni.cncf.io"])
            .output()
            .is_ok_and(|o| o.status.success());
        let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        for f in [
            repo.join("e2e/manifests/kube-ovn-crds.yaml"),
            repo.join("e2e/manifests/spiderpool-crds.yaml"),
            c.bin_dir.join("whereabouts-crds"),
        ] {
            run(c
                .kubectl()
                .args(["apply", "--server-side", "--force-conflicts", "-f"])
                .arg(f));
        }
        wait_established(c, &PEER_CRDS);
    }
    users.0 += 1;
    PeerCrds
}

impl Drop for PeerCrds {
    fn drop(&mut self) {
        let mut users = PEER_USERS.lock().unwrap_or_else(|e| e.into_inner());
        users.0 -= 1;
        if users.0 > 0 {
            return;
        }
        let keep = if users.1 { 7 } else { PEER_CRDS.len() };
        let mut cmd = cluster_info().kubectl();
        cmd.args([
            "delete",
            "crd",
            "--ignore-not-found",
            "--wait=true",
            "--timeout=60s",
        ]);
        cmd.args(&PEER_CRDS[..keep]);
        if let Ok(out) = cmd.output()
            && !out.status.success()
        {
            eprintln!(
                "deleting the peers' CRDs: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

fn apply_yaml(yaml: &str) {
    common::kubectl(&["apply", "-f", "-"], yaml)
        .unwrap_or_else(|e| panic!("kubectl apply: {e}\n{yaml}"));
}

async fn pod(client: &Client, ns: &str, name: &str, annotations: Value) -> Pod {
    let p: Pod = serde_json::from_value(json!({
        "metadata": {"name": name, "annotations": annotations},
        "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}]}
    }))
    .unwrap();
    Api::<Pod>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &p)
        .await
        .unwrap_or_else(|e| panic!("creating pod {ns}/{name}: {e}"))
}

fn items<'a>(s: &'a Summary, needle: &str) -> Vec<(Action, &'a str, &'a str, &'a str)> {
    s.plan
        .items
        .iter()
        .filter(|i| i.name.contains(needle) || i.source.contains(needle))
        .map(|i| {
            (
                i.action,
                i.kind.as_str(),
                i.name.as_str(),
                i.detail.as_str(),
            )
        })
        .collect()
}

fn count(s: &Summary, needle: &str, action: Action) -> usize {
    items(s, needle).iter().filter(|i| i.0 == action).count()
}

async fn leases_of_subnet(client: &Client, subnet: &str) -> Vec<IPLease> {
    Api::<IPLease>::all(client.clone())
        .list(&ListParams::default().labels(&format!("nadipam.io/subnet={subnet}")))
        .await
        .unwrap()
        .items
}

async fn cleanup_leases(client: &Client, subnet: &str) {
    let _ = Api::<IPLease>::all(client.clone())
        .delete_collection(
            &DeleteParams::default(),
            &ListParams::default().labels(&format!("nadipam.io/subnet={subnet}")),
        )
        .await;
}

/// Dry run, apply, apply again: returns the three summaries, checking the dry run wrote nothing under
/// `subnet`, the second apply created nothing, and the printed table ends with the summary line.
async fn three_runs<F, Fut>(client: &Client, subnet: &str, run: F) -> [Summary; 3]
where
    F: Fn(bool, Vec<u8>) -> Fut,
    Fut: std::future::Future<Output = (Summary, Vec<u8>)>,
{
    let (dry, out) = run(false, Vec::new()).await;
    let text = String::from_utf8_lossy(&out).to_string();
    eprintln!("--- dry run\n{text}");
    if text.starts_with("items:") {
        // -o yaml: the whole plan, objects included.
        let v: Value =
            serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("plan YAML: {e}\n{text}"));
        assert!(
            v["items"].as_array().is_some_and(|i| !i.is_empty()),
            "{text}"
        );
    } else {
        assert!(text.starts_with("ACTION"), "{text}");
        assert!(
            text.contains("(dry run: nothing written; add --apply to write)"),
            "{text}"
        );
    }
    assert!(
        leases_of_subnet(client, subnet)
            .await
            .iter()
            .all(|l| l.spec.token == "someone-else"),
        "the dry run wrote no lease"
    );
    let (applied, out) = run(true, Vec::new()).await;
    eprintln!("--- apply\n{}", String::from_utf8_lossy(&out));
    let (again, out) = run(true, Vec::new()).await;
    eprintln!("--- apply again\n{}", String::from_utf8_lossy(&out));
    assert_eq!(
        again.count(Action::Created),
        0,
        "applying again creates nothing: {:#?}",
        again.plan
    );
    [dry, applied, again]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adopt_leases_running_pods_addresses_and_the_controller_keeps_them() {
    server();
    let client = cluster().await;
    let (ns, _ns_guard) = test_namespace(&client, "adopt").await;
    let subnet = format!("{ns}-hl");
    apply_yaml(&format!(
        r#"apiVersion: k8s.cni.cncf.io/v1
kind: NetworkAttachmentDefinition
metadata: {{name: hl, namespace: {ns}}}
spec:
  config: '{{"cniVersion": "0.3.1", "type": "macvlan", "master": "eth0", "ipam": {{"type": "host-local", "ranges": [[{{"subnet": "10.81.0.0/24"}}]]}}}}'
---
apiVersion: nadipam.io/v1
kind: Subnet
metadata: {{name: {subnet}}}
spec: {{cidrBlock: 10.81.0.0/24, provider: hl.{ns}}}
"#
    ));
    let _subnet_guard = common::DeleteOnDrop::new("subnet", &subnet, None);
    let status = |ip: &str| {
        json!({"k8s.v1.cni.cncf.io/networks": "hl",
               "k8s.v1.cni.cncf.io/network-status": json!([
                   {"name": "cbr0", "interface": "eth0", "ips": ["10.244.0.9"], "default": true},
                   {"name": format!("{ns}/hl"), "interface": "net1", "ips": [ip], "mac": "0a:58:0a:51:00:05"}
               ]).to_string()})
    };
    let a = pod(&client, &ns, "a", status("10.81.0.5")).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let b = pod(&client, &ns, "b", status("10.81.0.6")).await;
    pod(&client, &ns, "dup", status("10.81.0.5")).await;
    pod(&client, &ns, "out", status("10.99.0.1")).await;

    let args = |apply| AdoptArgs {
        network: format!("{ns}/hl"),
        subnet: None,
        apply,
        output: None,
    };
    let [dry, applied, again] = three_runs(&client, &subnet, |apply, mut out| {
        let (client, args) = (client.clone(), args(apply));
        async move {
            let s = run_adopt(&client, &args, &mut out)
                .await
                .unwrap_or_else(|e| panic!("adopt: {e}"));
            (s, out)
        }
    })
    .await;
    assert_eq!(dry.count(Action::Create), 2, "{:#?}", dry.plan);
    assert_eq!(dry.count(Action::Conflict), 2, "{:#?}", dry.plan);
    assert_eq!(dry.exit_code(), 2);
    assert!(
        items(&dry, "10.81.0.5")
            .iter()
            .any(|i| i.0 == Action::Conflict && i.3.contains("two Pods with one address"))
    );
    assert!(
        items(&dry, "10.99.0.1")
            .iter()
            .any(|i| i.0 == Action::Conflict && i.3.contains("outside Subnet"))
    );
    assert_eq!(applied.count(Action::Created), 2, "{:#?}", applied.plan);
    assert_eq!(
        (again.count(Action::Exists), again.count(Action::Conflict)),
        (2, 2)
    );

    // The same through the plugin: `kubectl nadipam adopt`, its table and -o json, exit code 6 for conflicts.
    let plugin = |extra: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_kubectl-nadipam"))
            .env("KUBECONFIG", &common::cluster_info().kubeconfig)
            .args(["adopt", "--network", &format!("{ns}/hl")])
            .args(extra)
            .output()
            .expect("running kubectl-nadipam");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, table, err) = plugin(&[]);
    assert_eq!(code, Some(6), "{table}\n{err}");
    assert!(
        table.contains("10.81.0.6") && table.contains("10.99.0.1"),
        "{table}"
    );
    assert!(err.contains("the plan has conflicts"), "{err}");
    let (code, json_out, err) = plugin(&["-o", "json"]);
    assert_eq!(code, Some(6), "{err}");
    let parsed: Value = serde_json::from_str(&json_out)
        .unwrap_or_else(|e| panic!("adopt -o json is not JSON ({e}): {json_out}"));
    assert!(parsed.to_string().contains("10.81.0.5"), "{parsed}");

    let leases = leases_of_subnet(&client, &subnet).await;
    let held: Vec<(String, String, String)> = leases
        .iter()
        .map(|l| {
            (
                l.spec.ip.clone(),
                l.spec.pod_name.clone().unwrap_or_default(),
                l.spec.pod_uid.clone().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        held,
        [
            ("10.81.0.5".to_string(), "a".to_string(), a.uid().unwrap()),
            ("10.81.0.6".to_string(), "b".to_string(), b.uid().unwrap())
        ]
    );
    assert!(leases.iter().all(|l| l.spec.phase == LeasePhase::Bound));

    // The controller keeps them while the Pods exist (well past a reservation's reclaim window would not
    // matter: they are bound) and releases b's when b is deleted.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        leases_of_subnet(&client, &subnet).await.len(),
        2,
        "kept while their Pods exist"
    );
    Api::<Pod>::namespaced(client.clone(), &ns)
        .delete("b", &DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    common::wait_for(
        "b's adopted lease released (on b's delete event, not at a resync)",
        Duration::from_secs(10),
        || {
            let client = client.clone();
            let subnet = subnet.clone();
            async move {
                let ips: Vec<String> = leases_of_subnet(&client, &subnet)
                    .await
                    .iter()
                    .map(|l| l.spec.ip.clone())
                    .collect();
                if ips == ["10.81.0.5"] {
                    Ok(())
                } else {
                    Err(format!("{ips:?}\n{}", server().log_tail()))
                }
            }
        },
    )
    .await;
    cleanup_leases(&client, &subnet).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_from_kube_ovn() {
    server();
    let _crds = peer_crds();
    let client = cluster().await;
    let (ns, _ns_guard) = test_namespace(&client, "kovn").await;
    let subnet = format!("{ns}-attach");
    let p1 = pod(&client, &ns, "p1", json!({})).await;
    pod(&client, &ns, "p2", json!({})).await;
    // As Kube-OVN's users write the Subnet and IPPool, and as its controller writes IPs (one per Pod and
    // network, named <pod>.<ns>.<provider>).
    apply_yaml(&format!(
        r#"apiVersion: kubeovn.io/v1
kind: Subnet
metadata: {{name: {subnet}}}
spec:
  protocol: IPv4
  provider: attach.{ns}
  cidrBlock: 10.82.0.0/24
  gateway: 10.82.0.1
  excludeIps: [10.82.0.1..10.82.0.10]
---
apiVersion: kubeovn.io/v1
kind: IPPool
metadata: {{name: {ns}-pool}}
spec: {{subnet: {subnet}, ips: ["10.82.0.200..10.82.0.210"], namespaces: [{ns}]}}
---
apiVersion: kubeovn.io/v1
kind: IP
metadata: {{name: p1.{ns}.attach.{ns}}}
spec: {{podName: p1, namespace: {ns}, subnet: {subnet}, ipAddress: 10.82.0.11, v4IpAddress: 10.82.0.11, macAddress: "00:00:00:AA:BB:01", podType: ""}}
---
apiVersion: kubeovn.io/v1
kind: IP
metadata: {{name: p2.{ns}.attach.{ns}}}
spec: {{podName: p2, namespace: {ns}, subnet: {subnet}, ipAddress: 10.82.0.12, v4IpAddress: 10.82.0.12}}
---
apiVersion: kubeovn.io/v1
kind: IP
metadata: {{name: gone.{ns}.attach.{ns}}}
spec: {{podName: gone, namespace: {ns}, subnet: {subnet}, ipAddress: 10.82.0.13}}
"#
    ));
    let _g = [
        common::DeleteOnDrop::new("subnets.kubeovn.io", &subnet, None),
        common::DeleteOnDrop::new("ippools.kubeovn.io", &format!("{ns}-pool"), None),
        common::DeleteOnDrop::new("ips.kubeovn.io", &format!("p1.{ns}.attach.{ns}"), None),
        common::DeleteOnDrop::new("ips.kubeovn.io", &format!("p2.{ns}.attach.{ns}"), None),
        common::DeleteOnDrop::new("ips.kubeovn.io", &format!("gone.{ns}.attach.{ns}"), None),
        common::DeleteOnDrop::new("subnets.nadipam.io", &subnet, None),
        common::DeleteOnDrop::new("ippools.nadipam.io", &format!("{ns}-pool"), None),
    ];
    // Someone else holds p2's address in nadipam already: a conflict.
    let intruder: IPLease = serde_json::from_value(json!({
        "apiVersion": "nadipam.io/v1", "kind": "IPLease",
        "metadata": {"name": format!("{subnet}.10.82.0.12"), "labels": {"nadipam.io/subnet": subnet}},
        "spec": {"subnet": subnet, "ip": "10.82.0.12", "provider": format!("attach.{ns}"), "podNamespace": ns,
                 "podName": "intruder", "phase": "Reserved", "token": "someone-else", "ownerKind": "Pod",
                 "network": format!("{ns}/attach")}
    }))
    .unwrap();
    Api::<IPLease>::all(client.clone())
        .create(&PostParams::default(), &intruder)
        .await
        .unwrap();

    let [dry, applied, again] = three_runs(&client, &subnet, |apply, mut out| {
        let client = client.clone();
        async move {
            let args = ImportArgs {
                from: Peer::KubeOvn,
                apply,
                output: None,
            };
            (
                run_import(&client, &args, &mut out)
                    .await
                    .unwrap_or_else(|e| panic!("import: {e}")),
                out,
            )
        }
    })
    .await;
    assert!(
        Api::<Subnet>::all(client.clone())
            .get_opt(&subnet)
            .await
            .unwrap()
            .is_some(),
        "applied"
    );
    assert_eq!(
        count(&dry, &ns, Action::Create),
        3,
        "Subnet, IPPool, p1's lease: {:#?}",
        items(&dry, &ns)
    );
    assert!(items(&dry, &ns).iter().any(|i| i.0 == Action::Conflict
        && i.2.ends_with("10.82.0.12")
        && i.3.contains("leased to pod")));
    assert!(
        items(&dry, &ns)
            .iter()
            .any(|i| i.0 == Action::Skip && i.3.contains("no longer exists"))
    );
    assert_eq!(
        count(&applied, &ns, Action::Created),
        3,
        "{:#?}",
        items(&applied, &ns)
    );
    assert_eq!(
        count(&again, &ns, Action::Exists),
        3,
        "{:#?}",
        items(&again, &ns)
    );
    assert_eq!(count(&again, &ns, Action::Conflict), 1);
    let s = Api::<Subnet>::all(client.clone())
        .get(&subnet)
        .await
        .unwrap();
    assert_eq!(
        (s.spec.provider.as_str(), s.spec.cidr_block.as_str()),
        (format!("attach.{ns}").as_str(), "10.82.0.0/24")
    );
    let l = Api::<IPLease>::all(client.clone())
        .get(&format!("{subnet}.10.82.0.11"))
        .await
        .unwrap();
    assert_eq!(l.spec.pod_uid, p1.uid());
    assert_eq!(l.spec.mac.as_deref(), Some("00:00:00:aa:bb:01"));
    assert!(
        Api::<IPPool>::all(client.clone())
            .get_opt(&format!("{ns}-pool"))
            .await
            .unwrap()
            .is_some()
    );
    cleanup_leases(&client, &subnet).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_from_spiderpool() {
    server();
    let _crds = peer_crds();
    let client = cluster().await;
    let (ns, _ns_guard) = test_namespace(&client, "spider").await;
    let pool = format!("{ns}-pool");
    let subnet = "spiderpool-10-83-0-0-16".to_string();
    let p1 = pod(&client, &ns, "p1", json!({})).await;
    apply_yaml(&format!(
        r#"apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderIPPool
metadata: {{name: {pool}}}
spec:
  ips: ["10.83.1.1-10.83.1.10"]
  subnet: 10.83.0.0/16
  gateway: 10.83.0.1
  multusName: [{ns}/ovs-conf]
---
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderReservedIP
metadata: {{name: {ns}-reserved}}
spec: {{ipVersion: 4, ips: ["10.83.1.9"]}}
"#
    ));
    let _g = [
        common::DeleteOnDrop::new("spiderippools.spiderpool.spidernet.io", &pool, None),
        common::DeleteOnDrop::new(
            "spiderreservedips.spiderpool.spidernet.io",
            &format!("{ns}-reserved"),
            None,
        ),
        common::DeleteOnDrop::new("ippools.nadipam.io", &pool, None),
        common::DeleteOnDrop::new("subnets.nadipam.io", &subnet, None),
    ];
    // What Spiderpool's controller writes: the pool's status and the Pod's SpiderEndpoint.
    let allocated = json!({"10.83.1.1": {"pod": format!("{ns}/p1"), "podUid": p1.uid()}, "10.83.1.2": {"pod": format!("{ns}/gone"), "podUid": "x"}});
    let ar = kube::api::ApiResource::from_gvk_with_plural(
        &kube::core::GroupVersionKind::gvk("spiderpool.spidernet.io", "v2beta1", "SpiderIPPool"),
        "spiderippools",
    );
    Api::<kube::api::DynamicObject>::all_with(client.clone(), &ar)
        .patch_status(
            &pool,
            &PatchParams::default(),
            &Patch::Merge(
                json!({"status": {"allocatedIPs": allocated.to_string(), "allocatedIPCount": 2}}),
            ),
        )
        .await
        .unwrap();
    apply_yaml(&format!(
        r#"apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderEndpoint
metadata: {{name: p1, namespace: {ns}}}
status:
  current:
    uid: {}
    node: node-1
    ips: [{{interface: net1, ipv4: 10.83.1.1/16, ipv4Pool: {pool}, vlan: 0}}]
  ownerControllerType: Pod
  ownerControllerName: p1
"#,
        p1.uid().unwrap()
    ));

    let [dry, applied, again] = three_runs(&client, &subnet, |apply, mut out| {
        let client = client.clone();
        async move {
            let args = ImportArgs {
                from: Peer::Spiderpool,
                apply,
                output: None,
            };
            (
                run_import(&client, &args, &mut out)
                    .await
                    .unwrap_or_else(|e| panic!("import: {e}")),
                out,
            )
        }
    })
    .await;
    let mine = |s: &Summary| -> Vec<(Action, String)> {
        s.plan
            .items
            .iter()
            .filter(|i| {
                i.name.contains("10-83") || i.name.contains("10.83") || i.name.contains(&ns)
            })
            .map(|i| (i.action, format!("{} {}", i.kind, i.name)))
            .collect()
    };
    assert_eq!(
        mine(&dry),
        [
            (Action::Create, format!("Subnet {subnet}")),
            (Action::Create, format!("IPPool {pool}")),
            (Action::Skip, "IPLease 10.83.1.2".to_string()),
            (Action::Create, format!("IPLease {subnet}.10.83.1.1")),
        ]
    );
    assert!(
        mine(&applied)
            .iter()
            .filter(|i| i.0 == Action::Created)
            .count()
            == 3,
        "{:#?}",
        applied.plan
    );
    assert!(
        mine(&again)
            .iter()
            .all(|i| i.0 != Action::Created && i.0 != Action::Conflict)
    );
    let s = Api::<Subnet>::all(client.clone())
        .get(&subnet)
        .await
        .unwrap();
    assert_eq!(s.spec.provider, format!("ovs-conf.{ns}"));
    assert_eq!(s.spec.exclude_ips, ["10.83.1.9"]);
    let l = Api::<IPLease>::all(client.clone())
        .get(&format!("{subnet}.10.83.1.1"))
        .await
        .unwrap();
    assert_eq!(
        (l.spec.pool.as_deref(), l.spec.pod_uid.clone()),
        (Some(pool.as_str()), p1.uid())
    );
    cleanup_leases(&client, &subnet).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_from_whereabouts() {
    server();
    let _crds = peer_crds();
    let client = cluster().await;
    let (ns, _ns_guard) = test_namespace(&client, "wa").await;
    let subnet = format!("{ns}-wa");
    let p1 = pod(&client, &ns, "p1", json!({})).await;
    let p2 = pod(&client, &ns, "p2", json!({})).await;
    // The NAD as Whereabouts' README writes it, and the pool and reservations Whereabouts writes.
    apply_yaml(&format!(
        r#"apiVersion: k8s.cni.cncf.io/v1
kind: NetworkAttachmentDefinition
metadata: {{name: wa, namespace: {ns}}}
spec:
  config: '{{"cniVersion": "0.3.0", "name": "whereaboutsexample", "type": "macvlan", "master": "eth0", "mode": "bridge",
    "ipam": {{"type": "whereabouts", "range": "10.84.0.0/24", "exclude": ["10.84.0.0/28"]}}}}'
---
apiVersion: whereabouts.cni.cncf.io/v1alpha1
kind: IPPool
metadata: {{name: 10.84.0.0-24, namespace: {ns}}}
spec:
  range: 10.84.0.0/24
  allocations:
    "20": {{id: c1, podref: {ns}/p1, ifname: net1}}
    "21": {{id: c2, podref: {ns}/p2, ifname: net1}}
    "22": {{id: c3, podref: {ns}/gone, ifname: net1}}
---
apiVersion: whereabouts.cni.cncf.io/v1alpha1
kind: OverlappingRangeIPReservation
metadata: {{name: 10.84.0.20, namespace: {ns}}}
spec: {{containerid: c1, podref: {ns}/p1, ifname: net1}}
---
apiVersion: whereabouts.cni.cncf.io/v1alpha1
kind: OverlappingRangeIPReservation
metadata: {{name: 10.84.0.21, namespace: {ns}}}
spec: {{containerid: c9, podref: {ns}/p1, ifname: net1}}
"#
    ));
    let _g = common::DeleteOnDrop::new("subnets.nadipam.io", &subnet, None);
    let [dry, applied, again] = three_runs(&client, &subnet, |apply, mut out| {
        let client = client.clone();
        async move {
            let args = ImportArgs {
                from: Peer::Whereabouts,
                apply,
                output: Some(nadipam::migrate::OutputFormat::Yaml),
            };
            (
                run_import(&client, &args, &mut out)
                    .await
                    .unwrap_or_else(|e| panic!("import: {e}")),
                out,
            )
        }
    })
    .await;
    let _ = (dry, applied);
    // .20: p1 (pool and reservation agree); .21: p2 in the pool, p1 in a reservation: both hold it, the
    // older (p1, created first) keeps it and the conflict is reported.
    let leases: Vec<(String, Option<String>)> = leases_of_subnet(&client, &subnet)
        .await
        .iter()
        .map(|l| (l.spec.ip.clone(), l.spec.pod_uid.clone()))
        .collect();
    assert_eq!(
        leases,
        [
            ("10.84.0.20".to_string(), p1.uid()),
            ("10.84.0.21".to_string(), p1.uid())
        ]
    );
    assert!(
        items(&again, &ns).iter().any(|i| i.0 == Action::Conflict
            && i.3.contains("two Pods with one address")
            && i.3.contains(&format!("{ns}/p2"))),
        "{:#?}",
        items(&again, &ns)
    );
    let _ = p2;
    let s = Api::<Subnet>::all(client.clone())
        .get(&subnet)
        .await
        .unwrap();
    assert_eq!(
        (s.spec.provider.clone(), s.spec.exclude_ips.clone()),
        (format!("wa.{ns}"), vec!["10.84.0.0/28".to_string()])
    );
    cleanup_leases(&client, &subnet).await;
}
