//! Why the node agent could not install the plugin or write its kubeconfig. Each message names the path and
//! what to check.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("reading {what} {path}: {source}{hint}")]
    Read {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
        /// What to check, e.g. that a volume is mounted.
        hint: &'static str,
    },
    #[error("writing {path}: {source} (is the host directory mounted read-write?)")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{what} {path} is empty{hint}")]
    Empty {
        what: &'static str,
        path: PathBuf,
        hint: &'static str,
    },
    #[error(
        "no API server address: set --server (e.g. https://10.0.0.1:443) or run in a Pod, where KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are set"
    )]
    NoServer,
    #[error("--server {value:?} is not an https URL (expected e.g. https://10.0.0.1:443)")]
    BadServer { value: String },
    #[error("setting up the wait for SIGTERM: {0}")]
    Signal(std::io::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_path_and_what_to_check() {
        let e = AgentError::Read {
            what: "service account token",
            path: "/var/run/secrets/nadipam/token".into(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
            hint: "; is the projected token volume mounted?",
        };
        assert_eq!(
            e.to_string(),
            "reading service account token /var/run/secrets/nadipam/token: entity not found; is the projected token volume mounted?"
        );
        let e = AgentError::BadServer {
            value: "10.0.0.1".into(),
        };
        assert_eq!(
            e.to_string(),
            "--server \"10.0.0.1\" is not an https URL (expected e.g. https://10.0.0.1:443)"
        );
    }
}
