//! Cuts a small BTF blob for test fixtures out of a kernel's whole one:
//! the roots and every type they reach (`Btf::subset`).
//!
//! `cargo run -p tapmatrix-facts --example cut-btf -- IN OUT [ROOT...]`
//! where ROOT is `function:NAME`, `type:NAME` or `tracepoint:EVENT`;
//! `--functions-from FILE` adds the functions an `available_filter_functions`
//! file lists (clone suffixes stripped; those without BTF skipped), and
//! `--max-pointer-depth N` keeps structs farther than N pointers from every
//! root as forward declarations. `fixtures/regenerate.sh` runs it.

use std::collections::BTreeSet;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Parser;
use tapmatrix_facts::btf::{SubsetOptions, SubsetRoot};
use tapmatrix_facts::{Btf, split_clone};

/// Cut a BTF subset for test fixtures.
#[derive(Parser)]
struct Args {
    /// The whole BTF blob (`/sys/kernel/btf/vmlinux` as harvested).
    input: PathBuf,
    /// Where to write the subset.
    output: PathBuf,
    /// Roots: `function:NAME`, `type:NAME` (struct, union, enum or typedef)
    /// or `tracepoint:EVENT`.
    #[arg(value_parser = parse_root)]
    roots: Vec<SubsetRoot>,
    /// Add the functions of this `available_filter_functions` file that
    /// BTF describes.
    #[arg(long, value_name = "FILE")]
    functions_from: Option<PathBuf>,
    /// Keep structs and unions reached only through more pointers than
    /// this as forward declarations.
    #[arg(long, value_name = "N")]
    max_pointer_depth: Option<u32>,
}

fn parse_root(text: &str) -> Result<SubsetRoot, String> {
    let (kind, name) = text.split_once(':').ok_or_else(|| {
        format!("`{text}`: expected function:NAME, type:NAME or tracepoint:EVENT")
    })?;
    let name = name.to_owned();
    match kind {
        "function" => Ok(SubsetRoot::Function(name)),
        "type" => Ok(SubsetRoot::Type(name)),
        "tracepoint" => Ok(SubsetRoot::Tracepoint(name)),
        _ => Err(format!(
            "`{text}`: unknown root kind `{kind}` (function, type or tracepoint)"
        )),
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    let bytes =
        std::fs::read(&args.input).with_context(|| format!("reading {}", args.input.display()))?;
    let btf = Btf::parse(bytes).with_context(|| format!("parsing {}", args.input.display()))?;
    let mut roots = args.roots;
    if let Some(file) = &args.functions_from {
        let text =
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        let names: BTreeSet<&str> = text
            .lines()
            .filter_map(|line| line.split_whitespace().next())
            .map(|name| split_clone(name).map_or(name, |(base, _)| base))
            .collect();
        let (found, absent): (Vec<&str>, Vec<&str>) = names
            .into_iter()
            .partition(|name| btf.function(name).is_some());
        eprintln!(
            "{}: {} functions in BTF, {} without ({})",
            file.display(),
            found.len(),
            absent.len(),
            absent.join(" ")
        );
        roots.extend(
            found
                .into_iter()
                .map(|name| SubsetRoot::Function(name.to_owned())),
        );
    }
    if roots.is_empty() {
        bail!("no roots: name some, or give --functions-from");
    }
    let options = SubsetOptions {
        max_pointer_depth: args.max_pointer_depth,
    };
    let subset = btf.subset(&roots, options)?;
    let types = Btf::parse(subset.clone())?.type_count();
    std::fs::write(&args.output, &subset)
        .with_context(|| format!("writing {}", args.output.display()))?;
    eprintln!(
        "{}: {types} of {} types, {} of {} bytes, {} roots",
        args.output.display(),
        btf.type_count(),
        subset.len(),
        btf.bytes().len(),
        roots.len()
    );
    Ok(())
}
