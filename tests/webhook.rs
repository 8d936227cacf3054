//! The admission webhook on the real control plane: every example of the Kube-OVN multi-NIC guide and the
//! Spiderpool ovs-cni guide (with nadipam's group and CNI type), the peers' Subnet and SpiderIPPool manifests as
//! written, dual stack, dry-run, a concurrent burst, and every denial asserted by its message.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, PostParams};
use kube::{Client, ResourceExt};
use nadipam::api::LABEL_MAC;

use common::manifests::{apply, leases_of_subnet, must_deny, pod_yaml};
use common::server::nadipam;
use common::{
    DeleteOnDrop, cluster, cluster_info, kubectl, run_with_input, test_namespace, wait_for,
};

/// A namespace with a macvlan NAD whose IPAM is nadipam, and a Subnet for it.
struct Net {
    client: Client,
    ns: String,
    subnet: String,
    _guards: Vec<DeleteOnDrop>,
}

fn must_apply(yaml: &str) {
    if let Err(e) = apply(yaml) {
        panic!(
            "kubectl apply failed: {e}\n--- yaml\n{yaml}\n--- nadipam log\n{}",
            nadipam().log_tail()
        );
    }
}

/// `kubectl apply -f -` of `yaml`, which must succeed; returns what kubectl wrote to stderr (its warnings).
fn must_apply_warned(yaml: &str) -> String {
    let out = run_with_input(cluster_info().kubectl().args(["apply", "-f", "-"]), yaml);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "kubectl apply failed: {stderr}\n--- yaml\n{yaml}\n--- nadipam log\n{}",
        nadipam().log_tail()
    );
    stderr
}

/// The guide's macvlan NetworkAttachmentDefinition `<ns>/macvlan`, provider `macvlan.<ns>`.
fn macvlan_nad(ns: &str) -> String {
    format!(
        r#"
apiVersion: k8s.cni.cncf.io/v1
kind: NetworkAttachmentDefinition
metadata: {{name: macvlan, namespace: {ns}}}
spec:
  config: '{{"cniVersion": "0.3.0", "type": "macvlan", "master": "eth0", "mode": "bridge",
    "ipam": {{"type": "nadipam", "server_socket": "/run/openvswitch/kube-ovn-daemon.sock", "provider": "macvlan.{ns}"}}}}'
"#
    )
}

async fn setup(prefix: &str, cidr: &str, extra_subnet: &str) -> Net {
    nadipam();
    let client = cluster().await;
    let (ns, ns_guard) = test_namespace(&client, prefix).await;
    let subnet = format!("{ns}-macvlan");
    must_apply(&format!(
        r#"{nad}
---
apiVersion: nadipam.io/v1
kind: Subnet
metadata: {{name: {subnet}}}
spec:
  provider: macvlan.{ns}
  cidrBlock: {cidr}
{extra_subnet}
"#,
        nad = macvlan_nad(&ns)
    ));
    let guards = vec![DeleteOnDrop::new("subnet", &subnet, None), ns_guard];
    wait_cached(&format!("subnet/{subnet}")).await;
    Net {
        client,
        ns,
        subnet,
        _guards: guards,
    }
}

/// The webhook decides from its caches; give a just-created object time to reach them.
async fn wait_cached(_what: &str) {
    tokio::time::sleep(Duration::from_millis(300)).await;
}

async fn annotations(client: &Client, ns: &str, name: &str) -> BTreeMap<String, String> {
    let pod = Api::<Pod>::namespaced(client.clone(), ns)
        .get(name)
        .await
        .unwrap_or_else(|e| panic!("get pod {ns}/{name}: {e}"));
    pod.metadata.annotations.unwrap_or_default()
}

fn ip_of(ann: &BTreeMap<String, String>, provider: &str) -> IpAddr {
    let key = format!("{provider}.kubernetes.io/ip_address");
    ann.get(&key)
        .unwrap_or_else(|| panic!("no {key} in {ann:?}"))
        .parse()
        .unwrap_or_else(|e| panic!("{key}: {e}"))
}

const EXCLUDE: &str = "  gateway: 172.17.0.1\n  excludeIps:\n  - 172.17.0.0..172.17.0.10\n";

