//! `tapmatrix examples` on a CI-sized subset of SystemTap's examples
//! (Debian's `systemtap-doc`, fetched through the test cache's private apt
//! state, never copied here), booting 6.1: examples that run clean must
//! stay clean, and those this tool cannot run by design are sorted so,
//! with the reason. The full run is `tapmatrix examples` (README).

// An integration test binary: a panic is how it reports a failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

/// Examples that run clean on every kernel today (their `test_installcheck`
/// lines use script arguments, `-T`, tracepoints, aliases and regexes).
const CLEAN: &[&str] = &[
    "general/regex",
    "process/sigkill",
    "io/iostats",
    "memory/vm.tracepoints",
];

#[test]
fn a_subset_of_systemtaps_examples_runs_and_is_sorted() {
    tapmatrix_e2e::harvested_kernels(&["6.1"]);
    let cache = tapmatrix_e2e::test_cache_dir();
    let out = tempfile::tempdir().unwrap();
    let mut only: Vec<&str> = CLEAN.to_vec();
    only.extend(["general/badname", "apps/php-trace"]);
    let output = Command::new(env!("CARGO_BIN_EXE_tapmatrix"))
        .args(["examples", "--kernels", "6.1", "--only", &only.join(",")])
        .args(["--expect-clean", &CLEAN.join(",")])
        .args(["--out", out.path().to_str().unwrap()])
        .env("TAPMATRIX_CACHE", &cache)
        .output()
        .expect("tapmatrix runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let verdicts: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("examples.json")).unwrap()).unwrap();
    let cell = |id: &str| {
        let example = verdicts["examples"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["id"] == id)
            .unwrap_or_else(|| panic!("{id} missing: {verdicts}"));
        example["cells"][0].clone()
    };
    for id in CLEAN {
        assert_eq!(cell(id)["verdict"], "clean", "{id}");
        assert!(
            cell(id)["backend"].is_string(),
            "{id}: no back end recorded"
        );
    }
    let badname = cell("general/badname");
    assert_eq!(badname["verdict"], "unsupported");
    assert!(
        badname["why"].as_str().unwrap().contains("embedded C"),
        "{badname}"
    );
    let php = cell("apps/php-trace");
    assert_eq!(php["verdict"], "unsupported");
    assert!(php["why"].as_str().unwrap().contains("`php`"), "{php}");
    let summary = std::fs::read_to_string(out.path().join("summary.md")).unwrap();
    assert!(summary.contains("| clean | 4 |"), "{summary}");
    assert!(summary.contains("| unsupported | 2 |"), "{summary}");
}
