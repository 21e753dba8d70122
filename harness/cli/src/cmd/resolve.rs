//! `tapmatrix resolve [SCRIPT|TAPSET-DIR] [--kernels ...] [--diff A B]`:
//! the availability matrix, probe x kernel, offline from harvested facts,
//! with the reason for every miss and porting suggestions.

use std::path::PathBuf;

use anyhow::anyhow;
use clap::{Args, ValueEnum};
use tapmatrix_facts::KernelFacts;
use tapmatrix_resolve::{Availability, RowsOf, Sources, availability};

use crate::cmd::kernels::{MatrixArgs, harvested_ids, load_facts, print};
use crate::cmd::list::tapset_dirs;
use crate::cmd::report::{RenderArgs, run_info};
use crate::exit::{Status, infra_error, input_error};
use tapmatrix_report::{Format as ReportFormat, Results};

/// Output formats.
#[derive(Clone, Copy, ValueEnum)]
pub enum Format {
    /// A terminal table, then each unresolved cell's reasons and suggestions.
    Table,
    /// results.json (schema 2; the matrix in `probes`, documented on `tapmatrix_resolve::Matrix`).
    Json,
    /// Markdown: the table, then each alias's misses once with the kernels where they hold.
    Markdown,
    /// A 72-column plain-text mail for the tapset's maintainers, per kernel what stopped resolving.
    Mail,
    /// A static HTML page: the grid alias x kernel, a click shows reasons and suggestions.
    Html,
    /// KTAP: one test per alias, nested per kernel.
    Ktap,
    /// JUnit XML: one testsuite per kernel.
    Junit,
    /// A KCIDB submission.
    Kcidb,
}

/// `tapmatrix resolve` options.
#[derive(Args)]
pub struct ResolveArgs {
    /// The matrix and the cache.
    #[command(flatten)]
    pub matrix: MatrixArgs,
    /// A script (rows: its probes) or a tapset directory (rows: its aliases); default tapsets/.
    pub path: Option<PathBuf>,
    /// Kernel ids, comma-separated (default: every harvested kernel of the matrix).
    #[arg(long, value_delimiter = ',', value_name = "ID,...")]
    pub kernels: Vec<String>,
    /// Only the probes whose resolution differs between kernels A and B (exit 1 if any).
    #[arg(long, num_args = 2, value_names = ["A", "B"])]
    pub diff: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Tapset directories a script's probes may use (repeatable; default: tapsets/).
    #[arg(short = 'I', value_name = "DIR")]
    pub include: Vec<PathBuf>,
    /// Renderer settings.
    #[command(flatten)]
    pub render: RenderArgs,
}

/// Runs `tapmatrix resolve`.
pub fn run(args: &ResolveArgs) -> anyhow::Result<Status> {
    let path = args
        .path
        .clone()
        .unwrap_or_else(|| PathBuf::from("tapsets"));
    let (sources, rows_of) = if path.is_dir() {
        let mut dirs = args.include.clone();
        dirs.push(path);
        (
            Sources {
                tapset_dirs: dirs,
                script: None,
            },
            RowsOf::Aliases,
        )
    } else if path.is_file() {
        (
            Sources {
                tapset_dirs: tapset_dirs(&args.include),
                script: Some(path),
            },
            RowsOf::ScriptProbes,
        )
    } else {
        return Err(input_error(anyhow!(
            "{}: no such script or tapset directory",
            path.display()
        )));
    };
    let ids = if !args.diff.is_empty() {
        args.diff.clone()
    } else if !args.kernels.is_empty() {
        args.kernels.clone()
    } else {
        let ids = harvested_ids(&args.matrix)?;
        if ids.is_empty() {
            return Err(infra_error(anyhow!(
                "no kernel of the matrix has harvested facts: run `tapmatrix kernels harvest`"
            )));
        }
        ids
    };
    let facts: Vec<KernelFacts> = ids
        .iter()
        .map(|id| load_facts(&args.matrix, id, infra_error))
        .collect::<anyhow::Result<_>>()?;
    let kernels: Vec<(&str, &KernelFacts)> = ids.iter().map(String::as_str).zip(&facts).collect();
    let Availability {
        mut matrix,
        skipped,
    } = availability(&sources, &kernels, rows_of).map_err(input_error)?;
    if let Some(first) = skipped.first() {
        eprintln!(
            "warning: {} parse error(s) in tapset files, which are skipped; the first:\n{}",
            skipped.len(),
            first.rendered
        );
    }
    let failed = if args.diff.is_empty() {
        matrix.has_unresolved()
    } else {
        matrix = matrix.diff(0, 1);
        !matrix.rows.is_empty()
    };
    let report = |format: ReportFormat| {
        let results = Results::from_matrix(run_info(None), matrix.clone());
        tapmatrix_report::render(&results, format, &args.render.options())
    };
    let text = match args.format {
        Format::Table => matrix.render_table(),
        Format::Markdown => matrix.render_markdown(),
        Format::Json => report(ReportFormat::Json),
        Format::Mail => report(ReportFormat::Mail),
        Format::Html => report(ReportFormat::Html),
        Format::Ktap => report(ReportFormat::Ktap),
        Format::Junit => report(ReportFormat::Junit),
        Format::Kcidb => report(ReportFormat::Kcidb),
    };
    print(&text)?;
    Ok(if failed {
        Status::Failed
    } else {
        Status::Success
    })
}
