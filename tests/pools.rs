//! IPPool parity with SpiderIPPool on the real control plane: pools written with SpiderIPPool's fields
//! (`default`, `disable`, `excludeIPs`, `podAffinity`, `namespaceAffinity`, `routes`) applied as written, a
//! Subnet's default pool serving the Pods that name none (and refusing when full), selectors refusing and
//! selecting, pool routes in the Pod's `routes` result, excluded addresses never handed out nor counted, and a
//! disabled pool refusing new Pods while a re-created StatefulSet Pod keeps its address.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams};
use kube::{Client, ResourceExt};
use nadipam::api::IPPool;
use serde_json::{Value, json};

use common::server::{Server, start};
use common::{
    DeleteOnDrop, cluster, cluster_info, kubectl, run_with_input, test_namespace, wait_for,
};

/// This binary's server: its controller (which writes IPPool status) leads from a Lease in `default`.
fn nadipam() -> &'static Server {
    static SERVER: std::sync::OnceLock<Server> = std::sync::OnceLock::new();
    SERVER.get_or_init(|| start(&["--namespace", "default", "--leader-lease-seconds", "5"]))
}

/// `kubectl apply`; the stderr (warnings) on success.
fn must_apply(yaml: &str) -> String {
    let out = run_with_input(cluster_info().kubectl().args(["apply", "-f", "-"]), yaml);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "kubectl apply failed: {stderr}\n--- yaml\n{yaml}\n--- nadipam log\n{}",
        nadipam().log_tail()
    );
    stderr
}

/// A Pod on `ns/macvlan` with `labels`, naming the IPPools `pools` (none: no pool annotation).
fn pod(ns: &str, name: &str, pools: &[&str], labels: Value) -> Value {
    let mut ann = json!({"k8s.v1.cni.cncf.io/networks": "macvlan"});
    if !pools.is_empty() {
        ann["ipam.spidernet.io/ippool"] = json!(json!({"ipv4": pools}).to_string());
    }
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": labels, "annotations": ann},
        "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}]}})
}

fn create(obj: &Value) -> Result<String, String> {
    kubectl(&["create", "-f", "-"], &obj.to_string())
}

async fn annotations(client: &Client, ns: &str, name: &str) -> BTreeMap<String, String> {
    Api::<Pod>::namespaced(client.clone(), ns)
        .get(name)
        .await
        .unwrap_or_else(|e| panic!("get pod {ns}/{name}: {e}"))
        .metadata
        .annotations
        .unwrap_or_default()
}

/// The Pod's address on `ns/macvlan`.
fn ip_of(ann: &BTreeMap<String, String>, ns: &str) -> String {
    let key = format!("macvlan.{ns}.kubernetes.io/ip_address");
    ann.get(&key)
        .unwrap_or_else(|| panic!("no {key} in {ann:?}"))
        .clone()
}

/// Asserts that creating `obj` is refused with `want` (after the apiserver's prefix).
fn refused(obj: &Value, want: &str) {
    let e = create(obj).expect_err("admitted, expected a denial");
    assert!(e.contains(want), "{e}\nwant: {want}");
}

/// The Subnet, its network, and the pools as SpiderIPPools write them (only apiVersion and kind changed): the
/// Subnet by CIDR, which `multusName` resolves among the Subnets of other runs with that CIDR.
fn setup(ns: &str, subnet: &str) -> String {
    must_apply(&format!(
        r#"
apiVersion: k8s.cni.cncf.io/v1
kind: NetworkAttachmentDefinition
metadata: {{name: macvlan, namespace: {ns}}}
spec:
  config: '{{"cniVersion": "0.3.0", "type": "macvlan", "master": "eth0", "ipam": {{"type": "nadipam", "provider": "macvlan.{ns}"}}}}'
---
apiVersion: nadipam.io/v1
kind: Subnet
metadata: {{name: {subnet}}}
spec:
  provider: macvlan.{ns}
  cidrBlock: 10.93.0.0/24
  gateway: 10.93.0.1
  routes: [{{dst: 10.50.0.0/16, gw: 10.93.0.1}}, {{dst: 10.60.0.0/16, gw: 10.93.0.1}}]
---
apiVersion: nadipam.io/v1
kind: IPPool
metadata: {{name: {ns}-dflt}}
spec:
  ipVersion: 4
  subnet: 10.93.0.0/24
  multusName: [{ns}/macvlan]
  ips: [10.93.0.10-10.93.0.12]
  excludeIPs: [10.93.0.11]
  default: true
  routes: [{{dst: 10.60.0.0/16, gw: 10.93.0.254}}, {{dst: 10.70.0.0/16, gw: 10.93.0.254}}]
---
apiVersion: nadipam.io/v1
kind: IPPool
metadata: {{name: {ns}-db}}
spec:
  subnet: 10.93.0.0/24
  multusName: [{ns}/macvlan]
  ips: [10.93.0.20]
  podAffinity: {{matchLabels: {{app: db}}}}
---
apiVersion: nadipam.io/v1
kind: IPPool
metadata: {{name: {ns}-team}}
spec:
  subnet: 10.93.0.0/24
  multusName: [{ns}/macvlan]
  ips: [10.93.0.30]
  namespaceAffinity: {{matchExpressions: [{{key: e2e.nadipam.io/team, operator: In, values: [x]}}]}}
---
apiVersion: nadipam.io/v1
kind: IPPool
metadata: {{name: {ns}-old}}
spec:
  subnet: 10.93.0.0/24
  multusName: [{ns}/macvlan]
  ips: [10.93.0.40-10.93.0.41]
  disable: false
"#
    ))
}

