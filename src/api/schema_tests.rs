//! Checks, without an apiserver, the rules kube-apiserver applies to a CRD schema (structural schema, enum and
//! default types, printer columns pointing at real fields), plus the field names users write.

use serde_json::Value;

use super::crds;

/// Keywords a structural schema must not use anywhere in our CRDs (we need none of them).
const FORBIDDEN: [&str; 8] = [
    "anyOf",
    "oneOf",
    "allOf",
    "not",
    "$ref",
    "definitions",
    "additionalItems",
    "patternProperties",
];

/// Walks one schema node, collecting problems with their JSON path.
fn check_node(path: &str, node: &Value, problems: &mut Vec<String>) {
    let Some(obj) = node.as_object() else {
        problems.push(format!("{path}: schema is not an object"));
        return;
    };
    for kw in FORBIDDEN {
        if obj.contains_key(kw) {
            problems.push(format!("{path}: uses {kw}"));
        }
    }
    let preserve = obj.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
    let int_or_string = obj.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true));
    let ty = obj.get("type").and_then(Value::as_str);
    if ty.is_none() && !preserve && !int_or_string {
        problems.push(format!("{path}: no type"));
    }
    if let Some(values) = obj.get("enum").and_then(Value::as_array)
        && (ty != Some("string") || !values.iter().all(Value::is_string))
    {
        problems.push(format!("{path}: enum must be a string enum"));
    }
    if let Some(default) = obj.get("default") {
        let ok = match ty {
            Some("string") => default.is_string(),
            Some("number") => default.is_number(),
            Some("integer") => default.is_i64() || default.is_u64(),
            Some("boolean") => default.is_boolean(),
            Some("array") => default.is_array(),
            Some("object") => default.is_object(),
            _ => false,
        };
        if !ok {
            problems.push(format!(
                "{path}: default {default} does not match type {ty:?}"
            ));
        }
    }
    for rule in obj
        .get("x-kubernetes-validations")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let text = rule.get("rule").and_then(Value::as_str).unwrap_or_default();
        if text.is_empty() {
            problems.push(format!("{path}: empty CEL rule"));
        }
        let has_message = ["message", "messageExpression"].iter().any(|k| {
            rule.get(*k)
                .and_then(Value::as_str)
                .is_some_and(|m| !m.contains('\n'))
        });
        if !has_message {
            problems.push(format!("{path}: rule {text:?} lacks a one-line message"));
        }
    }
    if ty == Some("object") {
        let props = obj.get("properties").and_then(Value::as_object);
        for req in obj
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let name = req.as_str().unwrap_or_default();
            if !props.is_some_and(|p| p.contains_key(name)) {
                problems.push(format!("{path}: required {name} is not a property"));
            }
        }
        for (name, child) in props.into_iter().flatten() {
            check_node(&format!("{path}.{name}"), child, problems);
        }
        if obj.contains_key("additionalProperties") && props.is_some() {
            problems.push(format!("{path}: both properties and additionalProperties"));
        }
    }
    if ty == Some("array") {
        match obj.get("items") {
            Some(items) => check_node(&format!("{path}[]"), items, problems),
            None => problems.push(format!("{path}: array without items")),
        }
    }
    if let Some(desc) = obj.get("description")
        && desc.as_str().is_none_or(|d| d.trim().is_empty())
    {
        problems.push(format!("{path}: empty description"));
    }
}

/// The schema node at a printer column's `.a.b` path (only plain field paths are used).
/// The schema at a JSONPath of fields; a list filter (`conditions[?(@.type=="Ready")]`) steps into the items.
fn at_path<'a>(root: &'a Value, json_path: &str) -> Option<&'a Value> {
    // Drop the filters' text (it contains dots), keeping a marker that the step goes into a list.
    let mut plain = String::new();
    let mut depth = 0;
    for c in json_path.chars() {
        match c {
            '[' => {
                depth += 1;
                if depth == 1 {
                    plain.push_str("[]");
                }
            }
            ']' => depth -= 1,
            _ if depth == 0 => plain.push(c),
            _ => {}
        }
    }
    let mut node = root;
    for part in plain.trim_start_matches('.').split('.') {
        let (name, list) = match part.strip_suffix("[]") {
            Some(name) => (name, true),
            None => (part, false),
        };
        node = node.get("properties")?.get(name)?;
        if list {
            node = node.get("items")?;
        }
    }
    Some(node)
}

