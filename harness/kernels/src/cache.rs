//! The kernel cache and the guard that lets runs share it.
//!
//! Layout under the root (`--cache-dir`, else `$TAPMATRIX_CACHE`, else
//! `$XDG_CACHE_HOME/tapmatrix`, else `~/.cache/tapmatrix`):
//!
//! | path | what |
//! | --- | --- |
//! | `lock` | the guard file (holds the pid and command of a run that has it alone) |
//! | `apt/` | private apt state: `sources.list`, `lists/`, `archives/` (verified .debs) |
//! | `kernels/<id>/` | unpacked kernel: `vmlinuz`, `config`, `kernel.json` (local entries may add `vmlinux`, `System.map`) |
//! | `facts/<id>/` | harvested facts; `facts.json` there means harvested |
//! | `boots/<id>/` | `harvest/` (the last harvest's raw files and console log), `runs/<run>/` (the console logs of recent runs) |
//! | `initramfs/`, `vmlinux/` | images by content hash |
//! | `tmp/` | work in progress, emptied when a run takes the cache alone |
//!
//! Sharing: a guard is shared ([`Cache::share`]) or exclusive
//! ([`Cache::lock`]). Every write lands whole (a unique temporary file or
//! work directory, then a rename), so runs, harvests and image builds share
//! the cache; only the private apt state needs it alone, and a shared guard
//! takes it alone just for that ([`CacheGuard::exclusively`]). A guard that
//! must wait for another run says so once on stderr, naming it.
//!
//! Modules are not unpacked: the guest agent uses the built-in 8250 serial
//! port and needs none. A kernel that needs modules would add a `modules/`
//! part to the lock and the unpacking.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Serialize};

use crate::Error;
use crate::lock::LockedKernel;
use crate::matrix::{KernelId, LocalSpec};

/// How old work under `tmp/` must be for a shared run that takes the cache
/// alone to remove it ([`Cache::lock`] removes all of it).
pub const STALE_WORK: std::time::Duration = std::time::Duration::from_secs(6 * 3600);

/// How many run directories [`Cache::run_dir`] keeps per kernel.
pub const RUNS_KEPT: usize = 20;

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
    /// The modules tree (`kernels/<id>/modules/`: what `lib/modules/RELEASE/`
    /// holds), when it was fetched.
    pub modules: Option<PathBuf>,
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
            modules: Some(dir.join(crate::deb::MODULES_DIR))
                .filter(|modules| modules.join("kernel").is_dir()),
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

    /// A new directory for one run's boots of kernel `id` (console logs),
    /// `boots/<id>/runs/<time since 1970>-<unique>/`, so that runs at
    /// the same time keep their own. The oldest are removed beyond the
    /// newest [`RUNS_KEPT`].
    pub fn run_dir(&self, id: &KernelId) -> Result<PathBuf, Error> {
        let runs = self.boots_dir(id).join("runs");
        std::fs::create_dir_all(&runs).map_err(|error| Error::io(&runs, error))?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let dir = tempfile::Builder::new()
            .prefix(&format!("{:012}.{:09}-", now.as_secs(), now.subsec_nanos()))
            .tempdir_in(&runs)
            .map_err(|error| Error::io(&runs, error))?
            .keep();
        let mut old: Vec<PathBuf> = std::fs::read_dir(&runs)
            .map_err(|error| Error::io(&runs, error))?
            .filter_map(|entry| entry.ok().map(|entry| entry.path()))
            .collect();
        old.sort();
        for stale in old.iter().rev().skip(RUNS_KEPT) {
            // Best effort: a run that started that long ago is over.
            let _ = std::fs::remove_dir_all(stale);
        }
        Ok(dir)
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

    /// Takes the cache alone (for the private apt state: `kernels lock`
    /// and `fetch`), waiting for other runs to leave it (said once on
    /// stderr). Leftover work of runs that died is removed. Released when
    /// the guard drops (or the process dies).
    pub fn lock(&self) -> Result<CacheGuard<'_>, Error> {
        let guard = self.take(true, true)?;
        guard.stamp()?;
        // Leftovers of a run that died: nobody else can be using them now.
        let tmp = self.tmp_dir();
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).map_err(|error| Error::io(&tmp, error))?;
        }
        Ok(guard)
    }

    /// Like [`Cache::lock`], but fails at once naming the run that holds
    /// the cache instead of waiting.
    pub fn try_lock(&self) -> Result<CacheGuard<'_>, Error> {
        let guard = self.take(true, false)?;
        guard.stamp()?;
        Ok(guard)
    }

    /// Shares the cache with other runs (runs, harvests, reading facts),
    /// waiting only while a run has it alone (said once on stderr).
    pub fn share(&self) -> Result<CacheGuard<'_>, Error> {
        self.take(false, true)
    }

    /// Opens the guard file and locks it (`exclusive` or shared), waiting
    /// if `wait`, else failing with [`Error::CacheBusy`].
    fn take(&self, exclusive: bool, wait: bool) -> Result<CacheGuard<'_>, Error> {
        let path = self.root.join("lock");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|error| Error::io(&path, error))?;
        lock_file(&file, &path, exclusive, wait, &self.root)?;
        Ok(CacheGuard {
            cache: self,
            file,
            exclusive: AtomicBool::new(exclusive),
        })
    }
}

