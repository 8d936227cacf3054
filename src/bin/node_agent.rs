//! `nadipam-node-agent`: installs the `nadipam` CNI plugin on the node and keeps its kubeconfig current.
//! Run by the Helm chart's DaemonSet; see docs/install.md.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use nadipam::agent::{self, Options};
use nadipam::duration::parse_duration;
use nadipam::logging::{self, LogFormat};

#[derive(Parser, Debug)]
#[command(
    version,
    about = "Install the nadipam CNI plugin on this node and keep its kubeconfig current"
)]
struct Args {
    /// The plugin binary to install (shipped in the image).
    #[arg(
        long,
        env = "NADIPAM_AGENT_PLUGIN",
        default_value = "/usr/local/bin/nadipam"
    )]
    plugin: PathBuf,
    /// The host's CNI bin directory as mounted in the container.
    #[arg(
        long,
        env = "NADIPAM_AGENT_CNI_BIN_DIR",
        default_value = "/host/opt/cni/bin"
    )]
    cni_bin_dir: PathBuf,
    /// Also install the plugin as `kube-ovn`, for NADs written for Kube-OVN's IPAM. Not on nodes running
    /// Kube-OVN itself.
    #[arg(long, env = "NADIPAM_AGENT_KUBE_OVN_ALIAS")]
    kube_ovn_alias: bool,
    /// Where to write the plugin's kubeconfig (default: the plugin's default path under /host).
    #[arg(long, env = "NADIPAM_AGENT_KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// The projected service-account token (kubelet refreshes it before it expires).
    #[arg(
        long,
        env = "NADIPAM_AGENT_TOKEN_FILE",
        default_value = "/var/run/secrets/nadipam/token"
    )]
    token_file: PathBuf,
    /// The cluster CA bundle (the projected kube-root-ca.crt ConfigMap).
    #[arg(
        long,
        env = "NADIPAM_AGENT_CA_FILE",
        default_value = "/var/run/secrets/nadipam/ca.crt"
    )]
    ca_file: PathBuf,
    /// API server URL the plugin uses (default: https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT).
    #[arg(long, env = "NADIPAM_AGENT_SERVER")]
    server: Option<String>,
    /// How often to check the token and the installed binaries.
    #[arg(long, env = "NADIPAM_AGENT_REFRESH_INTERVAL", default_value = "60s", value_parser = parse_duration)]
    refresh_interval: Duration,
    /// Log lines as `text` or `json` (one object per line, for log pipelines); `RUST_LOG` filters them.
    #[arg(long, env = "NADIPAM_AGENT_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Install and write once, then exit.
    #[arg(long)]
    once: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    logging::init(args.log_format, "info");
    let opts = Options {
        plugin: args.plugin,
        cni_bin_dir: args.cni_bin_dir,
        kube_ovn_alias: args.kube_ovn_alias,
        kubeconfig: args.kubeconfig.unwrap_or_else(Options::default_kubeconfig),
        token_file: args.token_file,
        ca_file: args.ca_file,
        server: args.server,
    };
    let result = if args.once {
        agent::once(&opts).map(|_| ())
    } else {
        agent::run(&opts, args.refresh_interval)
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("nadipam-node-agent: {e}");
            ExitCode::FAILURE
        }
    }
}
