//! Validating NetworkAttachmentDefinitions that are nadipam's (`scope`): nadipam reads the IPAM type and
//! provider centrally, so their config must be in `spec.config`, and a NAD may only claim its own provider.
//! Every other NAD passes untouched; most never reach the webhook (`config::NAD_MATCH`).

use std::sync::Arc;

use kube::core::admission::{AdmissionRequest, AdmissionResponse, Operation};

use crate::api::NetworkAttachmentDefinition;
use crate::cache::Cache;
use crate::context::Context;
use crate::webhook::{respond, scope};

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
    // An update that keeps spec.config (labels, finalizers, deletion) is never refused: what was admitted
    // stays admissible, and a NAD a Subnet names later can still be deleted.
    if req
        .old_object
        .as_ref()
        .is_some_and(|old| old.spec.config == nad.spec.config)
    {
        return resp;
    }
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

/// Ok with warnings, or the reason label and the message. NADs that are not nadipam's (`scope::judge`) pass.
pub(crate) fn check(
    cache: &Cache,
    nad: &NetworkAttachmentDefinition,
) -> Result<Vec<String>, (&'static str, String)> {
    let network = scope::network_of(nad);
    let served = || scope::served(&network, &cache.subnets.state(), &cache.pools.state());
    let view = match scope::judge(nad, served, true) {
        Ok(Some(view)) => view,
        Ok(None) => return Ok(Vec::new()),
        Err(e) if e.source.is_provider() => return Err(("nad_provider", e.to_string())),
        Err(e) => return Err(("bad_nad", e.to_string())),
    };
    let provider = nad.provider(&view);
    let served = cache
        .subnets
        .state()
        .iter()
        .any(|s| s.spec.provider == provider);
    Ok(if served {
        Vec::new()
    } else {
        vec![format!(
            "no Subnet has spec.provider {provider} yet; Pods on {network} will be refused until one exists \
             (or they name one with {provider}.kubernetes.io/logical_switch)"
        )]
    })
}
