//! `tapmatrix run [SCRIPT...|DIR] [-e SCRIPT] [-c CMD] [--kernels ...]`:
//! every script on every kernel, one boot per kernel; a script with a spec
//! is judged against it and its snapshot, a script without one (and `-e`)
//! has its output printed per kernel, as `stap` would print it. And
//! `tapmatrix diff-output`, how one script's output differs between two
//! kernels.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{Context, anyhow};
use clap::Args;
use tapmatrix_ir::{OutputStream, RunMessage};
use tapmatrix_kernels::CacheGuard;
use tapmatrix_report::{Format, ShardId, compare, plan};
use tapmatrix_run::{
    Backend, Cell, Compiled, Define, FunctionEvents, GlobalSetting, Pass, Results, RunKernel,
    RunOptions, SnapshotScope, Spec, Status as CellStatus, Warnings, diff, run_matrix,
};
use tapmatrix_vm::{Accel, VmOptions};

use crate::cmd::kernels::{MatrixArgs, classify, fetch_all, harvested_ids, load_facts, print};
use crate::cmd::list::ListArgs;
use crate::cmd::report::{RenderArgs, costs, matrix_order, parse_format, read_results, run_info};
use crate::exit::{Status, infra_error, input_error};

/// `tapmatrix run` options: SystemTap's `stap` command line (the
/// non-guru subset), plus the matrix's own.
#[derive(Args)]
#[command(after_help = RUN_AFTER_HELP)]
pub struct RunArgs {
    /// The matrix and the cache.
    #[command(flatten)]
    pub matrix: MatrixArgs,
    /// The script, then its arguments (`$1`, `@1`..., `$#`), as `stap
    /// SCRIPT ARGS` takes them (`-` reads the script from standard input);
    /// with `-e`, only arguments. A directory (default: tests/scripts)
    /// runs every script in it with its spec; further directories or
    /// scripts may follow it.
    #[arg(value_name = "SCRIPT|DIR [ARGS]")]
    pub operands: Vec<String>,
    /// Run this script text (like `stap -e`): its output is printed, not judged.
    #[arg(short = 'e', value_name = "SCRIPT")]
    pub script: Option<String>,
    /// The workload (like `stap -c`): run in the guest once the probes are
    /// on, and the run ends when it does; `target()` is its pid; what it
    /// prints is shown marked `[workload]`.
    #[arg(short = 'c', value_name = "CMD", conflicts_with = "target_pid")]
    pub command: Option<String>,
    /// `target()` is process PID of the guest (like `stap -x`); the run
    /// does not follow its lifespan. The guest runs only the agent (PID 1,
    /// the guest's init) and what the workload starts.
    #[arg(short = 'x', value_name = "PID")]
    pub target_pid: Option<u32>,
    /// End the script after SECS seconds as `exit()` ends it (like `stap
    /// -T`): `end` probes run, and it is no failure.
    #[arg(short = 'T', value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    pub time_limit: Option<u64>,
    /// Set scalar global NAME to VALUE before `begin` (like `stap -G`;
    /// repeatable).
    #[arg(short = 'G', value_name = "NAME=VALUE", value_parser = parse_global)]
    pub globals: Vec<GlobalSetting>,
    /// Set a run-time limit (like `stap -D`, repeatable): MAXACTION,
    /// MAXSTRINGLEN, MAXMAPENTRIES, MAXNESTING, MAXERRORS; other names
    /// (module build settings) are accepted and have no effect.
    #[arg(short = 'D', value_name = "NAME=VALUE", value_parser = parse_define)]
    pub defines: Vec<Define>,
    /// The transport buffer from the kernel in megabytes (like `stap -s`;
    /// 1 to 4095): the BPF ring buffer, rounded up to a power of two, at
    /// most 1024 (default 1). Records a full buffer refuses are counted
    /// as lost.
    #[arg(short = 's', value_name = "NUM", value_parser = clap::value_parser!(u32).range(1..=4095))]
    pub buffer: Option<u32>,
    /// Write the script's output to FILE instead of standard output (like
    /// `stap -o`).
    #[arg(short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Suppress compile warnings (like `stap -w`).
    #[arg(short = 'w', conflicts_with = "warnings_are_errors")]
    pub no_warnings: bool,
    /// Treat compile warnings as errors (like `stap -W`).
    #[arg(short = 'W')]
    pub warnings_are_errors: bool,
    /// Stop after pass N (like `stap -p`): 1 parse, 2 elaborate, 3 lower,
    /// 4 print the artefacts the guest would get (`--dump`), 5 run (the
    /// default). Passes 1 to 4 compile for every kernel, offline, and
    /// boot nothing.
    #[arg(short = 'p', value_name = "N", value_parser = clap::value_parser!(u8).range(1..=5))]
    pub pass: Option<u8>,
    /// Guru mode (like `stap -g`): the script may hold embedded C. No
    /// kernel module runs here, so each embedded-C function it calls must
    /// be one tapmatrix implements.
    #[arg(short = 'g')]
    pub guru: bool,
    /// Unoptimized (like `stap -u`): stores nothing reads are kept, so
    /// their values must compile.
    #[arg(short = 'u')]
    pub unoptimized: bool,
    /// Target variables that resolve nowhere read as 0, without an error
    /// (like `stap --skip-badvars`; here: at none of the probe's attach
    /// points, as facts say offline).
    #[arg(long)]
    pub skip_badvars: bool,
    /// List the probe points PATTERN matches on one kernel instead of
    /// running (like `stap -l`; `tapmatrix list`).
    #[arg(short = 'l', value_name = "PATTERN", conflicts_with = "list_vars")]
    pub list: Option<String>,
    /// As -l, with each point's target variables (like `stap -L`).
    #[arg(short = 'L', value_name = "PATTERN")]
    pub list_vars: Option<String>,
    /// The runtime (like `stap --runtime`): kernel (the default: any back
    /// end, as --backend auto) or bpf (as --backend bpf). `dyninst` needs
    /// user-space instrumentation this tool does not have.
    #[arg(long, value_name = "MODE", value_parser = parse_runtime)]
    pub runtime: Option<Backend>,
    /// Shorthand for --runtime=bpf.
    #[arg(long, conflicts_with = "runtime")]
    pub bpf: bool,
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
    /// Seconds a script without a spec may run before it fails as timed
    /// out (-T ends it instead).
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
    /// that only forward hits), bpf-kprobes (bpf with kprobes and
    /// kretprobes where bpf uses BPF trampolines, fentry and fexit), auto
    /// (bpf where the handlers run in the kernel, else tracefs, else BPF
    /// programs that forward hits).
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
    /// `stap` options that set up its kernel module or its build, which
    /// do not exist here: accepted, no effect.
    #[command(flatten)]
    pub module: ModuleOptions,
}