#[tokio::test]
async fn random_ip_writes_every_result_annotation_and_one_lease() {
    let net = setup("wh-random", "172.17.0.0/16", EXCLUDE).await;
    let p = format!("macvlan.{}", net.ns);
    must_apply(&pod_yaml(
        &net.ns,
        "samplepod",
        &[(
            "k8s.v1.cni.cncf.io/networks",
            &format!("{}/macvlan", net.ns),
        )],
    ));
    let ann = annotations(&net.client, &net.ns, "samplepod").await;
    let ip = ip_of(&ann, &p);
    let IpAddr::V4(v4) = ip else {
        panic!("expected IPv4, got {ip}")
    };
    assert_eq!(v4.octets()[..2], [172, 17], "{ip} outside 172.17.0.0/16");
    assert!(
        v4 > std::net::Ipv4Addr::new(172, 17, 0, 10),
        "{ip} is in the excluded range"
    );
    assert_eq!(ann[&format!("{p}.kubernetes.io/cidr")], "172.17.0.0/16");
    assert_eq!(ann[&format!("{p}.kubernetes.io/gateway")], "172.17.0.1");
    assert_eq!(ann[&format!("{p}.kubernetes.io/allocated")], "true");
    assert_eq!(
        ann[&format!("{p}.kubernetes.io/logical_switch")],
        net.subnet
    );
    let mac = &ann[&format!("{p}.kubernetes.io/mac_address")];
    let mac: nadipam::alloc::Mac = mac.parse().unwrap_or_else(|e| panic!("{mac}: {e}"));
    assert_eq!(
        mac.0[0] & 0x03,
        0x02,
        "MAC {mac} is not locally administered unicast"
    );
    // The MAC travels in the network selection element: Multus hands the element's `mac` to the plugin.
    let element: serde_json::Value =
        serde_json::from_str(&ann["k8s.v1.cni.cncf.io/networks"]).expect("networks in JSON form");
    assert_eq!(
        element,
        serde_json::json!([{"name": "macvlan", "namespace": net.ns, "mac": mac.to_string()}])
    );
    let token = &ann["nadipam.io/reservation"];
    let leases = leases_of_subnet(&net.client, &net.subnet).await;
    assert_eq!(leases.len(), 1, "{leases:?}");
    let l = &leases[0];
    assert_eq!(l.spec.ip, ip.to_string());
    assert_eq!(&l.spec.token, token);
    assert_eq!(l.spec.mac.as_deref(), Some(mac.to_string().as_str()));
    assert_eq!(l.spec.pod_name.as_deref(), Some("samplepod"));
    assert_eq!(l.spec.network, format!("{}/macvlan", net.ns));
    assert_eq!(l.name_any(), format!("{}.{ip}", net.subnet));
}

#[tokio::test]
async fn fixed_ip_and_mac_then_the_same_ip_is_refused_naming_the_holder() {
    let net = setup("wh-fixed", "172.17.0.0/16", EXCLUDE).await;
    let p = format!("macvlan.{}", net.ns);
    let nets = format!("{}/macvlan", net.ns);
    let ipk = format!("{p}.kubernetes.io/ip_address");
    let mack = format!("{p}.kubernetes.io/mac_address");
    must_apply(&pod_yaml(
        &net.ns,
        "static-ip",
        &[
            ("k8s.v1.cni.cncf.io/networks", &nets),
            ("ovn.kubernetes.io/ip_address", "10.16.0.15"),
            ("ovn.kubernetes.io/mac_address", "00:00:00:53:6B:B6"),
            (&ipk, "172.17.0.100"),
            (&mack, "00:00:00:53:6B:BB"),
        ],
    ));
    let ann = annotations(&net.client, &net.ns, "static-ip").await;
    assert_eq!(ann[&ipk], "172.17.0.100");
    assert_eq!(ann[&mack], "00:00:00:53:6b:bb");
    // A fixed request's address travels in the element too (`ips`, with the Subnet's prefix).
    let element: serde_json::Value =
        serde_json::from_str(&ann["k8s.v1.cni.cncf.io/networks"]).expect("networks in JSON form");
    assert_eq!(
        element,
        serde_json::json!([{"name": "macvlan", "namespace": net.ns,
            "mac": "00:00:00:53:6b:bb", "ips": ["172.17.0.100/16"]}])
    );
    let msg = must_deny(
        &pod_yaml(
            &net.ns,
            "static-ip-2",
            &[
                ("k8s.v1.cni.cncf.io/networks", &nets),
                (&ipk, "172.17.0.100"),
            ],
        ),
        &[&format!(
            "network {nets}: 172.17.0.100 is held by pod {}/static-ip",
            net.ns
        )],
    );
    assert!(msg.contains("Conflict"), "{msg}");
    must_deny(
        &pod_yaml(
            &net.ns,
            "static-mac-2",
            &[
                ("k8s.v1.cni.cncf.io/networks", &nets),
                (&mack, "00:00:00:53:6b:bb"),
            ],
        ),
        &[&format!(
            "MAC 00:00:00:53:6b:bb is held by pod {}/static-ip",
            net.ns
        )],
    );
    let leases = leases_of_subnet(&net.client, &net.subnet).await;
    assert_eq!(leases.len(), 1);
    // The MAC label is what a replica lists to confirm a requested MAC is its alone.
    assert_eq!(
        leases[0].labels().get(LABEL_MAC).map(String::as_str),
        Some("00-00-00-53-6b-bb"),
        "{:?}",
        leases[0].labels()
    );
}

