//! Builds the in-guest agent as a static binary so that this crate can put it
//! into initramfs images (`include_bytes!`): one `tapmatrix` binary then
//! builds images anywhere, with no separate build step.
//!
//! A nested `cargo build` of `tapmatrix-agent` for the host's GNU target with
//! `+crt-static`, into its own target directory next to the outer one (a
//! separate directory, so the outer build's lock is not contended). Cargo's
//! own fingerprinting makes repeated runs cheap.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The triple the agent is built for (the guests are x86-64).
const AGENT_TARGET: &str = "x86_64-unknown-linux-gnu";

/// Variables a build script inherits that would change or break the nested build.
const CLEARED_ENV: &[&str] = &[
    "RUSTC_WORKSPACE_WRAPPER",
    "RUSTC_WRAPPER",
    "RUSTFLAGS",
    "CARGO_ENCODED_RUSTFLAGS",
    "CARGO_BUILD_RUSTFLAGS",
    "CARGO_TARGET_DIR",
    "CARGO_BUILD_TARGET",
    "CARGO_BUILD_TARGET_DIR",
    "CARGO_PRIMARY_PACKAGE",
    "CARGO_MANIFEST_DIR",
    "CARGO_MANIFEST_PATH",
    "CARGO_PKG_NAME",
    "CLIPPY_ARGS",
    "CLIPPY_CONF_DIR",
    "RUSTDOCFLAGS",
    "CARGO_ENCODED_RUSTDOCFLAGS",
];

fn main() {
    if let Err(message) = build_agent() {
        println!("cargo::error={message}");
    }
}

fn build_agent() -> Result<(), String> {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").map_err(|e| e.to_string())?);
    let workspace = manifest_dir
        .ancestors()
        .nth(2)
        .ok_or("harness/vm is not two levels below the workspace root")?
        .to_path_buf();
    let out_dir = PathBuf::from(env::var("OUT_DIR").map_err(|e| e.to_string())?);
    for watched in [
        "vm-images/agent",
        "vm-images/wire",
        "compiler/ir",
        "compiler/runtime",
        "Cargo.lock",
        "Cargo.toml",
    ] {
        println!(
            "cargo::rerun-if-changed={}",
            workspace.join(watched).display()
        );
    }
    let target_dir = outer_target_dir(&out_dir)
        .map_or_else(|| out_dir.join("agent-target"), |dir| dir.join("agent"));
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(&workspace)
        .args([
            "build",
            "--release",
            "--package",
            "tapmatrix-agent",
            "--target",
        ])
        .arg(AGENT_TARGET)
        .arg("--target-dir")
        .arg(&target_dir);
    for name in CLEARED_ENV {
        command.env_remove(name);
    }
    for (name, _) in env::vars_os() {
        let name = name.to_string_lossy();
        if name.starts_with("CARGO_PROFILE_") {
            command.env_remove(name.as_ref());
        }
    }
    // Set after the clearing above, which would otherwise undo them.
    command
        .env("CARGO_ENCODED_RUSTFLAGS", "-Ctarget-feature=+crt-static")
        .env("CARGO_PROFILE_RELEASE_DEBUG", "false")
        .env("CARGO_PROFILE_RELEASE_STRIP", "symbols");
    let status = command
        .status()
        .map_err(|error| format!("running cargo to build the agent: {error}"))?;
    if !status.success() {
        return Err(format!(
            "building the static agent failed ({status}); run `cargo build -p tapmatrix-agent --release --target {AGENT_TARGET}` with RUSTFLAGS='-C target-feature=+crt-static' to see why"
        ));
    }
    let built = target_dir
        .join(AGENT_TARGET)
        .join("release")
        .join("tapmatrix-agent");
    std::fs::copy(&built, out_dir.join("tapmatrix-agent"))
        .map_err(|error| format!("copying {}: {error}", built.display()))?;
    Ok(())
}

/// The outer target directory: the ancestor of `OUT_DIR` holding cargo's `CACHEDIR.TAG`.
fn outer_target_dir(out_dir: &Path) -> Option<PathBuf> {
    out_dir
        .ancestors()
        .find(|dir| dir.join("CACHEDIR.TAG").is_file())
        .map(Path::to_path_buf)
}
