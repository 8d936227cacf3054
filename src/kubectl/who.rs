//! `who <ip>`: the lease(s) holding an address and who holds each (the Pod carrying its token, found by name
//! or, for a Pod created with generateName, by its `nadipam.io/reservation` label; the IPAMClaim; the
//! StatefulSet). An address no lease holds is answered on stderr, saying why it is not taken: free in the
//! Subnet or in which IPPool, excluded, a gateway, or in no Subnet at all.

use std::net::IpAddr;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};
use serde::Serialize;

use super::Outcome;
use super::age;
use super::cli::{Format, WhoArgs};
use super::error::{EXIT_NOT_HELD, Error};
use super::fetch::{self, get, list};
use super::output::format;
use super::table::Row;
use crate::alloc::{AllocError, Allocator, IpRange, parse_entries};
use crate::annotations::keys;
use crate::api::{IPLease, IPPool, LeasePhase, OwnerKind, Subnet, claim_label, lease_name};
use crate::cache::layout;
use crate::webhook::pool_subnet::pool_subnet;

/// One lease holding the address.
#[derive(Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Holder {
    pub lease: String,
    pub ip: String,
    pub subnet: String,
    pub network: String,
    pub interface: Option<String>,
    pub mac: Option<String>,
    pub pool: Option<String>,
    /// The holder's namespace (the Pod's, or the IPAMClaim's).
    pub namespace: String,
    /// Pods holding the address now: the one carrying the token, or those using the claim.
    pub pods: Vec<String>,
    /// The Pod the lease names, when no Pod holding it exists any more.
    pub gone_pod: Option<String>,
    pub claim: Option<String>,
    pub stateful_set: Option<String>,
    pub owner_kind: OwnerKind,
    pub phase: LeasePhase,
    pub token: String,
    pub created: Option<String>,
    #[serde(skip)]
    pub age: Option<String>,
}

impl Row for Holder {
    const HEADERS: &'static [&'static str] = &[
        "IP",
        "SUBNET",
        "NETWORK",
        "POD",
        "CLAIM",
        "STATEFULSET",
        "PHASE",
        "AGE",
    ];
    const WIDE: &'static [&'static str] = &["INTERFACE", "MAC", "POOL", "TOKEN", "LEASE"];

    fn cells(&self) -> Vec<Option<String>> {
        let ns = |n: &str| format!("{}/{n}", self.namespace);
        let pod = if self.pods.is_empty() {
            self.gone_pod
                .as_deref()
                .map(|p| format!("{} (gone)", ns(p)))
        } else {
            Some(
                self.pods
                    .iter()
                    .map(|p| ns(p))
                    .collect::<Vec<_>>()
                    .join(","),
            )
        };
        vec![
            Some(self.ip.clone()),
            Some(self.subnet.clone()),
            Some(self.network.clone()),
            pod,
            self.claim.as_deref().map(ns),
            self.stateful_set.as_deref().map(ns),
            Some(format!("{:?}", self.phase)),
            self.age.clone(),
            self.interface.clone(),
            self.mac.clone(),
            self.pool.clone(),
            Some(self.token.clone()),
            Some(self.lease.clone()),
        ]
    }
}

impl Holder {
    /// The row for `lease`, held now by `pods` (names in its namespace).
    pub(crate) fn of(lease: &IPLease, pods: Vec<String>, now: Timestamp) -> Holder {
        let s = &lease.spec;
        let set = s
            .pod_name
            .as_deref()
            .filter(|_| s.owner_kind == OwnerKind::StatefulSet)
            .and_then(|p| p.rsplit_once('-'))
            .map(|(set, _)| set.to_string());
        let gone_pod = s.pod_name.clone().filter(|_| pods.is_empty());
        Holder {
            lease: lease.name_any(),
            ip: s.ip.clone(),
            subnet: s.subnet.clone(),
            network: s.network.clone(),
            interface: s.interface.clone(),
            mac: s.mac.clone(),
            pool: s.pool.clone(),
            namespace: s.pod_namespace.clone(),
            pods,
            gone_pod,
            claim: s.claim.clone(),
            stateful_set: set,
            owner_kind: s.owner_kind,
            phase: s.phase,
            token: s.token.clone(),
            created: lease.creation_timestamp().map(|t| t.0.to_string()),
            age: age::age(lease.creation_timestamp().as_ref(), now),
        }
    }
}

