//! The Kube-OVN `<provider>.kubernetes.io/*` requests: the first byte picks the key (provider-wide or
//! per-interface), the rest is its value, on a Pod attaching `macvlan` (provider `macvlan.default`) twice.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use nadipam::annotations::keys::{
    IP_ADDRESS, IP_POOL, LOGICAL_SWITCH, MAC_ADDRESS, NETWORKS, ROUTES, interface_key, provider_key,
};
use nadipam::fuzzing::{annotation_map, selector_and_text};

const PROVIDERS: [&str; 3] = ["macvlan.default", "attachnet.default.ovn", "dual.default"];
const FIELDS: [&str; 5] = [IP_ADDRESS, MAC_ADDRESS, IP_POOL, LOGICAL_SWITCH, ROUTES];

fuzz_target!(|data: &[u8]| {
    let Some((sel, value)) = selector_and_text(data) else {
        return;
    };
    let provider = PROVIDERS[usize::from(sel >> 4) % PROVIDERS.len()];
    let field = FIELDS[usize::from(sel & 0x7) % FIELDS.len()];
    let key = if sel & 0x8 != 0 && (field == IP_ADDRESS || field == MAC_ADDRESS) {
        interface_key(provider, field, "net2")
    } else {
        provider_key(provider, field)
    };
    let mut ann = BTreeMap::new();
    ann.insert(
        NETWORKS.to_string(),
        "macvlan, attachnet, dual@net2".to_string(),
    );
    ann.insert(key, value.to_string());
    annotation_map(&ann);
});
