//! `demo`: nadipam end to end on the local control plane.
//!
//! Builds (or reuses) the control plane of `e2e/`, starts it, runs `nadipam-server` against it, applies the
//! examples of the Kube-OVN multi-NIC guide and the Spiderpool ovs-cni guide (`e2e/demo/*.yaml`), and prints
//! every allocated address. Then it shows two mistakes refused at `kubectl apply`, and, when run as root,
//! attaches one Pod's network to a network namespace with the real macvlan plugin and nadipam's CNI plugin.
//!
//! The control plane stays up afterwards so the objects can be explored; `e2e/cluster down` stops it.

mod attach;
mod bed;
mod show;

use attach::attach_samplepod;
use bed::{Bed, Server, apply, build_binaries, clean_previous_run, install_crds};
use show::{print_allocations, print_status, show_rejections};

/// Subnets the demo's manifests create; their leases are the demo's.
pub(crate) const SUBNETS: [&str; 4] = ["macvlan", "macvlan-ovn", "attachnet", "underlay-172-18"];
/// Addresses the demo's Pods hold once everything is admitted: 6 Pods, 2 + 2 Deployment replicas.
pub(crate) const EXPECTED_LEASES: usize = 10;

pub(crate) type Error = Box<dyn std::error::Error>;

pub(crate) fn step(what: &str) {
    println!("\n== {what}");
}

#[tokio::main]
async fn main() {
    nadipam::certs::install_crypto_provider();
    if let Err(e) = demo().await {
        eprintln!("\ndemo failed: {e}");
        std::process::exit(1);
    }
}

async fn demo() -> Result<(), Error> {
    let bed = Bed::up()?;
    let (server_bin, cni_bin) = build_binaries()?;
    install_crds(&bed)?;
    let server = Server::start(&bed, &server_bin)?;
    let result = async {
        let client = bed.client().await?;
        clean_previous_run(&bed, &client).await?;
        apply(&bed, "e2e/demo/kube-ovn-multi-nic.yaml")?;
        apply(&bed, "e2e/demo/spiderpool-ovs-cni.yaml")?;
        print_allocations(&client).await?;
        print_status(&bed, &client).await?;
        show_rejections(&bed)?;
        attach_samplepod(&bed, &cni_bin)
    }
    .await;
    server.stop();
    result?;
    step("done");
    println!(
        "The control plane is still up with the demo's objects. Explore:\n  \
         eval \"$(e2e/cluster env)\" && kubectl get subnets,ippools,ipleases\n\
         Stop it with: e2e/cluster down"
    );
    Ok(())
}
