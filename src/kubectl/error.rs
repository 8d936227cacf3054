//! What can go wrong, each worded so the user knows which object or setting to look at, and the exit code it
//! ends with (documented in docs/kubectl-plugin.md).

use std::process::ExitCode;

/// `who`: no lease holds the address.
pub(crate) const EXIT_NOT_HELD: u8 = 1;
/// Bad arguments (clap's own code for usage errors).
pub(crate) const EXIT_USAGE: u8 = 2;
/// Kubeconfig, connection or API error.
pub(crate) const EXIT_API: u8 = 3;
/// A named object does not exist.
pub(crate) const EXIT_NOT_FOUND: u8 = 4;
/// The output could not be written or encoded.
pub(crate) const EXIT_LOCAL: u8 = 5;
/// `adopt`/`import`: the plan has conflicts (listed in it); everything else was done (with `--apply`).
pub(crate) const EXIT_CONFLICTS: u8 = 6;

#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error(
        "cannot load the kubeconfig{}: {source}; pass --kubeconfig, set KUBECONFIG, or check --context/--cluster/--user",
        path.as_deref().map(|p| format!(" {p}")).unwrap_or_default()
    )]
    Kubeconfig {
        path: Option<String>,
        #[source]
        source: kube::config::KubeconfigError,
    },
    #[error("cannot build a client for the kubeconfig's cluster: {0}")]
    Client(#[source] kube::Error),
    #[error("{doing}: {source}{}", hint(source))]
    Api {
        /// What was being read, e.g. `listing IPLeases`.
        doing: String,
        #[source]
        source: kube::Error,
    },
    #[error("{what} not found{hint}")]
    NotFound { what: String, hint: String },
    #[error("cannot start the async runtime: {0}")]
    Runtime(#[source] std::io::Error),
    #[error("writing the output: {0}")]
    Output(#[source] std::io::Error),
    #[error("encoding the output as {format}: {message}")]
    Encode {
        format: &'static str,
        message: String,
    },
    #[error("{0}")]
    Migrate(#[from] crate::migrate::Error),
}

/// What to do about the commonest API failures.
fn hint(e: &kube::Error) -> &'static str {
    match e {
        kube::Error::Api(s) if s.code == 401 => {
            " (the apiserver did not accept the kubeconfig's credentials; refresh them)"
        }
        kube::Error::Api(s) if s.code == 403 => {
            " (your user may not read this; ask for get/list on nadipam.io ipleases, subnets, ippools and on pods)"
        }
        kube::Error::Api(s) if s.code == 404 => {
            " (is nadipam installed? its CRDs are missing: kubectl get crd ipleases.nadipam.io)"
        }
        kube::Error::HyperError(_) | kube::Error::Service(_) => {
            " (is the apiserver of the kubeconfig's current context reachable? kubectl cluster-info)"
        }
        _ => "",
    }
}

impl Error {
    pub(crate) fn api(doing: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
        let doing = doing.into();
        move |source| Error::Api { doing, source }
    }

    pub(crate) fn exit_code(&self) -> ExitCode {
        ExitCode::from(match self {
            Error::NotFound { .. }
            | Error::Migrate(crate::migrate::Error::SubnetNotFound { .. })
            | Error::Migrate(crate::migrate::Error::NoSubnet { .. }) => EXIT_NOT_FOUND,
            Error::Migrate(crate::migrate::Error::BadNetwork { .. }) => EXIT_USAGE,
            Error::Migrate(
                crate::migrate::Error::Output(_) | crate::migrate::Error::Render { .. },
            ) => EXIT_LOCAL,
            Error::Migrate(_) => EXIT_API,
            Error::Output(_) | Error::Encode { .. } | Error::Runtime(_) => EXIT_LOCAL,
            Error::Kubeconfig { .. } | Error::Client(_) | Error::Api { .. } => EXIT_API,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16) -> kube::Error {
        kube::Error::Api(
            kube::core::Status::failure("nope", "Forbidden")
                .with_code(code)
                .boxed(),
        )
    }

    #[test]
    fn messages_say_what_to_do_and_codes_are_documented() {
        let e = Error::api("listing IPLeases")(status(403));
        assert!(
            e.to_string().starts_with("listing IPLeases: ")
                && e.to_string().ends_with(
                    "(your user may not read this; ask for get/list on nadipam.io ipleases, subnets, ippools and on pods)"
                ),
            "{e}"
        );
        assert_eq!(e.exit_code(), ExitCode::from(EXIT_API));
        let e = Error::NotFound {
            what: "pod default/web".into(),
            hint: String::new(),
        };
        assert_eq!(e.to_string(), "pod default/web not found");
        assert_eq!(e.exit_code(), ExitCode::from(EXIT_NOT_FOUND));
    }
}
