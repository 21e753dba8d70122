//! `tapmatrix parse`: the front end only (like `stap -p1`): preprocess and
//! parse scripts and tapset directories, print the canonical AST or, with
//! `--check`, only the diagnostics and a summary.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;
use tapmatrix_syntax::ast::Item;
use tapmatrix_syntax::profile::{
    DEFAULT_ARCH, DEFAULT_KERNEL_RELEASE, DEFAULT_SYSTEMTAP_VERSION, parse_kernel_config,
};
use tapmatrix_syntax::{FileKind, Profile, Runtime, Session, print_file, tapset_files};

use crate::exit::{Status, input_error};

/// `tapmatrix parse` options.
#[derive(Args)]
pub struct ParseArgs {
    /// Print only diagnostics and a one-line summary, not the AST.
    #[arg(long)]
    check: bool,
    /// Target architecture for `%( arch == ... %)` and tapset subdirectories.
    #[arg(long, default_value = DEFAULT_ARCH)]
    arch: String,
    /// Target kernel release for `kernel_v`/`kernel_vr` (default: Debian 12's 6.1.0).
    #[arg(long, default_value = DEFAULT_KERNEL_RELEASE)]
    kernel_release: String,
    /// A kernel `.config` whose CONFIG_* values conditionals compare against
    /// (without it every CONFIG_* is empty).
    #[arg(long, value_name = "FILE")]
    kernel_config: Option<PathBuf>,
    /// Runtime (`stap --runtime`): `runtime` in conditionals and the tapset
    /// subdirectory read (`linux/`, `dyninst/`, `bpf/`).
    #[arg(long, value_enum, default_value_t = RuntimeArg::Kernel)]
    runtime: RuntimeArg,
    /// Language version `systemtap_v` compares against (`stap --compatible`).
    #[arg(long, value_name = "VERSION", default_value = DEFAULT_SYSTEMTAP_VERSION)]
    compatible: String,
    /// Guru mode (`stap -g`): allow embedded C in scripts.
    #[arg(short = 'g', long)]
    guru: bool,
    /// A tapset directory whose `.stpm` macros are visible to every file
    /// (repeatable); its scripts are not parsed.
    #[arg(short = 'I', value_name = "DIR")]
    include: Vec<PathBuf>,
    /// Scripts (`.stp`), library macro files (`.stpm`) and tapset
    /// directories (searched as SystemTap searches a tapset directory:
    /// the runtime, kernel-version and architecture subdirectories only).
    #[arg(value_name = "FILE|DIR", required = true)]
    paths: Vec<PathBuf>,
    /// Script arguments for `$1`, `@1`, `$#` (after `--`).
    #[arg(last = true, value_name = "ARGS")]
    args: Vec<String>,
}

/// `--runtime` values.
#[derive(Clone, Copy, clap::ValueEnum)]
enum RuntimeArg {
    /// The kernel-module runtime (SystemTap's default).
    Kernel,
    /// The Dyninst user-space runtime.
    Dyninst,
    /// The BPF runtime.
    Bpf,
}

impl From<RuntimeArg> for Runtime {
    fn from(arg: RuntimeArg) -> Runtime {
        match arg {
            RuntimeArg::Kernel => Runtime::Kernel,
            RuntimeArg::Dyninst => Runtime::Dyninst,
            RuntimeArg::Bpf => Runtime::Bpf,
        }
    }
}

/// What to parse, as what.
struct Inputs {
    macros: Vec<PathBuf>,
    /// (path, is a tapset library file).
    scripts: Vec<(PathBuf, bool)>,
}

fn collect(args: &ParseArgs, profile: &Profile) -> anyhow::Result<Inputs> {
    let mut inputs = Inputs {
        macros: Vec::new(),
        scripts: Vec::new(),
    };
    for dir in &args.include {
        let files = tapset_files(dir, profile)
            .with_context(|| format!("cannot read tapset directory {}", dir.display()))
            .map_err(input_error)?;
        inputs.macros.extend(files.macros);
    }
    for path in &args.paths {
        if path.is_dir() {
            let files = tapset_files(path, profile)
                .with_context(|| format!("cannot read directory {}", path.display()))
                .map_err(input_error)?;
            if files.scripts.is_empty() && files.macros.is_empty() {
                return Err(input_error(anyhow::anyhow!(
                    "no .stp or .stpm files found in {} (searched as a tapset directory: itself, \
                     {}/, {}/ and kernel-version subdirectories)",
                    path.display(),
                    profile.runtime.tapset_dir(),
                    profile.arch
                )));
            }
            inputs.macros.extend(files.macros);
            inputs
                .scripts
                .extend(files.scripts.into_iter().map(|p| (p, true)));
        } else if path.extension().is_some_and(|e| e == "stpm") {
            inputs.macros.push(path.clone());
        } else if path.exists() {
            inputs.scripts.push((path.clone(), false));
        } else {
            bail!(input_error(anyhow::anyhow!(
                "{}: no such file or directory",
                path.display()
            )));
        }
    }
    Ok(inputs)
}

/// Runs `tapmatrix parse`.
pub fn run(args: ParseArgs) -> anyhow::Result<Status> {
    let mut profile = Profile {
        arch: args.arch.clone(),
        kernel_release: args.kernel_release.clone(),
        guru_mode: args.guru,
        runtime: args.runtime.into(),
        systemtap_version: args.compatible.clone(),
        ..Profile::default()
    };
    if let Some(config) = &args.kernel_config {
        let text = std::fs::read_to_string(config)
            .with_context(|| format!("cannot read kernel config {}", config.display()))
            .map_err(input_error)?;
        profile.kernel_config = parse_kernel_config(&text);
    }
    let inputs = collect(&args, &profile)?;
    let mut session = Session::new(profile, &args.args);
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let stderr = std::io::stderr();
    let mut err = stderr.lock();
    let mut errors = 0usize;
    for d in session
        .load_library_macros(&inputs.macros)
        .map_err(input_error)?
    {
        errors += 1;
        write!(err, "{}", d.render(session.sources()))?;
    }
    let (mut probes, mut functions, mut globals) = (0usize, 0usize, 0usize);
    for (path, library) in &inputs.scripts {
        let kind = FileKind {
            privileged: *library,
            user_file: !*library,
        };
        let parsed = session.parse_path(path, kind).map_err(input_error)?;
        for d in &parsed.diagnostics {
            write!(err, "{}", d.render(session.sources()))?;
        }
        errors += parsed.diagnostics.len();
        for item in &parsed.file.items {
            match item {
                Item::Probe(_) | Item::Alias(_) => probes += 1,
                Item::Function(_) => functions += 1,
                Item::Global(_) => globals += 1,
                Item::Embedded(_) => {}
            }
        }
        if !args.check {
            writeln!(out, "# {}", path.display())?;
            write!(out, "{}", print_file(&parsed.file))?;
        }
    }
    let files = inputs.macros.len() + inputs.scripts.len();
    let summary = format!(
        "{files} files, {probes} probes, {functions} functions, {globals} globals, {errors} errors"
    );
    if args.check {
        writeln!(out, "{summary}")?;
    } else {
        writeln!(err, "{summary}")?;
    }
    Ok(if errors == 0 {
        Status::Success
    } else {
        Status::Usage
    })
}
