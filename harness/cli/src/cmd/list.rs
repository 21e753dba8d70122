//! `tapmatrix list [-L] PATTERN --kernel ID`: the concrete probe points a
//! pattern matches on one harvested kernel (like `stap -l`), with `-L`
//! their target variables and types (like `stap -L`).

use std::path::PathBuf;

use anyhow::anyhow;
use clap::Args;
use tapmatrix_resolve::{Outcome, ProbePoint, Resolver, Sources, kernel_profile, target_vars};

use crate::cmd::kernels::{MatrixArgs, harvested_ids, load_facts, print};
use crate::exit::{Status, infra_error, input_error};

/// `tapmatrix list` options.
#[derive(Args)]
pub struct ListArgs {
    /// The matrix and the cache.
    #[command(flatten)]
    pub matrix: MatrixArgs,
    /// Also print each point's target variables and their types (`stap -L`).
    #[arg(short = 'L')]
    pub vars: bool,
    /// The kernel (default: the last harvested kernel of the matrix).
    #[arg(long, value_name = "ID")]
    pub kernel: Option<String>,
    /// A tapset directory added to the built-in library (repeatable), whose
    /// aliases the pattern may name too.
    #[arg(short = 'I', value_name = "DIR")]
    pub include: Vec<PathBuf>,
    /// The probe point pattern: `kernel.function("vfs_*")`, `kernel.trace("sched:*")`, `vfs.*`.
    pub pattern: String,
}

/// Runs `tapmatrix list`.
pub fn run(args: &ListArgs) -> anyhow::Result<Status> {
    let point = ProbePoint::parse(&args.pattern).map_err(input_error)?;
    let id = match &args.kernel {
        Some(id) => id.clone(),
        None => harvested_ids(&args.matrix)?.pop().ok_or_else(|| {
            infra_error(anyhow!(
                "no kernel of the matrix has harvested facts: run `tapmatrix kernels harvest`"
            ))
        })?,
    };
    let facts = load_facts(&args.matrix, &id, infra_error)?;
    let sources = Sources {
        tapset_dirs: args.matrix.tapset_dirs(&args.include)?,
        script: None,
        script_text: None,
    };
    let loaded = sources.load(kernel_profile(&facts)).map_err(input_error)?;
    let library = &loaded.library;
    let mut lines: Vec<String> = library
        .matching(&point)
        .iter()
        .map(|m| m.alias.name.with_suffix(m.suffix).bare())
        .collect();
    if lines.is_empty() {
        match Resolver::new(library, &facts).resolve_point(&point) {
            Outcome::Resolved(found) => {
                for attach in &found.attach {
                    let mut line = attach.probe_point();
                    if args.vars {
                        for var in target_vars(&facts, attach) {
                            line.push(' ');
                            line.push_str(&var.render());
                        }
                    }
                    lines.push(line);
                }
            }
            Outcome::OptionalMissing(misses) | Outcome::Unresolved(misses) => {
                for miss in &misses {
                    eprintln!("{}: {} (kernel {id})", miss.point, miss.reason);
                }
                return Ok(Status::Failed);
            }
        }
    }
    lines.sort();
    lines.dedup();
    let mut text = lines.join("\n");
    text.push('\n');
    print(&text)?;
    Ok(Status::Success)
}
