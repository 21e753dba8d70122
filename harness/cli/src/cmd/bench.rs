//! `tapmatrix bench ...`: timings the project has targets for.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use tapmatrix_harvest::{Harvested, harvest_kernels};
use tapmatrix_kernels::FetchedKernel;
use tapmatrix_vm::{Accel, VmOptions, floor_many};

use tapmatrix_run::{
    Backend, FunctionEvents, RunKernel, RunOptions, SnapshotScope, Spec, Status as CellStatus,
    run_matrix,
};

use crate::cmd::kernels::{MatrixArgs, classify, fetch_all, harvested_ids, load_facts};

use crate::exit::{Status, infra_error, input_error};

/// `tapmatrix bench` subcommands.
#[derive(Subcommand)]
pub enum BenchCommand {
    /// Harvest wall time against its floor: booting the same kernels to a
    /// bare busybox shell that powers off, with the same parallelism.
    Harvest(HarvestBenchArgs),
    /// `tapmatrix run` of a script directory over the matrix against its
    /// floor: booting the same kernels bare, with the same parallelism.
    Run(RunBenchArgs),
    /// Per-event cost in the guest: a workload of one-byte reads timed in
    /// the guest with no probe, with a raw ftrace kprobe event on
    /// `vfs_read` (created by the workload itself, nothing reading the
    /// buffer), under `probe kernel.function("vfs_read") { n++ }` on the
    /// tracefs and the bpf back ends, and under an `@entry` pair on
    /// `vfs_read` (in the kernel, and forwarded), all in one boot per
    /// kernel.
    Event(EventBenchArgs),
    /// Setup time of many probe points in the guest: `probe syscall.* {
    /// n++ }` installed by each back end (events written and enabled, or
    /// BPF programs loaded and attached), until the workload is let go.
    Attach(AttachBenchArgs),
}

/// `tapmatrix bench attach` options.
#[derive(Args)]
pub struct AttachBenchArgs {
    /// Kernel ids of the matrix (default: every harvested kernel).
    ids: Vec<String>,
    /// The matrix and the cache.
    #[command(flatten)]
    matrix: MatrixArgs,
    /// The probe whose attach points are set up.
    #[arg(long, default_value = "syscall.*")]
    probe: String,
    /// Rounds per back end in the boot; each one's best counts.
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// Accelerator: auto, kvm or tcg.
    #[arg(long, env = tapmatrix_vm::ACCEL_ENV, default_value = "auto")]
    accel: Accel,
}

/// `tapmatrix bench event` options.
#[derive(Args)]
pub struct EventBenchArgs {
    /// Kernel ids of the matrix (default: every harvested kernel).
    ids: Vec<String>,
    /// The matrix and the cache.
    #[command(flatten)]
    matrix: MatrixArgs,
    /// One-byte reads the workload makes.
    #[arg(long, default_value_t = 200_000)]
    reads: u64,
    /// Rounds per variant in the boot; each variant's best counts.
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// Accelerator: auto, kvm or tcg.
    #[arg(long, env = tapmatrix_vm::ACCEL_ENV, default_value = "auto")]
    accel: Accel,
}

