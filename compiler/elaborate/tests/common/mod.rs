//! Helpers: a script and tapset files in a temporary directory, loaded for
//! a committed facts fixture and elaborated.

#![allow(dead_code)] // each test binary uses some of the helpers
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::path::Path;

use tapmatrix_elaborate::{Capabilities, Construct, ElaborateErrors, Elaborated, elaborate};
use tapmatrix_facts::KernelFacts;
use tapmatrix_resolve::{Sources, TracepointNames, kernel_profile};

/// The committed facts fixture of a kernel (`6.1`, `5.10`).
pub fn fixture(id: &str) -> KernelFacts {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../facts/fixtures/linux-{id}"));
    let config = dir.join("config");
    KernelFacts::from_raw(&dir, config.exists().then_some(config.as_path())).unwrap()
}

/// The repository's tapset directory.
pub fn repo_tapsets() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tapsets")
}

/// Elaborates `script` (as `t.stp`) with `tapsets` (name, text) in a
/// temporary tapset directory, plus `extra_dirs`, for `facts`. Locations in
/// errors are relative to the temporary directory.
pub fn run_with(
    tapsets: &[(&str, &str)],
    extra_dirs: &[std::path::PathBuf],
    script: &str,
    facts: &KernelFacts,
) -> Result<Elaborated, Vec<String>> {
    run_for(tapsets, extra_dirs, script, facts, &tracefs_like())
}

/// [`run_with`] for a back end that serves `caps`.
pub fn run_for(
    tapsets: &[(&str, &str)],
    extra_dirs: &[std::path::PathBuf],
    script: &str,
    facts: &KernelFacts,
    caps: &Capabilities,
) -> Result<Elaborated, Vec<String>> {
    let dir = tempfile::tempdir().unwrap();
    let tapset_dir = dir.path().join("tapsets");
    std::fs::create_dir(&tapset_dir).unwrap();
    for (name, text) in tapsets {
        std::fs::write(tapset_dir.join(name), text).unwrap();
    }
    let script_path = dir.path().join("t.stp");
    std::fs::write(&script_path, script).unwrap();
    let mut tapset_dirs = extra_dirs.to_vec();
    tapset_dirs.push(tapset_dir);
    let sources = Sources {
        tapset_dirs,
        script: Some(script_path),
        script_text: None,
    };
    let loaded = sources.load(kernel_profile(facts)).unwrap();
    let prefix = format!("{}/", dir.path().display());
    elaborate(&loaded, facts, caps).map_err(|ElaborateErrors(errors)| {
        errors
            .iter()
            .map(|e| e.to_string().replace(&prefix, ""))
            .collect()
    })
}

/// What the tracefs back end serves (the elaborator's tests cannot depend
/// on it): everything but reads at computed addresses, the current task,
/// target writes, backtraces, credentials at a hit, profile timers and perf
/// probes; tracepoint names are format fields first.
pub fn tracefs_like() -> Capabilities {
    let no = "use --backend bpf";
    Capabilities::all("tracefs", "6.1")
        .with_tracepoint_names(TracepointNames::Fields)
        .refuse(Construct::ComputedRead, no)
        .refuse(Construct::CurrentTask, no)
        .refuse(Construct::TargetWrite, "copy the value into a local")
        .refuse(Construct::Backtrace, no)
        .refuse(Construct::CredentialsAtHit, no)
        .refuse(Construct::ProfileTimer, no)
        .refuse(Construct::PerfProbe, no)
        .refuse(Construct::Registers, no)
}

/// Elaborates a script alone (no tapsets) on 6.1.
pub fn run(script: &str) -> Result<Elaborated, Vec<String>> {
    run_with(&[], &[], script, &fixture("6.1"))
}

/// The errors of a script that must fail.
pub fn errors(script: &str) -> Vec<String> {
    match run(script) {
        Ok(_) => panic!("elaborated, expected an error:\n{script}"),
        Err(errors) => errors,
    }
}

/// Asserts that one error contains `message` at `t.stp:LINE:COL`.
pub fn assert_error(script: &str, message: &str, at: &str) {
    let errors = errors(script);
    assert!(
        errors
            .iter()
            .any(|e| e.contains(message) && e.contains(&format!("at t.stp:{at}"))),
        "expected '{message}' at t.stp:{at}, got:\n{}",
        errors.join("\n")
    );
}

/// The string constants of a value's debug form, in order: a cheap way to
/// see the order composed bodies run in.
pub fn strings_in(value: &impl std::fmt::Debug) -> Vec<String> {
    let text = format!("{value:?}");
    let mut out = Vec::new();
    let mut rest = text.as_str();
    while let Some(at) = rest.find("Str(\"") {
        rest = &rest[at + 5..];
        let end = rest.find('"').unwrap_or(rest.len());
        out.push(rest[..end].to_owned());
        rest = &rest[end..];
    }
    out
}
