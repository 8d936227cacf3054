//! Networks on the real control plane: a typed `Network` becomes its NetworkAttachmentDefinition (exact CNI
//! JSON, owned by the Network) and its Subnet; a Pod on it gets an address; a spec change re-renders the NAD;
//! a hand edit of the NAD is put back; deleting the Network waits for the Subnet's leases, then takes the NAD
//! (garbage collector) and the Subnet it created with it, and never a Subnet it did not create. Bad specs are
//! refused at apply, by CEL or the webhook, with messages naming the field.
//!
//! The tests share one server (the controller runs on it as leader) and run one at a time.

mod common;

use std::time::Duration;

use serde_json::{Value, json};

use common::server::{Server, start};
use common::{DeleteOnDrop, cluster, kubectl, test_namespace, wait_for};

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const WAIT: Duration = Duration::from_secs(60);

/// The binary's server: Lease in `default` (which exists), a short leader Lease so it leads at once after an
/// earlier suite's server.
fn nadipam() -> &'static Server {
    static SERVER: std::sync::OnceLock<Server> = std::sync::OnceLock::new();
    SERVER.get_or_init(|| start(&["--namespace", "default", "--leader-lease-seconds", "5"]))
}

fn create(obj: &Value) -> Result<String, String> {
    kubectl(&["create", "-f", "-"], &obj.to_string())
}

fn must_create(obj: &Value) {
    if let Err(e) = create(obj) {
        panic!(
            "creating {obj}: {e}\n--- nadipam log\n{}",
            nadipam().log_tail()
        );
    }
}

/// Asserts that creating `obj` is refused and the error contains `message`.
fn must_refuse(obj: &Value, message: &str) {
    match create(obj) {
        Ok(out) => panic!("expected {message:?}, but {obj} was created: {out}"),
        Err(e) => assert!(
            e.contains(message),
            "refusal {e:?} does not contain {message:?}"
        ),
    }
}

/// `kubectl get <args> -o json`, `None` when it does not exist.
fn get(args: &[&str]) -> Option<Value> {
    let mut all = vec!["get"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["-o", "json", "--ignore-not-found"]);
    let out = kubectl(&all, "").unwrap_or_else(|e| panic!("kubectl {all:?}: {e}"));
    (!out.trim().is_empty()).then(|| serde_json::from_str(&out).expect("kubectl JSON"))
}

fn network(ns: &str, name: &str, spec: Value) -> Value {
    json!({"apiVersion": "nadipam.io/v1", "kind": "Network",
           "metadata": {"name": name, "namespace": ns}, "spec": spec})
}

fn pod(ns: &str, name: &str, nad: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": name, "namespace": ns,
                        "annotations": {"k8s.v1.cni.cncf.io/networks": nad}},
           "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}]}})
}

/// The NAD's parsed config once it equals `want`.
async fn wait_nad_config(ns: &str, name: &str, want: &Value) -> Value {
    wait_for(
        &format!("NAD {ns}/{name} with config {want}"),
        WAIT,
        || async {
            let nad = get(&[
                "network-attachment-definitions.k8s.cni.cncf.io",
                name,
                "-n",
                ns,
            ])
            .ok_or("no NAD")?;
            let config: Value = serde_json::from_str(nad["spec"]["config"].as_str().unwrap_or(""))
                .map_err(|e| format!("config: {e}"))?;
            if &config == want {
                Ok(nad)
            } else {
                Err(format!("config {config}"))
            }
        },
    )
    .await
}

