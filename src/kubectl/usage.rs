//! `usage [subnet...]`: per Subnet and IPPool, the addresses it may hand out, those in use, those free, and
//! the lowest free ones. Computed by the webhook's own allocator from the Subnet's spec and its leases, so
//! excludeIps, gateways and the addresses IPPools keep count as the webhook counts them; totals are those of
//! `kubectl get subnets` and `kubectl get ippools` (the controller's status arithmetic).

use std::net::IpAddr;

use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};
use rand::SeedableRng;
use serde::Serialize;

use super::Outcome;
use super::cli::{Format, UsageArgs};
use super::error::Error;
use super::fetch::{self, list};
use super::output::format;
use super::table::Row;
use crate::alloc::{Allocator, IpRange, Strategy, parse_entries};
use crate::api::{IPLease, IPPool, Subnet};
use crate::cache::layout;
use crate::controller::status::pool_status;
use crate::webhook::pool_subnet::pool_subnet;

/// One Subnet or IPPool.
#[derive(Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Usage {
    /// `Subnet` or `IPPool`.
    pub kind: &'static str,
    pub name: String,
    pub subnet: String,
    /// Addresses it may hand out: the CIDR(s) (an IPPool: its ranges inside them) without network, broadcast,
    /// gateway and excluded addresses.
    pub total: u128,
    pub used: u128,
    pub free: u128,
    /// The lowest free addresses per family: for a Subnet, those a Pod naming no IPPool can get (outside every
    /// IPPool); for an IPPool, those a Pod naming it can get.
    pub next: Vec<IpAddr>,
    /// cidrBlock, or the pool's ips.
    pub ranges: String,
    pub gateway: Option<String>,
    /// Why the Subnet or IPPool cannot hand anything out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

impl Row for Usage {
    const HEADERS: &'static [&'static str] = &["NAME", "TOTAL", "USED", "FREE", "NEXT FREE"];
    const WIDE: &'static [&'static str] = &["SUBNET", "RANGES", "GATEWAY"];

    fn cells(&self) -> Vec<Option<String>> {
        let next: Vec<String> = self.next.iter().map(IpAddr::to_string).collect();
        vec![
            Some(format!("{}/{}", self.kind.to_lowercase(), self.name)),
            Some(self.total.to_string()),
            Some(self.used.to_string()),
            Some(self.free.to_string()),
            Some(next.join(",")),
            Some(self.subnet.clone()),
            Some(self.ranges.clone()),
            self.gateway.clone(),
        ]
    }
}

/// An IPPool's ranges and gateways.
type PoolParts = (Vec<IpRange>, Vec<IpAddr>);

