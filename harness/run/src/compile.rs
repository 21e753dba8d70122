//! Compiling one script for one kernel: add it to the tapsets loaded once
//! for the kernel's profile, check its probes resolve, elaborate, lower to
//! tracefs.

use std::path::PathBuf;

use tapmatrix_facts::KernelFacts;
use tapmatrix_ir::Bundle;
use tapmatrix_resolve::{Outcome, Resolver, TapsetLibrary};
use tapmatrix_tracefs::FunctionEvents;

/// A script compiled for one kernel, or why not.
#[derive(Debug, Clone)]
pub enum Compiled {
    /// Ready to run.
    Bundle(Box<Bundle>),
    /// A probe of the script resolves to nothing here: the reasons, one
    /// per line (`probe point: why`).
    NotAvailable(String),
    /// The script does not compile for this kernel: the messages.
    Error(String),
}

/// Compiles `script` (read from that file, or `text` under that name)
/// for the kernel `facts` describes, with `tapsets` (loaded once for its
/// profile, or why they could not be), function probes served by `events`.
pub fn compile(
    script: PathBuf,
    text: Option<String>,
    tapsets: &mut Result<TapsetLibrary, String>,
    facts: &KernelFacts,
    events: FunctionEvents,
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
    let caps = tapmatrix_tracefs::capabilities(facts, kernel);
    let elaborated = match tapmatrix_elaborate::elaborate(&loaded, facts, &caps) {
        Ok(elaborated) => elaborated,
        Err(errors) => return Compiled::Error(errors.to_string()),
    };
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
