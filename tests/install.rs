//! The install story on the real control plane: the Helm chart (lint, render, server-side dry run, install and
//! uninstall, its RBAC running a real server), the chart agreeing with what the Rust code generates (CRDs,
//! webhook configurations, cert-manager objects, manifests/install.yaml), self-managed certificates (two
//! replicas agreeing on one Secret, CA and serving rotation while Pods are created without one failure), and
//! the node agent writing a kubeconfig the plugin's identity can use and nothing more.
//!
//! Tests that run nadipam servers hold [`SERIAL`]: two sets of webhooks for the same Pods would both allocate.
//! Webhook configurations get names containing `-e2e-`, so a crashed run's leftovers are removed by the next
//! server start (tests/common/server.rs).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::server::{free_port, install_crds, run, spawn, wait_established, wait_for_log};
use common::{DeleteOnDrop, cluster, cluster_info, run_with_input, test_namespace, wait_for};
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::core::v1::{Pod, Secret};
use k8s_openapi::api::events::v1::Event as K8sEvent;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use nadipam::api::{IPLease, LeasePhase};
use nadipam::certs::{CertManager, ROTATE_ANNOTATION, Settings, Targets};
use nadipam::webhook::config::{self, Endpoint, Registration};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use serde_json::{Value, json};
use tokio::io::copy_bidirectional;
use tokio::net::{TcpListener, TcpStream};

/// Held by every test that runs a nadipam server.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const WAIT: Duration = Duration::from_secs(60);

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn chart() -> PathBuf {
    repo().join("manifests/chart/nadipam")
}

fn short_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..8].to_string()
}

fn output(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"))
}

/// What most tests start from: a client, the CRDs installed, a fresh namespace `<prefix>-<random>` (deleted
/// when the guard drops) and a short random id for cluster-scoped names.
async fn bed(prefix: &str) -> (Client, String, DeleteOnDrop, String) {
    let client = cluster().await;
    install_crds(cluster_info());
    let (ns, guard) = test_namespace(&client, prefix).await;
    (client, ns, guard, short_id())
}

fn helm() -> Command {
    let c = cluster_info();
    let mut cmd = Command::new(c.bin("helm"));
    cmd.arg("--kubeconfig").arg(&c.kubeconfig);
    cmd
}

/// `helm template <release> <chart> -n <ns> --include-crds` with `--set` values, as YAML text.
fn template(release: &str, ns: &str, sets: &[&str]) -> String {
    let mut cmd = helm();
    cmd.args(["template", release])
        .arg(chart())
        .args(["--namespace", ns, "--include-crds"]);
    for s in sets {
        cmd.args(["--set", s]);
    }
    run(&mut cmd)
}

/// Every YAML document of `text`, as JSON values (empty documents dropped).
fn documents(text: &str) -> Vec<Value> {
    let docs: Vec<Value> = serde_saphyr::from_multiple(text)
        .unwrap_or_else(|e| panic!("rendered YAML does not parse: {e}\n{text}"));
    docs.into_iter().filter(|v| !v.is_null()).collect()
}

fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| {
            let have: Vec<String> = docs
                .iter()
                .map(|d| format!("{}/{}", d["kind"], d["metadata"]["name"]))
                .collect();
            panic!("the chart renders no {kind} {name}; it renders {have:?}")
        })
}

// --- the chart agrees with the code ----------------------------------------------------------------------

#[test]
fn chart_crds_are_the_generated_crds() {
    let generated: BTreeMap<String, String> = nadipam::api::crds()
        .into_iter()
        .map(|(file, crd)| {
            let yaml = nadipam::api::crd_yaml(&crd).unwrap_or_else(|e| panic!("{file}: {e}"));
            (file.to_string(), yaml)
        })
        .collect();
    for dir in ["manifests/crds", "manifests/chart/nadipam/crds"] {
        let mut files: Vec<String> = std::fs::read_dir(repo().join(dir))
            .unwrap_or_else(|e| panic!("reading {dir}: {e}"))
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        files.sort();
        assert_eq!(
            files,
            generated.keys().cloned().collect::<Vec<_>>(),
            "{dir}/ must hold exactly the generated CRDs; regenerate with `cargo run --bin crdgen -- --out manifests/crds && cp manifests/crds/*.yaml manifests/chart/nadipam/crds/`"
        );
        for (file, yaml) in &generated {
            let on_disk = std::fs::read_to_string(repo().join(dir).join(file))
                .unwrap_or_else(|e| panic!("reading {dir}/{file}: {e}"));
            assert!(
                &on_disk == yaml,
                "{dir}/{file} differs from what src/api/ generates; regenerate with `cargo run --bin crdgen -- --out manifests/crds && cp manifests/crds/*.yaml manifests/chart/nadipam/crds/`"
            );
        }
    }
}

#[test]
fn helm_lint_is_clean_in_both_certificate_modes() {
    cluster_info();
    for sets in [vec![], vec!["certManager.enabled=true"]] {
        let mut cmd = helm();
        cmd.args(["lint", "--strict"]).arg(chart());
        for s in &sets {
            cmd.args(["--set", s]);
        }
        let out = run(&mut cmd);
        assert!(
            out.contains("1 chart(s) linted, 0 chart(s) failed")
                && !out.contains("[WARNING]")
                && !out.contains("[ERROR]"),
            "helm lint {sets:?}:\n{out}"
        );
    }
}

#[test]
fn a_bad_value_is_refused_by_the_schema_naming_it() {
    cluster_info();
    let out = output(
        helm()
            .args(["template", "x"])
            .arg(chart())
            .args(["--set", "certs.validity=1y"]),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "1y was accepted");
    assert!(
        err.contains("at '/certs/validity': '1y' does not match pattern '^[1-9][0-9]*h$'"),
        "{err}"
    );
}

