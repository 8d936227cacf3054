//! The lease lifecycle controller on the real control plane (kube-controller-manager runs the Deployment,
//! StatefulSet, Job and garbage-collector controllers; there is no kubelet, so Pods stay Pending unless a
//! test writes their status): binding, release on delete / scale-down / completion, StatefulSet address
//! stickiness, reclaim of reservations whose Pod was rejected, status, Events, and a controller killed and
//! restarted mid-scale.
//!
//! One nadipam-server serves the whole binary (`--reclaim-after 5` so reclaim fits the test budget). The
//! restart test kills it with SIGKILL and starts a new one; it holds [`GATE`] exclusively meanwhile.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::routing::post;
use common::server::{Server, start};
use common::{DeleteOnDrop, cluster, register_pod_validator, serve_tls, test_namespace};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::api::events::v1::Event as K8sEvent;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview};
use kube::{Client, ResourceExt};
use nadipam::api::{IPLease, IPPool, LeasePhase, OwnerKind, Subnet};
use serde_json::json;
use tokio::sync::RwLock;

/// Flags of every server this binary starts: the default lifecycle (no binds), the Lease in `default` (which
/// exists), a short reclaim window, and a short leader Lease so a SIGKILLed leader is replaced quickly.
const FLAGS: &[&str] = &[
    "--namespace",
    "default",
    "--reclaim-after",
    "5",
    "--leader-lease-seconds",
    "5",
];
const RECLAIM_AFTER: Duration = Duration::from_secs(5);
const WAIT: Duration = Duration::from_secs(60);

static SERVER: Mutex<Option<Server>> = Mutex::new(None);
/// Shared by tests that need the server up; taken exclusively by the test that kills it.
static GATE: RwLock<()> = RwLock::const_new(());

/// Whether the process runs (a SIGKILLed child stays a zombie until reaped, so look at its state).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            stat.rsplit_once(") ")
                .map(|(_, rest)| !rest.starts_with('Z'))
        })
        .unwrap_or(false)
}

/// Starts the binary's server, or a new one when a failed restart test left it dead.
fn ensure_server() {
    let mut s = SERVER.lock().unwrap_or_else(|p| p.into_inner());
    if s.as_ref().is_none_or(|s| !alive(s.pid())) {
        *s = Some(start(FLAGS));
    }
}

fn server_log() -> String {
    SERVER
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .as_ref()
        .map(Server::log_tail)
        .unwrap_or_default()
}

fn server_metrics() -> String {
    SERVER
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .as_ref()
        .map(Server::metrics)
        .unwrap_or_default()
}

/// SIGKILL: no graceful shutdown, the leader Lease is not released, in-flight work is cut off.
fn kill(server: &Server) {
    let pid = server.pid();
    let out = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .output()
        .expect("running kill");
    assert!(out.status.success(), "kill -9 {pid}: {out:?}");
}

/// Kills the binary's server.
fn kill_server() {
    let s = SERVER.lock().unwrap_or_else(|p| p.into_inner());
    kill(s.as_ref().expect("a running server"));
}

/// Makes `server` the binary's server (the old one is already dead or left to stand by).
fn replace_server(server: Server) -> Option<Server> {
    SERVER
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .replace(server)
}

/// Polls `check` every `every` until it returns Ok, or panics naming `what`, the last state and the server
/// log.
async fn eventually<T, F, Fut>(what: &str, timeout: Duration, every: Duration, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    common::poll(timeout, every, check)
        .await
        .unwrap_or_else(|last| {
            panic!(
                "timed out after {timeout:?} waiting for {what}; last state: {last}\n--- nadipam log\n{}",
                server_log()
            )
        })
}

async fn wait<T, F, Fut>(what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    eventually(what, WAIT, Duration::from_millis(200), check).await
}

/// A namespace with its own macvlan NAD (IPAM nadipam) and Subnet.
struct Net {
    client: Client,
    ns: String,
    subnet: String,
    provider: String,
    _ns_guard: DeleteOnDrop,
    _subnet_guard: DeleteOnDrop,
}

async fn setup(prefix: &str, cidr: &str) -> Net {
    let client = cluster().await;
    let (ns, ns_guard) = test_namespace(&client, prefix).await;
    let m = common::net::macvlan(&client, &ns, cidr).await;
    Net {
        client,
        ns,
        subnet: m.subnet,
        provider: m.provider,
        _ns_guard: ns_guard,
        _subnet_guard: m.guard,
    }
}

impl Net {
    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    fn leases_api(&self) -> Api<IPLease> {
        Api::all(self.client.clone())
    }

    async fn leases(&self) -> Result<Vec<IPLease>, String> {
        self.leases_api()
            .list(&ListParams::default().labels(&format!("nadipam.io/subnet={}", self.subnet)))
            .await
            .map(|l| l.items)
            .map_err(|e| format!("listing leases: {e}"))
    }

    async fn pods_labelled(&self, selector: &str) -> Result<Vec<Pod>, String> {
        self.pods()
            .list(&ListParams::default().labels(selector))
            .await
            .map(|l| l.items)
            .map_err(|e| format!("listing pods: {e}"))
    }

    fn ip_key(&self) -> String {
        format!("{}.kubernetes.io/ip_address", self.provider)
    }

