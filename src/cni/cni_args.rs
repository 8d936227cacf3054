//! `CNI_ARGS`: `KEY=VALUE` pairs separated by `;`, as Multus and Kubernetes runtimes write them
//! (`IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p;K8S_POD_INFRA_CONTAINER_ID=..;K8S_POD_UID=..`).
//! Multus adds `MAC=` and `IP=` when the network selection element carries `mac` / `ips`.

use super::error::CniError;
use crate::annotations::Shown;

const VAR: &str = "CNI_ARGS";

/// The entries nadipam reads; every other key is ignored (as `IgnoreUnknown=1` asks).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct CniArgs {
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub uid: Option<String>,
    /// Multus' `MAC=` (from the network selection element's `mac`).
    pub mac: Option<String>,
    /// Multus' `IP=` (the selection element's `ips`, comma-joined).
    pub ips: Option<String>,
}

/// The Pod the runtime is setting up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PodRef {
    pub namespace: String,
    pub name: String,
    pub uid: Option<String>,
}

impl std::fmt::Display for PodRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

impl CniArgs {
    /// Parses the raw value; empty segments are skipped, a segment without `=` is an error.
    pub(crate) fn parse(raw: &str) -> Result<CniArgs, CniError> {
        let mut out = CniArgs::default();
        for segment in raw.split(';') {
            let segment = segment.trim();
            if segment.is_empty() {
                continue;
            }
            let Some((key, value)) = segment.split_once('=') else {
                return Err(CniError::env(
                    VAR,
                    format!(
                        "entry {} is not KEY=VALUE (expected entries such as K8S_POD_NAMESPACE=default separated by ';')",
                        Shown::new(segment)
                    ),
                ));
            };
            let value = value.trim();
            let value = (!value.is_empty()).then(|| value.to_string());
            match key.trim() {
                "K8S_POD_NAMESPACE" => out.namespace = value,
                "K8S_POD_NAME" => out.name = value,
                "K8S_POD_UID" => out.uid = value,
                "MAC" => out.mac = value,
                "IP" => out.ips = value,
                _ => {}
            }
        }
        Ok(out)
    }

    /// The Pod, which ADD and CHECK need; its namespace and name become part of an API path, so they must
    /// be valid Kubernetes names.
    pub(crate) fn pod(&self) -> Result<PodRef, CniError> {
        let namespace = required(self.namespace.as_deref(), "K8S_POD_NAMESPACE")?;
        let name = required(self.name.as_deref(), "K8S_POD_NAME")?;
        if !is_label(namespace) {
            return Err(CniError::env(
                VAR,
                format!(
                    "K8S_POD_NAMESPACE {} is not a valid namespace name (a DNS-1123 label)",
                    Shown::new(namespace)
                ),
            ));
        }
        if !is_subdomain(name) {
            return Err(CniError::env(
                VAR,
                format!(
                    "K8S_POD_NAME {} is not a valid Pod name (a DNS-1123 subdomain)",
                    Shown::new(name)
                ),
            ));
        }
        Ok(PodRef {
            namespace: namespace.to_string(),
            name: name.to_string(),
            uid: self.uid.clone(),
        })
    }
}

fn required<'a>(value: Option<&'a str>, key: &str) -> Result<&'a str, CniError> {
    value.ok_or_else(|| {
        CniError::env(
            VAR,
            format!(
                "{key} is missing; nadipam reads the Pod's addresses from its annotations and needs K8S_POD_NAMESPACE and K8S_POD_NAME (Multus and Kubernetes runtimes set them; when calling by hand add e.g. CNI_ARGS=\"K8S_POD_NAMESPACE=default;K8S_POD_NAME=mypod\")"
            ),
        )
    })
}

fn is_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b.first().is_some_and(u8::is_ascii_alphanumeric)
        && b.last().is_some_and(u8::is_ascii_alphanumeric)
}

fn is_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_label)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_multus_args() {
        let a = CniArgs::parse(
            "IgnoreUnknown=1;K8S_POD_NAMESPACE=ns1;K8S_POD_NAME=web-0;K8S_POD_INFRA_CONTAINER_ID=abc;K8S_POD_UID=1234-5678;MAC=02:00:00:00:00:01;IP=10.0.0.5/24,fd00::5/64",
        )
        .unwrap();
        assert_eq!(a.namespace.as_deref(), Some("ns1"));
        assert_eq!(a.name.as_deref(), Some("web-0"));
        assert_eq!(a.uid.as_deref(), Some("1234-5678"));
        assert_eq!(a.mac.as_deref(), Some("02:00:00:00:00:01"));
        assert_eq!(a.ips.as_deref(), Some("10.0.0.5/24,fd00::5/64"));
        let pod = a.pod().unwrap();
        assert_eq!(pod.to_string(), "ns1/web-0");
        assert_eq!(pod.uid.as_deref(), Some("1234-5678"));
    }

    #[test]
    fn tolerates_empty_segments_and_values() {
        let a = CniArgs::parse(";K8S_POD_NAMESPACE=ns1;;K8S_POD_NAME=p;K8S_POD_UID=;").unwrap();
        assert_eq!(a.uid, None);
        assert!(a.pod().is_ok());
        assert_eq!(CniArgs::parse("").unwrap(), CniArgs::default());
    }

    #[test]
    fn errors_name_the_entry() {
        let e = CniArgs::parse("K8S_POD_NAMESPACE=ns1;garbage").unwrap_err();
        assert_eq!(e.code(), 4);
        assert_eq!(
            e.to_string(),
            "CNI_ARGS: entry \"garbage\" is not KEY=VALUE (expected entries such as K8S_POD_NAMESPACE=default separated by ';')"
        );
        let e = CniArgs::parse("K8S_POD_NAMESPACE=ns1")
            .unwrap()
            .pod()
            .unwrap_err();
        assert_eq!(e.code(), 4);
        assert!(
            e.to_string()
                .starts_with("CNI_ARGS: K8S_POD_NAME is missing; nadipam reads"),
            "{e}"
        );
        let e = CniArgs::parse("K8S_POD_NAME=p").unwrap().pod().unwrap_err();
        assert!(
            e.to_string()
                .starts_with("CNI_ARGS: K8S_POD_NAMESPACE is missing"),
            "{e}"
        );
        let e = CniArgs::parse("K8S_POD_NAMESPACE=../x;K8S_POD_NAME=p")
            .unwrap()
            .pod()
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "CNI_ARGS: K8S_POD_NAMESPACE \"../x\" is not a valid namespace name (a DNS-1123 label)"
        );
        let e = CniArgs::parse("K8S_POD_NAMESPACE=a;K8S_POD_NAME=P/q")
            .unwrap()
            .pod()
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "CNI_ARGS: K8S_POD_NAME \"P/q\" is not a valid Pod name (a DNS-1123 subdomain)"
        );
    }
}
