//! `tapmatrix run [SCRIPT...|DIR] [-e SCRIPT] [-c CMD] [--kernels ...]`:
//! every script on every kernel, one boot per kernel, judged against its
//! spec and snapshot; and `tapmatrix diff-output`, how one script's output
//! differs between two kernels.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{Context, anyhow};
use clap::Args;
use tapmatrix_ir::RunMessage;
use tapmatrix_kernels::CacheGuard;
use tapmatrix_run::{
    Backend, Compiled, FunctionEvents, Results, RunKernel, RunOptions, Spec, Status as CellStatus,
    diff, run_matrix,
};
use tapmatrix_vm::{Accel, VmOptions};

use crate::cmd::kernels::{MatrixArgs, classify, fetch_all, harvested_ids, load_facts, print};
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
    /// The workload of `-e` or of a script without a spec (like `stap -c`):
    /// `target()` is its pid.
    #[arg(short = 'c', value_name = "CMD")]
    pub command: Option<String>,
    /// Kernel ids, comma-separated (default: every harvested kernel of the matrix).
    #[arg(long, value_delimiter = ',', value_name = "ID,...")]
    pub kernels: Vec<String>,
    /// Kernels booted at once (default: the number of cores).
    #[arg(short, long)]
    pub jobs: Option<usize>,
    /// Tapset directories (repeatable; default: tapsets/).
    #[arg(short = 'I', value_name = "DIR")]
    pub include: Vec<PathBuf>,
    /// Seconds a script without a spec may run.
    #[arg(long, default_value_t = 30)]
    pub timeout: u64,
    /// Accelerator: auto, kvm or tcg.
    #[arg(long, default_value = "auto")]
    pub accel: Accel,
    /// Serve function probes with fprobe events (`f:`) on kernels that have
    /// them, rather than kprobes (cheaper to set up in a guest).
    #[arg(long)]
    pub fprobes: bool,
    /// The back end: tracefs (ftrace events, handlers in the guest's
    /// runtime), bpf (our own BPF programs: handlers in the kernel where
    /// they can run there, else forwarded hits), bpf-forward (BPF programs
    /// that only forward hits), auto (bpf where the handlers run in the
    /// kernel, else tracefs).
    #[arg(long, default_value = "tracefs", value_parser = parse_backend)]
    pub backend: Backend,
    /// Print the BPF programs built (maps and a disassembly) and do not run.
    #[arg(long)]
    pub dump: bool,
    /// Where results.json and the failing cells' expected, actual and diff go.
    #[arg(long, default_value = "target/tapmatrix-run", value_name = "DIR")]
    pub out: PathBuf,
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
    /// Tapset directories (repeatable; default: tapsets/).
    #[arg(short = 'I', value_name = "DIR")]
    pub include: Vec<PathBuf>,
    /// Accelerator: auto, kvm or tcg.
    #[arg(long, default_value = "auto")]
    pub accel: Accel,
}

