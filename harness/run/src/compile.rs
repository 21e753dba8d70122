//! Compiling one script for one kernel: add it to the tapsets loaded once
//! for the kernel's profile, check its probes resolve, elaborate, lower to
//! tracefs.

use std::path::PathBuf;

use tapmatrix_elaborate::Elaborated;
use tapmatrix_facts::KernelFacts;
use tapmatrix_ir::{Artefact, GlobalType, ScalarType, Value};
use tapmatrix_resolve::{Outcome, Resolver, ScriptOptions, TapsetLibrary};
use tapmatrix_syntax::print_file;
use tapmatrix_tracefs::FunctionEvents;

use crate::spec::{Spec, Warnings};

/// Which back end compiles scripts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Backend {
    /// ftrace events and the handler runtime.
    Tracefs,
    /// BPF programs: handlers in the kernel where they can run there,
    /// else forwarded hits.
    Bpf,
    /// BPF programs that only forward hits (for tests of that mode).
    BpfForwarded,
    /// BPF programs as `Bpf`, with function probes as kprobes and
    /// kretprobes where `Bpf` would use a BPF trampoline (`fentry`,
    /// `fexit`): for comparing the two.
    BpfKprobes,
    /// Per script and kernel: BPF where the handlers run in the kernel,
    /// else tracefs, else BPF programs that forward hits.
    #[default]
    Auto,
}

/// A script compiled for one kernel, or why not.
#[derive(Debug, Clone)]
pub enum Compiled {
    /// Ready to run: the artefact of the back end that compiled it.
    Ready(Box<Artefact>),
    /// A probe of the script resolves to nothing here: the reasons, one
    /// per line (`probe point: why`).
    NotAvailable(String),
    /// The script does not compile for this kernel: the messages.
    Error(String),
    /// Compiling stopped, as asked, after a pass before the last
    /// (`stap -p1`, `-p2`, `-p3`): what that pass prints.
    Stopped {
        /// The last pass run.
        pass: Pass,
        /// What it prints (the script as parsed, the elaborated probes...).
        printed: String,
    },
}

/// SystemTap's passes, as `stap -p N` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Pass {
    /// 1: preprocess and parse.
    Parse = 1,
    /// 2: resolve the probes and elaborate.
    Elaborate = 2,
    /// 3: lower to the back end's form.
    Lower = 3,
    /// 4: the artefacts the guest would get.
    Artefact = 4,
    /// 5: run.
    Run = 5,
}

impl Pass {
    /// The pass numbered `n` (1 to 5).
    pub fn from_number(n: u8) -> Option<Pass> {
        Some(match n {
            1 => Pass::Parse,
            2 => Pass::Elaborate,
            3 => Pass::Lower,
            4 => Pass::Artefact,
            5 => Pass::Run,
            _ => return None,
        })
    }
}

/// A script compiled for one kernel, with what the compiler warned about.
#[derive(Debug, Clone)]
pub struct Compilation {
    /// The outcome.
    pub compiled: Compiled,
    /// `WARNING: ...` lines about the script (none with `-w`; with `-W`
    /// they make the outcome an error).
    pub warnings: Vec<String>,
}

/// Compiles `script` (read from that file, or `text` under that name)
/// for the kernel `facts` describes, with `tapsets` (loaded once for its
/// profile, or why they could not be), by `backend` (tracefs function
/// probes served by `events`).
pub fn compile(
    script: PathBuf,
    text: Option<String>,
    tapsets: &mut Result<TapsetLibrary, String>,
    facts: &KernelFacts,
    events: FunctionEvents,
    backend: Backend,
) -> Compiled {
    let mut spec = Spec::inline("script", String::new(), String::new(), 0);
    spec.text = text;
    spec.script = script;
    compile_spec(&spec, tapsets, facts, events, backend, Pass::Run).compiled
}

