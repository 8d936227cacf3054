//! A serving certificate and key as PEM, turned into the rustls configuration the HTTPS server runs with.

use std::path::Path;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::client_auth::ClientAuth;
use super::error::TlsError;

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

    /// A rustls server configuration (TLS 1.2 and 1.3 only, as rustls supports nothing older) that asks
    /// callers for certificates as `clients` says. `origin` names the source in errors.
    pub fn server_config(
        &self,
        origin: &str,
        clients: &ClientAuth,
    ) -> Result<ServerConfig, TlsError> {
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
                .with_client_cert_verifier(clients.verifier())
                .with_single_cert(certs, key)?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(config)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A self-signed certificate for 127.0.0.1.
    pub(crate) fn self_signed() -> PemPair {
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
        let cfg = pair
            .server_config("tls.crt", &ClientAuth::anyone())
            .expect("config");
        assert_eq!(cfg.alpn_protocols.len(), 2);
    }

    #[test]
    fn errors_name_the_file() {
        let pair = PemPair {
            cert: b"garbage".to_vec(),
            key: b"garbage".to_vec(),
        };
        let err = pair
            .server_config("/certs/tls.crt", &ClientAuth::anyone())
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "/certs/tls.crt holds no PEM certificate (expected -----BEGIN CERTIFICATE-----)"
        );
        let mut good = self_signed();
        good.key = b"nope".to_vec();
        let err = good
            .server_config("/certs/tls.crt", &ClientAuth::anyone())
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("/certs/tls.crt holds no PEM private key"),
            "{err}"
        );
    }
}