/// Why no lease holds `ip`, one line per Subnet whose CIDR contains it (`subnets` are those asked about).
pub(crate) fn not_held(ip: IpAddr, subnets: &[Arc<Subnet>], pools: &[IPPool]) -> Vec<String> {
    let mut lines = Vec::new();
    for subnet in subnets {
        let Ok(layout) = layout(subnet) else {
            continue;
        };
        if !layout.contains(ip) {
            continue;
        }
        let name = layout.describe();
        let line = match Allocator::new(&layout).check(ip) {
            Err(AllocError::NetworkOrBroadcast { what, .. }) => {
                format!("{ip} is the {what} of Subnet {name}: never handed out")
            }
            Err(AllocError::Gateway { .. }) => {
                format!("{ip} is the gateway of Subnet {name}: never handed out")
            }
            Err(AllocError::Excluded { entry, .. }) => {
                format!("{ip} is excluded from Subnet {name} by its excludeIps entry {entry}")
            }
            _ => in_pools(ip, subnet, subnets, pools).unwrap_or_else(|| {
                format!(
                    "{ip} is free in Subnet {name}: no IPLease holds it, and no IPPool keeps it"
                )
            }),
        };
        lines.push(line);
    }
    if lines.is_empty() {
        let names: Vec<String> = subnets
            .iter()
            .map(|s| format!("{} ({})", s.name_any(), s.spec.cidr_block))
            .collect();
        lines.push(match names.as_slice() {
            [] => format!("{ip} is in no Subnet: there are none"),
            [one] if subnets.len() == 1 => format!("{ip} is not in Subnet {one}"),
            _ => format!("{ip} is in no Subnet (Subnets: {})", names.join(", ")),
        });
    }
    lines
}

/// The IPPool of `subnet` that keeps `ip`, worded.
fn in_pools(
    ip: IpAddr,
    subnet: &Subnet,
    subnets: &[Arc<Subnet>],
    pools: &[IPPool],
) -> Option<String> {
    let name = subnet.name_any();
    pools
        .iter()
        .filter(|p| pool_subnet(p, subnets).is_ok_and(|s| s.name_any() == name))
        .find_map(|p| {
            let inside = parse_entries(&p.spec.ips)
                .ok()?
                .iter()
                .any(|r: &IpRange| r.contains(ip));
            let gateway = p.gateways().ok()?.contains(&ip);
            let pool = p.name_any();
            match (inside, gateway) {
                (_, true) => Some(format!(
                    "{ip} is the gateway of IPPool {pool} (Subnet {name}): never handed out"
                )),
                (true, false) => Some(format!(
                    "{ip} is free in IPPool {pool} (Subnet {name}): no IPLease holds it; only Pods naming {pool} get it"
                )),
                _ => None,
            }
        })
}

/// The Pods holding `lease` now: those using its claim, the Pod it names carrying its token (or, bound, with
/// its UID), or the Pod of its namespace labelled with its token.
async fn holders(client: &Client, lease: &IPLease) -> Result<Vec<String>, Error> {
    let s = &lease.spec;
    let api: Api<Pod> = Api::namespaced(client.clone(), &s.pod_namespace);
    let labelled = |selector: String| {
        let api = api.clone();
        async move {
            let doing = format!(
                "listing pods in namespace {} with label {selector}",
                lease.spec.pod_namespace
            );
            let pods = list(&api, ListParams::default().labels(&selector), &doing, false).await?;
            Ok::<_, Error>(pods.iter().map(|p| p.name_any()).collect::<Vec<_>>())
        }
    };
    if s.owner_kind == OwnerKind::IPAMClaim {
        return match s.claim.as_deref().and_then(claim_label) {
            Some(label) => labelled(format!("{label}={}", s.token)).await,
            None => Ok(Vec::new()),
        };
    }
    match s.pod_name.as_deref() {
        Some(name) => {
            let doing = format!("reading pod {}/{name}", s.pod_namespace);
            let pod = get(&api, name, &doing).await?;
            let carries = pod.as_ref().is_some_and(|p| {
                p.annotations().get(keys::RESERVATION) == Some(&s.token)
                    || (s.phase == LeasePhase::Bound && p.uid() == s.pod_uid)
            });
            Ok(if carries {
                vec![name.to_string()]
            } else {
                Vec::new()
            })
        }
        None => labelled(format!("{}={}", keys::RESERVATION, s.token)).await,
    }
}

