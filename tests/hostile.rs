//! Hostile input through the real apiserver: every case is submitted with the built kubectl, must be refused
//! with a message naming the object, the field, the value and what would be valid, and must leave no IPLease
//! behind (the leases of the test's Subnets are counted before and after each case).
//!
//! Each test owns a namespace `hx-<area>-<random>` and Subnets named after it, so the suite shares the cluster
//! with every other test binary without collisions.

mod common;

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use kube::Client;
use kube::api::{Api, ListParams};
use nadipam::annotations::MAX_VALUE_BYTES;
use nadipam::annotations::keys::{
    DEFAULT_NETWORK, NETWORKS, SPIDER_IPPOOL, SPIDER_IPPOOLS, interface_key, provider_key,
};
use nadipam::api::IPLease;
use serde_json::{Value, json};

use common::server::{Server, start};
use common::{cluster, cluster_info, kubectl, test_namespace};

/// The binary's server, with its controller running (leader Lease in `default`, which exists) so that the
/// leases of deleted test Pods are released and the test Subnets can be deleted afterwards.
fn nadipam() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| start(&["--namespace", "default", "--leader-lease-seconds", "5"]))
}

/// Deletes a test's namespace (waiting for it, so its Pods are gone), then its cluster-scoped objects in
/// order, retrying while a Subnet is still refused because the controller has not released every lease yet.
/// Runs on drop, so a failing test cleans up too.
struct Cleanup {
    ns: String,
    objects: Vec<(&'static str, String)>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let kubectl = |args: &[&str]| cluster_info().kubectl().args(args).output();
        let ns = self.ns.as_str();
        let _ = kubectl(&[
            "delete",
            "namespace",
            ns,
            "--ignore-not-found",
            "--timeout=90s",
        ]);
        let deadline = Instant::now() + Duration::from_secs(90);
        for (kind, name) in self.objects.iter().rev() {
            loop {
                match kubectl(&["delete", kind, name, "--ignore-not-found", "--wait=false"]) {
                    Ok(out) if out.status.success() => break,
                    Ok(_) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(500))
                    }
                    Ok(out) => {
                        eprintln!(
                            "cleanup: deleting {kind} {name}: {}",
                            String::from_utf8_lossy(&out.stderr)
                        );
                        break;
                    }
                    Err(e) => {
                        eprintln!("cleanup: running kubectl: {e}");
                        break;
                    }
                }
            }
        }
    }
}

/// What a case submits.
enum Op {
    /// `kubectl create -f -` of this object (JSON).
    Create(Value),
    /// `kubectl patch --type merge` of a cluster-scoped object.
    Patch {
        kind: &'static str,
        name: String,
        patch: Value,
    },
    /// `kubectl patch --type merge` of a Pod.
    PatchPod {
        namespace: String,
        name: String,
        patch: Value,
    },
    /// `kubectl delete` of a cluster-scoped object.
    Delete { kind: &'static str, name: String },
}

struct Case {
    name: String,
    op: Op,
    /// Substrings the denial must contain.
    needles: Vec<String>,
    /// Who must refuse: a nadipam webhook, or the apiserver itself (the CRD's schema and CEL rules, which
    /// run before any webhook).
    by: Refuser,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Refuser {
    Webhook,
    Schema,
}

impl Refuser {
    /// The text kubectl shows for a refusal of this kind.
    fn marker(self) -> &'static str {
        match self {
            Refuser::Webhook => "denied the request",
            Refuser::Schema => "is invalid: spec",
        }
    }
}

fn case(name: &str, op: Op, needles: &[&str]) -> Case {
    Case {
        name: name.to_string(),
        op,
        needles: needles.iter().map(|s| s.to_string()).collect(),
        by: Refuser::Webhook,
    }
}

/// A case the CRD's own validation refuses (its message names the object, the field and what is valid).
fn schema_case(name: &str, op: Op, needles: &[&str]) -> Case {
    Case {
        by: Refuser::Schema,
        ..case(name, op, needles)
    }
}

fn submit(op: &Op) -> Result<String, String> {
    match op {
        Op::Create(obj) => kubectl(&["create", "-f", "-"], &obj.to_string()),
        Op::Patch { kind, name, patch } => kubectl(
            &[
                "patch",
                kind,
                name,
                "--type",
                "merge",
                "-p",
                &patch.to_string(),
            ],
            "",
        ),
        Op::PatchPod {
            namespace,
            name,
            patch,
        } => kubectl(
            &[
                "patch",
                "pod",
                name,
                "-n",
                namespace,
                "--type",
                "merge",
                "-p",
                &patch.to_string(),
            ],
            "",
        ),
        Op::Delete { kind, name } => kubectl(&["delete", kind, name, "--wait=false"], ""),
    }
}

fn must_create(obj: Value) {
    if let Err(e) = kubectl(&["create", "-f", "-"], &obj.to_string()) {
        panic!(
            "creating {obj}: {e}\n--- nadipam log\n{}",
            nadipam().log_tail()
        );
    }
}

/// Leases of every Subnet this test made (their names start with the namespace).
async fn leases(client: &Client, ns: &str) -> Vec<String> {
    let prefix = format!("{ns}-");
    Api::<IPLease>::all(client.clone())
        .list(&ListParams::default())
        .await
        .unwrap_or_else(|e| panic!("listing leases: {e}"))
        .items
        .into_iter()
        .filter(|l| l.spec.subnet.starts_with(&prefix))
        .map(|l| format!("{} ({})", l.spec.ip, l.spec.subnet))
        .collect()
}

/// Runs every case; collects every failure and panics once with all of them, so one run shows the whole
/// picture. Returns the number of cases run.
async fn run(client: &Client, ns: &str, cases: Vec<Case>) -> usize {
    let mut failures = Vec::new();
    let n = cases.len();
    for c in cases {
        let before = leases(client, ns).await;
        let outcome = submit(&c.op);
        let after = leases(client, ns).await;
        match outcome {
            Ok(out) => failures.push(format!("{}: ACCEPTED ({})", c.name, out.trim())),
            Err(msg) => {
                let missing: Vec<&String> =
                    c.needles.iter().filter(|n| !msg.contains(*n)).collect();
                if !missing.is_empty() {
                    failures.push(format!(
                        "{}: denial lacks {missing:?}\n    got: {}",
                        c.name,
                        msg.trim()
                    ));
                }
                if !msg.contains(c.by.marker()) {
                    failures.push(format!(
                        "{}: not refused as expected (by {:?}): {}",
                        c.name,
                        c.by.marker(),
                        msg.trim()
                    ));
                }
            }
        }
        if before != after {
            failures.push(format!(
                "{}: leases changed from {before:?} to {after:?}",
                c.name
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {n} hostile inputs were not handled as required:\n  {}\n--- nadipam log\n{}",
        failures.len(),
        failures.join("\n  "),
        nadipam().log_tail()
    );
    n
}

/// The webhook decides from its caches; give just-created objects time to reach them.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(500)).await;
}

fn nad(ns: &str, name: &str, config: &str) -> Value {
    json!({"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
           "metadata": {"name": name, "namespace": ns}, "spec": {"config": config}})
}

fn nadipam_nad(ns: &str, name: &str) -> Value {
    nad(
        ns,
        name,
        &format!(
            r#"{{"cniVersion":"0.3.1","type":"macvlan","master":"eth0","ipam":{{"type":"nadipam","provider":"{name}.{ns}"}}}}"#
        ),
    )
}

fn subnet(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "nadipam.io/v1", "kind": "Subnet", "metadata": {"name": name}, "spec": spec})
}

fn ippool(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "nadipam.io/v1", "kind": "IPPool", "metadata": {"name": name}, "spec": spec})
}

