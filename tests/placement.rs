//! Node-aware pools on the real control plane, with labelled Node objects this suite creates (tainted and
//! unschedulable: no Pod runs there, and other suites' Pods never land on them): a Pod gets its address only
//! from an IPPool serving a node it can run on, an unconstrained Pod is pinned by node affinity to the nodes of
//! the pool that had room, a StatefulSet Pod keeps both across re-creation, and IPPool status and `kubectl
//! apply` say how many nodes a pool serves.

mod common;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

use common::manifests::must_deny;
use common::server::{Server, start};
use common::{
    DeleteOnDrop, cluster, cluster_info, kubectl, run_with_input, test_namespace, wait_for,
};

const RACK: &str = "e2e.nadipam.io/rack";

/// This binary's server: its controller (which writes IPPool status) leads from a Lease in `default`.
fn nadipam() -> &'static Server {
    static SERVER: std::sync::OnceLock<Server> = std::sync::OnceLock::new();
    SERVER.get_or_init(|| start(&["--namespace", "default", "--leader-lease-seconds", "5"]))
}

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

/// A Node object no Pod can run on: what node selectors are matched against.
fn fake_node(name: &str, rack: &str) -> DeleteOnDrop {
    must_apply(&format!(
        r#"
apiVersion: v1
kind: Node
metadata:
  name: {name}
  labels: {{"{RACK}": "{rack}"}}
spec:
  unschedulable: true
  taints: [{{key: e2e.nadipam.io/fake-node, effect: NoSchedule}}]
"#
    ));
    DeleteOnDrop::new("node", name, None)
}

/// A Pod on `ns/macvlan` naming the IPPools `pools` (Spiderpool style), with `spec` merged into its spec.
fn pod(ns: &str, name: &str, pools: &[&str], spec: Value) -> Value {
    let mut s = json!({"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}]});
    for (k, v) in spec.as_object().into_iter().flatten() {
        s[k] = v.clone();
    }
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "annotations": {
            "k8s.v1.cni.cncf.io/networks": "macvlan",
            "ipam.spidernet.io/ippool": json!({"ipv4": pools}).to_string()}},
        "spec": s})
}

async fn get(client: &Client, ns: &str, name: &str) -> Pod {
    Api::<Pod>::namespaced(client.clone(), ns)
        .get(name)
        .await
        .unwrap_or_else(|e| panic!("get pod {ns}/{name}: {e}"))
}

fn ip(pod: &Pod, ns: &str) -> IpAddr {
    let key = format!("macvlan.{ns}.kubernetes.io/ip_address");
    let ann = pod.metadata.annotations.clone().unwrap_or_default();
    ann.get(&key)
        .unwrap_or_else(|| panic!("no {key} in {ann:?}"))
        .parse()
        .unwrap()
}

