//! The plugin's kubeconfig: parsed by kube's [`Kubeconfig::read_from`] (synchronous; no client is built, so
//! the process stays free of an async runtime), then resolved here into what the plugin's blocking client
//! needs, with messages naming the kubeconfig field at fault.
//!
//! Supported: token, tokenFile, client-certificate(-data) + client-key(-data), certificate-authority(-data),
//! insecure-skip-tls-verify (warned about). Refused with a message: exec / auth-provider users, basic auth,
//! tls-server-name, proxy-url.

use std::path::{Path, PathBuf};

use base64::Engine;
use kube::config::{AuthInfo, Kubeconfig, KubeconfigError};
use secrecy::ExposeSecret;

use super::error::CniError;
use crate::annotations::Shown;

/// How to reach and authenticate to the API server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ApiAccess {
    /// The kubeconfig it came from, for messages.
    pub path: PathBuf,
    /// `https://host:port[/prefix]`, without a trailing slash.
    pub server: String,
    /// PEM of the CA bundle; `None` uses no roots (and fails) unless `insecure`.
    pub ca_pem: Option<Vec<u8>>,
    /// PEM of the client certificate chain and of its key.
    pub client_pem: Option<(Vec<u8>, Vec<u8>)>,
    pub token: Option<String>,
    pub insecure: bool,
}

impl ApiAccess {
    /// Reads and resolves the kubeconfig at `path` (current-context, or the only context; relative file
    /// paths are relative to the kubeconfig's directory, as kubectl resolves them).
    pub(crate) fn load(path: &Path) -> Result<ApiAccess, CniError> {
        let fail = |problem: String| CniError::Kubeconfig {
            path: path.display().to_string(),
            problem,
        };
        let invalid =
            |why: String| fail(format!("is not a valid kubeconfig: {}", Shown::new(&why)));
        let raw = Kubeconfig::read_from(path).map_err(|e| match e {
            KubeconfigError::ReadConfig(e, _) => fail(format!(
                "cannot be read ({e}); nadipam's node agent writes it — is its DaemonSet running on this node? Otherwise set ipam.kubeconfig in the NAD to a kubeconfig that may get Pods"
            )),
            // The parser's own words, without kube's prefix.
            KubeconfigError::Parse(e) => invalid(e.to_string()),
            e => invalid(e.to_string()),
        })?;
        let dir = path.parent().unwrap_or(Path::new("/"));
        let mut access = resolve(raw, dir).map_err(fail)?;
        access.path = path.to_path_buf();
        Ok(access)
    }
}

fn resolve(raw: Kubeconfig, dir: &Path) -> Result<ApiAccess, String> {
    let (cluster_name, user_name) = select_context(&raw)?;
    let cluster = raw
        .clusters
        .iter()
        .find(|c| c.name == cluster_name)
        .ok_or_else(|| {
            format!("the context names cluster {cluster_name:?}, which clusters[] does not define")
        })?;
    let Some(cluster) = &cluster.cluster else {
        return Err(format!("clusters[{cluster_name:?}] has no cluster section"));
    };
    let server = cluster
        .server
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| format!("clusters[{cluster_name:?}].cluster.server is missing (expected e.g. https://10.0.0.1:6443)"))?;
    if !(server.starts_with("https://") || server.starts_with("http://")) {
        return Err(format!(
            "clusters[{cluster_name:?}].cluster.server {} is not an http(s) URL (expected e.g. https://10.0.0.1:6443)",
            Shown::new(server)
        ));
    }
    if cluster.tls_server_name.is_some() {
        return Err(format!(
            "clusters[{cluster_name:?}].cluster.tls-server-name is not supported by nadipam; use a server address that the API server's certificate names"
        ));
    }
    if cluster.proxy_url.is_some() {
        return Err(format!(
            "clusters[{cluster_name:?}].cluster.proxy-url is not supported by nadipam; the plugin connects to the API server directly"
        ));
    }
    let field = |f: &str| format!("clusters[{cluster_name:?}].cluster.{f}");
    let ca_pem = data_or_file(
        dir,
        cluster.certificate_authority_data.as_deref(),
        cluster.certificate_authority.as_deref(),
        &field("certificate-authority-data"),
        &field("certificate-authority"),
    )?;
    let mut access = ApiAccess {
        path: PathBuf::new(),
        server: server.trim_end_matches('/').to_string(),
        ca_pem,
        client_pem: None,
        token: None,
        insecure: cluster.insecure_skip_tls_verify.unwrap_or(false),
    };
    if let Some(user_name) = user_name {
        let user = raw
            .auth_infos
            .iter()
            .find(|u| u.name == user_name)
            .ok_or_else(|| {
                format!("the context names user {user_name:?}, which users[] does not define")
            })?;
        if let Some(u) = &user.auth_info {
            apply_user(&mut access, u, &user_name, dir)?;
        }
    }
    Ok(access)
}