/// Locks `file` (exclusive or shared); when another run is in the way,
/// waits (saying so once on stderr, naming it) or fails naming it.
fn lock_file(
    file: &File,
    path: &Path,
    exclusive: bool,
    wait: bool,
    root: &Path,
) -> Result<(), Error> {
    let attempt = if exclusive {
        file.try_lock()
    } else {
        file.try_lock_shared()
    };
    match attempt {
        Ok(()) => return Ok(()),
        Err(TryLockError::Error(error)) => return Err(Error::io(path, error)),
        Err(TryLockError::WouldBlock) => {}
    }
    let busy = Error::CacheBusy {
        root: root.to_path_buf(),
        holder: holder(path),
    };
    if !wait {
        return Err(busy);
    }
    if let Error::CacheBusy { holder, .. } = &busy {
        eprintln!(
            "tapmatrix: waiting for the cache {}: {holder} is using it",
            root.display()
        );
    }
    let locked = if exclusive {
        file.lock()
    } else {
        file.lock_shared()
    };
    locked.map_err(|error| Error::io(path, error))
}

/// Who holds the cache alone, as the holder wrote it in the guard file.
fn holder(path: &Path) -> String {
    let mut text = String::new();
    // Best effort: the holder writes this right after locking.
    let _ = File::open(path).and_then(|mut file| file.read_to_string(&mut text));
    let text = text.trim().replace('\n', ", ");
    if text.is_empty() {
        "another tapmatrix run".to_owned()
    } else {
        text
    }
}

/// Use of the cache by this run: shared, or alone ([`Cache::lock`]);
/// writing into the cache needs one.
#[derive(Debug)]
pub struct CacheGuard<'a> {
    cache: &'a Cache,
    file: File,
    exclusive: AtomicBool,
}

impl CacheGuard<'_> {
    /// The cache this guard holds.
    pub fn cache(&self) -> &Cache {
        self.cache
    }

    /// Whether this run has the cache alone right now.
    pub fn is_exclusive(&self) -> bool {
        self.exclusive.load(Ordering::SeqCst)
    }

    /// Takes `boots/<id>/` alone for a harvest of that kernel (its raw
    /// harvest is written in place, `boots/<id>/harvest/`, so that the
    /// console log an error names stays where it says), waiting for
    /// another run harvesting the same kernel. Released on drop.
    pub fn harvest_lock(&self, id: &KernelId) -> Result<HarvestLock, Error> {
        let dir = self.cache.boots_dir(id);
        std::fs::create_dir_all(&dir).map_err(|error| Error::io(&dir, error))?;
        let path = dir.join("harvest.lock");
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|error| Error::io(&path, error))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                eprintln!("tapmatrix: waiting for another run's harvest of kernel {id}");
                file.lock().map_err(|error| Error::io(&path, error))?;
            }
            Err(TryLockError::Error(error)) => return Err(Error::io(&path, error)),
        }
        Ok(HarvestLock { _file: file })
    }

    /// Runs `work` with the cache alone (for the private apt state): a
    /// shared guard waits for the other runs to leave, and shares again
    /// afterwards.
    pub fn exclusively<R>(&self, work: impl FnOnce() -> R) -> Result<R, Error> {
        if self.is_exclusive() {
            return Ok(work());
        }
        let path = self.cache.root.join("lock");
        // flock converts by releasing first: two shared holders asking at
        // once cannot deadlock.
        lock_file(&self.file, &path, true, true, &self.cache.root)?;
        self.exclusive.store(true, Ordering::SeqCst);
        self.stamp()?;
        self.remove_stale_work();
        let result = work();
        self.unstamp();
        self.exclusive.store(false, Ordering::SeqCst);
        self.file
            .lock_shared()
            .map_err(|error| Error::io(&path, error))?;
        Ok(result)
    }

    /// Removes work directories under `tmp/` that runs which died left
    /// there: those untouched for [`STALE_WORK`] (this run's own, and those
    /// of runs sharing the cache, are younger).
    fn remove_stale_work(&self) {
        let Ok(entries) = std::fs::read_dir(self.cache.tmp_dir()) else {
            return;
        };
        for entry in entries.flatten() {
            let stale = entry
                .metadata()
                .and_then(|metadata| metadata.modified())
                .ok()
                .and_then(|modified| modified.elapsed().ok())
                .is_some_and(|age| age > STALE_WORK);
            if stale {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }

    /// Writes who holds the cache alone into the guard file.
    fn stamp(&self) -> Result<(), Error> {
        let path = self.cache.root.join("lock");
        let command: Vec<String> = std::env::args().collect();
        let stamp = format!(
            "pid {}\ncommand {}\n",
            std::process::id(),
            command.join(" ")
        );
        let mut file = &self.file;
        file.set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| file.write_all(stamp.as_bytes()))
            .map_err(|error| Error::io(&path, error))
    }

    /// Empties the guard file when giving the cache back.
    fn unstamp(&self) {
        let _ = self.file.set_len(0);
    }

    /// A new empty directory under the cache's `tmp/` (the cache's own file
    /// system, so that [`CacheGuard::install_dir`] is a rename). Removed on
    /// drop unless installed; the next run that takes the cache alone
    /// empties `tmp/` anyway.
    pub fn work_dir(&self) -> Result<tempfile::TempDir, Error> {
        let tmp = self.cache.tmp_dir();
        std::fs::create_dir_all(&tmp).map_err(|error| Error::io(&tmp, error))?;
        tempfile::Builder::new()
            .prefix("work-")
            .tempdir_in(&tmp)
            .map_err(|error| Error::io(&tmp, error))
    }

    /// Renames a work directory to `target`, replacing a previous `target`
    /// in one step (the two are exchanged, then the old one is removed):
    /// readers see the old directory or the new one, never a half-written
    /// one, and two runs installing the same target at once both succeed
    /// (the last one's stays).
    pub fn install_dir(&self, work: tempfile::TempDir, target: &Path) -> Result<(), Error> {
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(|error| Error::io(parent, error))?;
        }
        let staged = work.keep();
        let mut tries = 0;
        loop {
            tries += 1;
            match std::fs::rename(&staged, target) {
                Ok(()) => return Ok(()),
                // A directory is there (rename only replaces an empty one):
                // exchange them, then remove the old one, now at `staged`.
                Err(error) if target.is_dir() && error.kind() != std::io::ErrorKind::NotFound => {
                    match rustix::fs::renameat_with(
                        rustix::fs::CWD,
                        &staged,
                        rustix::fs::CWD,
                        target,
                        rustix::fs::RenameFlags::EXCHANGE,
                    ) {
                        Ok(()) => {
                            return std::fs::remove_dir_all(&staged)
                                .map_err(|error| Error::io(&staged, error));
                        }
                        // Removed meanwhile by another installer: try again.
                        Err(rustix::io::Errno::NOENT) if tries < 5 => {}
                        Err(errno) => {
                            let _ = std::fs::remove_dir_all(&staged);
                            return Err(Error::io(target, errno.into()));
                        }
                    }
                }
                Err(error) => {
                    let _ = std::fs::remove_dir_all(&staged);
                    return Err(Error::io(target, error));
                }
            }
        }
    }
}

