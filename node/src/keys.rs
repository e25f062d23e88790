//! Key files: a 32-byte secret as 64 hex digits on one line, readable by
//! its owner only. The node refuses group- or world-readable key files,
//! and key material never reaches logs (types print public parts only).

use anyhow::{bail, Context, Result};
use std::path::Path;

/// Refuse a private key file that its group or others may read.
pub fn check_private(path: &Path) -> Result<std::fs::Metadata> {
    let meta = std::fs::metadata(path)
        .with_context(|| format!("cannot read key file {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode();
        if mode & 0o077 != 0 {
            bail!(
                "key file {} is readable by group or others (mode {:o}); run chmod 600 on it",
                path.display(),
                mode & 0o777
            );
        }
    }
    Ok(meta)
}

/// Read a secret key file, refusing loose permissions.
pub fn read_secret(path: &Path) -> Result<[u8; 32]> {
    let meta = check_private(path)?;
    if meta.len() > 256 {
        bail!("key file {} is too large to be a key", path.display());
    }
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read key file {}", path.display()))?;
    let bytes = hex::decode(text.trim())
        .with_context(|| format!("key file {} is not hex", path.display()))?;
    let arr: [u8; 32] = bytes
        .try_into()
        .map_err(|_| anyhow::anyhow!("key file {} must hold 32 bytes", path.display()))?;
    Ok(arr)
}

/// Write a secret key file with mode 0600 (created exclusively).
pub fn write_secret(path: &Path, secret: &[u8; 32]) -> Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(path)
        .with_context(|| format!("cannot create key file {}", path.display()))?;
    writeln!(f, "{}", hex::encode(secret))?;
    f.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_permission_check() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k");
        write_secret(&p, &[7; 32]).unwrap();
        assert_eq!(read_secret(&p).unwrap(), [7; 32]);
        assert!(write_secret(&p, &[8; 32]).is_err(), "never overwrites");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
            let e = read_secret(&p).unwrap_err().to_string();
            assert!(e.contains("chmod 600"), "{e}");
        }
        std::fs::write(dir.path().join("bad"), "zz").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(
                dir.path().join("bad"),
                std::fs::Permissions::from_mode(0o600),
            )
            .unwrap();
        }
        assert!(read_secret(&dir.path().join("bad")).is_err());
    }
}
