//! `orphans`: leases whose holder is gone, and what the controller will do with each and when. Decided by
//! the controller's own rules (`controller::snapshot`) from one listing of the cluster: a reservation no Pod
//! carries (reclaimed once `--reclaim-after` has passed since it was made), a bound lease whose Pod is gone, a
//! finished Pod's lease, a StatefulSet lease its StatefulSet no longer wants, a claim's lease whose claim is
//! gone (released once no Pod uses it). A lease the controller would release at once is listed only while
//! no controller runs or it lags: seeing one is worth a look at the leader.

use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};
use serde::Serialize;

use super::Outcome;
use super::age::{age, human};
use super::cli::{Format, OrphansArgs};
use super::error::Error;
use super::fetch::list;
use super::output::format;
use super::table::Row;
use crate::api::{IPAMClaim, IPLease, LeasePhase, OwnerKind};
use crate::controller::decide::{Decision, Observed};
use crate::controller::snapshot::Snapshot;

/// What the controller will do with an orphaned lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub(crate) enum Action {
    /// Delete it at once: its holder is gone or finished.
    Release,
    /// Delete it when its reclaim window ends: a reservation no Pod carries.
    Reclaim,
    /// Delete it once the Pods still using its deleted claim are gone.
    Deferred,
}

#[derive(Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Orphan {
    pub lease: String,
    pub ip: String,
    pub subnet: String,
    pub namespace: String,
    /// `pod/<name>`, `ipamclaim/<name>`, or `reservation/<token>` for a Pod created with generateName.
    pub holder: String,
    pub owner_kind: OwnerKind,
    pub phase: LeasePhase,
    pub token: String,
    pub action: Action,
    /// When the controller acts (RFC 3339); absent for a deferred release.
    pub at: Option<String>,
    /// `now`, `in 45s`, or the Pods a deferred release waits for.
    pub when: String,
    pub reason: String,
    pub created: Option<String>,
    #[serde(skip)]
    pub age: Option<String>,
}

impl Row for Orphan {
    const HEADERS: &'static [&'static str] = &[
        "NAMESPACE",
        "LEASE",
        "HOLDER",
        "PHASE",
        "AGE",
        "ACTION",
        "WHEN",
        "REASON",
    ];
    const WIDE: &'static [&'static str] = &["IP", "SUBNET", "AT", "TOKEN"];

    fn cells(&self) -> Vec<Option<String>> {
        vec![
            Some(self.namespace.clone()),
            Some(self.lease.clone()),
            Some(self.holder.clone()),
            Some(format!("{:?}", self.phase)),
            self.age.clone(),
            Some(format!("{:?}", self.action)),
            Some(self.when.clone()),
            Some(self.reason.clone()),
            Some(self.ip.clone()),
            Some(self.subnet.clone()),
            self.at.clone(),
            Some(self.token.clone()),
        ]
    }
}

fn holder(lease: &IPLease) -> String {
    let s = &lease.spec;
    match (&s.claim, &s.pod_name) {
        (Some(claim), _) if s.owner_kind == OwnerKind::IPAMClaim => format!("ipamclaim/{claim}"),
        (_, Some(pod)) => format!("pod/{pod}"),
        _ => format!("reservation/{}", s.token),
    }
}

/// The orphan `lease` is, given the controller's decision and what it observed; `None` for a held lease.
pub(crate) fn classify(
    lease: &IPLease,
    decision: &Decision,
    seen: &Observed,
    now: Timestamp,
) -> Option<Orphan> {
    let s = &lease.spec;
    let waiting = || {
        format!(
            "reserved {} ago and no Pod in namespace {} carries reservation {}",
            human(seen.age),
            s.pod_namespace,
            s.token
        )
    };
    let (action, wait, when, reason) = match decision {
        Decision::Keep | Decision::Bind(_) => {
            let deleted_claim = s.owner_kind == OwnerKind::IPAMClaim && !seen.claim.exists;
            if !deleted_claim || seen.claim.users.is_empty() {
                return None;
            }
            let users = seen.claim.users.join(", ");
            (
                Action::Deferred,
                None,
                format!("after {users} end"),
                format!(
                    "ipamclaim {}/{} no longer exists; its Pods still use the addresses",
                    s.pod_namespace,
                    s.claim.as_deref().unwrap_or_default()
                ),
            )
        }
        Decision::Release(why) => (
            Action::Release,
            Some(Duration::ZERO),
            "now".into(),
            why.to_string(),
        ),
        Decision::Reclaim { .. } => (
            Action::Reclaim,
            Some(Duration::ZERO),
            "now".into(),
            waiting(),
        ),
        Decision::RecheckIn(d) => (
            Action::Reclaim,
            Some(*d),
            format!("in {}", human(*d)),
            waiting(),
        ),
    };
    let at = wait
        .and_then(|d| SignedDuration::try_from(d).ok())
        .and_then(|d| now.checked_add(d).ok())
        .map(|t| t.to_string());
    Some(Orphan {
        lease: lease.name_any(),
        ip: s.ip.clone(),
        subnet: s.subnet.clone(),
        namespace: s.pod_namespace.clone(),
        holder: holder(lease),
        owner_kind: s.owner_kind,
        phase: s.phase,
        token: s.token.clone(),
        action,
        at,
        when,
        reason,
        created: lease.creation_timestamp().map(|t| t.0.to_string()),
        age: age(lease.creation_timestamp().as_ref(), now),
    })
}