#[tokio::test]
async fn deployment_with_ip_pool_takes_distinct_pool_entries() {
    let net = setup("wh-pool", "172.17.0.0/16", EXCLUDE).await;
    let p = format!("macvlan.{}", net.ns);
    must_apply(&format!(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {{name: static-workload, namespace: {ns}, labels: {{app: static-workload}}}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: static-workload}}}}
  template:
    metadata:
      labels: {{app: static-workload}}
      annotations:
        k8s.v1.cni.cncf.io/networks: {ns}/macvlan
        ovn.kubernetes.io/ip_pool: 10.16.0.15,10.16.0.16,10.16.0.17
        {p}.kubernetes.io/ip_pool: 172.17.0.200,172.17.0.201,172.17.0.202
    spec:
      containers: [{{name: c, image: registry.k8s.io/pause:3.10}}]
"#,
        ns = net.ns
    ));
    let pods = Api::<Pod>::namespaced(net.client.clone(), &net.ns);
    let ips: Vec<IpAddr> = wait_for("2 pods with addresses", Duration::from_secs(30), || {
        let pods = pods.clone();
        let p = p.clone();
        async move {
            let list = pods
                .list(&ListParams::default().labels("app=static-workload"))
                .await
                .map_err(|e| e.to_string())?;
            if list.items.len() < 2 {
                return Err(format!("{} pods", list.items.len()));
            }
            Ok(list
                .items
                .iter()
                .map(|pod| {
                    ip_of(
                        pod.metadata
                            .annotations
                            .as_ref()
                            .unwrap_or(&BTreeMap::new()),
                        &p,
                    )
                })
                .collect())
        }
    })
    .await;
    let pool: HashSet<IpAddr> = ["172.17.0.200", "172.17.0.201", "172.17.0.202"]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
    let got: HashSet<IpAddr> = ips.iter().copied().collect();
    assert_eq!(got.len(), 2, "duplicate addresses: {ips:?}");
    assert!(got.is_subset(&pool), "{ips:?} not all from the pool");
}

#[tokio::test]
async fn default_route_from_the_network_selection_element_becomes_a_route() {
    let net = setup("wh-route", "172.17.0.0/16", EXCLUDE).await;
    let p = format!("macvlan.{}", net.ns);
    let nets = format!(
        r#"[{{"name": "macvlan", "namespace": "{}", "default-route": ["172.17.0.1"]}}]"#,
        net.ns
    );
    must_apply(&pod_yaml(
        &net.ns,
        "samplepod-route",
        &[("k8s.v1.cni.cncf.io/networks", &nets)],
    ));
    let ann = annotations(&net.client, &net.ns, "samplepod-route").await;
    let routes: serde_json::Value =
        serde_json::from_str(&ann[&format!("{p}.kubernetes.io/routes")]).unwrap();
    assert_eq!(routes, serde_json::json!([{"gw": "172.17.0.1"}]));
}

#[tokio::test]
async fn primary_network_via_default_network() {
    let net = setup("wh-primary", "172.17.0.0/16", EXCLUDE).await;
    let p = format!("macvlan.{}", net.ns);
    must_apply(&pod_yaml(
        &net.ns,
        "samplepod-macvlan",
        &[(
            "v1.multus-cni.io/default-network",
            &format!("{}/macvlan", net.ns),
        )],
    ));
    let ann = annotations(&net.client, &net.ns, "samplepod-macvlan").await;
    ip_of(&ann, &p);
    assert_eq!(
        ann[&format!("{p}.kubernetes.io/logical_switch")],
        net.subnet
    );
}

#[tokio::test]
async fn logical_switch_picks_an_ovn_provider_subnet_over_the_provider_match() {
    let net = setup("wh-ls", "172.17.0.0/16", EXCLUDE).await;
    let p = format!("macvlan.{}", net.ns);
    let ovn = format!("{}-ovn", net.ns);
    must_apply(&format!(
        "apiVersion: nadipam.io/v1\nkind: Subnet\nmetadata: {{name: {ovn}}}\nspec:\n  provider: ovn\n  cidrBlock: 172.18.0.0/16\n  gateway: 172.18.0.1\n  excludeIps: [172.18.0.0..172.18.0.10]\n"
    ));
    let _g = DeleteOnDrop::new("subnet", &ovn, None);
    wait_cached("ovn subnet").await;
    must_apply(&pod_yaml(
        &net.ns,
        "samplepod",
        &[
            (
                "k8s.v1.cni.cncf.io/networks",
                &format!("{}/macvlan", net.ns),
            ),
            (&format!("{p}.kubernetes.io/logical_switch"), &ovn),
        ],
    ));
    let ann = annotations(&net.client, &net.ns, "samplepod").await;
    let ip = ip_of(&ann, &p);
    assert!(ip.to_string().starts_with("172.18."), "{ip} not from {ovn}");
    assert_eq!(ann[&format!("{p}.kubernetes.io/logical_switch")], ovn);
    assert_eq!(ann[&format!("{p}.kubernetes.io/cidr")], "172.18.0.0/16");
    // A logical_switch naming another network's Subnet is refused.
    must_deny(
        &pod_yaml(
            &net.ns,
            "thief",
            &[
                (
                    "k8s.v1.cni.cncf.io/networks",
                    &format!("{}/macvlan", net.ns),
                ),
                (
                    &format!("{p}.kubernetes.io/logical_switch"),
                    "nonexistent-subnet",
                ),
            ],
        ),
        &["Subnet nonexistent-subnet named by", "does not exist"],
    );
    let leases = leases_of_subnet(&net.client, &ovn).await;
    for l in &leases {
        let _ = kubectl(&["delete", "iplease", &l.name_any(), "--wait=false"], "");
    }
}

