//! Booting kernels in QEMU: the host prerequisites, the accelerator probe,
//! the initramfs builder (busybox + the static agent + a job), the QEMU
//! launcher with its timeout and failure detection, the raw facts
//! harvest that writes what a kernel exposes into a directory, and the
//! run of compiled scripts on a kernel ([`run_items`]).

mod accel;
mod cpio;
mod harvest;
mod image_files;
mod initramfs;
mod launch;
mod options;
mod parallel;
mod prereq;
mod private_qemu;
mod run;
mod vmlinux;

pub use accel::{ACCEL_ENV, ACCEL_MEMORY, Accel, AccelError, AccelStatus, ResolvedAccel};
pub use harvest::{HarvestError, HarvestReport, Manifest, ManifestEntry, harvest_raw};
pub use image_files::ImageFiles;
pub use initramfs::{ExtraFile, Initramfs, InitramfsError, guest_commands};
pub use launch::{BootError, BootOutcome, BootSpec, Ending, boot, boot_streaming};
pub use options::{QEMU_ENV, VmOptions};
pub use parallel::{boot_floor, boot_many, default_jobs, floor_many};
pub use prereq::{KvmState, Package, PrereqError, Prerequisites};
pub use private_qemu::{
    default_qemu, install_private_qemu, installed_private_qemu, private_qemu_dir,
};
pub use run::{
    GuestModule, InfraFailure, ItemReport, RunSettings, dropped_line, run_items,
    run_items_with_modules,
};
pub use vmlinux::bootable_kernel;

/// The static agent (PID 1 of every image), built by this crate's build script.
const AGENT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/tapmatrix-agent"));
