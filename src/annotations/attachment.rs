//! The Multus annotations (`networks`, `default-network`) parsed into one ordered list of attachment requests.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::Deserialize;

use super::address::{family, parse_maybe_prefixed, unusable};
use super::error::{AnnotationError, Shown, clip};
use super::keys::{DEFAULT_NETWORK, NETWORKS};
use super::lookup::{MAX_ATTACHMENTS, value};
use super::names::{LABEL_RULE, is_dns1123_label, is_dns1123_subdomain, is_ifname};
use super::network::{NetworkRef, default_namespace, parse_text_ref};
use crate::alloc::{IpPair, Mac};

/// The interface the default network always gets.
pub const PRIMARY_IFNAME: &str = "eth0";

/// Longest IPAMClaim name nadipam serves: the name is the name part of a Pod label.
pub const MAX_CLAIM_NAME: usize = 63;

const JSON_EXPECTED: &str = "a JSON list of network selection elements (e.g. [{\"name\": \"macvlan\", \"namespace\": \"default\"}])";

/// One network the Pod asks to be attached to, with what it asks for on that attachment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttachmentRequest {
    pub network: NetworkRef,
    /// The interface name the user gave, if any; it selects the per-interface keys (`ip_address.<if>`).
    pub interface: Option<String>,
    /// The name Multus will give the interface: the explicit one, `eth0` for the default network, otherwise
    /// `net<position>` (1-based position in the networks list). Used to match Spiderpool entries.
    pub ifname: String,
    /// True for the `v1.multus-cni.io/default-network` attachment (the Pod's primary interface).
    pub is_default: bool,
    /// Fixed addresses from the JSON form's `ips` (prefix dropped), at most one per family.
    pub ips: Vec<IpAddr>,
    pub mac: Option<Mac>,
    /// Gateways from the JSON form's `default-route`, at most one per family.
    pub default_route: Vec<IpAddr>,
    /// The JSON form's `ipam-claim-reference`: the IPAMClaim (in the Pod's namespace) that holds this
    /// attachment's addresses beyond the Pod's life.
    pub claim: Option<String>,
}

impl AttachmentRequest {
    /// The fixed addresses as a pair; `None` when no `ips` were given.
    pub fn ip_pair(&self) -> Option<IpPair> {
        if self.ips.is_empty() {
            return None;
        }
        IpPair::from_addrs(self.ips.iter().copied())
    }

    /// `ns/name` or `ns/name@if`, as users write it.
    fn label(&self) -> String {
        match &self.interface {
            Some(i) => format!("{}@{i}", self.network),
            None if self.is_default => format!("{} (default network)", self.network),
            None => self.network.to_string(),
        }
    }
}

/// A Multus NetworkSelectionElement; fields nadipam does not use (cni-args, portMappings, ...) are ignored.
#[derive(Deserialize)]
struct Element {
    name: Option<String>,
    namespace: Option<String>,
    interface: Option<String>,
    ips: Option<Vec<String>>,
    mac: Option<String>,
    #[serde(rename = "default-route")]
    default_route: Option<Vec<String>>,
    #[serde(rename = "ipam-claim-reference")]
    ipam_claim_reference: Option<String>,
}

/// An entry before its position is known.
pub(super) struct Parsed {
    pub(super) network: NetworkRef,
    pub(super) interface: Option<String>,
    ips: Vec<IpAddr>,
    mac: Option<Mac>,
    default_route: Vec<IpAddr>,
    claim: Option<String>,
}

/// Every attachment the Pod asks for: the default network first (if any), then the networks in order.
/// A reference without a namespace resolves to `pod_namespace`.
pub fn attachments(
    annotations: &BTreeMap<String, String>,
    pod_namespace: &str,
) -> Result<Vec<AttachmentRequest>, AnnotationError> {
    let mut out = Vec::new();
    if let Some(v) = value(annotations, DEFAULT_NETWORK)? {
        out.push(default_attachment(v, pod_namespace)?);
    }
    if let Some(v) = value(annotations, NETWORKS)? {
        for (i, p) in parse_list(NETWORKS, v, pod_namespace)?
            .into_iter()
            .enumerate()
        {
            let ifname = p
                .interface
                .clone()
                .unwrap_or_else(|| format!("net{}", i + 1));
            out.push(AttachmentRequest {
                network: p.network,
                interface: p.interface,
                ifname,
                is_default: false,
                ips: p.ips,
                mac: p.mac,
                default_route: p.default_route,
                claim: p.claim,
            });
        }
    }
    if out.len() > MAX_ATTACHMENTS {
        return Err(AnnotationError::TooMany {
            key: NETWORKS.into(),
            count: out.len(),
            max: MAX_ATTACHMENTS,
        });
    }
    check_duplicates(&out)?;
    check_interfaces(&out)?;
    check_claims(&out)?;
    check_default_routes(&out)?;
    Ok(out)
}

