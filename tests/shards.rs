//! A run split by `plan` into three shards, each run on its own, then
//! merged: the merge equals the unsharded run (up to timings and logs).
//! Two kernels and three scripts, so the plan splits scripts.
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "an integration test: a panic is how it reports a failure"
)]

use tapmatrix_e2e::{harvested_kernels, test_cache, workspace_root};
use tapmatrix_facts::KernelFacts;
use tapmatrix_report::{Costs, Results, merge, plan};
use tapmatrix_run::{FunctionEvents, RunKernel, RunOptions, Spec, run_matrix};
use tapmatrix_vm::VmOptions;

const KERNELS: [&str; 2] = ["5.10", "7.3"];
const SCRIPTS: [&str; 3] = ["exec_tracepoint", "printf_formats", "read_return"];

/// What must be equal: everything but timings and log paths.
fn comparable(mut results: Results) -> Results {
    results.run = Default::default();
    for kernel in &mut results.kernels {
        kernel.boot_ms = 0;
        kernel.logs.clear();
    }
    for cell in &mut results.cells {
        cell.elapsed_ms = 0;
        cell.logs = None;
    }
    results
}

#[test]
fn three_shards_merged_equal_one_run() {
    harvested_kernels(&KERNELS);
    let cache = test_cache();
    let guard = cache.lock().unwrap();
    let root = workspace_root();
    let specs: Vec<Spec> = SCRIPTS
        .iter()
        .map(|name| Spec::load(&root.join(format!("tests/scripts/{name}.stp"))).unwrap())
        .collect();
    let kernel = |id: &str| {
        let kernel_id = tapmatrix_kernels::KernelId::try_from(id.to_owned()).unwrap();
        RunKernel {
            id: id.to_owned(),
            facts: KernelFacts::load(&cache.facts_dir(&kernel_id)).unwrap(),
            vmlinuz: cache.fetched(&kernel_id).unwrap().vmlinuz,
            work_dir: cache.boots_dir(&kernel_id).join("shards"),
        }
    };
    let kernels: Vec<RunKernel> = KERNELS.iter().map(|id| kernel(id)).collect();
    let options = RunOptions {
        tapset_dirs: vec![root.join("tapsets")],
        jobs: 2,
        function_events: FunctionEvents::default(),
        backend: tapmatrix_run::Backend::default(),
        vm: VmOptions::new(cache.root()),
        out_dir: None,
    };
    let one = run_matrix(&specs, &kernels, &options, &|_, _| {}).unwrap();
    assert_eq!(
        one.cells.len(),
        6,
        "{}",
        tapmatrix_report::render(&one, tapmatrix_report::Format::Table, &Default::default())
    );
    let ids: Vec<String> = KERNELS.iter().map(|k| (*k).to_owned()).collect();
    let names: Vec<String> = SCRIPTS.iter().map(|s| (*s).to_owned()).collect();
    let shards = plan(&ids, &names, &Costs::from_results(&one), 3);
    assert_eq!(shards.len(), 3);
    let mut parts = Vec::new();
    for shard in &shards {
        let kernels: Vec<RunKernel> = shard.kernels.iter().map(|id| kernel(id)).collect();
        let specs: Vec<Spec> = specs
            .iter()
            .filter(|s| {
                shard
                    .scripts
                    .as_ref()
                    .is_none_or(|names| names.contains(&s.name))
            })
            .cloned()
            .collect();
        assert!(
            !kernels.is_empty() && !specs.is_empty(),
            "an empty shard: {shard:?}"
        );
        parts.push(run_matrix(&specs, &kernels, &options, &|_, _| {}).unwrap());
    }
    drop(guard);
    let merged = merge(parts, &ids).unwrap();
    assert_eq!(comparable(merged), comparable(one));
}
