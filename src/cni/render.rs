//! The allocation read from the Pod, as a CNI ADD result.
//!
//! The version-specific layout (0.3.x/0.4.0 `ips[].version`, 1.x without it) is `rscni-plugin`'s job;
//! this builds the version-neutral result:
//! - `ips`: one per allocated address, with the subnet prefix and the gateway of its family;
//! - `routes`: the Pod's `routes` annotation (a route without `dst` is the default route of its gateway's
//!   family), then `ipam.routes` for destinations the annotation does not already route;
//! - `interfaces`: the allocated MAC on `CNI_IFNAME`, with `ips[].interface` pointing at it. macvlan,
//!   bridge, ipvlan, host-device and tap ignore an IPAM result's interfaces (they take `ips`/`routes`, and
//!   bridge `dns`); the MAC reaches the interface through `runtimeConfig.mac` or `CNI_ARGS MAC=` (see
//!   docs/cni.md). It is reported here so a runtime calling nadipam directly sees the whole allocation.
//! - `dns`: `ipam.dns`, else the top-level `dns`.

use std::net::IpAddr;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use rscni_plugin::types::{CNIResult, Interface, IpConfig, Route};

use super::error::CniError;
use super::netconf::IpamConf;
use crate::annotations::ParsedResult;
use crate::annotations::keys::{ROUTES, provider_key};

/// Where the result goes: the interface and sandbox the runtime named.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Target<'a> {
    pub ifname: &'a str,
    pub netns: Option<&'a str>,
    /// `namespace/name`, for messages.
    pub pod: &'a str,
}

pub(crate) fn render(
    parsed: &ParsedResult,
    conf: &IpamConf,
    target: Target<'_>,
) -> Result<CNIResult, CniError> {
    let interfaces: Vec<Interface> = parsed
        .mac
        .map(|mac| Interface {
            name: target.ifname.to_string(),
            mac: mac.to_string(),
            mtu: None,
            sandbox: target.netns.map(str::to_string),
            socket_path: None,
            pci_id: None,
        })
        .into_iter()
        .collect();
    let index = (!interfaces.is_empty()).then_some(0);
    let ips = parsed
        .addresses
        .iter()
        .map(|a| IpConfig {
            interface: index,
            address: a.address,
            gateway: a.gateway,
        })
        .collect();
    Ok(CNIResult {
        interfaces,
        ips,
        routes: routes(parsed, conf, target)?,
        dns: conf.dns.clone(),
    })
}

fn routes(
    parsed: &ParsedResult,
    conf: &IpamConf,
    target: Target<'_>,
) -> Result<Vec<Route>, CniError> {
    let has_v4 = parsed.ip.v4.is_some();
    let has_v6 = parsed.ip.v6.is_some();
    let has_family = |a: IpAddr| if a.is_ipv4() { has_v4 } else { has_v6 };
    let key = provider_key(&conf.provider, ROUTES);
    let mut out: Vec<Route> = Vec::new();
    for (i, r) in parsed.routes.iter().flatten().enumerate() {
        let gw = r.gw_ip();
        let dst = match (r.dst_net(), gw) {
            (Some(d), _) => d,
            // No dst: the default route of the gateway's family (0.0.0.0/0 or ::/0).
            (None, Some(IpAddr::V4(_))) => IpNet::V4(Ipv4Net::default()),
            (None, Some(IpAddr::V6(_))) => IpNet::V6(Ipv6Net::default()),
            (None, None) => {
                return Err(CniError::BadRoute {
                    pod: target.pod.to_string(),
                    key,
                    problem: format!("route [{i}] has neither dst nor gw"),
                });
            }
        };
        if !has_family(dst.addr()) {
            return Err(CniError::BadRoute {
                pod: target.pod.to_string(),
                key: key.clone(),
                problem: format!(
                    "route [{i}] to {dst} is {} but the Pod has no {} address on this network ({}); remove the route or give the subnet that family",
                    family(dst.addr()),
                    family(dst.addr()),
                    parsed.ip
                ),
            });
        }
        push_unique(&mut out, dst, gw);
    }
    // NAD-wide routes apply to the families this Pod has; a v6 route of a dual-stack NAD is skipped
    // for a v4-only Pod rather than failing it.
    for r in conf.routes.iter().filter(|r| has_family(r.dst.addr())) {
        push_unique(&mut out, r.dst, r.gw);
    }
    Ok(out)
}

