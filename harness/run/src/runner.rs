//! The matrix run: per kernel, compile every script, boot once with all
//! that compiled, and judge every cell. Kernels boot in parallel.

use std::path::{Path, PathBuf};
use std::time::Instant;

use tapmatrix_facts::KernelFacts;
use tapmatrix_ir::{OutputStream, RunMessage, Workload};
use tapmatrix_resolve::{TapsetLibrary, kernel_profile};
use tapmatrix_tracefs::FunctionEvents;
use tapmatrix_vm::{
    GuestModule, ItemReport, RunSettings, VmOptions, boot_many, run_items_with_modules,
};
use tapmatrix_wire::RunItem;

use crate::Error;
use crate::compile::{Compiled, Pass, compile_spec};
use crate::judge::{ItemRun, judge};
use crate::spec::{SnapshotScope, Spec, parse_series};
use tapmatrix_report::{
    Attempt, Cell, KernelRun, Logs, Results, Retry, RunInfo, ScriptInfo, Status, WorkloadOutput,
};

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
    /// The run's output directory: the console and agent logs of every
    /// cell that is not a pass go to `logs/KERNEL/` in it (and the cells
    /// name them relative to it). `None` keeps no logs.
    pub out_dir: Option<PathBuf>,
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
    let mut results = Results::new(RunInfo::default());
    results.scripts = specs
        .iter()
        .map(|spec| ScriptInfo {
            name: spec.name.clone(),
            description: spec.description.clone(),
            fingerprint: spec.fingerprint(),
        })
        .collect();
    for column in columns {
        let (kernel, cells) = column?;
        results.kernels.push(kernel);
        results.cells.extend(cells);
    }
    results.normalize();
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

/// How many more boots the items a dead boot left may get (see
/// `run_kernel`): each boot after the first retry leaves out the item the
/// previous one died under.
const RETRY_BOOTS: usize = 4;