/// The orphans among `leases` (sorted by namespace and lease name).
pub(crate) fn orphans(
    leases: &[IPLease],
    snapshot: &Snapshot,
    now: Timestamp,
    reclaim_after: Duration,
) -> Vec<Orphan> {
    let mut out: Vec<Orphan> = leases
        .iter()
        .filter_map(|l| {
            let (decision, seen) = snapshot.decide(l, now, reclaim_after);
            classify(l, &decision, &seen, now)
        })
        .collect();
    out.sort_by(|a, b| (&a.namespace, &a.lease).cmp(&(&b.namespace, &b.lease)));
    out
}

pub(crate) async fn run(
    client: &Client,
    namespace: Option<&str>,
    args: &OrphansArgs,
    output: Format,
    now: Timestamp,
) -> Result<Outcome, Error> {
    let scope = namespace.map_or("in all namespaces".to_string(), |ns| {
        format!("in namespace {ns}")
    });
    let mut leases = list(
        &Api::<IPLease>::all(client.clone()),
        ListParams::default(),
        "listing IPLeases",
        false,
    )
    .await?;
    if let Some(ns) = namespace {
        leases.retain(|l| l.spec.pod_namespace == ns);
    }
    let (pods, sets, claims): (Api<Pod>, Api<StatefulSet>, Api<IPAMClaim>) = match namespace {
        Some(ns) => (
            Api::namespaced(client.clone(), ns),
            Api::namespaced(client.clone(), ns),
            Api::namespaced(client.clone(), ns),
        ),
        None => (
            Api::all(client.clone()),
            Api::all(client.clone()),
            Api::all(client.clone()),
        ),
    };
    let pods = list(
        &pods,
        ListParams::default(),
        &format!("listing pods {scope}"),
        false,
    )
    .await?;
    let sets = list(
        &sets,
        ListParams::default(),
        &format!("listing statefulsets {scope}"),
        false,
    )
    .await?;
    // The IPAMClaim CRD is the cluster's, not nadipam's: without it there are no claims.
    let claims = list(
        &claims,
        ListParams::default(),
        &format!("listing ipamclaims {scope}"),
        true,
    )
    .await?;
    let snapshot = Snapshot::new(&pods, &sets, &claims);
    let rows = orphans(
        &leases,
        &snapshot,
        now,
        Duration::from_secs(args.reclaim_after),
    );
    let mut outcome = Outcome::print(format(&rows, output)?);
    if rows.is_empty() {
        outcome
            .notes
            .push(format!("No orphaned leases found {scope}."));
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::decide::tests::lease;
    use crate::kubectl::table::render;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(secs).unwrap()
    }

    fn made(mut l: IPLease, name: &str, secs: i64) -> IPLease {
        l.metadata.name = Some(name.into());
        l.metadata.creation_timestamp = Some(Time(at(secs)));
        l
    }

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn orphans_are_classified_with_the_controllers_rules() {
        use LeasePhase::{Bound, Reserved};
        use OwnerKind::{IPAMClaim as Claim, Pod as PodOwned, StatefulSet as Set};
        let mut claimed = lease(Claim, Reserved, None, None);
        claimed.spec.claim = Some("vm-a".into());
        claimed.spec.token = "c1".into();
        let mut kept_claim = claimed.clone();
        kept_claim.spec.claim = Some("vm-b".into());
        kept_claim.spec.token = "c2".into();
        let mut held = lease(PodOwned, Reserved, None, None);
        held.spec.token = "live".into();
        let leases = [
            made(lease(PodOwned, Reserved, None, None), "s.a-fresh", 980),
            made(lease(PodOwned, Reserved, None, None), "s.b-old", 0),
            made(
                lease(PodOwned, Bound, Some("web-x"), Some("u1")),
                "s.c-bound",
                0,
            ),
            made(lease(Set, Reserved, Some("db-1"), None), "s.d-set", 0),
            made(claimed, "s.e-claim", 0),
            made(held, "s.f-held", 0),
            made(kept_claim, "s.g-claim-in-use", 0),
        ];
        let pods = [
            pod(
                serde_json::json!({"metadata": {"name": "live", "namespace": "ns", "uid": "u9",
                "annotations": {"nadipam.io/reservation": "live"}}}),
            ),
            pod(
                serde_json::json!({"metadata": {"name": "virt-b", "namespace": "ns", "uid": "u8",
                "labels": {"ipamclaims.nadipam.io/vm-b": "c2"}}, "status": {"phase": "Running"}}),
            ),
        ];
        let snap = Snapshot::new(&pods, &[], &[]);
        let rows = orphans(&leases, &snap, at(1000), Duration::from_secs(70));
        assert_eq!(
            render(&rows, false),
            "NAMESPACE   LEASE              HOLDER           PHASE      AGE   ACTION     WHEN                  REASON\n\
             ns          s.a-fresh          reservation/t1   Reserved   20s   Reclaim    in 51s                reserved 19s ago and no Pod in namespace ns carries reservation t1\n\
             ns          s.b-old            reservation/t1   Reserved   16m   Reclaim    now                   reserved 16m ago and no Pod in namespace ns carries reservation t1\n\
             ns          s.c-bound          pod/web-x        Bound      16m   Release    now                   pod ns/web-x no longer exists\n\
             ns          s.d-set            pod/db-1         Reserved   16m   Release    now                   statefulset ns/db no longer exists\n\
             ns          s.e-claim          ipamclaim/vm-a   Reserved   16m   Release    now                   ipamclaim ns/vm-a no longer exists and no Pod uses its addresses\n\
             ns          s.g-claim-in-use   ipamclaim/vm-b   Reserved   16m   Deferred   after ns/virt-b end   ipamclaim ns/vm-b no longer exists; its Pods still use the addresses\n"
        );
        assert_eq!(rows[0].at.as_deref(), Some("1970-01-01T00:17:31Z"));
        assert_eq!(rows[5].at, None);
    }
}
