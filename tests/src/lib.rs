//! End-to-end tests of tapmatrix: the kernel cache the tests share, filled
//! from the committed `kernels/matrix.lock` with the same code a user runs
//! (`tapmatrix kernels fetch` and `harvest`).

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use tapmatrix_harvest::{Harvested, harvest_kernels};
use tapmatrix_kernels::{
    Cache, FetchedKernel, Fetcher, HostApt, Lock, LockEntry, Matrix, Progress,
};
use tapmatrix_vm::VmOptions;

/// The kernel a test boots when any kernel of the matrix will do.
pub const DEFAULT_TEST_KERNEL: &str = "6.1";

/// Serialises this process's use of the cache guard (tests run in threads).
static CACHE_USE: Mutex<()> = Mutex::new(());

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// The cache the tests share: `$TAPMATRIX_TEST_CACHE`, else
/// `<target>/test-cache` (kept between runs, so kernels download once).
pub fn test_cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("TAPMATRIX_TEST_CACHE") {
        return PathBuf::from(dir);
    }
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
        .join("test-cache")
}

/// The default matrix, `kernels/matrix.yaml`.
pub fn default_matrix() -> Matrix {
    Matrix::load(&workspace_root().join("kernels/matrix.yaml"))
        .unwrap_or_else(|error| panic_with(format!("loading the matrix: {error}")))
}

/// Fetches the kernels `ids` of the default matrix into the test cache
/// (no network when they are there already) and returns them, in order.
pub fn fetched_kernels(ids: &[&str]) -> Vec<FetchedKernel> {
    let _one_at_a_time = CACHE_USE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let matrix = default_matrix();
    let lock = Lock::load(&matrix.lock_path())
        .unwrap_or_else(|error| panic_with(format!("loading the lock: {error}")));
    let entries: Vec<LockEntry> = lock
        .entries(&matrix)
        .unwrap_or_else(|error| panic_with(format!("reading the lock: {error}")));
    let cache = test_cache();
    let guard = cache
        .share()
        .unwrap_or_else(|error| panic_with(format!("taking the test cache: {error}")));
    let mut fetcher = Fetcher::new(
        &guard,
        matrix.suites(),
        HostApt::default().with_matrix(&matrix),
        Progress::stderr(),
    );
    ids.iter()
        .map(|id| {
            let entry = entries
                .iter()
                .find(|entry| entry.id().as_str() == *id)
                .unwrap_or_else(|| panic_with(format!("no kernel `{id}` in the lock")));
            fetcher
                .fetch(entry)
                .unwrap_or_else(|error| panic_with(format!("fetching kernel `{id}`: {error}")))
        })
        .collect()
}

/// A real kernel image of the matrix ([`DEFAULT_TEST_KERNEL`]) from the test cache.
pub fn test_kernel() -> PathBuf {
    fetched_kernels(&[DEFAULT_TEST_KERNEL])
        .into_iter()
        .next()
        .map(|kernel| kernel.vmlinuz)
        .unwrap_or_else(|| panic_with("no test kernel".to_owned()))
}

/// Fetches and harvests the kernels `ids` into the test cache (booting
/// only those without current facts); returns how each went, in order.
pub fn harvested_kernels(ids: &[&str]) -> Vec<(String, Harvested)> {
    let kernels = fetched_kernels(ids);
    let _one_at_a_time = CACHE_USE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let cache = test_cache();
    let guard = cache
        .share()
        .unwrap_or_else(|error| panic_with(format!("taking the test cache: {error}")));
    harvest_kernels(
        &guard,
        &kernels,
        &VmOptions::new(cache.root()),
        tapmatrix_vm::default_jobs(),
        false,
    )
    .into_iter()
    .map(|kernel| match kernel.outcome {
        Ok(harvested) => (kernel.id.to_string(), harvested),
        Err(error) => panic_with(format!("{error}")),
    })
    .collect()
}

/// The test cache, opened.
pub fn test_cache() -> Cache {
    Cache::open(&test_cache_dir())
        .unwrap_or_else(|error| panic_with(format!("opening the test cache: {error}")))
}

/// Test support fails the test that asked, with the reason.
#[allow(
    clippy::panic,
    reason = "test support: a missing kernel fails the test that asked"
)]
fn panic_with(message: String) -> ! {
    panic!("{message}")
}