/// `tapmatrix bench run` options.
#[derive(Args)]
pub struct RunBenchArgs {
    /// Kernel ids of the matrix (default: every harvested kernel).
    ids: Vec<String>,
    /// The matrix and the cache.
    #[command(flatten)]
    matrix: MatrixArgs,
    /// The scripts and their specs.
    #[arg(long, default_value = "tests/scripts", value_name = "DIR")]
    scripts: PathBuf,
    /// A tapset directory added to the built-in library, as `stap -I` adds
    /// one (repeatable); its definitions shadow the built-in ones of the same name.
    #[arg(short = 'I', value_name = "DIR")]
    include: Vec<PathBuf>,
    /// Boots at a time (default: the number of cores).
    #[arg(short, long)]
    jobs: Option<usize>,
    /// Accelerator: auto (KVM where it boots kernels, else TCG), kvm or tcg.
    #[arg(long, env = tapmatrix_vm::ACCEL_ENV, default_value = "auto")]
    accel: Accel,
    /// Rounds to run; each side's best round counts.
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// The back end: tracefs, bpf, bpf-forward, bpf-kprobes or auto (as `tapmatrix run
    /// --backend`).
    #[arg(long, default_value = "auto", value_parser = crate::cmd::run::parse_backend)]
    backend: Backend,
    /// Run each script's setup, disk and workload with no probe at all (the
    /// script replaced by `probe begin {}`): what the workloads alone cost
    /// over the bare boots, the floor any tracer's run stands on. Modules
    /// a script loads only because it probes them are not loaded, and a
    /// workload a script ends early (`exit()` from a timer under `sleep
    /// 10`) runs to its end: leave such scripts out of `--scripts` for a
    /// floor.
    #[arg(long)]
    untraced: bool,
}

/// `tapmatrix bench harvest` options.
#[derive(Args)]
pub struct HarvestBenchArgs {
    /// Kernel ids of the matrix (default: all).
    ids: Vec<String>,
    /// The matrix and the cache.
    #[command(flatten)]
    matrix: MatrixArgs,
    /// Boots at a time (default: the number of cores).
    #[arg(short, long)]
    jobs: Option<usize>,
    /// Accelerator: auto (KVM where it boots kernels, else TCG), kvm or tcg.
    #[arg(long, env = tapmatrix_vm::ACCEL_ENV, default_value = "auto")]
    accel: Accel,
    /// Rounds to run; each side's best round counts.
    #[arg(long, default_value_t = 3)]
    rounds: u32,
}

/// Runs a `bench` subcommand.
pub fn run(command: BenchCommand) -> anyhow::Result<Status> {
    match command {
        BenchCommand::Harvest(args) => harvest(&args),
        BenchCommand::Run(args) => run_bench(&args),
        BenchCommand::Event(args) => event_bench(&args),
        BenchCommand::Attach(args) => attach_bench(&args),
    }
}

/// Times `tapmatrix kernels harvest --force` of the kernels (boot, raw
/// harvest, parse and store the facts) against booting the same kernels to
/// a bare busybox shell that powers off, with the same parallelism.
fn harvest(args: &HarvestBenchArgs) -> anyhow::Result<Status> {
    let cache = args.matrix.cache()?;
    let guard = cache.share().map_err(classify)?;
    let kernels = fetch_all(&guard, &args.matrix, &args.ids)?;
    let jobs = args.jobs.unwrap_or_else(tapmatrix_vm::default_jobs);
    let scratch = tempfile::tempdir()?;
    let options = VmOptions {
        accel: args.accel,
        ..VmOptions::new(cache.root())
    };
    let floor_pairs = |round: u32| floor_boots(&kernels, scratch.path(), round);
    // Warm the caches (unpacked kernels, images) so neither side pays for them.
    for kernel in &kernels {
        tapmatrix_vm::bootable_kernel(&kernel.vmlinuz, &options.cache_dir);
    }
    floor_many(&floor_pairs(0)[..1], &options, 1);
    // Alternate the two sides round by round and keep each side's best wall
    // time, so that load from other processes does not land on one side only.
    let mut best_floor = Duration::MAX;
    let mut best_harvest = Duration::MAX;
    for round in 1..=args.rounds.max(1) {
        let (floor_wall, floors) = timed(|| floor_many(&floor_pairs(round), &options, jobs));
        let (harvest_wall, harvests) =
            timed(|| harvest_kernels(&guard, &kernels, &options, jobs, true));
        for ((kernel, floor), harvest) in kernels.iter().zip(&floors).zip(harvests) {
            let floor = floor
                .as_ref()
                .map_err(|error| infra_error(anyhow::anyhow!("{}: {error}", kernel.id)))?;
            let wall = match harvest.outcome.map_err(infra_error)? {
                Harvested::Booted { wall } => wall,
                Harvested::Cached => Duration::ZERO,
            };
            println!(
                "round {round}: {}: bare boot {:.2}s, harvest boot {:.2}s",
                kernel.release,
                floor.as_secs_f64(),
                wall.as_secs_f64(),
            );
        }
        println!(
            "round {round}: all kernels: bare boot {:.2}s, harvest {:.2}s",
            floor_wall.as_secs_f64(),
            harvest_wall.as_secs_f64()
        );
        best_floor = best_floor.min(floor_wall);
        best_harvest = best_harvest.min(harvest_wall);
    }
    println!(
        "{} kernels, -j {jobs}, accel {}, best of {}: harvest {:.2}s, floor {:.2}s, ratio {:.2} (aim: 1.3)",
        kernels.len(),
        // After the boots: a KVM that failed its trial fell back to TCG.
        options.accel.resolve(&options).name(),
        args.rounds.max(1),
        best_harvest.as_secs_f64(),
        best_floor.as_secs_f64(),
        best_harvest.as_secs_f64() / best_floor.as_secs_f64()
    );
    Ok(Status::Success)
}

