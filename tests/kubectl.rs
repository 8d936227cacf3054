//! `kubectl-nadipam` against the real control plane: a Subnet (gateway, excludeIps), an IPPool, a NAD, Pods
//! admitted by a running nadipam server (a bare Pod with a fixed address and MAC, a generateName Pod), and
//! leases written directly as a lost reservation and a Pod deleted while no controller ran would leave them.
//! The built binary runs with the test bed's kubeconfig; every subcommand's output is compared whole, in each
//! format, and so are the exit code and message of a free address, a missing Pod and bad arguments.
//!
//! The server runs with a leader namespace that does not exist, so no controller ever leads here: the orphans
//! stay as made, and their reclaim times are what the plugin predicts.

mod common;

use std::process::Command;
use std::time::Duration;

use common::server::{Server, start};
use common::{cluster, cluster_info, delete_namespace_and_wait, wait_for};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams, PostParams};
use kube::{Client, ResourceExt};
use nadipam::api::{
    IPLease, IPLeaseSpec, IPPool, LeasePhase, NetworkAttachmentDefinition, OwnerKind, Subnet,
};
use serde_json::{Value, json};

const NS: &str = "nadipam-kubectl";
const SUBNET: &str = "kubectl-net";
const POOL: &str = "kubectl-pool";
const PROVIDER: &str = "macvlan.nadipam-kubectl";
const WAIT: Duration = Duration::from_secs(60);

fn server() -> &'static Server {
    static SERVER: std::sync::OnceLock<Server> = std::sync::OnceLock::new();
    // No controller: the leader Lease's namespace does not exist, so no replica ever leads.
    SERVER.get_or_init(|| start(&["--namespace", "kubectl-e2e-no-leader"]))
}

/// The plugin's exit code, stdout and stderr, with the test bed's kubeconfig in `KUBECONFIG`.
fn plugin<S: AsRef<str> + std::fmt::Debug>(args: &[S]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_kubectl-nadipam"))
        .env("KUBECONFIG", &cluster_info().kubeconfig)
        .args(args.iter().map(AsRef::as_ref))
        .output()
        .unwrap_or_else(|e| panic!("running kubectl-nadipam {args:?}: {e}"));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// stdout of a run that must succeed.
fn ok<S: AsRef<str> + std::fmt::Debug>(args: &[S]) -> String {
    let (code, out, err) = plugin(args);
    assert_eq!(
        code, 0,
        "kubectl-nadipam {args:?} exited {code}: {err}\n{out}"
    );
    out
}

/// Deletes what the suite made outside its namespace (leases are cluster-scoped and, with no controller,
/// outlive their Pods), now and when dropped.
struct Cleanup;

impl Cleanup {
    fn run() {
        for args in [
            vec!["delete", "ipleases", "-l", "nadipam.io/subnet=kubectl-net"],
            vec!["delete", "ippool", POOL],
            vec!["delete", "subnet", SUBNET],
        ] {
            let _ = cluster_info()
                .kubectl()
                .args(args)
                .arg("--ignore-not-found")
                .output();
        }
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        Cleanup::run();
        let _ = cluster_info()
            .kubectl()
            .args([
                "delete",
                "namespace",
                NS,
                "--ignore-not-found",
                "--wait=false",
            ])
            .output();
    }
}

async fn create<K>(api: &Api<K>, obj: Value) -> K
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let o: K = serde_json::from_value(obj.clone()).unwrap_or_else(|e| panic!("{obj}: {e}"));
    api.create(&PostParams::default(), &o)
        .await
        .unwrap_or_else(|e| panic!("creating {obj}: {e}"))
}

