//! `kernels/matrix.lock`: the matrix resolved to exact Debian packages,
//! versions and SHA256 sums. Committed, like Cargo.lock; written by
//! `tapmatrix kernels lock`, read by `fetch`.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::matrix::{DebianSpec, KernelId, KernelSource, LocalSpec, Matrix};
use crate::{Error, atomic_write};

/// The lock file's format number; bump on incompatible changes.
pub const LOCK_FORMAT: u32 = 1;

/// What a package holds that tapmatrix unpacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Part {
    /// The bootable image.
    Vmlinuz,
    /// The kernel's config.
    Config,
    /// The modules tree (`lib/modules/RELEASE/`: `kernel/**.ko[.xz|.zst]`,
    /// `modules.builtin`, `modules.order`...).
    Modules,
}

/// One exact Debian package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockedPackage {
    /// Package name.
    pub name: String,
    /// Exact version.
    pub version: String,
    /// Path in the archive (`pool/main/l/...deb`): its base name is the
    /// file apt downloads.
    pub filename: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA256 of the .deb, lowercase hex.
    pub sha256: String,
    /// What tapmatrix takes out of it.
    pub holds: Vec<Part>,
}

impl LockedPackage {
    /// The .deb's file name (base name of `filename`).
    pub fn deb_name(&self) -> &str {
        self.filename.rsplit('/').next().unwrap_or(&self.filename)
    }
}

/// One Debian kernel of the matrix, resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockedKernel {
    /// The kernel's id.
    pub id: KernelId,
    /// The matrix entry it was resolved from (a lock is stale when it differs).
    pub debian: DebianSpec,
    /// The `linux-image-*` package chosen as the newest of its series.
    pub image: String,
    /// Its version.
    pub version: String,
    /// The packages to download (the image's own, or for split images its
    /// `linux-binary-*` and `linux-base-*` dependencies).
    pub packages: Vec<LockedPackage>,
    /// The package holding the modules (`holds: [modules]`): the vmlinuz
    /// package itself up to 6.x, `linux-modules-RELEASE` from 7.0. `None`
    /// when the suite lacks it (said in `missing`). A separate field, not
    /// a part of `packages`, so that lock and cache records written before
    /// modules were fetched still read (and refetch once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modules: Option<Box<LockedPackage>>,
    /// Dependencies the suite lacks, and what is missing for it (e.g. no
    /// config when `linux-base-*` is gone from the suite).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<String>,
}

/// The whole lock file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lock {
    /// [`LOCK_FORMAT`].
    pub format: u32,
    /// The Debian kernels, in matrix order (local entries are not locked).
    pub kernels: Vec<LockedKernel>,
}

/// A kernel ready to fetch: a locked Debian kernel or a local entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockEntry {
    /// From the lock file.
    Debian(LockedKernel),
    /// From the matrix (nothing to lock).
    Local {
        /// Its id.
        id: KernelId,
        /// Its files.
        spec: LocalSpec,
    },
}

impl LockEntry {
    /// The kernel's id.
    pub fn id(&self) -> &KernelId {
        match self {
            LockEntry::Debian(locked) => &locked.id,
            LockEntry::Local { id, .. } => id,
        }
    }
}

