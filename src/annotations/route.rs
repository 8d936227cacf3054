//! Kube-OVN's `routes`: `[{"dst": "cidr", "gw": "ip"}]`, where a missing `dst` is the default route.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::address::family;
use super::error::{AnnotationError, Shown, clip, json_shape};

const ROUTES_EXPECTED: &str = "a JSON list of routes (e.g. [{\"dst\": \"192.168.0.0/24\", \"gw\": \"172.17.0.254\"}, {\"gw\": \"172.17.0.254\"}])";

/// One route for an attachment. Unknown fields are refused: a misspelt `dst` would otherwise silently turn
/// the route into a default route.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// Destination CIDR as written (host bits allowed, as Kube-OVN accepts); `None` is the default route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dst: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gw: Option<String>,
}

impl Route {
    /// The destination network with host bits cleared (`192.168.0.101/24` → `192.168.0.0/24`), which is
    /// what the kernel accepts; `None` for the default route or an unparsable value.
    pub fn dst_net(&self) -> Option<IpNet> {
        self.dst
            .as_deref()?
            .parse::<IpNet>()
            .ok()
            .map(|n| n.trunc())
    }

    pub fn gw_ip(&self) -> Option<IpAddr> {
        self.gw.as_deref()?.parse().ok()
    }

    pub fn is_default(&self) -> bool {
        self.dst.is_none()
    }

    /// Normalises (empty strings become absent, whitespace trimmed) and checks one route.
    fn checked(self, key: &str, i: usize) -> Result<Route, AnnotationError> {
        let field = |name: &str, value: &str, expected: String| AnnotationError::Field {
            key: key.into(),
            field: format!("[{i}].{name}").into(),
            value: Shown::new(value),
            expected: expected.into(),
        };
        let dst = self
            .dst
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty());
        let gw = self
            .gw
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty());
        let dst_net = match &dst {
            Some(d) => Some(d.parse::<IpNet>().map_err(|_| {
                field(
                    "dst",
                    d,
                    "a destination CIDR such as 192.168.0.0/24".to_string(),
                )
            })?),
            None => None,
        };
        let gw_ip = match &gw {
            Some(g) => Some(g.parse::<IpAddr>().map_err(|_| {
                field(
                    "gw",
                    g,
                    "a gateway IP address such as 172.17.0.254".to_string(),
                )
            })?),
            None => None,
        };
        match (dst_net, gw_ip) {
            (None, None) => Err(field(
                "gw",
                "",
                "a gateway for a route without dst (the default route), or a dst".to_string(),
            )),
            (Some(net), Some(ip)) if net.addr().is_ipv4() != ip.is_ipv4() => Err(field(
                "gw",
                gw.as_deref().unwrap_or_default(),
                format!("an {} gateway to match dst {net}", family(net.addr())),
            )),
            _ => Ok(Route { dst, gw }),
        }
    }
}

/// Parses and checks a routes annotation value.
pub(crate) fn parse_routes(key: &str, raw: &str) -> Result<Vec<Route>, AnnotationError> {
    json_shape(key, raw, '[', ROUTES_EXPECTED)?;
    let routes: Vec<Route> = serde_json::from_str(raw).map_err(|e| AnnotationError::Json {
        key: key.into(),
        value: Shown::new(raw),
        expected: ROUTES_EXPECTED,
        reason: clip(e).into(),
    })?;
    routes
        .into_iter()
        .enumerate()
        .map(|(i, r)| r.checked(key, i))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const K: &str = "attachnet.default.ovn.kubernetes.io/routes";

    #[test]
    fn guide_example() {
        let raw = "[{\n  \"dst\": \"192.168.0.101/24\",\n  \"gw\": \"172.17.0.254\"\n}, {\n  \"gw\": \"172.17.0.254\"\n}]\n";
        let routes = parse_routes(K, raw.trim()).unwrap();
        assert_eq!(routes.len(), 2);
        assert_eq!(routes[0].dst_net().unwrap().to_string(), "192.168.0.0/24");
        assert_eq!(routes[0].gw_ip().unwrap().to_string(), "172.17.0.254");
        assert!(routes[1].is_default());
        assert_eq!(
            serde_json::to_string(&routes).unwrap(),
            r#"[{"dst":"192.168.0.101/24","gw":"172.17.0.254"},{"gw":"172.17.0.254"}]"#
        );
    }

    #[test]
    fn normalises_empty_strings() {
        let routes = parse_routes(
            K,
            r#"[{"dst": "", "gw": "fd00::1"}, {"dst": "10.1.0.0/16"}]"#,
        )
        .unwrap();
        assert_eq!(
            routes[0],
            Route {
                dst: None,
                gw: Some("fd00::1".into())
            }
        );
        assert_eq!(routes[1].gw, None);
    }

    #[test]
    fn errors() {
        let e = |v: &str| parse_routes(K, v).unwrap_err().to_string();
        assert_eq!(
            e(r#"[{"dst": "10.1.0.0/16", "gw": "fd00::1"}]"#),
            "annotation attachnet.default.ovn.kubernetes.io/routes: [0].gw \"fd00::1\" is not valid (expected an IPv4 gateway to match dst 10.1.0.0/16)"
        );
        assert!(
            e(r#"[{"dst": "10.1.0.0", "gw": "10.0.0.1"}]"#)
                .contains("[0].dst \"10.1.0.0\" is not valid")
        );
        assert!(e(r#"[{"gw": "10.0.0.x"}]"#).contains("[0].gw \"10.0.0.x\" is not valid"));
        assert!(e(r#"[{}]"#).contains("a gateway for a route without dst"));
        assert!(
            e(r#"[{"dest": "10.1.0.0/16", "gw": "10.0.0.1"}]"#).contains("unknown field `dest`")
        );
        assert!(e(r#"{"gw": "10.0.0.1"}"#).contains("is not a JSON list of routes"));
    }
}