#[tokio::test]
async fn ovn_provider_attachment_with_routes() {
    nadipam();
    let client = cluster().await;
    let (ns, _g) = test_namespace(&client, "wh-ovn").await;
    let subnet = format!("{ns}-attachnet");
    must_apply(&format!(
        r#"
apiVersion: k8s.cni.cncf.io/v1
kind: NetworkAttachmentDefinition
metadata: {{name: attachnet, namespace: {ns}}}
spec:
  config: '{{"cniVersion": "0.3.0", "type": "kube-ovn", "server_socket": "/run/openvswitch/kube-ovn-daemon.sock", "provider": "attachnet.{ns}.ovn"}}'
---
apiVersion: nadipam.io/v1
kind: Subnet
metadata: {{name: {subnet}}}
spec:
  protocol: IPv4
  provider: attachnet.{ns}.ovn
  cidrBlock: 172.17.0.0/16
  gateway: 172.17.0.1
  excludeIps: [172.17.0.0..172.17.0.10]
"#
    ));
    let _gs = DeleteOnDrop::new("subnet", &subnet, None);
    wait_cached("subnet").await;
    let p = format!("attachnet.{ns}.ovn");
    let routes = r#"[{"dst": "192.168.0.101/24", "gw": "172.17.0.254"}, {"gw": "172.17.0.254"}]"#;
    must_apply(&pod_yaml(
        &ns,
        "custom-routes-attach",
        &[
            ("k8s.v1.cni.cncf.io/networks", &format!("{ns}/attachnet")),
            (&format!("{p}.kubernetes.io/routes"), routes),
        ],
    ));
    let ann = annotations(&client, &ns, "custom-routes-attach").await;
    ip_of(&ann, &p);
    let got: serde_json::Value =
        serde_json::from_str(&ann[&format!("{p}.kubernetes.io/routes")]).unwrap();
    assert_eq!(
        got,
        serde_json::json!([{"dst": "192.168.0.101/24", "gw": "172.17.0.254"}, {"gw": "172.17.0.254"}])
    );
}

/// The Spiderpool guide's network in `ns`: NAD `<ns>/ovs-conf` (provider `ovs-conf.<ns>`) and Subnet `subnet` of
/// its underlay, 172.18.0.0/16.
fn ovs_conf(ns: &str, subnet: &str) -> String {
    format!(
        r#"
apiVersion: k8s.cni.cncf.io/v1
kind: NetworkAttachmentDefinition
metadata: {{name: ovs-conf, namespace: {ns}}}
spec:
  config: '{{"cniVersion": "0.3.1", "type": "ovs", "bridge": "br1", "ipam": {{"type": "nadipam", "provider": "ovs-conf.{ns}"}}}}'
---
apiVersion: nadipam.io/v1
kind: Subnet
metadata: {{name: {subnet}}}
spec:
  provider: ovs-conf.{ns}
  cidrBlock: 172.18.0.0/16
  gateway: 172.18.0.1
"#
    )
}

/// `ip` is one of the guide pool's addresses, 172.18.30.131-172.18.30.140.
fn assert_in_guide_pool(ip: &IpAddr) {
    let IpAddr::V4(v4) = ip else { panic!("{ip}") };
    let o = v4.octets();
    assert!(
        o[..3] == [172, 18, 30] && (131..=140).contains(&o[3]),
        "{ip} outside the pool"
    );
}

#[tokio::test]
async fn spiderpool_ippool_annotation_on_a_two_replica_deployment() {
    nadipam();
    let client = cluster().await;
    let (ns, _g) = test_namespace(&client, "wh-spider").await;
    let subnet = format!("{ns}-ovs");
    let pool = format!("{ns}-ippool-test");
    must_apply(&format!(
        r#"{net}
---
apiVersion: nadipam.io/v1
kind: IPPool
metadata: {{name: {pool}}}
spec:
  subnet: {subnet}
  ips: [172.18.30.131-172.18.30.140]
  multusName: [{ns}/ovs-conf]
"#,
        net = ovs_conf(&ns, &subnet)
    ));
    let _gs = (
        DeleteOnDrop::new("ippool", &pool, None),
        DeleteOnDrop::new("subnet", &subnet, None),
    );
    wait_cached("pool").await;
    must_apply(&format!(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {{name: test-app, namespace: {ns}}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: test-app}}}}
  template:
    metadata:
      labels: {{app: test-app}}
      annotations:
        ipam.spidernet.io/ippool: |-
          {{
            "ipv4": ["{pool}"]
          }}
        v1.multus-cni.io/default-network: {ns}/ovs-conf
    spec:
      containers: [{{name: test-app, image: registry.k8s.io/pause:3.10}}]
