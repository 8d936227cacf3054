//! Multus' `NetworkAttachmentDefinition` (`k8s.cni.cncf.io/v1`), reduced to what nadipam reads: the CNI config.
//!
//! Written by hand rather than derived because `spec` may be missing altogether (Multus then reads a file on each
//! node), which a derived custom resource refuses to deserialize.

use std::borrow::Cow;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::{NamespaceResourceScope, Resource};
use serde::ser::SerializeStruct;
use serde::{Deserialize, Serialize, Serializer};

use super::nad_config::{NadConfigError, NadIpam, ipam_view};

/// A Multus network definition. Serializes with its apiVersion and kind, as the apiserver requires on writes.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct NetworkAttachmentDefinition {
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: NetworkAttachmentDefinitionSpec,
}

/// The NAD's spec: one CNI configuration (single plugin or conflist) as a JSON string.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkAttachmentDefinitionSpec {
    /// The CNI configuration JSON; empty when the NAD points Multus at a file on each node.
    #[serde(default)]
    pub config: String,
}

/// Why a NAD's IPAM settings could not be read; names the NAD.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("NetworkAttachmentDefinition {nad}: {source}")]
pub struct NadError {
    /// `<namespace>/<name>`.
    pub nad: String,
    #[source]
    pub source: NadConfigError,
}

impl Serialize for NetworkAttachmentDefinition {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        let mut obj = ser.serialize_struct("NetworkAttachmentDefinition", 4)?;
        obj.serialize_field("apiVersion", &Self::api_version(&()))?;
        obj.serialize_field("kind", &Self::kind(&()))?;
        obj.serialize_field("metadata", &self.metadata)?;
        obj.serialize_field("spec", &self.spec)?;
        obj.end()
    }
}

impl NetworkAttachmentDefinition {
    /// A NAD named `namespace/name` carrying `config`.
    pub fn new(namespace: &str, name: &str, config: impl Into<String>) -> Self {
        NetworkAttachmentDefinition {
            metadata: ObjectMeta {
                name: Some(name.to_string()),
                namespace: Some(namespace.to_string()),
                ..ObjectMeta::default()
            },
            spec: NetworkAttachmentDefinitionSpec {
                config: config.into(),
            },
        }
    }

    /// `<namespace>/<name>`, the form Multus annotations use.
    pub fn key(&self) -> String {
        format!(
            "{}/{}",
            self.metadata.namespace.as_deref().unwrap_or_default(),
            self.metadata.name.as_deref().unwrap_or_default()
        )
    }

    /// The parsed IPAM settings of `spec.config`; errors name this NAD.
    pub fn ipam_view(&self) -> Result<NadIpam, NadError> {
        ipam_view(&self.spec.config).map_err(|source| NadError {
            nad: self.key(),
            source,
        })
    }

    /// A NAD nadipam serves may claim only its own provider, `<name>.<namespace>` or `<name>.<namespace>.ovn`,
    /// so a tenant who can write NADs in one namespace cannot draw from a Subnet serving another's network.
    /// `required`: a missing provider is refused too (NAD writes); Pod admission falls back to the NAD's own.
    pub fn check_provider(&self, view: &NadIpam, required: bool) -> Result<(), NadError> {
        let own = format!(
            "{}.{}",
            self.metadata.name.as_deref().unwrap_or_default(),
            self.metadata.namespace.as_deref().unwrap_or_default()
        );
        let field = if view.is_kube_ovn_attachment() {
            "provider"
        } else {
            "ipam.provider"
        };
        let source = match view.provider.as_deref() {
            None if required => NadConfigError::MissingProvider { field, own },
            None => return Ok(()),
            Some(p) if p == own || p.strip_suffix(".ovn") == Some(own.as_str()) => return Ok(()),
            Some(p) => NadConfigError::ForeignProvider {
                field,
                provider: p.to_string(),
                own,
            },
        };
        Err(NadError {
            nad: self.key(),
            source,
        })
    }

    /// The provider nadipam matches Subnets by: the config's `provider` if set, else `<name>.<namespace>`
    /// (`<name>.<namespace>.ovn` for a Kube-OVN-type attachment).
    pub fn provider(&self, view: &NadIpam) -> String {
        view.effective_provider(
            self.metadata.name.as_deref().unwrap_or_default(),
            self.metadata.namespace.as_deref().unwrap_or_default(),
        )
    }
}

impl Resource for NetworkAttachmentDefinition {
    type DynamicType = ();
    type Scope = NamespaceResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        "NetworkAttachmentDefinition".into()
    }
    fn group(_: &()) -> Cow<'_, str> {
        "k8s.cni.cncf.io".into()
    }
    fn version(_: &()) -> Cow<'_, str> {
        "v1".into()
    }
    fn plural(_: &()) -> Cow<'_, str> {
        "network-attachment-definitions".into()
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deserializes_with_and_without_spec() {
        let with: NetworkAttachmentDefinition = serde_saphyr::from_str(
            r#"
apiVersion: "k8s.cni.cncf.io/v1"
kind: NetworkAttachmentDefinition
metadata:
  name: macvlan
  namespace: default
spec:
  config: '{"cniVersion": "0.3.0", "type": "macvlan", "master": "eth0", "mode": "bridge",
            "ipam": {"type": "kube-ovn", "server_socket": "/run/openvswitch/kube-ovn-daemon.sock",
                     "provider": "macvlan.default"}}'
"#,
        )
        .unwrap();
        assert_eq!(with.key(), "default/macvlan");
        let view = with.ipam_view().unwrap();
        assert!(view.is_ours());
        assert_eq!(with.provider(&view), "macvlan.default");

        let without: NetworkAttachmentDefinition = serde_saphyr::from_str(
            "apiVersion: k8s.cni.cncf.io/v1\nkind: NetworkAttachmentDefinition\nmetadata:\n  name: macvlan-conf-2\n  namespace: default\n",
        )
        .unwrap();
        assert_eq!(without.spec.config, "");
        let err = without.ipam_view().unwrap_err();
        assert_eq!(
            err.to_string(),
            "NetworkAttachmentDefinition default/macvlan-conf-2: spec.config is empty: nadipam reads the IPAM type \
             and provider from it, so a NAD whose config lives in a file on each node cannot use nadipam; put the \
             CNI configuration in spec.config"
        );
    }

    #[test]
    fn serializes_with_type_meta() {
        let nad = NetworkAttachmentDefinition::new("default", "macvlan", r#"{"type":"macvlan"}"#);
        let v = serde_json::to_value(&nad).unwrap();
        assert_eq!(v["apiVersion"], "k8s.cni.cncf.io/v1");
        assert_eq!(v["kind"], "NetworkAttachmentDefinition");
        assert_eq!(v["metadata"]["namespace"], "default");
        assert_eq!(v["spec"]["config"], r#"{"type":"macvlan"}"#);
        let back: NetworkAttachmentDefinition = serde_json::from_value(v).unwrap();
        assert_eq!(back, nad);
    }

    #[test]
    fn resource_names() {
        assert_eq!(
            NetworkAttachmentDefinition::api_version(&()),
            "k8s.cni.cncf.io/v1"
        );
        assert_eq!(
            NetworkAttachmentDefinition::plural(&()),
            "network-attachment-definitions"
        );
    }
}