/// Times `tapmatrix run` of the scripts over the kernels (compile, boot,
/// run, judge) against booting the same kernels bare, with the same
/// parallelism, best of `rounds` each.
fn run_bench(args: &RunBenchArgs) -> anyhow::Result<Status> {
    if !args.scripts.is_dir() {
        return Err(input_error(anyhow::anyhow!(
            "{}: no such script directory (named by --scripts; its default is a checkout's tests/scripts)",
            args.scripts.display()
        )));
    }
    let mut specs = Spec::load_dir(&args.scripts).map_err(input_error)?;
    if args.untraced {
        specs = specs.into_iter().map(untraced).collect();
    }
    let ids = if args.ids.is_empty() {
        harvested_ids(&args.matrix)?
    } else {
        args.ids.clone()
    };
    let cache = args.matrix.cache()?;
    let guard = cache.share().map_err(classify)?;
    let fetched = fetch_all(&guard, &args.matrix, &ids)?;
    let jobs = args.jobs.unwrap_or_else(tapmatrix_vm::default_jobs);
    let options = RunOptions {
        tapset_dirs: args.matrix.tapset_dirs(&args.include)?,
        jobs,
        function_events: FunctionEvents::default(),
        backend: args.backend,
        vm: VmOptions {
            accel: args.accel,
            ..VmOptions::new(cache.root())
        },
        out_dir: None,
    };
    let scratch = tempfile::tempdir()?;
    let mut kernels = Vec::new();
    for kernel in &fetched {
        let id = kernel.id.to_string();
        kernels.push(RunKernel {
            facts: load_facts(&args.matrix, &id, input_error)?,
            id,
            vmlinuz: kernel.vmlinuz.clone(),
            work_dir: scratch.path().join(format!("run-{}", kernel.id)),
        });
        tapmatrix_vm::bootable_kernel(&kernel.vmlinuz, &options.vm.cache_dir);
    }
    let floor_pairs = |round: u32| floor_boots(&fetched, scratch.path(), round);
    let mut best_floor = Duration::MAX;
    let mut best_run = Duration::MAX;
    let mut cells = 0;
    for round in 1..=args.rounds.max(1) {
        let (floor_wall, floors) = timed(|| floor_many(&floor_pairs(round), &options.vm, jobs));
        if let Some(error) = floors.into_iter().find_map(Result::err) {
            return Err(infra_error(anyhow::anyhow!("bare boot: {error}")));
        }
        let (run_wall, results) = timed(|| run_matrix(&specs, &kernels, &options, &|_, _| {}));
        let results = results.map_err(input_error)?;
        cells = results.cells.len();
        let failing: Vec<_> = results
            .cells
            .iter()
            .filter(|cell| !matches!(cell.status, CellStatus::Pass | CellStatus::NotAvailable))
            .collect();
        let passed = cells - failing.len();
        println!(
            "round {round}: bare boot {:.2}s, run {:.2}s ({passed} of {cells} cells pass or n/a)",
            floor_wall.as_secs_f64(),
            run_wall.as_secs_f64()
        );
        // A failing cell's time is not the suite's: say which, and why.
        if !args.untraced {
            for cell in failing {
                println!(
                    "  {}@{}: {:?}: {}",
                    cell.script,
                    cell.kernel,
                    cell.status,
                    cell.detail.lines().next().unwrap_or_default()
                );
            }
        }
        best_floor = best_floor.min(floor_wall);
        best_run = best_run.min(run_wall);
    }
    println!(
        "{} kernels, {} scripts{}, {cells} cells, back end {:?}, -j {jobs}, accel {}, best of {}: run {:.2}s, floor {:.2}s, ratio {:.2} (aim: 1.3)",
        kernels.len(),
        specs.len(),
        if args.untraced { " untraced" } else { "" },
        args.backend,
        options.vm.accel.resolve(&options.vm).name(),
        args.rounds.max(1),
        best_run.as_secs_f64(),
        best_floor.as_secs_f64(),
        best_run.as_secs_f64() / best_floor.as_secs_f64()
    );
    Ok(Status::Success)
}

