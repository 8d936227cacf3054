//! Validating Networks: what the CRD's CEL rules cannot say. The spec must render (a custom config must be a
//! CNI plugin object without an ipam section), its provider must be usable, spec.subnet must name a Subnet of
//! this network's provider, spec.ipam must describe a Subnet the Subnet webhook would admit (same checks,
//! overlap included), and neither the NAD nor the Subnet the Network generates may already belong to someone
//! else: the controller never overwrites those.

use std::sync::Arc;

use kube::ResourceExt;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, Operation};

use crate::api::{IPLease, NETWORK_ANNOTATION, Network, NetworkAttachmentDefinition, Subnet};
use crate::context::Context;
use crate::network::render::{self, RenderError};
use crate::webhook::codes::{CONFLICT, INVALID};
use crate::webhook::names::is_provider;
use crate::webhook::respond::{Refusal, answer};
use crate::webhook::subnet::{SubnetRefusal, check_subnet};

/// The longest Subnet name (it is a label value on every IPLease of the Subnet).
const SUBNET_NAME_MAX: usize = 63;

pub async fn validate(ctx: Arc<Context>, req: AdmissionRequest<Network>) -> AdmissionResponse {
    let resp = AdmissionResponse::from(&req);
    let Some(net) = req
        .object
        .as_ref()
        .filter(|_| matches!(req.operation, Operation::Create | Operation::Update))
    else {
        return resp;
    };
    // Metadata-only updates (finalizers, labels, deletion) are never refused.
    if req.old_object.as_ref().is_some_and(|o| o.spec == net.spec) {
        return resp;
    }
    let subnets = ctx.cache.subnets.state();
    let nad = ctx
        .cache
        .nads
        .state()
        .into_iter()
        .find(|n| n.metadata.namespace == net.namespace() && n.name_any() == net.name_any());
    let leases = match render::subnet(net) {
        Some(s) => ctx
            .cache
            .leases
            .state_filter(|l| l.spec.subnet == s.name_any()),
        None => Vec::new(),
    };
    let world = World {
        subnets: &subnets,
        nad: nad.as_deref(),
        leases: &leases,
        create: matches!(req.operation, Operation::Create),
    };
    answer(&ctx, resp, check(net, &world))
}

/// Why a Network is refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum NetworkRefusal {
    #[error(transparent)]
    Render(#[from] RenderError),
    #[error(
        "Network {network}: its provider {provider} (<name>.<namespace>) is not usable in annotation keys \
         (<provider>.kubernetes.io/ip_address must stay a valid key); choose a shorter name"
    )]
    Provider { network: String, provider: String },
    #[error(
        "Network {network}: spec.subnet {subnet} names a Subnet whose spec.provider is {found}; a Network is \
         served only by a Subnet with spec.provider {provider} (change the Subnet's provider, or use spec.ipam)"
    )]
    ForeignSubnet {
        network: String,
        subnet: String,
        found: String,
        provider: String,
    },
    #[error(
        "Network {network}: spec.ipam creates Subnet {subnet} ({len} characters), but a Subnet name may have at \
         most {SUBNET_NAME_MAX}; give the Network a shorter name, or create the Subnet yourself and name it in \
         spec.subnet"
    )]
    SubnetName {
        network: String,
        subnet: String,
        len: usize,
    },
    #[error(
        "Network {network}: spec.ipam creates Subnet {subnet}, but a Subnet of that name exists and was not \
         created by this Network ({by}); name it in spec.subnet instead of spec.ipam, or delete it"
    )]
    SubnetTaken {
        network: String,
        subnet: String,
        by: String,
    },
    #[error("Network {network}: spec.ipam: {refusal}")]
    Ipam {
        network: String,
        refusal: Box<SubnetRefusal>,
    },
    #[error(
        "Network {network}: NetworkAttachmentDefinition {network} already exists and was not generated from a \
         Network; the Network would replace it: delete it first, or give the Network another name"
    )]
    NadTaken { network: String },
}

impl Refusal for NetworkRefusal {
    fn reason(&self) -> &'static str {
        match self {
            NetworkRefusal::Ipam { refusal, .. } => refusal.reason(),
            NetworkRefusal::SubnetTaken { .. } | NetworkRefusal::NadTaken { .. } => {
                "network_conflict"
            }
            _ => "bad_network",
        }
    }

    fn code(&self) -> u16 {
        match self {
            NetworkRefusal::Ipam { refusal, .. } => refusal.code(),
            NetworkRefusal::SubnetTaken { .. }
            | NetworkRefusal::NadTaken { .. }
            | NetworkRefusal::ForeignSubnet { .. } => CONFLICT,
            _ => INVALID,
        }
    }
}

