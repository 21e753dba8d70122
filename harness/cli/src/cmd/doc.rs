//! `tapmatrix doc [TAPSET-DIR] [--format markdown|man] [--kernels ...]`:
//! the tapset reference from the tapsets' `/** ... */` comments; with
//! harvested kernels, each alias also says where it resolves and through
//! which alternative.

use std::path::PathBuf;

use anyhow::anyhow;
use clap::{Args, ValueEnum};
use tapmatrix_facts::KernelFacts;
use tapmatrix_resolve::{RowsOf, Sources, availability};

use crate::cmd::kernels::{MatrixArgs, harvested_ids, load_facts, print};
use crate::exit::{Status, infra_error, input_error};

/// Output formats.
#[derive(Clone, Copy, ValueEnum)]
pub enum Format {
    /// Markdown.
    Markdown,
    /// A man page (section 3stap; view with `man -l`).
    Man,
}

/// `tapmatrix doc` options.
#[derive(Args)]
pub struct DocArgs {
    /// The matrix and the cache.
    #[command(flatten)]
    pub matrix: MatrixArgs,
    /// The tapset directory; default: the built-in library.
    pub path: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Markdown)]
    pub format: Format,
    /// Kernel ids, comma-separated, for the availability of each alias
    /// (default: every harvested kernel of the matrix; none harvested: no availability).
    #[arg(long, value_delimiter = ',', value_name = "ID,...")]
    pub kernels: Vec<String>,
    /// Leave out the availability over kernels.
    #[arg(long, conflicts_with = "kernels")]
    pub no_kernels: bool,
}

/// Runs `tapmatrix doc`.
pub fn run(args: &DocArgs) -> anyhow::Result<Status> {
    let dir = match &args.path {
        Some(path) => path.clone(),
        None => crate::builtin::tapsets(&args.matrix.cache()?).map_err(infra_error)?,
    };
    if !dir.is_dir() {
        return Err(input_error(anyhow!(
            "{}: not a tapset directory",
            dir.display()
        )));
    }
    let files = tapmatrix_doc::load_dir(&dir).map_err(input_error)?;
    let ids = if args.no_kernels {
        Vec::new()
    } else if !args.kernels.is_empty() {
        args.kernels.clone()
    } else {
        let ids = harvested_ids(&args.matrix)?;
        if ids.is_empty() {
            eprintln!(
                "note: no kernel of the matrix has harvested facts: the reference has no availability (run `tapmatrix kernels harvest`)"
            );
        }
        ids
    };
    let matrix = if ids.is_empty() {
        None
    } else {
        let facts: Vec<KernelFacts> = ids
            .iter()
            .map(|id| load_facts(&args.matrix, id, infra_error))
            .collect::<anyhow::Result<_>>()?;
        let kernels: Vec<(&str, &KernelFacts)> =
            ids.iter().map(String::as_str).zip(&facts).collect();
        let sources = Sources {
            tapset_dirs: vec![dir],
            script: None,
            script_text: None,
        };
        Some(
            availability(&sources, &kernels, RowsOf::Aliases)
                .map_err(input_error)?
                .matrix,
        )
    };
    let format = match args.format {
        Format::Markdown => tapmatrix_doc::Format::Markdown,
        Format::Man => tapmatrix_doc::Format::Man,
    };
    print(&tapmatrix_doc::render(&files, matrix.as_ref(), format))?;
    Ok(Status::Success)
}