fn pod(ns: &str, name: &str, annotations: &[(&str, &str)]) -> Value {
    let ann: serde_json::Map<String, Value> = annotations
        .iter()
        .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
        .collect();
    json!({"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": name, "namespace": ns, "annotations": ann},
           "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}]}})
}

/// The test bed for Pod cases: NADs `macvlan`, `tiny`, `fenced` (nadipam) and `hostlocal` (another IPAM);
/// Subnets `<ns>-a` (10.77.0.0/24, gateway .1, .2-.9 excluded), `<ns>-tiny` (one assignable address, taken
/// by `tiny-holder`), `<ns>-fenced` (only for namespace hx-elsewhere);
/// IPPool `<ns>-pool` (only for hx-elsewhere); and Pod `holder` on 10.77.0.50 with MAC 02:00:00:aa:bb:cc.
struct PodBed {
    client: Client,
    ns: String,
    cleanup: Cleanup,
}

async fn pod_bed(prefix: &str) -> PodBed {
    nadipam();
    let client = cluster().await;
    let (ns, ns_guard) = test_namespace(&client, prefix).await;
    for n in ["macvlan", "tiny", "fenced"] {
        must_create(nadipam_nad(&ns, n));
    }
    must_create(nad(
        &ns,
        "hostlocal",
        r#"{"type":"macvlan","ipam":{"type":"host-local","subnet":"10.1.0.0/24"}}"#,
    ));
    let names = [
        format!("{ns}-a"),
        format!("{ns}-tiny"),
        format!("{ns}-fenced"),
    ];
    must_create(subnet(
        &names[0],
        json!({"protocol": "IPv4", "provider": format!("macvlan.{ns}"), "cidrBlock": "10.77.0.0/24",
               "gateway": "10.77.0.1", "excludeIps": ["10.77.0.2..10.77.0.9"]}),
    ));
    must_create(subnet(
        &names[1],
        json!({"protocol": "IPv4", "provider": format!("tiny.{ns}"), "cidrBlock": "10.78.0.0/30"}),
    ));
    must_create(subnet(
        &names[2],
        json!({"protocol": "IPv4", "provider": format!("fenced.{ns}"), "cidrBlock": "10.79.0.0/24",
               "namespaces": ["hx-elsewhere"]}),
    ));
    let pool = format!("{ns}-pool");
    must_create(ippool(
        &pool,
        json!({"subnet": names[0], "ips": ["10.77.0.100-10.77.0.110"], "namespaces": ["hx-elsewhere"]}),
    ));
    std::mem::forget(ns_guard);
    let mut objects: Vec<(&'static str, String)> =
        names.iter().map(|n| ("subnet", n.clone())).collect();
    objects.push(("ippool", pool));
    let cleanup = Cleanup {
        ns: ns.clone(),
        objects,
    };
    settle().await;
    let p = format!("macvlan.{ns}");
    let ip_key = provider_key(&p, "ip_address");
    let mac_key = provider_key(&p, "mac_address");
    must_create(pod(
        &ns,
        "holder",
        &[
            (NETWORKS, "macvlan"),
            (&ip_key, "10.77.0.50"),
            (&mac_key, "02:00:00:aa:bb:cc"),
        ],
    ));
    must_create(pod(&ns, "tiny-holder", &[(NETWORKS, "tiny")]));
    settle().await;
    PodBed {
        client,
        ns,
        cleanup,
    }
}

#[tokio::test]
async fn hostile_pod_annotations_are_refused_and_reserve_nothing() {
    let bed = pod_bed("hx-pod").await;
    let ns = bed.ns.as_str();
    let p = format!("macvlan.{ns}");
    let ip = provider_key(&p, "ip_address");
    let mac = provider_key(&p, "mac_address");
    let pool = provider_key(&p, "ip_pool");
    let routes = provider_key(&p, "routes");
    let ls = provider_key(&p, "logical_switch");
    let subnet_a = format!("subnet {ns}-a (10.77.0.0/24)");
    let net = format!("network {ns}/macvlan");
    let with = |name: &str, extra: &[(&str, &str)]| {
        let mut ann = vec![(NETWORKS, "macvlan")];
        ann.extend_from_slice(extra);
        Op::Create(pod(ns, name, &ann))
    };
    let nets = |name: &str, v: &str| Op::Create(pod(ns, name, &[(NETWORKS, v)]));
    let hundred: String = (1..=100)
        .map(|i| format!("macvlan@n{i}"))
        .collect::<Vec<_>>()
        .join(",");
    let huge = format!("{ns}/{}", "a".repeat(MAX_VALUE_BYTES + 4_000));
    let huge_routes = format!(
        r#"[{{"gw":"10.77.0.254","x":"{}"}}]"#,
        "r".repeat(MAX_VALUE_BYTES)
    );
    let max = MAX_VALUE_BYTES.to_string();
    let pod_of = |name: &str| format!("pod {ns}/{name}");
    let cases = vec![
        // Multus networks, text and JSON.
        case(
            "networks: truncated JSON list",
            nets("nets-trunc", r#"[{"name": "macvlan""#),
            &[
                &pod_of("nets-trunc"),
                NETWORKS,
                "is not a JSON list of network selection elements",
                "EOF while parsing",
            ],
        ),
        case(
            "networks: an object instead of a list",
            nets("nets-obj", r#"{"name": "macvlan"}"#),
            &[
                &pod_of("nets-obj"),
                NETWORKS,
                "a single object must be wrapped in [ ]",
            ],
        ),
        case(
            "networks: name is a number",
            nets("nets-num", r#"[{"name": 5}]"#),
            &[NETWORKS, "invalid type: integer `5`, expected a string"],
        ),
        case(
            "networks: element without a name",
            nets("nets-noname", &format!(r#"[{{"namespace": "{ns}"}}]"#)),
            &[NETWORKS, "[0].name", "the network's name (required)"],
        ),
        case(
            "networks: not a network reference",
            nets("nets-ref", "Mac_VLAN!"),
            &[
                NETWORKS,
                "\"Mac_VLAN!\" is not a valid network reference",
                "namespace/name@interface",
            ],
        ),
        case(
            "networks: empty entry",
            nets("nets-empty", "macvlan,,tiny"),
            &[
                NETWORKS,
                "has an empty entry",
                "separate network references with single commas",
            ],
        ),
        case(
            "networks: unknown NAD",
            nets("nets-unknown", "nosuchnet"),
            &[
                &pod_of("nets-unknown"),
                &format!("NetworkAttachmentDefinition {ns}/nosuchnet does not exist"),
                NETWORKS,
            ],
        ),
        case(
            "networks: the same network twice",
            nets("nets-dup", "macvlan, macvlan"),
            &[
                NETWORKS,
                &format!("{ns}/macvlan is attached twice without interface names"),
                "@net1",
            ],
        ),
        case(
            "networks: the same network and interface twice",
            nets("nets-dup-if", "macvlan@net1,macvlan@net1"),
            &[NETWORKS, &format!("{ns}/macvlan@net1 is listed twice")],
        ),
        case(
            "networks: two networks on one interface",
            nets("nets-clash", "macvlan@net1,tiny@net1"),
            &[
                NETWORKS,
                "interface net1 would be used by both",
                "distinct interface names",
            ],
        ),
        case(
            "networks: 100 attachments",
            nets("nets-100", &hundred),
            &[
                NETWORKS,
                "100 network attachments requested; at most 32 are accepted per Pod",
            ],
        ),
        case(
            "networks: 68 KiB value",
            nets("nets-huge", &huge),
            &[
                NETWORKS,
                &format!("is larger than the {max} bytes nadipam accepts"),
                "bytes in total)",
            ],
        ),
        case(
            "networks JSON: invalid IP in ips",
            nets(
                "nets-ips",
                r#"[{"name": "macvlan", "ips": ["10.77.0.300"]}]"#,
            ),
            &[
                NETWORKS,
                "[0].ips \"10.77.0.300\" is not valid",
                "a unicast IP address",
            ],
        ),
        case(
            "networks JSON: multicast MAC",
            nets(
                "nets-mcast",
                r#"[{"name": "macvlan", "mac": "01:00:5e:00:00:01"}]"#,
            ),
            &[
                NETWORKS,
                "\"01:00:5e:00:00:01\" is not a usable MAC address",
                "unicast MAC",
            ],
        ),
        case(
            "networks JSON: interface name too long",
            nets(
                "nets-ifname",
                r#"[{"name": "macvlan", "interface": "an-interface-too-long"}]"#,
            ),
            &[NETWORKS, "interface \"an-interface-too-long\" is not valid"],
        ),
        case(
            "networks JSON: two IPv4 default routes",
            nets(
                "nets-defroute",
                r#"[{"name": "macvlan", "default-route": ["10.77.0.1"]}, {"name": "tiny", "default-route": ["10.78.0.1"]}]"#,
            ),
            &[
                NETWORKS,
                "set an IPv4 default-route",
                "at most one attachment per address family",
            ],
        ),
        case(
            "networks JSON: ips outside the Subnet",
            nets(
                "nets-ips-out",
                r#"[{"name": "macvlan", "ips": ["10.99.0.5/24"]}]"#,
            ),
            &[
                &net,
                &format!("annotation {NETWORKS} (\"ips\" of {ns}/macvlan)"),
                "10.99.0.5 is outside",
                &subnet_a,
            ],
        ),
        case(
            "default-network: two networks",
            Op::Create(pod(ns, "defnet-two", &[(DEFAULT_NETWORK, "macvlan,tiny")])),
            &[
                DEFAULT_NETWORK,
                "names 2 networks; the default network is exactly one",
            ],
        ),
        // Kube-OVN ip_address / mac_address / ip_pool / routes / logical_switch.
        case(
            "ip_address: not an IP",
            with("ip-bad", &[(&ip, "10.77.0.256")]),
            &[
                &ip,
                "\"10.77.0.256\" is not an IP address",
                "a bare address such as 10.0.0.1",
            ],
        ),
        case(
            "ip_address: a CIDR",
            with("ip-cidr", &[(&ip, "10.77.0.20/24")]),
            &[
                &ip,
                "10.77.0.20/24 is a CIDR; give the bare address (e.g. 10.77.0.20)",
            ],
        ),
        case(
            "ip_address: IPv6 on an IPv4 Subnet",
            with("ip-v6", &[(&ip, "fd00::20")]),
            &[
                &net,
                &format!("annotation {ip}"),
                &format!("fd00::20 is outside {subnet_a}"),
                "of its address families",
            ],
        ),
        case(
            "ip_address: two IPv4 addresses",
            with("ip-two", &[(&ip, "10.77.0.20,10.77.0.21")]),
            &[
                &ip,
                "has two IPv4 addresses; dual stack is one IPv4 and one IPv6 address",
            ],
        ),
        case(
            "ip_address: outside the Subnet",
            with("ip-out", &[(&ip, "10.99.0.5")]),
            &[
                &pod_of("ip-out"),
                &net,
                &format!("annotation {ip}"),
                "10.99.0.5 is outside",
                &subnet_a,
                "inside the Subnet",
            ],
        ),
        case(
            "ip_address: excluded",
            with("ip-excl", &[(&ip, "10.77.0.5")]),
            &[
                &format!("annotation {ip}"),
                "10.77.0.5 is excluded from",
                "by excludeIps entry 10.77.0.2..10.77.0.9",
            ],
        ),
        case(
            "ip_address: the gateway",
            with("ip-gw", &[(&ip, "10.77.0.1")]),
            &[
                &format!("annotation {ip}"),
                "10.77.0.1 is the gateway of",
                "cannot be assigned to a Pod",
            ],
        ),
        case(
            "ip_address: the network address",
            with("ip-net", &[(&ip, "10.77.0.0")]),
            &[
                &format!("annotation {ip}"),
                "10.77.0.0 is the network address of",
                &subnet_a,
            ],
        ),
        case(
            "ip_address: the broadcast address",
            with("ip-bcast", &[(&ip, "10.77.0.255")]),
            &[
                &format!("annotation {ip}"),
                "10.77.0.255 is the broadcast address of",
                &subnet_a,
            ],
        ),
        case(
            "ip_address: multicast",
            with("ip-mcast", &[(&ip, "224.0.0.5")]),
            &[
                &ip,
                "\"224.0.0.5\" is a multicast address",
                "a unicast host address",
            ],
        ),
        case(
            "ip_address: loopback",
            with("ip-lo", &[(&ip, "127.0.0.1")]),
            &[&ip, "\"127.0.0.1\" is a loopback address"],
        ),
        case(
            "ip_address: held by another Pod",
            with("ip-held", &[(&ip, "10.77.0.50")]),
            &[
                &pod_of("ip-held"),
                &net,
                &format!("10.77.0.50 is held by pod {ns}/holder"),
            ],
        ),
        case(
            "ip_address.<if>: outside the Subnet",
            Op::Create(pod(
                ns,
                "ip-if-out",
                &[
                    (NETWORKS, "macvlan@net7"),
                    (&interface_key(&p, "ip_address", "net7"), "10.99.0.7"),
                ],
            )),
            &[
                &format!("annotation {}", interface_key(&p, "ip_address", "net7")),
                "10.99.0.7 is outside",
            ],
        ),
        case(
            "mac_address: not a MAC",
            with("mac-bad", &[(&mac, "zz:00:00:00:00:01")]),
            &[
                &mac,
                "\"zz:00:00:00:00:01\" is not a usable MAC address",
                "six hex octets",
            ],
        ),
        case(
            "mac_address: multicast",
            with("mac-mcast", &[(&mac, "01:00:5e:00:00:01")]),
            &[
                &mac,
                "\"01:00:5e:00:00:01\" is not a usable MAC address",
                "multicast or broadcast",
            ],
        ),
        case(
            "mac_address: broadcast",
            with("mac-bcast", &[(&mac, "ff:ff:ff:ff:ff:ff")]),
            &[&mac, "\"ff:ff:ff:ff:ff:ff\"", "multicast or broadcast"],
        ),
        case(
            "mac_address: all zero",
            with("mac-zero", &[(&mac, "00:00:00:00:00:00")]),
            &[&mac, "the all-zero MAC cannot be assigned"],
        ),
        case(
            "mac_address: held by another Pod",
            with("mac-held", &[(&mac, "02:00:00:AA:BB:CC")]),
            &[
                &net,
                &format!("MAC 02:00:00:aa:bb:cc is held by pod {ns}/holder"),
            ],
        ),
        case(
            "ip_pool: empty entry",
            with("pool-empty", &[(&pool, "10.77.0.20,,10.77.0.21")]),
            &[
                &pool,
                "has an empty entry",
                "addresses such as 10.0.0.1,10.0.0.2",
            ],
        ),
        case(
            "ip_pool: mixed families",
            with("pool-mixed", &[(&pool, "10.77.0.20,fd00::1,10.77.0.21")]),
            &[
                &pool,
                "mixes IPv4 and IPv6 addresses; separate dual-stack pairs with ';'",
            ],
        ),
        case(
            "ip_pool together with ip_address",
            with(
                "pool-conflict",
                &[(&pool, "10.77.0.20"), (&ip, "10.77.0.21")],
            ),
            &[&ip, &format!("set together with {pool}"), "not both"],
        ),
        case(
            "ip_pool: every entry taken",
            with("pool-taken", &[(&pool, "10.77.0.50")]),
            &[
                &format!("annotation {pool}"),
                "no entry of the address list (1 entry) is free",
                "10.77.0.50",
            ],
        ),
        case(
            "ip_pool: StatefulSet ordinal beyond the list",
            Op::Create({
                let mut p = pod(
                    ns,
                    "web-5",
                    &[(NETWORKS, "macvlan"), (&pool, "10.77.0.20,10.77.0.21")],
                );
                p["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": "StatefulSet",
                    "name": "web", "uid": "5f0c1d2e-0000-4000-8000-000000000005", "controller": true}]);
                p
            }),
            &[
                &pod_of("web-5"),
                &format!("annotation {pool}"),
                "StatefulSet ordinal 5 has no entry in an address list of 2 entries",
                "add entries or scale down",
            ],
        ),
        case(
            "ip_pool: names an unknown IPPool",
            with("pool-unknown", &[(&pool, "no-such-pool")]),
            &[
                &net,
                "IPPool no-such-pool named by",
                &pool,
                "does not exist",
            ],
        ),
        case(
            "routes: truncated JSON",
            with("routes-trunc", &[(&routes, r#"[{"gw": "10.77.0.254""#)]),
            &[&routes, "is not a JSON list of routes", "EOF while parsing"],
        ),
        case(
            "routes: an object",
            with("routes-obj", &[(&routes, r#"{"gw": "10.77.0.254"}"#)]),
            &[&routes, "a JSON list [...] is required"],
        ),
        case(
            "routes: misspelt field",
            with(
                "routes-dest",
                &[(&routes, r#"[{"dest": "10.1.0.0/16", "gw": "10.77.0.254"}]"#)],
            ),
            &[&routes, "unknown field `dest`", "expected `dst` or `gw`"],
        ),
        case(
            "routes: gateway not an IP",
            with("routes-gw", &[(&routes, r#"[{"gw": "10.77.0.x"}]"#)]),
            &[
                &routes,
                "[0].gw \"10.77.0.x\" is not valid",
                "a gateway IP address",
            ],
        ),
        case(
            "routes: IPv6 gateway for an IPv4 destination",
            with(
                "routes-fam",
                &[(&routes, r#"[{"dst": "10.1.0.0/16", "gw": "fd00::1"}]"#)],
            ),
            &[
                &routes,
                "[0].gw \"fd00::1\" is not valid (expected an IPv4 gateway to match dst 10.1.0.0/16)",
            ],
        ),
        case(
            "routes: 68 KiB value",
            with("routes-huge", &[(&routes, &huge_routes)]),
            &[&routes, &format!("is larger than the {max} bytes")],
        ),
        case(
            "logical_switch: not a name",
            with("ls-bad", &[(&ls, "Not_A_Subnet")]),
            &[&ls, "\"Not_A_Subnet\" is not a Subnet name"],
        ),
        case(
            "logical_switch: unknown Subnet",
            with("ls-unknown", &[(&ls, "no-such-subnet")]),
            &[
                &net,
                "Subnet no-such-subnet named by",
                &ls,
                "does not exist",
            ],
        ),
        case(
            "logical_switch: another network's Subnet",
            with("ls-foreign", &[(&ls, &format!("{ns}-tiny"))]),
            &[
                &net,
                &format!("Subnet {ns}-tiny serves provider tiny.{ns}, not macvlan.{ns}"),
            ],
        ),
        // Spiderpool.
        case(
            "spiderpool ippool: truncated JSON",
            with("sp-trunc", &[(SPIDER_IPPOOL, r#"{"ipv4": ["pool""#)]),
            &[
                SPIDER_IPPOOL,
                "is not a JSON object of pool names",
                "EOF while parsing",
            ],
        ),
        case(
            "spiderpool ippool: a list",
            with("sp-list", &[(SPIDER_IPPOOL, r#"["pool"]"#)]),
            &[SPIDER_IPPOOL, "a JSON object {...} is required"],
        ),
        case(
            "spiderpool ippool: old field name",
            with("sp-old", &[(SPIDER_IPPOOL, r#"{"ipv4pools": ["pool"]}"#)]),
            &[SPIDER_IPPOOL, "unknown field `ipv4pools`"],
        ),
        case(
            "spiderpool ippool: no pool at all",
            with("sp-none", &[(SPIDER_IPPOOL, r#"{"ipv4": []}"#)]),
            &[
                SPIDER_IPPOOL,
                "at least one pool name in \"ipv4\" or \"ipv6\"",
            ],
        ),
        case(
            "spiderpool ippool: unknown pool",
            with(
                "sp-unknown",
                &[(SPIDER_IPPOOL, r#"{"ipv4": ["no-such-pool"]}"#)],
            ),
            &[
                &net,
                "IPPool no-such-pool named by",
                SPIDER_IPPOOL,
                "does not exist",
            ],
        ),
        case(
            "spiderpool ippool: pool not for this namespace",
            with(
                "sp-ns",
                &[(SPIDER_IPPOOL, &format!(r#"{{"ipv4": ["{ns}-pool"]}}"#))],
            ),
            &[
                &net,
                &format!(
                    "namespace {ns} may not use IPPool {ns}-pool (spec.namespaces: hx-elsewhere)"
                ),
            ],
        ),
        case(
            "spiderpool ippools: truncated JSON",
            with(
                "sps-trunc",
                &[(SPIDER_IPPOOLS, r#"[{"interface": "net1","#)],
            ),
            &[SPIDER_IPPOOLS, "is not a JSON list of per-interface pools"],
        ),
        case(
            "spiderpool ippools: an object",
            with(
                "sps-obj",
                &[(SPIDER_IPPOOLS, r#"{"interface": "net1", "ipv4": ["p"]}"#)],
            ),
            &[SPIDER_IPPOOLS, "a JSON list [...] is required"],
        ),
        case(
            "spiderpool ippools: one interface twice",
            with(
                "sps-dup",
                &[(
                    SPIDER_IPPOOLS,
                    r#"[{"interface": "net1", "ipv4": ["a"]}, {"interface": "net1", "ipv4": ["b"]}]"#,
                )],
            ),
            &[
                SPIDER_IPPOOLS,
                "has more than one entry for interface net1",
                "exactly one entry",
            ],
        ),
        // Rewriting the allocation after admission.
        case(
            "UPDATE: ip_address of an admitted Pod rewritten",
            Op::PatchPod {
                namespace: ns.to_string(),
                name: "holder".into(),
                patch: json!({"metadata": {"annotations": {ip.clone(): "10.77.0.60"}}}),
            },
            &[
                &pod_of("holder"),
                &format!("annotation {ip} was written by nadipam"),
                "cannot be changed or removed (\"10.77.0.50\" → \"10.77.0.60\")",
                "delete the Pod and create it again",
            ],
        ),
        case(
            "UPDATE: reservation token removed",
            Op::PatchPod {
                namespace: ns.to_string(),
                name: "holder".into(),
                patch: json!({"metadata": {"annotations": {"nadipam.io/reservation": null}}}),
            },
            &[
                &pod_of("holder"),
                "annotation nadipam.io/reservation was written by nadipam",
                "→ (absent)",
            ],
        ),
        case(
            "UPDATE: reservation label removed",
            Op::PatchPod {
                namespace: ns.to_string(),
                name: "holder".into(),
                patch: json!({"metadata": {"labels": {"nadipam.io/reservation": null}}}),
            },
            &[
                &pod_of("holder"),
                "label nadipam.io/reservation was written by nadipam",
                "cannot be changed or removed",
                "→ (absent)",
            ],
        ),
        case(
            "UPDATE: a per-interface address added",
            Op::PatchPod {
                namespace: ns.to_string(),
                name: "holder".into(),
                patch: json!({"metadata": {"annotations": {interface_key(&p, "ip_address", "net9"): "10.77.0.61"}}}),
            },
            &[
                &format!(
                    "annotation {} was written by nadipam",
                    interface_key(&p, "ip_address", "net9")
                ),
                "(absent) → \"10.77.0.61\"",
            ],
        ),
        // Subnets and namespaces.
        case(
            "Subnet exhausted",
            nets("tiny-2", "tiny"),
            &[
                &pod_of("tiny-2"),
                &format!("network {ns}/tiny"),
                &format!(
                    "subnet {ns}-tiny (10.78.0.0/30) has no free IPv4 address (1 of 1 in use)"
                ),
            ],
        ),
        case(
            "namespace not allowed by the Subnet",
            nets("fenced", "fenced"),
            &[&format!(
                "network {ns}/fenced: namespace {ns} may not allocate from Subnet {ns}-fenced (spec.namespaces: hx-elsewhere)"
            )],
        ),
        case(
            "network of another namespace whose Subnet fences this one out",
            Op::Create(pod(ns, "cross-ns", &[(NETWORKS, &format!("{ns}/fenced"))])),
            &[&format!(
                "namespace {ns} may not allocate from Subnet {ns}-fenced"
            )],
        ),
    ];
    let n = run(&bed.client, ns, cases).await;
    eprintln!("{n} hostile Pod inputs refused");
    // What the guard must let through: labels, other annotations, Multus' network-status.
    for patch in [
        json!({"metadata": {"labels": {"team": "blue"}}}),
        json!({"metadata": {"annotations": {"k8s.v1.cni.cncf.io/network-status": "[]", "note": "x"}}}),
    ] {
        let out = submit(&Op::PatchPod {
            namespace: ns.to_string(),
            name: "holder".into(),
            patch: patch.clone(),
        });
        assert!(out.is_ok(), "{patch} was refused: {out:?}");
    }
}

#[tokio::test]
async fn hostile_nads_are_refused() {
    nadipam();
    let client = cluster().await;
    let (ns, ns_guard) = test_namespace(&client, "hx-nad").await;
    std::mem::forget(ns_guard);
    let mut cleanup = Cleanup {
        ns: ns.clone(),
        objects: Vec::new(),
    };
    let ns = ns.as_str();
    // An empty config is refused only where nadipam is asked to serve the NAD: a Subnet names "empty".
    let served = format!("{ns}-served");
    must_create(subnet(
        &served,
        json!({"provider": format!("empty.{ns}"), "cidrBlock": "10.95.0.0/24"}),
    ));
    cleanup.objects.push(("subnet", served));
    settle().await;
    let create = |name: &str, config: &str| Op::Create(nad(ns, name, config));
    let obj = |name: &str| format!("NetworkAttachmentDefinition {ns}/{name}");
    let cases = vec![
        case(
            "NAD without a provider",
            create("noprov", r#"{"type":"macvlan","ipam":{"type":"nadipam"}}"#),
            &[
                &obj("noprov"),
                "spec.config ipam.provider is missing",
                &format!("set it to \"noprov.{ns}\""),
            ],
        ),
        case(
            "Kube-OVN-type NAD without a provider",
            create(
                "ovnnoprov",
                r#"{"type":"kube-ovn","server_socket":"/run/openvswitch/kube-ovn-daemon.sock"}"#,
            ),
            &[
                &obj("ovnnoprov"),
                "spec.config provider is missing",
                &format!("\"ovnnoprov.{ns}.ovn\""),
            ],
        ),
        case(
            "NAD claiming another namespace's provider",
            create(
                "thief",
                r#"{"type":"macvlan","ipam":{"type":"nadipam","provider":"macvlan.default"}}"#,
            ),
            &[
                &obj("thief"),
                "spec.config ipam.provider \"macvlan.default\" is not this NAD's provider",
                &format!("\"thief.{ns}\""),
            ],
        ),
        case(
            "NAD claiming the shared ovn provider",
            create(
                "ovnthief",
                r#"{"type":"macvlan","ipam":{"type":"kube-ovn","provider":"ovn"}}"#,
            ),
            &[&obj("ovnthief"), "\"ovn\" is not this NAD's provider"],
        ),
        case(
            "NAD with an empty spec.config",
            create("empty", ""),
            &[
                &obj("empty"),
                "spec.config is empty",
                "put the CNI configuration in spec.config",
            ],
        ),
        case(
            "NAD with invalid JSON",
            create(
                "badjson",
                r#"{"type": "macvlan", "ipam": {"type": "nadipam""#,
            ),
            &[
                &obj("badjson"),
                "spec.config is not valid JSON",
                "expected a CNI configuration such as",
            ],
        ),
        case(
            "NAD config is a list",
            create("alist", r#"[1, "nadipam"]"#),
            &[
                &obj("alist"),
                "spec.config is a list ([1,\"nadipam\"]); expected a JSON object",
            ],
        ),
        case(
            "NAD provider is a number",
            create(
                "numprov",
                r#"{"type":"macvlan","ipam":{"type":"nadipam","provider":5}}"#,
            ),
            &[
                &obj("numprov"),
                "spec.config ipam.provider is a number (5); expected a string",
            ],
        ),
        case(
            "NAD conflist with no plugins",
            create(
                "noplugins",
                r#"{"cniVersion":"1.0.0","name":"nadipam","plugins":[]}"#,
            ),
            &[&obj("noplugins"), "spec.config plugins is an empty list"],
        ),
        case(
            "NAD without type or plugins",
            create("notype", r#"{"cniVersion":"1.0.0","name":"nadipam"}"#),
            &[
                &obj("notype"),
                "has neither \"type\" (a single plugin) nor \"plugins\"",
            ],
        ),
    ];
    let n = run(&client, ns, cases).await;
    eprintln!("{n} hostile NADs refused");
}

#[tokio::test]
async fn hostile_subnets_and_ippools_are_refused_and_in_use_subnets_are_kept() {
    let mut bed = pod_bed("hx-sub").await;
    let ns = bed.ns.clone();
    let ns = ns.as_str();
    let a = format!("{ns}-a");
    let provider = format!("macvlan.{ns}");
    let new = |name: &str, spec: Value| Op::Create(subnet(&format!("{ns}-{name}"), spec));
    let pool = |name: &str, spec: Value| Op::Create(ippool(&format!("{ns}-{name}"), spec));
    // A pool to overlap with.
    must_create(ippool(
        &format!("{ns}-p1"),
        json!({"subnet": a, "ips": ["10.77.0.120-10.77.0.130"]}),
    ));
    bed.cleanup.objects.push(("ippool", format!("{ns}-p1")));
    settle().await;
    let cases = vec![
        case(
            "Subnet overlapping another of the same provider",
            new(
                "overlap",
                json!({"protocol": "IPv4", "provider": provider, "cidrBlock": "10.77.0.128/25"}),
            ),
            &[
                &format!(
                    "Subnet {ns}-overlap: cidrBlock 10.77.0.128/25 overlaps 10.77.0.0/24 of Subnet {a}"
                ),
                "disjoint CIDRs",
            ],
        ),
        schema_case(
            "Subnet protocol IPv6 with an IPv4 CIDR",
            new(
                "proto",
                json!({"protocol": "IPv6", "provider": format!("proto.{ns}"), "cidrBlock": "10.81.0.0/24"}),
            ),
            &[
                &format!("The Subnet \"{ns}-proto\" is invalid"),
                "protocol IPv6 does not match cidrBlock 10.81.0.0/24",
                "IPv6 one IPv6 CIDR",
            ],
        ),
        schema_case(
            "Subnet protocol Dual with one CIDR",
            new(
                "dual",
                json!({"protocol": "Dual", "provider": format!("dual.{ns}"), "cidrBlock": "10.82.0.0/24"}),
            ),
            &[
                &format!("The Subnet \"{ns}-dual\" is invalid"),
                "protocol Dual does not match cidrBlock 10.82.0.0/24",
                "Dual one CIDR of each family",
            ],
        ),
        schema_case(
            "Subnet gateway outside its CIDR",
            new(
                "gw",
                json!({"protocol": "IPv4", "provider": format!("gw.{ns}"), "cidrBlock": "10.83.0.0/24", "gateway": "10.99.0.1"}),
            ),
            &[
                &format!("The Subnet \"{ns}-gw\" is invalid"),
                "gateway 10.99.0.1 must lie inside cidrBlock 10.83.0.0/24",
            ],
        ),
        schema_case(
            "Subnet CIDR not a CIDR",
            new(
                "cidr",
                json!({"protocol": "IPv4", "provider": format!("cidr.{ns}"), "cidrBlock": "10.84.0.0/33"}),
            ),
            &[
                &format!("The Subnet \"{ns}-cidr\" is invalid"),
                "spec.cidrBlock",
                "cidrBlock 10.84.0.0/33 must be one CIDR (e.g. 172.17.0.0/16)",
            ],
        ),
        schema_case(
            "Subnet excludeIps entry malformed",
            new(
                "excl",
                json!({"protocol": "IPv4", "provider": format!("excl.{ns}"), "cidrBlock": "10.85.0.0/24", "excludeIps": ["10.85.0.x"]}),
            ),
            &[
                &format!("The Subnet \"{ns}-excl\" is invalid"),
                "spec.excludeIps[0]",
                "excludeIps entry 10.85.0.x must be an IP",
            ],
        ),
        schema_case(
            "Subnet provider not a provider",
            new(
                "prov",
                json!({"protocol": "IPv4", "provider": "Bad_Provider", "cidrBlock": "10.86.0.0/24"}),
            ),
            &[
                &format!("The Subnet \"{ns}-prov\" is invalid"),
                "spec.provider",
                "provider Bad_Provider must be <nad>.<namespace>",
            ],
        ),
        case(
            "Subnet shrink: excludeIps covering a held address",
            Op::Patch {
                kind: "subnet",
                name: a.clone(),
                patch: json!({"spec": {"excludeIps": ["10.77.0.2..10.77.0.9", "10.77.0.48..10.77.0.52"]}}),
            },
            &[
                &format!("Subnet {a}: 10.77.0.50 is held by pod {ns}/holder"),
                "excluded",
                "keep the address usable or delete that Pod first",
            ],
        ),
        case(
            "Subnet shrink: gateway moved onto a held address",
            Op::Patch {
                kind: "subnet",
                name: a.clone(),
                patch: json!({"spec": {"gateway": "10.77.0.50"}}),
            },
            &[
                &format!("Subnet {a}: 10.77.0.50 is held by pod {ns}/holder"),
                "gateway",
            ],
        ),
        schema_case(
            "Subnet CIDR change while in use",
            Op::Patch {
                kind: "subnet",
                name: a.clone(),
                patch: json!({"spec": {"cidrBlock": "10.77.0.0/25"}}),
            },
            &[
                &format!("The Subnet \"{a}\" is invalid"),
                "spec.cidrBlock",
                "cidrBlock is immutable",
                "create a new Subnet to renumber",
            ],
        ),
        case(
            "Subnet delete while in use",
            Op::Delete {
                kind: "subnet",
                name: a.clone(),
            },
            &[
                &format!("Subnet {a} is in use by"),
                &format!("pod {ns}/holder"),
            ],
        ),
        case(
            "IPPool outside its Subnet",
            pool("out", json!({"subnet": a, "ips": ["10.99.0.1-10.99.0.9"]})),
            &[&format!("IPPool {ns}-out"), "spec.ips[0]", "10.99.0.1", &a],
        ),
        case(
            "IPPool overlapping another IPPool",
            pool(
                "ov",
                json!({"subnet": a, "ips": ["10.77.0.125-10.77.0.140"]}),
            ),
            &[&format!("IPPool {ns}-ov"), &format!("{ns}-p1"), "overlap"],
        ),
        case(
            "IPPool of an unknown Subnet",
            pool(
                "nosub",
                json!({"subnet": format!("{ns}-nope"), "ips": ["10.77.0.200"]}),
            ),
            &[
                &format!("IPPool {ns}-nosub: spec.subnet {ns}-nope names no Subnet"),
                "create Subnet",
            ],
        ),
        case(
            "IPPool with a reversed range",
            pool(
                "rev",
                json!({"subnet": a, "ips": ["10.77.0.90..10.77.0.80"]}),
            ),
            &[
                &format!("IPPool {ns}-rev"),
                "10.77.0.90..10.77.0.80",
                "is after its end",
            ],
        ),
        case(
            "IPPool of only the gateway",
            pool("gwonly", json!({"subnet": a, "ips": ["10.77.0.1"]})),
            &[
                &format!("IPPool {ns}-gwonly"),
                "10.77.0.1",
                "holds no address a Pod can get",
            ],
        ),
    ];
    let n = run(&bed.client, ns, cases).await;
    eprintln!("{n} hostile Subnets and IPPools refused");
}

#[tokio::test]
async fn hostile_workloads_are_refused() {
    let bed = pod_bed("hx-wl").await;
    let ns = bed.ns.as_str();
    let p = format!("macvlan.{ns}");
    let pool = provider_key(&p, "ip_pool");
    let ip = provider_key(&p, "ip_address");
    let workload = |kind: &str, name: &str, replicas: i32, ann: &[(&str, &str)]| {
        let ann: serde_json::Map<String, Value> = ann
            .iter()
            .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
            .collect();
        let mut spec = json!({
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}, "annotations": ann},
                         "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}]}},
        });
        if kind == "StatefulSet" {
            spec["serviceName"] = json!(name);
        }
        Op::Create(json!({"apiVersion": "apps/v1", "kind": kind,
                          "metadata": {"name": name, "namespace": ns}, "spec": spec}))
    };
    let cases = vec![
        case(
            "Deployment with an ip_pool shorter than its replicas",
            workload(
                "Deployment",
                "short-pool",
                3,
                &[(NETWORKS, "macvlan"), (&pool, "10.77.0.20,10.77.0.21")],
            ),
            &[&format!("Deployment {ns}/short-pool"), &pool, "3", "2"],
        ),
        case(
            "StatefulSet with an ip_pool shorter than its replicas",
            workload(
                "StatefulSet",
                "short-sts",
                3,
                &[(NETWORKS, "macvlan"), (&pool, "10.77.0.20,10.77.0.21")],
            ),
            &[&format!("StatefulSet {ns}/short-sts"), &pool, "ordinal 2"],
        ),
        case(
            "Deployment of 2 replicas with one fixed ip_address",
            workload(
                "Deployment",
                "fixed-two",
                2,
                &[(NETWORKS, "macvlan"), (&ip, "10.77.0.20")],
            ),
            &[&format!("Deployment {ns}/fixed-two"), &ip, "10.77.0.20"],
        ),
        case(
            "Deployment with malformed networks",
            workload(
                "Deployment",
                "bad-nets",
                1,
                &[(NETWORKS, r#"[{"name": "macvlan""#)],
            ),
            &[
                &format!("Deployment {ns}/bad-nets"),
                NETWORKS,
                "is not a JSON list of network selection elements",
            ],
        ),
        case(
            "Deployment with an ip_pool outside the Subnet",
            workload(
                "Deployment",
                "pool-out",
                1,
                &[(NETWORKS, "macvlan"), (&pool, "10.99.0.20")],
            ),
            &[
                &format!("Deployment {ns}/pool-out"),
                &pool,
                "10.99.0.20 is outside",
            ],
        ),
        case(
            "Deployment on a fenced Subnet",
            workload("Deployment", "fenced", 1, &[(NETWORKS, "fenced")]),
            &[
                &format!("Deployment {ns}/fenced"),
                &format!("namespace {ns} may not allocate from Subnet {ns}-fenced"),
            ],
        ),
    ];
    let n = run(&bed.client, ns, cases).await;
    eprintln!("{n} hostile workloads refused");
}

/// A second create of an existing StatefulSet Pod's name (the StatefulSet controller retrying on a stale
/// cache, or anyone allowed to create Pods there) is refused by the apiserver after admission; the lease of
/// the running Pod must stay tied to that Pod's reservation token, or the reclaimer would free an address
/// in use.
#[tokio::test]
async fn a_duplicate_create_of_a_statefulset_pod_leaves_its_lease_alone() {
    let bed = pod_bed("hx-sts").await;
    let ns = bed.ns.as_str();
    let pool = provider_key(&format!("macvlan.{ns}"), "ip_pool");
    must_create(json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "web", "namespace": ns},
        "spec": {"replicas": 1, "serviceName": "web", "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"},
                                           "annotations": {NETWORKS: "macvlan", pool.clone(): "10.77.0.30,10.77.0.31"}},
                              "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}]}}}}));
    let pods = Api::<k8s_openapi::api::core::v1::Pod>::namespaced(bed.client.clone(), ns);
    let web0 = common::wait_for("web-0", Duration::from_secs(30), || {
        let pods = pods.clone();
        async move {
            pods.get_opt("web-0")
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| "not yet".to_string())
        }
    })
    .await;
    let token = web0
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get("nadipam.io/reservation"))
        .cloned()
        .expect("web-0 carries a reservation");
    let sts_uid =
        Api::<k8s_openapi::api::apps::v1::StatefulSet>::namespaced(bed.client.clone(), ns)
            .get("web")
            .await
            .expect("statefulset")
            .metadata
            .uid
            .expect("uid");
    let mut again = pod(
        ns,
        "web-0",
        &[(NETWORKS, "macvlan"), (&pool, "10.77.0.30,10.77.0.31")],
    );
    again["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": "StatefulSet",
        "name": "web", "uid": sts_uid, "controller": true}]);
    let out = submit(&Op::Create(again));
    assert!(
        out.as_ref()
            .is_err_and(|e| e.contains("is held by pod") && e.contains("web-0, which still exists")),
        "{out:?}"
    );
    let lease = Api::<IPLease>::all(bed.client.clone())
        .get(&format!("{ns}-a.10.77.0.30"))
        .await
        .expect("web-0's lease");
    assert_eq!(
        lease.spec.token, token,
        "the refused duplicate re-tokened the running Pod's lease"
    );
}