/// The rows of `subnet` and of `pools` (its IPPools), from `leases` (its leases), with `next` free addresses
/// per family.
pub(crate) fn usage(
    subnet: &Subnet,
    pools: &[&IPPool],
    leases: &[&IPLease],
    next: usize,
) -> Vec<Usage> {
    let name = subnet.name_any();
    let row = |kind, pool: Option<&IPPool>| Usage {
        kind,
        name: pool.map_or_else(|| name.clone(), |p| p.name_any()),
        subnet: name.clone(),
        total: 0,
        used: 0,
        free: 0,
        next: Vec::new(),
        ranges: pool.map_or_else(|| subnet.spec.cidr_block.clone(), |p| p.spec.ips.join(",")),
        gateway: pool.map_or_else(|| subnet.spec.gateway.clone(), |p| p.spec.gateway.clone()),
        problem: None,
    };
    let layout = match layout(subnet) {
        Ok(l) => l,
        Err(e) => {
            let mut rows = vec![Usage {
                used: leases.len() as u128,
                problem: Some(e.to_string()),
                ..row("Subnet", None)
            }];
            rows.extend(pools.iter().map(|p| Usage {
                problem: Some(format!("its Subnet {name} cannot be used")),
                ..row("IPPool", Some(p))
            }));
            return rows;
        }
    };
    // The webhook's free set: every lease taken; a lease on an address no longer handed out (excluded since)
    // is not counted, as in the Subnet's status.
    let mut alloc = Allocator::new(&layout);
    let ips: Vec<IpAddr> = leases
        .iter()
        .filter_map(|l| l.spec.ip.parse().ok())
        .collect();
    for ip in &ips {
        let _ = alloc.reserve(*ip);
    }
    // Sequential picks are deterministic; the generator is only the API's.
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    let mut parsed: Vec<(&IPPool, Result<PoolParts, String>)> = Vec::new();
    for p in pools {
        let ranges = parse_entries(&p.spec.ips).map_err(|e| e.to_string());
        let gateways = p.gateways();
        parsed.push((p, ranges.and_then(|r| gateways.map(|g| (r, g)))));
    }
    // What the Subnet hands a Pod naming no IPPool: nothing an IPPool keeps, nor a pool's gateway.
    let kept: Vec<IpRange> = parsed
        .iter()
        .filter_map(|(_, r)| r.as_ref().ok())
        .flat_map(|(ranges, gws)| {
            ranges
                .iter()
                .copied()
                .chain(gws.iter().copied().map(IpRange::single))
        })
        .collect();
    let counts = alloc.counts();
    let mut rows = vec![Usage {
        used: counts.v4_using + counts.v6_using,
        free: counts.v4_available + counts.v6_available,
        total: counts.v4_using + counts.v6_using + counts.v4_available + counts.v6_available,
        next: lowest(&alloc, next, |a, f| {
            a.pick_avoiding(f, &kept, Strategy::Sequential, &mut rng)
        }),
        ..row("Subnet", None)
    }];
    for (pool, parsed) in parsed {
        let base = row("IPPool", Some(pool));
        let (ranges, gateways) = match parsed {
            Ok(p) => p,
            Err(problem) => {
                rows.push(Usage {
                    problem: Some(problem),
                    ..base
                });
                continue;
            }
        };
        let total = u128::try_from(pool_status(pool, Some(subnet), 0).total_ip_count).unwrap_or(0);
        let used = ips
            .iter()
            .filter(|ip| {
                layout.contains(**ip)
                    && !layout.is_reserved(**ip)
                    && !gateways.contains(ip)
                    && ranges.iter().any(|r| r.contains(**ip))
            })
            .count() as u128;
        let avoid: Vec<IpRange> = gateways.iter().copied().map(IpRange::single).collect();
        rows.push(Usage {
            total,
            used,
            free: total.saturating_sub(used),
            next: lowest(&alloc, next, |a, f| {
                a.pick_in_avoiding(&ranges, &avoid, f, Strategy::Sequential, &mut rng)
            }),
            ..base
        });
    }
    rows
}

/// Up to `n` addresses per family that `pick` takes in turn from a copy of `alloc`.
fn lowest<E>(
    alloc: &Allocator,
    n: usize,
    mut pick: impl FnMut(&mut Allocator, crate::alloc::Family) -> Result<IpAddr, E>,
) -> Vec<IpAddr> {
    let mut a = alloc.clone();
    let mut out = Vec::new();
    for &family in alloc.families() {
        for _ in 0..n {
            match pick(&mut a, family) {
                Ok(ip) => out.push(ip),
                Err(_) => break,
            }
        }
    }
    out
}

