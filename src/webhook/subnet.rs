//! Validating Subnets. A Subnet must parse (CIDRs matching `protocol`, gateway and excludeIps inside), name a
//! well-formed provider and not overlap another Subnet of that provider, since an address in both could be
//! leased twice. It may not change under an address a lease holds, and is not deleted while leases remain:
//! their Pods would keep addresses nadipam no longer tracks.

use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;
use kube::ResourceExt;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, Operation};

use crate::alloc::{AllocError, Family, LayoutProblem};
use crate::annotations::Shown;
use crate::api::{IPLease, IPPool, Subnet, set_fields};
use crate::cache::layout;
use crate::context::Context;
use crate::placement::SelectorError;
use crate::webhook::addresses::static_checker;
use crate::webhook::codes::{CONFLICT, INVALID};
use crate::webhook::in_use::{InUse, by_address, more};
use crate::webhook::names::is_provider;
use crate::webhook::node_scope::warn_unmatched;
use crate::webhook::pool_subnet::pool_subnet;
use crate::webhook::respond::{Refusal, answer, ignored_field};

pub async fn validate(ctx: Arc<Context>, req: AdmissionRequest<Subnet>) -> AdmissionResponse {
    let resp = AdmissionResponse::from(&req);
    let outcome = match (&req.operation, &req.object) {
        (Operation::Create | Operation::Update, Some(new)) => {
            let name = new.name_any();
            let others = ctx.cache.subnets.state();
            let leases = ctx.cache.leases.state_filter(|l| l.spec.subnet == name);
            let old = req.old_object.as_ref();
            check_subnet(new, old, &others, &leases).map(|mut warnings| {
                if old.is_none_or(|o| o.spec != new.spec) {
                    let scope = new.node_scope().ok().flatten();
                    warnings.extend(warn_unmatched(&ctx.cache, "Subnet", &name, scope));
                }
                warnings
            })
        }
        (Operation::Delete, _) => {
            let leases = ctx.cache.leases.state_filter(|l| l.spec.subnet == req.name);
            let pools = pools_naming(
                ctx.cache.pools.state(),
                &req.name,
                &ctx.cache.subnets.state(),
            );
            check_delete(&req.name, &leases, &pools)
        }
        _ => return resp,
    };
    answer(&ctx, resp, outcome)
}

/// Why a Subnet is refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SubnetRefusal {
    #[error(
        "Subnet {subnet}: spec.provider {value} is not a valid provider (expected <nad>.<namespace> such as \
         macvlan.default, <nad>.<namespace>.ovn such as attachnet.default.ovn, or ovn)"
    )]
    Provider { subnet: String, value: Shown },
    #[error("Subnet {subnet}: {source}")]
    NodeScope {
        subnet: String,
        source: SelectorError,
    },
    #[error("Subnet {subnet}: {problem}")]
    Layout {
        subnet: String,
        problem: Box<LayoutProblem>,
    },
    #[error(
        "Subnet {subnet}: cidrBlock {cidr} overlaps {other_cidr} of Subnet {other}, which serves the same provider \
         {provider}; give the Subnets of one provider disjoint CIDRs (an address in both could be leased twice)"
    )]
    Overlap {
        subnet: String,
        cidr: IpNet,
        other: String,
        other_cidr: IpNet,
        provider: String,
    },
    #[error(
        "Subnet {subnet}: {ip} is held by {holder} (IPLease {lease}), but after this change {problem}; keep the \
         address usable or delete that Pod first{}",
        more(*others)
    )]
    Strands {
        subnet: String,
        ip: IpAddr,
        holder: String,
        lease: String,
        problem: Box<AllocError>,
        others: usize,
    },
    #[error("Subnet {subnet} is in use by {in_use}")]
    InUse { subnet: String, in_use: InUse },
}

impl Refusal for SubnetRefusal {
    fn reason(&self) -> &'static str {
        match self {
            SubnetRefusal::Provider { .. }
            | SubnetRefusal::Layout { .. }
            | SubnetRefusal::NodeScope { .. } => "bad_subnet",
            SubnetRefusal::Overlap { .. } => "subnet_overlap",
            SubnetRefusal::Strands { .. } | SubnetRefusal::InUse { .. } => "in_use",
        }
    }

    fn code(&self) -> u16 {
        match self {
            SubnetRefusal::Provider { .. }
            | SubnetRefusal::Layout { .. }
            | SubnetRefusal::NodeScope { .. } => INVALID,
            _ => CONFLICT,
        }
    }
}

