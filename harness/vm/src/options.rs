//! How guests are run: accelerator, size, timeout, where images are cached.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::Accel;

/// The environment variable naming the QEMU program to run (a build of
/// one's own, or a wrapper).
pub const QEMU_ENV: &str = "TAPMATRIX_QEMU";

/// Options shared by every boot of a run.
#[derive(Debug, Clone)]
pub struct VmOptions {
    /// Which accelerator to use (`Auto`: see [`Accel`]).
    pub accel: Accel,
    /// How long a boot under KVM on trial may show nothing of the kernel
    /// before it is taken for a KVM that hangs (see [`Accel::Auto`]).
    pub kvm_trial: Duration,
    /// The QEMU program: `$TAPMATRIX_QEMU`, else `qemu-system-x86_64` on
    /// `PATH`, else tapmatrix's private copy ([`crate::default_qemu`]).
    pub qemu: PathBuf,
    /// Guest memory in MiB.
    pub memory_mib: u32,
    /// Guest CPUs.
    pub cpus: u32,
    /// How long one boot may take before it is killed.
    pub timeout: Duration,
    /// Where built initramfs images are cached (by content hash).
    pub cache_dir: PathBuf,
}

impl VmOptions {
    /// Defaults (the accelerator `TAPMATRIX_ACCEL` names, else `Auto` with a
    /// 10 s KVM trial, the QEMU [`crate::default_qemu`] finds,
    /// 512 MiB, one CPU, 120 s timeout) with
    /// images cached under `cache_dir` (the kernel cache's root).
    pub fn new(cache_dir: &Path) -> Self {
        Self {
            accel: Accel::from_env(),
            kvm_trial: Duration::from_secs(10),
            qemu: crate::default_qemu(),
            memory_mib: 512,
            cpus: 1,
            timeout: Duration::from_secs(120),
            cache_dir: cache_dir.to_path_buf(),
        }
    }
}
