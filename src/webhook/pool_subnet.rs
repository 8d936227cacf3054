//! The one Subnet an IPPool belongs to: named by `spec.subnet`, or found by the CIDR it gives. Every lookup
//! of a pool's Subnet goes through [`pool_subnet`].

use std::sync::Arc;

use ipnet::IpNet;
use kube::ResourceExt;

use crate::api::{IPPool, Subnet};
use crate::webhook::codes::{CONFLICT, INVALID, NOT_FOUND};

/// Why an IPPool's `spec.subnet` leads to no one Subnet.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PoolSubnetError {
    #[error(
        "IPPool {pool}: spec.subnet {subnet} names no Subnet; create Subnet {subnet} first or fix spec.subnet"
    )]
    NoName { pool: String, subnet: String },
    #[error(
        "IPPool {pool}: spec.subnet {cidr}: no Subnet has cidrBlock {cidr}; create a Subnet with spec.cidrBlock: \
         {cidr} and spec.provider: {provider} first, or name an existing Subnet"
    )]
    NoCidr {
        pool: String,
        cidr: IpNet,
        provider: String,
    },
    #[error(
        "IPPool {pool}: spec.subnet {cidr}: Subnets {subnets} all have cidrBlock {cidr}; name one of them in \
         spec.subnet, or list the pool's network in spec.multusName so the Subnet of its provider is chosen"
    )]
    Ambiguous {
        pool: String,
        cidr: IpNet,
        subnets: String,
    },
    #[error(
        "IPPool {pool}: spec.subnet {value:?} is neither a Subnet name nor a CIDR (expected e.g. macvlan or \
         172.18.0.0/16)"
    )]
    NotCidr { pool: String, value: String },
}

impl PoolSubnetError {
    /// Stable reason label for the denials metric.
    pub fn reason(&self) -> &'static str {
        match self {
            PoolSubnetError::NoName { .. } | PoolSubnetError::NoCidr { .. } => "no_subnet",
            PoolSubnetError::Ambiguous { .. } => "ambiguous_subnet",
            PoolSubnetError::NotCidr { .. } => "bad_pool",
        }
    }

    /// HTTP status of the refusal: a missing Subnet is 404, an unusable spec.subnet 422, an ambiguous one 409.
    pub fn code(&self) -> u16 {
        match self {
            PoolSubnetError::NoName { .. } | PoolSubnetError::NoCidr { .. } => NOT_FOUND,
            PoolSubnetError::Ambiguous { .. } => CONFLICT,
            PoolSubnetError::NotCidr { .. } => INVALID,
        }
    }
}

/// What an IPPool's `spec.subnet` says: a Subnet name, or a CIDR as SpiderIPPool writes it. Subnet names
/// never contain `/`, so the two cannot be confused.
enum SubnetRef<'a> {
    Name(&'a str),
    Cidr(IpNet),
    Malformed,
}

fn subnet_ref(value: &str) -> SubnetRef<'_> {
    if !value.contains('/') {
        return SubnetRef::Name(value);
    }
    value
        .trim()
        .parse::<IpNet>()
        .map_or(SubnetRef::Malformed, SubnetRef::Cidr)
}

/// Whether an IPPool's `spec.subnet` value names `subnet`: its name, or one of the CIDRs of its cidrBlock.
pub(crate) fn names_subnet(value: &str, subnet: &Subnet) -> bool {
    match subnet_ref(value) {
        SubnetRef::Name(name) => subnet.metadata.name.as_deref() == Some(name),
        SubnetRef::Cidr(cidr) => has_cidr(subnet, &cidr),
        SubnetRef::Malformed => false,
    }
}

fn has_cidr(subnet: &Subnet, cidr: &IpNet) -> bool {
    subnet
        .spec
        .cidr_block
        .split(',')
        .any(|c| c.trim().parse::<IpNet>().ok().as_ref() == Some(cidr))
}

/// The providers of the networks a pool lists in `spec.multusName` (`<ns>/<nad>` serves `<nad>.<ns>`, or
/// `<nad>.<ns>.ovn` for a Kube-OVN attachment).
fn multus_providers(pool: &IPPool) -> Vec<String> {
    pool.spec
        .multus_name
        .iter()
        .filter_map(|m| m.split_once('/'))
        .map(|(ns, nad)| format!("{nad}.{ns}"))
        .collect()
}

