//! `alloc-demo`: the allocation core on its own, no cluster needed. Builds a subnet from flags (defaults are
//! the Kube-OVN guide's macvlan subnet), allocates the way the webhook does for each kind of Pod (random,
//! fixed, ip_pool list for a StatefulSet and a Deployment, dual stack), shows the denials a user would see,
//! and prints the result as a table.

use std::net::IpAddr;
use std::process::ExitCode;

use clap::Parser;
use nadipam::alloc::{Family, IpPair, Mac, Strategy, SubnetLayout, statefulset_ordinal};
use rand::SeedableRng;
use rand::rngs::StdRng;

mod net;
mod print;

use net::{Net, Outcome, Row};
use print::{print_counts, print_results, print_subnet};

#[derive(Parser, Debug)]
#[command(
    version,
    about = "Allocate addresses and MACs from a subnet the way the nadipam webhook does"
)]
struct Args {
    /// Subnet name, used in messages.
    #[arg(long, default_value = "macvlan")]
    name: String,
    /// IPv4, IPv6 or Dual; inferred from --cidr when omitted.
    #[arg(long)]
    protocol: Option<String>,
    /// cidrBlock: one CIDR, or v4cidr,v6cidr for Dual.
    #[arg(long, default_value = "172.17.0.0/16")]
    cidr: String,
    /// gateway: one address, or v4,v6 for Dual; the first usable address of each CIDR when omitted
    /// (172.17.0.1 for the default cidrBlock, as in the guide).
    #[arg(long)]
    gateway: Option<String>,
    /// excludeIps entry (a..b, a-b, CIDR or address); repeat for more.
    #[arg(long = "exclude", default_value = "172.17.0.0..172.17.0.10")]
    excludes: Vec<String>,
    /// Pods that get a random address and MAC.
    #[arg(long, default_value_t = 5)]
    count: u32,
    /// The fixed address of the `static-ip` Pod (ip_address annotation).
    #[arg(long, default_value = "172.17.0.100")]
    fixed: IpAddr,
    /// The fixed MAC of the `static-ip` Pod (mac_address annotation).
    #[arg(long, default_value = "00:00:00:53:6B:BB")]
    fixed_mac: String,
    /// ip_pool list of the Deployment `static-workload` (addresses, or v4,v6 pairs separated by ';').
    #[arg(long, default_value = "172.17.0.200,172.17.0.201,172.17.0.202")]
    deployment_pool: String,
    /// ip_pool list of the StatefulSet `web`; one Pod more than the list holds is created to show the denial.
    #[arg(long, default_value = "172.17.0.210,172.17.0.211,172.17.0.212")]
    statefulset_pool: String,
    /// cidrBlock of a second, dual-stack subnet for the pair demonstration.
    #[arg(long, default_value = "10.20.0.0/24,fd00:20::/120")]
    dual_cidr: String,
    /// RNG seed, for reproducible output.
    #[arg(long)]
    seed: Option<u64>,
}

fn parse_list(flag: &str, raw: &str) -> Result<Vec<IpPair>, String> {
    let entries: Vec<&str> = if raw.contains(';') {
        raw.split(';').collect()
    } else {
        raw.split(',').collect()
    };
    entries
        .iter()
        .map(|entry| {
            let addrs = entry
                .split(',')
                .map(|a| a.trim().parse::<IpAddr>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| {
                    format!("--{flag}: entry {entry:?} is not an address or a v4,v6 pair")
                })?;
            IpPair::from_addrs(addrs)
                .ok_or_else(|| format!("--{flag}: entry {entry:?} has two addresses of one family"))
        })
        .collect()
}

