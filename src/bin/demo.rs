//! `demo`: nadipam end to end on the local control plane.
//!
//! Builds (or reuses) the control plane of `e2e/`, starts it, runs `nadipam-server` against it, applies the
//! examples of the Kube-OVN multi-NIC guide and the Spiderpool ovs-cni guide (`e2e/demo/*.yaml`), and prints
//! every allocated address. Then it shows two mistakes refused at `kubectl apply`, and, when run as root,
//! attaches one Pod's network to a network namespace with the real macvlan plugin and nadipam's CNI plugin.
//!
//! The control plane stays up afterwards so the objects can be explored; `e2e/cluster down` stops it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kube::api::{Api, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use nadipam::api::{IPLease, LeasePhase};

/// Subnets the demo's manifests create; their leases are the demo's.
const SUBNETS: [&str; 4] = ["macvlan", "macvlan-ovn", "attachnet", "underlay-172-18"];
/// Addresses the demo's Pods hold once everything is admitted: 6 Pods, 2 + 2 Deployment replicas.
const EXPECTED_LEASES: usize = 10;

type Error = Box<dyn std::error::Error>;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs a command to completion; its stdout, or an error carrying its stderr.
fn run(cmd: &mut Command) -> Result<String, Error> {
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

fn step(what: &str) {
    println!("\n== {what}");
}

/// The running control plane, as `e2e/cluster up` left it.
struct Bed {
    bin: PathBuf,
    state: PathBuf,
    kubeconfig: PathBuf,
}

impl Bed {
    fn up() -> Result<Bed, Error> {
        step("control plane: building (cached under ~/.cache/nadipam) and starting on 127.0.0.1");
        let bin = run(Command::new("bash")
            .arg(repo().join("e2e/build.sh"))
            .stderr(Stdio::inherit()))?;
        let up = run(Command::new(repo().join("e2e/cluster"))
            .arg("up")
            .stderr(Stdio::inherit()))?;
        let kubeconfig = PathBuf::from(up.lines().last().unwrap_or_default().trim());
        let state = kubeconfig
            .parent()
            .ok_or("e2e/cluster up printed no kubeconfig path")?
            .to_path_buf();
        let bed = Bed {
            bin: PathBuf::from(bin.trim()),
            state,
            kubeconfig,
        };
        println!("{}", bed.kubectl_out(&["version"])?.trim_end());
        Ok(bed)
    }

    fn kubectl(&self) -> Command {
        let mut cmd = Command::new(self.bin.join("kubectl"));
        cmd.arg("--kubeconfig").arg(&self.kubeconfig);
        cmd
    }

    fn kubectl_out(&self, args: &[&str]) -> Result<String, Error> {
        run(self.kubectl().args(args))
    }

    /// `kubectl apply -f -` with `doc`: Ok(stdout) when applied, Err(stderr) when refused.
    fn apply_stdin(&self, doc: &str) -> Result<Result<String, String>, Error> {
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

    async fn client(&self) -> Result<Client, Error> {
        let kc = Kubeconfig::read_from(&self.kubeconfig)?;
        let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?;
        Ok(Client::try_from(config)?)
    }
}

/// Builds the binaries the demo runs, in the demo's own profile (the outer `cargo run` built only the demo).
fn build_binaries() -> Result<(PathBuf, PathBuf), Error> {
    step("nadipam: building nadipam-server and the nadipam CNI plugin");
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
        .args(["--bin", "nadipam-server", "--bin", "nadipam"])
        .stderr(Stdio::inherit()))?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target"));
    Ok((
        target.join(profile).join("nadipam-server"),
        target.join(profile).join("nadipam"),
    ))
}

fn install_crds(bed: &Bed) -> Result<(), Error> {
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
        "crd/network-attachment-definitions.k8s.cni.cncf.io",
    ])?;
    Ok(())
}

/// `nadipam-server` on a free port of 127.0.0.1, registered with the apiserver by URL. It exits when the
/// demo does (its standard input closes), and removes its webhook configurations on the way out.
struct Server {
    child: Child,
    log: PathBuf,
}

