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

pub use apt::HostApt;
pub use cache::{CACHE_ENV, Cache, CacheGuard, FetchedKernel, FileRecord, KernelRecord, Origin};
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
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
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
    #[error("{} does not exist: run `tapmatrix kernels lock` first", path.display())]
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
    #[error("kernel `{id}` of {} is not in the lock or changed since: run `tapmatrix kernels lock`", matrix.display())]
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
    /// The host's apt sources name no Debian mirror.
    #[error(
        "cannot find the Debian archive in the host's apt sources: {detail}; tapmatrix takes the mirror URI from the entry for the host's own release"
    )]
    NoDebianMirror {
        /// What was missing.
        detail: String,
    },
    /// apt-get failed; its own words follow.
    #[error("{command} failed:\n{output}")]
    Apt {
        /// The command.
        command: String,
        /// apt's error lines.
        output: String,
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
        "checksum mismatch for {package} {version} ({}): the lock says sha256 {expected}, the file has {actual}. {}If Debian republished the package, run `tapmatrix kernels lock` again; otherwise the download was corrupt: run `tapmatrix kernels fetch` again.",
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

impl Error {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Error {
        Error::Io {
            path: path.to_owned(),
            source,
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

/// Writes a file atomically: a temp file in the same directory, renamed
/// over the target.
pub(crate) fn atomic_write(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|error| Error::io(dir, error))?;
    // Readable by all like any file we write (NamedTempFile's default is 0600).
    let mut file = tempfile::Builder::new()
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .tempfile_in(dir)
        .map_err(|error| Error::io(dir, error))?;
    file.write_all(bytes)
        .and_then(|()| file.as_file().sync_all())
        .map_err(|error| Error::io(path, error))?;
    file.persist(path)
        .map_err(|error| Error::io(path, error.error))?;
    Ok(())
}
