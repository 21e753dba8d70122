//! The kernel matrix: `kernels/matrix.yaml`, its lock file, fetching Debian
//! kernel packages with a private apt state, and the kernel cache.
//!
//! - [`Matrix::load`] parses matrix.yaml into typed entries.
//! - [`lock_matrix`] resolves it to exact packages ([`Lock`], saved as
//!   matrix.lock); [`Lock::entries`] joins the two for fetching.
//! - [`Cache`] is the cache root and layout; [`Cache::lock`] guards it;
//!   [`Fetcher::fetch`] (or [`fetch`]) brings a kernel in;
//!   [`Cache::fetched`] reads back what is there.

mod apt;
mod cache;
mod deb;
mod deb822;
mod fetch;
mod lock;
mod matrix;
mod package;
mod resolve;
mod sources;

use std::path::{Path, PathBuf};

pub use apt::{DEBIAN_KEYRING, DebianArchive, HostApt, KEYRING_ENV, MIRROR_ENV, apt_words};
pub use cache::{
    CACHE_ENV, Cache, CacheGuard, FetchedKernel, FileRecord, HarvestLock, KernelRecord, Origin,
};
pub use deb::unpack_all as unpack_deb;
pub use fetch::{Fetcher, Progress, bzimage_release, lock_matrix, sha256_file};
pub use lock::{LOCK_FORMAT, Lock, LockEntry, LockedKernel, LockedPackage, Part};
pub use matrix::{DebianSpec, KernelId, KernelSource, LocalSpec, Matrix, MatrixEntry};
pub use package::fetch_package;

/// Fetches one kernel into the cache held by `guard`: the one-call form of
/// [`Fetcher`] (use a `Fetcher` to fetch several with one `apt-get update`).
pub fn fetch(
    entry: &LockEntry,
    guard: &CacheGuard<'_>,
    progress: Progress,
) -> Result<FetchedKernel, Error> {
    let suites = match entry {
        LockEntry::Debian(locked) => vec![locked.debian.suite.clone()],
        LockEntry::Local { .. } => Vec::new(),
    };
    Fetcher::new(guard, suites, HostApt::default(), progress).fetch(entry)
}

