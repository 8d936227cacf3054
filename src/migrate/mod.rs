//! Moving onto nadipam without a duplicate address (`kubectl nadipam adopt` and `kubectl nadipam import`).
//!
//! - `adopt.rs`: running Pods' addresses on a network, from Multus' `network-status` → leases held by them.
//! - `import/`: Kube-OVN, Spiderpool and Whereabouts objects → nadipam Subnets, IPPools and leases.
//! - `plan.rs`: what to create, what exists, what conflicts (pure); `world.rs`: what it is decided from.
//! - `gather.rs`: listing the cluster; `apply.rs`: writing the plan; `report.rs`: the table, JSON and YAML.
//!
//! Dry run by default: the plan is printed and nothing is written. `--apply` writes it; applying again finds
//! everything in place. See docs/migration.md.

mod adopt;
mod apply;
mod error;
mod gather;
mod import;
mod plan;
mod report;
mod world;

use std::io::Write;

use kube::Client;

pub use error::Error;
pub use plan::{Action, Item, Object, Plan};
pub use report::OutputFormat;

/// `kubectl nadipam adopt`: lease the addresses running Pods hold on a network to them, before nadipam
/// allocates on it.
#[derive(Clone, Debug, clap::Args)]
pub struct AdoptArgs {
    /// The network whose Pods' addresses to adopt, `<namespace>/<nad>` (as Multus names it in the Pods'
    /// k8s.v1.cni.cncf.io/network-status).
    #[arg(long)]
    pub network: String,
    /// The nadipam Subnet to lease the addresses in; default: the Subnet whose provider is the network's
    /// (`<nad>.<namespace>`, or `<nad>.<namespace>.ovn`).
    #[arg(long)]
    pub subnet: Option<String>,
    /// Write the plan; without it, print it only.
    #[arg(long)]
    pub apply: bool,
    /// Print the plan as json or yaml instead of a table: the plugin's global `-o` sets it.
    #[arg(skip)]
    pub output: Option<OutputFormat>,
}

/// The IPAM `import` reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Peer {
    KubeOvn,
    Spiderpool,
    Whereabouts,
}

/// `kubectl nadipam import`: a peer IPAM's pools and allocations as nadipam objects and leases.
#[derive(Clone, Debug, clap::Args)]
pub struct ImportArgs {
    /// The IPAM to import from.
    #[arg(long = "from", value_enum)]
    pub from: Peer,
    /// Write the plan; without it, print it only.
    #[arg(long)]
    pub apply: bool,
    /// Print the plan as json or yaml instead of a table: the plugin's global `-o` sets it.
    #[arg(skip)]
    pub output: Option<OutputFormat>,
}

/// What a run did (or, dry, would do).
#[derive(Clone, Debug)]
pub struct Summary {
    pub plan: Plan,
    pub applied: bool,
}

impl Summary {
    pub fn count(&self, action: Action) -> usize {
        self.plan.count(action)
    }

    /// 0 when nothing conflicts, 2 when something does (the report says what); errors are the caller's 1.
    pub fn exit_code(&self) -> u8 {
        if self.count(Action::Conflict) > 0 {
            2
        } else {
            0
        }
    }
}

/// Runs `adopt`: plans from the cluster, prints the plan (and with `--apply` writes it, then prints what
/// happened).
pub async fn run_adopt(
    client: &Client,
    args: &AdoptArgs,
    out: &mut impl Write,
) -> Result<Summary, Error> {
    let network = adopt::NetworkName::parse(&args.network).ok_or_else(|| Error::BadNetwork {
        value: args.network.clone(),
    })?;
    let world = gather::world(client).await?;
    let subnet = match &args.subnet {
        Some(name) => world
            .subnet(name)
            .ok_or_else(|| Error::SubnetNotFound { name: name.clone() })?,
        None => {
            let plain = network.provider();
            let ovn = format!("{plain}.ovn");
            world
                .subnets
                .iter()
                .find(|s| s.spec.provider == plain || s.spec.provider == ovn)
                .ok_or_else(|| Error::NoSubnet {
                    network: network.to_string(),
                    provider: plain.clone(),
                })?
        }
    };
    let name = subnet.metadata.name.clone().unwrap_or_default();
    plan::layout(&name, &subnet.spec).map_err(|problem| Error::BadSubnet { name, problem })?;
    let desired = adopt::desired(&network, subnet, &world);
    finish(
        client,
        plan::plan(desired, &world, adopt::ORIGIN),
        &world,
        args.apply,
        args.output,
        out,
    )
    .await
}

