//! The leases that keep an address, pool or Subnet in use, as validators name them in refusals and warnings.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use kube::ResourceExt;

use crate::api::{IPLease, OwnerKind};
use crate::webhook::addresses::num;

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
    /// Some lease is held by an IPAMClaim: it goes when the claim is deleted (and no Pod uses it).
    pub claim: bool,
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
            claim: sorted
                .iter()
                .any(|(_, l)| l.spec.owner_kind == OwnerKind::IPAMClaim),
        })
    }
}

impl fmt::Display for InUse {
    /// `3 IPLeases (e.g. 172.17.0.11 held by pod default/samplepod); delete those Pods first`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (noun, those) = match (self.count == 1, self.claim) {
            (true, false) => ("IPLease", "that Pod"),
            (true, true) => ("IPLease", "that IPAMClaim"),
            (false, false) => ("IPLeases", "those Pods"),
            (false, true) => ("IPLeases", "those Pods and IPAMClaims"),
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
        if self.claim {
            f.write_str(
                " (an IPAMClaim's addresses are released when the claim is deleted and no Pod uses it)",
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
                claim: None,
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
        let mut claimed = (*b).clone();
        claimed.spec.owner_kind = OwnerKind::IPAMClaim;
        claimed.spec.claim = Some("vm-a".into());
        let u = InUse::of([&Arc::new(claimed)]).unwrap();
        assert_eq!(
            u.to_string(),
            "1 IPLease (e.g. 10.0.0.10 held by ipamclaim default/vm-a); delete that IPAMClaim first (an \
             IPAMClaim's addresses are released when the claim is deleted and no Pod uses it)"
        );
        assert_eq!(InUse::of([]), None);
        assert_eq!(more(0), "");
        assert_eq!(more(1), " (1 more leased address is affected)");
        assert_eq!(more(4), " (4 more leased addresses are affected)");
    }
}
