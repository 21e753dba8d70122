//! Wall-clock figures for the kernel cache, against the real archive, into
//! a fresh temporary cache: `lock`, a cold `fetch` of the repository's
//! matrix (all seven kernels unless `TAPMATRIX_BENCH_IDS="6.1 7.3"`), and a
//! warm re-run (which must do no apt work).
//!
//! Run: `cargo bench -p tapmatrix-kernels --bench fetch_timing`
//! (downloads about 400 MB; not run by CI).

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use tapmatrix_kernels::{Cache, Fetcher, HostApt, Matrix, Progress, lock_matrix};

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("fetch_timing: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let matrix =
        Matrix::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../kernels/matrix.yaml"))?;
    let wanted: Vec<String> = std::env::var("TAPMATRIX_BENCH_IDS")
        .map(|ids| ids.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default();
    let dir = tempfile::tempdir()?;
    let cache = Cache::open(dir.path())?;
    let guard = cache.lock()?;

    let start = Instant::now();
    let lock = lock_matrix(&matrix, &guard, &HostApt::default(), &Progress::hidden())?;
    println!(
        "lock (cold cache):  {:>7.2} s",
        start.elapsed().as_secs_f64()
    );

    let entries: Vec<_> = lock
        .entries(&matrix)?
        .into_iter()
        .filter(|entry| wanted.is_empty() || wanted.iter().any(|id| id == entry.id().as_str()))
        .collect();
    // The first pass downloads and unpacks; the second must do no network work.
    for pass in ["cold", "warm"] {
        let start = Instant::now();
        let mut fetcher = Fetcher::new(
            &guard,
            matrix.suites(),
            HostApt::default(),
            Progress::hidden(),
        );
        for entry in &entries {
            fetcher.fetch(entry)?;
        }
        println!(
            "fetch {} kernels ({pass}): {:>7.3} s",
            entries.len(),
            start.elapsed().as_secs_f64()
        );
    }

    let start = Instant::now();
    lock_matrix(&matrix, &guard, &HostApt::default(), &Progress::hidden())?;
    println!(
        "lock (warm lists):  {:>7.2} s",
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
