//! Smoke test of the local control plane itself: the version the tests build against, the controllers the
//! allocator relies on (ReplicaSets make Pods, the garbage collector follows ownerReferences, namespaces
//! empty on delete), and admission webhooks reached by URL with the test CA — the path nadipam's webhook takes.

mod common;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use common::{
    DeleteOnDrop, cluster, cluster_info, delete_namespace_and_wait, test_namespace, wait_for,
};
use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(60);

#[tokio::test]
async fn server_is_kubernetes_v1_34() {
    let client = cluster().await;
    let version = client.apiserver_version().await.expect("GET /version");
    assert_eq!(
        (version.major.as_str(), version.minor.as_str()),
        ("1", "34")
    );
    assert!(
        version.git_version.starts_with("v1.34."),
        "server gitVersion {} (built without version ldflags?)",
        version.git_version
    );
}

#[tokio::test]
async fn deployment_makes_pods_and_garbage_collector_follows_owners() {
    let client = cluster().await;
    let (ns, _guard) = test_namespace(&client, "smoke-gc").await;

    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": { "name": "web" },
        "spec": {
            "replicas": 3,
            "selector": { "matchLabels": { "app": "web" } },
            "template": {
                "metadata": { "labels": { "app": "web" } },
                // Never pulled: there are no nodes, the Pods stay Pending.
                "spec": { "containers": [{ "name": "pause", "image": "registry.k8s.io/pause:3.10" }] }
            }
        }
    }))
    .expect("deployment literal");
    deployments
        .create(&PostParams::default(), &deployment)
        .await
        .expect("create deployment");

    // deployment controller -> ReplicaSet -> replicaset controller -> 3 Pods.
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let listed = wait_for("3 Pods of Deployment web", WAIT, || {
        let pods = pods.clone();
        async move {
            let list = pods
                .list(&ListParams::default().labels("app=web"))
                .await
                .map_err(|e| e.to_string())?;
            if list.items.len() == 3 {
                Ok(list.items)
            } else {
                Err(format!("{} Pods", list.items.len()))
            }
        }
    })
    .await;

    let owner = &listed[0];
    let owner_name = owner.metadata.name.clone().expect("pod name");
    let owner_uid = owner.metadata.uid.clone().expect("pod uid");
    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let dependent: ConfigMap = serde_json::from_value(json!({
        "metadata": {
            "name": "owned-by-pod",
            "ownerReferences": [{
                "apiVersion": "v1", "kind": "Pod", "name": owner_name, "uid": owner_uid,
                "blockOwnerDeletion": false
            }]
        },
        "data": { "k": "v" }
    }))
    .expect("configmap literal");
    configmaps
        .create(&PostParams::default(), &dependent)
        .await
        .expect("create owned configmap");
    // While its owner lives, the collector leaves it alone.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        configmaps
            .get_opt("owned-by-pod")
            .await
            .expect("get configmap")
            .is_some(),
        "ConfigMap owned-by-pod vanished while its owner Pod {owner_name} still existed"
    );

    pods.delete(&owner_name, &DeleteParams::default())
        .await
        .expect("delete owner pod");
    wait_for(
        &format!("garbage collection of ConfigMap owned-by-pod after Pod {owner_name} was deleted"),
        WAIT,
        || {
            let configmaps = configmaps.clone();
            async move {
                match configmaps.get_opt("owned-by-pod").await {
                    Ok(None) => Ok(()),
                    Ok(Some(_)) => Err("still there".to_owned()),
                    Err(e) => Err(e.to_string()),
                }
            }
        },
    )
    .await;

    // The ReplicaSet replaces the deleted Pod.
    wait_for("a replacement Pod", WAIT, || {
        let pods = pods.clone();
        let owner_name = owner_name.clone();
        async move {
            let list = pods
                .list(&ListParams::default().labels("app=web"))
                .await
                .map_err(|e| e.to_string())?;
            let names: Vec<String> = list
                .items
                .iter()
                .filter_map(|p| p.metadata.name.clone())
                .collect();
            if names.len() == 3 && !names.contains(&owner_name) {
                Ok(())
            } else {
                Err(format!("Pods {names:?}"))
            }
        }
    })
    .await;

    // The namespace controller empties and removes the namespace (Pods, ReplicaSet, Deployment).
    delete_namespace_and_wait(&client, &ns, WAIT).await;
}

/// Label the test webhook puts on every ConfigMap it admits.
const MUTATED: &str = "smoke.nadipam.io/mutated";

async fn mutate(
    State(calls): State<Arc<AtomicUsize>>,
    Json(review): Json<AdmissionReview<DynamicObject>>,
) -> Json<AdmissionReview<DynamicObject>> {
    let request: AdmissionRequest<DynamicObject> = match review.try_into() {
        Ok(r) => r,
        Err(e) => return Json(AdmissionResponse::invalid(e.to_string()).into_review()),
    };
    calls.fetch_add(1, Ordering::SeqCst);
    let has_labels = request
        .object
        .as_ref()
        .and_then(|o| o.metadata.labels.as_ref())
        .is_some();
    let patch = if has_labels {
        json!([{ "op": "add", "path": format!("/metadata/labels/{}", MUTATED.replace('/', "~1")), "value": "true" }])
    } else {
        json!([{ "op": "add", "path": "/metadata/labels", "value": { MUTATED: "true" } }])
    };
    let patch: json_patch::Patch = serde_json::from_value(patch).expect("patch literal");
    let response = AdmissionResponse::from(&request)
        .with_patch(patch)
        .unwrap_or_else(|e| AdmissionResponse::invalid(e.to_string()));
    Json(response.into_review())
}