/// Compiles the script of `spec` as its invocation says (arguments, guru
/// mode, `-u`, `-w`/`-W`, `-G`, `-D`) for the kernel `facts` describes,
/// up to pass `last`: see [`compile`].
pub fn compile_spec(
    spec: &Spec,
    tapsets: &mut Result<TapsetLibrary, String>,
    facts: &KernelFacts,
    events: FunctionEvents,
    backend: Backend,
    last: Pass,
) -> Compilation {
    let invocation = &spec.invocation;
    let mut warnings = Vec::new();
    let compiled = (|| -> Compiled {
        let options = ScriptOptions {
            args: invocation.args.clone(),
            guru: invocation.guru,
        };
        let loaded = match tapsets
            .as_mut()
            .map(|tapsets| tapsets.with_script_options(&spec.script, spec.text.clone(), &options))
        {
            Ok(Ok(loaded)) => loaded,
            Ok(Err(error)) => return Compiled::Error(error.to_string()),
            Err(error) => return Compiled::Error(error.clone()),
        };
        let script_errors: Vec<&str> = loaded
            .diagnostics
            .iter()
            .filter(|d| d.in_script)
            .map(|d| d.rendered.as_str())
            .collect();
        if !script_errors.is_empty() {
            return Compiled::Error(script_errors.join("\n"));
        }
        if last == Pass::Parse {
            let printed = loaded
                .library
                .files
                .iter()
                .filter(|file| file.script)
                .map(|file| print_file(&file.ast))
                .collect();
            return Compiled::Stopped {
                pass: last,
                printed,
            };
        }
        let resolver = Resolver::new(&loaded.library, facts);
        let mut missing = Vec::new();
        for probe in &loaded.library.probes {
            if let Outcome::Unresolved(misses) = resolver.resolve_probe(&probe.points) {
                for miss in misses {
                    missing.push(format!("{}: {}", miss.point, miss.reason));
                }
            }
        }
        if !missing.is_empty() {
            return Compiled::NotAvailable(missing.join("\n"));
        }
        let kernel = facts.release.as_deref().unwrap_or("this kernel");
        let options = tapmatrix_elaborate::Options {
            unoptimized: invocation.unoptimized,
            skip_badvars: invocation.skip_badvars,
            set_globals: invocation.globals.iter().map(|g| g.name.clone()).collect(),
        };
        // Elaborates for a back end's capabilities, with the command
        // line's globals and limits set; the warnings are kept once.
        let mut warned: Option<Vec<String>> = None;
        let mut elaborate =
            |caps: &tapmatrix_elaborate::Capabilities| -> Result<Elaborated, Failure> {
                let (mut elaborated, found) = tapmatrix_elaborate::elaborate_with(
                    &loaded, facts, caps, &options,
                )
                .map_err(|errors| {
                    let message = errors.to_string();
                    if errors.only_refusals() {
                        Failure::Refused(message)
                    } else {
                        Failure::Script(message)
                    }
                })?;
                let found: Vec<String> = found.iter().map(ToString::to_string).collect();
                if invocation.warnings == Warnings::Error && !found.is_empty() {
                    return Err(Failure::Script(
                        found
                            .iter()
                            .map(|w| format!("{w} (an error: -W)"))
                            .collect::<Vec<_>>()
                            .join("\n"),
                    ));
                }
                warned.get_or_insert(found);
                set_globals(&mut elaborated.program, &invocation.globals)
                    .map_err(Failure::Script)?;
                elaborated.program.limits = invocation.limits(elaborated.program.limits);
                Ok(elaborated)
            };
        if last == Pass::Elaborate {
            let caps = match backend {
                Backend::Tracefs => tapmatrix_tracefs::capabilities(facts, kernel),
                _ => tapmatrix_bpf::capabilities(facts, kernel),
            };
            let elaborated = match elaborate(&caps) {
                Ok(elaborated) => elaborated,
                Err(failure) => return Compiled::Error(failure.into_message()),
            };
            warnings = warned.take().unwrap_or_default();
            let errors = elaborated.target_errors();
            if !errors.is_empty() {
                return Compiled::Error(tapmatrix_elaborate::ElaborateErrors(errors).to_string());
            }
            return Compiled::Stopped {
                pass: last,
                printed: describe(&elaborated),
            };
        }
        let tracefs = |elaborate: &mut dyn FnMut(
            &tapmatrix_elaborate::Capabilities,
        ) -> Result<Elaborated, Failure>|
         -> Result<Artefact, Failure> {
            let caps = tapmatrix_tracefs::capabilities(facts, kernel);
            let elaborated =
                tapmatrix_elaborate::share_syscall_events(elaborate(&caps)?, facts, &caps);
            tapmatrix_tracefs::lower(elaborated, facts, events)
                .map(Artefact::Tracefs)
                .map_err(|errors| Failure::Refused(joined(errors)))
        };
        let bpf = |elaborate: &mut dyn FnMut(
            &tapmatrix_elaborate::Capabilities,
        ) -> Result<Elaborated, Failure>,
                   options: tapmatrix_bpf::Options|
         -> Result<Artefact, Failure> {
            let caps = tapmatrix_bpf::capabilities(facts, kernel);
            let elaborated =
                tapmatrix_elaborate::share_syscall_events(elaborate(&caps)?, facts, &caps);
            tapmatrix_bpf::compile(elaborated, facts, options)
                .map(|artefact| Artefact::Bpf(Box::new(artefact)))
                .map_err(|errors| Failure::Refused(joined(errors)))
        };
        let compiled = match backend {
            Backend::Tracefs => tracefs(&mut elaborate),
            Backend::Bpf => bpf(&mut elaborate, tapmatrix_bpf::Options::default()),
            Backend::BpfForwarded => bpf(
                &mut elaborate,
                tapmatrix_bpf::Options {
                    forward: true,
                    ..Default::default()
                },
            ),
            Backend::BpfKprobes => bpf(
                &mut elaborate,
                tapmatrix_bpf::Options {
                    kprobes: true,
                    ..Default::default()
                },
            ),
            // Handlers in the kernel where they all compile there; else the
            // tracefs events; else BPF programs that forward each hit (what
            // only BPF reaches: tracepoint arguments, profile and perf events).
            Backend::Auto => match bpf(&mut elaborate, tapmatrix_bpf::Options::default()) {
                Ok(artefact @ Artefact::Bpf(_)) if artefact.backend() == "bpf" => Ok(artefact),
                bpf_result => match tracefs(&mut elaborate) {
                    Ok(artefact) => Ok(artefact),
                    Err(tracefs_failure) => bpf_result
                        .map_err(|bpf_failure| Failure::neither(tracefs_failure, bpf_failure)),
                },
            },
        }
        .map_err(Failure::into_message);
        warnings = warned.take().unwrap_or_default();
        match compiled {
            Ok(artefact) if last == Pass::Lower => Compiled::Stopped {
                pass: last,
                printed: summary(&artefact),
            },
            Ok(artefact) => Compiled::Ready(Box::new(artefact)),
            Err(message) => Compiled::Error(message),
        }
    })();
    if invocation.warnings == Warnings::Suppress {
        warnings.clear();
    }
    Compilation { compiled, warnings }
}