pub(crate) async fn run(
    client: &Client,
    args: &WhoArgs,
    output: Format,
    now: Timestamp,
) -> Result<Outcome, Error> {
    let ip = args.ip;
    let subnets = fetch::subnets(client).await?;
    let pools = fetch::pools(client).await?;
    // The Subnets asked about: the one named, else every Subnet whose CIDR holds the address.
    let names: Vec<String> = match &args.subnet {
        Some(name) => vec![name.clone()],
        None => subnets
            .iter()
            .filter(|s| layout(s).is_ok_and(|l| l.contains(ip)))
            .map(|s| s.name_any())
            .collect(),
    };
    let leases_api: Api<IPLease> = Api::all(client.clone());
    let mut rows = Vec::new();
    for name in &names {
        let lease_name = lease_name(name, ip);
        let doing = format!("reading IPLease {lease_name}");
        if let Some(lease) = get(&leases_api, &lease_name, &doing).await? {
            let pods = holders(client, &lease).await?;
            rows.push(Holder::of(&lease, pods, now));
        }
    }
    if !rows.is_empty() {
        return Ok(Outcome::print(format(&rows, output)?));
    }
    let asked: Vec<Arc<Subnet>> = match &args.subnet {
        Some(name) => {
            let found: Vec<Arc<Subnet>> = subnets
                .iter()
                .filter(|s| s.name_any() == *name)
                .cloned()
                .collect();
            if found.is_empty() {
                return Err(fetch::no_subnet(name));
            }
            found
        }
        None => subnets.clone(),
    };
    let mut outcome = Outcome::print(format::<Holder>(&[], output)?);
    outcome.notes = not_held(ip, &asked, &pools);
    outcome.code = EXIT_NOT_HELD;
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kubectl::table::render;

    fn subnet(name: &str, cidr: &str, gw: Option<&str>, exclude: &[&str]) -> Arc<Subnet> {
        Arc::new(
            serde_json::from_value(serde_json::json!({
                "apiVersion": "nadipam.io/v1", "kind": "Subnet", "metadata": {"name": name},
                "spec": {"cidrBlock": cidr, "provider": format!("{name}.ns"), "gateway": gw, "excludeIps": exclude}
            }))
            .unwrap(),
        )
    }

    fn pool(name: &str, subnet: &str, ips: &[&str], gw: Option<&str>) -> IPPool {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "nadipam.io/v1", "kind": "IPPool", "metadata": {"name": name},
            "spec": {"subnet": subnet, "ips": ips, "gateway": gw}
        }))
        .unwrap()
    }

    #[test]
    fn a_free_address_says_why_it_is_not_taken() {
        let subnets = [subnet("s", "10.0.0.0/24", None, &["10.0.0.2..10.0.0.9"])];
        let pools = [pool(
            "p",
            "s",
            &["10.0.0.100-10.0.0.110"],
            Some("10.0.0.110"),
        )];
        let why = |ip: &str| not_held(ip.parse().unwrap(), &subnets, &pools).join("\n");
        assert_eq!(
            why("10.0.0.50"),
            "10.0.0.50 is free in Subnet s (10.0.0.0/24): no IPLease holds it, and no IPPool keeps it"
        );
        assert_eq!(
            why("10.0.0.5"),
            "10.0.0.5 is excluded from Subnet s (10.0.0.0/24) by its excludeIps entry 10.0.0.2..10.0.0.9"
        );
        assert_eq!(
            why("10.0.0.1"),
            "10.0.0.1 is the gateway of Subnet s (10.0.0.0/24): never handed out"
        );
        assert_eq!(
            why("10.0.0.255"),
            "10.0.0.255 is the broadcast address of Subnet s (10.0.0.0/24): never handed out"
        );
        assert_eq!(
            why("10.0.0.101"),
            "10.0.0.101 is free in IPPool p (Subnet s): no IPLease holds it; only Pods naming p get it"
        );
        assert_eq!(
            why("10.0.0.110"),
            "10.0.0.110 is the gateway of IPPool p (Subnet s): never handed out"
        );
        assert_eq!(why("10.1.0.1"), "10.1.0.1 is not in Subnet s (10.0.0.0/24)");
        let two = [subnets[0].clone(), subnet("t", "fd00::/64", None, &[])];
        assert_eq!(
            not_held("10.1.0.1".parse().unwrap(), &two, &[]),
            ["10.1.0.1 is in no Subnet (Subnets: s (10.0.0.0/24), t (fd00::/64))"]
        );
        assert_eq!(
            not_held("10.1.0.1".parse().unwrap(), &[], &[]),
            ["10.1.0.1 is in no Subnet: there are none"]
        );
    }

    #[test]
    fn holders_read_as_kubectl_rows() {
        let mut l = crate::controller::decide::tests::lease(
            OwnerKind::StatefulSet,
            LeasePhase::Reserved,
            Some("web-2"),
            None,
        );
        l.metadata.creation_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            Timestamp::from_second(0).unwrap(),
        ));
        let now = Timestamp::from_second(75).unwrap();
        let held = Holder::of(&l, vec!["web-2".into()], now);
        let gone = Holder::of(&l, Vec::new(), now);
        assert_eq!(
            render(&[held, gone], false),
            "IP         SUBNET   NETWORK   POD               CLAIM    STATEFULSET   PHASE      AGE\n\
             10.0.0.5   s        ns/n      ns/web-2          <none>   ns/web        Reserved   75s\n\
             10.0.0.5   s        ns/n      ns/web-2 (gone)   <none>   ns/web        Reserved   75s\n"
        );
    }
}
