//! What the demo prints: the allocations, Subnet and IPPool status, and the mistakes refused.

use std::time::Duration;

use kube::Client;
use kube::api::Api;

use crate::bed::{Bed, demo_leases, repo, wait_until};
use crate::{EXPECTED_LEASES, Error, SUBNETS, step};

/// The table of every address the demo's Pods hold, read from the IPLeases once all exist (each is held by
/// its Pod's token from admission on; nothing binds them by default).
pub(crate) async fn print_allocations(client: &Client) -> Result<(), Error> {
    step("every Pod has its addresses the moment it exists (read from its IPLeases)");
    wait_until(
        "all demo addresses to be allocated",
        Duration::from_secs(60),
        || async {
            let leases = demo_leases(client).await?;
            Ok(leases.len() >= EXPECTED_LEASES)
        },
    )
    .await?;
    let mut rows: Vec<[String; 5]> = demo_leases(client)
        .await?
        .into_iter()
        .map(|l| {
            let s = l.spec;
            let from = match &s.pool {
                Some(pool) => format!("{}/{pool}", s.subnet),
                None => s.subnet.clone(),
            };
            [
                format!(
                    "{}/{}",
                    s.pod_namespace,
                    // A Pod created with generateName is known to its lease by its token.
                    s.pod_name
                        .unwrap_or_else(|| format!("(reservation {})", s.token))
                ),
                s.network,
                s.ip,
                s.mac.unwrap_or_else(|| "-".into()),
                from,
            ]
        })
        .collect();
    rows.sort();
    print_table(["POD", "NETWORK", "IP", "MAC", "SUBNET/POOL"], &rows);
    Ok(())
}

pub(crate) fn print_table<const N: usize>(header: [&str; N], rows: &[[String; N]]) {
    let mut width: [usize; N] = header.map(str::len);
    for row in rows {
        for (w, cell) in width.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: [&str; N]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(width)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(header);
    for row in rows {
        line(std::array::from_fn(|i| row[i].as_str()));
    }
}

/// Subnet and IPPool status as `kubectl get` shows it (the controller updates it shortly after a change).
pub(crate) async fn print_status(bed: &Bed, client: &Client) -> Result<(), Error> {
    step("kubectl get subnets,ippools (status written by the controller)");
    let pools: Api<nadipam::api::IPPool> = Api::all(client.clone());
    wait_until(
        "ippool-test's status to count its 2 addresses",
        Duration::from_secs(30),
        || async {
            let p = pools.get("ippool-test").await?;
            Ok(p.status.is_some_and(|s| s.allocated_ip_count == 2))
        },
    )
    .await?;
    let names: Vec<String> = SUBNETS.iter().map(|s| format!("subnet/{s}")).collect();
    let mut args = vec!["get"];
    args.extend(names.iter().map(String::as_str));
    print!("{}", bed.kubectl_out(&args)?);
    print!("{}", bed.kubectl_out(&["get", "ippool", "ippool-test"])?);
    Ok(())
}

/// Applies each mistake of `e2e/demo/rejected.yaml` on its own and prints what kubectl answers.
pub(crate) fn show_rejections(bed: &Bed) -> Result<(), Error> {
    step("mistakes are refused at kubectl apply, with what is wrong and what would be valid");
    let text = std::fs::read_to_string(repo().join("e2e/demo/rejected.yaml"))?;
    for doc in text.split("\n---\n") {
        let name = doc
            .lines()
            .skip_while(|l| !l.starts_with("metadata:"))
            .find_map(|l| l.trim().strip_prefix("name: "))
            .unwrap_or("?");
        match bed.apply_stdin(doc)? {
            Ok(stdout) => {
                return Err(format!(
                    "{name} was accepted; nadipam should have refused it:\n{stdout}"
                )
                .into());
            }
            Err(stderr) => {
                println!("$ kubectl apply  # {name}");
                print!("{stderr}");
            }
        }
    }
    Ok(())
}