/// One kernel's harvest directory, held by this run ([`CacheGuard::harvest_lock`]).
#[derive(Debug)]
pub struct HarvestLock {
    _file: File,
}

impl Drop for CacheGuard<'_> {
    fn drop(&mut self) {
        if self.is_exclusive() {
            self.unstamp();
        }
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
        let error = cache.try_lock().unwrap_err();
        let text = error.to_string();
        assert!(
            text.contains(&format!("pid {}", std::process::id())),
            "{text}"
        );
        assert!(text.contains("--cache-dir"), "{text}");
        drop(first);
        cache.try_lock().unwrap();
    }

    #[test]
    fn runs_share_and_take_the_cache_alone_only_briefly() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        let first = cache.share().unwrap();
        let second = cache.share().unwrap();
        assert!(!first.is_exclusive());
        // Shared: no one has it alone.
        assert!(cache.try_lock().is_err());
        drop(second);
        let inside = first.exclusively(|| cache.try_lock().is_err()).unwrap();
        assert!(inside, "alone inside `exclusively`");
        assert!(!first.is_exclusive());
        // Shared again: another reader gets in.
        let _third = cache.share().unwrap();
        drop(first);
    }

    #[test]
    fn installs_replace_whole_directories_again_and_again() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        let guard = cache.share().unwrap();
        let target = dir.path().join("facts/6.1");
        std::thread::scope(|scope| {
            for round in 0..8 {
                let guard = &guard;
                let target = &target;
                scope.spawn(move || {
                    let work = guard.work_dir().unwrap();
                    std::fs::write(work.path().join("facts.json"), round.to_string()).unwrap();
                    guard.install_dir(work, target).unwrap();
                });
            }
        });
        let text = std::fs::read_to_string(target.join("facts.json")).unwrap();
        assert!(text.parse::<u32>().unwrap() < 8, "{text}");
        let left: Vec<_> = std::fs::read_dir(cache.tmp_dir()).unwrap().collect();
        assert!(left.is_empty(), "{left:?}");
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
        let first = cache.run_dir(&id).unwrap();
        assert_ne!(first, cache.run_dir(&id).unwrap(), "one per run");
        for _ in 0..RUNS_KEPT {
            cache.run_dir(&id).unwrap();
        }
        assert_eq!(
            std::fs::read_dir(cache.boots_dir(&id).join("runs"))
                .unwrap()
                .count(),
            RUNS_KEPT
        );
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