    /// Pod template annotations asking for the NAD, plus `extra`.
    fn template_annotations(&self, extra: &[(&str, &str)]) -> BTreeMap<String, String> {
        let mut a = BTreeMap::from([(
            "k8s.v1.cni.cncf.io/networks".to_string(),
            "macvlan".to_string(),
        )]);
        for (k, v) in extra {
            a.insert((*k).to_string(), (*v).to_string());
        }
        a
    }

    /// Waits until the Subnet's leases are exactly one per Pod matching `selector`, each held by its Pod
    /// (see [`check_held`]) and carrying the address written on the Pod. Returns Pod name → address.
    async fn all_held(&self, selector: &str, count: usize) -> BTreeMap<String, String> {
        wait(
            &format!("{count} Pods ({selector}) each holding one lease"),
            || async {
                let pods = self.pods_labelled(selector).await?;
                let leases = self.leases().await?;
                check_held(&pods, &leases, &self.ip_key(), count)
            },
        )
        .await
    }

    /// Waits until the apiserver calls the newly registered webhook: a dry-run Pod comes back with an
    /// address (and, being a dry run, reserves nothing).
    async fn webhook_answers(&self) {
        let key = self.ip_key();
        let dry = PostParams {
            dry_run: true,
            field_manager: None,
        };
        wait("the apiserver to call the new server's webhook", || async {
            match self
                .pods()
                .create(&dry, &pod(self, "probe", &[], &[]))
                .await
            {
                Ok(p) if p.annotations().contains_key(&key) => Ok(()),
                other => Err(format!("{other:?}")),
            }
        })
        .await;
    }

    /// Deletes the namespace, waits until the controller has released every lease of the Subnet, then lets
    /// the guards remove the Subnet.
    async fn teardown(self) {
        Api::<Namespace>::all(self.client.clone())
            .delete(&self.ns, &DeleteParams::default())
            .await
            .unwrap_or_else(|e| panic!("deleting namespace {}: {e}", self.ns));
        wait(
            "every lease released after the namespace was deleted",
            || async {
                let leases = self.leases().await?;
                if leases.is_empty() {
                    Ok(())
                } else {
                    Err(format!(
                        "{} leases left: {:?}",
                        leases.len(),
                        names(&leases)
                    ))
                }
            },
        )
        .await;
    }
}

fn names(leases: &[IPLease]) -> Vec<String> {
    leases.iter().map(ResourceExt::name_any).collect()
}

fn token(pod: &Pod) -> Option<&str> {
    pod.annotations()
        .get("nadipam.io/reservation")
        .map(String::as_str)
}

/// Whether `lease` is held by `pod`, which carries its token: as the webhook wrote it (Reserved, the Pod's
/// name when it had one at admission, no UID: the server binds no lease by default), or Bound to the Pod's
/// name and UID.
fn held_by(l: &IPLease, pod: &Pod) -> bool {
    let name = pod.name_any();
    match l.spec.phase {
        LeasePhase::Reserved => {
            l.spec.pod_uid.is_none() && l.spec.pod_name.as_ref().is_none_or(|n| *n == name)
        }
        LeasePhase::Bound => {
            l.spec.pod_uid == pod.uid() && l.spec.pod_name.as_deref() == Some(name.as_str())
        }
    }
}

fn check_held(
    pods: &[Pod],
    leases: &[IPLease],
    ip_key: &str,
    count: usize,
) -> Result<BTreeMap<String, String>, String> {
    let live: Vec<&Pod> = pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect();
    if live.len() != count {
        return Err(format!("{} Pods", live.len()));
    }
    let mut out = BTreeMap::new();
    for p in live {
        let name = p.name_any();
        let Some(t) = token(p) else {
            return Err(format!("pod {name} has no reservation token"));
        };
        let mine: Vec<&IPLease> = leases.iter().filter(|l| l.spec.token == t).collect();
        let [l] = mine.as_slice() else {
            return Err(format!("pod {name} has {} leases", mine.len()));
        };
        if !held_by(l, p) {
            return Err(format!(
                "lease {} of pod {name} ({:?}) is {:?} for {:?}/{:?}",
                l.name_any(),
                p.uid(),
                l.spec.phase,
                l.spec.pod_name,
                l.spec.pod_uid
            ));
        }
        let ip = p.annotations().get(ip_key).cloned().unwrap_or_default();
        if ip != l.spec.ip {
            return Err(format!(
                "pod {name} says {ip} but its lease holds {}",
                l.spec.ip
            ));
        }
        out.insert(name, ip);
    }
    if leases.len() != count {
        return Err(format!(
            "{} leases for {count} Pods: {:?}",
            leases.len(),
            names(leases)
        ));
    }
    Ok(out)
}

async fn scale<K>(api: &Api<K>, name: &str, replicas: i32)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": replicas}})),
    )
    .await
    .unwrap_or_else(|e| panic!("scaling {name} to {replicas}: {e}"));
}

fn deployment(net: &Net, name: &str, replicas: i32, labels: &[(&str, &str)]) -> Deployment {
    let mut pod_labels = BTreeMap::from([("app", name)]);
    pod_labels.extend(labels.iter().copied());
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": pod_labels, "annotations": net.template_annotations(&[])},
                "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}],
                         "terminationGracePeriodSeconds": 0}
            }
        }
    }))
    .expect("deployment literal")
}

/// A StatefulSet `name` (Pods labelled `app: <name>`) whose Pod template carries `annotations`.
fn statefulset(name: &str, replicas: i32, annotations: &BTreeMap<String, String>) -> StatefulSet {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "serviceName": name,
            // No kubelet: Pods never get Ready, so create and delete them without waiting on each other.
            "podManagementPolicy": "Parallel",
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}, "annotations": annotations},
                "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}],
                         "terminationGracePeriodSeconds": 0}
            }
        }
    }))
    .expect("statefulset literal")
}

