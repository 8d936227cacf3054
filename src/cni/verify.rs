//! Consistency checks between what the runtime says and what the Pod holds.
//!
//! - ADD: addresses or a MAC the runtime asks for (`runtimeConfig.ips`/`mac`, Multus' `CNI_ARGS`
//!   `IP=`/`MAC=` from the network selection element) must be the allocated ones; nadipam never
//!   allocates, so a difference means the selection element and the webhook disagree.
//! - CHECK: the prevResult's addresses on `CNI_IFNAME` must be exactly the ones the Pod still holds.

use std::collections::BTreeSet;
use std::net::IpAddr;

use ipnet::IpNet;
use rscni_plugin::types::CNIResult;

use super::cni_args::CniArgs;
use super::error::CniError;
use super::netconf::{IpamConf, parse_ip_or_cidr};
use crate::alloc::Mac;
use crate::annotations::{ParsedResult, Shown};

/// Refuses an ADD whose requested IPs/MAC differ from the allocation.
pub(crate) fn requested(
    conf: &IpamConf,
    args: &CniArgs,
    parsed: &ParsedResult,
    pod: &str,
) -> Result<(), CniError> {
    let mismatch = |field: &str, requested: String, allocated: String| CniError::RequestMismatch {
        source_field: field.to_string(),
        requested,
        pod: pod.to_string(),
        allocated,
        provider: conf.provider.clone(),
    };
    let held: Vec<IpAddr> = parsed.ip.addrs().collect();
    let allocated_ips = || parsed.ip.to_string();
    for ip in &conf.requested_ips {
        if !held.contains(ip) {
            return Err(mismatch(
                "runtimeConfig.ips",
                ip.to_string(),
                allocated_ips(),
            ));
        }
    }
    if let Some(raw) = &args.ips {
        for part in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let ip = parse_ip_or_cidr(part).ok_or_else(|| {
                CniError::env(
                    "CNI_ARGS",
                    format!("IP entry {} is not an IP address or CIDR", Shown::new(part)),
                )
            })?;
            if !held.contains(&ip) {
                return Err(mismatch("CNI_ARGS IP", ip.to_string(), allocated_ips()));
            }
        }
    }
    let arg_mac = match args.mac.as_deref() {
        Some(raw) => Some(
            raw.parse::<Mac>()
                .map_err(|e| CniError::env("CNI_ARGS", format!("MAC entry: {e}")))?,
        ),
        None => None,
    };
    if let Some(allocated) = parsed.mac {
        for (field, wanted) in [
            ("runtimeConfig.mac", conf.requested_mac),
            ("CNI_ARGS MAC", arg_mac),
        ] {
            if let Some(w) = wanted
                && w != allocated
            {
                return Err(mismatch(field, w.to_string(), allocated.to_string()));
            }
        }
    }
    Ok(())
}