/// What a Network is checked against, from the webhook's caches.
pub(crate) struct World<'a> {
    pub subnets: &'a [Arc<Subnet>],
    /// The NAD of the Network's name and namespace, if one exists.
    pub nad: Option<&'a NetworkAttachmentDefinition>,
    /// The leases of the Subnet spec.ipam describes.
    pub leases: &'a [Arc<IPLease>],
    pub create: bool,
}

/// Ok with warnings, or the refusal.
pub(crate) fn check(net: &Network, world: &World) -> Result<Vec<String>, NetworkRefusal> {
    let network = net.key();
    let provider = net.provider();
    render::nad_config(net)?;
    if !is_provider(&provider) {
        return Err(NetworkRefusal::Provider { network, provider });
    }
    if world.create
        && let Some(nad) = world.nad
        && !nad
            .metadata
            .owner_references
            .iter()
            .flatten()
            .any(|o| o.kind == "Network" && o.name == net.name_any())
    {
        return Err(NetworkRefusal::NadTaken { network });
    }
    let mut warnings = Vec::new();
    if let Some(name) = &net.spec.subnet {
        match world.subnets.iter().find(|s| s.name_any() == *name) {
            Some(s) if s.spec.provider != provider => {
                return Err(NetworkRefusal::ForeignSubnet {
                    network,
                    subnet: name.clone(),
                    found: s.spec.provider.clone(),
                    provider,
                });
            }
            Some(_) => {}
            None => warnings.push(format!(
                "Network {network}: Subnet {name} named in spec.subnet does not exist yet; Pods on {network} are \
                 refused until it does (with spec.provider {provider})"
            )),
        }
    }
    if let Some(desired) = render::subnet(net) {
        let name = desired.name_any();
        if name.len() > SUBNET_NAME_MAX {
            return Err(NetworkRefusal::SubnetName {
                network,
                len: name.len(),
                subnet: name,
            });
        }
        let existing = world.subnets.iter().find(|s| s.name_any() == name);
        if let Some(s) = existing
            && !render::subnet_created_by(s, net)
        {
            let by = s
                .annotations()
                .get(NETWORK_ANNOTATION)
                .map(|n| format!("by Network {n}"))
                .unwrap_or_else(|| "by hand".to_string());
            return Err(NetworkRefusal::SubnetTaken {
                network,
                subnet: name,
                by,
            });
        }
        let more = check_subnet(
            &desired,
            existing.map(|s| s.as_ref()),
            world.subnets,
            world.leases,
        )
        .map_err(|refusal| NetworkRefusal::Ipam {
            network: network.clone(),
            refusal: Box::new(refusal),
        })?;
        warnings.extend(more);
    }
    Ok(warnings)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::SubnetSpec;

    fn net(spec: &str) -> Network {
        let mut n: Network = serde_saphyr::from_str(&format!(
            "apiVersion: nadipam.io/v1\nkind: Network\nmetadata: {{name: macvlan, namespace: default}}\nspec: {spec}\n"
        ))
        .expect("network yaml");
        n.metadata.uid = Some("u1".into());
        n
    }

    fn subnet(name: &str, provider: &str, cidr: &str, by: Option<&str>) -> Arc<Subnet> {
        let mut s = Subnet::new(
            name,
            serde_json::from_value::<SubnetSpec>(
                serde_json::json!({"provider": provider, "cidrBlock": cidr}),
            )
            .expect("subnet spec"),
        );
        if let Some(by) = by {
            s.metadata.annotations =
                Some([(NETWORK_ANNOTATION.to_string(), by.to_string())].into());
        }
        Arc::new(s)
    }

    fn world<'a>(
        subnets: &'a [Arc<Subnet>],
        nad: Option<&'a NetworkAttachmentDefinition>,
    ) -> World<'a> {
        World {
            subnets,
            nad,
            leases: &[],
            create: true,
        }
    }

    fn refusal(n: &Network, w: &World) -> String {
        check(n, w).expect_err("refused").to_string()
    }

    const MACVLAN: &str = "{cniType: macvlan, macvlan: {master: eth0}";

    #[test]
    fn a_plain_network_passes() {
        let n = net(&format!("{MACVLAN}, ipam: {{cidrBlock: 172.17.0.0/16}}}}"));
        assert_eq!(
            check(&n, &world(&[], None)).expect("allowed"),
            Vec::<String>::new()
        );
        // Its own Subnet (an update) is no conflict.
        let own = [subnet(
            "macvlan.default",
            "macvlan.default",
            "172.17.0.0/16",
            Some("default/macvlan"),
        )];
        let mut w = world(&own, None);
        w.create = false;
        assert!(check(&n, &w).is_ok());
    }

    #[test]
    fn refusals_name_object_field_and_remedy() {
        let n = net(&format!("{MACVLAN}, subnet: macvlan}}"));
        let foreign = [subnet("macvlan", "other.default", "172.17.0.0/16", None)];
        assert_eq!(
            refusal(&n, &world(&foreign, None)),
            "Network default/macvlan: spec.subnet macvlan names a Subnet whose spec.provider is other.default; a \
             Network is served only by a Subnet with spec.provider macvlan.default (change the Subnet's \
             provider, or use spec.ipam)"
        );
        assert_eq!(
            check(&n, &world(&[], None)).expect("allowed with a warning"),
            [
                "Network default/macvlan: Subnet macvlan named in spec.subnet does not exist yet; Pods on \
              default/macvlan are refused until it does (with spec.provider macvlan.default)"
            ]
        );

        let n = net(&format!("{MACVLAN}, ipam: {{cidrBlock: 172.17.0.0/16}}}}"));
        let taken = [subnet(
            "macvlan.default",
            "macvlan.default",
            "10.0.0.0/24",
            None,
        )];
        assert_eq!(
            refusal(&n, &world(&taken, None)),
            "Network default/macvlan: spec.ipam creates Subnet macvlan.default, but a Subnet of that name exists \
             and was not created by this Network (by hand); name it in spec.subnet instead of spec.ipam, or \
             delete it"
        );
        let overlap = [subnet("older", "macvlan.default", "172.17.5.0/24", None)];
        assert_eq!(
            refusal(&n, &world(&overlap, None)),
            "Network default/macvlan: spec.ipam: Subnet macvlan.default: cidrBlock 172.17.0.0/16 overlaps \
             172.17.5.0/24 of Subnet older, which serves the same provider macvlan.default; give the Subnets of \
             one provider disjoint CIDRs (an address in both could be leased twice)"
        );
        let mut long = net(&format!("{MACVLAN}, ipam: {{cidrBlock: 172.17.0.0/16}}}}"));
        long.metadata.name = Some("a".repeat(60));
        assert_eq!(
            refusal(&long, &world(&[], None)),
            format!(
                "Network default/{a}: spec.ipam creates Subnet {a}.default (68 characters), but a Subnet name may \
                 have at most 63; give the Network a shorter name, or create the Subnet yourself and name it in \
                 spec.subnet",
                a = "a".repeat(60)
            )
        );

        let hand = NetworkAttachmentDefinition::new("default", "macvlan", "{}");
        assert_eq!(
            refusal(&n, &world(&[], Some(&hand))),
            "Network default/macvlan: NetworkAttachmentDefinition default/macvlan already exists and was not \
             generated from a Network; the Network would replace it: delete it first, or give the Network another \
             name"
        );

        let custom = net(
            "{cniType: custom, custom: {config: '{\"type\":\"vlan\",\"ipam\":{\"type\":\"dhcp\"}}'}}",
        );
        assert_eq!(
            refusal(&custom, &world(&[], None)),
            "Network default/macvlan: spec.custom.config has an ipam section \"{\\\"type\\\":\\\"dhcp\\\"}\"; leave \
             it out: nadipam writes {\"type\": \"nadipam\", \"provider\": \"macvlan.default\"} there"
        );
    }

    #[test]
    fn codes_and_reasons() {
        let r = NetworkRefusal::NadTaken {
            network: "a/b".into(),
        };
        assert_eq!((r.code(), r.reason()), (CONFLICT, "network_conflict"));
        let r = NetworkRefusal::Provider {
            network: "a/b".into(),
            provider: "b.a".into(),
        };
        assert_eq!((r.code(), r.reason()), (INVALID, "bad_network"));
    }
}
