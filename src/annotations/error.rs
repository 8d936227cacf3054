//! The one error type of the annotation model, and the bounded rendering of hostile values inside it.

use std::fmt;
use std::net::IpAddr;

use crate::alloc::MacError;

/// Values longer than this many characters are cut in messages, so a 64 KiB annotation cannot flood a log
/// line or an admission response.
const SHOWN_CHARS: usize = 100;

/// Reasons coming from parsers (serde) are cut to this many characters for the same reason.
const REASON_CHARS: usize = 200;

/// A user-supplied value as it appears in an error message: quoted, control characters escaped, and cut to
/// about 100 characters with an ellipsis and the total length when longer.
#[derive(Clone, PartialEq, Eq)]
pub struct Shown(Box<str>);

impl Shown {
    pub(crate) fn new(raw: &str) -> Shown {
        let count = raw.chars().count();
        if count <= SHOWN_CHARS {
            return Shown(format!("{raw:?}").into());
        }
        let head: String = raw.chars().take(SHOWN_CHARS).collect();
        Shown(format!("{:?} ({} bytes in total)", format!("{head}…"), raw.len()).into())
    }
}

impl fmt::Display for Shown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Shown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Cuts a parser's explanation (which may quote the input) to a bounded length.
pub(crate) fn clip(reason: impl fmt::Display) -> String {
    let text = reason.to_string();
    if text.chars().count() <= REASON_CHARS {
        return text;
    }
    let head: String = text.chars().take(REASON_CHARS).collect();
    format!("{head}…")
}

/// Refuses a value that cannot be the JSON list (`[`) or object (`{`) a key needs, before the parser's
/// less helpful "invalid type" message (which also names internal types).
pub(crate) fn json_shape(
    key: &str,
    raw: &str,
    open: char,
    expected: &'static str,
) -> Result<(), AnnotationError> {
    if raw.starts_with(open) {
        return Ok(());
    }
    let shape = if open == '[' {
        "list [...]"
    } else {
        "object {...}"
    };
    Err(AnnotationError::Json {
        key: key.into(),
        value: Shown::new(raw),
        expected,
        reason: format!("a JSON {shape} is required").into(),
    })
}

/// Everything that can be wrong with what a Pod (or a pod template) says in its annotations, or with what a
/// reader finds in the annotations nadipam wrote. Every message names the annotation key, the offending value
/// and what would be accepted instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnnotationError {
    #[error(
        "annotation {key}: value {value} is larger than the {max} bytes nadipam accepts in one annotation; shorten it"
    )]
    TooLarge {
        key: Box<str>,
        value: Shown,
        max: usize,
    },

    #[error(
        "annotation {key}: {count} network attachments requested; at most {max} are accepted per Pod"
    )]
    TooMany {
        key: Box<str>,
        count: usize,
        max: usize,
    },

    #[error(
        "annotation {key}: {value} is not a valid network reference (expected name, namespace/name or namespace/name@interface; names are DNS-1123 labels)"
    )]
    NetworkRef { key: Box<str>, value: Shown },

    #[error(
        "annotation {key}: {value} names no namespace and the Pod's namespace {pod_namespace} is not a DNS-1123 label; write namespace/name"
    )]
    NoNamespace {
        key: Box<str>,
        value: Shown,
        pod_namespace: Shown,
    },

    #[error(
        "annotation {key}: interface {value} is not valid (expected {})",
        crate::annotations::names::IFNAME_RULE
    )]
    Interface { key: Box<str>, value: Shown },

    #[error("annotation {key}: {value} is not {expected}: {reason}")]
    Json {
        key: Box<str>,
        value: Shown,
        expected: &'static str,
        reason: Box<str>,
    },

    #[error("annotation {key}: {field} {value} is not valid (expected {expected})")]
    Field {
        key: Box<str>,
        field: Box<str>,
        value: Shown,
        expected: Box<str>,
    },

    #[error(
        "annotation {key}: {value} is a CIDR; give the bare address (e.g. {addr}) or v4,v6 for dual stack"
    )]
    Cidr {
        key: Box<str>,
        value: Box<str>,
        addr: IpAddr,
    },

    #[error("annotation {key}: {value} {problem}")]
    Invalid {
        key: Box<str>,
        value: Shown,
        problem: Box<str>,
    },

    #[error("annotation {key}: {value} is not a usable MAC address: {}", mac_reason(.source))]
    Mac {
        key: Box<str>,
        value: Shown,
        source: MacError,
    },

    #[error("annotation {key}: {}", duplicate_text(.network, .interface.as_deref()))]
    Duplicate {
        key: Box<str>,
        network: Box<str>,
        interface: Option<Box<str>>,
    },

    #[error(
        "annotation {key}: interface {ifname} would be used by both {first} and {second}; give them distinct interface names (Multus names unnamed secondary interfaces net1, net2, ... by their position in the list, and the default network eth0)"
    )]
    InterfaceClash {
        key: Box<str>,
        ifname: Box<str>,
        first: Box<str>,
        second: Box<str>,
    },

    #[error(
        "annotation {key}: both {first} and {second} set an {family} default-route; at most one attachment per address family may carry the default route"
    )]
    DefaultRouteClash {
        key: Box<str>,
        family: &'static str,
        first: Box<str>,
        second: Box<str>,
    },

    #[error(
        "annotation {key}: set together with {other}; give either a fixed address (ip_address) or a pool (ip_pool), not both"
    )]
    Conflict { key: Box<str>, other: String },

    #[error(
        "annotation {key}: two allocations for the same provider would write {first} and {second}; give each attachment of a shared network its own interface name"
    )]
    ResultConflict {
        key: Box<str>,
        first: Shown,
        second: Shown,
    },

    #[error(
        "provider {value} is not valid (expected <nad>.<namespace>, <nad>.<namespace>.ovn or ovn, a DNS-1123 subdomain)"
    )]
    Provider { value: Shown },
}

