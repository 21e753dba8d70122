//! `tapmatrix parse` end to end: output, summary, exit statuses.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

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

#[test]
fn prints_the_ast_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("a.stp");
    std::fs::write(&script, "probe begin { printf(\"%s\\n\", @1) exit() }\n").unwrap();
    let out = tapmatrix(&["parse", script.to_str().unwrap(), "--", "hello"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("printf(\"%s\\n\", \"hello\");"), "{stdout}");
    assert!(text(&out.stderr).contains("1 files, 1 probes, 0 functions, 0 globals, 0 errors"));
}

#[test]
fn check_reports_errors_with_place_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("bad.stp");
    std::fs::write(
        &script,
        "probe begin {\n  x = = 1\n}\nprobe end { y = ) }\n",
    )
    .unwrap();
    let out = tapmatrix(&["parse", "--check", script.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("bad.stp:2:7: expected an expression, found '='"),
        "{stderr}"
    );
    assert!(stderr.contains("bad.stp:4:17:"), "{stderr}");
    assert!(stderr.contains('^'), "{stderr}");
    assert_eq!(
        text(&out.stdout).trim(),
        "1 files, 2 probes, 0 functions, 0 globals, 2 errors"
    );
}

#[test]
fn tapset_directory_with_arch_and_kernel() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("arm64")).unwrap();
    std::fs::write(
        dir.path().join("m.stpm"),
        "@define gate %( %( kernel_v >= \"6.0\" %? 1 %: 0 %) %)\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("t.stp"),
        "function f() { return @gate }\n%{ /* embedded C is fine in tapsets */ %}\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("arm64/only.stp"),
        "this is not read on x86_64",
    )
    .unwrap();
    let root = dir.path().to_str().unwrap();
    let out = tapmatrix(&["parse", "--kernel-release", "6.1.0", root]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("return 1;"));
    let out = tapmatrix(&["parse", "--kernel-release", "5.10.0", root]);
    assert!(text(&out.stdout).contains("return 0;"));
    let out = tapmatrix(&["parse", "--check", "--arch", "arm64", root]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "the arm64 file is read for arm64"
    );
}

#[test]
fn kernel_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config");
    std::fs::write(&config, "CONFIG_BPF=y\n").unwrap();
    let script = dir.path().join("c.stp");
    std::fs::write(
        &script,
        "probe begin { x = %( CONFIG_BPF == \"y\" %? 1 %: 2 %) }\n",
    )
    .unwrap();
    let out = tapmatrix(&[
        "parse",
        "--kernel-config",
        config.to_str().unwrap(),
        script.to_str().unwrap(),
    ]);
    assert!(
        text(&out.stdout).contains("x = 1;"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn empty_directory_and_missing_file_are_input_errors() {
    let dir = tempfile::tempdir().unwrap();
    let out = tapmatrix(&["parse", "--check", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("no .stp or .stpm files found"));
    let out = tapmatrix(&["parse", dir.path().join("nope.stp").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("no such file"));
}

#[test]
fn embedded_c_in_a_script_needs_guru_mode() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("g.stp");
    std::fs::write(&script, "function f() %{ %}\nprobe begin { f() }\n").unwrap();
    let out = tapmatrix(&["parse", "--check", script.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("guru mode"));
    let out = tapmatrix(&["parse", "--check", "-g", script.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

#[test]
fn runtime_and_compatible_flags() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("r.stp");
    std::fs::write(
        &script,
        "probe begin { r = %( runtime == \"bpf\" %? 1 %: 2 %); v = %( systemtap_v >= \"5.0\" %? 3 %: 4 %) }\n",
    )
    .unwrap();
    let path = script.to_str().unwrap();
    let out = tapmatrix(&["parse", path]);
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("r = 2;") && stdout.contains("v = 4;"),
        "{stdout}"
    );
    let out = tapmatrix(&["parse", "--runtime", "bpf", "--compatible", "5.1", path]);
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("r = 1;") && stdout.contains("v = 3;"),
        "{stdout}"
    );
}