/// CREATE or UPDATE of `new` (`old` on UPDATE), against every Subnet and the leases of this one. Ok carries
/// warnings. An UPDATE that leaves the spec alone (labels, finalizers) is always allowed, so an object that
/// predates these rules can still be managed and deleted.
pub(crate) fn check_subnet(
    new: &Subnet,
    old: Option<&Subnet>,
    others: &[Arc<Subnet>],
    leases: &[Arc<IPLease>],
) -> Result<Vec<String>, SubnetRefusal> {
    if old.is_some_and(|o| o.spec == new.spec) {
        return Ok(Vec::new());
    }
    let name = new.name_any();
    let provider = &new.spec.provider;
    if !is_provider(provider) {
        return Err(SubnetRefusal::Provider {
            subnet: name,
            value: Shown::new(provider),
        });
    }
    let shape = layout(new).map_err(|e| SubnetRefusal::Layout {
        subnet: name.clone(),
        problem: Box::new(e.problem),
    })?;
    new.node_scope()
        .map_err(|source| SubnetRefusal::NodeScope {
            subnet: name.clone(),
            source,
        })?;
    let mut warnings: Vec<String> = set_fields(&new.spec.kube_ovn)
        .iter()
        .map(|field| ignored_field("Subnet", &name, field))
        .collect();
    if !shape.ignored_excludes().is_empty() {
        warnings.push(format!(
            "Subnet {name}: excludeIps entries {} lie outside cidrBlock {} and have no effect",
            shape.ignored_excludes().join(", "),
            shape.cidr_block()
        ));
    }

    // Overlap with another Subnet of the provider. One that was already there (same provider and CIDRs
    // before this update) only warns: refusing would lock the object against every other change.
    let unchanged_space = old.is_some_and(|o| {
        o.spec.provider == new.spec.provider && o.spec.cidr_block == new.spec.cidr_block
    });
    let mut rivals: Vec<&Arc<Subnet>> = others
        .iter()
        .filter(|o| o.spec.provider == *provider && o.name_any() != name)
        .collect();
    rivals.sort_by_key(|o| o.name_any());
    for other in rivals {
        let Ok(theirs) = layout(other) else {
            continue;
        };
        for family in [Family::V4, Family::V6] {
            let (Some(cidr), Some(other_cidr)) = (shape.cidr(family), theirs.cidr(family)) else {
                continue;
            };
            if !(cidr.contains(&other_cidr.network()) || other_cidr.contains(&cidr.network())) {
                continue;
            }
            let refusal = SubnetRefusal::Overlap {
                subnet: name.clone(),
                cidr,
                other: other.name_any(),
                other_cidr,
                provider: provider.clone(),
            };
            if unchanged_space {
                warnings.push(refusal.to_string());
            } else {
                return Err(refusal);
            }
        }
    }

    // Addresses leases hold must stay assignable: a lease valid before (or any lease, on CREATE) that the
    // new spec would put outside the CIDR, on the gateway or in excludeIps is refused.
    let before = old.and_then(|o| layout(o).ok()).map(|l| static_checker(&l));
    let after = static_checker(&shape);
    let stranded: Vec<(IpAddr, &IPLease, AllocError)> = by_address(leases)
        .into_iter()
        .filter(|(ip, _)| before.as_ref().is_none_or(|b| b.check(*ip).is_ok()))
        .filter_map(|(ip, l)| after.check(ip).err().map(|e| (ip, l, e)))
        .collect();
    if let Some((ip, lease, problem)) = stranded.first() {
        return Err(SubnetRefusal::Strands {
            subnet: name,
            ip: *ip,
            holder: lease.holder(),
            lease: lease.name_any(),
            problem: Box::new(problem.clone()),
            others: stranded.len() - 1,
        });
    }
    Ok(warnings)
}

