//! A `nadipam-server` process for end-to-end tests: one per test binary, registered with the shared control
//! plane by URL, and gone when the test binary exits (it watches its standard input).

use std::io::BufRead;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::{Cluster, cluster_info};

pub struct Server {
    /// The HTTPS base URL the apiserver calls.
    pub url: String,
    /// The plain-HTTP base URL of health, readiness and metrics (`--metrics-listen`).
    pub metrics_url: String,
    /// The server's log file.
    pub log: std::path::PathBuf,
    child: Mutex<Child>,
}

impl Server {
    /// The process id, for tests that kill and restart it.
    pub fn pid(&self) -> u32 {
        self.child.lock().map(|c| c.id()).unwrap_or(0)
    }

    /// Closes the server's standard input and waits (up to 15 s) for it to exit, so the webhook
    /// configurations it registered are gone when this returns.
    pub fn stop(&self) {
        let Ok(mut c) = self.child.lock() else { return };
        drop(c.stdin.take());
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(15) {
            if matches!(c.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = c.kill();
        let _ = c.wait();
    }

    /// The server's `/metrics` text, from the metrics port.
    pub fn metrics(&self) -> String {
        let out = Command::new("curl")
            .args(["-s", &format!("{}/metrics", self.metrics_url)])
            .output()
            .unwrap_or_else(|e| panic!("running curl: {e}"));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The last lines of the server log, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(60)..].join("\n")
    }
}

/// nadipam's CRDs (and Multus's NAD CRD, which no Multus installs here, and the multi-network IPAMClaim CRD,
/// which KubeVirt would) applied to the cluster once.
pub fn install_crds(cluster: &Cluster) {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
        for f in [
            "manifests/crds",
            "e2e/manifests/nad-crd.yaml",
            "e2e/manifests/ipamclaim-crd.yaml",
        ] {
            run(cluster
                .kubectl()
                .args(["apply", "--server-side", "--force-conflicts", "-f"])
                .arg(repo.join(f)));
        }
        wait_established(
            cluster,
            &[
                "subnets.nadipam.io",
                "ippools.nadipam.io",
                "ipleases.nadipam.io",
                "networks.nadipam.io",
                "network-attachment-definitions.k8s.cni.cncf.io",
                "ipamclaims.k8s.cni.cncf.io",
            ],
        );
    });
}

/// Waits (up to 60 s) until every named CRD is Established.
pub fn wait_established(cluster: &Cluster, crds: &[&str]) {
    let mut cmd = cluster.kubectl();
    cmd.args(["wait", "--for=condition=Established", "--timeout=60s"]);
    for c in crds {
        cmd.arg(format!("crd/{c}"));
    }
    run(&mut cmd);
}

/// Runs a command; panics with its output when it fails; returns its standard output.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    if !out.status.success() {
        panic!(
            "{cmd:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The test binary's nadipam server, started on first use. Panics (never skips) when it cannot start.
pub fn nadipam() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| start(&[]))
}

/// Starts a server with extra flags, serving the admission paths only to the apiserver (`--client-ca` and
/// `--client-name` of the client certificate the test bed's apiserver presents). Webhook configurations of
/// earlier test binaries (whose servers are gone) are removed first, so only this process is called.
pub fn start(extra: &[&str]) -> Server {
    let cluster = cluster_info();
    install_crds(cluster);
    let port = free_port();
    let url = format!("https://127.0.0.1:{port}");
    let suffix = format!("-e2e-{}-{port}", std::process::id());
    remove_stale_registrations(cluster);
    let (cert, key) = cluster.webhook_tls();
    let ca = cluster.state.join("webhook/ca.crt");
    let mut args: Vec<String> = vec![
        "--tls-cert".into(),
        cert.display().to_string(),
        "--tls-key".into(),
        key.display().to_string(),
        "--webhook-url".into(),
        url.clone(),
        "--webhook-ca".into(),
        ca.display().to_string(),
        format!("--webhook-name-suffix={suffix}"),
        "--client-ca".into(),
        cluster.webhook_client_ca().display().to_string(),
        format!("--client-name={}", Cluster::WEBHOOK_CLIENT_NAME),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let server = spawn(port, &args, &cluster.kubeconfig);
    wait_for_log(
        &server,
        "webhook configurations registered",
        Duration::from_secs(60),
    );
    server
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("finding a free port: {e}"))
}

/// Starts `nadipam-server` listening on 127.0.0.1:`port` (health and metrics on another free port) with `args`
/// and `kubeconfig`, logging to `<state>/logs/nadipam-server-<port>.log`; it exits when the returned [`Server`]
/// is dropped or stopped. Does not wait for anything: see [`wait_for_log`].
pub fn spawn(port: u16, args: &[String], kubeconfig: &Path) -> Server {
    let cluster = cluster_info();
    let url = format!("https://127.0.0.1:{port}");
    let metrics_port = free_port();
    let log = cluster
        .state
        .join("logs")
        .join(format!("nadipam-server-{port}.log"));
    let log_file =
        std::fs::File::create(&log).unwrap_or_else(|e| panic!("creating {}: {e}", log.display()));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_nadipam-server"));
    cmd.env("KUBECONFIG", kubeconfig)
        .env("RUST_LOG", "info,kube=warn")
        .env("NO_COLOR", "1")
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--metrics-listen", &format!("127.0.0.1:{metrics_port}")])
        .args(["--identity", &format!("e2e-{port}")])
        .arg("--exit-on-stdin-eof")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(
            log_file
                .try_clone()
                .unwrap_or_else(|e| panic!("log file: {e}")),
        );
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("starting nadipam-server: {e}"));
    Server {
        url,
        metrics_url: format!("http://127.0.0.1:{metrics_port}"),
        log,
        child: Mutex::new(child),
    }
}

/// Waits until the server's log contains `needle`; panics with the log when it exits first or times out.
pub fn wait_for_log(server: &Server, needle: &str, timeout: Duration) {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if std::fs::read_to_string(&server.log)
            .unwrap_or_default()
            .contains(needle)
        {
            return;
        }
        if let Ok(mut c) = server.child.lock()
            && let Ok(Some(status)) = c.try_wait()
        {
            panic!(
                "nadipam-server exited ({status}) before logging {needle:?}:\n{}",
                server.log_tail()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!(
        "nadipam-server did not log {needle:?} within {timeout:?}:\n{}",
        server.log_tail()
    );
}

/// Deletes the webhook configurations of earlier test runs (every name containing `-e2e-`): a configuration
/// whose server is gone fails every matching request (`failurePolicy: Fail`).
pub fn remove_stale_registrations(cluster: &Cluster) {
    for kind in [
        "mutatingwebhookconfiguration",
        "validatingwebhookconfiguration",
    ] {
        let names = run(cluster.kubectl().args(["get", kind, "-o", "name"]));
        for line in names.lines().map(str::trim).filter(|l| l.contains("-e2e-")) {
            let _ = cluster
                .kubectl()
                .args(["delete", line, "--ignore-not-found"])
                .output();
        }
    }
}

/// Lines of the server log that mention `needle` (for tests asserting on logs).
pub fn log_lines(server: &Server, needle: &str) -> Vec<String> {
    std::fs::File::open(&server.log)
        .map(|f| {
            std::io::BufReader::new(f)
                .lines()
                .map_while(Result::ok)
                .filter(|l| l.contains(needle))
                .collect()
        })
        .unwrap_or_default()
}
