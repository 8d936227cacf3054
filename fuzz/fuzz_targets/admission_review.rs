//! An AdmissionReview body as the apiserver sends it; the first byte picks the endpoint (Pods, NADs,
//! Subnets, IPPools, workloads). Decoded and decided against nadipam's in-memory test cluster.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nadipam::fuzzing::{Endpoint, admission};

fuzz_target!(|data: &[u8]| {
    let Some((&sel, body)) = data.split_first() else {
        return;
    };
    admission(Endpoint::from_byte(sel), body);
});