fn schemas() -> Vec<(String, Value)> {
    crds()
        .into_iter()
        .map(|(file, crd)| {
            let v = serde_json::to_value(&crd).unwrap();
            (file.to_string(), v)
        })
        .collect()
}

#[test]
fn schemas_are_structural() {
    let mut problems = Vec::new();
    for (file, crd) in schemas() {
        let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
        check_node(&file, schema, &mut problems);
        // metadata is validated by the apiserver itself; a schema for it other than name rules is refused.
        assert!(schema["properties"].get("metadata").is_none(), "{file}");
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn checker_catches_what_apiserver_refuses() {
    let mut problems = Vec::new();
    let bad = serde_json::json!({
        "type": "object",
        "required": ["missing"],
        "properties": {
            "a": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
            "b": {"enum": [1, 2], "type": "integer"},
            "c": {"type": "array"},
            "d": {"type": "string", "default": null, "nullable": true},
            "e": {"type": "string", "x-kubernetes-validations": [{"rule": "self != ''"}]}
        }
    });
    check_node("bad", &bad, &mut problems);
    let joined = problems.join("\n");
    for expected in [
        "bad: required missing is not a property",
        "bad.a: uses anyOf",
        "bad.a: no type",
        "bad.b: enum must be a string enum",
        "bad.c: array without items",
        "bad.d: default null does not match type Some(\"string\")",
        "bad.e: rule \"self != ''\" lacks a one-line message",
    ] {
        assert!(
            joined.contains(expected),
            "missing {expected:?} in\n{joined}"
        );
    }
}

#[test]
fn every_user_field_is_described() {
    let mut undocumented = Vec::new();
    for (file, crd) in schemas() {
        let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
        for part in ["spec", "status"] {
            let Some(props) = schema["properties"][part]["properties"].as_object() else {
                continue;
            };
            for (name, field) in props {
                if field.get("description").and_then(Value::as_str).is_none() {
                    undocumented.push(format!("{file} {part}.{name}"));
                }
            }
        }
    }
    assert!(undocumented.is_empty(), "{undocumented:?}");
}

#[test]
fn printer_columns_point_at_fields_of_the_right_type() {
    for (file, crd) in schemas() {
        let version = &crd["spec"]["versions"][0];
        let schema = &version["schema"]["openAPIV3Schema"];
        for col in version["additionalPrinterColumns"].as_array().unwrap() {
            let path = col["jsonPath"].as_str().unwrap();
            let ty = col["type"].as_str().unwrap();
            if path == ".metadata.creationTimestamp" {
                assert_eq!(ty, "date", "{file} {path}");
                continue;
            }
            let field =
                at_path(schema, path).unwrap_or_else(|| panic!("{file}: {path} is not a field"));
            assert_eq!(field["type"].as_str(), Some(ty), "{file} {path}");
        }
    }
}

#[test]
fn field_names_are_the_ones_users_write() {
    let props = |file: &str, part: &str| -> Vec<String> {
        let (_, crd) = schemas().into_iter().find(|(f, _)| f == file).unwrap();
        let mut keys: Vec<String> = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"][part]
            ["properties"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        keys.sort();
        keys
    };
    // Every field of Kube-OVN's kubeovn.io/v1 Subnet spec (from its published CRD), so its manifests apply with only
    // apiVersion changed, plus nadipam's routes and nodeSelector.
    let mut subnet_fields = vec![
        "acls",
        "allowEWTraffic",
        "allowSubnets",
        "cidrBlock",
        "default",
        "dhcpV4Options",
        "dhcpV6Options",
        "disableGatewayCheck",
        "disableInterConnection",
        "enableDHCP",
        "enableEcmp",
        "enableExternalLBAddress",
        "enableIPv6RA",
        "enableLb",
        "enableMulticastSnoop",
        "excludeIps",
        "externalEgressGateway",
        "gateway",
        "gatewayNode",
        "gatewayNodeSelectors",
        "gatewayType",
        "ipv6RAConfigs",
        "logicalGateway",
        "mtu",
        "namespaceSelectors",
        "namespaces",
        "natOutgoing",
        "natOutgoingPolicyRules",
        "nodeNetwork",
        "policyRoutingPriority",
        "policyRoutingTableID",
        "private",
        "protocol",
        "provider",
        "routeTable",
        "u2oFeatures",
        "u2oInterconnection",
        "u2oInterconnectionIP",
        "vips",
        "vlan",
        "vpc",
        "routes",
        "nodeSelector",
    ];
    subnet_fields.sort();
    assert_eq!(props("subnets.nadipam.io.yaml", "spec"), subnet_fields);
    assert_eq!(
        props("subnets.nadipam.io.yaml", "status"),
        [
            "conditions",
            "matchedNodes",
            "protocol",
            "v4AvailableIPs",
            "v4UsingIPs",
            "v6AvailableIPs",
            "v6UsingIPs"
        ]
    );
    // Every field of Spiderpool's v2beta1 SpiderIPPool spec, plus nadipam's namespaces and nodeSelector and the
    // older vlan.
    let mut pool_fields = vec![
        "default",
        "disable",
        "excludeIPs",
        "gateway",
        "ipVersion",
        "ips",
        "multusName",
        "namespaceAffinity",
        "namespaceName",
        "nodeAffinity",
        "nodeName",
        "podAffinity",
        "routes",
        "subnet",
        "namespaces",
        "nodeSelector",
        "vlan",
    ];
    pool_fields.sort();
    assert_eq!(props("ippools.nadipam.io.yaml", "spec"), pool_fields);
    // The selectors nadipam now evaluates are typed as Spiderpool types them (LabelSelector), and routes as
    // {dst, gw}.
    let (_, pools) = schemas()
        .into_iter()
        .find(|(f, _)| f == "ippools.nadipam.io.yaml")
        .unwrap();
    let spec = &pools["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"];
    for selector in ["podAffinity", "namespaceAffinity", "nodeAffinity"] {
        let mut keys: Vec<&String> = spec[selector]["properties"]
            .as_object()
            .unwrap()
            .keys()
            .collect();
        keys.sort();
        assert_eq!(keys, ["matchExpressions", "matchLabels"], "{selector}");
        assert!(
            spec[selector]
                .get("x-kubernetes-preserve-unknown-fields")
                .is_none(),
            "{selector}"
        );
    }
    let mut route: Vec<&String> = spec["routes"]["items"]["properties"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    route.sort();
    assert_eq!(route, ["dst", "gw"]);
    assert_eq!(spec["excludeIPs"]["items"]["type"], "string");
    assert_eq!(
        props("ippools.nadipam.io.yaml", "status"),
        [
            "allocatedIPCount",
            "conditions",
            "matchedNodes",
            "totalIPCount"
        ]
    );
    assert_eq!(
        props("ipleases.nadipam.io.yaml", "spec"),
        [
            "claim",
            "interface",
            "ip",
            "mac",
            "network",
            "ownerKind",
            "phase",
            "podName",
            "podNamespace",
            "podUid",
            "pool",
            "provider",
            "subnet",
            "token"
        ]
    );
}

#[test]
fn immutability_and_status_subresources() {
    let all = schemas();
    let rules_at = |file: &str, path: &str| -> Vec<String> {
        let (_, crd) = all.iter().find(|(f, _)| f == file).unwrap();
        let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
        at_path(schema, path).unwrap()["x-kubernetes-validations"]
            .as_array()
            .map(|rs| {
                rs.iter()
                    .map(|r| r["rule"].as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    let immutable = "self == oldSelf".to_string();
    assert!(rules_at("subnets.nadipam.io.yaml", ".spec.cidrBlock").contains(&immutable));
    assert!(rules_at("subnets.nadipam.io.yaml", ".spec.protocol").contains(&immutable));
    assert!(rules_at("ippools.nadipam.io.yaml", ".spec.subnet").contains(&immutable));
    assert!(rules_at("ipleases.nadipam.io.yaml", ".spec.ip").contains(&immutable));
    assert!(rules_at("ipleases.nadipam.io.yaml", ".spec.subnet").contains(&immutable));
    assert!(!rules_at("ipleases.nadipam.io.yaml", ".spec.phase").contains(&immutable));
    assert!(rules_at("networks.nadipam.io.yaml", ".spec.ipam.cidrBlock").contains(&immutable));
    assert!(rules_at("networks.nadipam.io.yaml", ".spec.ipam.protocol").contains(&immutable));
    assert!(!rules_at("networks.nadipam.io.yaml", ".spec.cniType").contains(&immutable));

    for (file, crd) in &all {
        let status = crd["spec"]["versions"][0]["subresources"]
            .get("status")
            .is_some();
        assert_eq!(status, !file.starts_with("ipleases"), "{file}");
    }
}
