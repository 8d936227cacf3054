//! Table-driven tests over every annotation form, the exact examples of the Kube-OVN and Spiderpool guides,
//! and malformed inputs with their messages.

use std::collections::BTreeMap;

use super::keys::*;
use super::*;
use crate::alloc::IpPair;

/// Annotations as written in a table row.
type Pairs<'a> = &'a [(&'a str, &'a str)];
/// Substrings an error message must contain.
type Wants<'a> = &'a [&'a str];
/// A malformed case: name, parser, annotations, expected message parts.
type BadRow<'a> = (&'a str, Call, Vec<(&'a str, &'a str)>, Wants<'a>);

fn ann(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// `ns/name if=<explicit|-> as=<ifname> [default] [ips=..] [mac=..] [dr=..]`
fn summary(a: &AttachmentRequest) -> String {
    let mut s = format!(
        "{} if={} as={}",
        a.network,
        a.interface.as_deref().unwrap_or("-"),
        a.ifname
    );
    if a.is_default {
        s.push_str(" default");
    }
    let join = |v: &[std::net::IpAddr]| {
        v.iter()
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    if !a.ips.is_empty() {
        s.push_str(&format!(" ips={}", join(&a.ips)));
    }
    if let Some(m) = a.mac {
        s.push_str(&format!(" mac={m}"));
    }
    if !a.default_route.is_empty() {
        s.push_str(&format!(" dr={}", join(&a.default_route)));
    }
    s
}

/// `ip=.. mac=.. pool=.. ls=.. routes=..`, only the fields that are set.
fn provider_summary(r: &ProviderRequest) -> String {
    let mut parts = Vec::new();
    if let Some(ip) = r.ip_address {
        parts.push(format!("ip={ip}"));
    }
    if let Some(m) = r.mac_address {
        parts.push(format!("mac={m}"));
    }
    match &r.ip_pool {
        Some(PoolRequest::Named(n)) => parts.push(format!("pool=@{n}")),
        Some(PoolRequest::List(l)) => parts.push(format!(
            "pool={}",
            l.iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join(";")
        )),
        None => {}
    }
    if let Some(ls) = &r.logical_switch {
        parts.push(format!("ls={ls}"));
    }
    if let Some(routes) = &r.routes {
        let rs: Vec<String> = routes
            .iter()
            .map(|r| {
                format!(
                    "{}>{}",
                    r.dst.as_deref().unwrap_or("default"),
                    r.gw.as_deref().unwrap_or("-")
                )
            })
            .collect();
        parts.push(format!("routes={}", rs.join("|")));
    }
    parts.join(" ")
}

const SEED_ROUTES: &str = "[{\n  \"dst\": \"192.168.0.101/24\",\n  \"gw\": \"172.17.0.254\"\n}, {\n  \"gw\": \"172.17.0.254\"\n}]\n";

#[test]
fn attachment_forms() {
    let cases: &[(&str, Pairs, &[&str])] = &[
        // Kube-OVN guide: random address on a macvlan attachment.
        (
            "guide networks",
            &[(NETWORKS, "default/macvlan")],
            &["default/macvlan if=- as=net1"],
        ),
        (
            "guide attachnet",
            &[(NETWORKS, "default/attachnet")],
            &["default/attachnet if=- as=net1"],
        ),
        (
            "bare name takes pod namespace",
            &[(NETWORKS, "macvlan")],
            &["prod/macvlan if=- as=net1"],
        ),
        (
            "comma list with whitespace and interfaces",
            &[(
                NETWORKS,
                " default/macvlan@net5 ,vlan ,\tkube-system/ovs@eth9 ",
            )],
            &[
                "default/macvlan if=net5 as=net5",
                "prod/vlan if=- as=net2",
                "kube-system/ovs if=eth9 as=eth9",
            ],
        ),
        (
            "name@interface",
            &[(NETWORKS, "macvlan@net3")],
            &["prod/macvlan if=net3 as=net3"],
        ),
        (
            "same network twice with distinct interfaces",
            &[(NETWORKS, "default/macvlan@net1,default/macvlan@net2")],
            &[
                "default/macvlan if=net1 as=net1",
                "default/macvlan if=net2 as=net2",
            ],
        ),
        // Kube-OVN guide: default route through the macvlan attachment.
        (
            "guide default-route JSON",
            &[(
                NETWORKS,
                "[{\n  \"name\": \"macvlan\",\n  \"namespace\": \"default\",\n  \"default-route\": [\"172.17.0.1\"]\n}]",
            )],
            &["default/macvlan if=- as=net1 dr=172.17.0.1"],
        ),
        (
            "JSON with every field, unknown fields ignored",
            &[(
                NETWORKS,
                r#"[{"name":"macvlan","interface":"net7","ips":["10.0.0.5/24","fd00::5"],"mac":"02:00:00:00:00:AA","cni-args":{"x":1},"portMappings":[]},
                    {"name":"vlan","namespace":"","interface":"","ips":null,"mac":""}]"#,
            )],
            &[
                "prod/macvlan if=net7 as=net7 ips=10.0.0.5,fd00::5 mac=02:00:00:00:00:aa",
                "prod/vlan if=- as=net2",
            ],
        ),
        // Kube-OVN guide: macvlan as the primary interface; Spiderpool guide: ovs-conf as the default network.
        (
            "guide default-network",
            &[(DEFAULT_NETWORK, "default/macvlan")],
            &["default/macvlan if=- as=eth0 default"],
        ),
        (
            "guide default attachnet",
            &[(DEFAULT_NETWORK, "default/attachnet")],
            &["default/attachnet if=- as=eth0 default"],
        ),
        (
            "spiderpool default",
            &[(DEFAULT_NETWORK, "kube-system/ovs-conf")],
            &["kube-system/ovs-conf if=- as=eth0 default"],
        ),
        (
            "default-network bare name",
            &[(DEFAULT_NETWORK, "ovs-conf")],
            &["prod/ovs-conf if=- as=eth0 default"],
        ),
        (
            "default-network @eth0",
            &[(DEFAULT_NETWORK, "default/macvlan@eth0")],
            &["default/macvlan if=- as=eth0 default"],
        ),
        (
            "default-network JSON",
            &[(
                DEFAULT_NETWORK,
                r#"[{"name":"macvlan","namespace":"default","ips":["172.17.0.9"]}]"#,
            )],
            &["default/macvlan if=- as=eth0 default ips=172.17.0.9"],
        ),
        (
            "default first, then networks",
            &[
                (NETWORKS, "default/vlan"),
                (DEFAULT_NETWORK, "default/macvlan"),
            ],
            &[
                "default/macvlan if=- as=eth0 default",
                "default/vlan if=- as=net1",
            ],
        ),
        (
            "default network also attached with an interface",
            &[
                (NETWORKS, "default/macvlan@net1"),
                (DEFAULT_NETWORK, "default/macvlan"),
            ],
            &[
                "default/macvlan if=- as=eth0 default",
                "default/macvlan if=net1 as=net1",
            ],
        ),
        ("blank annotation is absent", &[(NETWORKS, "  ")], &[]),
        ("nothing", &[], &[]),
        (
            "exactly the maximum of attachments",
            &[(NETWORKS, AT_LIMIT.as_str())],
            &[],
        ),
    ];
    for (name, annotations, expected) in cases {
        let got = attachments(&ann(annotations), "prod").unwrap_or_else(|e| panic!("{name}: {e}"));
        let got: Vec<String> = got.iter().map(summary).collect();
        if *name == "exactly the maximum of attachments" {
            assert_eq!(got.len(), MAX_ATTACHMENTS, "{name}");
            assert_eq!(got[31], "prod/n31 if=- as=net32", "{name}");
            continue;
        }
        assert_eq!(got, *expected, "{name}");
    }
}

static AT_LIMIT: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    (0..MAX_ATTACHMENTS)
        .map(|i| format!("n{i}"))
        .collect::<Vec<_>>()
        .join(",")
});

