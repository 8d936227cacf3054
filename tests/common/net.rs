//! The network most end-to-end tests need: a macvlan NAD whose IPAM is nadipam, and a Subnet for its
//! provider.

use std::time::Duration;

use kube::Client;
use kube::api::{Api, PostParams};
use nadipam::api::{NetworkAttachmentDefinition, Subnet};
use serde_json::json;

use super::DeleteOnDrop;

pub struct Macvlan {
    /// `macvlan.<namespace>`.
    pub provider: String,
    /// `<namespace>-macvlan`.
    pub subnet: String,
    /// Deletes the Subnet (the NAD goes with its namespace).
    pub guard: DeleteOnDrop,
}

/// Creates NAD `<ns>/macvlan` and Subnet `<ns>-macvlan` (IPv4 `cidr`), then gives the webhook's caches a
/// moment to see them.
pub async fn macvlan(client: &Client, ns: &str, cidr: &str) -> Macvlan {
    let provider = format!("macvlan.{ns}");
    let subnet = format!("{ns}-macvlan");
    let config = json!({"cniVersion": "0.3.1", "type": "macvlan", "master": "eth0",
                        "ipam": {"type": "nadipam", "provider": provider}});
    let nad: NetworkAttachmentDefinition = serde_json::from_value(json!({
        "apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
        "metadata": {"name": "macvlan", "namespace": ns},
        "spec": {"config": config.to_string()}
    }))
    .expect("NAD literal");
    Api::<NetworkAttachmentDefinition>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &nad)
        .await
        .unwrap_or_else(|e| panic!("creating NAD {ns}/macvlan: {e}"));
    let s: Subnet = serde_json::from_value(json!({
        "apiVersion": "nadipam.io/v1", "kind": "Subnet",
        "metadata": {"name": subnet},
        // No protocol: left out, it is inferred from cidrBlock, as users usually write it.
        "spec": {"cidrBlock": cidr, "provider": provider}
    }))
    .expect("Subnet literal");
    Api::<Subnet>::all(client.clone())
        .create(&PostParams::default(), &s)
        .await
        .unwrap_or_else(|e| panic!("creating Subnet {subnet}: {e}"));
    let guard = DeleteOnDrop::new("subnet", &subnet, None);
    // The webhook allocates from its caches: give them the new NAD and Subnet.
    tokio::time::sleep(Duration::from_millis(500)).await;
    Macvlan {
        provider,
        subnet,
        guard,
    }
}
