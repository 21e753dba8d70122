//! `cargo xtask`: the project's chores, as two commands a person remembers.
//!
//! - `cargo xtask matrix`: the main job: host prerequisites, the kernel
//!   matrix fetched and harvested, the tapsets parsed.
//! - `cargo xtask test`: host prerequisites, format check, clippy, and every
//!   test (what CI runs).

use anyhow::{Result, bail};
use xshell::{Shell, cmd};

fn main() -> Result<()> {
    let task = std::env::args().nth(1);
    let sh = Shell::new()?;
    sh.change_dir(workspace_root());
    match task.as_deref() {
        Some("matrix") => matrix(&sh),
        Some("test") => test(&sh),
        _ => bail!("usage: cargo xtask matrix|test"),
    }
}

/// The workspace root: xtask's manifest directory's parent.
fn workspace_root() -> std::path::PathBuf {
    let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// The main job, through the release `tapmatrix` binary: prerequisites,
/// every kernel of `kernels/matrix.lock` fetched and harvested (cached ones
/// cost nothing), the matrix's state, and the tapsets parsed.
fn matrix(sh: &Shell) -> Result<()> {
    let tapmatrix =
        |args: &[&str]| cmd!(sh, "cargo run --release -q -p tapmatrix -- {args...}").run();
    tapmatrix(&["doctor", "--install"])?;
    tapmatrix(&["kernels", "fetch"])?;
    tapmatrix(&["kernels", "harvest"])?;
    tapmatrix(&["kernels", "list"])?;
    tapmatrix(&["parse", "--check", "tapsets/"])?;
    Ok(())
}

/// What CI runs: prerequisites, formatting, lints, then the whole test suite.
fn test(sh: &Shell) -> Result<()> {
    // The host prerequisites (qemu-system-x86, busybox-static), installed
    // with apt-get when missing, or named for the user to install elsewhere.
    cmd!(sh, "cargo run -q -p tapmatrix -- doctor --install").run()?;
    cmd!(sh, "cargo fmt --all -- --check").run()?;
    cmd!(sh, "cargo clippy --workspace --all-targets -- -D warnings").run()?;
    cmd!(sh, "cargo test --workspace").run()?;
    Ok(())
}
