//! Registering the webhook configurations from the server itself: used out of cluster (the test bed and
//! `e2e/demo` reach the server by URL) and by the self-managed certificate mode, which must publish its CA.

use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::{Client, ResourceExt};

use super::config::Registration;

const MANAGER: &str = "nadipam";

/// Applies both configurations (server-side apply, so re-registering replaces our fields only).
pub async fn register(client: &Client, reg: &Registration) -> Result<(), kube::Error> {
    let params = PatchParams::apply(MANAGER).force();
    let m = reg.mutating();
    Api::<MutatingWebhookConfiguration>::all(client.clone())
        .patch(&m.name_any(), &params, &Patch::Apply(&m))
        .await?;
    let v = reg.validating();
    Api::<ValidatingWebhookConfiguration>::all(client.clone())
        .patch(&v.name_any(), &params, &Patch::Apply(&v))
        .await?;
    Ok(())
}

/// Removes both configurations; missing ones are fine.
pub async fn unregister(client: &Client, reg: &Registration) -> Result<(), kube::Error> {
    let dp = DeleteParams::default();
    let m = reg.mutating().name_any();
    let v = reg.validating().name_any();
    ignore_missing(
        Api::<MutatingWebhookConfiguration>::all(client.clone())
            .delete(&m, &dp)
            .await
            .map(|_| ()),
    )?;
    ignore_missing(
        Api::<ValidatingWebhookConfiguration>::all(client.clone())
            .delete(&v, &dp)
            .await
            .map(|_| ()),
    )
}

fn ignore_missing(r: Result<(), kube::Error>) -> Result<(), kube::Error> {
    match r {
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        other => other,
    }
}