"#
    ));
    let pods = Api::<Pod>::namespaced(client.clone(), &ns);
    let p = format!("ovs-conf.{ns}");
    let ips: Vec<IpAddr> = wait_for("2 pods", Duration::from_secs(30), || {
        let pods = pods.clone();
        let p = p.clone();
        async move {
            let list = pods
                .list(&ListParams::default().labels("app=test-app"))
                .await
                .map_err(|e| e.to_string())?;
            if list.items.len() < 2 {
                return Err(format!("{} pods", list.items.len()));
            }
            Ok(list
                .items
                .iter()
                .map(|pod| {
                    ip_of(
                        pod.metadata
                            .annotations
                            .as_ref()
                            .unwrap_or(&BTreeMap::new()),
                        &p,
                    )
                })
                .collect())
        }
    })
    .await;
    for ip in &ips {
        assert_in_guide_pool(ip);
    }
    assert_ne!(ips[0], ips[1]);
    let leases = leases_of_subnet(&client, &subnet).await;
    assert!(
        leases
            .iter()
            .all(|l| l.spec.pool.as_deref() == Some(pool.as_str())),
        "{leases:?}"
    );
}

#[tokio::test]
async fn dual_stack_reserves_both_families() {
    let net = setup(
        "wh-dual",
        "10.20.0.0/24,fd00:20::/120",
        "  protocol: Dual\n",
    )
    .await;
    let p = format!("macvlan.{}", net.ns);
    let nets = format!("{}/macvlan", net.ns);
    must_apply(&pod_yaml(
        &net.ns,
        "dual",
        &[("k8s.v1.cni.cncf.io/networks", &nets)],
    ));
    let ann = annotations(&net.client, &net.ns, "dual").await;
    let v = &ann[&format!("{p}.kubernetes.io/ip_address")];
    let (v4, v6) = v
        .split_once(',')
        .unwrap_or_else(|| panic!("{v} is not v4,v6"));
    assert!(
        v4.starts_with("10.20.0.") && v6.starts_with("fd00:20::"),
        "{v}"
    );
    assert_eq!(
        ann[&format!("{p}.kubernetes.io/cidr")],
        "10.20.0.0/24,fd00:20::/120"
    );
    assert_eq!(
        ann[&format!("{p}.kubernetes.io/gateway")],
        "10.20.0.1,fd00:20::1"
    );
    assert_eq!(leases_of_subnet(&net.client, &net.subnet).await.len(), 2);
    // A fixed pair; then the same IPv6 again is refused and its IPv4 half is not left reserved.
    let ipk = format!("{p}.kubernetes.io/ip_address");
    must_apply(&pod_yaml(
        &net.ns,
        "dual-fixed",
        &[
            ("k8s.v1.cni.cncf.io/networks", &nets),
            (&ipk, "10.20.0.50,fd00:20::50"),
        ],
    ));
    must_deny(
        &pod_yaml(
            &net.ns,
            "dual-fixed-2",
            &[
                ("k8s.v1.cni.cncf.io/networks", &nets),
                (&ipk, "10.20.0.51,fd00:20::50"),
            ],
        ),
        &["fd00:20::50 is held by pod"],
    );
    let leases = leases_of_subnet(&net.client, &net.subnet).await;
    assert_eq!(
        leases.len(),
        4,
        "{:?}",
        leases.iter().map(|l| &l.spec.ip).collect::<Vec<_>>()
    );
    assert!(
        !leases.iter().any(|l| l.spec.ip == "10.20.0.51"),
        "half of a refused pair stayed reserved"
    );
}

/// `curl` POST of `body` to `url` verifying the server with the test bed's webhook CA, presenting `identity`
/// (certificate and key files) if given: (curl's exit code, HTTP status, response body).
fn post_review(
    url: &str,
    body: &str,
    identity: Option<(&std::path::Path, &std::path::Path)>,
) -> (i32, String, String) {
    let c = common::cluster_info();
    let mut cmd = std::process::Command::new("curl");
    cmd.args(["-sS", "--max-time", "10", "-X", "POST"])
        .args([
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            "@-",
        ])
        .args(["-w", "\n%{http_code}", "--cacert"])
        .arg(c.state.join("webhook/ca.crt"));
    if let Some((cert, key)) = identity {
        cmd.arg("--cert").arg(cert).arg("--key").arg(key);
    }
    cmd.arg(url);
    let out = common::run_with_input(&mut cmd, body);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = stdout.rsplit_once('\n').unwrap_or(("", stdout.as_str()));
    (
        out.status.code().unwrap_or(-1),
        status.to_string(),
        format!("{body}{}", String::from_utf8_lossy(&out.stderr)),
    )
}

