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

fn import(raw: &str, dir: &Path) -> String {
    let raw = fixture(raw);
    let out = tapmatrix(&[
        "kernels",
        "facts",
        "--facts-dir",
        dir.to_str().unwrap(),
        "--from-raw",
        raw.to_str().unwrap(),
        "--config",
        raw.join("config").to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn facts_then_diff() {
    let scratch = tempfile::tempdir().unwrap();
    let (old, new) = (scratch.path().join("5.10"), scratch.path().join("6.12"));
    let summary = import("linux-5.10", &old);
    assert!(
        summary.starts_with("release:              5.10.0-46-amd64\n"),
        "{summary}"
    );
    assert!(
        summary.contains("probe syntax:         kprobe, %return, $argN, uprobe"),
        "{summary}"
    );
    import("linux-6.12", &new);

    let out = tapmatrix(&[
        "kernels",
        "facts",
        "--facts-dir",
        new.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let json = String::from_utf8(out.stdout).unwrap();
    assert!(
        json.contains("\"release\": \"6.12.117+deb12-amd64\""),
        "{json}"
    );

    let out = tapmatrix(&[
        "kernels",
        "diff",
        old.to_str().unwrap(),
        new.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "kernels differ: exit 1");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with("5.10.0-46-amd64 -> 6.12.117+deb12-amd64\n"),
        "{text}"
    );
    assert!(text.contains("\n    cachestat\n"), "{text}");

    let out = tapmatrix(&[
        "kernels",
        "diff",
        old.to_str().unwrap(),
        old.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "a kernel equals itself");

    let missing = scratch.path().join("missing");
    let out = tapmatrix(&["kernels", "facts", "--facts-dir", missing.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "absent facts are an input error"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("facts.json"));
}
