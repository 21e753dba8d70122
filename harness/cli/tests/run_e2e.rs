//! `tapmatrix run` on real kernels, from the outside, as a user runs it:
//! from a directory outside the checkout (the built-in matrix and tapsets),
//! scripts without specs printed as `stap` prints them, the workload's own
//! output shown apart and kept, `-e` diagnostics naming `<input>`, a boot
//! retried only when it died (and the retry recorded), exit statuses, and
//! two runs sharing one cache at once. The kernels come from the tests'
//! cache (`cargo test -p tapmatrix-e2e --test kernels` fills it).

// An integration test binary: a panic is how it reports a failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The kernels these tests boot, fetched and harvested into the test cache.
fn test_cache(ids: &[&str]) -> PathBuf {
    tapmatrix_e2e::harvested_kernels(ids);
    tapmatrix_e2e::test_cache_dir()
}

/// `tapmatrix ARGS` run in `dir` (outside the checkout) on the test cache.
fn tapmatrix_in(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tapmatrix"));
    command
        .current_dir(dir)
        .args(args)
        .env("TAPMATRIX_CACHE", test_cache(&["6.1", "5.10"]))
        .env_remove("TAPMATRIX_QEMU");
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().expect("tapmatrix runs")
}

/// `tapmatrix run ARGS --out OUT` in `dir`.
fn run_out(dir: &Path, out: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut all = vec!["run"];
    all.extend(args);
    all.extend(["--out", out.to_str().unwrap()]);
    tapmatrix_in(dir, &all, env)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn results(out: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(out.join("results.json")).unwrap()).unwrap()
}

#[test]
fn works_outside_the_checkout_with_the_built_in_matrix_and_tapsets() {
    let dir = tempfile::tempdir().unwrap();
    assert!(!dir.path().join("kernels").exists() && !dir.path().join("tapsets").exists());
    let list = tapmatrix_in(dir.path(), &["kernels", "list"], &[]);
    assert_eq!(list.status.code(), Some(0), "{}", text(&list.stderr));
    assert!(
        text(&list.stdout).contains("6.1   debian bookworm"),
        "{}",
        text(&list.stdout)
    );
    let resolved = tapmatrix_in(dir.path(), &["resolve", "--kernels", "6.1,5.10"], &[]);
    assert_eq!(
        resolved.status.code(),
        Some(0),
        "{}",
        text(&resolved.stderr)
    );
    let table = text(&resolved.stdout);
    assert!(
        table.lines().any(|line| line.starts_with("vfs.read ")),
        "{table}"
    );
    let run = tapmatrix_in(
        dir.path(),
        &[
            "run",
            "-e",
            r#"probe vfs.read { if (pid() == target()) { printf("read by %s\n", execname()); exit() } }"#,
            "-c",
            "dd if=/etc/passwd of=/dev/null",
            "--kernels",
            "6.1",
        ],
        &[],
    );
    assert_eq!(run.status.code(), Some(0), "{}", text(&run.stderr));
    assert_eq!(text(&run.stdout), "read by dd\n");
    // Results go under the directory the run started in.
    assert!(
        dir.path()
            .join("target/tapmatrix-run/results.json")
            .is_file()
    );
    // A file the user named that is not there: exit 2, one sentence.
    let missing = tapmatrix_in(dir.path(), &["resolve", "--matrix", "nope.yaml"], &[]);
    assert_eq!(missing.status.code(), Some(2));
    assert_eq!(
        text(&missing.stderr),
        "error: nope.yaml: no such matrix file (named by --matrix)\n"
    );
}

#[test]
fn scripts_without_specs_print_their_output_and_the_workloads_apart() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("hello.stp"),
        "probe begin { printf(\"hello from the script\\n\") }\nprobe end { printf(\"bye\\n\") }\n",
    )
    .unwrap();
    let out = dir.path().join("out");
    let run = run_out(
        dir.path(),
        &out,
        &[
            "hello.stp",
            "-c",
            "echo to stdout; echo to stderr >&2",
            "--kernels",
            "6.1",
        ],
        &[],
    );
    assert_eq!(run.status.code(), Some(0), "{}", text(&run.stderr));
    assert_eq!(
        text(&run.stdout),
        "hello from the script\n[workload] to stdout\nbye\n"
    );
    assert!(
        text(&run.stderr).contains("[workload stderr] to stderr\n"),
        "{}",
        text(&run.stderr)
    );
    assert!(
        !text(&run.stderr).contains("no snapshot"),
        "{}",
        text(&run.stderr)
    );
    let cell = &results(&out)["cells"][0];
    assert_eq!(cell["status"], "pass");
    assert_eq!(cell["output"], "hello from the script\nbye\n");
    assert_eq!(cell["workload"]["stdout"], "to stdout\n");
    assert_eq!(cell["workload"]["stderr"], "to stderr\n");

    // Several files (a directory: after a script come its arguments, as
    // stap takes them), several kernels: each file's output under its name.
    let several = dir.path().join("several");
    std::fs::create_dir(&several).unwrap();
    std::fs::copy(dir.path().join("hello.stp"), several.join("hello.stp")).unwrap();
    std::fs::write(
        several.join("two.stp"),
        "probe begin { printf(\"two\\n\"); exit() }\n",
    )
    .unwrap();
    let run = run_out(dir.path(), &out, &["several", "--kernels", "5.10,6.1"], &[]);
    assert_eq!(run.status.code(), Some(0), "{}", text(&run.stderr));
    assert_eq!(
        text(&run.stdout),
        "==> hello <==\n[5.10] hello from the script\n[5.10] bye\n[6.1] hello from the script\n[6.1] bye\n==> two <==\n[5.10] two\n[6.1] two\n"
    );
}

