//! Live reads from the apiserver that confirm a deletion the caches suggest: a lease is deleted only when the
//! apiserver itself shows that no Pod holds it (and, for a StatefulSet lease, what its StatefulSet wants).

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};

use super::decide::Observed;
use super::error::Error;
use super::facts::{ClaimFacts, PodFacts, SetFacts};
use super::owners::{pod_token, set_member};
use crate::api::{IPAMClaim, IPLease, OwnerKind, claim_label};

/// Page size when listing a namespace's Pods for a lease without a Pod name.
const PAGE: u32 = 500;

/// The same observation as the caches give, read live. `pod_deleted` and the age carry over from the cached
/// observation (they are not the apiserver's to tell); a deleted Pod's name tells the read where to look.
pub(crate) async fn observe(
    client: &Client,
    lease: &IPLease,
    cached: &Observed,
) -> Result<Observed, Error> {
    let set = match set_member(lease) {
        Some((name, _)) => statefulset(client, lease, &name).await?,
        None => None,
    };
    if lease.spec.owner_kind == OwnerKind::IPAMClaim {
        return Ok(Observed {
            claim: claim(client, lease).await?,
            ..cached.clone()
        });
    }
    Ok(Observed {
        pod: pod(client, lease, cached.pod_deleted.as_deref()).await?,
        set,
        pod_deleted: cached.pod_deleted.clone(),
        age: cached.age,
        claim: ClaimFacts::default(),
    })
}

/// A claim's lease: whether its IPAMClaim exists (with the UID the lease was reserved under) and which Pods
/// labelled as using it have not finished. A missing IPAMClaim CRD reads as no claim.
async fn claim(client: &Client, lease: &IPLease) -> Result<ClaimFacts, Error> {
    let ns = &lease.spec.pod_namespace;
    let name = lease.spec.claim.as_deref().unwrap_or_default();
    let found = match Api::<IPAMClaim>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await
    {
        Err(kube::Error::Api(s)) if s.code == 404 => None,
        other => other.map_err(read_error(lease, format!("ipamclaim {ns}/{name}")))?,
    };
    let exists = found.is_some_and(|c| c.uid().as_deref() == Some(lease.spec.token.as_str()));
    let mut users = Vec::new();
    if let Some(label) = claim_label(name).filter(|_| !exists) {
        let pods = Api::<Pod>::namespaced(client.clone(), ns)
            .list(&ListParams::default().labels(&format!("{label}={}", lease.spec.token)))
            .await
            .map_err(read_error(lease, format!("pods of ipamclaim {ns}/{name}")))?;
        users = pods
            .items
            .iter()
            .filter(|p| PodFacts::of(p).finished.is_none())
            .map(|p| format!("{ns}/{}", p.name_any()))
            .collect();
    }
    Ok(ClaimFacts { exists, users })
}

fn read_error(lease: &IPLease, object: String) -> impl FnOnce(kube::Error) -> Error {
    let lease = lease.name_any();
    move |e| Error::Read {
        lease,
        object,
        source: Box::new(e),
    }
}

/// The Pod the lease names; without a name, the Pod of the name that the cache saw carrying the token and
/// then deleted (`deleted`); without either, the Pod in its namespace that carries its token.
///
/// A token is carried by one Pod only (admission refuses a Pod that carries another Pod's token, and the
/// token cannot be changed afterwards), so once that Pod's name shows no Pod, or one with another token, no
/// Pod carries the token: one GET instead of listing the namespace.
async fn pod(
    client: &Client,
    lease: &IPLease,
    deleted: Option<&str>,
) -> Result<Option<PodFacts>, Error> {
    let ns = &lease.spec.pod_namespace;
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    if let Some(name) = lease.spec.pod_name.as_deref().or(deleted) {
        let found = api
            .get_opt(name)
            .await
            .map_err(read_error(lease, format!("pod {ns}/{name}")))?;
        return Ok(found.as_ref().map(PodFacts::of));
    }
    let mut params = ListParams::default().limit(PAGE);
    loop {
        let page = api
            .list(&params)
            .await
            .map_err(read_error(lease, format!("pods in namespace {ns}")))?;
        if let Some(p) = page
            .items
            .iter()
            .find(|p| pod_token(p) == Some(lease.spec.token.as_str()))
        {
            return Ok(Some(PodFacts::of(p)));
        }
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => return Ok(None),
        }
    }
}

async fn statefulset(
    client: &Client,
    lease: &IPLease,
    name: &str,
) -> Result<Option<SetFacts>, Error> {
    let ns = &lease.spec.pod_namespace;
    let found = Api::<StatefulSet>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await
        .map_err(read_error(lease, format!("statefulset {ns}/{name}")))?;
    Ok(found.as_ref().map(SetFacts::of))
}
