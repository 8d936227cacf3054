//! Shared helpers of the end-to-end tests: one real control plane (etcd, kube-apiserver,
//! kube-controller-manager; see e2e/README.md) per test run, started by the first test that asks for it.
//!
//! Every test binary that says `mod common;` gets these; each uses a subset, hence the `dead_code` allowance.
#![allow(dead_code)]

pub mod manifests;
pub mod net;
pub mod nodes;
pub mod reorder;
pub mod server;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

/// Where the running control plane keeps its files, as `e2e/cluster up` reported them.
pub struct Cluster {
    /// The state directory (`NADIPAM_STATE`, default `e2e/.state`).
    pub state: PathBuf,
    /// Admin kubeconfig (client certificate in group system:masters).
    pub kubeconfig: PathBuf,
    /// Directory with every built binary: kube-apiserver, kubectl, helm, CNI plugins, cnitool, whereabouts.
    pub bin_dir: PathBuf,
    /// `KEY=value` lines of `<state>/env` (ports, bin dir).
    pub env: BTreeMap<String, String>,
}

impl Cluster {
    /// The CA that signed [`Cluster::webhook_tls`]: put it in a webhook configuration's `caBundle`.
    pub fn webhook_ca_pem(&self) -> Vec<u8> {
        let path = self.state.join("webhook/ca.crt");
        std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
    }

    /// Serving certificate and key (PEM files) for a webhook listening on 127.0.0.1.
    pub fn webhook_tls(&self) -> (PathBuf, PathBuf) {
        (
            self.state.join("webhook/tls.crt"),
            self.state.join("webhook/tls.key"),
        )
    }

    /// The CA that signed the client certificate kube-apiserver presents to webhooks (its
    /// AdmissionConfiguration): what `nadipam-server --client-ca` trusts.
    pub fn webhook_client_ca(&self) -> PathBuf {
        self.state.join("admission/client-ca.crt")
    }

    /// The name (subject CN) of the client certificate kube-apiserver presents to webhooks.
    pub const WEBHOOK_CLIENT_NAME: &'static str = "kube-apiserver-webhook-client";

    /// kube-apiserver's client certificate and key for webhooks (PEM files), for tests that call a webhook
    /// as the apiserver does.
    pub fn apiserver_client_tls(&self) -> (PathBuf, PathBuf) {
        (
            self.state.join("admission/apiserver-client.crt"),
            self.state.join("admission/apiserver-client.key"),
        )
    }

    /// A built binary by name, e.g. `kubectl`, `helm`, `macvlan`, `whereabouts`.
    pub fn bin(&self, name: &str) -> PathBuf {
        self.bin_dir.join(name)
    }

    /// `kubectl` (the v1.34 one built with the server) against this cluster.
    pub fn kubectl(&self) -> Command {
        let mut cmd = Command::new(self.bin("kubectl"));
        cmd.arg("--kubeconfig").arg(&self.kubeconfig);
        cmd
    }

    /// A new client; cheap. One per test: a client's connection worker lives on the runtime that made it.
    pub async fn client(&self) -> Client {
        let kubeconfig = Kubeconfig::read_from(&self.kubeconfig)
            .unwrap_or_else(|e| panic!("reading {}: {e}", self.kubeconfig.display()));
        let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .unwrap_or_else(|e| panic!("loading {}: {e}", self.kubeconfig.display()));
        Client::try_from(config).unwrap_or_else(|e| panic!("building a client: {e}"))
    }
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The control plane, started (or found running) once per test binary. Panics with the cluster's log tails
/// when it cannot start: an end-to-end test without its cluster is a failure, never a skip.
pub fn cluster_info() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(start)
}

/// A client of the shared control plane (starting it on first use).
pub async fn cluster() -> Client {
    cluster_info().client().await
}