/// (cluster, user) of the current context, of the only context, or of the only cluster and user.
fn select_context(raw: &Kubeconfig) -> Result<(String, Option<String>), String> {
    let current = raw.current_context.as_deref().filter(|c| !c.is_empty());
    let ctx = match current {
        Some(name) => Some(
            raw.contexts
                .iter()
                .find(|c| c.name == name)
                .ok_or_else(|| format!("current-context {name:?} is not one of contexts[]"))?,
        ),
        None if raw.contexts.len() == 1 => raw.contexts.first(),
        None if raw.contexts.is_empty() => None,
        None => {
            return Err(format!(
                "has {} contexts and no current-context; set current-context",
                raw.contexts.len()
            ));
        }
    };
    if let Some(ctx) = ctx {
        let c = ctx
            .context
            .as_ref()
            .ok_or_else(|| format!("contexts[{:?}] has no context section", ctx.name))?;
        return Ok((c.cluster.clone(), c.user.clone().filter(|u| !u.is_empty())));
    }
    match (raw.clusters.as_slice(), raw.auth_infos.as_slice()) {
        ([c], []) => Ok((c.name.clone(), None)),
        ([c], [u]) => Ok((c.name.clone(), Some(u.name.clone()))),
        _ => Err(
            "has no contexts; add a context and current-context naming the cluster and user"
                .to_string(),
        ),
    }
}

fn apply_user(access: &mut ApiAccess, u: &AuthInfo, name: &str, dir: &Path) -> Result<(), String> {
    let field = |f: &str| format!("users[{name:?}].user.{f}");
    let token = u.token.as_ref().map(|t| t.expose_secret());
    access.token = match (token, &u.token_file) {
        (Some(t), _) if !t.trim().is_empty() => Some(t.trim().to_string()),
        (_, Some(file)) if !file.trim().is_empty() => {
            let p = dir.join(file.trim());
            let t = std::fs::read_to_string(&p).map_err(|e| {
                format!(
                    "{}: {} cannot be read ({e})",
                    field("tokenFile"),
                    p.display()
                )
            })?;
            let t = t.trim();
            if t.is_empty() {
                return Err(format!("{}: {} is empty", field("tokenFile"), p.display()));
            }
            Some(t.to_string())
        }
        _ => None,
    };
    let cert = data_or_file(
        dir,
        u.client_certificate_data.as_deref(),
        u.client_certificate.as_deref(),
        &field("client-certificate-data"),
        &field("client-certificate"),
    )?;
    let key = data_or_file(
        dir,
        u.client_key_data.as_ref().map(|k| k.expose_secret()),
        u.client_key.as_deref(),
        &field("client-key-data"),
        &field("client-key"),
    )?;
    access.client_pem = match (cert, key) {
        (Some(c), Some(k)) => Some((c, k)),
        (None, None) => None,
        (Some(_), None) => {
            return Err(format!(
                "{} is set but no client-key(-data); give both or neither",
                field("client-certificate(-data)")
            ));
        }
        (None, Some(_)) => {
            return Err(format!(
                "{} is set but no client-certificate(-data); give both or neither",
                field("client-key(-data)")
            ));
        }
    };
    if access.token.is_none() && access.client_pem.is_none() {
        if u.exec.is_some() || u.auth_provider.is_some() {
            return Err(format!(
                "{}: exec and auth-provider credentials are not supported by nadipam; use a token, tokenFile or client certificate (the node agent writes a token kubeconfig)",
                field("exec/auth-provider")
            ));
        }
        if u.username.is_some() {
            return Err(format!(
                "{}: basic authentication is not supported; use a token, tokenFile or client certificate",
                field("username")
            ));
        }
    }
    Ok(())
}

