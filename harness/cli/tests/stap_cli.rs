//! `tapmatrix run` takes `stap`'s command line (the non-guru subset):
//! script arguments after the script, grouped short options, `-p N`
//! compiling offline for every kernel, and bad usage as one line with
//! exit status 2. Offline: the kernels' facts are the committed fixtures.

// An integration test binary: a panic is how it reports a failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::Scratch;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A script file in the scratch directory.
fn script(scratch: &Scratch, name: &str, body: &str) -> String {
    let path = scratch.dir.path().join(name);
    std::fs::write(&path, body).unwrap();
    path.to_str().unwrap().to_owned()
}

#[test]
fn bad_usage_is_one_line_and_exit_2() {
    let scratch = Scratch::new(&["6.1"], &["6.1"]);
    for (args, needle) in [
        (&["-Q", "x.stp"][..], "'-Q'"),
        (&["-e", "probe begin {}", "-T"][..], "'-T <SECS>'"),
        (&["-p0", "-e", "probe begin {}"][..], "0 is not in 1..=5"),
        (
            &["-p", "6", "-e", "probe begin {}"][..],
            "6 is not in 1..=5",
        ),
        (
            &["-c", "ls", "-x", "3", "-e", "probe begin {}"][..],
            "cannot be used with",
        ),
        (&["-s", "0", "-e", "probe begin {}"][..], "'-s <NUM>'"),
        (&["-m", "", "-e", "probe begin {}"][..], "cannot be empty"),
        (&["-m", "x^y", "-e", "probe begin {}"][..], "only letters"),
        (&["-G", "nope", "-e", "probe begin {}"][..], "NAME=VALUE"),
        (
            &["-G", "a=b c", "-e", "probe begin {}"][..],
            "may hold only",
        ),
        (
            &["--runtime=dyninst", "-e", "probe begin {}"][..],
            "dyninst",
        ),
        (&["-a", "arm64", "-e", "probe begin {}"][..], "x86_64"),
        (
            &["-w", "-W", "-e", "probe begin {}"][..],
            "cannot be used with",
        ),
    ] {
        let output = scratch.run("run", args);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&output.stderr)
        );
        let stderr = text(&output.stderr);
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
        assert!(output.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn arguments_follow_the_script_and_options_may_come_after_it() {
    let scratch = Scratch::new(&["6.1"], &["6.1"]);
    let path = script(
        &scratch,
        "args.stp",
        "probe begin { printf(\"%s %d %d\\n\", @1, $2, $#) }\n",
    );
    // As a stap user types it: options after the script, grouped ones.
    let output = scratch.run("run", &[&path, "-w", "hello", "-up1", "42"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert_eq!(
        text(&output.stdout),
        "probe begin {\n  printf(\"%s %d %d\\n\", \"hello\", 42, 2);\n}\n"
    );
    // `-e`: every operand is an argument; a missing one is the script's error.
    let output = scratch.run("run", &["-p1", "-e", "probe begin { println($3) }", "a"]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    assert!(
        text(&output.stderr).contains("command line argument out of range [1-1]"),
        "{}",
        text(&output.stderr)
    );
}

#[test]
fn pass_2_compiles_offline_for_every_kernel_and_fails_where_it_does_not() {
    let scratch = Scratch::new(&["5.10", "6.1"], &["5.10", "6.1"]);
    let ok = script(
        &scratch,
        "ok.stp",
        "global n\nprobe kernel.function(\"vfs_read\") { n++ }\nprobe end { println(n) }\n",
    );
    let output = scratch.run("run", &["-p2", &ok]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    // Both kernels gave the same: printed once, without a header.
    assert_eq!(
        text(&output.stdout),
        "# globals\nn:long\n# probes\nkernel.function(\"vfs_read\") /* <- kernel.function(\"vfs_read\") */\nend /* <- end */\n"
    );
    let bad = script(&scratch, "bad.stp", "probe begin {\n  x = 1 + \"a\"\n}\n");
    // Elided (nothing reads x): it compiles, with SystemTap's warning.
    let output = scratch.run("run", &["-p2", &bad]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(
        text(&output.stderr).contains("WARNING: Eliding assignment to 'x' at "),
        "{}",
        text(&output.stderr)
    );
    // -w: no warning; -u: not elided, so a type error on both kernels.
    let output = scratch.run("run", &["-wp2", &bad]);
    assert_eq!(text(&output.stderr), "");
    let output = scratch.run("run", &["-up2", &bad]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    let stderr = text(&output.stderr);
    assert!(stderr.contains("type mismatch"), "{stderr}");
    assert!(
        stderr.ends_with("Pass 2: failed on 5.10, 6.1\n"),
        "{stderr}"
    );
    // -W: the warning is an error.
    let output = scratch.run("run", &["-Wp2", &bad]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    assert!(
        text(&output.stderr).contains("(an error: -W)"),
        "{}",
        text(&output.stderr)
    );
}

#[test]
fn a_local_read_and_never_assigned_is_warned_about_unless_w() {
    let scratch = Scratch::new(&["6.1"], &["6.1"]);
    // `n` in `end` is its own local (not the timer's): it reads 0.
    let path = script(
        &scratch,
        "n.stp",
        "global count\nprobe timer.ms(10) { n++; count++ }\nprobe end { printf(\"%d %d\\n\", n, count) }\nfunction f(a) { return a + z }\nprobe begin { f(1) }\n",
    );
    let output = scratch.run("run", &["-p2", &path]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("WARNING: never-assigned local variable 'n' (similar: count) at ")
            && stderr.contains("n.stp:3:31\n"),
        "{stderr}"
    );
    assert!(
        stderr.contains("WARNING: never-assigned local variable 'z' (similar: a, count) at "),
        "{stderr}"
    );
    // The timer's `n` is read and written by `n++`: no warning about it.
    assert_eq!(stderr.matches("never-assigned").count(), 2, "{stderr}");
    let output = scratch.run("run", &["-wp2", &path]);
    assert_eq!(text(&output.stderr), "");
}

#[test]
fn globals_set_on_the_command_line_are_checked_against_the_script() {
    let scratch = Scratch::new(&["6.1"], &["6.1"]);
    let path = script(
        &scratch,
        "g.stp",
        "global sloth, name\nprobe begin { printf(\"%d %s\\n\", sloth, name) }\n",
    );
    // Never assigned in the script, but set by -G: no warning.
    let output = scratch.run("run", &["-p2", &path, "-G", "sloth=10", "-Gname=x"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert_eq!(text(&output.stderr), "");
    let output = scratch.run("run", &["-p2", &path, "-G", "sloth=10"]);
    assert!(
        text(&output.stderr).contains("WARNING: never-assigned global variable 'name'"),
        "{}",
        text(&output.stderr)
    );
    for (setting, needle) in [
        ("sloth=ten", "`sloth` is a long, and `ten` is not a number"),
        ("other=1", "the script uses no global `other`"),
    ] {
        let output = scratch.run("run", &["-p2", &path, "-G", setting]);
        assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
        assert!(
            text(&output.stderr).contains(needle),
            "{}",
            text(&output.stderr)
        );
    }
}

#[test]
fn pass_4_prints_the_artefacts_and_dash_l_lists() {
    let scratch = Scratch::new(&["6.1"], &["6.1"]);
    let output = scratch.run(
        "run",
        &[
            "-p4",
            "--backend",
            "tracefs",
            "-e",
            "probe kernel.function(\"vfs_read\") { println($count) }",
        ],
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(
        text(&output.stdout).contains("p:tapmatrix/e0 vfs_read"),
        "{}",
        text(&output.stdout)
    );
    let output = scratch.run("run", &["-l", "kernel.function(\"vfs_rea*\")"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(
        text(&output.stdout).contains("kernel.function(\"vfs_read\")\n"),
        "{}",
        text(&output.stdout)
    );
}

#[test]
fn skip_badvars_reads_a_variable_that_resolves_nowhere_as_0() {
    let scratch = Scratch::new(&["6.1"], &["6.1"]);
    let script = "probe kernel.function(\"vfs_read\") { println($nosuch + $count) }";
    let output = scratch.run("run", &["-p2", "-e", script]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    assert!(
        text(&output.stderr).contains("no target variable $nosuch here"),
        "{}",
        text(&output.stderr)
    );
    let output = scratch.run("run", &["--skip-badvars", "-p2", "-e", script]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
}

#[test]
fn auto_reports_the_scripts_fault_before_a_back_ends_refusal() {
    let scratch = Scratch::new(&["6.1"], &["6.1"]);
    // tracefs refuses timer.profile; bpf serves it, and both find the
    // unknown function: that is what the user has to fix.
    let path = script(
        &scratch,
        "p.stp",
        "probe timer.profile { println(nosuch()) }\n",
    );
    let output = scratch.run("run", &["-p4", "--backend", "auto", &path]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    let stderr = text(&output.stderr);
    assert!(
        stderr.starts_with("semantic error: unresolved function: identifier 'nosuch'"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("not supported by the tracefs back end"),
        "{stderr}"
    );
}
