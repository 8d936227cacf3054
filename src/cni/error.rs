//! Every way the CNI plugin can fail, with the CNI error code a runtime acts on and a message a node
//! operator can act on.
//!
//! Codes follow the CNI spec: 1 incompatible version and 6 decoding failure come from `rscni-plugin`'s
//! dispatch; this type raises 4 (invalid environment), 7 (invalid network config), 11 (try again later),
//! 50 (STATUS: not available) and the plugin's own codes from 100 on.

use rscni_plugin::error::Error as RsError;

use crate::annotations::{AnnotationError, Shown};

/// Plugin-specific codes (the spec reserves 0-99).
pub(crate) mod code {
    pub(crate) const POD_NOT_FOUND: u32 = 100;
    pub(crate) const NO_ALLOCATION: u32 = 101;
    pub(crate) const UID_MISMATCH: u32 = 102;
    pub(crate) const BAD_ALLOCATION: u32 = 103;
    pub(crate) const REQUEST_MISMATCH: u32 = 104;
    pub(crate) const KUBECONFIG: u32 = 105;
    pub(crate) const API_REFUSED: u32 = 106;
    pub(crate) const CHECK_MISMATCH: u32 = 107;
    pub(crate) const TLS: u32 = 108;
}

/// A failed CNI operation. `Display` is the `details` of the CNI error JSON; [`CniError::msg`] the `msg`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum CniError {
    /// Code 4: a `CNI_*` variable or a `CNI_ARGS` entry is missing or malformed.
    #[error("{var}: {problem}")]
    Env { var: &'static str, problem: String },

    /// Code 7: the network configuration on stdin is unusable; `field` is its JSON path.
    #[error("network config field {field}: {problem}")]
    Config { field: String, problem: String },

    /// Code 11: the API server did not answer usefully; a later retry may succeed.
    #[error(
        "Kubernetes API at {server} is unreachable ({attempts} attempt(s) in {elapsed_ms} ms; last: {reason}); try again later — if it persists, check that the API server is up and reachable from this node"
    )]
    Unreachable {
        server: String,
        attempts: u32,
        elapsed_ms: u128,
        reason: String,
    },

    /// Code 100.
    #[error(
        "Pod {pod} was not found in the Kubernetes API at {server}; it was probably deleted before its sandbox was set up (nothing to release: nadipam's controller frees its addresses)"
    )]
    PodNotFound { pod: String, server: String },

    /// Code 101.
    #[error(
        "Pod {pod} has no nadipam allocation for provider {provider} (annotation {key} is not \"true\"). Was it created before nadipam's webhook was installed, or does the NAD's ipam.provider differ from the network the Pod requested? Recreate the Pod (e.g. kubectl delete pod -n {namespace} {name}; its controller creates a new one that the webhook allocates for)"
    )]
    NoAllocation {
        pod: String,
        namespace: String,
        name: String,
        provider: String,
        key: String,
    },

    /// Code 102.
    #[error(
        "Pod {pod} has UID {found} in the API but the runtime is setting up UID {expected} (CNI_ARGS K8S_POD_UID): the Pod was deleted and recreated under the same name; this sandbox belongs to the old Pod and must not take the new Pod's addresses"
    )]
    UidMismatch {
        pod: String,
        expected: String,
        found: String,
    },

    /// Code 103: the allocation annotations cannot be read back.
    #[error(
        "Pod {pod}: {source}; nadipam's webhook writes these annotations — do not edit them by hand; recreate the Pod to get a fresh allocation"
    )]
    BadAllocation {
        pod: String,
        source: AnnotationError,
    },

    /// Code 103 as well: the allocation is readable but cannot be turned into routes for this interface.
    #[error("Pod {pod}: annotation {key}: {problem}")]
    BadRoute {
        pod: String,
        key: String,
        problem: String,
    },

    /// Code 104: what the runtime asked for (runtimeConfig or CNI_ARGS) differs from what was allocated.
    #[error(
        "{source_field} asks for {requested} but Pod {pod} was allocated {allocated} for provider {provider}; the network selection element (ips/mac in k8s.v1.cni.cncf.io/networks) and the allocation must agree — remove ips/mac there or recreate the Pod"
    )]
    RequestMismatch {
        source_field: String,
        requested: String,
        pod: String,
        allocated: String,
        provider: String,
    },

    /// Code 105.
    #[error("kubeconfig {path}: {problem}")]
    Kubeconfig { path: String, problem: String },

    /// Code 106: the API answered with a status that retrying will not change.
    #[error("Kubernetes API at {server} answered {status} to GET {path}: {message}{hint}")]
    ApiRefused {
        server: String,
        status: u16,
        path: String,
        message: Shown,
        hint: &'static str,
    },

    /// Code 107: CHECK found that the Pod no longer holds what the attachment was set up with.
    #[error("CHECK: {problem}")]
    CheckMismatch { problem: String },

    /// Code 108.
    #[error(
        "TLS to the Kubernetes API at {server} failed: {reason}; check certificate-authority(-data) and the client certificate in kubeconfig {path}"
    )]
    Tls {
        server: String,
        path: String,
        reason: String,
    },

    /// Code 50 (STATUS only): wraps why ADD could not be served now.
    #[error("nadipam cannot serve ADD: {0}")]
    NotAvailable(Box<CniError>),
}