#[test]
fn attachment_ip_pair() {
    let list = attachments(
        &ann(&[(
            NETWORKS,
            r#"[{"name":"m","ips":["fd00::5","10.0.0.5/24"]},{"name":"v"}]"#,
        )]),
        "p",
    )
    .unwrap();
    assert_eq!(list[0].ip_pair().unwrap().to_string(), "10.0.0.5,fd00::5");
    assert_eq!(list[1].ip_pair(), None);
}

#[test]
fn ipam_claim_reference() {
    let list = attachments(
        &ann(&[(
            NETWORKS,
            r#"[{"name":"tenantblue","interface":"net1","ipam-claim-reference":"vm-a.tenantblue"},{"name":"v"}]"#,
        )]),
        "vms",
    )
    .unwrap();
    assert_eq!(list[0].claim.as_deref(), Some("vm-a.tenantblue"));
    assert_eq!(list[1].claim, None);
    let empty = attachments(
        &ann(&[(NETWORKS, r#"[{"name":"m","ipam-claim-reference":" "}]"#)]),
        "p",
    )
    .unwrap();
    assert_eq!(empty[0].claim, None, "an empty reference names no claim");

    let bad = |v: &str| {
        attachments(&ann(&[(NETWORKS, v)]), "p")
            .unwrap_err()
            .to_string()
    };
    let e = bad(r#"[{"name":"m","ipam-claim-reference":"VM_A"}]"#);
    assert!(
        e.contains("[0].ipam-claim-reference") && e.contains("VM_A") && e.contains("IPAMClaim"),
        "{e}"
    );
    let long = "a".repeat(64);
    let e = bad(&format!(
        r#"[{{"name":"m","ipam-claim-reference":"{long}"}}]"#
    ));
    assert!(e.contains("at most 63 characters"), "{e}");
    let e = bad(
        r#"[{"name":"m","ipam-claim-reference":"c"},{"name":"v","interface":"net2","ipam-claim-reference":"c"}]"#,
    );
    assert!(
        e.contains("is the ipam-claim-reference of both p/m and p/v@net2")
            && e.contains("give each attachment its own claim"),
        "{e}"
    );
}

#[test]
fn provider_forms() {
    let cases: &[(&str, Pairs, &str, Option<&str>, &str)] = &[
        // Kube-OVN guide: fixed address and MAC for the macvlan attachment and for the primary (ovn) network.
        (
            "guide static-ip macvlan",
            &[
                (NETWORKS, "default/macvlan"),
                ("ovn.kubernetes.io/ip_address", "10.16.0.15"),
                ("ovn.kubernetes.io/mac_address", "00:00:00:53:6B:B6"),
                ("macvlan.default.kubernetes.io/ip_address", "172.17.0.100"),
                (
                    "macvlan.default.kubernetes.io/mac_address",
                    "00:00:00:53:6B:BB",
                ),
            ],
            "macvlan.default",
            None,
            "ip=172.17.0.100 mac=00:00:00:53:6b:bb",
        ),
        (
            "guide static-ip ovn",
            &[
                ("ovn.kubernetes.io/ip_address", "10.16.0.15"),
                ("ovn.kubernetes.io/mac_address", "00:00:00:53:6B:B6"),
                ("macvlan.default.kubernetes.io/ip_address", "172.17.0.100"),
            ],
            "ovn",
            None,
            "ip=10.16.0.15 mac=00:00:00:53:6b:b6",
        ),
        // Kube-OVN guide: workload pools.
        (
            "guide ip_pool macvlan",
            &[
                (
                    "ovn.kubernetes.io/ip_pool",
                    "10.16.0.15,10.16.0.16,10.16.0.17",
                ),
                (
                    "macvlan.default.kubernetes.io/ip_pool",
                    "172.17.0.200,172.17.0.201,172.17.0.202",
                ),
            ],
            "macvlan.default",
            None,
            "pool=172.17.0.200;172.17.0.201;172.17.0.202",
        ),
        (
            "guide ip_pool ovn",
            &[(
                "ovn.kubernetes.io/ip_pool",
                "10.16.0.15,10.16.0.16,10.16.0.17",
            )],
            "ovn",
            None,
            "pool=10.16.0.15;10.16.0.16;10.16.0.17",
        ),
        // Kube-OVN guide: subnet by name, for IPAM-only and for kube-ovn NADs.
        (
            "guide logical_switch",
            &[("macvlan.default.kubernetes.io/logical_switch", "macvlan")],
            "macvlan.default",
            None,
            "ls=macvlan",
        ),
        (
            "guide logical_switch ovn NAD",
            &[(
                "attachnet.default.ovn.kubernetes.io/logical_switch",
                "attachnet",
            )],
            "attachnet.default.ovn",
            None,
            "ls=attachnet",
        ),
        // Kube-OVN guide: custom routes, written under the `.ovn` provider.
        (
            "guide routes",
            &[("attachnet.default.ovn.kubernetes.io/routes", SEED_ROUTES)],
            "attachnet.default.ovn",
            None,
            "routes=192.168.0.101/24>172.17.0.254|default>172.17.0.254",
        ),
        (
            "routes are per provider",
            &[("attachnet.default.ovn.kubernetes.io/routes", SEED_ROUTES)],
            "attachnet.default",
            None,
            "",
        ),
        (
            "dual-stack address",
            &[("m.p.kubernetes.io/ip_address", "10.0.0.5, fd00::5")],
            "m.p",
            None,
            "ip=10.0.0.5,fd00::5",
        ),
        (
            "IPv6 address",
            &[("m.p.kubernetes.io/ip_address", "fd00::5")],
            "m.p",
            None,
            "ip=fd00::5",
        ),
        (
            "dual pair pool by comma",
            &[("m.p.kubernetes.io/ip_pool", "10.0.0.1,fd00::1")],
            "m.p",
            None,
            "pool=10.0.0.1,fd00::1",
        ),
        (
            "dual pairs pool by semicolon",
            &[(
                "m.p.kubernetes.io/ip_pool",
                "10.0.0.1,fd00::1; 10.0.0.2,fd00::2",
            )],
            "m.p",
            None,
            "pool=10.0.0.1,fd00::1;10.0.0.2,fd00::2",
        ),
        (
            "named pool",
            &[("m.p.kubernetes.io/ip_pool", "pool-a")],
            "m.p",
            None,
            "pool=@pool-a",
        ),
        (
            "single-address pool",
            &[("m.p.kubernetes.io/ip_pool", "10.0.0.9")],
            "m.p",
            None,
            "pool=10.0.0.9",
        ),
        (
            "blank values are absent",
            &[
                ("m.p.kubernetes.io/ip_address", ""),
                ("m.p.kubernetes.io/ip_pool", " "),
            ],
            "m.p",
            None,
            "",
        ),
        (
            "per-interface keys win for their interface",
            &[
                ("m.p.kubernetes.io/ip_address", "10.0.0.1"),
                ("m.p.kubernetes.io/ip_address.net2", "10.0.0.2"),
                ("m.p.kubernetes.io/mac_address", "02:00:00:00:00:01"),
                ("m.p.kubernetes.io/mac_address.net2", "02:00:00:00:00:02"),
            ],
            "m.p",
            Some("net2"),
            "ip=10.0.0.2 mac=02:00:00:00:00:02",
        ),
        (
            "other interfaces fall back to the provider keys",
            &[
                ("m.p.kubernetes.io/ip_address", "10.0.0.1"),
                ("m.p.kubernetes.io/ip_address.net2", "10.0.0.2"),
            ],
            "m.p",
            Some("net1"),
            "ip=10.0.0.1",
        ),
        (
            "per-interface address with a provider-wide pool",
            &[
                ("m.p.kubernetes.io/ip_address.net2", "10.0.0.2"),
                ("m.p.kubernetes.io/ip_pool", "10.0.0.7,10.0.0.8"),
            ],
            "m.p",
            Some("net2"),
            "ip=10.0.0.2 pool=10.0.0.7;10.0.0.8",
        ),
        (
            "nothing set",
            &[(NETWORKS, "default/macvlan")],
            "macvlan.default",
            None,
            "",
        ),
    ];
    for (name, annotations, provider, interface, expected) in cases {
        let got = provider_request(&ann(annotations), provider, *interface)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(provider_summary(&got), *expected, "{name}");
        assert_eq!(got.is_empty(), expected.is_empty(), "{name}");
    }
}

#[test]
fn spiderpool_forms() {
    // Spiderpool guide, verbatim (YAML `|-` block).
    let guide = ann(&[
        (SPIDER_IPPOOL, "{\n  \"ipv4\": [\"ippool-test\"]\n}"),
        (DEFAULT_NETWORK, "kube-system/ovs-conf"),
    ]);
    let pools = spider_pools(&guide).unwrap().unwrap();
    assert_eq!(pools.key, SPIDER_IPPOOL);
    let first = pools.for_interface("eth0", true).unwrap();
    assert_eq!(first.ipv4, ["ippool-test"]);
    assert!(first.ipv6.is_empty());
    assert!(!first.clean_gateway);
    assert!(pools.for_interface("net1", false).is_none());

    let dual = ann(&[(SPIDER_IPPOOL, r#"{"ipv4":["pool"],"ipv6":["pool6"]}"#)]);
    let e = &spider_pools(&dual).unwrap().unwrap().entries[0];
    assert_eq!(
        (e.ipv4.as_slice(), e.ipv6.as_slice()),
        (&["pool".to_string()][..], &["pool6".to_string()][..])
    );

    // ippools wins over ippool; the entry without interface goes to the first attachment.
    let multi = ann(&[
        (SPIDER_IPPOOL, r#"{"ipv4":["ignored"]}"#),
        (
            SPIDER_IPPOOLS,
            r#"[{"interface":"net1","ipv4":["v4-b"],"ipv6":["v6-b"],"cleangateway":true},
                {"ipv4":["v4-a"]}]"#,
        ),
    ]);
    let pools = spider_pools(&multi).unwrap().unwrap();
    assert_eq!(pools.key, SPIDER_IPPOOLS);
    let net1 = pools.for_interface("net1", false).unwrap();
    assert_eq!(
        (
            net1.ipv4[0].as_str(),
            net1.ipv6[0].as_str(),
            net1.clean_gateway
        ),
        ("v4-b", "v6-b", true)
    );
    assert_eq!(pools.for_interface("eth0", true).unwrap().ipv4, ["v4-a"]);
    assert!(pools.for_interface("net2", false).is_none());
    // An exact interface match beats the unnamed entry even for the first attachment.
    assert_eq!(pools.for_interface("net1", true).unwrap().ipv4, ["v4-b"]);

    assert_eq!(spider_pools(&ann(&[(NETWORKS, "a")])).unwrap(), None);
}

#[test]
fn render_single() {
    let r = AllocationResult {
        provider: "macvlan.default".into(),
        interface: None,
        ip: IpPair::from_addrs(["172.17.0.100".parse().unwrap()]).unwrap(),
        mac: Some("00:00:00:53:6B:BB".parse().unwrap()),
        cidr: "172.17.0.0/16".into(),
        gateway: "172.17.0.1".into(),
        logical_switch: "macvlan".into(),
        routes: None,
    };
    assert_eq!(
        r.render(),
        ann(&[
            ("macvlan.default.kubernetes.io/ip_address", "172.17.0.100"),
            (
                "macvlan.default.kubernetes.io/mac_address",
                "00:00:00:53:6b:bb"
            ),
            ("macvlan.default.kubernetes.io/cidr", "172.17.0.0/16"),
            ("macvlan.default.kubernetes.io/gateway", "172.17.0.1"),
            ("macvlan.default.kubernetes.io/allocated", "true"),
            ("macvlan.default.kubernetes.io/logical_switch", "macvlan"),
        ])
    );
    assert!(
        !r.render()
            .contains_key("macvlan.default.kubernetes.io/ip_pool")
    );
    let back = read_result(&r.render(), "macvlan.default", Some("net1"))
        .unwrap()
        .unwrap();
    assert_eq!(back.ip, r.ip);
    assert_eq!(back.mac, r.mac);
    assert_eq!(back.addresses.len(), 1);
    assert_eq!(back.addresses[0].address.to_string(), "172.17.0.100/16");
    assert_eq!(
        back.addresses[0].gateway,
        Some("172.17.0.1".parse().unwrap())
    );
    assert_eq!(back.logical_switch.as_deref(), Some("macvlan"));
    assert_eq!(back.routes, None);
}

fn dual(
    provider: &str,
    interface: Option<&str>,
    v4: &str,
    v6: &str,
    mac: &str,
) -> AllocationResult {
    AllocationResult {
        provider: provider.into(),
        interface: interface.map(str::to_string),
        ip: IpPair::from_addrs([v4.parse().unwrap(), v6.parse().unwrap()]).unwrap(),
        mac: Some(mac.parse().unwrap()),
        cidr: "10.0.0.0/24,fd00::/64".into(),
        gateway: "10.0.0.1,fd00::1".into(),
        logical_switch: "attachnet".into(),
        routes: Some(vec![
            Route {
                dst: Some("192.168.0.101/24".into()),
                gw: Some("10.0.0.254".into()),
            },
            Route {
                dst: None,
                gw: Some("10.0.0.254".into()),
            },
        ]),
    }
}

#[test]
fn render_dual_stack_with_routes_round_trips() {
    let r = dual(
        "attachnet.default.ovn",
        Some("net2"),
        "10.0.0.5",
        "fd00::5",
        "02:00:00:00:00:05",
    );
    let m = r.render();
    assert_eq!(
        m["attachnet.default.ovn.kubernetes.io/ip_address"],
        "10.0.0.5,fd00::5"
    );
    assert_eq!(
        m["attachnet.default.ovn.kubernetes.io/ip_address.net2"],
        "10.0.0.5,fd00::5"
    );
    assert_eq!(
        m["attachnet.default.ovn.kubernetes.io/mac_address.net2"],
        "02:00:00:00:00:05"
    );
    assert_eq!(
        m["attachnet.default.ovn.kubernetes.io/routes"],
        r#"[{"dst":"192.168.0.101/24","gw":"10.0.0.254"},{"gw":"10.0.0.254"}]"#
    );
    let back = read_result(&m, "attachnet.default.ovn", Some("net2"))
        .unwrap()
        .unwrap();
    assert_eq!(back.ip, r.ip);
    assert_eq!(back.mac, r.mac);
    let addrs: Vec<String> = back
        .addresses
        .iter()
        .map(|a| {
            format!(
                "{} via {}",
                a.address,
                a.gateway.map(|g| g.to_string()).unwrap_or_default()
            )
        })
        .collect();
    assert_eq!(
        addrs,
        ["10.0.0.5/24 via 10.0.0.1", "fd00::5/64 via fd00::1"]
    );
    assert_eq!(back.routes, r.routes);
}

#[test]
fn render_all_keeps_shared_providers_apart() {
    // The same NAD attached as the default network and again as net2.
    let eth0 = dual("m.p", None, "10.0.0.5", "fd00::5", "02:00:00:00:00:05");
    let net2 = dual(
        "m.p",
        Some("net2"),
        "10.0.0.6",
        "fd00::6",
        "02:00:00:00:00:06",
    );
    let other = AllocationResult {
        gateway: String::new(),
        routes: None,
        ..dual("x.p", None, "10.0.0.7", "fd00::7", "02:00:00:00:00:07")
    };
    let m = render_all(&[net2.clone(), eth0.clone(), other]).unwrap();
    assert_eq!(m["m.p.kubernetes.io/ip_address"], "10.0.0.5,fd00::5");
    assert_eq!(m["m.p.kubernetes.io/ip_address.net2"], "10.0.0.6,fd00::6");
    assert!(!m.contains_key("x.p.kubernetes.io/gateway"));
    let a = read_result(&m, "m.p", Some("eth0")).unwrap().unwrap();
    let b = read_result(&m, "m.p", Some("net2")).unwrap().unwrap();
    assert_eq!((a.ip, a.mac), (eth0.ip, eth0.mac));
    assert_eq!((b.ip, b.mac), (net2.ip, net2.mac));
    let c = read_result(&m, "x.p", Some("net1")).unwrap().unwrap();
    assert_eq!(c.addresses[0].gateway, None);

    // A per-interface address without a per-interface MAC never borrows the provider-level MAC.
    let no_mac = AllocationResult {
        mac: None,
        ..net2.clone()
    };
    let m = render_all(&[eth0.clone(), no_mac]).unwrap();
    assert_eq!(
        read_result(&m, "m.p", Some("net2")).unwrap().unwrap().mac,
        None
    );

    // Two unnamed results for one provider cannot both own the plain keys.
    let e = render_all(&[
        eth0.clone(),
        dual("m.p", None, "10.0.0.8", "fd00::8", "02:00:00:00:00:08"),
    ])
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "annotation m.p.kubernetes.io/ip_address: two allocations for the same provider would write \"10.0.0.5,fd00::5\" and \"10.0.0.8,fd00::8\"; give each attachment of a shared network its own interface name"
    );
    let e = render_all(&[
        eth0,
        AllocationResult {
            cidr: "10.9.0.0/24".into(),
            ..net2
        },
    ])
    .unwrap_err();
    assert!(
        e.to_string()
            .starts_with("annotation m.p.kubernetes.io/cidr: two allocations"),
        "{e}"
    );
}

#[test]
fn read_before_allocation_is_none() {
    let m = ann(&[("m.p.kubernetes.io/ip_address", "10.0.0.5")]);
    assert_eq!(read_result(&m, "m.p", None).unwrap(), None);
    let m = ann(&[
        ("m.p.kubernetes.io/ip_address", "10.0.0.5"),
        ("m.p.kubernetes.io/allocated", "false"),
    ]);
    assert_eq!(read_result(&m, "m.p", None).unwrap(), None);
}

#[test]
fn validate_checks_every_request_key() {
    let ok = ann(&[
        (NETWORKS, "default/macvlan"),
        (
            "macvlan.default.kubernetes.io/ip_pool",
            "172.17.0.200,172.17.0.201,172.17.0.202",
        ),
        (
            "macvlan.default.kubernetes.io/mac_address.net1",
            "02:00:00:00:00:01",
        ),
        ("app.kubernetes.io/name", "whatever, not ours"),
    ]);
    assert_eq!(validate(&ok, "default").unwrap().len(), 1);
}

/// Which parser a malformed case goes through.
#[derive(Clone, Copy, Debug)]
enum Call {
    Attachments,
    Provider(&'static str, Option<&'static str>),
    Spider,
    Read(&'static str, Option<&'static str>),
    Validate,
}

fn run(call: Call, a: &BTreeMap<String, String>, ns: &str) -> Result<(), AnnotationError> {
    match call {
        Call::Attachments => attachments(a, ns).map(drop),
        Call::Provider(p, i) => provider_request(a, p, i).map(drop),
        Call::Spider => spider_pools(a).map(drop),
        Call::Read(p, i) => read_result(a, p, i).map(drop),
        Call::Validate => validate(a, ns).map(drop),
    }
}

static TOO_MANY: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    (0..100)
        .map(|i| format!("n{i}"))
        .collect::<Vec<_>>()
        .join(",")
});
static TOO_MANY_JSON: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "[{}]",
        (0..MAX_ATTACHMENTS + 1)
            .map(|i| format!("{{\"name\":\"n{i}\"}}"))
            .collect::<Vec<_>>()
            .join(",")
    )
});
static HUGE: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| format!("default/{}", "a".repeat(70_000)));

