//! The part of a NAD's CNI configuration nadipam cares about: which plugin carries the IPAM section, whether that
//! IPAM is ours, and its provider and routes.
//!
//! Three shapes occur in practice: one plugin with an `ipam` section (`{"type":"macvlan","ipam":{"type":"nadipam",
//! ...}}`), a conflist (`{"plugins":[...]}`) where one plugin carries the IPAM, and a Kube-OVN-type attachment
//! (`{"type":"kube-ovn","provider":"attachnet.default.ovn",...}`) with no `ipam` at all.

use serde_json::{Map, Value};

use super::subnet::RouteSpec;

/// IPAM types nadipam serves: its own, and Kube-OVN's so NADs written for Kube-OVN work unchanged.
pub const OUR_IPAM_TYPES: [&str; 2] = ["nadipam", "kube-ovn"];

/// What nadipam reads from a NAD's `spec.config`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NadIpam {
    /// `cniVersion` of the config (or conflist).
    pub cni_version: Option<String>,
    /// `type` of the plugin that carries the IPAM section (the main plugin, e.g. macvlan, or kube-ovn).
    pub plugin_type: String,
    /// Index of that plugin in a conflist's `plugins`; `None` for a single-plugin config.
    pub plugin_index: Option<usize>,
    /// `ipam.type`; `None` when the plugin has no `ipam` section.
    pub ipam_type: Option<String>,
    /// `ipam.provider`, else the plugin's top-level `provider` (Kube-OVN-type attachments put it there).
    pub provider: Option<String>,
    /// `ipam.server_socket` or top-level `server_socket` (Kube-OVN); read only to accept such configs.
    pub server_socket: Option<String>,
    /// `ipam.routes`.
    pub routes: Vec<RouteSpec>,
}

/// Why a NAD's `spec.config` cannot be read or used. Wrapped in [`NadError`](super::NadError), which names the NAD.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NadConfigError {
    #[error(
        "spec.config is empty: nadipam reads the IPAM type and provider from it, so a NAD whose config lives in a \
         file on each node cannot use nadipam; put the CNI configuration in spec.config"
    )]
    Empty,
    #[error(
        "spec.config is not valid JSON ({reason}); expected a CNI configuration such as \
         {{\"cniVersion\":\"0.3.1\",\"type\":\"macvlan\",\"ipam\":{{\"type\":\"nadipam\"}}}}"
    )]
    InvalidJson { reason: String },
    #[error("spec.config{at} is {found}; expected a JSON object")]
    NotAnObject { at: String, found: String },
    #[error(
        "spec.config has neither \"type\" (a single plugin) nor \"plugins\" (a conflist); one of them is required"
    )]
    MissingType,
    #[error("spec.config plugins is an empty list; a conflist needs at least one plugin")]
    NoPlugins,
    #[error("spec.config {field} is {found}; expected {expected}")]
    WrongType {
        field: String,
        found: String,
        expected: &'static str,
    },
    #[error(
        "spec.config {field} is missing; nadipam finds the Subnet by it: set it to \"{own}\" (or \"{own}.ovn\")"
    )]
    MissingProvider { field: &'static str, own: String },
    #[error(
        "spec.config {field} \"{provider}\" is not this NAD's provider; a NAD may only claim its own: \"{own}\" or \
         \"{own}.ovn\""
    )]
    ForeignProvider {
        field: &'static str,
        provider: String,
        own: String,
    },
}

impl NadConfigError {
    /// True for the provider rules (the config was read; the provider it claims is wrong or missing).
    pub fn is_provider(&self) -> bool {
        matches!(
            self,
            NadConfigError::MissingProvider { .. } | NadConfigError::ForeignProvider { .. }
        )
    }
}

