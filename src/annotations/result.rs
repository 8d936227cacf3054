//! The annotations nadipam writes after allocating (Kube-OVN's result keys), and their reading back by the
//! CNI plugin on the node.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use serde_json::{Map, Value};

use super::address::{family, parse_pair};
use super::error::{AnnotationError, Shown};
use super::keys::{
    ALLOCATED, ALLOCATED_TRUE, CIDR, GATEWAY, IP_ADDRESS, LOGICAL_SWITCH, MAC_ADDRESS, ROUTES,
    interface_key, provider_key,
};
use super::lookup::value;
use super::provider::{check_provider, parse_mac, switch_and_routes};
use super::route::Route;
use crate::alloc::{IpPair, Mac};

/// What the webhook decided for one attachment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AllocationResult {
    pub provider: String,
    /// The explicit interface name; when set, the addresses are also written under `<field>.<ifname>`.
    pub interface: Option<String>,
    pub ip: IpPair,
    pub mac: Option<Mac>,
    /// The subnet's CIDR block(s), `v4cidr` or `v4cidr,v6cidr`.
    pub cidr: String,
    /// The subnet's gateway(s), same shape as `cidr`; empty when the subnet has none (not written then).
    pub gateway: String,
    pub logical_switch: String,
    pub routes: Option<Vec<Route>>,
}

impl AllocationResult {
    /// The annotations for this attachment alone. Use [`render_all`] for a Pod with several attachments:
    /// it keeps attachments sharing a provider from overwriting each other's plain keys.
    pub fn render(&self) -> BTreeMap<String, String> {
        let mut m = self.provider_level();
        let p = &self.provider;
        m.insert(provider_key(p, IP_ADDRESS), self.ip.to_string());
        if let Some(mac) = self.mac {
            m.insert(provider_key(p, MAC_ADDRESS), mac.to_string());
        }
        m.extend(self.interface_level());
        m
    }

    /// Keys shared by every attachment of the provider (same subnet).
    fn provider_level(&self) -> BTreeMap<String, String> {
        let p = &self.provider;
        let mut m = BTreeMap::new();
        m.insert(provider_key(p, CIDR), self.cidr.clone());
        if !self.gateway.is_empty() {
            m.insert(provider_key(p, GATEWAY), self.gateway.clone());
        }
        m.insert(provider_key(p, ALLOCATED), ALLOCATED_TRUE.to_string());
        m.insert(provider_key(p, LOGICAL_SWITCH), self.logical_switch.clone());
        if let Some(routes) = &self.routes {
            m.insert(provider_key(p, ROUTES), routes_json(routes));
        }
        m
    }

    /// `ip_address.<if>` and `mac_address.<if>` when the attachment has an explicit interface.
    fn interface_level(&self) -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        if let Some(i) = &self.interface {
            m.insert(
                interface_key(&self.provider, IP_ADDRESS, i),
                self.ip.to_string(),
            );
            if let Some(mac) = self.mac {
                m.insert(
                    interface_key(&self.provider, MAC_ADDRESS, i),
                    mac.to_string(),
                );
            }
        }
        m
    }
}

/// Serialised without a fallible serializer call: the value is built from plain strings.
fn routes_json(routes: &[Route]) -> String {
    let items = routes
        .iter()
        .map(|r| {
            let mut o = Map::new();
            if let Some(d) = &r.dst {
                o.insert("dst".into(), Value::String(d.clone()));
            }
            if let Some(g) = &r.gw {
                o.insert("gw".into(), Value::String(g.clone()));
            }
            Value::Object(o)
        })
        .collect();
    Value::Array(items).to_string()
}

/// The annotations for all of a Pod's attachments. Per provider, the plain `ip_address`/`mac_address` keys
/// belong to the attachment without an interface name (else the first); the others are written only
/// under their per-interface keys. Refuses inputs whose keys would collide.
pub fn render_all(
    results: &[AllocationResult],
) -> Result<BTreeMap<String, String>, AnnotationError> {
    let mut groups: BTreeMap<&str, Vec<&AllocationResult>> = BTreeMap::new();
    for r in results {
        groups.entry(r.provider.as_str()).or_default().push(r);
    }
    let mut out = BTreeMap::new();
    for (provider, group) in groups {
        let mut unnamed = group.iter().filter(|r| r.interface.is_none());
        let owner_idx = match (unnamed.next(), unnamed.next()) {
            (Some(a), Some(b)) => {
                return Err(AnnotationError::ResultConflict {
                    key: provider_key(provider, IP_ADDRESS).into(),
                    first: Shown::new(&a.ip.to_string()),
                    second: Shown::new(&b.ip.to_string()),
                });
            }
            _ => group
                .iter()
                .position(|r| r.interface.is_none())
                .unwrap_or(0),
        };
        let Some(owner) = group.get(owner_idx) else {
            continue;
        };
        let shared = owner.provider_level();
        out.extend(owner.render());
        for (i, r) in group.iter().enumerate() {
            if i == owner_idx {
                continue;
            }
            for (key, v) in r.provider_level() {
                if let Some(first) = shared.get(&key).filter(|first| **first != v) {
                    return Err(AnnotationError::ResultConflict {
                        key: key.into(),
                        first: Shown::new(first),
                        second: Shown::new(&v),
                    });
                }
            }
            for (key, v) in r.interface_level() {
                if let Some(first) = out.get(&key) {
                    return Err(AnnotationError::ResultConflict {
                        first: Shown::new(first),
                        second: Shown::new(&v),
                        key: key.into(),
                    });
                }
                out.insert(key, v);
            }
        }
    }
    Ok(out)
}