/// The Pod's required node-affinity terms as JSON.
fn terms(pod: &Pod) -> Value {
    serde_json::to_value(pod.spec.as_ref().and_then(|s| s.affinity.clone())).unwrap()
        ["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
        .clone()
}

fn rack_term(rack: &str) -> Value {
    json!({"key": RACK, "operator": "In", "values": [rack]})
}

fn create(obj: &Value) -> Result<String, String> {
    kubectl(&["create", "-f", "-"], &obj.to_string())
}

#[tokio::test]
async fn pools_follow_the_nodes_a_pod_can_run_on() {
    nadipam();
    let client = cluster().await;
    let (ns, _ns_guard) = test_namespace(&client, "place").await;
    let (a, b, z) = (format!("{ns}-a"), format!("{ns}-b"), format!("{ns}-z"));
    let _nodes = (
        fake_node(&format!("{ns}-a1"), &a),
        fake_node(&format!("{ns}-b1"), &b),
    );
    let subnet = format!("{ns}-macvlan");
    let (pool_a, pool_b, pool_z) = (
        format!("{ns}-rack-a"),
        format!("{ns}-rack-b"),
        format!("{ns}-rack-z"),
    );
    let warned = must_apply(&format!(
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
spec: {{provider: macvlan.{ns}, cidrBlock: 10.91.0.0/24}}
---
apiVersion: nadipam.io/v1
kind: IPPool
metadata: {{name: {pool_a}}}
spec:
  subnet: {subnet}
  ips: [10.91.0.10-10.91.0.11]
  nodeSelector: {{matchLabels: {{"{RACK}": "{a}"}}}}
---
apiVersion: nadipam.io/v1
kind: IPPool
metadata: {{name: {pool_b}}}
spec:
  subnet: {subnet}
  ips: [10.91.0.20-10.91.0.29]
  nodeAffinity: {{matchExpressions: [{{key: "{RACK}", operator: In, values: ["{b}"]}}]}}
---
apiVersion: nadipam.io/v1
kind: IPPool
metadata: {{name: {pool_z}}}
spec:
  subnet: {subnet}
  ips: [10.91.0.30]
  nodeSelector: {{matchLabels: {{"{RACK}": "{z}"}}}}
"#
    ));
    let _guards = (
        DeleteOnDrop::new("ippool", &pool_a, None),
        DeleteOnDrop::new("ippool", &pool_b, None),
        DeleteOnDrop::new("ippool", &pool_z, None),
        DeleteOnDrop::new("subnet", &subnet, None),
    );
    // A pool no node matches is accepted, with a warning; the others are not warned about.
    assert!(
        warned.contains(&format!(
            "IPPool {pool_z}: spec.nodeSelector {RACK}={z} matches no Node: Pods cannot get its addresses until a \
             Node does; label the nodes or change the selector"
        )),
        "{warned}"
    );
    assert!(!warned.contains(&format!("IPPool {pool_a}:")), "{warned}");
    assert!(!warned.contains(&format!("IPPool {pool_b}:")), "{warned}");
    // A selector nadipam cannot read is refused, naming the field.
    must_deny(
        &format!(
            "apiVersion: nadipam.io/v1\nkind: IPPool\nmetadata: {{name: {ns}-bad}}\nspec:\n  subnet: {subnet}\n  \
             ips: [10.91.0.40]\n  nodeSelector: {{matchExpressions: [{{key: rack, operator: In}}]}}\n"
        ),
        &[&format!(
            "IPPool {ns}-bad: spec.nodeSelector.matchExpressions[0]: operator In needs at least one value in values"
        )],
    );
    tokio::time::sleep(Duration::from_millis(500)).await;

    // No node constraint: the first pool with room, and affinity to its nodes.
    must_apply(&pod(&ns, "free-1", &[&pool_a, &pool_b], json!({})).to_string());
    let p = get(&client, &ns, "free-1").await;
    assert!(
        ["10.91.0.10", "10.91.0.11"].contains(&ip(&p, &ns).to_string().as_str()),
        "{:?}",
        ip(&p, &ns)
    );
    assert_eq!(terms(&p), json!([{"matchExpressions": [rack_term(&a)]}]));

    // Constrained to rack b by its own nodeSelector: only rack b's pool, though rack a's is named first.
    must_apply(
        &pod(
            &ns,
            "on-b",
            &[&pool_a, &pool_b],
            json!({"nodeSelector": {RACK: b}}),
        )
        .to_string(),
    );
    let p = get(&client, &ns, "on-b").await;
    assert!(
        ip(&p, &ns).to_string().starts_with("10.91.0.2"),
        "{:?}",
        ip(&p, &ns)
    );
    assert_eq!(terms(&p), json!([{"matchExpressions": [rack_term(&b)]}]));

    // An existing required term gets the pool's expression added, not replaced.
    must_apply(
        &pod(
            &ns,
            "free-2",
            &[&pool_a, &pool_b],
            json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [
                    {"key": RACK, "operator": "Exists"}]}]}}}}),
        )
        .to_string(),
    );
    let p = get(&client, &ns, "free-2").await;
    let second_a = ip(&p, &ns).to_string();
    assert!(
        ["10.91.0.10", "10.91.0.11"].contains(&second_a.as_str()),
        "{second_a}"
    );
    assert_eq!(
        terms(&p),
        json!([{"matchExpressions": [{"key": RACK, "operator": "Exists"}, rack_term(&a)]}])
    );

    // Rack a's pool is full now: the next unconstrained Pod goes to rack b, and is pinned there.
    must_apply(&pod(&ns, "free-3", &[&pool_a, &pool_b], json!({})).to_string());
    let p = get(&client, &ns, "free-3").await;
    assert!(
        ip(&p, &ns).to_string().starts_with("10.91.0.2"),
        "{:?}",
        ip(&p, &ns)
    );
    assert_eq!(terms(&p), json!([{"matchExpressions": [rack_term(&b)]}]));

    // A Pod on a node of rack a naming only rack b's pool is refused with everything it needs to know.
    let denied = create(&pod(
        &ns,
        "pinned",
        &[&pool_b, &pool_z],
        json!({"nodeName": format!("{ns}-a1")}),
    ))
    .expect_err("a Pod on rack a naming only other racks' pools was admitted");
    let want = format!(
        "pod {ns}/pinned: network {ns}/macvlan: no IPPool it names serves a node this Pod can run on (spec.nodeName \
         {ns}-a1: node {ns}-a1): IPPool {pool_b} (spec.nodeAffinity {RACK}={b}) serves node {ns}-b1; IPPool \
         {pool_z} (spec.nodeSelector {RACK}={z}) serves no node; name an IPPool whose nodes the Pod can run on, or \
         change where the Pod runs (spec.nodeName, spec.nodeSelector, spec.affinity.nodeAffinity)"
    );
    assert!(denied.contains(&want), "{denied}\nwant: {want}");

    // Dry run: the same decision, nothing reserved.
    let preview = kubectl(
        &["create", "--dry-run=server", "-o", "json", "-f", "-"],
        &pod(
            &ns,
            "preview",
            &[&pool_b],
            json!({"nodeName": format!("{ns}-b1")}),
        )
        .to_string(),
    )
    .unwrap_or_else(|e| panic!("dry run refused: {e}"));
    let preview: Pod = serde_json::from_str(&preview).unwrap();
    assert_eq!(
        terms(&preview),
        json!([{"matchExpressions": [rack_term(&b)]}])
    );

    // Status: how many nodes each pool serves, and why the one serving none is of no use.
    let status = |name: String| async move {
        let out =
            kubectl(&["get", "ippool", &name, "-o", "json"], "").map_err(|e| e.to_string())?;
        let v: Value = serde_json::from_str(&out).map_err(|e| e.to_string())?;
        let s = v["status"].clone();
        if s["matchedNodes"].is_null() {
            return Err(format!("no matchedNodes yet: {s}"));
        }
        Ok(s)
    };
    let sa = wait_for(
        "rack a status with both leases",
        Duration::from_secs(60),
        || {
            let name = pool_a.clone();
            async move {
                let s = status(name).await?;
                (s["allocatedIPCount"] == 2)
                    .then_some(s.clone())
                    .ok_or(format!("{s}"))
            }
        },
    )
    .await;
    assert_eq!(sa["matchedNodes"], 1, "{sa}");
    assert_eq!(sa["allocatedIPCount"], 2, "{sa}");
    assert_eq!(sa["conditions"][0]["type"], "NodesMatched", "{sa}");
    assert_eq!(sa["conditions"][0]["status"], "True", "{sa}");
    let sz = wait_for("rack z status", Duration::from_secs(30), || {
        status(pool_z.clone())
    })
    .await;
    assert_eq!(sz["matchedNodes"], 0, "{sz}");
    assert_eq!(sz["conditions"][0]["status"], "False", "{sz}");
    assert_eq!(sz["conditions"][0]["reason"], "NoNodeMatches", "{sz}");
    // A node joining rack z makes the pool usable: the status follows the Node.
    let _z1 = fake_node(&format!("{ns}-z1"), &z);
    let sz = wait_for(
        "rack z to match its new node",
        Duration::from_secs(30),
        || {
            let name = pool_z.clone();
            async move {
                let s = status(name).await?;
                (s["matchedNodes"] == 1)
                    .then_some(s.clone())
                    .ok_or(format!("{s}"))
            }
        },
    )
    .await;
    assert_eq!(sz["conditions"][0]["status"], "True", "{sz}");
}

