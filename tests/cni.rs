//! The `nadipam` CNI IPAM plugin against the real local control plane: one Pod allocated by nadipam's webhook
//! end to end, Pods carrying result annotations written here directly (no Multus keys, so no admission webhook
//! takes them) for exact shapes, the reference macvlan and bridge plugins driven by cnitool in real network
//! namespaces, and every error asserted by running the binary with env + stdin.

mod common;
#[path = "cni/support.rs"]
mod support;

use std::collections::BTreeMap;
use std::path::Path;

use common::{cluster, cluster_info, test_namespace};
use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use support::{CniDirs, Sandbox, nadipam};

/// Result annotations as nadipam's webhook writes them: `<provider>.kubernetes.io/<field>`.
fn result_annotations(provider: &str, fields: &[(&str, &str)]) -> BTreeMap<String, String> {
    fields
        .iter()
        .map(|(k, v)| (format!("{provider}.kubernetes.io/{k}"), v.to_string()))
        .collect()
}

async fn create_pod(
    client: &Client,
    ns: &str,
    name: &str,
    annotations: BTreeMap<String, String>,
) -> Pod {
    let pod: Pod = serde_json::from_value(json!({
        "metadata": { "name": name, "annotations": annotations },
        "spec": { "containers": [{ "name": "pause", "image": "registry.k8s.io/pause:3.10" }] }
    }))
    .expect("pod literal");
    Api::<Pod>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &pod)
        .await
        .unwrap_or_else(|e| panic!("creating pod {ns}/{name}: {e}"))
}

fn uid(pod: &Pod) -> String {
    pod.metadata.uid.clone().expect("created pod has a uid")
}

fn kubeconfig() -> String {
    cluster_info().kubeconfig.display().to_string()
}

/// The admin kubeconfig's CA data (base64) and server, for kubeconfigs the tests write themselves.
fn ca_and_server() -> (String, String) {
    let text = std::fs::read_to_string(&cluster_info().kubeconfig).expect("reading kubeconfig");
    let v: serde_json::Value = serde_saphyr::from_str(&text).expect("kubeconfig yaml");
    let cluster = &v["clusters"][0]["cluster"];
    (
        cluster["certificate-authority-data"]
            .as_str()
            .expect("ca data")
            .to_string(),
        cluster["server"].as_str().expect("server").to_string(),
    )
}

/// A kubeconfig with the cluster's server (unless `server` is given), a CA (base64) and a token.
fn token_kubeconfig(
    dir: &Path,
    name: &str,
    server: Option<&str>,
    ca_b64: &str,
    token: &str,
) -> String {
    let (_, real_server) = ca_and_server();
    let path = dir.join(name);
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {}\n    certificate-authority-data: {ca_b64}\nusers:\n- name: u\n  user:\n    token: {token}\ncontexts:\n- name: x\n  context:\n    cluster: c\n    user: u\ncurrent-context: x\n",
            server.unwrap_or(&real_server)
        ),
    )
    .expect("writing kubeconfig");
    path.display().to_string()
}

/// A plain IPAM config (as a main plugin hands it on) for direct runs.
fn conf(version: &str, provider: &str, kubeconfig: &str, extra: Value) -> String {
    let mut ipam = json!({"type": "nadipam", "provider": provider, "kubeconfig": kubeconfig});
    if let (Some(o), Value::Object(e)) = (ipam.as_object_mut(), extra) {
        o.extend(e);
    }
    json!({"cniVersion": version, "name": "nadipam-direct", "type": "macvlan", "ipam": ipam})
        .to_string()
}

fn pod_args(ns: &str, name: &str) -> String {
    format!("IgnoreUnknown=1;K8S_POD_NAMESPACE={ns};K8S_POD_NAME={name}")
}

