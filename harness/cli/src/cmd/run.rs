//! `tapmatrix run [SCRIPT...|DIR] [-e SCRIPT] [-c CMD] [--kernels ...]`:
//! every script on every kernel, one boot per kernel; a script with a spec
//! is judged against it and its snapshot, a script without one (and `-e`)
//! has its output printed per kernel, as `stap` would print it. And
//! `tapmatrix diff-output`, how one script's output differs between two
//! kernels.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{Context, anyhow};
use clap::Args;
use tapmatrix_ir::{OutputStream, RunMessage};
use tapmatrix_kernels::CacheGuard;
use tapmatrix_report::{Format, ShardId, compare, plan};
use tapmatrix_run::{
    Backend, Cell, Compiled, FunctionEvents, Results, RunKernel, RunOptions, SnapshotScope, Spec,
    Status as CellStatus, diff, run_matrix,
};
use tapmatrix_vm::{Accel, VmOptions};

use crate::cmd::kernels::{MatrixArgs, classify, fetch_all, harvested_ids, load_facts, print};
use crate::cmd::report::{RenderArgs, costs, matrix_order, parse_format, read_results, run_info};
use crate::exit::{Status, infra_error, input_error};

/// `tapmatrix run` options.
#[derive(Args)]
pub struct RunArgs {
    /// The matrix and the cache.
    #[command(flatten)]
    pub matrix: MatrixArgs,
    /// Scripts, or directories of scripts with their specs (default: tests/scripts).
    pub paths: Vec<PathBuf>,
    /// Run this script text (like `stap -e`): its output is printed, not judged.
    #[arg(short = 'e', value_name = "SCRIPT")]
    pub script: Option<String>,
    /// The workload of `-e` or of the scripts named (like `stap -c`):
    /// `target()` is its pid; what it prints is shown marked `[workload]`.
    #[arg(short = 'c', value_name = "CMD")]
    pub command: Option<String>,
    /// Judge scripts without a spec too (against their snapshots, with the
    /// spec defaults), instead of printing their output.
    #[arg(long)]
    pub judge: bool,
    /// Kernel ids, comma-separated (default: every harvested kernel of the matrix).
    #[arg(long, value_delimiter = ',', value_name = "ID,...")]
    pub kernels: Vec<String>,
    /// Kernels booted at once (default: the number of cores).
    #[arg(short, long)]
    pub jobs: Option<usize>,
    /// A tapset directory added to the built-in library, as `stap -I` adds
    /// one (repeatable); its definitions shadow the built-in ones of the same name.
    #[arg(short = 'I', value_name = "DIR")]
    pub include: Vec<PathBuf>,
    /// Seconds a script without a spec may run.
    #[arg(long, default_value_t = 30)]
    pub timeout: u64,
    /// Accelerator: auto (KVM where it boots kernels, else TCG), kvm or tcg.
    #[arg(long, env = tapmatrix_vm::ACCEL_ENV, default_value = "auto")]
    pub accel: Accel,
    /// Serve function probes with fprobe events (`f:`) on kernels that have
    /// them, rather than kprobes (cheaper to set up in a guest).
    #[arg(long)]
    pub fprobes: bool,
    /// The back end: tracefs (ftrace events, handlers in the guest's
    /// runtime), bpf (our own BPF programs: handlers in the kernel where
    /// they can run there, else forwarded hits), bpf-forward (BPF programs
    /// that only forward hits), auto (bpf where the handlers run in the
    /// kernel, else tracefs, else BPF programs that forward hits).
    #[arg(long, default_value = "auto", value_parser = parse_backend)]
    pub backend: Backend,
    /// Print what each back end built for each kernel (tracefs event
    /// definitions, BPF maps and a disassembly), like `stap -p4`, and do
    /// not run.
    #[arg(long)]
    pub dump: bool,
    /// Where results.json, index.html, the failing cells' expected, actual
    /// and diff, and the logs of every cell that is not a pass go.
    #[arg(long, default_value = "target/tapmatrix-run", value_name = "DIR")]
    pub out: PathBuf,
    /// How judged scripts are printed: table, json, ktap, junit, kcidb,
    /// mail or html.
    #[arg(long, default_value = "table", value_parser = parse_format)]
    pub format: Format,
    /// Compare with this results.json: exit 1 only when a cell regressed
    /// (good there, failing here, the script unchanged).
    #[arg(long, value_name = "FILE")]
    pub baseline: Option<PathBuf>,
    /// Run shard I of N of the plan `tapmatrix plan --shards N` prints
    /// (the same --costs, --kernels and scripts give the same plan).
    #[arg(long, value_name = "I/N")]
    pub shard: Option<ShardId>,
    /// A previous results.json whose times are the plan's costs (with --shard).
    #[arg(long, value_name = "FILE")]
    pub costs: Option<PathBuf>,
    /// An id for the run, recorded in results.json (KCIDB ids use it).
    #[arg(long, value_name = "ID")]
    pub run_id: Option<String>,
    /// Renderer settings.
    #[command(flatten)]
    pub render: RenderArgs,
}

