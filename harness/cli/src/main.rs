//! `tapmatrix`: compile SystemTap scripts and tapsets without debuginfo, run
//! them across a matrix of kernels in QEMU, and report what needs porting.
//!
//! Exit status: 0 all good, 1 something failed or differs, 2 usage or input
//! error, 3 infrastructure error (no kernel booted, QEMU missing).

mod builtin;
mod cmd;
mod exit;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// mimalloc: resolving and compiling allocate many small values (AST
/// nodes, names, facts); the system allocator spent about 30% of
/// `tapmatrix resolve`'s instructions in malloc and free.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The command line.
#[derive(Parser)]
#[command(name = "tapmatrix", version, about, propagate_version = true)]
struct Cli {
    /// Log more (-v: debug, -vv: trace). `RUST_LOG` overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

/// The subcommands.
#[derive(Subcommand)]
enum Command {
    /// The kernel matrix and its cache: lock, fetch, harvest, list, facts, diff.
    Kernels(cmd::kernels::KernelsArgs),
    /// Preprocess and parse scripts and tapsets; print the AST or, with --check, only errors.
    Parse(cmd::parse::ParseArgs),
    /// Probe points a pattern matches on one harvested kernel (like `stap -l`/`-L`).
    List(cmd::list::ListArgs),
    /// The availability matrix, probe x kernel, offline, with reasons and porting suggestions.
    Resolve(cmd::resolve::ResolveArgs),
    /// Run scripts on the kernel matrix, one boot per kernel, judged against their specs and snapshots.
    Run(Box<cmd::run::RunArgs>),
    /// SystemTap's examples as a conformance test: each `test_installcheck` line run on the matrix and sorted.
    Examples(Box<cmd::examples::ExamplesArgs>),
    /// How one script's output differs between two kernels.
    DiffOutput(cmd::run::DiffOutputArgs),
    /// Render a results.json: table, json, ktap, junit, kcidb, mail or html.
    Report(cmd::report::ReportArgs),
    /// Classify each cell's change between a baseline and a new results.json (exit 1 on a regression).
    Compare(cmd::report::CompareArgs),
    /// Join the results.json of shards into one.
    Merge(cmd::report::MergeArgs),
    /// Split a run into shards by measured cost: a GitHub Actions matrix.
    Plan(cmd::report::PlanArgs),
    /// The tapset reference from the tapsets' doc comments, with each alias's availability over kernels.
    Doc(cmd::doc::DocArgs),
    /// Host prerequisites, the accelerator a boot would use, the cache directory.
    Doctor(cmd::doctor::DoctorArgs),
    /// Timings against a bare boot: `bench harvest` (the facts harvest), `bench run` (scripts on the matrix).
    #[command(subcommand)]
    Bench(cmd::bench::BenchCommand),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => return usage_error(&error),
    };
    init_logging(cli.verbose);
    let result = match cli.command {
        Command::Kernels(args) => cmd::kernels::run(args),
        Command::Parse(args) => cmd::parse::run(args),
        Command::List(args) => cmd::list::run(&args),
        Command::Resolve(args) => cmd::resolve::run(&args),
        Command::Run(args) => cmd::run::run(&args),
        Command::Examples(args) => cmd::examples::run(&args),
        Command::DiffOutput(args) => cmd::run::diff_output(&args),
        Command::Report(args) => cmd::report::report(&args),
        Command::Compare(args) => cmd::report::compare_cmd(&args),
        Command::Merge(args) => cmd::report::merge_cmd(&args),
        Command::Plan(args) => cmd::report::plan_cmd(&args),
        Command::Doc(args) => cmd::doc::run(&args),
        Command::Doctor(args) => cmd::doctor::run(&args),
        Command::Bench(command) => cmd::bench::run(command),
    };
    match result {
        Ok(status) => status.into(),
        Err(error) => {
            eprintln!("error: {error:#}");
            exit::status_of(&error).into()
        }
    }
}

/// Bad usage (an unknown option, a missing or bad value) is one line on
/// stderr and exit status 2, as `stap` says it; help and version are
/// printed as clap prints them.
fn usage_error(error: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        error.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = error.print();
        return if error.use_stderr() {
            exit::Status::Usage.into()
        } else {
            exit::Status::Success.into()
        };
    }
    let rendered = error.render().to_string();
    let line = rendered
        .lines()
        .find(|line| !line.trim().is_empty())
        .unwrap_or("error: bad usage");
    let line = line.strip_prefix("error: ").unwrap_or(line);
    eprintln!("error: {line} (see --help)");
    exit::Status::Usage.into()
}

/// Logs go to stderr; `RUST_LOG` wins over `-v`.
fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .without_time()
        .init();
}