/// The IPPools whose spec.subnet names Subnet `name`: by name, or by a CIDR that resolves to it among `subnets`.
pub(crate) fn pools_naming(
    pools: Vec<Arc<IPPool>>,
    name: &str,
    subnets: &[Arc<Subnet>],
) -> Vec<Arc<IPPool>> {
    pools
        .into_iter()
        .filter(|p| {
            p.spec.subnet == name || pool_subnet(p, subnets).is_ok_and(|s| s.name_any() == name)
        })
        .collect()
}

/// DELETE of Subnet `name`, refused while `leases` (the Subnet's) hold addresses; `pools` naming it only
/// warn (they become unusable, which is what deleting the Subnet asks for).
pub(crate) fn check_delete(
    name: &str,
    leases: &[Arc<IPLease>],
    pools: &[Arc<IPPool>],
) -> Result<Vec<String>, SubnetRefusal> {
    if let Some(in_use) = InUse::of(leases) {
        return Err(SubnetRefusal::InUse {
            subnet: name.to_string(),
            in_use,
        });
    }
    let mut names: Vec<String> = pools.iter().map(|p| p.name_any()).collect();
    names.sort();
    Ok(if names.is_empty() {
        Vec::new()
    } else {
        vec![format!(
            "Subnet {name}: IPPools {} still name it in spec.subnet; they are unusable until a Subnet {name} exists \
             again",
            names.join(", ")
        )]
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{IPPoolSpec, OwnerKind, Protocol, SubnetSpec};
    use crate::webhook::in_use::tests::lease;

    fn subnet(name: &str, provider: &str, cidr: &str, gw: Option<&str>, excl: &[&str]) -> Subnet {
        let protocol = match (cidr.contains('.'), cidr.contains(':')) {
            (true, true) => Protocol::Dual,
            (false, true) => Protocol::Ipv6,
            _ => Protocol::Ipv4,
        };
        Subnet::new(
            name,
            SubnetSpec {
                protocol: Some(protocol),
                cidr_block: cidr.into(),
                gateway: gw.map(str::to_string),
                exclude_ips: excl.iter().map(|s| s.to_string()).collect(),
                provider: provider.into(),
                namespaces: Vec::new(),
                routes: Vec::new(),
                node_selector: None,
                kube_ovn: Default::default(),
            },
        )
    }

    fn pool(name: &str) -> IPPool {
        IPPool::new(
            name,
            IPPoolSpec {
                subnet: "macvlan".into(),
                ips: vec!["172.17.0.200".into()],
                ..IPPoolSpec::default()
            },
        )
    }

    /// The seed guide's Subnet.
    fn macvlan() -> Subnet {
        subnet(
            "macvlan",
            "macvlan.default",
            "172.17.0.0/16",
            Some("172.17.0.1"),
            &["172.17.0.0..172.17.0.10"],
        )
    }

    fn refuse(r: Result<Vec<String>, SubnetRefusal>) -> (String, &'static str, u16) {
        let e = r.unwrap_err();
        (e.to_string(), e.reason(), e.code())
    }

    #[test]
    fn the_guide_subnet_is_accepted() {
        assert_eq!(
            check_subnet(&macvlan(), None, &[], &[]).unwrap(),
            Vec::<String>::new()
        );
        let dual = subnet(
            "d",
            "attachnet.default.ovn",
            "10.0.0.0/24,fd00::/64",
            None,
            &[],
        );
        assert!(check_subnet(&dual, None, &[], &[]).unwrap().is_empty());
        let ovn = subnet("o", "ovn", "10.1.0.0/24", None, &[]);
        assert!(check_subnet(&ovn, None, &[], &[]).unwrap().is_empty());
    }

    #[test]
    fn a_kube_ovn_subnet_is_accepted_and_its_ovn_fields_warned() {
        let s: Subnet =
            serde_saphyr::from_str(include_str!("../../tests/fixtures/kube-ovn-subnet.yaml"))
                .unwrap();
        assert_eq!(s.spec.cidr_block, "172.17.0.0/16");
        assert_eq!(s.spec.namespaces, ["default"]);
        let warnings = check_subnet(&s, None, &[], &[]).unwrap();
        assert_eq!(
            warnings[0],
            "Subnet macvlan: spec.acls has no effect in nadipam (secondary-network IPAM): kept, ignored"
        );
        let fields: Vec<&str> = warnings
            .iter()
            .map(|w| {
                w.strip_prefix("Subnet macvlan: spec.")
                    .and_then(|w| {
                        w.strip_suffix(
                            " has no effect in nadipam (secondary-network IPAM): kept, ignored",
                        )
                    })
                    .unwrap_or(w)
            })
            .collect();
        // Every field the file sets that nadipam does not use is named, in the order of their names.
        let file: serde_json::Value =
            serde_saphyr::from_str(include_str!("../../tests/fixtures/kube-ovn-subnet.yaml"))
                .unwrap();
        let used = [
            "cidrBlock",
            "excludeIps",
            "gateway",
            "namespaces",
            "protocol",
            "provider",
        ];
        let mut ignored: Vec<&str> = file["spec"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .filter(|k| !used.contains(k))
            .collect();
        ignored.sort();
        assert_eq!(ignored.len(), 28);
        assert_eq!(fields, ignored);
        // Kept as written: the stored object round-trips them.
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["spec"]["acls"][0]["priority"], 1002);
        assert_eq!(
            v["spec"]["natOutgoingPolicyRules"][0]["match"]["srcIPs"],
            "172.17.0.0/24"
        );
        assert_eq!(v["spec"]["gatewayType"], "distributed");
        // An update that leaves the spec alone warns no more.
        assert!(check_subnet(&s, Some(&s), &[], &[]).unwrap().is_empty());
    }

    #[test]
    fn pools_naming_a_subnet_by_name_or_cidr() {
        let mut by_cidr = pool("c");
        by_cidr.spec.subnet = "172.17.0.0/16".into();
        let mut elsewhere = pool("e");
        elsewhere.spec.subnet = "10.0.0.0/8".into();
        let pools = vec![Arc::new(pool("n")), Arc::new(by_cidr), Arc::new(elsewhere)];
        let names =
            |found: Vec<Arc<IPPool>>| found.iter().map(|p| p.name_any()).collect::<Vec<_>>();
        let subnets = [Arc::new(macvlan())];
        assert_eq!(
            names(pools_naming(pools.clone(), "macvlan", &subnets)),
            ["n", "c"]
        );
        // A pool still names a Subnet that is gone by its name only.
        assert_eq!(names(pools_naming(pools, "macvlan", &[])), ["n"]);
    }

    #[test]
    fn malformed_specs() {
        let mut s = macvlan();
        s.spec.provider = "macvlan".into();
        assert_eq!(
            refuse(check_subnet(&s, None, &[], &[])),
            (
                "Subnet macvlan: spec.provider \"macvlan\" is not a valid provider (expected <nad>.<namespace> such \
                 as macvlan.default, <nad>.<namespace>.ovn such as attachnet.default.ovn, or ovn)"
                    .into(),
                "bad_subnet",
                422
            )
        );
        let s = subnet(
            "macvlan",
            "macvlan.default",
            "172.17.0.0/16",
            Some("10.0.0.1"),
            &[],
        );
        assert_eq!(
            refuse(check_subnet(&s, None, &[], &[])),
            (
                "Subnet macvlan: gateway 10.0.0.1 is outside 172.17.0.0/16 (expected an address from 172.17.0.1 to \
                 172.17.255.254)"
                    .into(),
                "bad_subnet",
                422
            )
        );
        let mut s = macvlan();
        s.spec.protocol = Some(Protocol::Dual);
        assert_eq!(
            refuse(check_subnet(&s, None, &[], &[])).0,
            "Subnet macvlan: protocol Dual does not match cidrBlock \"172.17.0.0/16\", which holds only an IPv4 \
             CIDR; Dual needs an IPv4 and an IPv6 CIDR such as 10.0.0.0/24,fd00::/64"
        );
        let s = subnet(
            "macvlan",
            "macvlan.default",
            "172.17.0.0/16",
            None,
            &["172.17.0.9..x"],
        );
        assert_eq!(
            refuse(check_subnet(&s, None, &[], &[])).0,
            "Subnet macvlan: excludeIps[0]: range entry \"172.17.0.9..x\" is not valid: \"x\" is not an IP address \
             (expected an address such as 10.0.0.5, a CIDR such as 10.0.0.0/24, a range 10.0.0.1..10.0.0.9 or \
             10.0.0.1-10.0.0.9 (IPv6 alike))"
        );
        let s = subnet("macvlan", "macvlan.default", "172.17.0.5/16", None, &[]);
        assert_eq!(
            refuse(check_subnet(&s, None, &[], &[])).0,
            "Subnet macvlan: cidrBlock 172.17.0.5/16 is not in network form; use 172.17.0.0/16"
        );
    }

    #[test]
    fn ignored_excludes_warn() {
        let s = subnet(
            "s",
            "s.default",
            "10.0.0.0/24",
            None,
            &["10.0.0.5", "11.0.0.1", "fd00::1"],
        );
        assert_eq!(
            check_subnet(&s, None, &[], &[]).unwrap(),
            [
                "Subnet s: excludeIps entries 11.0.0.1, fd00::1 lie outside cidrBlock 10.0.0.0/24 and have no effect"
            ]
        );
    }

    #[test]
    fn overlap_within_a_provider() {
        let others = vec![
            Arc::new(macvlan()),
            Arc::new(subnet(
                "elsewhere",
                "other.default",
                "172.17.0.0/24",
                None,
                &[],
            )),
        ];
        let s = subnet("macvlan2", "macvlan.default", "172.17.5.0/24", None, &[]);
        assert_eq!(
            refuse(check_subnet(&s, None, &others, &[])),
            (
                "Subnet macvlan2: cidrBlock 172.17.5.0/24 overlaps 172.17.0.0/16 of Subnet macvlan, which serves the \
                 same provider macvlan.default; give the Subnets of one provider disjoint CIDRs (an address in both \
                 could be leased twice)"
                    .into(),
                "subnet_overlap",
                409
            )
        );
        // Another provider, another family, or the object itself: no overlap.
        let s = subnet("x", "other2.default", "172.17.5.0/24", None, &[]);
        assert!(check_subnet(&s, None, &others, &[]).unwrap().is_empty());
        let s = subnet("x", "macvlan.default", "172.18.0.0/16,fd00::/64", None, &[]);
        assert!(check_subnet(&s, None, &others, &[]).unwrap().is_empty());
        let mut same = macvlan();
        same.spec.exclude_ips.clear();
        assert!(check_subnet(&same, None, &others, &[]).unwrap().is_empty());
        // Dual: the IPv6 halves overlap.
        let d1 = Arc::new(subnet(
            "d1",
            "p.default",
            "10.0.0.0/24,fd00::/64",
            None,
            &[],
        ));
        let d2 = subnet("d2", "p.default", "10.1.0.0/24,fd00::/48", None, &[]);
        assert_eq!(
            refuse(check_subnet(&d2, None, std::slice::from_ref(&d1), &[])).0,
            "Subnet d2: cidrBlock fd00::/48 overlaps fd00::/64 of Subnet d1, which serves the same provider \
             p.default; give the Subnets of one provider disjoint CIDRs (an address in both could be leased twice)"
        );
        // An overlap that predates this update only warns.
        let mut d2_new = d2.clone();
        d2_new.spec.exclude_ips = vec!["10.1.0.9".into()];
        let w = check_subnet(&d2_new, Some(&d2), &[d1], &[]).unwrap();
        assert_eq!(w.len(), 1);
        assert!(
            w[0].starts_with("Subnet d2: cidrBlock fd00::/48 overlaps fd00::/64 of Subnet d1"),
            "{w:?}"
        );
    }

    #[test]
    fn leased_addresses_stay_usable() {
        let old = macvlan();
        let leases = vec![
            lease("macvlan", "172.17.0.12", Some("b"), None),
            lease("macvlan", "172.17.0.11", Some("samplepod"), None),
            lease("macvlan", "172.17.3.3", Some("c"), None),
        ];
        let mut new = old.clone();
        new.spec.gateway = Some("172.17.0.11".into());
        assert_eq!(
            refuse(check_subnet(&new, Some(&old), &[], &leases)),
            (
                "Subnet macvlan: 172.17.0.11 is held by pod default/samplepod (IPLease macvlan.172.17.0.11), but \
                 after this change 172.17.0.11 is the gateway of subnet macvlan (172.17.0.0/16) and cannot be \
                 assigned to a Pod; keep the address usable or delete that Pod first"
                    .into(),
                "in_use",
                409
            )
        );
        let mut new = old.clone();
        new.spec.exclude_ips.push("172.17.0.0/22".into());
        assert_eq!(
            refuse(check_subnet(&new, Some(&old), &[], &leases)).0,
            "Subnet macvlan: 172.17.0.11 is held by pod default/samplepod (IPLease macvlan.172.17.0.11), but after \
             this change 172.17.0.11 is excluded from subnet macvlan (172.17.0.0/16) by excludeIps entry \
             172.17.0.0/22; keep the address usable or delete that Pod first (2 more leased addresses are affected)"
        );
        // A shrunk CIDR (the CRD makes cidrBlock immutable; this guards anyway).
        let mut new = old.clone();
        new.spec.cidr_block = "172.17.0.0/23".into();
        assert_eq!(
            refuse(check_subnet(&new, Some(&old), &[], &leases)).0,
            "Subnet macvlan: 172.17.3.3 is held by pod default/c (IPLease macvlan.172.17.3.3), but after this \
             change 172.17.3.3 is outside subnet macvlan (172.17.0.0/23); keep the address usable or delete that \
             Pod first"
        );
        // Changes that keep every leased address usable are fine, and so are excludes over free addresses.
        let mut new = old.clone();
        new.spec.gateway = Some("172.17.255.254".into());
        new.spec.exclude_ips.push("172.17.1.0/24".into());
        assert!(
            check_subnet(&new, Some(&old), &[], &leases)
                .unwrap()
                .is_empty()
        );
        // A lease that was already unusable before the change does not block it.
        let stale = vec![lease("macvlan", "172.17.0.5", Some("old"), None)];
        let mut new = old.clone();
        new.spec.gateway = Some("172.17.0.5".into());
        assert!(
            check_subnet(&new, Some(&old), &[], &stale)
                .unwrap()
                .is_empty()
        );
        // CREATE over leases left behind by a previous Subnet of that name.
        let s = subnet(
            "macvlan",
            "macvlan.default",
            "172.17.0.0/16",
            Some("172.17.0.12"),
            &[],
        );
        assert!(refuse(check_subnet(&s, None, &[], &leases)).0.starts_with(
            "Subnet macvlan: 172.17.0.12 is held by pod default/b (IPLease macvlan.172.17.0.12)"
        ));
    }

    #[test]
    fn metadata_only_updates_pass() {
        let mut bad = macvlan();
        bad.spec.provider = "BAD".into();
        let mut relabelled = bad.clone();
        relabelled.metadata.labels = Some([("a".to_string(), "b".to_string())].into());
        assert!(
            check_subnet(&relabelled, Some(&bad), &[], &[])
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn delete_waits_for_leases() {
        assert!(check_delete("macvlan", &[], &[]).unwrap().is_empty());
        let pools = [Arc::new(pool("b")), Arc::new(pool("a"))];
        assert_eq!(
            check_delete("macvlan", &[], &pools).unwrap(),
            [
                "Subnet macvlan: IPPools a, b still name it in spec.subnet; they are unusable until a Subnet macvlan \
              exists again"
            ]
        );
        let leases = vec![
            lease("macvlan", "172.17.0.20", Some("x"), None),
            lease("macvlan", "172.17.0.11", Some("samplepod"), None),
            lease("macvlan", "172.17.0.12", None, None),
        ];
        let e = check_delete("macvlan", &leases, &pools).unwrap_err();
        assert_eq!(
            e.to_string(),
            "Subnet macvlan is in use by 3 IPLeases (e.g. 172.17.0.11 held by pod default/samplepod); delete those \
             Pods first"
        );
        assert_eq!((e.reason(), e.code()), ("in_use", 409));
        let mut sts = (*leases[0]).clone();
        sts.spec.owner_kind = OwnerKind::StatefulSet;
        assert_eq!(
            check_delete("macvlan", &[Arc::new(sts)], &[])
                .unwrap_err()
                .to_string(),
            "Subnet macvlan is in use by 1 IPLease (e.g. 172.17.0.20 held by pod default/x); delete that Pod first \
             (a StatefulSet's addresses are released when the StatefulSet is deleted or scaled down)"
        );
    }
}