#[tokio::test]
async fn apiserver_calls_mutating_webhook_by_url() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cluster_files = cluster_info();
    let client = cluster().await;
    let (ns, _ns_guard) = test_namespace(&client, "smoke-webhook").await;

    // The webhook: TLS with the state dir's webhook certificate, on a free port of 127.0.0.1.
    let calls = Arc::new(AtomicUsize::new(0));
    let app = Router::new()
        .route("/mutate", post(mutate))
        .with_state(calls.clone());
    let (cert, key) = cluster_files.webhook_tls();
    let tls = axum_server::tls_rustls::RustlsConfig::from_pem_file(&cert, &key)
        .await
        .unwrap_or_else(|e| panic!("loading {} / {}: {e}", cert.display(), key.display()));
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
    let port = listener.local_addr().expect("local addr").port();
    listener.set_nonblocking(true).expect("nonblocking");
    let server = axum_server::from_tcp_rustls(listener, tls).expect("webhook server");
    let handle = axum_server::Handle::new();
    let served = tokio::spawn(server.handle(handle.clone()).serve(app.into_make_service()));

    // Scoped to the test namespace, so a leftover can only break that namespace.
    let name = format!("smoke-{ns}");
    let config: MutatingWebhookConfiguration = serde_json::from_value(json!({
        "metadata": { "name": name },
        "webhooks": [{
            "name": "smoke.nadipam.io",
            "clientConfig": { "url": format!("https://127.0.0.1:{port}/mutate") },
            "rules": [{
                "apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"],
                "resources": ["configmaps"], "scope": "Namespaced"
            }],
            "namespaceSelector": { "matchLabels": { "kubernetes.io/metadata.name": ns } },
            "failurePolicy": "Fail",
            "sideEffects": "None",
            "admissionReviewVersions": ["v1"],
            "timeoutSeconds": 5
        }]
    }))
    .expect("webhook configuration literal");
    let mut config = config;
    config.webhooks.as_mut().expect("webhooks")[0]
        .client_config
        .ca_bundle = Some(ByteString(cluster_files.webhook_ca_pem()));
    let configs: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    configs
        .create(&PostParams::default(), &config)
        .await
        .expect("create mutating webhook configuration");
    let _config_guard = DeleteOnDrop::new("mutatingwebhookconfiguration", &name, None);

    // The apiserver picks the configuration up from its informer within a moment: create probes until one
    // comes back mutated, then check a fresh create is mutated too.
    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let mut probes = 0;
    wait_for("the apiserver to call the webhook", WAIT, || {
        let configmaps = configmaps.clone();
        probes += 1;
        let n = probes;
        async move {
            let cm: ConfigMap =
                serde_json::from_value(json!({ "metadata": { "name": format!("probe-{n}") } }))
                    .expect("configmap literal");
            let created = configmaps
                .create(&PostParams::default(), &cm)
                .await
                .map_err(|e| e.to_string())?;
            if created
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(MUTATED))
                .is_some()
            {
                Ok(())
            } else {
                Err("created without the webhook's label".to_owned())
            }
        }
    })
    .await;

    let before = calls.load(Ordering::SeqCst);
    let labelled: ConfigMap = serde_json::from_value(json!({
        "metadata": { "name": "labelled", "labels": { "app": "x" } }
    }))
    .expect("configmap literal");
    let created = configmaps
        .create(&PostParams::default(), &labelled)
        .await
        .expect("create labelled configmap");
    let labels = created.metadata.labels.unwrap_or_default();
    assert_eq!(
        labels,
        BTreeMap::from([
            ("app".to_owned(), "x".to_owned()),
            (MUTATED.to_owned(), "true".to_owned())
        ])
    );
    assert_eq!(
        calls.load(Ordering::SeqCst),
        before + 1,
        "one create, one webhook call"
    );

    // A create elsewhere is outside the namespaceSelector: no call.
    let other: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let outside: ConfigMap =
        serde_json::from_value(json!({ "metadata": { "generateName": "smoke-outside-" } }))
            .expect("configmap literal");
    let created = other
        .create(&PostParams::default(), &outside)
        .await
        .expect("create configmap in default");
    assert!(
        created.metadata.labels.is_none(),
        "webhook ran outside its namespace"
    );
    assert_eq!(calls.load(Ordering::SeqCst), before + 1);
    other
        .delete(
            &created.metadata.name.expect("generated name"),
            &DeleteParams::default(),
        )
        .await
        .expect("delete configmap in default");

    configs
        .delete(&name, &DeleteParams::default())
        .await
        .expect("delete webhook configuration");
    handle.shutdown();
    served.await.expect("join").expect("webhook server");
}
