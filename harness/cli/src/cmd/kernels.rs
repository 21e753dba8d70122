//! `tapmatrix kernels ...`: the kernel matrix and its cache.

use std::path::{Path, PathBuf};

use std::io::Write as _;

use anyhow::Context as _;
use clap::Subcommand;
use tapmatrix_facts::{FactsDiff, FactsSummary, KernelFacts};

use crate::exit::{Status, input_error};

/// `tapmatrix kernels` subcommands.
#[derive(Subcommand)]
pub enum KernelsCommand {
    /// Show the matrix: lock state, cache state, harvested or not.
    List,
    /// Summarise one kernel's facts: release, counts, probe syntax.
    Facts {
        /// The kernel's saved facts directory (`facts.json`, `btf.bin`).
        #[arg(long)]
        facts_dir: PathBuf,
        /// First parse this raw harvest directory and save it as `--facts-dir`.
        #[arg(long)]
        from_raw: Option<PathBuf>,
        /// With `--from-raw`: the kernel's config file.
        #[arg(long, requires = "from_raw")]
        config: Option<PathBuf>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Functions, tracepoints, fields, syscalls and prototypes that differ
    /// between two kernels (exit status 1 when they differ).
    Diff {
        /// The first (older) kernel's facts directory.
        a: PathBuf,
        /// The second (newer) kernel's facts directory.
        b: PathBuf,
        /// List everything instead of the first 20 of each list.
        #[arg(long)]
        full: bool,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// Runs a `kernels` subcommand.
pub fn run(command: KernelsCommand) -> anyhow::Result<Status> {
    match command {
        KernelsCommand::List => Ok(Status::Success),
        KernelsCommand::Facts {
            facts_dir,
            from_raw,
            config,
            json,
        } => facts(facts_dir, from_raw, config, json),
        KernelsCommand::Diff { a, b, full, json } => diff(a, b, full, json),
    }
}

fn load(dir: &Path) -> anyhow::Result<KernelFacts> {
    KernelFacts::load(dir)
        .map_err(input_error)
        .with_context(|| format!("loading kernel facts from {}", dir.display()))
}

/// Writes to stdout; a reader that went away (`| head`) is not an error.
fn print(text: &str) -> anyhow::Result<()> {
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => Err(error.into()),
        _ => Ok(()),
    }
}

fn facts(
    facts_dir: PathBuf,
    from_raw: Option<PathBuf>,
    config: Option<PathBuf>,
    json: bool,
) -> anyhow::Result<Status> {
    let facts = match from_raw {
        Some(raw) => {
            let facts = KernelFacts::from_raw(&raw, config.as_deref()).map_err(input_error)?;
            facts.save(&facts_dir)?;
            facts
        }
        None => load(&facts_dir)?,
    };
    let summary = FactsSummary::of(&facts);
    if json {
        print(&format!("{}\n", serde_json::to_string_pretty(&summary)?))?;
    } else {
        print(&summary.to_string())?;
    }
    Ok(Status::Success)
}

fn diff(a: PathBuf, b: PathBuf, full: bool, json: bool) -> anyhow::Result<Status> {
    let diff = FactsDiff::between(&load(&a)?, &load(&b)?);
    if json {
        print(&format!("{}\n", serde_json::to_string_pretty(&diff)?))?;
    } else {
        print(&diff.render((!full).then_some(20)))?;
    }
    Ok(if diff.is_empty() {
        Status::Success
    } else {
        Status::Failed
    })
}