#[tokio::test]
async fn a_statefulset_pod_keeps_its_pool_and_its_affinity_across_re_creation() {
    nadipam();
    let client = cluster().await;
    let (ns, _ns_guard) = test_namespace(&client, "place-sts").await;
    let (a, b) = (format!("{ns}-a"), format!("{ns}-b"));
    let _nodes = (
        fake_node(&format!("{ns}-a1"), &a),
        fake_node(&format!("{ns}-b1"), &b),
    );
    let subnet = format!("{ns}-macvlan");
    let (pool_a, pool_b) = (format!("{ns}-rack-a"), format!("{ns}-rack-b"));
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
spec: {{provider: macvlan.{ns}, cidrBlock: 10.92.0.0/24}}
---
apiVersion: nadipam.io/v1
kind: IPPool
metadata: {{name: {pool_a}}}
spec: {{subnet: {subnet}, ips: [10.92.0.10-10.92.0.19], nodeName: ["{ns}-a1"]}}
---
apiVersion: nadipam.io/v1
kind: IPPool
metadata: {{name: {pool_b}}}
spec: {{subnet: {subnet}, ips: [10.92.0.20-10.92.0.29], nodeSelector: {{matchLabels: {{"{RACK}": "{b}"}}}}}}
"#
    ));
    let _guards = (
        DeleteOnDrop::new("ippool", &pool_a, None),
        DeleteOnDrop::new("ippool", &pool_b, None),
        DeleteOnDrop::new("subnet", &subnet, None),
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pools = json!({"ipv4": [pool_a, pool_b]}).to_string();
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
    let pods = Api::<Pod>::namespaced(client.clone(), &ns);
    let first = wait_for("db-0", Duration::from_secs(30), || {
        let pods = pods.clone();
        async move {
            pods.get_opt("db-0")
                .await
                .map_err(|e| e.to_string())?
                .ok_or("not yet".to_string())
        }
    })
    .await;
    let (first_ip, first_terms) = (ip(&first, &ns), terms(&first));
    assert!(first_ip.to_string().starts_with("10.92.0.1"), "{first_ip}");
    // SpiderIPPool's nodeName: one term per node, naming it by metadata.name.
    assert_eq!(
        first_terms,
        json!([{"matchFields": [{"key": "metadata.name", "operator": "In", "values": [format!("{ns}-a1")]}]}])
    );
    let uid = first.uid();
    pods.delete("db-0", &DeleteParams::default().grace_period(0))
        .await
        .unwrap_or_else(|e| panic!("deleting db-0: {e}"));
    let again = wait_for("db-0 re-created", Duration::from_secs(60), || {
        let pods = pods.clone();
        let uid = uid.clone();
        async move {
            match pods.get_opt("db-0").await.map_err(|e| e.to_string())? {
                Some(p) if p.uid() != uid => Ok(p),
                _ => Err("old incarnation".to_string()),
            }
        }
    })
    .await;
    assert_eq!(ip(&again, &ns), first_ip);
    assert_eq!(terms(&again), first_terms);
    let ann: BTreeMap<String, String> = again.metadata.annotations.clone().unwrap_or_default();
    assert!(ann.contains_key("nadipam.io/reservation"), "{ann:?}");
}