/// `tapmatrix diff-output` options.
#[derive(Args)]
pub struct DiffOutputArgs {
    /// The matrix and the cache.
    #[command(flatten)]
    pub matrix: MatrixArgs,
    /// The script (its spec beside it gives the workload).
    pub script: PathBuf,
    /// The two kernels, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        num_args = 1,
        required = true,
        value_name = "A,B"
    )]
    pub kernels: Vec<String>,
    /// A tapset directory added to the built-in library, as `stap -I` adds
    /// one (repeatable); its definitions shadow the built-in ones of the same name.
    #[arg(short = 'I', value_name = "DIR")]
    pub include: Vec<PathBuf>,
    /// Accelerator: auto (KVM where it boots kernels, else TCG), kvm or tcg.
    #[arg(long, env = tapmatrix_vm::ACCEL_ENV, default_value = "auto")]
    pub accel: Accel,
}

/// Runs `tapmatrix run`.
pub fn run(args: &RunArgs) -> anyhow::Result<Status> {
    let mut specs = specs_of(args)?;
    let baseline = args.baseline.as_deref().map(read_results).transpose()?;
    let mut kernels = args.kernels.clone();
    if let Some(shard) = args.shard {
        if kernels.is_empty() {
            kernels = matrix_order(&args.matrix)?;
        }
        let names: Vec<String> = specs.iter().map(|s| s.name.clone()).collect();
        let plan = plan(&kernels, &names, &costs(args.costs.as_deref())?, shard.of);
        let Some(mine) = plan.into_iter().find(|s| s.id.index == shard.index) else {
            return Err(input_error(anyhow!("no shard {shard} in the plan")));
        };
        kernels = mine.kernels;
        if let Some(scripts) = mine.scripts {
            specs.retain(|spec| scripts.contains(&spec.name));
        }
        eprintln!(
            "shard {shard}: kernels {}; {} scripts",
            if kernels.is_empty() {
                "none".to_owned()
            } else {
                kernels.join(", ")
            },
            specs.len()
        );
    }
    let shown = |name: &str| {
        specs
            .iter()
            .any(|spec| spec.name == name && spec.snapshot == SnapshotScope::Unchecked)
    };
    let settings = Settings {
        tapset_dirs: args.matrix.tapset_dirs(&args.include)?,
        jobs: args.jobs,
        accel: args.accel,
        function_events: if args.fprobes {
            FunctionEvents::Fprobes
        } else {
            FunctionEvents::Kprobes
        },
        backend: args.backend,
        live: specs.len() == 1 && shown(&specs[0].name),
        out_dir: Some(args.out.clone()),
    };
    if args.dump {
        return dump(&args.matrix, &specs, &kernels, &settings);
    }
    let mut results = if kernels.is_empty() && args.shard.is_some() {
        // An empty shard: nothing to run.
        Results::new(run_info(None))
    } else {
        run_specs(&args.matrix, &specs, &kernels, &settings)?
    };
    results.run = run_info(args.run_id.as_deref());
    results.run.shard = args.shard;
    write_results(&args.out, &results)?;
    let (shown_cells, judged): (Vec<Cell>, Vec<Cell>) = results
        .cells
        .iter()
        .cloned()
        .partition(|cell| shown(&cell.script));
    if !shown_cells.is_empty() {
        show(
            &shown_cells,
            &results,
            settings.live && results.kernels.len() == 1,
        )?;
    }
    if !judged.is_empty() {
        print(&tapmatrix_report::render(
            &Results {
                cells: judged,
                ..results.clone()
            },
            args.format,
            &args.render.options(),
        ))?;
    }
    eprintln!("results: {}", args.out.join("results.json").display());
    if let Some(base) = &baseline {
        let comparison = compare(base, &results);
        eprint!("{}", comparison.render());
        if comparison.regressions().next().is_some() {
            return Ok(Status::Failed);
        }
        return Ok(
            if results.cells.iter().any(|c| c.status == CellStatus::Infra) {
                Status::Infra
            } else {
                Status::Success
            },
        );
    }
    Ok(match results.exit_code() {
        0 => Status::Success,
        3 => Status::Infra,
        _ => Status::Failed,
    })
}

