//! Where a real node finds the cluster key: `--cluster-key-file PATH`, or else the
//! per-user file `~/.simnode/cluster-key`, created on first start with a random secret.
//!
//! This is Erlang's cookie: every node one user starts on one machine reads the same file,
//! so the seeds' commands (`kv-node --port 5001 --id node-1 ...`) form an authenticated
//! cluster with no extra flag, and a cluster across hosts copies one file to each. The
//! file holds the secret itself (its bytes, surrounding whitespace ignored; at least
//! [`MIN_SECRET_BYTES`](super::MIN_SECRET_BYTES)) and must be readable by its owner only,
//! as ssh insists for private keys. Only the real binaries call this (file I/O and OS
//! randomness); the simulator hands its nodes a key derived from the seed.

use super::{hex, ClusterKey};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The per-user default, relative to `$HOME`.
pub const DEFAULT_RELATIVE: &str = ".simnode/cluster-key";

/// The per-user default file, `$HOME/.simnode/cluster-key`.
pub fn default_path() -> Result<PathBuf, String> {
    match std::env::var_os("HOME") {
        Some(home) if !home.is_empty() => Ok(PathBuf::from(home).join(DEFAULT_RELATIVE)),
        _ => Err("HOME is not set: give the cluster key with --cluster-key-file PATH".into()),
    }
}

/// The key in `path`, or, with no path, in the per-user default file (created with a
/// fresh random secret if it does not exist yet).
pub fn load(path: Option<&Path>) -> Result<ClusterKey, String> {
    match path {
        Some(path) => read(path),
        None => {
            let path = default_path()?;
            if !path.exists() {
                create(&path)?;
            }
            read(&path)
        }
    }
}

fn read(path: &Path) -> Result<ClusterKey, String> {
    let shown = path.display();
    let bytes = std::fs::read(path).map_err(|e| format!("cluster key file {shown}: {e}"))?;
    check_private(path)?;
    ClusterKey::new(bytes.trim_ascii()).map_err(|e| format!("cluster key file {shown}: {e}"))
}

#[cfg(unix)]
fn check_private(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .map_err(|e| format!("cluster key file {}: {e}", path.display()))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(format!(
            "cluster key file {} is readable by others (mode {:o}): run chmod 600 on it",
            path.display(),
            mode & 0o777
        ));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_: &Path) -> Result<(), String> {
    Ok(())
}

/// Creates `path` with a fresh secret, atomically: nodes started at the same moment race
/// here, and every one of them must end up reading the one secret that won.
fn create(path: &Path) -> Result<(), String> {
    use rand::RngCore;
    let shown = path.display();
    let dir = path
        .parent()
        .ok_or_else(|| format!("cluster key file {shown}: no parent directory"))?;
    create_private_dir(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let mut secret = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut secret);
    // Written whole under a private temporary name, then linked into place: `hard_link`
    // fails if the file exists, so a second node never replaces the first one's secret,
    // and no node ever reads a half-written file.
    let tmp = dir.join(format!(".cluster-key.{}.tmp", std::process::id()));
    let written = write_private(&tmp, format!("{}\n", hex(&secret)).as_bytes());
    let linked = written.and_then(|()| match std::fs::hard_link(&tmp, path) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => Err(e),
        _ => Ok(()),
    });
    let _ = std::fs::remove_file(&tmp);
    linked.map_err(|e| format!("cannot create cluster key file {shown}: {e}"))
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("key-file-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn a_created_key_is_private_and_read_back_the_same() {
        let dir = scratch("create");
        let path = dir.join("sub/cluster-key");
        create(&path).expect("created");
        let first = read(&path).expect("readable");
        // A second creation (a racing node) keeps the first secret.
        create(&path).expect("second create is fine");
        let second = read(&path).expect("readable");
        let mac = first.sign("t", &[b"x"]);
        assert!(second.verify("t", &[b"x"], &mac));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[cfg(unix)]
    #[test]
    fn a_key_file_others_can_read_or_a_short_one_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = scratch("refuse");
        std::fs::create_dir_all(&dir).expect("dir");
        let open = dir.join("open");
        std::fs::write(&open, "0123456789abcdef0123").expect("write");
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let error = read(&open).expect_err("world-readable");
        assert!(error.contains("chmod 600"), "{error}");
        let short = dir.join("short");
        std::fs::write(&short, "abc\n").expect("write");
        std::fs::set_permissions(&short, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let error = read(&short).expect_err("short");
        assert!(error.contains("at least 16 bytes"), "{error}");
        let error = read(&dir.join("missing")).expect_err("missing");
        assert!(error.contains("cluster key file"), "{error}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
