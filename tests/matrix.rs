//! The script tests on the kernel matrix: one test per (script, kernel),
//! `tests/scripts/NAME.stp` with its spec `NAME.yaml`, judged against its
//! insta snapshot (`tests/scripts/snapshots/`, reviewed with `cargo insta
//! review`). Each kernel of the cache boots once with all its scripts;
//! kernels not fetched and harvested in the test cache are skipped with a
//! line saying so.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use libtest_mimic::{Arguments, Failed, Trial};
use tapmatrix_e2e::{default_matrix, test_cache, workspace_root};
use tapmatrix_facts::KernelFacts;
use tapmatrix_run::{
    Backend, Cell, FunctionEvents, RunKernel, RunOptions, SnapshotScope, Spec, Status, run_matrix,
};
use tapmatrix_vm::VmOptions;

fn main() -> ExitCode {
    let args = Arguments::from_args();
    let root = workspace_root();
    let scripts = root.join("tests/scripts");
    let out_dir = root.join("target/tapmatrix-e2e-matrix");
    let specs = match Spec::load_dir(&scripts) {
        Ok(specs) => specs,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(2);
        }
    };
    let kernel_ids = default_matrix().ids();
    let ids: Vec<String> = kernel_ids.iter().map(ToString::to_string).collect();
    let name = |spec: &Spec, id: &str| format!("{}@{id}", spec.name);
    let selected = |test: &str| {
        let wanted = args.filter.as_ref().is_none_or(|filter| {
            if args.exact {
                test == filter
            } else {
                test.contains(filter.as_str())
            }
        });
        wanted && !args.skip.iter().any(|skip| test.contains(skip.as_str()))
    };
    // Boot only what the selected tests need, and nothing when listing.
    let mut cells: BTreeMap<String, Cell> = BTreeMap::new();
    let mut series: BTreeMap<String, String> = BTreeMap::new();
    let mut absent: Vec<String> = Vec::new();
    if !args.list {
        let cache = test_cache();
        let guard = match cache.share() {
            Ok(guard) => guard,
            Err(error) => {
                eprintln!("error: taking the test cache: {error}");
                return ExitCode::from(3);
            }
        };
        let mut kernels = Vec::new();
        for (id, kernel_id) in ids.iter().zip(&kernel_ids) {
            if !specs.iter().any(|spec| selected(&name(spec, id))) {
                continue;
            }
            let facts = cache
                .harvested(kernel_id)
                .then(|| KernelFacts::load(&cache.facts_dir(kernel_id)).ok())
                .flatten();
            match (cache.fetched(kernel_id), facts) {
                (Some(fetched), Some(facts)) => {
                    if let Some((major, minor)) = facts
                        .release
                        .as_deref()
                        .and_then(tapmatrix_run::parse_series)
                    {
                        series.insert(id.clone(), format!("{major}.{minor}"));
                    }
                    let work_dir = match cache.run_dir(kernel_id) {
                        Ok(dir) => dir,
                        Err(error) => {
                            eprintln!("error: {error}");
                            return ExitCode::from(3);
                        }
                    };
                    kernels.push(RunKernel {
                        id: id.clone(),
                        facts,
                        vmlinuz: fetched.vmlinuz,
                        work_dir,
                    });
                }
                _ => absent.push(id.clone()),
            }
        }
        for id in &absent {
            eprintln!(
                "skipping kernel {id}: not fetched and harvested in {} (run `cargo test -p tapmatrix-e2e --test kernels`)",
                cache.root().display()
            );
        }
        let selected_specs: Vec<Spec> = specs
            .iter()
            .filter(|spec| ids.iter().any(|id| selected(&name(spec, id))))
            .cloned()
            .collect();
        let options = RunOptions {
            tapset_dirs: vec![root.join("tapsets")],
            jobs: tapmatrix_vm::default_jobs(),
            function_events: FunctionEvents::default(),
            backend: backend(),
            vm: VmOptions::new(cache.root()),
            out_dir: Some(out_dir.clone()),
        };
        if !kernels.is_empty() && !selected_specs.is_empty() {
            match run_matrix(&selected_specs, &kernels, &options, &|_, _| {}) {
                Ok(results) => {
                    eprint!(
                        "{}",
                        tapmatrix_report::render(
                            &results,
                            tapmatrix_report::Format::Table,
                            &Default::default()
                        )
                    );
                    for cell in results.cells {
                        cells.insert(format!("{}@{}", cell.script, cell.kernel), cell);
                    }
                }
                Err(error) => {
                    eprintln!("error: {error}");
                    return ExitCode::from(2);
                }
            }
        }
        drop(guard);
    }
    let mut trials = Vec::new();
    for spec in &specs {
        for id in &ids {
            let test = name(spec, id);
            let skipped = absent.contains(id);
            let cell = cells.get(&test).cloned();
            let spec = spec.clone();
            let series = series.get(id).cloned().unwrap_or_else(|| id.clone());
            let snapshots = scripts.join("snapshots");
            let out_dir = out_dir.clone();
            trials.push(
                Trial::test(test, move || {
                    check(&spec, &series, snapshots, &out_dir, cell)
                })
                .with_ignored_flag(skipped),
            );
        }
    }
    libtest_mimic::run(&args, trials).exit_code()
}