/// Runs `tapmatrix diff-output`.
pub fn diff_output(args: &DiffOutputArgs) -> anyhow::Result<Status> {
    let [a, b] = args.kernels.as_slice() else {
        return Err(input_error(anyhow!(
            "--kernels takes exactly two kernel ids, like --kernels 5.10,7.3"
        )));
    };
    let spec = Spec::load(&args.script).map_err(input_error)?;
    let settings = Settings {
        tapset_dirs: args.matrix.tapset_dirs(&args.include)?,
        jobs: Some(2),
        accel: args.accel,
        function_events: FunctionEvents::default(),
        backend: Backend::default(),
        live: false,
        out_dir: None,
    };
    let results = run_specs(
        &args.matrix,
        std::slice::from_ref(&spec),
        &args.kernels,
        &settings,
    )?;
    let output = |id: &str| -> anyhow::Result<String> {
        let cell = results
            .cell(&spec.name, id)
            .with_context(|| format!("no result for kernel {id}"))?;
        match (&cell.output, cell.status) {
            (Some(output), _) => Ok(output.clone()),
            (None, CellStatus::Infra) => Err(infra_error(anyhow!("{id}: {}", cell.detail))),
            (None, _) => Ok(format!("[{}: {}]\n", cell.status.word(), cell.detail)),
        }
    };
    let (left, right) = (output(a)?, output(b)?);
    if left == right {
        println!("{}: the output is the same on {a} and {b}", spec.name);
        return Ok(Status::Success);
    }
    print(&diff(&left, &right, a, b))?;
    Ok(Status::Failed)
}