fn run_kernel(
    specs: &[Spec],
    kernel: &RunKernel,
    options: &RunOptions,
    vm: &VmOptions,
    on_message: &(dyn Fn(&str, &RunMessage) + Sync),
) -> Result<(KernelRun, Vec<Cell>), Error> {
    let series = series_of(kernel);
    let compiling = Instant::now();
    // The tapsets are read once for this kernel; each script is added.
    let mut tapsets = TapsetLibrary::load(&options.tapset_dirs, kernel_profile(&kernel.facts))
        .map_err(|error| error.to_string());
    let mut warnings: Vec<String> = Vec::with_capacity(specs.len());
    let mut compiled: Vec<(bool, Compiled)> = specs
        .iter()
        .map(|spec| {
            let applies =
                spec.kernels.covers(&series, &kernel.facts) && spec.kernels.serves(options.backend);
            let compilation = compile_spec(
                spec,
                &mut tapsets,
                &kernel.facts,
                options.function_events,
                options.backend,
                Pass::Run,
            );
            // A shown script's warnings are part of what it printed on
            // standard error, as stap prints them at pass 2.
            let shown = spec.snapshot == SnapshotScope::Unchecked;
            let mut text = String::new();
            for warning in compilation.warnings.iter().filter(|_| shown) {
                text.push_str(warning);
                text.push('\n');
            }
            warnings.push(text);
            (applies, compilation.compiled)
        })
        .collect();
    tracing::debug!(kernel = %kernel.id, elapsed = ?compiling.elapsed(), "compiled {} scripts", specs.len());
    // A workload that needs modules (a disk) cannot run on a kernel whose
    // modules are not there (7.0 and 7.1: no modules package): not
    // available there, whatever its probes.
    let has_modules = matches!(
        kernel.facts.modules,
        tapmatrix_facts::KernelModules::Tree(_)
    );
    for (spec, (applies, compiled)) in specs.iter().zip(&mut compiled) {
        if !spec.modules.is_empty() && !has_modules {
            *applies = false;
            if matches!(compiled, Compiled::Ready(_)) {
                *compiled = Compiled::Error(format!(
                    "its workload needs the modules {}, and this kernel has none",
                    spec.modules.join(", ")
                ));
            }
        }
    }
    let mut items = Vec::new();
    let mut item_of = vec![None; specs.len()];
    // The modules the items load, decompressed once for the boots.
    let mut modules: Vec<GuestModule> = Vec::new();
    for (index, (spec, (applies, compiled))) in specs.iter().zip(&mut compiled).enumerate() {
        let (true, Compiled::Ready(artefact)) = (*applies, &*compiled) else {
            continue;
        };
        let load = match guest_modules(&kernel.facts, artefact, spec, &mut modules) {
            Ok(load) => load,
            Err(message) => {
                *compiled = Compiled::Error(message);
                continue;
            }
        };
        item_of[index] = Some(items.len());
        if !warnings[index].is_empty() {
            on_message(
                &kernel.id,
                &RunMessage::Diagnostic {
                    item: u32::try_from(items.len()).unwrap_or(u32::MAX),
                    text: warnings[index].clone(),
                },
            );
        }
        items.push(RunItem {
            name: spec.name.clone(),
            artefact: (**artefact).clone(),
            workload: Workload {
                command: spec.workload.clone(),
                timeout_ms: spec.timeout_s.saturating_mul(1000),
                target: spec.invocation.target_pid,
            },
            modules: load,
            setup: spec.setup.clone(),
            disk_mib: spec.disk_mib,
        });
    }
    // The warnings come first on standard error.
    let warned = |index: usize, mut run: ItemRun| {
        if let Some(text) = warnings.get(index).filter(|text| !text.is_empty()) {
            run.stderr.insert_str(0, text);
        }
        run
    };
    let mut kernel_run = KernelRun::unbooted(&kernel.id);
    kernel_run.release = kernel.facts.release.clone();
    let mut boots = Boots::default();
    let mut runs: Vec<ItemAttempt> = Vec::new();
    let started = Instant::now();
    let mut forward = |message: &RunMessage| on_message(&kernel.id, message);
    if !items.is_empty() {
        runs = boots.boot(kernel, &kernel.work_dir, &items, &modules, vm, &mut forward);
        // A boot that died under some items (the kernel, QEMU, the data
        // channel, a timeout: not the scripts' fault, and not a failure
        // the agent reported) gets one more boot for the items it left,
        // in `retry/`: a transient failure is not reported as the
        // kernel's, a kernel that dies again is. When that boot dies too,
        // the item it was running (begun, as its console says) keeps its
        // death (a script whose program takes the kernel down, e.g. the
        // verifier exhausting the guest's memory) and the items after it
        // boot once more without it
        // (`retry-2/`, ...), at most `RETRY_BOOTS` times. Every console
        // log stays, and results.json records the retry and its cause.
        let mut pending: Vec<usize> = (0..runs.len())
            .filter(|&index| runs[index].died.is_some())
            .collect();
        if let Some(cause) = pending.first().and_then(|&index| runs[index].died.clone()) {
            tracing::warn!(kernel = %kernel.id, %cause, "the boot died under {} scripts: booting again for them", pending.len());
            kernel_run.retry = Some(Retry {
                cause,
                first_console_log: kernel.work_dir.join("console.log"),
            });
        }
        for round in 1..=RETRY_BOOTS {
            if pending.is_empty() {
                break;
            }
            let again: Vec<RunItem> = pending.iter().map(|&index| items[index].clone()).collect();
            let work_dir = kernel.work_dir.join(match round {
                1 => "retry".to_owned(),
                n => format!("retry-{n}"),
            });
            let attempts = boots.boot(kernel, &work_dir, &again, &modules, vm, &mut forward);
            for (&index, run) in pending.iter().zip(attempts) {
                runs[index] = run;
            }
            // The first item the boot left is the one it was running.
            let Some(position) = pending.iter().position(|&index| runs[index].died.is_some())
            else {
                break;
            };
            let culprit = pending[position];
            pending.retain(|&index| runs[index].died.is_some());
            // Only an item the agent had begun (its console says so) is
            // blamed; a boot that died before any item began (QEMU, the
            // kernel's own start) boots them all again.
            if !boots.began(position, &items[culprit].name) {
                continue;
            }
            pending.remove(0);
            let name = &items[culprit].name;
            if let Err(why) = &mut runs[culprit].run.end {
                why.push_str(" (the boot died while this script ran, in a boot again for the scripts a death left: the scripts after it ran in another boot)");
            }
            if !pending.is_empty() {
                tracing::warn!(kernel = %kernel.id, script = %name, "the boot died again while this script ran: booting again for the {} after it", pending.len());
            }
        }
        kernel_run.infra = runs.iter().find_map(|attempt| attempt.run.infra_failure());
    }
    let mut cells = Vec::new();
    for (index, (spec, (applies, compiled))) in specs.iter().zip(&compiled).enumerate() {
        let attempt = item_of[index].and_then(|item| runs.get(item));
        let run = attempt.map(|a| warned(index, a.run.clone()));
        let mut cell = judge(spec, &kernel.id, &series, *applies, compiled, run.as_ref())?;
        expect_in_kernel(spec, options.backend, &mut cell);
        if let Some(attempt) = attempt
            && cell.status != Status::Pass
        {
            cell.logs = boots.keep(options.out_dir.as_deref(), &kernel.id, &spec.name, attempt);
        }
        cells.push(cell);
    }
    // A cell that ran and failed is rerun once, in a boot of its own with
    // the others that failed: passing then, it is flaky (never a pass),
    // unless the kernel said the failed attempt's hits were not all
    // handled (skipped by its BPF recursion guard): an incomplete run that
    // proves nothing either way, so the rerun's verdict stands, and the
    // detail keeps the first attempt's.
    let rerun: Vec<usize> = (0..specs.len())
        .filter(|&index| cells[index].status == Status::Fail && item_of[index].is_some())
        .collect();
    if !rerun.is_empty() {
        tracing::info!(kernel = %kernel.id, "rerunning {} failed scripts once", rerun.len());
        let again: Vec<RunItem> = rerun
            .iter()
            .filter_map(|&index| item_of[index].map(|item| items[item].clone()))
            .collect();
        let work_dir = kernel.work_dir.join("rerun");
        let attempts = boots.boot(kernel, &work_dir, &again, &modules, vm, &mut forward);
        for (&index, attempt) in rerun.iter().zip(&attempts) {
            let (spec, (applies, compiled)) = (&specs[index], &compiled[index]);
            let second = judge(
                spec,
                &kernel.id,
                &series,
                *applies,
                compiled,
                Some(&warned(index, attempt.run.clone())),
            )?;
            let first = &mut cells[index];
            if second.status == Status::Pass {
                let failed = std::mem::replace(first, second);
                if failed.skipped > 0 {
                    first.detail = format!(
                        "passed when rerun; the first attempt ran incomplete and failed: {}",
                        failed.detail
                    );
                } else {
                    let logs =
                        boots.keep(options.out_dir.as_deref(), &kernel.id, &spec.name, attempt);
                    first.status = Status::Flaky;
                    first.detail = format!("failed, then passed when rerun: {}", failed.detail);
                    first.logs = logs;
                }
                first.first_attempt = Some(Box::new(Attempt {
                    status: failed.status,
                    detail: failed.detail,
                    output: failed.output,
                    logs: failed.logs,
                }));
            } else {
                first.detail = format!("{} (and again when rerun)", first.detail);
            }
        }
    }
    if boots.count > 0 {
        kernel_run.boot_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    }
    kernel_run.logs = boots.kept;
    let in_guest: u64 = cells.iter().map(|cell| cell.elapsed_ms).sum();
    tracing::debug!(kernel = %kernel.id, boot_ms = kernel_run.boot_ms, in_guest_ms = in_guest, boots = boots.count, "booted and ran {} scripts", items.len());
    Ok((kernel_run, cells))
}

