//! The IR of a few whole scripts, as reviewed snapshots.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;
use common::*;
use tapmatrix_elaborate::{Elaborated, FetchRequest};

/// The program with file names instead of temporary paths, and the sites
/// as one line per attach point and fetch.
fn snapshot(mut e: Elaborated) -> (tapmatrix_ir::Program, Vec<String>) {
    for file in &mut e.program.files {
        if let Some(name) = file.rsplit('/').next() {
            *file = name.to_owned();
        }
    }
    let mut sites = Vec::new();
    for (index, site) in e.sites.iter().enumerate() {
        for attach in &site.attach {
            sites.push(format!("probe {index}: attach {}", attach.probe_point()));
        }
        for (slot, fetch) in site.fetches.iter().enumerate() {
            let line = match fetch {
                FetchRequest::Value { text, location, .. } => {
                    format!(
                        "value {text} ({})",
                        location.rsplit('/').next().unwrap_or("")
                    )
                }
                FetchRequest::String {
                    text,
                    user,
                    max_len,
                    location,
                    ..
                } => format!(
                    "string {text} user={user} max_len={max_len:?} ({})",
                    location.rsplit('/').next().unwrap_or("")
                ),
                FetchRequest::Defined { text, .. } => format!("defined {text}"),
            };
            sites.push(format!("probe {index}: fetch {slot}: {line}"));
        }
    }
    (e.program, sites)
}

#[test]
fn hello_world() {
    let e = run("probe begin {\n  printf(\"hello %s\\n\", \"world\")\n  exit()\n}\n").unwrap();
    let (program, sites) = snapshot(e);
    assert!(sites.is_empty());
    insta::assert_yaml_snapshot!(program);
}

#[test]
fn counts_per_execname_sorted_at_the_end() {
    let e = run(r#"global reads
probe kernel.function("vfs_read") { reads[execname()] <<< $count }
probe end {
  foreach (name in reads @count- limit 3)
    printf("%-16s %5d %d\n", name, @count(reads[name]), @sum(reads[name]))
}
"#)
    .unwrap();
    let (program, sites) = snapshot(e);
    insta::assert_yaml_snapshot!("counts_program", program);
    insta::assert_yaml_snapshot!("counts_sites", sites);
}

#[test]
fn tapset_alias_with_a_string_fetch_and_a_condition() {
    let e = run_with(
        &[],
        &[repo_tapsets()],
        r#"global seen = 0
probe vfs.read if (seen < 10) {
  seen++
  printf("%s read %d from %s\n", execname(), count,
         kernel_string($file->f_path->dentry->d_name->name))
}
"#,
        &fixture("6.1"),
    )
    .unwrap();
    let (program, sites) = snapshot(e);
    insta::assert_yaml_snapshot!("vfs_read_program", program);
    insta::assert_yaml_snapshot!("vfs_read_sites", sites);
}
