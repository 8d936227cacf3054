//! Side-by-side benchmarks on the local control plane (e2e/cluster): nadipam against no IPAM at all (the
//! apiserver's own Pod create rate) and against Whereabouts, in one run on one machine.
//!
//! `e2e/bench` runs it in full (N = 1000) and writes docs/benchmarks.{md,json,png}; see docs/benchmarks.md for
//! what each phase measures. Under `cargo test --all-targets` (no `--bench` flag) the same phases run in a
//! short form (N = 100) into target/bench-short/, asserting what must hold at any size: every Pod annotated,
//! no address handed out twice, every lease released.

#[path = "../../tests/common/mod.rs"]
mod common;

mod burst;
mod cni;
mod cpu;
mod env;
mod nodes;
mod profile;
mod promtext;
mod report;
mod scale;
mod steady;

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

/// What to run and how big.
#[derive(Parser, Debug, Clone)]
#[command(about = "nadipam side-by-side benchmarks on the local control plane")]
pub struct Opts {
    /// Pods per burst (the Deployments × replicas shapes are N/10 × 10 and 1 × N).
    #[arg(long, default_value_t = 1000)]
    pub n: usize,
    /// CNI ADDs for the Whereabouts comparison (default: N).
    #[arg(long)]
    pub cni_n: Option<usize>,
    /// ADDs in flight, as if this many nodes ran sandboxes at once.
    #[arg(long, default_value_t = 10)]
    pub concurrency: usize,
    /// Pod creates per second in the steady-rate latency phases (one phase per rate, comma-separated).
    #[arg(long, value_delimiter = ',', default_values_t = [100, 200])]
    pub rate: Vec<u32>,
    /// nadipam CNI ADDs run one at a time (one node, idle), for the plugin's own latency.
    #[arg(long, default_value_t = 200)]
    pub sequential_adds: usize,
    /// Length of each steady-rate phase, in seconds.
    #[arg(long, default_value_t = 10)]
    pub steady_seconds: u64,
    /// Give up on Whereabouts after this many seconds (reported as unfinished, with how far it got).
    #[arg(long, default_value_t = 1800)]
    pub cni_timeout: u64,
    /// Where benchmarks.json and benchmarks.md go.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Read criterion's results of `cargo bench --bench alloc` from this directory (only files written after
    /// --since count).
    #[arg(long)]
    pub criterion: Option<PathBuf>,
    /// Unix time the whole run started (set by e2e/bench), to tell this run's criterion results from old ones.
    #[arg(long)]
    pub since: Option<u64>,
    /// Scale phase: the Subnet's prefix length (10.200.0.0/PREFIX; 16 holds 65 534 addresses).
    #[arg(long, default_value_t = 16)]
    pub scale_prefix: u8,
    /// Scale phase: lease counts to measure at before the full Subnet (comma-separated).
    #[arg(long, value_delimiter = ',', default_values_t = [0, 10_000])]
    pub scale_levels: Vec<usize>,
    /// Scale phase: Pods created at each step, at --scale-rate per second (at the last step, the last picks).
    #[arg(long, default_value_t = 1000)]
    pub scale_pods: usize,
    /// Scale phase: Pod creates per second.
    #[arg(long, default_value_t = 100)]
    pub scale_rate: u32,
    /// Which phases: `all`; `nodes` (the node phase only, on `e2e/cluster up --nodes 2`; its results go to
    /// --nodes-json); `control-plane` (every other phase; the node phase's results are read from --nodes-json);
    /// `scale` (the scale phase alone, its results printed, no report written).
    #[arg(long, value_enum, default_value_t = Phase::All)]
    pub phase: Phase,
    /// Where the node phase's results are written (`--phase nodes`) or read from (`--phase control-plane`).
    #[arg(long)]
    pub nodes_json: Option<PathBuf>,
    /// Node phase: Deployments (half per node).
    #[arg(long, default_value_t = 10)]
    pub node_deployments: usize,
    /// Node phase: replicas per Deployment.
    #[arg(long, default_value_t = 10)]
    pub node_replicas: usize,
    /// Node phase: rounds (each runs host-local, Whereabouts and nadipam once).
    #[arg(long, default_value_t = 3)]
    pub node_rounds: usize,
    /// Passed by `cargo bench`.
    #[arg(long, hide = true)]
    pub bench: bool,
}

impl Opts {
    fn short() -> Opts {
        Opts {
            n: 100,
            cni_n: Some(50),
            concurrency: 10,
            rate: vec![100, 200],
            sequential_adds: 20,
            steady_seconds: 2,
            cni_timeout: 600,
            out: Some(repo().join("target/bench-short")),
            criterion: None,
            since: None,
            scale_prefix: 22,
            scale_levels: vec![0],
            scale_pods: 200,
            scale_rate: 100,
            phase: Phase::All,
            nodes_json: None,
            node_deployments: 2,
            node_replicas: 3,
            node_rounds: 1,
            bench: false,
        }
    }

    pub fn cni_n(&self) -> usize {
        self.cni_n.unwrap_or(self.n)
    }

    pub fn cni_timeout(&self) -> Duration {
        Duration::from_secs(self.cni_timeout)
    }
}