const MAC_KEY: &str = "macvlan.default.kubernetes.io/mac_address";
const IP_KEY: &str = "macvlan.default.kubernetes.io/ip_address";
const POOL_KEY: &str = "macvlan.default.kubernetes.io/ip_pool";
const ROUTES_KEY: &str = "attachnet.default.ovn.kubernetes.io/routes";
const ALLOC_KEY: &str = "m.p.kubernetes.io/allocated";

#[test]
fn malformed_inputs() {
    let cases: Vec<BadRow> = vec![
        // --- Multus networks, text form
        (
            "space in name",
            Call::Attachments,
            vec![(NETWORKS, "default/mac vlan")],
            &[
                "annotation k8s.v1.cni.cncf.io/networks: \"default/mac vlan\" is not a valid network reference (expected name, namespace/name or namespace/name@interface; names are DNS-1123 labels)",
            ],
        ),
        (
            "upper-case namespace",
            Call::Attachments,
            vec![(NETWORKS, "Default/macvlan")],
            &[
                NETWORKS,
                "\"Default/macvlan\" is not a valid network reference",
            ],
        ),
        (
            "two slashes",
            Call::Attachments,
            vec![(NETWORKS, "a/b/c")],
            &[NETWORKS, "\"a/b/c\" is not a valid network reference"],
        ),
        (
            "empty name",
            Call::Attachments,
            vec![(NETWORKS, "default/")],
            &[NETWORKS, "\"default/\" is not a valid network reference"],
        ),
        (
            "empty interface",
            Call::Attachments,
            vec![(NETWORKS, "default/macvlan@")],
            &[
                NETWORKS,
                "interface \"\" is not valid (expected 1-15 letters",
            ],
        ),
        (
            "long interface",
            Call::Attachments,
            vec![(NETWORKS, "default/macvlan@interface-name-16")],
            &[NETWORKS, "interface \"interface-name-16\" is not valid"],
        ),
        (
            "empty entry",
            Call::Attachments,
            vec![(NETWORKS, "default/macvlan,,default/vlan")],
            &[
                NETWORKS,
                "\"default/macvlan,,default/vlan\" has an empty entry",
            ],
        ),
        (
            "trailing comma",
            Call::Attachments,
            vec![(NETWORKS, "default/macvlan,")],
            &[NETWORKS, "has an empty entry"],
        ),
        (
            "duplicate attachment",
            Call::Attachments,
            vec![(NETWORKS, "default/macvlan, default/macvlan")],
            &[
                "annotation k8s.v1.cni.cncf.io/networks: default/macvlan is attached twice without interface names; attach it once, or name each interface (e.g. default/macvlan@net1 and default/macvlan@net2) so each gets its own address",
            ],
        ),
        (
            "duplicate with interface",
            Call::Attachments,
            vec![(NETWORKS, "default/macvlan@net1,default/macvlan@net1")],
            &[
                NETWORKS,
                "default/macvlan@net1 is listed twice; remove the duplicate",
            ],
        ),
        (
            "default also in networks",
            Call::Attachments,
            vec![
                (DEFAULT_NETWORK, "default/macvlan"),
                (NETWORKS, "default/macvlan"),
            ],
            &[NETWORKS, "default/macvlan is attached twice"],
        ),
        (
            "explicit name clashes with positional",
            Call::Attachments,
            vec![(NETWORKS, "default/macvlan@net2,default/vlan")],
            &[
                "annotation k8s.v1.cni.cncf.io/networks: interface net2 would be used by both default/macvlan@net2 and default/vlan; give them distinct interface names",
            ],
        ),
        (
            "explicit eth0 clashes with default",
            Call::Attachments,
            vec![
                (DEFAULT_NETWORK, "default/macvlan"),
                (NETWORKS, "default/vlan@eth0"),
            ],
            &[
                NETWORKS,
                "interface eth0 would be used by both default/macvlan (default network) and default/vlan@eth0",
            ],
        ),
        (
            "no namespace anywhere",
            Call::Attachments,
            vec![(NETWORKS, "macvlan")],
            &[
                NETWORKS,
                "\"macvlan\" names no namespace and the Pod's namespace \"\" is not a DNS-1123 label; write namespace/name",
            ],
        ),
        (
            "100 attachments",
            Call::Attachments,
            vec![(NETWORKS, TOO_MANY.as_str())],
            &[
                "annotation k8s.v1.cni.cncf.io/networks: 100 network attachments requested; at most 32 are accepted per Pod",
            ],
        ),
        (
            "101 JSON attachments",
            Call::Attachments,
            vec![(NETWORKS, TOO_MANY_JSON.as_str())],
            &[NETWORKS, "33 network attachments requested"],
        ),
        (
            "70 KB value",
            Call::Attachments,
            vec![(NETWORKS, HUGE.as_str())],
            &[
                NETWORKS,
                "(70008 bytes in total) is larger than the 65536 bytes nadipam accepts",
            ],
        ),
        // --- Multus networks, JSON form
        (
            "single JSON object",
            Call::Attachments,
            vec![(NETWORKS, r#"{"name":"macvlan"}"#)],
            &[
                NETWORKS,
                "\"{\\\"name\\\":\\\"macvlan\\\"}\" is not a JSON list of network selection elements",
                "a single object must be wrapped in [ ]",
            ],
        ),
        (
            "truncated JSON",
            Call::Attachments,
            vec![(NETWORKS, r#"[{"name":"macvlan""#)],
            &[
                NETWORKS,
                "is not a JSON list of network selection elements",
                "EOF",
            ],
        ),
        (
            "wrong JSON type",
            Call::Attachments,
            vec![(NETWORKS, r#"[{"name":"macvlan","ips":"10.0.0.1"}]"#)],
            &[
                NETWORKS,
                "invalid type: string \"10.0.0.1\", expected a sequence",
            ],
        ),
        (
            "JSON without name",
            Call::Attachments,
            vec![(NETWORKS, r#"[{"namespace":"default"}]"#)],
            &[
                NETWORKS,
                "[0].name \"\" is not valid (expected the network's name (required)",
            ],
        ),
        (
            "JSON name with namespace",
            Call::Attachments,
            vec![(NETWORKS, r#"[{"name":"default/macvlan"}]"#)],
            &[
                NETWORKS,
                "[0].name \"default/macvlan\" is not valid",
                "the namespace goes in \"namespace\"",
            ],
        ),
        (
            "JSON bad namespace",
            Call::Attachments,
            vec![(
                NETWORKS,
                r#"[{"name":"a"},{"name":"b","namespace":"Kube_System"}]"#,
            )],
            &[
                NETWORKS,
                "[1].namespace \"Kube_System\" is not valid (expected a DNS-1123 label",
            ],
        ),
        (
            "JSON bad interface",
            Call::Attachments,
            vec![(NETWORKS, r#"[{"name":"a","interface":"net/1"}]"#)],
            &[NETWORKS, "interface \"net/1\" is not valid"],
        ),
        (
            "JSON two IPv4 ips",
            Call::Attachments,
            vec![(
                NETWORKS,
                r#"[{"name":"a","ips":["10.0.0.1","10.0.0.2/24"]}]"#,
            )],
            &[
                NETWORKS,
                "[0].ips \"10.0.0.1,10.0.0.2\" is not valid (expected at most one IPv4 and one IPv6 address)",
            ],
        ),
        (
            "JSON bad ip",
            Call::Attachments,
            vec![(NETWORKS, r#"[{"name":"a","ips":["10.0.0.300"]}]"#)],
            &[
                NETWORKS,
                "[0].ips \"10.0.0.300\" is not valid (expected a unicast IP address, optionally with a /prefix",
            ],
        ),
        (
            "JSON multicast mac",
            Call::Attachments,
            vec![(NETWORKS, r#"[{"name":"a","mac":"01:00:5e:00:00:01"}]"#)],
            &[
                NETWORKS,
                "\"01:00:5e:00:00:01\" is not a usable MAC address: it is multicast or broadcast",
            ],
        ),
        (
            "JSON default-route CIDR",
            Call::Attachments,
            vec![(
                NETWORKS,
                r#"[{"name":"a","default-route":["172.17.0.0/16"]}]"#,
            )],
            &[
                NETWORKS,
                "[0].default-route \"172.17.0.0/16\" is not valid (expected a gateway IP address such as 172.17.0.1)",
            ],
        ),
        (
            "two IPv4 default routes",
            Call::Attachments,
            vec![(
                NETWORKS,
                r#"[{"name":"a","default-route":["10.0.0.1"]},{"name":"b","default-route":["10.1.0.1"]}]"#,
            )],
            &[
                "annotation k8s.v1.cni.cncf.io/networks: both prod/a and prod/b set an IPv4 default-route; at most one attachment per address family may carry the default route",
            ],
        ),
        // --- Multus default network
        (
            "default names two",
            Call::Attachments,
            vec![(DEFAULT_NETWORK, "default/a,default/b")],
            &[
                DEFAULT_NETWORK,
                "\"default/a,default/b\" names 2 networks; the default network is exactly one",
            ],
        ),
        (
            "default with interface",
            Call::Attachments,
            vec![(DEFAULT_NETWORK, "default/macvlan@net1")],
            &[
                DEFAULT_NETWORK,
                "\"default/macvlan@net1\" names interface net1; the default network is always the Pod's primary interface eth0",
            ],
        ),
        (
            "default empty JSON",
            Call::Attachments,
            vec![(DEFAULT_NETWORK, "[]")],
            &[DEFAULT_NETWORK, "\"[]\" names 0 networks"],
        ),
        (
            "default bad ref",
            Call::Attachments,
            vec![(DEFAULT_NETWORK, "kube-system/ovs_conf")],
            &[
                DEFAULT_NETWORK,
                "\"kube-system/ovs_conf\" is not a valid network reference",
            ],
        ),
        // --- Kube-OVN provider keys
        (
            "CIDR address",
            Call::Provider("macvlan.default", None),
            vec![(IP_KEY, "10.0.0.1/24")],
            &[
                "annotation macvlan.default.kubernetes.io/ip_address: 10.0.0.1/24 is a CIDR; give the bare address (e.g. 10.0.0.1) or v4,v6 for dual stack",
            ],
        ),
        (
            "two IPv4 addresses",
            Call::Provider("macvlan.default", None),
            vec![(IP_KEY, "172.17.0.100,172.17.0.101")],
            &[
                IP_KEY,
                "\"172.17.0.100,172.17.0.101\" has two IPv4 addresses",
            ],
        ),
        (
            "not an address",
            Call::Provider("macvlan.default", None),
            vec![(IP_KEY, "172.17.0.x")],
            &[
                IP_KEY,
                "\"172.17.0.x\" is not an IP address (expected a bare address such as 10.0.0.1",
            ],
        ),
        (
            "unspecified address",
            Call::Provider("macvlan.default", None),
            vec![(IP_KEY, "0.0.0.0")],
            &[
                IP_KEY,
                "\"0.0.0.0\" is the unspecified address; expected a unicast host address",
            ],
        ),
        (
            "per-interface CIDR",
            Call::Provider("macvlan.default", Some("net1")),
            vec![(
                "macvlan.default.kubernetes.io/ip_address.net1",
                "fd00::5/64",
            )],
            &[
                "annotation macvlan.default.kubernetes.io/ip_address.net1: fd00::5/64 is a CIDR; give the bare address (e.g. fd00::5)",
            ],
        ),
        (
            "short MAC",
            Call::Provider("macvlan.default", None),
            vec![(MAC_KEY, "00:00:00:53:6B")],
            &[
                "annotation macvlan.default.kubernetes.io/mac_address: \"00:00:00:53:6B\" is not a usable MAC address: expected six hex octets such as 00:00:00:53:6b:bb",
            ],
        ),
        (
            "broadcast MAC",
            Call::Provider("macvlan.default", None),
            vec![(MAC_KEY, "ff:ff:ff:ff:ff:ff")],
            &[
                MAC_KEY,
                "\"ff:ff:ff:ff:ff:ff\" is not a usable MAC address: it is multicast or broadcast",
            ],
        ),
        (
            "zero MAC per interface",
            Call::Provider("macvlan.default", Some("net1")),
            vec![(
                "macvlan.default.kubernetes.io/mac_address.net1",
                "00:00:00:00:00:00",
            )],
            &[
                "annotation macvlan.default.kubernetes.io/mac_address.net1: \"00:00:00:00:00:00\"",
                "all-zero",
            ],
        ),
        (
            "address and pool",
            Call::Provider("macvlan.default", None),
            vec![
                (IP_KEY, "172.17.0.100"),
                (POOL_KEY, "172.17.0.200,172.17.0.201"),
            ],
            &[
                "annotation macvlan.default.kubernetes.io/ip_address: set together with macvlan.default.kubernetes.io/ip_pool; give either a fixed address (ip_address) or a pool (ip_pool), not both",
            ],
        ),
        (
            "mixed pool",
            Call::Provider("macvlan.default", None),
            vec![(POOL_KEY, "10.0.0.1,fd00::1,10.0.0.2")],
            &[
                POOL_KEY,
                "\"10.0.0.1,fd00::1,10.0.0.2\" mixes IPv4 and IPv6 addresses; separate dual-stack pairs with ';'",
            ],
        ),
        (
            "CIDR pool",
            Call::Provider("macvlan.default", None),
            vec![(POOL_KEY, "172.17.0.0/24")],
            &[POOL_KEY, "172.17.0.0/24 is a CIDR"],
        ),
        (
            "pool repeats an address",
            Call::Provider("macvlan.default", None),
            vec![(POOL_KEY, "172.17.0.200, 172.17.0.200")],
            &[POOL_KEY, "lists IPv4 address 172.17.0.200 twice"],
        ),
        (
            "pool name invalid",
            Call::Provider("macvlan.default", None),
            vec![(POOL_KEY, "My_Pool")],
            &[
                POOL_KEY,
                "\"My_Pool\" is neither an IP address nor an IPPool name",
            ],
        ),
        (
            "pool pair of one family",
            Call::Provider("macvlan.default", None),
            vec![(POOL_KEY, "10.0.0.1,10.0.0.2;10.0.0.3,fd00::3")],
            &[
                POOL_KEY,
                "has entry \"10.0.0.1,10.0.0.2\" with two addresses of one family",
            ],
        ),
        (
            "bad subnet name",
            Call::Provider("macvlan.default", None),
            vec![("macvlan.default.kubernetes.io/logical_switch", "Mac_VLAN")],
            &[
                "annotation macvlan.default.kubernetes.io/logical_switch: \"Mac_VLAN\" is not a Subnet name (expected a DNS-1123 subdomain",
            ],
        ),
        (
            "route family mismatch",
            Call::Provider("attachnet.default.ovn", None),
            vec![(ROUTES_KEY, r#"[{"dst":"192.168.0.0/24","gw":"fd00::1"}]"#)],
            &[
                ROUTES_KEY,
                "[0].gw \"fd00::1\" is not valid (expected an IPv4 gateway to match dst 192.168.0.0/24)",
            ],
        ),
        (
            "route bad dst",
            Call::Provider("attachnet.default.ovn", None),
            vec![(
                ROUTES_KEY,
                r#"[{"gw":"172.17.0.254"},{"dst":"192.168.0.0/33","gw":"172.17.0.254"}]"#,
            )],
            &[
                ROUTES_KEY,
                "[1].dst \"192.168.0.0/33\" is not valid (expected a destination CIDR",
            ],
        ),
        (
            "route misspelt field",
            Call::Provider("attachnet.default.ovn", None),
            vec![(
                ROUTES_KEY,
                r#"[{"dest":"192.168.0.0/24","gw":"172.17.0.254"}]"#,
            )],
            &[
                ROUTES_KEY,
                "is not a JSON list of routes",
                "unknown field `dest`",
            ],
        ),
        (
            "routes not JSON",
            Call::Provider("attachnet.default.ovn", None),
            vec![(ROUTES_KEY, "192.168.0.0/24 via 172.17.0.254")],
            &[
                ROUTES_KEY,
                "\"192.168.0.0/24 via 172.17.0.254\" is not a JSON list of routes",
                "a JSON list [...] is required",
            ],
        ),
        (
            "empty route",
            Call::Provider("attachnet.default.ovn", None),
            vec![(ROUTES_KEY, "[{}]")],
            &[
                ROUTES_KEY,
                "[0].gw \"\" is not valid (expected a gateway for a route without dst",
            ],
        ),
        (
            "invalid provider",
            Call::Provider("Mac/vlan", None),
            vec![],
            &[
                "provider \"Mac/vlan\" is not valid (expected <nad>.<namespace>, <nad>.<namespace>.ovn or ovn",
            ],
        ),
        (
            "invalid interface argument",
            Call::Provider("m.p", Some("bad if")),
            vec![],
            &["annotation m.p.kubernetes.io/ip_address.bad if: interface \"bad if\" is not valid"],
        ),
        (
            "70 KB address",
            Call::Provider("macvlan.default", None),
            vec![(IP_KEY, HUGE.as_str())],
            &[IP_KEY, "is larger than the 65536 bytes"],
        ),
        // --- Spiderpool
        (
            "old spiderpool field names",
            Call::Spider,
            vec![(SPIDER_IPPOOL, r#"{"ipv4pools":["a"]}"#)],
            &[
                SPIDER_IPPOOL,
                "is not a JSON object of pool names",
                "unknown field `ipv4pools`",
            ],
        ),
        (
            "spiderpool without pools",
            Call::Spider,
            vec![(SPIDER_IPPOOL, r#"{"ipv4":[]}"#)],
            &[
                SPIDER_IPPOOL,
                "ipv4 \"\" is not valid (expected at least one pool name in \"ipv4\" or \"ipv6\")",
            ],
        ),
        (
            "spiderpool bad pool name",
            Call::Spider,
            vec![(SPIDER_IPPOOL, r#"{"ipv4":["ok"],"ipv6":["Bad_Pool"]}"#)],
            &[
                SPIDER_IPPOOL,
                "ipv6[0] \"Bad_Pool\" is not valid (expected a SpiderIPPool name",
            ],
        ),
        (
            "spiderpool not JSON",
            Call::Spider,
            vec![(SPIDER_IPPOOL, "ippool-test")],
            &[
                SPIDER_IPPOOL,
                "\"ippool-test\" is not a JSON object of pool names",
            ],
        ),
        (
            "ippools not a list",
            Call::Spider,
            vec![(SPIDER_IPPOOLS, r#"{"ipv4":["a"]}"#)],
            &[
                SPIDER_IPPOOLS,
                "is not a JSON list of per-interface pools",
                "a JSON list [...] is required",
            ],
        ),
        (
            "ippools interface twice",
            Call::Spider,
            vec![(
                SPIDER_IPPOOLS,
                r#"[{"interface":"net1","ipv4":["a"]},{"interface":"net1","ipv4":["b"]}]"#,
            )],
            &[
                SPIDER_IPPOOLS,
                "has more than one entry for interface net1; give each interface exactly one entry",
            ],
        ),
        (
            "ippools two unnamed",
            Call::Spider,
            vec![(SPIDER_IPPOOLS, r#"[{"ipv4":["a"]},{"ipv6":["b"]}]"#)],
            &[
                SPIDER_IPPOOLS,
                "has more than one entry without \"interface\"",
            ],
        ),
        (
            "ippools bad interface",
            Call::Spider,
            vec![(SPIDER_IPPOOLS, r#"[{"interface":"-x","ipv4":["a"]}]"#)],
            &[SPIDER_IPPOOLS, "interface \"-x\" is not valid"],
        ),
        (
            "ippools entry path",
            Call::Spider,
            vec![(
                SPIDER_IPPOOLS,
                r#"[{"interface":"net1","ipv4":["a"]},{"interface":"net2","ipv4":["a","B"]}]"#,
            )],
            &[SPIDER_IPPOOLS, "[1].ipv4[1] \"B\" is not valid"],
        ),
        // --- Results read by the CNI plugin
        (
            "allocated without address",
            Call::Read("m.p", None),
            vec![(ALLOC_KEY, "true")],
            &[
                "annotation m.p.kubernetes.io/ip_address: \"\" is missing although m.p.kubernetes.io/allocated is \"true\"",
            ],
        ),
        (
            "address outside cidr",
            Call::Read("m.p", None),
            vec![
                (ALLOC_KEY, "true"),
                ("m.p.kubernetes.io/ip_address", "10.1.0.5"),
                ("m.p.kubernetes.io/cidr", "10.0.0.0/24"),
            ],
            &[
                "annotation m.p.kubernetes.io/cidr: \"10.0.0.0/24\" does not contain the allocated IPv4 address 10.1.0.5",
            ],
        ),
        (
            "missing cidr",
            Call::Read("m.p", None),
            vec![
                (ALLOC_KEY, "true"),
                ("m.p.kubernetes.io/ip_address", "10.1.0.5"),
            ],
            &["annotation m.p.kubernetes.io/cidr: \"\" is not valid (expected the subnet CIDR(s)"],
        ),
        (
            "gateway outside cidr",
            Call::Read("m.p", None),
            vec![
                (ALLOC_KEY, "true"),
                ("m.p.kubernetes.io/ip_address", "10.0.0.5"),
                ("m.p.kubernetes.io/cidr", "10.0.0.0/24"),
                ("m.p.kubernetes.io/gateway", "10.9.0.1"),
            ],
            &[
                "annotation m.p.kubernetes.io/gateway: \"10.9.0.1\" has gateway 10.9.0.1 outside the subnet 10.0.0.0/24",
            ],
        ),
        (
            "two v4 cidrs",
            Call::Read("m.p", None),
            vec![
                (ALLOC_KEY, "true"),
                ("m.p.kubernetes.io/ip_address", "10.0.0.5"),
                ("m.p.kubernetes.io/cidr", "10.0.0.0/24,10.1.0.0/24"),
            ],
            &["annotation m.p.kubernetes.io/cidr: \"10.0.0.0/24,10.1.0.0/24\" is not valid"],
        ),
        (
            "bad per-interface result",
            Call::Read("m.p", Some("net1")),
            vec![
                (ALLOC_KEY, "true"),
                ("m.p.kubernetes.io/ip_address.net1", "10.0.0.5/24"),
            ],
            &["annotation m.p.kubernetes.io/ip_address.net1: 10.0.0.5/24 is a CIDR"],
        ),
        // --- Whole-object validation finds stray keys
        (
            "stray per-interface key",
            Call::Validate,
            vec![
                (NETWORKS, "default/macvlan"),
                ("macvlan.default.kubernetes.io/ip_address.net9", "bogus"),
            ],
            &[
                "annotation macvlan.default.kubernetes.io/ip_address.net9: \"bogus\" is not an IP address",
            ],
        ),
        (
            "stray provider key",
            Call::Validate,
            vec![("typo.default.kubernetes.io/mac_address", "zz")],
            &[
                "annotation typo.default.kubernetes.io/mac_address: \"zz\" is not a usable MAC address",
            ],
        ),
        (
            "stray key with bad provider",
            Call::Validate,
            vec![("Mac.default.kubernetes.io/ip_address", "10.0.0.1")],
            &[
                "annotation Mac.default.kubernetes.io/ip_address: \"Mac.default\" is not a valid provider",
            ],
        ),
        (
            "stray key with bad interface",
            Call::Validate,
            vec![("m.p.kubernetes.io/ip_address.-net", "10.0.0.1")],
            &["annotation m.p.kubernetes.io/ip_address.-net: interface \"-net\" is not valid"],
        ),
        (
            "validate reads spiderpool",
            Call::Validate,
            vec![(SPIDER_IPPOOL, "[]")],
            &[
                SPIDER_IPPOOL,
                "is not a JSON object of pool names",
                "a JSON object {...} is required",
            ],
        ),
    ];
    assert!(cases.len() >= 25);
    let mut failures = Vec::new();
    for (name, call, pairs, expected) in &cases {
        // Namespace "" only matters for references without one; every other case resolves with "prod".
        let ns = if *name == "no namespace anywhere" {
            ""
        } else {
            "prod"
        };
        let err = match run(*call, &ann(pairs), ns) {
            Ok(()) => {
                failures.push(format!("{name}: accepted"));
                continue;
            }
            Err(e) => e.to_string(),
        };
        for want in *expected {
            if !err.contains(want) {
                failures.push(format!("{name}:\n  got:  {err}\n  want: {want}"));
            }
        }
        if err.len() >= 700 {
            failures.push(format!(
                "{name}: message too long ({} bytes): {err}",
                err.len()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