impl Server {
    fn start(bed: &Bed, binary: &Path) -> Result<Server, Error> {
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

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Closes the server's stdin and waits for it to unregister and exit.
    fn stop(mut self) {
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

async fn demo_leases(client: &Client) -> Result<Vec<IPLease>, Error> {
    let api: Api<IPLease> = Api::all(client.clone());
    let mut out = Vec::new();
    for subnet in SUBNETS {
        let lp = ListParams::default().labels(&format!("{}={subnet}", nadipam::api::LABEL_SUBNET));
        out.extend(api.list(&lp).await?.items);
    }
    Ok(out)
}

async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut done: F) -> Result<(), Error>
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
async fn clean_previous_run(bed: &Bed, client: &Client) -> Result<(), Error> {
    step("removing the Pods and Deployments of an earlier run, if any");
    for kind in ["deployment/static-workload", "deployment/test-app"] {
        bed.kubectl_out(&["-n", "default", "delete", kind, "--ignore-not-found"])?;
    }
    bed.kubectl_out(&[
        "-n",
        "default",
        "delete",
        "pod",
        "samplepod",
        "static-ip",
        "static-ip-2",
        "samplepod-route",
        "samplepod-macvlan",
        "samplepod-ls",
        "custom-routes-attach",
        "--ignore-not-found",
    ])?;
    bed.kubectl_out(&[
        "-n",
        "default",
        "delete",
        "pod",
        "-l",
        "app in (static-workload,test-app)",
        "--ignore-not-found",
    ])?;
    wait_until(
        "the earlier run's leases to be released",
        Duration::from_secs(60),
        || async { Ok(demo_leases(client).await?.is_empty()) },
    )
    .await
}

fn apply(bed: &Bed, file: &str) -> Result<(), Error> {
    step(&format!("kubectl apply -f {file}"));
    let out = run(bed.kubectl().arg("apply").arg("-f").arg(repo().join(file)))?;
    print!("{out}");
    Ok(())
}

/// The table of every address the demo's Pods hold, read from the IPLeases once all are bound.
async fn print_allocations(client: &Client) -> Result<(), Error> {
    step("every Pod has its addresses the moment it exists (read from its IPLeases)");
    wait_until(
        "all demo addresses to be allocated and bound",
        Duration::from_secs(60),
        || async {
            let leases = demo_leases(client).await?;
            Ok(leases.len() >= EXPECTED_LEASES
                && leases.iter().all(|l| l.spec.phase == LeasePhase::Bound))
        },
    )
    .await?;
    let mut rows: Vec<[String; 5]> = demo_leases(client)
        .await?
        .into_iter()
        .map(|l| {
            let s = l.spec;
            let from = match &s.pool {
                Some(pool) => format!("{}/{pool}", s.subnet),
                None => s.subnet.clone(),
            };
            [
                format!(
                    "{}/{}",
                    s.pod_namespace,
                    s.pod_name.unwrap_or_else(|| "?".into())
                ),
                s.network,
                s.ip,
                s.mac.unwrap_or_else(|| "-".into()),
                from,
            ]
        })
        .collect();
    rows.sort();
    print_table(["POD", "NETWORK", "IP", "MAC", "SUBNET/POOL"], &rows);
    Ok(())
}

fn print_table<const N: usize>(header: [&str; N], rows: &[[String; N]]) {
    let mut width: [usize; N] = header.map(str::len);
    for row in rows {
        for (w, cell) in width.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: [&str; N]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(width)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(header);
    for row in rows {
        line(std::array::from_fn(|i| row[i].as_str()));
    }
}

/// Subnet and IPPool status as `kubectl get` shows it (the controller updates it shortly after a change).
async fn print_status(bed: &Bed, client: &Client) -> Result<(), Error> {
    step("kubectl get subnets,ippools (status written by the controller)");
    let pools: Api<nadipam::api::IPPool> = Api::all(client.clone());
    wait_until(
        "ippool-test's status to count its 2 addresses",
        Duration::from_secs(30),
        || async {
            let p = pools.get("ippool-test").await?;
            Ok(p.status.is_some_and(|s| s.allocated_ip_count == 2))
        },
    )
    .await?;
    let names: Vec<String> = SUBNETS.iter().map(|s| format!("subnet/{s}")).collect();
    let mut args = vec!["get"];
    args.extend(names.iter().map(String::as_str));
    print!("{}", bed.kubectl_out(&args)?);
    print!("{}", bed.kubectl_out(&["get", "ippool", "ippool-test"])?);
    Ok(())
}

/// Applies each mistake of `e2e/demo/rejected.yaml` on its own and prints what kubectl answers.
fn show_rejections(bed: &Bed) -> Result<(), Error> {
    step("mistakes are refused at kubectl apply, with what is wrong and what would be valid");
    let text = std::fs::read_to_string(repo().join("e2e/demo/rejected.yaml"))?;
    for doc in text.split("\n---\n") {
        let name = doc
            .lines()
            .skip_while(|l| !l.starts_with("metadata:"))
            .find_map(|l| l.trim().strip_prefix("name: "))
            .unwrap_or("?");
        match bed.apply_stdin(doc)? {
            Ok(stdout) => {
                return Err(format!(
                    "{name} was accepted; nadipam should have refused it:\n{stdout}"
                )
                .into());
            }
            Err(stderr) => {
                println!("$ kubectl apply  # {name}");
                print!("{stderr}");
            }
        }
    }
    Ok(())
}

/// Runs `samplepod`'s attachment on a real interface: a network namespace, a dummy master link, the macvlan
/// plugin with `ipam.type: nadipam`, through cnitool, as a kubelet and Multus would. Needs root.
fn attach_samplepod(bed: &Bed, cni: &Path) -> Result<(), Error> {
    step(
        "on a node: macvlan + the nadipam IPAM plugin put samplepod's address on a real interface",
    );
    let root = run(Command::new("id").arg("-u"))
        .map(|u| u.trim() == "0")
        .unwrap_or(false);
    if !root || Command::new("ip").arg("-V").output().is_err() {
        println!("(needs root and iproute2 to create a network namespace; not shown)");
        return Ok(());
    }
    let netns = "nadipam-demo";
    let master = "nddemo0";
    let work = std::env::temp_dir().join("nadipam-demo-cni");
    let quiet = |args: &[&str]| {
        let _ = Command::new("ip")
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    };
    quiet(&["netns", "del", netns]);
    quiet(&["link", "del", master]);
    let result = (|| -> Result<(), Error> {
        run(Command::new("ip").args(["netns", "add", netns]))?;
        if run(Command::new("ip").args(["link", "add", master, "type", "dummy"])).is_err() {
            run(Command::new("ip").args([
                "link",
                "add",
                master,
                "type",
                "veth",
                "peer",
                "name",
                &format!("{master}p"),
            ]))?;
        }
        run(Command::new("ip").args(["link", "set", master, "up"]))?;
        let plugins = work.join("bin");
        let confs = work.join("net.d");
        let _ = std::fs::remove_dir_all(&work);
        std::fs::create_dir_all(&plugins)?;
        std::fs::create_dir_all(&confs)?;
        std::os::unix::fs::symlink(bed.bin.join("macvlan"), plugins.join("macvlan"))?;
        std::os::unix::fs::symlink(cni, plugins.join("nadipam"))?;
        let conf = serde_json::json!({
            "cniVersion": "1.0.0",
            "name": "macvlan",
            "plugins": [{
                "type": "macvlan", "master": master, "mode": "bridge",
                "capabilities": {"mac": true},
                "ipam": {"type": "nadipam", "provider": "macvlan.default",
                         "kubeconfig": bed.kubeconfig}
            }]
        });
        std::fs::write(
            confs.join("macvlan.conflist"),
            serde_json::to_vec_pretty(&conf)?,
        )?;
        let annotations: BTreeMap<String, String> = serde_json::from_str(&bed.kubectl_out(&[
            "-n",
            "default",
            "get",
            "pod",
            "samplepod",
            "-o",
            "jsonpath={.metadata.annotations}",
        ])?)?;
        let mac = annotations
            .get("macvlan.default.kubernetes.io/mac_address")
            .cloned()
            .unwrap_or_default();
        let cnitool = |verb: &str| {
            run(Command::new(bed.bin.join("cnitool"))
                .args([verb, "macvlan", &format!("/var/run/netns/{netns}")])
                .env("NETCONFPATH", &confs)
                .env("CNI_PATH", &plugins)
                .env("CNI_IFNAME", "net1")
                .env(
                    "CNI_ARGS",
                    "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=samplepod",
                )
                .env("CAP_ARGS", serde_json::json!({ "mac": mac }).to_string()))
        };
        println!(
            "$ cnitool add macvlan /var/run/netns/{netns}   # CNI_IFNAME=net1, pod default/samplepod"
        );
        let added: serde_json::Value = serde_json::from_str(&cnitool("add")?)?;
        println!("{}", serde_json::to_string(&added)?);
        println!("$ ip -n {netns} addr show net1");
        print!(
            "{}",
            run(Command::new("ip").args(["-n", netns, "addr", "show", "net1"]))?
        );
        cnitool("del")?;
        Ok(())
    })();
    quiet(&["netns", "del", netns]);
    quiet(&["link", "del", master]);
    let _ = std::fs::remove_dir_all(&work);
    result
}

#[tokio::main]
async fn main() {
    nadipam::certs::install_crypto_provider();
    if let Err(e) = demo().await {
        eprintln!("\ndemo failed: {e}");
        std::process::exit(1);
    }
}

async fn demo() -> Result<(), Error> {
    let bed = Bed::up()?;
    let (server_bin, cni_bin) = build_binaries()?;
    install_crds(&bed)?;
    let server = Server::start(&bed, &server_bin)?;
    let result = async {
        let client = bed.client().await?;
        clean_previous_run(&bed, &client).await?;
        apply(&bed, "e2e/demo/kube-ovn-multi-nic.yaml")?;
        apply(&bed, "e2e/demo/spiderpool-ovs-cni.yaml")?;
        print_allocations(&client).await?;
        print_status(&bed, &client).await?;
        show_rejections(&bed)?;
        attach_samplepod(&bed, &cni_bin)
    }
    .await;
    server.stop();
    result?;
    step("done");
    println!(
        "The control plane is still up with the demo's objects. Explore:\n  \
         eval \"$(e2e/cluster env)\" && kubectl get subnets,ippools,ipleases\n\
         Stop it with: e2e/cluster down"
    );
    Ok(())
}
