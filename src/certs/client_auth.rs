//! Who may call: with a client CA the server asks every caller for a certificate and serves the admission
//! paths only to those it signed ([`ClientAuth`]).

use std::path::Path;
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::ClientCertVerifier;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use super::error::TlsError;

/// Which callers the admission paths serve.
///
/// Admission has side effects (a Pod CREATE review makes the server create IPLeases), so anyone reaching the
/// port could drain a Subnet with forged reviews. With a client CA the server asks every caller for a
/// certificate: one that does not chain to the CA fails the handshake; a caller without one still connects
/// (health, readiness and metrics stay reachable) but is refused on the admission paths ([`Self::admits`]).
#[derive(Clone)]
pub struct ClientAuth {
    /// `None`: nobody is asked for a certificate and every caller is served.
    ca: Option<CaVerifier>,
    /// Names (subject CN or DNS SAN) a caller's certificate must carry one of; empty: any name.
    names: Vec<String>,
}

#[derive(Clone)]
struct CaVerifier {
    verifier: Arc<dyn ClientCertVerifier>,
    /// Where the CA came from, for refusals.
    origin: String,
}

/// Why a caller is refused on an admission path.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Refusal {
    #[error(
        "client certificate required: the admission paths serve only callers with a certificate signed by the CA in {ca} (the kube-apiserver presents one through its AdmissionConfiguration; see docs/install.md)"
    )]
    NoCertificate { ca: String },
    #[error(
        "client certificate names {presented:?}, none of the allowed --client-name {allowed:?}"
    )]
    WrongName {
        presented: Vec<String>,
        allowed: Vec<String>,
    },
    #[error("client certificate unreadable: {0}")]
    Unreadable(String),
}

impl ClientAuth {
    /// Every caller is served, as without `--client-ca`.
    pub fn anyone() -> ClientAuth {
        ClientAuth {
            ca: None,
            names: Vec::new(),
        }
    }

    /// Callers must present a certificate chaining to a CA in the PEM bundle `pem` and, unless `names` is
    /// empty, naming one of `names`. `origin` names the bundle in errors.
    pub(crate) fn from_pem(
        pem: &[u8],
        origin: &str,
        names: Vec<String>,
    ) -> Result<ClientAuth, TlsError> {
        let problem = |problem: String| TlsError::ClientCa {
            origin: origin.to_string(),
            problem,
        };
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| problem(format!("unreadable PEM: {e}")))?;
            roots
                .add(cert)
                .map_err(|e| problem(format!("not a usable CA certificate: {e}")))?;
        }
        if roots.is_empty() {
            return Err(problem(
                "holds no PEM certificate (expected -----BEGIN CERTIFICATE-----)".into(),
            ));
        }
        let verifier = WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            Arc::new(rustls::crypto::ring::default_provider()),
        )
        // Probes and Prometheus connect without a certificate; the admission paths refuse them.
        .allow_unauthenticated()
        .build()
        .map_err(|e| problem(e.to_string()))?;
        Ok(ClientAuth {
            ca: Some(CaVerifier {
                verifier,
                origin: origin.to_string(),
            }),
            names,
        })
    }

    /// Reads the CA bundle at `path` (see [`Self::from_pem`]).
    pub async fn read(path: &Path, names: Vec<String>) -> Result<ClientAuth, TlsError> {
        let pem = tokio::fs::read(path)
            .await
            .map_err(|source| TlsError::Read {
                path: path.to_path_buf(),
                source,
            })?;
        Self::from_pem(&pem, &path.display().to_string(), names)
    }

    /// Whether callers must present a certificate.
    pub(crate) fn required(&self) -> bool {
        self.ca.is_some()
    }

    pub(super) fn verifier(&self) -> Arc<dyn ClientCertVerifier> {
        match &self.ca {
            Some(ca) => ca.verifier.clone(),
            None => WebPkiClientVerifier::no_client_auth(),
        }
    }

    /// Whether a caller that presented `leaf` (already verified against the CA by the handshake) may call the
    /// admission paths.
    pub(crate) fn admits(&self, leaf: Option<&CertificateDer<'_>>) -> Result<(), Refusal> {
        let Some(ca) = &self.ca else { return Ok(()) };
        let Some(leaf) = leaf else {
            return Err(Refusal::NoCertificate {
                ca: ca.origin.clone(),
            });
        };
        if self.names.is_empty() {
            return Ok(());
        }
        let presented = cert_names(leaf)?;
        if presented.iter().any(|n| self.names.contains(n)) {
            Ok(())
        } else {
            Err(Refusal::WrongName {
                presented,
                allowed: self.names.clone(),
            })
        }
    }
}