/// Judges one cell; its output goes through insta, so that a new or
/// changed output leaves a `.snap.new` for `cargo insta review`.
fn check(
    spec: &Spec,
    series: &str,
    snapshots: PathBuf,
    out_dir: &Path,
    cell: Option<Cell>,
) -> Result<(), Failed> {
    let Some(cell) = cell else {
        return Err("not run".into());
    };
    match cell.status {
        Status::NotAvailable => return Ok(()),
        // A flaky cell failed once: never a pass.
        Status::Error | Status::Infra | Status::Flaky => {
            return Err(failure_report(&cell, out_dir).into());
        }
        Status::Pass | Status::Fail => {}
    }
    if let Some(output) = &cell.output {
        let mut settings = insta::Settings::clone_current();
        settings.set_snapshot_path(snapshots);
        settings.set_prepend_module_to_snapshot(false);
        settings.set_omit_expression(true);
        if spec.snapshot == SnapshotScope::PerSeries {
            settings.set_snapshot_suffix(series);
        }
        settings.bind(|| insta::assert_snapshot!(spec.name.as_str(), output));
    }
    match cell.status {
        Status::Pass => Ok(()),
        _ => Err(cell.detail.into()),
    }
}

/// What a test that did not pass prints: the cell's status and detail,
/// and for a flaky cell its failed first attempt, what that printed and
/// the end of its agent and console logs (CI keeps nothing else: the
/// clone's `target/` is gone when the run ends). The logs' paths are
/// relative to the run's `out_dir`.
fn failure_report(cell: &Cell, out_dir: &Path) -> String {
    let mut out = format!("{}: {}", cell.status.word(), cell.detail);
    let (what, output, logs) = match &cell.first_attempt {
        Some(first) => {
            out.push_str(&format!(
                "\nfirst attempt: {}: {}",
                first.status.word(),
                first.detail
            ));
            ("first attempt", &first.output, &first.logs)
        }
        None => ("this attempt", &cell.output, &cell.logs),
    };
    if let Some(output) = output {
        out.push_str(&format!("\n--- {what} printed ---\n{output}"));
    }
    if let Some(logs) = logs {
        for (name, path) in [("agent log", &logs.agent), ("console", &logs.console)] {
            out.push_str(&format!("\n--- {what}: {name} ({path}), last lines ---\n"));
            match std::fs::read_to_string(out_dir.join(path)) {
                Ok(text) => {
                    let lines: Vec<&str> = text.lines().collect();
                    let tail = &lines[lines.len().saturating_sub(40)..];
                    out.push_str(&tail.join("\n"));
                }
                Err(error) => out.push_str(&format!("(unreadable: {error})")),
            }
        }
    }
    out
}

/// The back end the scripts run on: `TAPMATRIX_BACKEND` (tracefs, bpf,
/// bpf-forward, bpf-kprobes, auto; default tracefs). The snapshots are the same for
/// every back end: that is the differential test.
fn backend() -> Backend {
    match std::env::var("TAPMATRIX_BACKEND").as_deref() {
        Ok("bpf") => Backend::Bpf,
        Ok("bpf-forward") => Backend::BpfForwarded,
        Ok("bpf-kprobes") => Backend::BpfKprobes,
        Ok("auto") => Backend::Auto,
        _ => Backend::Tracefs,
    }
}