/// The Events in `ns` about `object` with `reason`.
async fn events(client: &Client, ns: &str, object: &str, reason: &str) -> Vec<K8sEvent> {
    Api::<K8sEvent>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .unwrap_or_else(|e| panic!("listing events in {ns}: {e}"))
        .items
        .into_iter()
        .filter(|e| {
            e.reason.as_deref() == Some(reason)
                && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(object)
        })
        .collect()
}

fn stats(mut v: Vec<Duration>) -> String {
    v.sort();
    let ms = |d: &Duration| d.as_millis();
    format!(
        "n={} min={}ms median={}ms max={}ms",
        v.len(),
        ms(&v[0]),
        ms(&v[v.len() / 2]),
        ms(&v[v.len() - 1])
    )
}

#[tokio::test]
async fn deployment_leases_are_held_by_their_token_and_follow_scale_and_delete() {
    let _gate = GATE.read().await;
    ensure_server();
    let net = setup("lc-deploy", "10.61.0.0/24").await;
    let deployments: Api<Deployment> = Api::namespaced(net.client.clone(), &net.ns);
    deployments
        .create(&PostParams::default(), &deployment(&net, "web", 20, &[]))
        .await
        .expect("create deployment");
    let started = Instant::now();
    let ips = net.all_held("app=web", 20).await;
    eprintln!(
        "[measure] 20 Pods created, each holding its lease, in {:?}",
        started.elapsed()
    );
    assert_eq!(
        ips.values().collect::<BTreeSet<_>>().len(),
        20,
        "duplicate addresses: {ips:?}"
    );

    // Status: 253 assignable in a /24 (gateway .1), 20 in use.
    let subnets: Api<Subnet> = Api::all(net.client.clone());
    wait("Subnet status 20 used / 233 available", || async {
        let s = subnets.get(&net.subnet).await.map_err(|e| e.to_string())?;
        let st = s.status.unwrap_or_default();
        if (st.v4_using_ips, st.v4_available_ips) == (20.0, 233.0)
            && st.protocol == Some(nadipam::api::Protocol::Ipv4)
            && st
                .conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
        {
            Ok(())
        } else {
            Err(format!("{st:?}"))
        }
    })
    .await;

    // The printer columns read the status: the protocol the Subnet leaves out is shown as inferred.
    let table = common::kubectl(&["get", "nsub", &net.subnet, "--no-headers"], "")
        .unwrap_or_else(|e| panic!("kubectl get nsub {}: {e}", net.subnet));
    let columns: Vec<&str> = table.split_whitespace().collect();
    assert_eq!(
        columns.get(1..6),
        Some(&[net.provider.as_str(), "IPv4", "10.61.0.0/24", "20", "233"][..]),
        "kubectl get nsub {}: {table}",
        net.subnet
    );

    // Nothing is written after admission: no bind, no Allocated Event (both only with --bind-leases /
    // --allocation-events; unit tests cover their text and patch).
    let leases = net.leases().await.expect("leases");
    assert!(
        leases
            .iter()
            .all(|l| l.spec.phase == LeasePhase::Reserved && l.spec.pod_uid.is_none()),
        "a lease was bound: {leases:?}"
    );
    let (pod, _) = ips.iter().next().expect("a pod");
    assert_eq!(
        events(&net.client, &net.ns, pod, "Allocated").await.len(),
        0,
        "an Allocated Event without --allocation-events"
    );

    // Pod delete → lease gone: the address can be handed out again.
    let mut latencies = Vec::new();
    for _ in 0..5 {
        let pods = net.pods_labelled("app=web").await.expect("pods");
        let victim = pods
            .iter()
            .find(|p| p.metadata.deletion_timestamp.is_none())
            .expect("a pod");
        let t = token(victim).expect("token").to_string();
        let leases = net.leases().await.expect("leases");
        let lease = leases
            .iter()
            .find(|l| l.spec.token == t)
            .expect("its lease")
            .name_any();
        let t0 = Instant::now();
        net.pods()
            .delete(&victim.name_any(), &DeleteParams::default().grace_period(0))
            .await
            .expect("delete pod");
        eventually(
            &format!("lease {lease} released after its pod was deleted"),
            Duration::from_secs(20),
            Duration::from_millis(10),
            || async {
                match net.leases_api().get_opt(&lease).await {
                    Ok(None) => Ok(()),
                    Ok(Some(l)) => Err(format!("still {:?}", l.spec.phase)),
                    Err(e) => Err(e.to_string()),
                }
            },
        )
        .await;
        latencies.push(t0.elapsed());
    }
    eprintln!(
        "[measure] pod delete → lease gone (address reusable): {}",
        stats(latencies)
    );
    net.all_held("app=web", 20).await;

    scale(&deployments, "web", 5).await;
    net.all_held("app=web", 5).await;

    deployments
        .delete("web", &DeleteParams::background())
        .await
        .expect("delete deployment");
    wait(
        "every lease released after the Deployment was deleted",
        || async {
            let pods = net.pods_labelled("app=web").await?;
            let leases = net.leases().await?;
            if pods.is_empty() && leases.is_empty() {
                Ok(())
            } else {
                Err(format!("{} pods, {} leases", pods.len(), leases.len()))
            }
        },
    )
    .await;
    wait("Subnet status back to 0 used", || async {
        let s = subnets.get(&net.subnet).await.map_err(|e| e.to_string())?;
        let st = s.status.unwrap_or_default();
        if (st.v4_using_ips, st.v4_available_ips) == (0.0, 253.0) {
            Ok(())
        } else {
            Err(format!("{st:?}"))
        }
    })
    .await;
    let metrics = server_metrics();
    assert!(
        metrics.contains(&format!(
            "nadipam_released_leases_total{{subnet=\"{}\"}}",
            net.subnet
        )),
        "{metrics}"
    );
    net.teardown().await;
}

