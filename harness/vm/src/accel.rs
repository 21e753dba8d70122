//! The accelerator: KVM when it really boots kernels here, else TCG.
//!
//! `/dev/kvm` can exist and still fail, in two ways seen on nested hosts:
//! QEMU aborts at once, or the guest hangs right after the firmware hands
//! over to the kernel. `TAPMATRIX_ACCEL=tcg|kvm` picks one without any of
//! what follows ([`crate::VmOptions::new`] and the CLI's `--accel` read
//! it). `Auto` decides in two steps:
//!
//! 1. A verdict remembered in `<cache>/accel.json` for this host kernel and
//!    QEMU version (a KVM that hung a real boot before) means TCG.
//! 2. A tiny multiboot image boots under KVM with a short timeout (it writes
//!    to an `isa-debug-exit` port, which makes QEMU exit with status 3). If
//!    it fails, TCG. If it passes, KVM is *on trial*: that probe does not
//!    run what a kernel runs (PVH entry, long mode, the MSRs Linux writes),
//!    so the real boots under KVM are watched until one shows the kernel
//!    running (console output after the firmware's, or the agent's data
//!    window). A boot that stays silent for [`VmOptions::kvm_trial`], or
//!    whose QEMU fails before any sign of life, is killed and booted again
//!    under TCG, and so is every later boot: the verdict is said once on
//!    stderr and remembered in the cache.
//!
//! `Kvm` and `Tcg` use their accelerator without any of this.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::VmOptions;
use crate::launch::{Ended, run_with_timeout};

/// The accelerator asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Accel {
    /// KVM if it works here (probed, then watched on the first real boots;
    /// see the module documentation), else TCG.
    #[default]
    Auto,
    /// KVM, without probing or watching.
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

/// The environment variable that picks the accelerator instead of `Auto`
/// (`auto`, `tcg` or `kvm`): [`crate::VmOptions::new`]'s default, and the
/// CLI's `--accel` default.
pub const ACCEL_ENV: &str = "TAPMATRIX_ACCEL";

/// The file under the cache root that remembers KVMs that hung real boots.
pub const ACCEL_MEMORY: &str = "accel.json";

/// How long the KVM probe may take; a working KVM answers in well under a second.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// What a boot would use now, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccelStatus {
    /// Asked for explicitly (`--accel`, `TAPMATRIX_ACCEL`).
    Forced(ResolvedAccel),
    /// The KVM probe failed: TCG.
    ProbeFailed(String),
    /// KVM hung (or failed) a real boot on this host kernel and QEMU
    /// version before: TCG.
    Remembered {
        /// What happened then.
        reason: String,
        /// The file that remembers it.
        file: PathBuf,
    },
    /// KVM passed the probe; the next real boot under it is watched.
    OnTrial,
    /// A real boot under KVM showed the kernel running in this process.
    Confirmed,
}

impl AccelStatus {
    /// The accelerator this status means.
    pub fn accel(&self) -> ResolvedAccel {
        match self {
            Self::Forced(accel) => *accel,
            Self::ProbeFailed(_) | Self::Remembered { .. } => ResolvedAccel::Tcg,
            Self::OnTrial | Self::Confirmed => ResolvedAccel::Kvm,
        }
    }
}

/// The accelerator chosen for one boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Choice {
    /// The accelerator.
    pub(crate) accel: ResolvedAccel,
    /// KVM chosen by `Auto` before any real boot under it showed the
    /// kernel running: the boot is watched and falls back to TCG.
    pub(crate) on_trial: bool,
}

impl Choice {
    /// TCG, nothing to watch.
    pub(crate) const TCG: Self = Self {
        accel: ResolvedAccel::Tcg,
        on_trial: false,
    };
}

/// What this process learned about KVM from real boots, per QEMU program.
#[derive(Debug, Clone)]
enum Learned {
    /// A real boot showed the kernel running.
    Works,
    /// A real boot hung or failed under KVM.
    Fails(String),
}

/// Per QEMU program: what real boots taught, and the probe's verdict.
#[derive(Default)]
struct State {
    learned: HashMap<PathBuf, Learned>,
    probed: HashMap<PathBuf, Result<(), String>>,
}

fn state() -> &'static Mutex<State> {
    static STATE: OnceLock<Mutex<State>> = OnceLock::new();
    STATE.get_or_init(Mutex::default)
}

