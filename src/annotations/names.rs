//! The name rules Kubernetes and Linux impose on names carried inside annotations.
//!
//! Checked here, at admission, so a typo is refused with the rule spelled out instead of surfacing later as
//! a "not found" on the node.

/// What a valid namespace or network (NetworkAttachmentDefinition) name looks like.
pub(crate) const LABEL_RULE: &str = "a DNS-1123 label: 1-63 lower-case letters, digits or '-', starting and ending with a letter or digit";

/// What a valid object name (IPPool, Subnet, SpiderIPPool) looks like.
pub(crate) const SUBDOMAIN_RULE: &str = "a DNS-1123 subdomain: at most 253 characters of dot-separated lower-case labels of letters, digits or '-'";

/// What a valid interface name looks like. Stricter than Linux (no leading/trailing punctuation) because
/// the name also becomes part of an annotation key (`ip_address.<ifname>`).
pub(crate) const IFNAME_RULE: &str =
    "1-15 letters, digits, '-', '_' or '.', starting and ending with a letter or digit";

pub(crate) fn is_dns1123_label(s: &str) -> bool {
    let b = s.as_bytes();
    match (b.first(), b.last()) {
        (Some(first), Some(last)) => {
            b.len() <= 63
                && first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && b.iter()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        }
        _ => false,
    }
}

pub(crate) fn is_dns1123_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns1123_label)
}

pub(crate) fn is_ifname(s: &str) -> bool {
    let b = s.as_bytes();
    match (b.first(), b.last()) {
        (Some(first), Some(last)) => {
            b.len() <= 15
                && first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && b.iter()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        for ok in ["a", "macvlan", "kube-system", "a1", &"a".repeat(63)] {
            assert!(is_dns1123_label(ok), "{ok}");
        }
        for bad in [
            "",
            "-a",
            "a-",
            "Mac",
            "a_b",
            "a.b",
            "mac vlan",
            &"a".repeat(64),
        ] {
            assert!(!is_dns1123_label(bad), "{bad}");
        }
    }

    #[test]
    fn subdomains() {
        for ok in ["ippool-test", "a.b-c.d", "10.0.0"] {
            assert!(is_dns1123_subdomain(ok), "{ok}");
        }
        for bad in ["", "a..b", ".a", "A", "a/b", &"a.".repeat(127)] {
            assert!(!is_dns1123_subdomain(bad), "{bad}");
        }
    }

    #[test]
    fn interface_names() {
        for ok in ["eth0", "net1", "br-1", "vlan.100", "a_b", "ABCDEFGHIJKLMNO"] {
            assert!(is_ifname(ok), "{ok}");
        }
        for bad in [
            "",
            "-eth",
            "eth0-",
            "a/b",
            "a b",
            "ABCDEFGHIJKLMNOP",
            "eth:0",
        ] {
            assert!(!is_ifname(bad), "{bad}");
        }
    }
}
