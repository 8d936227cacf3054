//! `nadipam-server`: the admission webhook and the lease controller in one process.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use nadipam::cache::Cache;
use nadipam::context::{Context, Settings};
use nadipam::controller;
use nadipam::metrics::Metrics;
use nadipam::webhook::config::{Endpoint, Registration};
use nadipam::webhook::{self, register, tls};

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
    /// Seconds the controller's leader Lease lasts (how long a crashed leader keeps other replicas waiting).
    #[arg(long, env = "NADIPAM_LEADER_LEASE_SECONDS", default_value_t = 15)]
    leader_lease_seconds: u64,
    /// Register the webhook configurations pointing at this URL base (e.g. https://127.0.0.1:8443) once the
    /// caches are synced, and remove them on exit. For running outside the cluster; the Helm chart registers
    /// them itself.
    #[arg(long, env = "NADIPAM_WEBHOOK_URL")]
    webhook_url: Option<String>,
    /// PEM CA bundle to publish in the registered configurations (with --webhook-url).
    #[arg(long, env = "NADIPAM_WEBHOOK_CA")]
    webhook_ca: Option<PathBuf>,
    /// Suffix for the registered configurations' names.
    #[arg(long, default_value = "")]
    webhook_name_suffix: String,
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
        .with_writer(std::io::stderr)
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

    let registration = match args.webhook_url {
        Some(url) => {
            let ca_bundle = match &args.webhook_ca {
                Some(path) => std::fs::read(path)
                    .map_err(|e| format!("reading --webhook-ca {}: {e}", path.display()))?,
                None => Vec::new(),
            };
            Some(Registration {
                endpoint: Endpoint::Url(url),
                ca_bundle,
                exclude_namespaces: vec![ctx.settings.namespace.clone()],
                suffix: args.webhook_name_suffix,
                timeout_seconds: 10,
            })
        }
        None => None,
    };

    let server = tokio::spawn(webhook::serve(ctx.clone(), args.listen, live));
    // Waits for the caches itself, then runs on the elected replica only.
    let controller = controller::start(
        ctx.clone(),
        controller::Options {
            lease_duration: Duration::from_secs(args.leader_lease_seconds),
            ..controller::Options::default()
        },
    );
    if let Some(reg) = &registration {
        ctx.cache.wait_ready().await;
        register::register(&ctx.client, reg).await?;
        tracing::info!("webhook configurations registered");
    }

    tokio::select! {
        r = server => r??,
        _ = shutdown(args.exit_on_stdin_eof) => {}
    }
    controller.shutdown().await;
    if let Some(reg) = &registration
        && let Err(e) = register::unregister(&ctx.client, reg).await
    {
        tracing::warn!(error = %e, "could not remove the webhook configurations");
    }
    Ok(())
}

/// Resolves on SIGTERM, Ctrl-C, or (when asked) the end of standard input.
async fn shutdown(on_stdin_eof: bool) {
    let stdin = async {
        if on_stdin_eof {
            use tokio::io::AsyncReadExt;
            let mut buf = [0u8; 64];
            let mut stdin = tokio::io::stdin();
            while matches!(stdin.read(&mut buf).await, Ok(n) if n > 0) {}
        } else {
            std::future::pending::<()>().await;
        }
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = stdin => tracing::info!("standard input closed; shutting down"),
        _ = term => tracing::info!("SIGTERM; shutting down"),
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupted; shutting down"),
    }
}
