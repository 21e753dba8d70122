//! `tapmatrix bench ...`: timings the project has targets for.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use tapmatrix_harvest::{Harvested, harvest_kernels};
use tapmatrix_kernels::FetchedKernel;
use tapmatrix_vm::{Accel, VmOptions, floor_many};

use tapmatrix_run::{
    Backend, FunctionEvents, RunKernel, RunOptions, Spec, Status as CellStatus, run_matrix,
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
    /// the guest with no probe, a kprobe event on `vfs_read` with an empty
    /// handler, and `probe kernel.function("vfs_read") { n++ }` on the
    /// tracefs and the bpf back ends, all in one boot per kernel.
    Event(EventBenchArgs),
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
    #[arg(long, default_value = "auto")]
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
    /// Tapset directories (repeatable; default: the built-in library).
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
    let specs = Spec::load_dir(&args.scripts).map_err(input_error)?;
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
        backend: tapmatrix_run::Backend::default(),
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
        let passed = results
            .cells
            .iter()
            .filter(|cell| matches!(cell.status, CellStatus::Pass | CellStatus::NotAvailable))
            .count();
        println!(
            "round {round}: bare boot {:.2}s, run {:.2}s ({passed} of {cells} cells pass or n/a)",
            floor_wall.as_secs_f64(),
            run_wall.as_secs_f64()
        );
        best_floor = best_floor.min(floor_wall);
        best_run = best_run.min(run_wall);
    }
    println!(
        "{} kernels, {} scripts, {cells} cells, -j {jobs}, accel {}, best of {}: run {:.2}s, floor {:.2}s, ratio {:.2} (aim: 1.3)",
        kernels.len(),
        specs.len(),
        options.vm.accel.resolve(&options.vm).name(),
        args.rounds.max(1),
        best_run.as_secs_f64(),
        best_floor.as_secs_f64(),
        best_run.as_secs_f64() / best_floor.as_secs_f64()
    );
    Ok(Status::Success)
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
const EVENT_VARIANTS: [(&str, Backend, &str); 4] = [
    ("no probe", Backend::Tracefs, "probe begin { }\n"),
    (
        "kprobe event, empty handler (tracefs)",
        Backend::Tracefs,
        "probe kernel.function(\"vfs_read\") { }\n",
    ),
    (
        "n++ (tracefs)",
        Backend::Tracefs,
        "global n\nprobe kernel.function(\"vfs_read\") { n++ }\nprobe end { if (n < 0) println(n) }\n",
    ),
    (
        "n++ (bpf)",
        Backend::Bpf,
        "global n\nprobe kernel.function(\"vfs_read\") { n++ }\nprobe end { if (n < 0) println(n) }\n",
    ),
];

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
    for kernel in &fetched {
        let id = kernel.id.to_string();
        let facts = load_facts(&args.matrix, &id, input_error)?;
        let mut tapsets = tapmatrix_resolve::TapsetLibrary::load(
            &args.matrix.tapset_dirs(&[])?,
            tapmatrix_resolve::kernel_profile(&facts),
        )
        .map_err(|error| error.to_string());
        let mut items = Vec::new();
        for round in 0..args.rounds.max(1) {
            for (name, backend, script) in EVENT_VARIANTS {
                let path = scratch.path().join(format!("bench{}.stp", items.len()));
                std::fs::write(&path, script)?;
                let compiled = tapmatrix_run::compile(
                    path,
                    None,
                    &mut tapsets,
                    &facts,
                    FunctionEvents::default(),
                    backend,
                );
                let artefact = match compiled {
                    tapmatrix_run::Compiled::Ready(artefact) => *artefact,
                    other => {
                        return Err(input_error(anyhow::anyhow!(
                            "{name} does not compile for {id}: {other:?}"
                        )));
                    }
                };
                items.push(tapmatrix_wire::RunItem {
                    name: format!("{name} #{round}"),
                    artefact,
                    workload: tapmatrix_ir::Workload {
                        command: command.clone(),
                        timeout_ms: 600_000,
                        target: None,
                    },
                });
            }
        }
        let work_dir = scratch.path().join(format!("event-{id}"));
        let reports = tapmatrix_vm::run_items(
            &kernel.vmlinuz,
            &items,
            &work_dir,
            &options,
            tapmatrix_vm::RunSettings::default(),
            &mut |_| {},
        )
        .map_err(|e| infra_error(anyhow::anyhow!("{e}")))?;
        let console = std::fs::read_to_string(work_dir.join("console.log")).unwrap_or_default();
        let times: Vec<f64> = console
            .lines()
            .filter_map(|line| {
                let rest = &line[line.find(EVENT_MARK)? + EVENT_MARK.len()..];
                let mut words = rest.split_whitespace().map(str::parse::<f64>);
                match (words.next(), words.next()) {
                    (Some(Ok(s)), Some(Ok(e))) => Some(e - s),
                    _ => None,
                }
            })
            .collect();
        if times.len() != items.len() || reports.len() != items.len() {
            return Err(infra_error(anyhow::anyhow!(
                "{id}: {} of {} workloads reported their time (console log: {})",
                times.len(),
                items.len(),
                work_dir.join("console.log").display()
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
        let floor = best(0);
        println!(
            "{id}: {} one-byte reads, best of {}: no probe {:.1} ms ({:.2} µs per read)",
            args.reads,
            args.rounds.max(1),
            floor / 1000.0,
            floor / args.reads as f64
        );
        for (variant, (name, _, _)) in EVENT_VARIANTS.iter().enumerate().skip(1) {
            let time = best(variant);
            println!(
                "{id}:   {name}: {:.1} ms, +{:.2} µs per event",
                time / 1000.0,
                (time - floor) / args.reads as f64
            );
        }
    }
    drop(guard);
    Ok(Status::Success)
}