/// What `tapmatrix run --help` adds after the options.
const RUN_AFTER_HELP: &str = "\
As stap: `tapmatrix run -T 5 script.stp 'syscall.read' 1000` runs script.stp with $1 = \
syscall.read and $2 = 1000 for 5 seconds, on every harvested kernel. Options may come \
after the script; arguments that start with `-` go after `--`. Bad usage exits 2 with one line.

Not here, by design: -i (interactive), -F and -S (flight recorder, output files), -E \
(more scripts), --remote, --dyninst, compile servers, \
--suppress-handler-errors. No kernel module is built or loaded: -k, -b, -m, -d, \
--ldd, --all-modules, -r, -R, -B, -a x86_64, -P, -t, --suppress-time-limits are \
accepted and change nothing.";

/// `stap` options about its kernel module, its build or its transport:
/// accepted as stap checks them, no effect here.
#[derive(Args)]
#[command(next_help_heading = "stap options with no effect here (no module is built)")]
pub struct ModuleOptions {
    /// Keep the temporary directory (the run's directory is kept anyway).
    #[arg(short = 'k')]
    keep: bool,
    /// Bulk mode (per-CPU output files).
    #[arg(short = 'b')]
    bulk: bool,
    /// The module's name (letters, digits, `_`).
    #[arg(short = 'm', value_name = "MODULE", value_parser = parse_module_name)]
    module: Option<String>,
    /// Symbols of OBJECT for backtraces (kallsyms has the kernel's).
    #[arg(short = 'd', value_name = "OBJECT", value_parser = parse_nonempty)]
    data: Vec<String>,
    /// Symbols of the shared libraries user-space binaries use.
    #[arg(long)]
    ldd: bool,
    /// Symbols of every loaded module.
    #[arg(long)]
    all_modules: bool,
    /// The kernel release to build for (the matrix names the kernels).
    #[arg(short = 'r', value_name = "RELEASE")]
    release: Option<String>,
    /// The runtime's sources.
    #[arg(short = 'R', value_name = "DIR")]
    runtime_dir: Option<PathBuf>,
    /// A make directive for the module's build.
    #[arg(short = 'B', value_name = "NAME=VALUE")]
    make: Vec<String>,
    /// The architecture (only x86_64, the matrix's).
    #[arg(short = 'a', value_name = "ARCH", value_parser = parse_arch)]
    arch: Option<String>,
    /// Prologue searching for function parameters (BTF has them).
    #[arg(short = 'P')]
    prologue: bool,
    /// Probe timing statistics.
    #[arg(short = 't')]
    timing: bool,
    /// No MAXACTION and overload limits (guru mode only).
    #[arg(long, requires = "guru")]
    suppress_time_limits: bool,
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
    if let Some(pattern) = args.list.as_ref().or(args.list_vars.as_ref()) {
        return crate::cmd::list::run(&ListArgs {
            matrix: MatrixArgs {
                cache_dir: args.matrix.cache_dir.clone(),
                matrix: args.matrix.matrix.clone(),
            },
            vars: args.list_vars.is_some(),
            kernel: args.kernels.first().cloned(),
            include: args.include.clone(),
            pattern: pattern.clone(),
        });
    }
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
        backend: if args.bpf {
            Backend::Bpf
        } else {
            args.runtime.unwrap_or(args.backend)
        },
        live: specs.len() == 1 && shown(&specs[0].name),
        out_dir: Some(args.out.clone()),
        progress: false,
    };
    let pass = match (args.pass, args.dump) {
        (_, true) => Pass::Artefact,
        (Some(n), false) => Pass::from_number(n).unwrap_or(Pass::Run),
        (None, false) => Pass::Run,
    };
    if pass < Pass::Run {
        return passes(&args.matrix, &specs, &kernels, &settings, pass);
    }
    let output = Mutex::new(Sink::open(args.output.as_deref())?);
    let mut results = if kernels.is_empty() && args.shard.is_some() {
        // An empty shard: nothing to run.
        Results::new(run_info(None))
    } else {
        run_specs(&args.matrix, &specs, &kernels, &settings, &output)?
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
            &output,
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
        progress: false,
    };
    let results = run_specs(
        &args.matrix,
        std::slice::from_ref(&spec),
        &args.kernels,
        &settings,
        &Mutex::new(Sink::Stdout),
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

/// The specs to run, as `stap` reads its operands: `-e` text (named
/// `<input>`) and every operand its argument; else a script (`-` for
/// standard input) followed by its arguments; else directories of scripts
/// with their specs (and more directories or scripts). A script without a
/// spec is shown, not judged, unless `--judge`. The options of the
/// invocation (`-g`, `-u`, `-w`, `-W`, `-G`, `-D`, `-T`, `-x`) apply to
/// every script.
pub(crate) fn specs_of(args: &RunArgs) -> anyhow::Result<Vec<Spec>> {
    let workload = args.command.clone().unwrap_or_default();
    let mut specs = Vec::new();
    let mut script_args: Option<Vec<String>> = None;
    if let Some(text) = &args.script {
        specs.push(Spec::inline(
            "-e",
            text.clone(),
            workload.clone(),
            args.timeout,
        ));
        script_args = Some(args.operands.clone());
    } else if args.operands.first().is_some_and(|first| first == "-") {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
            .context("reading the script from standard input")
            .map_err(input_error)?;
        specs.push(Spec::inline("stdin", text, workload.clone(), args.timeout));
        script_args = Some(args.operands[1..].to_vec());
    } else if let Some(first) = args.operands.first()
        && !Path::new(first).is_dir()
    {
        let path = Path::new(first);
        if !path.exists() {
            return Err(input_error(anyhow!(
                "{}: no such script or directory",
                path.display()
            )));
        }
        specs.push(Spec::load(path).map_err(input_error)?);
        // Arguments on the command line replace the spec's; none leave
        // them (a spec's script runs as its spec says).
        script_args = Some(args.operands[1..].to_vec()).filter(|a| !a.is_empty());
    } else {
        let paths: Vec<PathBuf> = if args.operands.is_empty() {
            let default = PathBuf::from("tests/scripts");
            if !default.is_dir() {
                return Err(input_error(anyhow!(
                    "no script given: name a script (then its arguments), a directory of scripts, or give one with -e (the default, {}, is not here)",
                    default.display()
                )));
            }
            vec![default]
        } else {
            args.operands.iter().map(PathBuf::from).collect()
        };
        for path in &paths {
            if path.is_dir() {
                specs.extend(Spec::load_dir(path).map_err(input_error)?);
            } else if path.exists() {
                specs.push(Spec::load(path).map_err(input_error)?);
            } else {
                return Err(input_error(anyhow!(
                    "{}: no such script or directory (after a directory, every operand is a script or a directory: a script's arguments follow the script)",
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
    }
    let warnings = match (args.no_warnings, args.warnings_are_errors) {
        (true, _) => Warnings::Suppress,
        (_, true) => Warnings::Error,
        _ => Warnings::Show,
    };
    for spec in &mut specs {
        if let Some(command) = &args.command {
            spec.workload = command.clone();
        }
        if spec.spec_file.is_none() && spec.text.is_none() {
            spec.timeout_s = args.timeout;
        }
        if let Some(secs) = args.time_limit {
            spec.timeout_s = secs;
        }
        let invocation = &mut spec.invocation;
        if let Some(script_args) = &script_args {
            invocation.args = script_args.clone();
        }
        invocation.guru |= args.guru;
        invocation.unoptimized |= args.unoptimized;
        invocation.skip_badvars |= args.skip_badvars;
        if warnings != Warnings::Show {
            invocation.warnings = warnings;
        }
        invocation.globals.extend(args.globals.iter().cloned());
        invocation.defines.extend(args.defines.iter().copied());
        if args.buffer.is_some() {
            invocation.buffer_mb = args.buffer;
        }
        invocation.time_limit |= args.time_limit.is_some();
        if args.target_pid.is_some() {
            invocation.target_pid = args.target_pid;
        }
        if args.judge && spec.spec_file.is_none() {
            spec.snapshot = SnapshotScope::Shared;
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

/// `-G`'s values.
fn parse_global(text: &str) -> Result<GlobalSetting, String> {
    text.parse()
}

/// `-D`'s values.
fn parse_define(text: &str) -> Result<Define, String> {
    text.parse()
}

/// `-m`'s values: as stap checks a module name.
fn parse_module_name(text: &str) -> Result<String, String> {
    if text.is_empty() {
        return Err("the module name cannot be empty".to_owned());
    }
    if !text.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!(
            "`{text}`: a module name has only letters, digits and `_`"
        ));
    }
    Ok(text.to_owned())
}

/// A value that must not be empty (`-d`).
fn parse_nonempty(text: &str) -> Result<String, String> {
    if text.is_empty() {
        Err("it cannot be empty".to_owned())
    } else {
        Ok(text.to_owned())
    }
}

/// `-a`'s values: the matrix's kernels are x86_64.
fn parse_arch(text: &str) -> Result<String, String> {
    match text {
        "x86_64" | "amd64" => Ok(text.to_owned()),
        other => Err(format!(
            "`{other}`: the matrix's kernels are x86_64, no other architecture runs here"
        )),
    }
}

/// `--runtime`'s values.
fn parse_runtime(text: &str) -> Result<Backend, String> {
    match text {
        "kernel" => Ok(Backend::Auto),
        "bpf" => Ok(Backend::Bpf),
        "dyninst" => Err(
            "dyninst instruments user-space processes; tapmatrix probes kernels only (use kernel or bpf)"
                .to_owned(),
        ),
        other => Err(format!("unknown runtime `{other}`: use kernel or bpf")),
    }
}

/// How `run_specs` runs.
pub(crate) struct Settings {
    pub(crate) tapset_dirs: Vec<PathBuf>,
    pub(crate) jobs: Option<usize>,
    pub(crate) accel: Accel,
    pub(crate) function_events: FunctionEvents,
    /// The back end.
    pub(crate) backend: Backend,
    /// Print the script's output as it arrives (one script shown, not
    /// judged: when it runs on one kernel).
    pub(crate) live: bool,
    /// Where the logs of cells that are not a pass go.
    pub(crate) out_dir: Option<PathBuf>,
    /// Say on stderr each kernel whose scripts have all run (long runs).
    pub(crate) progress: bool,
}

/// Runs `specs` on the kernels named (all harvested ones when none).
pub(crate) fn run_specs(
    matrix: &MatrixArgs,
    specs: &[Spec],
    ids: &[String],
    settings: &Settings,
    sink: &Mutex<Sink>,
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
    let out = Mutex::new(Live {
        open: [false; 2],
        sink,
    });
    // Per kernel, the items finished so far (a script that did not
    // compile there is no item): a line every 25.
    let finished: Mutex<BTreeMap<String, usize>> = Mutex::new(BTreeMap::new());
    let on_message = |kernel: &str, message: &RunMessage| {
        if live && let Ok(mut out) = out.lock() {
            out.message(message);
        }
        if settings.progress
            && matches!(message, RunMessage::Finished { .. })
            && let Ok(mut finished) = finished.lock()
        {
            let count = finished.entry(kernel.to_owned()).or_default();
            *count += 1;
            if *count % 25 == 0 {
                eprintln!("{kernel}: {count} of at most {} scripts run", specs.len());
            }
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
pub(crate) fn write_results(out: &Path, results: &Results) -> anyhow::Result<()> {
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
/// output on stdout (or the `-o` file), its errors on stderr, the
/// workload's lines marked.
struct Live<'a> {
    /// Whether the last workload text on stdout and stderr ended a line.
    open: [bool; 2],
    /// Where the script's output goes.
    sink: &'a Mutex<Sink>,
}

impl Live<'_> {
    fn message(&mut self, message: &RunMessage) {
        match message {
            RunMessage::Output { text, .. } => {
                if let Ok(mut sink) = self.sink.lock() {
                    sink.write(text);
                }
            }
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
fn show(
    cells: &[Cell],
    results: &Results,
    streamed: bool,
    sink: &Mutex<Sink>,
) -> anyhow::Result<()> {
    let mut sink = sink
        .lock()
        .map_err(|_| anyhow!("the output was left half-written by a failed thread"))?;
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
                sink.write(&format!("==> {script} <==\n"));
            }
            for cell in cells.iter().filter(|cell| cell.script == *script) {
                let prefix = if several_kernels {
                    format!("[{}] ", cell.kernel)
                } else {
                    String::new()
                };
                let (stdout, stderr) = cell.output_streams();
                sink.write(&mark(stdout, &prefix, false));
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
    for (script, status, detail, kernels) in failures_by_kind(cells) {
        let kernels = kernels.join(", ");
        let who = if scripts.len() > 1 {
            format!("{script} on {kernels}")
        } else {
            kernels
        };
        eprintln!("{who}: {status}: {detail}");
    }
    Ok(())
}

/// The cells that did not pass, one entry per (script, status, detail) in
/// the order they first appear, with every kernel that ended that way: a
/// compile error all seven kernels share is one line, not seven.
fn failures_by_kind(cells: &[Cell]) -> Vec<(String, &'static str, String, Vec<String>)> {
    let mut groups: Vec<(String, &'static str, String, Vec<String>)> = Vec::new();
    for cell in cells.iter().filter(|cell| cell.status != CellStatus::Pass) {
        let status = cell.status.word();
        match groups.iter_mut().find(|(script, word, detail, _)| {
            *script == cell.script && *word == status && *detail == cell.detail
        }) {
            Some((_, _, _, kernels)) => kernels.push(cell.kernel.clone()),
            None => groups.push((
                cell.script.clone(),
                status,
                cell.detail.clone(),
                vec![cell.kernel.clone()],
            )),
        }
    }
    groups
}

/// A back end as `--backend` names it.
pub(crate) fn backend_word(backend: Backend) -> &'static str {
    match backend {
        Backend::Tracefs => "tracefs",
        Backend::Bpf => "bpf",
        Backend::BpfForwarded => "bpf-forward",
        Backend::BpfKprobes => "bpf-kprobes",
        Backend::Auto => "auto",
    }
}

/// `--backend`'s values.
pub(crate) fn parse_backend(text: &str) -> Result<Backend, String> {
    match text {
        "tracefs" => Ok(Backend::Tracefs),
        "bpf" => Ok(Backend::Bpf),
        "bpf-forward" => Ok(Backend::BpfForwarded),
        "bpf-kprobes" => Ok(Backend::BpfKprobes),
        "auto" => Ok(Backend::Auto),
        other => Err(format!(
            "unknown back end `{other}`: use tracefs, bpf, bpf-forward, bpf-kprobes or auto"
        )),
    }
}

/// `tapmatrix run -p N` (and `--dump`, `-p4`): compiles each script for
/// each kernel up to pass N, offline, and prints what the pass gives (the
/// script as parsed, the elaborated probes, what the back end built, the
/// artefacts), like `stap -pN`. Kernels that give the same are printed
/// once, under a line naming them when they differ. Exit 1 when a script
/// does not compile (or its probes do not resolve) on some kernel.
fn passes(
    matrix: &MatrixArgs,
    specs: &[Spec],
    ids: &[String],
    settings: &Settings,
    pass: Pass,
) -> anyhow::Result<Status> {
    let ids = if ids.is_empty() {
        harvested_ids(matrix)?
    } else {
        ids.to_vec()
    };
    if ids.is_empty() {
        return Err(infra_error(anyhow!(
            "no harvested kernel: run `tapmatrix kernels harvest` first (pass {} compiles for each kernel's facts)",
            pass as u8
        )));
    }
    // Per script: (kernels, warnings, what it printed, failed), kernels
    // that gave the same grouped.
    type Outcome = (Vec<String>, String, String, bool);
    let mut outcomes: Vec<Vec<Outcome>> = vec![Vec::new(); specs.len()];
    for id in &ids {
        let facts = load_facts(matrix, id, input_error)?;
        let mut tapsets = tapmatrix_resolve::TapsetLibrary::load(
            &settings.tapset_dirs,
            tapmatrix_resolve::kernel_profile(&facts),
        )
        .map_err(|error| error.to_string());
        for (spec, outcomes) in specs.iter().zip(&mut outcomes) {
            let compilation = tapmatrix_run::compile_spec(
                spec,
                &mut tapsets,
                &facts,
                settings.function_events,
                settings.backend,
                pass,
            );
            let mut warnings = String::new();
            for warning in &compilation.warnings {
                warnings.push_str(warning);
                warnings.push('\n');
            }
            let (printed, failed) = match compilation.compiled {
                Compiled::Ready(artefact) => (tapmatrix_run::dump(&artefact), false),
                Compiled::Stopped { printed, .. } => (printed, false),
                Compiled::NotAvailable(why) => (
                    format!("semantic error: its probes resolve to nothing here:\n{why}\n"),
                    true,
                ),
                Compiled::Error(why) => (format!("{why}\n"), true),
            };
            match outcomes
                .iter_mut()
                .find(|(_, w, p, f)| *w == warnings && *p == printed && *f == failed)
            {
                Some((kernels, ..)) => kernels.push(id.clone()),
                None => outcomes.push((vec![id.clone()], warnings, printed, failed)),
            }
        }
    }
    let mut status = Status::Success;
    for (spec, outcomes) in specs.iter().zip(&outcomes) {
        for (kernels, warnings, printed, failed) in outcomes {
            let header = if specs.len() > 1 || outcomes.len() > 1 {
                format!("=== {} on {}\n", spec.name, kernels.join(", "))
            } else {
                String::new()
            };
            if *failed {
                status = Status::Failed;
                eprint!("{header}{warnings}{printed}");
                eprintln!("Pass {}: failed on {}", pass as u8, kernels.join(", "));
            } else {
                eprint!("{warnings}");
                print(&format!("{header}{printed}"))?;
            }
        }
    }
    Ok(status)
}

/// Where the script's standard output goes: this process's, or the file
/// `-o` names (created, or emptied, before the run).
pub(crate) enum Sink {
    Stdout,
    File(PathBuf, std::fs::File),
}

impl Sink {
    fn open(path: Option<&Path>) -> anyhow::Result<Sink> {
        Ok(match path {
            None => Sink::Stdout,
            Some(path) => Sink::File(
                path.to_owned(),
                std::fs::File::create(path)
                    .with_context(|| format!("-o {}: cannot create the file", path.display()))
                    .map_err(input_error)?,
            ),
        })
    }

    /// Writes and flushes; a reader of standard output that went away is
    /// not an error.
    fn write(&mut self, text: &str) {
        match self {
            Sink::Stdout => write_to(&mut std::io::stdout(), text),
            Sink::File(path, file) => {
                if let Err(error) = std::io::Write::write_all(file, text.as_bytes()) {
                    tracing::error!("writing {}: {error}", path.display());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    // A unit test: a panic is how it reports a failure.
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn a_failure_every_kernel_shares_is_one_entry() {
        let error = "compile error: semantic error: unresolved function at x.stp:1:21";
        let cells = vec![
            Cell::new("x", "5.10", CellStatus::Error, error),
            Cell::new("x", "6.1", CellStatus::Error, error),
            Cell::new("x", "7.3", CellStatus::Pass, ""),
            Cell::new("x", "7.2", CellStatus::Error, "compile error: another"),
            Cell::new("y", "5.10", CellStatus::Error, error),
        ];
        let groups = failures_by_kind(&cells);
        let kernels: Vec<(&str, Vec<&str>)> = groups
            .iter()
            .map(|(script, _, _, kernels)| {
                (
                    script.as_str(),
                    kernels.iter().map(String::as_str).collect(),
                )
            })
            .collect();
        assert_eq!(
            kernels,
            [
                ("x", vec!["5.10", "6.1"]),
                ("x", vec!["7.2"]),
                ("y", vec!["5.10"])
            ]
        );
        assert_eq!(groups[0].1, "ERROR");
    }
}