#[tokio::test]
async fn statefulset_keeps_ordinal_addresses_until_scaled_down_or_deleted() {
    let _gate = GATE.read().await;
    ensure_server();
    let net = setup("lc-sts", "10.62.0.0/24").await;
    let pool_key = format!("{}.kubernetes.io/ip_pool", net.provider);
    let set = statefulset(
        "web",
        3,
        &net.template_annotations(&[(&pool_key, "10.62.0.10,10.62.0.11,10.62.0.12")]),
    );
    let sets: Api<StatefulSet> = Api::namespaced(net.client.clone(), &net.ns);
    sets.create(&PostParams::default(), &set)
        .await
        .expect("create statefulset");
    let ips = net.all_held("app=web", 3).await;
    let want = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(p, ip)| ((*p).to_string(), (*ip).to_string()))
            .collect()
    };
    assert_eq!(
        ips,
        want(&[
            ("web-0", "10.62.0.10"),
            ("web-1", "10.62.0.11"),
            ("web-2", "10.62.0.12")
        ])
    );
    let leases = net.leases().await.expect("leases");
    assert!(
        leases
            .iter()
            .all(|l| l.spec.owner_kind == OwnerKind::StatefulSet
                && l.spec.pool.as_deref() == Some("ip_pool")),
        "{leases:?}"
    );
    let lease1 = leases
        .iter()
        .find(|l| l.spec.ip == "10.62.0.11")
        .expect("lease of web-1")
        .clone();

    // web-1 deleted: the StatefulSet re-creates it, and the new Pod gets the same address from the same lease.
    let old = net.pods().get("web-1").await.expect("web-1");
    net.pods()
        .delete("web-1", &DeleteParams::default().grace_period(0))
        .await
        .expect("delete web-1");
    let started = Instant::now();
    wait(
        "web-1 re-created and its lease handed to the new Pod",
        || async {
            let pod = net
                .pods()
                .get_opt("web-1")
                .await
                .map_err(|e| e.to_string())?;
            let Some(pod) = pod.filter(|p| p.uid() != old.uid()) else {
                return Err("not re-created yet".into());
            };
            let l = net
                .leases_api()
                .get(&lease1.name_any())
                .await
                .map_err(|e| e.to_string())?;
            if l.uid() != lease1.uid() {
                return Err("the lease was deleted and re-created".into());
            }
            if token(&pod) == Some(l.spec.token.as_str()) && held_by(&l, &pod) {
                Ok(())
            } else {
                Err(format!("{:?} for {:?}", l.spec.phase, l.spec.pod_uid))
            }
        },
    )
    .await;
    eprintln!(
        "[measure] StatefulSet pod re-created and re-bound to its address in {:?}",
        started.elapsed()
    );
    assert_eq!(
        net.all_held("app=web", 3).await,
        ips,
        "same addresses after re-creation"
    );

    scale(&sets, "web", 1).await;
    let left = net.all_held("app=web", 1).await;
    assert_eq!(left, want(&[("web-0", "10.62.0.10")]));

    sets.delete("web", &DeleteParams::background())
        .await
        .expect("delete statefulset");
    wait(
        "every lease released after the StatefulSet was deleted",
        || async {
            let leases = net.leases().await?;
            let pods = net.pods_labelled("app=web").await?;
            if leases.is_empty() && pods.is_empty() {
                Ok(())
            } else {
                Err(format!("{} pods, leases {:?}", pods.len(), names(&leases)))
            }
        },
    )
    .await;
    net.teardown().await;
}

#[tokio::test]
async fn a_second_create_of_a_live_statefulset_pod_leaves_its_address_alone() {
    let _gate = GATE.read().await;
    ensure_server();
    let net = setup("lc-sts-dup", "10.66.0.0/24").await;
    let pool_key = format!("{}.kubernetes.io/ip_pool", net.provider);
    let annotations = net.template_annotations(&[(&pool_key, "10.66.0.10")]);
    let set = statefulset("db", 1, &annotations);
    let sets: Api<StatefulSet> = Api::namespaced(net.client.clone(), &net.ns);
    let set = sets
        .create(&PostParams::default(), &set)
        .await
        .expect("create statefulset");
    let before = net.all_held("app=db", 1).await;
    assert_eq!(before.get("db-0").map(String::as_str), Some("10.66.0.10"));

    // The create a StatefulSet controller sends for db-0 when its cache has not seen db-0 yet: admission runs
    // before the name is found taken. It must not move db-0's lease to a Pod that can never be stored.
    let dup: Pod = serde_json::from_value(json!({
        "metadata": {
            "name": "db-0", "labels": {"app": "db"}, "annotations": annotations,
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "db",
                                 "uid": set.uid(), "controller": true, "blockOwnerDeletion": true}]
        },
        "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}]}
    }))
    .expect("pod literal");
    let err = net
        .pods()
        .create(&PostParams::default(), &dup)
        .await
        .expect_err("db-0 exists");
    assert!(
        err.to_string().contains(&format!(
            "10.66.0.10 is held by pod {}/db-0, which still exists",
            net.ns
        )),
        "{err}"
    );
    // db-0 keeps its lease, bound and under its own token.
    assert_eq!(net.all_held("app=db", 1).await, before);

    sets.delete("db", &DeleteParams::background())
        .await
        .expect("delete statefulset");
    net.teardown().await;
}

