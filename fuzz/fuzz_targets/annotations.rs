//! A whole Pod annotation map (`key=value` per line), every dialect at once, then the Pod admission.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nadipam::fuzzing::{annotation_map, annotations_from_text};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    annotation_map(&annotations_from_text(text));
});
