//! `tapmatrix report`, `compare`, `merge` and `plan`: what is derived from
//! results files without booting anything.

use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow};
use clap::Args;
use tapmatrix_report::{
    Costs, Format, KcidbOptions, RenderOptions, Results, RunInfo, compare, github_matrix, merge,
    plan,
};
use tapmatrix_run::Spec;

use crate::cmd::kernels::{MatrixArgs, print};
use crate::exit::{Status, input_error};

/// How reports are rendered, shared by `report`, `run` and `resolve`.
#[derive(Args, Clone)]
pub struct RenderArgs {
    /// KCIDB: the submitting CI system's name.
    #[arg(long, default_value = "tapmatrix", value_name = "NAME")]
    pub kcidb_origin: String,
    /// KCIDB: the URL the run's output directory is published at; log
    /// paths are made absolute with it.
    #[arg(long, value_name = "URL")]
    pub log_base_url: Option<String>,
}

impl RenderArgs {
    /// The renderers' options.
    pub fn options(&self) -> RenderOptions {
        RenderOptions {
            kcidb: KcidbOptions {
                origin: self.kcidb_origin.clone(),
                log_base_url: self.log_base_url.clone(),
            },
        }
    }
}

/// Parses a `--format` value.
pub fn parse_format(text: &str) -> Result<Format, String> {
    text.parse()
}

/// `tapmatrix report` options.
#[derive(Args)]
pub struct ReportArgs {
    /// A results.json (of `tapmatrix run`, `merge` or `resolve --format json`).
    pub results: PathBuf,
    /// table, json, ktap, junit, kcidb, mail or html.
    #[arg(long, default_value = "table", value_parser = parse_format)]
    pub format: Format,
    /// Write here instead of standard output (logs are linked relative to
    /// the results file: write HTML beside it).
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Renderer settings.
    #[command(flatten)]
    pub render: RenderArgs,
}

/// `tapmatrix compare` options.
#[derive(Args)]
pub struct CompareArgs {
    /// The baseline results.json.
    pub base: PathBuf,
    /// The new results.json.
    pub new: PathBuf,
    /// text or json.
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    pub format: String,
}

/// `tapmatrix merge` options.
#[derive(Args)]
pub struct MergeArgs {
    /// The kernel matrix (for the kernels' order).
    #[command(flatten)]
    pub matrix: MatrixArgs,
    /// The shards' results.json files.
    #[arg(required = true)]
    pub parts: Vec<PathBuf>,
    /// Where the merged results.json goes.
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
}

/// `tapmatrix plan` options.
#[derive(Args)]
pub struct PlanArgs {
    /// The kernel matrix (its kernels, in order).
    #[command(flatten)]
    pub matrix: MatrixArgs,
    /// How many shards.
    #[arg(long, value_name = "N")]
    pub shards: usize,
    /// A previous results.json whose boot and script times are the costs
    /// (default: a fixed cost per boot and per script).
    #[arg(long, value_name = "FILE")]
    pub costs: Option<PathBuf>,
    /// Kernel ids, comma-separated (default: every kernel of the matrix).
    #[arg(long, value_delimiter = ',', value_name = "ID,...")]
    pub kernels: Vec<String>,
    /// Scripts, or directories of scripts (default: tests/scripts).
    pub paths: Vec<PathBuf>,
    /// Print the plan readably instead of the GitHub Actions matrix.
    #[arg(long)]
    pub human: bool,
}

/// Reads a results file, as an input error when it is not one.
pub fn read_results(path: &Path) -> anyhow::Result<Results> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading {}", path.display()))
        .map_err(input_error)?;
    Results::from_json(&path.display().to_string(), &text).map_err(input_error)
}

/// Writes `text` to `output`, or prints it.
pub fn emit(text: &str, output: Option<&Path>) -> anyhow::Result<()> {
    match output {
        Some(path) => {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("creating {}", parent.display()))?;
            }
            std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
        }
        None => print(text),
    }
}

