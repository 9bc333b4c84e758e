//! The workspace's binaries, and cargo runs that do not disturb the build.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The workspace's root directory.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// Path of a workspace binary, built (debug profile) on first use.
pub fn binary(name: &str) -> PathBuf {
    static BUILT: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    let built = BUILT.get_or_init(|| {
        let status = cargo_command()
            .args([
                "build",
                "--quiet",
                "-p",
                "batchgate",
                "-p",
                "batchgate-mock-vllm",
            ])
            .status()
            .map_err(|e| e.to_string())?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("cargo build failed: {status}"))
        }
    });
    if let Err(e) = built {
        panic!("cannot build binaries: {e}");
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    target.join("debug").join(name)
}

/// `cargo`, run from the workspace root without the variables cargo sets
/// for a test binary (`CARGO_MANIFEST_DIR`, `CARGO_PKG_*`, ...): some build
/// scripts (ring's) rerun when those change, so inheriting them would make
/// every nested build, and the next plain one, recompile half the tree.
pub fn cargo_command() -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO"));
    cmd.current_dir(workspace_root());
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name.starts_with("CARGO_PKG_")
            || name.starts_with("CARGO_MANIFEST_")
            || name.starts_with("CARGO_BIN_")
            || [
                "CARGO_CRATE_NAME",
                "CARGO_PRIMARY_PACKAGE",
                "CARGO_TARGET_TMPDIR",
            ]
            .contains(&name.as_ref())
        {
            cmd.env_remove(name.as_ref());
        }
    }
    cmd
}
