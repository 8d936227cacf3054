//! Reads from the apiserver, every error naming what was being read. Lists go page by page, as kubectl's do,
//! so a cluster of many thousand Pods or leases is not one huge response.

use std::fmt::Debug;

use kube::Resource;
use kube::api::{Api, ListParams};
use serde::de::DeserializeOwned;

use super::error::Error;

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