fn default_attachment(v: &str, pod_namespace: &str) -> Result<AttachmentRequest, AnnotationError> {
    let mut list = parse_list(DEFAULT_NETWORK, v, pod_namespace)?;
    if list.len() != 1 {
        return Err(AnnotationError::Invalid {
            key: DEFAULT_NETWORK.into(),
            value: Shown::new(v),
            problem: format!(
                "names {} networks; the default network is exactly one (e.g. default/macvlan)",
                list.len()
            )
            .into(),
        });
    }
    let p = list.remove(0);
    if let Some(i) = p.interface.as_deref()
        && i != PRIMARY_IFNAME
    {
        return Err(AnnotationError::Invalid {
            key: DEFAULT_NETWORK.into(),
            value: Shown::new(v),
            problem: format!(
                "names interface {i}; the default network is always the Pod's primary interface {PRIMARY_IFNAME}, so drop the interface name"
            ).into(),
        });
    }
    Ok(AttachmentRequest {
        network: p.network,
        interface: None,
        ifname: PRIMARY_IFNAME.to_string(),
        is_default: true,
        ips: p.ips,
        mac: p.mac,
        default_route: p.default_route,
        claim: p.claim,
    })
}

/// The text form (`a, ns/b@net1`) or the JSON list form.
pub(super) fn parse_list(
    key: &str,
    v: &str,
    pod_namespace: &str,
) -> Result<Vec<Parsed>, AnnotationError> {
    if v.starts_with('[') {
        return parse_json(key, v, pod_namespace);
    }
    if v.starts_with('{') {
        return Err(AnnotationError::Json {
            key: key.into(),
            value: Shown::new(v),
            expected: JSON_EXPECTED,
            reason: "a single object must be wrapped in [ ]".into(),
        });
    }
    let entries: Vec<&str> = v.split(',').map(str::trim).collect();
    if entries.len() > MAX_ATTACHMENTS {
        return Err(AnnotationError::TooMany {
            key: key.into(),
            count: entries.len(),
            max: MAX_ATTACHMENTS,
        });
    }
    if entries.iter().any(|e| e.is_empty()) {
        return Err(AnnotationError::Invalid {
            key: key.into(),
            value: Shown::new(v),
            problem: "has an empty entry; separate network references with single commas (e.g. default/macvlan,default/vlan@net2)".into(),
        });
    }
    entries
        .into_iter()
        .map(|entry| {
            let (network, interface) = parse_text_ref(key, entry, pod_namespace)?;
            Ok(Parsed {
                network,
                interface,
                ips: Vec::new(),
                mac: None,
                default_route: Vec::new(),
                claim: None,
            })
        })
        .collect()
}

fn parse_json(key: &str, v: &str, pod_namespace: &str) -> Result<Vec<Parsed>, AnnotationError> {
    let elements: Vec<Element> = serde_json::from_str(v).map_err(|e| AnnotationError::Json {
        key: key.into(),
        value: Shown::new(v),
        expected: JSON_EXPECTED,
        reason: clip(e).into(),
    })?;
    if elements.len() > MAX_ATTACHMENTS {
        return Err(AnnotationError::TooMany {
            key: key.into(),
            count: elements.len(),
            max: MAX_ATTACHMENTS,
        });
    }
    elements
        .into_iter()
        .enumerate()
        .map(|(i, el)| element(key, i, el, pod_namespace))
        .collect()
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.trim().is_empty())
}

