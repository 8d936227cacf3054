//! A NAD's `spec.config` as nadipam reads it (single plugin, conflist, Kube-OVN-type attachment), and the
//! NAD object itself as JSON.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nadipam::api::{NetworkAttachmentDefinition, ipam_view};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match ipam_view(text) {
        Ok(view) => {
            let provider = view.effective_provider("macvlan", "default");
            assert!(!provider.is_empty());
            if view.is_kube_ovn_attachment() {
                assert!(view.is_ours());
            }
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
    if let Ok(nad) = serde_json::from_slice::<NetworkAttachmentDefinition>(data) {
        let _ = nad.ipam_view().map(|v| nad.provider(&v));
    }
});
