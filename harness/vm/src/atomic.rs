//! Atomic writes into the cache: a temporary file unique to the writer in
//! the target's directory, then a rename over the target. Readers see the
//! old file or the whole new one, and writers (threads or processes) never
//! share a temporary file.

use std::io::Write;
use std::path::Path;

/// Writes `bytes` to `path` atomically, creating its directory.
pub(crate) fn write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|dir| !dir.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut file = tempfile::Builder::new().prefix(".tmp-").tempfile_in(dir)?;
    file.write_all(bytes)?;
    file.persist(path).map_err(|error| error.error)?;
    Ok(())
}
