//! The range and IP-entry parsers of alloc, and a Subnet layout built from them: line 1 is a cidrBlock,
//! line 2 a gateway, the other lines excludeIps entries; the first byte picks the protocol.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nadipam::alloc::{Allocator, Protocol, Strategy, SubnetLayout, parse_entry};
use nadipam::fuzzing::selector_and_text;

fuzz_target!(|data: &[u8]| {
    let Some((sel, text)) = selector_and_text(data) else {
        return;
    };
    let lines: Vec<&str> = text.split('\n').collect();
    for line in &lines {
        if let Ok(range) = parse_entry(line) {
            assert!(
                range.start() <= range.end() || range.start().is_ipv4() != range.end().is_ipv4()
            );
            assert!(range.contains(range.start()) && range.contains(range.end()));
            // Display is Kube-OVN's form, and parses back to the same range.
            let shown = range.to_string();
            assert_eq!(
                parse_entry(&shown).ok(),
                Some(range),
                "{line:?} shown as {shown}"
            );
        }
    }
    let protocol = match sel % 4 {
        0 => None,
        1 => Some(Protocol::IPv4),
        2 => Some(Protocol::IPv6),
        _ => Some(Protocol::Dual),
    };
    let cidr = lines.first().copied().unwrap_or_default();
    let gateway = lines.get(1).copied();
    let excludes = lines.get(2..).unwrap_or_default();
    let Ok(layout) = SubnetLayout::parse("fuzz", protocol, cidr, gateway, excludes) else {
        return;
    };
    let mut alloc = Allocator::new(&layout);
    let mut rng = nadipam::fuzzing::seeded_rng();
    for _ in 0..3 {
        let Ok(pair) = alloc.pick_pair(Strategy::Sequential, &mut rng) else {
            break;
        };
        for ip in pair.addrs() {
            assert!(layout.contains(ip), "{ip} outside {}", layout.describe());
            assert!(
                !layout.is_reserved(ip),
                "{ip} reserved in {}",
                layout.describe()
            );
            assert!(alloc.check(ip).is_err(), "{ip} picked but still free");
        }
    }
});
