//! Multus hands a plugin only what the Pod's network selection element carries: `mac` (CNI_ARGS `MAC=`,
//! runtimeConfig `mac`) and `ips` (`IP=`, runtimeConfig `ips`). So nadipam writes its MAC, and a fixed
//! request's addresses, into the element itself: the `networks` (or `default-network`) value in JSON form,
//! with everything the user wrote kept.

use ipnet::IpNet;
use serde_json::{Map, Value};

use super::attachment::parse_list;
use super::error::{AnnotationError, Shown, clip};
use super::network::NetworkRef;
use crate::alloc::Mac;

/// What one attachment's selection element should carry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Handover {
    pub network: NetworkRef,
    /// The explicit interface name, as in the element (none when the user gave none).
    pub interface: Option<String>,
    pub mac: Option<Mac>,
    /// Written only for a fixed request: the addresses with the Subnet's prefix.
    pub ips: Vec<IpNet>,
}

/// `value` (the annotation `key` of a Pod in `pod_namespace`) as a JSON list in which every element with a
/// [`Handover`] carries its `mac` and `ips`. A field the user already wrote is left as written (nadipam
/// honoured it). `None` when no element has a handover: the annotation is then left untouched.
pub fn with_handovers(
    key: &str,
    value: &str,
    pod_namespace: &str,
    handovers: &[Handover],
) -> Result<Option<String>, AnnotationError> {
    let parsed = parse_list(key, value, pod_namespace)?;
    let mut elements = raw_elements(key, value)?;
    let mut touched = false;
    for (element, p) in elements.iter_mut().zip(&parsed) {
        let Some(h) = handovers
            .iter()
            .find(|h| h.network == p.network && h.interface == p.interface)
        else {
            continue;
        };
        touched = true;
        if let Some(mac) = h.mac {
            element
                .entry("mac")
                .or_insert_with(|| Value::String(mac.to_string()));
        }
        if !h.ips.is_empty() {
            element.entry("ips").or_insert_with(|| {
                Value::Array(h.ips.iter().map(|n| Value::String(n.to_string())).collect())
            });
        }
    }
    if !touched {
        return Ok(None);
    }
    let list = Value::Array(elements.into_iter().map(Value::Object).collect());
    Ok(Some(list.to_string()))
}

/// The elements as JSON objects: the JSON form as written, the text form (`ns/name@if`) converted with
/// only the parts the user wrote (a missing namespace stays missing, so Multus resolves it as before).
fn raw_elements(key: &str, value: &str) -> Result<Vec<Map<String, Value>>, AnnotationError> {
    if value.starts_with('[') {
        return serde_json::from_str(value).map_err(|e| AnnotationError::Json {
            key: key.into(),
            value: Shown::new(value),
            expected: "a JSON list of network selection elements",
            reason: clip(e).into(),
        });
    }
    Ok(value
        .split(',')
        .map(|entry| {
            let entry = entry.trim();
            let (network, interface) = match entry.split_once('@') {
                Some((n, i)) => (n, Some(i)),
                None => (entry, None),
            };
            let (namespace, name) = match network.split_once('/') {
                Some((ns, name)) => (Some(ns), name),
                None => (None, network),
            };
            let mut m = Map::new();
            m.insert("name".into(), name.into());
            if let Some(ns) = namespace {
                m.insert("namespace".into(), ns.into());
            }
            if let Some(i) = interface {
                m.insert("interface".into(), i.into());
            }
            m
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handover(ns: &str, name: &str, interface: Option<&str>, mac: &str) -> Handover {
        Handover {
            network: NetworkRef {
                namespace: ns.into(),
                name: name.into(),
            },
            interface: interface.map(Into::into),
            mac: Some(mac.parse().unwrap()),
            ips: Vec::new(),
        }
    }

    fn json(s: &str) -> Value {
        serde_json::from_str(s).unwrap()
    }

    #[test]
    fn the_text_form_becomes_json_keeping_what_was_written() {
        let h = [handover("default", "macvlan", None, "00:00:00:53:6b:bb")];
        let out = with_handovers("k", "macvlan, other/ovs@eth9", "default", &h)
            .unwrap()
            .unwrap();
        assert_eq!(
            json(&out),
            json(
                r#"[{"name": "macvlan", "mac": "00:00:00:53:6b:bb"},
                    {"name": "ovs", "namespace": "other", "interface": "eth9"}]"#
            )
        );
    }

    #[test]
    fn json_elements_keep_unknown_fields_and_the_users_mac() {
        let mut h = vec![
            handover("default", "a", Some("net5"), "0a:00:00:00:00:01"),
            handover("default", "b", None, "0a:00:00:00:00:02"),
        ];
        h[0].ips = vec!["172.17.0.100/16".parse().unwrap()];
        let v = r#"[{"name": "a", "interface": "net5", "cni-args": {"x": 1}},
                    {"name": "b", "namespace": "default", "mac": "00:00:00:00:00:09"}]"#;
        let out = with_handovers("k", v, "default", &h).unwrap().unwrap();
        assert_eq!(
            json(&out),
            json(
                r#"[{"name": "a", "interface": "net5", "cni-args": {"x": 1},
                     "mac": "0a:00:00:00:00:01", "ips": ["172.17.0.100/16"]},
                    {"name": "b", "namespace": "default", "mac": "00:00:00:00:00:09"}]"#
            )
        );
    }

    #[test]
    fn rewriting_twice_gives_the_same_value() {
        let h = [handover("default", "macvlan", None, "00:00:00:53:6b:bb")];
        let once = with_handovers("k", "default/macvlan", "default", &h)
            .unwrap()
            .unwrap();
        let twice = with_handovers("k", &once, "default", &h).unwrap().unwrap();
        assert_eq!(once, twice);
    }

    #[test]
    fn an_annotation_without_a_handover_is_left_alone() {
        let h = [handover(
            "default",
            "macvlan",
            Some("net2"),
            "00:00:00:53:6b:bb",
        )];
        assert_eq!(
            with_handovers("k", "default/macvlan", "default", &h).unwrap(),
            None
        );
    }
}
