//! The test bed the phases share: the control plane, a client, the nadipam server, and what the report says
//! about the machine and the versions.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};
use serde::Serialize;

use crate::common::{self, Cluster, server};
use crate::{cpu, promtext};

pub struct Bed {
    pub cluster: &'static Cluster,
    pub client: Client,
    /// CPU seconds per second each component uses idle (measured at start, before any phase).
    pub idle_cpu: BTreeMap<String, f64>,
}

impl Bed {
    /// Brings the control plane up (or finds it running) and installs nadipam's and Whereabouts' CRDs.
    pub async fn start() -> Bed {
        let cluster = common::cluster_info();
        server::install_crds(cluster);
        let crds = cluster.bin("whereabouts-crds");
        server::run(
            cluster
                .kubectl()
                .args(["apply", "--server-side", "--force-conflicts", "-f"])
                .arg(&crds),
        );
        server::wait_established(
            cluster,
            &[
                "ippools.whereabouts.cni.cncf.io",
                "overlappingrangeipreservations.whereabouts.cni.cncf.io",
            ],
        );
        server::remove_stale_registrations(cluster);
        let client = cluster.client().await;
        let idle_cpu = cpu::idle_rate(Duration::from_secs(3)).await;
        Bed {
            cluster,
            client,
            idle_cpu,
        }
    }

    /// The baseline means "no webhook at all": refuse to measure one while any mutating webhook is registered.
    pub async fn assert_no_pod_webhooks(&self) {
        let names: Vec<String> = Api::<MutatingWebhookConfiguration>::all(self.client.clone())
            .list(&ListParams::default())
            .await
            .unwrap_or_else(|e| panic!("listing mutating webhook configurations: {e}"))
            .items
            .iter()
            .map(|c| c.name_any())
            .collect();
        assert!(
            names.is_empty(),
            "the baseline needs a cluster without mutating webhooks, but these are registered: {names:?}; \
             delete them (kubectl delete mutatingwebhookconfiguration NAME) and rerun"
        );
    }

    /// A nadipam server (release build under `cargo bench`) registered with the control plane.
    /// One nadipam replica with its controller, plus `extra` flags.
    pub fn start_server(&self, extra: &[&str]) -> server::Server {
        let mut args = vec!["--namespace", "default"];
        args.extend_from_slice(extra);
        server::start(&args)
    }

    /// kubectl apply of a YAML document; panics with kubectl's message.
    pub fn apply(&self, yaml: &str) {
        let out = common::run_with_input(self.cluster.kubectl().args(["apply", "-f", "-"]), yaml);
        assert!(
            out.status.success(),
            "kubectl apply failed: {}\n{yaml}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The apiserver's `/metrics`, parsed.
    pub async fn apiserver_metrics(&self) -> promtext::Samples {
        let req = http::Request::get("/metrics")
            .body(Vec::new())
            .unwrap_or_else(|e| panic!("metrics request: {e}"));
        let text = self
            .client
            .request_text(req)
            .await
            .unwrap_or_else(|e| panic!("GET /metrics from the apiserver: {e}"));
        promtext::parse(&text)
    }

    /// The directory every built binary sits in, resolved (its name carries the component versions).
    pub fn bin(&self, name: &str) -> PathBuf {
        self.cluster.bin(name)
    }
}

/// The machine and the versions, as the report states them.
#[derive(Serialize, Clone, Debug)]
pub struct Machine {
    pub cpu: String,
    pub cpus: usize,
    pub memory_gib: f64,
    pub kernel: String,
    pub load_average: [f64; 3],
    pub kubernetes: String,
    pub etcd: String,
    pub whereabouts: String,
    pub nadipam: String,
    /// The commit measured (`git describe --always --dirty`): every figure comes from this code.
    pub commit: String,
    pub rustc: String,
    pub profile: String,
}

impl Machine {
    pub fn summary(&self) -> String {
        format!(
            "{} × {}, {:.0} GiB, Linux {}, load {:.2}; kube-apiserver {}, etcd {}, whereabouts {}, nadipam {} at {} ({})",
            self.cpus,
            self.cpu,
            self.memory_gib,
            self.kernel,
            self.load_average[0],
            self.kubernetes,
            self.etcd,
            self.whereabouts,
            self.nadipam,
            self.commit,
            self.profile
        )
    }
}

pub async fn machine(bed: &Bed) -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_owned())
        .unwrap_or_else(|| "unknown CPU".into());
    let memory_kib: f64 = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0.0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_owned();
    let kubernetes = bed
        .client
        .apiserver_version()
        .await
        .map(|v| v.git_version)
        .unwrap_or_else(|e| format!("unknown ({e})"));
    Machine {
        cpu,
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        memory_gib: memory_kib / 1024.0 / 1024.0,
        kernel,
        load_average: load_average(),
        kubernetes,
        etcd: etcd_version(&bed.bin("etcd")),
        whereabouts: component_version(&bed.bin("whereabouts"), "whereabouts"),
        nadipam: env!("CARGO_PKG_VERSION").to_owned(),
        commit: command_line(&[
            "git",
            "-C",
            env!("CARGO_MANIFEST_DIR"),
            "describe",
            "--always",
            "--dirty",
            "--abbrev=12",
        ]),
        rustc: command_line(&["rustc", "--version"]),
        profile: if cfg!(debug_assertions) {
            "debug build".into()
        } else {
            "release build".into()
        },
    }
}

/// 1, 5 and 15 minute load averages: a busy machine makes every figure worse, so the report shows it.
pub fn load_average() -> [f64; 3] {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut it = text.split_whitespace().map(|v| v.parse().unwrap_or(0.0));
    [
        it.next().unwrap_or(0.0),
        it.next().unwrap_or(0.0),
        it.next().unwrap_or(0.0),
    ]
}

/// A component's version from its cache directory name (`<name>-<version>-<hash>`, see e2e/build.sh).
fn component_version(binary: &Path, name: &str) -> String {
    std::fs::canonicalize(binary)
        .ok()
        .and_then(|p| {
            p.ancestors()
                .filter_map(|a| a.file_name()?.to_str().map(str::to_owned))
                .find_map(|d| {
                    let rest = d.strip_prefix(&format!("{name}-"))?;
                    rest.rsplit_once('-').map(|(version, _)| version.to_owned())
                })
        })
        .unwrap_or_else(|| "unknown".into())
}

/// `etcd --version` prints `etcd Version: 3.6.4` first.
fn etcd_version(binary: &Path) -> String {
    let out = command_line(&[&binary.display().to_string(), "--version"]);
    out.lines()
        .find_map(|l| l.strip_prefix("etcd Version:"))
        .map(|v| format!("v{}", v.trim()))
        .unwrap_or_else(|| "unknown".into())
}

fn command_line(args: &[&str]) -> String {
    std::process::Command::new(args[0])
        .args(&args[1..])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".into())
}

/// Waits until `check` holds, polling every `every`; panics naming `what` after `timeout`.
pub async fn until<F, Fut>(what: &str, timeout: Duration, every: Duration, check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    common::poll(timeout, every, check)
        .await
        .unwrap_or_else(|last| panic!("timed out after {timeout:?} waiting for {what}: {last}"));
}
