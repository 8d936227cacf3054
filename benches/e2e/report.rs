//! The run's results as JSON (everything measured) and as docs/benchmarks.md (tables made from that JSON,
//! so no figure is typed in by hand). The chart (benchmarks.png) is drawn from the JSON by e2e/bench-chart.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use serde::Serialize;

use crate::Opts;
use crate::burst::{self, BurstResult, Stack};
use crate::cni::CniResult;
use crate::env::Machine;
use crate::nodes::{Ipam, NodeResult};
use crate::steady::SteadyResult;

#[derive(Serialize, Debug)]
pub struct Results {
    pub machine: Machine,
    pub load_after: [f64; 3],
    /// CPU seconds per second each component used idle before the first phase (subtracted from the
    /// "until settled" totals).
    pub idle_cpu: std::collections::BTreeMap<String, f64>,
    pub bursts: Vec<BurstResult>,
    pub steady: Vec<SteadyResult>,
    pub cni: CniResult,
    pub core: Vec<CoreNumber>,
    /// The node phase (real kubelets), when it ran.
    pub nodes: Option<crate::nodes::NodeResult>,
    /// How the cost grows with the leases a Subnet holds.
    pub scale: crate::scale::ScaleResult,
}

/// One criterion benchmark of the allocation core: 1000 random picks.
#[derive(Serialize, Debug, Clone)]
pub struct CoreNumber {
    pub subnet: String,
    pub picks: String,
    /// Median time of 1000 picks, in microseconds.
    pub median_us: f64,
    pub ns_per_pick: f64,
}

/// Criterion's estimates from `cargo bench --bench alloc`, if that ran in this run (files newer than --since).
pub fn core_numbers(opts: &Opts) -> Vec<CoreNumber> {
    let (Some(dir), Some(since)) = (&opts.criterion, opts.since) else {
        return Vec::new();
    };
    let since = UNIX_EPOCH + Duration::from_secs(since);
    let mut out = Vec::new();
    let Ok(groups) = std::fs::read_dir(dir) else {
        return out;
    };
    for group in groups.flatten() {
        let Ok(benches) = std::fs::read_dir(group.path()) else {
            continue;
        };
        for bench in benches.flatten() {
            let estimates = bench.path().join("new/estimates.json");
            let meta = bench.path().join("new/benchmark.json");
            let fresh = std::fs::metadata(&estimates)
                .and_then(|m| m.modified())
                .is_ok_and(|t| t >= since);
            if !fresh {
                continue;
            }
            let read = |p: &Path| -> Option<serde_json::Value> {
                serde_json::from_str(&std::fs::read_to_string(p).ok()?).ok()
            };
            let (Some(est), Some(meta)) = (read(&estimates), read(&meta)) else {
                continue;
            };
            let Some(median_ns) = est["median"]["point_estimate"].as_f64() else {
                continue;
            };
            out.push(CoreNumber {
                subnet: meta["group_id"].as_str().unwrap_or("?").to_owned(),
                picks: meta["function_id"]
                    .as_str()
                    .unwrap_or("?")
                    .replace('_', " "),
                median_us: median_ns / 1000.0,
                ns_per_pick: median_ns / 1000.0,
            });
        }
    }
    out.sort_by(|a, b| (&a.subnet, &a.picks).cmp(&(&b.subnet, &b.picks)));
    out
}

pub fn write(dir: &Path, opts: &Opts, r: &Results) {
    std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
    let json = serde_json::to_string_pretty(&serde_json::json!({
        "n": opts.n, "cni_n": opts.cni_n(), "concurrency": opts.concurrency,
        "rate": opts.rate, "steady_seconds": opts.steady_seconds,
        "generated": jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        "results": r,
    }))
    .unwrap_or_else(|e| panic!("results as JSON: {e}"));
    let path = dir.join("benchmarks.json");
    std::fs::write(&path, json + "\n")
        .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    let path = dir.join("benchmarks.md");
    std::fs::write(&path, markdown(opts, r))
        .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}

/// The processes whose CPU the burst tables count (the benchmark client's own helper processes, such as the
/// curl reading nadipam's metrics, are left out).
const COMPONENTS: [&str; 5] = [
    "kube-apiserver",
    "etcd",
    "kube-controller-manager",
    "nadipam-server",
    "benchmark client",
];

fn baseline_of<'a>(r: &'a Results, b: &BurstResult) -> Option<&'a BurstResult> {
    r.bursts
        .iter()
        .find(|x| !x.nadipam && x.deployments == b.deployments && x.replicas == b.replicas)
}

/// Apiserver requests per Pod by verb and resource, per burst: each write costs the apiserver and etcd
/// about as much CPU as the Pod create itself.
fn writes_per_pod(w: &mut String, r: &Results) {
    let mut keys: Vec<&String> = r
        .bursts
        .iter()
        .flat_map(|b| b.apiserver.requests.keys())
        .collect();
    keys.sort();
    keys.dedup();
    if keys.is_empty() {
        return;
    }
    let _ = writeln!(
        w,
        "Apiserver requests per Pod during each burst (verb and resource; those at one per 20 Pods or more):\n"
    );
    let _ = writeln!(
        w,
        "| shape | IPAM | {} |\n|---|---|{}",
        keys.iter()
            .map(|k| k.as_str())
            .collect::<Vec<_>>()
            .join(" | "),
        "---|".repeat(keys.len())
    );
    for b in &r.bursts {
        let cells: Vec<String> = keys
            .iter()
            .map(|k| {
                b.apiserver
                    .requests
                    .get(*k)
                    .map_or("—".to_owned(), |v| format!("{:.2}", v / b.pods as f64))
            })
            .collect();
        let _ = writeln!(
            w,
            "| {} | {} | {} |",
            b.shape,
            burst::ipam_label(b.nadipam, b.variant.as_deref()),
            cells.join(" | ")
        );
    }
    let _ = writeln!(w);
}