/// `spec` with its script replaced by one that attaches nothing and its
/// output left unjudged: its setup, disk, modules and workload run as
/// they would under the script.
fn untraced(spec: Spec) -> Spec {
    Spec {
        text: Some("probe begin {}\n".to_owned()),
        spec_file: None,
        snapshot: SnapshotScope::Unchecked,
        expect_error: false,
        in_kernel: false,
        ..spec
    }
}

/// The bare boots of one round: each kernel with its own work directory.
fn floor_boots(kernels: &[FetchedKernel], scratch: &Path, round: u32) -> Vec<(PathBuf, PathBuf)> {
    kernels
        .iter()
        .map(|kernel| {
            let dir = scratch.join(format!("floor{round}-{}", kernel.id));
            (kernel.vmlinuz.clone(), dir)
        })
        .collect()
}

/// Runs `work` and measures its wall time.
fn timed<R>(work: impl FnOnce() -> R) -> (Duration, R) {
    let started = Instant::now();
    let result = work();
    (started.elapsed(), result)
}

/// The variants of `bench event`: name, back end, script.
/// One way of running the event workload.
struct EventVariant {
    name: &'static str,
    backend: Backend,
    script: &'static str,
    /// The workload creates and enables a raw kprobe event on `vfs_read`
    /// around its reads (and removes it).
    raw_event: bool,
}

/// An empty script: no events, no programs, so the agent reads no buffer.
const NO_PROBE: &str = "probe begin { }\n";

const COUNTING: &str =
    "global n\nprobe kernel.function(\"vfs_read\") { n++ }\nprobe end { if (n < 0) println(n) }\n";

/// An `@entry` pair: the entry half saves `$count`, the return adds it.
const ENTRY_PAIR: &str = "global n\nprobe kernel.function(\"vfs_read\").return { n += @entry($count) }\nprobe end { if (n < 0) println(n) }\n";

