//! `tapmatrix resolve [SCRIPT|TAPSET-DIR] [--kernels ...] [--diff A B]`:
//! the availability matrix, probe x kernel, offline from harvested facts,
//! with the reason for every miss and porting suggestions.

use std::path::PathBuf;

use anyhow::anyhow;
use clap::{Args, ValueEnum};
use tapmatrix_facts::KernelFacts;
use tapmatrix_resolve::{
    Availability, Cell, Matrix, Miss, Reason, RowsOf, Sources, availability, paste_suggestion,
    suggest,
};

use rayon::prelude::*;

use crate::cmd::kernels::{MatrixArgs, harvested_ids, load_facts, print};
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
    /// A script (rows: its probes) or a tapset directory (rows: its
    /// aliases); default: the built-in library.
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
    /// A tapset directory a script's probes may use, added to the built-in
    /// library (repeatable); for a directory's own aliases, the directories
    /// they may use besides it.
    #[arg(short = 'I', value_name = "DIR")]
    pub include: Vec<PathBuf>,
    /// Renderer settings.
    #[command(flatten)]
    pub render: RenderArgs,
    /// Check the suggestions: paste each unresolved cell's first suggestion
    /// per miss as a maintainer would (`P` becomes `P?, S`), resolve again,
    /// and print the share of those cells that then resolve, per class.
    #[arg(long)]
    pub check_suggestions: bool,
}

