//! Host prerequisites: QEMU, a static busybox, and the state of `/dev/kvm`.

use std::fmt;
use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};

/// A Debian package the host needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Package {
    /// `qemu-system-x86`: provides `qemu-system-x86_64`.
    QemuSystemX86,
    /// `busybox-static`: provides a statically linked `/bin/busybox`.
    BusyboxStatic,
}

impl Package {
    /// The Debian package name.
    pub fn name(self) -> &'static str {
        match self {
            Self::QemuSystemX86 => "qemu-system-x86",
            Self::BusyboxStatic => "busybox-static",
        }
    }
}

impl fmt::Display for Package {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What `/dev/kvm` looks like (whether KVM actually works needs a probe boot:
/// see [`crate::Accel::resolve`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KvmState {
    /// No `/dev/kvm`.
    Absent,
    /// `/dev/kvm` exists but cannot be opened read-write.
    NotAccessible(String),
    /// `/dev/kvm` opens read-write.
    Accessible,
}

/// The host prerequisites as found.
#[derive(Debug, Clone)]
pub struct Prerequisites {
    /// `qemu-system-x86_64`, if on `PATH`.
    pub qemu: Option<PathBuf>,
    /// A static busybox, if found (`/bin/busybox`, else on `PATH`).
    pub busybox: Option<PathBuf>,
    /// A busybox that was found but is dynamically linked (useless in a guest).
    pub dynamic_busybox: Option<PathBuf>,
    /// `/dev/kvm`.
    pub kvm: KvmState,
    /// What an install did besides apt's usual work, for the user to read.
    pub notes: Vec<String>,
}

/// Why the prerequisites are not met or could not be installed.
#[derive(Debug, thiserror::Error)]
pub enum PrereqError {
    /// Packages are missing and cannot be installed here.
    #[error("missing host packages: install {} (Debian package names){hint}", list(.packages))]
    Missing {
        /// The packages to install.
        packages: Vec<Package>,
        /// Why tapmatrix did not install them itself.
        hint: String,
    },
    /// apt-get ran and failed.
    #[error(
        "installing {} failed (`{command}`): install them yourself, e.g. `sudo {}`{}",
        list(.packages),
        install_line(.packages),
        apt_said(.reason)
    )]
    Install {
        /// The command that failed.
        command: String,
        /// apt's `E:`/`W:` lines, or why it could not run.
        reason: String,
        /// The packages that were to be installed.
        packages: Vec<Package>,
    },
    /// Installing would make apt remove packages: refused.
    #[error(
        "installing {} would make apt-get remove {}: tapmatrix never removes packages. To accept that, run `sudo {}` yourself",
        list(.packages),
        .removals.join(", "),
        install_line(.packages)
    )]
    WouldRemove {
        /// The packages that were to be installed.
        packages: Vec<Package>,
        /// What apt-get would remove.
        removals: Vec<String>,
    },
}

/// The install command a user can run themselves (without tapmatrix's
/// `--no-remove`: they decide).
fn install_line(packages: &[Package]) -> String {
    format!("apt-get install --no-install-recommends {}", list(packages))
}

/// apt's lines after our sentence, indented, or nothing.
fn apt_said(reason: &str) -> String {
    if reason.trim().is_empty() {
        return String::new();
    }
    let lines: Vec<String> = reason.lines().map(|line| format!("\n  {line}")).collect();
    format!("; apt said:{}", lines.join(""))
}

/// Packages as a space-separated list.
fn list(packages: &[Package]) -> String {
    packages
        .iter()
        .map(|package| package.name())
        .collect::<Vec<_>>()
        .join(" ")
}

impl Prerequisites {
    /// Looks at the host (nothing is run).
    pub fn check() -> Self {
        let qemu = find_qemu();
        let candidates = [Some(PathBuf::from("/bin/busybox")), find_on_path("busybox")];
        let found: Vec<PathBuf> = candidates
            .into_iter()
            .flatten()
            .filter(|path| path.is_file())
            .collect();
        let busybox = found.iter().find(|path| is_static_elf(path)).cloned();
        let dynamic_busybox = if busybox.is_none() {
            found.first().cloned()
        } else {
            None
        };
        let kvm = match File::options().read(true).write(true).open("/dev/kvm") {
            Ok(_) => KvmState::Accessible,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => KvmState::Absent,
            Err(error) => KvmState::NotAccessible(error.to_string()),
        };
        Self {
            qemu,
            busybox,
            dynamic_busybox,
            kvm,
            notes: Vec::new(),
        }
    }

