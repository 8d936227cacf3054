//! References to NetworkAttachmentDefinitions: `name`, `ns/name` and `ns/name@ifname`.

use std::fmt;

use super::error::{AnnotationError, Shown};
use super::names::{is_dns1123_label, is_ifname};

/// A NetworkAttachmentDefinition, by namespace and name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NetworkRef {
    pub namespace: String,
    pub name: String,
}

impl NetworkRef {
    /// The Kube-OVN provider of an IPAM-only NAD: `<name>.<namespace>`.
    pub fn provider(&self) -> String {
        format!("{}.{}", self.name, self.namespace)
    }

    /// The Kube-OVN provider of a kube-ovn-typed NAD: `<name>.<namespace>.ovn`.
    pub fn ovn_provider(&self) -> String {
        format!(
            "{}.{}.{}",
            self.name,
            self.namespace,
            super::keys::OVN_PROVIDER
        )
    }
}

impl fmt::Display for NetworkRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// A `<namespace>/<name>` that is not one, from a setting (`--default-network`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{value:?} is not a NetworkAttachmentDefinition reference; expected <namespace>/<name> (DNS labels), such as \
     kube-system/ovs-conf"
)]
pub struct NetworkRefError {
    pub value: String,
}

impl std::str::FromStr for NetworkRef {
    type Err = NetworkRefError;

    /// Exactly `<namespace>/<name>`: a setting has no Pod namespace to fall back on.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().split_once('/') {
            Some((ns, name)) if is_dns1123_label(ns) && is_dns1123_label(name) => Ok(NetworkRef {
                namespace: ns.to_string(),
                name: name.to_string(),
            }),
            _ => Err(NetworkRefError {
                value: s.to_string(),
            }),
        }
    }
}

/// The namespace a reference without one resolves to, checked once so the error names the entry.
pub(crate) fn default_namespace(
    key: &str,
    entry: &str,
    pod_namespace: &str,
) -> Result<String, AnnotationError> {
    if is_dns1123_label(pod_namespace) {
        Ok(pod_namespace.to_string())
    } else {
        Err(AnnotationError::NoNamespace {
            key: key.into(),
            value: Shown::new(entry),
            pod_namespace: Shown::new(pod_namespace),
        })
    }
}

/// Parses one text entry (already trimmed) into a network and its explicit interface name.
pub(crate) fn parse_text_ref(
    key: &str,
    entry: &str,
    pod_namespace: &str,
) -> Result<(NetworkRef, Option<String>), AnnotationError> {
    let bad = || AnnotationError::NetworkRef {
        key: key.into(),
        value: Shown::new(entry),
    };
    let (left, interface) = match entry.split_once('@') {
        Some((l, i)) => (l, Some(i)),
        None => (entry, None),
    };
    let (namespace, name) = match left.split_once('/') {
        Some((ns, n)) => (Some(ns), n),
        None => (None, left),
    };
    if !is_dns1123_label(name) || namespace.is_some_and(|ns| !is_dns1123_label(ns)) {
        return Err(bad());
    }
    if let Some(i) = interface
        && !is_ifname(i)
    {
        return Err(AnnotationError::Interface {
            key: key.into(),
            value: Shown::new(i),
        });
    }
    let namespace = match namespace {
        Some(ns) => ns.to_string(),
        None => default_namespace(key, entry, pod_namespace)?,
    };
    Ok((
        NetworkRef {
            namespace,
            name: name.to_string(),
        },
        interface.map(str::to_string),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const K: &str = super::super::keys::NETWORKS;

    fn net(ns: &str, name: &str) -> NetworkRef {
        NetworkRef {
            namespace: ns.into(),
            name: name.into(),
        }
    }

    #[test]
    fn forms() {
        assert_eq!(
            parse_text_ref(K, "macvlan", "prod").unwrap(),
            (net("prod", "macvlan"), None)
        );
        assert_eq!(
            parse_text_ref(K, "default/macvlan", "prod").unwrap(),
            (net("default", "macvlan"), None)
        );
        assert_eq!(
            parse_text_ref(K, "default/macvlan@net5", "prod").unwrap(),
            (net("default", "macvlan"), Some("net5".into()))
        );
        assert_eq!(
            parse_text_ref(K, "macvlan@net5", "prod").unwrap(),
            (net("prod", "macvlan"), Some("net5".into()))
        );
    }

    #[test]
    fn providers_and_display() {
        let n = net("default", "attachnet");
        assert_eq!(n.to_string(), "default/attachnet");
        assert_eq!(n.provider(), "attachnet.default");
        assert_eq!(n.ovn_provider(), "attachnet.default.ovn");
    }

    #[test]
    fn a_setting_names_namespace_and_name() {
        assert_eq!(
            " kube-system/ovs-conf ".parse::<NetworkRef>(),
            Ok(net("kube-system", "ovs-conf"))
        );
        for bad in ["ovs-conf", "kube-system/", "/ovs-conf", "a/b/c", "Kube/ovs"] {
            assert_eq!(
                bad.parse::<NetworkRef>().map_err(|e| e.to_string()),
                Err(format!(
                    "{bad:?} is not a NetworkAttachmentDefinition reference; expected <namespace>/<name> (DNS \
                     labels), such as kube-system/ovs-conf"
                ))
            );
        }
    }
}
