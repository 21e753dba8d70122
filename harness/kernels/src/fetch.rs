//! `tapmatrix kernels lock` and `fetch`: resolving the matrix against the
//! archive, and bringing kernels into the cache.
//!
//! Every write is atomic: .debs are downloaded into `tmp/`, checked against
//! the lock's SHA256 and renamed into `apt/archives/`; kernels are unpacked
//! into `tmp/` and renamed into `kernels/<id>/`. A kernel whose
//! `kernel.json` matches its lock entry (and whose files match their
//! recorded SHA256) is not touched: no apt-get at all. A kernel fetched
//! before the lock named its modules package differs from its lock entry
//! (no `modules`), so it is fetched again, once, with its modules.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use sha2::{Digest, Sha256};

use crate::apt::{AptState, HostApt};
use crate::cache::{
    CONFIG, CacheGuard, FetchedKernel, FileRecord, KERNEL_JSON, KernelRecord, Origin, SYSTEM_MAP,
    VMLINUX, VMLINUZ,
};
use crate::lock::{LOCK_FORMAT, Lock, LockEntry, LockedKernel, LockedPackage, Part};
use crate::matrix::{KernelId, KernelSource, LocalSpec, Matrix};
use crate::{Error, atomic_write, deb, resolve};

/// Progress display on stderr, so stdout stays clean for data: bars on a
/// terminal; elsewhere (a CI log) one line as each step starts.
#[derive(Debug, Clone)]
pub struct Progress {
    multi: MultiProgress,
    /// Print each step's line (stderr is not a terminal, and not hidden).
    lines: bool,
}

impl Progress {
    /// Bars on stderr.
    pub fn stderr() -> Progress {
        use std::io::IsTerminal;
        Progress {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            lines: !std::io::stderr().is_terminal(),
        }
    }

    /// No display (tests, `--quiet`).
    pub fn hidden() -> Progress {
        Progress {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::hidden()),
            lines: false,
        }
    }

    fn spinner(&self, message: String) -> ProgressBar {
        if self.lines {
            eprintln!("{message}");
        }
        let bar = self.multi.add(ProgressBar::new_spinner());
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg} [{elapsed}]")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_message(message);
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        bar
    }

    fn bytes(&self, length: u64, message: String) -> ProgressBar {
        if self.lines {
            eprintln!("{message}: downloading {} MB", length.div_ceil(1 << 20));
        }
        let bar = self.multi.add(ProgressBar::new(length));
        bar.set_style(
            ProgressStyle::with_template(
                "{msg:40} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.set_message(message);
        bar
    }
}

/// Resolves every Debian entry of the matrix to exact packages: prepares
/// the private apt state, runs `apt-get update`, reads each suite's index.
pub fn lock_matrix(
    matrix: &Matrix,
    guard: &CacheGuard<'_>,
    host: &HostApt,
    progress: &Progress,
) -> Result<Lock, Error> {
    guard.exclusively(|| lock_suites(matrix, guard, host, progress))?
}

/// [`lock_matrix`] with the cache alone.
fn lock_suites(
    matrix: &Matrix,
    guard: &CacheGuard<'_>,
    host: &HostApt,
    progress: &Progress,
) -> Result<Lock, Error> {
    let suites = matrix.suites();
    let mut kernels = Vec::new();
    if !suites.is_empty() {
        let host = host.clone().with_matrix(matrix);
        let apt = AptState::prepare(&guard.cache().apt_dir(), &suites, &host)?;
        let spinner = progress.spinner(format!("apt-get update ({})", suites.join(", ")));
        apt.update()?;
        spinner.set_message("reading the package indices");
        let indices = apt.read_indices(&suites)?;
        spinner.finish_and_clear();
        for entry in &matrix.kernels {
            if let KernelSource::Debian(spec) = &entry.source
                && let Some(index) = suites
                    .iter()
                    .position(|suite| *suite == spec.suite)
                    .and_then(|position| indices.get(position))
            {
                kernels.push(resolve::resolve(&entry.id, spec, index)?);
            }
        }
    }
    Ok(Lock {
        format: LOCK_FORMAT,
        kernels,
    })
}

/// Fetches kernels into a cache this run holds.
#[derive(Debug)]
pub struct Fetcher<'a> {
    guard: &'a CacheGuard<'a>,
    suites: Vec<String>,
    host: HostApt,
    progress: Progress,
    /// Prepared and updated on the first download only.
    apt: Option<AptState>,
}