fn pod_json(name: Option<&str>, ip: &str, mac: Option<&str>) -> Value {
    let mut meta = json!({"namespace": NS, "annotations": {
        "k8s.v1.cni.cncf.io/networks": json!([{"name": "macvlan", "interface": "net1"}]).to_string(),
        format!("{PROVIDER}.kubernetes.io/ip_address"): ip,
    }});
    match name {
        Some(n) => meta["name"] = json!(n),
        None => meta["generateName"] = json!("gen-"),
    }
    if let Some(mac) = mac {
        meta["annotations"][format!("{PROVIDER}.kubernetes.io/mac_address")] = json!(mac);
    }
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": meta,
           "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}]}})
}

/// A lease written directly, as the webhook writes one.
async fn lease(
    client: &Client,
    ip: &str,
    token: &str,
    phase: LeasePhase,
    pod: Option<(&str, &str)>,
    pool: Option<&str>,
) -> IPLease {
    let l = IPLease::build(IPLeaseSpec {
        subnet: SUBNET.into(),
        ip: ip.into(),
        mac: None,
        provider: PROVIDER.into(),
        interface: Some("net1".into()),
        pod_namespace: NS.into(),
        pod_name: pod.map(|(n, _)| n.to_string()),
        pod_uid: pod.map(|(_, u)| u.to_string()),
        phase,
        token: token.into(),
        owner_kind: OwnerKind::Pod,
        claim: None,
        pool: pool.map(str::to_string),
        network: format!("{NS}/macvlan"),
    })
    .unwrap_or_else(|e| panic!("{e}"));
    Api::<IPLease>::all(client.clone())
        .create(&PostParams::default(), &l)
        .await
        .unwrap_or_else(|e| panic!("creating lease for {ip}: {e}"))
}

/// Seconds from a lease's creation to `now`.
fn secs(l: &IPLease, now: Timestamp) -> i64 {
    let created = l.creation_timestamp().expect("creationTimestamp").0;
    now.as_second() - created.as_second()
}