/// The specs to run: `-e` text as it is (named `<input>`), scripts with
/// their specs; a script without a spec is shown, not judged, unless
/// `--judge`.
fn specs_of(args: &RunArgs) -> anyhow::Result<Vec<Spec>> {
    let workload = args.command.clone().unwrap_or_default();
    if let Some(text) = &args.script {
        if !args.paths.is_empty() {
            return Err(input_error(anyhow!(
                "give either -e SCRIPT or script paths, not both"
            )));
        }
        return Ok(vec![Spec::inline(
            "-e",
            text.clone(),
            workload,
            args.timeout,
        )]);
    }
    let paths = if args.paths.is_empty() {
        let default = PathBuf::from("tests/scripts");
        if !default.is_dir() {
            return Err(input_error(anyhow!(
                "no script given: name scripts or directories of scripts, or give one with -e (the default, {}, is not here)",
                default.display()
            )));
        }
        vec![default]
    } else {
        args.paths.clone()
    };
    let mut specs = Vec::new();
    for path in &paths {
        if path.is_dir() {
            specs.extend(Spec::load_dir(path).map_err(input_error)?);
        } else if path.exists() {
            let mut spec = Spec::load(path).map_err(input_error)?;
            if let Some(command) = &args.command {
                spec.workload = command.clone();
            }
            if spec.spec_file.is_none() {
                spec.timeout_s = args.timeout;
            }
            specs.push(spec);
        } else {
            return Err(input_error(anyhow!(
                "{}: no such script or directory",
                path.display()
            )));
        }
    }
    if specs.is_empty() {
        return Err(input_error(anyhow!(
            "no scripts (*.stp) in {}",
            paths[0].display()
        )));
    }
    if args.judge {
        for spec in &mut specs {
            if spec.spec_file.is_none() {
                spec.snapshot = SnapshotScope::Shared;
            }
        }
    }
    let mut names = std::collections::BTreeSet::new();
    if let Some(twice) = specs.iter().find(|spec| !names.insert(spec.name.as_str())) {
        return Err(input_error(anyhow!(
            "two scripts are named `{}`: results are kept by name, rename one",
            twice.name
        )));
    }
    Ok(specs)
}

/// How `run_specs` runs.
struct Settings {
    tapset_dirs: Vec<PathBuf>,
    jobs: Option<usize>,
    accel: Accel,
    function_events: FunctionEvents,
    /// The back end.
    backend: Backend,
    /// Print the script's output as it arrives (one script shown, not
    /// judged: when it runs on one kernel).
    live: bool,
    /// Where the logs of cells that are not a pass go.
    out_dir: Option<PathBuf>,
}

/// Runs `specs` on the kernels named (all harvested ones when none).
fn run_specs(
    matrix: &MatrixArgs,
    specs: &[Spec],
    ids: &[String],
    settings: &Settings,
) -> anyhow::Result<Results> {
    let ids = if ids.is_empty() {
        harvested_ids(matrix)?
    } else {
        ids.to_vec()
    };
    if ids.is_empty() {
        return Err(infra_error(anyhow!(
            "no harvested kernel: run `tapmatrix kernels harvest` first"
        )));
    }
    let cache = matrix.cache()?;
    let guard = cache.share().map_err(classify)?;
    let kernels = run_kernels(&guard, matrix, &ids)?;
    let options = RunOptions {
        tapset_dirs: settings.tapset_dirs.clone(),
        jobs: settings.jobs.unwrap_or_else(tapmatrix_vm::default_jobs),
        function_events: settings.function_events,
        backend: settings.backend,
        vm: VmOptions {
            accel: settings.accel,
            ..VmOptions::new(cache.root())
        },
        out_dir: settings.out_dir.clone(),
    };
    let live = settings.live && kernels.len() == 1;
    let out = Mutex::new(Live::default());
    let on_message = |_: &str, message: &RunMessage| {
        if live && let Ok(mut out) = out.lock() {
            out.message(message);
        }
    };
    let results = run_matrix(specs, &kernels, &options, &on_message).map_err(input_error)?;
    if let Ok(mut out) = out.lock() {
        out.finish();
    }
    Ok(results)
}

/// The kernels with their facts and boot files.
fn run_kernels(
    guard: &CacheGuard<'_>,
    matrix: &MatrixArgs,
    ids: &[String],
) -> anyhow::Result<Vec<RunKernel>> {
    let fetched = fetch_all(guard, matrix, ids)?;
    fetched
        .into_iter()
        .map(|kernel| {
            let id = kernel.id.to_string();
            let facts = load_facts(matrix, &id, input_error)?;
            Ok(RunKernel {
                work_dir: guard.cache().run_dir(&kernel.id).map_err(classify)?,
                id,
                facts,
                vmlinuz: kernel.vmlinuz,
            })
        })
        .collect()
}

