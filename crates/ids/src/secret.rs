//! The gateway's ID secret on disk: `<data_dir>/id_secret`.
//!
//! Precedence is the caller's business (config `general_settings.id_secret`,
//! then env `BATCHGATE_ID_SECRET`, then this file). The file holds the secret
//! as text — 64 lowercase hex characters and a newline when generated — and
//! the secret is the file's content with surrounding ASCII whitespace
//! trimmed. So pasting the file's content into the config or the env var
//! yields the *same* secret and keeps every outstanding ID valid.

use std::fs::{self, OpenOptions};
use std::io::{self, Write as _};
use std::path::Path;

use rand::rngs::OsRng;
use rand::RngCore as _;

use crate::hex;

/// File name of the secret inside the data directory.
pub const SECRET_FILE: &str = "id_secret";

/// Random bytes in a generated secret (stored as 64 hex characters).
pub const GENERATED_SECRET_BYTES: usize = 32;

/// Read `<data_dir>/id_secret`, or create it with a fresh random secret.
///
/// Creates `data_dir` (and parents) if needed. A new secret is
/// [`GENERATED_SECRET_BYTES`] bytes from the OS RNG, written hex-encoded to a
/// temporary file (mode 0600 on unix), fsynced, then published atomically
/// under its final name. Publishing never clobbers: if another process won
/// the race, its secret is read and returned instead, so concurrent
/// first starts agree on one secret.
///
/// Returns the secret bytes to pass to [`crate::IdCodec::new`].
///
/// # Errors
/// Any I/O error, and `InvalidData` if the file exists but is blank.
pub fn load_or_generate(data_dir: &Path) -> io::Result<Vec<u8>> {
    fs::create_dir_all(data_dir)?;
    let path = data_dir.join(SECRET_FILE);
    match fs::read(&path) {
        Ok(contents) => return parse(contents),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }

    let mut raw = [0u8; GENERATED_SECRET_BYTES];
    OsRng.try_fill_bytes(&mut raw).map_err(io::Error::other)?;
    let text = format!("{}\n", hex::encode(&raw));

    let mut nonce = [0u8; 8];
    OsRng.try_fill_bytes(&mut nonce).map_err(io::Error::other)?;
    let tmp = data_dir.join(format!(
        ".{SECRET_FILE}.{}.{}.tmp",
        std::process::id(),
        hex::encode(&nonce)
    ));
    if let Err(e) = write_private(&tmp, text.as_bytes()) {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    // A hard link publishes atomically *and* fails if the name exists; fall
    // back to rename on filesystems without hard links.
    let published = match fs::hard_link(&tmp, &path) {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            let _ = fs::remove_file(&tmp);
            return parse(fs::read(&path)?);
        }
        Err(_) => fs::rename(&tmp, &path),
        Ok(()) => Ok(()),
    };
    let _ = fs::remove_file(&tmp);
    published?;
    sync_dir(data_dir);
    parse(text.into_bytes())
}

fn parse(contents: Vec<u8>) -> io::Result<Vec<u8>> {
    let secret = contents.trim_ascii();
    if secret.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{SECRET_FILE} is empty"),
        ));
    }
    Ok(secret.to_vec())
}

fn write_private(path: &Path, contents: &[u8]) -> io::Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

/// Best effort: make the new directory entry durable.
fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    #[cfg(not(unix))]
    let _ = dir;
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn generates_once_then_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("nested/data");
        let first = load_or_generate(&data).unwrap();
        assert_eq!(first.len(), 2 * GENERATED_SECRET_BYTES);
        assert!(first.iter().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(load_or_generate(&data).unwrap(), first);
        let on_disk = fs::read(data.join(SECRET_FILE)).unwrap();
        assert_eq!(on_disk.trim_ascii(), &first[..]);
        // No temporary files left behind.
        let names: Vec<_> = fs::read_dir(&data)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from(SECRET_FILE)]);
        // Another data dir gets another secret.
        assert_ne!(load_or_generate(&dir.path().join("other")).unwrap(), first);
    }

    #[cfg(unix)]
    #[test]
    fn generated_file_is_private() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        load_or_generate(dir.path()).unwrap();
        let mode = fs::metadata(dir.path().join(SECRET_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn existing_file_is_trimmed_and_blank_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(SECRET_FILE), "  my-secret\n").unwrap();
        assert_eq!(load_or_generate(dir.path()).unwrap(), b"my-secret");
        fs::write(dir.path().join(SECRET_FILE), " \n").unwrap();
        let err = load_or_generate(dir.path()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn concurrent_first_starts_agree() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let p = path.clone();
                std::thread::spawn(move || load_or_generate(&p).unwrap())
            })
            .collect();
        let secrets: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        assert!(secrets.windows(2).all(|w| w[0] == w[1]));
    }
}