/// The bytes of `*-data` (base64) or of the file it names; data wins, as in kubectl.
fn data_or_file(
    dir: &Path,
    data: Option<&str>,
    file: Option<&str>,
    data_field: &str,
    file_field: &str,
) -> Result<Option<Vec<u8>>, String> {
    if let Some(d) = data.map(str::trim).filter(|d| !d.is_empty()) {
        let compact: String = d.split_whitespace().collect();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(compact.as_bytes())
            .map_err(|e| format!("{data_field} is not valid base64 ({e})"))?;
        return Ok(Some(bytes));
    }
    if let Some(f) = file.map(str::trim).filter(|f| !f.is_empty()) {
        let p = dir.join(f);
        let bytes = std::fs::read(&p)
            .map_err(|e| format!("{file_field}: {} cannot be read ({e})", p.display()))?;
        return Ok(Some(bytes));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    #[test]
    fn token_and_ca_data() {
        let d = tempfile::tempdir().unwrap();
        let p = write(
            d.path(),
            "k",
            &format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:6443/\n    certificate-authority-data: {}\nusers:\n- name: u\n  user:\n    token: abc\ncontexts:\n- name: x\n  context:\n    cluster: c\n    user: u\ncurrent-context: x\n",
                b64("CA PEM")
            ),
        );
        let a = ApiAccess::load(&p).unwrap();
        assert_eq!(a.server, "https://127.0.0.1:6443");
        assert_eq!(a.ca_pem.as_deref(), Some(&b"CA PEM"[..]));
        assert_eq!(a.token.as_deref(), Some("abc"));
        assert!(!a.insecure && a.client_pem.is_none());
    }

    #[test]
    fn files_are_relative_to_the_kubeconfig() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "ca.crt", "CA");
        write(d.path(), "c.crt", "CERT");
        write(d.path(), "c.key", "KEY");
        write(d.path(), "token", " tok\n");
        let p = write(
            d.path(),
            "k",
            "clusters:\n- name: c\n  cluster:\n    server: https://h:1\n    certificate-authority: ca.crt\nusers:\n- name: u\n  user:\n    client-certificate: c.crt\n    client-key: c.key\n    tokenFile: token\ncontexts:\n- name: only\n  context: {cluster: c, user: u}\n",
        );
        let a = ApiAccess::load(&p).unwrap();
        assert_eq!(a.ca_pem.as_deref(), Some(&b"CA"[..]));
        assert_eq!(a.client_pem, Some((b"CERT".to_vec(), b"KEY".to_vec())));
        assert_eq!(a.token.as_deref(), Some("tok"));
    }

    #[test]
    fn insecure_and_client_data() {
        let d = tempfile::tempdir().unwrap();
        let p = write(
            d.path(),
            "k",
            &format!(
                "clusters:\n- name: c\n  cluster:\n    server: https://h:1\n    insecure-skip-tls-verify: true\nusers:\n- name: u\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\n",
                b64("C"),
                b64("K")
            ),
        );
        let a = ApiAccess::load(&p).unwrap();
        assert!(a.insecure);
        assert_eq!(a.client_pem, Some((b"C".to_vec(), b"K".to_vec())));
    }

    #[test]
    fn errors_name_path_and_field() {
        let d = tempfile::tempdir().unwrap();
        let missing = d.path().join("nope");
        let e = ApiAccess::load(&missing).unwrap_err();
        assert_eq!(e.code(), 105);
        let text = e.to_string();
        assert!(
            text.starts_with(&format!(
                "kubeconfig {}: cannot be read (",
                missing.display()
            )),
            "{text}"
        );
        assert!(text.contains("nadipam's node agent writes it"), "{text}");

        let check = |body: &str, want: &str| {
            let p = write(d.path(), "k", body);
            let e = ApiAccess::load(&p).unwrap_err().to_string();
            assert!(e.contains(want), "{e}\nwanted: {want}");
        };
        check("clusters: 5", "is not a valid kubeconfig");
        check(
            "clusters:\n- name: c\n  cluster: {server: 'ftp://x'}\n",
            "clusters[\"c\"].cluster.server \"ftp://x\" is not an http(s) URL",
        );
        check(
            "clusters:\n- name: c\n  cluster: {}\n",
            "clusters[\"c\"].cluster.server is missing",
        );
        check(
            "clusters:\n- name: c\n  cluster: {server: 'https://x', certificate-authority-data: '!!'}\n",
            "clusters[\"c\"].cluster.certificate-authority-data is not valid base64",
        );
        check(
            "clusters:\n- name: c\n  cluster: {server: 'https://x', certificate-authority: /nonexistent/ca}\n",
            "clusters[\"c\"].cluster.certificate-authority: /nonexistent/ca cannot be read",
        );
        check(
            "clusters:\n- name: c\n  cluster: {server: 'https://x'}\ncontexts:\n- name: a\n  context: {cluster: c}\n- name: b\n  context: {cluster: c}\n",
            "has 2 contexts and no current-context",
        );
        check(
            "clusters:\n- name: c\n  cluster: {server: 'https://x'}\ncurrent-context: z\n",
            "current-context \"z\" is not one of contexts[]",
        );
        check(
            "clusters:\n- name: c\n  cluster: {server: 'https://x'}\nusers:\n- name: u\n  user: {exec: {command: aws}}\n",
            "users[\"u\"].user.exec/auth-provider: exec and auth-provider credentials are not supported",
        );
        check(
            "clusters:\n- name: c\n  cluster: {server: 'https://x'}\nusers:\n- name: u\n  user: {client-certificate-data: QQ==}\n",
            "users[\"u\"].user.client-certificate(-data) is set but no client-key(-data)",
        );
        check(
            "clusters:\n- name: c\n  cluster: {server: 'https://x', tls-server-name: k}\n",
            "tls-server-name is not supported",
        );
        check(
            "clusters:\n- name: c\n  cluster: {server: 'https://x'}\ncontexts:\n- name: a\n  context: {cluster: d}\n",
            "the context names cluster \"d\", which clusters[] does not define",
        );
    }
}
