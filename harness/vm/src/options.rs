//! How guests are run: accelerator, size, timeout, where images are cached.

use std::path::PathBuf;
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

impl Default for VmOptions {
    fn default() -> Self {
        Self {
            accel: Accel::Auto,
            memory_mib: 512,
            cpus: 1,
            timeout: Duration::from_secs(120),
            cache_dir: default_cache_dir(),
        }
    }
}

/// The cache directory: `$TAPMATRIX_CACHE`, else `$XDG_CACHE_HOME/tapmatrix`,
/// else `~/.cache/tapmatrix`, else a directory under the system's temp dir.
pub fn default_cache_dir() -> PathBuf {
    let var = |name| {
        std::env::var_os(name)
            .filter(|value| !value.is_empty())
            .map(PathBuf::from)
    };
    var("TAPMATRIX_CACHE")
        .or_else(|| var("XDG_CACHE_HOME").map(|dir| dir.join("tapmatrix")))
        .or_else(|| var("HOME").map(|dir| dir.join(".cache").join("tapmatrix")))
        .unwrap_or_else(|| std::env::temp_dir().join("tapmatrix-cache"))
}