#[test]
fn a_workload_that_writes_a_lot_is_kept_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let run = run_out(
        dir.path(),
        &out,
        &[
            "-e",
            "probe begin { printf(\"script\\n\") }",
            "-c",
            "yes 0123456789abcdef | head -c 20000000",
            "--kernels",
            "6.1",
        ],
        &[],
    );
    assert_eq!(run.status.code(), Some(0), "{}", text(&run.stderr));
    let cell = &results(&out)["cells"][0];
    assert_eq!(cell["output"], "script\n");
    let stdout = cell["workload"]["stdout"].as_str().unwrap();
    assert!(stdout.len() < 200_000, "{}", stdout.len());
    assert!(
        stdout.contains("[... 19868928 bytes left out ...]"),
        "{}",
        &stdout[60_000..70_000]
    );
}

#[test]
fn diagnostics_of_e_name_the_input_as_stap_does() {
    let dir = tempfile::tempdir().unwrap();
    let run = tapmatrix_in(
        dir.path(),
        &["run", "-e", "probe begin { x = }", "--kernels", "6.1"],
        &[],
    );
    assert_eq!(run.status.code(), Some(1), "{}", text(&run.stderr));
    let stderr = text(&run.stderr);
    assert!(stderr.contains("<input>:1:"), "{stderr}");
    assert!(!stderr.contains(".stp"), "{stderr}");
}

#[test]
fn a_run_time_error_in_begin_boots_once_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let run = run_out(
        dir.path(),
        &out,
        &[
            "-e",
            r#"global x; probe begin { x = 0; printf("%d\n", 10 / x) }"#,
            "-c",
            "true",
            "--kernels",
            "5.10",
        ],
        &[],
    );
    assert_eq!(run.status.code(), Some(1), "{}", text(&run.stderr));
    let stderr = text(&run.stderr);
    assert!(
        stderr.contains("ERROR: division by 0 near operator '/' at <input>:1:50"),
        "{stderr}"
    );
    assert!(!stderr.contains("booting again"), "{stderr}");
    let json = results(&out);
    assert!(json["kernels"][0].get("retry").is_none(), "{json}");
    assert_eq!(json["cells"][0]["status"], "fail");
}

