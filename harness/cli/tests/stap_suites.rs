//! SystemTap's own language test suites (its source's `testsuite/parseko`,
//! `semko` and `semok`; Debian does not package them, so the test reads a
//! checkout named by `TAPMATRIX_SYSTEMTAP_SRC` and is ignored without
//! one). Each script runs as its `#! stap OPTIONS` line says, through
//! `tapmatrix run` on one kernel (the committed 6.1 fixture facts);
//! scripts wrapped in a shell script are skipped. Prints the counts, and
//! fails on a parseko or semko script accepted that is not a known
//! difference.

// An integration test binary: a panic is how it reports a failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};

use common::Scratch;

/// Where SystemTap's source is.
const SOURCE_ENV: &str = "TAPMATRIX_SYSTEMTAP_SRC";

/// The suites' scripts this tool accepts on purpose, with why.
const KNOWN: &[(&str, &str)] = &[
    (
        "parseko/autocast02.stp",
        "needs --compatible=2.5, a language version before autocasts; tapmatrix speaks only today's",
    ),
    (
        "semko/utrace.stp",
        "process.begin is tapmatrix's kernel alias (on schedule_tail) for any process: no utrace needed",
    ),
];

/// How a script fared.
#[derive(Debug, PartialEq, Eq)]
enum Fate {
    Accepted,
    Rejected,
    /// Its options are not ones `tapmatrix run` takes (exit 2), or it
    /// is a shell script.
    Skipped,
}

fn source() -> PathBuf {
    let dir = std::env::var_os(SOURCE_ENV).unwrap_or_else(|| {
        panic!("{SOURCE_ENV} is not set: point it at a SystemTap source checkout")
    });
    let dir = PathBuf::from(dir).join("testsuite");
    assert!(
        dir.is_dir(),
        "{}: no SystemTap testsuite there",
        dir.display()
    );
    dir
}

fn scripts(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "stp"))
        .collect();
    out.sort();
    out
}

fn fate(scratch: &Scratch, script: &Path) -> Fate {
    let text = std::fs::read_to_string(script).unwrap_or_default();
    let first = text.lines().next().unwrap_or_default();
    let Some(options) = first.strip_prefix("#!").map(str::trim_start) else {
        return Fate::Skipped;
    };
    let Some(options) = options.strip_prefix("stap") else {
        return Fate::Skipped;
    };
    let mut args: Vec<&str> = options.split_whitespace().collect();
    args.extend(["--kernels", "6.1", script.to_str().unwrap()]);
    let output = scratch.run("run", &args);
    match output.status.code() {
        Some(0) => Fate::Accepted,
        Some(2) => Fate::Skipped,
        _ => Fate::Rejected,
    }
}

#[test]
#[ignore = "needs SystemTap's source (its testsuite): set TAPMATRIX_SYSTEMTAP_SRC"]
fn systemtaps_language_suites() {
    let root = source();
    let scratch = Scratch::new(&["6.1"], &["6.1"]);
    let mut surprises = Vec::new();
    for (suite, want) in [
        ("parseko", Fate::Rejected),
        ("semko", Fate::Rejected),
        ("semok", Fate::Accepted),
    ] {
        let (mut right, mut wrong, mut skipped) = (0, Vec::new(), 0);
        for script in scripts(&root.join(suite)) {
            let name = format!("{suite}/{}", script.file_name().unwrap().to_string_lossy());
            match fate(&scratch, &script) {
                Fate::Skipped => skipped += 1,
                fate if fate == want => right += 1,
                _ => wrong.push(name),
            }
        }
        println!(
            "{suite}: {right} as SystemTap, {} not ({}), {skipped} skipped",
            wrong.len(),
            if wrong.len() > 12 {
                format!("{}, ...", wrong[..12].join(", "))
            } else {
                wrong.join(", ")
            }
        );
        if want == Fate::Rejected {
            surprises.extend(
                wrong
                    .into_iter()
                    .filter(|name| !KNOWN.iter().any(|(known, _)| known == name)),
            );
        }
    }
    assert!(
        surprises.is_empty(),
        "accepted, but SystemTap rejects them: {surprises:?}"
    );
}
