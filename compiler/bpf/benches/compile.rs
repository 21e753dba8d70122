//! Compiling 200 probes to BPF on the host (the target: under
//! 5 ms; bpftrace 0.17 with LLVM 14 took 274 ms here). The script is
//! elaborated once; the benchmark times `tapmatrix_bpf::compile` alone
//! (code generation, the ELF object, the tables).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)] // bench code

use std::fmt::Write as _;
use std::path::Path;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use tapmatrix_facts::KernelFacts;
use tapmatrix_resolve::{Sources, kernel_profile};

fn script(probes: usize) -> String {
    let mut text = String::from("global counts, sizes, last\n");
    for n in 0..probes {
        let _ = writeln!(
            text,
            "probe kernel.function(\"vfs_read\") {{ if (pid() != target()) next\n  counts[execname(), {n}]++\n  sizes <<< $count\n  if ($count > {n}) last = $count * 2 + {n}\n}}"
        );
    }
    text.push_str("probe end { printf(\"%d %d\\n\", @count(sizes), last) }\n");
    text
}

fn bench(c: &mut Criterion) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../facts/fixtures/linux-6.1");
    let config = dir.join("config");
    let facts = KernelFacts::from_raw(&dir, config.exists().then_some(config.as_path())).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("many.stp");
    std::fs::write(&path, script(200)).unwrap();
    let sources = Sources {
        tapset_dirs: Vec::new(),
        script: Some(path),
        script_text: None,
    };
    let loaded = sources.load(kernel_profile(&facts)).unwrap();
    let caps = tapmatrix_bpf::capabilities(&facts, "6.1");
    let elaborated = tapmatrix_elaborate::elaborate(&loaded, &facts, &caps).unwrap();
    assert_eq!(elaborated.program.probes.len(), 201);
    let artefact = tapmatrix_bpf::compile(
        elaborated.clone(),
        &facts,
        tapmatrix_bpf::Options::default(),
    )
    .unwrap();
    assert_eq!(artefact.mode, tapmatrix_ir::bpf::BpfMode::InKernel);
    assert_eq!(artefact.programs.len(), 200);
    c.bench_function("compile 200 probes to BPF", |b| {
        b.iter_batched(
            || elaborated.clone(),
            |e| tapmatrix_bpf::compile(e, &facts, tapmatrix_bpf::Options::default()).unwrap(),
            BatchSize::SmallInput,
        )
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