#[tokio::test]
async fn spiderippool_fields_decide_who_gets_which_address() {
    nadipam();
    let client = cluster().await;
    let (ns, _ns_guard) = test_namespace(&client, "pools").await;
    let subnet = format!("{ns}-net");
    let (dflt, db, team, old) = (
        format!("{ns}-dflt"),
        format!("{ns}-db"),
        format!("{ns}-team"),
        format!("{ns}-old"),
    );
    let warned = setup(&ns, &subnet);
    let _guards = (
        DeleteOnDrop::new("ippool", &dflt, None),
        DeleteOnDrop::new("ippool", &db, None),
        DeleteOnDrop::new("ippool", &team, None),
        DeleteOnDrop::new("ippool", &old, None),
        DeleteOnDrop::new("subnet", &subnet, None),
    );
    // Only the field nadipam still ignores is warned about.
    assert!(
        warned.contains(&format!(
            "IPPool {dflt}: spec.ipVersion has no effect in nadipam (secondary-network IPAM): kept, ignored"
        )),
        "{warned}"
    );
    for field in [
        "excludeIPs",
        "routes",
        "default",
        "podAffinity",
        "namespaceAffinity",
        "disable",
    ] {
        assert!(
            !warned.contains(&format!("spec.{field} ")),
            "{field} warned: {warned}"
        );
    }
    // A second default pool of the Subnet is refused, naming the first.
    let second = kubectl(
        &["apply", "-f", "-"],
        &format!(
            "apiVersion: nadipam.io/v1\nkind: IPPool\nmetadata: {{name: {ns}-dflt2}}\nspec: {{subnet: {subnet}, ips: \
             [10.93.0.50], default: true}}\n"
        ),
    )
    .expect_err("a second default pool was accepted");
    let want = format!(
        "IPPool {ns}-dflt2: spec.default is true, but IPPool {dflt} is already the default pool of Subnet {subnet}; \
         a Subnet has at most one default pool: set spec.default to false here, or on IPPool {dflt} first"
    );
    assert!(second.contains(&want), "{second}\nwant: {want}");
    // Bad values name their field.
    let bad = kubectl(
        &["apply", "-f", "-"],
        &format!(
            "apiVersion: nadipam.io/v1\nkind: IPPool\nmetadata: {{name: {ns}-bad}}\nspec: {{subnet: {subnet}, ips: \
             [10.93.0.60], excludeIPs: [10.93.0.61]}}\n"
        ),
    )
    .expect_err("an excludeIPs entry outside ips was accepted");
    assert!(
        bad.contains(&format!(
            "IPPool {ns}-bad: spec.excludeIPs[0] \"10.93.0.61\" has 10.93.0.61, which is not in spec.ips; exclude \
             only addresses of the pool"
        )),
        "{bad}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;

    // The default pool serves the Pods that name no pool: never its excluded address, its routes after the
    // Subnet's (replacing the Subnet's route to the same destination).
    let mut got = Vec::new();
    for name in ["plain-1", "plain-2"] {
        create(&pod(&ns, name, &[], json!({}))).unwrap_or_else(|e| panic!("{name}: {e}"));
        let ann = annotations(&client, &ns, name).await;
        got.push(ip_of(&ann, &ns));
        let routes: Value =
            serde_json::from_str(&ann[&format!("macvlan.{ns}.kubernetes.io/routes")]).unwrap();
        assert_eq!(
            routes,
            json!([{"dst": "10.50.0.0/16", "gw": "10.93.0.1"}, {"dst": "10.60.0.0/16", "gw": "10.93.0.254"},
                {"dst": "10.70.0.0/16", "gw": "10.93.0.254"}])
        );
    }
    got.sort();
    assert_eq!(got, ["10.93.0.10", "10.93.0.12"]);
    // Full: refused, not an address outside the pool.
    refused(
        &pod(&ns, "plain-3", &[], json!({})),
        &format!(
            "pod {ns}/plain-3: network {ns}/macvlan: IPPool {dflt}, the default pool of Subnet {subnet} \
             (spec.default: true), has no free IPv4 address left ("
        ),
    );
    // A Pod's own routes annotation replaces the Subnet's and the pool's.
    let mut own = pod(&ns, "own-routes", &[&old], json!({}));
    own["metadata"]["annotations"][format!("macvlan.{ns}.kubernetes.io/routes")] =
        json!(r#"[{"dst":"10.80.0.0/16","gw":"10.93.0.9"}]"#);
    create(&own).unwrap();
    let ann = annotations(&client, &ns, "own-routes").await;
    assert_eq!(
        ann[&format!("macvlan.{ns}.kubernetes.io/routes")],
        r#"[{"dst":"10.80.0.0/16","gw":"10.93.0.9"}]"#
    );

    // podAffinity: refused naming the selector, then selected by the label.
    refused(
        &pod(&ns, "web", &[&db], json!({"app": "web"})),
        &format!(
            "pod {ns}/web: network {ns}/macvlan: IPPool {db} serves only what spec.podAffinity app=db selects, and \
             this Pod's labels (app=web) do not match; label the Pod to match, or name another IPPool"
        ),
    );
    create(&pod(&ns, "db", &[&db], json!({"app": "db"}))).unwrap();
    assert_eq!(
        ip_of(&annotations(&client, &ns, "db").await, &ns),
        "10.93.0.20"
    );

    // namespaceAffinity: the namespace is read live; refused, then selected once labelled.
    refused(
        &pod(&ns, "tenant", &[&team], json!({})),
        &format!(
            "pod {ns}/tenant: network {ns}/macvlan: IPPool {team} serves only what spec.namespaceAffinity \
             e2e.nadipam.io/team=x selects, and namespace {ns}'s labels (kubernetes.io/metadata.name={ns}) do not \
             match; label the namespace to match, or name another IPPool"
        ),
    );
    kubectl(&["label", "namespace", &ns, "e2e.nadipam.io/team=x"], "").unwrap();
    create(&pod(&ns, "tenant", &[&team], json!({}))).unwrap();
    assert_eq!(
        ip_of(&annotations(&client, &ns, "tenant").await, &ns),
        "10.93.0.30"
    );

    // excludeIPs are out of TOTAL-IP-COUNT: 10.93.0.10 and .12.
    let pools: Api<IPPool> = Api::all(client.clone());
    wait_for("default pool status", Duration::from_secs(30), || {
        let pools = pools.clone();
        let dflt = dflt.clone();
        async move {
            let p = pools.get(&dflt).await.map_err(|e| e.to_string())?;
            match p.status {
                Some(s) if s.total_ip_count == 2 && s.allocated_ip_count == 2 => Ok(()),
                s => Err(format!("{s:?}")),
            }
        }
    })
    .await;
}

#[tokio::test]
async fn a_disabled_pool_refuses_new_pods_and_keeps_existing_leases() {
    nadipam();
    let client = cluster().await;
    let (ns, _ns_guard) = test_namespace(&client, "pools-off").await;
    let subnet = format!("{ns}-net");
    let old = format!("{ns}-old");
    // The same CIDR as the other test's Subnet: a provider of its own keeps them apart.
    must_apply(&format!(
        r#"
apiVersion: k8s.cni.cncf.io/v1
kind: NetworkAttachmentDefinition
metadata: {{name: macvlan, namespace: {ns}}}
spec:
  config: '{{"cniVersion": "0.3.0", "type": "macvlan", "master": "eth0", "ipam": {{"type": "nadipam", "provider": "macvlan.{ns}"}}}}'
---
apiVersion: nadipam.io/v1
kind: Subnet
metadata: {{name: {subnet}}}
spec: {{provider: macvlan.{ns}, cidrBlock: 10.94.0.0/24}}
---
apiVersion: nadipam.io/v1
kind: IPPool
metadata: {{name: {old}}}
spec: {{subnet: {subnet}, ips: [10.94.0.40-10.94.0.49]}}
"#
    ));
    let _guards = (
        DeleteOnDrop::new("ippool", &old, None),
        DeleteOnDrop::new("subnet", &subnet, None),
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pools = json!({"ipv4": [old]}).to_string();
    must_apply(&format!(
        r#"
apiVersion: apps/v1
kind: StatefulSet
metadata: {{name: db, namespace: {ns}}}
spec:
  replicas: 1
  serviceName: db
  selector: {{matchLabels: {{app: db}}}}
  template:
    metadata:
      labels: {{app: db}}
      annotations:
        k8s.v1.cni.cncf.io/networks: macvlan
        ipam.spidernet.io/ippool: '{pools}'
    spec:
      containers: [{{name: c, image: registry.k8s.io/pause:3.10}}]
"#
    ));
    let api = Api::<Pod>::namespaced(client.clone(), &ns);
    let first = wait_for("db-0", Duration::from_secs(30), || {
        let api = api.clone();
        async move {
            api.get_opt("db-0")
                .await
                .map_err(|e| e.to_string())?
                .ok_or("not yet".to_string())
        }
    })
    .await;
    let first_ann = first.metadata.annotations.clone().unwrap_or_default();
    let first_ip = ip_of(&first_ann, &ns);

    kubectl(
        &[
            "patch",
            "ippool",
            &old,
            "--type",
            "merge",
            "-p",
            r#"{"spec":{"disable":true}}"#,
        ],
        "",
    )
    .unwrap();
    let ippools: Api<IPPool> = Api::all(client.clone());
    wait_for("the Draining condition", Duration::from_secs(30), || {
        let ippools = ippools.clone();
        let old = old.clone();
        async move {
            let p = ippools.get(&old).await.map_err(|e| e.to_string())?;
            let c = p
                .status
                .iter()
                .flat_map(|s| s.conditions.iter())
                .find(|c| c.type_ == "Disabled")
                .cloned()
                .ok_or("no Disabled condition yet".to_string())?;
            let want = format!(
                "no new addresses are given; 1 address is still held: move their Pods to another IPPool (kubectl \
                 get ipleases -l nadipam.io/pool={old} lists them)"
            );
            match (c.status.as_str(), c.reason.as_str()) {
                ("True", "Draining") if c.message == want => Ok(()),
                _ => Err(format!("{c:?}")),
            }
        }
    })
    .await;
    // Wait for the webhook's cache to see the change, then a new Pod naming the pool is refused.
    let want = format!(
        "pod {ns}/new: network {ns}/macvlan: IPPool {old} is disabled (spec.disable: true): it gives no new \
         addresses; name another IPPool, or set spec.disable to false"
    );
    wait_for(
        "the disabled pool refusing",
        Duration::from_secs(10),
        || {
            let obj = pod(&ns, "new", &[&old], json!({}));
            let want = want.clone();
            async move {
                match create(&obj) {
                    Err(e) if e.contains(&want) => Ok(()),
                    Err(e) => Err(e),
                    Ok(out) => {
                        kubectl(
                            &[
                                "delete",
                                "pod",
                                "new",
                                "-n",
                                obj["metadata"]["namespace"].as_str().unwrap_or_default(),
                            ],
                            "",
                        )
                        .ok();
                        Err(format!("admitted: {out}"))
                    }
                }
            }
        },
    )
    .await;

    // The StatefulSet Pod re-created keeps its address from the disabled pool.
    let uid = first.uid();
    api.delete("db-0", &DeleteParams::default().grace_period(0))
        .await
        .unwrap_or_else(|e| panic!("deleting db-0: {e}"));
    let again = wait_for("db-0 re-created", Duration::from_secs(60), || {
        let api = api.clone();
        let uid = uid.clone();
        async move {
            match api.get_opt("db-0").await.map_err(|e| e.to_string())? {
                Some(p) if p.uid() != uid => Ok(p),
                _ => Err("old incarnation".to_string()),
            }
        }
    })
    .await;
    assert_eq!(
        ip_of(&again.metadata.annotations.clone().unwrap_or_default(), &ns),
        first_ip
    );
}
