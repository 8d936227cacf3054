//! Spiderpool's `ipam.spidernet.io/ippool` (first byte even) or `ipam.spidernet.io/ippools` (odd).
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use nadipam::annotations::keys::{NETWORKS, SPIDER_IPPOOL, SPIDER_IPPOOLS};
use nadipam::fuzzing::{annotation_map, selector_and_text};

fuzz_target!(|data: &[u8]| {
    let Some((sel, value)) = selector_and_text(data) else {
        return;
    };
    let key = if sel % 2 == 0 {
        SPIDER_IPPOOL
    } else {
        SPIDER_IPPOOLS
    };
    let mut ann = BTreeMap::new();
    ann.insert(NETWORKS.to_string(), "macvlan, dual".to_string());
    ann.insert(key.to_string(), value.to_string());
    annotation_map(&ann);
});