#[tokio::test]
async fn a_forged_review_without_the_apiserver_certificate_creates_nothing() {
    let net = setup("wh-forged", "172.31.0.0/24", "").await;
    let server = nadipam();
    let url = format!("{}/mutate-pods", server.url);
    // A valid Pod CREATE review for a Pod asking for the network whose Subnet exists.
    let review = serde_json::json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uuid::Uuid::new_v4().to_string(),
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
            "requestResource": {"group": "", "version": "v1", "resource": "pods"},
            "name": "forged",
            "namespace": net.ns,
            "operation": "CREATE",
            "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller"},
            "object": {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": "forged",
                    "namespace": net.ns,
                    "annotations": {"k8s.v1.cni.cncf.io/networks": format!("{}/macvlan", net.ns)}
                },
                "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}]}
            },
            "oldObject": null,
            "dryRun": false,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"}
        }
    })
    .to_string();

    // No certificate: the handshake completes (health stays reachable) but the admission path refuses.
    let (code, status, body) = post_review(&url, &review, None);
    assert_eq!((code, status.as_str()), (0, "401"), "{body}");
    assert!(body.contains("client certificate required"), "{body}");
    // A certificate of another CA (the cluster's admin certificate): the handshake fails.
    let pki = common::cluster_info().state.join("pki");
    let (code, status, body) = post_review(
        &url,
        &review,
        Some((&pki.join("admin.crt"), &pki.join("admin.key"))),
    );
    assert_ne!(code, 0, "HTTP {status}: {body}");
    assert!(
        leases_of_subnet(&net.client, &net.subnet).await.is_empty(),
        "a refused review reserved an address"
    );
    // Health, readiness and metrics stay open: on the HTTPS port without a certificate, and on the metrics port.
    for url in [
        format!("{}/healthz", server.url),
        format!("{}/readyz", server.metrics_url),
    ] {
        let out = std::process::Command::new("curl")
            .args(["-sk", "--max-time", "10", &url])
            .output()
            .unwrap_or_else(|e| panic!("curl {url}: {e}"));
        assert_eq!(String::from_utf8_lossy(&out.stdout), "ok", "{url}");
    }
    assert!(server.metrics().contains("nadipam_"), "no metrics");

    // The same review with the apiserver's certificate is served (so the refusals above were about the
    // caller, not the review); its lease is removed again. Retried: under the suite's load the server's
    // cache may see the new Subnet late, and a denial reserves nothing.
    let (cert, key) = common::cluster_info().apiserver_client_tls();
    wait_for(
        "the review to be allowed with the apiserver's certificate",
        Duration::from_secs(20),
        || {
            let (url, review, cert, key) = (&url, &review, &cert, &key);
            async move {
                let (code, status, body) = post_review(url, review, Some((cert, key)));
                let allowed = body.contains("\"allowed\":true") && body.contains("\"patch\"");
                if code == 0 && status == "200" && allowed {
                    Ok(())
                } else {
                    Err(format!("curl exit {code}, HTTP {status}: {body}"))
                }
            }
        },
    )
    .await;
    let leases = leases_of_subnet(&net.client, &net.subnet).await;
    assert_eq!(leases.len(), 1, "{leases:?}");
    kubectl(&["delete", "iplease", &leases[0].name_any()], "")
        .unwrap_or_else(|e| panic!("deleting the lease: {e}"));

    // Through the apiserver, which presents that certificate, a Pod gets its address.
    must_apply(&pod_yaml(
        &net.ns,
        "real",
        &[(
            "k8s.v1.cni.cncf.io/networks",
            &format!("{}/macvlan", net.ns),
        )],
    ));
    let ann = annotations(&net.client, &net.ns, "real").await;
    let ip = ip_of(&ann, &format!("macvlan.{}", net.ns));
    assert!(ip.to_string().starts_with("172.31.0."), "{ip}");
    // No controller binds it here, so the lease would outlive the Pod and keep the Subnet from being deleted.
    kubectl(
        &[
            "delete",
            "ipleases",
            "-l",
            &format!("nadipam.io/subnet={}", net.subnet),
        ],
        "",
    )
    .unwrap_or_else(|e| panic!("deleting the leases: {e}"));
}

#[tokio::test]
async fn dry_run_previews_without_reserving() {
    let net = setup("wh-dry", "172.17.0.0/16", EXCLUDE).await;
    let p = format!("macvlan.{}", net.ns);
    let out = kubectl(
        &["create", "--dry-run=server", "-o", "json", "-f", "-"],
        &pod_yaml(
            &net.ns,
            "preview",
            &[(
                "k8s.v1.cni.cncf.io/networks",
                &format!("{}/macvlan", net.ns),
            )],
        ),
    )
    .unwrap_or_else(|e| panic!("dry run: {e}"));
    let pod: Pod = serde_json::from_str(&out).unwrap();
    ip_of(pod.metadata.annotations.as_ref().unwrap(), &p);
    assert!(
        leases_of_subnet(&net.client, &net.subnet).await.is_empty(),
        "dry run created a lease"
    );
}

