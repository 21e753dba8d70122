//! A private QEMU: Debian's `qemu-system-x86` and the libraries the host
//! lacks, unpacked under the user's data directory and started through a
//! small wrapper, for hosts where apt cannot install it without removing
//! packages (a bookworm host with `qemu-utils` from backports: it Breaks
//! bookworm's `qemu-system-common`). Nothing is installed into the host's
//! package database and no package is removed; the host's own apt sources
//! give the packages, in the versions its apt would install.
//!
//! Where a boot looks for QEMU: `$TAPMATRIX_QEMU`, else
//! `qemu-system-x86_64` on `PATH`, else this private copy ([`default_qemu`]).

use std::fs;
use std::path::{Path, PathBuf};

use crate::prereq::PrereqError;

/// The package whose closure is unpacked.
const PACKAGE: &str = "qemu-system-x86";

/// The wrapper's name inside the private directory.
const PROGRAM: &str = "qemu-system-x86_64";

/// Where the private QEMU lives: `$XDG_DATA_HOME/tapmatrix/qemu`, else
/// `~/.local/share/tapmatrix/qemu` (a tool, not a cache: every kernel
/// cache of the user shares it).
pub fn private_qemu_dir() -> Option<PathBuf> {
    let non_empty = |name: &str| std::env::var_os(name).filter(|value| !value.is_empty());
    let data = non_empty("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| non_empty("HOME").map(|home| PathBuf::from(home).join(".local/share")))?;
    Some(data.join("tapmatrix/qemu"))
}

/// The private QEMU's wrapper, when one was installed.
pub fn installed_private_qemu() -> Option<PathBuf> {
    let program = private_qemu_dir()?.join(PROGRAM);
    crate::prereq::is_executable(&program).then_some(program)
}

/// The QEMU program a boot runs: `$TAPMATRIX_QEMU`, else
/// `qemu-system-x86_64` on `PATH`, else the private copy, else the bare
/// name (whose absence the boot then reports).
pub fn default_qemu() -> PathBuf {
    std::env::var_os(crate::QEMU_ENV)
        .filter(|qemu| !qemu.is_empty())
        .map(PathBuf::from)
        .or_else(|| crate::prereq::find_on_path(PROGRAM))
        .or_else(installed_private_qemu)
        .unwrap_or_else(|| PathBuf::from(PROGRAM))
}

/// A package apt would install: its name and the exact version.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Wanted {
    name: String,
    version: String,
}

/// The packages a simulated install (`apt-get install -s`) would install:
/// its `Inst NAME [OLD] (VERSION ...)` lines.
fn wanted(simulated: &str) -> Vec<Wanted> {
    simulated
        .lines()
        .filter_map(|line| line.strip_prefix("Inst "))
        .filter_map(|rest| {
            let (name, rest) = rest.split_once(' ')?;
            let open = rest.find('(')?;
            let version = rest[open + 1..].split_whitespace().next()?;
            Some(Wanted {
                name: name.to_owned(),
                version: version.trim_end_matches(')').to_owned(),
            })
        })
        .collect()
}

/// The wrapper: the libraries beside the binary first, the firmware
/// directories named with `-L`, every argument passed on. It finds its
/// directory from its own path, so the directory can move.
fn wrapper() -> String {
    format!(
        r#"#!/bin/sh
# tapmatrix's private QEMU (Debian's {PACKAGE}, unpacked by `tapmatrix doctor --install`)
here=$(dirname "$(readlink -f "$0")")/root
LD_LIBRARY_PATH="$here/usr/lib/x86_64-linux-gnu:$here/lib/x86_64-linux-gnu${{LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}}"
export LD_LIBRARY_PATH
exec "$here/usr/bin/{PROGRAM}" -L "$here/usr/share/seabios" -L "$here/usr/share/qemu" "$@"
"#
    )
}

