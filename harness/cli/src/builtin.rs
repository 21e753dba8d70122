//! The default kernel matrix, its lock and the tapset library, built into
//! the binary (see `build.rs`), so that `tapmatrix` works from any
//! directory. They are written out once per content into
//! `<cache>/builtin/<hash>/` (`kernels/matrix.yaml`, `kernels/matrix.lock`,
//! `tapsets/`), where the libraries read them as files. `--matrix FILE`
//! and `-I DIR` name others instead.

use std::path::PathBuf;

use anyhow::Context;
use tapmatrix_kernels::{Cache, write_atomic};

mod generated {
    include!(concat!(env!("OUT_DIR"), "/builtin.rs"));
}

/// The built-in files: path under the written-out root, content.
fn files() -> Vec<(String, &'static [u8])> {
    let mut files = vec![
        (
            "kernels/matrix.yaml".to_owned(),
            generated::MATRIX_YAML.as_bytes(),
        ),
        (
            "kernels/matrix.lock".to_owned(),
            generated::MATRIX_LOCK.as_bytes(),
        ),
    ];
    files.extend(
        generated::TAPSETS
            .iter()
            .map(|(path, bytes)| (format!("tapsets/{path}"), *bytes)),
    );
    files
}

/// Writes the built-in files into `cache` (once per content: each file
/// atomically, then a marker) and returns their root.
fn root(cache: &Cache) -> anyhow::Result<PathBuf> {
    // Hashed at build time (`build.rs`): hashing the files here cost more
    // than resolving a script.
    let dir = cache.root().join("builtin").join(generated::HASH);
    let complete = dir.join(".complete");
    if !complete.is_file() {
        let files = files();
        for (path, bytes) in &files {
            let target = dir.join(path);
            write_atomic(&target, bytes)
                .with_context(|| format!("writing {}", target.display()))?;
        }
        write_atomic(&complete, b"").with_context(|| format!("writing {}", complete.display()))?;
    }
    Ok(dir)
}

/// The built-in matrix (its lock beside it), written into `cache`.
pub fn matrix(cache: &Cache) -> anyhow::Result<PathBuf> {
    Ok(root(cache)?.join("kernels/matrix.yaml"))
}

/// The built-in tapset library, written into `cache`.
pub fn tapsets(cache: &Cache) -> anyhow::Result<PathBuf> {
    Ok(root(cache)?.join("tapsets"))
}

#[cfg(test)]
mod tests {
    use sha2::{Digest, Sha256};

    /// The hash `build.rs` computed is that of the files built in.
    #[test]
    fn the_build_time_hash_is_the_contents_hash() {
        let mut hasher = Sha256::new();
        for (path, bytes) in super::files() {
            hasher.update(path.as_bytes());
            hasher.update([0]);
            hasher.update((bytes.len() as u64).to_le_bytes());
            hasher.update(bytes);
        }
        let hash: String = hasher.finalize()[..8]
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect();
        assert_eq!(hash, super::generated::HASH);
    }
}
