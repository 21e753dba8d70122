//! Compiling one script for one kernel: load it with its tapsets for the
//! kernel's profile, check its probes resolve, elaborate, lower to tracefs.

use std::path::PathBuf;

use tapmatrix_facts::KernelFacts;
use tapmatrix_ir::Bundle;
use tapmatrix_resolve::{Outcome, Resolver, Sources, kernel_profile};
use tapmatrix_tracefs::FunctionEvents;

/// Which back end compiles scripts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Backend {
    /// ftrace events and the handler runtime.
    #[default]
    Tracefs,
    /// BPF programs: handlers in the kernel where they can run there,
    /// else forwarded hits.
    Bpf,
    /// BPF programs that only forward hits (for tests of that mode).
    BpfForwarded,
    /// Per script and kernel: BPF where the handlers run in the kernel,
    /// else tracefs.
    Auto,
}

/// A script compiled for one kernel, or why not.
#[derive(Debug, Clone)]
pub enum Compiled {
    /// Ready to run through tracefs.
    Bundle(Box<Bundle>),
    /// Ready to run as BPF programs.
    Bpf(Box<tapmatrix_ir::bpf::BpfArtefact>),
    /// A probe of the script resolves to nothing here: the reasons, one
    /// per line (`probe point: why`).
    NotAvailable(String),
    /// The script does not compile for this kernel: the messages.
    Error(String),
}

/// Compiles `script` for the kernel `facts` describes, with the tapsets
/// of `tapset_dirs`, by `backend` (tracefs function probes served by
/// `events`).
pub fn compile(
    script: PathBuf,
    tapset_dirs: &[PathBuf],
    facts: &KernelFacts,
    events: FunctionEvents,
    backend: Backend,
) -> Compiled {
    let sources = Sources {
        tapset_dirs: tapset_dirs.to_vec(),
        script: Some(script),
    };
    let loaded = match sources.load(kernel_profile(facts)) {
        Ok(loaded) => loaded,
        Err(error) => return Compiled::Error(error.to_string()),
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
    let elaborated = match tapmatrix_elaborate::elaborate(&loaded, facts) {
        Ok(elaborated) => elaborated,
        Err(errors) => return Compiled::Error(errors.to_string()),
    };
    let joined = |errors: Vec<tapmatrix_bpf::BpfError>| {
        errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    };
    match backend {
        Backend::Tracefs => {}
        Backend::Bpf | Backend::BpfForwarded => {
            let options = tapmatrix_bpf::Options {
                forward: backend == Backend::BpfForwarded,
            };
            return match tapmatrix_bpf::compile(elaborated, facts, options) {
                Ok(artefact) => Compiled::Bpf(Box::new(artefact)),
                Err(errors) => Compiled::Error(joined(errors)),
            };
        }
        Backend::Auto => {
            if let Ok(artefact) =
                tapmatrix_bpf::compile(elaborated.clone(), facts, tapmatrix_bpf::Options::default())
                && artefact.mode == tapmatrix_ir::bpf::BpfMode::InKernel
            {
                return Compiled::Bpf(Box::new(artefact));
            }
        }
    }
    match tapmatrix_tracefs::lower(elaborated, facts, events) {
        Ok(bundle) => Compiled::Bundle(Box::new(bundle)),
        Err(errors) => Compiled::Error(
            errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n"),
        ),
    }
}
