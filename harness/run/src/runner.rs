//! The matrix run: per kernel, compile every script, boot once with all
//! that compiled, and judge every cell. Kernels boot in parallel.

use std::path::PathBuf;
use std::time::Instant;

use tapmatrix_facts::KernelFacts;
use tapmatrix_ir::{Bundle, RunEnd, RunMessage, Workload};
use tapmatrix_tracefs::FunctionEvents;
use tapmatrix_vm::{ItemReport, RunSettings, VmOptions, boot_many, run_items};
use tapmatrix_wire::RunItem;

use crate::Error;
use crate::compile::{Compiled, compile};
use crate::judge::{ItemEnd, ItemRun, judge};
use crate::results::{Cell, KernelRun, Results, SCHEMA};
use crate::spec::{Spec, parse_series};

/// One kernel of the run.
#[derive(Debug)]
pub struct RunKernel {
    /// Its id in the matrix.
    pub id: String,
    /// Its harvested facts.
    pub facts: KernelFacts,
    /// The kernel to boot.
    pub vmlinuz: PathBuf,
    /// Where its boot keeps the console log.
    pub work_dir: PathBuf,
}

/// How to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Tapset directories, in order.
    pub tapset_dirs: Vec<PathBuf>,
    /// Kernels booted at once.
    pub jobs: usize,
    /// kprobes or fprobes for function probes.
    pub function_events: FunctionEvents,
    /// The back end.
    pub backend: crate::Backend,
    /// QEMU and cache settings.
    pub vm: VmOptions,
}

/// Runs every spec on every kernel and judges each cell. `on_message`
/// sees each agent message as it arrives, with the kernel's id.
pub fn run_matrix(
    specs: &[Spec],
    kernels: &[RunKernel],
    options: &RunOptions,
    on_message: &(dyn Fn(&str, &RunMessage) + Sync),
) -> Result<Results, Error> {
    let columns = boot_many(kernels, &options.vm, options.jobs, "run", |kernel, vm| {
        run_kernel(specs, kernel, options, vm, on_message)
    });
    let mut results = Results {
        schema: SCHEMA,
        kernels: Vec::new(),
        cells: Vec::new(),
    };
    let mut by_kernel = Vec::new();
    for column in columns {
        let (kernel, cells) = column?;
        results.kernels.push(kernel);
        by_kernel.push(cells);
    }
    // Cells by script, then kernel.
    for index in 0..specs.len() {
        for cells in &by_kernel {
            if let Some(cell) = cells.get(index) {
                results.cells.push(cell.clone());
            }
        }
    }
    Ok(results)
}

/// The series of a kernel: its release's MAJOR.MINOR, else its id.
fn series_of(kernel: &RunKernel) -> String {
    kernel
        .facts
        .release
        .as_deref()
        .and_then(parse_series)
        .map_or_else(
            || kernel.id.clone(),
            |(major, minor)| format!("{major}.{minor}"),
        )
}