/// The node phase needs the nodes and the others a control plane without them (burst Pods would otherwise be
/// scheduled and started): `e2e/bench` runs the two in separate processes with the cluster replaced between.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    All,
    Nodes,
    ControlPlane,
    /// The scale phase alone, printed and not reported (for trying a change to the server's memory or its
    /// admission at scale without the whole run).
    Scale,
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn main() {
    let bench_mode = std::env::args().any(|a| a == "--bench");
    let opts = if bench_mode {
        Opts::parse()
    } else {
        Opts::short()
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("tokio runtime: {e}"));
    if opts.phase == Phase::Nodes {
        let result = runtime.block_on(node_phase(&opts));
        let path = opts
            .nodes_json
            .clone()
            .unwrap_or_else(|| repo().join("target/bench-nodes.json"));
        let json = serde_json::to_string_pretty(&result)
            .unwrap_or_else(|e| panic!("node results as JSON: {e}"));
        std::fs::write(&path, json).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        eprintln!("bench: wrote {}", path.display());
        return;
    }
    if opts.phase == Phase::Scale {
        let scale = runtime.block_on(async {
            let bed = env::Bed::start().await;
            scale::run(
                &bed,
                opts.scale_prefix,
                &opts.scale_levels,
                opts.scale_rate,
                opts.scale_pods,
            )
            .await
        });
        let json = serde_json::to_string_pretty(&scale)
            .unwrap_or_else(|e| panic!("scale results as JSON: {e}"));
        println!("{json}");
        return;
    }
    let results = runtime.block_on(run(&opts));
    let out = opts.out.clone().unwrap_or_else(|| repo().join("docs"));
    report::write(&out, &opts, &results);
    eprintln!("bench: wrote {}", out.display());
}

/// The before/after variants: the server's flags and the label they carry in the report, oldest first. The
/// first full run's default published an `Allocated` Event per Pod and bound every lease at once; the next
/// one's bound every lease, paced (`--bind-rate`, default 20 per second); today's binds none. Last, a lever tried
/// and left opt-in: HTTP/2 to the apiserver (`--api-http2`).
pub const BEFORE: [(&[&str], &str); 4] = [
    (
        &["--allocation-events", "--bind-rate", "0"],
        "with --allocation-events --bind-rate 0",
    ),
    (
        &["--bind-leases", "--bind-rate", "0"],
        "with --bind-leases --bind-rate 0",
    ),
    (&["--bind-leases"], "with --bind-leases"),
    (&["--api-http2"], "with --api-http2"),
];

async fn node_phase(opts: &Opts) -> nodes::NodeResult {
    nodes::run(opts.node_deployments, opts.node_replicas, opts.node_rounds).await
}

/// Whether a server started with `flags` binds leases (so a burst waits for the binds before it is released).
pub fn binds(flags: &[&str]) -> bool {
    flags
        .iter()
        .any(|f| *f == "--bind-leases" || *f == "--allocation-events")
}

/// Every phase in order; each returns what it measured, and panics when a correctness check fails.
async fn run(opts: &Opts) -> report::Results {
    // First, while the cluster may still have to be brought up with nodes: the node phase.
    let nodes = match opts.phase {
        Phase::All => Some(node_phase(opts).await),
        _ => opts.nodes_json.as_ref().map(|p| {
            let text = std::fs::read_to_string(p).unwrap_or_else(|e| {
                panic!("reading the node phase's results {}: {e}", p.display())
            });
            serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("the node phase's results {}: {e}", p.display()))
        }),
    };
    let bed = env::Bed::start().await;
    let machine = env::machine(&bed).await;
    eprintln!("bench: {}", machine.summary());

    let mut bursts = Vec::new();
    let deployments = (opts.n / 10).max(1);
    let shapes = [
        burst::Shape::new(deployments, opts.n / deployments, burst::Stack::V4),
        burst::Shape::new(1, opts.n, burst::Stack::V4),
        burst::Shape::new(deployments, opts.n / deployments, burst::Stack::Dual),
    ];
    // Baselines first, with no nadipam server (and so no webhook) registered at all.
    bed.assert_no_pod_webhooks().await;
    for shape in &shapes[..2] {
        bursts.push(burst::run(&bed, shape, None).await);
    }
    // Before/after: the first shape once more with each earlier default (see BEFORE).
    for (flags, label) in BEFORE {
        let before = bed.start_server(flags);
        let with = burst::Nadipam {
            server: &before,
            variant: Some(label),
            binds: binds(flags),
        };
        bursts.push(burst::run(&bed, &shapes[0], Some(with)).await);
        before.stop();
    }
    let server = bed.start_server(&[]);
    for shape in &shapes {
        let with = burst::Nadipam {
            server: &server,
            variant: None,
            binds: false,
        };
        bursts.push(burst::run(&bed, shape, Some(with)).await);
    }
    let mut steady = Vec::new();
    for (i, &rate) in opts.rate.iter().enumerate() {
        steady.push(steady::run(&bed, &server, opts, rate, i == 0).await);
    }
    let cni = cni::run(&bed, &server, opts).await;
    let core = report::core_numbers(opts);
    server.stop();
    let scale = scale::run(
        &bed,
        opts.scale_prefix,
        &opts.scale_levels,
        opts.scale_rate,
        opts.scale_pods,
    )
    .await;
    let machine_after = env::load_average();
    report::Results {
        machine,
        load_after: machine_after,
        idle_cpu: bed.idle_cpu.clone(),
        bursts,
        steady,
        cni,
        core,
        nodes,
        scale,
    }
}