#[tokio::test]
async fn completed_job_pods_release_their_addresses_while_they_still_exist() {
    let _gate = GATE.read().await;
    ensure_server();
    let net = setup("lc-job", "10.63.0.0/24").await;
    let pool_name = format!("{}-pool", net.ns);
    let pool: IPPool = serde_json::from_value(json!({
        "apiVersion": "nadipam.io/v1", "kind": "IPPool",
        "metadata": {"name": pool_name},
        "spec": {"subnet": net.subnet, "ips": ["10.63.0.100-10.63.0.103"]}
    }))
    .expect("IPPool literal");
    let pools: Api<IPPool> = Api::all(net.client.clone());
    pools
        .create(&PostParams::default(), &pool)
        .await
        .expect("create IPPool");
    let _pool_guard = DeleteOnDrop::new("ippool", &pool_name, None);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pool_status = |total: i64, allocated: i64| {
        let pools = pools.clone();
        let pool_name = pool_name.clone();
        async move {
            wait(
                &format!("IPPool {pool_name} status {allocated}/{total}"),
                || async {
                    let p = pools.get(&pool_name).await.map_err(|e| e.to_string())?;
                    let st = p.status.unwrap_or_default();
                    if (st.total_ip_count, st.allocated_ip_count) == (total, allocated) {
                        Ok(())
                    } else {
                        Err(format!("{st:?}"))
                    }
                },
            )
            .await
        }
    };
    pool_status(4, 0).await;

    let pool_key = format!("{}.kubernetes.io/ip_pool", net.provider);
    let job: Job = serde_json::from_value(json!({
        "metadata": {"name": "batch"},
        "spec": {
            "parallelism": 2, "completions": 2, "backoffLimit": 0,
            "template": {
                "metadata": {"labels": {"app": "batch"},
                             "annotations": net.template_annotations(&[(&pool_key, &pool_name)])},
                "spec": {"restartPolicy": "Never",
                         "containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}]}
            }
        }
    }))
    .expect("job literal");
    let jobs: Api<Job> = Api::namespaced(net.client.clone(), &net.ns);
    jobs.create(&PostParams::default(), &job)
        .await
        .expect("create job");
    let ips = net.all_held("app=batch", 2).await;
    assert!(
        ips.values().all(|ip| ip.starts_with("10.63.0.10")),
        "addresses outside the pool: {ips:?}"
    );
    pool_status(4, 2).await;

    for pod in ips.keys() {
        net.pods()
            .patch_status(
                pod,
                &PatchParams::default(),
                &Patch::Merge(json!({"status": {"phase": "Succeeded"}})),
            )
            .await
            .unwrap_or_else(|e| panic!("marking pod {pod} Succeeded: {e}"));
    }
    wait("leases of the finished Pods released", || async {
        let leases = net.leases().await?;
        if leases.is_empty() {
            Ok(())
        } else {
            Err(format!("{:?}", names(&leases)))
        }
    })
    .await;
    for pod in ips.keys() {
        let p = net
            .pods()
            .get_opt(pod)
            .await
            .expect("get pod")
            .unwrap_or_else(|| panic!("pod {pod} should still exist"));
        assert_eq!(p.status.and_then(|s| s.phase).as_deref(), Some("Succeeded"));
        let released = events(&net.client, &net.ns, pod, "Released").await;
        assert!(
            released
                .iter()
                .any(|e| e.note.as_deref().is_some_and(|n| n.ends_with(&format!(
                    "pod {}/{pod} has finished (phase Succeeded)",
                    net.ns
                )))),
            "no Released event on {pod}: {released:?}"
        );
    }
    pool_status(4, 0).await;
    net.teardown().await;
}

/// Label of the Pods the test's validating webhook looks at.
const DENY: &str = "lifecycle.nadipam.io/deny";
const DENIED: &str = "denied by the lifecycle test webhook";

async fn deny(
    State(closed): State<Arc<AtomicBool>>,
    Json(review): Json<AdmissionReview<DynamicObject>>,
) -> Json<AdmissionReview<DynamicObject>> {
    let response = match TryInto::<AdmissionRequest<DynamicObject>>::try_into(review) {
        Ok(req) if closed.load(Ordering::SeqCst) => AdmissionResponse::from(&req).deny(DENIED),
        Ok(req) => AdmissionResponse::from(&req),
        Err(e) => AdmissionResponse::invalid(e.to_string()),
    };
    Json(response.into_review())
}

/// A validating webhook of the test (the apiserver calls it after every mutating one) for the Pods labelled
/// [`DENY`] in one namespace: it denies them while closed.
struct Denier {
    closed: Arc<AtomicBool>,
    handle: axum_server::Handle<std::net::SocketAddr>,
    _guard: DeleteOnDrop,
}

impl Denier {
    /// Registers the webhook and returns once the apiserver calls it, closed.
    async fn start(net: &Net) -> Denier {
        let closed = Arc::new(AtomicBool::new(true));
        let app = axum::Router::new()
            .route("/validate", post(deny))
            .with_state(closed.clone());
        let (port, handle) = serve_tls(app).await;
        let name = format!("lifecycle-deny-{}", net.ns);
        let guard = register_pod_validator(&net.client, &name, port, &net.ns, DENY, 5).await;

        // Until the apiserver has picked the configuration up, probe with Pods nadipam ignores (no network).
        let mut probes = 0;
        wait(
            "the apiserver to call the test's validating webhook",
            || {
                probes += 1;
                let p: Pod = serde_json::from_value(json!({
                    "metadata": {"name": format!("probe-{probes}"), "labels": {DENY: "true"}},
                    "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}]}
                }))
                .expect("probe literal");
                let pods = net.pods();
                async move {
                    match pods.create(&PostParams::default(), &p).await {
                        Err(e) if e.to_string().contains(DENIED) => Ok(()),
                        other => Err(format!("{other:?}")),
                    }
                }
            },
        )
        .await;
        Denier {
            closed,
            handle,
            _guard: guard,
        }
    }

    fn set_closed(&self, closed: bool) {
        self.closed.store(closed, Ordering::SeqCst);
    }
}

impl Drop for Denier {
    fn drop(&mut self) {
        self.handle.shutdown();
    }
}

fn pod(net: &Net, name: &str, labels: &[(&str, &str)], extra: &[(&str, &str)]) -> Pod {
    let labels: BTreeMap<&str, &str> = labels.iter().copied().collect();
    let mut meta = json!({"labels": labels, "annotations": net.template_annotations(extra)});
    if let Some(prefix) = name.strip_suffix('*') {
        meta["generateName"] = json!(prefix);
    } else {
        meta["name"] = json!(name);
    }
    serde_json::from_value(json!({
        "metadata": meta,
        "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}]}
    }))
    .expect("pod literal")
}

#[tokio::test]
async fn rejected_pods_leases_are_reclaimed_and_dry_runs_leave_none() {
    let _gate = GATE.read().await;
    ensure_server();
    let net = setup("lc-orphan", "10.64.0.0/24").await;
    let _denier = Denier::start(&net).await;

    // nadipam's mutating webhook reserves an address, then the validating webhook rejects the Pod.
    let err = net
        .pods()
        .create(
            &PostParams::default(),
            &pod(&net, "rejected-*", &[(DENY, "true")], &[]),
        )
        .await
        .expect_err("the pod must be rejected");
    let rejected_at = Instant::now();
    assert!(err.to_string().contains(DENIED), "{err}");
    let leases = net.leases().await.expect("leases");
    let [orphan] = leases.as_slice() else {
        panic!("expected one orphaned reservation, got {leases:?}");
    };
    assert_eq!(orphan.spec.phase, LeasePhase::Reserved);
    assert_eq!(orphan.spec.pod_name, None, "generateName Pod: no name yet");
    let orphan_name = orphan.name_any();
    eventually(
        "the orphaned reservation to be reclaimed",
        RECLAIM_AFTER + Duration::from_secs(30),
        Duration::from_millis(50),
        || async {
            match net.leases_api().get_opt(&orphan_name).await {
                Ok(None) => Ok(()),
                Ok(Some(l)) => Err(format!("still {:?}", l.spec.phase)),
                Err(e) => Err(e.to_string()),
            }
        },
    )
    .await;
    let latency = rejected_at.elapsed();
    eprintln!(
        "[measure] reclaim latency: {latency:?} after rejection (reclaim window {RECLAIM_AFTER:?})"
    );
    assert!(
        latency >= RECLAIM_AFTER - Duration::from_millis(500),
        "reclaimed after {latency:?}, inside the {RECLAIM_AFTER:?} window"
    );
    let metrics = server_metrics();
    assert!(
        metrics.contains(&format!(
            "nadipam_reclaimed_leases_total{{subnet=\"{}\"}} 1",
            net.subnet
        )),
        "{metrics}"
    );
    // Cluster-scoped lease: its Events live in `default`.
    wait("a Reclaimed Warning on the lease", || async {
        let found = events(&net.client, "default", &orphan_name, "Reclaimed").await;
        match found.first() {
            Some(e)
                if e.type_.as_deref() == Some("Warning")
                    && e.note.as_deref().is_some_and(|n| {
                        n.contains(&format!("for a pod in namespace {}", net.ns))
                            && n.contains("and no pod carries it")
                    }) =>
            {
                Ok(())
            }
            other => Err(format!("{other:?}")),
        }
    })
    .await;

    // A dry run is answered with addresses but reserves nothing.
    let dry = net
        .pods()
        .create(
            &PostParams {
                dry_run: true,
                field_manager: None,
            },
            &pod(&net, "dry", &[], &[]),
        )
        .await
        .expect("dry-run create");
    assert!(
        dry.annotations().contains_key(&net.ip_key()),
        "{:?}",
        dry.annotations()
    );
    // A Pod nadipam itself denies (address outside the Subnet) leaves nothing either.
    let ip_key = net.ip_key();
    let err = net
        .pods()
        .create(
            &PostParams::default(),
            &pod(&net, "outside", &[], &[(&ip_key, "10.99.0.5")]),
        )
        .await
        .expect_err("an address outside the subnet is denied");
    assert!(err.to_string().contains("10.99.0.5"), "{err}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let leases = net.leases().await.expect("leases");
    assert!(leases.is_empty(), "leases left behind: {leases:?}");

    net.teardown().await;
}

#[tokio::test]
async fn controller_killed_mid_scale_converges_without_leaks_or_duplicates() {
    let _gate = GATE.write().await;
    ensure_server();
    let net = setup("lc-restart", "10.65.0.0/24").await;
    // The harness drops every registration before a new server registers its own; Pods created in that gap
    // would skip nadipam. This webhook refuses them meanwhile (the ReplicaSet retries), as the Service in
    // front of surviving replicas would in a real cluster.
    let denier = Denier::start(&net).await;
    denier.set_closed(false);
    let deployments: Api<Deployment> = Api::namespaced(net.client.clone(), &net.ns);
    deployments
        .create(
            &PostParams::default(),
            &deployment(&net, "web", 10, &[(DENY, "true")]),
        )
        .await
        .expect("create deployment");
    net.all_held("app=web", 10).await;

    // A second replica: from now on it serves the webhook (starting it replaces the registrations), while the
    // first one still leads. Scale down and SIGKILL the leader at once: the Pods go while no controller
    // runs, until the standby's election notices the dead leader's Lease has expired.
    denier.set_closed(true);
    let standby = start(FLAGS);
    net.webhook_answers().await;
    denier.set_closed(false);
    scale(&deployments, "web", 3).await;
    let killed = Instant::now();
    kill_server();
    let first = replace_server(standby);
    wait("the ReplicaSet to delete 7 Pods", || async {
        let n = net.pods_labelled("app=web").await?.len();
        if n == 3 {
            Ok(())
        } else {
            Err(format!("{n} Pods"))
        }
    })
    .await;
    net.all_held("app=web", 3).await;
    eprintln!(
        "[measure] leader SIGKILLed: the standby took over and released the 7 leases {:?} after the kill \
         (leader Lease 5s)",
        killed.elapsed()
    );
    drop(first);

    // Scale up and SIGKILL the only replica while new Pods are being admitted and bound, then start a new
    // one: admissions cut off may leave reservations without Pods, Pods may be left unbound.
    scale(&deployments, "web", 12).await;
    eventually(
        "new Pods to get leases",
        WAIT,
        Duration::from_millis(20),
        || async {
            let n = net.leases().await?.len();
            if n > 3 {
                Ok(())
            } else {
                Err(format!("{n} leases"))
            }
        },
    )
    .await;
    kill_server();
    denier.set_closed(true);
    let mid = net.leases().await.expect("leases");
    eprintln!(
        "[measure] killed mid-scale with {} leases ({} Bound)",
        mid.len(),
        mid.iter()
            .filter(|l| l.spec.phase == LeasePhase::Bound)
            .count()
    );
    let restarted = Instant::now();
    replace_server(start(FLAGS));
    net.webhook_answers().await;
    denier.set_closed(false);
    let ips = eventually(
        "12 Pods holding exactly one lease each, nothing leaked",
        Duration::from_secs(90),
        Duration::from_millis(250),
        || async {
            let pods = net.pods_labelled("app=web").await?;
            let leases = net.leases().await?;
            check_held(&pods, &leases, &net.ip_key(), 12)
        },
    )
    .await;
    eprintln!(
        "[measure] converged after the mid-scale kill in {:?} after the restart",
        restarted.elapsed()
    );
    assert_eq!(
        ips.values().collect::<BTreeSet<_>>().len(),
        12,
        "duplicate addresses: {ips:?}"
    );
    // Still consistent once any reservation of an admission the kill cut off has had time to be reclaimed.
    tokio::time::sleep(RECLAIM_AFTER + Duration::from_secs(2)).await;
    let pods = net.pods_labelled("app=web").await.expect("pods");
    let leases = net.leases().await.expect("leases");
    assert_eq!(
        check_held(&pods, &leases, &net.ip_key(), 12),
        Ok(ips),
        "state changed after settling"
    );
    deployments
        .delete("web", &DeleteParams::background())
        .await
        .expect("delete deployment");
    net.teardown().await;
}

/// The leases of live Pods as they are now: name → resourceVersion.
async fn versions(net: &Net) -> BTreeMap<String, String> {
    net.leases()
        .await
        .expect("leases")
        .iter()
        .map(|l| (l.name_any(), l.resource_version().unwrap_or_default()))
        .collect()
}

/// Without binds the token alone holds a lease: it is never written after admission, survives its reclaim
/// window and a controller restart (which forgets every deletion it saw), and is released when its Pod goes,
/// whether the controller saw the delete or the Pod went while none ran.
#[tokio::test]
async fn token_held_leases_survive_restarts_and_go_with_their_pods() {
    let _gate = GATE.write().await;
    ensure_server();
    let net = setup("lc-token", "10.67.0.0/24").await;
    for name in ["named", "gen-*"] {
        net.pods()
            .create(
                &PostParams::default(),
                &pod(&net, name, &[("app", "tok")], &[]),
            )
            .await
            .unwrap_or_else(|e| panic!("creating pod {name}: {e}"));
    }
    net.all_held("app=tok", 2).await;
    let held = versions(&net).await;
    let generated = net
        .pods_labelled("app=tok")
        .await
        .expect("pods")
        .into_iter()
        .map(|p| p.name_any())
        .find(|n| n != "named")
        .expect("the generateName Pod");

    // Past the reclaim window, then across a restart: untouched.
    tokio::time::sleep(RECLAIM_AFTER + Duration::from_secs(2)).await;
    kill_server();
    replace_server(start(FLAGS));
    net.webhook_answers().await;
    tokio::time::sleep(RECLAIM_AFTER + Duration::from_secs(3)).await;
    assert_eq!(
        versions(&net).await,
        held,
        "a lease held by its Pod's token was written or deleted\n{}",
        server_log()
    );

    // Deleted while the controller runs: its lease goes at once, found by the token the Pod carried.
    net.pods()
        .delete(&generated, &DeleteParams::default().grace_period(0))
        .await
        .expect("delete the generateName Pod");
    wait("the generateName Pod's lease to be released", || async {
        match net.leases().await?.len() {
            1 => Ok(()),
            n => Err(format!("{n} leases")),
        }
    })
    .await;

    // Deleted while no controller runs: the next one finds no Pod carrying the token and frees the address.
    kill_server();
    net.pods()
        .delete("named", &DeleteParams::default().grace_period(0))
        .await
        .expect("delete the named Pod");
    replace_server(start(FLAGS));
    net.webhook_answers().await;
    wait(
        "the named Pod's lease to be freed after the restart",
        || async {
            match net.leases().await?.len() {
                0 => Ok(()),
                n => Err(format!("{n} leases")),
            }
        },
    )
    .await;
    net.teardown().await;
}

/// The identity `common::server::spawn` gives a server (`e2e-<port>`).
fn identity(server: &Server) -> String {
    let port = server.url.rsplit(':').next().unwrap_or_default();
    format!("e2e-{port}")
}

/// The holder of the leader Lease (in `default`, see [`FLAGS`]) while its term runs.
async fn leader(client: &Client) -> Result<String, String> {
    let api: Api<k8s_openapi::api::coordination::v1::Lease> =
        Api::namespaced(client.clone(), "default");
    let lease = api
        .get_opt(nadipam::controller::LEASE_NAME)
        .await
        .map_err(|e| format!("reading the leader Lease: {e}"))?
        .ok_or("no leader Lease")?;
    let spec = lease.spec.unwrap_or_default();
    let holder = spec.holder_identity.ok_or("no holder")?;
    let renewed = spec.renew_time.ok_or("no renewTime")?.0;
    let term = k8s_openapi::jiff::SignedDuration::from_secs(i64::from(
        spec.lease_duration_seconds.unwrap_or(0),
    ));
    if renewed
        .checked_add(term)
        .is_ok_and(|end| end > k8s_openapi::jiff::Timestamp::now())
    {
        Ok(holder)
    } else {
        Err(format!("{holder}'s term has expired"))
    }
}

async fn delete_leader_lease(client: &Client) {
    let api: Api<k8s_openapi::api::coordination::v1::Lease> =
        Api::namespaced(client.clone(), "default");
    api.delete(nadipam::controller::LEASE_NAME, &DeleteParams::default())
        .await
        .expect("deleting the leader Lease");
}

/// Waits until `who` holds the leader Lease; returns how long that took.
async fn leads(client: &Client, who: &str) -> Duration {
    let t0 = Instant::now();
    wait(&format!("{who} to hold the leader Lease"), || async {
        match leader(client).await? {
            h if h == who => Ok(()),
            h => Err(format!("held by {h}")),
        }
    })
    .await;
    t0.elapsed()
}

/// A Pod gets its address, and its lease is released once it is deleted: a controller runs.
async fn controller_runs(net: &Net, name: &str) {
    net.pods()
        .create(
            &PostParams::default(),
            &pod(net, name, &[("app", "runs")], &[]),
        )
        .await
        .unwrap_or_else(|e| panic!("creating pod {name}: {e}"));
    net.all_held("app=runs", 1).await;
    net.pods()
        .delete(name, &DeleteParams::default().grace_period(0))
        .await
        .unwrap_or_else(|e| panic!("deleting pod {name}: {e}"));
    wait(
        &format!("the lease of pod {name} to be released"),
        || async {
            match net.leases().await?.len() {
                0 => Ok(()),
                n => Err(format!("{n} leases")),
            }
        },
    )
    .await;
}

#[tokio::test]
async fn a_deleted_leader_lease_is_created_again_by_the_leader_or_by_a_standby() {
    let _gate = GATE.write().await;
    ensure_server();
    let net = setup("lc-lease", "10.66.0.0/24").await;
    let first = identity(SERVER.lock().unwrap().as_ref().expect("a server"));
    leads(&net.client, &first).await;

    // Deleted under a live leader: its next renewal finds nothing to renew; it must not go on leading a
    // Lease that does not exist, and must create it again.
    delete_leader_lease(&net.client).await;
    let took = leads(&net.client, &first).await;
    eprintln!(
        "[measure] leader Lease deleted under the leader: held again after {took:?} (leader Lease 5s)"
    );
    controller_runs(&net, "after-delete").await;

    // Deleted while only a standby runs (the leader SIGKILLed): the standby finds no Lease when the dead
    // leader's term would have ended, and must create it and lead.
    let standby = start(FLAGS);
    let second = identity(&standby);
    net.webhook_answers().await;
    kill_server();
    let dead = replace_server(standby);
    delete_leader_lease(&net.client).await;
    let took = leads(&net.client, &second).await;
    eprintln!(
        "[measure] leader SIGKILLed and its Lease deleted: the standby holds it after {took:?}"
    );
    drop(dead);
    controller_runs(&net, "after-kill").await;

    net.teardown().await;
}
