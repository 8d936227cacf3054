//! nadipam in the admission chain and cluster it lives in, on the real control plane: a second mutating webhook
//! ordered after nadipam (reinvocation), IPPools that keep their addresses, Spiderpool's two-pool annotation,
//! pool gateways, and reservation tokens copied into other Pods.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use kube::{Client, ResourceExt};
use nadipam::api::{IPLease, IPPool};

use common::manifests::{apply, leases_of_subnet, must_deny, pod_yaml};
use common::reorder::Reorderer;
use common::server::{Server, start};
use common::{DeleteOnDrop, cluster, kubectl, test_namespace, wait_for};

/// This binary's server, with the controller on (its Lease in `default`, which exists; a short Lease so it
/// takes over quickly from an earlier test binary's server): the tests read bindings and pool status.
fn nadipam() -> &'static Server {
    static SERVER: std::sync::OnceLock<Server> = std::sync::OnceLock::new();
    SERVER.get_or_init(|| start(&["--namespace", "default", "--leader-lease-seconds", "5"]))
}

/// The annotation the test's mutating webhook writes on every Pod of its namespace, changing the Pod after
/// nadipam's call so the apiserver calls nadipam again.
const TOUCHED: &str = "chain.test.nadipam.io/touched";

fn must_apply(yaml: &str) {
    if let Err(e) = apply(yaml) {
        panic!(
            "kubectl apply failed: {e}\n--- yaml\n{yaml}\n--- nadipam log\n{}",
            nadipam().log_tail()
        );
    }
}

async fn pod_annotations(client: &Client, ns: &str, name: &str) -> BTreeMap<String, String> {
    Api::<Pod>::namespaced(client.clone(), ns)
        .get(name)
        .await
        .unwrap_or_else(|e| panic!("get pod {ns}/{name}: {e}"))
        .metadata
        .annotations
        .unwrap_or_default()
}

/// A namespace with a macvlan NAD whose IPAM is nadipam, and a Subnet for it with `subnet_spec` (YAML lines
/// under `spec:`).
struct Net {
    client: Client,
    ns: String,
    subnet: String,
    provider: String,
    guards: Vec<DeleteOnDrop>,
}

async fn setup(prefix: &str, subnet_spec: &str) -> Net {
    nadipam();
    let client = cluster().await;
    let (ns, ns_guard) = test_namespace(&client, prefix).await;
    let subnet = format!("{ns}-macvlan");
    let provider = format!("macvlan.{ns}");
    must_apply(&format!(
        r#"
apiVersion: k8s.cni.cncf.io/v1
kind: NetworkAttachmentDefinition
metadata: {{name: macvlan, namespace: {ns}}}
spec:
  config: '{{"cniVersion": "0.3.0", "type": "macvlan", "master": "eth0", "mode": "bridge",
    "ipam": {{"type": "nadipam", "provider": "{provider}"}}}}'
---
apiVersion: nadipam.io/v1
kind: Subnet
metadata: {{name: {subnet}}}
spec:
  provider: {provider}
{subnet_spec}
"#
    ));
    let guards = vec![DeleteOnDrop::new("subnet", &subnet, None), ns_guard];
    tokio::time::sleep(Duration::from_millis(300)).await;
    Net {
        client,
        ns,
        subnet,
        provider,
        guards,
    }
}

impl Net {
    fn key(&self, what: &str) -> String {
        format!("{}.kubernetes.io/{what}", self.provider)
    }

    fn network(&self) -> String {
        format!("{}/macvlan", self.ns)
    }

    fn pool(&mut self, name: &str, body: &str) -> String {
        let name = format!("{}-{name}", self.ns);
        must_apply(&format!(
            "apiVersion: nadipam.io/v1\nkind: IPPool\nmetadata: {{name: {name}}}\nspec:\n  subnet: {}\n{body}\n",
            self.subnet
        ));
        self.guards.push(DeleteOnDrop::new("ippool", &name, None));
        name
    }

    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    async fn leases(&self) -> Vec<IPLease> {
        leases_of_subnet(&self.client, &self.subnet).await
    }

