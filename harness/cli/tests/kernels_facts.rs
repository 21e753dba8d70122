//! `tapmatrix kernels facts` and `kernels diff` on the facts crate's
//! fixtures (cut from real 5.10 and 6.12 harvests).

// An integration test binary: a panic is how it reports a failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Output;

/// A matrix of 5.10 and 6.12, both harvested.
fn scratch() -> common::Scratch {
    common::Scratch::new(&["5.10", "6.12"], &["5.10", "6.12"])
}

/// `tapmatrix kernels --matrix M --cache-dir C ARGS...`.
fn kernels(scratch: &common::Scratch, args: &[&str]) -> Output {
    scratch.run("kernels", args)
}

#[test]
fn facts_then_diff() {
    let scratch = scratch();
    let out = kernels(&scratch, &["facts", "5.10"]);
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

    let out = kernels(&scratch, &["facts", "6.12", "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let json = String::from_utf8(out.stdout).unwrap();
    assert!(
        json.contains("\"release\": \"6.12.117+deb13-amd64\""),
        "{json}"
    );

    let out = kernels(&scratch, &["diff", "5.10", "6.12"]);
    assert_eq!(out.status.code(), Some(1), "kernels differ: exit 1");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with("5.10.0-32-amd64 -> 6.12.117+deb13-amd64\n"),
        "{text}"
    );
    assert!(text.contains("\n    cachestat\n"), "{text}");

    let out = kernels(&scratch, &["diff", "5.10", "5.10"]);
    assert_eq!(out.status.code(), Some(0), "a kernel equals itself");
}

#[test]
fn unharvested_and_unknown_kernels_are_input_errors() {
    let scratch = scratch();
    std::fs::remove_dir_all(scratch.dir.path().join("cache/facts/6.12")).unwrap();
    let out = kernels(&scratch, &["facts", "6.12"]);
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

    let out = kernels(&scratch, &["diff", "5.10", "9.9"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unknown kernel id(s) `9.9`"), "{stderr}");
    assert!(stderr.contains("5.10, 6.12"), "{stderr}");
}