/// Sets scalar globals before `begin`, as `stap -G NAME=VALUE` sets them:
/// a long global takes a number, a string global the text.
fn set_globals(
    program: &mut tapmatrix_ir::Program,
    settings: &[crate::spec::GlobalSetting],
) -> Result<(), String> {
    for setting in settings {
        let Some(global) = program.globals.iter_mut().find(|g| g.name == setting.name) else {
            return Err(format!(
                "-G {}={}: the script uses no global `{}`",
                setting.name, setting.value, setting.name
            ));
        };
        let value = match &global.ty {
            GlobalType::Scalar {
                ty: ScalarType::Long,
            } => Value::Long(parse_long(&setting.value).ok_or_else(|| {
                format!(
                    "-G {}={}: `{}` is a long, and `{}` is not a number",
                    setting.name, setting.value, setting.name, setting.value
                )
            })?),
            GlobalType::Scalar {
                ty: ScalarType::String,
            } => Value::Str(setting.value.clone()),
            _ => {
                return Err(format!(
                    "-G {}={}: `{}` is not a scalar (an array or a statistic cannot be set)",
                    setting.name, setting.value, setting.name
                ));
            }
        };
        global.init = Some(value);
    }
    Ok(())
}

/// A number as the kernel reads a `long` module parameter: decimal, `0x`
/// hexadecimal or `0` octal, with an optional sign.
fn parse_long(text: &str) -> Option<i64> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let magnitude = if let Some(hex) = digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        i128::from_str_radix(hex, 16).ok()?
    } else if digits.len() > 1 && digits.starts_with('0') {
        i128::from_str_radix(&digits[1..], 8).ok()?
    } else {
        digits.parse::<i128>().ok()?
    };
    i64::try_from(if negative { -magnitude } else { magnitude }).ok()
}