/// The modules an item loads, in load order (dependencies first): those
/// whose functions `artefact` probes and those `spec` names for its
/// workload. Their images are added to `images` (each once). Empty for a
/// script that needs none, whatever the kernel; an error says which module
/// could not be read and why.
fn guest_modules(
    facts: &KernelFacts,
    artefact: &tapmatrix_ir::Artefact,
    spec: &Spec,
    images: &mut Vec<GuestModule>,
) -> Result<Vec<String>, String> {
    let mut names = artefact.modules();
    let wanted = spec.modules.iter().filter(|name| !name.ends_with('?'));
    if names.is_empty() && wanted.clone().next().is_none() {
        return Ok(Vec::new());
    }
    for name in wanted {
        if !names.contains(name) {
            names.push(name.clone());
        }
    }
    let tree = match &facts.modules {
        tapmatrix_facts::KernelModules::Tree(tree) => tree,
        tapmatrix_facts::KernelModules::Missing(reason) => {
            return Err(format!(
                "needs the modules {} loaded, and this kernel's modules are missing: {reason}",
                names.join(", ")
            ));
        }
        tapmatrix_facts::KernelModules::Unknown => {
            return Err(format!(
                "needs the modules {} loaded, and this kernel's facts know no modules: run `tapmatrix kernels harvest` again",
                names.join(", ")
            ));
        }
    };
    // `NAME?`: where the kernel builds it as a module (the crypto driver
    // ext4 asks for until the kernel's own crc32c library replaced it).
    for name in spec
        .modules
        .iter()
        .filter_map(|name| name.strip_suffix('?'))
    {
        if !names.iter().any(|known| known == name)
            && tree
                .file(name)
                .map_err(|error| error.to_string())?
                .is_some()
        {
            names.push(name.to_owned());
        }
    }
    let order = tree
        .load_order(&names)
        .map_err(|error| format!("the modules it needs ({}): {error}", names.join(", ")))?;
    let load = order.iter().map(|module| module.name.clone()).collect();
    for module in order {
        if !images.iter().any(|known| known.name == module.name) {
            images.push(GuestModule {
                name: module.name,
                image: module.image,
            });
        }
    }
    Ok(load)
}

