//! Pieces shared by the Subnet, IPPool and workload validators: turning a check's outcome into an
//! AdmissionResponse, the leases in use, and the address arithmetic the checks need.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use kube::ResourceExt;
use kube::core::admission::AdmissionResponse;

use crate::alloc::{Allocator, Family, IpRange, SubnetLayout};
use crate::api::{IPLease, OwnerKind};
use crate::context::Context;
use crate::webhook::respond;

/// HTTP codes of validation refusals: the object itself is wrong, …
pub(crate) const INVALID: u16 = 422;
/// … it conflicts with objects that use it, …
pub(crate) const CONFLICT: u16 = 409;
/// … or it names an object that does not exist.
pub(crate) const NOT_FOUND: u16 = 404;

/// The warning for a peer's field (peer_fields.rs) that a user set on `kind` `name`: stored as written, not acted
/// on, so the manifest applies unchanged and the user learns it does nothing here.
pub(crate) fn ignored_field(kind: &str, name: &str, field: &str) -> String {
    format!(
        "{kind} {name}: spec.{field} has no effect in nadipam (secondary-network IPAM): kept, ignored"
    )
}

/// A validator's reason to refuse: the message is the Display text; the reason labels the denial metric.
pub(crate) trait Refusal: fmt::Display {
    fn reason(&self) -> &'static str;
    fn code(&self) -> u16;
}

/// Allowed (with any warnings) or refused with the refusal's code and message.
pub(crate) fn answer<R: Refusal>(
    ctx: &Context,
    resp: AdmissionResponse,
    outcome: Result<Vec<String>, R>,
) -> AdmissionResponse {
    match outcome {
        Ok(warnings) if warnings.is_empty() => resp,
        Ok(warnings) => {
            let mut r = resp;
            r.warnings = Some(warnings);
            r
        }
        Err(refusal) => {
            tracing::info!(reason = refusal.reason(), "denied: {refusal}");
            respond::refuse(
                ctx,
                resp,
                refusal.reason(),
                refusal.code(),
                refusal.to_string(),
            )
        }
    }
}

/// Leases with a readable address, lowest address first, so a message always names the same one.
pub(crate) fn by_address<'a>(
    leases: impl IntoIterator<Item = &'a Arc<IPLease>>,
) -> Vec<(IpAddr, &'a IPLease)> {
    let mut v: Vec<(IpAddr, &IPLease)> = leases
        .into_iter()
        .filter_map(|l| l.ip().ok().map(|ip| (ip, l.as_ref())))
        .collect();
    v.sort_by_key(|(ip, l)| (num(*ip), ip.is_ipv6(), l.name_any()));
    v
}

/// The leases keeping an object from being deleted, described for the refusal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct InUse {
    pub count: usize,
    pub ip: IpAddr,
    pub holder: String,
    /// Some lease outlives its Pod (StatefulSet): deleting Pods alone does not free it.
    pub statefulset: bool,
}

impl InUse {
    /// `None` when no lease has a readable address (then nothing holds the object).
    pub(crate) fn of<'a>(leases: impl IntoIterator<Item = &'a Arc<IPLease>>) -> Option<InUse> {
        let sorted = by_address(leases);
        let (ip, first) = sorted.first()?;
        Some(InUse {
            count: sorted.len(),
            ip: *ip,
            holder: first.holder(),
            statefulset: sorted
                .iter()
                .any(|(_, l)| l.spec.owner_kind == OwnerKind::StatefulSet),
        })
    }
}

impl fmt::Display for InUse {
    /// `3 IPLeases (e.g. 172.17.0.11 held by pod default/samplepod); delete those Pods first`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (noun, those) = if self.count == 1 {
            ("IPLease", "that Pod")
        } else {
            ("IPLeases", "those Pods")
        };
        write!(
            f,
            "{} {noun} (e.g. {} held by {}); delete {those} first",
            self.count, self.ip, self.holder
        )?;
        if self.statefulset {
            f.write_str(
                " (a StatefulSet's addresses are released when the StatefulSet is deleted or scaled down)",
            )?;
        }
        Ok(())
    }
}

/// `" (and 2 more)"`-style tail for a message that names one of several affected addresses.
pub(crate) fn more(others: usize) -> String {
    match others {
        0 => String::new(),
        1 => " (1 more leased address is affected)".to_string(),
        n => format!(" ({n} more leased addresses are affected)"),
    }
}

/// An allocator of `layout` with nothing allocated, kept sparse so that building it costs nothing for a
/// large subnet: its `check` says whether an address could ever be given to a Pod, with the same message Pod
/// admission would give.
pub(crate) fn static_checker(layout: &SubnetLayout) -> Allocator {
    Allocator::with_dense_max(layout, 0)
}

