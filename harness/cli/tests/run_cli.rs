//! `tapmatrix run` and `diff-output`: the input errors a user can make are
//! told before anything boots, with where and what to do.

// An integration test binary: a panic is how it reports a failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::Scratch;

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn a_missing_script_is_an_input_error() {
    let scratch = Scratch::new(&["6.1"], &["6.1"]);
    let output = scratch.run("run", &["no/such/script.stp"]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("no/such/script.stp: no such script or directory"));
}

#[test]
fn a_bad_spec_names_its_file_line_and_column() {
    let scratch = Scratch::new(&["6.1"], &["6.1"]);
    let dir = scratch.dir.path().join("scripts");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("t.stp"), "probe begin { exit() }\n").unwrap();
    std::fs::write(dir.join("t.yaml"), "workload: true\ntimeout: soon\n").unwrap();
    let output = scratch.run("run", &[dir.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("t.yaml:2:"), "{}", stderr(&output));
    std::fs::write(dir.join("t.yaml"), "redact: [pid]\n").unwrap();
    let output = scratch.run("run", &[dir.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("unknown redaction `pid`"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn no_harvested_kernel_is_an_infrastructure_error() {
    let scratch = Scratch::new(&["6.1"], &[]);
    let output = scratch.run("run", &["-e", "probe begin { exit() }"]);
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("tapmatrix kernels harvest"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn diff_output_takes_two_kernels() {
    let scratch = Scratch::new(&["6.1"], &["6.1"]);
    let script = common::repo("tests/scripts/printf_formats.stp");
    let output = scratch.run(
        "diff-output",
        &[script.to_str().unwrap(), "--kernels", "6.1"],
    );
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("exactly two kernel ids"),
        "{}",
        stderr(&output)
    );
}
