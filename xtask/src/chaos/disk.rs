//! A small tmpfs for the full-disk scenario, unmounted when dropped, and a
//! filler file that takes every byte left on it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// A mounted tmpfs; unmounted (lazily if busy) on drop.
#[derive(Debug)]
pub struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    /// `mount -t tmpfs -o size=<size_mib>m`; fails where the sandbox does
    /// not allow mounting.
    pub fn mount(path: &Path, size_mib: u64) -> Result<Tmpfs> {
        std::fs::create_dir_all(path)?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_mib}m"), "tmpfs"])
            .arg(path)
            .output()
            .context("run mount")?;
        if !out.status.success() {
            bail!(
                "mount -t tmpfs: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(Tmpfs {
            path: path.to_path_buf(),
        })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.path)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let lazy = Command::new("umount").arg("-l").arg(&self.path).status();
            if !lazy.is_ok_and(|s| s.success()) {
                eprintln!("chaos: could not unmount {}", self.path.display());
            }
        }
    }
}

/// Writes `path` until the file system is full (a short write, then
/// ENOSPC); returns the bytes written.
pub fn fill(path: &Path) -> Result<u64> {
    let mut f = std::fs::File::create(path)?;
    let chunk = vec![0x5a_u8; 1 << 20];
    let mut written = 0u64;
    loop {
        match f.write(&chunk) {
            Ok(0) => break,
            Ok(n) => written += n as u64,
            Err(e) if e.raw_os_error() == Some(28) => break, // ENOSPC
            Err(e) => return Err(e).context("write the filler"),
        }
    }
    Ok(written)
}