impl<'a> Fetcher<'a> {
    /// A fetcher whose private sources list covers `suites` (pass every
    /// suite of the lock, so that fetching a few kernels does not drop the
    /// other suites' lists).
    pub fn new(
        guard: &'a CacheGuard<'a>,
        suites: Vec<String>,
        host: HostApt,
        progress: Progress,
    ) -> Fetcher<'a> {
        Fetcher {
            guard,
            suites,
            host,
            progress,
            apt: None,
        }
    }

    /// Brings one kernel into the cache and returns it. A Debian kernel
    /// already there as locked costs nothing; any other fetch takes the
    /// cache alone while it works ([`CacheGuard::exclusively`]).
    pub fn fetch(&mut self, entry: &LockEntry) -> Result<FetchedKernel, Error> {
        if let LockEntry::Debian(locked) = entry
            && let Some(fetched) = self.current(locked)
        {
            return Ok(fetched);
        }
        let guard = self.guard;
        guard.exclusively(|| match entry {
            LockEntry::Debian(locked) => self.fetch_debian(locked),
            LockEntry::Local { id, spec } => self.fetch_local(id, spec),
        })?
    }

    /// The kernel in the cache, if it is the locked one and intact.
    fn current(&self, locked: &LockedKernel) -> Option<FetchedKernel> {
        let cache = self.guard.cache();
        cache.fetched(&locked.id).filter(|fetched| {
            fetched.record.origin == Origin::Debian(locked.clone())
                && files_intact(&cache.kernel_dir(&locked.id), &fetched.record)
                && modules_intact(locked, fetched)
        })
    }

    fn fetch_debian(&mut self, locked: &LockedKernel) -> Result<FetchedKernel, Error> {
        // Again, now alone: another run may have fetched it meanwhile.
        if let Some(fetched) = self.current(locked) {
            return Ok(fetched);
        }
        let origin = Origin::Debian(locked.clone());
        // One pass over each .deb for all it holds: up to 6.x the image
        // package holds the modules too.
        let mut debs: Vec<(PathBuf, Vec<Part>)> = Vec::new();
        for package in locked.packages.iter().chain(locked.modules.as_deref()) {
            let deb = self.verified_deb(&locked.id, package)?;
            match debs.iter_mut().find(|(path, _)| *path == deb) {
                Some((_, holds)) => holds.extend(package.holds.iter().copied()),
                None => debs.push((deb, package.holds.clone())),
            }
        }
        let work = self.guard.work_dir()?;
        let spinner = self.progress.spinner(format!("{}: unpacking", locked.id));
        let mut release: Option<String> = None;
        for (deb, holds) in &debs {
            let unpacked = deb::unpack(deb, holds, work.path())?;
            match (&release, unpacked.release) {
                (Some(known), Some(found)) if *known != found => {
                    return Err(Error::BadDeb {
                        path: deb.clone(),
                        detail: format!("is for release {found}, the other package for {known}"),
                    });
                }
                (None, found) => release = found,
                _ => {}
            }
        }
        spinner.finish_and_clear();
        let release = release.unwrap_or_default();
        self.install(work, &locked.id, release, origin)
    }

    fn fetch_local(&mut self, id: &KernelId, spec: &LocalSpec) -> Result<FetchedKernel, Error> {
        let work = self.guard.work_dir()?;
        let copies = [
            (Some(&spec.bzimage), VMLINUZ),
            (spec.vmlinux.as_ref(), VMLINUX),
            (spec.config.as_ref(), CONFIG),
            (spec.system_map.as_ref(), SYSTEM_MAP),
        ];
        for (source, name) in copies {
            if let Some(source) = source {
                std::fs::copy(source, work.path().join(name)).map_err(|error| {
                    Error::LocalFile {
                        id: id.clone(),
                        path: source.clone(),
                        source: error,
                    }
                })?;
            }
        }
        let image = std::fs::read(work.path().join(VMLINUZ))
            .map_err(|error| Error::io(&spec.bzimage, error))?;
        let release = bzimage_release(&image).ok_or_else(|| Error::NotABzImage {
            id: id.clone(),
            path: spec.bzimage.clone(),
        })?;
        self.install(work, id, release, Origin::Local(spec.clone()))
    }

    /// Records the files of a work directory in `kernel.json` and renames
    /// it into `kernels/<id>/`.
    fn install(
        &self,
        work: tempfile::TempDir,
        id: &KernelId,
        release: String,
        origin: Origin,
    ) -> Result<FetchedKernel, Error> {
        let mut files = Vec::new();
        for name in [VMLINUZ, CONFIG, VMLINUX, SYSTEM_MAP] {
            let path = work.path().join(name);
            if path.is_file() {
                files.push(FileRecord {
                    name: name.to_owned(),
                    sha256: sha256_file(&path)?,
                });
            }
        }
        let record = KernelRecord {
            id: id.clone(),
            release,
            origin,
            files,
        };
        let json_path = work.path().join(KERNEL_JSON);
        let json = serde_json::to_string_pretty(&record).map_err(|error| Error::Json {
            path: json_path.clone(),
            message: error.to_string(),
        })?;
        atomic_write(&json_path, json.as_bytes())?;
        let cache = self.guard.cache();
        let target = cache.kernel_dir(id);
        self.guard.install_dir(work, &target)?;
        Ok(FetchedKernel::from_record(&target, record))
    }

    /// The package's .deb in `apt/archives/`, downloaded if missing, always
    /// checked against the lock. A file that does not match is removed.
    fn verified_deb(&mut self, id: &KernelId, package: &LockedPackage) -> Result<PathBuf, Error> {
        let archives = self.guard.cache().apt_dir().join("archives");
        let path = archives.join(package.deb_name());
        if !path.is_file() {
            let apt = self.apt()?;
            let download = self.guard.work_dir()?;
            let bar = self
                .progress
                .bytes(package.size, format!("{id}: {}", package.name));
            let deb = apt.download(package, download.path(), &bar)?;
            bar.finish_and_clear();
            verify(&deb, package)?;
            std::fs::create_dir_all(&archives).map_err(|error| Error::io(&archives, error))?;
            std::fs::rename(&deb, &path).map_err(|error| Error::io(&path, error))?;
            return Ok(path);
        }
        verify(&path, package)?;
        Ok(path)
    }

    /// The private apt state, prepared and updated once per fetcher.
    fn apt(&mut self) -> Result<AptState, Error> {
        if let Some(apt) = &self.apt {
            return Ok(apt.clone());
        }
        let apt = AptState::prepare(&self.guard.cache().apt_dir(), &self.suites, &self.host)?;
        let spinner = self
            .progress
            .spinner(format!("apt-get update ({})", self.suites.join(", ")));
        apt.update()?;
        spinner.finish_and_clear();
        self.apt = Some(apt.clone());
        Ok(apt)
    }
}

