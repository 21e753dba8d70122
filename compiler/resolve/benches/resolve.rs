//! The time to resolve the tapset library against every cached kernel,
//! facts loading and tapset parsing included, as `tapmatrix resolve` does
//! it (each file parsed once per distinct preprocessor outcome). Prints,
//! for each library, the median of five runs and its parts:
//!
//! ```text
//! TAPMATRIX_RESOLVE_FACTS=/path/to/cache/facts cargo bench -p tapmatrix-resolve
//! ```
//!
//! Three libraries: the repository's `tapsets/`, SystemTap's own tapset
//! directory alone (what `tapmatrix resolve DIR` resolves), and the two
//! together. SystemTap's is `$TAPMATRIX_SYSTEMTAP_TAPSETS` (`cargo xtask
//! systemtap` fetches the newest `systemtap-common` through the test
//! cache's private apt state and prints it), else Debian's 4.8 when the
//! syntax crate's `real_tapsets` test has fetched it into the target
//! directory. Each figure is printed with the run's peak memory (the
//! process's high-water mark, reset before the run) and the load average.
//!
//! Each timed run is a fresh process (this bench run again as a child),
//! as every `tapmatrix resolve` is: a run repeated in one process reuses
//! the memory the allocator gave back to the system after the last one,
//! faulting it in again page by page (90,000 faults where a fresh process
//! takes 600 huge-page faults), a cost no CLI run has. The in-process
//! figures are printed beside it, with facts loading and resolution apart.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)] // bench code

use std::path::{Path, PathBuf};

use criterion::{Criterion, criterion_group};
use rayon::prelude::*;
use std::time::{Duration, Instant};
use tapmatrix_facts::KernelFacts;

use tapmatrix_resolve::{Matrix, RowsOf, Sources, availability};

/// The allocator the `tapmatrix` binary uses.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn repo_tapsets() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tapsets")
}

/// SystemTap's tapset directory, when fetched.
fn debian_tapsets() -> Option<PathBuf> {
    let debian = std::env::var_os("TAPMATRIX_SYSTEMTAP_TAPSETS").map_or_else(
        || {
            Path::new(env!("CARGO_TARGET_TMPDIR"))
                .join("systemtap-common/root/usr/share/systemtap/tapset")
        },
        PathBuf::from,
    );
    debian.is_dir().then_some(debian)
}

/// A line of `/proc/self/status` in MB (`VmHWM`, `VmRSS`).
fn status_mb(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<f64>()
                .ok()
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Runs `f` once and returns its result with the process's peak memory
/// during it, and the resident memory before it, in MB (the high-water
/// mark is reset first: `/proc/self/clear_refs`).
fn peak_mb<T>(f: impl FnOnce() -> T) -> (T, f64, f64) {
    let before = status_mb("VmRSS");
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let result = f();
    (result, status_mb("VmHWM"), before)
}

fn kernel_dirs(root: &Path) -> Vec<(String, PathBuf)> {
    let mut dirs: Vec<(String, PathBuf)> = std::fs::read_dir(root)
        .expect("read the facts directory")
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.join(tapmatrix_facts::FACTS_FILE).is_file())
        .map(|path| {
            (
                path.file_name().unwrap().to_string_lossy().into_owned(),
                path,
            )
        })
        .collect();
    dirs.sort_by(|a, b| tapmatrix_syntax::profile::version_cmp(&a.0, &b.0));
    dirs
}

/// Loads every kernel's facts on rayon's threads (as `tapmatrix resolve`
/// does).
fn load_facts(kernels: &[(String, PathBuf)]) -> Vec<KernelFacts> {
    kernels
        .par_iter()
        .map(|(_, dir)| KernelFacts::load(dir).expect("load facts"))
        .collect()
}

/// The matrix of the library over the kernels, as `tapmatrix resolve` builds it.
fn build_matrix(kernels: &[(String, PathBuf)], facts: &[KernelFacts], sources: &Sources) -> Matrix {
    let inputs: Vec<(&str, &KernelFacts)> = kernels
        .iter()
        .zip(facts)
        .map(|((id, _), facts)| (id.as_str(), facts))
        .collect();
    availability(sources, &inputs, RowsOf::Aliases)
        .expect("resolve")
        .matrix
}

/// Loads every kernel's facts, parses the library, builds the matrix.
fn resolve_all(kernels: &[(String, PathBuf)], sources: &Sources) -> Matrix {
    build_matrix(kernels, &load_facts(kernels), sources)
}

/// The median of `runs` timings of `f`, and its last result.
fn median<T>(runs: usize, mut f: impl FnMut() -> T) -> (Duration, T) {
    let mut times = Vec::with_capacity(runs);
    let mut last = None;
    for _ in 0..runs {
        let start = Instant::now();
        last = Some(f());
        times.push(start.elapsed());
    }
    times.sort();
    (times[runs / 2], last.unwrap())
}

/// The child's environment variable: the library's directories, joined
/// with newlines.
const CHILD: &str = "TAPMATRIX_RESOLVE_BENCH_CHILD";

