//! The test bed, the server process and the demo's objects: starting, applying, waiting, cleaning up.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kube::api::{Api, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use nadipam::api::IPLease;

use crate::nodes::is_root;
use crate::{Error, SUBNETS, step};

pub(crate) fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs a command to completion; its stdout, or an error carrying its stderr.
pub(crate) fn run(cmd: &mut Command) -> Result<String, Error> {
    let out = cmd.output().map_err(|e| format!("running {cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd:?} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The running control plane, as `e2e/cluster up` left it.
pub(crate) struct Bed {
    pub(crate) bin: PathBuf,
    pub(crate) state: PathBuf,
    pub(crate) kubeconfig: PathBuf,
    /// Two nodes (kubelet, containerd, Multus) are up: only as root.
    pub(crate) nodes: bool,
}

impl Bed {
    pub(crate) fn up() -> Result<Bed, Error> {
        let nodes = is_root();
        step(if nodes {
            "test bed: building (cached under ~/.cache/nadipam) and starting the control plane on 127.0.0.1 \
             and two nodes (kubelet, containerd, Multus)"
        } else {
            "control plane: building (cached under ~/.cache/nadipam) and starting on 127.0.0.1 (nodes need root)"
        });
        let bin = run(Command::new("bash")
            .arg(repo().join("e2e/build.sh"))
            .stderr(Stdio::inherit()))?;
        let mut up = Command::new(repo().join("e2e/cluster"));
        up.arg("up");
        if nodes {
            up.args(["--nodes", "2"]);
        }
        let up = run(up.stderr(Stdio::inherit()))?;
        let kubeconfig = PathBuf::from(up.lines().last().unwrap_or_default().trim());
        let state = kubeconfig
            .parent()
            .ok_or("e2e/cluster up printed no kubeconfig path")?
            .to_path_buf();
        let bed = Bed {
            bin: PathBuf::from(bin.trim()),
            state,
            kubeconfig,
            nodes,
        };
        println!("{}", bed.kubectl_out(&["version"])?.trim_end());
        if nodes {
            println!(
                "{}",
                bed.kubectl_out(&["get", "nodes", "-o", "wide"])?.trim_end()
            );
        }
        Ok(bed)
    }

    pub(crate) fn kubectl(&self) -> Command {
        let mut cmd = Command::new(self.bin.join("kubectl"));
        cmd.arg("--kubeconfig").arg(&self.kubeconfig);
        cmd
    }

    pub(crate) fn kubectl_out(&self, args: &[&str]) -> Result<String, Error> {
        run(self.kubectl().args(args))
    }

    /// `kubectl apply -f -` with `doc`: Ok(stdout) when applied, Err(stderr) when refused.
    pub(crate) fn apply_stdin(&self, doc: &str) -> Result<Result<String, String>, Error> {
        use std::io::Write;
        let mut child = self
            .kubectl()
            .args(["apply", "-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        child
            .stdin
            .take()
            .ok_or("kubectl stdin")?
            .write_all(doc.as_bytes())?;
        let out = child.wait_with_output()?;
        Ok(if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        })
    }

    pub(crate) async fn client(&self) -> Result<Client, Error> {
        let kc = Kubeconfig::read_from(&self.kubeconfig)?;
        let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?;
        Ok(Client::try_from(config)?)
    }
}

/// Builds the server in the demo's own profile (the outer `cargo run` built only the demo; the test bed's
/// nodes build and install the CNI plugin themselves).
pub(crate) fn build_server() -> Result<PathBuf, Error> {
    step("nadipam: building nadipam-server");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let (flag, profile) = if cfg!(debug_assertions) {
        (None, "debug")
    } else {
        (Some("--release"), "release")
    };
    run(Command::new(cargo)
        .current_dir(repo())
        .arg("build")
        .args(flag)
        .args(["--bin", "nadipam-server"])
        .stderr(Stdio::inherit()))?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target"));
    Ok(target.join(profile).join("nadipam-server"))
}

pub(crate) fn install_crds(bed: &Bed) -> Result<(), Error> {
    step(
        "CRDs: nadipam.io (Subnet, IPPool, IPLease) and k8s.cni.cncf.io (NetworkAttachmentDefinition)",
    );
    let crds = repo().join("manifests/crds");
    let nad = repo().join("e2e/manifests/nad-crd.yaml");
    print!(
        "{}",
        run(bed
            .kubectl()
            .arg("apply")
            .arg("-f")
            .arg(&crds)
            .arg("-f")
            .arg(&nad))?
    );
    // The server keeps its leader-election Lease and Events in its own namespace.
    bed.apply_stdin(
        r#"{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "nadipam-system"}}"#,
    )?
    .map_err(|e| format!("creating namespace nadipam-system: {e}"))?;
    bed.kubectl_out(&[
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "crd/subnets.nadipam.io",
        "crd/ippools.nadipam.io",
        "crd/ipleases.nadipam.io",
        "crd/networks.nadipam.io",
        "crd/network-attachment-definitions.k8s.cni.cncf.io",
    ])?;
    Ok(())
}

/// `nadipam-server` on a free port of 127.0.0.1, registered with the apiserver by URL. It exits when the
/// demo does (its standard input closes), and removes its webhook configurations on the way out.
pub(crate) struct Server {
    child: Child,
    log: PathBuf,
}

impl Server {
    pub(crate) fn start(bed: &Bed, binary: &Path) -> Result<Server, Error> {
        step("nadipam-server: admission webhook and lease controller");
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let log = bed.state.join("logs/nadipam-demo.log");
        let log_file = std::fs::File::create(&log)?;
        let url = format!("https://127.0.0.1:{port}");
        let child = Command::new(binary)
            .env("KUBECONFIG", &bed.kubeconfig)
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "info,kube=warn")
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .arg("--tls-cert")
            .arg(bed.state.join("webhook/tls.crt"))
            .arg("--tls-key")
            .arg(bed.state.join("webhook/tls.key"))
            .args(["--webhook-url", &url])
            .arg("--webhook-ca")
            .arg(bed.state.join("webhook/ca.crt"))
            // Admission only for the apiserver, which presents this CA's certificate (e2e/cluster).
            .arg("--client-ca")
            .arg(bed.state.join("admission/client-ca.crt"))
            .arg("--client-name=kube-apiserver-webhook-client")
            .args(["--webhook-name-suffix=-demo", "--identity=demo"])
            .arg("--exit-on-stdin-eof")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .map_err(|e| format!("starting {}: {e}", binary.display()))?;
        let mut server = Server { child, log };
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(60) {
            if server
                .log_text()
                .contains("webhook configurations registered")
            {
                println!("listening on {url}; log: {}", server.log.display());
                return Ok(server);
            }
            if let Some(status) = server.child.try_wait()? {
                return Err(
                    format!("nadipam-server exited ({status}):\n{}", server.log_text()).into(),
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(format!(
            "nadipam-server did not register its webhooks within 60 s:\n{}",
            server.log_text()
        )
        .into())
    }

    pub(crate) fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Closes the server's stdin and waits for it to unregister and exit.
    pub(crate) fn stop(mut self) {
        drop(self.child.stdin.take());
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
    }
}

pub(crate) async fn demo_leases(client: &Client) -> Result<Vec<IPLease>, Error> {
    let api: Api<IPLease> = Api::all(client.clone());
    let mut out = Vec::new();
    for subnet in SUBNETS {
        let lp = ListParams::default().labels(&format!("{}={subnet}", nadipam::api::LABEL_SUBNET));
        out.extend(api.list(&lp).await?.items);
    }
    Ok(out)
}

pub(crate) async fn wait_until<F, Fut>(
    what: &str,
    timeout: Duration,
    mut done: F,
) -> Result<(), Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool, Error>>,
{
    let start = Instant::now();
    loop {
        if done().await? {
            return Ok(());
        }
        if start.elapsed() > timeout {
            return Err(format!("timed out after {timeout:?} waiting for {what}").into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Removes the workloads of an earlier run and waits until their addresses are free again, so every run
/// shows the same thing. Subnets, pools and NADs are simply re-applied.
pub(crate) async fn clean_previous_run(bed: &Bed, client: &Client) -> Result<(), Error> {
    step("removing the Pods and Deployments of an earlier run, if any");
    for kind in ["deployment/static-workload", "deployment/test-app"] {
        bed.kubectl_out(&["-n", "default", "delete", kind, "--ignore-not-found"])?;
    }
    // `kubectl -n default delete pod <args> --ignore-not-found`
    let delete_pods = |args: &[&str]| -> Result<String, Error> {
        let mut all = vec!["-n", "default", "delete", "pod"];
        all.extend_from_slice(args);
        all.push("--ignore-not-found");
        bed.kubectl_out(&all)
    };
    delete_pods(&[
        "samplepod",
        "static-ip",
        "static-ip-2",
        "samplepod-route",
        "samplepod-macvlan",
        "samplepod-ls",
        "custom-routes-attach",
        "--wait=false",
    ])?;
    // A Pod whose sandbox never came up (the Kube-OVN-typed attachment) cannot be torn down by its node.
    delete_pods(&["custom-routes-attach", "--grace-period=0", "--force"])?;
    delete_pods(&["-l", "app in (static-workload,test-app)"])?;
    wait_until(
        "the earlier run's leases to be released",
        Duration::from_secs(60),
        || async { Ok(demo_leases(client).await?.is_empty()) },
    )
    .await
}

pub(crate) fn apply(bed: &Bed, file: &str) -> Result<(), Error> {
    step(&format!("kubectl apply -f {file}"));
    let out = run(bed.kubectl().arg("apply").arg("-f").arg(repo().join(file)))?;
    print!("{out}");
    Ok(())
}
