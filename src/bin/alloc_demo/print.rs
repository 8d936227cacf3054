//! The demo's output: the subnet, the result table and the usage counts.

use nadipam::alloc::{Allocator, Family, SubnetLayout};

use crate::net::{Outcome, Row};

pub(crate) fn print_subnet(l: &SubnetLayout) {
    println!("Subnet {} ({})", l.name(), l.protocol());
    println!("  cidrBlock  {}", l.cidr_block());
    println!("  gateway    {}", l.gateways());
    for &family in l.protocol().families() {
        let excluded: Vec<String> = l.excluded(family).iter().map(|r| r.to_string()).collect();
        if let Some(usable) = l.usable(family) {
            println!(
                "  {family} usable {usable}, excluded [{}]",
                excluded.join(", ")
            );
        }
    }
    if !l.ignored_excludes().is_empty() {
        println!(
            "  ignored excludeIps (outside the subnet): {}",
            l.ignored_excludes().join(", ")
        );
    }
    println!();
}

pub(crate) fn print_results(results: &[(String, Outcome)]) {
    let rows: Vec<&Row> = results
        .iter()
        .filter_map(|(_, r)| r.as_ref().ok())
        .collect();
    let w = |f: fn(&Row) -> &str, title: &str| {
        rows.iter()
            .map(|r| f(r).len())
            .chain([title.len()])
            .max()
            .unwrap_or(0)
    };
    let (wp, ws, wi, wm) = (
        w(|r| &r.pod, "POD"),
        w(|r| &r.subnet, "SUBNET"),
        w(|r| &r.ips, "IP"),
        w(|r| &r.mac, "MAC"),
    );
    println!(
        "{:wp$}  {:ws$}  {:wi$}  {:wm$}  HOW",
        "POD", "SUBNET", "IP", "MAC"
    );
    for r in &rows {
        println!(
            "{:wp$}  {:ws$}  {:wi$}  {:wm$}  {}",
            r.pod, r.subnet, r.ips, r.mac, r.how
        );
    }
    println!();
    println!("Denied (the admission response would carry this message):");
    for (request, r) in results {
        if let Err(msg) = r {
            println!("  {request}\n      {msg}");
        }
    }
    println!();
}

pub(crate) fn print_counts(allocs: &[&Allocator]) {
    println!("Usage");
    for a in allocs {
        let c = a.counts();
        let l = a.layout();
        print!("  {:8}", l.name());
        if l.protocol().has(Family::V4) {
            print!("  IPv4 using {} available {}", c.v4_using, c.v4_available);
        }
        if l.protocol().has(Family::V6) {
            print!("  IPv6 using {} available {}", c.v6_using, c.v6_available);
        }
        println!("  ({} bytes of allocator state)", a.memory_bytes());
    }
}