pub(crate) async fn run(
    client: &Client,
    args: &UsageArgs,
    output: Format,
) -> Result<Outcome, Error> {
    let subnets = fetch::subnets(client).await?;
    if let Some(name) = args
        .subnets
        .iter()
        .find(|n| !subnets.iter().any(|s| s.name_any() == **n))
    {
        return Err(fetch::no_subnet(name));
    }
    let pools = fetch::pools(client).await?;
    let leases_api: Api<IPLease> = Api::all(client.clone());
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    for subnet in &subnets {
        let name = subnet.name_any();
        if !args.subnets.is_empty() && !args.subnets.contains(&name) {
            continue;
        }
        let selector = crate::api::subnet_selector(&name);
        let leases = list(
            &leases_api,
            ListParams::default().labels(&selector),
            &format!("listing IPLeases with label {selector}"),
            false,
        )
        .await?;
        let leases: Vec<&IPLease> = leases.iter().filter(|l| l.spec.subnet == name).collect();
        let mine: Vec<&IPPool> = pools
            .iter()
            .filter(|p| pool_subnet(p, &subnets).is_ok_and(|s| s.name_any() == name))
            .collect();
        let got = usage(subnet, &mine, &leases, args.next);
        notes.extend(got.iter().filter_map(|u| {
            u.problem
                .as_ref()
                .map(|p| format!("warning: {} {}: {p}", u.kind, u.name))
        }));
        rows.extend(got);
    }
    if args.subnets.is_empty() {
        for p in &pools {
            if let Err(e) = pool_subnet(p, &subnets) {
                notes.push(format!("warning: {e}"));
            }
        }
    }
    if rows.is_empty() {
        notes.push("No Subnets found.".into());
    }
    let mut outcome = Outcome::print(format(&rows, output)?);
    outcome.notes = notes;
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{LeasePhase, OwnerKind};
    use crate::controller::decide::tests::lease;
    use crate::kubectl::table::render;

    fn subnet(cidr: &str, gw: Option<&str>, exclude: &[&str]) -> Subnet {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "nadipam.io/v1", "kind": "Subnet", "metadata": {"name": "s"},
            "spec": {"cidrBlock": cidr, "provider": "n.ns", "gateway": gw, "excludeIps": exclude}
        }))
        .unwrap()
    }

    fn pool(name: &str, ips: &[&str], gw: Option<&str>) -> IPPool {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "nadipam.io/v1", "kind": "IPPool", "metadata": {"name": name},
            "spec": {"subnet": "s", "ips": ips, "gateway": gw}
        }))
        .unwrap()
    }

    fn at(ip: &str) -> IPLease {
        let mut l = lease(OwnerKind::Pod, LeasePhase::Reserved, None, None);
        l.spec.ip = ip.into();
        l
    }

    #[test]
    fn next_free_skips_gateways_excludes_pools_and_leases() {
        // /28: .1 gateway, .2-.4 excluded, .5 and .7 leased, pool .8-.11 with gateway .11, one lease .9 in it.
        let s = subnet("10.0.0.0/28", None, &["10.0.0.2..10.0.0.4"]);
        let p = pool("p", &["10.0.0.8-10.0.0.11"], Some("10.0.0.11"));
        let leases = [
            at("10.0.0.5"),
            at("10.0.0.7"),
            at("10.0.0.9"),
            at("10.0.0.3"),
        ];
        let refs: Vec<&IPLease> = leases.iter().collect();
        let rows = usage(&s, &[&p], &refs, 3);
        assert_eq!(
            render(&rows, true),
            "NAME       TOTAL   USED   FREE   NEXT FREE                      SUBNET   RANGES               GATEWAY\n\
             subnet/s   10      3      7      10.0.0.6,10.0.0.12,10.0.0.13   s        10.0.0.0/28          <none>\n\
             ippool/p   3       1      2      10.0.0.8,10.0.0.10             s        10.0.0.8-10.0.0.11   10.0.0.11\n"
        );
    }

    #[test]
    fn dual_stack_gives_each_family() {
        let s = subnet("10.0.0.0/30,fd00::/126", None, &[]);
        let rows = usage(&s, &[], &[&at("fd00::2")], 2);
        assert_eq!(rows[0].next, ["10.0.0.2".parse::<IpAddr>().unwrap()]);
        assert_eq!((rows[0].total, rows[0].used, rows[0].free), (2, 1, 1));
        let s = subnet("10.0.0.0/30,fd00::/126", None, &[]);
        let rows = usage(&s, &[], &[], 2);
        assert_eq!(
            rows[0].next,
            ["10.0.0.2", "fd00::2"].map(|i| i.parse::<IpAddr>().unwrap())
        );
    }

    #[test]
    fn an_unusable_subnet_says_why() {
        let s = subnet("10.0.0.0/24", Some("10.1.0.1"), &[]);
        let rows = usage(
            &s,
            &[&pool("p", &["10.0.0.8"], None)],
            &[&at("10.0.0.5")],
            3,
        );
        assert_eq!(rows[0].used, 1);
        assert!(
            rows[0]
                .problem
                .as_deref()
                .unwrap()
                .contains("gateway 10.1.0.1 is outside 10.0.0.0/24")
        );
        assert_eq!(
            rows[1].problem.as_deref(),
            Some("its Subnet s cannot be used")
        );
    }
}
