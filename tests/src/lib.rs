//! End-to-end tests of tapmatrix: shared helpers for tests that boot real kernels in QEMU.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The Debian package family the test kernel comes from (bookworm's 6.1).
const TEST_KERNEL_PACKAGE: &str = "linux-image-6.1.0-";

/// A real Debian 6.1 kernel image (`vmlinuz`), downloaded once with the host's
/// apt (`apt-get download` of the newest `linux-image-6.1.0-N-amd64-unsigned`)
/// and unpacked under the cargo target dir. Panics with the reason if that fails.
#[allow(
    clippy::panic,
    reason = "test support: no test kernel fails the test that asked"
)]
pub fn test_kernel() -> PathBuf {
    static KERNEL: OnceLock<PathBuf> = OnceLock::new();
    KERNEL
        .get_or_init(|| match fetch_test_kernel() {
            Ok(path) => path,
            Err(message) => panic!("getting the test kernel: {message}"),
        })
        .clone()
}

/// Where test kernels are kept: `<target>/test-kernels`.
fn kernels_dir() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest.parent().unwrap_or(manifest).join("target"));
    target.join("test-kernels")
}

fn fetch_test_kernel() -> Result<PathBuf, String> {
    let dir = kernels_dir();
    if let Some(found) = find_vmlinuz(&dir) {
        return Ok(found);
    }
    let search = run(Command::new("apt-cache").args([
        "search",
        "--names-only",
        "^linux-image-6\\.1\\.0-[0-9]+-amd64-unsigned$",
    ]))?;
    let package = search
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| name.starts_with(TEST_KERNEL_PACKAGE))
        .max_by_key(|name| abi_number(name))
        .ok_or("apt-cache knows no linux-image-6.1.0-N-amd64-unsigned (run apt-get update)")?
        .to_owned();
    let scratch = dir.join(format!("download-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).map_err(|error| error.to_string())?;
    run(Command::new("apt-get")
        .args(["download", "-qq", &package])
        .current_dir(&scratch))?;
    let deb = std::fs::read_dir(&scratch)
        .map_err(|error| error.to_string())?
        .flatten()
        .map(|entry| entry.path())
        .find(|path| path.extension().is_some_and(|ext| ext == "deb"))
        .ok_or("apt-get download left no .deb")?;
    let unpacked = scratch.join("root");
    run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&unpacked))?;
    let vmlinuz =
        find_vmlinuz(&unpacked.join("boot")).ok_or("no /boot/vmlinuz-* in the package")?;
    let name = vmlinuz.file_name().ok_or("no file name")?.to_owned();
    std::fs::rename(&vmlinuz, dir.join(&name)).map_err(|error| error.to_string())?;
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(dir.join(name))
}

/// The ABI number N of `linux-image-6.1.0-N-amd64-unsigned`.
fn abi_number(package: &str) -> u32 {
    package
        .trim_start_matches(TEST_KERNEL_PACKAGE)
        .split('-')
        .next()
        .and_then(|number| number.parse().ok())
        .unwrap_or(0)
}

/// The first `vmlinuz-*` file in `dir`.
fn find_vmlinuz(dir: &Path) -> Option<PathBuf> {
    std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|entry| entry.path())
        .find(|path| {
            path.file_name()
                .is_some_and(|name| name.to_string_lossy().starts_with("vmlinuz-"))
        })
}

/// Runs `command`, returning its stdout or an error naming it.
fn run(command: &mut Command) -> Result<String, String> {
    let output = command
        .output()
        .map_err(|error| format!("{command:?}: {error}"))?;
    if !output.status.success() {
        return Err(format!(
            "{command:?}: {}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}
