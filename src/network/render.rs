//! What a Network generates, computed without I/O: the NAD (CNI JSON per cniType with `"ipam": {"type":
//! "nadipam", "provider": "<name>.<namespace>"}`) and, with `spec.ipam`, the Subnet. The webhook renders too, so a
//! spec the controller could not render is refused at apply with the same message.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::{Resource, ResourceExt};
use serde_json::{Map, Value, json};

use crate::annotations::Shown;
use crate::api::{
    CniType, KubeOvnSubnetFields, NETWORK_ANNOTATION, Network, NetworkAttachmentDefinition,
    NetworkAttachmentDefinitionSpec, Subnet, SubnetSpec,
};

/// cniVersion when the spec leaves it out: understood by every plugin the guides use.
pub(crate) const DEFAULT_CNI_VERSION: &str = "0.3.1";

/// The NAD annotation the SR-IOV device plugin's resource goes in (Multus reads it to request the device).
pub(crate) const RESOURCE_NAME_ANNOTATION: &str = "k8s.v1.cni.cncf.io/resourceName";

/// Why a Network's spec cannot be rendered; names the Network and the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum RenderError {
    #[error("Network {network}: cniType {cni_type} needs spec.{cni_type}")]
    MissingSection { network: String, cni_type: CniType },
    #[error(
        "Network {network}: spec.custom.config is not valid JSON ({reason}); write one CNI plugin such as \
         {{\"type\": \"vlan\", \"master\": \"eth0\", \"vlanId\": 100}} or a conflist {{\"plugins\": [...]}}"
    )]
    CustomJson { network: String, reason: String },
    #[error(
        "Network {network}: spec.custom.config{at} is {found}; expected a JSON object such as {{\"type\": \"vlan\", \
         \"master\": \"eth0\"}}"
    )]
    CustomNotObject {
        network: String,
        at: String,
        found: Shown,
    },
    #[error(
        "Network {network}: spec.custom.config{at} has no \"type\"; name the CNI plugin, e.g. \"type\": \"vlan\""
    )]
    CustomNoType { network: String, at: String },
    #[error(
        "Network {network}: spec.custom.config plugins is {found}; expected a non-empty list of plugin objects"
    )]
    CustomPlugins { network: String, found: Shown },
    #[error(
        "Network {network}: spec.custom.config{at} has an ipam section {found}; leave it out: nadipam writes \
         {{\"type\": \"nadipam\", \"provider\": \"{provider}\"}} there"
    )]
    CustomIpam {
        network: String,
        at: String,
        found: Shown,
        provider: String,
    },
}

/// The CNI configuration of the generated NAD, as the JSON text stored in `spec.config` (keys sorted, so equal
/// specs give equal text and a hand edit shows as a difference).
pub(crate) fn nad_config(net: &Network) -> Result<String, RenderError> {
    let spec = &net.spec;
    let network = net.key();
    let missing = || RenderError::MissingSection {
        network: network.clone(),
        cni_type: spec.cni_type,
    };
    let mut plugin = Map::new();
    let mut put = |k: &str, v: Value| {
        plugin.insert(k.to_string(), v);
    };
    match spec.cni_type {
        CniType::Macvlan => {
            let c = spec.macvlan.as_ref().ok_or_else(missing)?;
            put("type", json!("macvlan"));
            put("master", json!(c.master));
            put("mode", json!(c.mode.as_deref().unwrap_or("bridge")));
            c.mtu.into_iter().for_each(|m| put("mtu", json!(m)));
        }
        CniType::Ipvlan => {
            let c = spec.ipvlan.as_ref().ok_or_else(missing)?;
            put("type", json!("ipvlan"));
            put("master", json!(c.master));
            put("mode", json!(c.mode.as_deref().unwrap_or("l2")));
            c.mtu.into_iter().for_each(|m| put("mtu", json!(m)));
        }
        CniType::Bridge | CniType::Ovs => {
            let section = match spec.cni_type {
                CniType::Bridge => &spec.bridge,
                _ => &spec.ovs,
            };
            let c = section.as_ref().ok_or_else(missing)?;
            put("type", json!(spec.cni_type.as_str()));
            put("bridge", json!(c.bridge));
            c.vlan.into_iter().for_each(|v| put("vlan", json!(v)));
            c.mtu.into_iter().for_each(|m| put("mtu", json!(m)));
        }
        CniType::Sriov => {
            let c = spec.sriov.as_ref().ok_or_else(missing)?;
            put("type", json!("sriov"));
            c.vlan.into_iter().for_each(|v| put("vlan", json!(v)));
        }
        CniType::Custom => {
            let c = spec.custom.as_ref().ok_or_else(missing)?;
            return custom_config(net, &c.config);
        }
    }
    let mut root = Map::new();
    root.insert("cniVersion".into(), json!(cni_version(net)));
    root.insert("name".into(), json!(net.name_any()));
    root.extend(plugin);
    root.insert("ipam".into(), ipam(net));
    Ok(Value::Object(root).to_string())
}

