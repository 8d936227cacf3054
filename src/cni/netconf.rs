//! The parts of the network configuration nadipam reads: the NAD's `spec.config` as the main plugin
//! (macvlan, bridge, ...) hands it on, with the runtime's `runtimeConfig` merged in.
//!
//! ```json
//! {"cniVersion": "1.0.0", "name": "macvlan", "type": "macvlan", "master": "eth0",
//!  "ipam": {"type": "nadipam", "provider": "macvlan.default",
//!           "kubeconfig": "/etc/cni/net.d/nadipam.d/nadipam.kubeconfig",
//!           "routes": [{"dst": "10.10.0.0/16"}], "dns": {"nameservers": ["10.0.0.10"]}}}
//! ```
//! Unknown `ipam` fields (Kube-OVN's `server_socket`, ...) are ignored, so Kube-OVN NADs work unchanged.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;

use ipnet::IpNet;
use rscni_plugin::types::{Dns, NetConf};
use serde_json::Value;

use super::error::CniError;
use crate::alloc::Mac;
use crate::annotations::{Shown, read_result};

/// Where the node agent writes the plugin's kubeconfig.
pub const DEFAULT_KUBECONFIG: &str = "/etc/cni/net.d/nadipam.d/nadipam.kubeconfig";

/// A route from `ipam.routes` (CNI's route format: `dst`, optional `gw`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ConfRoute {
    pub dst: IpNet,
    pub gw: Option<IpAddr>,
}

/// The IPAM section and the runtime requests, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct IpamConf {
    pub provider: String,
    pub kubeconfig: PathBuf,
    pub routes: Vec<ConfRoute>,
    /// `ipam.dns`, else the top-level `dns`.
    pub dns: Option<Dns>,
    /// `runtimeConfig.ips`: addresses the runtime asks for (prefixes dropped).
    pub requested_ips: Vec<IpAddr>,
    /// `runtimeConfig.mac`.
    pub requested_mac: Option<Mac>,
}

impl IpamConf {
    /// Everything ADD and CHECK need from the config.
    pub(crate) fn parse(conf: &NetConf) -> Result<IpamConf, CniError> {
        let ipam = conf.ipam.as_ref().ok_or_else(|| {
            CniError::config(
                "ipam",
                "is missing; nadipam is an IPAM plugin: put {\"type\": \"nadipam\", \"provider\": \"<nad>.<namespace>\"} under \"ipam\"",
            )
        })?;
        let custom = &ipam.custom;
        let provider = provider(custom)?;
        let kubeconfig = match custom.get("kubeconfig") {
            None | Some(Value::Null) => PathBuf::from(DEFAULT_KUBECONFIG),
            Some(Value::String(s)) if !s.trim().is_empty() => PathBuf::from(s.trim()),
            Some(other) => {
                return Err(CniError::config(
                    "ipam.kubeconfig",
                    format!(
                        "{} is not a file path (expected a string such as {DEFAULT_KUBECONFIG}, or omit it for that default)",
                        shown_json(other)
                    ),
                ));
            }
        };
        let routes = match custom.get("routes") {
            None | Some(Value::Null) => Vec::new(),
            Some(v) => routes(v)?,
        };
        let dns = match custom.get("dns") {
            None | Some(Value::Null) => conf.dns.clone(),
            Some(v) => Some(serde_json::from_value::<Dns>(v.clone()).map_err(|e| {
                CniError::config(
                    "ipam.dns",
                    format!(
                        "{} is not a DNS object ({e}; expected {{\"nameservers\": [\"10.0.0.10\"], \"domain\": \"..\", \"search\": [..], \"options\": [..]}})",
                        shown_json(v)
                    ),
                )
            })?),
        };
        let runtime = conf.runtime_config.as_ref().map(|r| &r.custom);
        let requested_ips = match runtime.and_then(|r| r.get("ips")) {
            None | Some(Value::Null) => Vec::new(),
            Some(v) => requested_ips(v)?,
        };
        let requested_mac = match runtime.and_then(|r| r.get("mac")) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.trim().is_empty() => None,
            Some(Value::String(s)) => Some(
                s.trim()
                    .parse::<Mac>()
                    .map_err(|e| CniError::config("runtimeConfig.mac", e.to_string()))?,
            ),
            Some(other) => {
                return Err(CniError::config(
                    "runtimeConfig.mac",
                    format!("{} is not a string MAC address", shown_json(other)),
                ));
            }
        };
        Ok(IpamConf {
            provider,
            kubeconfig,
            routes,
            dns,
            requested_ips,
            requested_mac,
        })
    }

    /// Only what STATUS needs: the kubeconfig path (the provider is not required there).
    pub(crate) fn kubeconfig_only(conf: &NetConf) -> PathBuf {
        conf.ipam
            .as_ref()
            .and_then(|i| i.custom.get("kubeconfig"))
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map_or_else(|| PathBuf::from(DEFAULT_KUBECONFIG), PathBuf::from)
    }
}

