//! The kernel cache and the guard that keeps two runs out of it at once.
//!
//! Layout under the root (`--cache-dir`, else `$TAPMATRIX_CACHE`, else
//! `$XDG_CACHE_HOME/tapmatrix`, else `~/.cache/tapmatrix`):
//!
//! | path | what |
//! | --- | --- |
//! | `lock` | the guard file (holds the pid and command of the run that has it) |
//! | `apt/` | private apt state: `sources.list`, `lists/`, `archives/` (verified .debs) |
//! | `kernels/<id>/` | unpacked kernel: `vmlinuz`, `config`, `kernel.json` (local entries may add `vmlinux`, `System.map`) |
//! | `facts/<id>/` | harvested facts; `facts.json` there means harvested |
//! | `boots/<id>/` | console logs |
//! | `tmp/` | work in progress of the run holding the guard, emptied when a run takes it |
//!
//! Modules are not unpacked: the guest agent uses the built-in 8250 serial
//! port and needs none. A kernel that needs modules would add a `modules/`
//! part to the lock and the unpacking.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::Error;
use crate::lock::LockedKernel;
use crate::matrix::{KernelId, LocalSpec};

/// Environment variable naming the cache root.
pub const CACHE_ENV: &str = "TAPMATRIX_CACHE";

/// The cache root directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cache {
    root: PathBuf,
}

/// Where a fetched kernel came from, as recorded in `kernel.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// A locked Debian kernel: the lock entry it was fetched for.
    Debian(LockedKernel),
    /// Files copied from a local build tree.
    Local(LocalSpec),
}

/// A file in a kernel directory and its SHA256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRecord {
    /// File name inside `kernels/<id>/`.
    pub name: String,
    /// SHA256, lowercase hex.
    pub sha256: String,
}

/// `kernels/<id>/kernel.json`: what a kernel directory holds and where it
/// came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelRecord {
    /// The kernel's id.
    pub id: KernelId,
    /// The kernel release (`uname -r`): `6.1.0-40-amd64`.
    pub release: String,
    /// Where it came from.
    pub origin: Origin,
    /// The files unpacked or copied, with their SHA256.
    pub files: Vec<FileRecord>,
}

/// A kernel that is in the cache, ready to boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedKernel {
    /// The kernel's id.
    pub id: KernelId,
    /// The kernel release (`uname -r`).
    pub release: String,
    /// The bootable image.
    pub vmlinuz: PathBuf,
    /// The kernel config, when the source has one.
    pub config: Option<PathBuf>,
    /// The uncompressed vmlinux (local entries that name one).
    pub vmlinux: Option<PathBuf>,
    /// The System.map (local entries that name one).
    pub system_map: Option<PathBuf>,
    /// The full record from `kernel.json`.
    pub record: KernelRecord,
}

impl FetchedKernel {
    /// Builds the view of a kernel directory from its record.
    pub(crate) fn from_record(dir: &Path, record: KernelRecord) -> FetchedKernel {
        let file = |name: &str| {
            record
                .files
                .iter()
                .any(|file| file.name == name)
                .then(|| dir.join(name))
        };
        FetchedKernel {
            id: record.id.clone(),
            release: record.release.clone(),
            vmlinuz: dir.join(VMLINUZ),
            config: file(CONFIG),
            vmlinux: file(VMLINUX),
            system_map: file(SYSTEM_MAP),
            record,
        }
    }
}

/// File names inside `kernels/<id>/`.
pub(crate) const VMLINUZ: &str = "vmlinuz";
pub(crate) const CONFIG: &str = "config";
pub(crate) const VMLINUX: &str = "vmlinux";
pub(crate) const SYSTEM_MAP: &str = "System.map";
pub(crate) const KERNEL_JSON: &str = "kernel.json";

impl Cache {
    /// Opens (creating if needed) the cache at `root`.
    pub fn open(root: &Path) -> Result<Cache, Error> {
        std::fs::create_dir_all(root).map_err(|error| Error::io(root, error))?;
        Ok(Cache {
            root: root.to_owned(),
        })
    }

