//! The serving certificate, whichever `--cert-mode`: [`start`] is the one entry point the server uses.

use std::path::PathBuf;
use std::time::Duration;

use axum_server::tls_rustls::RustlsConfig;
use tokio::task::JoinHandle;

use super::client_auth::ClientAuth;
use super::error::CertError;
use super::files::FileCerts;
use super::follow::ManagedCerts;
use super::settings::Settings;

/// How often `--cert-mode=files` reads the files again.
const FILES_POLL: Duration = Duration::from_secs(10);

/// Where the serving certificate comes from (`--cert-mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum CertMode {
    /// PEM files (`--tls-cert`, `--tls-key`), reloaded when they change: a mounted Secret, e.g. cert-manager's
    /// when the Helm chart creates the Certificate.
    Files,
    /// A CA and serving certificate the server issues, stores in `--cert-secret`, rotates and publishes.
    SelfManaged,
    /// The server applies a cert-manager Issuer and Certificate, then serves the Secret cert-manager writes
    /// and publishes its `ca.crt`.
    CertManager,
}

/// The serving certificate, live.
pub struct Serving {
    /// What the HTTPS server serves; swapped in place on every rotation or reload.
    pub live: RustlsConfig,
    /// The CA bundle to register, when the server manages the CA (not in `files` mode).
    pub ca_bundle: Option<Vec<u8>>,
    /// Keeps `live` (and in the managed modes `caBundle`) current; never returns.
    pub task: JoinHandle<()>,
}

/// Loads (or issues, or has cert-manager issue) the serving certificate for `mode`, serving it to `clients`,
/// and spawns the task that keeps it current. `files`: the PEM files of `--cert-mode=files`.
pub async fn start(
    mode: CertMode,
    files: (PathBuf, PathBuf),
    settings: &Settings,
    client: &kube::Client,
    clients: &ClientAuth,
) -> Result<Serving, CertError> {
    let (managed, live) = match mode {
        CertMode::Files => {
            let (cert, key) = files;
            let files = FileCerts {
                cert,
                key,
                clients: clients.clone(),
            };
            let (live, pem) = files.load().await?;
            let task = tokio::spawn(files.watch(live.clone(), pem, FILES_POLL));
            return Ok(Serving {
                live,
                ca_bundle: None,
                task,
            });
        }
        CertMode::SelfManaged => {
            ManagedCerts::self_managed(client.clone(), settings, clients.clone()).await?
        }
        CertMode::CertManager => {
            ManagedCerts::cert_manager(client.clone(), settings, clients.clone()).await?
        }
    };
    let ca_bundle = Some(managed.ca_bundle());
    let task = tokio::spawn(managed.run(live.clone()));
    Ok(Serving {
        live,
        ca_bundle,
        task,
    })
}