/// Downloads `qemu-system-x86` and whatever of its dependencies the host
/// lacks (as `apt_get` resolves them, in those versions) and unpacks them
/// into [`private_qemu_dir`], replacing an earlier copy; returns the
/// wrapper and the QEMU version it runs. The copy is checked by running
/// `--version` before it replaces anything.
pub fn install_private_qemu(apt_get: &Path) -> Result<(PathBuf, String), PrereqError> {
    let failed = |command: &str, reason: String| PrereqError::Install {
        command: command.to_owned(),
        reason,
        packages: vec![crate::Package::QemuSystemX86],
    };
    let dir = private_qemu_dir().ok_or_else(|| {
        failed(
            "private QEMU",
            "no data directory: set XDG_DATA_HOME or HOME".to_owned(),
        )
    })?;
    let parent = dir.parent().unwrap_or(&dir).to_path_buf();
    fs::create_dir_all(&parent).map_err(|error| failed("private QEMU", io(&parent, &error)))?;
    let simulate = ["install", "-s", "--no-install-recommends", PACKAGE].map(str::to_owned);
    let packages = wanted(&crate::prereq::apt_output(
        apt_get,
        &simulate,
        None,
        &[crate::Package::QemuSystemX86],
    )?);
    if !packages.iter().any(|package| package.name == PACKAGE) {
        return Err(failed(
            &format!("apt-get {}", simulate.join(" ")),
            format!("apt would not install {PACKAGE} here"),
        ));
    }
    let work = tempfile::Builder::new()
        .prefix(".qemu-")
        .tempdir_in(&parent)
        .map_err(|error| failed("private QEMU", io(&parent, &error)))?;
    let debs = work.path().join("debs");
    let root = work.path().join("root");
    for made in [&debs, &root] {
        fs::create_dir_all(made).map_err(|error| failed("private QEMU", io(made, &error)))?;
    }
    let mut download = vec!["download".to_owned()];
    download.extend(
        packages
            .iter()
            .map(|package| format!("{}={}", package.name, package.version)),
    );
    crate::prereq::apt_output(
        apt_get,
        &download,
        Some(&debs),
        &[crate::Package::QemuSystemX86],
    )?;
    let mut files: Vec<PathBuf> = fs::read_dir(&debs)
        .map_err(|error| failed("private QEMU", io(&debs, &error)))?
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "deb"))
        .collect();
    files.sort();
    if files.len() != packages.len() {
        return Err(failed(
            &format!("apt-get {}", download.join(" ")),
            format!("{} packages downloaded of {}", files.len(), packages.len()),
        ));
    }
    for deb in &files {
        tapmatrix_kernels::unpack_deb(deb, &root)
            .map_err(|error| failed("unpacking", error.to_string()))?;
    }
    fs::remove_dir_all(&debs).map_err(|error| failed("private QEMU", io(&debs, &error)))?;
    let program = work.path().join(PROGRAM);
    write_executable(&program, &wrapper())
        .map_err(|error| failed("private QEMU", io(&program, &error)))?;
    let version = qemu_version(&program).map_err(|reason| {
        failed(
            &format!("{} --version", program.display()),
            format!("the unpacked QEMU does not start: {reason}"),
        )
    })?;
    if dir.exists() {
        fs::remove_dir_all(&dir).map_err(|error| failed("private QEMU", io(&dir, &error)))?;
    }
    let kept = work.keep();
    fs::rename(&kept, &dir).map_err(|error| failed("private QEMU", io(&dir, &error)))?;
    Ok((dir.join(PROGRAM), version))
}

/// The first line QEMU prints for `--version`, or why it did not start.
fn qemu_version(program: &Path) -> Result<String, String> {
    let output = duct::cmd(program, ["--version"])
        .stdin_null()
        .stderr_to_stdout()
        .stdout_capture()
        .unchecked()
        .run()
        .map_err(|error| error.to_string())?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    if output.status.success() {
        Ok(text.lines().next().unwrap_or_default().to_owned())
    } else {
        Err(text.trim().to_owned())
    }
}

/// Writes `text` to `path` with mode 0755.
fn write_executable(path: &Path, text: &str) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::write(path, text)?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o755))
}

/// `path: error` for a message.
fn io(path: &Path, error: &std::io::Error) -> String {
    format!("{}: {error}", path.display())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `apt-get install -s --no-install-recommends qemu-system-x86`
    /// printed on a bookworm host with qemu-utils from backports.
    const SIMULATED: &str = "Reading package lists...
The following packages will be REMOVED:
  qemu-utils
Remv qemu-utils [1:10.0.2+ds-2+deb13u1~bpo12+1]
Inst libfdt1 (1.6.1-4+b1 Debian:12.15/oldstable [amd64])
Inst seabios (1.16.2-1 Debian:12.15/oldstable [all])
Inst libslirp0 [4.7.0-1] (4.7.0-2 Debian:12.15/oldstable [amd64])
Inst qemu-system-x86 (1:7.2+dfsg-7+deb12u18+b3 Debian:12.15/oldstable [amd64])
Conf libfdt1 (1.6.1-4+b1 Debian:12.15/oldstable [amd64])
";

    #[test]
    fn the_simulation_names_each_package_and_version_to_fetch() {
        let names: Vec<(String, String)> = wanted(SIMULATED)
            .into_iter()
            .map(|wanted| (wanted.name, wanted.version))
            .collect();
        let expect = [
            ("libfdt1", "1.6.1-4+b1"),
            ("seabios", "1.16.2-1"),
            ("libslirp0", "4.7.0-2"),
            ("qemu-system-x86", "1:7.2+dfsg-7+deb12u18+b3"),
        ];
        assert_eq!(
            names,
            expect.map(|(name, version)| (name.to_owned(), version.to_owned()))
        );
    }

    #[test]
    fn the_wrapper_runs_the_unpacked_binary_with_its_libraries_and_firmware() {
        let text = wrapper();
        assert!(text.starts_with("#!/bin/sh\n"), "{text}");
        assert!(
            text.contains(r#"exec "$here/usr/bin/qemu-system-x86_64" -L "$here/usr/share/seabios" -L "$here/usr/share/qemu" "$@""#),
            "{text}"
        );
        assert!(
            text.contains("LD_LIBRARY_PATH=\"$here/usr/lib/x86_64-linux-gnu:"),
            "{text}"
        );
    }
}
