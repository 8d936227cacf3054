//! Reading the cluster: Pods, nadipam's objects, NADs, and a peer's objects as `DynamicObject`s (no typed
//! CRDs for peers' kinds: their objects can be anything, the pure core reads them as JSON).

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use kube::core::GroupVersionKind;
use kube::{Client, ResourceExt};
use serde_json::Value;

use super::error::Error;
use super::world::{NadInfo, PodInfo, World};
use crate::api::{IPLease, IPPool, NetworkAttachmentDefinition, Subnet};

async fn list<K>(api: Api<K>, what: &str) -> Result<Vec<K>, Error>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let mut out = Vec::new();
    let mut params = ListParams::default().limit(500);
    loop {
        let page = api.list(&params).await.map_err(|source| Error::List {
            what: what.to_string(),
            source,
        })?;
        let next = page.metadata.continue_.clone().filter(|c| !c.is_empty());
        out.extend(page.items);
        match next {
            Some(c) => params = params.continue_token(&c),
            None => return Ok(out),
        }
    }
}

/// Pods, Subnets, IPPools, IPLeases and NADs, cluster-wide. A NAD CRD that is not installed reads as no NADs.
pub(crate) async fn world(client: &Client) -> Result<World, Error> {
    let mut w = World::default();
    for p in list(Api::<Pod>::all(client.clone()), "pods").await? {
        let info = PodInfo::of(&p);
        w.pods
            .insert((info.namespace.clone(), info.name.clone()), info);
    }
    w.subnets = list(Api::<Subnet>::all(client.clone()), "subnets.nadipam.io").await?;
    w.pools = list(Api::<IPPool>::all(client.clone()), "ippools.nadipam.io").await?;
    for l in list(Api::<IPLease>::all(client.clone()), "ipleases.nadipam.io").await? {
        w.leases.insert(l.name_any(), l);
    }
    w.nads = match list(
        Api::<NetworkAttachmentDefinition>::all(client.clone()),
        "network-attachment-definitions.k8s.cni.cncf.io",
    )
    .await
    {
        Ok(nads) => nads.iter().map(NadInfo::of).collect(),
        Err(Error::List {
            source: kube::Error::Api(e),
            ..
        }) if e.code == 404 => Vec::new(),
        Err(e) => return Err(e),
    };
    Ok(w)
}

/// A peer's objects of one kind, cluster-wide, as JSON; `None` when the kind is not served (its CRD is not
/// installed).
pub(crate) async fn peer(
    client: &Client,
    (group, version, kind, plural): (&str, &str, &str, &str),
) -> Result<Option<Vec<Value>>, Error> {
    let ar =
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural);
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
    match list(api, &format!("{plural}.{group}")).await {
        Ok(objs) => Ok(Some(
            objs.into_iter()
                .filter_map(|o| serde_json::to_value(o).ok())
                .collect(),
        )),
        Err(Error::List {
            source: kube::Error::Api(e),
            ..
        }) if e.code == 404 => Ok(None),
        Err(e) => Err(e),
    }
}
