//! `nadipam-server`: the admission webhook and the lease controller in one process.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use nadipam::cache::Cache;
use nadipam::context::{Context, Settings};
use nadipam::metrics::Metrics;
use nadipam::webhook::{self, tls};

#[derive(Parser, Debug)]
#[command(version, about = "nadipam admission webhook and lease controller")]
struct Args {
    /// Address the HTTPS admission server listens on.
    #[arg(long, env = "NADIPAM_LISTEN", default_value = "0.0.0.0:8443")]
    listen: SocketAddr,
    /// PEM serving certificate (reloaded when its content changes).
    #[arg(
        long,
        env = "NADIPAM_TLS_CERT",
        default_value = "/etc/nadipam/tls/tls.crt"
    )]
    tls_cert: PathBuf,
    /// PEM private key of the serving certificate.
    #[arg(
        long,
        env = "NADIPAM_TLS_KEY",
        default_value = "/etc/nadipam/tls/tls.key"
    )]
    tls_key: PathBuf,
    /// Namespace nadipam runs in.
    #[arg(long, env = "NADIPAM_NAMESPACE", default_value = "nadipam-system")]
    namespace: String,
    /// This replica's identity (defaults to the host name).
    #[arg(long, env = "NADIPAM_IDENTITY")]
    identity: Option<String>,
    /// Seconds a Reserved lease may wait for its Pod before it is reclaimed (keep above the webhook timeout).
    #[arg(long, env = "NADIPAM_RECLAIM_AFTER", default_value_t = 70)]
    reclaim_after: u64,
    /// Exit when standard input closes (lets a test harness tie the server's life to its own).
    #[arg(long, hide = true)]
    exit_on_stdin_eof: bool,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,kube=warn".into()),
        )
        .init();
    tls::install_crypto_provider();
    let args = Args::parse();

    let client = kube::Client::try_default().await?;
    let identity = args
        .identity
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| format!("nadipam-{}", std::process::id()));
    let settings = Settings {
        namespace: args.namespace,
        identity,
        reclaim_after: Duration::from_secs(args.reclaim_after),
        ..Settings::default()
    };
    let ctx = Arc::new(Context {
        cache: Cache::start(&client),
        client,
        metrics: Metrics::new(),
        settings,
    });

    let files = tls::FileCerts {
        cert: args.tls_cert,
        key: args.tls_key,
    };
    let (live, pem) = files.load().await?;
    tokio::spawn(files.watch(live.clone(), pem, Duration::from_secs(10)));

    if args.exit_on_stdin_eof {
        tokio::spawn(async {
            use tokio::io::AsyncReadExt;
            let mut buf = [0u8; 64];
            let mut stdin = tokio::io::stdin();
            while matches!(stdin.read(&mut buf).await, Ok(n) if n > 0) {}
            tracing::info!("standard input closed; exiting");
            std::process::exit(0);
        });
    }

    webhook::serve(ctx, args.listen, live).await?;
    Ok(())
}
