//! Loading one kernel's facts: `facts.json` plus the BTF index, and the
//! first BTF lookup by name (which builds the name index).
//!
//! `TAPMATRIX_FACTS_DIR=/path/to/saved/facts cargo bench -p tapmatrix-facts`
//! times a real kernel's saved facts; without it, the committed 6.1
//! fixture (small, with a BTF subset) is parsed, saved and timed.

// A benchmark is a test harness: a setup failure should stop it loudly.
#![allow(clippy::expect_used)]

use std::path::{Path, PathBuf};

use criterion::{Criterion, criterion_group, criterion_main};
use tapmatrix_facts::KernelFacts;

fn facts_dir(scratch: &Path) -> PathBuf {
    if let Some(dir) = std::env::var_os("TAPMATRIX_FACTS_DIR") {
        return PathBuf::from(dir);
    }
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/linux-6.1");
    let facts = KernelFacts::from_raw(&fixture, Some(&fixture.join("config")))
        .expect("the committed fixture parses");
    facts.save(scratch).expect("the scratch dir is writable");
    scratch.to_owned()
}

fn load(c: &mut Criterion) {
    let scratch = tempfile::tempdir().expect("a temporary directory");
    let dir = facts_dir(scratch.path());
    eprintln!("facts from {}", dir.display());
    c.bench_function("load facts.json + BTF index", |b| {
        b.iter(|| KernelFacts::load(&dir).expect("facts load"));
    });
    c.bench_function("load + first BTF lookup by name", |b| {
        b.iter(|| {
            let facts = KernelFacts::load(&dir).expect("facts load");
            facts
                .btf
                .as_ref()
                .map(|btf| btf.function("vfs_read").is_some())
        });
    });
}

criterion_group!(benches, load);
criterion_main!(benches);