fn element(
    key: &str,
    i: usize,
    el: Element,
    pod_namespace: &str,
) -> Result<Parsed, AnnotationError> {
    let field = |name: &str, value: &str, expected: &str| AnnotationError::Field {
        key: key.into(),
        field: format!("[{i}].{name}").into(),
        value: Shown::new(value),
        expected: expected.into(),
    };
    let name = non_empty(el.name).unwrap_or_default();
    if !is_dns1123_label(&name) {
        return Err(field(
            "name",
            &name,
            &format!(
                "the network's name (required), {LABEL_RULE}; the namespace goes in \"namespace\""
            ),
        ));
    }
    let namespace = match non_empty(el.namespace) {
        Some(ns) if is_dns1123_label(&ns) => ns,
        Some(ns) => return Err(field("namespace", &ns, LABEL_RULE)),
        None => default_namespace(key, &name, pod_namespace)?,
    };
    let interface = match non_empty(el.interface) {
        Some(ifname) if !is_ifname(&ifname) => {
            return Err(AnnotationError::Interface {
                key: key.into(),
                value: Shown::new(&ifname),
            });
        }
        other => other,
    };
    let mut ips = Vec::new();
    for s in el.ips.unwrap_or_default() {
        let ip = parse_maybe_prefixed(s.trim()).ok_or_else(|| {
            field(
                "ips",
                &s,
                "a unicast IP address, optionally with a /prefix (e.g. 10.0.0.5/24)",
            )
        })?;
        ips.push(ip);
    }
    one_per_family(&ips)
        .map_err(|list| field("ips", &list, "at most one IPv4 and one IPv6 address"))?;
    let mac = match non_empty(el.mac) {
        Some(m) => Some(
            m.trim()
                .parse::<Mac>()
                .map_err(|source| AnnotationError::Mac {
                    key: key.into(),
                    value: Shown::new(&m),
                    source,
                })?,
        ),
        None => None,
    };
    let mut default_route = Vec::new();
    for s in el.default_route.unwrap_or_default() {
        let gw = s
            .trim()
            .parse::<IpAddr>()
            .ok()
            .filter(|ip| unusable(*ip).is_none())
            .ok_or_else(|| {
                field(
                    "default-route",
                    &s,
                    "a gateway IP address such as 172.17.0.1",
                )
            })?;
        default_route.push(gw);
    }
    one_per_family(&default_route).map_err(|list| {
        field(
            "default-route",
            &list,
            "at most one IPv4 and one IPv6 gateway",
        )
    })?;
    let claim = match non_empty(el.ipam_claim_reference) {
        Some(c) if !is_dns1123_subdomain(&c) || c.len() > MAX_CLAIM_NAME => {
            return Err(field(
                "ipam-claim-reference",
                &c,
                &format!(
                    "the name of an IPAMClaim in the Pod's namespace: lower-case letters, digits, '-' and '.', \
                     at most {MAX_CLAIM_NAME} characters (nadipam labels the Pod with it)"
                ),
            ));
        }
        other => other,
    };
    Ok(Parsed {
        network: NetworkRef { namespace, name },
        interface,
        ips,
        mac,
        default_route,
        claim,
    })
}

/// `Err(list as text)` when two addresses share a family.
fn one_per_family(addrs: &[IpAddr]) -> Result<(), String> {
    match IpPair::from_addrs(addrs.iter().copied()) {
        Some(_) => Ok(()),
        None => Err(addrs
            .iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .join(",")),
    }
}

fn check_duplicates(list: &[AttachmentRequest]) -> Result<(), AnnotationError> {
    for (i, a) in list.iter().enumerate() {
        if let Some(b) = list[..i]
            .iter()
            .find(|b| b.network == a.network && b.interface == a.interface)
        {
            return Err(AnnotationError::Duplicate {
                key: NETWORKS.into(),
                network: b.network.to_string().into(),
                interface: b.interface.as_deref().map(Into::into),
            });
        }
    }
    Ok(())
}

/// An IPAMClaim holds the addresses of one interface: two attachments naming one claim would share them.
fn check_claims(list: &[AttachmentRequest]) -> Result<(), AnnotationError> {
    for (i, a) in list.iter().enumerate() {
        let Some(claim) = a.claim.as_deref() else {
            continue;
        };
        if let Some(b) = list[..i].iter().find(|b| b.claim.as_deref() == Some(claim)) {
            return Err(AnnotationError::Invalid {
                key: NETWORKS.into(),
                value: Shown::new(claim),
                problem: format!(
                    "is the ipam-claim-reference of both {} and {}; an IPAMClaim holds the addresses of one \
                     interface, so give each attachment its own claim",
                    b.label(),
                    a.label()
                )
                .into(),
            });
        }
    }
    Ok(())
}

fn check_interfaces(list: &[AttachmentRequest]) -> Result<(), AnnotationError> {
    let mut seen: BTreeMap<&str, &AttachmentRequest> = BTreeMap::new();
    for a in list {
        if let Some(first) = seen.insert(a.ifname.as_str(), a) {
            return Err(AnnotationError::InterfaceClash {
                key: NETWORKS.into(),
                ifname: a.ifname.as_str().into(),
                first: first.label().into(),
                second: a.label().into(),
            });
        }
    }
    Ok(())
}

fn check_default_routes(list: &[AttachmentRequest]) -> Result<(), AnnotationError> {
    let mut seen: BTreeMap<&str, &AttachmentRequest> = BTreeMap::new();
    for a in list {
        for gw in &a.default_route {
            let fam = family(*gw);
            if let Some(first) = seen.insert(fam, a) {
                return Err(AnnotationError::DefaultRouteClash {
                    key: NETWORKS.into(),
                    family: fam,
                    first: first.label().into(),
                    second: a.label().into(),
                });
            }
        }
    }
    Ok(())
}
