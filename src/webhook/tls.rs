//! Serving certificates: loaded from PEM files and reloaded when their content changes.
//!
//! Kubernetes updates a mounted Secret by swapping a symlink, which inotify on the file itself misses;
//! polling the content is simple and catches every kind of update (cert-manager rotation, `kubectl edit`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum_server::tls_rustls::RustlsConfig;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Why the serving certificate could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// `origin` names where the PEM came from: a file, or a Secret's key.
    #[error("{origin} holds no PEM certificate (expected -----BEGIN CERTIFICATE-----)")]
    NoCertificate { origin: String },
    #[error("{origin} holds no PEM private key (expected PKCS#8, PKCS#1 or SEC1 PEM): {reason}")]
    NoKey { origin: String, reason: String },
    #[error("certificate and key do not form a usable TLS identity: {0}")]
    Rustls(#[from] rustls::Error),
}

/// Installs ring as the process-wide rustls provider; called once at start by every binary that serves TLS.
pub fn install_crypto_provider() {
    // An error only means a provider is already installed, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A certificate and key as PEM bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct PemPair {
    pub cert: Vec<u8>,
    pub key: Vec<u8>,
}

impl PemPair {
    pub async fn read(cert: &Path, key: &Path) -> Result<PemPair, TlsError> {
        let read = |p: &Path| {
            let p = p.to_path_buf();
            async move {
                tokio::fs::read(&p)
                    .await
                    .map_err(|source| TlsError::Read { path: p, source })
            }
        };
        Ok(PemPair {
            cert: read(cert).await?,
            key: read(key).await?,
        })
    }

    /// A rustls server configuration (TLS 1.2 and 1.3 only, as rustls supports nothing older). `origin`
    /// names the source in errors.
    pub fn server_config(&self, origin: &str) -> Result<ServerConfig, TlsError> {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&self.cert)
            .filter_map(Result::ok)
            .collect();
        if certs.is_empty() {
            return Err(TlsError::NoCertificate {
                origin: origin.to_string(),
            });
        }
        let key = PrivateKeyDer::from_pem_slice(&self.key).map_err(|e| TlsError::NoKey {
            origin: origin.to_string(),
            reason: e.to_string(),
        })?;
        let mut config =
            ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()?
                .with_no_client_auth()
                .with_single_cert(certs, key)?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(config)
    }
}

/// Serving certificate read from two files and kept current.
pub struct FileCerts {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl FileCerts {
    /// Loads the files once; fails at start when they are missing or unusable.
    pub async fn load(&self) -> Result<(RustlsConfig, PemPair), TlsError> {
        let pair = PemPair::read(&self.cert, &self.key).await?;
        let config = pair.server_config(&self.cert.display().to_string())?;
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
            match next.server_config(&self.cert.display().to_string()) {
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

    fn self_signed() -> PemPair {
        let key = rcgen::KeyPair::generate().expect("key");
        let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).expect("params");
        let cert = params.self_signed(&key).expect("cert");
        PemPair {
            cert: cert.pem().into_bytes(),
            key: key.serialize_pem().into_bytes(),
        }
    }

    #[test]
    fn builds_config_from_pem() {
        install_crypto_provider();
        let pair = self_signed();
        let cfg = pair.server_config("tls.crt").expect("config");
        assert_eq!(cfg.alpn_protocols.len(), 2);
    }

    #[test]
    fn errors_name_the_file() {
        let pair = PemPair {
            cert: b"garbage".to_vec(),
            key: b"garbage".to_vec(),
        };
        let err = pair.server_config("/certs/tls.crt").unwrap_err();
        assert_eq!(
            err.to_string(),
            "/certs/tls.crt holds no PEM certificate (expected -----BEGIN CERTIFICATE-----)"
        );
        let mut good = self_signed();
        good.key = b"nope".to_vec();
        let err = good.server_config("/certs/tls.crt").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("/certs/tls.crt holds no PEM private key"),
            "{err}"
        );
    }

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