const EVENT_VARIANTS: [EventVariant; 7] = [
    EventVariant {
        name: "no probe",
        backend: Backend::Bpf,
        script: NO_PROBE,
        raw_event: false,
    },
    EventVariant {
        name: "raw ftrace kprobe event, no reader",
        backend: Backend::Bpf,
        script: NO_PROBE,
        raw_event: true,
    },
    EventVariant {
        name: "n++ (tracefs)",
        backend: Backend::Tracefs,
        script: COUNTING,
        raw_event: false,
    },
    EventVariant {
        name: "n++ (bpf-kprobes)",
        backend: Backend::BpfKprobes,
        script: COUNTING,
        raw_event: false,
    },
    EventVariant {
        name: "n++ (bpf: fentry where trampolines serve)",
        backend: Backend::Bpf,
        script: COUNTING,
        raw_event: false,
    },
    EventVariant {
        name: "@entry pair (bpf: in the kernel)",
        backend: Backend::Bpf,
        script: ENTRY_PAIR,
        raw_event: false,
    },
    EventVariant {
        name: "@entry pair (bpf-forward: both halves to the runtime)",
        backend: Backend::BpfForwarded,
        script: ENTRY_PAIR,
        raw_event: false,
    },
];

/// The raw event the workload makes for itself.
const RAW_EVENT: &str = "tapbench/vfs_read";

/// The marker the workload writes to the console with its start and end
/// times in microseconds (busybox `date` has no nanoseconds; `adjtimex`
/// prints the time in microseconds).
const EVENT_MARK: &str = "tapmatrix-bench-us";

/// Runs `tapmatrix bench event`.
fn event_bench(args: &EventBenchArgs) -> anyhow::Result<Status> {
    let ids = if args.ids.is_empty() {
        harvested_ids(&args.matrix)?
    } else {
        args.ids.clone()
    };
    let cache = args.matrix.cache()?;
    let guard = cache.lock().map_err(classify)?;
    let fetched = fetch_all(&guard, &args.matrix, &ids)?;
    let scratch = tempfile::tempdir()?;
    let options = VmOptions {
        accel: args.accel,
        timeout: Duration::from_secs(900),
        ..VmOptions::new(cache.root())
    };
    let now = "$(adjtimex | awk '/tv_sec/ {s=$2} /tv_usec/ {u=$2} END {print s*1000000+u}')";
    let command = format!(
        "s={now}; dd if=/dev/zero of=/dev/null bs=1 count={} 2>/dev/null; e={now}; echo {EVENT_MARK} $s $e >&2",
        args.reads
    );
    // The raw event on, the same reads, the event off and gone.
    let tracing = "/sys/kernel/tracing";
    let raw_command = format!(
        "echo 'p:{RAW_EVENT} vfs_read' >> {tracing}/kprobe_events && echo 1 > {tracing}/events/{RAW_EVENT}/enable && {command}; \
         echo 0 > {tracing}/events/{RAW_EVENT}/enable; echo '-:{RAW_EVENT}' >> {tracing}/kprobe_events"
    );
    for kernel in &fetched {
        let id = kernel.id.to_string();
        let facts = load_facts(&args.matrix, &id, input_error)?;
        let mut tapsets = bench_tapsets(&args.matrix, &facts)?;
        let mut items = Vec::new();
        for round in 0..args.rounds.max(1) {
            for variant in &EVENT_VARIANTS {
                let artefact = compile_for_bench(
                    scratch.path(),
                    items.len(),
                    variant.script,
                    &mut tapsets,
                    &facts,
                    variant.backend,
                )
                .map_err(|why| {
                    input_error(anyhow::anyhow!(
                        "{} does not compile for {id}: {why}",
                        variant.name
                    ))
                })?;
                items.push(tapmatrix_wire::RunItem {
                    name: format!("{} #{round}", variant.name),
                    artefact,
                    workload: tapmatrix_ir::Workload {
                        command: if variant.raw_event {
                            raw_command.clone()
                        } else {
                            command.clone()
                        },
                        timeout_ms: 600_000,
                        target: None,
                    },
                    modules: Vec::new(),
                    setup: String::new(),
                    disk_mib: 0,
                });
            }
        }
        let work_dir = scratch.path().join(format!("event-{id}"));
        let reports = boot_items(&kernel.vmlinuz, &items, &work_dir, &options)?;
        // Each workload's mark line, from what it wrote on its stderr.
        let times: Vec<f64> = reports
            .iter()
            .filter_map(|report| {
                let stderr: String = report
                    .messages
                    .iter()
                    .filter_map(|message| match message {
                        tapmatrix_ir::RunMessage::WorkloadOutput { text, .. } => {
                            Some(text.as_str())
                        }
                        _ => None,
                    })
                    .collect();
                stderr.lines().find_map(|line| {
                    let rest = &line[line.find(EVENT_MARK)? + EVENT_MARK.len()..];
                    let mut words = rest.split_whitespace().map(str::parse::<f64>);
                    match (words.next(), words.next()) {
                        (Some(Ok(s)), Some(Ok(e))) => Some(e - s),
                        _ => None,
                    }
                })
            })
            .collect();
        if times.len() != items.len() || reports.len() != items.len() {
            return Err(infra_error(anyhow::anyhow!(
                "{id}: {} of {} workloads reported their time (logs: {})",
                times.len(),
                items.len(),
                work_dir.display()
            )));
        }
        let best = |variant: usize| {
            times
                .iter()
                .skip(variant)
                .step_by(EVENT_VARIANTS.len())
                .copied()
                .fold(f64::MAX, f64::min)
        };
        // The agent's setup of each variant (events or programs on).
        let setup = |variant: usize| {
            reports
                .iter()
                .skip(variant)
                .step_by(EVENT_VARIANTS.len())
                .filter_map(|report| report.end.as_ref().ok().map(|end| end.setup_ms))
                .min()
                .unwrap_or(0)
        };
        let floor = best(0);
        println!(
            "{id}: {} one-byte reads, best of {}: no probe {:.1} ms ({:.2} µs per read)",
            args.reads,
            args.rounds.max(1),
            floor / 1000.0,
            floor / args.reads as f64
        );
        for (index, variant) in EVENT_VARIANTS.iter().enumerate().skip(1) {
            let time = best(index);
            println!(
                "{id}:   {}: {:.1} ms, +{:.2} µs per event (set up in {} ms)",
                variant.name,
                time / 1000.0,
                (time - floor) / args.reads as f64,
                setup(index)
            );
        }
    }
    drop(guard);
    Ok(Status::Success)
}

