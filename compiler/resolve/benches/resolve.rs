//! The time to resolve the tapset library against every cached kernel,
//! facts loading and tapset parsing included, as `tapmatrix resolve` does
//! it (each file parsed once per distinct preprocessor outcome). Prints,
//! for each library, the median of five runs and its parts:
//!
//! ```text
//! TAPMATRIX_RESOLVE_FACTS=/path/to/cache/facts cargo bench -p tapmatrix-resolve
//! ```
//!
//! Two libraries: the repository's `tapsets/`, and with it Debian's
//! SystemTap 4.8 tapset directory when the syntax crate's `real_tapsets`
//! test has fetched it into the target directory.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)] // bench code

use std::path::{Path, PathBuf};

use criterion::{Criterion, criterion_group, criterion_main};
use std::time::{Duration, Instant};
use tapmatrix_facts::KernelFacts;

use tapmatrix_resolve::{Matrix, RowsOf, Sources, availability};

fn repo_tapsets() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tapsets")
}

/// Debian's SystemTap tapset directory, when fetched.
fn debian_tapsets() -> Option<PathBuf> {
    let debian = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("systemtap-common/root/usr/share/systemtap/tapset");
    debian.is_dir().then_some(debian)
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

/// Loads every kernel's facts.
fn load_facts(kernels: &[(String, PathBuf)]) -> Vec<KernelFacts> {
    kernels
        .iter()
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
        Some(debian) => libraries.push(("repo_and_debian_tapsets", vec![repo_tapsets(), debian])),
        None => eprintln!(
            "Debian's tapsets not fetched (cargo test -p tapmatrix-syntax --test real_tapsets): repo tapsets only"
        ),
    }
    let mut group = c.benchmark_group("resolve_x_all_kernels");
    group.sample_size(10);
    for (name, dirs) in libraries {
        let sources = Sources {
            tapset_dirs: dirs,
            script: None,
            script_text: None,
        };
        // The figure, and where it goes: facts loading, then tapset
        // parsing and resolution (one process, one core).
        let (total, matrix) = median(5, || resolve_all(&kernels, &sources));
        let (facts_time, facts) = median(5, || load_facts(&kernels));
        let (matrix_time, _) = median(5, || build_matrix(&kernels, &facts, &sources));
        let cells = matrix.rows.len() * matrix.kernels.len();
        let unresolved = matrix
            .rows
            .iter()
            .flat_map(|row| &row.cells)
            .filter(|cell| cell.is_unresolved())
            .count();
        eprintln!(
            "{name}: {} kernels, {} aliases, {cells} cells, {unresolved} unresolved: \
             {} ms in all (median of 5): facts {} ms, tapsets and matrix {} ms",
            kernels.len(),
            matrix.rows.len(),
            total.as_millis(),
            facts_time.as_millis(),
            matrix_time.as_millis(),
        );
        group.bench_function(name, |b| b.iter(|| resolve_all(&kernels, &sources)));
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