/// The subject common names and DNS SANs of a certificate.
fn cert_names(der: &CertificateDer<'_>) -> Result<Vec<String>, Refusal> {
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref())
        .map_err(|e| Refusal::Unreadable(e.to_string()))?;
    let mut names: Vec<String> = cert
        .subject()
        .iter_common_name()
        .filter_map(|cn| cn.as_str().ok().map(str::to_string))
        .collect();
    let sans = cert
        .subject_alternative_name()
        .map_err(|e| Refusal::Unreadable(e.to_string()))?;
    for name in sans.iter().flat_map(|s| s.value.general_names.iter()) {
        if let x509_parser::extensions::GeneralName::DNSName(dns) = name {
            names.push(dns.to_string());
        }
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certs::pem::tests::self_signed;
    use crate::certs::{PemPair, install_crypto_provider};
    use rustls_pki_types::PrivateKeyDer;

    /// A CA (PEM) and a way to issue client certificates from it.
    struct TestCa {
        pem: String,
        issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    }

    impl TestCa {
        fn new(cn: &str) -> TestCa {
            let key = rcgen::KeyPair::generate().expect("key");
            let mut params = rcgen::CertificateParams::default();
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, cn);
            params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            params.key_usages = vec![
                rcgen::KeyUsagePurpose::KeyCertSign,
                rcgen::KeyUsagePurpose::DigitalSignature,
            ];
            let cert = params.self_signed(&key).expect("CA");
            TestCa {
                pem: cert.pem(),
                issuer: rcgen::Issuer::new(params, key),
            }
        }

        /// A client certificate (chain of one) and key with subject CN `cn`.
        fn client(&self, cn: &str) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
            let key = rcgen::KeyPair::generate().expect("key");
            let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, cn);
            params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
            let cert = params.signed_by(&key, &self.issuer).expect("client cert");
            let key = PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes()).expect("key");
            (vec![cert.der().clone()], key)
        }
    }

    /// A client of a server serving `self_signed()` pair `server`, presenting `identity` if any.
    fn client_config(
        server: &PemPair,
        identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
    ) -> rustls::ClientConfig {
        let mut roots = RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(&server.cert) {
            roots.add(c.expect("pem")).expect("root");
        }
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots);
        match identity {
            Some((chain, key)) => builder.with_client_auth_cert(chain, key).expect("identity"),
            None => builder.with_no_client_auth(),
        }
    }

    /// A TLS handshake in memory; the server side's outcome.
    fn handshake(
        server: rustls::ServerConfig,
        client: rustls::ClientConfig,
    ) -> Result<rustls::ServerConnection, rustls::Error> {
        let name = rustls_pki_types::ServerName::try_from("127.0.0.1").expect("name");
        let mut c = rustls::ClientConnection::new(Arc::new(client), name)?;
        let mut s = rustls::ServerConnection::new(Arc::new(server))?;
        for _ in 0..10 {
            let mut to_server = Vec::new();
            while c.wants_write() {
                c.write_tls(&mut to_server).expect("client write");
            }
            let mut rd = &to_server[..];
            while !rd.is_empty() {
                s.read_tls(&mut rd).expect("server read");
                s.process_new_packets()?;
            }
            let mut to_client = Vec::new();
            while s.wants_write() {
                s.write_tls(&mut to_client).expect("server write");
            }
            let mut rd = &to_client[..];
            while !rd.is_empty() {
                c.read_tls(&mut rd).expect("client read");
                c.process_new_packets()?;
            }
            if !c.is_handshaking() && !s.is_handshaking() && !c.wants_write() {
                return Ok(s);
            }
        }
        panic!("handshake did not finish");
    }

    const APISERVER: &str = "kube-apiserver-webhook-client";

    #[test]
    fn client_ca_admits_its_certificates_and_refuses_the_rest() {
        install_crypto_provider();
        let serving = self_signed();
        let ca = TestCa::new("client-ca");
        let clients = ClientAuth::from_pem(ca.pem.as_bytes(), "/ca/ca.crt", vec![APISERVER.into()])
            .expect("client auth");
        assert!(clients.required());
        let config = || serving.server_config("tls.crt", &clients).expect("config");

        // The apiserver's certificate: handshake and admission paths.
        let s = handshake(
            config(),
            client_config(&serving, Some(ca.client(APISERVER))),
        )
        .expect("handshake with the CA's certificate");
        let leaf = s.peer_certificates().and_then(|c| c.first());
        assert!(leaf.is_some());
        assert_eq!(clients.admits(leaf), Ok(()));

        // The CA's certificate of another name: connects, refused on the admission paths.
        let s = handshake(
            config(),
            client_config(&serving, Some(ca.client("kubelet"))),
        )
        .expect("handshake");
        assert_eq!(
            clients.admits(s.peer_certificates().and_then(|c| c.first())),
            Err(Refusal::WrongName {
                presented: vec!["kubelet".into()],
                allowed: vec![APISERVER.into()],
            })
        );

        // No certificate (a probe, Prometheus, a forged review): connects, refused on the admission paths.
        let s = handshake(config(), client_config(&serving, None)).expect("anonymous handshake");
        assert!(s.peer_certificates().is_none());
        let refusal = clients.admits(None).unwrap_err();
        assert_eq!(
            refusal,
            Refusal::NoCertificate {
                ca: "/ca/ca.crt".into()
            }
        );
        assert!(
            refusal
                .to_string()
                .starts_with("client certificate required")
        );

        // A certificate of another CA: the handshake fails.
        let other = TestCa::new("other-ca");
        let err = handshake(
            config(),
            client_config(&serving, Some(other.client(APISERVER))),
        )
        .map(|_| ())
        .unwrap_err();
        assert!(
            matches!(err, rustls::Error::InvalidCertificate(_)),
            "{err:?}"
        );
    }

    #[test]
    fn without_client_ca_everyone_is_admitted_and_nobody_asked() {
        install_crypto_provider();
        let serving = self_signed();
        let clients = ClientAuth::anyone();
        assert!(!clients.required());
        let s = handshake(
            serving.server_config("tls.crt", &clients).expect("config"),
            client_config(&serving, None),
        )
        .expect("handshake");
        assert!(s.peer_certificates().is_none());
        assert_eq!(clients.admits(None), Ok(()));
    }

    #[test]
    fn any_name_is_admitted_when_none_is_listed() {
        install_crypto_provider();
        let serving = self_signed();
        let ca = TestCa::new("client-ca");
        let clients = ClientAuth::from_pem(ca.pem.as_bytes(), "ca.crt", vec![]).expect("auth");
        let s = handshake(
            serving.server_config("tls.crt", &clients).expect("config"),
            client_config(&serving, Some(ca.client("anyone"))),
        )
        .expect("handshake");
        assert_eq!(
            clients.admits(s.peer_certificates().and_then(|c| c.first())),
            Ok(())
        );
    }

    #[test]
    fn a_client_ca_without_certificates_is_refused_naming_the_file() {
        let err = ClientAuth::from_pem(b"nothing here", "/etc/ca.crt", vec![])
            .err()
            .expect("refused");
        assert_eq!(
            err.to_string(),
            "--client-ca /etc/ca.crt: holds no PEM certificate (expected -----BEGIN CERTIFICATE-----)"
        );
    }
}