impl CniError {
    pub(crate) fn code(&self) -> u32 {
        match self {
            CniError::Env { .. } => 4,
            CniError::Config { .. } => 7,
            CniError::Unreachable { .. } => 11,
            CniError::NotAvailable(_) => 50,
            CniError::PodNotFound { .. } => code::POD_NOT_FOUND,
            CniError::NoAllocation { .. } => code::NO_ALLOCATION,
            CniError::UidMismatch { .. } => code::UID_MISMATCH,
            CniError::BadAllocation { .. } | CniError::BadRoute { .. } => code::BAD_ALLOCATION,
            CniError::RequestMismatch { .. } => code::REQUEST_MISMATCH,
            CniError::Kubeconfig { .. } => code::KUBECONFIG,
            CniError::ApiRefused { .. } => code::API_REFUSED,
            CniError::CheckMismatch { .. } => code::CHECK_MISMATCH,
            CniError::Tls { .. } => code::TLS,
        }
    }

    /// The short `msg` of the CNI error JSON. Spec codes use the spec's wording (rscni supplies it).
    pub(crate) fn msg(&self) -> &'static str {
        match self {
            CniError::Env { .. } => "Invalid necessary environment variables",
            CniError::Config { .. } => "Invalid network config",
            CniError::Unreachable { .. } => "Try again later",
            CniError::NotAvailable(_) => "Plugin not available",
            CniError::PodNotFound { .. } => "nadipam: Pod not found",
            CniError::NoAllocation { .. } => "nadipam: Pod has no allocation for this network",
            CniError::UidMismatch { .. } => "nadipam: Pod UID mismatch",
            CniError::BadAllocation { .. } | CniError::BadRoute { .. } => {
                "nadipam: allocation annotations are invalid"
            }
            CniError::RequestMismatch { .. } => {
                "nadipam: requested address differs from the allocation"
            }
            CniError::Kubeconfig { .. } => "nadipam: kubeconfig unusable",
            CniError::ApiRefused { .. } => "nadipam: Kubernetes API refused the request",
            CniError::CheckMismatch { .. } => {
                "nadipam: attachment no longer matches the allocation"
            }
            CniError::Tls { .. } => "nadipam: TLS to the Kubernetes API failed",
        }
    }

    pub(crate) fn config(field: impl Into<String>, problem: impl Into<String>) -> CniError {
        CniError::Config {
            field: field.into(),
            problem: problem.into(),
        }
    }

    pub(crate) fn env(var: &'static str, problem: impl Into<String>) -> CniError {
        CniError::Env {
            var,
            problem: problem.into(),
        }
    }
}