#[tokio::test]
async fn burst_of_200_concurrent_pods_gets_200_distinct_addresses() {
    let net = setup("wh-burst", "10.30.0.0/16", "").await;
    let p = format!("macvlan.{}", net.ns);
    let pods = Api::<Pod>::namespaced(net.client.clone(), &net.ns);
    let nets = format!("{}/macvlan", net.ns);
    let before = pod_admission_buckets(&nadipam().metrics());
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..200 {
        let pods = pods.clone();
        let mut pod: Pod = serde_saphyr::from_str(&pod_yaml(
            &net.ns,
            &format!("burst-{i}"),
            &[("k8s.v1.cni.cncf.io/networks", &nets)],
        ))
        .unwrap();
        pod.metadata.namespace = None;
        tasks.spawn(async move {
            let t = Instant::now();
            let created = pods.create(&PostParams::default(), &pod).await;
            (created, t.elapsed())
        });
    }
    let mut ips = HashSet::new();
    let mut latencies = Vec::new();
    while let Some(r) = tasks.join_next().await {
        let (created, took) = r.unwrap();
        let pod =
            created.unwrap_or_else(|e| panic!("create failed: {e}\n{}", nadipam().log_tail()));
        latencies.push(took);
        assert!(
            ips.insert(ip_of(pod.metadata.annotations.as_ref().unwrap(), &p)),
            "duplicate address"
        );
    }
    let wall = start.elapsed();
    latencies.sort();
    assert_eq!(ips.len(), 200);
    assert_eq!(leases_of_subnet(&net.client, &net.subnet).await.len(), 200);
    // The webhook's own view, from its histogram: buckets counted during the burst only.
    let after = pod_admission_buckets(&nadipam().metrics());
    let during: Vec<(f64, f64)> = after
        .iter()
        .map(|(le, n)| {
            let was = before.iter().find(|(l, _)| l == le).map_or(0.0, |b| b.1);
            (*le, n - was)
        })
        .collect();
    let total = during.last().map_or(0.0, |b| b.1);
    assert!(total >= 200.0, "histogram saw {total} pod admissions");
    let quantile = |q: f64| {
        during
            .iter()
            .find(|(_, n)| *n >= q * total)
            .map_or(f64::INFINITY, |b| b.0)
    };
    eprintln!(
        "burst: 200 pods in {wall:?}; client create latency p50 {:?} p99 {:?}; \
         webhook admission p50 <= {} ms, p99 <= {} ms (histogram bucket bounds)",
        latencies[100],
        latencies[197],
        quantile(0.5) * 1000.0,
        quantile(0.99) * 1000.0
    );
}

/// Cumulative buckets `(le, count)` of allowed Pod admissions in a `/metrics` text, summed over outcomes.
fn pod_admission_buckets(metrics: &str) -> Vec<(f64, f64)> {
    let mut buckets: Vec<(f64, f64)> = Vec::new();
    for line in metrics.lines() {
        let Some(rest) = line.strip_prefix("nadipam_admission_duration_seconds_bucket{") else {
            continue;
        };
        if !rest.contains("resource=\"pods\"") {
            continue;
        }
        let Some((labels, value)) = rest.split_once("} ") else {
            continue;
        };
        let Some(le) = labels
            .split("le=\"")
            .nth(1)
            .and_then(|v| v.split('"').next())
        else {
            continue;
        };
        let le = if le == "+Inf" {
            f64::INFINITY
        } else {
            le.parse().unwrap_or(f64::NAN)
        };
        let n: f64 = value.trim().parse().unwrap_or(0.0);
        match buckets.iter_mut().find(|(l, _)| *l == le) {
            Some(b) => b.1 += n,
            None => buckets.push((le, n)),
        }
    }
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    buckets
}

/// A Kube-OVN Subnet as Kube-OVN users write it (tests/fixtures/kube-ovn-subnet.yaml: only apiVersion changed)
/// applies with a strict `kubectl apply`; each Kube-OVN field nadipam ignores is named in a warning and kept as
/// written, and Pods allocate from the Subnet.
#[tokio::test]
async fn a_kube_ovn_subnet_applies_as_written_and_warns_of_its_ignored_fields() {
    nadipam();
    let client = cluster().await;
    let (ns, _g) = test_namespace(&client, "wh-kubeovn").await;
    let subnet = format!("{ns}-kube-ovn");
    must_apply(&macvlan_nad(&ns));
    let yaml = include_str!("fixtures/kube-ovn-subnet.yaml")
        .replace("name: macvlan", &format!("name: {subnet}"))
        .replace(
            "provider: macvlan.default",
            &format!("provider: macvlan.{ns}"),
        )
        .replace("  - default\n", &format!("  - {ns}\n"));
    let _gs = DeleteOnDrop::new("subnet", &subnet, None);
    let warnings = must_apply_warned(&yaml);
    for field in [
        "disableGatewayCheck",
        "enableLb",
        "gatewayType",
        "natOutgoing",
        "private",
        "vlan",
        "acls",
        "natOutgoingPolicyRules",
    ] {
        let line = format!(
            "Warning: Subnet {subnet}: spec.{field} has no effect in nadipam (secondary-network IPAM): kept, \
             ignored\n"
        );
        assert!(warnings.contains(&line), "no {line:?} in {warnings}");
    }
    assert_eq!(
        warnings.matches("has no effect in nadipam").count(),
        28,
        "{warnings}"
    );
    let stored = kubectl(
        &[
            "get",
            "subnet",
            &subnet,
            "-o",
            "jsonpath={.spec.natOutgoingPolicyRules[0].match.srcIPs} {.spec.acls[0].priority} {.spec.mtu}",
        ],
        "",
    )
    .unwrap_or_else(|e| panic!("kubectl get subnet: {e}"));
    assert_eq!(stored, "172.17.0.0/24 1002 1400");

    wait_cached("subnet").await;
    must_apply(&pod_yaml(
        &ns,
        "samplepod",
        &[("k8s.v1.cni.cncf.io/networks", &format!("{ns}/macvlan"))],
    ));
    let p = format!("macvlan.{ns}");
    let ann = annotations(&client, &ns, "samplepod").await;
    let ip = ip_of(&ann, &p);
    let IpAddr::V4(v4) = ip else {
        panic!("expected IPv4, got {ip}")
    };
    assert!(
        v4.octets()[..2] == [172, 17] && v4 > std::net::Ipv4Addr::new(172, 17, 0, 10),
        "{ip} outside 172.17.0.0/16 or in its excludeIps"
    );
    assert_eq!(ann[&format!("{p}.kubernetes.io/gateway")], "172.17.0.1");
    assert_eq!(ann[&format!("{p}.kubernetes.io/logical_switch")], subnet);
}