fn start() -> Cluster {
    let script = repo().join("e2e/cluster");
    let out = Command::new(&script)
        .arg("up")
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", script.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let kubeconfig = stdout.lines().last().map(str::trim).unwrap_or("");
    if !out.status.success() || kubeconfig.is_empty() {
        let state = std::env::var_os("NADIPAM_STATE")
            .map(PathBuf::from)
            .unwrap_or_else(|| repo().join("e2e/.state"));
        panic!(
            "`e2e/cluster up` failed ({}): the end-to-end tests need the local control plane.\n\
             --- stdout\n{stdout}\n--- stderr\n{stderr}\n{}",
            out.status,
            log_tails(&state.join("logs"))
        );
    }
    let kubeconfig = PathBuf::from(kubeconfig);
    let state = kubeconfig
        .parent()
        .unwrap_or_else(|| panic!("kubeconfig path {} has no parent", kubeconfig.display()))
        .to_path_buf();
    let env_path = state.join("env");
    let env: BTreeMap<String, String> = std::fs::read_to_string(&env_path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", env_path.display()))
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let bin_dir = PathBuf::from(
        env.get("BIN_DIR")
            .unwrap_or_else(|| panic!("{} has no BIN_DIR", env_path.display())),
    );
    let cluster = Cluster {
        state,
        kubeconfig,
        bin_dir,
        env,
    };
    // A Helm release of nadipam (the demo installs one on a bed with nodes) would serve the suites' Pods
    // next to the server each suite starts: the suites begin without it.
    let out = Command::new(cluster.bin("helm"))
        .arg("--kubeconfig")
        .arg(&cluster.kubeconfig)
        .args([
            "uninstall",
            "nadipam",
            "-n",
            "nadipam-system",
            "--ignore-not-found",
            "--wait",
        ])
        .output()
        .unwrap_or_else(|e| panic!("running helm: {e}"));
    assert!(
        out.status.success(),
        "helm uninstall of a leftover release failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    cluster
}

/// Runs a command with `input` on its standard input and returns its output, whatever its exit status.
pub fn run_with_input(cmd: &mut Command, input: &str) -> std::process::Output {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    if let Some(mut s) = child.stdin.take() {
        s.write_all(input.as_bytes())
            .unwrap_or_else(|e| panic!("writing to {cmd:?}: {e}"));
    }
    child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("waiting for {cmd:?}: {e}"))
}

/// The last 40 lines of each component log, for failure messages.
pub fn log_tails(logs: &Path) -> String {
    let mut out = String::new();
    let Ok(entries) = std::fs::read_dir(logs) else {
        return format!("(no logs at {})", logs.display());
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for path in paths {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = &lines[lines.len().saturating_sub(40)..];
        out += &format!(
            "--- {} (last {} lines)\n{}\n",
            path.display(),
            tail.len(),
            tail.join("\n")
        );
    }
    out
}

/// Runs the built kubectl with `stdin` as its input; Ok(stdout) or Err(stderr).
pub fn kubectl(args: &[&str], stdin: &str) -> Result<String, String> {
    let out = run_with_input(cluster_info().kubectl().args(args), stdin);
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// Polls `check` every `every` until it returns `Ok`, for at most `timeout`; `Err` carries the last state
/// `check` reported.
pub async fn poll<T, F, Fut>(timeout: Duration, every: Duration, mut check: F) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let start = Instant::now();
    let mut last = String::from("never checked");
    while start.elapsed() < timeout {
        match check().await {
            Ok(v) => return Ok(v),
            Err(state) => last = state,
        }
        tokio::time::sleep(every).await;
    }
    Err(last)
}

/// Polls `check` every 200 ms until it returns `Ok`, or panics after `timeout` naming `what` and the last
/// state `check` reported.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    poll(timeout, Duration::from_millis(200), check)
        .await
        .unwrap_or_else(|last| {
            panic!("timed out after {timeout:?} waiting for {what}; last state: {last}")
        })
}

/// Deletes a Kubernetes object when dropped, also when the test panics: cluster-scoped leftovers (webhook
/// configurations above all) would disturb the other tests sharing the cluster. Runs the built kubectl
/// synchronously, since Drop cannot await.
pub struct DeleteOnDrop {
    args: Vec<String>,
}

impl DeleteOnDrop {
    /// `kind` as kubectl spells it (`namespace`, `mutatingwebhookconfiguration`, ...).
    pub fn new(kind: &str, name: &str, namespace: Option<&str>) -> Self {
        let mut args = vec![kind.to_owned(), name.to_owned()];
        if let Some(ns) = namespace {
            args.extend(["--namespace".to_owned(), ns.to_owned()]);
        }
        Self { args }
    }
}

impl Drop for DeleteOnDrop {
    fn drop(&mut self) {
        let status = cluster_info()
            .kubectl()
            .arg("delete")
            .args(&self.args)
            .args(["--ignore-not-found", "--wait=false"])
            .output();
        match status {
            Ok(out) if out.status.success() => {}
            Ok(out) => eprintln!(
                "cleanup: kubectl delete {:?} failed: {}",
                self.args,
                String::from_utf8_lossy(&out.stderr)
            ),
            Err(e) => eprintln!("cleanup: running kubectl delete {:?}: {e}", self.args),
        }
    }
}

/// Serves `app` over HTTPS on a free port of 127.0.0.1 with the test bed's webhook certificate (the one
/// [`Cluster::webhook_ca_pem`] signed), until the handle is shut down. Returns the port and the handle.
pub async fn serve_tls(app: axum::Router) -> (u16, axum_server::Handle<std::net::SocketAddr>) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (cert, key) = cluster_info().webhook_tls();
    let tls = axum_server::tls_rustls::RustlsConfig::from_pem_file(&cert, &key)
        .await
        .unwrap_or_else(|e| panic!("webhook TLS from {}: {e}", cert.display()));
    let listener = std::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0))
        .unwrap_or_else(|e| panic!("binding 127.0.0.1:0: {e}"));
    let port = listener
        .local_addr()
        .unwrap_or_else(|e| panic!("local address: {e}"))
        .port();
    listener
        .set_nonblocking(true)
        .unwrap_or_else(|e| panic!("nonblocking listener: {e}"));
    let handle = axum_server::Handle::new();
    let server = axum_server::from_tcp_rustls(listener, tls)
        .unwrap_or_else(|e| panic!("TLS server on port {port}: {e}"));
    tokio::spawn(server.handle(handle.clone()).serve(app.into_make_service()));
    (port, handle)
}

