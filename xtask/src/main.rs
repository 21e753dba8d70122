//! `cargo xtask`: the project's chores, as two commands a person remembers.
//!
//! - `cargo xtask test`: host prerequisites, format check, clippy, and every
//!   test (what CI runs).

use anyhow::{Result, bail};
use xshell::{Shell, cmd};

/// Debian packages the tests need on the host, with a program each provides.
const HOST_PACKAGES: &[(&str, &str)] = &[
    ("qemu-system-x86", "qemu-system-x86_64"),
    ("busybox-static", "busybox"),
];

fn main() -> Result<()> {
    let task = std::env::args().nth(1);
    let sh = Shell::new()?;
    sh.change_dir(workspace_root());
    match task.as_deref() {
        Some("test") => test(&sh),
        _ => bail!("usage: cargo xtask test"),
    }
}

/// The workspace root: xtask's manifest directory's parent.
fn workspace_root() -> std::path::PathBuf {
    let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// What CI runs: prerequisites, formatting, lints, then the whole test suite.
fn test(sh: &Shell) -> Result<()> {
    install_host_packages(sh)?;
    cmd!(sh, "cargo fmt --all -- --check").run()?;
    cmd!(sh, "cargo clippy --workspace --all-targets -- -D warnings").run()?;
    cmd!(sh, "cargo test --workspace").run()?;
    Ok(())
}

/// Installs the missing host packages with apt-get (asking nothing), or says
/// exactly what to install where apt-get is not available.
fn install_host_packages(sh: &Shell) -> Result<()> {
    let missing: Vec<&str> = HOST_PACKAGES
        .iter()
        .filter(|(_, program)| !on_path(program))
        .map(|(package, _)| *package)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    if cmd!(sh, "sh -c 'command -v apt-get'")
        .quiet()
        .ignore_stdout()
        .run()
        .is_err()
    {
        bail!(
            "missing host packages: install {} (Debian names) and run again",
            missing.join(" ")
        );
    }
    cmd!(sh, "apt-get update -qq")
        .env("DEBIAN_FRONTEND", "noninteractive")
        .run()?;
    cmd!(sh, "apt-get install -y -qq {missing...}")
        .env("DEBIAN_FRONTEND", "noninteractive")
        .run()?;
    Ok(())
}

/// Whether `program` is an executable file in a directory of `PATH`.
fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}