    /// Opens the cache the user asked for: `cli_override`, else
    /// `$TAPMATRIX_CACHE`, else `$XDG_CACHE_HOME/tapmatrix`, else
    /// `~/.cache/tapmatrix`.
    pub fn resolve(cli_override: Option<&Path>) -> Result<Cache, Error> {
        let non_empty = |name: &str| std::env::var_os(name).filter(|value| !value.is_empty());
        let root = if let Some(path) = cli_override {
            path.to_owned()
        } else if let Some(path) = non_empty(CACHE_ENV) {
            PathBuf::from(path)
        } else if let Some(path) = non_empty("XDG_CACHE_HOME") {
            PathBuf::from(path).join("tapmatrix")
        } else if let Some(home) = non_empty("HOME") {
            PathBuf::from(home).join(".cache").join("tapmatrix")
        } else {
            return Err(Error::NoCacheDir);
        };
        Cache::open(&root)
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `kernels/<id>/`: the unpacked kernel.
    pub fn kernel_dir(&self, id: &KernelId) -> PathBuf {
        self.root.join("kernels").join(id.as_str())
    }

    /// `facts/<id>/`: the harvested facts.
    pub fn facts_dir(&self, id: &KernelId) -> PathBuf {
        self.root.join("facts").join(id.as_str())
    }

    /// `boots/<id>/`: console logs.
    pub fn boots_dir(&self, id: &KernelId) -> PathBuf {
        self.root.join("boots").join(id.as_str())
    }

    /// `apt/`: the private apt state.
    pub fn apt_dir(&self) -> PathBuf {
        self.root.join("apt")
    }

    /// `tmp/`: work in progress (same file system, so renames are atomic).
    pub(crate) fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// The kernel in `kernels/<id>/`, if its `kernel.json` is there and
    /// readable. Needs no guard: directories appear by rename, whole.
    pub fn fetched(&self, id: &KernelId) -> Option<FetchedKernel> {
        let dir = self.kernel_dir(id);
        let text = std::fs::read_to_string(dir.join(KERNEL_JSON)).ok()?;
        let record: KernelRecord = serde_json::from_str(&text).ok()?;
        (record.id == *id).then(|| FetchedKernel::from_record(&dir, record))
    }

    /// Whether the kernel's facts have been harvested (`facts/<id>/facts.json`).
    pub fn harvested(&self, id: &KernelId) -> bool {
        self.facts_dir(id).join("facts.json").is_file()
    }

    /// Takes the cache for this run, or fails at once naming the run that
    /// holds it. Released when the guard drops (or the process dies).
    pub fn lock(&self) -> Result<CacheGuard<'_>, Error> {
        let path = self.root.join("lock");
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|error| Error::io(&path, error))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                // Best effort: the holder writes this right after locking.
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim().replace('\n', ", ");
                return Err(Error::CacheBusy {
                    root: self.root.clone(),
                    holder: if holder.is_empty() {
                        "holder unknown".to_owned()
                    } else {
                        holder
                    },
                });
            }
            Err(TryLockError::Error(error)) => return Err(Error::io(&path, error)),
        }
        let command: Vec<String> = std::env::args().collect();
        let stamp = format!(
            "pid {}\ncommand {}\n",
            std::process::id(),
            command.join(" ")
        );
        file.set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| file.write_all(stamp.as_bytes()))
            .map_err(|error| Error::io(&path, error))?;
        // Leftovers of a run that died: nobody else can be using them now.
        let tmp = self.tmp_dir();
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).map_err(|error| Error::io(&tmp, error))?;
        }
        Ok(CacheGuard {
            cache: self,
            _file: file,
        })
    }
}

/// Exclusive use of the cache by this run; writing into the cache needs one.
#[derive(Debug)]
pub struct CacheGuard<'a> {
    cache: &'a Cache,
    _file: File,
}

