//! Reads from the apiserver, every error naming what was being read. Lists go page by page, as kubectl's do,
//! so a cluster of many thousand Pods or leases is not one huge response.

use std::fmt::Debug;
use std::sync::Arc;

use kube::api::{Api, ListParams};
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;

use super::error::Error;
use crate::api::{IPPool, Subnet};

/// Objects per page.
const PAGE: u32 = 500;

/// Every object `params` selects. A resource whose CRD is not installed reads as none when `optional`.
pub(crate) async fn list<K>(
    api: &Api<K>,
    params: ListParams,
    doing: &str,
    optional: bool,
) -> Result<Vec<K>, Error>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    let mut params = params.limit(PAGE);
    let mut out = Vec::new();
    loop {
        let page = match api.list(&params).await {
            Err(kube::Error::Api(s)) if optional && s.code == 404 => return Ok(Vec::new()),
            other => other.map_err(Error::api(doing))?,
        };
        out.extend(page.items);
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => return Ok(out),
        }
    }
}

/// The object `name`, or `None` when it does not exist.
pub(crate) async fn get<K>(api: &Api<K>, name: &str, doing: &str) -> Result<Option<K>, Error>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    api.get_opt(name).await.map_err(Error::api(doing))
}

/// Every Subnet, by name.
pub(crate) async fn subnets(client: &Client) -> Result<Vec<Arc<Subnet>>, Error> {
    let api: Api<Subnet> = Api::all(client.clone());
    let mut all: Vec<Arc<Subnet>> = list(&api, ListParams::default(), "listing Subnets", false)
        .await?
        .into_iter()
        .map(Arc::new)
        .collect();
    all.sort_by_key(|s| s.name_any());
    Ok(all)
}

/// Every IPPool, by name.
pub(crate) async fn pools(client: &Client) -> Result<Vec<IPPool>, Error> {
    let api: Api<IPPool> = Api::all(client.clone());
    let mut all = list(&api, ListParams::default(), "listing IPPools", false).await?;
    all.sort_by_key(|p| p.name_any());
    Ok(all)
}

/// A Subnet named on the command line that does not exist.
pub(crate) fn no_subnet(name: &str) -> Error {
    Error::NotFound {
        what: format!("Subnet {name}"),
        hint: "; list them with kubectl get subnets.nadipam.io".into(),
    }
}