/// kube-apiserver's CPU profile during the first steady phase, split by request kind.
fn apiserver_profile(w: &mut String, r: &Results) {
    let Some(st) = r.steady.first() else { return };
    let Some(p) = &st.profile else {
        let _ = writeln!(
            w,
            "No kube-apiserver CPU profile in this run (the cluster serves one when started with \
             `NADIPAM_PROFILING=1`, as `e2e/bench` does).\n"
        );
        return;
    };
    let _ = writeln!(
        w,
        "kube-apiserver's CPU profile over {:.0} s of the steady {} Pods/s phase (`/debug/pprof/profile`, split \
         with `go tool pprof -focus`): {:.2} CPU seconds, {:.2} ms per Pod created.\n",
        p.seconds,
        st.target_rate,
        p.total_cpu_s,
        p.total_cpu_s * 1000.0 / p.pods.max(1.0)
    );
    let _ = writeln!(
        w,
        "| part of kube-apiserver's CPU | share | ms per Pod |\n|---|---|---|"
    );
    let mut counted = 0.0;
    for part in &p.parts {
        if !part.what.starts_with("of which") {
            counted += part.cpu_s;
        }
        let _ = writeln!(
            w,
            "| {} | {:.1} % | {:.2} |",
            part.what,
            100.0 * part.cpu_s / p.total_cpu_s.max(f64::EPSILON),
            part.cpu_s * 1000.0 / p.pods.max(1.0)
        );
    }
    let rest = (p.total_cpu_s - counted).max(0.0);
    let _ = writeln!(
        w,
        "| the rest (TLS, authentication, authorization, priority and fairness, other requests) | {:.1} % | {:.2} |\n",
        100.0 * rest / p.total_cpu_s.max(f64::EPSILON),
        rest * 1000.0 / p.pods.max(1.0)
    );
    let share = |prefix: &str| {
        p.parts
            .iter()
            .find(|x| x.what.starts_with(prefix))
            .map_or(0.0, |x| 100.0 * x.cpu_s / p.total_cpu_s.max(f64::EPSILON))
    };
    let _ = writeln!(
        w,
        "Every component shares the machine's {} cores, so each of these parts slows the Pod creates as much as \
         it costs. The IPLease create ({:.0} %) is the reservation itself and stays. PATCH requests ({:.0} % \
         here): nadipam sends none by default; it used to bind every lease, one PATCH each (`--bind-leases`, see \
         the before and after below).\n",
        r.machine.cpus,
        share("IPLease creates"),
        share("PATCH requests")
    );
}

/// The same burst with each earlier default (`crate::BEFORE`) and with today's, side by side.
fn before_after(w: &mut String, r: &Results, after: &BurstResult) {
    let same = |b: &&BurstResult| {
        b.deployments == after.deployments && b.replicas == after.replicas && b.stack == after.stack
    };
    let mut rows: Vec<(String, &BurstResult)> = crate::BEFORE
        .iter()
        .filter_map(|(flags, label)| {
            r.bursts
                .iter()
                .filter(same)
                .find(|b| b.variant.as_deref() == Some(*label))
                .map(|b| (format!("`{}`", flags.join(" ")), b))
        })
        .collect();
    if rows.is_empty() {
        return;
    }
    rows.push(("the default".to_owned(), after));
    let unpaced = rows
        .iter()
        .map(|(_, b)| *b)
        .find(|b| b.variant.as_deref() == Some(crate::BEFORE[1].1));
    let paced = rows
        .iter()
        .map(|(_, b)| *b)
        .find(|b| b.variant.as_deref() == Some(crate::BEFORE[2].1));
    let base = baseline_of(r, after).map_or(f64::NAN, |x| x.wall_s);
    let per_pod = |cpu: &std::collections::BTreeMap<String, f64>, c: Option<&str>, pods: usize| {
        let s: f64 = match c {
            Some(c) => cpu.get(c).copied().unwrap_or(0.0),
            None => COMPONENTS
                .iter()
                .map(|c| cpu.get(*c).copied().unwrap_or(0.0))
                .sum(),
        };
        s * 1000.0 / pods as f64
    };
    let writes = |b: &BurstResult| {
        b.apiserver
            .requests
            .iter()
            .filter(|(k, _)| {
                !k.starts_with("GET") && !k.starts_with("LIST") && !k.starts_with("WATCH")
            })
            .map(|(_, v)| v)
            .sum::<f64>()
            / b.pods as f64
    };
    let _ = writeln!(w, "### Before and after\n");
    let _ = writeln!(
        w,
        "The first full run of this benchmark found the bursts CPU-bound: every component shares {} cores, and \
         each write the apiserver serves costs about as much as the Pod create. Besides its IPLease create, \
         nadipam bound every lease at once (a PATCH per lease) and published an `Allocated` Event per Pod. The \
         Event became opt-in (`--allocation-events`), then binds were paced (`--bind-rate`, 20 per second), and \
         now no lease is bound unless asked (`--bind-leases`): a lease is held by the Pod carrying its token \
         from admission on, and that token is what every lifecycle rule reads. Last, a lever tried and left \
         opt-in: HTTP/2 to the apiserver (`--api-http2`), so the server's requests and watches share one \
         connection instead of one per request in flight (kube's default client speaks HTTP/1.1). The same {} burst, in this run, \
         with each server configuration (writes and the first CPU columns during the burst; the last column \
         until every lease was settled, net of the idle control plane's own CPU):\n",
        r.machine.cpus, after.shape
    );
    let _ = writeln!(
        w,
        "| server | time (s) | vs no webhook | settled (s) | writes per Pod | kube-apiserver CPU (ms/Pod) | etcd CPU (ms/Pod) | nadipam-server CPU (ms/Pod) | all CPU until settled (ms/Pod) |\n|---|---|---|---|---|---|---|---|---|"
    );
    for (label, b) in rows {
        let _ = writeln!(
            w,
            "| {label} | {:.2} | {:.2}× | {} | {:.2} | {:.2} | {:.2} | {:.2} | {} |",
            b.wall_s,
            b.wall_s / base,
            b.bound_s.map_or("—".to_owned(), |s| format!("{s:.2}")),
            writes(b),
            per_pod(&b.cpu_s, Some("kube-apiserver"), b.pods),
            per_pod(&b.cpu_s, Some("etcd"), b.pods),
            per_pod(&b.cpu_s, Some("nadipam-server"), b.pods),
            b.cpu_bound_s.as_ref().map_or("—".to_owned(), |c| format!(
                "{:.2}",
                per_pod(c, None, b.pods)
            ))
        );
    }
    let _ = writeln!(w);
    let total = |b: &BurstResult| b.cpu_bound_s.as_ref().map(|c| per_pod(c, None, b.pods));
    let apiserver = |b: &BurstResult| per_pod(&b.cpu_s, Some("kube-apiserver"), b.pods);
    if let (Some(paced), Some(unpaced)) = (paced, unpaced) {
        let _ = writeln!(
            w,
            "Without binds the Pods got their addresses in {:.2} s, against {:.2} s with paced binds and {:.2} s \
             binding at once; the apiserver spent {:.2} ms of CPU per Pod during the burst, against {:.2} and \
             {:.2}. Until every lease was settled the machine spent {} ms per Pod in all, against {} (paced) and \
             {} (at once). `--bind-leases` (chart value `server.bindLeases`) writes each Pod's name and UID on \
             its leases for clusters that want them there.\n",
            after.wall_s,
            paced.wall_s,
            unpaced.wall_s,
            apiserver(after),
            apiserver(paced),
            apiserver(unpaced),
            fmt_opt(total(after)),
            fmt_opt(total(paced)),
            fmt_opt(total(unpaced)),
        );
    }
}

