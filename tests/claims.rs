//! IPAMClaims on the real control plane (the claim CRD applied as KubeVirt or OVN-Kubernetes would install it;
//! there is no kubelet, so Pods stay Pending): a Pod naming a claim gets the claim's addresses, the lease is the
//! claim's, a second Pod (a live migration's target) gets the same addresses, a third is refused, the addresses
//! outlive the Pods and go once the claim is deleted and no Pod uses them.

mod common;

use std::time::Duration;

use common::server::{Server, start};
use common::{cluster, test_namespace};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::{Client, ResourceExt};
use nadipam::api::{IPAMClaim, IPAMClaimSpec, IPLease, OwnerKind};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(60);

fn server() -> &'static Server {
    static SERVER: std::sync::OnceLock<Server> = std::sync::OnceLock::new();
    SERVER.get_or_init(|| start(&["--namespace", "default", "--leader-lease-seconds", "5"]))
}

struct Net {
    client: Client,
    ns: String,
    subnet: String,
    provider: String,
    _guards: (common::DeleteOnDrop, common::DeleteOnDrop),
}

async fn setup(prefix: &str, cidr: &str) -> Net {
    server();
    let client = cluster().await;
    let (ns, ns_guard) = test_namespace(&client, prefix).await;
    let m = common::net::macvlan(&client, &ns, cidr).await;
    Net {
        client,
        ns,
        subnet: m.subnet,
        provider: m.provider,
        _guards: (ns_guard, m.guard),
    }
}

impl Net {
    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    fn claims(&self) -> Api<IPAMClaim> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    async fn claim(&self, name: &str, network: &str) -> IPAMClaim {
        let c = IPAMClaim::new(
            name,
            IPAMClaimSpec {
                network: network.into(),
                interface: "net1".into(),
            },
        );
        self.claims()
            .create(&PostParams::default(), &c)
            .await
            .unwrap_or_else(|e| panic!("creating IPAMClaim {name}: {e}"))
    }

    /// A Pod whose macvlan element names `claim`, with extra element fields.
    fn pod(&self, name: &str, claim: &str, extra: serde_json::Value) -> Pod {
        let mut element =
            json!({"name": "macvlan", "interface": "net1", "ipam-claim-reference": claim});
        if let (Some(e), Some(x)) = (element.as_object_mut(), extra.as_object()) {
            e.extend(x.clone());
        }
        serde_json::from_value(json!({
            "metadata": {"name": name, "annotations": {
                "k8s.v1.cni.cncf.io/networks": json!([element]).to_string()}},
            "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}]}
        }))
        .expect("pod literal")
    }

    async fn create(&self, pod: &Pod) -> Result<Pod, String> {
        self.pods()
            .create(&PostParams::default(), pod)
            .await
            .map_err(|e| e.to_string())
    }

    async fn must_create(&self, pod: &Pod) -> Pod {
        self.create(pod).await.unwrap_or_else(|e| {
            panic!(
                "creating pod {}: {e}\n--- nadipam log\n{}",
                pod.name_any(),
                server().log_tail()
            )
        })
    }

    async fn delete_pod(&self, name: &str) {
        self.pods()
            .delete(name, &DeleteParams::default())
            .await
            .unwrap_or_else(|e| panic!("deleting pod {name}: {e}"));
    }

    fn annotation(&self, pod: &Pod, field: &str) -> String {
        pod.annotations()
            .get(&format!("{}.kubernetes.io/{field}", self.provider))
            .cloned()
            .unwrap_or_else(|| {
                panic!(
                    "pod {} has no {field}: {:?}",
                    pod.name_any(),
                    pod.annotations()
                )
            })
    }

    async fn leases(&self) -> Vec<IPLease> {
        Api::<IPLease>::all(self.client.clone())
            .list(&ListParams::default().labels(&format!("nadipam.io/subnet={}", self.subnet)))
            .await
            .expect("listing leases")
            .items
    }
}

/// Polls until `check` holds, or panics naming `what` and the server log.
async fn until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = std::time::Instant::now();
    while start.elapsed() < WAIT {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!(
        "timed out waiting for {what}\n--- nadipam log\n{}",
        server().log_tail()
    );
}

fn refused(result: Result<Pod, String>, want: &str) {
    match result {
        Ok(p) => panic!("pod {} was admitted; expected {want:?}", p.name_any()),
        Err(e) => assert!(e.contains(want), "denial {e:?} does not contain {want:?}"),
    }
}