/// The part of a MAC error that explains the rule; the value itself is shown (bounded) by the caller.
fn mac_reason(e: &MacError) -> &'static str {
    match e {
        MacError::Malformed(_) => "expected six hex octets such as 00:00:00:53:6b:bb",
        MacError::NotUnicast(_) => {
            "it is multicast or broadcast; an interface needs a unicast MAC (lowest bit of the first octet clear)"
        }
        MacError::Zero(_) => "the all-zero MAC cannot be assigned to an interface",
    }
}

fn duplicate_text(network: &str, interface: Option<&str>) -> String {
    match interface {
        Some(i) => format!("{network}@{i} is listed twice; remove the duplicate"),
        None => format!(
            "{network} is attached twice without interface names; attach it once, or name each interface (e.g. {network}@net1 and {network}@net2) so each gets its own address"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_values_are_quoted_and_escaped() {
        assert_eq!(
            Shown::new("default/mac vlan").to_string(),
            "\"default/mac vlan\""
        );
        assert_eq!(Shown::new("a\nb\"c").to_string(), "\"a\\nb\\\"c\"");
    }

    #[test]
    fn long_values_are_cut_with_length() {
        let long = "x".repeat(70_000);
        let shown = Shown::new(&long).to_string();
        assert!(shown.len() < 140, "{shown}");
        assert!(
            shown.starts_with(&format!("\"{}…\"", "x".repeat(100))),
            "{shown}"
        );
        assert!(shown.ends_with("(70000 bytes in total)"), "{shown}");
        // Multi-byte characters are cut on character boundaries.
        let wide = "é".repeat(150);
        assert!(
            Shown::new(&wide)
                .to_string()
                .contains("(300 bytes in total)")
        );
    }

    #[test]
    fn stays_small() {
        // Callers embed this error in their own (CNI, webhook); boxed text keeps theirs under clippy's
        // large-error limit.
        assert!(std::mem::size_of::<AnnotationError>() <= 72);
    }

    #[test]
    fn reasons_are_clipped() {
        assert_eq!(clip("short"), "short");
        let c = clip("y".repeat(1000));
        assert_eq!(c.chars().count(), REASON_CHARS + 1);
        assert!(c.ends_with('…'));
    }
}
