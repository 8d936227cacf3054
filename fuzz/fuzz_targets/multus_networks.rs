//! The Multus annotations: the input is the value of `k8s.v1.cni.cncf.io/networks` (short or JSON form),
//! of `v1.multus-cni.io/default-network`, or of both (first byte).
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use nadipam::annotations::keys::{DEFAULT_NETWORK, NETWORKS};
use nadipam::fuzzing::{annotation_map, selector_and_text};

fuzz_target!(|data: &[u8]| {
    let Some((mode, value)) = selector_and_text(data) else {
        return;
    };
    let mut ann = BTreeMap::new();
    match mode % 3 {
        0 => {
            ann.insert(NETWORKS.to_string(), value.to_string());
        }
        1 => {
            ann.insert(DEFAULT_NETWORK.to_string(), value.to_string());
        }
        _ => {
            ann.insert(DEFAULT_NETWORK.to_string(), "default/macvlan".to_string());
            ann.insert(NETWORKS.to_string(), value.to_string());
        }
    }
    annotation_map(&ann);
});
