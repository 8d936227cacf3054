//! Where kube-apiserver spends its CPU while nadipam allocates: a CPU profile from its `/debug/pprof`
//! (served when the cluster was started with `NADIPAM_PROFILING=1`, as `e2e/bench` does), split with
//! `go tool pprof` into the requests nadipam causes. Absent (and said so in the report) otherwise.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde::Serialize;

use crate::env::Bed;

/// The parts, each a chain of `go tool pprof -focus` regular expressions (a sample counts when a function on
/// its stack matches each of them). A sample counts in every part it matches, so "of which" parts are inside
/// the one above them.
const PARTS: &[(&str, &[&str])] = &[
    (
        "Pod create requests (whole request, webhook call included)",
        &[r"^k8s\.io/apiserver/pkg/endpoints/handlers\.CreateResource\."],
    ),
    (
        "of which calling mutating webhooks (AdmissionReview encode, matchConditions, response, patch)",
        &[r"mutating\.\(\*mutatingDispatcher\)\.Dispatch"],
    ),
    (
        "of which matchConditions (CEL)",
        &[r"matchconditions\.\(\*matcher\)\.Match"],
    ),
    (
        "of which building and encoding the AdmissionReview",
        &[
            r"mutatingDispatcher\)\.callAttrMutatingHook",
            r"request\.CreateAdmissionObjects|request\.CreateV1AdmissionReview|rest\.\(\*Request\)\.Body",
        ],
    ),
    (
        "of which the HTTPS round trip to the webhook (TLS, HTTP/2, waiting excluded)",
        &[
            r"mutatingDispatcher\)\.callAttrMutatingHook",
            r"rest\.\(\*Request\)\.Do$|rest\.\(\*Request\)\.request",
        ],
    ),
    (
        "of which decoding the response and applying its patch",
        &[
            r"mutatingDispatcher\)\.callAttrMutatingHook",
            r"rest\.Result\.Into|json-patch|jsonpatch",
        ],
    ),
    (
        "IPLease creates (the reservation)",
        &[r"crdHandler\)\.serveResource\.CreateResource\."],
    ),
    (
        "PATCH requests (the controller binding leases, with --bind-leases)",
        &[r"handlers\.\(\*patcher\)\.patchResource"],
    ),
    (
        "watches (etcd watch decoding, the watch cache, events to the controllers' caches)",
        &[
            r"etcd3\.\(\*watchChan\)|cacher\.\(\*Cacher\)|handlers\.\(\*WatchServer\)|crdHandler\)\.serveResource\.ListResource",
        ],
    ),
    ("Go garbage collector", &[r"^runtime\.gcBgMarkWorker$"]),
];

#[derive(Clone, Debug, Serialize)]
pub struct Profile {
    /// Length of the profile.
    pub seconds: f64,
    /// Pods created while it ran (the steady rate times its length).
    pub pods: f64,
    /// CPU seconds kube-apiserver used in that time.
    pub total_cpu_s: f64,
    pub parts: Vec<Part>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Part {
    pub what: String,
    pub cpu_s: f64,
}

/// Starts a CPU profile of `seconds` after `delay`, in the background; its file once it is done, or None
/// if the apiserver does not serve profiles.
pub fn start(bed: &Bed, delay: Duration, seconds: u64) -> tokio::task::JoinHandle<Option<PathBuf>> {
    let pki = bed.cluster.state.join("pki");
    let port = bed
        .cluster
        .env
        .get("APISERVER_PORT")
        .cloned()
        .unwrap_or_default();
    let url = format!("https://127.0.0.1:{port}/debug/pprof/profile?seconds={seconds}");
    let out = bed
        .cluster
        .state
        .join(format!("kube-apiserver-{}.pprof", std::process::id()));
    // curl with the admin certificate rather than the bench's kube Client: its `request_text` would mangle
    // the gzipped protobuf, and the profile is written to a file for `go tool pprof` anyway.
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        let status = tokio::process::Command::new("curl")
            .args(["-sf", "--max-time"])
            .arg((seconds + 30).to_string())
            .arg("--cacert")
            .arg(pki.join("ca.crt"))
            .arg("--cert")
            .arg(pki.join("admin.crt"))
            .arg("--key")
            .arg(pki.join("admin.key"))
            .arg("-o")
            .arg(&out)
            .arg(&url)
            .status()
            .await;
        match status {
            Ok(s) if s.success() => Some(out),
            _ => {
                eprintln!(
                    "bench: no kube-apiserver CPU profile (start the cluster with NADIPAM_PROFILING=1, as e2e/bench does)"
                );
                None
            }
        }
    })
}

/// Splits the profile into [`PARTS`]; None when `go tool pprof` cannot read it.
pub fn summarize(bin_dir: &Path, file: &Path, seconds: Duration, pods: f64) -> Option<Profile> {
    let (_, total) = focused_cpu_s(bin_dir, file, None)?;
    let parts = PARTS
        .iter()
        .map(|(what, chain)| Part {
            what: (*what).to_owned(),
            cpu_s: chained_cpu_s(bin_dir, file, chain).unwrap_or(0.0),
        })
        .collect();
    Some(Profile {
        seconds: seconds.as_secs_f64(),
        pods,
        total_cpu_s: total,
        parts,
    })
}

/// CPU seconds of the samples whose stack matches every regular expression of `chain`: each but the last
/// narrows the profile into a temporary file (`-proto`), the last is counted.
fn chained_cpu_s(bin_dir: &Path, file: &Path, chain: &[&str]) -> Option<f64> {
    let (last, narrowing) = chain.split_last()?;
    let mut current = file.to_path_buf();
    let mut temps = Vec::new();
    for (i, re) in narrowing.iter().enumerate() {
        let out = file.with_extension(format!("focus{i}.pb.gz"));
        let status = Command::new("go")
            .args([
                "tool",
                "pprof",
                "-proto",
                &format!("-focus={re}"),
                "-output",
            ])
            .arg(&out)
            .arg(bin_dir.join("kube-apiserver"))
            .arg(&current)
            .output()
            .ok()?;
        if !status.status.success() {
            return None;
        }
        temps.push(out.clone());
        current = out;
    }
    let seconds = focused_cpu_s(bin_dir, &current, Some(last)).map(|(s, _)| s);
    for t in temps {
        let _ = std::fs::remove_file(t);
    }
    seconds
}

/// (CPU seconds of the samples with a function matching `focus` on their stack, CPU seconds of all samples),
/// from the line `Showing nodes accounting for 1.48s, 16.91% of 8.75s total` of `go tool pprof -top` with
/// nothing dropped: every sample's time is some node's flat time exactly once.
fn focused_cpu_s(bin_dir: &Path, file: &Path, focus: Option<&str>) -> Option<(f64, f64)> {
    let mut cmd = Command::new("go");
    cmd.args([
        "tool",
        "pprof",
        "-top",
        "-unit=s",
        "-nodefraction=0",
        "-edgefraction=0",
        "-nodecount=1000000",
    ]);
    if let Some(re) = focus {
        cmd.arg(format!("-focus={re}"));
    }
    let out = cmd
        .arg(bin_dir.join("kube-apiserver"))
        .arg(file)
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!(
            "bench: go tool pprof failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Showing nodes accounting for "))?;
    let seconds = |v: &str| v.trim().trim_end_matches('s').parse::<f64>().ok();
    let (part, rest) = line.split_once(',')?;
    let total = rest.split_once(" of ")?.1.strip_suffix(" total")?;
    Some((seconds(part)?, seconds(total)?))
}