/// What pass 2 found, as `stap -p2` lists it: the globals, the functions
/// and the probes with their attach points.
fn describe(elaborated: &Elaborated) -> String {
    use std::fmt::Write;
    let scalar = |ty: &ScalarType| match ty {
        ScalarType::Long => "long",
        ScalarType::String => "string",
    };
    let mut out = String::new();
    let program = &elaborated.program;
    if !program.globals.is_empty() {
        out.push_str("# globals\n");
        for global in &program.globals {
            let ty = match &global.ty {
                GlobalType::Scalar { ty } => scalar(ty).to_owned(),
                GlobalType::Stats => "stats".to_owned(),
                GlobalType::Array { keys, value } => format!(
                    "{} [{}]",
                    value.as_ref().map_or("stats", scalar),
                    keys.iter().map(scalar).collect::<Vec<_>>().join(", ")
                ),
            };
            let _ = writeln!(out, "{}:{ty}", global.name);
        }
    }
    if !program.functions.is_empty() {
        out.push_str("# functions\n");
        for function in &program.functions {
            let params: Vec<&str> = function.params.iter().map(scalar).collect();
            let _ = writeln!(
                out,
                "{}:{} ({})",
                function.name,
                function.ret.as_ref().map_or("unknown", scalar),
                params.join(", ")
            );
        }
    }
    out.push_str("# probes\n");
    for (probe, site) in program.probes.iter().zip(&elaborated.sites) {
        if site.attach.is_empty() {
            let _ = writeln!(out, "{} /* <- {} */", site.point, probe.name);
        }
        for attach in &site.attach {
            let _ = writeln!(out, "{} /* <- {} */", attach.probe_point(), probe.name);
        }
    }
    out
}

/// What pass 3 built, in a line: the back end and the size of its work.
fn summary(artefact: &Artefact) -> String {
    match artefact {
        Artefact::Tracefs(bundle) => format!(
            "{}: {} events, {} probes\n",
            artefact.backend(),
            bundle.events.len(),
            bundle.program.probes.len()
        ),
        Artefact::Bpf(bpf) => format!(
            "{}: {} programs, {} maps\n",
            artefact.backend(),
            bpf.programs.len(),
            bpf.maps.len()
        ),
    }
}

/// Back end errors, one a line.
/// Why a back end did not compile a script: the back end refused a
/// construct it does not serve (another back end may), or the script is
/// wrong whatever the back end.
enum Failure {
    Refused(String),
    Script(String),
}

impl Failure {
    /// `--backend auto`'s error when neither back end compiled the script:
    /// a fault of the script first (the same on every back end, and what
    /// the user has to fix), else both refusals.
    fn neither(tracefs: Failure, bpf: Failure) -> Failure {
        match (tracefs, bpf) {
            (_, Failure::Script(bpf)) => Failure::Script(bpf),
            (Failure::Script(tracefs), Failure::Refused(_)) => Failure::Script(tracefs),
            (Failure::Refused(tracefs), Failure::Refused(bpf)) => {
                Failure::Refused(format!("{tracefs}\n(and by bpf: {bpf})"))
            }
        }
    }

    fn into_message(self) -> String {
        match self {
            Failure::Refused(message) | Failure::Script(message) => message,
        }
    }
}

fn joined<E: std::fmt::Display>(errors: Vec<E>) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// What a back end built, for review (`tapmatrix run --dump`): the tracefs
/// events as the agent will install them, or the BPF maps and programs.
pub fn dump(artefact: &Artefact) -> String {
    match artefact {
        Artefact::Tracefs(bundle) => tapmatrix_tracefs::dump(bundle),
        Artefact::Bpf(artefact) => tapmatrix_bpf::dump(artefact),
    }
}