/// An address as a number, ordered within its family.
pub(crate) fn num(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// The address of a number (the inverse of [`num`]).
pub(crate) fn addr(family: Family, x: u128) -> IpAddr {
    IpRange::from_bounds(family, x, x).start()
}

/// The lowest number in `lo..=hi` that no interval of `covers` contains.
pub(crate) fn first_uncovered(lo: u128, hi: u128, covers: &[(u128, u128)]) -> Option<u128> {
    let mut sorted = covers.to_vec();
    sorted.sort_unstable();
    let mut cur = lo;
    for (a, b) in sorted {
        if b < cur {
            continue;
        }
        if a > cur {
            break;
        }
        if b >= hi {
            return None;
        }
        cur = b + 1;
    }
    (cur <= hi).then_some(cur)
}

/// Kubernetes' DNS-1123 label: namespaces, and each dot-separated part of an object name.
pub(crate) fn is_dns1123_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

/// A Subnet provider: `ovn`, `<nad>.<namespace>` or `<nad>.<namespace>.ovn`. It prefixes annotation keys
/// (`<provider>.kubernetes.io/ip_address`), so it must be a DNS subdomain short enough for that.
pub(crate) fn is_provider(s: &str) -> bool {
    const KEY_ROOM: usize = 253 - ".kubernetes.io".len();
    s == crate::annotations::keys::OVN_PROVIDER
        || (s.len() <= KEY_ROOM && s.split('.').count() >= 2 && s.split('.').all(is_dns1123_label))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::api::{IPLeaseSpec, LeasePhase};

    /// A lease of `subnet` for `ip` held by `ns/pod` (no pod name: still being admitted).
    pub(crate) fn lease(
        subnet: &str,
        ip: &str,
        pod: Option<&str>,
        pool: Option<&str>,
    ) -> Arc<IPLease> {
        Arc::new(
            IPLease::build(IPLeaseSpec {
                subnet: subnet.into(),
                ip: ip.into(),
                mac: None,
                provider: format!("{subnet}.default"),
                interface: None,
                pod_namespace: "default".into(),
                pod_name: pod.map(str::to_string),
                pod_uid: None,
                phase: LeasePhase::Bound,
                token: "t".into(),
                owner_kind: OwnerKind::Pod,
                pool: pool.map(str::to_string),
                network: format!("default/{subnet}"),
            })
            .unwrap(),
        )
    }

    #[test]
    fn holders_and_in_use() {
        let a = lease("m", "10.0.0.9", Some("b"), None);
        let b = lease("m", "10.0.0.10", None, None);
        assert_eq!(a.holder(), "pod default/b");
        assert_eq!(
            b.holder(),
            "the pod in namespace default that carries reservation t"
        );
        let u = InUse::of([&a, &b]).unwrap();
        assert_eq!(
            u.to_string(),
            "2 IPLeases (e.g. 10.0.0.9 held by pod default/b); delete those Pods first"
        );
        let mut sts = (*b).clone();
        sts.spec.owner_kind = OwnerKind::StatefulSet;
        let u = InUse::of([&Arc::new(sts)]).unwrap();
        assert_eq!(
            u.to_string(),
            "1 IPLease (e.g. 10.0.0.10 held by the pod in namespace default that carries reservation t); \
             delete that Pod first (a StatefulSet's addresses are released when the StatefulSet is deleted or scaled down)"
        );
        assert_eq!(InUse::of([]), None);
        assert_eq!(more(0), "");
        assert_eq!(more(1), " (1 more leased address is affected)");
        assert_eq!(more(4), " (4 more leased addresses are affected)");
    }

    #[test]
    fn uncovered() {
        assert_eq!(first_uncovered(5, 10, &[]), Some(5));
        assert_eq!(first_uncovered(5, 10, &[(0, 6), (7, 7)]), Some(8));
        assert_eq!(first_uncovered(5, 10, &[(8, 12), (5, 7)]), None);
        assert_eq!(first_uncovered(5, 10, &[(6, 12)]), Some(5));
        assert_eq!(first_uncovered(0, u128::MAX, &[(0, u128::MAX)]), None);
        assert_eq!(first_uncovered(0, u128::MAX, &[(1, u128::MAX)]), Some(0));
    }

    #[test]
    fn providers() {
        for ok in ["ovn", "macvlan.default", "attachnet.default.ovn", "a.b.c.d"] {
            assert!(is_provider(ok), "{ok}");
        }
        let long = format!("{}.default", "a.".repeat(120));
        for bad in [
            "",
            "macvlan",
            "Mac.default",
            "a..b",
            "a_b.default",
            ".a",
            "a.",
            &long,
        ] {
            assert!(!is_provider(bad), "{bad}");
        }
    }
}