fn locked() -> std::sync::MutexGuard<'static, State> {
    state()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Accel {
    /// The accelerator the next boot with `options` would start with (runs
    /// the KVM probe once per process for `Auto`).
    pub fn resolve(self, options: &VmOptions) -> ResolvedAccel {
        choose(self, options).accel
    }

    /// `TAPMATRIX_ACCEL`'s choice, `Auto` when it is unset or empty (an
    /// unknown value is `Auto` too, with a warning).
    pub fn from_env() -> Self {
        match std::env::var(ACCEL_ENV) {
            Ok(text) if !text.is_empty() => text.parse().unwrap_or_else(|error| {
                tracing::warn!("{ACCEL_ENV}: {error}");
                Self::Auto
            }),
            _ => Self::Auto,
        }
    }

    /// What a boot with `options` would use, and why (for `Auto`, runs the
    /// KVM probe once per process).
    pub fn status(options: &VmOptions) -> AccelStatus {
        match options.accel {
            Self::Kvm => return AccelStatus::Forced(ResolvedAccel::Kvm),
            Self::Tcg => return AccelStatus::Forced(ResolvedAccel::Tcg),
            Self::Auto => {}
        }
        if let Some(learned) = locked().learned.get(&options.qemu).cloned() {
            return match learned {
                Learned::Works => AccelStatus::Confirmed,
                Learned::Fails(reason) => AccelStatus::Remembered {
                    reason,
                    file: memory_path(&options.cache_dir),
                },
            };
        }
        let key = HostKey::of(&options.qemu);
        if let Some(entry) = Memory::read(&options.cache_dir).find(&key) {
            let reason = entry.reason.clone();
            locked()
                .learned
                .insert(options.qemu.clone(), Learned::Fails(reason.clone()));
            return AccelStatus::Remembered {
                reason,
                file: memory_path(&options.cache_dir),
            };
        }
        match probe_once(&options.qemu) {
            Ok(()) => AccelStatus::OnTrial,
            Err(why) => AccelStatus::ProbeFailed(why),
        }
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

/// The accelerator for one boot with `options` asking for `request`.
pub(crate) fn choose(request: Accel, options: &VmOptions) -> Choice {
    match request {
        Accel::Kvm => Choice {
            accel: ResolvedAccel::Kvm,
            on_trial: false,
        },
        Accel::Tcg => Choice::TCG,
        Accel::Auto => {
            let status = Accel::status(&VmOptions {
                accel: Accel::Auto,
                ..options.clone()
            });
            Choice {
                accel: status.accel(),
                on_trial: status == AccelStatus::OnTrial,
            }
        }
    }
}

/// A boot on trial showed the kernel running under KVM: trust it for the
/// rest of the process.
pub(crate) fn kvm_works(options: &VmOptions) {
    locked()
        .learned
        .entry(options.qemu.clone())
        .or_insert(Learned::Works);
}

/// A boot on trial did not show the kernel running under KVM: TCG for the
/// rest of the process and, through the cache, for later ones on this host
/// kernel and QEMU version. Says so on stderr once per process.
pub(crate) fn kvm_fails(options: &VmOptions, reason: &str) {
    {
        let mut state = locked();
        if matches!(state.learned.get(&options.qemu), Some(Learned::Fails(_))) {
            return;
        }
        state
            .learned
            .insert(options.qemu.clone(), Learned::Fails(reason.to_owned()));
    }
    let file = memory_path(&options.cache_dir);
    let remembered = Memory::remember(&options.cache_dir, HostKey::of(&options.qemu), reason);
    let remembered = match remembered {
        Ok(()) => format!(
            "remembered in {} for this host kernel and QEMU",
            file.display()
        ),
        Err(error) => format!("could not remember it in {}: {error}", file.display()),
    };
    eprintln!(
        "tapmatrix: KVM passed its probe but a real boot under it {reason}: booting under TCG from now on ({remembered}; {ACCEL_ENV}=kvm forces KVM)"
    );
}

/// Runs the probe once per QEMU program and remembers the verdict.
fn probe_once(qemu: &Path) -> Result<(), String> {
    if let Some(verdict) = locked().probed.get(qemu) {
        return verdict.clone();
    }
    // Probed outside the lock: it takes up to PROBE_TIMEOUT. Two threads
    // may both probe once; both get the same answer.
    let verdict = probe(qemu, ResolvedAccel::Kvm);
    tracing::debug!(?verdict, "KVM probe");
    locked()
        .probed
        .entry(qemu.to_path_buf())
        .or_insert(verdict)
        .clone()
}

/// Boots the probe image with `accel`: `Ok(())` when it reached its exit port in time.
pub(crate) fn probe(qemu: &Path, accel: ResolvedAccel) -> Result<(), String> {
    if accel == ResolvedAccel::Kvm && !Path::new("/dev/kvm").exists() {
        return Err("no /dev/kvm".to_owned());
    }
    let dir = tempfile::Builder::new()
        .prefix("tapmatrix-probe-")
        .tempdir()
        .map_err(|error| error.to_string())?;
    let image = dir.path().join("probe.mb");
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
    let expression = duct::cmd(qemu.as_os_str(), args)
        .stdin_null()
        .stdout_null()
        .stderr_capture()
        .unchecked();
    let ended = run_with_timeout(&expression, PROBE_TIMEOUT, None, &mut || Ok(()));
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
        Err(error) => Err(format!("could not start {}: {error}", qemu.display())),
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

/// Whether a console log shows the guest past its firmware: text after
/// SeaBIOS's `Booting from ROM..` (the kernel's, or the agent's first line
/// under `quiet`), or a kernel log line's time stamp (`[    0.123456]`)
/// anywhere (a firmware without that line). The console grows byte by
/// byte, so a prefix of the firmware's own lines never counts.
pub(crate) fn console_shows_kernel(console: &[u8]) -> bool {
    const BOOTING: &[u8] = b"Booting from ";
    let after_firmware = console
        .windows(BOOTING.len())
        .rposition(|window| window == BOOTING)
        .and_then(|at| {
            // SeaBIOS ends that line with "..", without a newline.
            let after = &console[at + BOOTING.len()..];
            let dots = after.windows(2).position(|window| window == b"..")?;
            let tail = &after[dots..];
            let skip = tail.iter().take_while(|byte| **byte == b'.').count();
            Some(&tail[skip..])
        })
        .is_some_and(|rest| rest.iter().any(u8::is_ascii_alphanumeric));
    after_firmware || has_log_time_stamp(console)
}

/// Whether `text` holds `[`, optional spaces, digits, `.`, a digit: the
/// start of a kernel log line's time stamp.
fn has_log_time_stamp(text: &[u8]) -> bool {
    text.iter().enumerate().any(|(at, byte)| {
        if *byte != b'[' {
            return false;
        }
        let rest = &text[at + 1..];
        let spaces = rest.iter().take_while(|byte| **byte == b' ').count();
        let rest = &rest[spaces..];
        let digits = rest.iter().take_while(|byte| byte.is_ascii_digit()).count();
        digits > 0
            && rest.get(digits) == Some(&b'.')
            && rest.get(digits + 1).is_some_and(u8::is_ascii_digit)
    })
}

/// Where the verdicts are remembered.
fn memory_path(cache_dir: &Path) -> PathBuf {
    cache_dir.join(ACCEL_MEMORY)
}

/// What a remembered verdict is keyed by: the host kernel and the QEMU version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct HostKey {
    /// `uname -r` and `uname -v` of the host.
    host_kernel: String,
    /// The first line of `qemu-system-x86_64 --version`.
    qemu: String,
}

impl HostKey {
    fn of(qemu: &Path) -> Self {
        let read = |path: &str| {
            std::fs::read_to_string(path)
                .map(|text| text.trim().to_owned())
                .unwrap_or_default()
        };
        let version = duct::cmd(qemu.as_os_str(), ["--version"])
            .stdin_null()
            .stderr_null()
            .read()
            .ok()
            .and_then(|text| text.lines().next().map(str::to_owned))
            .unwrap_or_default();
        Self {
            host_kernel: format!(
                "{} {}",
                read("/proc/sys/kernel/osrelease"),
                read("/proc/sys/kernel/version")
            ),
            qemu: version,
        }
    }
}

/// `<cache>/accel.json`: the hosts (kernel and QEMU) where KVM failed real boots.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Memory {
    /// One entry per host key.
    kvm_fails: Vec<MemoryEntry>,
}

/// One remembered failure.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct MemoryEntry {
    #[serde(flatten)]
    key: HostKey,
    /// What the boot under KVM did.
    reason: String,
}