fn cni_version(net: &Network) -> &str {
    net.spec
        .cni_version
        .as_deref()
        .unwrap_or(DEFAULT_CNI_VERSION)
}

/// nadipam's IPAM section, with the provider its NAD validation requires.
fn ipam(net: &Network) -> Value {
    json!({"type": "nadipam", "provider": net.provider()})
}

/// The user's plugin (or conflist) with nadipam's IPAM section added to it (to the first plugin of a conflist);
/// `cniVersion` and `name` are filled in where the user left them out.
fn custom_config(net: &Network, text: &str) -> Result<String, RenderError> {
    let network = net.key();
    let mut root: Value = serde_json::from_str(text).map_err(|e| RenderError::CustomJson {
        network: network.clone(),
        reason: e.to_string(),
    })?;
    let Some(obj) = root.as_object_mut() else {
        return Err(RenderError::CustomNotObject {
            network,
            at: String::new(),
            found: Shown::new(text),
        });
    };
    obj.entry("cniVersion")
        .or_insert_with(|| json!(cni_version(net)));
    obj.entry("name").or_insert_with(|| json!(net.name_any()));
    let (plugin, at) = match obj.get_mut("plugins") {
        Some(Value::Array(list)) if !list.is_empty() => (&mut list[0], " plugins[0]".to_string()),
        Some(other) => {
            return Err(RenderError::CustomPlugins {
                network,
                found: Shown::new(&other.to_string()),
            });
        }
        None => (&mut root, String::new()),
    };
    let Some(plugin) = plugin.as_object_mut() else {
        return Err(RenderError::CustomNotObject {
            network,
            found: Shown::new(&plugin.to_string()),
            at,
        });
    };
    if !plugin.get("type").is_some_and(Value::is_string) {
        return Err(RenderError::CustomNoType { network, at });
    }
    if let Some(found) = plugin.get("ipam") {
        return Err(RenderError::CustomIpam {
            network,
            at,
            found: Shown::new(&found.to_string()),
            provider: net.provider(),
        });
    }
    plugin.insert("ipam".into(), ipam(net));
    Ok(root.to_string())
}

/// The marker both generated objects carry: which Network they came from.
fn marker(net: &Network) -> BTreeMap<String, String> {
    BTreeMap::from([(NETWORK_ANNOTATION.to_string(), net.key())])
}

/// The generated NAD: same name and namespace, owned by the Network (so the garbage collector deletes it with
/// the Network), marked with [`NETWORK_ANNOTATION`].
pub(crate) fn nad(net: &Network) -> Result<NetworkAttachmentDefinition, RenderError> {
    let config = nad_config(net)?;
    let mut annotations = marker(net);
    if let (CniType::Sriov, Some(s)) = (net.spec.cni_type, &net.spec.sriov) {
        annotations.insert(RESOURCE_NAME_ANNOTATION.into(), s.resource_name.clone());
    }
    Ok(NetworkAttachmentDefinition {
        metadata: ObjectMeta {
            name: Some(net.name_any()),
            namespace: net.namespace(),
            annotations: Some(annotations),
            owner_references: owner(net).map(|o| vec![o]),
            ..ObjectMeta::default()
        },
        spec: NetworkAttachmentDefinitionSpec { config },
    })
}