/// CHECK: the prevResult's addresses for `ifname` equal the Pod's current allocation.
pub(crate) fn prev_result(
    prev: Option<&CNIResult>,
    parsed: &ParsedResult,
    ifname: &str,
    pod: &str,
) -> Result<(), CniError> {
    let prev = prev.ok_or_else(|| {
        CniError::config(
            "prevResult",
            "is missing; CHECK compares the result of ADD (prevResult) with the Pod's allocation",
        )
    })?;
    let ours: BTreeSet<IpNet> = prev
        .ips
        .iter()
        .filter(|ip| match ip.interface {
            None => true,
            Some(i) => prev
                .interfaces
                .get(i as usize)
                .is_some_and(|intf| intf.name == ifname),
        })
        .map(|ip| ip.address)
        .collect();
    let held: BTreeSet<IpNet> = parsed.addresses.iter().map(|a| a.address).collect();
    if ours == held {
        return Ok(());
    }
    let list = |s: &BTreeSet<IpNet>| {
        if s.is_empty() {
            "none".to_string()
        } else {
            s.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    Err(CniError::CheckMismatch {
        problem: format!(
            "interface {ifname} was set up with {} (prevResult) but Pod {pod} now holds {}; the allocation changed under a running Pod — recreate the Pod",
            list(&ours),
            list(&held)
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::annotations::read_result;
    use std::collections::BTreeMap;

    fn parsed(mac: Option<&str>) -> ParsedResult {
        let mut a: BTreeMap<String, String> = [
            ("allocated", "true"),
            ("ip_address", "10.1.0.5,fd00::5"),
            ("cidr", "10.1.0.0/24,fd00::/64"),
        ]
        .iter()
        .map(|(k, v)| (format!("m.ns1.kubernetes.io/{k}"), v.to_string()))
        .collect();
        if let Some(m) = mac {
            a.insert("m.ns1.kubernetes.io/mac_address".into(), m.into());
        }
        read_result(&a, "m.ns1", None).unwrap().unwrap()
    }

    fn conf(runtime: &str) -> IpamConf {
        let json = format!(
            r#"{{"cniVersion":"1.0.0","name":"n","type":"t","ipam":{{"type":"nadipam","provider":"m.ns1"}},"runtimeConfig":{runtime}}}"#
        );
        IpamConf::parse(&serde_json::from_str(&json).unwrap()).unwrap()
    }

    #[test]
    fn matching_requests_pass() {
        let args = CniArgs::parse("IP=10.1.0.5/24,fd00::5;MAC=02:00:00:00:00:01").unwrap();
        requested(
            &conf(r#"{"ips":["fd00::5/64"],"mac":"02:00:00:00:00:01"}"#),
            &args,
            &parsed(Some("02:00:00:00:00:01")),
            "ns1/p",
        )
        .unwrap();
        // No MAC allocated: the runtime's MAC is the main plugin's business.
        requested(
            &conf(r#"{"mac":"02:00:00:00:00:09"}"#),
            &CniArgs::default(),
            &parsed(None),
            "ns1/p",
        )
        .unwrap();
    }

    #[test]
    fn mismatches_name_both_sides() {
        let e = requested(
            &conf(r#"{"ips":["10.1.0.6/24"]}"#),
            &CniArgs::default(),
            &parsed(None),
            "ns1/p",
        )
        .unwrap_err();
        assert_eq!(e.code(), 104);
        assert_eq!(
            e.to_string(),
            "runtimeConfig.ips asks for 10.1.0.6 but Pod ns1/p was allocated 10.1.0.5,fd00::5 for provider m.ns1; the network selection element (ips/mac in k8s.v1.cni.cncf.io/networks) and the allocation must agree — remove ips/mac there or recreate the Pod"
        );
        let e = requested(
            &conf(r#"{"mac":"02:00:00:00:00:02"}"#),
            &CniArgs::default(),
            &parsed(Some("02:00:00:00:00:01")),
            "ns1/p",
        )
        .unwrap_err();
        assert!(e.to_string().starts_with("runtimeConfig.mac asks for 02:00:00:00:00:02 but Pod ns1/p was allocated 02:00:00:00:00:01"), "{e}");
        let args = CniArgs::parse("MAC=02:00:00:00:00:03").unwrap();
        let e = requested(
            &conf("{}"),
            &args,
            &parsed(Some("02:00:00:00:00:01")),
            "ns1/p",
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("CNI_ARGS MAC asks for 02:00:00:00:00:03"),
            "{e}"
        );
        let args = CniArgs::parse("IP=10.1.0.7").unwrap();
        let e = requested(&conf("{}"), &args, &parsed(None), "ns1/p").unwrap_err();
        assert!(
            e.to_string().starts_with("CNI_ARGS IP asks for 10.1.0.7"),
            "{e}"
        );
        let args = CniArgs::parse("IP=nope").unwrap();
        let e = requested(&conf("{}"), &args, &parsed(None), "ns1/p").unwrap_err();
        assert_eq!(e.code(), 4);
        assert_eq!(
            e.to_string(),
            "CNI_ARGS: IP entry \"nope\" is not an IP address or CIDR"
        );
    }

    fn prev(json: &str) -> CNIResult {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn check_compares_the_interface_addresses() {
        let p = parsed(None);
        // macvlan's prevResult (legacy layout with version keys is accepted too).
        let ok = prev(
            r#"{"cniVersion":"0.4.0","interfaces":[{"name":"net1","sandbox":"/n"}],"ips":[{"version":"4","interface":0,"address":"10.1.0.5/24"},{"version":"6","interface":0,"address":"fd00::5/64"}]}"#,
        );
        prev_result(Some(&ok), &p, "net1", "ns1/p").unwrap();
        // bridge: addresses of other interfaces are not ours.
        let ok = prev(
            r#"{"interfaces":[{"name":"br0"},{"name":"veth1"},{"name":"net1","sandbox":"/n"}],"ips":[{"interface":0,"address":"10.1.0.1/24"},{"interface":2,"address":"10.1.0.5/24"},{"interface":2,"address":"fd00::5/64"}]}"#,
        );
        prev_result(Some(&ok), &p, "net1", "ns1/p").unwrap();
        let bad = prev(
            r#"{"interfaces":[{"name":"net1"}],"ips":[{"interface":0,"address":"10.1.0.9/24"}]}"#,
        );
        let e = prev_result(Some(&bad), &p, "net1", "ns1/p").unwrap_err();
        assert_eq!(e.code(), 107);
        assert_eq!(
            e.to_string(),
            "CHECK: interface net1 was set up with 10.1.0.9/24 (prevResult) but Pod ns1/p now holds 10.1.0.5/24, fd00::5/64; the allocation changed under a running Pod — recreate the Pod"
        );
        let e = prev_result(None, &p, "net1", "ns1/p").unwrap_err();
        assert_eq!(e.code(), 7);
        assert!(
            e.to_string()
                .starts_with("network config field prevResult: is missing")
        );
    }
}
