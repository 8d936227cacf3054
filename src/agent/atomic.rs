//! Replacing a file so no reader ever sees half of it: write a temporary file in the same directory, flush it
//! to disk, then rename it over the target. A CNI plugin exec'd during an upgrade runs either the old binary
//! or the new one, and the plugin never reads a truncated kubeconfig.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use super::error::AgentError;

// Kept rather than tempfile's persist: that neither sets the mode past the umask nor syncs the directory.
/// Writes `bytes` to `path` with permission bits `mode`, atomically. Creates the parent directory.
pub(crate) fn write(path: &Path, bytes: &[u8], mode: u32) -> Result<(), AgentError> {
    let fail = |source| AgentError::Write {
        path: path.to_path_buf(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(fail)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        // The mode given to open is masked by the umask; set it exactly.
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        // Make the rename itself durable.
        if let Ok(d) = fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(fail)
}

/// True when `path` holds exactly `bytes` with permission bits `mode`.
pub(crate) fn is_current(path: &Path, bytes: &[u8], mode: u32) -> bool {
    let Ok(meta) = fs::metadata(path) else {
        return false;
    };
    meta.len() == bytes.len() as u64
        && meta.permissions().mode() & 0o7777 == mode
        && fs::read(path).is_ok_and(|b| b == bytes)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;

    #[test]
    fn replaces_by_rename_and_sets_the_mode() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("sub/file");
        write(&p, b"one", 0o600).unwrap();
        let first = fs::metadata(&p).unwrap();
        assert_eq!(first.permissions().mode() & 0o7777, 0o600);
        // A reader holding the old file keeps reading the old content.
        let held = fs::File::open(&p).unwrap();
        write(&p, b"two", 0o755).unwrap();
        let second = fs::metadata(&p).unwrap();
        assert_ne!(first.ino(), second.ino(), "replaced in place, not renamed");
        assert_eq!(second.permissions().mode() & 0o7777, 0o755);
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(held.metadata().unwrap().ino(), first.ino());
        assert!(is_current(&p, b"two", 0o755));
        assert!(!is_current(&p, b"two", 0o600));
        assert!(!is_current(&p, b"three", 0o755));
        let leftovers: Vec<_> = fs::read_dir(p.parent().unwrap())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
            .collect();
        assert!(leftovers.is_empty());
    }

    #[test]
    fn a_write_that_cannot_happen_names_the_path() {
        let d = tempfile::tempdir().unwrap();
        let blocker = d.path().join("file");
        fs::write(&blocker, b"x").unwrap();
        let e = write(&blocker.join("below"), b"y", 0o600).unwrap_err();
        assert!(
            e.to_string()
                .starts_with(&format!("writing {}/below: ", blocker.display())),
            "{e}"
        );
    }
}
