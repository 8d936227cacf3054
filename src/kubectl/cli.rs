//! The command line: kubectl's connection flags, the output flag, one variant per subcommand. A new
//! subcommand is one variant here and one arm in `mod.rs`'s dispatch.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use k8s_openapi::jiff::Timestamp;

/// Answers "who holds this address" for nadipam, the IPAM of Multus networks: who holds an address, a Pod's
/// addresses, free and used addresses per Subnet and IPPool, leases whose holder is gone.
///
/// Exit codes: 0 done; 1 `who`: no lease holds the address; 2 bad arguments; 3 kubeconfig, connection or API
/// error; 4 a named object (Pod, Subnet) does not exist; 5 the output could not be written; 6 `adopt`/`import`:
/// the plan has conflicts.
#[derive(Debug, Parser)]
#[command(name = "kubectl-nadipam", bin_name = "kubectl nadipam", version)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub conn: Connection,
    #[command(subcommand)]
    pub command: Command,
}

/// The flags kubectl users expect, with kubectl's meaning.
#[derive(Debug, Args)]
pub(crate) struct Connection {
    /// Path to the kubeconfig file (default: $KUBECONFIG, else ~/.kube/config).
    #[arg(long, global = true, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use.
    #[arg(long, global = true, value_name = "NAME")]
    pub context: Option<String>,
    /// The kubeconfig cluster to use.
    #[arg(long, global = true, value_name = "NAME")]
    pub cluster: Option<String>,
    /// The kubeconfig user to use.
    #[arg(long, global = true, value_name = "NAME")]
    pub user: Option<String>,
    /// The namespace (default: the context's, else `default`).
    #[arg(short = 'n', long, global = true, value_name = "NAMESPACE")]
    pub namespace: Option<String>,
    /// Every namespace (`orphans`).
    #[arg(short = 'A', long, global = true)]
    pub all_namespaces: bool,
    /// Output format (default: a table).
    #[arg(short = 'o', long, global = true, value_enum)]
    pub output: Option<Format>,
    /// Measure ages and reclaim times from this instant instead of the clock (RFC 3339), for reproducible
    /// output.
    #[arg(long, global = true, hide = true, value_name = "TIME")]
    pub now: Option<Timestamp>,
}

/// `-o`: kubectl's table, its wide form, or the records as JSON or YAML.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    /// The table (the default when -o is not given).
    #[default]
    #[value(skip)]
    Table,
    /// The table with more columns.
    Wide,
    Json,
    Yaml,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Who holds an address: the lease, its Subnet, network, Pod, IPAMClaim or StatefulSet.
    Who(WhoArgs),
    /// A Pod's addresses per network: interface, IP, MAC, Subnet, IPPool, leases.
    Pod(PodArgs),
    /// Total, used and free addresses per Subnet and IPPool, with the next free ones.
    Usage(UsageArgs),
    /// Leases whose holder is gone, and when the controller releases or reclaims them.
    Orphans(OrphansArgs),
    /// Moving in: running Pods' addresses on a network (their Multus network-status) as IPLeases held by
    /// them, before nadipam allocates there. Prints the plan; --apply writes it.
    Adopt(crate::migrate::AdoptArgs),
    /// Moving in: a peer IPAM's pools and allocations (Kube-OVN, Spiderpool, Whereabouts) as Subnets, IPPools
    /// and IPLeases. Prints the plan; --apply writes it.
    Import(crate::migrate::ImportArgs),
    /// A shell completion script.
    Completion(CompletionArgs),
}

#[derive(Debug, Args)]
pub(crate) struct WhoArgs {
    /// The address (IPv4 or IPv6).
    #[arg(value_name = "IP")]
    pub ip: IpAddr,
    /// Only this Subnet (an address may be in several Subnets of different networks).
    #[arg(long, value_name = "SUBNET")]
    pub subnet: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct PodArgs {
    /// The Pod's name (in -n, else the context's namespace).
    #[arg(value_name = "NAME")]
    pub name: String,
}

#[derive(Debug, Args)]
pub(crate) struct UsageArgs {
    /// Only these Subnets (default: all).
    #[arg(value_name = "SUBNET")]
    pub subnets: Vec<String>,
    /// How many free addresses to show per Subnet and IPPool (per family).
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub next: usize,
}

#[derive(Debug, Args)]
pub(crate) struct OrphansArgs {
    /// The server's --reclaim-after: seconds a reservation waits for its Pod.
    #[arg(long, value_name = "SECONDS", default_value_t = 70)]
    pub reclaim_after: u64,
}

#[derive(Debug, Args)]
pub(crate) struct CompletionArgs {
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn kubectl_flags_go_anywhere() {
        let cli = Cli::try_parse_from([
            "kubectl-nadipam",
            "pod",
            "web",
            "-n",
            "team-a",
            "--context",
            "prod",
            "-o",
            "wide",
        ])
        .unwrap();
        assert_eq!(cli.conn.namespace.as_deref(), Some("team-a"));
        assert_eq!(cli.conn.context.as_deref(), Some("prod"));
        assert_eq!(cli.conn.output, Some(Format::Wide));
        assert!(matches!(cli.command, Command::Pod(PodArgs { ref name }) if name == "web"));
    }

    #[test]
    fn bad_input_is_a_usage_error() {
        for args in [
            &["kubectl-nadipam", "who", "10.0.0.300"][..],
            &["kubectl-nadipam", "who", "10.0.0.3", "-o", "xml"],
            &["kubectl-nadipam", "usage", "--next", "-1"],
            &["kubectl-nadipam", "completion", "tcsh"],
            &["kubectl-nadipam", "-o", "table", "usage"],
        ] {
            let e = Cli::try_parse_from(args).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{args:?}: {e}");
        }
    }
}
