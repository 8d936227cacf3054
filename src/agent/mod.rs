//! The node agent (`nadipam-node-agent`, run by a DaemonSet): installs the `nadipam` CNI plugin into the host's
//! CNI bin directory and writes the kubeconfig the plugin reads, from the agent's projected service-account
//! token (whose RBAC allows only `get pods`). It then keeps both current: kubelet refreshes the token before it
//! expires and the agent rewrites the kubeconfig when it sees the new token.
//!
//! - [`atomic`]: write-temp-then-rename, so a plugin exec'd mid-update never sees half a file.
//! - [`install`]: the plugin binary and its `kube-ovn` alias.
//! - [`kubeconfig`]: the kubeconfig's content.
//! - [`token`]: reading the token and its expiry.

mod atomic;
mod error;
mod install;
mod kubeconfig;
mod token;

use std::path::PathBuf;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

pub use error::AgentError;

/// Where the host's filesystem is mounted in the agent's container.
pub const HOST_ROOT: &str = "/host";

/// The kubeconfig's mode: it holds a credential.
const KUBECONFIG_MODE: u32 = 0o600;

/// What the agent installs and writes, and from where.
#[derive(Clone, Debug)]
pub struct Options {
    /// The plugin binary shipped in the agent's image.
    pub plugin: PathBuf,
    /// The host's CNI bin directory, as mounted in the container.
    pub cni_bin_dir: PathBuf,
    pub kube_ovn_alias: bool,
    /// Where to write the plugin's kubeconfig, as mounted in the container.
    pub kubeconfig: PathBuf,
    pub token_file: PathBuf,
    pub ca_file: PathBuf,
    /// `--server`; otherwise the Pod's in-cluster API address.
    pub server: Option<String>,
}

impl Options {
    /// The default kubeconfig path in the container: the plugin's default path on the host, under
    /// [`HOST_ROOT`], so the two can never disagree.
    pub fn default_kubeconfig() -> PathBuf {
        PathBuf::from(HOST_ROOT).join(crate::cni::DEFAULT_KUBECONFIG.trim_start_matches('/'))
    }
}

/// What one pass changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pass {
    /// Binaries (re)written.
    pub installed: Vec<PathBuf>,
    /// True when the kubeconfig was (re)written.
    pub kubeconfig_written: bool,
    /// When the token in the kubeconfig expires, when it says.
    pub token_expires: Option<Timestamp>,
}

/// Installs the plugin and writes the kubeconfig where either differs from what it should be.
pub fn sync(o: &Options) -> Result<Pass, AgentError> {
    let installed = install::install(
        &o.plugin,
        &install::targets(&o.cni_bin_dir, o.kube_ovn_alias),
    )?;
    let token = token::read(&o.token_file)?;
    let ca = std::fs::read(&o.ca_file).map_err(|source| AgentError::Read {
        what: "cluster CA",
        path: o.ca_file.clone(),
        source,
        hint: "; is the kube-root-ca.crt ConfigMap projected into the token volume (see --ca-file)?",
    })?;
    let server = kubeconfig::server(
        o.server.as_deref(),
        std::env::var("KUBERNETES_SERVICE_HOST").ok().as_deref(),
        std::env::var("KUBERNETES_SERVICE_PORT").ok().as_deref(),
    )?;
    let text = kubeconfig::render(&server, &ca, &token);
    let kubeconfig_written = !atomic::is_current(&o.kubeconfig, text.as_bytes(), KUBECONFIG_MODE);
    if kubeconfig_written {
        atomic::write(&o.kubeconfig, text.as_bytes(), KUBECONFIG_MODE)?;
    }
    Ok(Pass {
        installed,
        kubeconfig_written,
        token_expires: token::expiry(&token),
    })
}

/// One [`sync`], logging what it changed (`--once`).
pub fn once(o: &Options) -> Result<Pass, AgentError> {
    let p = sync(o)?;
    report(&p, o);
    Ok(p)
}

/// Runs [`sync`] every `every` forever. The first pass must succeed (a DaemonSet Pod that cannot do its job
/// should crash visibly); later failures are logged and retried.
/// Installs, then re-checks every `every` until SIGTERM or SIGINT: as a DaemonSet's PID 1 the agent has no
/// default signal handling, so without this every rollout and uninstall would wait out the grace period.
pub fn run(o: &Options, every: Duration) -> Result<(), AgentError> {
    once(o)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(AgentError::Signal)?;
    rt.block_on(async {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).map_err(AgentError::Signal)?;
        let mut int = signal(SignalKind::interrupt()).map_err(AgentError::Signal)?;
        tracing::info!(every = ?every, "installed; checking again periodically until SIGTERM");
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = term.recv() => break,
                _ = int.recv() => break,
            }
            check(o, every);
        }
        tracing::info!("stopping on signal");
        Ok(())
    })
}

/// One periodic pass: re-install what changed, warn about a token kubelet stopped refreshing.
fn check(o: &Options, every: Duration) {
    match sync(o) {
        Ok(p) => {
            report(&p, o);
            if let Some(exp) = p.token_expires {
                let left = exp.duration_since(Timestamp::now());
                if left < SignedDuration::from_secs(2 * every.as_secs() as i64) {
                    tracing::warn!(
                        token = %o.token_file.display(),
                        expires = %exp,
                        "the service account token expires soon and has not been refreshed; is kubelet running?"
                    );
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "sync failed; retrying"),
    }
}

fn report(p: &Pass, o: &Options) {
    for b in &p.installed {
        tracing::info!(path = %b.display(), "CNI plugin installed");
    }
    if p.kubeconfig_written {
        tracing::info!(
            path = %o.kubeconfig.display(),
            token_expires = ?p.token_expires,
            "plugin kubeconfig written"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_kubeconfig_is_the_plugins_default_under_the_host_root() {
        assert_eq!(
            Options::default_kubeconfig(),
            PathBuf::from("/host/etc/cni/net.d/nadipam.d/nadipam.kubeconfig")
        );
    }

    #[test]
    fn a_pass_writes_once_then_only_on_change() {
        let d = tempfile::tempdir().unwrap();
        let w = |name: &str, body: &str| {
            let p = d.path().join(name);
            std::fs::write(&p, body).unwrap();
            p
        };
        let o = Options {
            plugin: w("plugin", "BIN"),
            cni_bin_dir: d.path().join("bin"),
            kube_ovn_alias: false,
            kubeconfig: d.path().join("net.d/nadipam.d/nadipam.kubeconfig"),
            token_file: w("token", "t1"),
            ca_file: w("ca.crt", "CA"),
            server: Some("https://10.0.0.1:443".into()),
        };
        let first = sync(&o).unwrap();
        assert_eq!(first.installed, [d.path().join("bin/nadipam")]);
        assert!(first.kubeconfig_written);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&o.kubeconfig)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(sync(&o).unwrap(), Pass::default());
        w("token", "t2");
        let third = sync(&o).unwrap();
        assert!(third.kubeconfig_written && third.installed.is_empty());
        assert!(
            std::fs::read_to_string(&o.kubeconfig)
                .unwrap()
                .contains("token: t2")
        );
        assert!(!d.path().join("bin/kube-ovn").exists());
    }
}
