//! `tapmatrix resolve` and `tapmatrix list` on the facts crate's fixtures
//! (cut from real 5.10 and 6.12 harvests, no BTF), in a scratch cache.

// An integration test binary: a panic is how it reports a failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

/// A matrix of 5.10, 6.1 and 6.12 where 5.10 and 6.12 are harvested, and a script.
struct Scratch(common::Scratch);

impl Scratch {
    fn new() -> Scratch {
        let scratch = common::Scratch::new(&["5.10", "6.1", "6.12"], &["5.10", "6.12"]);
        std::fs::write(
            scratch.dir.path().join("script.stp"),
            r#"probe kernel.function("vfs_read") { }
probe kernel.function("__alloc_pages") ? { }
probe kernel.function("_do_fork") !, kernel.function("kernel_clone") { }
probe kernel.trace("syscalls:sys_enter_cachestat") { }
probe vfs.write.return, timer.ms(100) { }
"#,
        )
        .unwrap();
        Scratch(scratch)
    }

    fn run(&self, args: &[&str]) -> (Option<i32>, String, String) {
        let out = self.0.run(args[0], &args[1..]);
        (
            out.status.code(),
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    }

    fn script(&self) -> String {
        self.0
            .dir
            .path()
            .join("script.stp")
            .to_str()
            .unwrap()
            .to_owned()
    }
}

#[test]
fn script_matrix_table_markdown_json() {
    let scratch = Scratch::new();
    let script = scratch.script();
    let (code, table, stderr) = scratch.run(&["resolve", &script, "--kernels", "5.10,6.12"]);
    assert_eq!(code, Some(1), "cachestat is missing on 5.10: {stderr}");
    let table = table.replace(&script, "script.stp");
    insta::assert_snapshot!("script_table", table);
    let (_, markdown, _) = scratch.run(&[
        "resolve",
        &script,
        "--kernels",
        "5.10,6.12",
        "--format",
        "markdown",
    ]);
    insta::assert_snapshot!("script_markdown", markdown.replace(&script, "script.stp"));
    let (_, json, _) = scratch.run(&[
        "resolve",
        &script,
        "--kernels",
        "5.10,6.12",
        "--format",
        "json",
    ]);
    let results: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(results["schema"], 2);
    let json = &results["probes"];
    assert_eq!(json["schema"], 1);
    assert_eq!(json["kernels"], serde_json::json!(["5.10", "6.12"]));
    assert_eq!(json["rows"][3]["cells"][0]["status"], "unresolved");
    assert_eq!(
        json["rows"][3]["cells"][0]["misses"][0]["reason"]["kind"],
        "tracepoint_absent"
    );
    assert_eq!(json["rows"][1]["cells"][0]["status"], "optional_missing");
    assert_eq!(
        json["rows"][2]["cells"][1]["alternatives"][0],
        "kernel.function(\"kernel_clone\")"
    );
}

#[test]
fn tapsets_resolve_on_both_kernels_and_diff() {
    let scratch = Scratch::new();
    // A small tapset directory (the repository's tapsets/ use events and
    // functions the facts fixtures do not keep).
    let tapsets = common::repo("harness/cli/tests/fixtures/tapsets");
    let (code, table, stderr) = scratch.run(&[
        "resolve",
        tapsets.to_str().unwrap(),
        "--kernels",
        "5.10,6.12",
    ]);
    // The fixtures keep a few events only: sched_process_exit is not among them.
    assert_eq!(code, Some(1), "{table}{stderr}");
    let unresolved: Vec<&str> = table
        .lines()
        .skip(1)
        .take_while(|l| !l.is_empty())
        .filter(|l| !l.ends_with("ok 1"))
        .collect();
    assert_eq!(unresolved.len(), 1, "{table}");
    assert!(
        unresolved[0].starts_with("scheduler.process_exit "),
        "{table}"
    );
    let script = scratch.script();
    let (code, diff, _) = scratch.run(&["resolve", &script, "--diff", "5.10", "6.12"]);
    assert_eq!(code, Some(1), "{diff}");
    let rows: Vec<&str> = diff.lines().take_while(|l| !l.is_empty()).collect();
    assert_eq!(rows.len(), 2, "only the cachestat row differs: {diff}");
    assert!(
        rows[1].starts_with("kernel.trace(\"syscalls:sys_enter_cachestat\")"),
        "{diff}"
    );
}

#[test]
fn input_and_infra_errors() {
    let scratch = Scratch::new();
    let (code, _, stderr) = scratch.run(&["resolve", "--kernels", "9.9"]);
    assert_eq!(code, Some(2), "{stderr}");
    let (code, _, stderr) = scratch.run(&["resolve", "--kernels", "6.1"]);
    assert_eq!(code, Some(3), "{stderr}");
    assert!(stderr.contains("tapmatrix kernels harvest 6.1"), "{stderr}");
    let bad = scratch.0.dir.path().join("bad.stp");
    std::fs::write(&bad, "probe begin {").unwrap();
    let (code, _, stderr) = scratch.run(&["resolve", bad.to_str().unwrap(), "--kernels", "5.10"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("bad.stp:1:"), "{stderr}");
    let (code, _, stderr) = scratch.run(&["resolve", "/no/such/path"]);
    assert_eq!(code, Some(2), "{stderr}");
    let (code, _, stderr) = scratch.run(&["list", "kernel.function(", "--kernel", "5.10"]);
    assert_eq!(code, Some(2), "{stderr}");
}

#[test]
fn list_points_and_fields() {
    let scratch = Scratch::new();
    let (code, out, stderr) =
        scratch.run(&["list", "kernel.trace(\"sched:*\")", "--kernel", "6.12"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        out,
        "kernel.trace(\"sched:sched_process_exec\")\nkernel.trace(\"sched:sched_process_fork\")\nkernel.trace(\"sched:sched_switch\")\nkernel.trace(\"sched:sched_wakeup\")\n"
    );
    let (_, out, _) = scratch.run(&[
        "list",
        "-L",
        "kernel.trace(\"sched_process_fork\")",
        "--kernel",
        "5.10",
    ]);
    assert_eq!(
        out,
        "kernel.trace(\"sched:sched_process_fork\") $parent_comm:char[16] $parent_pid:pid_t $child_comm:char[16] $child_pid:pid_t\n"
    );
    let (_, out, _) = scratch.run(&["list", "vfs.*", "--kernel", "5.10"]);
    assert_eq!(
        out,
        "vfs.open\nvfs.read\nvfs.readv\nvfs.write\nvfs.writev\n"
    );
    let (code, _, stderr) =
        scratch.run(&["list", "kernel.function(\"do_int3\")", "--kernel", "5.10"]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("blacklist"), "{stderr}");
}