/// The ownerReference to the Network (without blockOwnerDeletion, which would need update on
/// networks/finalizers); `None` before the Network has a UID.
fn owner(net: &Network) -> Option<OwnerReference> {
    Some(OwnerReference {
        api_version: Network::api_version(&()).into_owned(),
        kind: Network::kind(&()).into_owned(),
        name: net.name_any(),
        uid: net.uid()?,
        controller: Some(true),
        block_owner_deletion: None,
    })
}

/// True when `nad` is the one `net` generated: it names the Network as its controller owner.
pub(crate) fn generated_by(nad: &NetworkAttachmentDefinition, net: &Network) -> bool {
    nad.metadata.owner_references.iter().flatten().any(|o| {
        o.kind == "Network" && o.name == net.name_any() && Some(&o.uid) == net.uid().as_ref()
    })
}

/// True when `subnet` was created by `net`: its [`NETWORK_ANNOTATION`] names the Network. (A cluster-scoped
/// Subnet cannot have a namespaced owner, see docs/lifecycle.md.)
pub(crate) fn subnet_created_by(subnet: &Subnet, net: &Network) -> bool {
    subnet.annotations().get(NETWORK_ANNOTATION) == Some(&net.key())
}

/// The Subnet `spec.ipam` describes, named and provided like the network; `None` without `spec.ipam`.
pub(crate) fn subnet(net: &Network) -> Option<Subnet> {
    let ipam = net.spec.ipam.as_ref()?;
    let mut subnet = Subnet::new(
        &net.provider(),
        SubnetSpec {
            protocol: ipam.protocol,
            cidr_block: ipam.cidr_block.clone(),
            gateway: ipam.gateway.clone(),
            exclude_ips: ipam.exclude_ips.clone(),
            provider: net.provider(),
            namespaces: ipam.namespaces.clone(),
            routes: ipam.routes.clone(),
            node_selector: ipam.node_selector.clone(),
            kube_ovn: KubeOvnSubnetFields::default(),
        },
    );
    subnet.metadata.annotations = Some(marker(net));
    Some(subnet)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{NadIpam, RouteSpec, ipam_view};

    fn network(yaml: &str) -> Network {
        let mut n: Network = serde_saphyr::from_str(yaml).expect("network yaml");
        n.metadata.uid = Some("uid-1".into());
        n
    }

    fn config(yaml: &str) -> Value {
        let text = nad_config(&network(yaml)).expect("renders");
        serde_json::from_str(&text).expect("JSON")
    }

    const HEAD: &str = "apiVersion: nadipam.io/v1\nkind: Network\n";

    #[test]
    fn each_cni_type_renders_exactly() {
        let cases = [
            (
                "metadata: {name: ovs-conf, namespace: kube-system}\nspec: {cniType: ovs, ovs: {bridge: br1}}",
                json!({"cniVersion": "0.3.1", "name": "ovs-conf", "type": "ovs", "bridge": "br1",
                       "ipam": {"type": "nadipam", "provider": "ovs-conf.kube-system"}}),
            ),
            (
                "metadata: {name: ovs-v, namespace: ns}\nspec: {cniType: ovs, ovs: {bridge: br1, vlan: 100, mtu: 1400}}",
                json!({"cniVersion": "0.3.1", "name": "ovs-v", "type": "ovs", "bridge": "br1", "vlan": 100,
                       "mtu": 1400, "ipam": {"type": "nadipam", "provider": "ovs-v.ns"}}),
            ),
            (
                "metadata: {name: macvlan, namespace: default}\nspec: {cniType: macvlan, cniVersion: 0.3.0, macvlan: {master: eth0, mode: bridge}}",
                json!({"cniVersion": "0.3.0", "name": "macvlan", "type": "macvlan", "master": "eth0",
                       "mode": "bridge", "ipam": {"type": "nadipam", "provider": "macvlan.default"}}),
            ),
            (
                "metadata: {name: mv, namespace: default}\nspec: {cniType: macvlan, macvlan: {master: eth1, mtu: 9000}}",
                json!({"cniVersion": "0.3.1", "name": "mv", "type": "macvlan", "master": "eth1",
                       "mode": "bridge", "mtu": 9000, "ipam": {"type": "nadipam", "provider": "mv.default"}}),
            ),
            (
                "metadata: {name: ipv, namespace: a}\nspec: {cniType: ipvlan, ipvlan: {master: eth0, mode: l3}}",
                json!({"cniVersion": "0.3.1", "name": "ipv", "type": "ipvlan", "master": "eth0", "mode": "l3",
                       "ipam": {"type": "nadipam", "provider": "ipv.a"}}),
            ),
            (
                "metadata: {name: ipv, namespace: a}\nspec: {cniType: ipvlan, ipvlan: {master: eth0}}",
                json!({"cniVersion": "0.3.1", "name": "ipv", "type": "ipvlan", "master": "eth0", "mode": "l2",
                       "ipam": {"type": "nadipam", "provider": "ipv.a"}}),
            ),
            (
                "metadata: {name: br, namespace: a}\nspec: {cniType: bridge, bridge: {bridge: br0, vlan: 7}}",
                json!({"cniVersion": "0.3.1", "name": "br", "type": "bridge", "bridge": "br0", "vlan": 7,
                       "ipam": {"type": "nadipam", "provider": "br.a"}}),
            ),
            (
                "metadata: {name: vf, namespace: a}\nspec: {cniType: sriov, sriov: {resourceName: intel.com/sriov, vlan: 12}}",
                json!({"cniVersion": "0.3.1", "name": "vf", "type": "sriov", "vlan": 12,
                       "ipam": {"type": "nadipam", "provider": "vf.a"}}),
            ),
            (
                "metadata: {name: vl, namespace: a}\nspec: {cniType: custom, custom: {config: '{\"type\":\"vlan\",\"master\":\"eth0\",\"vlanId\":100}'}}",
                json!({"cniVersion": "0.3.1", "name": "vl", "type": "vlan", "master": "eth0", "vlanId": 100,
                       "ipam": {"type": "nadipam", "provider": "vl.a"}}),
            ),
            (
                "metadata: {name: cl, namespace: a}\nspec: {cniType: custom, custom: {config: '{\"cniVersion\":\"1.0.0\",\"plugins\":[{\"type\":\"macvlan\",\"master\":\"eth0\"},{\"type\":\"tuning\"}]}'}}",
                json!({"cniVersion": "1.0.0", "name": "cl", "plugins": [
                    {"type": "macvlan", "master": "eth0", "ipam": {"type": "nadipam", "provider": "cl.a"}},
                    {"type": "tuning"}]}),
            ),
        ];
        for (yaml, want) in cases {
            assert_eq!(config(&format!("{HEAD}{yaml}")), want, "{yaml}");
        }
    }

    #[test]
    fn generated_nads_pass_nadipams_own_nad_rules() {
        for yaml in [
            "metadata: {name: ovs-conf, namespace: kube-system}\nspec: {cniType: ovs, ovs: {bridge: br1}}",
            "metadata: {name: cl, namespace: a}\nspec: {cniType: custom, custom: {config: '{\"plugins\":[{\"type\":\"tuning\"}]}'}}",
        ] {
            let net = network(&format!("{HEAD}{yaml}"));
            let nad = nad(&net).expect("renders");
            let view: NadIpam = nad.ipam_view().expect("readable");
            assert!(view.is_ours(), "{yaml}");
            nad.check_provider(&view, true).expect("own provider");
            assert_eq!(nad.provider(&view), net.provider());
            assert!(generated_by(&nad, &net));
            assert_eq!(
                nad.metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(NETWORK_ANNOTATION)),
                Some(&net.key())
            );
            let owner = &nad.metadata.owner_references.as_ref().expect("owner")[0];
            assert_eq!(
                (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
                ("Network", "uid-1", Some(true))
            );
        }
        // The text is canonical: rendering twice gives the same string.
        let net = network(&format!(
            "{HEAD}metadata: {{name: m, namespace: n}}\nspec: {{cniType: macvlan, macvlan: {{master: eth0}}}}"
        ));
        assert_eq!(nad_config(&net), nad_config(&net));
        assert!(ipam_view(&nad_config(&net).unwrap()).unwrap().is_ours());
    }

    #[test]
    fn sriov_names_its_resource() {
        let net = network(&format!(
            "{HEAD}metadata: {{name: vf, namespace: a}}\nspec: {{cniType: sriov, sriov: {{resourceName: intel.com/sriov}}}}"
        ));
        let nad = nad(&net).unwrap();
        assert_eq!(
            nad.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(RESOURCE_NAME_ANNOTATION))
                .map(String::as_str),
            Some("intel.com/sriov")
        );
    }

    #[test]
    fn custom_errors_name_the_field() {
        let msg = |config: &str| {
            let mut net = network(&format!(
                "{HEAD}metadata: {{name: c, namespace: a}}\nspec: {{cniType: custom, custom: {{config: x}}}}"
            ));
            if let Some(c) = net.spec.custom.as_mut() {
                c.config = config.to_string();
            }
            nad_config(&net).unwrap_err().to_string()
        };
        assert_eq!(
            msg("{\"type\":"),
            "Network a/c: spec.custom.config is not valid JSON (EOF while parsing a value at line 1 column 8); \
             write one CNI plugin such as {\"type\": \"vlan\", \"master\": \"eth0\", \"vlanId\": 100} or a \
             conflist {\"plugins\": [...]}"
        );
        assert_eq!(
            msg("[1]"),
            "Network a/c: spec.custom.config is \"[1]\"; expected a JSON object such as {\"type\": \"vlan\", \
             \"master\": \"eth0\"}"
        );
        assert_eq!(
            msg("{\"master\":\"eth0\"}"),
            "Network a/c: spec.custom.config has no \"type\"; name the CNI plugin, e.g. \"type\": \"vlan\""
        );
        assert_eq!(
            msg("{\"plugins\":[]}"),
            "Network a/c: spec.custom.config plugins is \"[]\"; expected a non-empty list of plugin objects"
        );
        assert_eq!(
            msg("{\"plugins\":[\"tuning\"]}"),
            "Network a/c: spec.custom.config plugins[0] is \"\\\"tuning\\\"\"; expected a JSON object such as \
             {\"type\": \"vlan\", \"master\": \"eth0\"}"
        );
        assert_eq!(
            msg("{\"type\":\"vlan\",\"ipam\":{\"type\":\"host-local\"}}"),
            "Network a/c: spec.custom.config has an ipam section \"{\\\"type\\\":\\\"host-local\\\"}\"; leave it \
             out: nadipam writes {\"type\": \"nadipam\", \"provider\": \"c.a\"} there"
        );
    }

    #[test]
    fn the_subnet_from_ipam() {
        let net = network(&format!(
            "{HEAD}metadata: {{name: macvlan, namespace: default}}\nspec:\n  cniType: macvlan\n  macvlan: {{master: ul0}}\n  ipam:\n    protocol: IPv4\n    cidrBlock: 172.17.0.0/16\n    gateway: 172.17.0.1\n    excludeIps: [172.17.0.0..172.17.0.10]\n    routes: [{{dst: 192.168.0.0/24, gw: 172.17.0.254}}]\n"
        ));
        let s = subnet(&net).expect("ipam set");
        assert_eq!(s.name_any(), "macvlan.default");
        assert_eq!(s.spec.provider, "macvlan.default");
        assert_eq!(s.spec.cidr_block, "172.17.0.0/16");
        assert_eq!(s.spec.exclude_ips, ["172.17.0.0..172.17.0.10"]);
        assert_eq!(
            s.spec.routes,
            [RouteSpec {
                dst: Some("192.168.0.0/24".into()),
                gw: Some("172.17.0.254".into())
            }]
        );
        assert!(subnet_created_by(&s, &net));
        let mut other = net.clone();
        other.metadata.namespace = Some("other".into());
        assert!(!subnet_created_by(&s, &other));
        let mut none = net.clone();
        none.spec.ipam = None;
        assert!(subnet(&none).is_none());
    }
}
