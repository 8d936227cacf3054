//! The certificate Secret in the API: how replicas agree without a leader. The first write is a create, which
//! only one replica can win (the others get AlreadyExists and adopt the winner's Secret); every later write is
//! a replace carrying the resourceVersion it was decided from, so a replica that decided from a stale Secret
//! gets Conflict, re-reads and decides again.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ObjectMeta, PostParams};

use super::error::CertError;
use super::material::Material;

/// Label on Secrets nadipam writes.
const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "nadipam");

/// Result of a write that another replica may have beaten.
pub(crate) enum Written {
    Stored,
    /// AlreadyExists or Conflict: someone else wrote first; re-read.
    Lost,
}

pub(crate) struct Store {
    api: Api<Secret>,
    pub namespace: String,
    pub name: String,
}

impl Store {
    pub(crate) fn new(client: kube::Client, namespace: &str, name: &str) -> Store {
        Store {
            api: Api::namespaced(client, namespace),
            namespace: namespace.to_string(),
            name: name.to_string(),
        }
    }

    /// `<namespace>/<name>`, for messages.
    pub(crate) fn id(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    pub(crate) async fn get(&self) -> Result<Option<Secret>, CertError> {
        self.api
            .get_opt(&self.name)
            .await
            .map_err(CertError::api(format!("reading Secret {}", self.id())))
    }

    /// The Secret to write: `base` (the one read, carrying its resourceVersion, labels and foreign
    /// annotations) with `material` and `annotations` (a `None` value removes the key).
    pub(crate) fn build(
        &self,
        base: Option<&Secret>,
        material: &Material,
        annotations: &[(&str, Option<String>)],
    ) -> Secret {
        let mut meta = base
            .map(|s| s.metadata.clone())
            .unwrap_or_else(|| ObjectMeta {
                name: Some(self.name.clone()),
                namespace: Some(self.namespace.clone()),
                ..ObjectMeta::default()
            });
        meta.managed_fields = None;
        let ann = meta.annotations.get_or_insert_with(BTreeMap::new);
        for (k, v) in annotations {
            match v {
                Some(v) => ann.insert((*k).to_string(), v.clone()),
                None => ann.remove(*k),
            };
        }
        meta.labels
            .get_or_insert_with(BTreeMap::new)
            .insert(MANAGED_BY.0.to_string(), MANAGED_BY.1.to_string());
        Secret {
            metadata: meta,
            data: Some(material.to_data()),
            type_: Some("kubernetes.io/tls".to_string()),
            ..Secret::default()
        }
    }

    /// Creates the Secret unless it exists.
    pub(crate) async fn create(&self, secret: &Secret) -> Result<Written, CertError> {
        match self.api.create(&PostParams::default(), secret).await {
            Ok(_) => Ok(Written::Stored),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(Written::Lost),
            Err(e) => Err(CertError::api(format!("creating Secret {}", self.id()))(e)),
        }
    }

    /// Replaces the Secret if it is still at the resourceVersion `secret` carries.
    pub(crate) async fn replace(&self, secret: &Secret) -> Result<Written, CertError> {
        match self
            .api
            .replace(&self.name, &PostParams::default(), secret)
            .await
        {
            Ok(_) => Ok(Written::Stored),
            Err(kube::Error::Api(s)) if s.code == 409 || s.code == 404 => Ok(Written::Lost),
            Err(e) => Err(CertError::api(format!("updating Secret {}", self.id()))(e)),
        }
    }
}
