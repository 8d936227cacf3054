//! Real nodes for the node suite: `e2e/cluster up --nodes N` (containerd, kubelet, Multus and the CNI plugins per
//! node; see e2e/README.md), with this build's `nadipam` plugin installed by this build's node agent.

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

use super::{Cluster, cluster_info, log_tails};

/// The taint every test-bed node carries (NoSchedule); Pods meant for the nodes tolerate it.
pub const TAINT_KEY: &str = "nadipam.io/test-bed";

/// The cluster with `n` nodes, started (or found running with `n` nodes) once per test binary. Panics with the
/// cluster's log tails when a node cannot start: the node suite fails, it never skips.
pub fn cluster_with_nodes(n: u32) -> &'static Cluster {
    static UP: OnceLock<()> = OnceLock::new();
    UP.get_or_init(|| {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
        let script = repo.join("e2e/cluster");
        let out = Command::new(&script)
            .args(["up", "--nodes", &n.to_string()])
            .env("NADIPAM_CNI_PLUGIN", env!("CARGO_BIN_EXE_nadipam"))
            .env(
                "NADIPAM_NODE_AGENT",
                env!("CARGO_BIN_EXE_nadipam-node-agent"),
            )
            .output()
            .unwrap_or_else(|e| panic!("running {}: {e}", script.display()));
        if !out.status.success() {
            let state = std::env::var_os("NADIPAM_STATE")
                .map(std::path::PathBuf::from)
                .unwrap_or_else(|| repo.join("e2e/.state"));
            panic!(
                "`e2e/cluster up --nodes {n}` failed ({}): the node suite needs real nodes.\n\
                 --- stdout\n{}\n--- stderr\n{}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                log_tails(&state.join("logs"))
            );
        }
    });
    cluster_info()
}
