//! Compiling one script for one kernel: add it to the tapsets loaded once
//! for the kernel's profile, check its probes resolve, elaborate, lower to
//! tracefs.

use std::path::PathBuf;

use tapmatrix_facts::KernelFacts;
use tapmatrix_ir::Artefact;
use tapmatrix_resolve::{Outcome, Resolver, TapsetLibrary};
use tapmatrix_tracefs::FunctionEvents;

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
    let loaded = match tapsets
        .as_mut()
        .map(|tapsets| tapsets.with_script(&script, text))
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
    let tracefs = || -> Result<Artefact, String> {
        let caps = tapmatrix_tracefs::capabilities(facts, kernel);
        let elaborated =
            tapmatrix_elaborate::elaborate(&loaded, facts, &caps).map_err(|e| e.to_string())?;
        tapmatrix_tracefs::lower(elaborated, facts, events)
            .map(Artefact::Tracefs)
            .map_err(joined)
    };
    let bpf = |forward: bool| -> Result<Artefact, String> {
        let caps = tapmatrix_bpf::capabilities(facts, kernel);
        let elaborated =
            tapmatrix_elaborate::elaborate(&loaded, facts, &caps).map_err(|e| e.to_string())?;
        tapmatrix_bpf::compile(elaborated, facts, tapmatrix_bpf::Options { forward })
            .map(|artefact| Artefact::Bpf(Box::new(artefact)))
            .map_err(joined)
    };
    let compiled = match backend {
        Backend::Tracefs => tracefs(),
        Backend::Bpf => bpf(false),
        Backend::BpfForwarded => bpf(true),
        // Handlers in the kernel where they all compile there; else the
        // tracefs events; else BPF programs that forward each hit (what
        // only BPF reaches: tracepoint arguments, profile and perf events).
        Backend::Auto => match bpf(false) {
            Ok(artefact @ Artefact::Bpf(_)) if artefact.backend() == "bpf" => Ok(artefact),
            bpf_result => match tracefs() {
                Ok(artefact) => Ok(artefact),
                Err(tracefs_error) => bpf_result
                    .map_err(|bpf_error| format!("{tracefs_error}\n(and by bpf: {bpf_error})")),
            },
        },
    };
    match compiled {
        Ok(artefact) => Compiled::Ready(Box::new(artefact)),
        Err(message) => Compiled::Error(message),
    }
}

/// Back end errors, one a line.
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
