//! Validating NetworkAttachmentDefinitions: nadipam reads the IPAM type and provider centrally, so the
//! config must be in `spec.config`, and a NAD may only claim its own provider.

use std::sync::Arc;

use kube::ResourceExt;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, Operation};

use crate::api::NetworkAttachmentDefinition;
use crate::cache::Cache;
use crate::context::Context;
use crate::webhook::respond;

pub async fn validate(
    ctx: Arc<Context>,
    req: AdmissionRequest<NetworkAttachmentDefinition>,
) -> AdmissionResponse {
    let resp = AdmissionResponse::from(&req);
    let Some(nad) = req
        .object
        .as_ref()
        .filter(|_| matches!(req.operation, Operation::Create | Operation::Update))
    else {
        return resp;
    };
    match check(&ctx.cache, nad) {
        Ok(warnings) if warnings.is_empty() => resp,
        Ok(warnings) => {
            let mut r = resp;
            r.warnings = Some(warnings);
            r
        }
        Err((reason, msg)) => respond::refuse(&ctx, resp, reason, 422, msg),
    }
}

/// Ok with warnings, or the reason label and the message.
pub(crate) fn check(
    cache: &Cache,
    nad: &NetworkAttachmentDefinition,
) -> Result<Vec<String>, (&'static str, String)> {
    let view = nad.ipam_view().map_err(|e| ("bad_nad", e.to_string()))?;
    if !view.is_ours() {
        return Ok(Vec::new());
    }
    let (name, ns) = (nad.name_any(), nad.namespace().unwrap_or_default());
    let own = format!("{name}.{ns}");
    let own_ovn = format!("{own}.ovn");
    let field = if view.is_kube_ovn_attachment() {
        "provider"
    } else {
        "ipam.provider"
    };
    let Some(provider) = view.provider.as_deref() else {
        return Err((
            "nad_provider",
            format!(
                "NetworkAttachmentDefinition {ns}/{name}: spec.config {field} is missing; nadipam finds the Subnet by \
                 it: set it to \"{own}\" (or \"{own_ovn}\")"
            ),
        ));
    };
    if provider != own && provider != own_ovn {
        return Err((
            "nad_provider",
            format!(
                "NetworkAttachmentDefinition {ns}/{name}: spec.config {field} \"{provider}\" is not this NAD's provider; \
                 a NAD may only claim its own: \"{own}\" or \"{own_ovn}\""
            ),
        ));
    }
    let served = cache
        .subnets
        .state()
        .iter()
        .any(|s| s.spec.provider == provider);
    Ok(if served {
        Vec::new()
    } else {
        vec![format!(
            "no Subnet has spec.provider {provider} yet; Pods on {ns}/{name} will be refused until one exists \
             (or they name one with {provider}.kubernetes.io/logical_switch)"
        )]
    })
}