/// Everything that can go wrong here. [`Error::is_input`] tells the user's
/// mistakes (exit 2) from infrastructure failures (exit 3).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written.
    #[error("{}: {error}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why (part of the message, so not also a `source`: error chains
        /// would say it twice).
        error: std::io::Error,
    },
    /// matrix.yaml is malformed.
    #[error("{}:{line}:{column}: {message}", path.display())]
    Matrix {
        /// The file.
        path: PathBuf,
        /// 1-based line (0 when unknown).
        line: u64,
        /// 1-based column (0 when unknown).
        column: u64,
        /// What is wrong.
        message: String,
    },
    /// There is no lock file yet.
    #[error("{} does not exist: run `tapmatrix kernels --matrix MATRIX lock` first (MATRIX: the matrix beside it)", path.display())]
    NoLock {
        /// Where it was looked for.
        path: PathBuf,
    },
    /// The lock file is malformed.
    #[error("{}:{line}:{column}: {message} (the lock is written by `tapmatrix kernels lock`: run it again rather than editing)", path.display())]
    LockSyntax {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// JSON could not be written.
    #[error("{}: {message}", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// A Debian entry of the matrix is not in the lock, or was locked from
    /// a different entry.
    #[error("kernel `{id}` of {} is not in the lock or changed since: run `tapmatrix kernels --matrix {} lock`", matrix.display(), matrix.display())]
    StaleLock {
        /// The kernel.
        id: KernelId,
        /// The matrix file.
        matrix: PathBuf,
    },
    /// No package fits a Debian entry.
    #[error("kernel `{id}` (suite {suite}): {detail}")]
    Resolve {
        /// The kernel.
        id: KernelId,
        /// Its suite.
        suite: String,
        /// What is missing.
        detail: String,
    },
    /// No Debian archive is named and the host's apt sources have none.
    #[error(
        "cannot find a Debian archive to fetch kernels from: {detail}. Name one with {MIRROR_ENV}=URI, or `debian_archive: {{uri: URI}}` in the matrix (the host's own apt sources are used when they list its Debian release)"
    )]
    NoDebianMirror {
        /// What was missing.
        detail: String,
    },
    /// A Debian archive was named without a keyring to verify it, and the
    /// host has no `debian-archive-keyring`.
    #[error(
        "the Debian archive {uri} needs a keyring to verify it, and {DEBIAN_KEYRING} is not here: install the package debian-archive-keyring, or name a keyring file with {KEYRING_ENV}=FILE (or `keyring:` under `debian_archive:` in the matrix)"
    )]
    NoDebianKeyring {
        /// The archive.
        uri: String,
    },
    /// apt-get failed: what we were doing, in one sentence, then apt's own
    /// error and warning lines.
    #[error("{what} (`{command}` failed){}", apt_detail(.detail))]
    Apt {
        /// What failed, in our words.
        what: String,
        /// The command.
        command: String,
        /// apt's `E:`/`W:`/`Err:` lines (else its last lines).
        detail: String,
    },
    /// Another run holds the cache.
    #[error("the cache {} is in use by another tapmatrix run ({holder}): wait for it to finish, or use another --cache-dir", root.display())]
    CacheBusy {
        /// The cache root.
        root: PathBuf,
        /// Who holds it: pid and command.
        holder: String,
    },
    /// No cache directory could be chosen.
    #[error("no cache directory: set --cache-dir, TAPMATRIX_CACHE, XDG_CACHE_HOME or HOME")]
    NoCacheDir,
    /// A .deb does not match the lock's SHA256.
    #[error(
        "checksum mismatch for {package} {version} ({}): the lock says sha256 {expected}, the file has {actual}. {}If Debian republished the package, run `tapmatrix kernels --matrix MATRIX lock` again; otherwise the download was corrupt: run `tapmatrix kernels fetch` again.",
        path.display(),
        if *removed { "The file was removed. " } else { "The file could not be removed: delete it. " }
    )]
    ChecksumMismatch {
        /// The package.
        package: String,
        /// Its version.
        version: String,
        /// The file checked.
        path: PathBuf,
        /// SHA256 from the lock.
        expected: String,
        /// SHA256 of the file.
        actual: String,
        /// Whether the bad file was removed.
        removed: bool,
    },
    /// A .deb does not hold what the lock says it does.
    #[error("{}: {detail}", path.display())]
    BadDeb {
        /// The .deb.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// A local entry's file could not be copied.
    #[error("kernel `{id}`: cannot copy {}: {source}", path.display())]
    LocalFile {
        /// The kernel.
        id: KernelId,
        /// The file named in matrix.yaml.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A local entry's bzimage is not an x86 bzImage.
    #[error("kernel `{id}`: {} is not an x86 bzImage (no setup header with a version string)", path.display())]
    NotABzImage {
        /// The kernel.
        id: KernelId,
        /// The file.
        path: PathBuf,
    },
}

/// apt's lines after our sentence, indented, or nothing.
fn apt_detail(detail: &str) -> String {
    if detail.trim().is_empty() {
        return String::new();
    }
    let lines: Vec<String> = detail.lines().map(|line| format!("\n  {line}")).collect();
    format!("; apt said:{}", lines.join(""))
}

impl Error {
    pub(crate) fn no_mirror(detail: String) -> Error {
        Error::NoDebianMirror { detail }
    }

    pub(crate) fn io(path: &Path, source: std::io::Error) -> Error {
        Error::Io {
            path: path.to_owned(),
            error: source,
        }
    }

    /// Whether the user's input is at fault (matrix, lock, ids, local
    /// files), as opposed to the network, apt, the disk or a held cache.
    pub fn is_input(&self) -> bool {
        matches!(
            self,
            Error::Matrix { .. }
                | Error::NoLock { .. }
                | Error::LockSyntax { .. }
                | Error::StaleLock { .. }
                | Error::Resolve { .. }
                | Error::LocalFile { .. }
                | Error::NotABzImage { .. }
        )
    }
}

/// Writes a file atomically: a temporary file unique to this writer in the
/// same directory (created if missing), renamed over the target. Readers
/// see the old file or the whole new one; writers (threads or processes)
/// never share a temporary file. Every write into the cache goes this way
/// or through a work directory installed whole ([`CacheGuard::install_dir`]).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path
        .parent()
        .filter(|dir| !dir.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    // Readable by all like any file we write (NamedTempFile's default is 0600).
    let mut file = tempfile::Builder::new()
        .prefix(".tmp-")
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .tempfile_in(dir)?;
    file.write_all(bytes)?;
    file.as_file().sync_all()?;
    file.persist(path).map_err(|error| error.error)?;
    Ok(())
}

/// [`write_atomic`] with the cache's error.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    write_atomic(path, bytes).map_err(|error| Error::io(path, error))
}