/// The Spiderpool guide's SpiderIPPool (tests/fixtures/spiderippool.yaml), whose `subnet` is a CIDR, applies as
/// an IPPool once a Subnet with that cidrBlock exists; a Pod naming the pool gets one of its addresses from that
/// Subnet. (The pool's status, counted by the controller, is unit-tested in controller/status.rs.)
#[tokio::test]
async fn a_spiderippool_naming_its_subnet_by_cidr_serves_pods() {
    nadipam();
    let client = cluster().await;
    let (ns, _g) = test_namespace(&client, "wh-spcidr").await;
    let subnet = format!("{ns}-underlay");
    let pool = format!("{ns}-ippool-test");
    must_apply(&ovs_conf(&ns, &subnet));
    let _gs = (
        DeleteOnDrop::new("ippool", &pool, None),
        DeleteOnDrop::new("subnet", &subnet, None),
    );
    wait_cached("subnet").await;
    // Other tests may hold Subnets of 172.18.0.0/16 for their own providers: multusName picks this one.
    let yaml = include_str!("fixtures/spiderippool.yaml")
        .replace("name: ippool-test", &format!("name: {pool}"))
        .replace("kube-system/ovs-conf", &format!("{ns}/ovs-conf"));
    must_apply(&yaml);
    let stored = kubectl(
        &["get", "ippool", &pool, "-o", "jsonpath={.spec.subnet}"],
        "",
    )
    .unwrap_or_else(|e| panic!("kubectl get ippool: {e}"));
    assert_eq!(stored, "172.18.0.0/16");

    wait_cached("pool").await;
    must_apply(&pod_yaml(
        &ns,
        "test-app",
        &[
            (
                "ipam.spidernet.io/ippool",
                &format!("{{\"ipv4\": [\"{pool}\"]}}"),
            ),
            (
                "v1.multus-cni.io/default-network",
                &format!("{ns}/ovs-conf"),
            ),
        ],
    ));
    let p = format!("ovs-conf.{ns}");
    let ann = annotations(&client, &ns, "test-app").await;
    assert_in_guide_pool(&ip_of(&ann, &p));
    assert_eq!(ann[&format!("{p}.kubernetes.io/logical_switch")], subnet);
    let leases = leases_of_subnet(&client, &subnet).await;
    assert_eq!(leases.len(), 1, "{leases:?}");
    assert_eq!(leases[0].spec.pool.as_deref(), Some(pool.as_str()));
}

/// An IPPool whose `subnet` is a CIDR no Subnet has is refused, saying what to create.
#[tokio::test]
async fn an_ippool_naming_a_cidr_no_subnet_has_is_refused() {
    nadipam();
    let client = cluster().await;
    let (ns, _g) = test_namespace(&client, "wh-nocidr").await;
    let pool = format!("{ns}-ippool-test");
    let yaml = include_str!("fixtures/spiderippool.yaml")
        .replace("name: ippool-test", &format!("name: {pool}"))
        .replace("kube-system/ovs-conf", &format!("{ns}/ovs-conf"))
        .replace("172.18.30.131-172.18.30.140", "10.254.77.10-10.254.77.20")
        .replace("172.18.0.0/16", "10.254.77.0/24")
        .replace("172.18.0.1", "10.254.77.1");
    let msg = must_deny(
        &yaml,
        &[&format!(
            "IPPool {pool}: spec.subnet 10.254.77.0/24: no Subnet has cidrBlock 10.254.77.0/24; create a Subnet \
             with spec.cidrBlock: 10.254.77.0/24 and spec.provider: ovs-conf.{ns} first, or name an existing Subnet"
        )],
    );
    assert!(msg.contains("NotFound"), "{msg}");
}
