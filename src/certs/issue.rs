//! Issuing the webhook's CA and serving certificate with rcgen (ECDSA P-256, as the test bed's own PKI).
//!
//! Both are backdated a few minutes so a replica or apiserver whose clock runs slightly behind accepts a
//! certificate the moment it is written.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};

use super::error::CertError;
use super::material::{Cert, Material};

/// How far `notBefore` lies in the past.
const BACKDATE: Duration = Duration::from_secs(300);

/// A CA certificate and its key (PEM).
pub(crate) struct IssuedCa {
    pub cert: Cert,
    pub key: String,
}

/// rcgen takes `time`'s type.
fn to_time(t: Timestamp) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp(t.as_second())
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}

fn after(now: Timestamp, d: Duration) -> Timestamp {
    let d = SignedDuration::from_secs(i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    now.checked_add(d).unwrap_or(Timestamp::MAX)
}

fn issue_err(what: &'static str) -> impl Fn(rcgen::Error) -> CertError {
    move |source| CertError::Issue { what, source }
}

/// A new self-signed CA valid from now for `validity`. Its common name carries the time and a random tag, so
/// the CAs of successive rotations are told apart in `openssl x509 -text` and in chains.
pub(crate) fn ca(now: Timestamp, validity: Duration) -> Result<IssuedCa, CertError> {
    let err = issue_err("CA certificate");
    let key = KeyPair::generate().map_err(&err)?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "nadipam");
    dn.push(
        DnType::CommonName,
        format!(
            "nadipam-webhook-ca-{}-{:08x}",
            now.strftime("%Y%m%dT%H%M%SZ"),
            rand::random::<u32>()
        ),
    );
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = to_time(now - SignedDuration::from_secs(BACKDATE.as_secs() as i64));
    params.not_after = to_time(after(now, validity));
    let cert = params.self_signed(&key).map_err(&err)?;
    Ok(IssuedCa {
        cert: Cert::from_der(cert.der(), "ca.crt", 0).map_err(CertError::Reread)?,
        key: key.serialize_pem(),
    })
}

/// A serving certificate for `sans` signed by `signer` (whose key is `signer_key`), valid for `validity`
/// but never beyond the CA. Returns the certificate and its key (PEM).
pub(crate) fn serving(
    signer: &Cert,
    signer_key: &str,
    sans: &[String],
    now: Timestamp,
    validity: Duration,
) -> Result<(Cert, String), CertError> {
    let err = issue_err("serving certificate");
    let ca_key = KeyPair::from_pem(signer_key).map_err(&err)?;
    let issuer = Issuer::from_ca_cert_der(&signer.der.clone().into(), ca_key).map_err(&err)?;
    let key = KeyPair::generate().map_err(&err)?;
    let mut params = CertificateParams::new(sans.to_vec()).map_err(&err)?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "nadipam");
    dn.push(
        DnType::CommonName,
        sans.first().cloned().unwrap_or_default(),
    );
    params.distinguished_name = dn;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    params.not_before = to_time(now - SignedDuration::from_secs(BACKDATE.as_secs() as i64));
    params.not_after = to_time(after(now, validity).min(signer.not_after));
    let cert = params.signed_by(&key, &issuer).map_err(&err)?;
    Ok((
        Cert::from_der(cert.der(), "tls.crt", 0).map_err(CertError::Reread)?,
        key.serialize_pem(),
    ))
}

/// A new CA and a serving certificate it signed: the first content of a Secret, or its replacement when
/// what it held was unusable.
pub(crate) fn fresh(
    now: Timestamp,
    ca_validity: Duration,
    sans: &[String],
    serving_validity: Duration,
) -> Result<Material, CertError> {
    let ca = ca(now, ca_validity)?;
    let (serving, serving_key) = serving(&ca.cert, &ca.key, sans, now, serving_validity)?;
    Ok(Material {
        cas: vec![ca.cert],
        ca_key: ca.key,
        serving,
        serving_key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serving_certificate_never_outlives_its_ca() {
        let now = Timestamp::now();
        let ca = ca(now, Duration::from_secs(3600)).unwrap();
        let (s, _) = serving(
            &ca.cert,
            &ca.key,
            &["a.b.svc".to_string()],
            now,
            Duration::from_secs(86_400),
        )
        .unwrap();
        assert_eq!(s.not_after, ca.cert.not_after);
        assert!(s.signed_by(&ca.cert));
        assert_eq!(
            ca.cert.not_before,
            now - SignedDuration::from_secs(300)
                - SignedDuration::from_nanos(i64::from(now.subsec_nanosecond()))
        );
    }

    #[test]
    fn a_bad_name_is_an_error_naming_the_certificate() {
        let now = Timestamp::now();
        let ca = ca(now, Duration::from_secs(3600)).unwrap();
        let e = serving(
            &ca.cert,
            &ca.key,
            &["bäd.example".to_string()],
            now,
            Duration::from_secs(60),
        )
        .err()
        .unwrap();
        assert!(
            e.to_string()
                .starts_with("issuing the serving certificate: "),
            "{e}"
        );
    }
}
