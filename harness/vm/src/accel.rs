//! The accelerator: KVM when it really works here, else TCG.
//!
//! `/dev/kvm` can exist and still hang (nested virtualisation), so `Auto`
//! boots a tiny multiboot image under KVM with a short timeout; the image
//! writes to an `isa-debug-exit` port, which makes QEMU exit with status 3.
//! The answer is cached for the process.

use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

use crate::launch::{Ended, run_with_timeout};

/// The accelerator asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Accel {
    /// KVM if a probe boot succeeds in time, else TCG.
    #[default]
    Auto,
    /// KVM, without probing.
    Kvm,
    /// TCG (software emulation).
    Tcg,
}

/// The accelerator a boot uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResolvedAccel {
    /// KVM with the host CPU model.
    Kvm,
    /// TCG with `-cpu max`.
    Tcg,
}

impl ResolvedAccel {
    /// The QEMU arguments selecting it.
    pub fn qemu_args(self) -> [&'static str; 4] {
        match self {
            Self::Kvm => ["-accel", "kvm", "-cpu", "host"],
            Self::Tcg => ["-accel", "tcg", "-cpu", "max"],
        }
    }

    /// Its name as QEMU spells it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Kvm => "kvm",
            Self::Tcg => "tcg",
        }
    }
}

/// Why the accelerator could not be decided.
#[derive(Debug, thiserror::Error)]
pub enum AccelError {
    /// The probe could not be started at all.
    #[error("probing KVM: {0}")]
    Probe(String),
}

/// The environment variable that decides `Auto` without probing (`tcg`
/// or `kvm`): the probe's tiny image can run under a KVM that still hangs
/// real kernels after SeaBIOS (seen on a nested host).
pub const ACCEL_ENV: &str = "TAPMATRIX_ACCEL";

/// How long the KVM probe may take; a working KVM answers in well under a second.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// The probe's result, once per process: `Ok(())` if KVM works, else why not.
static KVM_PROBE: OnceLock<Result<(), String>> = OnceLock::new();

impl Accel {
    /// The accelerator to use, probing KVM (once per process) for `Auto`.
    pub fn resolve(self) -> ResolvedAccel {
        match self {
            Self::Kvm => ResolvedAccel::Kvm,
            Self::Tcg => ResolvedAccel::Tcg,
            Self::Auto => match std::env::var(ACCEL_ENV).ok().as_deref() {
                Some("tcg") => ResolvedAccel::Tcg,
                Some("kvm") => ResolvedAccel::Kvm,
                _ => match kvm_probe() {
                    Ok(()) => ResolvedAccel::Kvm,
                    Err(_) => ResolvedAccel::Tcg,
                },
            },
        }
    }

    /// The probe's verdict on KVM: `Ok(())` if it works, else why not (cached).
    pub fn kvm_verdict() -> Result<(), String> {
        kvm_probe()
    }
}

impl std::str::FromStr for Accel {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "auto" => Ok(Self::Auto),
            "kvm" => Ok(Self::Kvm),
            "tcg" => Ok(Self::Tcg),
            _ => Err(format!(
                "unknown accelerator `{text}`: use auto, kvm or tcg"
            )),
        }
    }
}

/// Runs the probe once and remembers the verdict.
fn kvm_probe() -> Result<(), String> {
    KVM_PROBE
        .get_or_init(|| {
            let result = probe(ResolvedAccel::Kvm);
            tracing::debug!(?result, "KVM probe");
            result
        })
        .clone()
}

/// Boots the probe image with `accel`: `Ok(())` when it reached its exit port in time.
pub(crate) fn probe(accel: ResolvedAccel) -> Result<(), String> {
    if accel == ResolvedAccel::Kvm && !Path::new("/dev/kvm").exists() {
        return Err("no /dev/kvm".to_owned());
    }
    let dir = std::env::temp_dir().join(format!(
        "tapmatrix-{}-probe-{}",
        accel.name(),
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).map_err(|error| error.to_string())?;
    let image = dir.join("probe.mb");
    std::fs::write(&image, multiboot_probe_image()).map_err(|error| error.to_string())?;
    let mut args: Vec<&std::ffi::OsStr> = Vec::new();
    for arg in accel.qemu_args() {
        args.push(arg.as_ref());
    }
    for arg in [
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-no-reboot",
        "-m",
        "32",
        "-device",
        "isa-debug-exit,iobase=0xf4,iosize=1",
        "-kernel",
    ] {
        args.push(arg.as_ref());
    }
    args.push(image.as_os_str());
    let expression = duct::cmd("qemu-system-x86_64", args)
        .stdin_null()
        .stdout_null()
        .stderr_capture()
        .unchecked();
    let ended = run_with_timeout(&expression, PROBE_TIMEOUT, None, &mut || Ok(()));
    let _ = std::fs::remove_dir_all(&dir);
    match ended {
        Ok(Ended::Exited(output)) if output.status.code() == Some(3) => Ok(()),
        Ok(Ended::Exited(output)) => Err(format!(
            "the probe boot ended with {}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )),
        Ok(Ended::Aborted(message)) => Err(message),
        Ok(Ended::TimedOut) => Err(format!(
            "the probe boot hung (killed after {}s)",
            PROBE_TIMEOUT.as_secs()
        )),
        Err(error) => Err(format!("could not start qemu-system-x86_64: {error}")),
    }
}

/// A multiboot (v1) image with the "a.out kludge": loaded at 1 MiB, it
/// writes 1 to I/O port 0xf4 (`isa-debug-exit`: QEMU exits with 3), then halts.
fn multiboot_probe_image() -> Vec<u8> {
    const MAGIC: u32 = 0x1BAD_B002;
    const FLAGS: u32 = 1 << 16; // the address fields are valid
    const LOAD: u32 = 0x0010_0000;
    const HEADER_LEN: u32 = 32;
    let header = [
        MAGIC,
        FLAGS,
        0u32.wrapping_sub(MAGIC.wrapping_add(FLAGS)),
        LOAD,              // header_addr
        LOAD,              // load_addr
        0,                 // load_end_addr: the whole file
        0,                 // bss_end_addr: no bss
        LOAD + HEADER_LEN, // entry_addr
    ];
    let mut image: Vec<u8> = header.iter().flat_map(|word| word.to_le_bytes()).collect();
    // mov al, 1; out 0xf4, al; hlt; jmp $-1 (back to hlt)
    image.extend_from_slice(&[0xB0, 0x01, 0xE6, 0xF4, 0xF4, 0xEB, 0xFD]);
    image
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_probe_image_exits_under_tcg() {
        // The same image that decides on KVM must work where execution surely
        // works; this boots real QEMU.
        assert_eq!(probe(ResolvedAccel::Tcg), Ok(()));
    }

    #[test]
    fn accelerators_parse() {
        assert_eq!("kvm".parse::<Accel>(), Ok(Accel::Kvm));
        assert!(
            "xen"
                .parse::<Accel>()
                .unwrap_err()
                .contains("auto, kvm or tcg")
        );
    }
}