/// The Network's Ready condition once its status is `status` (and the status reason).
async fn wait_ready(ns: &str, name: &str, status: &str) -> Value {
    wait_for(
        &format!("Network {ns}/{name} Ready={status}"),
        WAIT,
        || async {
            let net = get(&["networks.nadipam.io", name, "-n", ns]).ok_or("no Network")?;
            let ready = net["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|c| c["type"] == "Ready")
                .cloned()
                .ok_or(format!("no Ready condition: {}", net["status"]))?;
            if ready["status"] == status {
                Ok(net)
            } else {
                Err(format!("Ready {ready}"))
            }
        },
    )
    .await
}

async fn wait_gone(what: &str, args: &[&str]) {
    wait_for(&format!("{what} gone"), WAIT, || async {
        match get(args) {
            None => Ok(()),
            Some(v) => Err(format!("still there: {}", v["metadata"])),
        }
    })
    .await
}

fn events_of(ns: &str, name: &str) -> String {
    kubectl(
        &[
            "get",
            "events",
            "-n",
            ns,
            "--field-selector",
            &format!("involvedObject.kind=Network,involvedObject.name={name}"),
            "-o",
            "custom-columns=REASON:.reason,NOTE:.message",
        ],
        "",
    )
    .unwrap_or_else(|e| e)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_network_generates_its_nad_and_subnet_and_follows_them_to_deletion() {
    let _serial = SERIAL.lock().await;
    let client = cluster().await;
    nadipam();
    let (ns, _ns_guard) = test_namespace(&client, "network").await;
    let provider = format!("ovs-conf.{ns}");
    // The Spiderpool guide's network (ovs on br1), with the Subnet to create written inline.
    must_create(&network(
        &ns,
        "ovs-conf",
        json!({"cniType": "ovs", "ovs": {"bridge": "br1"},
               "ipam": {"cidrBlock": "10.77.0.0/24", "gateway": "10.77.0.1"}}),
    ));
    let _subnet_guard = DeleteOnDrop::new("subnet", &provider, None);
    let want = json!({"cniVersion": "0.3.1", "name": "ovs-conf", "type": "ovs", "bridge": "br1",
                      "ipam": {"type": "nadipam", "provider": provider}});
    let nad = wait_nad_config(&ns, "ovs-conf", &want).await;
    let owner = &nad["metadata"]["ownerReferences"][0];
    assert_eq!(
        (&owner["kind"], &owner["name"], &owner["controller"]),
        (&json!("Network"), &json!("ovs-conf"), &json!(true)),
        "{nad}"
    );
    assert_eq!(
        nad["metadata"]["annotations"]["nadipam.io/network"],
        format!("{ns}/ovs-conf")
    );
    let subnet = get(&["subnet", &provider]).expect("the Subnet from spec.ipam");
    assert_eq!(subnet["spec"]["provider"], provider);
    assert_eq!(subnet["spec"]["cidrBlock"], "10.77.0.0/24");
    assert_eq!(subnet["spec"]["gateway"], "10.77.0.1");
    let net = wait_ready(&ns, "ovs-conf", "True").await;
    assert_eq!(net["status"]["nad"], "ovs-conf");
    assert_eq!(net["status"]["subnet"], provider);
    assert_eq!(net["status"]["device"], "br1");
    assert_eq!(
        net["status"]["observedGeneration"],
        net["metadata"]["generation"]
    );
    assert_eq!(
        net["metadata"]["finalizers"],
        json!(["nadipam.io/subnet-cleanup"])
    );
    let row = kubectl(&["get", "nnet", "-n", &ns, "--no-headers"], "").expect("kubectl get nnet");
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        &cols[..6],
        [
            "ovs-conf",
            "ovs",
            "br1",
            provider.as_str(),
            "ovs-conf",
            "True"
        ],
        "{row}"
    );
    let events = events_of(&ns, "ovs-conf");
    assert!(
        events.contains("SubnetCreated") && events.contains("NadGenerated"),
        "{events}"
    );

    // A Pod on it gets an address of the Subnet.
    tokio::time::sleep(Duration::from_millis(500)).await;
    must_create(&pod(&ns, "p1", "ovs-conf"));
    let p = get(&["pod", "p1", "-n", &ns]).expect("pod");
    let ip = p["metadata"]["annotations"][format!("{provider}.kubernetes.io/ip_address")]
        .as_str()
        .unwrap_or_else(|| panic!("no address on p1: {}", p["metadata"]))
        .to_string();
    assert!(ip.starts_with("10.77.0."), "{ip}");

    // A spec change re-renders the NAD.
    kubectl(
        &[
            "patch",
            "nnet",
            "ovs-conf",
            "-n",
            &ns,
            "--type",
            "merge",
            "-p",
            r#"{"spec":{"ovs":{"vlan":100,"mtu":1400}}}"#,
        ],
        "",
    )
    .expect("patching the Network");
    let mut want = want.clone();
    want["vlan"] = json!(100);
    want["mtu"] = json!(1400);
    wait_nad_config(&ns, "ovs-conf", &want).await;
    let net = wait_ready(&ns, "ovs-conf", "True").await;
    assert_eq!(
        net["status"]["observedGeneration"],
        net["metadata"]["generation"]
    );

    // A hand edit of the generated NAD is put back.
    let hacked = json!({"cniVersion": "0.3.1", "type": "ovs", "bridge": "hacked",
                        "ipam": {"type": "nadipam", "provider": provider}})
    .to_string();
    let patch = json!({"spec": {"config": hacked}}).to_string();
    kubectl(
        &[
            "patch",
            "network-attachment-definitions.k8s.cni.cncf.io",
            "ovs-conf",
            "-n",
            &ns,
            "--type",
            "merge",
            "-p",
            &patch,
        ],
        "",
    )
    .expect("editing the NAD by hand");
    wait_nad_config(&ns, "ovs-conf", &want).await;
    wait_for("a NadRestored Event", WAIT, || async {
        let events = events_of(&ns, "ovs-conf");
        if events.contains("NadRestored") {
            Ok(())
        } else {
            Err(events)
        }
    })
    .await;
    // Deleted by hand, it comes back.
    kubectl(
        &[
            "delete",
            "network-attachment-definitions.k8s.cni.cncf.io",
            "ovs-conf",
            "-n",
            &ns,
        ],
        "",
    )
    .expect("deleting the NAD");
    wait_nad_config(&ns, "ovs-conf", &want).await;

    // Deleting the Network waits while p1 holds an address of its Subnet ...
    kubectl(
        &["delete", "nnet", "ovs-conf", "-n", &ns, "--wait=false"],
        "",
    )
    .expect("delete");
    let net = wait_ready(&ns, "ovs-conf", "False").await;
    let ready = &net["status"]["conditions"][0];
    assert_eq!(ready["reason"], "Deleting", "{ready}");
    assert!(
        ready["message"]
            .as_str()
            .unwrap_or("")
            .contains(&format!("Subnet {provider} still has 1 leased address(es)")),
        "{ready}"
    );
    assert!(get(&["subnet", &provider]).is_some());
    // ... and goes, with its NAD and Subnet, once the Pod is gone.
    kubectl(&["delete", "pod", "p1", "-n", &ns, "--wait=true"], "").expect("deleting p1");
    wait_gone("the Network", &["nnet", "ovs-conf", "-n", &ns]).await;
    wait_gone("the Subnet", &["subnet", &provider]).await;
    wait_gone(
        "the NAD",
        &[
            "network-attachment-definitions.k8s.cni.cncf.io",
            "ovs-conf",
            "-n",
            &ns,
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_network_served_by_a_named_subnet_never_deletes_it() {
    let _serial = SERIAL.lock().await;
    let client = cluster().await;
    nadipam();
    let (ns, _ns_guard) = test_namespace(&client, "network-named").await;
    let subnet = format!("named-{ns}");
    must_create(
        &json!({"apiVersion": "nadipam.io/v1", "kind": "Subnet", "metadata": {"name": subnet},
                        "spec": {"provider": format!("macvlan.{ns}"), "cidrBlock": "10.78.0.0/24"}}),
    );
    let _subnet_guard = DeleteOnDrop::new("subnet", &subnet, None);
    // The Kube-OVN guide's macvlan NAD, as a Network.
    must_create(&network(
        &ns,
        "macvlan",
        json!({"cniType": "macvlan", "cniVersion": "0.3.0",
               "macvlan": {"master": "eth0", "mode": "bridge"}, "subnet": subnet}),
    ));
    let want = json!({"cniVersion": "0.3.0", "name": "macvlan", "type": "macvlan", "master": "eth0",
                      "mode": "bridge", "ipam": {"type": "nadipam", "provider": format!("macvlan.{ns}")}});
    wait_nad_config(&ns, "macvlan", &want).await;
    let net = wait_ready(&ns, "macvlan", "True").await;
    assert_eq!(net["status"]["subnet"], subnet);
    assert_eq!(net["status"]["device"], "eth0");
    assert!(
        net["metadata"].get("finalizers").is_none(),
        "{}",
        net["metadata"]
    );
    kubectl(&["delete", "nnet", "macvlan", "-n", &ns, "--wait=true"], "").expect("delete");
    wait_gone(
        "the NAD",
        &[
            "network-attachment-definitions.k8s.cni.cncf.io",
            "macvlan",
            "-n",
            &ns,
        ],
    )
    .await;
    assert!(
        get(&["subnet", &subnet]).is_some(),
        "the named Subnet is kept"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_networks_are_refused_naming_the_field() {
    let _serial = SERIAL.lock().await;
    let client = cluster().await;
    nadipam();
    let (ns, _ns_guard) = test_namespace(&client, "network-bad").await;
    let webhook =
        |m: &str| format!("admission webhook \"networks.nadipam.io\" denied the request: {m}");
    // CEL, at the apiserver.
    must_refuse(
        &network(&ns, "a", json!({"cniType": "macvlan"})),
        "spec.macvlan: Invalid value: \"object\": cniType macvlan needs spec.macvlan, e.g. macvlan: {master: \
         eth0, mode: bridge}",
    );
    must_refuse(
        &network(
            &ns,
            "a",
            json!({"cniType": "macvlan", "macvlan": {"master": "eth0"},
                                  "ovs": {"bridge": "br1"}}),
        ),
        "spec.ovs is set but cniType is macvlan; set only spec.macvlan (or make cniType ovs)",
    );
    must_refuse(
        &network(
            &ns,
            "a",
            json!({"cniType": "macvlan", "macvlan": {"master": "eth0/1"}}),
        ),
        "macvlan.master eth0/1 is not a Linux interface name (1-15 characters without /, : or spaces, e.g. eth0)",
    );
    must_refuse(
        &network(
            &ns,
            "a",
            json!({"cniType": "ovs", "ovs": {"bridge": "br1", "vlan": 5000}}),
        ),
        "spec.ovs.vlan: Invalid value: 5000: spec.ovs.vlan in body should be less than or equal to 4094",
    );
    must_refuse(
        &network(
            &ns,
            "a",
            json!({"cniType": "ovs", "ovs": {"bridge": "br1"}, "subnet": "x",
                                  "ipam": {"cidrBlock": "10.79.0.0/24"}}),
        ),
        "spec.subnet and spec.ipam are exclusive",
    );
    must_refuse(
        &network(
            &ns,
            "a",
            json!({"cniType": "ovs", "ovs": {"bridge": "br1"},
                                  "ipam": {"cidrBlock": "10.79.0.0/24", "gateway": "10.80.0.1"}}),
        ),
        "gateway 10.80.0.1 must lie inside cidrBlock 10.79.0.0/24, one address per family",
    );
    // The webhook.
    nadipam();
    must_refuse(
        &network(
            &ns,
            "a",
            json!({"cniType": "custom",
                                  "custom": {"config": "{\"type\":\"vlan\",\"ipam\":{\"type\":\"dhcp\"}}"}}),
        ),
        &webhook(&format!(
            "Network {ns}/a: spec.custom.config has an ipam section \"{{\\\"type\\\":\\\"dhcp\\\"}}\"; leave it \
             out: nadipam writes {{\"type\": \"nadipam\", \"provider\": \"a.{ns}\"}} there"
        )),
    );
    let foreign = format!("foreign-{ns}");
    must_create(
        &json!({"apiVersion": "nadipam.io/v1", "kind": "Subnet", "metadata": {"name": foreign},
                        "spec": {"provider": "someone.else", "cidrBlock": "10.81.0.0/24"}}),
    );
    let _foreign_guard = DeleteOnDrop::new("subnet", &foreign, None);
    tokio::time::sleep(Duration::from_millis(500)).await;
    must_refuse(
        &network(
            &ns,
            "a",
            json!({"cniType": "ovs", "ovs": {"bridge": "br1"}, "subnet": foreign}),
        ),
        &webhook(&format!(
            "Network {ns}/a: spec.subnet {foreign} names a Subnet whose spec.provider is someone.else; a Network \
             is served only by a Subnet with spec.provider a.{ns} (change the Subnet's provider, or use spec.ipam)"
        )),
    );
    must_create(
        &json!({"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
                        "metadata": {"name": "handmade", "namespace": ns},
                        "spec": {"config": "{\"type\":\"macvlan\",\"ipam\":{\"type\":\"host-local\"}}"}}),
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    must_refuse(
        &network(
            &ns,
            "handmade",
            json!({"cniType": "ovs", "ovs": {"bridge": "br1"}}),
        ),
        &webhook(&format!(
            "Network {ns}/handmade: NetworkAttachmentDefinition {ns}/handmade already exists and was not \
             generated from a Network; the Network would replace it: delete it first, or give the Network \
             another name"
        )),
    );
    let row = kubectl(
        &[
            "get",
            "network-attachment-definitions.k8s.cni.cncf.io",
            "handmade",
            "-n",
            &ns,
            "-o",
            "jsonpath={.spec.config}",
        ],
        "",
    )
    .expect("the hand-made NAD");
    assert_eq!(
        row, "{\"type\":\"macvlan\",\"ipam\":{\"type\":\"host-local\"}}",
        "left untouched"
    );
}