impl CacheGuard<'_> {
    /// The cache this guard holds.
    pub fn cache(&self) -> &Cache {
        self.cache
    }

    /// A new empty directory under the cache's `tmp/` (the cache's own file
    /// system, so that [`CacheGuard::install_dir`] is a rename). Removed on
    /// drop unless installed; the next guard holder empties `tmp/` anyway.
    pub fn work_dir(&self) -> Result<tempfile::TempDir, Error> {
        let tmp = self.cache.tmp_dir();
        std::fs::create_dir_all(&tmp).map_err(|error| Error::io(&tmp, error))?;
        tempfile::Builder::new()
            .prefix("work-")
            .tempdir_in(&tmp)
            .map_err(|error| Error::io(&tmp, error))
    }

    /// Renames a work directory to `target`, replacing a previous `target`
    /// (moved aside into `tmp/` first, then removed): readers see the old
    /// directory or the new one, never a half-written one.
    pub fn install_dir(&self, work: tempfile::TempDir, target: &Path) -> Result<(), Error> {
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(|error| Error::io(parent, error))?;
        }
        // Unique per call: threads of one process install at once (the
        // harvest stores kernels in parallel).
        static INSTALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let install = INSTALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let old = self
            .cache
            .tmp_dir()
            .join(format!("old-{}-{install}", std::process::id()));
        let had_old = target.exists();
        if had_old {
            std::fs::rename(target, &old).map_err(|error| Error::io(target, error))?;
        }
        let staged = work.keep();
        std::fs::rename(&staged, target).map_err(|error| Error::io(target, error))?;
        if had_old {
            std::fs::remove_dir_all(&old).map_err(|error| Error::io(&old, error))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_guard_fails_naming_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        let first = cache.lock().unwrap();
        let error = cache.lock().unwrap_err();
        let text = error.to_string();
        assert!(
            text.contains(&format!("pid {}", std::process::id())),
            "{text}"
        );
        assert!(text.contains("--cache-dir"), "{text}");
        drop(first);
        cache.lock().unwrap();
    }

    #[test]
    fn taking_the_guard_clears_leftover_work() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        std::fs::create_dir_all(cache.tmp_dir().join("half-done")).unwrap();
        let _guard = cache.lock().unwrap();
        assert!(!cache.tmp_dir().exists());
    }

    #[test]
    fn layout_and_fetched_state() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        let id = KernelId::try_from("6.1".to_owned()).unwrap();
        assert_eq!(cache.kernel_dir(&id), dir.path().join("kernels/6.1"));
        assert_eq!(cache.facts_dir(&id), dir.path().join("facts/6.1"));
        assert_eq!(cache.boots_dir(&id), dir.path().join("boots/6.1"));
        assert!(cache.fetched(&id).is_none());
        assert!(!cache.harvested(&id));
        let record = KernelRecord {
            id: id.clone(),
            release: "6.1.0-40-amd64".into(),
            origin: Origin::Local(LocalSpec {
                bzimage: "/b".into(),
                vmlinux: None,
                config: None,
                system_map: None,
            }),
            files: vec![FileRecord {
                name: VMLINUZ.into(),
                sha256: "00".into(),
            }],
        };
        std::fs::create_dir_all(cache.kernel_dir(&id)).unwrap();
        std::fs::write(
            cache.kernel_dir(&id).join(KERNEL_JSON),
            serde_json::to_string(&record).unwrap(),
        )
        .unwrap();
        let fetched = cache.fetched(&id).unwrap();
        assert_eq!(fetched.release, "6.1.0-40-amd64");
        assert_eq!(fetched.vmlinuz, cache.kernel_dir(&id).join("vmlinuz"));
        assert_eq!(fetched.config, None);
        std::fs::create_dir_all(cache.facts_dir(&id)).unwrap();
        std::fs::write(cache.facts_dir(&id).join("facts.json"), "{}").unwrap();
        assert!(cache.harvested(&id));
    }
}
