//! `cargo xtask`: the project's chores, as two commands a person remembers.
//!
//! - `cargo xtask matrix`: the main job: host prerequisites, the kernel
//!   matrix fetched and harvested, the tapsets parsed and resolved on it.
//! - `cargo xtask test`: host prerequisites, format check, clippy, and every
//!   test (what CI runs).
//! - `cargo xtask gen-syscalls`: regenerates `tapsets/syscalls.stp` from the
//!   harvested facts of the matrix's kernels.
//! - `cargo xtask systemtap`: fetches the newest `systemtap-common` the test
//!   cache's private apt state reaches and prints its tapset directory (for
//!   `TAPMATRIX_SYSTEMTAP_TAPSETS`, which the parse and resolve benchmarks read);
//!   `cargo xtask systemtap doc`: the same for `systemtap-doc`, printing its
//!   examples directory.

mod gen_syscalls;

use anyhow::{Result, bail};
use xshell::{Shell, cmd};

fn main() -> Result<()> {
    let task = std::env::args().nth(1);
    let sh = Shell::new()?;
    sh.change_dir(workspace_root());
    match task.as_deref() {
        Some("matrix") => matrix(&sh),
        Some("test") => test(&sh),
        Some("gen-syscalls") => {
            let args: Vec<String> = std::env::args().skip(2).collect();
            gen_syscalls::run(&workspace_root(), &args)
        }
        Some("systemtap") => {
            match std::env::args().nth(2).as_deref() {
                None => println!("{}", systemtap_tapsets()?.display()),
                Some("doc") => println!("{}", systemtap_examples()?.display()),
                Some(other) => bail!("usage: cargo xtask systemtap [doc] (not {other:?})"),
            }
            Ok(())
        }
        _ => bail!("usage: cargo xtask matrix|test|gen-syscalls|systemtap"),
    }
}

/// The workspace root: xtask's manifest directory's parent.
fn workspace_root() -> std::path::PathBuf {
    let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// The main job, through the release `tapmatrix` binary: prerequisites,
/// every kernel of `kernels/matrix.lock` fetched and harvested (cached ones
/// cost nothing), the matrix's state, and the tapsets parsed and resolved
/// on every kernel (the availability matrix).
fn matrix(sh: &Shell) -> Result<()> {
    let tapmatrix =
        |args: &[&str]| cmd!(sh, "cargo run --release -q -p tapmatrix -- {args...}").run();
    tapmatrix(&["doctor", "--install"])?;
    tapmatrix(&["kernels", "fetch"])?;
    tapmatrix(&["kernels", "harvest"])?;
    tapmatrix(&["kernels", "list"])?;
    tapmatrix(&["parse", "--check", "tapsets/"])?;
    tapmatrix(&["resolve", "tapsets/"])?;
    tapmatrix(&["run", "tests/scripts"])?;
    Ok(())
}

/// What CI runs: prerequisites, formatting, lints, then the whole test suite.
fn test(sh: &Shell) -> Result<()> {
    // A CI run builds once from nothing: incremental state would only fill
    // its disk (1.7 GB of the 7 GB a full run leaves in `target/`, measured
    // on a fresh clone), so CI builds without it.
    if std::env::var_os("CI").is_some() {
        sh.set_var("CARGO_INCREMENTAL", "0");
    }
    // The host prerequisites (qemu-system-x86, busybox-static), installed
    // with apt-get when missing, or named for the user to install elsewhere.
    cmd!(sh, "cargo run -q -p tapmatrix -- doctor --install").run()?;
    test_prerequisites(sh)?;
    cmd!(sh, "cargo fmt --all -- --check").run()?;
    cmd!(sh, "cargo clippy --workspace --all-targets -- -D warnings").run()?;
    // The end-to-end test of the kernel matrix fills the tests' kernel
    // cache (all seven default kernels fetched and harvested); the tests
    // that want real facts of every kernel then read it.
    cmd!(sh, "cargo test -p tapmatrix-e2e --test kernels").run()?;
    let cache = test_cache_dir();
    cmd!(sh, "cargo test --workspace")
        .env("TAPMATRIX_RESOLVE_FACTS", cache.join("facts"))
        .env("TAPMATRIX_FACTS_CACHE", cache.join("facts"))
        .env("TAPMATRIX_FACTS_RAW", cache.join("boots/7.3/harvest"))
        .run()?;
    // The differential test: the same script tests and snapshots on the
    // BPF back end (handlers in the kernel where they can run there).
    cmd!(sh, "cargo test -p tapmatrix-e2e --test matrix")
        .env("TAPMATRIX_BACKEND", "bpf")
        .run()?;
    Ok(())
}

/// The tapset directory of the newest `systemtap-common` the test cache's
/// private apt state reaches, fetched into the cache when missing.
fn systemtap_tapsets() -> Result<std::path::PathBuf> {
    let cache = tapmatrix_kernels::Cache::open(&test_cache_dir())?;
    let guard = cache.lock()?;
    let root = tapmatrix_kernels::fetch_package(
        &guard,
        "systemtap-common",
        &tapmatrix_kernels::HostApt::default(),
    )?;
    Ok(root.join("usr/share/systemtap/tapset"))
}

/// The examples directory of the newest `systemtap-doc` the test cache's
/// private apt state reaches, fetched into the cache when missing.
fn systemtap_examples() -> Result<std::path::PathBuf> {
    let cache = tapmatrix_kernels::Cache::open(&test_cache_dir())?;
    let guard = cache.lock()?;
    let root = tapmatrix_kernels::fetch_package(
        &guard,
        "systemtap-doc",
        &tapmatrix_kernels::HostApt::default(),
    )?;
    Ok(root.join("usr/share/systemtap/examples"))
}

/// What the report tests need besides the tool's own prerequisites:
/// `xmllint` (the JUnit schema check) and `chromium` (the HTML page in a
/// real browser), installed with apt-get when missing.
fn test_prerequisites(sh: &Shell) -> Result<()> {
    let needed: Vec<&str> = [("xmllint", "libxml2-utils"), ("chromium", "chromium")]
        .iter()
        .filter(|(program, _)| !on_path(program))
        .map(|(_, package)| *package)
        .collect();
    if needed.is_empty() {
        return Ok(());
    }
    let apt = on_path("apt-get");
    let root = cmd!(sh, "id -u")
        .quiet()
        .read()
        .is_ok_and(|id| id.trim() == "0");
    if !apt || !root {
        bail!(
            "the report tests need {} (Debian package names): install them, or run `cargo xtask test` as root on a Debian-family host",
            needed.join(" ")
        );
    }
    let install = || {
        let needed = needed.clone();
        cmd!(
            sh,
            "apt-get install -y --no-remove --no-install-recommends {needed...}"
        )
        .env("DEBIAN_FRONTEND", "noninteractive")
        .run()
    };
    if install().is_err() {
        cmd!(sh, "apt-get update").run()?;
        install()?;
    }
    Ok(())
}

/// Whether `program` is on `PATH`.
fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

/// The kernel cache the tests share (as `tapmatrix_e2e::test_cache_dir`):
/// `$TAPMATRIX_TEST_CACHE`, else `<target>/test-cache`.
fn test_cache_dir() -> std::path::PathBuf {
    if let Some(dir) = std::env::var_os("TAPMATRIX_TEST_CACHE") {
        return dir.into();
    }
    std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
        .join("test-cache")
}