/// One interface address with the subnet's prefix, and the gateway of its family if the subnet has one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResultAddress {
    pub address: IpNet,
    pub gateway: Option<IpAddr>,
}

/// What the CNI plugin needs to answer ADD for one attachment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedResult {
    pub ip: IpPair,
    pub mac: Option<Mac>,
    /// IPv4 first.
    pub addresses: Vec<ResultAddress>,
    pub logical_switch: Option<String>,
    pub routes: Option<Vec<Route>>,
}

/// Reads back what [`AllocationResult::render`] wrote for `provider`; `None` until `allocated` is `"true"`.
/// With `interface` (the CNI_IFNAME), `ip_address.<if>` is read first, and when found the MAC is read only
/// from `mac_address.<if>` so one interface never picks up another's MAC.
pub fn read_result(
    annotations: &BTreeMap<String, String>,
    provider: &str,
    interface: Option<&str>,
) -> Result<Option<ParsedResult>, AnnotationError> {
    check_provider(provider)?;
    if value(annotations, &provider_key(provider, ALLOCATED))? != Some(ALLOCATED_TRUE) {
        return Ok(None);
    }
    let per_if = match interface {
        Some(i) => {
            let key = interface_key(provider, IP_ADDRESS, i);
            value(annotations, &key)?.map(|v| (key, v, interface_key(provider, MAC_ADDRESS, i)))
        }
        None => None,
    };
    let (ip_key, ip_raw, mac_key) = match per_if {
        Some(found) => found,
        None => {
            let key = provider_key(provider, IP_ADDRESS);
            let v = value(annotations, &key)?.ok_or_else(|| AnnotationError::Invalid {
                key: key.as_str().into(),
                value: Shown::new(""),
                problem: format!(
                    "is missing although {} is \"true\"; expected the allocated address(es), v4 or v4,v6",
                    provider_key(provider, ALLOCATED)
                ).into(),
            })?;
            (key, v, provider_key(provider, MAC_ADDRESS))
        }
    };
    let ip = parse_pair(&ip_key, ip_raw)?;
    let mac = value(annotations, &mac_key)?
        .map(|v| parse_mac(&mac_key, v))
        .transpose()?;
    let cidr_key = provider_key(provider, CIDR);
    let cidr_raw = value(annotations, &cidr_key)?.unwrap_or("");
    let nets = parse_list(
        &cidr_key,
        cidr_raw,
        "the subnet CIDR(s), v4cidr or v4cidr,v6cidr",
        |s| s.parse::<IpNet>().ok(),
    )?;
    let gw_key = provider_key(provider, GATEWAY);
    let gw_raw = value(annotations, &gw_key)?.unwrap_or("");
    let gateways = if gw_raw.is_empty() {
        Vec::new()
    } else {
        parse_list(&gw_key, gw_raw, "the subnet gateway(s), v4 or v4,v6", |s| {
            s.parse::<IpAddr>().ok()
        })?
    };
    let mut addresses = Vec::new();
    for addr in ip.addrs() {
        let net =
            nets.iter()
                .find(|n| n.contains(&addr))
                .ok_or_else(|| AnnotationError::Invalid {
                    key: cidr_key.as_str().into(),
                    value: Shown::new(cidr_raw),
                    problem: format!(
                        "does not contain the allocated {} address {addr}",
                        family(addr)
                    )
                    .into(),
                })?;
        let address = IpNet::new(addr, net.prefix_len()).map_err(|_| AnnotationError::Invalid {
            key: cidr_key.as_str().into(),
            value: Shown::new(cidr_raw),
            problem: "has an invalid prefix length".into(),
        })?;
        let gateway = gateways
            .iter()
            .copied()
            .find(|g| g.is_ipv4() == addr.is_ipv4());
        if let Some(g) = gateway
            && !net.contains(&g)
        {
            return Err(AnnotationError::Invalid {
                key: gw_key.into(),
                value: Shown::new(gw_raw),
                problem: format!("has gateway {g} outside the subnet {net}").into(),
            });
        }
        addresses.push(ResultAddress { address, gateway });
    }
    let (logical_switch, routes) = switch_and_routes(annotations, provider)?;
    Ok(Some(ParsedResult {
        ip,
        mac,
        addresses,
        logical_switch,
        routes,
    }))
}

/// A comma list of one or two values of different families.
fn parse_list<T: Copy + HasFamily>(
    key: &str,
    raw: &str,
    expected: &str,
    parse: impl Fn(&str) -> Option<T>,
) -> Result<Vec<T>, AnnotationError> {
    let invalid = || AnnotationError::Invalid {
        key: key.into(),
        value: Shown::new(raw),
        problem: format!("is not valid (expected {expected})").into(),
    };
    let items = raw
        .split(',')
        .map(|s| parse(s.trim()).ok_or_else(invalid))
        .collect::<Result<Vec<T>, _>>()?;
    let v4 = items.iter().filter(|i| i.is_v4()).count();
    if items.len() > 2 || v4 > 1 || items.len() - v4 > 1 {
        return Err(invalid());
    }
    Ok(items)
}

trait HasFamily {
    fn is_v4(&self) -> bool;
}

impl HasFamily for IpNet {
    fn is_v4(&self) -> bool {
        matches!(self, IpNet::V4(_))
    }
}

impl HasFamily for IpAddr {
    fn is_v4(&self) -> bool {
        self.is_ipv4()
    }
}
