//! The client, from the kubeconfig kubectl would use: `--kubeconfig`, else `KUBECONFIG` (a list of files,
//! merged), else `~/.kube/config`; `--context`, `--cluster` and `--user` as kubectl reads them.

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

use super::cli::Connection;
use super::error::Error;

/// A client and the namespace commands default to.
pub(crate) struct Session {
    pub client: Client,
    /// `-n`, else the context's namespace, else `default`.
    pub namespace: String,
}

pub(crate) async fn connect(conn: &Connection) -> Result<Session, Error> {
    let options = KubeConfigOptions {
        context: conn.context.clone(),
        cluster: conn.cluster.clone(),
        user: conn.user.clone(),
    };
    let path = conn
        .kubeconfig
        .as_ref()
        .map(|p| p.display().to_string())
        .or_else(|| std::env::var("KUBECONFIG").ok().filter(|v| !v.is_empty()));
    let fail = |source| Error::Kubeconfig {
        path: path.clone(),
        source,
    };
    let kubeconfig = match &conn.kubeconfig {
        Some(p) => Kubeconfig::read_from(p),
        None => Kubeconfig::read(),
    }
    .map_err(fail)?;
    let config = Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .map_err(fail)?;
    let namespace = conn
        .namespace
        .clone()
        .unwrap_or_else(|| config.default_namespace.clone());
    let client = Client::try_from(config).map_err(Error::Client)?;
    Ok(Session { client, namespace })
}