fn run(args: Args) -> Result<(), String> {
    let mut rng = match args.seed {
        Some(seed) => StdRng::seed_from_u64(seed),
        None => rand::make_rng(),
    };
    let protocol = args
        .protocol
        .as_deref()
        .map(str::parse)
        .transpose()
        .map_err(|e| format!("--protocol: {e}"))?;
    let layout = SubnetLayout::parse(
        &args.name,
        protocol,
        &args.cidr,
        args.gateway.as_deref(),
        &args.excludes,
    )
    .map_err(|e| e.to_string())?;
    let fixed_mac: Mac = args
        .fixed_mac
        .parse()
        .map_err(|e| format!("--fixed-mac: {e}"))?;
    let deployment_pool = parse_list("deployment-pool", &args.deployment_pool)?;
    let statefulset_pool = parse_list("statefulset-pool", &args.statefulset_pool)?;
    let dual_layout = SubnetLayout::parse("dual", None, &args.dual_cidr, None, &[] as &[&str])
        .map_err(|e| format!("--dual-cidr: {e}"))?;

    print_subnet(&layout);
    let mut net = Net::new(&layout);
    let mut results: Vec<(String, Outcome)> = Vec::new();

    for i in 0..args.count {
        let pod = format!("random-{i}");
        let got = net
            .alloc
            .pick_pair(Strategy::Random, &mut rng)
            .and_then(|pair| {
                let mac = net.take_mac_after_pick(&pair, &mut rng)?;
                Ok(net.row(&pod, pair, mac, "random address and MAC".into()))
            });
        results.push((pod, got.map_err(|e| e.to_string())));
    }

    let fixed = IpPair::from_addrs([args.fixed]).unwrap_or_default();
    for pod in ["static-ip", "static-ip-copy"] {
        let got = net
            .take(&fixed, Some(fixed_mac), &mut rng)
            .map(|mac| net.row(pod, fixed, mac, "ip_address + mac_address".into()));
        results.push((
            format!("{pod} (ip_address {fixed})"),
            got.map_err(|e| e.to_string()),
        ));
    }

    for i in 0..=statefulset_pool.len() {
        let pod = format!("web-{i}");
        let ordinal = statefulset_ordinal(&pod);
        let got = net
            .alloc
            .select_from_list(&statefulset_pool, ordinal)
            .and_then(|pair| {
                let mac = net.take(&pair, None, &mut rng)?;
                Ok(net.row(&pod, pair, mac, format!("ip_pool, StatefulSet ordinal {i}")))
            });
        results.push((
            format!("{pod} (StatefulSet ip_pool)"),
            got.map_err(|e| e.to_string()),
        ));
    }

    for suffix in ["6d9f8-2xk4p", "6d9f8-8qz7m", "6d9f8-c4w9t", "6d9f8-t5n2v"] {
        let pod = format!("static-workload-{suffix}");
        let got = net
            .alloc
            .select_from_list(&deployment_pool, statefulset_ordinal(&pod))
            .and_then(|pair| {
                let mac = net.take(&pair, None, &mut rng)?;
                Ok(net.row(&pod, pair, mac, "ip_pool, first free entry".into()))
            });
        results.push((
            format!("{pod} (Deployment ip_pool)"),
            got.map_err(|e| e.to_string()),
        ));
    }

    for (what, ip) in probes(&layout) {
        let got = net.alloc.check(ip).map(|()| Row {
            pod: format!("fixed-{what}"),
            subnet: layout.name().to_string(),
            ips: ip.to_string(),
            mac: "-".into(),
            how: "would be accepted (not reserved)".into(),
        });
        results.push((
            format!("fixed-{what} (ip_address {ip})"),
            got.map_err(|e| e.to_string()),
        ));
    }

    let mut dual = Net::new(&dual_layout);
    for i in 0..2 {
        let pod = format!("dual-{i}");
        let got = dual
            .alloc
            .pick_pair(Strategy::Random, &mut rng)
            .and_then(|pair| {
                let mac = dual.take_mac_after_pick(&pair, &mut rng)?;
                Ok(dual.row(&pod, pair, mac, "dual-stack pair".into()))
            });
        results.push((pod, got.map_err(|e| e.to_string())));
    }
    if let Some(v6) = first_allocated_v6(&results) {
        // A pair whose IPv6 half is taken: the IPv4 half must not stay reserved.
        let v4 = dual_layout
            .usable(Family::V4)
            .map(|r| r.end())
            .ok_or("--dual-cidr has no IPv4 CIDR")?;
        let pair = IpPair::from_addrs([v4, v6]).unwrap_or_default();
        let got = dual
            .take(&pair, None, &mut rng)
            .map(|mac| dual.row("dual-fixed", pair, mac, "fixed pair".into()));
        let rolled_back = !dual.alloc.is_allocated(v4);
        results.push((
            format!("dual-fixed (ip_address {pair}; {v4} rolled back: {rolled_back})"),
            got.map_err(|e| e.to_string()),
        ));
    }

    print_results(&results);
    print_counts(&[&net.alloc, &dual.alloc]);
    Ok(())
}

/// Addresses a user might ask for that the subnet must refuse: an excluded one, the gateway, one outside
/// and the broadcast address, of the subnet's first family.
fn probes(l: &SubnetLayout) -> Vec<(&'static str, IpAddr)> {
    let Some(&family) = l.protocol().families().first() else {
        return Vec::new();
    };
    let outside = match family {
        Family::V4 => ["192.0.2.1", "198.51.100.1"],
        Family::V6 => ["2001:db8::1", "2001:db8:1::1"],
    }
    .iter()
    .filter_map(|a| a.parse::<IpAddr>().ok())
    .find(|a| !l.contains(*a));
    let excluded = l
        .excluded(family)
        .iter()
        .flat_map(|r| [r.end(), r.start()])
        .find(|a| Some(*a) != l.gateway(family));
    let broadcast = l
        .cidr(family)
        .filter(|net| net.max_prefix_len() - net.prefix_len() >= 2)
        .map(|net| net.broadcast());
    [
        ("excluded", excluded),
        ("gateway", l.gateway(family)),
        ("outside", outside),
        ("broadcast", broadcast),
    ]
    .into_iter()
    .filter_map(|(what, ip)| Some((what, ip?)))
    .collect()
}

fn first_allocated_v6(results: &[(String, Outcome)]) -> Option<IpAddr> {
    results
        .iter()
        .filter_map(|(_, r)| r.as_ref().ok())
        .filter(|row| row.subnet == "dual")
        .find_map(|row| row.ips.split(',').nth(1)?.parse().ok())
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("alloc-demo: {e}");
            ExitCode::from(2)
        }
    }
}
