//! The kubeconfig the `nadipam` plugin reads (by default at [`crate::cni::DEFAULT_KUBECONFIG`] on the host):
//! the API server, the cluster CA and the agent's service-account token, all inline, so the file is one
//! self-contained unit that is replaced atomically and never refers to a path inside the agent's container.

use base64::Engine;
use serde_json::json;

use super::error::AgentError;

/// The API server's URL: `--server`, else the in-cluster address kubelet gives every Pod.
pub(crate) fn server(
    flag: Option<&str>,
    host: Option<&str>,
    port: Option<&str>,
) -> Result<String, AgentError> {
    let url = match (flag, host, port) {
        (Some(f), _, _) => f.trim().trim_end_matches('/').to_string(),
        (None, Some(h), Some(p)) if !h.is_empty() && !p.is_empty() => {
            if h.contains(':') {
                format!("https://[{h}]:{p}")
            } else {
                format!("https://{h}:{p}")
            }
        }
        _ => return Err(AgentError::NoServer),
    };
    if !url.starts_with("https://") || url.len() <= "https://".len() {
        return Err(AgentError::BadServer { value: url });
    }
    Ok(url)
}

/// The kubeconfig's YAML.
pub(crate) fn render(server: &str, ca_pem: &[u8], token: &str) -> String {
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    let doc = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "cluster", "cluster": {"server": server, "certificate-authority-data": ca}}],
        "users": [{"name": "nadipam-node-agent", "user": {"token": token}}],
        "contexts": [{"name": "nadipam", "context": {"cluster": "cluster", "user": "nadipam-node-agent"}}],
        "current-context": "nadipam",
    });
    format!(
        "# Written by nadipam-node-agent for the nadipam CNI plugin; rewritten when the token is refreshed.\n{}",
        crate::api::manifest_yaml(&doc).unwrap_or_default()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cni::kubeconfig::ApiAccess;

    #[test]
    fn the_plugin_reads_what_the_agent_writes() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("nadipam.kubeconfig");
        std::fs::write(&p, render("https://10.0.0.1:443", b"CA PEM", "tok")).unwrap();
        let a = ApiAccess::load(&p).unwrap();
        assert_eq!(a.server, "https://10.0.0.1:443");
        assert_eq!(a.ca_pem.as_deref(), Some(&b"CA PEM"[..]));
        assert_eq!(a.token.as_deref(), Some("tok"));
        assert!(!a.insecure);
    }

    #[test]
    fn server_comes_from_the_flag_or_the_pod_environment() {
        assert_eq!(
            server(None, Some("10.96.0.1"), Some("443")).unwrap(),
            "https://10.96.0.1:443"
        );
        assert_eq!(
            server(None, Some("fd00::1"), Some("443")).unwrap(),
            "https://[fd00::1]:443"
        );
        assert_eq!(
            server(Some("https://api.example:6443/"), None, None).unwrap(),
            "https://api.example:6443"
        );
        assert_eq!(
            server(None, None, Some("443")).unwrap_err().to_string(),
            "no API server address: set --server (e.g. https://10.0.0.1:443) or run in a Pod, where KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are set"
        );
        assert!(matches!(
            server(Some("http://x"), None, None),
            Err(AgentError::BadServer { .. })
        ));
    }
}
