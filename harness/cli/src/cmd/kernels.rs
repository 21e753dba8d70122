//! `tapmatrix kernels ...`: the kernel matrix and its cache.

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use tapmatrix_facts::{FactsDiff, FactsSummary, KernelFacts};
use tapmatrix_harvest::{Harvested, harvest_kernels};
use tapmatrix_kernels::{
    Cache, CacheGuard, FetchedKernel, Fetcher, HostApt, KernelId, KernelSource, Lock, LockEntry,
    Matrix, Origin, Progress,
};
use tapmatrix_vm::{Accel, VmOptions};

use crate::exit::{Status, infra_error, input_error};

/// Where the kernel matrix and the cache are: options of every command
/// that works on kernels.
#[derive(Args)]
pub struct MatrixArgs {
    /// The cache directory (default: $XDG_CACHE_HOME/tapmatrix, else ~/.cache/tapmatrix).
    #[arg(long, env = tapmatrix_kernels::CACHE_ENV, global = true, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// The kernel matrix; its lock file is `matrix.lock` beside it
    /// (default: the one built into tapmatrix).
    #[arg(long, global = true, value_name = "FILE")]
    pub matrix: Option<PathBuf>,
}

impl MatrixArgs {
    /// The cache these options name.
    pub fn cache(&self) -> anyhow::Result<Cache> {
        Cache::resolve(self.cache_dir.as_deref()).map_err(classify)
    }

    /// The matrix file: the one `--matrix` names (which must exist), else
    /// the built-in one.
    pub fn matrix_path(&self) -> anyhow::Result<PathBuf> {
        match &self.matrix {
            Some(path) if path.is_file() => Ok(path.clone()),
            Some(path) => Err(input_error(anyhow::anyhow!(
                "{}: no such matrix file (named by --matrix)",
                path.display()
            ))),
            None => crate::builtin::matrix(&self.cache()?).map_err(infra_error),
        }
    }

    /// The matrix, loaded.
    pub fn load_matrix(&self) -> anyhow::Result<Matrix> {
        Matrix::load(&self.matrix_path()?).map_err(classify)
    }

    /// The tapset directories: the built-in library, then those `-I`
    /// names (each must exist), as `stap -I` extends its search path. A
    /// later directory's aliases, functions and library macros shadow
    /// those of the same name (and arity) before it, except that its
    /// embedded-C functions are served by the runtime's builtins or the
    /// built-in library's script functions (see ARCHITECTURE.md, "The
    /// tapset library").
    pub fn tapset_dirs(&self, include: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
        if let Some(missing) = include.iter().find(|dir| !dir.is_dir()) {
            return Err(input_error(anyhow::anyhow!(
                "{}: no such tapset directory (named by -I)",
                missing.display()
            )));
        }
        let mut dirs = vec![crate::builtin::tapsets(&self.cache()?).map_err(infra_error)?];
        dirs.extend(include.iter().cloned());
        Ok(dirs)
    }
}

/// `tapmatrix kernels [OPTIONS] COMMAND`.
#[derive(Args)]
pub struct KernelsArgs {
    /// The matrix and the cache.
    #[command(flatten)]
    pub matrix: MatrixArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: KernelsCommand,
}