/// Who is writing results.
pub fn run_info(id: Option<&str>) -> RunInfo {
    RunInfo {
        id: id.map(str::to_owned).unwrap_or_default(),
        tool: format!("tapmatrix {}", env!("CARGO_PKG_VERSION")),
        shard: None,
    }
}

/// Runs `tapmatrix report`.
pub fn report(args: &ReportArgs) -> anyhow::Result<Status> {
    let results = read_results(&args.results)?;
    let text = tapmatrix_report::render(&results, args.format, &args.render.options());
    emit(&text, args.output.as_deref())?;
    Ok(Status::Success)
}

/// Runs `tapmatrix compare`: exit 1 when a cell regressed.
pub fn compare_cmd(args: &CompareArgs) -> anyhow::Result<Status> {
    let base = read_results(&args.base)?;
    let new = read_results(&args.new)?;
    let comparison = compare(&base, &new);
    let text = if args.format == "json" {
        format!("{}\n", serde_json::to_string_pretty(&comparison)?)
    } else {
        comparison.render()
    };
    print(&text)?;
    Ok(if comparison.regressions().next().is_some() {
        Status::Failed
    } else {
        Status::Success
    })
}

/// The kernels of the matrix, in order.
pub fn matrix_order(matrix: &MatrixArgs) -> anyhow::Result<Vec<String>> {
    let loaded = matrix.load_matrix()?;
    Ok(loaded.ids().iter().map(ToString::to_string).collect())
}

/// Runs `tapmatrix merge`.
pub fn merge_cmd(args: &MergeArgs) -> anyhow::Result<Status> {
    let parts = args
        .parts
        .iter()
        .map(|path| read_results(path))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let order = matrix_order(&args.matrix).unwrap_or_default();
    let merged = merge(parts, &order).map_err(input_error)?;
    emit(&merged.to_json(), Some(&args.output))?;
    eprintln!("merged {} results: {}", args.parts.len(), merged.summary());
    Ok(Status::Success)
}

/// The script names of `paths` (directories of scripts or scripts), in
/// the order a run takes them.
pub fn script_names(paths: &[PathBuf]) -> anyhow::Result<Vec<String>> {
    let paths = if paths.is_empty() {
        vec![PathBuf::from("tests/scripts")]
    } else {
        paths.to_vec()
    };
    let mut names = Vec::new();
    for path in &paths {
        if path.is_dir() {
            names.extend(
                Spec::load_dir(path)
                    .map_err(input_error)?
                    .into_iter()
                    .map(|s| s.name),
            );
        } else if path.exists() {
            names.push(Spec::load(path).map_err(input_error)?.name);
        } else {
            return Err(input_error(anyhow!(
                "{}: no such script or directory",
                path.display()
            )));
        }
    }
    Ok(names)
}

/// The costs of `--costs FILE`, or the defaults.
pub fn costs(file: Option<&Path>) -> anyhow::Result<Costs> {
    Ok(match file {
        Some(path) => Costs::from_results(&read_results(path)?),
        None => Costs::default(),
    })
}

/// Runs `tapmatrix plan`.
pub fn plan_cmd(args: &PlanArgs) -> anyhow::Result<Status> {
    if args.shards == 0 {
        return Err(input_error(anyhow!("--shards must be 1 or more")));
    }
    let kernels = if args.kernels.is_empty() {
        matrix_order(&args.matrix)?
    } else {
        args.kernels.clone()
    };
    let scripts = script_names(&args.paths)?;
    let shards = plan(
        &kernels,
        &scripts,
        &costs(args.costs.as_deref())?,
        args.shards,
    );
    if args.human {
        for shard in &shards {
            println!(
                "shard {}: kernels {}; scripts {}; about {} s",
                shard.id,
                if shard.kernels.is_empty() {
                    "none".to_owned()
                } else {
                    shard.kernels.join(", ")
                },
                shard
                    .scripts
                    .as_ref()
                    .map_or("all".to_owned(), |s| s.join(", ")),
                shard.cost_ms.div_ceil(1000)
            );
        }
    } else {
        println!("{}", github_matrix(&shards));
    }
    Ok(Status::Success)
}