/// `results.json`, and per failing cell its expected, actual and diff.
fn write_results(out: &Path, results: &Results) -> anyhow::Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    std::fs::write(out.join("results.json"), results.to_json())?;
    std::fs::write(
        out.join(Format::Html.file_name()),
        tapmatrix_report::render(results, Format::Html, &Default::default()),
    )?;
    for cell in &results.cells {
        if cell.status != CellStatus::Fail {
            continue;
        }
        let dir = out.join(&cell.kernel);
        std::fs::create_dir_all(&dir)?;
        let expected = cell.expected.clone().unwrap_or_default();
        let actual = cell.output.clone().unwrap_or_default();
        std::fs::write(dir.join(format!("{}.expected", cell.script)), &expected)?;
        std::fs::write(dir.join(format!("{}.actual", cell.script)), &actual)?;
        std::fs::write(
            dir.join(format!("{}.diff", cell.script)),
            diff(&expected, &actual, "expected", "actual"),
        )?;
    }
    Ok(())
}

/// Prints a shown script's messages as they arrive, as `stap` would: its
/// output on stdout, its errors on stderr, the workload's lines marked.
#[derive(Default)]
struct Live {
    /// Whether the last workload text on stdout and stderr ended a line.
    open: [bool; 2],
}

impl Live {
    fn message(&mut self, message: &RunMessage) {
        match message {
            RunMessage::Output { text, .. } => write_to(&mut std::io::stdout(), text),
            RunMessage::Diagnostic { text, .. } => write_to(&mut std::io::stderr(), text),
            RunMessage::WorkloadOutput {
                stream,
                text,
                dropped,
                ..
            } => {
                let index = usize::from(*stream == OutputStream::Stderr);
                let mut text = text.clone();
                if *dropped > 0 {
                    text.insert_str(0, &tapmatrix_vm::dropped_line(*dropped));
                    if self.open[index] {
                        text.insert(0, '\n');
                    }
                }
                let marked = mark(&text, &workload_mark(*stream, None), self.open[index]);
                self.open[index] = !text.is_empty() && !text.ends_with('\n');
                if index == 0 {
                    write_to(&mut std::io::stdout(), &marked);
                } else {
                    write_to(&mut std::io::stderr(), &marked);
                }
            }
            _ => {}
        }
    }

    /// Ends a workload line left open.
    fn finish(&mut self) {
        if self.open[0] {
            write_to(&mut std::io::stdout(), "\n");
        }
        if self.open[1] {
            write_to(&mut std::io::stderr(), "\n");
        }
    }
}