/// Checks a .deb against the lock; removes it on a mismatch.
fn verify(path: &Path, package: &LockedPackage) -> Result<(), Error> {
    let actual = sha256_file(path)?;
    if actual == package.sha256 {
        return Ok(());
    }
    let removed = std::fs::remove_file(path).is_ok();
    Err(Error::ChecksumMismatch {
        package: package.name.clone(),
        version: package.version.clone(),
        path: path.to_owned(),
        expected: package.sha256.clone(),
        actual,
        removed,
    })
}

/// Whether the modules tree the lock names is there: its modules, and the
/// lists beside them (`modules.order`...) where the config's package holds
/// them (a tree fetched before they were taken with the config lacks them).
fn modules_intact(locked: &LockedKernel, fetched: &FetchedKernel) -> bool {
    let Some(package) = &locked.modules else {
        return true;
    };
    let Some(tree) = &fetched.modules else {
        return false;
    };
    let split_config = locked
        .packages
        .iter()
        .any(|p| p.holds.contains(&Part::Config) && p.name != package.name);
    !split_config || tree.join("modules.order").is_file()
}

/// Whether every file of a kernel record is there with its SHA256.
fn files_intact(dir: &Path, record: &KernelRecord) -> bool {
    record.files.iter().any(|file| file.name == VMLINUZ)
        && record
            .files
            .iter()
            .all(|file| sha256_file(&dir.join(&file.name)).is_ok_and(|sha| sha == file.sha256))
}

/// SHA256 of a file, lowercase hex.
pub fn sha256_file(path: &Path) -> Result<String, Error> {
    let mut file = File::open(path).map_err(|error| Error::io(path, error))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 16];
    loop {
        let read = file
            .read(&mut buffer)
            .map_err(|error| Error::io(path, error))?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect())
}

