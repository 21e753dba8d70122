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
use tapmatrix_report::{Format, ShardId, compare, plan};
use tapmatrix_run::{
    FunctionEvents, Results, RunKernel, RunOptions, Spec, Status as CellStatus, diff, run_matrix,
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
    /// Where results.json, index.html, the failing cells' expected, actual
    /// and diff, and the logs of every cell that is not a pass go.
    #[arg(long, default_value = "target/tapmatrix-run", value_name = "DIR")]
    pub out: PathBuf,
    /// What is printed: table, json, ktap, junit, kcidb, mail or html.
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
    /// Tapset directories (repeatable; default: tapsets/).
    #[arg(short = 'I', value_name = "DIR")]
    pub include: Vec<PathBuf>,
    /// Accelerator: auto, kvm or tcg.
    #[arg(long, default_value = "auto")]
    pub accel: Accel,
}

/// Runs `tapmatrix run`.
pub fn run(args: &RunArgs) -> anyhow::Result<Status> {
    let (mut specs, _scratch) = specs_of(args)?;
    let ad_hoc = args.script.is_some();
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
    let settings = Settings {
        tapset_dirs: tapsets(&args.include),
        jobs: args.jobs,
        accel: args.accel,
        function_events: if args.fprobes {
            FunctionEvents::Fprobes
        } else {
            FunctionEvents::Kprobes
        },
        stream: ad_hoc,
        out_dir: Some(args.out.clone()),
    };
    let mut results = if kernels.is_empty() && args.shard.is_some() {
        // An empty shard: nothing to run.
        Results::new(run_info(None))
    } else {
        run_specs(&args.matrix, &specs, &kernels, &settings)?
    };
    results.run = run_info(args.run_id.as_deref());
    results.run.shard = args.shard;
    write_results(&args.out, &results)?;
    if !ad_hoc {
        print(&tapmatrix_report::render(
            &results,
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
        tapset_dirs: tapsets(&args.include),
        jobs: Some(2),
        accel: args.accel,
        function_events: FunctionEvents::default(),
        stream: false,
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
    /// Print the scripts' output as it arrives.
    stream: bool,
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
        vm: VmOptions {
            accel: settings.accel,
            ..VmOptions::new(cache.root())
        },
        out_dir: settings.out_dir.clone(),
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