/// Writes and flushes; a reader that went away is not an error here.
fn write_to(out: &mut dyn std::io::Write, text: &str) {
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

/// `mark` put before every line of `text`, except the first when it
/// continues a line already marked.
fn mark(text: &str, mark: &str, continues: bool) -> String {
    let mut out = String::new();
    for (index, line) in text.split_inclusive('\n').enumerate() {
        if index > 0 || !continues {
            out.push_str(mark);
        }
        out.push_str(line);
    }
    out
}

/// How workload lines are marked: `[workload] `, `[workload stderr] `,
/// with the kernel first when several ran (`[6.1 workload] `).
fn workload_mark(stream: OutputStream, kernel: Option<&str>) -> String {
    let kernel = kernel
        .map(|kernel| format!("{kernel} "))
        .unwrap_or_default();
    match stream {
        OutputStream::Stdout => format!("[{kernel}workload] "),
        OutputStream::Stderr => format!("[{kernel}workload stderr] "),
    }
}

/// Prints the cells of shown scripts: streamed already when `streamed`,
/// else per script (a `==> NAME <==` header when several), per kernel
/// (lines prefixed `[KERNEL] ` when several), the script's output on
/// stdout and its errors on stderr, the workload's lines marked; then
/// each cell that did not pass, on stderr.
fn show(cells: &[Cell], results: &Results, streamed: bool) -> anyhow::Result<()> {
    let scripts: Vec<&str> = {
        let mut seen = std::collections::BTreeSet::new();
        cells
            .iter()
            .map(|cell| cell.script.as_str())
            .filter(|script| seen.insert(*script))
            .collect()
    };
    let several_kernels = results.kernels.len() > 1;
    if !streamed {
        for script in &scripts {
            if scripts.len() > 1 {
                print(&format!("==> {script} <==\n"))?;
            }
            for cell in cells.iter().filter(|cell| cell.script == *script) {
                let prefix = if several_kernels {
                    format!("[{}] ", cell.kernel)
                } else {
                    String::new()
                };
                let (stdout, stderr) = cell.output_streams();
                print(&mark(stdout, &prefix, false))?;
                write_to(&mut std::io::stderr(), &mark(stderr, &prefix, false));
                if let Some(workload) = &cell.workload {
                    for (stream, text) in [
                        (OutputStream::Stdout, &workload.stdout),
                        (OutputStream::Stderr, &workload.stderr),
                    ] {
                        if text.is_empty() {
                            continue;
                        }
                        let kernel = several_kernels.then_some(cell.kernel.as_str());
                        let mut marked = mark(text, &workload_mark(stream, kernel), false);
                        if !marked.ends_with('\n') {
                            marked.push('\n');
                        }
                        match stream {
                            OutputStream::Stdout => print(&marked)?,
                            OutputStream::Stderr => write_to(&mut std::io::stderr(), &marked),
                        }
                    }
                }
            }
        }
    }
    for cell in cells {
        if cell.status != CellStatus::Pass {
            let who = if scripts.len() > 1 {
                format!("{} on {}", cell.script, cell.kernel)
            } else {
                cell.kernel.clone()
            };
            eprintln!("{who}: {}: {}", cell.status.word(), cell.detail);
        }
    }
    Ok(())
}

/// `--backend`'s values.
pub(crate) fn parse_backend(text: &str) -> Result<Backend, String> {
    match text {
        "tracefs" => Ok(Backend::Tracefs),
        "bpf" => Ok(Backend::Bpf),
        "bpf-forward" => Ok(Backend::BpfForwarded),
        "auto" => Ok(Backend::Auto),
        other => Err(format!(
            "unknown back end `{other}`: use tracefs, bpf, bpf-forward or auto"
        )),
    }
}

/// `tapmatrix run --dump`: compiles each script for each kernel and prints
/// what its back end built (or why not), without booting (like `stap -p4`).
fn dump(
    matrix: &MatrixArgs,
    specs: &[Spec],
    ids: &[String],
    settings: &Settings,
) -> anyhow::Result<Status> {
    let ids = if ids.is_empty() {
        harvested_ids(matrix)?
    } else {
        ids.to_vec()
    };
    let mut out = String::new();
    let mut status = Status::Success;
    for id in &ids {
        let facts = load_facts(matrix, id, input_error)?;
        let mut tapsets = tapmatrix_resolve::TapsetLibrary::load(
            &settings.tapset_dirs,
            tapmatrix_resolve::kernel_profile(&facts),
        )
        .map_err(|error| error.to_string());
        for spec in specs {
            let compiled = tapmatrix_run::compile(
                spec.script.clone(),
                spec.text.clone(),
                &mut tapsets,
                &facts,
                settings.function_events,
                settings.backend,
            );
            out.push_str(&format!("=== {} on {id}\n", spec.name));
            match compiled {
                Compiled::Ready(artefact) => out.push_str(&tapmatrix_run::dump(&artefact)),
                Compiled::NotAvailable(why) => out.push_str(&format!("not available: {why}\n")),
                Compiled::Error(why) => {
                    status = Status::Failed;
                    out.push_str(&format!("error: {why}\n"));
                }
            }
        }
    }
    print(&out)?;
    Ok(status)
}
