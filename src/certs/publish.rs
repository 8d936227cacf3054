//! Publishing the CA bundle into the `caBundle` of nadipam's two webhook configurations. Every replica does it
//! right after reading the Secret, so the bundle published is never older than the Secret a moment ago; the
//! patch is a strategic merge keyed by webhook name and touches only `clientConfig.caBundle`, so the rules
//! the Helm chart (or the registration) wrote stay theirs.

use std::fmt::Debug;

use base64::Engine;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use kube::api::{Api, Patch, PatchParams};
use kube::core::ClusterResourceScope;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::error::CertError;

const MANAGER: &str = "nadipam-certs";

/// The configurations to keep current, by name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Targets {
    pub mutating: String,
    pub validating: String,
}

/// What a publish did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Published {
    /// `mutatingwebhookconfiguration/<name>`-style names that were patched.
    pub patched: Vec<String>,
    /// Configurations that do not exist (yet).
    pub missing: Vec<String>,
}

/// Sets every webhook's `caBundle` of both configurations to `bundle` where it differs.
pub(crate) async fn publish(
    client: &kube::Client,
    t: &Targets,
    bundle: &[u8],
) -> Result<Published, CertError> {
    let mut out = Published::default();
    let m = Api::<MutatingWebhookConfiguration>::all(client.clone());
    let v = Api::<ValidatingWebhookConfiguration>::all(client.clone());
    for (kind, outcome) in [
        (
            "mutatingwebhookconfiguration",
            publish_one(&m, &t.mutating, bundle).await?,
        ),
        (
            "validatingwebhookconfiguration",
            publish_one(&v, &t.validating, bundle).await?,
        ),
    ] {
        let name = format!("{kind}/{}", outcome.1);
        match outcome.0 {
            One::Patched => out.patched.push(name),
            One::Missing => out.missing.push(name),
            One::Current => {}
        }
    }
    Ok(out)
}

/// True when every webhook of both configurations trusts `ca_der` (a missing configuration trusts nothing).
pub(crate) async fn trusted_everywhere(
    client: &kube::Client,
    t: &Targets,
    ca_der: &[u8],
) -> Result<bool, CertError> {
    let m = Api::<MutatingWebhookConfiguration>::all(client.clone());
    let v = Api::<ValidatingWebhookConfiguration>::all(client.clone());
    Ok(trusts(&m, &t.mutating, ca_der).await? && trusts(&v, &t.validating, ca_der).await?)
}

enum One {
    Patched,
    Current,
    Missing,
}

/// `(webhook name, caBundle bytes)` of each webhook of a configuration, read generically from its JSON.
async fn bundles<K>(api: &Api<K>, name: &str) -> Result<Option<Vec<(String, Vec<u8>)>>, CertError>
where
    K: kube::Resource<Scope = ClusterResourceScope> + Clone + DeserializeOwned + Serialize + Debug,
    K::DynamicType: Default,
{
    let kind = K::kind(&K::DynamicType::default()).to_string();
    let Some(obj) = api
        .get_opt(name)
        .await
        .map_err(CertError::api(format!("reading {kind} {name}")))?
    else {
        return Ok(None);
    };
    let value = serde_json::to_value(&obj).unwrap_or(Value::Null);
    let hooks = value["webhooks"].as_array().cloned().unwrap_or_default();
    Ok(Some(
        hooks
            .iter()
            .map(|h| {
                let ca = h["clientConfig"]["caBundle"]
                    .as_str()
                    .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
                    .unwrap_or_default();
                (h["name"].as_str().unwrap_or_default().to_string(), ca)
            })
            .collect(),
    ))
}

async fn publish_one<K>(api: &Api<K>, name: &str, bundle: &[u8]) -> Result<(One, String), CertError>
where
    K: kube::Resource<Scope = ClusterResourceScope> + Clone + DeserializeOwned + Serialize + Debug,
    K::DynamicType: Default,
{
    let Some(hooks) = bundles(api, name).await? else {
        return Ok((One::Missing, name.to_string()));
    };
    if hooks.iter().all(|(_, ca)| ca == bundle) {
        return Ok((One::Current, name.to_string()));
    }
    let b64 = base64::engine::general_purpose::STANDARD.encode(bundle);
    let patch = json!({
        "webhooks": hooks.iter().map(|(n, _)| json!({"name": n, "clientConfig": {"caBundle": b64}})).collect::<Vec<_>>()
    });
    let kind = K::kind(&K::DynamicType::default()).to_string();
    let params = PatchParams {
        field_manager: Some(MANAGER.to_string()),
        ..PatchParams::default()
    };
    api.patch(name, &params, &Patch::Strategic(&patch))
        .await
        .map_err(CertError::api(format!(
            "patching caBundle of {kind} {name}"
        )))?;
    Ok((One::Patched, name.to_string()))
}

async fn trusts<K>(api: &Api<K>, name: &str, ca_der: &[u8]) -> Result<bool, CertError>
where
    K: kube::Resource<Scope = ClusterResourceScope> + Clone + DeserializeOwned + Serialize + Debug,
    K::DynamicType: Default,
{
    let Some(hooks) = bundles(api, name).await? else {
        return Ok(false);
    };
    Ok(!hooks.is_empty()
        && hooks.iter().all(|(_, pem)| {
            CertificateDer::pem_slice_iter(pem)
                .filter_map(Result::ok)
                .any(|d| d.as_ref() == ca_der)
        }))
}