/// The one Subnet an IPPool belongs to, among `subnets`: the Subnet `spec.subnet` names, or the one whose
/// cidrBlock holds the CIDR it gives. When Subnets of several providers share that CIDR, the pool's multusName
/// picks the one of its network's provider. Every lookup of a pool's Subnet goes through here.
pub(crate) fn pool_subnet<'a>(
    pool: &IPPool,
    subnets: &'a [Arc<Subnet>],
) -> Result<&'a Arc<Subnet>, PoolSubnetError> {
    let value = pool.spec.subnet.as_str();
    let cidr = match subnet_ref(value) {
        SubnetRef::Name(name) => {
            return subnets
                .iter()
                .find(|s| s.metadata.name.as_deref() == Some(name))
                .ok_or_else(|| PoolSubnetError::NoName {
                    pool: pool.name_any(),
                    subnet: name.to_string(),
                });
        }
        SubnetRef::Malformed => {
            return Err(PoolSubnetError::NotCidr {
                pool: pool.name_any(),
                value: value.to_string(),
            });
        }
        SubnetRef::Cidr(cidr) => cidr,
    };
    let mut matching: Vec<&Arc<Subnet>> = subnets.iter().filter(|s| has_cidr(s, &cidr)).collect();
    matching.sort_by_key(|s| s.name_any());
    let providers = multus_providers(pool);
    if matching.len() > 1 {
        let picked: Vec<&Arc<Subnet>> = matching
            .iter()
            .copied()
            .filter(|s| {
                let p = s.spec.provider.as_str();
                let p = p.strip_suffix(".ovn").unwrap_or(p);
                providers.iter().any(|m| m == p)
            })
            .collect();
        if !picked.is_empty() {
            matching = picked;
        }
    }
    match matching.as_slice() {
        [one] => Ok(one),
        [] => Err(PoolSubnetError::NoCidr {
            pool: pool.name_any(),
            cidr,
            provider: providers
                .into_iter()
                .next()
                .unwrap_or_else(|| "<nad>.<namespace> of its network".to_string()),
        }),
        many => Err(PoolSubnetError::Ambiguous {
            pool: pool.name_any(),
            cidr,
            subnets: many
                .iter()
                .map(|s| s.name_any())
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhook::resolve::Labels;
    use crate::webhook::rules::check_pool;

    fn subnet(name: &str, provider: &str, cidr: &str) -> Arc<Subnet> {
        Arc::new(
            serde_json::from_value(serde_json::json!({
                "apiVersion": "nadipam.io/v1", "kind": "Subnet", "metadata": {"name": name},
                "spec": {"cidrBlock": cidr, "provider": provider}
            }))
            .unwrap(),
        )
    }

    /// The Spiderpool guide's SpiderIPPool, as an IPPool.
    fn pool(subnet: &str, multus: &[&str]) -> IPPool {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "nadipam.io/v1", "kind": "IPPool", "metadata": {"name": "ippool-test"},
            "spec": {"ips": ["172.18.30.131-172.18.30.140"], "subnet": subnet, "gateway": "172.18.0.1",
                     "multusName": multus}
        }))
        .unwrap()
    }

    fn name(r: Result<&Arc<Subnet>, PoolSubnetError>) -> String {
        r.map(|s| s.name_any()).unwrap_or_else(|e| e.to_string())
    }

    #[test]
    fn a_pool_names_its_subnet_by_name_or_cidr() {
        let subnets = [
            subnet("ovs", "ovs-conf.kube-system", "172.18.0.0/16"),
            subnet("dual", "macvlan.default", "10.1.0.0/24,fd00:1::/64"),
        ];
        assert_eq!(name(pool_subnet(&pool("ovs", &[]), &subnets)), "ovs");
        let by_cidr = pool("172.18.0.0/16", &["kube-system/ovs-conf"]);
        assert_eq!(name(pool_subnet(&by_cidr, &subnets)), "ovs");
        assert!(names_subnet("172.18.0.0/16", &subnets[0]));
        assert!(!names_subnet("172.18.0.0/16", &subnets[1]));
        // Either CIDR of a dual-stack Subnet, in any spelling of the same network.
        assert_eq!(
            name(pool_subnet(&pool("10.1.0.0/24", &[]), &subnets)),
            "dual"
        );
        assert_eq!(
            name(pool_subnet(&pool("fd00:1:0::/64", &[]), &subnets)),
            "dual"
        );
        assert!(names_subnet("fd00:1::/64", &subnets[1]));
        assert!(!names_subnet("fd00:1::/64", &subnets[0]));
    }

    #[test]
    fn unresolved_pool_subnets_say_what_to_create() {
        let subnets = [subnet("ovs", "ovs-conf.kube-system", "172.18.0.0/16")];
        let e = pool_subnet(&pool("nope", &[]), &subnets).unwrap_err();
        assert_eq!(
            (e.to_string(), e.reason(), e.code()),
            (
                "IPPool ippool-test: spec.subnet nope names no Subnet; create Subnet nope first or fix spec.subnet"
                    .into(),
                "no_subnet",
                404
            )
        );
        let e =
            pool_subnet(&pool("172.19.0.0/16", &["kube-system/ovs-conf"]), &subnets).unwrap_err();
        assert_eq!(
            (e.to_string(), e.reason(), e.code()),
            (
                "IPPool ippool-test: spec.subnet 172.19.0.0/16: no Subnet has cidrBlock 172.19.0.0/16; create a \
                 Subnet with spec.cidrBlock: 172.19.0.0/16 and spec.provider: ovs-conf.kube-system first, or name \
                 an existing Subnet"
                    .into(),
                "no_subnet",
                404
            )
        );
        // A CIDR inside the Subnet's is not the Subnet's CIDR.
        assert_eq!(
            pool_subnet(&pool("172.18.0.0/24", &[]), &subnets)
                .unwrap_err()
                .to_string(),
            "IPPool ippool-test: spec.subnet 172.18.0.0/24: no Subnet has cidrBlock 172.18.0.0/24; create a Subnet \
             with spec.cidrBlock: 172.18.0.0/24 and spec.provider: <nad>.<namespace> of its network first, or name \
             an existing Subnet"
        );
        let e = pool_subnet(&pool("172.18.0.0/33", &[]), &subnets).unwrap_err();
        assert_eq!(
            (e.to_string(), e.reason(), e.code()),
            (
                "IPPool ippool-test: spec.subnet \"172.18.0.0/33\" is neither a Subnet name nor a CIDR (expected \
                 e.g. macvlan or 172.18.0.0/16)"
                    .into(),
                "bad_pool",
                422
            )
        );
        assert!(!names_subnet("172.18.0.0/33", &subnets[0]));
    }

    #[test]
    fn a_cidr_shared_by_providers_is_picked_by_multus_name() {
        let subnets = [
            subnet("b-ovs", "ovs-conf.kube-system", "172.18.0.0/16"),
            subnet("a-ovn", "attachnet.default.ovn", "172.18.0.0/16"),
        ];
        let e = pool_subnet(&pool("172.18.0.0/16", &[]), &subnets).unwrap_err();
        assert_eq!(
            (e.to_string(), e.reason(), e.code()),
            (
                "IPPool ippool-test: spec.subnet 172.18.0.0/16: Subnets a-ovn, b-ovs all have cidrBlock \
                 172.18.0.0/16; name one of them in spec.subnet, or list the pool's network in spec.multusName so \
                 the Subnet of its provider is chosen"
                    .into(),
                "ambiguous_subnet",
                409
            )
        );
        let ovs = pool("172.18.0.0/16", &["kube-system/ovs-conf"]);
        assert_eq!(name(pool_subnet(&ovs, &subnets)), "b-ovs");
        let ovn = pool("172.18.0.0/16", &["default/attachnet"]);
        assert_eq!(name(pool_subnet(&ovn, &subnets)), "a-ovn");
        // A network of neither provider leaves the choice open.
        let other = pool("172.18.0.0/16", &["default/macvlan"]);
        assert_eq!(
            pool_subnet(&other, &subnets).unwrap_err().reason(),
            "ambiguous_subnet"
        );
    }

    #[test]
    fn check_pool_accepts_a_pool_naming_the_subnet_by_cidr() {
        let s = subnet("ovs", "ovs-conf.kube-system", "172.18.0.0/16");
        let mut p = pool("172.18.0.0/16", &["kube-system/ovs-conf"]);
        check_pool(&p, &s, "kube-system/ovs-conf", "default", Labels::none()).unwrap();
        let other = subnet("x", "ovs-conf.kube-system", "172.19.0.0/16");
        assert_eq!(
            check_pool(
                &p,
                &other,
                "kube-system/ovs-conf",
                "default",
                Labels::none()
            )
            .unwrap_err()
            .to_string(),
            "network kube-system/ovs-conf: IPPool ippool-test belongs to Subnet 172.18.0.0/16, but this network \
             allocates from Subnet x"
        );
        // Spiderpool's namespaceName restricts like namespaces.
        let denied = |p: &IPPool| {
            check_pool(p, &s, "kube-system/ovs-conf", "default", Labels::none())
                .unwrap_err()
                .to_string()
        };
        p.spec.namespace_name = vec!["team-a".into()];
        assert_eq!(
            denied(&p),
            "network kube-system/ovs-conf: namespace default may not use IPPool ippool-test (spec.namespaceName: \
             team-a)"
        );
        p.spec.namespaces = vec!["team-b".into()];
        assert_eq!(
            denied(&p),
            "network kube-system/ovs-conf: namespace default may not use IPPool ippool-test (spec.namespaces: \
             team-b; spec.namespaceName: team-a)"
        );
        check_pool(&p, &s, "kube-system/ovs-conf", "team-a", Labels::none()).unwrap();
    }
}
