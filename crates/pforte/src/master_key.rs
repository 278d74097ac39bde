//! Where the master key (which seals private keys at rest) comes from.

use std::path::Path;

use anyhow::{Context, Result, anyhow};
use pforte_jose::seal::MasterKey;

use crate::config::MasterKeySource;

/// `shared_database`: the store is PostgreSQL, which several nodes may share.
pub fn load(source: &MasterKeySource, shared_database: bool) -> Result<MasterKey> {
    match source {
        MasterKeySource::Inline(text) => MasterKey::from_base64(text.trim()).map_err(|e| {
            anyhow!("PFORTE_MASTER_KEY is not a valid key: {e}\n  fix: set it to 32 random bytes in base64, e.g. from `openssl rand -base64 32`")
        }),
        MasterKeySource::File(path) => read_file(path),
        MasterKeySource::Generated(path) => {
            if path.exists() {
                return read_file(path);
            }
            // Each node would generate its own key and seal realm keys with it, which the
            // other nodes then cannot open.
            if shared_database {
                return Err(anyhow!(
                    "no master key is set, and a generated one would be this node's alone, while the PostgreSQL database may be shared by several nodes\n  fix: set PFORTE_MASTER_KEY (or PFORTE_MASTER_KEY_FILE) to the same key on every node, e.g. from `openssl rand -base64 32`"
                ));
            }
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("cannot create the data directory {}", dir.display()))?;
            }
            let key = MasterKey::generate().map_err(|e| anyhow!("cannot generate a master key: {e}"))?;
            write_private(path, key.to_base64().as_bytes())?;
            tracing::warn!(
                path = %path.display(),
                "no PFORTE_MASTER_KEY set: generated a master key file; set PFORTE_MASTER_KEY in production"
            );
            Ok(key)
        }
    }
}

fn read_file(path: &Path) -> Result<MasterKey> {
    if readable_by_others(path) {
        // A warning, not a refusal: secret mounts (Kubernetes, say) are often 0644 behind a
        // directory only the service can enter.
        tracing::warn!(
            path = %path.display(),
            "the master key file can be read by other users; fix: chmod 600 it (or make sure \
             its directory admits only pforte's user)"
        );
    }
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the master key file {}", path.display()))?;
    MasterKey::from_base64(text.trim()).map_err(|e| {
        anyhow!(
            "master key file {} does not hold a valid key: {e}\n  fix: it must contain 32 random bytes in base64",
            path.display()
        )
    })
}

/// Group or others may read the file (always false where there are no Unix permissions).
fn readable_by_others(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o044 != 0)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        false
    }
}

fn write_private(path: &Path, content: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = options
        .open(path)
        .with_context(|| format!("cannot create the master key file {}", path.display()))?;
    f.write_all(content)
        .with_context(|| format!("cannot write the master key file {}", path.display()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn a_key_file_others_can_read_is_noticed() {
        use std::os::unix::fs::PermissionsExt;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir = std::env::temp_dir().join(format!("pforte-mk-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let private = dir.join("private.key");
        write_private(&private, b"x").unwrap();
        assert!(!readable_by_others(&private));
        let shared = dir.join("shared.key");
        std::fs::write(&shared, b"x").unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(readable_by_others(&shared));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