/// Parses a NAD's `spec.config`. A config without an `ipam` section is not an error (the view then says
/// `ipam_type: None` and [`NadIpam::is_ours`] is false unless the plugin itself is kube-ovn).
pub fn ipam_view(config: &str) -> Result<NadIpam, NadConfigError> {
    if config.trim().is_empty() {
        return Err(NadConfigError::Empty);
    }
    let root: Value = serde_json::from_str(config).map_err(|e| NadConfigError::InvalidJson {
        reason: e.to_string(),
    })?;
    let root = as_object(&root, "")?;
    let cni_version = string_field(root, "cniVersion", "cniVersion")?;
    if let Some(plugins) = root.get("plugins") {
        let Value::Array(plugins) = plugins else {
            return Err(wrong_type("plugins", plugins, "a list of plugin objects"));
        };
        let mut views = Vec::with_capacity(plugins.len());
        for (i, p) in plugins.iter().enumerate() {
            let prefix = format!("plugins[{i}].");
            let plugin = as_object(p, &format!(" {}", &prefix[..prefix.len() - 1]))?;
            let mut view = plugin_view(plugin, &prefix)?;
            view.plugin_index = Some(i);
            view.cni_version.clone_from(&cni_version);
            views.push(view);
        }
        // The plugin whose IPAM is ours, else the first with any IPAM, else the first.
        let pick = views
            .iter()
            .position(NadIpam::is_ours)
            .or_else(|| views.iter().position(|v| v.ipam_type.is_some()))
            .unwrap_or(0);
        return views.into_iter().nth(pick).ok_or(NadConfigError::NoPlugins);
    }
    if !root.contains_key("type") {
        return Err(NadConfigError::MissingType);
    }
    let mut view = plugin_view(root, "")?;
    view.cni_version = cni_version;
    Ok(view)
}

impl NadIpam {
    /// True when nadipam serves this network: the IPAM type (or, for Kube-OVN-type attachments, the plugin type)
    /// is `nadipam` or `kube-ovn`.
    pub fn is_ours(&self) -> bool {
        let ours = |t: &str| OUR_IPAM_TYPES.contains(&t);
        self.ipam_type.as_deref().is_some_and(ours) || ours(&self.plugin_type)
    }

    /// True for a Kube-OVN-type attachment (`"type": "kube-ovn"` at the plugin level).
    pub fn is_kube_ovn_attachment(&self) -> bool {
        self.plugin_type == "kube-ovn"
    }

    /// The provider Subnets are matched against: the configured one, else `<name>.<namespace>` for an IPAM-only
    /// network or `<name>.<namespace>.ovn` for a Kube-OVN-type attachment.
    pub fn effective_provider(&self, nad_name: &str, nad_namespace: &str) -> String {
        match &self.provider {
            Some(p) => p.clone(),
            None if self.is_kube_ovn_attachment() => format!("{nad_name}.{nad_namespace}.ovn"),
            None => format!("{nad_name}.{nad_namespace}"),
        }
    }
}

/// Reads one plugin object; `prefix` is its path in messages (`""` or `plugins[1].`).
fn plugin_view(plugin: &Map<String, Value>, prefix: &str) -> Result<NadIpam, NadConfigError> {
    let plugin_type = string_field(plugin, "type", &format!("{prefix}type"))?.unwrap_or_default();
    // A blank provider is an unset one (as Kube-OVN reads it), so it is reported as missing, never matched.
    let top_provider = string_field(plugin, "provider", &format!("{prefix}provider"))?
        .filter(|p| !p.trim().is_empty());
    let top_socket = string_field(plugin, "server_socket", &format!("{prefix}server_socket"))?;
    let mut view = NadIpam {
        plugin_type,
        provider: top_provider,
        server_socket: top_socket,
        ..NadIpam::default()
    };
    let Some(ipam) = plugin.get("ipam") else {
        return Ok(view);
    };
    let at = format!("{prefix}ipam");
    let ipam = as_object(ipam, &format!(" {at}"))?;
    view.ipam_type = string_field(ipam, "type", &format!("{at}.type"))?;
    if let Some(p) =
        string_field(ipam, "provider", &format!("{at}.provider"))?.filter(|p| !p.trim().is_empty())
    {
        view.provider = Some(p);
    }
    if let Some(s) = string_field(ipam, "server_socket", &format!("{at}.server_socket"))? {
        view.server_socket = Some(s);
    }
    if let Some(routes) = ipam.get("routes") {
        let field = format!("{at}.routes");
        let list: Vec<Value> = match routes {
            Value::Array(list) => list.clone(),
            other => return Err(wrong_type(&field, other, ROUTES_EXPECTED)),
        };
        for (i, r) in list.into_iter().enumerate() {
            let route = as_object(&r, &format!(" {field}[{i}]"))?;
            view.routes.push(RouteSpec {
                dst: string_field(route, "dst", &format!("{field}[{i}].dst"))?,
                gw: string_field(route, "gw", &format!("{field}[{i}].gw"))?,
            });
        }
    }
    Ok(view)
}

const ROUTES_EXPECTED: &str =
    "a list of routes such as [{\"dst\":\"0.0.0.0/0\",\"gw\":\"172.17.0.1\"}]";

fn as_object<'a>(v: &'a Value, at: &str) -> Result<&'a Map<String, Value>, NadConfigError> {
    v.as_object().ok_or_else(|| NadConfigError::NotAnObject {
        at: at.to_string(),
        found: describe(v),
    })
}

