//! The name rules validators check that the apiserver does not: DNS-1123 labels and Subnet providers.

/// Kubernetes' DNS-1123 label: namespaces, and each dot-separated part of an object name.
pub(crate) fn is_dns1123_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

/// A Subnet provider: `ovn`, `<nad>.<namespace>` or `<nad>.<namespace>.ovn`. It prefixes annotation keys
/// (`<provider>.kubernetes.io/ip_address`), so it must be a DNS subdomain short enough for that.
pub(crate) fn is_provider(s: &str) -> bool {
    const KEY_ROOM: usize = 253 - ".kubernetes.io".len();
    s == crate::annotations::keys::OVN_PROVIDER
        || (s.len() <= KEY_ROOM && s.split('.').count() >= 2 && s.split('.').all(is_dns1123_label))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn providers() {
        for ok in ["ovn", "macvlan.default", "attachnet.default.ovn", "a.b.c.d"] {
            assert!(is_provider(ok), "{ok}");
        }
        let long = format!("{}.default", "a.".repeat(120));
        for bad in [
            "",
            "macvlan",
            "Mac.default",
            "a..b",
            "a_b.default",
            ".a",
            "a.",
            &long,
        ] {
            assert!(!is_provider(bad), "{bad}");
        }
    }
}