#[tokio::test]
async fn a_claim_holds_its_addresses_for_every_pod_that_names_it() {
    let net = setup("claims", "10.71.0.0/24").await;
    let ns = net.ns.clone();
    // Named by the network's <namespace>/<name>; the first Pod asks for a fixed address and MAC.
    let claim = net.claim("vm-a.tenant", &format!("{ns}/macvlan")).await;
    let uid = claim.uid().unwrap();

    let source = net
        .must_create(&net.pod(
            "virt-launcher-vm-a-1",
            "vm-a.tenant",
            json!({"ips": ["10.71.0.50/24"], "mac": "02:00:00:00:71:50"}),
        ))
        .await;
    assert_eq!(net.annotation(&source, "ip_address"), "10.71.0.50");
    assert_eq!(net.annotation(&source, "mac_address"), "02:00:00:00:71:50");
    assert_eq!(
        source.labels().get("ipamclaims.nadipam.io/vm-a.tenant"),
        Some(&uid),
        "the Pod is labelled with the claim it uses"
    );
    let leases = net.leases().await;
    assert_eq!(leases.len(), 1, "{leases:?}");
    let l = &leases[0].spec;
    assert_eq!(
        (
            l.owner_kind,
            l.claim.as_deref(),
            l.token.as_str(),
            l.pod_name.as_deref()
        ),
        (
            OwnerKind::IPAMClaim,
            Some("vm-a.tenant"),
            uid.as_str(),
            None
        ),
        "the claim, not the Pod, holds the lease"
    );
    let status = net
        .claims()
        .get_status("vm-a.tenant")
        .await
        .unwrap()
        .status
        .expect("the claim's status is written");
    assert_eq!(status.ips, ["10.71.0.50/24"]);
    assert_eq!(status.owner_pod.unwrap().name, "virt-launcher-vm-a-1");
    assert_eq!(
        (
            status.conditions[0].type_.as_str(),
            status.conditions[0].status.as_str()
        ),
        ("IPsAllocated", "True")
    );

    // A live migration: the target Pod names the claim while the source still runs; same addresses, no denial.
    let target = net
        .must_create(&net.pod("virt-launcher-vm-a-2", "vm-a.tenant", json!({})))
        .await;
    assert_eq!(net.annotation(&target, "ip_address"), "10.71.0.50");
    assert_eq!(net.annotation(&target, "mac_address"), "02:00:00:00:71:50");
    assert_eq!(net.leases().await.len(), 1, "no second lease");

    // A third Pod naming the claim while both run is refused, naming them.
    refused(
        net.create(&net.pod("virt-launcher-vm-a-3", "vm-a.tenant", json!({})))
            .await,
        &format!(
            "network {ns}/macvlan: ipam-claim-reference vm-a.tenant: IPAMClaim {ns}/vm-a.tenant is already used by \
             pods {ns}/virt-launcher-vm-a-1, {ns}/virt-launcher-vm-a-2; at most two Pods share a claim at once"
        ),
    );

    // The migration ends: the source goes. The address stays with the claim.
    net.delete_pod("virt-launcher-vm-a-1").await;
    // A Pod asking the claim for another address is refused: the claim keeps what its first Pod got.
    refused(
        net.create(&net.pod(
            "virt-launcher-vm-a-4",
            "vm-a.tenant",
            json!({"ips": ["10.71.0.60/24"]}),
        ))
        .await,
        &format!(
            "IPAMClaim {ns}/vm-a.tenant holds 10.71.0.50 (MAC 02:00:00:00:71:50), but the Pod asks for 10.71.0.60"
        ),
    );
    net.delete_pod("virt-launcher-vm-a-2").await;
    // No Pod left: the controller keeps the claim's lease (give it time to act on the deletions).
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        net.leases().await.len(),
        1,
        "the claim keeps its address without Pods"
    );

    // The VM starts again: the same address.
    let again = net
        .must_create(&net.pod("virt-launcher-vm-a-5", "vm-a.tenant", json!({})))
        .await;
    assert_eq!(net.annotation(&again, "ip_address"), "10.71.0.50");

    // The claim deleted while a Pod uses it: the release waits for the Pod.
    net.claims()
        .delete("vm-a.tenant", &DeleteParams::default())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        net.leases().await.len(),
        1,
        "a deleted claim's address stays while a Pod uses it"
    );
    net.delete_pod("virt-launcher-vm-a-5").await;
    until(
        "the deleted claim's lease to be released once its last Pod is gone",
        || async { net.leases().await.is_empty() },
    )
    .await;
}