impl From<CniError> for RsError {
    fn from(e: CniError) -> RsError {
        let details = e.to_string();
        match e.code() {
            4 => RsError::InvalidEnvValue(details),
            7 => RsError::InvalidNetworkConfig(details),
            11 => RsError::TryAgainLater(details),
            50 => RsError::PluginNotAvailable(details),
            code => RsError::Custom(code, e.msg().to_string(), details),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unreachable() -> CniError {
        CniError::Unreachable {
            server: "https://127.0.0.1:6443".into(),
            attempts: 3,
            elapsed_ms: 412,
            reason: "connection refused".into(),
        }
    }

    #[test]
    fn spec_codes_map_to_spec_variants() {
        let e: RsError = CniError::env("CNI_ARGS", "no K8S_POD_NAME").into();
        assert_eq!(u32::from(&e), 4);
        assert_eq!(e.details(), "CNI_ARGS: no K8S_POD_NAME");
        let e: RsError = CniError::config("ipam.provider", "is missing").into();
        assert_eq!(u32::from(&e), 7);
        assert_eq!(e.msg(), "Invalid network config");
        assert_eq!(
            e.details(),
            "network config field ipam.provider: is missing"
        );
        let e: RsError = unreachable().into();
        assert_eq!(u32::from(&e), 11);
        assert_eq!(e.msg(), "Try again later");
        assert!(e.details().starts_with("Kubernetes API at https://127.0.0.1:6443 is unreachable (3 attempt(s) in 412 ms; last: connection refused)"), "{}", e.details());
        let e: RsError = CniError::NotAvailable(Box::new(unreachable())).into();
        assert_eq!(u32::from(&e), 50);
        assert!(
            e.details()
                .starts_with("nadipam cannot serve ADD: Kubernetes API at")
        );
    }

    #[test]
    fn plugin_codes_carry_their_own_msg() {
        let e = CniError::PodNotFound {
            pod: "ns1/p1".into(),
            server: "https://127.0.0.1:6443".into(),
        };
        assert_eq!(e.code(), 100);
        let rs: RsError = e.into();
        assert_eq!(u32::from(&rs), 100);
        assert_eq!(rs.msg(), "nadipam: Pod not found");
        assert!(rs.details().starts_with(
            "Pod ns1/p1 was not found in the Kubernetes API at https://127.0.0.1:6443"
        ));

        let e = CniError::NoAllocation {
            pod: "ns1/p1".into(),
            namespace: "ns1".into(),
            name: "p1".into(),
            provider: "macvlan.ns1".into(),
            key: "macvlan.ns1.kubernetes.io/allocated".into(),
        };
        assert_eq!(e.code(), 101);
        let text = e.to_string();
        assert!(
            text.contains("annotation macvlan.ns1.kubernetes.io/allocated is not \"true\""),
            "{text}"
        );
        assert!(
            text.contains("created before nadipam's webhook was installed"),
            "{text}"
        );
        assert!(text.contains("kubectl delete pod -n ns1 p1"), "{text}");

        let e = CniError::UidMismatch {
            pod: "ns1/p1".into(),
            expected: "u-new".into(),
            found: "u-old".into(),
        };
        assert_eq!(e.code(), 102);
        assert_eq!(
            e.to_string(),
            "Pod ns1/p1 has UID u-old in the API but the runtime is setting up UID u-new (CNI_ARGS K8S_POD_UID): the Pod was deleted and recreated under the same name; this sandbox belongs to the old Pod and must not take the new Pod's addresses"
        );

        let e = CniError::ApiRefused {
            server: "https://k".into(),
            status: 403,
            path: "/api/v1/namespaces/a/pods/b".into(),
            message: Shown::new("forbidden"),
            hint: "; grant get on pods",
        };
        assert_eq!(e.code(), 106);
        assert_eq!(
            e.to_string(),
            "Kubernetes API at https://k answered 403 to GET /api/v1/namespaces/a/pods/b: \"forbidden\"; grant get on pods"
        );
        assert_eq!(
            CniError::Kubeconfig {
                path: "/k".into(),
                problem: "x".into()
            }
            .code(),
            105
        );
        assert_eq!(
            CniError::CheckMismatch {
                problem: "x".into()
            }
            .code(),
            107
        );
        assert_eq!(
            CniError::Tls {
                server: "s".into(),
                path: "p".into(),
                reason: "r".into()
            }
            .code(),
            108
        );
    }
}