/// `tapmatrix kernels` subcommands.
#[derive(Subcommand)]
pub enum KernelsCommand {
    /// Resolve the matrix to exact Debian packages, versions and SHA256 into matrix.lock.
    Lock,
    /// Download, check and unpack the kernels the lock names into the cache.
    Fetch {
        /// Kernel ids to fetch (default: all).
        ids: Vec<String>,
    },
    /// Boot each kernel once and store its facts in the cache (fetching
    /// it first if needed); kernels with current facts are not booted again.
    Harvest(HarvestArgs),
    /// Show the matrix: lock state, cache state, harvested or not.
    List,
    /// Summarise one harvested kernel's facts: release, counts, probe syntax.
    Facts {
        /// The kernel id (see `tapmatrix kernels list`).
        id: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Functions, tracepoints, fields, syscalls and prototypes that differ
    /// between two harvested kernels (exit status 1 when they differ).
    Diff {
        /// The first (older) kernel's id.
        a: String,
        /// The second (newer) kernel's id.
        b: String,
        /// List everything instead of the first 20 of each list.
        #[arg(long)]
        full: bool,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// `tapmatrix kernels harvest` options.
#[derive(Args)]
pub struct HarvestArgs {
    /// Kernel ids to harvest (default: all).
    ids: Vec<String>,
    /// Boots at a time (default: the number of cores).
    #[arg(short, long)]
    jobs: Option<usize>,
    /// Accelerator: auto (KVM where it boots kernels, else TCG), kvm or tcg.
    #[arg(long, env = tapmatrix_vm::ACCEL_ENV, default_value = "auto")]
    accel: Accel,
    /// Seconds one boot may take before it is killed.
    #[arg(long, default_value_t = 120)]
    timeout: u64,
    /// Boot even the kernels whose facts are current.
    #[arg(long)]
    force: bool,
}

/// Runs a `kernels` subcommand.
pub fn run(args: KernelsArgs) -> anyhow::Result<Status> {
    match args.command {
        KernelsCommand::Lock => lock(&args.matrix),
        KernelsCommand::Fetch { ref ids } => fetch(&args.matrix, ids),
        KernelsCommand::Harvest(ref harvest_args) => harvest(&args.matrix, harvest_args),
        KernelsCommand::List => list(&args.matrix),
        KernelsCommand::Facts { ref id, json } => facts(&args.matrix, id, json),
        KernelsCommand::Diff {
            ref a,
            ref b,
            full,
            json,
        } => diff(&args.matrix, a, b, full, json),
    }
}

/// Classifies a library error: the user's input (exit 2) or the infrastructure (exit 3).
pub fn classify(error: tapmatrix_kernels::Error) -> anyhow::Error {
    if error.is_input() {
        input_error(error)
    } else {
        infra_error(error)
    }
}

fn lock(args: &MatrixArgs) -> anyhow::Result<Status> {
    if args.matrix.is_none() {
        return Err(input_error(anyhow::anyhow!(
            "`kernels lock` writes matrix.lock beside the matrix, and the built-in matrix cannot be rewritten: name yours with --matrix FILE (in a checkout: --matrix kernels/matrix.yaml)"
        )));
    }
    let matrix = args.load_matrix()?;
    let cache = args.cache()?;
    let guard = cache.lock().map_err(classify)?;
    let previous = Lock::load(&matrix.lock_path()).ok();
    let lock =
        tapmatrix_kernels::lock_matrix(&matrix, &guard, &HostApt::default(), &Progress::stderr())
            .map_err(classify)?;
    lock.save(&matrix.lock_path()).map_err(classify)?;
    for locked in &lock.kernels {
        let was = previous
            .as_ref()
            .and_then(|previous| previous.get(locked.id.as_str()))
            .filter(|old| old.version != locked.version)
            .map(|old| format!(" (was {})", old.version))
            .unwrap_or_default();
        eprintln!("{:6} {} {}{was}", locked.id, locked.image, locked.version);
        for missing in &locked.missing {
            eprintln!("       warning: missing {missing}");
        }
    }
    eprintln!("wrote {}", matrix.lock_path().display());
    Ok(Status::Success)
}

fn fetch(args: &MatrixArgs, ids: &[String]) -> anyhow::Result<Status> {
    let cache = args.cache()?;
    let guard = cache.share().map_err(classify)?;
    for fetched in fetch_all(&guard, args, ids)? {
        println!(
            "{}\t{}\t{}",
            fetched.id,
            fetched.release,
            fetched.vmlinuz.display()
        );
    }
    Ok(Status::Success)
}

/// Brings the kernels named by `ids` (all when empty) into the cache, in
/// matrix order; a kernel already there as locked costs no network.
pub fn fetch_all(
    guard: &CacheGuard<'_>,
    args: &MatrixArgs,
    ids: &[String],
) -> anyhow::Result<Vec<FetchedKernel>> {
    let matrix = args.load_matrix()?;
    let lock = Lock::load(&matrix.lock_path()).map_err(classify)?;
    let ids = known_ids(&matrix, ids)?;
    let entries: Vec<LockEntry> = lock
        .entries(&matrix)
        .map_err(classify)?
        .into_iter()
        .filter(|entry| ids.is_empty() || ids.contains(entry.id()))
        .collect();
    let mut fetcher = Fetcher::new(
        guard,
        matrix.suites(),
        HostApt::default().with_matrix(&matrix),
        Progress::stderr(),
    );
    entries
        .iter()
        .map(|entry| {
            fetcher
                .fetch(entry)
                .map_err(classify)
                .with_context(|| format!("fetching kernel `{}`", entry.id()))
        })
        .collect()
}

/// Fetches (if needed) and harvests kernels; a kernel that fails is reported
/// and the others go on (exit 3 if any failed).
fn harvest(args: &MatrixArgs, harvest: &HarvestArgs) -> anyhow::Result<Status> {
    let cache = args.cache()?;
    let guard = cache.share().map_err(classify)?;
    let kernels = fetch_all(&guard, args, &harvest.ids)?;
    let options = VmOptions {
        accel: harvest.accel,
        timeout: std::time::Duration::from_secs(harvest.timeout),
        ..VmOptions::new(cache.root())
    };
    let jobs = harvest.jobs.unwrap_or_else(tapmatrix_vm::default_jobs);
    let mut failed = 0;
    for kernel in harvest_kernels(&guard, &kernels, &options, jobs, harvest.force) {
        match kernel.outcome {
            Ok(Harvested::Cached) => println!("{}\t{}\tcached", kernel.id, kernel.release),
            Ok(Harvested::Booted { wall }) => println!(
                "{}\t{}\tharvested in {:.1} s",
                kernel.id,
                kernel.release,
                wall.as_secs_f64()
            ),
            Err(error) => {
                failed += 1;
                eprintln!("error: {error}");
            }
        }
    }
    if failed > 0 {
        return Err(infra_error(anyhow::anyhow!(
            "{failed} of {} kernel(s) could not be harvested (see above)",
            kernels.len()
        )));
    }
    Ok(Status::Success)
}

fn list(args: &MatrixArgs) -> anyhow::Result<Status> {
    let matrix = args.load_matrix()?;
    let lock = match Lock::load(&matrix.lock_path()) {
        Ok(lock) => Some(lock),
        Err(tapmatrix_kernels::Error::NoLock { .. }) => None,
        Err(error) => return Err(classify(error)),
    };
    let cache = args.cache()?;
    let mut rows = vec![[
        "ID".to_owned(),
        "SOURCE".to_owned(),
        "LOCKED".to_owned(),
        "FETCHED".to_owned(),
        "HARVESTED".to_owned(),
    ]];
    for entry in &matrix.kernels {
        let fetched = cache.fetched(&entry.id);
        let (source, locked, current) = match &entry.source {
            KernelSource::Debian(spec) => {
                let locked = lock
                    .as_ref()
                    .and_then(|lock| lock.get(entry.id.as_str()))
                    .filter(|locked| locked.debian == *spec);
                let current = match (&fetched, locked) {
                    (Some(fetched), Some(locked)) => {
                        fetched.record.origin == Origin::Debian(locked.clone())
                    }
                    _ => false,
                };
                let locked = match (locked, &lock) {
                    (Some(locked), _) => locked.version.clone(),
                    (None, Some(_)) => "stale: run lock".to_owned(),
                    (None, None) => "no lock".to_owned(),
                };
                (format!("debian {}", spec.suite), locked, current)
            }
            KernelSource::Local(spec) => (
                format!("local {}", spec.bzimage.display()),
                "-".to_owned(),
                true,
            ),
        };
        let fetched = match fetched {
            Some(fetched) if current => fetched.release,
            Some(fetched) => format!("{} (not the locked one)", fetched.release),
            None => "no".to_owned(),
        };
        let harvested = if cache.harvested(&entry.id) {
            "yes"
        } else {
            "no"
        };
        rows.push([
            entry.id.to_string(),
            source,
            locked,
            fetched,
            harvested.to_owned(),
        ]);
    }
    let widths: Vec<usize> = (0..5)
        .map(|column| rows.iter().map(|row| row[column].len()).max().unwrap_or(0))
        .collect();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:width$}"))
            .collect();
        println!("{}", line.join("  ").trim_end());
    }
    Ok(Status::Success)
}

/// Parses kernel ids given on the command line: each must name an entry of
/// the matrix (exit 2 naming every unknown one and the known ids otherwise).
fn known_ids(matrix: &Matrix, ids: &[String]) -> anyhow::Result<Vec<KernelId>> {
    let unknown: Vec<String> = ids
        .iter()
        .filter(|id| matrix.get(id).is_none())
        .map(|id| format!("`{id}`"))
        .collect();
    if !unknown.is_empty() {
        let known: Vec<String> = matrix.ids().iter().map(ToString::to_string).collect();
        return Err(input_error(anyhow::anyhow!(
            "unknown kernel id(s) {}; the matrix {} has: {}",
            unknown.join(", "),
            matrix.path.display(),
            known.join(", ")
        )));
    }
    Ok(ids
        .iter()
        .filter_map(|id| matrix.get(id).map(|entry| entry.id.clone()))
        .collect())
}

/// Loads a harvested kernel's facts from the cache (a kernel without
/// facts is an input error).
fn load(args: &MatrixArgs, id: &str) -> anyhow::Result<KernelFacts> {
    load_facts(args, id, input_error)
}

/// The ids of the matrix's kernels that have harvested facts, in matrix order.
pub fn harvested_ids(args: &MatrixArgs) -> anyhow::Result<Vec<String>> {
    let matrix = args.load_matrix()?;
    let cache = args.cache()?;
    Ok(matrix
        .ids()
        .iter()
        .filter(|id| cache.harvested(id))
        .map(ToString::to_string)
        .collect())
}

/// Loads a harvested kernel's facts from the cache; `not_harvested`
/// classifies the error for a kernel of the matrix without facts.
pub fn load_facts(
    args: &MatrixArgs,
    id: &str,
    not_harvested: fn(anyhow::Error) -> anyhow::Error,
) -> anyhow::Result<KernelFacts> {
    let matrix = args.load_matrix()?;
    let id = known_ids(&matrix, &[id.to_owned()])?
        .into_iter()
        .next()
        .context("no kernel id given")?;
    let cache = args.cache()?;
    if !cache.harvested(&id) {
        return Err(not_harvested(anyhow::anyhow!(
            "kernel `{id}` has no harvested facts in {}: run `tapmatrix kernels harvest {id}`",
            cache.root().display()
        )));
    }
    let dir = cache.facts_dir(&id);
    KernelFacts::load(&dir)
        .map_err(input_error)
        .with_context(|| format!("loading kernel facts from {}", dir.display()))
}

/// Writes to stdout; a reader that went away (`| head`) is not an error.
pub fn print(text: &str) -> anyhow::Result<()> {
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => Err(error.into()),
        _ => Ok(()),
    }
}

fn facts(args: &MatrixArgs, id: &str, json: bool) -> anyhow::Result<Status> {
    let summary = FactsSummary::of(&load(args, id)?);
    if json {
        print(&format!("{}\n", serde_json::to_string_pretty(&summary)?))?;
    } else {
        print(&summary.to_string())?;
    }
    Ok(Status::Success)
}

fn diff(args: &MatrixArgs, a: &str, b: &str, full: bool, json: bool) -> anyhow::Result<Status> {
    let diff = FactsDiff::between(&load(args, a)?, &load(args, b)?);
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