/// The first route to a destination wins: the Pod's own annotation before the NAD's defaults.
fn push_unique(out: &mut Vec<Route>, dst: IpNet, gw: Option<IpAddr>) {
    if out.iter().any(|r| r.dst == dst) {
        return;
    }
    out.push(Route {
        dst,
        gw,
        mtu: None,
        advmss: None,
        priority: None,
        table: None,
        scope: None,
    });
}

fn family(a: IpAddr) -> &'static str {
    if a.is_ipv4() { "IPv4" } else { "IPv6" }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::annotations::read_result;
    use rscni_plugin::version::SpecVersion;
    use serde_json::{Value, json};
    use std::collections::BTreeMap;

    const P: &str = "macvlan.ns1";

    fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (format!("{P}.kubernetes.io/{k}"), v.to_string()))
            .collect()
    }

    fn dual() -> BTreeMap<String, String> {
        annotations(&[
            ("allocated", "true"),
            ("ip_address", "10.1.0.5,fd00:1::5"),
            ("mac_address", "02:00:00:53:6b:bb"),
            ("cidr", "10.1.0.0/24,fd00:1::/64"),
            ("gateway", "10.1.0.1,fd00:1::1"),
            (
                "routes",
                r#"[{"dst":"192.168.0.101/24","gw":"10.1.0.254"},{"gw":"10.1.0.1"}]"#,
            ),
        ])
    }

    fn conf(extra: &str) -> IpamConf {
        let json = format!(
            r#"{{"cniVersion":"1.0.0","name":"n","type":"macvlan","ipam":{{"type":"nadipam","provider":"{P}"{extra}}}}}"#
        );
        IpamConf::parse(&serde_json::from_str(&json).unwrap()).unwrap()
    }

    const T: Target<'static> = Target {
        ifname: "net1",
        netns: Some("/var/run/netns/x"),
        pod: "ns1/p1",
    };

    /// The exact wire form for one version, as rscni-plugin prints it.
    fn wire(version: &str, result: CNIResult) -> Value {
        let v: SpecVersion = version.parse().unwrap();
        // The same choice rscni-plugin's dispatch makes when it prints an ADD result.
        let text = if v.is_legacy() {
            serde_json::to_string(&rscni_types::legacy::CNIResult::new(v, result))
        } else {
            serde_json::to_string(&rscni_types::types::CNIResultWithVersion::new(v, result))
        };
        serde_json::from_str(&text.unwrap()).unwrap()
    }

    fn dual_result() -> CNIResult {
        let parsed = read_result(&dual(), P, Some("net1")).unwrap().unwrap();
        render(
            &parsed,
            &conf(r#","dns":{"nameservers":["10.1.0.10"],"search":["svc"]}"#),
            T,
        )
        .unwrap()
    }

    #[test]
    fn legacy_versions_carry_ip_version() {
        for v in ["0.3.0", "0.3.1", "0.4.0"] {
            assert_eq!(
                wire(v, dual_result()),
                json!({
                    "cniVersion": v,
                    "interfaces": [{"name": "net1", "mac": "02:00:00:53:6b:bb", "sandbox": "/var/run/netns/x"}],
                    "ips": [
                        {"version": "4", "interface": 0, "address": "10.1.0.5/24", "gateway": "10.1.0.1"},
                        {"version": "6", "interface": 0, "address": "fd00:1::5/64", "gateway": "fd00:1::1"}
                    ],
                    "routes": [
                        {"dst": "192.168.0.0/24", "gw": "10.1.0.254"},
                        {"dst": "0.0.0.0/0", "gw": "10.1.0.1"}
                    ],
                    "dns": {"nameservers": ["10.1.0.10"], "search": ["svc"]}
                }),
                "{v}"
            );
        }
    }

    #[test]
    fn v1_versions_drop_ip_version() {
        for v in ["1.0.0", "1.1.0"] {
            assert_eq!(
                wire(v, dual_result()),
                json!({
                    "cniVersion": v,
                    "interfaces": [{"name": "net1", "mac": "02:00:00:53:6b:bb", "sandbox": "/var/run/netns/x"}],
                    "ips": [
                        {"interface": 0, "address": "10.1.0.5/24", "gateway": "10.1.0.1"},
                        {"interface": 0, "address": "fd00:1::5/64", "gateway": "fd00:1::1"}
                    ],
                    "routes": [
                        {"dst": "192.168.0.0/24", "gw": "10.1.0.254"},
                        {"dst": "0.0.0.0/0", "gw": "10.1.0.1"}
                    ],
                    "dns": {"nameservers": ["10.1.0.10"], "search": ["svc"]}
                }),
                "{v}"
            );
        }
    }

    #[test]
    fn without_mac_gateway_or_routes() {
        let a = annotations(&[
            ("allocated", "true"),
            ("ip_address", "10.1.0.5"),
            ("cidr", "10.1.0.0/24"),
        ]);
        let parsed = read_result(&a, P, Some("net1")).unwrap().unwrap();
        let r = render(&parsed, &conf(""), T).unwrap();
        assert_eq!(
            wire("1.0.0", r.clone()),
            json!({"cniVersion": "1.0.0", "ips": [{"address": "10.1.0.5/24"}]})
        );
        assert_eq!(
            wire("0.3.1", r),
            json!({"cniVersion": "0.3.1", "ips": [{"version": "4", "address": "10.1.0.5/24"}], "dns": {}})
        );
    }

    #[test]
    fn nad_routes_follow_the_pod_routes_and_families() {
        let a = annotations(&[
            ("allocated", "true"),
            ("ip_address", "10.1.0.5"),
            ("cidr", "10.1.0.0/24"),
            ("gateway", "10.1.0.1"),
            ("routes", r#"[{"dst":"10.9.0.0/16","gw":"10.1.0.9"}]"#),
        ]);
        let parsed = read_result(&a, P, None).unwrap().unwrap();
        let c = conf(
            r#","routes":[{"dst":"10.9.0.0/16","gw":"10.1.0.2"},{"dst":"0.0.0.0/0"},{"dst":"::/0","gw":"fd00::1"}]"#,
        );
        let r = render(&parsed, &c, T).unwrap();
        assert_eq!(
            serde_json::to_value(&r.routes).unwrap(),
            json!([{"dst": "10.9.0.0/16", "gw": "10.1.0.9"}, {"dst": "0.0.0.0/0"}])
        );
    }

    #[test]
    fn a_pod_route_of_a_missing_family_is_refused() {
        let a = annotations(&[
            ("allocated", "true"),
            ("ip_address", "10.1.0.5"),
            ("cidr", "10.1.0.0/24"),
            ("routes", r#"[{"gw":"fd00::1"}]"#),
        ]);
        let parsed = read_result(&a, P, None).unwrap().unwrap();
        let e = render(&parsed, &conf(""), T).unwrap_err();
        assert_eq!(e.code(), 103);
        assert_eq!(
            e.to_string(),
            "Pod ns1/p1: annotation macvlan.ns1.kubernetes.io/routes: route [0] to ::/0 is IPv6 but the Pod has no IPv6 address on this network (10.1.0.5); remove the route or give the subnet that family"
        );
    }
}