/// A QEMU that fails `failures` times (writing a console line first, and
/// `began` as the agent would when it begins an item, if not empty), then
/// is the real one; it counts its starts in `count`.
fn flaky_qemu(dir: &Path, failures: u32, began: &str) -> (PathBuf, PathBuf) {
    let count = dir.join("starts");
    let script = dir.join("qemu");
    std::fs::write(
        &script,
        format!(
            r#"#!/bin/sh
n=$(cat '{count}' 2>/dev/null || echo 0); n=$((n + 1)); echo $n > '{count}'
if [ $n -le {failures} ]; then
    prev=""
    for arg in "$@"; do
        [ "$prev" = -serial ] && {{ printf 'fake boot %s died\n{began}' $n > "${{arg#file:}}"; break; }}
        prev="$arg"
    done
    echo "fake QEMU failure $n" >&2
    exit 1
fi
exec '{qemu}' "$@"
"#,
            count = count.display(),
            began = if began.is_empty() { String::new() } else { format!("{began}\\n") },
            // The QEMU a boot would run here (on PATH, or tapmatrix's
            // private copy): the fake only fails in front of it.
            qemu = tapmatrix_vm::default_qemu().display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    (script, count)
}

#[test]
fn a_boot_that_died_is_retried_once_and_the_retry_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let (qemu, starts) = flaky_qemu(dir.path(), 1, "");
    let out = dir.path().join("out");
    let args = [
        "-e",
        r#"probe begin { printf("ran\n"); exit() }"#,
        "--kernels",
        "6.1",
        "--accel",
        "tcg",
    ];
    let run = run_out(
        dir.path(),
        &out,
        &args,
        &[("TAPMATRIX_QEMU", qemu.to_str().unwrap())],
    );
    assert_eq!(run.status.code(), Some(0), "{}", text(&run.stderr));
    assert_eq!(text(&run.stdout), "ran\n");
    assert_eq!(std::fs::read_to_string(&starts).unwrap().trim(), "2");
    let json = results(&out);
    let retry = &json["kernels"][0]["retry"];
    assert!(
        retry["cause"]
            .as_str()
            .unwrap()
            .contains("fake QEMU failure 1"),
        "{json}"
    );
    let first = PathBuf::from(retry["first_console_log"].as_str().unwrap());
    assert_eq!(
        std::fs::read_to_string(&first).unwrap(),
        "fake boot 1 died\n",
        "the first boot's console log is kept"
    );

    // A boot that dies every time: infra, exit 3 (nothing failed).
    std::fs::remove_file(&starts).unwrap();
    let (qemu, _) = flaky_qemu(dir.path(), 99, "");
    let run = run_out(
        dir.path(),
        &out,
        &args,
        &[("TAPMATRIX_QEMU", qemu.to_str().unwrap())],
    );
    assert_eq!(run.status.code(), Some(3), "{}", text(&run.stderr));
    assert_eq!(results(&out)["cells"][0]["status"], "infra");
}

#[test]
fn a_boot_that_dies_again_leaves_out_the_script_it_ran_and_boots_for_the_rest() {
    // Two boots die (the first and its retry, both while the agent ran
    // `a.stp`, the item they begin with, as their consoles say): `a.stp`
    // keeps its death, `b.stp` runs in a third.
    let dir = tempfile::tempdir().unwrap();
    let (qemu, starts) = flaky_qemu(dir.path(), 2, "tapmatrix-agent: run item 0: a");
    let scripts = dir.path().join("scripts");
    std::fs::create_dir(&scripts).unwrap();
    for name in ["a", "b"] {
        std::fs::write(
            scripts.join(format!("{name}.stp")),
            format!("probe begin {{ printf(\"{name} ran\\n\"); exit() }}\n"),
        )
        .unwrap();
    }
    let out = dir.path().join("out");
    let run_with = |qemu: &Path| {
        run_out(
            dir.path(),
            &out,
            &[
                scripts.to_str().unwrap(),
                "--kernels",
                "6.1",
                "--accel",
                "tcg",
            ],
            &[("TAPMATRIX_QEMU", qemu.to_str().unwrap())],
        )
    };
    let run = run_with(&qemu);
    let stderr = text(&run.stderr);
    assert_eq!(run.status.code(), Some(3), "{stderr}");
    assert_eq!(std::fs::read_to_string(&starts).unwrap().trim(), "3");
    let json = results(&out);
    let cell = |script: &str| {
        json["cells"]
            .as_array()
            .unwrap()
            .iter()
            .find(|cell| cell["script"] == script)
            .cloned()
            .unwrap_or_else(|| panic!("no cell for {script}: {json}"))
    };
    let (a, b) = (cell("a"), cell("b"));
    assert_eq!(a["status"], "infra", "{json}");
    let detail = a["detail"].as_str().unwrap();
    assert!(detail.contains("fake QEMU failure 2"), "{detail}");
    assert!(
        detail.contains("the boot died while this script ran"),
        "{detail}"
    );
    assert_eq!(b["status"], "pass", "{json}");
    assert_eq!(b["output"], "b ran\n", "{json}");

    // Two boots that die before the agent began anything blame no
    // script: both run in the third.
    std::fs::remove_file(&starts).unwrap();
    let (qemu, starts) = flaky_qemu(dir.path(), 2, "");
    let run = run_with(&qemu);
    assert_eq!(run.status.code(), Some(0), "{}", text(&run.stderr));
    assert_eq!(std::fs::read_to_string(&starts).unwrap().trim(), "3");
    let json = results(&out);
    for cell in json["cells"].as_array().unwrap() {
        assert_eq!(cell["status"], "pass", "{json}");
    }
}

#[test]
fn two_runs_share_one_cache_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let spawn = |name: &str| {
        let out = dir.path().join(name);
        Command::new(env!("CARGO_BIN_EXE_tapmatrix"))
            .current_dir(dir.path())
            .args([
                "run",
                "-e",
                &format!(r#"probe begin {{ printf("{name}\n"); exit() }}"#),
                "--kernels",
                "6.1",
                "--out",
                out.to_str().unwrap(),
            ])
            .env("TAPMATRIX_CACHE", test_cache(&["6.1"]))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let first = spawn("first");
    let second = spawn("second");
    for (child, name) in [(first, "first"), (second, "second")] {
        let output = child.wait_with_output().unwrap();
        assert_eq!(
            output.status.code(),
            Some(0),
            "{name}: {}",
            text(&output.stderr)
        );
        assert_eq!(text(&output.stdout), format!("{name}\n"));
    }
}
