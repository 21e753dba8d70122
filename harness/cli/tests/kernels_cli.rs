//! `tapmatrix kernels` from the outside: exit statuses and messages for
//! the user's mistakes and for a cache another run holds. No network: each
//! case fails (or is stopped) before any apt work.

use std::path::PathBuf;
use std::process::{Command, Output};

use tapmatrix_kernels::Cache;

fn repo_matrix() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../kernels/matrix.yaml")
}

fn tapmatrix(args: &[&str], cache: &std::path::Path) -> std::io::Result<Output> {
    Command::new(env!("CARGO_BIN_EXE_tapmatrix"))
        .args(args)
        .env("TAPMATRIX_CACHE", cache)
        .output()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn unknown_ids_exit_2_listing_the_known_ones() {
    let cache = tempfile::tempdir().unwrap();
    let matrix = repo_matrix();
    let output = tapmatrix(
        &[
            "kernels",
            "--matrix",
            matrix.to_str().unwrap(),
            "fetch",
            "6.1",
            "9.9",
        ],
        cache.path(),
    )
    .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let text = stderr(&output);
    assert!(text.contains("`9.9`"), "{text}");
    assert!(
        text.contains("5.10, 6.1, 6.12, 7.0, 7.1, 7.2, 7.3"),
        "{text}"
    );
}

#[test]
fn a_writer_waits_for_the_run_holding_the_cache_naming_it() {
    let cache_dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(cache_dir.path()).unwrap();
    let guard = cache.lock().unwrap();
    let matrix = repo_matrix();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tapmatrix"))
        .args([
            "kernels",
            "--matrix",
            matrix.to_str().unwrap(),
            "fetch",
            "7.3",
        ])
        .env("TAPMATRIX_CACHE", cache_dir.path())
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // It says once that it waits, and for whom.
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stderr, &mut line).unwrap();
    assert!(line.contains("waiting for the cache"), "{line}");
    assert!(
        line.contains(&format!("pid {}", std::process::id())),
        "{line}"
    );
    // Still waiting: nothing was written into the held cache. Stop it
    // rather than let it fetch (no network in this test).
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(child.try_wait().unwrap().is_none(), "it waits");
    assert!(!cache_dir.path().join("kernels").exists());
    child.kill().unwrap();
    child.wait().unwrap();
    drop(guard);
}

#[test]
fn matrix_errors_and_a_stale_lock_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let matrix = dir.path().join("matrix.yaml");
    std::fs::write(
        &matrix,
        "kernels:\n  - id: a\n    debain: { suite: sid, series: \"7.2\" }\n",
    )
    .unwrap();
    let output = tapmatrix(
        &["kernels", "--matrix", matrix.to_str().unwrap(), "list"],
        dir.path(),
    )
    .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("matrix.yaml:3:"),
        "{}",
        stderr(&output)
    );

    std::fs::write(
        &matrix,
        "kernels:\n  - id: a\n    debian: { suite: sid, series: \"7.2\" }\n",
    )
    .unwrap();
    let output = tapmatrix(
        &["kernels", "--matrix", matrix.to_str().unwrap(), "fetch"],
        dir.path(),
    )
    .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("run `tapmatrix kernels --matrix MATRIX lock` first"),
        "{}",
        stderr(&output)
    );

    std::fs::copy(
        repo_matrix().with_file_name("matrix.lock"),
        dir.path().join("matrix.lock"),
    )
    .unwrap();
    let output = tapmatrix(
        &["kernels", "--matrix", matrix.to_str().unwrap(), "fetch"],
        dir.path(),
    )
    .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("kernel `a`"),
        "{}",
        stderr(&output)
    );

    let output = tapmatrix(
        &["kernels", "--matrix", matrix.to_str().unwrap(), "list"],
        dir.path(),
    )
    .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(table.contains("stale: run lock"), "{table}");
}

#[test]
fn apt_failures_are_one_sentence_with_apts_lines_as_detail() {
    // A named archive that does not exist: `apt-get update` fails. Nothing
    // of apt's reaches stderr but the detail under our sentence.
    let dir = tempfile::tempdir().unwrap();
    let matrix = dir.path().join("matrix.yaml");
    std::fs::write(
        &matrix,
        "kernels:\n  - id: a\n    debian: { suite: sid, series: \"7.2\" }\n",
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_tapmatrix"))
        .args(["kernels", "--matrix", matrix.to_str().unwrap(), "lock"])
        .env("TAPMATRIX_CACHE", dir.path().join("cache"))
        .env(
            "TAPMATRIX_DEBIAN_MIRROR",
            format!("file:{}", dir.path().join("none").display()),
        )
        .env("TAPMATRIX_DEBIAN_KEYRING", dir.path().join("none.gpg"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    let text = stderr(&output);
    // Our own progress line first (stderr is not a terminal here).
    let mut lines = text
        .lines()
        .skip_while(|line| *line == "apt-get update (sid)");
    assert_eq!(
        lines.next(),
        Some(
            "error: could not read the Debian archive's package lists (`apt-get update` failed); apt said:"
        ),
        "{text}"
    );
    let detail: Vec<&str> = lines.collect();
    assert!(!detail.is_empty(), "{text}");
    assert!(detail.iter().all(|line| line.starts_with("  ")), "{text}");
    assert!(
        detail.iter().any(|line| line.starts_with("  E: ")),
        "{text}"
    );
}
