//! The reference of a small tapset directory, as Markdown and as a man
//! page, with and without an availability matrix (reviewed snapshots).

#![allow(clippy::expect_used)] // test code

use std::path::Path;

use tapmatrix_doc::{EntryKind, Format, load_dir, render};
use tapmatrix_resolve::{Cell, Matrix, Miss, Reason, Row, SCHEMA};

fn fixtures() -> Vec<tapmatrix_doc::FileDoc> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tapsets");
    load_dir(&dir).expect("the fixtures parse")
}

/// Three kernels: demo.open through a kprobe on the first and the
/// tracepoint on the others; demo.bounce optional on the last, and
/// unresolved on the second.
fn matrix() -> Matrix {
    let resolved = |point: &str| Cell::Resolved {
        alternatives: vec![point.to_owned()],
        attach_points: 1,
    };
    Matrix {
        schema: SCHEMA,
        kernels: vec!["5.10".into(), "6.1".into(), "7.3".into()],
        rows: vec![
            Row {
                probe: "demo.open".into(),
                location: "files.stp:15:1".into(),
                cells: vec![
                    resolved("kernel.function(\"__x64_sys_openat\")"),
                    resolved("kernel.trace(\"syscalls:sys_enter_openat\")"),
                    resolved("kernel.trace(\"syscalls:sys_enter_openat\")"),
                ],
            },
            Row {
                probe: "demo.bounce".into(),
                location: "files.stp:31:1".into(),
                cells: vec![
                    resolved("kernel.trace(\"block:block_bio_bounce\")"),
                    Cell::Unresolved {
                        misses: vec![Miss {
                            point: "kernel.trace(\"block:block_bio_bounce\")".into(),
                            reason: Reason::NothingMatched {
                                pattern: "block:block_bio_bounce".into(),
                            },
                        }],
                        suggestions: Vec::new(),
                    },
                    Cell::OptionalMissing { misses: Vec::new() },
                ],
            },
        ],
    }
}

#[test]
fn the_directory_gives_files_in_name_order_and_only_documented_entries() {
    let files = fixtures();
    let names: Vec<&str> = files.iter().map(|file| file.name.as_str()).collect();
    assert_eq!(names, ["files.stp", "strings.stp"]);
    let entries: Vec<(EntryKind, &str)> = files
        .iter()
        .flat_map(|file| &file.entries)
        .map(|entry| (entry.kind, entry.name.as_str()))
        .collect();
    assert_eq!(
        entries,
        [
            (EntryKind::Probe, "demo.open"),
            (EntryKind::Probe, "demo.bounce"),
            (EntryKind::Function, "demo_substr"),
            (EntryKind::Function, "_demo_flags"),
        ]
    );
}

#[test]
fn markdown_without_kernels() {
    insta::assert_snapshot!(render(&fixtures(), None, Format::Markdown));
}

#[test]
fn markdown_with_kernels() {
    insta::assert_snapshot!(render(&fixtures(), Some(&matrix()), Format::Markdown));
}

#[test]
fn man_with_kernels() {
    insta::assert_snapshot!(render(&fixtures(), Some(&matrix()), Format::Man));
}