/// `ipam.provider`, required and never derived (a guessed provider would read another network's
/// addresses); checked with the annotation model's own rule, so a provider accepted here forms valid keys.
fn provider(custom: &HashMap<String, Value>) -> Result<String, CniError> {
    const EXPECTED: &str = "the provider the Pod's annotations are written under: <nad>.<namespace> for this NAD (or <nad>.<namespace>.ovn for Kube-OVN-typed NADs)";
    let raw = match custom.get("provider") {
        None | Some(Value::Null) => {
            return Err(CniError::config(
                "ipam.provider",
                format!("is missing; set it to {EXPECTED}"),
            ));
        }
        Some(Value::String(s)) => s.trim(),
        Some(other) => {
            return Err(CniError::config(
                "ipam.provider",
                format!(
                    "{} is not a string; set it to {EXPECTED}",
                    shown_json(other)
                ),
            ));
        }
    };
    if raw.is_empty() {
        return Err(CniError::config(
            "ipam.provider",
            format!("is empty; set it to {EXPECTED}"),
        ));
    }
    // An empty annotation map reads as "not allocated" for any valid provider, and as an error otherwise.
    read_result(&Default::default(), raw, None)
        .map_err(|e| CniError::config("ipam.provider", e.to_string()))?;
    Ok(raw.to_string())
}

fn routes(v: &Value) -> Result<Vec<ConfRoute>, CniError> {
    let Value::Array(items) = v else {
        return Err(CniError::config(
            "ipam.routes",
            format!(
                "{} is not a list (expected [{{\"dst\": \"10.10.0.0/16\", \"gw\": \"10.0.0.1\"}}, ...])",
                shown_json(v)
            ),
        ));
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let field = |name: &str| format!("ipam.routes[{i}].{name}");
            let dst_raw = item.get("dst").and_then(Value::as_str).ok_or_else(|| {
                CniError::config(
                    field("dst"),
                    format!(
                        "is missing in {} (expected a destination CIDR such as 10.10.0.0/16, or 0.0.0.0/0 for the default route)",
                        shown_json(item)
                    ),
                )
            })?;
            let dst = dst_raw.trim().parse::<IpNet>().map_err(|_| {
                CniError::config(
                    field("dst"),
                    format!(
                        "{} is not a CIDR (expected e.g. 10.10.0.0/16 or ::/0)",
                        Shown::new(dst_raw)
                    ),
                )
            })?;
            let gw = match item.get("gw") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) if s.trim().is_empty() => None,
                Some(Value::String(s)) => Some(s.trim().parse::<IpAddr>().map_err(|_| {
                    CniError::config(
                        field("gw"),
                        format!("{} is not an IP address", Shown::new(s)),
                    )
                })?),
                Some(other) => {
                    return Err(CniError::config(
                        field("gw"),
                        format!("{} is not a string IP address", shown_json(other)),
                    ));
                }
            };
            if let Some(g) = gw
                && g.is_ipv4() != dst.addr().is_ipv4()
            {
                return Err(CniError::config(
                    field("gw"),
                    format!("{g} is not of the same address family as dst {dst}"),
                ));
            }
            Ok(ConfRoute { dst: dst.trunc(), gw })
        })
        .collect()
}

fn requested_ips(v: &Value) -> Result<Vec<IpAddr>, CniError> {
    let invalid = |what: &Value| {
        CniError::config(
            "runtimeConfig.ips",
            format!(
                "{} is not a list of IP addresses (expected e.g. [\"10.0.0.5/24\", \"fd00::5/64\"])",
                shown_json(what)
            ),
        )
    };
    let Value::Array(items) = v else {
        return Err(invalid(v));
    };
    items
        .iter()
        .map(|item| {
            let s = item.as_str().ok_or_else(|| invalid(v))?.trim();
            parse_ip_or_cidr(s).ok_or_else(|| invalid(v))
        })
        .collect()
}

