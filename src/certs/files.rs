//! A serving certificate read from PEM files and reloaded when their content changes.
//!
//! Kubernetes updates a mounted Secret by swapping a symlink, which inotify on the file itself misses;
//! polling the content is simple and catches every kind of update (cert-manager rotation, `kubectl edit`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum_server::tls_rustls::RustlsConfig;

use super::client_auth::ClientAuth;
use super::error::TlsError;
use super::pem::PemPair;

/// Serving certificate read from two files and kept current.
pub struct FileCerts {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Kept across reloads of the serving certificate.
    pub clients: ClientAuth,
}

impl FileCerts {
    /// Loads the files once; fails at start when they are missing or unusable.
    pub async fn load(&self) -> Result<(RustlsConfig, PemPair), TlsError> {
        let pair = PemPair::read(&self.cert, &self.key).await?;
        let config = pair.server_config(&self.cert.display().to_string(), &self.clients)?;
        Ok((RustlsConfig::from_config(Arc::new(config)), pair))
    }

    /// Polls the files and swaps the live configuration when their content changes. A broken update is
    /// logged and the previous certificate keeps serving.
    pub async fn watch(self, live: RustlsConfig, mut current: PemPair, every: Duration) {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            let next = match PemPair::read(&self.cert, &self.key).await {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(error = %e, "serving certificate unreadable; keeping the current one");
                    continue;
                }
            };
            if next == current {
                continue;
            }
            match next.server_config(&self.cert.display().to_string(), &self.clients) {
                Ok(cfg) => {
                    live.reload_from_config(Arc::new(cfg));
                    current = next;
                    tracing::info!(cert = %self.cert.display(), "serving certificate reloaded");
                }
                Err(e) => {
                    tracing::warn!(error = %e, "new serving certificate rejected; keeping the current one")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certs::install_crypto_provider;
    use crate::certs::pem::tests::self_signed;

    #[tokio::test]
    async fn reloads_when_content_changes() {
        install_crypto_provider();
        let dir = tempfile::tempdir().expect("tmp");
        let (c, k) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
        let first = self_signed();
        std::fs::write(&c, &first.cert).expect("write");
        std::fs::write(&k, &first.key).expect("write");
        let files = FileCerts {
            cert: c.clone(),
            key: k.clone(),
            clients: ClientAuth::anyone(),
        };
        let (live, pair) = files.load().await.expect("load");
        let before = live.get_inner();
        let task = tokio::spawn(files.watch(live.clone(), pair, Duration::from_millis(20)));
        let second = self_signed();
        std::fs::write(&c, &second.cert).expect("write");
        std::fs::write(&k, &second.key).expect("write");
        let mut reloaded = false;
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(20)).await;
            if !Arc::ptr_eq(&before, &live.get_inner()) {
                reloaded = true;
                break;
            }
        }
        task.abort();
        assert!(
            reloaded,
            "configuration was not swapped after the files changed"
        );
    }
}