/// The tapset library a bench compiles against on one kernel (an error
/// loading it is kept for the compile to report).
fn bench_tapsets(
    matrix: &MatrixArgs,
    facts: &tapmatrix_facts::KernelFacts,
) -> anyhow::Result<Result<tapmatrix_resolve::TapsetLibrary, String>> {
    Ok(tapmatrix_resolve::TapsetLibrary::load(
        &matrix.tapset_dirs(&[])?,
        tapmatrix_resolve::kernel_profile(facts),
    )
    .map_err(|error| error.to_string()))
}

/// One boot of `vmlinuz` running `items` (a failed boot is infrastructure).
fn boot_items(
    vmlinuz: &Path,
    items: &[tapmatrix_wire::RunItem],
    work_dir: &Path,
    options: &VmOptions,
) -> anyhow::Result<Vec<tapmatrix_vm::ItemReport>> {
    tapmatrix_vm::run_items(
        vmlinuz,
        items,
        work_dir,
        options,
        tapmatrix_vm::RunSettings::default(),
        &mut |_| {},
    )
    .map_err(|e| infra_error(anyhow::anyhow!("{e}")))
}

/// `script` (written as the `n`th bench script under `dir`) compiled for
/// the kernel `facts` describes by `backend`.
fn compile_for_bench(
    dir: &Path,
    n: usize,
    script: &str,
    tapsets: &mut Result<tapmatrix_resolve::TapsetLibrary, String>,
    facts: &tapmatrix_facts::KernelFacts,
    backend: Backend,
) -> Result<tapmatrix_ir::Artefact, String> {
    let path = dir.join(format!("bench{n}.stp"));
    std::fs::write(&path, script).map_err(|error| format!("{}: {error}", path.display()))?;
    match tapmatrix_run::compile(
        path,
        None,
        tapsets,
        facts,
        FunctionEvents::default(),
        backend,
    ) {
        tapmatrix_run::Compiled::Ready(artefact) => Ok(*artefact),
        other => Err(format!("{other:?}")),
    }
}

