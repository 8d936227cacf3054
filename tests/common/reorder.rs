//! A mutating webhook ordered after nadipam's that changes every Pod of one namespace, as SR-IOV's resources
//! injector, Vault or Istio do. Configurations are called in name order (`zz-` sorts after `nadipam-`), so
//! the Pod it changes has already been through nadipam, and the apiserver calls nadipam again
//! (`reinvocationPolicy: IfNeeded`) with a new request UID and the Pod carrying nadipam's token and results.
//! Served by the test process, so it outlives any nadipam replica and kube-apiserver restart.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::routing::post;
use json_patch::jsonptr::PointerBuf;
use json_patch::{AddOperation, Patch, PatchOperation};
use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview};
use kube::{Client, ResourceExt};

use super::{DeleteOnDrop, cluster_info, serve_tls, wait_for};

/// The annotation the webhook writes on every Pod it sees (the number of calls so far).
pub const TOUCHED: &str = "chain.test.nadipam.io/touched";

/// nadipam's reservation token on a Pod it admitted.
const RESERVATION: &str = "nadipam.io/reservation";

/// What the webhook saw, beyond the number of calls.
#[derive(Default)]
pub struct Tally {
    /// Pods that already carried nadipam's token: nadipam allocated before this call, and the change made here
    /// has the apiserver call nadipam again for them.
    pub after_nadipam: AtomicUsize,
    /// Of these, dry runs.
    pub after_nadipam_dry: AtomicUsize,
    /// Pods that already carried [`TOUCHED`]: this webhook reinvoked, because a webhook called again after it
    /// (nadipam's reinvocation) changed the Pod once more.
    pub again: AtomicUsize,
    /// Of these, dry runs.
    pub again_dry: AtomicUsize,
}

impl Tally {
    fn record(&self, req: &AdmissionRequest<DynamicObject>) {
        let ann = req
            .object
            .as_ref()
            .and_then(|o| o.metadata.annotations.as_ref());
        if ann.is_some_and(|a| a.contains_key(RESERVATION)) {
            self.after_nadipam.fetch_add(1, Ordering::SeqCst);
            if req.dry_run {
                self.after_nadipam_dry.fetch_add(1, Ordering::SeqCst);
            }
        }
        if ann.is_some_and(|a| a.contains_key(TOUCHED)) {
            self.again.fetch_add(1, Ordering::SeqCst);
            if req.dry_run {
                self.again_dry.fetch_add(1, Ordering::SeqCst);
            }
        }
    }
}

#[derive(Clone)]
struct Counters {
    calls: Arc<AtomicUsize>,
    tally: Arc<Tally>,
}

/// Adds [`TOUCHED`] (the number of calls so far) to every Pod it is sent.
async fn touch(
    State(counters): State<Counters>,
    Json(review): Json<AdmissionReview<DynamicObject>>,
) -> Json<AdmissionReview<DynamicObject>> {
    let response = match TryInto::<AdmissionRequest<DynamicObject>>::try_into(review) {
        Ok(req) => {
            let n = counters.calls.fetch_add(1, Ordering::SeqCst) + 1;
            counters.tally.record(&req);
            let has_map = req
                .object
                .as_ref()
                .is_some_and(|o| o.metadata.annotations.is_some());
            let op = if has_map {
                AddOperation {
                    path: PointerBuf::from_tokens(["metadata", "annotations", TOUCHED]),
                    value: n.to_string().into(),
                }
            } else {
                AddOperation {
                    path: PointerBuf::from_tokens(["metadata", "annotations"]),
                    value: serde_json::json!({ TOUCHED: n.to_string() }),
                }
            };
            let resp = AdmissionResponse::from(&req);
            match resp.with_patch(Patch(vec![PatchOperation::Add(op)])) {
                Ok(r) => r,
                Err(e) => AdmissionResponse::invalid(e.to_string()),
            }
        }
        Err(e) => AdmissionResponse::invalid(e.to_string()),
    };
    Json(response.into_review())
}

/// The running webhook; dropping it removes its configuration.
pub struct Reorderer {
    /// Calls so far (the probes of [`Reorderer::start`] included).
    pub calls: Arc<AtomicUsize>,
    pub tally: Arc<Tally>,
    _handle: axum_server::Handle<std::net::SocketAddr>,
    _guard: DeleteOnDrop,
}

impl Reorderer {
    /// Serves the webhook and registers it for the Pod creates of `ns`; returns once the apiserver calls it
    /// (probed with Pods that ask for no network, which nadipam leaves alone).
    pub async fn start(client: &Client, ns: &str) -> Reorderer {
        Self::start_except(client, ns, None).await
    }

    /// [`Reorderer::start`], leaving out the Pods labelled `skip` (if given).
    pub async fn start_except(client: &Client, ns: &str, skip: Option<&str>) -> Reorderer {
        let counters = Counters {
            calls: Arc::new(AtomicUsize::new(0)),
            tally: Arc::new(Tally::default()),
        };
        let app = axum::Router::new()
            .route("/mutate", post(touch))
            .with_state(counters.clone());
        let (port, handle) = serve_tls(app).await;
        let name = format!("zz-reorder-{ns}");
        let mut config: MutatingWebhookConfiguration = serde_json::from_value(serde_json::json!({
            "metadata": {"name": name},
            "webhooks": [{
                "name": "reorder.test.nadipam.io",
                "clientConfig": {"url": format!("https://127.0.0.1:{port}/mutate")},
                "rules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"],
                           "resources": ["pods"], "scope": "Namespaced"}],
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}},
                "failurePolicy": "Fail", "sideEffects": "None", "reinvocationPolicy": "IfNeeded",
                "admissionReviewVersions": ["v1"], "timeoutSeconds": 10
            }]
        }))
        .expect("webhook literal");
        for wh in config.webhooks.iter_mut().flatten() {
            wh.client_config.ca_bundle = Some(ByteString(cluster_info().webhook_ca_pem()));
            if let Some(label) = skip {
                wh.object_selector = serde_json::from_value(serde_json::json!({
                    "matchExpressions": [{"key": label, "operator": "DoesNotExist"}]
                }))
                .ok();
            }
        }
        let guard = DeleteOnDrop::new("mutatingwebhookconfiguration", &name, None);
        Api::<MutatingWebhookConfiguration>::all(client.clone())
            .create(&PostParams::default(), &config)
            .await
            .unwrap_or_else(|e| panic!("creating mutating webhook configuration {name}: {e}"));
        let r = Reorderer {
            calls: counters.calls,
            tally: counters.tally,
            _handle: handle,
            _guard: guard,
        };
        // Until the apiserver has picked the configuration up, probe with Pods nadipam ignores.
        let pods = Api::<Pod>::namespaced(client.clone(), ns);
        let mut probe = 0;
        wait_for(
            "the apiserver to call the reordering webhook",
            Duration::from_secs(30),
            || {
                probe += 1;
                let pods = pods.clone();
                let p: Pod = serde_json::from_value(serde_json::json!({
                    "metadata": {"name": format!("probe-{probe}")},
                    "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}]}
                }))
                .expect("probe literal");
                async move {
                    let made = pods
                        .create(&PostParams::default(), &p)
                        .await
                        .map_err(|e| e.to_string())?;
                    match made.annotations().get(TOUCHED) {
                        Some(_) => Ok(()),
                        None => Err("not called yet".to_string()),
                    }
                }
            },
        )
        .await;
        r
    }
}