    async fn create(&self, name: &str, annotations: &[(&str, &str)]) -> BTreeMap<String, String> {
        must_apply(&pod_yaml(&self.ns, name, annotations));
        pod_annotations(&self.client, &self.ns, name).await
    }
}

/// Every lease's IP once, and as many leases as `want`.
fn assert_one_lease_each(leases: &[IPLease], want: usize) {
    let ips: HashSet<&str> = leases.iter().map(|l| l.spec.ip.as_str()).collect();
    assert_eq!(
        ips.len(),
        leases.len(),
        "an address leased twice: {leases:?}"
    );
    assert_eq!(leases.len(), want, "{leases:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_after_nadipam_changing_every_pod_gets_the_same_allocation_back() {
    let mut net = setup(
        "chain-reinv",
        "  cidrBlock: 10.60.0.0/24,fd00:60::/120\n  gateway: 10.60.0.1,fd00:60::1",
    )
    .await;
    let pool = net.pool(
        "pool",
        "  ips: [10.60.0.200-10.60.0.203, fd00:60::c8-fd00:60::cb]",
    );
    let r = Reorderer::start(&net.client, &net.ns).await;
    let network = net.network();
    let before = r.calls.load(Ordering::SeqCst);

    // Random, fixed IP, fixed MAC and a named IPPool, each dual stack; and a second random Pod.
    let random = net
        .create("random", &[("k8s.v1.cni.cncf.io/networks", &network)])
        .await;
    let fixed = net
        .create(
            "fixed",
            &[
                ("k8s.v1.cni.cncf.io/networks", &network),
                (&net.key("ip_address"), "10.60.0.50,fd00:60::50"),
            ],
        )
        .await;
    let mac = net
        .create(
            "mac",
            &[
                ("k8s.v1.cni.cncf.io/networks", &network),
                (&net.key("mac_address"), "02:60:00:00:00:01"),
            ],
        )
        .await;
    let pooled = net
        .create(
            "pooled",
            &[
                ("k8s.v1.cni.cncf.io/networks", &network),
                (
                    "ipam.spidernet.io/ippool",
                    &format!(r#"{{"ipv4":["{pool}"],"ipv6":["{pool}"]}}"#),
                ),
            ],
        )
        .await;
    let calls = r.calls.load(Ordering::SeqCst) - before;
    assert!(calls >= 4, "the reordering webhook saw {calls} calls");
    for (name, ann) in [
        ("random", &random),
        ("fixed", &fixed),
        ("mac", &mac),
        ("pooled", &pooled),
    ] {
        assert!(ann.contains_key(TOUCHED), "{name}: {ann:?}");
        assert_eq!(
            ann.get(&net.key("allocated")).map(String::as_str),
            Some("true"),
            "{name}: {ann:?}"
        );
    }
    assert_eq!(fixed[&net.key("ip_address")], "10.60.0.50,fd00:60::50");
    assert_eq!(
        mac[&net.key("mac_address")].to_lowercase(),
        "02:60:00:00:00:01"
    );
    let ips = &pooled[&net.key("ip_address")];
    assert!(ips.starts_with("10.60.0.20"), "pooled {ips}");
    // Exactly one lease per address: four Pods, two families each, all held by their Pod (its token, its name;
    // the server binds no lease, so no UID).
    let leases = wait_for(
        "every lease of the four Pods",
        Duration::from_secs(30),
        || {
            let net = &net;
            async move {
                let leases = net.leases().await;
                if leases.len() >= 8 {
                    Ok(leases)
                } else {
                    Err(format!("{leases:?}"))
                }
            }
        },
    )
    .await;
    assert_one_lease_each(&leases, 8);
    for pod in ["random", "fixed", "mac", "pooled"] {
        let got: Pod = net.pods().get(pod).await.expect("pod");
        let token = &got.annotations()[&"nadipam.io/reservation".to_string()];
        assert_eq!(
            got.labels().get("nadipam.io/reservation"),
            Some(token),
            "{pod}"
        );
        let mine: Vec<&IPLease> = leases.iter().filter(|l| &l.spec.token == token).collect();
        assert_eq!(mine.len(), 2, "{pod}: {leases:?}");
        assert!(
            mine.iter().all(|l| l.spec.pod_name.as_deref() == Some(pod)
                && l.spec
                    .pod_uid
                    .as_ref()
                    .is_none_or(|u| Some(u) == got.uid().as_ref())),
            "{pod}: {mine:?}"
        );
    }
    for l in leases
        .iter()
        .filter(|l| l.spec.pod_name.as_deref() == Some("pooled"))
    {
        assert_eq!(l.spec.pool.as_deref(), Some(pool.as_str()), "{l:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statefulset_pods_are_admitted_through_a_reordering_webhook_and_keep_their_addresses() {
    let net = setup(
        "chain-sts",
        "  cidrBlock: 10.61.0.0/24\n  gateway: 10.61.0.1",
    )
    .await;
    let _r = Reorderer::start(&net.client, &net.ns).await;
    let key = net.key("ip_pool");
    must_apply(&format!(
        r#"
apiVersion: apps/v1
kind: StatefulSet
metadata: {{name: web, namespace: {ns}}}
spec:
  replicas: 2
  serviceName: web
  podManagementPolicy: Parallel
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata:
      labels: {{app: web}}
      annotations:
        k8s.v1.cni.cncf.io/networks: {network}
        {key}: 10.61.0.10,10.61.0.11
    spec:
      containers: [{{name: c, image: registry.k8s.io/pause:3.10}}]
"#,
        ns = net.ns,
        network = net.network(),
    ));
    let ip = net.key("ip_address");
    for (pod, want) in [("web-0", "10.61.0.10"), ("web-1", "10.61.0.11")] {
        let got = wait_for(pod, Duration::from_secs(60), || {
            let pods = net.pods();
            let ip = ip.clone();
            async move {
                let p = pods.get(pod).await.map_err(|e| e.to_string())?;
                p.annotations()
                    .get(&ip)
                    .cloned()
                    .ok_or("no address".to_string())
            }
        })
        .await;
        assert_eq!(got, want, "{pod}");
    }
    assert_one_lease_each(&net.leases().await, 2);
    // Re-created (the StatefulSet controller makes the Pod again): same address, still one lease.
    net.pods()
        .delete("web-0", &Default::default())
        .await
        .expect("delete web-0");
    wait_for("web-0 re-created", Duration::from_secs(60), || {
        let pods = net.pods();
        let ip = ip.clone();
        async move {
            let p = pods.get("web-0").await.map_err(|e| e.to_string())?;
            if p.metadata.deletion_timestamp.is_some() {
                return Err("old incarnation".into());
            }
            match p.annotations().get(&ip).map(String::as_str) {
                Some("10.61.0.10") => Ok(()),
                other => Err(format!("{other:?}")),
            }
        }
    })
    .await;
    assert_one_lease_each(&net.leases().await, 2);
}

#[tokio::test]
async fn ippool_addresses_go_only_to_pods_naming_the_pool_under_100_concurrent_pods() {
    let mut net = setup(
        "chain-keep",
        "  cidrBlock: 10.62.0.0/24\n  gateway: 10.62.0.1",
    )
    .await;
    let pool = net.pool("kept", "  ips: [10.62.0.100-10.62.0.109]");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let network = net.network();
    let plain: Vec<Pod> = (0..100)
        .map(|i| {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": format!("plain-{i}"),
                             "annotations": {"k8s.v1.cni.cncf.io/networks": network}},
                "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}]}
            }))
            .expect("pod literal")
        })
        .collect();
    let pods = net.pods();
    let made = futures::future::join_all(plain.iter().map(|p| {
        let pods = pods.clone();
        async move { pods.create(&PostParams::default(), p).await }
    }))
    .await;
    let key = net.key("ip_address");
    for m in made {
        let pod = m.unwrap_or_else(|e| panic!("create: {e}"));
        let ip: IpAddr = pod.annotations()[&key].parse().expect("ip");
        let IpAddr::V4(v4) = ip else { panic!("{ip}") };
        assert!(
            !(100..=109).contains(&v4.octets()[3]),
            "{} got {ip}, an address of IPPool {pool}",
            pod.name_any()
        );
    }
    // The pool's ten addresses go to the Pods naming it; the eleventh is refused naming the pool.
    let spider = format!(r#"{{"ipv4":["{pool}"]}}"#);
    for i in 0..10 {
        let ann = net
            .create(
                &format!("named-{i}"),
                &[
                    ("k8s.v1.cni.cncf.io/networks", &network),
                    ("ipam.spidernet.io/ippool", &spider),
                ],
            )
            .await;
        assert!(ann[&key].starts_with("10.62.0.10"), "{ann:?}");
    }
    must_deny(
        &pod_yaml(
            &net.ns,
            "named-10",
            &[
                ("k8s.v1.cni.cncf.io/networks", &network),
                ("ipam.spidernet.io/ippool", &spider),
            ],
        ),
        &[&format!(
            "network {network}: IPPool {pool} has no free IPv4 address left (no free IPv4 address is left in \
             10.62.0.100..10.62.0.109 of subnet {} (10.62.0.0/24))",
            net.subnet
        )],
    );
    // A fixed address inside the pool, asked by a Pod that does not name it.
    must_deny(
        &pod_yaml(
            &net.ns,
            "sneaky",
            &[
                ("k8s.v1.cni.cncf.io/networks", &network),
                (&key, "10.62.0.105"),
            ],
        ),
        &[&format!(
            "network {network}: annotation {key}: 10.62.0.105 belongs to IPPool {pool}, whose addresses only the \
             Pods naming it receive; name the pool (ipam.spidernet.io/ippool, or {}: {pool}) or ask for an \
             address outside it",
            net.key("ip_pool")
        )],
    );
    let leases = net.leases().await;
    assert_one_lease_each(&leases, 110);
    assert_eq!(
        leases
            .iter()
            .filter(|l| l.spec.pool.as_deref() == Some(pool.as_str()))
            .count(),
        10
    );
    let counted = wait_for("the pool's status", Duration::from_secs(30), || {
        let api = Api::<IPPool>::all(net.client.clone());
        let pool = pool.clone();
        async move {
            let p = api.get(&pool).await.map_err(|e| e.to_string())?;
            match p.status {
                Some(s) if s.allocated_ip_count == 10 => Ok(s),
                other => Err(format!("{other:?}")),
            }
        }
    })
    .await;
    assert_eq!(counted.total_ip_count, 10);
}

#[tokio::test]
async fn a_spiderpool_annotation_naming_two_pools_per_family_tries_them_in_order_and_counts_each() {
    let mut net = setup(
        "chain-two",
        "  cidrBlock: 10.63.0.0/24,fd00:63::/120\n  gateway: 10.63.0.1,fd00:63::1",
    )
    .await;
    let first = net.pool("v4-first", "  ips: [10.63.0.10]");
    let second = net.pool(
        "v4-second",
        "  ips: [10.63.0.20-10.63.0.29]\n  gateway: 10.63.0.254",
    );
    let v6 = net.pool(
        "v6",
        "  ips: [fd00:63::20-fd00:63::29]\n  gateway: fd00:63::fe",
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let network = net.network();
    let spider = format!(r#"{{"ipv4":["{first}","{second}"],"ipv6":["{v6}"]}}"#);
    let key = net.key("ip_address");
    let gw = net.key("gateway");
    let a = net
        .create(
            "a",
            &[
                ("k8s.v1.cni.cncf.io/networks", &network),
                ("ipam.spidernet.io/ippool", &spider),
            ],
        )
        .await;
    let b = net
        .create(
            "b",
            &[
                ("k8s.v1.cni.cncf.io/networks", &network),
                ("ipam.spidernet.io/ippool", &spider),
            ],
        )
        .await;
    // The first pool has one address: a gets it; b falls through to the second pool and its gateway.
    assert!(a[&key].starts_with("10.63.0.10,fd00:63::2"), "{a:?}");
    assert_eq!(a[&gw], "10.63.0.1,fd00:63::fe", "{a:?}");
    assert!(b[&key].starts_with("10.63.0.2"), "{b:?}");
    assert_eq!(b[&gw], "10.63.0.254,fd00:63::fe", "{b:?}");
    let leases = net.leases().await;
    assert_one_lease_each(&leases, 4);
    for l in &leases {
        let want = match (l.spec.pod_name.as_deref(), l.spec.ip.contains(':')) {
            (_, true) => &v6,
            (Some("a"), false) => &first,
            _ => &second,
        };
        assert_eq!(l.spec.pool.as_deref(), Some(want.as_str()), "{l:?}");
    }
    for (pool, n) in [(&first, 1), (&second, 1), (&v6, 2)] {
        wait_for(
            &format!("{pool} counts {n}"),
            Duration::from_secs(30),
            || {
                let api = Api::<IPPool>::all(net.client.clone());
                let pool = pool.clone();
                async move {
                    let p = api.get(&pool).await.map_err(|e| e.to_string())?;
                    match p.status {
                        Some(s) if s.allocated_ip_count == n => Ok(()),
                        other => Err(format!("{other:?}")),
                    }
                }
            },
        )
        .await;
    }
    // The IPv6 pool is in use: it cannot be deleted.
    let out = kubectl(&["delete", "ippool", &v6], "").expect_err("delete of a pool in use");
    assert!(out.contains(&v6), "{out}");
}

#[tokio::test]
async fn an_ippool_gateway_is_never_handed_out_nor_counted() {
    let mut net = setup(
        "chain-gw",
        "  cidrBlock: 10.70.0.0/24\n  gateway: 10.70.0.1",
    )
    .await;
    let pool = net.pool(
        "gw",
        "  ips: [10.70.0.100-10.70.0.103]\n  gateway: 10.70.0.101",
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let network = net.network();
    let spider = format!(r#"{{"ipv4":["{pool}"]}}"#);
    let key = net.key("ip_address");
    let mut got = Vec::new();
    for i in 0..3 {
        let ann = net
            .create(
                &format!("p{i}"),
                &[
                    ("k8s.v1.cni.cncf.io/networks", &network),
                    ("ipam.spidernet.io/ippool", &spider),
                ],
            )
            .await;
        assert_eq!(ann[&net.key("gateway")], "10.70.0.101");
        got.push(ann[&key].clone());
    }
    got.sort();
    assert_eq!(got, ["10.70.0.100", "10.70.0.102", "10.70.0.103"]);
    must_deny(
        &pod_yaml(
            &net.ns,
            "p3",
            &[
                ("k8s.v1.cni.cncf.io/networks", &network),
                ("ipam.spidernet.io/ippool", &spider),
            ],
        ),
        &[&format!(
            "IPPool {pool} has no free IPv4 address left (no free IPv4 address is left in 10.70.0.100..10.70.0.103"
        )],
    );
    // Pods without the pool never get the pool's gateway either.
    for i in 0..5 {
        let ann = net
            .create(
                &format!("free-{i}"),
                &[("k8s.v1.cni.cncf.io/networks", &network)],
            )
            .await;
        assert_ne!(ann[&key], "10.70.0.101");
    }
    wait_for("the pool's total", Duration::from_secs(30), || {
        let api = Api::<IPPool>::all(net.client.clone());
        let pool = pool.clone();
        async move {
            let p = api.get(&pool).await.map_err(|e| e.to_string())?;
            match p.status {
                Some(s) if s.total_ip_count == 3 && s.allocated_ip_count == 3 => Ok(()),
                other => Err(format!("{other:?}")),
            }
        }
    })
    .await;
}

#[tokio::test]
async fn a_copied_reservation_token_ties_no_other_pod_to_the_address() {
    let net = setup(
        "chain-forge",
        "  cidrBlock: 10.64.0.0/24\n  gateway: 10.64.0.1",
    )
    .await;
    let network = net.network();
    let a = net
        .create("a", &[("k8s.v1.cni.cncf.io/networks", &network)])
        .await;
    let token = a["nadipam.io/reservation"].clone();
    let ip = a[&net.key("ip_address")].clone();
    let refused = format!(
        "annotation nadipam.io/reservation: reservation {token} belongs to pod {}/a, not to this Pod",
        net.ns
    );
    // Without any Multus annotation: the token alone.
    must_deny(
        &pod_yaml(&net.ns, "b", &[("nadipam.io/reservation", &token)]),
        &[&refused],
    );
    // Everything nadipam wrote on a, copied verbatim.
    let copied: Vec<(&str, &str)> = a
        .iter()
        .filter(|(k, _)| !k.starts_with("kubectl.kubernetes.io/"))
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    must_deny(&pod_yaml(&net.ns, "c", &copied), &[&refused]);
    // Added to a Pod that exists.
    must_apply(&pod_yaml(&net.ns, "plain", &[]));
    let out = kubectl(
        &[
            "annotate",
            "pod",
            "-n",
            &net.ns,
            "plain",
            &format!("nadipam.io/reservation={token}"),
        ],
        "",
    )
    .expect_err("adding a token afterwards");
    assert!(
        out.contains("annotation nadipam.io/reservation is written by nadipam when it admits a Pod and cannot be added afterwards"),
        "{out}"
    );
    // a keeps its address; deleting the plain Pod changes nothing.
    net.pods()
        .delete("plain", &Default::default())
        .await
        .expect("delete");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let leases = net.leases().await;
    assert_eq!(leases.len(), 1, "{leases:?}");
    assert_eq!(leases[0].spec.ip, ip);
    assert_eq!(leases[0].spec.pod_name.as_deref(), Some("a"));
}

#[tokio::test]
async fn of_two_overlapping_subnets_one_network_can_reach_only_the_older_allocates() {
    let net = setup(
        "chain-overlap",
        "  cidrBlock: 10.65.0.0/24\n  gateway: 10.65.0.1",
    )
    .await;
    // An ovn Subnet is reachable from every network by logical_switch; the Subnet webhook lets it overlap
    // a Subnet of another provider.
    let ovn = format!("{}-ovn", net.ns);
    must_apply(&format!(
        "apiVersion: nadipam.io/v1\nkind: Subnet\nmetadata: {{name: {ovn}}}\nspec:\n  provider: ovn\n  cidrBlock: 10.65.0.0/25\n"
    ));
    let _g = DeleteOnDrop::new("subnet", &ovn, None);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let network = net.network();
    must_deny(
        &pod_yaml(
            &net.ns,
            "via-ovn",
            &[
                ("k8s.v1.cni.cncf.io/networks", &network),
                (&net.key("logical_switch"), &ovn),
            ],
        ),
        &[&format!(
            "network {network}: Subnet {ovn} (10.65.0.0/25) overlaps Subnet {} (10.65.0.0/24), which this network \
             can also reach and which was created first; an address in both could be given twice, so only {} \
             allocates: delete Subnet {ovn} or give it a cidrBlock of its own",
            net.subnet, net.subnet
        )],
    );
    let ann = net
        .create("direct", &[("k8s.v1.cni.cncf.io/networks", &network)])
        .await;
    assert_eq!(ann[&net.key("logical_switch")], net.subnet);

    // Two overlapping Subnets of one provider created at the same moment: whichever creates pass, Pods only
    // ever get addresses of one of them.
    let (a, b) = (format!("{}-race-a", net.ns), format!("{}-race-b", net.ns));
    let provider = format!("race.{}", net.ns);
    let yaml = |name: &str, cidr: &str| {
        format!(
            "apiVersion: nadipam.io/v1\nkind: Subnet\nmetadata: {{name: {name}}}\nspec:\n  provider: {provider}\n  cidrBlock: {cidr}\n"
        )
    };
    let (ya, yb) = (yaml(&a, "10.66.0.0/28"), yaml(&b, "10.66.0.0/29"));
    let (ra, rb) = tokio::join!(
        tokio::task::spawn_blocking(move || apply(&ya)),
        tokio::task::spawn_blocking(move || apply(&yb)),
    );
    let _gs = (
        DeleteOnDrop::new("subnet", &a, None),
        DeleteOnDrop::new("subnet", &b, None),
    );
    eprintln!(
        "concurrent creates: {a}: {:?}, {b}: {:?}",
        ra.is_ok(),
        rb.is_ok()
    );
    must_apply(&format!(
        r#"
apiVersion: k8s.cni.cncf.io/v1
kind: NetworkAttachmentDefinition
metadata: {{name: race, namespace: {ns}}}
spec:
  config: '{{"cniVersion": "0.3.0", "type": "macvlan", "master": "eth0", "ipam": {{"type": "nadipam", "provider": "{provider}"}}}}'
"#,
        ns = net.ns
    ));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let race = format!("{}/race", net.ns);
    let mut seen = HashSet::new();
    for i in 0..6 {
        let ls = if i % 2 == 0 { &a } else { &b };
        let got = apply(&pod_yaml(
            &net.ns,
            &format!("race-{i}"),
            &[
                ("k8s.v1.cni.cncf.io/networks", &race),
                (&format!("{provider}.kubernetes.io/logical_switch"), ls),
            ],
        ));
        if got.is_ok() {
            let ann = pod_annotations(&net.client, &net.ns, &format!("race-{i}")).await;
            let ip = ann[&format!("{provider}.kubernetes.io/ip_address")].clone();
            assert!(seen.insert(ip.clone()), "{ip} given twice");
        }
    }
    assert!(!seen.is_empty());
}

#[tokio::test]
async fn a_statefulset_pod_recreated_with_another_address_list_gets_it_and_frees_the_old_one() {
    let net = setup(
        "chain-ststpl",
        "  cidrBlock: 10.67.0.0/24\n  gateway: 10.67.0.1",
    )
    .await;
    let key = net.key("ip_pool");
    let sts = |list: &str| {
        format!(
            r#"
apiVersion: apps/v1
kind: StatefulSet
metadata: {{name: db, namespace: {ns}}}
spec:
  replicas: 1
  serviceName: db
  updateStrategy: {{type: OnDelete}}
  selector: {{matchLabels: {{app: db}}}}
  template:
    metadata:
      labels: {{app: db}}
      annotations:
        k8s.v1.cni.cncf.io/networks: {network}
        {key}: {list}
    spec:
      containers: [{{name: c, image: registry.k8s.io/pause:3.10}}]
"#,
            ns = net.ns,
            network = net.network(),
        )
    };
    must_apply(&sts("10.67.0.10"));
    let ip = net.key("ip_address");
    let address = |want: &'static str| {
        let pods = net.pods();
        let ip = ip.clone();
        async move {
            wait_for(&format!("db-0 at {want}"), Duration::from_secs(90), || {
                let pods = pods.clone();
                let ip = ip.clone();
                async move {
                    let p = pods.get("db-0").await.map_err(|e| e.to_string())?;
                    match p.annotations().get(&ip).map(String::as_str) {
                        Some(got) if got == want && p.metadata.deletion_timestamp.is_none() => {
                            Ok(())
                        }
                        other => Err(format!("{other:?}")),
                    }
                }
            })
            .await
        }
    };
    address("10.67.0.10").await;
    // A new template, then db-0 deleted (no kubelet here makes it Ready for a rolling update): the
    // StatefulSet controller creates it again from the new template.
    must_apply(&sts("10.67.0.20"));
    net.pods()
        .delete("db-0", &Default::default())
        .await
        .expect("delete db-0");
    address("10.67.0.20").await;
    let leases = wait_for("only the new lease", Duration::from_secs(30), || {
        let net = &net;
        async move {
            let leases = net.leases().await;
            if leases.len() == 1 {
                Ok(leases)
            } else {
                Err(format!("{leases:?}"))
            }
        }
    })
    .await;
    assert_eq!(leases[0].spec.ip, "10.67.0.20");
}

#[tokio::test]
async fn a_subnet_and_an_ippool_applied_with_the_pod_are_read_live_when_the_cache_lags() {
    nadipam();
    let client = cluster().await;
    let (ns, _g) = test_namespace(&client, "chain-live").await;
    let subnet = format!("{ns}-live");
    let pool = format!("{ns}-live-pool");
    let _gs = (
        DeleteOnDrop::new("ippool", &pool, None),
        DeleteOnDrop::new("subnet", &subnet, None),
    );
    // One apply: the webhook sees the Pod moments after the Subnet and IPPool are stored.
    let pod = pod_yaml(
        &ns,
        "together",
        &[
            ("k8s.v1.cni.cncf.io/networks", &format!("{ns}/live")),
            (
                "ipam.spidernet.io/ippool",
                &format!(r#"{{"ipv4":["{pool}"]}}"#),
            ),
        ],
    );
    must_apply(&format!(
        r#"
apiVersion: k8s.cni.cncf.io/v1
kind: NetworkAttachmentDefinition
metadata: {{name: live, namespace: {ns}}}
spec:
  config: '{{"cniVersion": "0.3.0", "type": "macvlan", "master": "eth0", "ipam": {{"type": "nadipam", "provider": "live.{ns}"}}}}'
---
apiVersion: nadipam.io/v1
kind: Subnet
metadata: {{name: {subnet}}}
spec:
  provider: live.{ns}
  cidrBlock: 10.68.0.0/24
---
apiVersion: nadipam.io/v1
kind: IPPool
metadata: {{name: {pool}}}
spec:
  subnet: {subnet}
  ips: [10.68.0.50-10.68.0.59]
---
{pod}"#
    ));
    let ann = pod_annotations(&client, &ns, "together").await;
    let ip = &ann[&format!("live.{ns}.kubernetes.io/ip_address")];
    assert!(ip.starts_with("10.68.0.5"), "{ann:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_reinvoked_by_a_later_webhook_previews_a_pool_pod_without_refusal() {
    let mut net = setup(
        "chain-dry",
        "  cidrBlock: 10.69.0.0/24\n  gateway: 10.69.0.1",
    )
    .await;
    let pool = net.pool("dry", "  ips: [10.69.0.100-10.69.0.103]");
    let _r = Reorderer::start(&net.client, &net.ns).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let yaml = pod_yaml(
        &net.ns,
        "preview",
        &[
            ("k8s.v1.cni.cncf.io/networks", &net.network()),
            (&net.key("ip_pool"), &pool),
        ],
    );
    // The second call sees the address the first one wrote next to the pool request; a dry run reserved
    // nothing, so that address is read back, not refused as "set together" with ip_pool.
    let out = kubectl(
        &["apply", "--dry-run=server", "-o", "yaml", "-f", "-"],
        &yaml,
    )
    .unwrap_or_else(|e| panic!("dry run refused: {e}"));
    assert!(out.contains("10.69.0.10"), "{out}");
    assert!(
        net.leases().await.is_empty(),
        "a dry run reserved something"
    );
}

/// An IPAMClaim through a later webhook that changes every Pod (the apiserver calls nadipam again): the first
/// Pod and a second one naming the claim get its one address, the claim holds one lease, and the Pod's own
/// element keeps its `ipam-claim-reference` for Multus.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_pod_reinvoked_by_a_later_webhook_keeps_the_claims_one_address() {
    let net = setup("chain-claim", "  cidrBlock: 10.68.0.0/24").await;
    must_apply(&format!(
        "apiVersion: k8s.cni.cncf.io/v1alpha1\nkind: IPAMClaim\nmetadata: {{name: vm-a, namespace: {}}}\n\
         spec: {{network: macvlan, interface: net1}}\n",
        net.ns
    ));
    let _r = Reorderer::start(&net.client, &net.ns).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let element = format!(
        r#"[{{"name": "macvlan", "namespace": "{}", "interface": "net1", "ipam-claim-reference": "vm-a"}}]"#,
        net.ns
    );
    let a = net
        .create("vm-a-1", &[("k8s.v1.cni.cncf.io/networks", &element)])
        .await;
    let b = net
        .create("vm-a-2", &[("k8s.v1.cni.cncf.io/networks", &element)])
        .await;
    let ip = net.key("ip_address");
    assert!(a.contains_key(&ip), "{a:?}");
    assert_eq!(a.get(&ip), b.get(&ip), "both Pods have the claim's address");
    assert_eq!(
        a.get(&net.key("mac_address")),
        b.get(&net.key("mac_address"))
    );
    assert!(
        a["k8s.v1.cni.cncf.io/networks"].contains(r#""ipam-claim-reference":"vm-a""#),
        "{a:?}"
    );
    let leases = net.leases().await;
    assert_one_lease_each(&leases, 1);
    assert_eq!(leases[0].spec.claim.as_deref(), Some("vm-a"));
}