#[tokio::test]
async fn answers_from_the_real_apiserver() {
    server();
    let client = cluster().await;
    Cleanup::run();
    delete_namespace_and_wait(&client, NS, WAIT).await;
    let _cleanup = Cleanup;
    create::<Namespace>(&Api::all(client.clone()), json!({"metadata": {"name": NS}})).await;
    let config = json!({"cniVersion": "0.3.1", "type": "macvlan", "master": "eth0",
                        "ipam": {"type": "nadipam", "provider": PROVIDER}});
    create::<NetworkAttachmentDefinition>(
        &Api::namespaced(client.clone(), NS),
        json!({"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
               "metadata": {"name": "macvlan", "namespace": NS}, "spec": {"config": config.to_string()}}),
    )
    .await;
    // Assignable: .4-.14 (.1 gateway, .2-.3 excluded, .15 broadcast); the pool keeps .10-.12.
    create::<Subnet>(
        &Api::all(client.clone()),
        json!({"apiVersion": "nadipam.io/v1", "kind": "Subnet", "metadata": {"name": SUBNET},
               "spec": {"cidrBlock": "10.231.7.0/28", "provider": PROVIDER, "excludeIps": ["10.231.7.2..10.231.7.3"]}}),
    )
    .await;
    create::<IPPool>(
        &Api::all(client.clone()),
        json!({"apiVersion": "nadipam.io/v1", "kind": "IPPool", "metadata": {"name": POOL},
               "spec": {"subnet": SUBNET, "ips": ["10.231.7.10-10.231.7.12"]}}),
    )
    .await;

    // Pods admitted by the webhook (retried until its caches have the NAD and the Subnet).
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let fixed = pod_json(Some("fixed"), "10.231.7.4", Some("02:00:00:00:07:04"));
    wait_for("the webhook to admit pod fixed", WAIT, || {
        let (pods, fixed) = (pods.clone(), fixed.clone());
        async move {
            let p: Pod = serde_json::from_value(fixed).map_err(|e| e.to_string())?;
            pods.create(&PostParams::default(), &p)
                .await
                .map_err(|e| e.to_string())
        }
    })
    .await;
    let generated = create::<Pod>(&pods, pod_json(None, "10.231.7.5", None))
        .await
        .name_any();
    // A reservation whose Pod never appeared (from the pool), and a bound lease whose Pod is gone.
    let lost = lease(
        &client,
        "10.231.7.11",
        "lost-token",
        LeasePhase::Reserved,
        None,
        Some(POOL),
    )
    .await;
    let gone = lease(
        &client,
        "10.231.7.13",
        "gone-token",
        LeasePhase::Bound,
        Some(("vanished", "uid-gone")),
        None,
    )
    .await;

    let leases: Vec<IPLease> = Api::<IPLease>::all(client.clone())
        .list(&ListParams::default().labels("nadipam.io/subnet=kubectl-net"))
        .await
        .expect("listing leases")
        .items;
    let by_ip = |ip: &str| {
        leases
            .iter()
            .find(|l| l.spec.ip == ip)
            .unwrap_or_else(|| panic!("no lease for {ip}: {leases:?}"))
            .clone()
    };
    let (fixed_lease, gen_lease) = (by_ip("10.231.7.4"), by_ip("10.231.7.5"));
    assert_eq!(
        gen_lease.spec.pod_name, None,
        "a generateName Pod has no name at admission"
    );
    let newest = leases
        .iter()
        .filter_map(|l| l.creation_timestamp())
        .map(|t| t.0)
        .max()
        .expect("timestamps");
    let now = newest
        .checked_add(k8s_openapi::jiff::SignedDuration::from_secs(10))
        .expect("now");
    let now_arg = now.to_string();
    let at = |args: &[&str]| -> Vec<String> {
        args.iter()
            .map(|a| a.to_string())
            .chain(["--now".to_string(), now_arg.clone()])
            .collect()
    };
    let age = |l: &IPLease| format!("{}s", secs(l, now));

    // who: a bare Pod's fixed address, a generateName Pod found by its token label, a lease whose Pod is gone.
    assert_eq!(
        ok(&at(&["who", "10.231.7.4"])),
        format!(
            "IP           SUBNET        NETWORK                   POD                     CLAIM    STATEFULSET   PHASE      AGE\n\
             10.231.7.4   kubectl-net   nadipam-kubectl/macvlan   nadipam-kubectl/fixed   <none>   <none>        Reserved   {}\n",
            age(&fixed_lease)
        )
    );
    assert_eq!(
        ok(&at(&["who", "10.231.7.4", "-o", "wide"])),
        format!(
            "IP           SUBNET        NETWORK                   POD                     CLAIM    STATEFULSET   PHASE      AGE   INTERFACE   MAC                 POOL     TOKEN                                  LEASE\n\
             10.231.7.4   kubectl-net   nadipam-kubectl/macvlan   nadipam-kubectl/fixed   <none>   <none>        Reserved   {}   net1        02:00:00:00:07:04   <none>   {}   kubectl-net.10.231.7.4\n",
            age(&fixed_lease),
            fixed_lease.spec.token,
        )
    );
    let who_gen = ok(&at(&["who", "10.231.7.5", "--subnet", SUBNET]));
    let gen_pod = format!("{NS}/{generated}");
    // Ages are 3 wide ("1Ns"), generated names 9 ("gen-" and five characters): the columns do not move.
    assert_eq!(
        who_gen,
        format!(
            "IP           SUBNET        NETWORK                   POD                         CLAIM    STATEFULSET   PHASE      AGE\n\
             10.231.7.5   kubectl-net   nadipam-kubectl/macvlan   {gen_pod}   <none>   <none>        Reserved   {}\n",
            age(&gen_lease)
        )
    );
    assert_eq!(
        ok(&at(&["who", "10.231.7.13"])),
        format!(
            "IP            SUBNET        NETWORK                   POD                               CLAIM    STATEFULSET   PHASE   AGE\n\
             10.231.7.13   kubectl-net   nadipam-kubectl/macvlan   nadipam-kubectl/vanished (gone)   <none>   <none>        Bound   {}\n",
            age(&gone)
        )
    );
    let json: Value =
        serde_json::from_str(&ok(&at(&["who", "10.231.7.13", "-o", "json"]))).expect("JSON");
    assert_eq!(
        json,
        json!({"items": [{
            "lease": "kubectl-net.10.231.7.13", "ip": "10.231.7.13", "subnet": SUBNET,
            "network": "nadipam-kubectl/macvlan", "interface": "net1", "mac": null, "pool": null,
            "namespace": NS, "pods": [], "gonePod": "vanished", "claim": null, "statefulSet": null,
            "ownerKind": "Pod", "phase": "Bound", "token": "gone-token",
            "created": gone.creation_timestamp().expect("created").0.to_string()
        }]})
    );
    let yaml: Value =
        serde_saphyr::from_str(&ok(&at(&["who", "10.231.7.13", "-o", "yaml"]))).expect("YAML");
    assert_eq!(yaml, json, "-o yaml holds the same records as -o json");

    // who for addresses no lease holds: exit 1 and why.
    for (args, why) in [
        (
            vec!["who", "10.231.7.6"],
            "10.231.7.6 is free in Subnet kubectl-net (10.231.7.0/28): no IPLease holds it, and no IPPool keeps it",
        ),
        (
            vec!["who", "10.231.7.12"],
            "10.231.7.12 is free in IPPool kubectl-pool (Subnet kubectl-net): no IPLease holds it; only Pods naming kubectl-pool get it",
        ),
        (
            vec!["who", "10.231.7.2", "--subnet", SUBNET],
            "10.231.7.2 is excluded from Subnet kubectl-net (10.231.7.0/28) by its excludeIps entry 10.231.7.2..10.231.7.3",
        ),
        (
            vec!["who", "10.231.7.1", "--subnet", SUBNET],
            "10.231.7.1 is the gateway of Subnet kubectl-net (10.231.7.0/28): never handed out",
        ),
        (
            vec!["who", "10.231.8.1", "--subnet", SUBNET],
            "10.231.8.1 is not in Subnet kubectl-net (10.231.7.0/28)",
        ),
    ] {
        let (code, out, err) = plugin(&args);
        assert_eq!(
            (code, out.as_str(), err.as_str()),
            (1, "", format!("{why}\n").as_str()),
            "{args:?}"
        );
    }
    let (code, out, err) = plugin(&["who", "10.231.7.6", "-o", "json"]);
    assert_eq!(
        (code, out.as_str()),
        (1, "{\n  \"items\": []\n}\n"),
        "{err}"
    );
    let (code, _, err) = plugin(&["who", "10.231.7.6", "--subnet", "no-such-subnet"]);
    assert_eq!(
        (code, err.as_str()),
        (
            4,
            "error: Subnet no-such-subnet not found; list them with kubectl get subnets.nadipam.io\n"
        )
    );

    // pod: the fixed Pod's attachment, from its lease and annotations.
    assert_eq!(
        ok(&["pod", "fixed", "-n", NS]),
        "NETWORK                   INTERFACE   IP           MAC                 SUBNET        POOL     LEASES\n\
         nadipam-kubectl/macvlan   net1        10.231.7.4   02:00:00:00:07:04   kubectl-net   <none>   kubectl-net.10.231.7.4\n"
    );
    assert_eq!(
        ok(&["pod", "fixed", "-n", NS, "-o", "wide"]),
        "NETWORK                   INTERFACE   IP           MAC                 SUBNET        POOL     LEASES                   PROVIDER                  GATEWAY      CLAIM\n\
         nadipam-kubectl/macvlan   net1        10.231.7.4   02:00:00:00:07:04   kubectl-net   <none>   kubectl-net.10.231.7.4   macvlan.nadipam-kubectl   10.231.7.1   <none>\n"
    );
    let json: Value =
        serde_json::from_str(&ok(&["pod", &generated, "-n", NS, "-o", "json"])).expect("JSON");
    assert_eq!(
        json,
        json!({"items": [{
            "network": "nadipam-kubectl/macvlan", "interface": "net1", "ips": ["10.231.7.5"],
            "mac": gen_lease.spec.mac, "subnet": SUBNET, "pool": null, "leases": ["kubectl-net.10.231.7.5"],
            "provider": PROVIDER, "gateways": ["10.231.7.1"], "claim": null
        }]})
    );
    let (code, out, err) = plugin(&["pod", "nope", "-n", NS]);
    assert_eq!(
        (code, out.as_str(), err.as_str()),
        (
            4,
            "",
            "error: pod nadipam-kubectl/nope not found; list the namespace's Pods with kubectl get pods -n nadipam-kubectl\n"
        )
    );

    // usage: the webhook's arithmetic. Leases .4 .5 .11 .13; the pool keeps .10-.12 (.11 taken).
    assert_eq!(
        ok(&["usage", SUBNET]),
        "NAME                  TOTAL   USED   FREE   NEXT FREE\n\
         subnet/kubectl-net    11      4      7      10.231.7.6,10.231.7.7,10.231.7.8\n\
         ippool/kubectl-pool   3       1      2      10.231.7.10,10.231.7.12\n"
    );
    assert_eq!(
        ok(&["usage", SUBNET, "--next", "1", "-o", "wide"]),
        "NAME                  TOTAL   USED   FREE   NEXT FREE     SUBNET        RANGES                    GATEWAY\n\
         subnet/kubectl-net    11      4      7      10.231.7.6    kubectl-net   10.231.7.0/28             <none>\n\
         ippool/kubectl-pool   3       1      2      10.231.7.10   kubectl-net   10.231.7.10-10.231.7.12   <none>\n"
    );
    assert_eq!(
        ok(&["usage", SUBNET, "--next", "2", "-o", "yaml"]),
        "items:\n\
         - kind: Subnet\n  name: kubectl-net\n  subnet: kubectl-net\n  total: 11\n  used: 4\n  free: 7\n  next:\n  - \"10.231.7.6\"\n  - \"10.231.7.7\"\n  ranges: 10.231.7.0/28\n  gateway: null\n\
         - kind: IPPool\n  name: kubectl-pool\n  subnet: kubectl-net\n  total: 3\n  used: 1\n  free: 2\n  next:\n  - \"10.231.7.10\"\n  - \"10.231.7.12\"\n  ranges: 10.231.7.10-10.231.7.12\n  gateway: null\n"
    );
    let json: Value =
        serde_json::from_str(&ok(&["usage", SUBNET, "--next", "0", "-o", "json"])).expect("JSON");
    assert_eq!(json["items"][0]["next"], json!([]));
    // Past .9 the next free one is .14: .10-.12 are the pool's, .13 is leased.
    let json: Value =
        serde_json::from_str(&ok(&["usage", SUBNET, "--next", "5", "-o", "json"])).expect("JSON");
    assert_eq!(
        json["items"][0]["next"],
        json!([
            "10.231.7.6",
            "10.231.7.7",
            "10.231.7.8",
            "10.231.7.9",
            "10.231.7.14"
        ])
    );
    assert_eq!(json["items"][1]["free"], json!(2));

    // orphans: the lost reservation (reclaimed when its window ends) and the lease of the vanished Pod
    // (released at once); the webhook's leases are held by their Pods and not listed.
    let lost_age = secs(&lost, now);
    let reclaim_in = 70 - (lost_age - 1);
    let orphans = ok(&at(&["orphans", "-n", NS]));
    assert_eq!(
        orphans,
        format!(
            "NAMESPACE         LEASE                     HOLDER                   PHASE      AGE   ACTION    WHEN     REASON\n\
             nadipam-kubectl   kubectl-net.10.231.7.11   reservation/lost-token   Reserved   {lost_age}s   Reclaim   in {reclaim_in}s   reserved {}s ago and no Pod in namespace nadipam-kubectl carries reservation lost-token\n\
             nadipam-kubectl   kubectl-net.10.231.7.13   pod/vanished             Bound      {}   Release   now      pod nadipam-kubectl/vanished no longer exists\n",
            lost_age - 1,
            age(&gone),
        )
    );
    // The server's --reclaim-after of 5 s: the reservation is overdue.
    let json: Value = serde_json::from_str(&ok(&at(&[
        "orphans",
        "-A",
        "--reclaim-after",
        "5",
        "-o",
        "json",
    ])))
    .expect("JSON");
    let mine: Vec<&Value> = json["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|o| o["namespace"] == NS)
        .collect();
    assert_eq!(
        mine,
        [
            &json!({"lease": "kubectl-net.10.231.7.11", "ip": "10.231.7.11", "subnet": SUBNET, "namespace": NS,
                    "holder": "reservation/lost-token", "ownerKind": "Pod", "phase": "Reserved", "token": "lost-token",
                    "action": "Reclaim", "at": now_arg, "when": "now",
                    "reason": format!("reserved {}s ago and no Pod in namespace nadipam-kubectl carries reservation lost-token", lost_age - 1),
                    "created": lost.creation_timestamp().expect("created").0.to_string()}),
            &json!({"lease": "kubectl-net.10.231.7.13", "ip": "10.231.7.13", "subnet": SUBNET, "namespace": NS,
                    "holder": "pod/vanished", "ownerKind": "Pod", "phase": "Bound", "token": "gone-token",
                    "action": "Release", "at": now_arg, "when": "now",
                    "reason": "pod nadipam-kubectl/vanished no longer exists",
                    "created": gone.creation_timestamp().expect("created").0.to_string()}),
        ]
    );
    let (code, out, err) = plugin(&["orphans", "-n", "default-no-such-ns"]);
    assert_eq!(
        (code, out.as_str(), err.as_str()),
        (
            0,
            "",
            "No orphaned leases found in namespace default-no-such-ns.\n"
        )
    );
}

#[test]
fn bad_arguments_and_kubeconfigs_are_refused_with_their_code() {
    let (code, out, err) = plugin(&["who", "10.231.7.300"]);
    assert_eq!((code, out.as_str()), (2, ""));
    assert!(
        err.starts_with(
            "error: invalid value '10.231.7.300' for '<IP>': invalid IP address syntax"
        ),
        "{err}"
    );
    let (code, _, err) = plugin(&["usage", "-o", "xml"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("invalid value 'xml' for '--output <OUTPUT>'")
            && err.contains("[possible values: wide, json, yaml]"),
        "{err}"
    );
    let (code, _, err) = plugin(&["--kubeconfig", "/nonexistent/kubeconfig", "usage"]);
    assert_eq!(code, 3);
    assert!(
        err.starts_with("error: cannot load the kubeconfig /nonexistent/kubeconfig: ")
            && err.ends_with(
                "; pass --kubeconfig, set KUBECONFIG, or check --context/--cluster/--user\n"
            ),
        "{err}"
    );
    let (code, _, err) = plugin(&["--context", "no-such-context", "usage"]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("no-such-context"), "{err}");
    // The bash script completes a subcommand when sourced.
    let (code, script, _) = plugin(&["completion", "bash"]);
    assert_eq!(code, 0);
    let out = Command::new("bash")
        .args([
            "-c",
            &format!(
                "{script}\nCOMP_WORDS=(kubectl-nadipam orp); COMP_CWORD=1; \
                 _kubectl__nadipam kubectl-nadipam orp kubectl-nadipam; echo \"${{COMPREPLY[@]}}\""
            ),
        ])
        .output()
        .expect("running bash");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "orphans\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