/// Registers a validating webhook served by the test at `https://127.0.0.1:<port>/validate` for the creates of
/// Pods labelled `<label>: "true"` in namespace `ns`; removed when the guard drops.
pub async fn register_pod_validator(
    client: &Client,
    name: &str,
    port: u16,
    ns: &str,
    label: &str,
    timeout_seconds: i32,
) -> DeleteOnDrop {
    let mut config: ValidatingWebhookConfiguration = serde_json::from_value(serde_json::json!({
        "metadata": {"name": name},
        "webhooks": [{
            "name": format!("{name}.test.nadipam.io"),
            "clientConfig": {"url": format!("https://127.0.0.1:{port}/validate")},
            "rules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"],
                       "resources": ["pods"], "scope": "Namespaced"}],
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}},
            "objectSelector": {"matchLabels": {label: "true"}},
            "failurePolicy": "Fail", "sideEffects": "None",
            "admissionReviewVersions": ["v1"], "timeoutSeconds": timeout_seconds
        }]
    }))
    .expect("webhook literal");
    for wh in config.webhooks.iter_mut().flatten() {
        wh.client_config.ca_bundle = Some(ByteString(cluster_info().webhook_ca_pem()));
    }
    let guard = DeleteOnDrop::new("validatingwebhookconfiguration", name, None);
    Api::<ValidatingWebhookConfiguration>::all(client.clone())
        .create(&PostParams::default(), &config)
        .await
        .unwrap_or_else(|e| panic!("creating validating webhook configuration {name}: {e}"));
    guard
}

/// A new namespace `<prefix>-<random>`, deleted when the guard drops.
pub async fn test_namespace(client: &Client, prefix: &str) -> (String, DeleteOnDrop) {
    let name = format!(
        "{prefix}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let ns: Namespace = serde_json::from_value(serde_json::json!({
        "metadata": { "name": name }
    }))
    .expect("namespace literal");
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .unwrap_or_else(|e| panic!("creating namespace {name}: {e}"));
    let guard = DeleteOnDrop::new("namespace", &name, None);
    (name, guard)
}

/// Deletes a namespace and waits until the namespace controller has emptied and removed it.
pub async fn delete_namespace_and_wait(client: &Client, name: &str, timeout: Duration) {
    let api = Api::<Namespace>::all(client.clone());
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 404 => return,
        Err(e) => panic!("deleting namespace {name}: {e}"),
    }
    wait_for(&format!("namespace {name} to be deleted"), timeout, || {
        let api = api.clone();
        async move {
            match api.get_opt(name).await {
                Ok(None) => Ok(()),
                Ok(Some(ns)) => Err(format!(
                    "still there, phase {:?}",
                    ns.status.and_then(|s| s.phase)
                )),
                Err(e) => Err(e.to_string()),
            }
        }
    })
    .await
}