impl Memory {
    /// The remembered verdicts (none if the file is missing or unreadable).
    fn read(cache_dir: &Path) -> Self {
        std::fs::read(memory_path(cache_dir))
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default()
    }

    fn find(&self, key: &HostKey) -> Option<&MemoryEntry> {
        self.kvm_fails.iter().find(|entry| entry.key == *key)
    }

    /// Adds (or replaces) the verdict for `key`, written atomically.
    fn remember(cache_dir: &Path, key: HostKey, reason: &str) -> std::io::Result<()> {
        let mut memory = Self::read(cache_dir);
        memory.kvm_fails.retain(|entry| entry.key != key);
        memory.kvm_fails.push(MemoryEntry {
            key,
            reason: reason.to_owned(),
        });
        let json = serde_json::to_vec_pretty(&memory).map_err(std::io::Error::other)?;
        tapmatrix_kernels::write_atomic(&memory_path(cache_dir), &json)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_probe_image_exits_under_tcg() {
        // The same image that decides on KVM must work where execution surely
        // works; this boots real QEMU.
        assert_eq!(probe(&crate::default_qemu(), ResolvedAccel::Tcg), Ok(()));
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

    #[test]
    fn the_kernel_shows_after_the_firmware() {
        let banner = b"\x1bc\x1b[?7l\x1b[2J\x1b[0mSeaBIOS (version 1.16.2-debian-1.16.2-1)\r\nBooting from ROM..";
        assert!(!console_shows_kernel(b""));
        assert!(!console_shows_kernel(banner));
        assert!(!console_shows_kernel(&[&banner[..], b"\r\n"].concat()));
        assert!(console_shows_kernel(
            &[&banner[..], b"[    1.897] tapmatrix-agent: started\r\n"].concat()
        ));
        assert!(console_shows_kernel(b"[    0.000000] Linux version 6.1.0"));
        // The console grows byte by byte: no prefix of the firmware's own
        // output counts (escape sequences, a half-written banner).
        for end in 0..=banner.len() {
            assert!(!console_shows_kernel(&banner[..end]), "{end}");
        }
        assert!(!console_shows_kernel(b"[    1"));
        assert!(!console_shows_kernel(b"[    1."));
    }
}