/// In a child: resolves the library once, then prints its time in
/// nanoseconds and the process's peak memory in MB.
fn child(dirs: &str) {
    let root = std::env::var_os("TAPMATRIX_RESOLVE_FACTS").expect("TAPMATRIX_RESOLVE_FACTS");
    let kernels = kernel_dirs(Path::new(&root));
    let sources = Sources {
        tapset_dirs: dirs.lines().map(PathBuf::from).collect(),
        script: None,
        script_text: None,
    };
    let start = Instant::now();
    drop(resolve_all(&kernels, &sources));
    let time = start.elapsed();
    println!("{} {}", time.as_nanos(), status_mb("VmHWM"));
}

/// One resolve of `dirs` in a fresh process: its time and peak memory.
fn fresh(dirs: &[PathBuf]) -> (Duration, f64) {
    let joined: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
    let output = std::process::Command::new(std::env::current_exe().expect("this bench"))
        .env(CHILD, joined.join("\n"))
        .stderr(std::process::Stdio::inherit())
        .output()
        .expect("run the bench's child");
    assert!(output.status.success(), "the bench's child failed");
    let text = String::from_utf8(output.stdout).expect("UTF-8");
    let mut fields = text.split_whitespace();
    let nanos: u64 = fields.next().and_then(|f| f.parse().ok()).expect("a time");
    let peak: f64 = fields.next().and_then(|f| f.parse().ok()).expect("a peak");
    (Duration::from_nanos(nanos), peak)
}

fn bench(c: &mut Criterion) {
    let Some(root) = std::env::var_os("TAPMATRIX_RESOLVE_FACTS") else {
        eprintln!(
            "skipped: set TAPMATRIX_RESOLVE_FACTS=/path/to/cache/facts (facts/<id>/ of each kernel)"
        );
        return;
    };
    let kernels = kernel_dirs(Path::new(&root));
    let mut libraries = vec![("repo_tapsets", vec![repo_tapsets()])];
    match debian_tapsets() {
        Some(debian) => {
            // SystemTap's library alone, as `tapmatrix resolve DIR` resolves it.
            libraries.push(("debian_tapsets", vec![debian.clone()]));
            libraries.push(("repo_and_debian_tapsets", vec![repo_tapsets(), debian]));
        }
        None => eprintln!(
            "SystemTap's tapsets not fetched (TAPMATRIX_SYSTEMTAP_TAPSETS=$(cargo xtask systemtap), or cargo test -p tapmatrix-syntax --test real_tapsets): repo tapsets only"
        ),
    }
    let mut group = c.benchmark_group("resolve_x_all_kernels");
    group.sample_size(10);
    for (name, dirs) in libraries {
        let sources = Sources {
            tapset_dirs: dirs.clone(),
            script: None,
            script_text: None,
        };
        // The figure: fresh processes, as `tapmatrix resolve` runs.
        let mut fresh_runs: Vec<(Duration, f64)> = (0..5).map(|_| fresh(&dirs)).collect();
        fresh_runs.sort_by_key(|&(time, _)| time);
        let (fresh_time, _) = fresh_runs[fresh_runs.len() / 2];
        let fresh_peak = fresh_runs.iter().map(|&(_, peak)| peak).fold(0.0, f64::max);
        // In one process, and where it goes: facts loading, then tapset
        // parsing and resolution.
        let ((_, matrix), peak, before) = peak_mb(|| median(1, || resolve_all(&kernels, &sources)));
        let (total, _) = median(5, || resolve_all(&kernels, &sources));
        let (facts_time, facts) = median(5, || load_facts(&kernels));
        let (matrix_time, _) = median(5, || build_matrix(&kernels, &facts, &sources));
        let cells = matrix.rows.len() * matrix.kernels.len();
        let unresolved = matrix
            .rows
            .iter()
            .flat_map(|row| &row.cells)
            .filter(|cell| cell.is_unresolved())
            .count();
        let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
        eprintln!(
            "{name}: {} kernels, {} aliases, {cells} cells, {unresolved} unresolved: \
             {} ms (median of 5 fresh processes), peak memory {fresh_peak:.0} MB; \
             repeated in one process {} ms (median of 5): facts {} ms, tapsets and matrix {} ms, \
             peak memory {peak:.0} MB ({before:.0} MB before); {} cores, load average {}",
            kernels.len(),
            matrix.rows.len(),
            fresh_time.as_millis(),
            total.as_millis(),
            facts_time.as_millis(),
            matrix_time.as_millis(),
            std::thread::available_parallelism().map_or(1, usize::from),
            load.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" "),
        );
        group.bench_function(name, |b| {
            b.iter_custom(|iters| (0..iters).map(|_| fresh(&dirs).0).sum())
        });
    }
    group.finish();
}

criterion_group!(benches, bench);

fn main() {
    if let Some(dirs) = std::env::var_os(CHILD) {
        child(&dirs.to_string_lossy());
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