/// The release string in an x86 bzImage's setup header (what `file`
/// prints as "version"): the header's `kernel_version` field points at
/// `"6.1.0-40-amd64 (debian-kernel@...) #1 SMP ..."`.
pub fn bzimage_release(image: &[u8]) -> Option<String> {
    if image.get(0x202..0x206)? != b"HdrS" {
        return None;
    }
    let field = image.get(0x20e..0x210)?;
    let offset = u16::from_le_bytes([field[0], field[1]]);
    if offset == 0 {
        return None;
    }
    let start = 0x200 + usize::from(offset);
    let text = image.get(start..)?;
    let end = text.iter().position(|&byte| byte == 0 || byte == b' ')?;
    let release = std::str::from_utf8(&text[..end]).ok()?;
    (!release.is_empty()).then(|| release.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_bzimage(release: &str) -> Vec<u8> {
        let mut image = vec![0u8; 0x400];
        image[0x202..0x206].copy_from_slice(b"HdrS");
        let offset: u16 = 0x100;
        image[0x20e..0x210].copy_from_slice(&offset.to_le_bytes());
        let text = format!("{release} (someone@host) #1 SMP\0");
        image[0x300..0x300 + text.len()].copy_from_slice(text.as_bytes());
        image
    }

    #[test]
    fn bzimage_release_from_the_header() {
        assert_eq!(
            bzimage_release(&fake_bzimage("7.3.0-rc1+")).as_deref(),
            Some("7.3.0-rc1+")
        );
        assert_eq!(bzimage_release(b"not a kernel"), None);
        assert_eq!(bzimage_release(&vec![0u8; 0x400]), None);
    }

    #[test]
    fn a_corrupted_file_is_a_mismatch_and_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p_1_amd64.deb");
        std::fs::write(&path, b"the real bytes").unwrap();
        let package = LockedPackage {
            name: "p".into(),
            version: "1".into(),
            filename: "pool/p_1_amd64.deb".into(),
            size: 14,
            sha256: sha256_file(&path).unwrap(),
            holds: vec![],
        };
        verify(&path, &package).unwrap();
        std::fs::write(&path, b"the real bytez").unwrap();
        let error = verify(&path, &package).unwrap_err();
        let text = error.to_string();
        assert!(text.contains(&package.sha256), "{text}");
        assert!(text.contains("p 1"), "{text}");
        assert!(
            text.contains("tapmatrix kernels --matrix MATRIX lock"),
            "{text}"
        );
        assert!(!path.exists());
    }

    #[test]
    fn local_entries_are_copied_with_their_release() {
        let dir = tempfile::tempdir().unwrap();
        let tree = dir.path().join("tree");
        std::fs::create_dir(&tree).unwrap();
        std::fs::write(tree.join("bzImage"), fake_bzimage("7.4.0-rc2-dev")).unwrap();
        std::fs::write(tree.join(".config"), "CONFIG_FTRACE=y\n").unwrap();
        let cache = crate::Cache::open(&dir.path().join("cache")).unwrap();
        let guard = cache.lock().unwrap();
        let mut fetcher = Fetcher::new(&guard, Vec::new(), HostApt::default(), Progress::hidden());
        let id = KernelId::try_from("mine".to_owned()).unwrap();
        let spec = LocalSpec {
            bzimage: tree.join("bzImage"),
            vmlinux: None,
            config: Some(tree.join(".config")),
            system_map: None,
        };
        let fetched = fetcher
            .fetch(&LockEntry::Local {
                id: id.clone(),
                spec: spec.clone(),
            })
            .unwrap();
        assert_eq!(fetched.release, "7.4.0-rc2-dev");
        assert_eq!(
            std::fs::read_to_string(fetched.config.as_ref().unwrap()).unwrap(),
            "CONFIG_FTRACE=y\n"
        );
        assert_eq!(cache.fetched(&id), Some(fetched.clone()));
        assert_eq!(
            fetched.record.files[0].sha256,
            sha256_file(&tree.join("bzImage")).unwrap()
        );

        let missing = LocalSpec {
            bzimage: tree.join("nope"),
            ..spec
        };
        let error = fetcher
            .fetch(&LockEntry::Local {
                id: id.clone(),
                spec: missing,
            })
            .unwrap_err();
        assert!(error.to_string().contains("nope"), "{error}");
        assert!(error.is_input());
        // The earlier fetch is still whole.
        assert_eq!(cache.fetched(&id), Some(fetched));
    }
}