impl Lock {
    /// Reads a lock file; a missing file says to run `tapmatrix kernels lock`.
    pub fn load(path: &Path) -> Result<Lock, Error> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NoLock {
                    path: path.to_owned(),
                });
            }
            Err(error) => return Err(Error::io(path, error)),
        };
        let lock: Lock = serde_json::from_str(&text).map_err(|error| Error::LockSyntax {
            path: path.to_owned(),
            line: error.line(),
            column: error.column(),
            message: error.to_string(),
        })?;
        if lock.format != LOCK_FORMAT {
            return Err(Error::LockSyntax {
                path: path.to_owned(),
                line: 1,
                column: 1,
                message: format!(
                    "lock format {} is not {LOCK_FORMAT}: run `tapmatrix kernels --matrix MATRIX lock` again",
                    lock.format
                ),
            });
        }
        Ok(lock)
    }

    /// Writes the lock file atomically (temp file + rename).
    pub fn save(&self, path: &Path) -> Result<(), Error> {
        let mut text = serde_json::to_string_pretty(self).map_err(|error| Error::Json {
            path: path.to_owned(),
            message: error.to_string(),
        })?;
        text.push('\n');
        atomic_write(path, text.as_bytes())
    }

    /// The locked kernel with this id.
    pub fn get(&self, id: &str) -> Option<&LockedKernel> {
        self.kernels.iter().find(|locked| locked.id.as_str() == id)
    }

    /// Joins the matrix with the lock: one entry per matrix kernel, in
    /// matrix order. A Debian entry missing from the lock, or locked from a
    /// different spec, is an error telling to re-lock.
    pub fn entries(&self, matrix: &Matrix) -> Result<Vec<LockEntry>, Error> {
        matrix
            .kernels
            .iter()
            .map(|entry| match &entry.source {
                KernelSource::Local(spec) => Ok(LockEntry::Local {
                    id: entry.id.clone(),
                    spec: spec.clone(),
                }),
                KernelSource::Debian(spec) => match self.get(entry.id.as_str()) {
                    Some(locked) if &locked.debian == spec => Ok(LockEntry::Debian(locked.clone())),
                    _ => Err(Error::StaleLock {
                        id: entry.id.clone(),
                        matrix: matrix.path.clone(),
                    }),
                },
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Lock {
        Lock {
            format: LOCK_FORMAT,
            kernels: vec![LockedKernel {
                id: KernelId::try_from("7.3".to_owned()).unwrap(),
                debian: DebianSpec {
                    suite: "trixie-backports".into(),
                    series: "7.3".into(),
                    flavour: "amd64".into(),
                },
                image: "linux-image-7.3.4+deb13-amd64".into(),
                version: "7.3.4-1~bpo13+1".into(),
                packages: vec![LockedPackage {
                    name: "linux-base-7.3.4+deb13-amd64".into(),
                    version: "7.3.4-1~bpo13+1".into(),
                    filename:
                        "pool/main/l/linux/linux-base-7.3.4+deb13-amd64_7.3.4-1~bpo13+1_amd64.deb"
                            .into(),
                    size: 1077476,
                    sha256: "00".repeat(32),
                    holds: vec![Part::Config],
                }],
                modules: None,
                missing: vec![],
            }],
        }
    }

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("matrix.lock");
        let lock = sample();
        lock.save(&path).unwrap();
        assert_eq!(Lock::load(&path).unwrap(), lock);
        assert_eq!(
            lock.kernels[0].packages[0].deb_name(),
            "linux-base-7.3.4+deb13-amd64_7.3.4-1~bpo13+1_amd64.deb"
        );
    }

    #[test]
    fn missing_and_broken_locks_say_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("matrix.lock");
        let error = Lock::load(&path).unwrap_err();
        assert!(
            error.to_string().contains("tapmatrix kernels --matrix"),
            "{error}"
        );
        std::fs::write(&path, "{\n  \"format\": 1,\n  \"kernels\": [x]\n}").unwrap();
        let error = Lock::load(&path).unwrap_err();
        assert!(error.to_string().contains("matrix.lock:3:"), "{error}");
    }

    #[test]
    fn entries_detect_a_stale_lock() {
        let lock = sample();
        let path = Path::new("/r/kernels/matrix.yaml");
        let fresh = Matrix::parse(
            "kernels:\n  - id: \"7.3\"\n    debian: { suite: trixie-backports, series: \"7.3\" }\n  - id: mine\n    local: { bzimage: /b }\n",
            path,
        )
        .unwrap();
        let entries = lock.entries(&fresh).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[1].id().as_str(), "mine");
        let stale = Matrix::parse(
            "kernels:\n  - id: \"7.3\"\n    debian: { suite: sid, series: \"7.3\" }\n",
            path,
        )
        .unwrap();
        let error = lock.entries(&stale).unwrap_err();
        assert!(
            error.to_string().contains("tapmatrix kernels --matrix"),
            "{error}"
        );
    }
}