fn run_kernel(
    specs: &[Spec],
    kernel: &RunKernel,
    options: &RunOptions,
    vm: &VmOptions,
    on_message: &(dyn Fn(&str, &RunMessage) + Sync),
) -> Result<(KernelRun, Vec<Cell>), Error> {
    let series = series_of(kernel);
    let compiling = Instant::now();
    let compiled: Vec<(bool, Compiled)> = specs
        .iter()
        .map(|spec| {
            let applies = spec.kernels.covers(&series, &kernel.facts);
            let compiled = compile(
                spec.script.clone(),
                &options.tapset_dirs,
                &kernel.facts,
                options.function_events,
                options.backend,
            );
            (applies, compiled)
        })
        .collect();
    tracing::debug!(kernel = %kernel.id, elapsed = ?compiling.elapsed(), "compiled {} scripts", specs.len());
    let mut items = Vec::new();
    let mut item_of = vec![None; specs.len()];
    for (index, (spec, (applies, compiled))) in specs.iter().zip(&compiled).enumerate() {
        let (bundle, bpf) = match (applies, compiled) {
            (true, Compiled::Bundle(bundle)) => ((**bundle).clone(), None),
            (true, Compiled::Bpf(artefact)) => (
                Bundle {
                    program: artefact.program.clone(),
                    events: Vec::new(),
                },
                Some(artefact.clone()),
            ),
            _ => continue,
        };
        item_of[index] = Some(items.len());
        items.push(RunItem {
            name: spec.name.clone(),
            bundle,
            bpf,
            workload: Workload {
                command: spec.workload.clone(),
                timeout_ms: spec.timeout_s.saturating_mul(1000),
            },
        });
    }
    let mut kernel_run = KernelRun {
        id: kernel.id.clone(),
        release: kernel.facts.release.clone(),
        boot_ms: 0,
        infra: None,
    };
    let mut runs: Vec<ItemRun> = Vec::new();
    if !items.is_empty() {
        let started = Instant::now();
        let mut forward = |message: &RunMessage| on_message(&kernel.id, message);
        runs = boot_items(kernel, &items, vm, &mut forward);
        // A boot that died under some items (not the scripts' fault) gets
        // one more boot for the items it left: a transient QEMU or guest
        // failure is not reported as the kernel's, a kernel that dies
        // again is.
        let retry: Vec<usize> = (0..runs.len())
            .filter(|&index| matches!(runs[index].end, ItemEnd::Infra(_)))
            .collect();
        if !retry.is_empty() {
            tracing::warn!(kernel = %kernel.id, "the boot failed under {} scripts: booting again for them", retry.len());
            let again: Vec<RunItem> = retry.iter().map(|&index| items[index].clone()).collect();
            for (index, run) in retry
                .into_iter()
                .zip(boot_items(kernel, &again, vm, &mut forward))
            {
                runs[index] = run;
            }
        }
        kernel_run.boot_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let in_guest: u64 = runs.iter().map(|run| run.elapsed_ms).sum();
        tracing::debug!(kernel = %kernel.id, boot_ms = kernel_run.boot_ms, in_guest_ms = in_guest, "booted and ran {} scripts", items.len());
        if kernel_run.infra.is_none() {
            kernel_run.infra = runs.iter().find_map(|run| match &run.end {
                ItemEnd::Infra(why) => Some(why.clone()),
                _ => None,
            });
        }
    }
    let mut cells = Vec::new();
    for (index, (spec, (applies, compiled))) in specs.iter().zip(&compiled).enumerate() {
        let run = item_of[index].and_then(|item| runs.get(item));
        cells.push(judge(spec, &kernel.id, &series, *applies, compiled, run)?);
    }
    Ok((kernel_run, cells))
}

/// Boots `kernel` once with `items`; one run per item (all infra when the
/// image cannot be built).
fn boot_items(
    kernel: &RunKernel,
    items: &[RunItem],
    vm: &VmOptions,
    forward: &mut dyn FnMut(&RunMessage),
) -> Vec<ItemRun> {
    match run_items(
        &kernel.vmlinuz,
        items,
        &kernel.work_dir,
        vm,
        RunSettings::default(),
        forward,
    ) {
        Ok(reports) => reports.iter().map(item_run).collect(),
        Err(error) => {
            let why = format!("the guest image could not be built: {error}");
            items
                .iter()
                .map(|_| ItemRun {
                    end: ItemEnd::Infra(why.clone()),
                    ..ItemRun::default()
                })
                .collect()
        }
    }
}

/// What the runner needs from an item's report.
fn item_run(report: &ItemReport) -> ItemRun {
    let mut run = ItemRun {
        stdout: report.stdout(),
        stderr: report.stderr(),
        ..ItemRun::default()
    };
    let rejected: Vec<String> = report
        .messages
        .iter()
        .filter_map(|message| match message {
            RunMessage::EventRejected {
                definition, error, ..
            } => Some(format!("`{definition}`: {error}")),
            _ => None,
        })
        .collect();
    run.end = match &report.end {
        tapmatrix_vm::ItemEnd::Infra(failure) => ItemEnd::Infra(failure.error.clone()),
        tapmatrix_vm::ItemEnd::Finished(finished) => {
            run.hits = finished.hits;
            run.lost = finished.lost;
            run.elapsed_ms = finished.elapsed_ms;
            run.leftover_events = finished.leftover_events.clone();
            match &finished.end {
                RunEnd::Exit | RunEnd::WorkloadDone => ItemEnd::Finished,
                RunEnd::Timeout => ItemEnd::Timeout,
                RunEnd::RuntimeError { message } => ItemEnd::RuntimeError(message.clone()),
                RunEnd::Rejected => ItemEnd::Rejected(rejected.join("; ")),
                RunEnd::AgentError { message } => {
                    ItemEnd::Infra(format!("the agent failed: {message}"))
                }
            }
        }
    };
    run
}
