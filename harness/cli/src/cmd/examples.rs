//! `tapmatrix examples [DIR]`: SystemTap's examples as a conformance
//! test. Each example's `test_installcheck:` line becomes a `tapmatrix
//! run` (read by `run`'s own command line: an option it lacks is a
//! failure of that example), every example runs on every kernel (one boot
//! per kernel for all of them), and each (example, kernel) is sorted into
//! runs clean, unsupported by design, untested there (its `test_support`
//! fails, as in SystemTap's own harness), or fails with the first error.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Mutex;

use anyhow::{Context, anyhow};
use clap::{Args, Parser};
use tapmatrix_kernels::{HostApt, fetch_package};
use tapmatrix_resolve::{Outcome, ProbePoint, Resolver, TapsetLibrary, kernel_profile};
use tapmatrix_run::examples::{
    Conformance, Example, ExampleCell, ExampleResult, Invocation, Support, Verdict,
    missing_programs, stap_invocation,
};
use tapmatrix_run::{Backend, Compiled, FunctionEvents, Pass, Spec};
use tapmatrix_vm::Accel;

use crate::cmd::kernels::{MatrixArgs, classify, harvested_ids, load_facts, print};
use crate::cmd::run::{RunArgs, Settings, Sink, run_specs, specs_of, write_results};
use crate::exit::{Status, infra_error, input_error};

/// `tapmatrix examples` options.
#[derive(Args)]
pub struct ExamplesArgs {
    /// The matrix and the cache.
    #[command(flatten)]
    pub matrix: MatrixArgs,
    /// SystemTap's examples directory (its `.meta` files at any depth);
    /// default: the newest `systemtap-doc` the cache's private apt state
    /// reaches, fetched into the cache.
    pub dir: Option<PathBuf>,
    /// Only these examples (ids such as `general/helloworld`, or names
    /// such as `helloworld`), comma-separated.
    #[arg(long, value_delimiter = ',', value_name = "NAME,...")]
    pub only: Vec<String>,
    /// Kernel ids, comma-separated (default: every harvested kernel of the matrix).
    #[arg(long, value_delimiter = ',', value_name = "ID,...")]
    pub kernels: Vec<String>,
    /// Kernels booted at once (default: the number of cores).
    #[arg(short, long)]
    pub jobs: Option<usize>,
    /// The back end (as `run --backend`).
    #[arg(long, default_value = "auto", value_parser = crate::cmd::run::parse_backend)]
    pub backend: Backend,
    /// Accelerator: auto (KVM where it boots kernels, else TCG), kvm or tcg.
    #[arg(long, env = tapmatrix_vm::ACCEL_ENV, default_value = "auto")]
    pub accel: Accel,
    /// Seconds an example whose line has no `-T` may run (with `-c`,
    /// twice this) before it fails as timed out.
    #[arg(long, default_value_t = 30, value_name = "SECS")]
    pub timeout: u64,
    /// Where results.json (the run), examples.json (the verdicts) and
    /// summary.md go.
    #[arg(long, default_value = "target/tapmatrix-examples", value_name = "DIR")]
    pub out: PathBuf,
    /// Exit 1 unless these examples (comma-separated) run clean on every
    /// kernel (CI's regression check).
    #[arg(long, value_delimiter = ',', value_name = "NAME,...")]
    pub expect_clean: Vec<String>,
    /// Stop every example after pass N (1 parse, 2 elaborate, 3 lower, 4
    /// the artefacts), as `stap -p N`: compiled offline on every kernel,
    /// no boot. An example whose own line stops earlier keeps its pass.
    #[arg(short = 'p', long = "pass", value_name = "N", value_parser = clap::value_parser!(u8).range(1..=4))]
    pub pass: Option<u8>,
    /// A tapset directory layered over the built-in library for every
    /// example, as `stap -I` (repeatable): SystemTap's own library, say.
    #[arg(short = 'I', long = "include", value_name = "DIR")]
    pub include: Vec<PathBuf>,
}

/// A `stap` command line, read by `tapmatrix run`'s own options.
#[derive(Parser)]
#[command(name = "stap", no_binary_name = true)]
struct StapLine {
    #[command(flatten)]
    run: RunArgs,
}

