//! `tapmatrix kernels facts` and `kernels diff` on the facts crate's
//! fixtures (cut from real 5.10 and 6.12 harvests).

// An integration test binary: a panic is how it reports a failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../compiler/facts/fixtures")
        .join(name)
}

fn tapmatrix(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tapmatrix"))
        .args(args)
        .output()
        .expect("tapmatrix runs")
}

/// A scratch cache and matrix whose kernels "5.10" and "6.12" carry facts
/// parsed from the fixtures, as a harvest would leave them.
struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Scratch {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("matrix.yaml"),
            "kernels:\n  - id: \"5.10\"\n    debian: { suite: bullseye, series: \"5.10\" }\n  - id: \"6.12\"\n    debian: { suite: trixie, series: \"6.12\" }\n",
        )
        .unwrap();
        for (id, raw) in [("5.10", "linux-5.10"), ("6.12", "linux-6.12")] {
            let raw = fixture(raw);
            let facts =
                tapmatrix_facts::KernelFacts::from_raw(&raw, Some(&raw.join("config"))).unwrap();
            facts
                .save(&dir.path().join("cache/facts").join(id))
                .unwrap();
        }
        Scratch { dir }
    }

    fn run(&self, args: &[&str]) -> Output {
        let matrix = self.dir.path().join("matrix.yaml");
        let cache = self.dir.path().join("cache");
        let mut all = vec![
            "kernels",
            "--matrix",
            matrix.to_str().unwrap(),
            "--cache-dir",
            cache.to_str().unwrap(),
        ];
        all.extend_from_slice(args);
        tapmatrix(&all)
    }
}

#[test]
fn facts_then_diff() {
    let scratch = Scratch::new();
    let out = scratch.run(&["facts", "5.10"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = String::from_utf8(out.stdout).unwrap();
    assert!(
        summary.starts_with("release:              5.10.0-32-amd64\n"),
        "{summary}"
    );
    assert!(
        summary.contains("probe syntax:         kprobe, %return, $argN, uprobe"),
        "{summary}"
    );

    let out = scratch.run(&["facts", "6.12", "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let json = String::from_utf8(out.stdout).unwrap();
    assert!(
        json.contains("\"release\": \"6.12.117+deb13-amd64\""),
        "{json}"
    );

    let out = scratch.run(&["diff", "5.10", "6.12"]);
    assert_eq!(out.status.code(), Some(1), "kernels differ: exit 1");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with("5.10.0-32-amd64 -> 6.12.117+deb13-amd64\n"),
        "{text}"
    );
    assert!(text.contains("\n    cachestat\n"), "{text}");

    let out = scratch.run(&["diff", "5.10", "5.10"]);
    assert_eq!(out.status.code(), Some(0), "a kernel equals itself");
}

#[test]
fn unharvested_and_unknown_kernels_are_input_errors() {
    let scratch = Scratch::new();
    std::fs::remove_dir_all(scratch.dir.path().join("cache/facts/6.12")).unwrap();
    let out = scratch.run(&["facts", "6.12"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "absent facts are an input error"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("tapmatrix kernels harvest 6.12"),
        "{stderr}"
    );

    let out = scratch.run(&["diff", "5.10", "9.9"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unknown kernel id(s) `9.9`"), "{stderr}");
    assert!(stderr.contains("5.10, 6.12"), "{stderr}");
}
