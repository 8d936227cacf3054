//! What the certificate Secret holds, parsed and checked: every replica decides from these facts alone, so
//! they must be read back from the PEM itself (validity, SANs, which CA signed the serving certificate), never
//! from a replica's memory.
//!
//! Keys: `ca.crt` is the bundle the apiserver trusts, the signing CA first and any CA it replaced after it;
//! `ca.key` is the signing CA's key; `tls.crt`/`tls.key` are the serving certificate and its key.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use jiff::Timestamp;
use k8s_openapi::ByteString;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;

use super::error::MaterialError;
use super::pem::PemPair;

pub(crate) const CA_CRT: &str = "ca.crt";
pub(crate) const CA_KEY: &str = "ca.key";
pub(crate) const TLS_CRT: &str = "tls.crt";
pub(crate) const TLS_KEY: &str = "tls.key";

/// One certificate and what rotation needs to know about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Cert {
    pub der: Vec<u8>,
    pub not_before: Timestamp,
    pub not_after: Timestamp,
    /// DNS names and IP addresses (as text).
    pub sans: BTreeSet<String>,
}

impl Cert {
    /// Parses one DER certificate; `key` and `index` only name it in errors.
    pub(crate) fn from_der(der: &[u8], key: &str, index: usize) -> Result<Cert, MaterialError> {
        let x = parse(der, key, index)?;
        let time = |t: i64| Timestamp::from_second(t).unwrap_or_default();
        let mut sans = BTreeSet::new();
        if let Ok(Some(ext)) = x.subject_alternative_name() {
            for name in &ext.value.general_names {
                match name {
                    GeneralName::DNSName(d) => {
                        sans.insert((*d).to_string());
                    }
                    GeneralName::IPAddress(b) => {
                        let ip = match b.len() {
                            4 => <[u8; 4]>::try_from(*b).ok().map(IpAddr::from),
                            16 => <[u8; 16]>::try_from(*b).ok().map(IpAddr::from),
                            _ => None,
                        };
                        if let Some(ip) = ip {
                            sans.insert(ip.to_string());
                        }
                    }
                    _ => {}
                }
            }
        }
        Ok(Cert {
            der: der.to_vec(),
            not_before: time(x.validity().not_before.timestamp()),
            not_after: time(x.validity().not_after.timestamp()),
            sans,
        })
    }

    pub(crate) fn pem(&self) -> String {
        pem_block("CERTIFICATE", &self.der)
    }

    /// True when `issuer`'s key made this certificate's signature.
    pub(crate) fn signed_by(&self, issuer: &Cert) -> bool {
        let (Ok((_, me)), Ok((_, ca))) = (
            x509_parser::parse_x509_certificate(&self.der),
            x509_parser::parse_x509_certificate(&issuer.der),
        ) else {
            return false;
        };
        me.verify_signature(Some(ca.public_key())).is_ok()
    }
}

fn parse<'a>(der: &'a [u8], key: &str, index: usize) -> Result<X509Certificate<'a>, MaterialError> {
    x509_parser::parse_x509_certificate(der)
        .map(|(_, x)| x)
        .map_err(|e| MaterialError::BadCertificate {
            key: key.to_string(),
            index,
            reason: e.to_string(),
        })
}

/// The Secret's certificates and keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Material {
    /// The signing CA first, then the CAs it replaced (still trusted until they are pruned).
    pub cas: Vec<Cert>,
    pub ca_key: String,
    pub serving: Cert,
    pub serving_key: String,
}

impl Material {
    /// Reads and checks a Secret's data: every key present, every PEM parseable, each key matching its
    /// certificate, the first `ca.crt` entry a CA.
    pub(crate) fn parse(data: &BTreeMap<String, ByteString>) -> Result<Material, MaterialError> {
        let get = |key: &str| {
            data.get(key)
                .map(|b| b.0.as_slice())
                .filter(|b| !b.is_empty())
                .ok_or_else(|| MaterialError::Missing {
                    key: key.to_string(),
                    expected: "ca.crt, ca.key, tls.crt and tls.key",
                })
        };
        let cas = certs(get(CA_CRT)?, CA_CRT)?;
        let serving = certs(get(TLS_CRT)?, TLS_CRT)?.swap_remove(0);
        let ca_key = text(get(CA_KEY)?, CA_KEY)?;
        let serving_key = text(get(TLS_KEY)?, TLS_KEY)?;
        let signer = parse(&cas[0].der, CA_CRT, 0)?;
        if !signer.is_ca() {
            return Err(MaterialError::NotCa);
        }
        key_matches(&ca_key, CA_KEY, &signer, CA_CRT)?;
        key_matches(
            &serving_key,
            TLS_KEY,
            &parse(&serving.der, TLS_CRT, 0)?,
            TLS_CRT,
        )?;
        Ok(Material {
            cas,
            ca_key,
            serving,
            serving_key,
        })
    }

    /// The Secret data: the four keys, PEM.
    pub(crate) fn to_data(&self) -> BTreeMap<String, ByteString> {
        [
            (CA_CRT, self.ca_bundle()),
            (CA_KEY, self.ca_key.clone().into_bytes()),
            (TLS_CRT, self.serving.pem().into_bytes()),
            (TLS_KEY, self.serving_key.clone().into_bytes()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), ByteString(v)))
        .collect()
    }

    pub(crate) fn signer(&self) -> &Cert {
        &self.cas[0]
    }

    /// What goes into `caBundle`: every CA of `ca.crt`, PEM.
    pub(crate) fn ca_bundle(&self) -> Vec<u8> {
        self.cas
            .iter()
            .map(Cert::pem)
            .collect::<String>()
            .into_bytes()
    }

    /// Index in [`Material::cas`] of the CA that signed the serving certificate.
    pub(crate) fn serving_issuer(&self) -> Option<usize> {
        self.cas.iter().position(|ca| self.serving.signed_by(ca))
    }

    pub(crate) fn pem_pair(&self) -> PemPair {
        PemPair {
            cert: self.serving.pem().into_bytes(),
            key: self.serving_key.clone().into_bytes(),
        }
    }
}

