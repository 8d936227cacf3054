//! What nadipam judges, on the real control plane: NetworkAttachmentDefinitions that are not nadipam's
//! (config-file-backed ones with an empty spec, another IPAM) are written and attached to untouched, also
//! while nadipam is down; an empty NAD nadipam is asked to serve is refused with the reason; and the opt-in
//! cluster default network (`--default-network`) allocates for Pods that name no network.
//!
//! Each test starts its own server (its flags differ, and one is killed), so the tests run one at a time.

mod common;

use std::collections::BTreeMap;
use std::process::Command;

use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::Api;
use serde_json::{Value, json};

use common::server::{Server, log_lines, remove_stale_registrations, start};
use common::{DeleteOnDrop, cluster, cluster_info, kubectl, test_namespace};

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const NAD_KIND: &str = "network-attachment-definitions.k8s.cni.cncf.io";

/// The message of an empty NAD nadipam is asked to serve (today's, kept).
fn empty_message(ns: &str, name: &str) -> String {
    format!(
        "NetworkAttachmentDefinition {ns}/{name}: spec.config is empty: nadipam reads the IPAM type and provider \
         from it, so a NAD whose config lives in a file on each node cannot use nadipam; put the CNI \
         configuration in spec.config"
    )
}

/// `kubectl create -f -` of `obj`; Ok(stdout) or Err(stderr).
fn create(obj: &Value) -> Result<String, String> {
    kubectl(&["create", "-f", "-"], &obj.to_string())
}

fn must_create(server: &Server, obj: &Value) {
    if let Err(e) = create(obj) {
        panic!(
            "creating {obj}: {e}\n--- nadipam log\n{}",
            server.log_tail()
        );
    }
}

/// Asserts that creating `obj` is refused with exactly `message` after the apiserver's prefix.
fn must_refuse(obj: &Value, webhook: &str, message: &str) {
    match create(obj) {
        Ok(out) => panic!("expected {message:?}, but {obj} was created: {out}"),
        Err(e) => {
            let want = format!("admission webhook \"{webhook}\" denied the request: {message}");
            assert!(e.contains(&want), "denial {e:?} does not contain {want:?}");
        }
    }
}

fn nad(ns: &str, name: &str, config: Option<&str>) -> Value {
    let mut obj = json!({"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
                         "metadata": {"name": name, "namespace": ns}});
    if let Some(c) = config {
        obj["spec"] = json!({ "config": c });
    }
    obj
}

/// A macvlan NAD whose IPAM is nadipam, with its own provider.
fn nadipam_nad(ns: &str, name: &str) -> Value {
    let config = format!(
        r#"{{"cniVersion":"0.3.1","type":"macvlan","master":"eth0","ipam":{{"type":"nadipam","provider":"{name}.{ns}"}}}}"#
    );
    nad(ns, name, Some(&config))
}

fn subnet(name: &str, provider: &str, cidr: &str) -> Value {
    json!({"apiVersion": "nadipam.io/v1", "kind": "Subnet", "metadata": {"name": name},
           "spec": {"provider": provider, "cidrBlock": cidr}})
}

