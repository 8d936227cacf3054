//! `demo`: nadipam end to end on the local test bed.
//!
//! Builds (or reuses) the test bed of `e2e/` and starts it. As root it has two nodes (kubelet, containerd,
//! Multus) and nadipam is installed the way users install it, with Helm (`e2e/cluster install`: the chart and
//! this checkout's image on every node); otherwise the control plane alone, served by a `nadipam-server`
//! process. Then it applies the examples of the Kube-OVN multi-NIC guide and the Spiderpool ovs-cni guide
//! (`e2e/demo/*.yaml`), prints every allocated address and shows two mistakes refused at `kubectl apply`; on the
//! nodes also `kubectl get pods -o wide`, `ip addr show net1` inside two Pods and a ping between them.
//!
//! The test bed stays up afterwards so the objects can be explored; `e2e/cluster down` stops it.

mod bed;
mod nodes;
mod show;

use bed::{Bed, Server, apply, build_server, clean_previous_run, install_crds, run};
use nodes::show_on_nodes;
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

/// Installs nadipam with Helm onto the nodes (`e2e/cluster install`) and shows what runs.
fn helm_install(bed: &Bed) -> Result<(), Error> {
    step(
        "nadipam: helm install (e2e/cluster install: manifests/chart/nadipam with this checkout's image, built \
         without Docker and imported into every node; the first time builds the release binaries)",
    );
    let tag = run(std::process::Command::new(bed::repo().join("e2e/cluster"))
        .arg("install")
        .stderr(std::process::Stdio::inherit()))?;
    println!("image localhost/nadipam:{}", tag.trim());
    println!("$ kubectl -n nadipam-system get pods -o wide");
    print!(
        "{}",
        bed.kubectl_out(&["-n", "nadipam-system", "get", "pods", "-o", "wide"])?
    );
    Ok(())
}

async fn demo() -> Result<(), Error> {
    let bed = Bed::up()?;
    install_crds(&bed)?;
    // On the nodes nadipam runs in Pods, installed with Helm; without nodes, as a process of this machine.
    let server = if bed.nodes {
        helm_install(&bed)?;
        None
    } else {
        Some(Server::start(&bed, &build_server()?)?)
    };
    let result = async {
        let client = bed.client().await?;
        clean_previous_run(&bed, &client).await?;
        apply(&bed, "e2e/demo/kube-ovn-multi-nic.yaml")?;
        apply(&bed, "e2e/demo/spiderpool-ovs-cni.yaml")?;
        print_allocations(&client).await?;
        print_status(&bed, &client).await?;
        show_rejections(&bed)?;
        if bed.nodes {
            show_on_nodes(&bed).await
        } else {
            println!(
                "\n(not root: the test bed has no nodes, so the Pods stay Pending with their addresses; run the \
                 demo as root to see nadipam installed with Helm and the Pods Running, with ip addr and a ping)"
            );
            Ok(())
        }
    }
    .await;
    if let Some(server) = server {
        server.stop();
    }
    result?;
    step("done");
    println!(
        "The test bed is still up with the demo's objects{}. Explore:\n  \
         eval \"$(e2e/cluster env)\" && kubectl get subnets,ippools,ipleases\n\
         Stop it with: e2e/cluster down",
        if bed.nodes {
            " and nadipam installed (helm uninstall nadipam -n nadipam-system removes it)"
        } else {
            ""
        }
    );
    Ok(())
}
