//! SystemTap's examples compiled against SystemTap's own tapset library
//! (Debian's `systemtap-common`, layered with `-I` over the built-in one)
//! with `-p 4` on every kernel of the matrix, offline (the test cache's
//! facts; no boot): every embedded-C function (`%{ %}`) of that library
//! that an example calls and tapmatrix has no implementation of is listed,
//! and every `@const` it has no value for (C too).
//!
//! The list is a ratchet: `fixtures/systemtap-unimplemented-c.txt` holds
//! the ones not served yet (name, then the library file that defines it).
//! The test fails naming every function an example calls that is not in
//! that list (a regression: it was served, or the examples or the library
//! changed), and every listed one no example reaches unserved any more
//! (implemented: take it off the list). Both packages come through the
//! test cache's private apt state, never into the repository.

// An integration test binary: a panic is how it reports a failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;

const KERNELS: &[&str] = &["5.10", "6.1", "6.12", "7.0", "7.1", "7.2", "7.3"];

/// The tapset directory of the newest `systemtap-common` the test cache's
/// apt state reaches (fetched into the cache when missing).
fn systemtap_tapsets() -> PathBuf {
    let cache = tapmatrix_e2e::test_cache();
    let guard = cache.lock().expect("the test cache's lock");
    let root = tapmatrix_kernels::fetch_package(
        &guard,
        "systemtap-common",
        &tapmatrix_kernels::HostApt::default(),
    )
    .expect("systemtap-common through the test cache's apt state");
    root.join("usr/share/systemtap/tapset")
}

/// The unimplemented embedded C a compile error names: `(what, file)`,
/// `what` being a function's name or an expression's C text.
fn unimplemented(detail: &str, library: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let function = "unimplemented embedded-C function: function '";
    for (at, _) in detail.match_indices(function) {
        let rest = &detail[at + function.len()..];
        let Some((name, rest)) = rest.split_once("' (defined at ") else {
            continue;
        };
        out.push((name.to_owned(), library_file(rest, library)));
    }
    let expression = "unimplemented embedded-C expression: %{";
    for (at, _) in detail.match_indices(expression) {
        let rest = &detail[at + expression.len()..];
        let (code, after) = rest.split_once("%}").unwrap_or((rest, ""));
        let code: String = code.split_whitespace().collect::<Vec<_>>().join(" ");
        out.push((
            format!("%{{{code}%}}"),
            library_file(after_at(after), library),
        ));
    }
    // `@const` of a name tapmatrix has no value for, or of C code.
    for marker in [
        "': a C constant tapmatrix has no value for",
        "' is C code, and tapmatrix runs no C",
    ] {
        for (at, _) in detail.match_indices(marker) {
            let Some(start) = detail[..at].rfind("'@const(") else {
                continue;
            };
            let what = &detail[start + 1..at];
            out.push((
                what.to_owned(),
                library_file(after_at(&detail[at..]), library),
            ));
        }
    }
    out
}

/// What follows the first ` at ` of a diagnostic: its place.
fn after_at(text: &str) -> &str {
    text.split_once(" at ").map_or("", |(_, place)| place)
}

/// The file of a place (`/dir/file.stp:3:1`), relative to the library.
fn library_file(place: &str, library: &str) -> String {
    let file = place.split(':').next().unwrap_or_default();
    let file = file.strip_prefix(library).unwrap_or(file);
    file.trim_start_matches('/').to_owned()
}

#[test]
fn systemtaps_examples_against_its_library_call_no_unlisted_unimplemented_c() {
    tapmatrix_e2e::harvested_kernels(KERNELS);
    let tapsets = systemtap_tapsets();
    assert!(
        tapsets.is_dir(),
        "{}: no tapset directory",
        tapsets.display()
    );
    let cache = tapmatrix_e2e::test_cache_dir();
    let out = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_tapmatrix"))
        .args(["examples", "-p", "4", "--kernels", &KERNELS.join(",")])
        .arg("-I")
        .arg(&tapsets)
        .arg("--out")
        .arg(out.path())
        .env("TAPMATRIX_CACHE", &cache)
        .output()
        .expect("tapmatrix runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let verdicts: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("examples.json")).unwrap()).unwrap();
    let examples = verdicts["examples"].as_array().unwrap();
    assert!(examples.len() > 100, "{} examples only", examples.len());
    let library = tapsets.to_string_lossy().into_owned();
    // Per unimplemented function: its file and the examples that call it.
    let mut found: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    let mut compiled = 0;
    for example in examples {
        let id = example["id"].as_str().unwrap();
        for cell in example["cells"].as_array().unwrap() {
            if cell["verdict"] == "clean" {
                compiled += 1;
            }
            let why = cell["why"].as_str().unwrap_or_default();
            for key in unimplemented(why, &library) {
                found.entry(key).or_default().insert(id.to_owned());
            }
        }
    }
    assert!(compiled > 0, "no example compiled anywhere: {stderr}");
    let listed: BTreeSet<(String, String)> = include_str!("fixtures/systemtap-unimplemented-c.txt")
        .lines()
        .filter(|line| !line.trim().is_empty() && !line.starts_with('#'))
        .map(|line| {
            let (name, file) = line.split_once('\t').unwrap_or((line, ""));
            (name.to_owned(), file.to_owned())
        })
        .collect();
    let new: Vec<String> = found
        .iter()
        .filter(|(key, _)| !listed.contains(key))
        .map(|((name, file), ids)| {
            let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
            format!("  {name} ({file}), called by {}", ids.join(", "))
        })
        .collect();
    let served: Vec<String> = listed
        .iter()
        .filter(|key| !found.contains_key(*key))
        .map(|(name, file)| format!("  {name} ({file})"))
        .collect();
    assert!(
        new.is_empty() && served.is_empty(),
        "SystemTap's examples against {library} (-p 4, {} kernels):\n\
         unimplemented embedded C that an example calls, not in fixtures/systemtap-unimplemented-c.txt ({}):\n{}\n\
         listed but no longer reached unserved (take them off the list) ({}):\n{}",
        KERNELS.len(),
        new.len(),
        new.join("\n"),
        served.len(),
        served.join("\n"),
    );
}