/// Runs `tapmatrix bench attach`.
fn attach_bench(args: &AttachBenchArgs) -> anyhow::Result<Status> {
    let ids = if args.ids.is_empty() {
        harvested_ids(&args.matrix)?
    } else {
        args.ids.clone()
    };
    let cache = args.matrix.cache()?;
    let guard = cache.share().map_err(classify)?;
    let fetched = fetch_all(&guard, &args.matrix, &ids)?;
    let scratch = tempfile::tempdir()?;
    let options = VmOptions {
        accel: args.accel,
        timeout: Duration::from_secs(900),
        ..VmOptions::new(cache.root())
    };
    let script = format!(
        "global n\nprobe {} {{ n++ }}\nprobe end {{ if (n < 0) println(n) }}\n",
        args.probe
    );
    let backends = [("tracefs", Backend::Tracefs), ("bpf", Backend::Bpf)];
    for kernel in &fetched {
        let id = kernel.id.to_string();
        let facts = load_facts(&args.matrix, &id, input_error)?;
        let mut tapsets = bench_tapsets(&args.matrix, &facts)?;
        let mut items = Vec::new();
        let mut points = Vec::new();
        for (name, backend) in backends {
            let artefact = compile_for_bench(
                scratch.path(),
                items.len(),
                &script,
                &mut tapsets,
                &facts,
                backend,
            )
            .map_err(|why| {
                input_error(anyhow::anyhow!("{} on {name} for {id}: {why}", args.probe))
            })?;
            points.push(match &artefact {
                tapmatrix_ir::Artefact::Tracefs(bundle) => bundle.events.len(),
                tapmatrix_ir::Artefact::Bpf(bpf) => bpf.programs.len(),
            });
            for round in 0..args.rounds.max(1) {
                items.push(tapmatrix_wire::RunItem {
                    name: format!("{name} #{round}"),
                    artefact: artefact.clone(),
                    workload: tapmatrix_ir::Workload {
                        command: "true".to_owned(),
                        timeout_ms: 300_000,
                        target: None,
                    },
                    modules: Vec::new(),
                    setup: String::new(),
                    disk_mib: 0,
                });
            }
        }
        let work_dir = scratch.path().join(format!("attach-{id}"));
        let reports = boot_items(&kernel.vmlinuz, &items, &work_dir, &options)?;
        let rounds = args.rounds.max(1) as usize;
        for (index, (name, _)) in backends.iter().enumerate() {
            let mut best: Option<(u64, u64)> = None;
            for report in &reports[index * rounds..(index + 1) * rounds] {
                match &report.end {
                    Ok(end) if end.reason == tapmatrix_ir::RunEnd::WorkloadDone => {
                        let times = (end.setup_ms, end.elapsed_ms);
                        best = Some(best.map_or(times, |b| b.min(times)));
                    }
                    Ok(end) => {
                        return Err(infra_error(anyhow::anyhow!(
                            "{id}: {}: {:?} ({})",
                            report.name,
                            end.reason,
                            report.stderr()
                        )));
                    }
                    Err(infra) => {
                        return Err(infra_error(anyhow::anyhow!(
                            "{id}: {}: {} (console log: {})",
                            report.name,
                            infra.error,
                            infra.console_log.display()
                        )));
                    }
                }
            }
            if let Some((setup, whole)) = best {
                println!(
                    "{id}: {} on {name}: {} attach points, best of {rounds}: set up in {setup} ms ({:.2} ms per point), item {whole} ms",
                    args.probe,
                    points[index],
                    setup as f64 / points[index].max(1) as f64,
                );
            }
        }
    }
    drop(guard);
    Ok(Status::Success)
}