/// Runs `tapmatrix examples`.
pub fn run(args: &ExamplesArgs) -> anyhow::Result<Status> {
    let dir = match &args.dir {
        Some(dir) if dir.is_dir() => dir.clone(),
        Some(dir) => {
            return Err(input_error(anyhow!(
                "{}: no such examples directory",
                dir.display()
            )));
        }
        None => fetch_examples(&args.matrix)?,
    };
    let mut examples = Example::find(&dir).map_err(input_error)?;
    if !args.only.is_empty() {
        examples.retain(|example| {
            let name = example.id.rsplit('/').next().unwrap_or(&example.id);
            args.only
                .iter()
                .any(|only| *only == example.id || only == name)
        });
    }
    if examples.is_empty() {
        return Err(input_error(anyhow!(
            "no examples (*.meta files) in {}{}",
            dir.display(),
            if args.only.is_empty() {
                ""
            } else {
                " named by --only"
            }
        )));
    }
    let kernels = if args.kernels.is_empty() {
        harvested_ids(&args.matrix)?
    } else {
        args.kernels.clone()
    };
    if kernels.is_empty() {
        return Err(infra_error(anyhow!(
            "no harvested kernel: run `tapmatrix kernels harvest` first"
        )));
    }
    let guest = tapmatrix_vm::guest_commands().map_err(infra_error)?;
    let tapset_dirs = args.matrix.tapset_dirs(&args.include)?;
    let stop = args.pass.and_then(Pass::from_number);
    // Before running: what each example's line asks for.
    let mut planned: Vec<(Example, Result<Spec, Verdict>)> = Vec::new();
    // Lines that stop before pass 5 (`stap -p4 -Itapset/ X.stp`): compiled
    // offline per kernel, as stap would, with their own tapset directories.
    let mut offline: Vec<(usize, Spec, Pass, Vec<PathBuf>)> = Vec::new();
    for example in examples {
        let plan = match plan(&example, args, &guest) {
            Ok((spec, pass, include))
                if stop.is_some() || pass < Pass::Run || !include.is_empty() =>
            {
                let pass = stop.map_or(pass, |stop| stop.min(pass));
                offline.push((planned.len(), spec.clone(), pass, include));
                Ok(spec)
            }
            Ok((spec, _, _)) => Ok(spec),
            Err(verdict) => Err(verdict),
        };
        planned.push((example, plan));
    }
    let specs: Vec<Spec> = planned
        .iter()
        .enumerate()
        .filter(|(at, _)| !offline.iter().any(|(o, ..)| o == at))
        .filter_map(|(_, (_, plan))| plan.as_ref().ok().cloned())
        .collect();
    eprintln!(
        "{} examples: {} to run on {} kernels",
        planned.len(),
        specs.len(),
        kernels.len()
    );
    let support = support_by_kernel(&args.matrix, &planned, &kernels, &tapset_dirs)?;
    let compiled = compile_offline(&args.matrix, &offline, &kernels, &tapset_dirs, args.backend)?;
    let settings = Settings {
        tapset_dirs,
        jobs: args.jobs,
        accel: args.accel,
        function_events: FunctionEvents::Kprobes,
        backend: args.backend,
        live: false,
        out_dir: Some(args.out.clone()),
        progress: true,
    };
    let results = if specs.is_empty() {
        tapmatrix_run::Results::new(crate::cmd::report::run_info(None))
    } else {
        run_specs(
            &args.matrix,
            &specs,
            &kernels,
            &settings,
            &Mutex::new(Sink::Stdout),
        )?
    };
    write_results(&args.out, &results)?;
    let mut conformance = Conformance {
        kernels: kernels.clone(),
        backend: crate::cmd::run::backend_word(args.backend).to_owned(),
        examples: Vec::new(),
    };
    for (at, ((example, plan), support)) in planned.iter().zip(&support).enumerate() {
        let offline_verdicts = compiled.iter().find(|(o, _)| *o == at).map(|(_, v)| v);
        let cells = kernels
            .iter()
            .zip(support)
            .enumerate()
            .map(|(k, (kernel, supported))| {
                let (verdict, backend) = match plan {
                    Err(verdict) => (verdict.clone(), None),
                    Ok(_) if offline_verdicts.is_some() => (
                        offline_verdicts
                            .and_then(|v| v.get(k).cloned())
                            .unwrap_or_else(|| Verdict::Infra("no result".to_owned())),
                        None,
                    ),
                    Ok(spec) => match results.cell(&spec.name, kernel) {
                        Some(cell) => (Verdict::of_cell(cell), cell.backend.clone()),
                        None => (Verdict::Infra("no result".to_owned()), None),
                    },
                };
                let verdict = match (verdict, supported) {
                    (verdict @ Verdict::Unsupported(_), _) => verdict,
                    (_, Err(why)) => Verdict::Unsupported(why.clone()),
                    (_, Ok(false)) => Verdict::Untested(format!(
                        "its test_support `{}` fails on this kernel",
                        example.support.as_deref().unwrap_or_default()
                    )),
                    (verdict, Ok(true)) => verdict,
                };
                ExampleCell {
                    kernel: kernel.clone(),
                    verdict,
                    backend,
                }
            })
            .collect();
        conformance.examples.push(ExampleResult {
            id: example.id.clone(),
            line: example.installcheck.clone().unwrap_or_default(),
            cells,
        });
    }
    let summary = conformance.summary();
    std::fs::create_dir_all(&args.out)?;
    std::fs::write(
        args.out.join("examples.json"),
        serde_json::to_string_pretty(&conformance)?,
    )?;
    std::fs::write(args.out.join("summary.md"), &summary)?;
    print(&summary)?;
    eprintln!("verdicts: {}", args.out.join("examples.json").display());
    let mut status = Status::Success;
    for name in &args.expect_clean {
        let found = conformance.examples.iter().find(|example| {
            example.id == *name || example.id.rsplit('/').next() == Some(name.as_str())
        });
        match found {
            Some(example) if example.clean_everywhere() => {}
            Some(example) => {
                status = Status::Failed;
                for cell in example.cells.iter().filter(|c| c.verdict != Verdict::Clean) {
                    eprintln!(
                        "{} on {}: {}: expected to run clean",
                        example.id,
                        cell.kernel,
                        verdict_line(&cell.verdict)
                    );
                }
            }
            None => {
                return Err(input_error(anyhow!(
                    "--expect-clean {name}: no such example"
                )));
            }
        }
    }
    Ok(status)
}