    /// The packages that are missing.
    pub fn missing(&self) -> Vec<Package> {
        let mut missing = Vec::new();
        if self.qemu.is_none() {
            missing.push(Package::QemuSystemX86);
        }
        if self.busybox.is_none() {
            missing.push(Package::BusyboxStatic);
        }
        missing
    }

    /// Ok when everything needed to boot guests is there, else which packages to install.
    pub fn require(&self) -> Result<(), PrereqError> {
        let packages = self.missing();
        if packages.is_empty() {
            return Ok(());
        }
        let hint = match &self.dynamic_busybox {
            Some(path) if packages.contains(&Package::BusyboxStatic) => format!(
                " ({} is dynamically linked and cannot run in a guest); `tapmatrix doctor --install` does it on Debian",
                path.display()
            ),
            _ => "; `tapmatrix doctor --install` does it on Debian".to_owned(),
        };
        Err(PrereqError::Missing { packages, hint })
    }

    /// Installs what is missing with apt-get and checks again; where
    /// apt-get is absent, says what to install. apt-get never removes
    /// anything here: when the install would remove packages, nothing is
    /// installed and the error gives the command to run (see
    /// [`install_with`]).
    pub fn install_missing(&self) -> Result<Self, PrereqError> {
        let packages = self.missing();
        if packages.is_empty() {
            return Ok(self.clone());
        }
        let Some(apt_get) = find_on_path("apt-get") else {
            return Err(PrereqError::Missing {
                packages,
                hint: " with this system's package manager (no apt-get here)".to_owned(),
            });
        };
        let mut notes = Vec::new();
        match install_with(&apt_get, &packages) {
            Ok(()) => {}
            // apt cannot install QEMU without removing packages (a host
            // with qemu-utils from backports): the rest through apt, QEMU
            // as a private copy beside no package of the host's.
            Err(PrereqError::WouldRemove { removals, .. })
                if packages.contains(&Package::QemuSystemX86) =>
            {
                let others: Vec<Package> = packages
                    .iter()
                    .copied()
                    .filter(|package| *package != Package::QemuSystemX86)
                    .collect();
                if !others.is_empty() {
                    install_with(&apt_get, &others)?;
                }
                let (program, version) = crate::install_private_qemu(&apt_get)?;
                notes.push(format!(
                    "apt-get would remove {} to install qemu-system-x86: unpacked a private copy instead ({version}) at {}; no package was installed or removed for it",
                    removals.join(", "),
                    program.display()
                ));
            }
            Err(error) => return Err(error),
        }
        let mut after = Self::check();
        after.require()?;
        after.notes = notes;
        Ok(after)
    }
}

/// apt-get's three steps for `packages`: refresh the lists, simulate the
/// install (`-s`, to see what it would remove), install asking nothing and
/// refusing any removal (`--no-remove`).
fn apt_steps(packages: &[Package]) -> [Vec<String>; 3] {
    let names = packages.iter().map(|package| package.name().to_owned());
    let mut simulate: Vec<String> = ["install", "-s", "--no-install-recommends"]
        .map(str::to_owned)
        .to_vec();
    simulate.extend(names.clone());
    let mut install: Vec<String> = [
        "install",
        "-y",
        "-q",
        "--no-install-recommends",
        "--no-remove",
    ]
    .map(str::to_owned)
    .to_vec();
    install.extend(names);
    [
        vec!["update".to_owned(), "-q".to_owned()],
        simulate,
        install,
    ]
}