/// One item's run in one boot, with what its logs need.
struct ItemAttempt {
    run: ItemRun,
    /// The boot it ran in (1-based).
    boot: usize,
    /// The agent's messages about it, one JSON object a line.
    agent_log: String,
    /// Why its boot died, if it did (see
    /// [`tapmatrix_vm::InfraFailure::boot_died`]).
    died: Option<String>,
}

/// The boots of one kernel: their console logs, kept in memory until a
/// cell that is not a pass needs one written.
#[derive(Default)]
struct Boots {
    count: usize,
    consoles: Vec<Option<Vec<u8>>>,
    /// The console logs written, relative to the output directory.
    kept: Vec<String>,
}

impl Boots {
    /// Whether the last boot's console says the agent began its item at
    /// `position` (`run item N: NAME`).
    fn began(&self, position: usize, name: &str) -> bool {
        let line = format!("run item {position}: {name}");
        self.consoles
            .last()
            .and_then(Option::as_ref)
            .is_some_and(|console| memchr::memmem::find(console, line.as_bytes()).is_some())
    }

    /// Boots `kernel` once with `items` in `work_dir`; one attempt per
    /// item (all infra when the image cannot be built).
    fn boot(
        &mut self,
        kernel: &RunKernel,
        work_dir: &Path,
        items: &[RunItem],
        modules: &[GuestModule],
        vm: &VmOptions,
        forward: &mut dyn FnMut(&RunMessage),
    ) -> Vec<ItemAttempt> {
        self.count += 1;
        let boot = self.count;
        // Only the modules these items load: a boot without any has the
        // image it had before modules.
        let needed: Vec<GuestModule> = modules
            .iter()
            .filter(|module| items.iter().any(|item| item.modules.contains(&module.name)))
            .cloned()
            .collect();
        let reports = run_items_with_modules(
            &kernel.vmlinuz,
            items,
            &needed,
            work_dir,
            vm,
            RunSettings::default(),
            forward,
        );
        self.consoles
            .push(std::fs::read(work_dir.join("console.log")).ok());
        match reports {
            Ok(reports) => reports
                .iter()
                .map(|report| ItemAttempt {
                    run: item_run(report),
                    boot,
                    agent_log: agent_log(report),
                    died: match &report.end {
                        Err(failure) if failure.boot_died => Some(failure.error.clone()),
                        _ => None,
                    },
                })
                .collect(),
            Err(error) => {
                let why = format!("the guest image could not be built: {error}");
                items
                    .iter()
                    .map(|_| ItemAttempt {
                        run: ItemRun::infra(why.clone()),
                        boot,
                        agent_log: String::new(),
                        died: None,
                    })
                    .collect()
            }
        }
    }

