//! The time to resolve the tapset library against every cached kernel,
//! facts loading and tapset parsing included (one kernel's library is
//! parsed per kernel, as its preprocessor conditionals need):
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
use tapmatrix_facts::KernelFacts;
use tapmatrix_resolve::{KernelInput, Library, Matrix, RowsOf, Sources, kernel_profile};

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

/// Loads every kernel's facts, parses the library for each, builds the matrix.
fn resolve_all(kernels: &[(String, PathBuf)], sources: &Sources) -> Matrix {
    let facts: Vec<KernelFacts> = kernels
        .iter()
        .map(|(_, dir)| KernelFacts::load(dir).expect("load facts"))
        .collect();
    let libraries: Vec<Library> = sources
        .load_all(facts.iter().map(kernel_profile).collect())
        .expect("load tapsets")
        .into_iter()
        .map(|loaded| loaded.library)
        .collect();
    let inputs: Vec<KernelInput<'_>> = kernels
        .iter()
        .zip(&facts)
        .zip(&libraries)
        .map(|(((id, _), facts), library)| KernelInput { id, facts, library })
        .collect();
    Matrix::build(&inputs, RowsOf::Aliases)
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
        };
        let matrix = resolve_all(&kernels, &sources);
        let cells = matrix.rows.len() * matrix.kernels.len();
        let unresolved = matrix
            .rows
            .iter()
            .flat_map(|row| &row.cells)
            .filter(|cell| cell.is_unresolved())
            .count();
        eprintln!(
            "{name}: {} kernels, {} aliases, {cells} cells, {unresolved} unresolved",
            kernels.len(),
            matrix.rows.len()
        );
        group.bench_function(name, |b| b.iter(|| resolve_all(&kernels, &sources)));
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
