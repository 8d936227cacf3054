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
    /// The server's log file.
    pub log: std::path::PathBuf,
    child: Mutex<Child>,
}

impl Server {
    /// The process id, for tests that kill and restart it.
    pub fn pid(&self) -> u32 {
        self.child.lock().map(|c| c.id()).unwrap_or(0)
    }

    /// The server's `/metrics` text.
    pub fn metrics(&self) -> String {
        let out = Command::new("curl")
            .args(["-sk", &format!("{}/metrics", self.url)])
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

/// nadipam's CRDs (and Multus's NAD CRD, which no Multus installs here) applied to the cluster once.
pub fn install_crds(cluster: &Cluster) {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
        for f in ["manifests/crds", "e2e/manifests/nad-crd.yaml"] {
            run(cluster
                .kubectl()
                .args(["apply", "--server-side", "--force-conflicts", "-f"])
                .arg(repo.join(f)));
        }
        run(cluster.kubectl().args([
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd/subnets.nadipam.io",
            "crd/ippools.nadipam.io",
            "crd/ipleases.nadipam.io",
            "crd/network-attachment-definitions.k8s.cni.cncf.io",
        ]));
    });
}

fn run(cmd: &mut Command) -> String {
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

/// Starts a server with extra flags. Webhook configurations of earlier test binaries (whose servers are gone)
/// are removed first, so only this process is called.
pub fn start(extra: &[&str]) -> Server {
    let cluster = cluster_info();
    install_crds(cluster);
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("finding a free port: {e}"));
    let url = format!("https://127.0.0.1:{port}");
    let suffix = format!("-e2e-{}-{port}", std::process::id());
    remove_stale_registrations(cluster);
    let (cert, key) = cluster.webhook_tls();
    let log = cluster
        .state
        .join("logs")
        .join(format!("nadipam-server-{port}.log"));
    let log_file =
        std::fs::File::create(&log).unwrap_or_else(|e| panic!("creating {}: {e}", log.display()));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_nadipam-server"));
    cmd.env("KUBECONFIG", &cluster.kubeconfig)
        .env("RUST_LOG", "info,kube=warn")
        .env("NO_COLOR", "1")
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .arg("--tls-cert")
        .arg(&cert)
        .arg("--tls-key")
        .arg(&key)
        .args(["--webhook-url", &url])
        .arg("--webhook-ca")
        .arg(cluster.state.join("webhook/ca.crt"))
        .arg(format!("--webhook-name-suffix={suffix}"))
        .args(["--identity", &format!("e2e-{port}")])
        .arg("--exit-on-stdin-eof")
        .args(extra)
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
    let server = Server {
        url,
        log,
        child: Mutex::new(child),
    };
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(60) {
        if std::fs::read_to_string(&server.log)
            .unwrap_or_default()
            .contains("webhook configurations registered")
        {
            return server;
        }
        if let Ok(mut c) = server.child.lock()
            && let Ok(Some(status)) = c.try_wait()
        {
            panic!(
                "nadipam-server exited ({status}) before registering:\n{}",
                server.log_tail()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!(
        "nadipam-server did not register its webhooks within 60 s:\n{}",
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