fn pod(ns: &str, name: &str, annotations: &[(&str, &str)], host_network: bool) -> Value {
    let ann: BTreeMap<&str, &str> = annotations.iter().copied().collect();
    json!({"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": name, "namespace": ns, "annotations": ann},
           "spec": {"hostNetwork": host_network,
                    "containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}]}})
}

/// The annotations nadipam writes (`nadipam.io/reservation` and `<provider>.kubernetes.io/...`) on a Pod.
async fn nadipam_annotations(client: &Client, ns: &str, name: &str) -> BTreeMap<String, String> {
    let pod = Api::<Pod>::namespaced(client.clone(), ns)
        .get(name)
        .await
        .unwrap_or_else(|e| panic!("get pod {ns}/{name}: {e}"));
    let mut ann = pod.metadata.annotations.unwrap_or_default();
    ann.retain(|k, _| k == "nadipam.io/reservation" || k.contains(".kubernetes.io/"));
    ann
}

/// The webhook decides from its caches; give a just-created Subnet or IPPool time to reach them.
async fn settle() {
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
}

/// One test's server, client and namespace; the server stops before the namespace goes, and the next test
/// starts only then.
struct Bed {
    server: Server,
    client: Client,
    ns: String,
    _ns_guard: DeleteOnDrop,
    _serial: tokio::sync::MutexGuard<'static, ()>,
}

/// A namespace `<prefix>-<random>` and a server; with `default_nad`, its `--default-network` is that NAD of
/// the namespace.
async fn bed(prefix: &str, default_nad: Option<&str>) -> Bed {
    let serial = SERIAL.lock().await;
    let client = cluster().await;
    let (ns, ns_guard) = test_namespace(&client, prefix).await;
    let flag = default_nad.map(|n| format!("--default-network={ns}/{n}"));
    let server = start(&flag.iter().map(String::as_str).collect::<Vec<_>>());
    Bed {
        server,
        client,
        ns,
        _ns_guard: ns_guard,
        _serial: serial,
    }
}

#[tokio::test]
async fn nads_that_are_not_nadipams_are_written_while_it_runs_and_while_it_is_down() {
    let bed = bed("sc-nad", None).await;
    let Bed { server, ns, .. } = &bed;
    let tag = &ns[ns.len() - 8..];

    // Spiderpool's install: an empty NAD for Multus's cluster default network, in kube-system.
    let up = format!("sc-file-up-{tag}");
    let _up_guard = DeleteOnDrop::new(NAD_KIND, &up, Some("kube-system"));
    must_create(server, &nad("kube-system", &up, None));
    must_create(server, &nad(ns, "blank", Some("  ")));
    let host_local = r#"{"cniVersion":"0.3.1","type":"macvlan","master":"eth0","ipam":{"type":"host-local","subnet":"10.96.0.0/24"}}"#;
    must_create(server, &nad(ns, "host-local", Some(host_local)));
    // nadipam's own NADs are still judged.
    must_refuse(
        &nad(
            ns,
            "thief",
            Some(r#"{"type":"macvlan","ipam":{"type":"nadipam","provider":"macvlan.default"}}"#),
        ),
        "nads.nadipam.io",
        &format!(
            "NetworkAttachmentDefinition {ns}/thief: spec.config ipam.provider \"macvlan.default\" is not this \
             NAD's provider; a NAD may only claim its own: \"thief.{ns}\" or \"thief.{ns}.ovn\""
        ),
    );

    // nadipam goes away without removing its webhook configurations.
    let killed = Command::new("kill")
        .args(["-KILL", &server.pid().to_string()])
        .status()
        .unwrap_or_else(|e| panic!("running kill: {e}"));
    assert!(killed.success(), "kill -KILL {} failed", server.pid());
    server.stop();
    let registered = kubectl(&["get", "validatingwebhookconfiguration", "-o", "name"], "")
        .unwrap_or_else(|e| panic!("listing validating webhook configurations: {e}"));
    assert!(
        registered.contains("nadipam-validating-e2e-"),
        "the killed server's configuration is gone: {registered}"
    );

    // failurePolicy Ignore: NADs are written, whatever they are.
    let down = format!("sc-file-down-{tag}");
    let _down_guard = DeleteOnDrop::new(NAD_KIND, &down, Some("kube-system"));
    let written = create(&nad("kube-system", &down, None));
    let own = create(&nadipam_nad(ns, "later"));
    // Pods still depend on nadipam (failurePolicy Fail): a Pod on its network is refused.
    let refused = create(&pod(
        ns,
        "waits",
        &[("k8s.v1.cni.cncf.io/networks", "later")],
        false,
    ));
    remove_stale_registrations(cluster_info());
    assert!(
        written.is_ok(),
        "empty NAD while nadipam is down: {written:?}"
    );
    assert!(own.is_ok(), "nadipam NAD while nadipam is down: {own:?}");
    let refused =
        refused.expect_err("a Pod on a nadipam network was admitted while nadipam was down");
    assert!(
        refused.contains("failed calling webhook \"pods.nadipam.io\""),
        "{refused}"
    );
}

#[tokio::test]
async fn an_empty_nad_nadipam_is_asked_to_serve_is_refused_with_the_reason() {
    let bed = bed("sc-served", None).await;
    let Bed { server, ns, .. } = &bed;
    let served = format!("{ns}-ovs");
    let _subnet_guard = DeleteOnDrop::new("subnet", &served, None);
    // A NAD written before a Subnet names it.
    must_create(server, &nad(ns, "late", None));
    must_create(
        server,
        &subnet(&served, &format!("ovs-conf.{ns}"), "10.97.0.0/24"),
    );
    let pooled = format!("{ns}-pooled");
    let _pool_guard = DeleteOnDrop::new("ippool", &pooled, None);
    must_create(
        server,
        &json!({"apiVersion": "nadipam.io/v1", "kind": "IPPool", "metadata": {"name": pooled},
                "spec": {"subnet": served, "ips": ["10.97.0.20"],
                         "multusName": [format!("{ns}/pooled"), format!("{ns}/late")]}}),
    );
    settle().await;

    must_refuse(
        &nad(ns, "ovs-conf", None),
        "nads.nadipam.io",
        &empty_message(ns, "ovs-conf"),
    );
    must_refuse(
        &nad(ns, "pooled", Some("")),
        "nads.nadipam.io",
        &empty_message(ns, "pooled"),
    );
    // The NAD written earlier keeps its metadata updatable (and deletable) ...
    let labelled = kubectl(&["label", NAD_KIND, "late", "-n", ns, "team=blue"], "");
    assert!(labelled.is_ok(), "labelling {ns}/late: {labelled:?}");
    // ... and a Pod attaching it is refused with the reason.
    must_refuse(
        &pod(
            ns,
            "on-late",
            &[("k8s.v1.cni.cncf.io/networks", "late")],
            false,
        ),
        "pods.nadipam.io",
        &format!(
            "pod {ns}/on-late: network {ns}/late: {}",
            empty_message(ns, "late")
        ),
    );
    server.stop();
}

#[tokio::test]
async fn pods_and_workloads_on_networks_that_are_not_nadipams_are_admitted_untouched() {
    let bed = bed("sc-pod", None).await;
    let Bed {
        server, client, ns, ..
    } = &bed;
    must_create(server, &nad(ns, "file", None));
    let host_local = r#"{"cniVersion":"0.3.1","type":"macvlan","master":"eth0","ipam":{"type":"host-local","subnet":"10.98.0.0/24"}}"#;
    must_create(server, &nad(ns, "host-local", Some(host_local)));

    must_create(
        server,
        &pod(
            ns,
            "secondary",
            &[("k8s.v1.cni.cncf.io/networks", "file, host-local")],
            false,
        ),
    );
    must_create(
        server,
        &pod(
            ns,
            "primary",
            &[("v1.multus-cni.io/default-network", &format!("{ns}/file"))],
            false,
        ),
    );
    for name in ["secondary", "primary"] {
        let ours = nadipam_annotations(client, ns, name).await;
        assert!(ours.is_empty(), "{name}: {ours:?}");
    }
    let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": ns},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"},
                                           "annotations": {"k8s.v1.cni.cncf.io/networks": "file"}},
                              "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}]}}}});
    must_create(server, &deployment);

    // A NAD applied together with its Pod is read live when the cache does not have it yet.
    let served = format!("{ns}-fresh");
    let _subnet_guard = DeleteOnDrop::new("subnet", &served, None);
    must_create(
        server,
        &subnet(&served, &format!("fresh.{ns}"), "10.99.0.0/24"),
    );
    settle().await;
    let together = json!({"apiVersion": "v1", "kind": "List", "items": [
        nadipam_nad(ns, "fresh"),
        pod(ns, "with-fresh", &[("k8s.v1.cni.cncf.io/networks", "fresh")], false),
    ]});
    must_create(server, &together);
    let ours = nadipam_annotations(client, ns, "with-fresh").await;
    assert!(
        ours.contains_key(&format!("fresh.{ns}.kubernetes.io/ip_address")),
        "{ours:?}"
    );

    // A NAD that does not exist at all is still refused: Multus would fail the Pod.
    must_refuse(
        &pod(
            ns,
            "nowhere",
            &[("k8s.v1.cni.cncf.io/networks", "nowhere")],
            false,
        ),
        "pods.nadipam.io",
        &format!(
            "pod {ns}/nowhere: network {ns}/nowhere: NetworkAttachmentDefinition {ns}/nowhere does not exist; \
             create it or fix the network reference in k8s.v1.cni.cncf.io/networks"
        ),
    );
    server.stop();
}

#[tokio::test]
async fn the_cluster_default_network_allocates_for_pods_that_name_none() {
    let bed = bed("sc-default", Some("ovs-conf")).await;
    let Bed {
        server, client, ns, ..
    } = &bed;
    let default = format!("{ns}/ovs-conf");
    let provider = format!("ovs-conf.{ns}");
    let ip_key = format!("{provider}.kubernetes.io/ip_address");

    // Before the NAD exists nadipam allocates nothing on it, and says so.
    must_create(server, &pod(ns, "early", &[], false));
    assert!(nadipam_annotations(client, ns, "early").await.is_empty());
    let said = format!(
        "the cluster default network {default} (--default-network) does not exist; no address allocated on it"
    );
    assert!(
        !log_lines(server, &said).is_empty(),
        "no {said:?} in\n{}",
        server.log_tail()
    );

    let served = format!("{ns}-ovs");
    let _subnet_guard = DeleteOnDrop::new("subnet", &served, None);
    must_create(server, &nadipam_nad(ns, "ovs-conf"));
    must_create(server, &subnet(&served, &provider, "10.100.0.0/24"));
    must_create(server, &nad(ns, "file", None));
    settle().await;

    // No Multus annotation, or secondary networks only: Multus puts the Pod on the cluster default network.
    must_create(server, &pod(ns, "plain", &[], false));
    must_create(
        server,
        &pod(
            ns,
            "with-secondary",
            &[("k8s.v1.cni.cncf.io/networks", "file")],
            false,
        ),
    );
    let mut ips = Vec::new();
    for name in ["plain", "with-secondary"] {
        let ours = nadipam_annotations(client, ns, name).await;
        let ip = ours
            .get(&ip_key)
            .unwrap_or_else(|| panic!("{name}: no {ip_key} in {ours:?}"));
        assert!(ip.starts_with("10.100.0."), "{name}: {ip}");
        assert!(ours.contains_key("nadipam.io/reservation"), "{ours:?}");
        ips.push(ip.clone());
    }
    assert_ne!(ips[0], ips[1]);

    // Left alone: the host's network, a default network of the Pod's own, kube-system.
    must_create(server, &pod(ns, "host", &[], true));
    must_create(
        server,
        &pod(
            ns,
            "own-default",
            &[("v1.multus-cni.io/default-network", "file")],
            false,
        ),
    );
    let system = format!("sc-default-{}", &ns[ns.len() - 8..]);
    let _system_guard = DeleteOnDrop::new("pod", &system, Some("kube-system"));
    must_create(server, &pod("kube-system", &system, &[], false));
    for (pod_ns, name) in [
        (ns.as_str(), "host"),
        (ns.as_str(), "own-default"),
        ("kube-system", system.as_str()),
    ] {
        let ours = nadipam_annotations(client, pod_ns, name).await;
        assert!(ours.is_empty(), "{pod_ns}/{name}: {ours:?}");
    }
    server.stop();
}