/// `10.0.0.5` or `10.0.0.5/24` → the address.
pub(crate) fn parse_ip_or_cidr(s: &str) -> Option<IpAddr> {
    s.parse::<IpAddr>()
        .ok()
        .or_else(|| s.parse::<IpNet>().ok().map(|n| n.addr()))
}

fn shown_json(v: &Value) -> Shown {
    Shown::new(&v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf(json: &str) -> NetConf {
        serde_json::from_str(json).unwrap()
    }

    fn err(json: &str) -> String {
        let e = IpamConf::parse(&conf(json)).unwrap_err();
        assert_eq!(e.code(), 7, "{e}");
        e.to_string()
    }

    #[test]
    fn minimal_config_uses_defaults() {
        let c = IpamConf::parse(&conf(
            r#"{"cniVersion":"1.0.0","name":"n","type":"macvlan","ipam":{"type":"nadipam","provider":"macvlan.default"}}"#,
        ))
        .unwrap();
        assert_eq!(c.provider, "macvlan.default");
        assert_eq!(c.kubeconfig, PathBuf::from(DEFAULT_KUBECONFIG));
        assert!(c.routes.is_empty() && c.dns.is_none() && c.requested_ips.is_empty());
        assert_eq!(c.requested_mac, None);
    }

    #[test]
    fn kube_ovn_style_config_is_accepted() {
        // The guide's NAD, unchanged but for the ipam type: server_socket is ignored.
        let c = IpamConf::parse(&conf(
            r#"{"cniVersion":"0.3.0","name":"macvlan","type":"macvlan","master":"eth0","mode":"bridge",
                "ipam":{"type":"kube-ovn","server_socket":"/run/openvswitch/kube-ovn-daemon.sock","provider":"macvlan.default"}}"#,
        ))
        .unwrap();
        assert_eq!(c.provider, "macvlan.default");
        let c = IpamConf::parse(&conf(
            r#"{"cniVersion":"0.3.1","name":"a","type":"bridge","ipam":{"type":"nadipam","provider":"attachnet.default.ovn"}}"#,
        ))
        .unwrap();
        assert_eq!(c.provider, "attachnet.default.ovn");
    }

    #[test]
    fn full_config() {
        let c = IpamConf::parse(&conf(
            r#"{"cniVersion":"1.1.0","name":"n","type":"bridge",
                "dns":{"nameservers":["9.9.9.9"]},
                "ipam":{"type":"nadipam","provider":"br.ns1","kubeconfig":"/tmp/k",
                        "routes":[{"dst":"10.10.0.5/16","gw":"10.0.0.1"},{"dst":"::/0"}],
                        "dns":{"nameservers":["10.0.0.10"],"search":["svc.local"]}},
                "runtimeConfig":{"ips":["10.0.0.5/24","fd00::5"],"mac":"02:00:00:00:00:01"}}"#,
        ))
        .unwrap();
        assert_eq!(c.kubeconfig, PathBuf::from("/tmp/k"));
        assert_eq!(
            c.routes,
            vec![
                ConfRoute {
                    dst: "10.10.0.0/16".parse().unwrap(),
                    gw: Some("10.0.0.1".parse().unwrap())
                },
                ConfRoute {
                    dst: "::/0".parse().unwrap(),
                    gw: None
                },
            ]
        );
        assert_eq!(
            c.dns.as_ref().unwrap().nameservers,
            vec!["10.0.0.10".to_string()]
        );
        assert_eq!(
            c.requested_ips,
            vec![
                "10.0.0.5".parse::<IpAddr>().unwrap(),
                "fd00::5".parse().unwrap()
            ]
        );
        assert_eq!(c.requested_mac.unwrap().to_string(), "02:00:00:00:00:01");
        // Without ipam.dns the top-level dns is used.
        let c = IpamConf::parse(&conf(
            r#"{"cniVersion":"1.1.0","name":"n","type":"bridge","dns":{"nameservers":["9.9.9.9"]},"ipam":{"type":"nadipam","provider":"br.ns1"}}"#,
        ))
        .unwrap();
        assert_eq!(c.dns.unwrap().nameservers, vec!["9.9.9.9".to_string()]);
    }

    #[test]
    fn missing_provider_is_never_derived() {
        let e = err(
            r#"{"cniVersion":"1.0.0","name":"macvlan","type":"macvlan","ipam":{"type":"nadipam"}}"#,
        );
        assert!(
            e.starts_with("network config field ipam.provider: is missing; set it to the provider"),
            "{e}"
        );
        let e = err(
            r#"{"cniVersion":"1.0.0","name":"n","type":"t","ipam":{"type":"nadipam","provider":" "}}"#,
        );
        assert!(
            e.starts_with("network config field ipam.provider: is empty"),
            "{e}"
        );
        let e = err(
            r#"{"cniVersion":"1.0.0","name":"n","type":"t","ipam":{"type":"nadipam","provider":7}}"#,
        );
        assert!(
            e.starts_with("network config field ipam.provider: \"7\" is not a string"),
            "{e}"
        );
        let e = err(
            r#"{"cniVersion":"1.0.0","name":"n","type":"t","ipam":{"type":"nadipam","provider":"Mac_VLAN"}}"#,
        );
        assert_eq!(
            e,
            "network config field ipam.provider: provider \"Mac_VLAN\" is not valid (expected <nad>.<namespace>, <nad>.<namespace>.ovn or ovn, a DNS-1123 subdomain)"
        );
        let e = err(r#"{"cniVersion":"1.0.0","name":"n","type":"t"}"#);
        assert!(
            e.starts_with("network config field ipam: is missing; nadipam is an IPAM plugin"),
            "{e}"
        );
    }

    #[test]
    fn malformed_fields_are_named() {
        let base = |ipam: &str| {
            format!(
                r#"{{"cniVersion":"1.0.0","name":"n","type":"t","ipam":{{"type":"nadipam","provider":"a.b"{ipam}}}}}"#
            )
        };
        assert_eq!(
            err(&base(r#","kubeconfig":5"#)),
            "network config field ipam.kubeconfig: \"5\" is not a file path (expected a string such as /etc/cni/net.d/nadipam.d/nadipam.kubeconfig, or omit it for that default)"
        );
        assert!(
            err(&base(r#","routes":{"dst":"1.0.0.0/8"}"#))
                .starts_with("network config field ipam.routes: ")
        );
        assert_eq!(
            err(&base(
                r#","routes":[{"dst":"10.0.0.0/8"},{"dst":"10.1.0.0"}]"#
            )),
            "network config field ipam.routes[1].dst: \"10.1.0.0\" is not a CIDR (expected e.g. 10.10.0.0/16 or ::/0)"
        );
        assert!(
            err(&base(r#","routes":[{"gw":"10.0.0.1"}]"#))
                .starts_with("network config field ipam.routes[0].dst: is missing in")
        );
        assert_eq!(
            err(&base(r#","routes":[{"dst":"10.0.0.0/8","gw":"x"}]"#)),
            "network config field ipam.routes[0].gw: \"x\" is not an IP address"
        );
        assert_eq!(
            err(&base(r#","routes":[{"dst":"10.0.0.0/8","gw":"fd00::1"}]"#)),
            "network config field ipam.routes[0].gw: fd00::1 is not of the same address family as dst 10.0.0.0/8"
        );
        assert!(
            err(&base(r#","dns":{"nameservers":"x"}"#))
                .starts_with("network config field ipam.dns: ")
        );
        let rc = |rc: &str| {
            format!(
                r#"{{"cniVersion":"1.0.0","name":"n","type":"t","ipam":{{"type":"nadipam","provider":"a.b"}},"runtimeConfig":{rc}}}"#
            )
        };
        assert_eq!(
            err(&rc(r#"{"ips":["10.0.0.x"]}"#)),
            "network config field runtimeConfig.ips: \"[\\\"10.0.0.x\\\"]\" is not a list of IP addresses (expected e.g. [\"10.0.0.5/24\", \"fd00::5/64\"])"
        );
        assert_eq!(
            err(&rc(r#"{"mac":"01:00:00:00:00:01"}"#)),
            "network config field runtimeConfig.mac: 01:00:00:00:00:01 is a multicast or broadcast MAC; an interface needs a unicast MAC (lowest bit of the first octet clear)"
        );
    }

    #[test]
    fn status_reads_only_the_kubeconfig() {
        let c = conf(
            r#"{"cniVersion":"1.1.0","name":"n","type":"t","ipam":{"type":"nadipam","kubeconfig":"/x/k"}}"#,
        );
        assert_eq!(IpamConf::kubeconfig_only(&c), PathBuf::from("/x/k"));
        let c = conf(r#"{"cniVersion":"1.1.0","name":"n","type":"t"}"#);
        assert_eq!(
            IpamConf::kubeconfig_only(&c),
            PathBuf::from(DEFAULT_KUBECONFIG)
        );
    }
}
