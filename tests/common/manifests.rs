//! Applying manifests with kubectl and reading back what the webhooks made of them, shared by the admission
//! suites.

use kube::Client;
use kube::api::{Api, ListParams};
use nadipam::api::IPLease;

use super::kubectl;

/// `kubectl apply -f -` of `yaml`; Ok(stdout) or Err(stderr).
pub fn apply(yaml: &str) -> Result<String, String> {
    kubectl(&["apply", "-f", "-"], yaml)
}

/// Asserts that applying `yaml` is refused with a message containing every one of `needles`.
pub fn must_deny(yaml: &str, needles: &[&str]) -> String {
    match apply(yaml) {
        Ok(out) => {
            panic!("expected a denial containing {needles:?}, but apply succeeded: {out}\n{yaml}")
        }
        Err(e) => {
            for n in needles {
                assert!(e.contains(n), "denial {e:?} does not contain {n:?}");
            }
            e
        }
    }
}

/// A Pod (pause container) with `annotations`, as YAML.
pub fn pod_yaml(ns: &str, name: &str, annotations: &[(&str, &str)]) -> String {
    let ann: String = annotations
        .iter()
        .map(|(k, v)| {
            format!(
                "    {k}: {}\n",
                serde_json::to_string(v).unwrap_or_default()
            )
        })
        .collect();
    let ann = if ann.is_empty() {
        String::new()
    } else {
        format!("  annotations:\n{ann}")
    };
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: {ns}\n{ann}spec:\n  containers: [{{name: c, image: registry.k8s.io/pause:3.10}}]\n"
    )
}

/// The IPLeases of a Subnet (by their `nadipam.io/subnet` label).
pub async fn leases_of_subnet(client: &Client, subnet: &str) -> Vec<IPLease> {
    Api::<IPLease>::all(client.clone())
        .list(&ListParams::default().labels(&format!("nadipam.io/subnet={subnet}")))
        .await
        .unwrap_or_else(|e| panic!("listing leases: {e}"))
        .items
}