#[tokio::test]
async fn a_claim_is_refused_unless_it_exists_in_the_pods_namespace_for_that_network() {
    let net = setup("claimsno", "10.72.0.0/24").await;
    let ns = net.ns.clone();
    refused(
        net.create(&net.pod("p1", "nope", json!({}))).await,
        &format!(
            "network {ns}/macvlan: ipam-claim-reference nope: IPAMClaim {ns}/nope does not exist; create it before \
             the Pod (an IPAMClaim is looked up in the Pod's namespace)"
        ),
    );
    net.claim("other-net", "blue").await;
    refused(
        net.create(&net.pod("p2", "other-net", json!({}))).await,
        &format!(
            "IPAMClaim {ns}/other-net is for network \"blue\" (spec.network), not this one; name a claim whose \
             spec.network is {ns}/macvlan or macvlan"
        ),
    );
    // A claim of another namespace is not this Pod's, even when the network is shared.
    let (other, _guard) = test_namespace(&net.client, "claimsother").await;
    net.claim("vm-b", "macvlan").await;
    let pods: Api<Pod> = Api::namespaced(net.client.clone(), &other);
    let mut p = net.pod("p3", "vm-b", json!({"namespace": ns}));
    p.metadata.namespace = Some(other.clone());
    let denied = pods
        .create(&PostParams::default(), &p)
        .await
        .map_err(|e| e.to_string());
    refused(denied, &format!("IPAMClaim {other}/vm-b does not exist"));
    // A malformed reference is refused by the annotation parser, naming the field.
    refused(
        net.create(&net.pod("p4", "VM_B", json!({}))).await,
        "[0].ipam-claim-reference",
    );
    assert!(net.leases().await.is_empty(), "nothing was reserved");

    // The claim named by the CNI config name works too, and dry runs write neither leases nor the status.
    net.claim("vm-c", "macvlan").await;
    let dry = net
        .pods()
        .create(
            &PostParams {
                dry_run: true,
                ..PostParams::default()
            },
            &net.pod("p5", "vm-c", json!({})),
        )
        .await
        .unwrap();
    assert!(net.annotation(&dry, "ip_address").starts_with("10.72.0."));
    assert!(net.leases().await.is_empty(), "a dry run reserves nothing");
    let status = net.claims().get_status("vm-c").await.unwrap().status;
    assert!(
        status.is_none_or(|s| s.ips.is_empty()),
        "a dry run leaves the claim's status alone"
    );

    // Deleted with no Pod using it, a claim's addresses go at once.
    net.must_create(&net.pod("p6", "vm-c", json!({}))).await;
    net.delete_pod("p6").await;
    assert_eq!(net.leases().await.len(), 1);
    net.claims()
        .delete("vm-c", &DeleteParams::default())
        .await
        .unwrap();
    until("an unused deleted claim's lease to be released", || async {
        net.leases().await.is_empty()
    })
    .await;
}

/// Two Pods naming a new claim at the same moment (a VM and its migration target created together, or a
/// controller retrying): both get the same address, and the claim holds one lease. Raced over several claims.
#[tokio::test]
async fn two_pods_racing_for_a_new_claim_get_one_address() {
    let net = setup("claimsrace", "10.73.0.0/24").await;
    const CLAIMS: usize = 6;
    for i in 0..CLAIMS {
        net.claim(&format!("vm-{i}"), "macvlan").await;
    }
    // The claims reach nobody's cache: admission reads them live.
    for i in 0..CLAIMS {
        let claim = format!("vm-{i}");
        let (a, b) = (
            net.pod(&format!("vm-{i}-a"), &claim, json!({})),
            net.pod(&format!("vm-{i}-b"), &claim, json!({})),
        );
        let (a, b) = tokio::join!(net.must_create(&a), net.must_create(&b));
        assert_eq!(
            (
                net.annotation(&a, "ip_address"),
                net.annotation(&a, "mac_address")
            ),
            (
                net.annotation(&b, "ip_address"),
                net.annotation(&b, "mac_address")
            ),
            "both Pods of claim {claim} have its address and MAC"
        );
        let status = net
            .claims()
            .get_status(&claim)
            .await
            .unwrap()
            .status
            .unwrap();
        assert_eq!(
            status.ips,
            [format!("{}/24", net.annotation(&a, "ip_address"))],
            "claim {claim}'s status"
        );
    }
    until("the losers' leases given back", || async {
        net.leases().await.len() == CLAIMS
    })
    .await;
    let leases = net.leases().await;
    let mut claims: Vec<_> = leases.iter().filter_map(|l| l.spec.claim.clone()).collect();
    claims.sort();
    claims.dedup();
    assert_eq!(claims.len(), CLAIMS, "one lease per claim: {leases:?}");
}