fn text(bytes: &[u8], key: &str) -> Result<String, MaterialError> {
    String::from_utf8(bytes.to_vec()).map_err(|_| MaterialError::BadKey {
        key: key.to_string(),
        reason: "not UTF-8 text".to_string(),
    })
}

/// Every certificate of a PEM bundle, at least one.
fn certs(pem: &[u8], key: &str) -> Result<Vec<Cert>, MaterialError> {
    let ders: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|e| MaterialError::BadCertificate {
            key: key.to_string(),
            index: 0,
            reason: e.to_string(),
        })?;
    if ders.is_empty() {
        return Err(MaterialError::NoCertificate {
            key: key.to_string(),
        });
    }
    ders.iter()
        .enumerate()
        .map(|(i, d)| Cert::from_der(d.as_ref(), key, i))
        .collect()
}

fn key_matches(
    key_pem: &str,
    key_key: &str,
    cert: &X509Certificate<'_>,
    cert_key: &str,
) -> Result<(), MaterialError> {
    let pair = rcgen::KeyPair::from_pem(key_pem).map_err(|e| MaterialError::BadKey {
        key: key_key.to_string(),
        reason: e.to_string(),
    })?;
    if pair.public_key_raw() != cert.public_key().subject_public_key.data.as_ref() {
        return Err(MaterialError::KeyMismatch {
            key_key: key_key.to_string(),
            cert_key: cert_key.to_string(),
        });
    }
    Ok(())
}

/// PEM with LF line endings and 64-column lines, as openssl and kubectl write it.
fn pem_block(label: &str, der: &[u8]) -> String {
    let config = pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF);
    pem::encode_config(&pem::Pem::new(label, der), config)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::certs::ClientAuth;
    use crate::certs::issue;

    fn now() -> Timestamp {
        Timestamp::from_second(1_750_000_000).unwrap()
    }

    fn sample() -> Material {
        let sans = vec!["svc.ns.svc".to_string(), "127.0.0.1".to_string()];
        issue::fresh(
            now(),
            Duration::from_secs(86_400 * 30),
            &sans,
            Duration::from_secs(86_400),
        )
        .unwrap()
    }

    #[test]
    fn round_trips_through_secret_data() {
        let m = sample();
        let back = Material::parse(&m.to_data()).unwrap();
        assert_eq!(back, m);
        assert_eq!(back.serving_issuer(), Some(0));
        assert_eq!(
            back.serving.sans,
            BTreeSet::from(["svc.ns.svc".to_string(), "127.0.0.1".to_string()])
        );
        assert_eq!(
            back.serving.not_after,
            now() + jiff::SignedDuration::from_secs(86_400)
        );
        assert!(
            back.pem_pair()
                .server_config("test", &ClientAuth::anyone())
                .is_ok()
        );
    }

    #[test]
    fn errors_name_the_key_and_what_is_wrong() {
        let m = sample();
        let err = |edit: &dyn Fn(&mut BTreeMap<String, ByteString>)| {
            let mut d = m.to_data();
            edit(&mut d);
            Material::parse(&d).unwrap_err().to_string()
        };
        assert_eq!(
            err(&|d| {
                d.remove(CA_KEY);
            }),
            "has no ca.key (expected PEM data under ca.crt, ca.key, tls.crt and tls.key)"
        );
        assert_eq!(
            err(&|d| {
                d.insert(TLS_CRT.into(), ByteString(b"junk".to_vec()));
            }),
            "tls.crt holds no PEM certificate (expected -----BEGIN CERTIFICATE-----)"
        );
        let other = sample();
        assert_eq!(
            err(&|d| {
                d.insert(
                    TLS_KEY.into(),
                    ByteString(other.serving_key.clone().into_bytes()),
                );
            }),
            "tls.key is not the private key of the first certificate in tls.crt"
        );
        assert_eq!(
            err(&|d| {
                d.insert(CA_CRT.into(), ByteString(m.serving.pem().into_bytes()));
            }),
            "the first certificate of ca.crt is not a CA (its basicConstraints lack CA:TRUE)"
        );
        assert!(
            err(&|d| {
                d.insert(
                    CA_KEY.into(),
                    ByteString(
                        b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n".to_vec(),
                    ),
                );
            })
            .starts_with("ca.key is not a usable PEM private key (expected PKCS#8 ECDSA P-256): "),
        );
    }

    #[test]
    fn finds_which_ca_signed_the_serving_certificate() {
        let m = sample();
        let newer = issue::ca(now(), Duration::from_secs(86_400 * 30)).unwrap();
        let mut rotated = m.clone();
        rotated.cas.insert(0, newer.cert);
        rotated.ca_key = newer.key;
        assert_eq!(rotated.serving_issuer(), Some(1));
        let back = Material::parse(&rotated.to_data()).unwrap();
        assert_eq!(back.cas.len(), 2);
        assert_eq!(back.serving_issuer(), Some(1));
    }
}
