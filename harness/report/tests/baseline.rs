//! `compare` classifies each cell's change against a baseline; `merge`
//! joins shards back into the run they were cut from.
#![allow(
    clippy::unwrap_used,
    reason = "a test: a panic is how it reports a failure"
)]

use std::path::Path;

use tapmatrix_report::{Change, Results, Status, compare, merge};

fn fixture() -> Results {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/results.json");
    Results::from_json("results.json", &std::fs::read_to_string(path).unwrap()).unwrap()
}

fn change(base: &Results, new: &Results, script: &str, kernel: &str) -> Change {
    compare(base, new)
        .changes
        .iter()
        .find(|c| c.script == script && c.kernel == kernel)
        .unwrap()
        .change
}

#[test]
fn each_change_has_its_class() {
    let base = fixture();
    let mut new = base.clone();
    let set = |results: &mut Results, script: &str, kernel: &str, status: Status| {
        let cell = results
            .cells
            .iter_mut()
            .find(|c| c.script == script && c.kernel == kernel)
            .unwrap();
        cell.status = status;
    };
    // pass -> fail, the script unchanged: a regression.
    set(&mut new, "exec_tracepoint", "6.12", Status::Fail);
    assert_eq!(
        change(&base, &new, "exec_tracepoint", "6.12"),
        Change::Regression
    );
    // ... but with the script changed, not the kernel's fault.
    let mut changed = new.clone();
    changed.scripts[0].fingerprint = "sha256:other".to_owned();
    assert_eq!(
        change(&base, &changed, "exec_tracepoint", "6.12"),
        Change::ScriptChanged
    );
    // fail -> pass: a fix; infra is never a regression; a flake is a flake.
    set(&mut new, "openat_names", "7.3", Status::Pass);
    assert_eq!(change(&base, &new, "openat_names", "7.3"), Change::Fix);
    set(&mut new, "exec_tracepoint", "5.10", Status::Infra);
    assert_eq!(
        change(&base, &new, "exec_tracepoint", "5.10"),
        Change::Infra
    );
    set(&mut new, "exec_tracepoint", "7.3", Status::Flaky);
    assert_eq!(change(&base, &new, "exec_tracepoint", "7.3"), Change::Flake);
    assert_eq!(
        change(&base, &new, "read_sizes_hist", "5.10"),
        Change::StillFailing
    );
    assert_eq!(
        change(&base, &new, "openat_names", "5.10"),
        Change::Unchanged
    );
    // A kernel or a script the baseline lacks.
    let mut older = base.clone();
    older.kernels.retain(|k| k.id != "7.3");
    older
        .cells
        .retain(|c| c.kernel != "7.3" && c.script != "read_sizes_hist");
    assert_eq!(
        change(&older, &base, "exec_tracepoint", "7.3"),
        Change::NewKernel
    );
    assert_eq!(
        change(&older, &base, "read_sizes_hist", "6.12"),
        Change::NewScript
    );
    assert_eq!(
        change(&base, &older, "read_sizes_hist", "6.12"),
        Change::Gone
    );
    let comparison = compare(&base, &new);
    assert_eq!(comparison.regressions().count(), 1);
    assert!(
        comparison
            .render()
            .contains("regression: exec_tracepoint on 6.12: pass -> FAIL")
    );
}

#[test]
fn shards_merge_back_into_the_run() {
    let run = fixture();
    let order: Vec<String> = run.kernels.iter().map(|k| k.id.clone()).collect();
    // Shard 1: kernel 7.3; shards 2 and 3: the others, split by script.
    let mut parts = Vec::new();
    for keep in [
        &(|c: &tapmatrix_report::Cell| c.kernel == "7.3")
            as &dyn Fn(&tapmatrix_report::Cell) -> bool,
        &|c| c.kernel != "7.3" && c.script.as_str() < "p",
        &|c| c.kernel != "7.3" && c.script.as_str() >= "p",
    ] {
        let mut part = run.clone();
        part.cells.retain(|c| keep(c));
        let kernels: Vec<String> = part.cells.iter().map(|c| c.kernel.clone()).collect();
        part.kernels.retain(|k| kernels.contains(&k.id));
        part.kernels.reverse();
        parts.push(part);
    }
    parts.reverse();
    let mut merged = merge(parts.clone(), &order).unwrap();
    let mut expected = run.clone();
    // Kernels split over two shards sum their boots and logs.
    for kernel in &mut expected.kernels {
        if kernel.id != "7.3" {
            kernel.boot_ms *= 2;
            let logs = kernel.logs.clone();
            kernel.logs.extend(logs);
        }
    }
    expected.normalize();
    merged.run = expected.run.clone();
    assert_eq!(merged, expected);
    // The same cell in two shards is an error.
    parts.push(parts[0].clone());
    assert!(
        merge(parts, &order)
            .unwrap_err()
            .to_string()
            .contains("in two of the results")
    );
}
