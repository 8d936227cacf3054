//! Installing the `nadipam` CNI plugin into the host's CNI bin directory, and as `kube-ovn` when asked (for
//! NADs written for Kube-OVN's IPAM; the plugin behaves the same under either name). A binary already equal to
//! ours is left alone, so a restart of the agent does not touch the host.

use std::path::{Path, PathBuf};

use super::atomic;
use super::error::AgentError;

/// The plugin's name in the CNI bin directory.
pub(crate) const PLUGIN: &str = "nadipam";
/// The alias for NADs whose `ipam.type` is `kube-ovn`.
pub(crate) const KUBE_OVN_ALIAS: &str = "kube-ovn";

const MODE: u32 = 0o755;

/// The names to install under, in `dir`.
pub(crate) fn targets(dir: &Path, kube_ovn_alias: bool) -> Vec<PathBuf> {
    let mut names = vec![dir.join(PLUGIN)];
    if kube_ovn_alias {
        names.push(dir.join(KUBE_OVN_ALIAS));
    }
    names
}

/// Copies `source` to every target that differs; returns the paths written.
pub(crate) fn install(source: &Path, targets: &[PathBuf]) -> Result<Vec<PathBuf>, AgentError> {
    let bytes = std::fs::read(source).map_err(|e| AgentError::Read {
        what: "plugin binary",
        path: source.to_path_buf(),
        source: e,
        hint: "; the agent's image carries it (see --plugin)",
    })?;
    if bytes.is_empty() {
        return Err(AgentError::Empty {
            what: "plugin binary",
            path: source.to_path_buf(),
            hint: "; the agent's image carries it (see --plugin)",
        });
    }
    let mut written = Vec::new();
    for t in targets {
        if !atomic::is_current(t, &bytes, MODE) {
            atomic::write(t, &bytes, MODE)?;
            written.push(t.clone());
        }
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_once_and_again_only_when_changed() {
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("src");
        std::fs::write(&src, b"\x7fELF v1").unwrap();
        let bin = d.path().join("opt/cni/bin");
        let t = targets(&bin, true);
        assert_eq!(t, [bin.join("nadipam"), bin.join("kube-ovn")]);
        assert_eq!(install(&src, &t).unwrap(), t);
        assert!(install(&src, &t).unwrap().is_empty());
        std::fs::write(&src, b"\x7fELF v2").unwrap();
        assert_eq!(install(&src, &t).unwrap().len(), 2);
        assert_eq!(std::fs::read(bin.join("kube-ovn")).unwrap(), b"\x7fELF v2");
    }

    #[test]
    fn a_missing_source_names_the_flag() {
        let d = tempfile::tempdir().unwrap();
        let e = install(&d.path().join("none"), &targets(d.path(), false)).unwrap_err();
        assert!(
            e.to_string()
                .ends_with("; the agent's image carries it (see --plugin)"),
            "{e}"
        );
    }
}
