//! How guests are run: accelerator, size, timeout, where images are cached.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::Accel;

/// Options shared by every boot of a run.
#[derive(Debug, Clone)]
pub struct VmOptions {
    /// Which accelerator to use (`Auto` probes KVM once per process).
    pub accel: Accel,
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
    /// Defaults (auto accelerator, 512 MiB, one CPU, 120 s timeout) with
    /// images cached under `cache_dir` (the kernel cache's root).
    pub fn new(cache_dir: &Path) -> Self {
        Self {
            accel: Accel::Auto,
            memory_mib: 512,
            cpus: 1,
            timeout: Duration::from_secs(120),
            cache_dir: cache_dir.to_path_buf(),
        }
    }
}