/// The packages a simulated apt-get run (`apt-get -s`) would remove: its
/// `Remv NAME [VERSION]` lines.
fn removals(simulated: &str) -> Vec<String> {
    simulated
        .lines()
        .filter_map(|line| line.strip_prefix("Remv "))
        .filter_map(|rest| rest.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

/// Installs `packages` with `apt_get` ([`apt_steps`]); refuses when the
/// simulation shows removals. apt's output is kept, never shown: its
/// `E:`/`W:` lines become the detail of a failure.
fn install_with(apt_get: &Path, packages: &[Package]) -> Result<(), PrereqError> {
    let run = |args: &[String]| apt_output(apt_get, args, None, packages);
    let [update, simulate, install] = apt_steps(packages);
    run(&update)?;
    let removed = removals(&run(&simulate)?);
    if !removed.is_empty() {
        return Err(PrereqError::WouldRemove {
            packages: packages.to_vec(),
            removals: removed,
        });
    }
    run(&install).map(drop)
}

/// Runs `apt_get` with `args` (in `cwd` when given) and returns what it
/// printed; a failure is [`PrereqError::Install`] for `packages` with
/// apt's `E:`/`W:` lines as the reason.
pub(crate) fn apt_output(
    apt_get: &Path,
    args: &[String],
    cwd: Option<&Path>,
    packages: &[Package],
) -> Result<String, PrereqError> {
    let command = format!("apt-get {}", args.join(" "));
    let failed = |reason: String| PrereqError::Install {
        command: command.clone(),
        reason,
        packages: packages.to_vec(),
    };
    let mut expression = duct::cmd(apt_get, args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .env("LC_ALL", "C.UTF-8")
        .stdin_null()
        .stderr_to_stdout()
        .stdout_capture()
        .unchecked();
    if let Some(cwd) = cwd {
        expression = expression.dir(cwd);
    }
    let output = expression
        .run()
        .map_err(|error| failed(error.to_string()))?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    if output.status.success() {
        Ok(text)
    } else {
        Err(failed(tapmatrix_kernels::apt_words(&text)))
    }
}

/// The QEMU a boot would run: `$TAPMATRIX_QEMU` (a path, or a name on
/// `PATH`), else `qemu-system-x86_64` on `PATH`, else the private copy
/// (see [`crate::default_qemu`]).
fn find_qemu() -> Option<PathBuf> {
    if let Some(named) = std::env::var_os(crate::QEMU_ENV).filter(|qemu| !qemu.is_empty()) {
        let named = PathBuf::from(named);
        return if is_executable(&named) {
            Some(named)
        } else {
            named.to_str().and_then(find_on_path)
        };
    }
    find_on_path("qemu-system-x86_64").or_else(crate::installed_private_qemu)
}

/// The first executable file called `program` in a `PATH` directory.
pub(crate) fn find_on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
}

/// Whether `path` is a file with an execute bit.
pub(crate) fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path).is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

/// Whether `path` is a 64-bit ELF without a program interpreter (statically linked).
pub(crate) fn is_static_elf(path: &Path) -> bool {
    let mut bytes = Vec::new();
    let Ok(file) = File::open(path) else {
        return false;
    };
    if file.take(1 << 16).read_to_end(&mut bytes).is_err() {
        return false;
    }
    static_elf_header(&bytes).unwrap_or(false)
}

/// `Some(true)` for a static ELF64, `Some(false)` for a dynamic one, `None` if not ELF64.
fn static_elf_header(bytes: &[u8]) -> Option<bool> {
    const PT_INTERP: u32 = 3;
    if bytes.get(..5)? != b"\x7fELF\x02" {
        return None;
    }
    let u16_at = |at: usize| Some(u16::from_le_bytes(bytes.get(at..at + 2)?.try_into().ok()?));
    let phoff =
        usize::try_from(u64::from_le_bytes(bytes.get(0x20..0x28)?.try_into().ok()?)).ok()?;
    let phentsize = usize::from(u16_at(0x36)?);
    let phnum = usize::from(u16_at(0x38)?);
    for index in 0..phnum {
        let at = phoff + index * phentsize;
        let kind = u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?);
        if kind == PT_INTERP {
            return Some(false);
        }
    }
    Some(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_static_from_dynamic_binaries() {
        // The test binary itself is dynamically linked (the default GNU target).
        let me = std::env::current_exe().unwrap();
        assert!(!is_static_elf(&me));
        assert!(!is_static_elf(Path::new("/etc/hostname")));
        assert_eq!(static_elf_header(crate::AGENT), Some(true));
    }

    #[test]
    fn missing_packages_are_named() {
        let none = Prerequisites {
            qemu: None,
            busybox: None,
            dynamic_busybox: None,
            kvm: KvmState::Absent,
            notes: Vec::new(),
        };
        let message = none.require().unwrap_err().to_string();
        assert!(
            message.contains("qemu-system-x86 busybox-static"),
            "{message}"
        );
    }

    /// What `apt-get install -s qemu-system-x86 busybox-static` printed on
    /// a host where apt chose to remove qemu-utils (and busybox, which
    /// busybox-static replaces).
    const SIMULATED_REMOVAL: &str = "NOTE: This is only a simulation!
      apt-get needs root privileges for real execution.
Reading package lists...
The following packages will be REMOVED:
  busybox qemu-utils
The following NEW packages will be installed:
  busybox-static qemu-system-x86
0 upgraded, 2 newly installed, 2 to remove and 0 not upgraded.
Remv busybox [1:1.35.0-4+b3]
Remv qemu-utils [1:7.2+dfsg-7+deb12u5]
Inst busybox-static (1:1.35.0-4+b3 Debian:12.5/stable [amd64])
Inst qemu-system-x86 (1:7.2+dfsg-7+deb12u5 Debian:12.5/stable [amd64])
Conf busybox-static (1:1.35.0-4+b3 Debian:12.5/stable [amd64])
Conf qemu-system-x86 (1:7.2+dfsg-7+deb12u5 Debian:12.5/stable [amd64])
";

    #[test]
    fn the_install_refuses_removals_and_simulates_first() {
        let [update, simulate, install] =
            apt_steps(&[Package::QemuSystemX86, Package::BusyboxStatic]);
        assert_eq!(update, ["update", "-q"]);
        assert!(simulate.contains(&"-s".to_owned()), "{simulate:?}");
        assert!(install.contains(&"--no-remove".to_owned()), "{install:?}");
        assert!(install.contains(&"-y".to_owned()), "{install:?}");
        assert!(install.ends_with(&["qemu-system-x86".to_owned(), "busybox-static".to_owned()]));
        assert_eq!(removals(SIMULATED_REMOVAL), ["busybox", "qemu-utils"]);
        assert!(removals("Inst busybox-static (1:1.35.0-4+b3)\n").is_empty());
    }

    /// A fake apt-get that logs its arguments and answers `-s` with `simulated`.
    fn fake_apt_get(dir: &Path, simulated: &str) -> (PathBuf, PathBuf) {
        use std::os::unix::fs::PermissionsExt;
        let log = dir.join("calls");
        let answer = dir.join("simulated");
        std::fs::write(&answer, simulated).unwrap();
        let script = dir.join("apt-get");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\necho \"$*\" >> '{}'\ncase \" $* \" in *\" -s \"*) cat '{}';; esac\n",
                log.display(),
                answer.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        (script, log)
    }

    #[test]
    fn an_install_that_would_remove_packages_is_refused_with_the_command() {
        let dir = tempfile::tempdir().unwrap();
        let (apt_get, log) = fake_apt_get(dir.path(), SIMULATED_REMOVAL);
        let packages = [Package::QemuSystemX86, Package::BusyboxStatic];
        let error = install_with(&apt_get, &packages).unwrap_err();
        let text = error.to_string();
        assert!(matches!(error, PrereqError::WouldRemove { .. }), "{text}");
        assert!(text.contains("remove busybox, qemu-utils"), "{text}");
        assert!(
            text.contains(
                "run `sudo apt-get install --no-install-recommends qemu-system-x86 busybox-static` yourself"
            ),
            "{text}"
        );
        let calls = std::fs::read_to_string(&log).unwrap();
        assert_eq!(
            calls.lines().count(),
            2,
            "update and the simulation only: {calls}"
        );

        // Nothing to remove: the install runs, refusing removals anyway.
        let clean = tempfile::tempdir().unwrap();
        let (apt_get, log) = fake_apt_get(clean.path(), "Inst busybox-static (1:1.35.0-4+b3)\n");
        install_with(&apt_get, &packages).unwrap();
        let calls = std::fs::read_to_string(&log).unwrap();
        let last = calls.lines().last().unwrap();
        assert!(last.starts_with("install -y"), "{calls}");
        assert!(last.contains("--no-remove"), "{calls}");
    }
}
