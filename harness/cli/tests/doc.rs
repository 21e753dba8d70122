//! `tapmatrix doc` end to end: the repository's tapsets are documented
//! alias by alias; a malformed doc comment is an input error with its place.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::path::PathBuf;
use std::process::{Command, Output};

fn tapmatrix(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tapmatrix"))
        .args(args)
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn repo_tapsets() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tapsets")
}

#[test]
fn every_alias_of_the_repository_tapsets_is_documented() {
    let dir = repo_tapsets();
    let out = tapmatrix(&["doc", "--no-kernels", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let reference = text(&out.stdout);
    let mut aliases = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let source = std::fs::read_to_string(&path).unwrap();
        for line in source.lines() {
            let Some(rest) = line.strip_prefix("probe ") else {
                continue;
            };
            let name = rest.split([' ', '=']).next().unwrap();
            // A tapset's own probe (`probe init {`), not an alias: it joins
            // a script's program with its file and has no reference entry.
            let after = rest[name.len()..].trim_start();
            if after.is_empty() || after.starts_with('{') {
                continue;
            }
            aliases += 1;
            assert!(
                reference.contains(&format!("\n### probe {name}\n")),
                "{}: alias {name} has no doc comment",
                path.display()
            );
        }
    }
    assert!(aliases > 700, "only {aliases} aliases in tapsets/");
    assert!(
        reference.contains("\n### function pid\n"),
        "builtins are documented"
    );
}

#[test]
fn man_format_is_a_man_page() {
    let out = tapmatrix(&[
        "doc",
        "--no-kernels",
        "--format",
        "man",
        repo_tapsets().to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with(".TH TAPSETS 3stap"));
}

#[test]
fn a_malformed_comment_exits_2_with_its_place() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.stp"),
        "\n/**\n * probe a.b - x\n */\nprobe a.c = kernel.function(\"f\") {}\n",
    )
    .unwrap();
    let out = tapmatrix(&["doc", "--no-kernels", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("bad.stp:2: the doc comment documents a.b"),
        "{stderr}"
    );
}
