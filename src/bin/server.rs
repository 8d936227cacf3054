//! `nadipam-server`: the admission webhook and the lease controller in one process.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use nadipam::annotations::NetworkRef;
use nadipam::cache::Cache;
use nadipam::certs::{self, CertMode};
use nadipam::context::{Context, Settings};
use nadipam::controller;
use nadipam::duration::parse_duration;
use nadipam::logging::{self, LogFormat};
use nadipam::metrics::Metrics;
use nadipam::webhook::config::{self, Endpoint, Registration};
use nadipam::webhook::{self, register};

#[derive(Parser, Debug)]
#[command(version, about = "nadipam admission webhook and lease controller")]
struct Args {
    /// Address the HTTPS admission server listens on.
    #[arg(long, env = "NADIPAM_LISTEN", default_value = "0.0.0.0:8443")]
    listen: SocketAddr,
    /// Where the serving certificate comes from: `files` (--tls-cert/--tls-key, e.g. a mounted cert-manager
    /// Secret), `self-managed` (the server issues, rotates and publishes it, kept in --cert-secret), or
    /// `cert-manager` (the server applies a cert-manager Issuer and Certificate and serves their Secret).
    #[arg(long, env = "NADIPAM_CERT_MODE", value_enum, default_value_t = CertMode::Files)]
    cert_mode: CertMode,
    /// Secret (in --namespace) holding the serving certificate in the self-managed and cert-manager modes.
    #[arg(
        long,
        env = "NADIPAM_CERT_SECRET",
        default_value = "nadipam-webhook-tls"
    )]
    cert_secret: String,
    /// The Service in front of the replicas: the serving certificate names <service>, <service>.<ns>,
    /// <service>.<ns>.svc and <service>.<ns>.svc.cluster.local.
    #[arg(long, env = "NADIPAM_SERVICE_NAME", default_value = "nadipam-webhook")]
    service_name: String,
    /// More names for the serving certificate (DNS names or IP addresses; repeat or separate with commas).
    #[arg(
        long = "cert-extra-san",
        env = "NADIPAM_CERT_EXTRA_SANS",
        value_delimiter = ','
    )]
    cert_extra_sans: Vec<String>,
    /// Lifetime of a serving certificate (s, m, h, d, y; e.g. 8760h).
    #[arg(long, env = "NADIPAM_CERT_VALIDITY", default_value = "1y", value_parser = parse_duration)]
    cert_validity: Duration,
    /// Re-issue the serving certificate this long before it expires (default: a third of --cert-validity).
    #[arg(long, env = "NADIPAM_CERT_RENEW_BEFORE", value_parser = parse_duration)]
    cert_renew_before: Option<Duration>,
    /// Lifetime of the CA (replaced at two thirds of it; at least 3 × --cert-validity).
    #[arg(long, env = "NADIPAM_CA_VALIDITY", default_value = "5y", value_parser = parse_duration)]
    ca_validity: Duration,
    /// How often each replica reads the certificate Secret (to follow rotations by other replicas).
    #[arg(long, env = "NADIPAM_CERT_POLL_INTERVAL", default_value = "10s", value_parser = parse_duration)]
    cert_poll_interval: Duration,
    /// How long a change of the Secret or of caBundle needs to reach every replica and apiserver; a new CA
    /// signs the serving certificate only this long after it is published.
    #[arg(long, env = "NADIPAM_CERT_PROPAGATION_DELAY", default_value = "60s", value_parser = parse_duration)]
    cert_propagation_delay: Duration,
    /// With --cert-mode=cert-manager: `Issuer/<name>` or `ClusterIssuer/<name>` to sign the serving
    /// certificate; without it a private CA is bootstrapped with a self-signed Issuer.
    #[arg(long, env = "NADIPAM_CERT_MANAGER_ISSUER")]
    cert_manager_issuer: Option<String>,
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
    /// PEM CA bundle: the admission paths then serve only callers presenting a certificate it signed (the
    /// kube-apiserver presents one through its AdmissionConfiguration; see docs/install.md). Without it anyone
    /// reaching the port may call them. Health, readiness and metrics stay open. Read at start.
    #[arg(long, env = "NADIPAM_CLIENT_CA")]
    client_ca: Option<PathBuf>,
    /// With --client-ca: the caller's certificate must name one of these (subject CN or DNS SAN; repeat or
    /// separate with commas). Needed when --client-ca also signs other clients' certificates.
    #[arg(
        long = "client-name",
        env = "NADIPAM_CLIENT_NAMES",
        value_delimiter = ','
    )]
    client_names: Vec<String>,
    /// Also serve /healthz, /readyz and /metrics over plain HTTP on this address (e.g. 0.0.0.0:8080), so
    /// probes and Prometheus need no access to the admission port.
    #[arg(long, env = "NADIPAM_METRICS_LISTEN")]
    metrics_listen: Option<SocketAddr>,
    /// Namespace nadipam runs in.
    #[arg(long, env = "NADIPAM_NAMESPACE", default_value = "nadipam-system")]
    namespace: String,
    /// This replica's identity (defaults to the host name).
    #[arg(long, env = "NADIPAM_IDENTITY")]
    identity: Option<String>,
    /// Seconds a Reserved lease may wait for its Pod before it is reclaimed (keep above the webhook timeout).
    #[arg(long, env = "NADIPAM_RECLAIM_AFTER", default_value_t = 70)]
    reclaim_after: u64,
    /// Publish an `Allocated` Event on each Pod when its lease is bound (one more apiserver write per Pod;
    /// turns binding on, as --bind-leases; `Released` and `Reclaimed` Events are always published).
    #[arg(long, env = "NADIPAM_ALLOCATION_EVENTS")]
    allocation_events: bool,
    /// Bind each lease to its Pod: record the Pod's name and UID on it and turn it Bound (one apiserver write
    /// per lease, paced by --bind-rate). Off, a lease stays as the webhook wrote it (Reserved, with the Pod's
    /// token), which is what holds it from admission on either way.
    #[arg(long, env = "NADIPAM_BIND_LEASES")]
    bind_leases: bool,
    /// Lease binds per second with --bind-leases (0: no limit). A lease is held from admission on by the Pod
    /// carrying its token; binding records the Pod's name and UID on it, one apiserver write per lease, so it
    /// is paced to leave the apiserver to Pod creates during bursts (up to one second's worth goes at once).
    #[arg(long, env = "NADIPAM_BIND_RATE", default_value_t = 20)]
    bind_rate: u32,
    /// The cluster default network, `<namespace>/<nad>` (e.g. kube-system/ovs-conf, Multus' clusterNetwork):
    /// Pods that name no v1.multus-cni.io/default-network get an address on it when it is nadipam's, and
    /// the registered webhook is sent every Pod not using the host's network. Off when unset.
    #[arg(long, env = "NADIPAM_DEFAULT_NETWORK")]
    default_network: Option<NetworkRef>,
    /// Offer HTTP/2 to the apiserver, so every request and watch shares one connection instead of one per
    /// request in flight (kube's default client, HTTP/1.1): fewer connections and handshakes, but one
    /// connection task frames every admission's request, and on the benchmark machine a burst's admissions were
    /// slower with it (docs/benchmarks.md, "Before and after").
    #[arg(long, env = "NADIPAM_API_HTTP2")]
    api_http2: bool,
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
    /// Suffix of the webhook configurations' names (registered with --webhook-url; their caBundle is kept
    /// current in the self-managed and cert-manager modes).
    #[arg(long, env = "NADIPAM_WEBHOOK_NAME_SUFFIX", default_value = "")]
    webhook_name_suffix: String,
    /// Log lines as `text` or `json` (one object per line, for log pipelines); `RUST_LOG` filters them.
    #[arg(long, env = "NADIPAM_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Exit when standard input closes (lets a test harness tie the server's life to its own).
    #[arg(long, hide = true)]
    exit_on_stdin_eof: bool,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // Display, not Debug: every error names the object, field or flag and what is valid.
            eprintln!("nadipam-server: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    logging::init(args.log_format, "info,kube=warn");
    certs::install_crypto_provider();

    let client = if args.api_http2 {
        nadipam::client::connect().await?
    } else {
        kube::Client::try_default().await?
    };
    let identity = args
        .identity
        .clone()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| format!("nadipam-{}", std::process::id()));
    let settings = Settings {
        namespace: args.namespace.clone(),
        identity,
        reclaim_after: Duration::from_secs(args.reclaim_after),
        allocation_events: args.allocation_events,
        bind_leases: args.bind_leases,
        bind_rate: args.bind_rate,
        default_network: args.default_network.clone(),
        ..Settings::default()
    };
    let ctx = Arc::new(Context {
        cache: Cache::start(&client),
        client,
        metrics: Metrics::new(),
        settings,
    });

    let clients = match &args.client_ca {
        Some(path) => certs::ClientAuth::read(path, args.client_names.clone()).await?,
        None if !args.client_names.is_empty() => {
            return Err(
                "--client-name needs --client-ca (the CA that signs the callers' certificates)"
                    .into(),
            );
        }
        None => certs::ClientAuth::anyone(),
    };
    let serving = certs::start(
        args.cert_mode,
        cert_files(&args),
        &cert_settings(&args),
        &ctx.client,
        &clients,
    )
    .await?;

    let registration = registration(&args, &ctx.settings, serving.ca_bundle)?;

    let server = tokio::spawn(webhook::serve(
        ctx.clone(),
        args.listen,
        serving.live,
        clients,
    ));
    let metrics_server = async {
        match args.metrics_listen {
            Some(addr) => webhook::serve_metrics(ctx.clone(), addr).await,
            None => std::future::pending().await,
        }
    };
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
        r = metrics_server => r.map_err(|e| format!("--metrics-listen: {e}"))?,
        // It never returns; ending means it panicked, and a replica that cannot follow rotations must restart.
        r = serving.task => return Err(format!("the serving-certificate task stopped: {r:?}").into()),
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

