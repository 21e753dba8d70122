//! Hits per second of a typical counting handler,
//! `probe ... { counts[execname()]++ }`, fed with eight task names.
//!
//! `cargo bench -p tapmatrix-runtime --bench hits` prints criterion's
//! throughput (elements are hits) and one `hits per second:` line from a
//! plain timed run of a million hits.

// A benchmark is a test harness: a setup failure should stop it loudly.
#![allow(clippy::expect_used)]

use std::hint::black_box;
use std::time::Instant;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tapmatrix_ir::{
    Builtin, Expr, Global, GlobalType, LValue, Limits, Loc, Probe, ProbeKind, Program, ScalarType,
    Stmt,
};
use tapmatrix_runtime::{Control, Hit, HitContext, Runtime};

fn counting_program() -> Program {
    let loc = Loc {
        file: 0,
        line: 1,
        col: 1,
    };
    Program {
        files: vec!["count.stp".to_owned()],
        globals: vec![Global {
            name: "counts".to_owned(),
            ty: GlobalType::Array {
                keys: vec![ScalarType::String],
                value: Some(ScalarType::Long),
            },
            init: None,
            max_entries: None,
            wrap: false,
        }],
        functions: Vec::new(),
        probes: vec![Probe {
            kind: ProbeKind::Event,
            name: "kernel.function(\"vfs_read\")".to_owned(),
            locals: Vec::new(),
            fetches: Vec::new(),
            entry: None,
            body: vec![Stmt::Expr(Expr::Crement {
                target: Box::new(LValue::Index {
                    array: 0,
                    keys: vec![Some(Expr::Builtin {
                        builtin: Builtin::Execname,
                        args: Vec::new(),
                        loc,
                    })],
                    loc,
                }),
                increment: true,
                prefix: false,
                loc,
            })],
        }],
        limits: Limits::default(),
    }
}

fn hits() -> Vec<Hit> {
    [
        "sh",
        "cat",
        "ls",
        "grep",
        "sed",
        "awk",
        "sort",
        "kworker/0:1",
    ]
    .iter()
    .enumerate()
    .map(|(i, comm)| Hit {
        probe: 0,
        values: Vec::new(),
        context: HitContext {
            pid: 100 + i as i64,
            tid: 100 + i as i64,
            cpu: 0,
            comm: (*comm).to_owned(),
            timestamp_ns: 0,
            pp: "kernel.function(\"vfs_read\")".to_owned(),
            function: "vfs_read".to_owned(),
            is_return: false,
            ..HitContext::default()
        },
        faults: Vec::new(),
    })
    .collect()
}

fn bench_hits(c: &mut Criterion) {
    let hits = hits();
    let mut runtime = Runtime::new(counting_program(), 0);
    assert_eq!(runtime.begin(), Control::Continue);

    let total = 1_000_000;
    let start = Instant::now();
    for i in 0..total {
        black_box(runtime.hit(&hits[i % hits.len()]));
    }
    let elapsed = start.elapsed();
    eprintln!(
        "hits per second: {:.0} (counts[execname()]++, {} hits in {:.3} s)",
        total as f64 / elapsed.as_secs_f64(),
        total,
        elapsed.as_secs_f64()
    );

    let mut group = c.benchmark_group("handler");
    group.throughput(Throughput::Elements(1));
    let mut i = 0;
    group.bench_function("counts[execname()]++", |b| {
        b.iter(|| {
            i += 1;
            black_box(runtime.hit(&hits[i % hits.len()]))
        });
    });
    group.finish();
}

criterion_group!(benches, bench_hits);
criterion_main!(benches);