/// A verdict in a line.
fn verdict_line(verdict: &Verdict) -> String {
    match verdict {
        Verdict::Clean => "clean".to_owned(),
        Verdict::Unsupported(why)
        | Verdict::Untested(why)
        | Verdict::Fails(why)
        | Verdict::Infra(why) => format!("{}: {why}", verdict.word()),
    }
}

/// How an example runs: its spec, or its verdict on every kernel when it
/// cannot run (no line, a line that is not stap's, an option `run` lacks,
/// a workload the guest cannot run).
fn plan(
    example: &Example,
    args: &ExamplesArgs,
    guest: &BTreeSet<String>,
) -> Result<(Spec, Pass, Vec<PathBuf>), Verdict> {
    let Some(line) = &example.installcheck else {
        return Err(Verdict::Untested(
            "no test_installcheck line: SystemTap's own harness does not run it either".to_owned(),
        ));
    };
    let words = match stap_invocation(line) {
        Invocation::Stap(words) => words,
        Invocation::Unsupported(why) => return Err(Verdict::Unsupported(why)),
    };
    let mut stap = StapLine::try_parse_from(&words).map_err(|error| {
        let rendered = error.render().to_string();
        let first = rendered.lines().next().unwrap_or_default();
        Verdict::Fails(format!(
            "command line: {}",
            first.strip_prefix("error: ").unwrap_or(first)
        ))
    })?;
    let run = &mut stap.run;
    if let Some(command) = &run.command {
        let missing = missing_programs(command, guest);
        if !missing.is_empty() {
            return Err(Verdict::Unsupported(format!(
                "its workload runs {}, which the guest does not have (its user space is busybox)",
                missing
                    .iter()
                    .map(|m| format!("`{m}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    }
    if run.script.is_none() {
        let Some(script) = run.operands.first_mut() else {
            return Err(Verdict::Fails("command line: no script".to_owned()));
        };
        *script = example.dir.join(&*script).to_string_lossy().into_owned();
    }
    run.timeout = if run.command.is_some() {
        args.timeout.saturating_mul(2)
    } else {
        args.timeout
    };
    let mut specs = specs_of(run).map_err(|error| Verdict::Fails(format!("{error:#}")))?;
    let mut spec = specs
        .pop()
        .ok_or_else(|| Verdict::Fails("command line: no script".to_owned()))?;
    spec.name = example.result_name();
    let pass = run.pass.and_then(Pass::from_number).unwrap_or(Pass::Run);
    // As stap's -I: more tapsets besides the library, beside the example.
    let include = run
        .include
        .iter()
        .map(|dir| example.dir.join(dir))
        .collect();
    Ok((spec, pass, include))
}

/// Per offline example (its index in the plan), per kernel: its verdict
/// once compiled up to its pass with its own tapset directories added.
fn compile_offline(
    matrix: &MatrixArgs,
    offline: &[(usize, Spec, Pass, Vec<PathBuf>)],
    kernels: &[String],
    tapset_dirs: &[PathBuf],
    backend: Backend,
) -> anyhow::Result<Vec<(usize, Vec<Verdict>)>> {
    let mut out: Vec<(usize, Vec<Verdict>)> =
        offline.iter().map(|(at, ..)| (*at, Vec::new())).collect();
    for kernel in kernels {
        let facts = load_facts(matrix, kernel, input_error)?;
        // Examples without tapsets of their own share the kernel's library.
        let mut shared = None;
        for ((_, spec, pass, include), (_, verdicts)) in offline.iter().zip(&mut out) {
            let mut own;
            let tapsets = if include.is_empty() {
                shared.get_or_insert_with(|| {
                    TapsetLibrary::load(tapset_dirs, kernel_profile(&facts))
                        .map_err(|error| error.to_string())
                })
            } else {
                let dirs: Vec<PathBuf> = tapset_dirs.iter().chain(include).cloned().collect();
                own = TapsetLibrary::load(&dirs, kernel_profile(&facts))
                    .map_err(|error| error.to_string());
                &mut own
            };
            let compilation = tapmatrix_run::compile_spec(
                spec,
                tapsets,
                &facts,
                FunctionEvents::Kprobes,
                backend,
                *pass,
            );
            verdicts.push(match compilation.compiled {
                Compiled::Ready(_) | Compiled::Stopped { .. } => Verdict::Clean,
                Compiled::NotAvailable(why) => {
                    Verdict::of_error(&format!("its probes do not resolve here: {why}"))
                }
                Compiled::Error(why) => Verdict::of_error(&why),
            });
        }
    }
    Ok(out)
}

/// Per example, per kernel: whether its `test_support` line holds there
/// (`Err`: it runs a command this tool cannot, by design).
fn support_by_kernel(
    matrix: &MatrixArgs,
    planned: &[(Example, Result<Spec, Verdict>)],
    kernels: &[String],
    tapset_dirs: &[PathBuf],
) -> anyhow::Result<Vec<Vec<Result<bool, String>>>> {
    let supports: Vec<Option<Support>> = planned
        .iter()
        .map(|(example, _)| example.support.as_deref().map(Support::parse))
        .collect();
    let mut out: Vec<Vec<Result<bool, String>>> = vec![Vec::new(); planned.len()];
    let needed = supports.iter().any(Option::is_some);
    for kernel in kernels {
        let library = if needed {
            let facts = load_facts(matrix, kernel, input_error)?;
            let tapsets = TapsetLibrary::load(tapset_dirs, kernel_profile(&facts))
                .map_err(|error| input_error(anyhow!("{error}")))?;
            Some((facts, tapsets.loaded()))
        } else {
            None
        };
        for (support, out) in supports.iter().zip(&mut out) {
            let holds = match (support, &library) {
                (Some(support), Some((facts, loaded))) => {
                    let resolver = Resolver::new(&loaded.library, facts);
                    let mut lists = |points: &str| lists(&resolver, points);
                    support.holds(&mut lists).map_err(|command| {
                        format!("its test_support runs `{command}` on the test machine")
                    })
                }
                _ => Ok(true),
            };
            out.push(holds);
        }
    }
    Ok(out)
}

/// Whether `stap -l POINTS` lists something: a comma-separated point
/// that resolves.
fn lists(resolver: &Resolver<'_>, points: &str) -> bool {
    split_points(points).iter().any(|text| {
        ProbePoint::parse(text.trim().trim_end_matches(['?', '!']))
            .is_ok_and(|point| matches!(resolver.resolve_point(&point), Outcome::Resolved(_)))
    })
}

/// Probe points separated by top-level commas.
fn split_points(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut quoted, mut start) = (0i32, false, 0);
    for (at, c) in text.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '(' if !quoted => depth += 1,
            ')' if !quoted => depth -= 1,
            ',' if !quoted && depth == 0 => {
                out.push(&text[start..at]);
                start = at + 1;
            }
            _ => {}
        }
    }
    out.push(&text[start..]);
    out
}

/// The examples directory of the newest `systemtap-doc`, fetched into the
/// cache through its private apt state when missing.
fn fetch_examples(matrix: &MatrixArgs) -> anyhow::Result<PathBuf> {
    let cache = matrix.cache()?;
    let guard = cache.lock().map_err(classify)?;
    let host = HostApt::default().with_matrix(&matrix.load_matrix()?);
    eprintln!("fetching systemtap-doc (SystemTap's examples) through the private apt state");
    let root = fetch_package(&guard, "systemtap-doc", &host)
        .map_err(classify)
        .context("fetching systemtap-doc")?;
    // 5.x ships them with the data, 4.x with the documentation.
    ["usr/share/systemtap/examples", "usr/share/doc/systemtap-doc/examples"]
        .iter()
        .map(|dir| root.join(dir))
        .find(|dir| dir.is_dir())
        .ok_or_else(|| {
            infra_error(anyhow!(
                "{}: the systemtap-doc package has no examples directory (usr/share/systemtap/examples)",
                root.display()
            ))
        })
}
