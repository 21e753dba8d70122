//! Many boots at once, bounded by `-j`, with a progress bar; and the bare-boot
//! floor a harvest is measured against.

use std::path::{Path, PathBuf};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;

use crate::{BootError, BootSpec, Ending, ExtraFile, Initramfs, VmOptions, boot};

/// Boots each `(vmlinuz, work_dir)` pair to a busybox shell that powers off at
/// once (same image size, launcher and accelerator as a harvest), at most
/// `jobs` at a time; the wall time of each boot.
pub fn floor_many(
    kernels: &[(PathBuf, PathBuf)],
    options: &VmOptions,
    jobs: usize,
) -> Vec<Result<Duration, BootError>> {
    boot_many(
        kernels,
        options,
        jobs,
        "bare boot",
        |(vmlinuz, work_dir), options| boot_floor(vmlinuz, work_dir, options),
    )
}

/// One bare boot: busybox's shell runs `/floor` as init, which powers off.
pub fn boot_floor(
    vmlinuz: &Path,
    work_dir: &Path,
    options: &VmOptions,
) -> Result<Duration, BootError> {
    let image = Initramfs {
        job: None,
        extra: vec![ExtraFile {
            path: "/floor".to_owned(),
            data: b"#!/bin/sh\nexec poweroff -f\n".to_vec(),
            mode: 0o755,
        }],
    }
    .build(&options.cache_dir)
    .map_err(|error| BootError::WorkDir {
        path: options.cache_dir.clone(),
        source: std::io::Error::other(error.to_string()),
    })?;
    let mut spec = BootSpec::new(vmlinuz, &image, work_dir, options);
    spec.append.push("rdinit=/floor".to_owned());
    spec.ending = Ending::PowerOff;
    boot(&spec).map(|outcome| outcome.wall)
}

/// How many boots run at once unless the user says: the number of cores.
pub fn default_jobs() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// Runs `task` (a boot, and whatever goes with it) over `items` on a pool
/// of `jobs` threads with a progress bar labelled `what`; the KVM probe runs
/// once, before the first boot. One result per item, in order.
pub fn boot_many<T, R>(
    items: &[T],
    options: &VmOptions,
    jobs: usize,
    what: &str,
    task: impl Fn(&T, &VmOptions) -> R + Sync,
) -> Vec<R>
where
    T: Sync,
    R: Send,
{
    // Decide the accelerator before the boots start (the probe's verdict is
    // kept for the process; a KVM on trial is watched boot by boot).
    let _ = options.accel.resolve(options);
    let bar = ProgressBar::new(items.len() as u64).with_message(what.to_owned());
    if let Ok(style) = ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} {elapsed}") {
        bar.set_style(style);
    }
    let run = || {
        items
            .par_iter()
            .map(|item| {
                let result = task(item, options);
                bar.inc(1);
                result
            })
            .collect()
    };
    let results = match rayon::ThreadPoolBuilder::new()
        .num_threads(jobs.max(1))
        .build()
    {
        Ok(pool) => pool.install(run),
        Err(_) => items.iter().map(|item| task(item, options)).collect(),
    };
    bar.finish_and_clear();
    results
}
