//! Why a certificate could not be read, issued, stored or published. Each message names the object, the field
//! or flag, the value and what is valid.

use std::path::PathBuf;

/// Why the content of a certificate Secret is unusable. Shown after `Secret <ns>/<name>: `.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MaterialError {
    /// `expected` lists the keys the Secret must hold.
    #[error("has no {key} (expected PEM data under {expected})")]
    Missing { key: String, expected: &'static str },
    #[error("{key} holds no PEM certificate (expected -----BEGIN CERTIFICATE-----)")]
    NoCertificate { key: String },
    #[error("{key}: certificate #{index} cannot be parsed: {reason}")]
    BadCertificate {
        key: String,
        index: usize,
        reason: String,
    },
    #[error("{key} is not a usable PEM private key (expected PKCS#8 ECDSA P-256): {reason}")]
    BadKey { key: String, reason: String },
    #[error("{key_key} is not the private key of the first certificate in {cert_key}")]
    KeyMismatch { key_key: String, cert_key: String },
    #[error("the first certificate of ca.crt is not a CA (its basicConstraints lack CA:TRUE)")]
    NotCa,
}

/// Why self-managed (or cert-manager) certificates could not be set up or kept current.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// A flag value that cannot work; `problem` says what is valid.
    #[error("{flag} {value}: {problem}")]
    Flag {
        flag: &'static str,
        value: String,
        problem: String,
    },
    #[error("{action}: {source}{}", hint(source))]
    Api { action: String, source: kube::Error },
    #[error("issuing the {what}: {source}")]
    Issue {
        what: &'static str,
        source: rcgen::Error,
    },
    /// A certificate just issued could not be read back (a bug, reported rather than panicking).
    #[error("reading back an issued certificate: {0}")]
    Reread(MaterialError),
    #[error("Secret {secret}: {source}")]
    Unusable {
        secret: String,
        source: MaterialError,
    },
    #[error("Secret {secret}: {source}")]
    Tls { secret: String, source: TlsError },
    /// The `--tls-cert`/`--tls-key` files of `--cert-mode=files`.
    #[error(transparent)]
    Files(#[from] TlsError),
    #[error(
        "Secret {secret} was changed by another writer {attempts} times in a row while this replica tried to update it; will retry"
    )]
    Contended { secret: String, attempts: usize },
    #[error(
        "Secret {secret} does not exist yet; waiting for {writer} to write it (is cert-manager running and the Certificate {certificate} Ready? `kubectl describe certificate -n {namespace} {certificate}`)"
    )]
    NotWritten {
        secret: String,
        writer: &'static str,
        namespace: String,
        certificate: String,
    },
}

/// What to do about the common API failures, appended to the message.
fn hint(e: &kube::Error) -> &'static str {
    match e {
        kube::Error::Api(s) if s.code == 403 => {
            "; the server's ServiceAccount lacks this permission (the Helm chart's Role and ClusterRole grant it)"
        }
        kube::Error::Api(s) if s.code == 404 && s.message.contains("the server could not find") => {
            "; the resource type is not served by this cluster (are its CRDs installed?)"
        }
        _ => "",
    }
}

impl CertError {
    pub(crate) fn api(action: impl Into<String>) -> impl FnOnce(kube::Error) -> CertError {
        let action = action.into();
        move |source| CertError::Api { action, source }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16, message: &str) -> kube::Error {
        kube::Error::Api(
            kube::core::Status::failure(message, "Forbidden")
                .with_code(code)
                .boxed(),
        )
    }

    #[test]
    fn api_errors_say_what_was_attempted_and_what_to_do() {
        let e = CertError::api("creating Secret ns1/tls")(status(
            403,
            "secrets is forbidden: User \"x\" cannot create resource \"secrets\"",
        ));
        let text = e.to_string();
        assert!(text.starts_with("creating Secret ns1/tls: "), "{text}");
        assert!(text.contains("cannot create resource"), "{text}");
        assert!(
            text.ends_with("; the server's ServiceAccount lacks this permission (the Helm chart's Role and ClusterRole grant it)"),
            "{text}"
        );
        let e = CertError::api("applying Certificate ns1/x")(status(
            404,
            "the server could not find the requested resource",
        ));
        assert!(e.to_string().ends_with("(are its CRDs installed?)"), "{e}");
    }

    #[test]
    fn contention_and_waiting_messages_name_the_secret() {
        let e = CertError::Contended {
            secret: "ns1/tls".into(),
            attempts: 5,
        };
        assert_eq!(
            e.to_string(),
            "Secret ns1/tls was changed by another writer 5 times in a row while this replica tried to update it; will retry"
        );
        let e = CertError::NotWritten {
            secret: "ns1/tls".into(),
            writer: "cert-manager",
            namespace: "ns1".into(),
            certificate: "nadipam-webhook".into(),
        };
        assert!(
            e.to_string()
                .contains("kubectl describe certificate -n ns1 nadipam-webhook")
        );
    }
}

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
    #[error("--client-ca {origin}: {problem}")]
    ClientCa { origin: String, problem: String },
}
