//! Random picks must not slow down as a subnet fills. For a /16, a /8 and an IPv6 /64 this times the first
//! 1000 random picks of an empty subnet against the last 1000 (IPv4: the subnet filled until exactly 1000
//! addresses remain, so the last pick fills it; IPv6 /64: after 100 000 allocations), prints the ratios
//! and the memory estimates, then runs the same measurements under criterion.
//!
//! `cargo bench --bench alloc` runs everything (about a minute). Under `cargo test --all-targets` (no
//! `--bench` flag) only a quick smoke run of the /16 happens.

use std::hint::black_box;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use criterion::Criterion;
use nadipam::alloc::{Allocator, Family, Strategy, SubnetLayout};
use rand::SeedableRng;
use rand::rngs::StdRng;

const PICKS: usize = 1000;

/// One subnet in two states: empty, and filled to where the measured picks are the last ones.
struct Scenario {
    name: &'static str,
    family: Family,
    empty: Allocator,
    full: Allocator,
}

fn scenario(name: &'static str, cidr: &str, family: Family, fill_to: Option<u128>) -> Scenario {
    let layout = SubnetLayout::parse(name, None, cidr, None, &[] as &[&str])
        .unwrap_or_else(|e| panic!("benchmark subnet: {e}"));
    let empty = Allocator::new(&layout);
    let mut full = empty.clone();
    let available = empty.counts().v4_available + empty.counts().v6_available;
    let target = fill_to.unwrap_or(available - PICKS as u128);
    let mut rng = StdRng::seed_from_u64(1);
    for _ in 0..target {
        full.pick(family, Strategy::Random, &mut rng)
            .unwrap_or_else(|e| panic!("filling {name}: {e}"));
    }
    Scenario {
        name,
        family,
        empty,
        full,
    }
}

/// Times `PICKS` random picks, then releases them so the allocator is back in its starting state.
fn time_picks(a: &mut Allocator, family: Family, rng: &mut StdRng) -> Duration {
    let mut got: Vec<IpAddr> = Vec::with_capacity(PICKS);
    let start = Instant::now();
    for _ in 0..PICKS {
        got.push(
            black_box(a.pick(family, Strategy::Random, rng)).unwrap_or_else(|e| panic!("{e}")),
        );
    }
    let took = start.elapsed();
    for ip in got {
        assert!(a.release(ip));
    }
    took
}

fn median(a: &mut Allocator, family: Family, rounds: usize) -> Duration {
    let mut rng = StdRng::seed_from_u64(2);
    let mut times: Vec<Duration> = (0..rounds)
        .map(|_| time_picks(a, family, &mut rng))
        .collect();
    times.sort();
    times[rounds / 2]
}

/// The quotable numbers: medians of repeated runs, plain text on stdout.
fn report(scenarios: &mut [Scenario], rounds: usize) {
    println!(
        "== nadipam allocation: first {PICKS} vs last {PICKS} random picks (median of {rounds} runs)"
    );
    for s in scenarios.iter_mut() {
        let first = median(&mut s.empty, s.family, rounds);
        let last = median(&mut s.full, s.family, rounds);
        let c = s.full.counts();
        let (using, available) = (c.v4_using + c.v6_using, c.v4_available + c.v6_available);
        println!(
            "{:>8}: first {:>9.1?} ({:>6.1} ns/pick)  last {:>9.1?} ({:>6.1} ns/pick)  ratio last/first {:.2}  \
             filled {using} of {} before the last picks  memory {} bytes ({:.1} KiB) filled, {} bytes empty",
            s.name,
            first,
            first.as_nanos() as f64 / PICKS as f64,
            last,
            last.as_nanos() as f64 / PICKS as f64,
            last.as_secs_f64() / first.as_secs_f64(),
            using + available,
            s.full.memory_bytes(),
            s.full.memory_bytes() as f64 / 1024.0,
            s.empty.memory_bytes(),
        );
    }
}

fn criterion_benches(c: &mut Criterion, scenarios: &mut [Scenario]) {
    for s in scenarios.iter_mut() {
        let mut group = c.benchmark_group(s.name);
        let family = s.family;
        for (label, a) in [("first_1000", &mut s.empty), ("last_1000", &mut s.full)] {
            let mut rng = StdRng::seed_from_u64(3);
            group.bench_function(label, |b| {
                b.iter_custom(|iters| (0..iters).map(|_| time_picks(a, family, &mut rng)).sum())
            });
        }
        group.finish();
    }
}

fn main() {
    let bench_mode = std::env::args().any(|a| a == "--bench");
    if !bench_mode {
        // `cargo test --all-targets`: prove the harness works without minutes of debug-build filling.
        let mut smoke = [scenario("v4 /16", "10.0.0.0/16", Family::V4, None)];
        report(&mut smoke, 3);
        return;
    }
    let mut scenarios = [
        scenario("v4 /16", "10.0.0.0/16", Family::V4, None),
        scenario("v4 /8", "10.0.0.0/8", Family::V4, None),
        scenario("v6 /64", "fd00::/64", Family::V6, Some(100_000)),
    ];
    report(&mut scenarios, 51);
    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    criterion_benches(&mut c, &mut scenarios);
    c.final_summary();
}