/// The whole path: Subnet and NAD applied, a Pod created through the apiserver (the webhook allocates), then
/// the node side: macvlan with `ipam.type: nadipam` puts exactly the webhook's address and MAC on the interface.
#[tokio::test]
async fn webhook_allocated_pod_gets_its_address_on_a_macvlan_interface() {
    common::server::nadipam();
    let client = cluster().await;
    let (ns, _ns_guard) = test_namespace(&client, "cni-e2e").await;
    let subnet = format!("{ns}-mv");
    let provider = format!("macvlan.{ns}");
    let manifest = format!(
        r#"
apiVersion: k8s.cni.cncf.io/v1
kind: NetworkAttachmentDefinition
metadata: {{name: macvlan, namespace: {ns}}}
spec:
  config: '{{"cniVersion": "1.0.0", "type": "macvlan", "mode": "bridge", "ipam": {{"type": "nadipam", "provider": "{provider}"}}}}'
---
apiVersion: nadipam.io/v1
kind: Subnet
metadata: {{name: {subnet}}}
spec:
  provider: {provider}
  cidrBlock: 10.78.0.0/24,fd00:78::/64
  excludeIps: [10.78.0.1..10.78.0.9]
  routes: [{{dst: 192.168.78.0/24, gw: 10.78.0.254}}]
"#
    );
    let mut apply = cluster_info()
        .kubectl()
        .args(["apply", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("kubectl");
    std::io::Write::write_all(&mut apply.stdin.take().unwrap(), manifest.as_bytes()).unwrap();
    let out = apply.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _subnet_guard = common::DeleteOnDrop::new("subnet", &subnet, None);
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;

    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "app", "annotations": {"k8s.v1.cni.cncf.io/networks": "macvlan"}},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}
    }))
    .unwrap();
    let pod = pods
        .create(&PostParams::default(), &pod)
        .await
        .expect("pod admitted");
    let ann = pod.metadata.annotations.clone().unwrap_or_default();
    let ip = ann[&format!("{provider}.kubernetes.io/ip_address")].clone();
    let mac = ann[&format!("{provider}.kubernetes.io/mac_address")].to_lowercase();
    let (v4, v6) = ip.split_once(',').expect("dual stack: v4,v6");

    let mut sandbox = Sandbox::new();
    let master = sandbox.master();
    let dirs = CniDirs::new(cluster_info());
    dirs.conflist(
        "nadipam-e2e",
        &json!({
            "cniVersion": "1.0.0", "name": "nadipam-e2e",
            "plugins": [{
                "type": "macvlan", "master": master, "mode": "bridge", "capabilities": {"mac": true},
                "ipam": {"type": "nadipam", "provider": provider, "kubeconfig": kubeconfig()}
            }]
        }),
    );
    let args = format!("{};K8S_POD_UID={}", pod_args(&ns, "app"), uid(&pod));
    // Multus hands the allocated MAC to the plugin as runtimeConfig.mac.
    let cap = json!({"mac": mac});
    let out = dirs.cnitool("add", "nadipam-e2e", &sandbox, "net1", &args, Some(&cap));
    assert!(
        out.status.success(),
        "cnitool add: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut addrs = sandbox.addrs("net1");
    addrs.sort();
    assert_eq!(addrs, [format!("{v4}/24"), format!("{v6}/64")]);
    assert_eq!(sandbox.mac("net1"), mac);
    let routes = sandbox.routes("-4", "net1");
    assert!(
        routes.contains(&("192.168.78.0/24".into(), "10.78.0.254".into())),
        "the Subnet's route is on net1: {routes:?}"
    );
    let out = dirs.cnitool("check", "nadipam-e2e", &sandbox, "net1", &args, Some(&cap));
    assert!(
        out.status.success(),
        "cnitool check: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = dirs.cnitool("del", "nadipam-e2e", &sandbox, "net1", &args, Some(&cap));
    assert!(
        out.status.success(),
        "cnitool del: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    pods.delete("app", &Default::default())
        .await
        .expect("delete pod");
}

#[tokio::test]
async fn macvlan_dual_stack_add_check_del() {
    let client = cluster().await;
    let (ns, _ns_guard) = test_namespace(&client, "cni-macvlan").await;
    let provider = format!("macvlan.{ns}");
    let mac = "02:42:0a:4d:00:05";
    let pod = create_pod(
        &client,
        &ns,
        "web-0",
        result_annotations(
            &provider,
            &[
                ("allocated", "true"),
                ("ip_address", "10.77.0.5,fd00:77::5"),
                ("mac_address", mac),
                ("cidr", "10.77.0.0/24,fd00:77::/64"),
                ("gateway", "10.77.0.1,fd00:77::1"),
                (
                    "routes",
                    r#"[{"dst":"192.168.50.0/24","gw":"10.77.0.254"},{"gw":"10.77.0.1"},{"dst":"fd00:99::/64","gw":"fd00:77::fe"}]"#,
                ),
            ],
        ),
    )
    .await;

    let mut sandbox = Sandbox::new();
    let master = sandbox.master();
    let dirs = CniDirs::new(cluster_info());
    dirs.conflist(
        "nadipam-mv",
        &json!({
            "cniVersion": "1.0.0",
            "name": "nadipam-mv",
            "plugins": [{
                "type": "macvlan", "master": master, "mode": "bridge",
                // How the allocated MAC reaches macvlan: runtimeConfig.mac (Multus passes the selection
                // element's mac there when the NAD declares the capability).
                "capabilities": {"mac": true},
                "ipam": {"type": "nadipam", "provider": provider, "kubeconfig": kubeconfig()}
            }]
        }),
    );
    let args = format!("{};K8S_POD_UID={}", pod_args(&ns, "web-0"), uid(&pod));
    let cap = json!({"mac": mac});

    let out = dirs.cnitool("add", "nadipam-mv", &sandbox, "net1", &args, Some(&cap));
    assert!(
        out.status.success(),
        "cnitool add: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result: Value = serde_json::from_slice(&out.stdout).expect("cnitool prints the result");
    assert_eq!(result["cniVersion"], "1.0.0");
    let ips: Vec<&str> = result["ips"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["address"].as_str().unwrap())
        .collect();
    assert_eq!(ips, ["10.77.0.5/24", "fd00:77::5/64"]);
    assert!(
        result["ips"][0].get("version").is_none(),
        "1.0.0 has no ips[].version: {result}"
    );
    assert_eq!(result["ips"][0]["gateway"], "10.77.0.1");

    let mut addrs = sandbox.addrs("net1");
    addrs.sort();
    assert_eq!(addrs, ["10.77.0.5/24", "fd00:77::5/64"]);
    assert_eq!(sandbox.mac("net1"), mac);
    let v4 = sandbox.routes("-4", "net1");
    assert!(
        v4.contains(&("default".into(), "10.77.0.1".into())),
        "{v4:?}"
    );
    assert!(
        v4.contains(&("192.168.50.0/24".into(), "10.77.0.254".into())),
        "{v4:?}"
    );
    let v6 = sandbox.routes("-6", "net1");
    assert!(
        v6.contains(&("fd00:99::/64".into(), "fd00:77::fe".into())),
        "{v6:?}"
    );

    let out = dirs.cnitool("check", "nadipam-mv", &sandbox, "net1", &args, Some(&cap));
    assert!(
        out.status.success(),
        "cnitool check: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The allocation changes under the running Pod: CHECK must notice.
    let patch = json!({"metadata": {"annotations": {format!("{provider}.kubernetes.io/ip_address"): "10.77.0.6,fd00:77::6"}}});
    Api::<Pod>::namespaced(client.clone(), &ns)
        .patch("web-0", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("patching annotations");
    let out = dirs.cnitool("check", "nadipam-mv", &sandbox, "net1", &args, Some(&cap));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "check after the change succeeded");
    assert!(
        stderr.contains(
            "CHECK: interface net1 was set up with 10.77.0.5/24, fd00:77::5/64 (prevResult) but Pod"
        ),
        "{stderr}"
    );

    let out = dirs.cnitool("del", "nadipam-mv", &sandbox, "net1", &args, Some(&cap));
    assert!(
        out.status.success(),
        "cnitool del: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        sandbox.link("net1").is_none(),
        "net1 still exists after DEL"
    );
    let out = dirs.cnitool("del", "nadipam-mv", &sandbox, "net1", &args, Some(&cap));
    assert!(
        out.status.success(),
        "second DEL: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn bridge_second_attachment_legacy_version_as_kube_ovn() {
    let client = cluster().await;
    let (ns, _ns_guard) = test_namespace(&client, "cni-bridge").await;
    let provider = format!("br.{ns}");
    // Two attachments of one network: the plain keys belong to the first, net2 has its own keys.
    create_pod(
        &client,
        &ns,
        "db-0",
        result_annotations(
            &provider,
            &[
                ("allocated", "true"),
                ("ip_address", "10.78.0.5"),
                ("mac_address", "02:42:0a:4e:00:05"),
                ("ip_address.net2", "10.78.0.6"),
                ("mac_address.net2", "02:42:0a:4e:00:06"),
                ("cidr", "10.78.0.0/24"),
                ("gateway", "10.78.0.1"),
            ],
        ),
    )
    .await;

    let mut sandbox = Sandbox::new();
    let bridge = sandbox.own_link("nb");
    let dirs = CniDirs::new(cluster_info());
    dirs.conflist(
        "nadipam-br",
        &json!({
            "cniVersion": "0.3.1",
            "name": "nadipam-br",
            "plugins": [{
                "type": "bridge", "bridge": bridge,
                // A Kube-OVN NAD, unchanged: the binary also answers as `kube-ovn` and ignores server_socket.
                "ipam": {
                    "type": "kube-ovn",
                    "server_socket": "/run/openvswitch/kube-ovn-daemon.sock",
                    "provider": provider,
                    "kubeconfig": kubeconfig(),
                    "routes": [{"dst": "10.200.0.0/16"}],
                    "dns": {"nameservers": ["10.78.0.10"]}
                }
            }]
        }),
    );
    // The other MAC path: Multus' CNI_ARGS MAC= (from the selection element's mac), read by bridge.
    let args = format!("{};MAC=02:42:0a:4e:00:06", pod_args(&ns, "db-0"));
    let out = dirs.cnitool("add", "nadipam-br", &sandbox, "net2", &args, None);
    assert!(
        out.status.success(),
        "cnitool add: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result: Value = serde_json::from_slice(&out.stdout).expect("result");
    assert_eq!(result["cniVersion"], "0.3.1");
    let ip = result["ips"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["address"] == "10.78.0.6/24")
        .unwrap_or_else(|| panic!("no 10.78.0.6/24 in {result}"));
    assert_eq!(ip["version"], "4", "0.3.x carries ips[].version: {result}");
    assert_eq!(result["dns"]["nameservers"], json!(["10.78.0.10"]));

    assert_eq!(sandbox.addrs("net2"), ["10.78.0.6/24"]);
    assert_eq!(sandbox.mac("net2"), "02:42:0a:4e:00:06");
    let routes = sandbox.routes("-4", "net2");
    assert!(
        routes.contains(&("10.200.0.0/16".into(), "10.78.0.1".into())),
        "{routes:?}"
    );

    let out = dirs.cnitool("del", "nadipam-br", &sandbox, "net2", &args, None);
    assert!(
        out.status.success(),
        "cnitool del: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(sandbox.link("net2").is_none());
}

#[tokio::test]
async fn direct_add_renders_every_version() {
    let client = cluster().await;
    let (ns, _ns_guard) = test_namespace(&client, "cni-versions").await;
    let provider = format!("n.{ns}");
    create_pod(
        &client,
        &ns,
        "p",
        result_annotations(
            &provider,
            &[
                ("allocated", "true"),
                ("ip_address", "10.79.0.5,fd00:79::5"),
                ("mac_address", "02:00:00:00:79:05"),
                ("cidr", "10.79.0.0/24,fd00:79::/64"),
                ("gateway", "10.79.0.1"),
            ],
        ),
    )
    .await;
    let args = pod_args(&ns, "p");
    for version in ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"] {
        let run = nadipam(
            "ADD",
            &conf(version, &provider, &kubeconfig(), json!({})),
            &[("CNI_ARGS", &args)],
        );
        assert_eq!(run.code, Some(0), "{version}: {run:?}");
        let mut expected = json!({
            "cniVersion": version,
            "interfaces": [{"name": "net1", "mac": "02:00:00:00:79:05", "sandbox": "/var/run/netns/nadipam-test"}],
            "ips": [
                {"interface": 0, "address": "10.79.0.5/24", "gateway": "10.79.0.1"},
                {"interface": 0, "address": "fd00:79::5/64"}
            ]
        });
        if version.starts_with('0') {
            expected["ips"][0]["version"] = json!("4");
            expected["ips"][1]["version"] = json!("6");
            expected["dns"] = json!({});
        }
        assert_eq!(run.json(), expected, "{version}");
    }

    let run = nadipam("VERSION", r#"{"cniVersion":"1.1.0"}"#, &[]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(
        run.json(),
        json!({"cniVersion": "1.1.0", "supportedVersions": ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]})
    );

    // DEL needs no API and succeeds even when nothing can be reached; GC too.
    let unreachable = conf("1.1.0", &provider, "/nonexistent/kubeconfig", json!({}));
    for _ in 0..2 {
        let run = nadipam(
            "DEL",
            &unreachable,
            &[("CNI_ARGS", &args), ("CNI_NETNS", "")],
        );
        assert_eq!((run.code, run.stdout.as_str()), (Some(0), ""), "{run:?}");
    }
    let run = nadipam("GC", &unreachable, &[]);
    assert_eq!(run.code, Some(0), "{run:?}");

    let run = nadipam(
        "STATUS",
        &conf("1.1.0", &provider, &kubeconfig(), json!({})),
        &[],
    );
    assert_eq!(run.code, Some(0), "{run:?}");
    let run = nadipam("STATUS", &unreachable, &[]);
    run.error(
        50,
        &["nadipam cannot serve ADD: kubeconfig /nonexistent/kubeconfig: cannot be read"],
    );
}

#[tokio::test]
async fn service_account_token_with_get_on_pods_is_enough() {
    let client = cluster().await;
    let (ns, _ns_guard) = test_namespace(&client, "cni-token").await;
    let provider = format!("n.{ns}");
    create_pod(
        &client,
        &ns,
        "p",
        result_annotations(
            &provider,
            &[
                ("allocated", "true"),
                ("ip_address", "10.80.0.5"),
                ("cidr", "10.80.0.0/24"),
            ],
        ),
    )
    .await;
    let pp = PostParams::default();
    for name in ["reader", "nobody"] {
        let sa: ServiceAccount =
            serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
        Api::<ServiceAccount>::namespaced(client.clone(), &ns)
            .create(&pp, &sa)
            .await
            .expect("sa");
    }
    let role: Role = serde_json::from_value(json!({
        "metadata": {"name": "pod-reader"},
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]
    }))
    .unwrap();
    Api::<Role>::namespaced(client.clone(), &ns)
        .create(&pp, &role)
        .await
        .expect("role");
    let binding: RoleBinding = serde_json::from_value(json!({
        "metadata": {"name": "reader"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pod-reader"},
        "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": ns}]
    }))
    .unwrap();
    Api::<RoleBinding>::namespaced(client.clone(), &ns)
        .create(&pp, &binding)
        .await
        .expect("binding");

    let (ca, _) = ca_and_server();
    let dir = tempfile::tempdir().unwrap();
    let mut kubeconfigs = Vec::new();
    for name in ["reader", "nobody"] {
        let tr: TokenRequest = serde_json::from_value(json!({"spec": {"audiences": []}})).unwrap();
        let token = Api::<ServiceAccount>::namespaced(client.clone(), &ns)
            .create_token_request(name, &pp, &tr)
            .await
            .expect("token request")
            .status
            .expect("token status")
            .token;
        kubeconfigs.push(token_kubeconfig(dir.path(), name, None, &ca, &token));
    }
    let args = pod_args(&ns, "p");
    // RBAC may take a moment to see the new binding.
    let mut run = nadipam(
        "ADD",
        &conf("1.0.0", &provider, &kubeconfigs[0], json!({})),
        &[("CNI_ARGS", &args)],
    );
    for _ in 0..50 {
        if run.code == Some(0) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
        run = nadipam(
            "ADD",
            &conf("1.0.0", &provider, &kubeconfigs[0], json!({})),
            &[("CNI_ARGS", &args)],
        );
    }
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(run.json()["ips"], json!([{"address": "10.80.0.5/24"}]));

    let run = nadipam(
        "ADD",
        &conf("1.0.0", &provider, &kubeconfigs[1], json!({})),
        &[("CNI_ARGS", &args)],
    );
    run.error(
        106,
        &[
            "answered 403 to GET /api/v1/namespaces/",
            "grant it get on pods",
        ],
    );
}

#[tokio::test]
async fn every_error_has_its_code_and_an_actionable_message() {
    let client = cluster().await;
    let (ns, _ns_guard) = test_namespace(&client, "cni-errors").await;
    let provider = format!("n.{ns}");
    let good = result_annotations(
        &provider,
        &[
            ("allocated", "true"),
            ("ip_address", "10.81.0.5"),
            ("cidr", "10.81.0.0/24"),
        ],
    );
    let pod = create_pod(&client, &ns, "ok", good.clone()).await;
    create_pod(&client, &ns, "old", BTreeMap::new()).await;
    create_pod(
        &client,
        &ns,
        "broken",
        result_annotations(
            &provider,
            &[
                ("allocated", "true"),
                ("ip_address", "10.81.0.5"),
                ("cidr", "10.99.0.0/24"),
            ],
        ),
    )
    .await;
    let kc = kubeconfig();
    let add = |pod_name: &str, conf_text: &str| {
        nadipam("ADD", conf_text, &[("CNI_ARGS", &pod_args(&ns, pod_name))])
    };
    let c = conf("1.0.0", &provider, &kc, json!({}));

    // 1: versions without a result layout, and CHECK before 0.4.0.
    add("ok", &conf("0.2.0", &provider, &kc, json!({}))).error(1, &["0.2.0"]);
    let run = nadipam(
        "CHECK",
        &conf("0.3.1", &provider, &kc, json!({})),
        &[("CNI_ARGS", &pod_args(&ns, "ok"))],
    );
    run.error(1, &["does not allow CHECK"]);

    // 4: the environment.
    nadipam(
        "ADD",
        &c,
        &[("CNI_ARGS", &format!("K8S_POD_NAMESPACE={ns}"))],
    )
    .error(
        4,
        &[
            "CNI_ARGS: K8S_POD_NAME is missing",
            "K8S_POD_NAMESPACE and K8S_POD_NAME",
        ],
    );
    nadipam("ADD", &c, &[("CNI_ARGS", "K8S_POD_NAMESPACE=a;oops")])
        .error(4, &["entry \"oops\" is not KEY=VALUE"]);
    nadipam(
        "ADD",
        &c,
        &[("CNI_ARGS", &pod_args(&ns, "ok")), ("CNI_IFNAME", "")],
    )
    .error(4, &["CNI_IFNAME"]);

    // 6 and 7: the config.
    add("ok", "this is not json").error(6, &[]);
    add("ok", &json!({"cniVersion": "1.0.0", "name": "n", "type": "macvlan", "ipam": {"type": "nadipam"}}).to_string())
        .error(7, &["network config field ipam.provider: is missing"]);
    add(
        "ok",
        &conf(
            "1.0.0",
            &provider,
            &kc,
            json!({"routes": [{"dst": "10.0.0.1"}]}),
        ),
    )
    .error(7, &["ipam.routes[0].dst: \"10.0.0.1\" is not a CIDR"]);

    // 11: nothing listens on the server's port.
    let (ca, _) = ca_and_server();
    let dir = tempfile::tempdir().unwrap();
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let down = token_kubeconfig(
        dir.path(),
        "down",
        Some(&format!("https://127.0.0.1:{closed}")),
        &ca,
        "t",
    );
    let start = std::time::Instant::now();
    add("ok", &conf("1.0.0", &provider, &down, json!({}))).error(
        11,
        &[
            &format!("Kubernetes API at https://127.0.0.1:{closed} is unreachable (3 attempt(s)"),
            "try again later",
        ],
    );
    assert!(
        start.elapsed() < std::time::Duration::from_secs(3),
        "gave up after {:?}",
        start.elapsed()
    );

    // 100-104: the Pod.
    add("gone", &c).error(100, &[&format!("Pod {ns}/gone was not found")]);
    add("old", &c).error(
        101,
        &[
            &format!("Pod {ns}/old has no nadipam allocation for provider {provider}"),
            "created before nadipam's webhook was installed",
            "Recreate the Pod",
        ],
    );
    nadipam(
        "ADD",
        &c,
        &[(
            "CNI_ARGS",
            &format!("{};K8S_POD_UID=not-{}", pod_args(&ns, "ok"), uid(&pod)),
        )],
    )
    .error(
        102,
        &[&format!(
            "has UID {} in the API but the runtime is setting up UID not-{}",
            uid(&pod),
            uid(&pod)
        )],
    );
    add("broken", &c).error(
        103,
        &[&format!(
            "annotation {provider}.kubernetes.io/cidr: \"10.99.0.0/24\" does not contain"
        )],
    );
    let asks = json!({"cniVersion": "1.0.0", "name": "n", "type": "macvlan",
        "ipam": {"type": "nadipam", "provider": provider, "kubeconfig": kc},
        "runtimeConfig": {"ips": ["10.81.0.9/24"]}});
    add("ok", &asks.to_string()).error(
        104,
        &[
            "runtimeConfig.ips asks for 10.81.0.9 but Pod",
            "was allocated 10.81.0.5",
        ],
    );

    // 105, 106, 108: the kubeconfig and the API's answers.
    add("ok", &conf("1.0.0", &provider, "/nonexistent/k", json!({}))).error(
        105,
        &[
            "kubeconfig /nonexistent/k: cannot be read",
            "nadipam's node agent writes it",
        ],
    );
    let bad_token = token_kubeconfig(dir.path(), "bad-token", None, &ca, "not-a-token");
    add("ok", &conf("1.0.0", &provider, &bad_token, json!({})))
        .error(106, &["answered 401", "credentials were rejected"]);
    let other_ca = rcgen::generate_simple_self_signed(vec!["other-ca".to_string()]).unwrap();
    let other_ca_b64 = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(other_ca.cert.pem())
    };
    let wrong_ca = token_kubeconfig(dir.path(), "wrong-ca", None, &other_ca_b64, "t");
    add("ok", &conf("1.0.0", &provider, &wrong_ca, json!({}))).error(
        108,
        &[
            "TLS to the Kubernetes API at https://127.0.0.1:",
            "check certificate-authority(-data)",
        ],
    );

    // 107: CHECK with a prevResult the Pod no longer holds.
    let check = json!({"cniVersion": "1.0.0", "name": "n", "type": "macvlan",
        "ipam": {"type": "nadipam", "provider": provider, "kubeconfig": kc},
        "prevResult": {"cniVersion": "1.0.0", "interfaces": [{"name": "net1", "sandbox": "/x"}],
                       "ips": [{"interface": 0, "address": "10.81.0.7/24"}]}});
    nadipam(
        "CHECK",
        &check.to_string(),
        &[("CNI_ARGS", &pod_args(&ns, "ok"))],
    )
    .error(
        107,
        &[
            "interface net1 was set up with 10.81.0.7/24 (prevResult) but Pod",
            "now holds 10.81.0.5/24",
        ],
    );
    let mut fine = check.clone();
    fine["prevResult"]["ips"][0]["address"] = json!("10.81.0.5/24");
    let run = nadipam(
        "CHECK",
        &fine.to_string(),
        &[("CNI_ARGS", &pod_args(&ns, "ok"))],
    );
    assert_eq!(run.code, Some(0), "{run:?}");

    // Every failure is also one line on stderr for a person at a terminal.
    let run = add("gone", &c);
    assert!(run.stderr.contains("nadipam: error 100: Pod"), "{run:?}");
}
