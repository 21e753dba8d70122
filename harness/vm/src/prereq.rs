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
    #[error("`{command}` failed: {reason}; install {} by hand", list(.packages))]
    Install {
        /// The command that failed.
        command: String,
        /// Its exit status or error.
        reason: String,
        /// The packages that were to be installed.
        packages: Vec<Package>,
    },
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
        let qemu = find_on_path("qemu-system-x86_64");
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

    /// Installs what is missing with apt-get (`update` once, then `install -y`,
    /// asking nothing) and checks again; where apt-get is absent, says what to install.
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
        let names: Vec<&str> = packages.iter().map(|package| package.name()).collect();
        let run = |args: Vec<&str>| -> Result<(), PrereqError> {
            let command = format!("apt-get {}", args.join(" "));
            duct::cmd(&apt_get, &args)
                .env("DEBIAN_FRONTEND", "noninteractive")
                .stdout_to_stderr()
                .run()
                .map(drop)
                .map_err(|error| PrereqError::Install {
                    command,
                    reason: error.to_string(),
                    packages: packages.clone(),
                })
        };
        run(vec!["update", "-qq"])?;
        let mut install = vec!["install", "-y", "-qq", "--no-install-recommends"];
        install.extend(&names);
        run(install)?;
        let after = Self::check();
        after.require()?;
        Ok(after)
    }
}

/// The first executable file called `program` in a `PATH` directory.
fn find_on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
}

/// Whether `path` is a file with an execute bit.
fn is_executable(path: &Path) -> bool {
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
        };
        let message = none.require().unwrap_err().to_string();
        assert!(
            message.contains("qemu-system-x86 busybox-static"),
            "{message}"
        );
    }
}