/// Runs `tapmatrix resolve`.
pub fn run(args: &ResolveArgs) -> anyhow::Result<Status> {
    let path = match &args.path {
        Some(path) => path.clone(),
        None => crate::builtin::tapsets(&args.matrix.cache()?).map_err(infra_error)?,
    };
    let (sources, rows_of) = if path.is_dir() {
        let mut dirs = args.include.clone();
        dirs.push(path);
        (
            Sources {
                tapset_dirs: dirs,
                script: None,
                script_text: None,
            },
            RowsOf::Aliases,
        )
    } else if path.is_file() {
        (
            Sources {
                tapset_dirs: args.matrix.tapset_dirs(&args.include)?,
                script: Some(path),
                script_text: None,
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
    // One thread per kernel: parsing each kernel's facts is independent.
    let facts: Vec<KernelFacts> = ids
        .par_iter()
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
    if args.check_suggestions {
        print(&check_suggestions(&sources, &kernels, &matrix, rows_of)?)?;
        return Ok(Status::Success);
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

/// One unresolved cell with suggestions, and what pasting them takes.
struct Case {
    row: String,
    column: usize,
    class: &'static str,
    /// (missing point, its first suggestion), per miss with one.
    pastes: Vec<(String, String)>,
}

/// Pastes every first suggestion into a copy of the sources, resolves
/// again, and says per class how many of the cells resolve.
fn check_suggestions(
    sources: &Sources,
    kernels: &[(&str, &KernelFacts)],
    matrix: &Matrix,
    rows_of: RowsOf,
) -> anyhow::Result<String> {
    use std::fmt::Write as _;
    let mut cases: Vec<Case> = Vec::new();
    for row in &matrix.rows {
        for (column, cell) in row.cells.iter().enumerate() {
            let Cell::Unresolved {
                misses,
                suggestions,
            } = cell
            else {
                continue;
            };
            if suggestions.is_empty() {
                continue;
            }
            let Some((_, here)) = kernels.get(column) else {
                continue;
            };
            let others: Vec<&KernelFacts> = kernels
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != column)
                .map(|(_, (_, facts))| *facts)
                .collect();
            let pastes = misses
                .iter()
                .filter_map(|miss| {
                    // The matrix reclassified renamed functions; suggest
                    // from the miss as the resolver saw it.
                    let asked = match &miss.reason {
                        Reason::Renamed { function, .. } => Miss {
                            point: miss.point.clone(),
                            reason: Reason::FunctionAbsent {
                                function: function.clone(),
                            },
                        },
                        _ => miss.clone(),
                    };
                    let (_, found) = suggest(&asked, here, &others);
                    let first = found.into_iter().next()?;
                    Some((miss.point.clone(), first.probe_point))
                })
                .collect();
            cases.push(Case {
                row: row.probe.clone(),
                column,
                class: misses.first().map_or("unresolved", |m| m.reason.class()),
                pastes,
            });
        }
    }
    let mut pairs: Vec<(String, String)> = cases.iter().flat_map(|c| c.pastes.clone()).collect();
    pairs.sort();
    pairs.dedup();
    let scratch = tempfile::tempdir()?;
    let mut pasted: std::collections::HashSet<(String, String)> = Default::default();
    let mut copy = |from: &std::path::Path, to: &std::path::Path| -> anyhow::Result<()> {
        copy_pasted(from, to, &pairs, &mut pasted)
    };
    let mut dirs = Vec::new();
    for (index, dir) in sources.tapset_dirs.iter().enumerate() {
        let to = scratch.path().join(format!("dir{index}"));
        copy(dir, &to)?;
        dirs.push(to);
    }
    let script = match &sources.script {
        Some(script) => {
            let to = scratch.path().join(script.file_name().unwrap_or_default());
            copy(script, &to)?;
            Some(to)
        }
        None => None,
    };
    let fixed = availability(
        &Sources {
            tapset_dirs: dirs,
            script,
            script_text: None,
        },
        kernels,
        rows_of,
    )
    .map_err(input_error)?
    .matrix;
    // Per class: cells, resolved after the paste, not pasteable.
    let mut classes: Vec<(&str, usize, usize, usize)> = Vec::new();
    for case in &cases {
        let resolves = fixed
            .rows
            .iter()
            .find(|r| r.probe == case.row)
            .and_then(|r| r.cells.get(case.column))
            .is_some_and(|c| matches!(c, Cell::Resolved { .. } | Cell::OptionalMissing { .. }));
        let unpasted = case.pastes.is_empty() || case.pastes.iter().any(|p| !pasted.contains(p));
        let entry = match classes.iter_mut().find(|(c, ..)| *c == case.class) {
            Some(entry) => entry,
            None => {
                classes.push((case.class, 0, 0, 0));
                classes.last_mut().ok_or_else(|| anyhow!("no class"))?
            }
        };
        if !resolves {
            tracing::debug!(
                "still unresolved after the paste: {} on {}: {:?}",
                case.row,
                kernels.get(case.column).map_or("?", |k| k.0),
                case.pastes
            );
        }
        entry.1 += 1;
        entry.2 += usize::from(resolves);
        entry.3 += usize::from(unpasted && !resolves);
    }
    classes.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let share = |part: usize, whole: usize| {
        if whole == 0 {
            0.0
        } else {
            part as f64 * 100.0 / whole as f64
        }
    };
    let mut out = format!(
        "{:<26} {:>7} {:>9} {:>7} {:>12}\n",
        "class", "cells", "resolve", "share", "not pasted"
    );
    let (mut cells, mut resolved, mut unpasted) = (0, 0, 0);
    for (class, n, ok, bad) in &classes {
        let _ = writeln!(
            out,
            "{class:<26} {n:>7} {ok:>9} {:>6.1}% {bad:>12}",
            share(*ok, *n)
        );
        cells += n;
        resolved += ok;
        unpasted += bad;
    }
    let _ = writeln!(
        out,
        "{:<26} {cells:>7} {resolved:>9} {:>6.1}% {unpasted:>12}",
        "all",
        share(resolved, cells)
    );
    let _ = writeln!(
        out,
        "{resolved} of {cells} unresolved cells with a suggestion resolve once it is pasted ({:.1}%); {} distinct pastes",
        share(resolved, cells),
        pairs.len()
    );
    Ok(out)
}

/// Copies `from` (a file or a directory tree) to `to`, pasting into each
/// file every `(point, suggestion)` it spells; records the pairs pasted.
fn copy_pasted(
    from: &std::path::Path,
    to: &std::path::Path,
    pairs: &[(String, String)],
    pasted: &mut std::collections::HashSet<(String, String)>,
) -> anyhow::Result<()> {
    if from.is_dir() {
        std::fs::create_dir_all(to)?;
        for entry in std::fs::read_dir(from)? {
            let entry = entry?;
            copy_pasted(&entry.path(), &to.join(entry.file_name()), pairs, pasted)?;
        }
        return Ok(());
    }
    let bytes = std::fs::read(from)?;
    let Ok(mut text) = String::from_utf8(bytes.clone()) else {
        std::fs::write(to, bytes)?;
        return Ok(());
    };
    for (point, suggestion) in pairs {
        if let Some(new) = paste_suggestion(&text, point, suggestion) {
            text = new;
            pasted.insert((point.clone(), suggestion.clone()));
        }
    }
    std::fs::write(to, text)?;
    Ok(())
}