/// An optional string member; present-but-not-a-string is an error naming `field`.
fn string_field(
    obj: &Map<String, Value>,
    key: &str,
    field: &str,
) -> Result<Option<String>, NadConfigError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(wrong_type(field, other, "a string")),
    }
}

fn wrong_type(field: &str, found: &Value, expected: &'static str) -> NadConfigError {
    NadConfigError::WrongType {
        field: field.to_string(),
        found: describe(found),
        expected,
    }
}

/// A short rendering of a JSON value for messages, clipped so a huge value cannot flood a log line.
fn describe(v: &Value) -> String {
    let kind = match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    };
    let mut text = v.to_string();
    if text.len() > 60 {
        let mut cut = 57;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push_str("...");
    }
    format!("{kind} ({text})")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_plugin_with_nadipam() {
        let v = ipam_view(
            r#"{"cniVersion":"0.3.1","name":"macvlan","type":"macvlan","master":"eth0",
                "ipam":{"type":"nadipam","provider":"macvlan.default",
                        "routes":[{"dst":"192.168.0.0/24","gw":"172.17.0.254"},{"dst":"0.0.0.0/0"}]}}"#,
        )
        .unwrap();
        assert_eq!(v.cni_version.as_deref(), Some("0.3.1"));
        assert_eq!(v.plugin_type, "macvlan");
        assert_eq!(v.plugin_index, None);
        assert_eq!(v.ipam_type.as_deref(), Some("nadipam"));
        assert_eq!(v.provider.as_deref(), Some("macvlan.default"));
        assert_eq!(
            v.routes,
            vec![
                RouteSpec {
                    dst: Some("192.168.0.0/24".into()),
                    gw: Some("172.17.0.254".into())
                },
                RouteSpec {
                    dst: Some("0.0.0.0/0".into()),
                    gw: None
                },
            ]
        );
        assert!(v.is_ours());
        assert!(!v.is_kube_ovn_attachment());
    }

    #[test]
    fn kube_ovn_ipam_from_the_seed_guide() {
        let v = ipam_view(
            r#"{
      "cniVersion": "0.3.0",
      "type": "macvlan",
      "master": "eth0",
      "mode": "bridge",
      "ipam": {
        "type": "kube-ovn",
        "server_socket": "/run/openvswitch/kube-ovn-daemon.sock",
        "provider": "macvlan.default"
      }
    }"#,
        )
        .unwrap();
        assert!(v.is_ours());
        assert_eq!(v.ipam_type.as_deref(), Some("kube-ovn"));
        assert_eq!(
            v.server_socket.as_deref(),
            Some("/run/openvswitch/kube-ovn-daemon.sock")
        );
        assert_eq!(
            v.effective_provider("macvlan", "default"),
            "macvlan.default"
        );
    }

    #[test]
    fn kube_ovn_type_attachment() {
        let v = ipam_view(
            r#"{"cniVersion": "0.3.0", "type": "kube-ovn",
                "server_socket": "/run/openvswitch/kube-ovn-daemon.sock", "provider": "attachnet.default.ovn"}"#,
        )
        .unwrap();
        assert!(v.is_ours());
        assert!(v.is_kube_ovn_attachment());
        assert_eq!(v.ipam_type, None);
        assert_eq!(v.provider.as_deref(), Some("attachnet.default.ovn"));
        // Without a provider, the Kube-OVN-type default carries the .ovn suffix.
        let v = ipam_view(r#"{"type":"kube-ovn"}"#).unwrap();
        assert_eq!(
            v.effective_provider("attachnet", "default"),
            "attachnet.default.ovn"
        );
        let v = ipam_view(r#"{"type":"macvlan","ipam":{"type":"nadipam"}}"#).unwrap();
        assert_eq!(
            v.effective_provider("macvlan", "default"),
            "macvlan.default"
        );
    }

    #[test]
    fn conflist_picks_the_plugin_with_our_ipam() {
        let v = ipam_view(
            r#"{"cniVersion":"1.0.0","name":"net","plugins":[
                  {"type":"bridge","ipam":{"type":"host-local","subnet":"10.0.0.0/24"}},
                  {"type":"macvlan","ipam":{"type":"nadipam","provider":"net.ns1"}},
                  {"type":"tuning"}]}"#,
        )
        .unwrap();
        assert_eq!(v.plugin_index, Some(1));
        assert_eq!(v.plugin_type, "macvlan");
        assert_eq!(v.provider.as_deref(), Some("net.ns1"));
        assert_eq!(v.cni_version.as_deref(), Some("1.0.0"));
        assert!(v.is_ours());

        let v = ipam_view(
            r#"{"plugins":[{"type":"tuning"},{"type":"bridge","ipam":{"type":"host-local"}}]}"#,
        )
        .unwrap();
        assert_eq!(v.plugin_index, Some(1));
        assert_eq!(v.ipam_type.as_deref(), Some("host-local"));
        assert!(!v.is_ours());
    }

    #[test]
    fn a_blank_provider_is_no_provider() {
        // Found by the nad_config fuzz target: "provider": "" made the effective provider empty.
        let v = ipam_view(r#"{"type":"ovs","ipam":{"type":"nadipam","provider":""}}"#).unwrap();
        assert_eq!(v.provider, None);
        assert_eq!(
            v.effective_provider("ovs-conf", "default"),
            "ovs-conf.default"
        );
        let v = ipam_view(r#"{"type":"kube-ovn","provider":"  "}"#).unwrap();
        assert_eq!(v.provider, None);
        assert_eq!(
            v.effective_provider("attachnet", "default"),
            "attachnet.default.ovn"
        );
    }

    #[test]
    fn missing_ipam_is_not_ours() {
        let v = ipam_view(r#"{"cniVersion":"0.3.1","type":"macvlan","master":"eth0"}"#).unwrap();
        assert_eq!(v.plugin_type, "macvlan");
        assert_eq!(v.ipam_type, None);
        assert_eq!(v.provider, None);
        assert!(!v.is_ours());
    }

    #[test]
    fn errors_name_the_field_and_value() {
        let msg = |c: &str| ipam_view(c).unwrap_err().to_string();
        assert_eq!(
            msg("  "),
            NadConfigError::Empty.to_string(),
            "whitespace-only config counts as empty"
        );
        let invalid = msg(r#"{"type": "macvlan", "#);
        assert!(
            invalid.starts_with("spec.config is not valid JSON (EOF while parsing a value at line 1 column 20); expected a CNI configuration such as {\"cniVersion\""),
            "{invalid}"
        );
        assert_eq!(
            msg("[1,2]"),
            "spec.config is a list ([1,2]); expected a JSON object"
        );
        assert_eq!(
            msg(r#"{"cniVersion":"0.3.1"}"#),
            "spec.config has neither \"type\" (a single plugin) nor \"plugins\" (a conflist); one of them is required"
        );
        assert_eq!(
            msg(r#"{"plugins":[]}"#),
            "spec.config plugins is an empty list; a conflist needs at least one plugin"
        );
        assert_eq!(
            msg(r#"{"plugins":{"type":"macvlan"}}"#),
            "spec.config plugins is an object ({\"type\":\"macvlan\"}); expected a list of plugin objects"
        );
        assert_eq!(
            msg(r#"{"plugins":[{"type":"bridge"}, "tuning"]}"#),
            "spec.config plugins[1] is a string (\"tuning\"); expected a JSON object"
        );
        assert_eq!(
            msg(r#"{"type":"macvlan","ipam":{"type":"nadipam","provider":5}}"#),
            "spec.config ipam.provider is a number (5); expected a string"
        );
        assert_eq!(
            msg(r#"{"plugins":[{"type":"macvlan","ipam":"nadipam"}]}"#),
            "spec.config plugins[0].ipam is a string (\"nadipam\"); expected a JSON object"
        );
        assert_eq!(
            msg(r#"{"type":"macvlan","ipam":{"type":"nadipam","routes":{"dst":"0.0.0.0/0"}}}"#),
            "spec.config ipam.routes is an object ({\"dst\":\"0.0.0.0/0\"}); expected a list of routes such as [{\"dst\":\"0.0.0.0/0\",\"gw\":\"172.17.0.1\"}]"
        );
        assert_eq!(
            msg(r#"{"type":"macvlan","ipam":{"type":"nadipam","routes":[{"dst":["x"]}]}}"#),
            "spec.config ipam.routes[0].dst is a list ([\"x\"]); expected a string"
        );
        assert_eq!(
            msg(r#"{"type":7}"#),
            "spec.config type is a number (7); expected a string"
        );
        let long = format!(
            r#"{{"type":"macvlan","ipam":{{"type":"{}"}},"provider":1}}"#,
            "x".repeat(100)
        );
        assert!(msg(&long).ends_with("provider is a number (1); expected a string"));
        let long = format!(r#"{{"type":["{}"]}}"#, "é".repeat(100));
        let m = msg(&long);
        assert!(m.contains("...)") && m.len() < 140, "{m}");
    }
}