    /// Writes the console log of `attempt`'s boot (once) and its agent log
    /// under `out/logs/KERNEL/`; the paths, relative to `out`.
    fn keep(
        &mut self,
        out: Option<&Path>,
        kernel: &str,
        script: &str,
        attempt: &ItemAttempt,
    ) -> Option<Logs> {
        let out = out?;
        let dir = Path::new("logs").join(kernel);
        let console = dir.join(format!("boot-{}.console.log", attempt.boot));
        let agent = dir.join(format!("{script}.boot-{}.agent.log", attempt.boot));
        let write = |relative: &Path, bytes: &[u8]| -> bool {
            let path = out.join(relative);
            let written = path
                .parent()
                .map_or(Ok(()), std::fs::create_dir_all)
                .and_then(|()| std::fs::write(&path, bytes));
            if let Err(error) = &written {
                tracing::warn!("could not keep the log {}: {error}", path.display());
            }
            written.is_ok()
        };
        let console_text = console.to_string_lossy().into_owned();
        if !self.kept.contains(&console_text) {
            let bytes = self
                .consoles
                .get(attempt.boot - 1)
                .cloned()
                .flatten()
                .unwrap_or_else(|| b"(the boot left no console log)\n".to_vec());
            if write(&console, &bytes) {
                self.kept.push(console_text.clone());
            }
        }
        let agent_text = if attempt.agent_log.is_empty() {
            "(the agent sent nothing about this script)\n"
        } else {
            attempt.agent_log.as_str()
        };
        write(&agent, agent_text.as_bytes());
        Some(Logs {
            console: console_text,
            agent: agent.to_string_lossy().into_owned(),
        })
    }
}

/// The agent's messages about an item, one JSON object a line, then how
/// the item ended when the boot failed under it.
fn agent_log(report: &ItemReport) -> String {
    let mut out = String::new();
    for message in &report.messages {
        if let Ok(line) = serde_json::to_string(message) {
            out.push_str(&line);
            out.push('\n');
        }
    }
    if let Err(failure) = &report.end {
        out.push_str(&format!(
            "# not finished: {}\n# console log tail:\n{}\n",
            failure.error, failure.console_tail
        ));
    }
    out
}

/// What the runner needs from an item's report: the agent's end as it
/// sent it (or the boot's failure), and the outputs.
fn item_run(report: &ItemReport) -> ItemRun {
    ItemRun {
        stdout: report.stdout(),
        stderr: report.stderr(),
        workload: WorkloadOutput {
            stdout: report.workload_output(OutputStream::Stdout),
            stderr: report.workload_output(OutputStream::Stderr),
        },
        end: report.end.clone().map_err(|failure| failure.error),
        rejected: report
            .messages
            .iter()
            .filter_map(|message| match message {
                RunMessage::EventRejected {
                    definition, error, ..
                } => Some(format!("`{definition}`: {error}")),
                _ => None,
            })
            .collect(),
    }
}

/// A spec that says its handlers run in the kernel (`in_kernel: true`),
/// run on a BPF back end that puts them there where it can, is an error
/// when they were forwarded instead (never rerun: compiling again gives
/// the same artefact).
fn expect_in_kernel(spec: &Spec, backend: crate::Backend, cell: &mut Cell) {
    let may_forward = matches!(backend, crate::Backend::Bpf | crate::Backend::BpfKprobes);
    if spec.in_kernel && may_forward && cell.backend.as_deref() == Some("bpf-forward") {
        cell.status = Status::Error;
        cell.detail = format!(
            "its handlers ran forwarded (bpf-forward), but its spec says they run in the kernel (in_kernel: true): some construct of {} has no BPF code",
            spec.script.display()
        );
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a test")]

    use super::*;

    #[test]
    fn a_forwarded_cell_of_an_in_kernel_spec_is_an_error_on_bpf_only() {
        let mut spec = Spec::inline("s", "probe begin {}".to_owned(), String::new(), 1);
        spec.in_kernel = true;
        let cell = |backend: &str| {
            let mut cell = Cell::new("s", "6.1", Status::Pass, "");
            cell.backend = Some(backend.to_owned());
            cell
        };
        let mut forwarded = cell("bpf-forward");
        expect_in_kernel(&spec, crate::Backend::Bpf, &mut forwarded);
        assert_eq!(forwarded.status, Status::Error);
        assert!(
            forwarded.detail.contains("in_kernel: true"),
            "{}",
            forwarded.detail
        );
        // Asked for forwarding, or in the kernel: no error.
        let mut asked = cell("bpf-forward");
        expect_in_kernel(&spec, crate::Backend::BpfForwarded, &mut asked);
        assert_eq!(asked.status, Status::Pass);
        let mut kernel = cell("bpf");
        expect_in_kernel(&spec, crate::Backend::BpfKprobes, &mut kernel);
        assert_eq!(kernel.status, Status::Pass);
        // A spec that does not say so.
        spec.in_kernel = false;
        let mut any = cell("bpf-forward");
        expect_in_kernel(&spec, crate::Backend::Bpf, &mut any);
        assert_eq!(any.status, Status::Pass);
    }
}