#[test]
fn install_yaml_is_the_rendered_chart() {
    let helm = cluster_info().bin("helm");
    let out = output(
        Command::new(repo().join("manifests/render-install.sh"))
            .arg("--check")
            .env("HELM", helm),
    );
    assert!(
        out.status.success(),
        "manifests/install.yaml is stale; run manifests/render-install.sh\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The chart's webhook configurations, without chart-only metadata, next to the Rust-generated ones.
fn assert_webhooks_equal(docs: &[Value], reg: &Registration) {
    let strip = |mut v: Value| {
        if let Some(m) = v["metadata"].as_object_mut() {
            m.retain(|k, _| k == "name");
        }
        if let Some(o) = v.as_object_mut() {
            o.remove("apiVersion");
            o.remove("kind");
        }
        v
    };
    let m = serde_json::to_value(reg.mutating()).unwrap_or_default();
    let v = serde_json::to_value(reg.validating()).unwrap_or_default();
    for (kind, want) in [
        ("MutatingWebhookConfiguration", m),
        ("ValidatingWebhookConfiguration", v),
    ] {
        let want = strip(want);
        let name = want["metadata"]["name"].as_str().unwrap_or_default();
        let got = strip(find(docs, kind, name).clone());
        assert_eq!(
            got,
            want,
            "the chart's {kind} {name} differs from src/webhook/config.rs (`cargo run --bin crdgen -- webhooks` prints it):\n--- chart\n{}\n--- rust\n{}",
            serde_saphyr::to_string(&got).unwrap_or_default(),
            serde_saphyr::to_string(&want).unwrap_or_default()
        );
    }
}

#[test]
fn chart_webhooks_equal_the_generated_ones() {
    cluster_info();
    // Defaults: the Service, nadipam-system excluded.
    let docs = documents(&template("nadipam", "nadipam-system", &[]));
    assert_webhooks_equal(
        &docs,
        &Registration {
            endpoint: Endpoint::Service {
                namespace: "nadipam-system".into(),
                name: "nadipam-webhook".into(),
                port: 443,
            },
            ca_bundle: vec![],
            exclude_namespaces: vec!["nadipam-system".into()],
            suffix: String::new(),
            timeout_seconds: 10,
            default_network: false,
        },
    );
    // Every knob that changes the configurations.
    let docs = documents(&template(
        "r",
        "ipam",
        &[
            "webhook.nameSuffix=-b",
            "webhook.timeoutSeconds=7",
            "webhook.excludeNamespaces={zz,aa,ipam}",
            "service.name=hook",
            "service.port=8443",
            "server.defaultNetwork=kube-system/ovs-conf",
        ],
    ));
    assert_webhooks_equal(
        &docs,
        &Registration {
            endpoint: Endpoint::Service {
                namespace: "ipam".into(),
                name: "hook".into(),
                port: 8443,
            },
            ca_bundle: vec![],
            exclude_namespaces: vec!["ipam".into(), "zz".into(), "aa".into()],
            suffix: "-b".into(),
            timeout_seconds: 7,
            default_network: true,
        },
    );
    let docs = documents(&template(
        "r",
        "ipam",
        &["webhook.url=https://10.1.2.3:8443/"],
    ));
    assert_webhooks_equal(
        &docs,
        &Registration {
            endpoint: Endpoint::Url("https://10.1.2.3:8443".into()),
            ca_bundle: vec![],
            exclude_namespaces: vec!["ipam".into()],
            suffix: String::new(),
            timeout_seconds: 10,
            default_network: false,
        },
    );
}

#[test]
fn chart_cert_manager_objects_equal_what_the_server_applies() {
    cluster_info();
    let ns = "nadipam-system";
    for (sets, issuer) in [
        (
            vec![
                "certManager.enabled=true",
                "certs.extraSANs={127.0.0.1,hook.example}",
            ],
            None,
        ),
        (
            vec![
                "certManager.enabled=true",
                "certManager.issuerRef.name=corp",
                "certManager.issuerRef.kind=ClusterIssuer",
            ],
            Some("ClusterIssuer/corp".to_string()),
        ),
    ] {
        let docs = documents(&template("nadipam", ns, &sets));
        let extra_sans = if issuer.is_none() {
            vec!["127.0.0.1".to_string(), "hook.example".to_string()]
        } else {
            vec![]
        };
        let want = CertManager::objects(&Settings {
            namespace: ns.into(),
            secret: "nadipam-webhook-tls".into(),
            service: "nadipam-webhook".into(),
            extra_sans,
            serving_validity: Duration::from_secs(8760 * 3600),
            renew_before: Some(Duration::from_secs(2920 * 3600)),
            ca_validity: Duration::from_secs(43800 * 3600),
            issuer,
            poll: Duration::from_secs(10),
            propagation: Duration::from_secs(60),
            targets: config::targets(""),
        })
        .unwrap_or_else(|e| panic!("{e}"));
        let rendered: Vec<&Value> = docs
            .iter()
            .filter(|d| d["apiVersion"] == "cert-manager.io/v1")
            .collect();
        let mut expected: Vec<Value> = want
            .issuers
            .iter()
            .map(|i| serde_json::to_value(i).unwrap_or_default())
            .collect();
        expected.extend(
            want.certificates
                .iter()
                .map(|c| serde_json::to_value(c).unwrap_or_default()),
        );
        assert_eq!(rendered.len(), expected.len(), "{sets:?}: {rendered:?}");
        for w in &expected {
            let kind = w["kind"].as_str().unwrap_or_default();
            let name = w["metadata"]["name"].as_str().unwrap_or_default();
            let got = find(&docs, kind, name);
            assert_eq!(
                got["spec"], w["spec"],
                "{sets:?}: the chart's {kind} {name} differs from src/certs/certmanager.rs"
            );
        }
        for (kind, name) in [
            ("MutatingWebhookConfiguration", "nadipam-mutating"),
            ("ValidatingWebhookConfiguration", "nadipam-validating"),
        ] {
            assert_eq!(
                find(&docs, kind, name)["metadata"]["annotations"]["cert-manager.io/inject-ca-from"],
                "nadipam-system/nadipam-webhook-tls"
            );
        }
        let server = &find(&docs, "Deployment", "nadipam-server")["spec"]["template"]["spec"];
        let args = server["containers"][0]["args"].to_string();
        assert!(args.contains("--cert-mode=files"), "{args}");
        assert_eq!(
            server["volumes"][0]["secret"]["secretName"],
            "nadipam-webhook-tls"
        );
        // cert-manager's cainjector publishes caBundle: the server gets no rights on Secrets or webhooks.
        let role = find(&docs, "Role", "nadipam-server").to_string();
        let cluster_role = find(&docs, "ClusterRole", "nadipam-server").to_string();
        assert!(!role.contains("secrets"), "{role}");
        assert!(
            !cluster_role.contains("webhookconfigurations"),
            "{cluster_role}"
        );
    }
}

/// The server container's args, as JSON text, rendered with `sets`.
fn server_args(sets: &[&str]) -> String {
    let docs = documents(&template("nadipam", "nadipam-system", sets));
    find(&docs, "Deployment", "nadipam-server")["spec"]["template"]["spec"]["containers"][0]["args"]
        .to_string()
}

#[test]
fn allocation_events_are_off_unless_the_chart_value_turns_them_on() {
    cluster_info();
    let default = server_args(&[]);
    assert!(!default.contains("--allocation-events"), "{default}");
    let on = server_args(&["server.allocationEvents=true"]);
    assert!(on.contains("\"--allocation-events\""), "{on}");
}

#[test]
fn leases_are_bound_only_when_the_chart_value_asks() {
    cluster_info();
    let default = server_args(&[]);
    assert!(!default.contains("--bind-leases"), "{default}");
    let on = server_args(&["server.bindLeases=true"]);
    assert!(on.contains("\"--bind-leases\""), "{on}");
}

#[test]
fn bind_rate_comes_from_the_chart_value() {
    cluster_info();
    let default = server_args(&[]);
    assert!(default.contains("\"--bind-rate=20\""), "{default}");
    let off = server_args(&["server.bindRate=0"]);
    assert!(off.contains("\"--bind-rate=0\""), "{off}");
}

#[test]
fn default_network_comes_from_the_chart_value() {
    cluster_info();
    let default = server_args(&[]);
    assert!(!default.contains("--default-network"), "{default}");
    let on = server_args(&["server.defaultNetwork=kube-system/ovs-conf"]);
    assert!(
        on.contains("\"--default-network=kube-system/ovs-conf\""),
        "{on}"
    );
}

#[test]
fn chart_hardens_every_pod() {
    cluster_info();
    let docs = documents(&template("nadipam", "nadipam-system", &[]));
    let d = &find(&docs, "Deployment", "nadipam-server")["spec"];
    assert_eq!(d["replicas"], 2);
    let pod = &d["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    let c = &pod["containers"][0];
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(c["securityContext"]["capabilities"]["drop"], json!(["ALL"]));
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert!(c["resources"]["requests"]["cpu"].is_string());
    assert!(
        pod["affinity"]["podAntiAffinity"].is_object(),
        "{}",
        pod["affinity"]
    );
    assert_eq!(
        find(&docs, "PodDisruptionBudget", "nadipam-server")["spec"]["maxUnavailable"],
        1
    );
    let agent = &find(&docs, "DaemonSet", "nadipam-node-agent")["spec"]["template"]["spec"];
    let ac = &agent["containers"][0];
    assert_eq!(ac["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(
        ac["securityContext"]["capabilities"]["drop"],
        json!(["ALL"])
    );
    assert_eq!(agent["automountServiceAccountToken"], false);
    assert_eq!(agent["volumes"][0]["hostPath"]["path"], "/opt/cni/bin");
    assert_eq!(
        agent["volumes"][1]["hostPath"]["path"],
        "/etc/cni/net.d/nadipam.d"
    );
    // The plugin's default kubeconfig path, as the agent writes it through the mount.
    assert!(
        ac["args"].to_string().contains(&format!(
            "--kubeconfig=/host{}",
            nadipam::cni::DEFAULT_KUBECONFIG
        )),
        "{}",
        ac["args"]
    );
    let agent_role = find(&docs, "ClusterRole", "nadipam-node-agent");
    assert_eq!(
        agent_role["rules"],
        json!([{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}])
    );
    let aliased = documents(&template(
        "nadipam",
        "nadipam-system",
        &["nodeAgent.kubeOvnAlias=true"],
    ));
    assert!(
        find(&aliased, "DaemonSet", "nadipam-node-agent")["spec"]["template"]["spec"]["containers"]
            [0]["args"]
            .to_string()
            .contains("--kube-ovn-alias")
    );
}

/// The server container, its Pod's volumes and the Service, rendered with `sets`.
fn server_parts(sets: &[&str]) -> (Value, Value, Value) {
    let docs = documents(&template("nadipam", "nadipam-system", sets));
    let pod = &find(&docs, "Deployment", "nadipam-server")["spec"]["template"]["spec"];
    (
        pod["containers"][0].clone(),
        pod["volumes"].clone(),
        find(&docs, "Service", "nadipam-webhook").clone(),
    )
}

#[test]
fn probes_and_metrics_use_their_own_port_unless_turned_off() {
    cluster_info();
    let (c, _, svc) = server_parts(&[]);
    assert!(
        c["args"]
            .to_string()
            .contains("\"--metrics-listen=0.0.0.0:8080\""),
        "{}",
        c["args"]
    );
    assert_eq!(
        c["ports"],
        json!([
            {"name": "https", "containerPort": 8443, "protocol": "TCP"},
            {"name": "metrics", "containerPort": 8080, "protocol": "TCP"}
        ])
    );
    for probe in ["readinessProbe", "livenessProbe"] {
        assert_eq!(c[probe]["httpGet"]["port"], "metrics", "{probe}");
        assert_eq!(c[probe]["httpGet"]["scheme"], "HTTP", "{probe}");
    }
    assert_eq!(
        svc["spec"]["ports"][1],
        json!({"name": "metrics", "port": 8080, "targetPort": "metrics", "protocol": "TCP"})
    );
    // Off: everything on the HTTPS port, as before the metrics port existed.
    let (c, _, svc) = server_parts(&["server.metricsListen="]);
    assert!(!c["args"].to_string().contains("--metrics-listen"));
    assert_eq!(c["ports"].as_array().map(Vec::len), Some(1));
    for probe in ["readinessProbe", "livenessProbe"] {
        assert_eq!(c[probe]["httpGet"]["port"], "https", "{probe}");
        assert_eq!(c[probe]["httpGet"]["scheme"], "HTTPS", "{probe}");
    }
    assert_eq!(svc["spec"]["ports"].as_array().map(Vec::len), Some(1));
}

/// `helm template` of the chart with extra arguments; Ok(stdout) or Err(stderr).
fn try_template(args: &[&str]) -> Result<String, String> {
    let out = output(helm().args(["template", "nadipam"]).arg(chart()).args(args));
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[test]
fn the_chart_states_the_kubernetes_it_needs() {
    cluster_info();
    // The CRDs' CEL rules use isIP/isCIDR/ip.isCanonical, which Kubernetes 1.31 introduced.
    let refused = try_template(&["--kube-version", "1.30.0"]).expect_err("1.30 refused");
    assert!(
        refused.contains(
            "chart requires kubeVersion: >=1.31.0-0 which is incompatible with Kubernetes v1.30.0"
        ),
        "{refused}"
    );
    try_template(&["--kube-version", "1.31.0"]).expect("1.31 accepted");
}

#[test]
fn servers_are_critical_and_linux_only_by_default() {
    cluster_info();
    let docs = documents(&template("nadipam", "nadipam-system", &[]));
    let server = &find(&docs, "Deployment", "nadipam-server")["spec"]["template"]["spec"];
    assert_eq!(server["priorityClassName"], "system-cluster-critical");
    assert_eq!(server["nodeSelector"], json!({"kubernetes.io/os": "linux"}));
    let agent = &find(&docs, "DaemonSet", "nadipam-node-agent")["spec"]["template"]["spec"];
    assert_eq!(agent["priorityClassName"], "system-node-critical");
    assert_eq!(agent["nodeSelector"], json!({"kubernetes.io/os": "linux"}));
    // `helm test --logs` reads the test Pod after it succeeded: it is kept until the next test run.
    let test_pod = find(&docs, "Pod", "nadipam-test-webhook");
    assert_eq!(
        test_pod["metadata"]["annotations"]["helm.sh/hook-delete-policy"],
        "before-hook-creation"
    );
}

#[test]
fn service_monitor_and_network_policy_render_behind_their_values() {
    cluster_info();
    let docs = documents(&template("nadipam", "nadipam-system", &[]));
    assert!(
        !docs
            .iter()
            .any(|d| d["kind"] == "ServiceMonitor" || d["kind"] == "NetworkPolicy")
    );
    let docs = documents(&template(
        "nadipam",
        "nadipam-system",
        &[
            "serviceMonitor.enabled=true",
            "serviceMonitor.labels.release=prom",
            "networkPolicy.enabled=true",
            "networkPolicy.admissionFrom[0].ipBlock.cidr=10.0.0.10/32",
        ],
    ));
    let sm = find(&docs, "ServiceMonitor", "nadipam");
    assert_eq!(sm["metadata"]["labels"]["release"], "prom");
    assert_eq!(
        sm["spec"]["endpoints"],
        json!([{"port": "metrics", "path": "/metrics", "interval": "30s"}])
    );
    let svc = find(&docs, "Service", "nadipam-webhook");
    for (k, v) in sm["spec"]["selector"]["matchLabels"]
        .as_object()
        .into_iter()
        .flatten()
    {
        assert_eq!(
            &svc["metadata"]["labels"][k], v,
            "the ServiceMonitor selects the Service by {k}"
        );
    }
    let np = find(&docs, "NetworkPolicy", "nadipam-server");
    assert_eq!(
        np["spec"]["ingress"],
        json!([
            {"ports": [{"port": "https", "protocol": "TCP"}], "from": [{"ipBlock": {"cidr": "10.0.0.10/32"}}]},
            {"ports": [{"port": "metrics", "protocol": "TCP"}]}
        ])
    );
    let refused = try_template(&[
        "--set",
        "serviceMonitor.enabled=true",
        "--set",
        "server.metricsListen=",
    ])
    .expect_err("a ServiceMonitor without the metrics port");
    assert!(
        refused.contains("serviceMonitor.enabled needs server.metricsListen"),
        "{refused}"
    );
}

#[tokio::test]
async fn the_chart_works_as_a_subchart() {
    let (_client, ns, _g, id) = bed("inst-sub").await;
    let dir = tempfile::tempdir().expect("temp dir");
    let parent = dir.path().join("platform");
    std::fs::create_dir_all(parent.join("charts")).expect("charts dir");
    std::fs::write(
        parent.join("Chart.yaml"),
        "apiVersion: v2\nname: platform\nversion: 1.0.0\ndependencies:\n  - name: nadipam\n    version: 0.1.0\n",
    )
    .expect("Chart.yaml");
    std::fs::write(
        parent.join("values.yaml"),
        "global:\n  imageRegistry: registry.example.com\n",
    )
    .expect("values.yaml");
    run(Command::new("cp")
        .arg("-r")
        .arg(chart())
        .arg(parent.join("charts/nadipam")));
    // Helm adds `global` to every subchart's values: the schema must accept it.
    let release = format!("platform-{id}");
    let text = run(helm().args(["template", &release]).arg(&parent).args([
        "--namespace",
        &ns,
        "--set",
        "nadipam.image.repository=registry.example.com/nadipam",
    ]));
    let docs = documents(&text);
    let server = find(&docs, "Deployment", &format!("{release}-nadipam-server"));
    assert_eq!(
        server["spec"]["template"]["spec"]["containers"][0]["image"],
        "registry.example.com/nadipam:0.1.0"
    );
    assert_eq!(dry_run(&text).len(), docs.len());
}

#[test]
fn client_ca_comes_from_a_secret_or_a_configmap() {
    cluster_info();
    let (c, volumes, _) = server_parts(&[]);
    assert!(
        !c["args"].to_string().contains("--client-"),
        "{}",
        c["args"]
    );
    assert!(volumes.is_null(), "{volumes}");

    let (c, volumes, _) = server_parts(&[
        "server.clientAuth.configMapName=apiserver-ca",
        "server.clientAuth.key=bundle.pem",
        "server.clientAuth.names={kube-apiserver-webhook-client,other}",
    ]);
    let args = c["args"].to_string();
    for want in [
        "\"--client-ca=/etc/nadipam/client-ca/ca.crt\"",
        "\"--client-name=kube-apiserver-webhook-client\"",
        "\"--client-name=other\"",
    ] {
        assert!(args.contains(want), "{want} not in {args}");
    }
    assert_eq!(
        c["volumeMounts"],
        json!([{"name": "client-ca", "mountPath": "/etc/nadipam/client-ca", "readOnly": true}])
    );
    assert_eq!(
        volumes,
        json!([{"name": "client-ca", "configMap": {"name": "apiserver-ca",
            "items": [{"key": "bundle.pem", "path": "ca.crt"}]}}])
    );

    // A Secret, next to cert-manager's serving certificate.
    let (c, volumes, _) = server_parts(&[
        "server.clientAuth.secretName=apiserver-ca",
        "certManager.enabled=true",
    ]);
    assert_eq!(c["volumeMounts"].as_array().map(Vec::len), Some(2));
    assert_eq!(
        volumes[1],
        json!({"name": "client-ca", "secret": {"secretName": "apiserver-ca",
            "items": [{"key": "ca.crt", "path": "ca.crt"}]}})
    );

    for (sets, says) in [
        (
            vec![
                "server.clientAuth.secretName=a",
                "server.clientAuth.configMapName=b",
            ],
            "set secretName or configMapName, not both",
        ),
        (
            vec!["server.clientAuth.names={x}"],
            "server.clientAuth.names needs server.clientAuth.secretName or configMapName",
        ),
    ] {
        let mut cmd = helm();
        cmd.args(["template", "x"]).arg(chart());
        for s in &sets {
            cmd.args(["--set", s]);
        }
        let out = output(&mut cmd);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{sets:?} was accepted");
        assert!(err.contains(says), "{sets:?}: {err}");
    }
}

// --- the chart on the apiserver --------------------------------------------------------------------------

/// `kubectl apply --dry-run=server` of `yaml`; panics with the apiserver's answer unless every object is
/// accepted, and returns the `<kind>/<name>` lines kubectl printed.
fn dry_run(yaml: &str) -> Vec<String> {
    let out = run_with_input(
        cluster_info()
            .kubectl()
            .args(["apply", "--dry-run=server", "-o", "name", "-f", "-"]),
        yaml,
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "the apiserver refused part of the rendered chart:\n{}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout.lines().map(str::to_string).collect()
}

#[tokio::test]
async fn rendered_chart_is_accepted_by_the_apiserver() {
    let (_client, ns, _g, id) = bed("inst-dry").await;
    let release = format!("nadipam-dry-{id}");
    let text = template(&release, &ns, &[]);
    let accepted = dry_run(&text);
    assert_eq!(
        accepted.len(),
        documents(&text).len(),
        "not every object was applied: {accepted:?}"
    );
    for want in [
        "customresourcedefinition.apiextensions.k8s.io/subnets.nadipam.io",
        "mutatingwebhookconfiguration.admissionregistration.k8s.io/nadipam-mutating",
        "validatingwebhookconfiguration.admissionregistration.k8s.io/nadipam-validating",
        &format!("deployment.apps/{release}-server"),
        &format!("daemonset.apps/{release}-node-agent"),
        &format!("clusterrole.rbac.authorization.k8s.io/{release}-server"),
        &format!("role.rbac.authorization.k8s.io/{release}-server"),
        &format!("poddisruptionbudget.policy/{release}-server"),
        "service/nadipam-webhook",
    ] {
        assert!(
            accepted.iter().any(|l| l.starts_with(want)),
            "{want} not in {accepted:?}"
        );
    }
    // cert-manager mode: its Issuers and Certificates are checked against cert-manager's CRDs by
    // certs_manifests_apply_on_cert_managers_crds (certs/ holds them as rendered); everything else here.
    let text = template(&release, &ns, &["certManager.enabled=true"]);
    let docs = documents(&text);
    let (foreign, ours): (Vec<&Value>, Vec<&Value>) = docs
        .iter()
        .partition(|d| d["apiVersion"] == "cert-manager.io/v1");
    assert_eq!(foreign.len(), 4, "{foreign:?}");
    let yaml: String = ours
        .iter()
        .map(|d| format!("---\n{}", serde_saphyr::to_string(d).unwrap_or_default()))
        .collect();
    assert_eq!(dry_run(&yaml).len(), ours.len());
    // With a client CA: the volume and its mount are accepted too.
    let text = template(
        &release,
        &ns,
        &[
            "server.clientAuth.secretName=apiserver-ca",
            "server.clientAuth.names={kube-apiserver-webhook-client}",
        ],
    );
    assert_eq!(dry_run(&text).len(), documents(&text).len());
}

/// The cert-manager release whose CRDs check certs/: its Go module ships them in deploy/crds/.
const CERT_MANAGER: &str = "github.com/cert-manager/cert-manager@v1.19.2";
/// The module's checksum (go.sum's `h1:`), so a different download is refused.
const CERT_MANAGER_SUM: &str = "h1:jSprN1h5pgNDSl7HClAmIzXuTxic/5FXJ32kbQHqjlM=";

/// cert-manager's CRDs for Issuers, ClusterIssuers and Certificates, installed once from its Go module
/// (the module proxy is the one source of cert-manager the test bed reaches).
fn install_cert_manager_crds() {
    static DONE: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    DONE.get_or_init(|| {
        let info: Value = serde_json::from_str(&run(Command::new("go")
            .args(["mod", "download", "-json", CERT_MANAGER])
            .current_dir(std::env::temp_dir())))
        .expect("go mod download -json prints JSON");
        assert_eq!(info["Sum"], CERT_MANAGER_SUM, "{CERT_MANAGER}: {info}");
        let crds = Path::new(info["Dir"].as_str().expect("Dir")).join("deploy/crds");
        let mut apply = cluster_info().kubectl();
        apply.args(["apply", "--server-side", "--force-conflicts"]);
        for kind in ["issuers", "clusterissuers", "certificates"] {
            apply
                .arg("-f")
                .arg(crds.join(format!("cert-manager.io_{kind}.yaml")));
        }
        run(&mut apply);
        wait_established(
            cluster_info(),
            &[
                "issuers.cert-manager.io",
                "clusterissuers.cert-manager.io",
                "certificates.cert-manager.io",
            ],
        );
    });
}

#[tokio::test]
async fn certs_manifests_apply_on_cert_managers_crds() {
    let (_client, ns, _g, _id) = bed("inst-certs").await;
    install_cert_manager_crds();
    for (file, want) in [
        (
            "certs/cert-manager.yaml",
            &[
                "certificate.cert-manager.io/nadipam-webhook-tls-ca",
                "certificate.cert-manager.io/nadipam-webhook-tls",
                "issuer.cert-manager.io/nadipam-webhook-tls-selfsigned",
                "issuer.cert-manager.io/nadipam-webhook-tls-ca",
            ][..],
        ),
        (
            "certs/own-ca.yaml",
            &[
                "issuer.cert-manager.io/nadipam-own-ca",
                "certificate.cert-manager.io/nadipam-webhook-tls",
            ][..],
        ),
    ] {
        let text = std::fs::read_to_string(repo().join(file)).expect(file);
        let yaml = text.replace("namespace: nadipam-system", &format!("namespace: {ns}"));
        let out = run_with_input(
            cluster_info()
                .kubectl()
                .args(["apply", "--server-side", "-o", "name", "-f", "-"]),
            &yaml,
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{file}: the apiserver refused it:\n{}\n{stdout}",
            String::from_utf8_lossy(&out.stderr)
        );
        let applied: Vec<&str> = stdout.lines().collect();
        assert_eq!(applied, want, "{file}");
    }
    // The schema is checked: a Certificate without an issuerRef is refused.
    let out = run_with_input(
        cluster_info()
            .kubectl()
            .args(["apply", "--dry-run=server", "-f", "-"]),
        &format!(
            "apiVersion: cert-manager.io/v1\nkind: Certificate\nmetadata: {{name: broken, namespace: {ns}}}\n\
             spec: {{secretName: broken}}\n"
        ),
    );
    assert!(
        !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("issuerRef"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `kubectl auth can-i <verb> <resource> --as <user>`.
fn can_i(user: &str, ns: &str, verb: &str, resource: &str) -> bool {
    let out = output(
        cluster_info()
            .kubectl()
            .args(["auth", "can-i", verb, resource, "-n", ns, "--as", user]),
    );
    String::from_utf8_lossy(&out.stdout).trim() == "yes"
}

/// A Helm release, uninstalled (and waited for) when dropped.
struct Release {
    name: String,
    ns: String,
}

impl Release {
    fn install(name: &str, ns: &str, sets: &[String]) -> Release {
        let mut cmd = helm();
        cmd.args(["install", name])
            .arg(chart())
            .args(["--namespace", ns]);
        for s in sets {
            cmd.args(["--set", s]);
        }
        run(&mut cmd);
        Release {
            name: name.to_string(),
            ns: ns.to_string(),
        }
    }
}

impl Drop for Release {
    fn drop(&mut self) {
        let out = helm()
            .args(["uninstall", &self.name, "--namespace", &self.ns, "--wait"])
            .output();
        if let Ok(o) = out
            && !o.status.success()
            && !String::from_utf8_lossy(&o.stderr).contains("not found")
        {
            eprintln!(
                "cleanup: helm uninstall {} failed: {}",
                self.name,
                String::from_utf8_lossy(&o.stderr)
            );
        }
    }
}

#[tokio::test]
async fn helm_install_registers_everything_and_uninstall_removes_it() {
    let (client, ns, _g, id) = bed("inst-helm").await;
    let release = format!("nadipam-{id}");
    let suffix = format!("-e2e-helm-{id}");
    // No server runs (no kubelet): the webhooks only match objects labelled for this test, so nothing
    // else in the shared cluster is sent to a Service nobody answers.
    let rel = Release::install(
        &release,
        &ns,
        &[
            format!("webhook.nameSuffix={suffix}"),
            format!("webhook.objectSelector.matchLabels.nadipam\\.io/e2e=only-{id}"),
        ],
    );
    wait_established(
        cluster_info(),
        &[
            "subnets.nadipam.io",
            "ippools.nadipam.io",
            "ipleases.nadipam.io",
            "networks.nadipam.io",
        ],
    );
    let targets = config::targets(&suffix);
    let m = Api::<MutatingWebhookConfiguration>::all(client.clone())
        .get(&targets.mutating)
        .await
        .unwrap_or_else(|e| panic!("mutating configuration {}: {e}", targets.mutating));
    assert_eq!(m.webhooks.as_ref().map(Vec::len), Some(1));
    let v = Api::<ValidatingWebhookConfiguration>::all(client.clone())
        .get(&targets.validating)
        .await
        .unwrap_or_else(|e| panic!("validating configuration {}: {e}", targets.validating));
    assert_eq!(v.webhooks.as_ref().map(Vec::len), Some(7));
    let kubectl_get = |args: &[&str]| run(cluster_info().kubectl().args(["get"]).args(args));
    for obj in [
        format!("clusterrole/{release}-server"),
        format!("clusterrolebinding/{release}-server"),
        format!("clusterrole/{release}-node-agent"),
        format!("clusterrolebinding/{release}-node-agent"),
    ] {
        kubectl_get(&[&obj]);
    }
    for obj in [
        format!("role/{release}-server"),
        format!("rolebinding/{release}-server"),
        format!("serviceaccount/{release}"),
        format!("serviceaccount/{release}-node-agent"),
        format!("deployment/{release}-server"),
        format!("daemonset/{release}-node-agent"),
        format!("poddisruptionbudget/{release}-server"),
        "service/nadipam-webhook".to_string(),
    ] {
        kubectl_get(&["-n", &ns, &obj]);
    }
    // Least privilege, as the apiserver's authorizer answers it.
    let server = format!("system:serviceaccount:{ns}:{release}");
    let agent = format!("system:serviceaccount:{ns}:{release}-node-agent");
    for (user, verb, res, allowed) in [
        (&agent, "get", "pods", true),
        (&agent, "list", "pods", false),
        (&agent, "get", "secrets", false),
        (&server, "create", "ipleases.nadipam.io", true),
        (&server, "delete", "ipleases.nadipam.io", true),
        (&server, "update", "ipleases.nadipam.io", false),
        // Networks: the NAD and Subnet each generates, its finalizer and status; NADs are never deleted by
        // the server (the garbage collector does, by ownerReference).
        (
            &server,
            "create",
            "network-attachment-definitions.k8s.cni.cncf.io",
            true,
        ),
        (
            &server,
            "patch",
            "network-attachment-definitions.k8s.cni.cncf.io",
            true,
        ),
        (
            &server,
            "delete",
            "network-attachment-definitions.k8s.cni.cncf.io",
            false,
        ),
        (&server, "create", "subnets.nadipam.io", true),
        (&server, "delete", "subnets.nadipam.io", true),
        (&server, "patch", "networks.nadipam.io", true),
        (&server, "create", "networks.nadipam.io", false),
        (&server, "watch", "pods", true),
        (&server, "create", "pods", false),
        (&server, "get", "namespaces", true),
        (&server, "list", "namespaces", false),
        (&server, "patch", "namespaces", false),
        (&server, "watch", "nodes", true),
        (&server, "get", "nodes", false),
        (&server, "create", "secrets", true),
        (&server, "get", "secrets/nadipam-webhook-tls", true),
        (&server, "get", "secrets/someone-elses", false),
        (&server, "list", "secrets", false),
        (
            &server,
            "patch",
            &format!("mutatingwebhookconfigurations/{}", targets.mutating),
            true,
        ),
        (
            &server,
            "patch",
            "mutatingwebhookconfigurations/other",
            false,
        ),
        (
            &server,
            "patch",
            "leases.coordination.k8s.io/nadipam-controller",
            true,
        ),
        (&server, "patch", "leases.coordination.k8s.io/other", false),
        (&server, "create", "events.events.k8s.io", true),
        (&server, "watch", "ipamclaims.k8s.cni.cncf.io", true),
        (&server, "patch", "ipamclaims.k8s.cni.cncf.io", false),
        (&server, "delete", "ipamclaims.k8s.cni.cncf.io", false),
    ] {
        assert_eq!(
            can_i(user, &ns, verb, res),
            allowed,
            "{user} {verb} {res}: expected {}",
            if allowed { "allowed" } else { "denied" }
        );
    }
    assert!(
        !can_i(&server, "default", "create", "secrets"),
        "the server may create Secrets outside its namespace"
    );
    drop(rel);
    for (kind, name) in [
        ("mutatingwebhookconfiguration", targets.mutating.as_str()),
        (
            "validatingwebhookconfiguration",
            targets.validating.as_str(),
        ),
        ("clusterrole", &format!("{release}-server")),
    ] {
        let out = output(cluster_info().kubectl().args(["get", kind, name]));
        assert!(
            !out.status.success(),
            "{kind}/{name} is still there after helm uninstall"
        );
    }
    // CRDs stay (Helm never deletes them): the cluster's IPLeases outlive an uninstall.
    kubectl_get(&["crd/ipleases.nadipam.io"]);
}

// --- self-managed certificates -----------------------------------------------------------------------

/// A namespace with a macvlan NAD whose IPAM is nadipam, and a Subnet for it.
struct Net {
    ns: String,
    subnet: String,
    _guards: Vec<DeleteOnDrop>,
}

async fn network(client: &Client, prefix: &str, cidr: &str) -> Net {
    let (ns, ns_guard) = test_namespace(client, prefix).await;
    let m = common::net::macvlan(client, &ns, cidr).await;
    Net {
        ns,
        subnet: m.subnet,
        _guards: vec![m.guard, ns_guard],
    }
}

impl Net {
    /// Deletes the namespace, waits until the controller has released the Subnet's leases, then deletes the
    /// Subnet (the webhook refuses to delete a Subnet in use). Call while a server still answers.
    async fn teardown(self, client: &Client) {
        common::delete_namespace_and_wait(client, &self.ns, WAIT).await;
        let selector = nadipam::api::subnet_selector(&self.subnet);
        wait_for("the Subnet's leases to be released", WAIT, || async {
            let n = Api::<IPLease>::all(client.clone())
                .list(&ListParams::default().labels(&selector))
                .await
                .map_err(|e| e.to_string())?
                .items
                .len();
            (n == 0).then_some(()).ok_or(format!("{n} leases left"))
        })
        .await;
    }
}

/// Creates a Pod asking for the network; Ok(its IP) or Err(the apiserver's message).
async fn create_pod(client: &Client, ns: &str, name: &str) -> Result<String, String> {
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": ns,
                     "annotations": {"k8s.v1.cni.cncf.io/networks": format!("{ns}/macvlan")}},
        "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}]}
    }))
    .map_err(|e| e.to_string())?;
    let created = Api::<Pod>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &pod)
        .await
        .map_err(|e| e.to_string())?;
    let key = format!("macvlan.{ns}.kubernetes.io/ip_address");
    created
        .annotations()
        .get(&key)
        .cloned()
        .ok_or_else(|| format!("pod {ns}/{name} was created without {key}"))
}

/// The certificates of a PEM bundle, DER.
fn ders(pem: &[u8]) -> Vec<Vec<u8>> {
    CertificateDer::pem_slice_iter(pem)
        .filter_map(Result::ok)
        .map(|d| d.to_vec())
        .collect()
}

/// The certificate a TLS server on 127.0.0.1:`port` presents (DER), if it chains to one of `cas` and names
/// 127.0.0.1, as the apiserver requires.
fn served_cert(port: u16, cas: &[Vec<u8>]) -> Result<Vec<u8>, String> {
    let mut roots = rustls::RootCertStore::empty();
    for ca in cas {
        roots
            .add(CertificateDer::from(ca.clone()))
            .map_err(|e| e.to_string())?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").map_err(|e| e.to_string())?;
    let mut conn =
        rustls::ClientConnection::new(Arc::new(config), name).map_err(|e| e.to_string())?;
    let mut sock = std::net::TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    while conn.is_handshaking() {
        conn.complete_io(&mut sock)
            .map_err(|e| format!("TLS handshake with 127.0.0.1:{port}: {e}"))?;
    }
    conn.peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.to_vec())
        .ok_or_else(|| "no certificate presented".to_string())
}

/// The Secret's `ca.crt` and `tls.crt`, DER.
async fn secret_certs(
    client: &Client,
    ns: &str,
    name: &str,
) -> Result<(Vec<Vec<u8>>, Vec<u8>), String> {
    let s = Api::<Secret>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("Secret {ns}/{name} does not exist"))?;
    let data = s.data.unwrap_or_default();
    let get = |k: &str| data.get(k).map(|b| b.0.clone()).unwrap_or_default();
    let tls = ders(&get("tls.crt"));
    Ok((
        ders(&get("ca.crt")),
        tls.into_iter().next().ok_or("no tls.crt")?,
    ))
}

/// Every webhook's caBundle of both configurations, DER.
async fn published_bundles(client: &Client, t: &Targets) -> Result<Vec<Vec<Vec<u8>>>, String> {
    let m = Api::<MutatingWebhookConfiguration>::all(client.clone())
        .get(&t.mutating)
        .await
        .map_err(|e| e.to_string())?;
    let v = Api::<ValidatingWebhookConfiguration>::all(client.clone())
        .get(&t.validating)
        .await
        .map_err(|e| e.to_string())?;
    let mut out: Vec<Vec<Vec<u8>>> = Vec::new();
    for ca in m
        .webhooks
        .unwrap_or_default()
        .into_iter()
        .map(|w| w.client_config.ca_bundle)
        .chain(
            v.webhooks
                .unwrap_or_default()
                .into_iter()
                .map(|w| w.client_config.ca_bundle),
        )
    {
        out.push(ders(&ca.map(|b| b.0).unwrap_or_default()));
    }
    Ok(out)
}

/// Waits until both replicas serve the Secret's `tls.crt` and every caBundle equals its `ca.crt`; returns
/// `(ca.crt, tls.crt)`. `settled` may demand more (e.g. a single CA).
async fn wait_converged(
    what: &str,
    client: &Client,
    ns: &str,
    secret: &str,
    ports: &[u16],
    targets: &Targets,
    settled: impl Fn(&[Vec<u8>], &[u8]) -> Result<(), String>,
) -> (Vec<Vec<u8>>, Vec<u8>) {
    wait_for(what, WAIT, || async {
        let (cas, tls) = secret_certs(client, ns, secret).await?;
        settled(&cas, &tls)?;
        for &p in ports {
            let trusted = cas.clone();
            let served = tokio::task::spawn_blocking(move || served_cert(p, &trusted))
                .await
                .map_err(|e| e.to_string())??;
            if served != tls {
                return Err(format!(
                    "replica on port {p} does not serve the Secret's tls.crt yet"
                ));
            }
        }
        for b in published_bundles(client, targets).await? {
            if b != cas {
                return Err(format!(
                    "a caBundle holds {} certificates, not the Secret's {}",
                    b.len(),
                    cas.len()
                ));
            }
        }
        Ok((cas, tls))
    })
    .await
}

/// A TCP load balancer on 127.0.0.1 that spreads connections over `backends` round-robin, as a Service does:
/// the apiserver reaches "the webhook" and whichever replica answers.
async fn balancer(backends: Vec<u16>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("binding the balancer: {e}"));
    let port = listener
        .local_addr()
        .unwrap_or_else(|e| panic!("balancer address: {e}"))
        .port();
    let next = Arc::new(AtomicUsize::new(0));
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            let backend = backends[next.fetch_add(1, Ordering::Relaxed) % backends.len()];
            tokio::spawn(async move {
                if let Ok(mut out) = TcpStream::connect(("127.0.0.1", backend)).await {
                    let _ = copy_bidirectional(&mut inbound, &mut out).await;
                }
            });
        }
    });
    port
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// Annotates the Secret to force a rotation.
async fn force_rotation(client: &Client, ns: &str, secret: &str, what: &str) {
    Api::<Secret>::namespaced(client.clone(), ns)
        .patch(
            secret,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {ROTATE_ANNOTATION: what}}})),
        )
        .await
        .unwrap_or_else(|e| panic!("annotating Secret {ns}/{secret}: {e}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn self_managed_replicas_agree_on_one_secret_and_rotate_without_a_failed_request() {
    let _serial = SERIAL.lock().await;
    let (client, sys, _sys_guard, _) = bed("inst-sm").await;
    let net = network(&client, "inst-sm-pods", "10.77.0.0/16").await;
    let secret = "nadipam-webhook-tls";
    let suffix = format!("-e2e-sm-{}", short_id());
    let targets = config::targets(&suffix);
    let (pa, pb) = (free_port(), free_port());
    let lb = balancer(vec![pa, pb]).await;
    let flags = args(&[
        "--cert-mode=self-managed",
        "--cert-extra-san=127.0.0.1",
        "--namespace",
        &sys,
        "--cert-secret",
        secret,
        "--webhook-url",
        &format!("https://127.0.0.1:{lb}"),
        &format!("--webhook-name-suffix={suffix}"),
        "--cert-poll-interval=1s",
        "--cert-propagation-delay=3s",
        // Every reload of the serving certificate must keep asking for the apiserver's certificate, or
        // its requests are refused (401) and counted as failed.
        "--client-ca",
        &cluster_info().webhook_client_ca().display().to_string(),
        "--client-name=kube-apiserver-webhook-client",
    ]);
    // Both replicas start at once against an absent Secret: only one create can win.
    let kubeconfig = cluster_info().kubeconfig.clone();
    let a = spawn(pa, &flags, &kubeconfig);
    let b = spawn(pb, &flags, &kubeconfig);
    for s in [&a, &b] {
        wait_for_log(s, "webhook configurations registered", WAIT);
    }
    let secrets = Api::<Secret>::namespaced(client.clone(), &sys)
        .list(&ListParams::default().labels("app.kubernetes.io/managed-by=nadipam"))
        .await
        .unwrap_or_else(|e| panic!("listing Secrets in {sys}: {e}"));
    assert_eq!(
        secrets
            .items
            .iter()
            .map(|s| s.name_any())
            .collect::<Vec<_>>(),
        [secret]
    );
    let (cas0, tls0) = wait_converged(
        "both replicas to serve the one Secret and caBundle to hold its CA",
        &client,
        &sys,
        secret,
        &[pa, pb],
        &targets,
        |cas, _| {
            (cas.len() == 1)
                .then_some(())
                .ok_or_else(|| format!("{} CAs", cas.len()))
        },
    )
    .await;
    let created = [&a, &b]
        .iter()
        .filter(|s| {
            !common::server::log_lines(s, "created a CA and a serving certificate").is_empty()
        })
        .count();
    assert_eq!(created, 1, "exactly one replica creates the Secret");
    let ip = create_pod(&client, &net.ns, "first")
        .await
        .unwrap_or_else(|e| panic!("{e}\n--- a\n{}\n--- b\n{}", a.log_tail(), b.log_tail()));
    assert!(ip.starts_with("10.77."), "{ip}");

    // Pods are created continuously while the CA and then the serving certificate rotate.
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut workers = Vec::new();
    for w in 0..3 {
        let (client, ns) = (client.clone(), net.ns.clone());
        let (stop, ok, failures) = (stop.clone(), ok.clone(), failures.clone());
        workers.push(tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                match create_pod(&client, &ns, &format!("rot-{w}-{n}")).await {
                    Ok(_) => ok.fetch_add(1, Ordering::Relaxed),
                    Err(e) => {
                        failures.lock().map(|mut f| f.push(e)).ok();
                        0
                    }
                };
                n += 1;
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let started = Instant::now();
    force_rotation(&client, &sys, secret, "ca").await;
    let old_ca = cas0[0].clone();
    let (cas1, tls1) = wait_converged(
        "the CA rotation to finish (new CA signs, old CA pruned, everyone serving and trusting it)",
        &client,
        &sys,
        secret,
        &[pa, pb],
        &targets,
        |cas, tls| {
            if cas.len() != 1 || cas[0] == old_ca {
                return Err(format!(
                    "bundle of {} CAs, signer rotated: {}",
                    cas.len(),
                    cas[0] != old_ca
                ));
            }
            if tls == tls0.as_slice() {
                return Err("the serving certificate is still the one of the old CA".into());
            }
            Ok(())
        },
    )
    .await;
    let ca_rotation = started.elapsed();
    let started = Instant::now();
    force_rotation(&client, &sys, secret, "serving").await;
    wait_converged(
        "the serving rotation to reach both replicas",
        &client,
        &sys,
        secret,
        &[pa, pb],
        &targets,
        |cas, tls| {
            if cas != cas1.as_slice() {
                return Err("the CA changed".into());
            }
            (tls != tls1.as_slice())
                .then_some(())
                .ok_or_else(|| "not re-issued yet".into())
        },
    )
    .await;
    let serving_rotation = started.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap_or_else(|e| panic!("pod creator: {e}"));
    }
    let ok = ok.load(Ordering::Relaxed);
    let failures = failures.lock().map(|f| f.clone()).unwrap_or_default();
    eprintln!(
        "[measure] rotation under load: {ok} pod creates, {} failed; CA rotation converged in {:.1} s, serving rotation in {:.1} s",
        failures.len(),
        ca_rotation.as_secs_f64(),
        serving_rotation.as_secs_f64()
    );
    assert!(
        failures.is_empty(),
        "{} of {} creates failed during rotation, first: {}\n--- a\n{}\n--- b\n{}",
        failures.len(),
        ok + failures.len(),
        failures[0],
        a.log_tail(),
        b.log_tail()
    );
    assert!(ok >= 20, "only {ok} creates during the rotations");
    for s in [&a, &b] {
        assert!(
            common::server::log_lines(s, "serving certificate reloaded").len() >= 2,
            "a replica did not reload its certificate twice:\n{}",
            s.log_tail()
        );
    }
    net.teardown(&client).await;
    a.stop();
    b.stop();
}

#[tokio::test]
async fn a_bad_flag_combination_stops_the_server_with_a_message() {
    cluster_info();
    let out = output(
        Command::new(env!("CARGO_BIN_EXE_nadipam-server"))
            .env("KUBECONFIG", &cluster_info().kubeconfig)
            .args([
                "--cert-mode=self-managed",
                "--cert-validity=1y",
                "--ca-validity=2y",
                "--namespace=default",
            ]),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("--ca-validity 17520h: must be at least 3 × --cert-validity (26280h)"),
        "{err}"
    );
    let out =
        output(Command::new(env!("CARGO_BIN_EXE_nadipam-server")).args(["--cert-validity=10"]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("invalid value '10' for '--cert-validity <CERT_VALIDITY>'")
            && err.contains("the number 10 has no unit"),
        "{err}"
    );
    // Client authentication: a name without the CA, and a CA file without a certificate.
    let kubeconfig = &cluster_info().kubeconfig;
    let server = |args: &[&str]| {
        let out = output(
            Command::new(env!("CARGO_BIN_EXE_nadipam-server"))
                .env("KUBECONFIG", kubeconfig)
                .args(args),
        );
        assert!(!out.status.success(), "{args:?} was accepted");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = server(&["--client-name=kube-apiserver-webhook-client"]);
    assert!(
        err.contains(
            "--client-name needs --client-ca (the CA that signs the callers' certificates)"
        ),
        "{err}"
    );
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let empty = dir.path().join("ca.crt");
    std::fs::write(&empty, "not a certificate\n").unwrap_or_else(|e| panic!("writing: {e}"));
    let err = server(&["--client-ca", &empty.display().to_string()]);
    assert!(
        err.contains(&format!(
            "--client-ca {}: holds no PEM certificate",
            empty.display()
        )),
        "{err}"
    );
}

// --- the chart's RBAC runs a real server -------------------------------------------------------------

/// A kubeconfig for `token` against the test bed, written to `dir`.
fn token_kubeconfig(dir: &Path, token: &str) -> PathBuf {
    let c = cluster_info();
    let port = c
        .env
        .get("APISERVER_PORT")
        .unwrap_or_else(|| panic!("no APISERVER_PORT in the cluster env"));
    let path = dir.join("kubeconfig");
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:{port}\n    certificate-authority: {}\nusers:\n- name: u\n  user:\n    token: {token}\ncontexts:\n- name: x\n  context: {{cluster: c, user: u}}\ncurrent-context: x\n",
        c.state.join("pki/ca.crt").display()
    );
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    path
}

fn create_token(ns: &str, sa: &str) -> String {
    run(cluster_info()
        .kubectl()
        .args(["create", "token", sa, "-n", ns, "--duration=1h"]))
    .trim()
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_charts_rbac_lets_the_server_do_its_whole_job() {
    let _serial = SERIAL.lock().await;
    let (client, ns, _g, id) = bed("inst-rbac").await;
    let release = format!("nadipam-{id}");
    let suffix = format!("-e2e-rbac-{id}");
    let port = free_port();
    // The chart's webhooks point at this test's server by URL; the server runs with the chart's
    // ServiceAccount token, so every call it makes is authorized by the chart's Role and ClusterRole.
    let _rel = Release::install(
        &release,
        &ns,
        &[
            format!("webhook.url=https://127.0.0.1:{port}"),
            format!("webhook.nameSuffix={suffix}"),
        ],
    );
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let kubeconfig = token_kubeconfig(dir.path(), &create_token(&ns, &release));
    let server = spawn(
        port,
        &args(&[
            "--cert-mode=self-managed",
            "--cert-extra-san=127.0.0.1",
            "--namespace",
            &ns,
            &format!("--webhook-name-suffix={suffix}"),
            "--leader-lease-seconds=5",
            // Its Events need the chart's events.k8s.io rights.
            "--allocation-events",
        ]),
        &kubeconfig,
    );
    wait_for_log(&server, "caBundle published", WAIT);
    wait_for("the server to be ready", WAIT, || async {
        let out =
            output(Command::new("curl").args(["-sk", &format!("https://127.0.0.1:{port}/readyz")]));
        let body = String::from_utf8_lossy(&out.stdout).into_owned();
        (body == "ok").then_some(()).ok_or(body)
    })
    .await;
    let net = network(&client, "inst-rbac-pods", "10.78.0.0/16").await;
    let ip = create_pod(&client, &net.ns, "p")
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", server.log_tail()));
    // The controller (leader election, Pod watch, lease patch, Events) works with the chart's rights too.
    wait_for(
        "the lease to be Bound and an Allocated Event",
        WAIT,
        || async {
            let leases = Api::<IPLease>::all(client.clone())
                .list(&ListParams::default())
                .await
                .map_err(|e| e.to_string())?;
            let bound = leases.items.iter().any(|l| {
                l.spec.ip == ip
                    && l.spec.pod_namespace == net.ns
                    && l.spec.phase == LeasePhase::Bound
            });
            if !bound {
                return Err(format!("lease of {ip} not Bound\n{}", server.log_tail()));
            }
            let events = Api::<K8sEvent>::namespaced(client.clone(), &net.ns)
                .list(&ListParams::default())
                .await
                .map_err(|e| e.to_string())?;
            events
                .items
                .iter()
                .any(|e| e.reason.as_deref() == Some("Allocated"))
                .then_some(())
                .ok_or_else(|| "no Allocated Event yet".to_string())
        },
    )
    .await;
    // `helm upgrade` leaves the caBundle the server published alone (the chart never sets it).
    let targets = config::targets(&suffix);
    let before = published_bundles(&client, &targets)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(before.iter().all(|b| b.len() == 1), "{before:?}");
    run(helm().args(["upgrade", &release]).arg(chart()).args([
        "--namespace",
        &ns,
        "--reuse-values",
        "--set",
        "server.logLevel=debug",
    ]));
    let after = published_bundles(&client, &targets)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(before, after, "helm upgrade changed caBundle");
    let log = std::fs::read_to_string(&server.log).unwrap_or_default();
    let denied: Vec<&str> = log
        .lines()
        .filter(|l| l.to_ascii_lowercase().contains("forbidden"))
        .collect();
    assert!(
        denied.is_empty(),
        "the server was denied:\n{}",
        denied.join("\n")
    );
    // The Subnet's deletion goes through the chart's webhook: remove it while the server still answers.
    net.teardown(&client).await;
    server.stop();
}

// --- the node agent -------------------------------------------------------------------------------------

#[tokio::test]
async fn node_agent_installs_the_plugin_and_a_kubeconfig_that_may_only_get_pods() {
    let (client, ns, _g, id) = bed("inst-agent").await;
    // The agent's ServiceAccount and ClusterRole exactly as the chart renders them.
    let release = format!("nadipam-agent-{id}");
    let docs = documents(&template(&release, &ns, &[]));
    let sa = format!("{release}-node-agent");
    let yaml: String = [
        ("ServiceAccount", sa.as_str()),
        ("ClusterRole", sa.as_str()),
        ("ClusterRoleBinding", sa.as_str()),
    ]
    .iter()
    .map(|(k, n)| {
        format!(
            "---\n{}",
            serde_saphyr::to_string(find(&docs, k, n)).unwrap_or_default()
        )
    })
    .collect();
    let out = run_with_input(cluster_info().kubectl().args(["apply", "-f", "-"]), &yaml);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _role = DeleteOnDrop::new("clusterrole", &sa, None);
    let _binding = DeleteOnDrop::new("clusterrolebinding", &sa, None);

    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let token = dir.path().join("token");
    std::fs::write(&token, create_token(&ns, &sa)).unwrap_or_else(|e| panic!("token: {e}"));
    let bin = dir.path().join("host/opt/cni/bin");
    let kubeconfig = dir
        .path()
        .join("host/etc/cni/net.d/nadipam.d/nadipam.kubeconfig");
    let port = cluster_info()
        .env
        .get("APISERVER_PORT")
        .cloned()
        .unwrap_or_default();
    let agent = || {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_nadipam-node-agent"));
        cmd.arg("--once")
            .arg("--plugin")
            .arg(env!("CARGO_BIN_EXE_nadipam"))
            .arg("--cni-bin-dir")
            .arg(&bin)
            .arg("--kube-ovn-alias")
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .arg("--token-file")
            .arg(&token)
            .arg("--ca-file")
            .arg(cluster_info().state.join("pki/ca.crt"))
            .arg("--server")
            .arg(format!("https://127.0.0.1:{port}"));
        cmd
    };
    run(&mut agent());
    let plugin = std::fs::read(env!("CARGO_BIN_EXE_nadipam")).unwrap_or_default();
    for name in ["nadipam", "kube-ovn"] {
        assert!(
            std::fs::read(bin.join(name)).unwrap_or_default() == plugin,
            "{name} is not the plugin"
        );
    }
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| {
        std::fs::metadata(p)
            .map(|m| m.permissions().mode() & 0o777)
            .unwrap_or(0)
    };
    assert_eq!(mode(&bin.join("nadipam")), 0o755);
    assert_eq!(mode(&kubeconfig), 0o600);
    // A second pass changes nothing on the host.
    let inode = |p: &Path| {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(p).map(|m| m.ino()).unwrap_or(0)
    };
    let before = (inode(&bin.join("nadipam")), inode(&kubeconfig));
    let out = output(&mut agent());
    assert!(out.status.success());
    assert_eq!(before, (inode(&bin.join("nadipam")), inode(&kubeconfig)));

    // The kubeconfig works, for exactly `get pods`.
    Api::<Pod>::namespaced(client.clone(), &ns)
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": "probe", "namespace": ns},
                "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}]}
            }))
            .unwrap_or_else(|e| panic!("pod literal: {e}")),
        )
        .await
        .unwrap_or_else(|e| panic!("creating pod {ns}/probe: {e}"));
    let as_plugin = |args: &[&str]| {
        let mut cmd = Command::new(cluster_info().bin("kubectl"));
        cmd.arg("--kubeconfig").arg(&kubeconfig).args(args);
        output(&mut cmd)
    };
    let got = as_plugin(&["get", "pod", "probe", "-n", &ns, "-o", "name"]);
    assert!(
        got.status.success(),
        "the written kubeconfig cannot get a Pod: {}",
        String::from_utf8_lossy(&got.stderr)
    );
    let listed = as_plugin(&["get", "pods", "-n", &ns]);
    assert!(
        !listed.status.success(),
        "the plugin's identity may list Pods"
    );
    assert!(String::from_utf8_lossy(&listed.stderr).contains("forbidden"));

    // The installed plugin itself reaches the API server with it (CNI STATUS: GET /version).
    let conf = format!(
        r#"{{"cniVersion":"1.1.0","name":"n","type":"macvlan","ipam":{{"type":"nadipam","kubeconfig":"{}"}}}}"#,
        kubeconfig.display()
    );
    let status = run_with_input(
        Command::new(bin.join("nadipam"))
            .env("CNI_COMMAND", "STATUS")
            .env("CNI_PATH", &bin),
        &conf,
    );
    assert!(
        status.status.success(),
        "STATUS with the agent's kubeconfig failed: {}{}",
        String::from_utf8_lossy(&status.stdout),
        String::from_utf8_lossy(&status.stderr)
    );

    // Running (not --once), it stops at SIGTERM at once: as a DaemonSet's PID 1 nothing else would stop it
    // before the grace period ends.
    let running = agent();
    let args: Vec<_> = running
        .get_args()
        .filter(|a| *a != "--once")
        .map(|a| a.to_os_string())
        .collect();
    let mut child = Command::new(env!("CARGO_BIN_EXE_nadipam-node-agent"))
        .args(&args)
        .args(["--refresh-interval", "1h"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting the agent: {e}"));
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(
        child.stderr.take().expect("piped stderr"),
    ));
    // The pipe stays open (the reader is handed back) so the agent's last log line has somewhere to go.
    let started = tokio::task::spawn_blocking(move || {
        let found = lines
            .by_ref()
            .any(|l| l.is_ok_and(|l| l.contains("checking again periodically until SIGTERM")));
        (found, lines)
    });
    let (found, _stderr) = tokio::time::timeout(Duration::from_secs(30), started)
        .await
        .expect("the agent's log within 30 s")
        .expect("reading the agent's log");
    assert!(found, "the agent did not start its loop");
    run(Command::new("kill").args(["-TERM", &child.id().to_string()]));
    let stopped = std::time::Instant::now();
    let status = loop {
        if let Ok(Some(s)) = child.try_wait() {
            break s;
        }
        assert!(
            stopped.elapsed() < Duration::from_secs(5),
            "the agent ignored SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "{status:?}");

    // A missing token is a failure naming the file and what to check.
    std::fs::remove_file(&token).unwrap_or_else(|e| panic!("removing token: {e}"));
    let out = output(&mut agent());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains(&format!(
            "reading service account token {}",
            token.display()
        )) && err
            .contains("is the projected service-account token volume mounted (see --token-file)?"),
        "{err}"
    );
}