/// Runs `import --from <peer>`.
pub async fn run_import(
    client: &Client,
    args: &ImportArgs,
    out: &mut impl Write,
) -> Result<Summary, Error> {
    let world = gather::world(client).await?;
    let mut missing = Vec::new();
    let mut kind = async |gvkp: (&str, &str, &str, &str)| -> Result<Vec<serde_json::Value>, Error> {
        Ok(match gather::peer(client, gvkp).await? {
            Some(objs) => objs,
            None => {
                missing.push(format!("{}.{}", gvkp.3, gvkp.0));
                Vec::new()
            }
        })
    };
    let (desired, origin) = match args.from {
        Peer::KubeOvn => {
            let g = ("kubeovn.io", "v1");
            let objects = import::kube_ovn::Objects {
                subnets: kind((g.0, g.1, "Subnet", "subnets")).await?,
                ips: kind((g.0, g.1, "IP", "ips")).await?,
                pools: kind((g.0, g.1, "IPPool", "ippools")).await?,
            };
            (
                import::kube_ovn::desired(&objects, &world),
                import::kube_ovn::ORIGIN,
            )
        }
        Peer::Spiderpool => {
            let g = ("spiderpool.spidernet.io", "v2beta1");
            let objects = import::spiderpool::Objects {
                subnets: kind((g.0, g.1, "SpiderSubnet", "spidersubnets")).await?,
                pools: kind((g.0, g.1, "SpiderIPPool", "spiderippools")).await?,
                endpoints: kind((g.0, g.1, "SpiderEndpoint", "spiderendpoints")).await?,
                reserved: kind((g.0, g.1, "SpiderReservedIP", "spiderreservedips")).await?,
            };
            (
                import::spiderpool::desired(&objects, &world),
                import::spiderpool::ORIGIN,
            )
        }
        Peer::Whereabouts => {
            let g = ("whereabouts.cni.cncf.io", "v1alpha1");
            let objects = import::whereabouts::Objects {
                pools: kind((g.0, g.1, "IPPool", "ippools")).await?,
                reservations: kind((
                    g.0,
                    g.1,
                    "OverlappingRangeIPReservation",
                    "overlappingrangeipreservations",
                ))
                .await?,
            };
            (
                import::whereabouts::desired(&objects, &world),
                import::whereabouts::ORIGIN,
            )
        }
    };
    let mut desired = desired;
    for m in missing {
        desired.notes.push(Item::note(
            Action::Skip,
            "CustomResourceDefinition",
            &m,
            origin,
            "not installed: nothing of this kind to import".into(),
        ));
    }
    finish(
        client,
        plan::plan(desired, &world, origin),
        &world,
        args.apply,
        args.output,
        out,
    )
    .await
}

async fn finish(
    client: &Client,
    mut plan: Plan,
    world: &world::World,
    write: bool,
    format: Option<OutputFormat>,
    out: &mut impl Write,
) -> Result<Summary, Error> {
    if write {
        apply::apply(client, &mut plan, world).await;
    }
    report::render(&plan, format, write, out)?;
    Ok(Summary {
        plan,
        applied: write,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::plan::{Claim, build_lease};
    use super::world::{PodInfo, World};
    use crate::api::IPLease;

    pub(crate) fn running_pod(namespace: &str, name: &str, uid: &str) -> PodInfo {
        PodInfo {
            namespace: namespace.into(),
            name: name.into(),
            uid: uid.into(),
            created: "2024-01-01T00:00:00Z".into(),
            ..PodInfo::default()
        }
    }

    pub(crate) fn world_with(pods: Vec<PodInfo>) -> World {
        let mut w = World::default();
        for p in pods {
            w.pods.insert((p.namespace.clone(), p.name.clone()), p);
        }
        w
    }

    /// The lease adopt writes for `pod`'s address `ip` in Subnet `s`.
    pub(crate) fn adopted_lease(pod: &PodInfo, ip: &str) -> IPLease {
        let claim = Claim {
            ip: ip.parse().unwrap(),
            subnet: "s".into(),
            provider: "n.ns".into(),
            network: "ns/n".into(),
            interface: Some("net1".into()),
            mac: None,
            pool: None,
            namespace: pod.namespace.clone(),
            pod: pod.name.clone(),
            uid: Some(pod.uid.clone()),
            source: "test".into(),
        };
        build_lease(&claim, pod, "network-status")
    }
}
