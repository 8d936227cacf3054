//! NADs a Pod names that the cache does not have yet, read live: a NAD applied together with the Pod may
//! not have reached the watch, and a Pod must not be refused for a NAD that exists.

use std::collections::BTreeMap;
use std::sync::Arc;

use kube::Api;
use kube::runtime::reflector::ObjectRef;

use crate::annotations;
use crate::api::NetworkAttachmentDefinition;
use crate::context::Context;

/// The NADs of the Pod's attachments that exist but are missing from the cache. Annotations that do not
/// parse yield none: the plan reports them. A failed read is logged and counts as missing, so the Pod is
/// refused as naming an unknown NAD, as before the read.
pub(crate) async fn missing_nads(
    ctx: &Context,
    ann: &BTreeMap<String, String>,
    namespace: &str,
) -> Vec<Arc<NetworkAttachmentDefinition>> {
    let Ok(requests) = annotations::attachments(ann, namespace) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for r in &requests {
        let cached = ObjectRef::<NetworkAttachmentDefinition>::new(&r.network.name)
            .within(&r.network.namespace);
        if ctx.cache.nads.get(&cached).is_some() {
            continue;
        }
        let api = Api::<NetworkAttachmentDefinition>::namespaced(
            ctx.client.clone(),
            &r.network.namespace,
        );
        match api.get_opt(&r.network.name).await {
            Ok(Some(nad)) => out.push(Arc::new(nad)),
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(network = %r.network, error = %e, "reading a NAD missing from the cache")
            }
        }
    }
    out
}