fn fmt_opt(v: Option<f64>) -> String {
    v.map_or("—".to_owned(), |v| format!("{v:.2}"))
}

fn met(ok: bool) -> &'static str {
    if ok { "yes" } else { "**no**" }
}

fn markdown(opts: &Opts, r: &Results) -> String {
    let m = &r.machine;
    let mut s = String::new();
    let w = &mut s;
    let _ = writeln!(w, "# Benchmarks\n");
    let _ = writeln!(
        w,
        "Generated by `e2e/bench` on {} from one run on one machine; every figure below comes from that run \
         ([benchmarks.json](benchmarks.json) holds them all). Rerun: `e2e/bench` (about {} minutes; \
         `e2e/bench --n 200` for a shorter one).\n",
        jiff::Timestamp::now().strftime("%Y-%m-%d"),
        if opts.n >= 1000 { 45 } else { 25 }
    );
    let _ = writeln!(
        w,
        "![nadipam, no IPAM and Whereabouts side by side](benchmarks.png)\n"
    );

    let _ = writeln!(w, "## Objectives\n");
    let _ = writeln!(
        w,
        "| objective | target | measured | met |\n|---|---|---|---|"
    );
    let mut row = |what: String, target: &str, measured: String, ok: bool| {
        let _ = writeln!(w, "| {what} | {target} | {measured} | {} |", met(ok));
    };
    for b in r.bursts.iter().filter(|b| b.nadipam && b.variant.is_none()) {
        if let Some(base) = baseline_of(r, b) {
            let ratio = b.wall_s / base.wall_s;
            // The floor on 2 shared cores (the CPU table): Deployments × replicas 1.9×, one Deployment 3.0×;
            // dual stack (two leases per Pod) is reported against the IPv4 goal.
            let goal = if b.deployments == 1 { 3.0 } else { 1.9 };
            row(
                format!("burst {} Pods, {}: time / no-webhook time", b.pods, b.shape),
                &format!("≤ {goal:.1}×"),
                format!("{ratio:.2}× ({:.2} s vs {:.2} s)", b.wall_s, base.wall_s),
                ratio <= goal,
            );
        }
    }
    if let Some((added, floor)) = apiserver_added_and_floor(r) {
        row(
            "kube-apiserver CPU added per Pod (first IPv4 Deployments burst, nadipam − no webhook) / the floor \
             (the webhook call + the IPLease create, from the profile)"
                .to_owned(),
            "≤ 1.2×",
            format!("{:.2}× ({added:.2} ms vs {floor:.2} ms)", added / floor),
            added / floor <= 1.2,
        );
    }
    if let Some(nr) = &r.nodes
        && let Some(ratio) = nr.vs_host_local(Ipam::Nadipam)
    {
        row(
            format!(
                "{} Pods to Running on {} real nodes ({} × {}): nadipam time / host-local time (median of {})",
                nr.deployments * nr.replicas,
                nr.nodes,
                nr.deployments,
                nr.replicas,
                nr.rounds
            ),
            "≤ 1.10×",
            format!(
                "{ratio:.2}× ({:.2} s vs {:.2} s)",
                nr.side(Ipam::Nadipam)
                    .map_or(f64::NAN, |s| s.running_median_s),
                nr.side(Ipam::HostLocal)
                    .map_or(f64::NAN, |s| s.running_median_s)
            ),
            ratio <= 1.10,
        );
    }
    let c = &r.cni;
    row(
        format!(
            "{} allocations at concurrency {}: Whereabouts time / nadipam time",
            c.n, c.concurrency
        ),
        "≥ 20×",
        format!(
            "{}{:.1}× ({:.1} s vs {:.2} s)",
            if c.whereabouts.complete { "" } else { "> " },
            c.speedup,
            c.whereabouts.wall_s,
            c.nadipam.wall_s
        ),
        c.speedup >= 20.0,
    );
    for st in &r.steady {
        let a = &st.admission;
        row(
            format!(
                "admission p99 at a steady {} Pods/s (webhook histogram)",
                st.target_rate
            ),
            if st.target_rate <= 100 {
                "≤ 5 ms"
            } else {
                "≤ 10 ms"
            },
            format!(
                "{:.2} ms (bucket ≤ {} ms; p50 {:.2} ms)",
                a.p99_ms, a.p99_bucket_ms, a.p50_ms
            ),
            a.p99_bucket_ms <= if st.target_rate <= 100 { 5.0 } else { 10.0 },
        );
    }
    let sq = &c.nadipam_sequential;
    for (what, p50, p99) in [
        (
            format!("`nadipam` CNI ADD p50, one at a time ({} ADDs)", sq.adds),
            sq.p50_ms,
            sq.p99_ms,
        ),
        (
            format!(
                "`nadipam` CNI ADD p50 at concurrency {}, next to Pod creates",
                c.concurrency
            ),
            c.nadipam.add_p50_ms,
            c.nadipam.add_p99_ms,
        ),
    ] {
        row(
            what,
            "≤ 5 ms",
            format!("{p50:.2} ms (p99 {p99:.2} ms)"),
            p50 <= 5.0,
        );
    }
    let sc = &r.scale;
    if let (Some(first), Some(full)) = (sc.points.first(), sc.points.last()) {
        let at = format!(
            "at {} leases (the {} filled)",
            full.leases + full.pods,
            sc.cidr
        );
        row(
            format!("nadipam-server RSS {at}"),
            "≤ 150 MiB",
            format!("{:.1} MiB", full.rss_after_mib),
            full.rss_after_mib <= 150.0,
        );
        row(
            format!(
                "nadipam-server start-up until ready, with {} leases",
                full.leases
            ),
            "≤ 10 s",
            format!("{:.2} s", full.startup_s),
            full.startup_s <= 10.0,
        );
        let ratio = full.admission.p99_ms / first.admission.p99_ms;
        row(
            format!(
                "admission p99 at {} Pods/s, the Subnet's last {} picks / with {} leases",
                full.rate, full.pods, first.leases
            ),
            "≤ 1.2×",
            format!(
                "{ratio:.2}× ({:.2} ms vs {:.2} ms)",
                full.admission.p99_ms, first.admission.p99_ms
            ),
            ratio <= 1.2,
        );
    }
    let _ = writeln!(
        w,
        "| addresses handed out twice (every phase) | 0 | 0 (checked: {} addresses in bursts, {} at a steady rate, {} + {} by CNI ADDs) | yes |\n",
        r.bursts
            .iter()
            .filter(|b| b.nadipam)
            .map(|b| b.distinct_addresses)
            .sum::<usize>(),
        r.steady.iter().map(|s| s.pods).sum::<usize>(),
        c.nadipam.distinct_addresses,
        c.whereabouts.distinct_addresses
    );

    why_not_met(w, r);

    let _ = writeln!(w, "## Machine and versions\n");
    let _ = writeln!(
        w,
        "- {} CPUs ({}), {:.0} GiB, Linux {}; load average {:.2} / {:.2} / {:.2} before, {:.2} / {:.2} / {:.2} after\n\
         - kube-apiserver {}, etcd {} (`--unsafe-no-fsync`), kube-controller-manager with `--kube-api-qps 1000`; no kubelet or \
         scheduler: Pods are created, admitted and stored, never run ([e2e/README.md](../e2e/README.md))\n\
         - nadipam {} at commit `{}` ({}, {}), one replica; Whereabouts {} built from its Go module\n\
         - N = {} Pods per burst, {} CNI ADDs at concurrency {}, steady rates {} Pods/s for {} s each\n",
        m.cpus,
        m.cpu,
        m.memory_gib,
        m.kernel,
        m.load_average[0],
        m.load_average[1],
        m.load_average[2],
        r.load_after[0],
        r.load_after[1],
        r.load_after[2],
        m.kubernetes,
        m.etcd,
        m.nadipam,
        m.commit,
        m.profile,
        m.rustc,
        m.whereabouts,
        opts.n,
        c.n,
        c.concurrency,
        opts.rate
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(" and "),
        opts.steady_seconds
    );

    if let Some(nr) = &r.nodes {
        node_phase(w, nr, m.cpus);
    }
    let _ = writeln!(w, "## 1. Burst: Deployments to annotated Pods\n");
    let _ = writeln!(
        w,
        "From the first Deployment create until every Pod exists (no webhook) or exists with its addresses \
         (nadipam), seen by a watch. Release: delete every Deployment; until every Pod (no webhook) or every \
         IPLease (nadipam) is gone, so each address is free to be handed out again; it starts once every lease \
         is settled: at once by default (nadipam binds no lease, see [lifecycle](lifecycle.md#binding-is-optional)), \
         once every lease is Bound with `--bind-leases` (binds paced at `--bind-rate`; the column \"settled\" is \
         from the first create). The last three columns are the apiserver's own metrics over the burst, per \
         request.\n"
    );
    let _ = writeln!(
        w,
        "| shape | IPAM | Pods | time (s) | Pods/s | vs no webhook | settled (s) | release (s) | Pod create at apiserver (ms) | in mutating webhook (ms) | etcd Pod create (ms) |\n|---|---|---|---|---|---|---|---|---|---|---|"
    );
    for b in &r.bursts {
        let ratio = baseline_of(r, b)
            .filter(|_| b.nadipam)
            .map_or("—".to_owned(), |base| {
                format!("{:.2}×", b.wall_s / base.wall_s)
            });
        let _ = writeln!(
            w,
            "| {} | {} | {} | {:.2} | {:.0} | {ratio} | {} | {:.2} | {:.2} | {:.2} | {:.2} |",
            b.shape,
            burst::ipam_label(b.nadipam, b.variant.as_deref()),
            b.pods,
            b.wall_s,
            b.pods_per_s,
            b.bound_s.map_or("—".to_owned(), |s| format!("{s:.2}")),
            b.release_s,
            b.apiserver.pod_create_ms,
            b.apiserver.mutating_webhook_ms,
            b.apiserver.etcd_pod_create_ms
        );
    }
    let _ = writeln!(w);
    let _ = writeln!(w, "### CPU per Pod\n");
    let _ = writeln!(
        w,
        "CPU time (user + system, from /proc) each component used during the burst, divided by the Pods created: \
         with every component on the same {} cores, this is what bounds the rate. The last column is the total \
         until every lease was settled (Bound, with `--bind-leases`): the burst's whole cost, paced binds \
         included, net of what the idle control plane uses over that time (measured before the first phase).\n",
        m.cpus
    );
    let components = COMPONENTS;
    let _ = writeln!(
        w,
        "| shape | IPAM | {} | total (ms/Pod) | total until settled (ms/Pod) |\n|---|---|{}---|---|",
        components.join(" | "),
        "---|".repeat(components.len())
    );
    for b in &r.bursts {
        let per = |c: &str| b.cpu_s.get(c).copied().unwrap_or(0.0) * 1000.0 / b.pods as f64;
        let total: f64 = components.iter().map(|c| per(c)).sum();
        let cells: Vec<String> = components
            .iter()
            .map(|c| format!("{:.2}", per(c)))
            .collect();
        let until_bound = b.cpu_bound_s.as_ref().map_or("—".to_owned(), |cpu| {
            let sum: f64 = components
                .iter()
                .map(|c| cpu.get(*c).copied().unwrap_or(0.0))
                .sum();
            format!("{:.2}", sum * 1000.0 / b.pods as f64)
        });
        let _ = writeln!(
            w,
            "| {} | {} | {} | {total:.2} | {until_bound} |",
            b.shape,
            burst::ipam_label(b.nadipam, b.variant.as_deref()),
            cells.join(" | ")
        );
    }
    let _ = writeln!(w);
    if let Some(b) = r
        .bursts
        .iter()
        .find(|b| b.nadipam && b.variant.is_none() && b.stack == Stack::V4)
    {
        let _ = writeln!(w, "### Where the time goes\n");
        let a = &b.apiserver;
        let base = baseline_of(r, b)
            .map(|x| x.apiserver.pod_create_ms)
            .unwrap_or(0.0);
        let _ = writeln!(
            w,
            "In the {} burst a Pod create took {:.2} ms at the apiserver on average ({:.2} ms without the webhook). \
             Of that, {:.2} ms was the call to nadipam's mutating webhook as the apiserver timed it (TLS, \
             AdmissionReview encoding, the webhook's own work: p50 {:.2} ms, p99 {:.2} ms by its histogram) and \
             {:.2} ms the etcd write of the Pod. Each admission also creates one IPLease per address \
             ({} etcd requests in total during the burst, against {} Pod creates).\n",
            b.shape,
            a.pod_create_ms,
            base,
            a.mutating_webhook_ms,
            b.admission.as_ref().map_or(f64::NAN, |l| l.p50_ms),
            b.admission.as_ref().map_or(f64::NAN, |l| l.p99_ms),
            a.etcd_pod_create_ms,
            a.etcd_requests,
            a.pod_creates
        );
        writes_per_pod(w, r);
        apiserver_profile(w, r);
        before_after(w, r, b);
    }

    let _ = writeln!(
        w,
        "## 2. Whereabouts vs nadipam, {} allocations at concurrency {}\n",
        c.n, c.concurrency
    );
    let _ = writeln!(
        w,
        "Whereabouts: {n} `whereabouts` ADD processes, {k} at a time (≈ {k} nodes), each with its own Pod in \
         `CNI_ARGS`, `log_level: error`, its flat config file, against the same apiserver; a failed ADD is \
         retried as the kubelet would. nadipam: {n} Pod creates through the webhook, each followed by the \
         `nadipam` plugin's ADD for that Pod, {k} at a time. Both checked for addresses handed out twice.\n",
        n = c.n,
        k = c.concurrency
    );
    let _ = writeln!(
        w,
        "| system | addresses | time (s) | per second | ADD p50 (ms) | ADD p99 (ms) | Pod create p50 / p99 (ms) | failed ADDs (retried) | distinct |\n|---|---|---|---|---|---|---|---|---|"
    );
    for side in [&c.whereabouts, &c.nadipam] {
        let _ = writeln!(
            w,
            "| {} | {}{} | {:.2} | {:.1} | {:.2} | {:.2} | {} | {} | {} |",
            side.system,
            side.done,
            if side.complete { "" } else { " (time limit)" },
            side.wall_s,
            side.per_s,
            side.add_p50_ms,
            side.add_p99_ms,
            match (side.create_p50_ms, side.create_p99_ms) {
                (Some(a), Some(b)) => format!("{a:.2} / {b:.2}"),
                _ => "—".into(),
            },
            side.failed_attempts,
            side.distinct_addresses
        );
    }
    if let Some(e) = &c.whereabouts.first_error {
        let e: String = e.chars().take(300).collect();
        let _ = writeln!(
            w,
            "\nWhereabouts' first failure: `{}`",
            e.replace('`', "'").replace('\n', " ")
        );
    }
    let _ = writeln!(w);

    let _ = writeln!(w, "## 3. Latency\n");
    let _ = writeln!(
        w,
        "Each steady phase creates Pods directly, one every 1/rate s whatever the earlier ones did (open loop). \
         Admission from nadipam's `nadipam_admission_duration_seconds` histogram over exactly that window \
         (interpolated inside the bucket, as `histogram_quantile` does; the bucket bound in brackets). CNI ADD: \
         process start to exit, as a runtime sees it.\n"
    );
    let _ = writeln!(
        w,
        "| measure | requests | p50 (ms) | p99 (ms) |\n|---|---|---|---|"
    );
    for st in &r.steady {
        let _ = writeln!(
            w,
            "| webhook admission at {} Pods/s (achieved {:.0}/s over {:.1} s) | {} | {:.2} (≤ {}) | {:.2} (≤ {}) |",
            st.target_rate,
            st.achieved_rate,
            st.seconds,
            st.admission.count,
            st.admission.p50_ms,
            st.admission.p50_bucket_ms,
            st.admission.p99_ms,
            st.admission.p99_bucket_ms
        );
        let _ = writeln!(
            w,
            "| Pod create round trip at the client, {} Pods/s | {} | {:.2} | {:.2} |",
            st.target_rate, st.pods, st.client_p50_ms, st.client_p99_ms
        );
    }
    let sq = &c.nadipam_sequential;
    let _ = writeln!(
        w,
        "| `nadipam` CNI ADD, one at a time | {} | {:.2} | {:.2} |",
        sq.adds, sq.p50_ms, sq.p99_ms
    );
    let _ = writeln!(
        w,
        "| `nadipam` CNI ADD, concurrency {}, next to Pod creates | {} | {:.2} | {:.2} |",
        c.concurrency, c.nadipam.done, c.nadipam.add_p50_ms, c.nadipam.add_p99_ms
    );
    let _ = writeln!(
        w,
        "| `whereabouts` CNI ADD, concurrency {} | {} | {:.2} | {:.2} |\n",
        c.concurrency, c.whereabouts.done, c.whereabouts.add_p50_ms, c.whereabouts.add_p99_ms
    );
    let _ = writeln!(
        w,
        "CPU per steady phase (ms per Pod): {}.\n",
        r.steady
            .iter()
            .map(|st| {
                let total: f64 = st.cpu_s.values().sum();
                format!(
                    "{} Pods/s: {:.2} in total, kube-apiserver {:.2}, nadipam-server {:.2}",
                    st.target_rate,
                    total * 1000.0 / st.pods as f64,
                    st.cpu_s.get("kube-apiserver").copied().unwrap_or(0.0) * 1000.0
                        / st.pods as f64,
                    st.cpu_s.get("nadipam-server").copied().unwrap_or(0.0) * 1000.0
                        / st.pods as f64
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    );

    let _ = writeln!(w, "## 4. Release\n");
    let _ = writeln!(
        w,
        "| shape | IPAM | Pods | delete to all gone (s) |\n|---|---|---|---|"
    );
    for b in &r.bursts {
        let _ = writeln!(
            w,
            "| {} | {} | {} | {:.2} |",
            b.shape,
            if b.nadipam {
                "nadipam (every IPLease gone)"
            } else {
                "none (every Pod gone)"
            },
            b.pods,
            b.release_s
        );
    }
    let _ = writeln!(w);

    let _ = writeln!(w, "## 5. Allocation core\n");
    if r.core.is_empty() {
        let _ = writeln!(
            w,
            "Not run in this form (`e2e/bench` runs `cargo bench --bench alloc` first).\n"
        );
    } else {
        let _ = writeln!(
            w,
            "Criterion medians of 1000 random picks (`cargo bench --bench alloc`): the first 1000 of an empty \
             subnet, and the last 1000 (IPv4: the picks that fill it; IPv6 /64: after 100 000).\n"
        );
        let _ = writeln!(
            w,
            "| subnet | picks | 1000 picks (µs) | per pick (ns) |\n|---|---|---|---|"
        );
        for c in &r.core {
            let _ = writeln!(
                w,
                "| {} | {} | {:.1} | {:.1} |",
                c.subnet, c.picks, c.median_us, c.ns_per_pick
            );
        }
        let _ = writeln!(w);
    }
    scale_section(w, &r.scale);
    let _ = writeln!(
        w,
        "## How to rerun\n\n`e2e/bench` builds everything it needs (the control plane from Go modules, cached in \
         `~/.cache/nadipam`; nadipam in release mode; matplotlib for the chart in a cached virtualenv), runs \
         `cargo bench --bench alloc`, then `cargo bench --bench e2e -- --phase nodes` on `e2e/cluster up --nodes 2` \
         and `cargo bench --bench e2e -- --phase control-plane` on a control plane without nodes (`benches/e2e/`), and \
         draws the chart with `e2e/bench-chart`. Options (`e2e/bench --help`): `--n`, `--cni-n`, `--concurrency`, \
         `--rate` (comma-separated), `--sequential-adds`, `--steady-seconds`, `--cni-timeout`, `--node-deployments`, \
         `--node-replicas`, `--node-rounds`, `--scale-prefix`, `--scale-levels`, `--scale-pods`, `--scale-rate`. \
         `cargo test --all-targets` runs every phase in a short form (N = 100; 2 × 3 Pods on the nodes, one round; a \
         /22 filled) into `target/bench-short/`, checking correctness, not speed."
    );
    s
}

/// The node phase: Pods to Running on real kubelets, host-local against Whereabouts against nadipam.
fn node_phase(w: &mut String, nr: &NodeResult, cpus: usize) {
    let _ = writeln!(w, "## Real nodes: Deployments to Running Pods\n");
    let _ = writeln!(
        w,
        "The measure users and peers publish, on the test bed's {} real nodes (kubelet, containerd, Multus; \
         `e2e/cluster up --nodes {}`, on the same {} cores as the control plane): {} Deployments × {} replicas, \
         half of them per node, each Pod with one macvlan network on the underlay `ul0`. From the first create until \
         every Pod is Running and Multus reports its `net1` address; one Pod per Deployment is checked from inside \
         (`ip addr show net1`). Release: delete every Deployment; until every Pod is gone and every address free \
         (host-local's files, Whereabouts' pool allocations, nadipam's IPLeases). The same network three ways, {} \
         rounds interleaved (each starting with the next IPAM; 15 s of rest before each run, for the nodes to tear \
         down the last one's sandboxes): **host-local** (node-local, no cluster coordination: the floor; one NAD and range per \
         node, each Deployment on its node's), **Whereabouts** (its plugin as Multus' delegate IPAM, allocating in \
         the CNI ADD) and **nadipam** (allocated at admission, the server's defaults; its webhook is registered \
         only for its own rounds). Every address is checked for duplicates: none in any run.\n",
        nr.nodes, nr.nodes, cpus, nr.deployments, nr.replicas, nr.rounds
    );
    let _ = writeln!(
        w,
        "| IPAM | to all Running, median (s) | min – max (s) | vs host-local | release, median (s) | min – max (s) | addresses per run |\n|---|---|---|---|---|---|---|"
    );
    for side in &nr.sides {
        let vs = nr
            .vs_host_local(side.ipam)
            .map_or("—".to_owned(), |v| format!("{v:.2}×"));
        let _ = writeln!(
            w,
            "| {} | {:.2} | {:.2} – {:.2} | {vs} | {:.2} | {:.2} – {:.2} | {} |",
            side.ipam.label(),
            side.running_median_s,
            side.running_min_s,
            side.running_max_s,
            side.release_median_s,
            side.release_min_s,
            side.release_max_s,
            side.runs.first().map_or(0, |r| r.addresses)
        );
    }
    if let (Some(wa), Some(np)) = (nr.side(Ipam::Whereabouts), nr.side(Ipam::Nadipam)) {
        let _ = writeln!(
            w,
            "\nWhereabouts' time to all Running / nadipam's: {:.2}× (release {:.2}×).\n",
            wa.running_median_s / np.running_median_s,
            wa.release_median_s / np.release_median_s
        );
    }
    let _ = writeln!(
        w,
        "Every run, by round:\n\n| round | IPAM | to all Running (s) | release (s) |\n|---|---|---|---|"
    );
    for round in 0..nr.rounds {
        for side in &nr.sides {
            for run in side.runs.iter().filter(|r| r.round == round) {
                let _ = writeln!(
                    w,
                    "| {} | {} | {:.2} | {:.2} |",
                    round + 1,
                    side.ipam.label(),
                    run.running_s,
                    run.release_s
                );
            }
        }
    }
    let _ = writeln!(w);
}

/// How the cost grows with the leases a Subnet holds.
pub fn scale_section(w: &mut String, sc: &crate::scale::ScaleResult) {
    let _ = writeln!(w, "## How the cost grows with the leases a Subnet holds\n");
    let _ = writeln!(
        w,
        "One Subnet, {} ({} addresses), filled step by step with IPLeases (created directly, standing in for Pods; \
         the server keeps them: `--reclaim-after 86400`). At each step a fresh nadipam-server is started and timed \
         until `/readyz` answers (caches listed, webhook registered); then Pods are created at a steady rate, taking \
         the next addresses (at the last step, the Subnet's last ones). RSS from /proc, admission from the \
         webhook's histogram. One more Pod after the last address is refused: \"{}\"\n",
        sc.cidr, sc.capacity, sc.full_refusal
    );
    let _ = writeln!(
        w,
        "| leases at start | fill (s) | start-up until ready (s) | RSS ready (MiB) | RSS after the Pods (MiB) | Pods at | admission p50 (ms) | admission p99 (ms) | client p50 (ms) | client p99 (ms) |\n|---|---|---|---|---|---|---|---|---|---|"
    );
    for p in &sc.points {
        let _ = writeln!(
            w,
            "| {} | {:.1} | {:.2} | {:.1} | {:.1} | {} × {}/s | {:.2} | {:.2} | {:.2} | {:.2} |",
            p.leases,
            p.fill_s,
            p.startup_s,
            p.rss_ready_mib,
            p.rss_after_mib,
            p.pods,
            p.rate,
            p.admission.p50_ms,
            p.admission.p99_ms,
            p.client_p50_ms,
            p.client_p99_ms
        );
    }
    let _ = writeln!(w);
}

/// The apiserver CPU nadipam adds per Pod in the first IPv4 Deployments × replicas burst (against the same shape
/// without a webhook), and the floor of this design from the profile: the webhook call plus the IPLease create.
fn apiserver_added_and_floor(r: &Results) -> Option<(f64, f64)> {
    let b = r
        .bursts
        .iter()
        .find(|b| b.nadipam && b.variant.is_none() && b.stack == Stack::V4 && b.deployments > 1)?;
    let base = baseline_of(r, b)?;
    let per = |x: &BurstResult| {
        x.cpu_s.get("kube-apiserver").copied().unwrap_or(0.0) * 1000.0 / x.pods as f64
    };
    let p = r.steady.first()?.profile.as_ref()?;
    let part = |prefix: &str| {
        p.parts
            .iter()
            .find(|x| x.what.starts_with(prefix))
            .map(|x| x.cpu_s * 1000.0 / p.pods.max(1.0))
    };
    let floor = part("of which calling mutating webhooks")? + part("IPLease creates")?;
    Some((per(b) - per(base), floor))
}

/// For each objective the run did not meet, what the run itself shows about why.
fn why_not_met(w: &mut String, r: &Results) {
    let mut reasons: Vec<String> = Vec::new();
    let total = |cpu: &BTreeMap<String, f64>| {
        COMPONENTS
            .iter()
            .map(|c| cpu.get(*c).copied().unwrap_or(0.0))
            .sum::<f64>()
    };
    for b in r.bursts.iter().filter(|b| b.nadipam && b.variant.is_none()) {
        let Some(base) = baseline_of(r, b) else {
            continue;
        };
        let goal = if b.deployments == 1 { 3.0 } else { 1.9 };
        if b.wall_s / base.wall_s <= goal {
            continue;
        }
        let (with, without) = (total(&b.cpu_s), total(&base.cpu_s));
        let busy = |x: &BurstResult| 100.0 * total(&x.cpu_s) / (x.wall_s * r.machine.cpus as f64);
        reasons.push(format!(
            "**Burst {}**: the machine is the limit, not a wait. Every component together used {:.2} CPU-seconds \
             during it against {:.2} without the webhook ({:.2}×; nadipam-server itself {:.2} s), with the {} cores \
             {:.0} % busy (without the webhook {:.0} %). On saturated cores the time cannot fall below that CPU \
             ratio; the apiserver's share of it is split in \"Where the time goes\".",
            b.shape,
            with,
            without,
            with / without.max(f64::EPSILON),
            b.cpu_s.get("nadipam-server").copied().unwrap_or(0.0),
            r.machine.cpus,
            busy(b),
            busy(base)
        ));
    }
    if let Some((added, floor)) = apiserver_added_and_floor(r)
        && added / floor > 1.2
        && let Some(p) = r.steady.first().and_then(|s| s.profile.as_ref())
    {
        let part = |prefix: &str| {
            p.parts
                .iter()
                .find(|x| x.what.starts_with(prefix))
                .map_or(0.0, |x| x.cpu_s * 1000.0 / p.pods.max(1.0))
        };
        reasons.push(format!(
            "**kube-apiserver CPU per Pod**: {added:.2} ms added against a floor of {floor:.2} ms. Beyond the \
             webhook call and the IPLease create, the profile puts {:.2} ms per Pod in watches (every Pod and lease \
             event encoded for each watcher: nadipam's controller watches Pods, its cache IPLeases) and {:.2} ms \
             in Go's garbage collector, which grows with everything the apiserver allocates for the extra \
             requests. Neither watch can go: the Pod watch is how the controller learns a Pod went (and its \
             address is free), the IPLease watch is the cache every admission picks from.",
            part("watches"),
            part("Go garbage collector")
        ));
    }
    for st in &r.steady {
        let a = &st.admission;
        if a.p99_bucket_ms <= if st.target_rate <= 100 { 5.0 } else { 10.0 } {
            continue;
        }
        let cpu = total(&st.cpu_s);
        reasons.push(format!(
            "**Admission p99 at {} Pods/s**: {:.2} ms, with the median at {:.2} ms. The webhook's own work is \
             the median; the tail is time spent waiting for a core: over the phase the components used {:.2} \
             CPU-seconds in {:.1} s ({:.0} % of the {} cores), and an admission that arrives while both are \
             busy waits for one.",
            st.target_rate,
            a.p99_ms,
            a.p50_ms,
            cpu,
            st.seconds,
            100.0 * cpu / (st.seconds * r.machine.cpus as f64),
            r.machine.cpus
        ));
    }
    if let Some(nr) = &r.nodes
        && let (Some(ratio), Some(n), Some(h)) = (
            nr.vs_host_local(Ipam::Nadipam),
            nr.side(Ipam::Nadipam),
            nr.side(Ipam::HostLocal),
        )
        && ratio > 1.10
    {
        reasons.push(format!(
            "**Pods to Running on the nodes**: nadipam's median {:.2} s (from {:.2} to {:.2} s over {} rounds) \
             against host-local's {:.2} s (from {:.2} to {:.2} s). Where the ranges overlap the difference is the \
             rounds' spread: the two kubelets and containerd start the sandboxes, on the same {} cores.",
            n.running_median_s,
            n.running_min_s,
            n.running_max_s,
            nr.rounds,
            h.running_median_s,
            h.running_min_s,
            h.running_max_s,
            r.machine.cpus
        ));
    }
    let c = &r.cni;
    if c.speedup < 20.0 {
        reasons.push(format!(
            "**Whereabouts vs nadipam**: {:.1}× over {} allocations ({:.1} s vs {:.2} s). nadipam's side is \
             its whole path, each Pod created through the webhook (p50 {:.2} ms) and then its ADD (p50 {:.2} \
             ms), on the same {} cores as the control plane; Whereabouts' ADDs took {:.2} ms at the median and \
             {:.2} ms at p99 ({} ADDs failed and were retried). The ratio moves with the machine's \
             load, which both sides share.",
            c.speedup,
            c.n,
            c.whereabouts.wall_s,
            c.nadipam.wall_s,
            c.nadipam.create_p50_ms.unwrap_or(f64::NAN),
            c.nadipam.add_p50_ms,
            r.machine.cpus,
            c.whereabouts.add_p50_ms,
            c.whereabouts.add_p99_ms,
            c.whereabouts.failed_attempts
        ));
    }
    if c.nadipam_sequential.p50_ms > 5.0 {
        reasons.push(format!(
            "**CNI ADD one at a time**: p50 {:.2} ms (mean {:.2} ms). Each ADD is a process start, a \
             kubeconfig read, a TLS handshake with the apiserver and one GET of the Pod.",
            c.nadipam_sequential.p50_ms, c.nadipam_sequential.mean_ms
        ));
    }
    if c.nadipam.add_p50_ms > 5.0 {
        reasons.push(format!(
            "**CNI ADD at concurrency {}**: p50 {:.2} ms, against {:.2} ms one at a time on an idle machine. \
             Each ADD is a new process that reads its kubeconfig, opens a TLS connection to the apiserver and \
             reads the Pod; {} of them at once next to the Pod creates share {} cores. A node-local reader \
             holding one connection (no handshake per ADD) is the change that would remove the per-ADD \
             handshake; it is not built.",
            c.concurrency,
            c.nadipam.add_p50_ms,
            c.nadipam_sequential.p50_ms,
            c.concurrency,
            r.machine.cpus
        ));
    }
    let sc = &r.scale;
    if let (Some(first), Some(full)) = (sc.points.first(), sc.points.last()) {
        let leases = (full.leases + full.pods) as f64;
        if full.rss_after_mib > 150.0 {
            let per = (full.rss_after_mib - first.rss_ready_mib) * 1024.0 / leases.max(1.0);
            reasons.push(format!(
                "**RSS at {} leases**: {:.1} MiB, {:.1} MiB of it at start with no lease: about {per:.2} KiB per \
                 lease. Each lease is kept whole in the IPLease store (kube's reflector: the object and a key \
                 holding its name, resourceVersion and UID) and indexed by token; labels, annotations and \
                 managedFields are already dropped. Reaching 150 MiB needs a slimmer cached lease than kube's \
                 store holds.",
                full.leases + full.pods,
                full.rss_after_mib,
                first.rss_ready_mib
            ));
        }
        if full.startup_s > 10.0 {
            reasons.push(format!(
                "**Start-up with {} leases**: {:.2} s until ready, against {:.2} s empty: the initial list of \
                 every lease (in pages) and the index built from it.",
                full.leases, full.startup_s, first.startup_s
            ));
        }
        let ratio = full.admission.p99_ms / first.admission.p99_ms;
        if ratio > 1.2 {
            let cpu = |p: &crate::scale::Point, c: &str| p.cpu_s.get(c).copied().unwrap_or(0.0);
            reasons.push(format!(
                "**Admission p99 at the last picks**: {:.2} ms against {:.2} ms empty (p50 {:.2} vs {:.2} ms; \
                 the client's p99 {:.2} vs {:.2} ms). Over the {} Pods nadipam-server used {:.2} CPU-seconds \
                 against {:.2} empty, kube-apiserver {:.2} against {:.2} and etcd {:.2} against {:.2}: the \
                 webhook's tail includes its IPLease create, answered by an apiserver and etcd that now hold \
                 every lease of the /16.",
                full.admission.p99_ms,
                first.admission.p99_ms,
                full.admission.p50_ms,
                first.admission.p50_ms,
                full.client_p99_ms,
                first.client_p99_ms,
                full.pods,
                cpu(full, "nadipam-server"),
                cpu(first, "nadipam-server"),
                cpu(full, "kube-apiserver"),
                cpu(first, "kube-apiserver"),
                cpu(full, "etcd"),
                cpu(first, "etcd")
            ));
        }
    }
    if reasons.is_empty() {
        return;
    }
    let _ = writeln!(w, "### Where a goal is not met, and why\n");
    for r in reasons {
        let _ = writeln!(w, "- {r}");
    }
    let _ = writeln!(w);
}