fn mode_name(m: CertMode) -> &'static str {
    match m {
        CertMode::Files => "files",
        CertMode::SelfManaged => "self-managed",
        CertMode::CertManager => "cert-manager",
    }
}

/// With `--webhook-url`: the webhook configurations to register, publishing `--webhook-ca` or, when the
/// server manages the CA, `managed` (the two cannot be combined).
fn registration(
    args: &Args,
    settings: &Settings,
    managed: Option<Vec<u8>>,
) -> Result<Option<Registration>, String> {
    let Some(url) = &args.webhook_url else {
        return Ok(None);
    };
    let ca_bundle = match (&args.webhook_ca, managed) {
        (Some(path), None) => std::fs::read(path)
            .map_err(|e| format!("reading --webhook-ca {}: {e}", path.display()))?,
        (Some(_), Some(_)) => {
            return Err(format!(
                "--webhook-ca cannot be used with --cert-mode={}: the CA bundle published is the one in Secret {}/{}",
                mode_name(args.cert_mode),
                settings.namespace,
                args.cert_secret
            ));
        }
        (None, bundle) => bundle.unwrap_or_default(),
    };
    Ok(Some(Registration {
        endpoint: Endpoint::Url(url.clone()),
        ca_bundle,
        exclude_namespaces: vec![settings.namespace.clone()],
        suffix: args.webhook_name_suffix.clone(),
        timeout_seconds: 10,
        default_network: settings.default_network.is_some(),
    }))
}

/// `--tls-cert` and `--tls-key`, for [`certs::start`].
fn cert_files(args: &Args) -> (PathBuf, PathBuf) {
    (args.tls_cert.clone(), args.tls_key.clone())
}

/// The serving-certificate flags, for [`certs::start`].
fn cert_settings(args: &Args) -> certs::Settings {
    certs::Settings {
        namespace: args.namespace.clone(),
        secret: args.cert_secret.clone(),
        service: args.service_name.clone(),
        extra_sans: args.cert_extra_sans.clone(),
        serving_validity: args.cert_validity,
        renew_before: args.cert_renew_before,
        ca_validity: args.ca_validity,
        poll: args.cert_poll_interval,
        propagation: args.cert_propagation_delay,
        issuer: args.cert_manager_issuer.clone(),
        targets: config::targets(&args.webhook_name_suffix),
    }
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