/// Runs `tapmatrix run`.
pub fn run(args: &RunArgs) -> anyhow::Result<Status> {
    let (specs, _scratch) = specs_of(args)?;
    let ad_hoc = args.script.is_some();
    let settings = Settings {
        tapset_dirs: tapsets(&args.include),
        jobs: args.jobs,
        accel: args.accel,
        function_events: if args.fprobes {
            FunctionEvents::Fprobes
        } else {
            FunctionEvents::Kprobes
        },
        backend: args.backend,
        stream: ad_hoc,
    };
    if args.dump {
        return dump(&args.matrix, &specs, &args.kernels, &settings);
    }
    let results = run_specs(&args.matrix, &specs, &args.kernels, &settings)?;
    write_results(&args.out, &results)?;
    if !ad_hoc {
        print(&results.table())?;
    }
    eprintln!("results: {}", args.out.join("results.json").display());
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
        tapset_dirs: tapsets(&args.include),
        jobs: Some(2),
        accel: args.accel,
        function_events: FunctionEvents::default(),
        backend: Backend::default(),
        stream: false,
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

fn tapsets(include: &[PathBuf]) -> Vec<PathBuf> {
    if include.is_empty() {
        vec![PathBuf::from("tapsets")]
    } else {
        include.to_vec()
    }
}

/// The specs to run; `-e` text lives in a scratch file kept alive by the
/// returned guard.
fn specs_of(args: &RunArgs) -> anyhow::Result<(Vec<Spec>, Option<tempfile::TempDir>)> {
    let workload = args.command.clone().unwrap_or_default();
    if let Some(text) = &args.script {
        if !args.paths.is_empty() {
            return Err(input_error(anyhow!(
                "give either -e SCRIPT or script paths, not both"
            )));
        }
        let scratch = tempfile::tempdir()?;
        let script = scratch.path().join("oneliner.stp");
        std::fs::write(&script, text)?;
        let spec = Spec::ad_hoc("-e", &script, workload, args.timeout);
        return Ok((vec![spec], Some(scratch)));
    }
    let paths = if args.paths.is_empty() {
        vec![PathBuf::from("tests/scripts")]
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
    Ok((specs, None))
}

/// How `run_specs` runs.
struct Settings {
    tapset_dirs: Vec<PathBuf>,
    jobs: Option<usize>,
    accel: Accel,
    function_events: FunctionEvents,
    backend: Backend,
    /// Print the scripts' output as it arrives.
    stream: bool,
}

/// Runs `specs` on the kernels named (all harvested ones when none).
fn run_specs(
    matrix: &MatrixArgs,
    specs: &[Spec],
    ids: &[String],
    settings: &Settings,
) -> anyhow::Result<Results> {
    let stream = settings.stream;
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
    let guard = cache.lock().map_err(classify)?;
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
    };
    let several = kernels.len() > 1;
    let stdout = Mutex::new(std::io::stdout());
    let on_message = |kernel: &str, message: &RunMessage| {
        if !stream {
            return;
        }
        let text = match message {
            RunMessage::Output { text, .. } | RunMessage::Diagnostic { text, .. } => text,
            _ => return,
        };
        if let Ok(mut out) = stdout.lock() {
            let _ = if several {
                text.lines()
                    .try_for_each(|line| writeln!(out, "[{kernel}] {line}"))
            } else {
                out.write_all(text.as_bytes())
            };
        }
    };
    let results = run_matrix(specs, &kernels, &options, &on_message).map_err(input_error)?;
    if stream {
        for cell in &results.cells {
            if cell.status != CellStatus::Pass {
                eprintln!("{}: {}: {}", cell.kernel, cell.status.word(), cell.detail);
            }
        }
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
                work_dir: guard.cache().boots_dir(&kernel.id).join("run"),
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
    let json = serde_json::to_string_pretty(results)?;
    std::fs::write(out.join("results.json"), json + "\n")?;
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

/// `--backend`'s values.
fn parse_backend(text: &str) -> Result<Backend, String> {
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
/// what the BPF back end built (or the compile error), without booting.
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
    let cache = matrix.cache()?;
    let guard = cache.lock().map_err(classify)?;
    let kernels = run_kernels(&guard, matrix, &ids)?;
    let backend = match settings.backend {
        Backend::Tracefs => Backend::Bpf,
        other => other,
    };
    let mut out = String::new();
    for kernel in &kernels {
        for spec in specs {
            let compiled = tapmatrix_run::compile(
                spec.script.clone(),
                &settings.tapset_dirs,
                &kernel.facts,
                settings.function_events,
                backend,
            );
            out.push_str(&format!("=== {} on {}\n", spec.name, kernel.id));
            match compiled {
                Compiled::Bpf(artefact) => out.push_str(&tapmatrix_bpf::dump(&artefact)),
                Compiled::Bundle(_) => out.push_str("tracefs (auto chose it)\n"),
                Compiled::NotAvailable(why) => out.push_str(&format!("not available: {why}\n")),
                Compiled::Error(why) => out.push_str(&format!("error: {why}\n")),
            }
        }
    }
    print(&out)?;
    Ok(Status::Success)
}
