//! `tapmatrix doctor`: the host prerequisites, the accelerator a boot would
//! use (this runs the KVM probe), and the cache directory.

use clap::Args;
use tapmatrix_kernels::Cache;
use tapmatrix_kernels::{FetchedKernel, KernelId};
use tapmatrix_vm::{ACCEL_ENV, Accel, AccelStatus, KvmState, Prerequisites, VmOptions};

use crate::exit::{Status, infra_error};

/// `tapmatrix doctor` options.
#[derive(Args)]
pub struct DoctorArgs {
    /// Install missing Debian packages with apt-get (asks nothing).
    #[arg(long)]
    install: bool,
}

/// Reports every prerequisite; with `--install`, installs what is missing first.
pub fn run(args: &DoctorArgs) -> anyhow::Result<Status> {
    let mut found = Prerequisites::check();
    if args.install {
        found = found.install_missing().map_err(infra_error)?;
        for note in &found.notes {
            eprintln!("note: {note}");
        }
    }
    let show = |path: &Option<std::path::PathBuf>| {
        path.as_ref()
            .map_or_else(|| "missing".to_owned(), |path| path.display().to_string())
    };
    let private = found.qemu.as_ref().is_some_and(|qemu| {
        tapmatrix_vm::private_qemu_dir().is_some_and(|dir| qemu.starts_with(dir))
    });
    println!(
        "qemu-system-x86_64: {}{}",
        show(&found.qemu),
        if private {
            " (tapmatrix's private copy of Debian's qemu-system-x86)"
        } else {
            ""
        }
    );
    match (&found.busybox, &found.dynamic_busybox) {
        (Some(path), _) => println!("busybox (static): {}", path.display()),
        (None, Some(path)) => println!(
            "busybox (static): missing ({} is dynamically linked)",
            path.display()
        ),
        (None, None) => println!("busybox (static): missing"),
    }
    match &found.kvm {
        KvmState::Absent => println!("/dev/kvm: absent"),
        KvmState::NotAccessible(why) => println!("/dev/kvm: present, not usable ({why})"),
        KvmState::Accessible => println!("/dev/kvm: present"),
    }
    let cache = Cache::resolve(None);
    if found.qemu.is_some()
        && let Ok(cache) = &cache
    {
        println!(
            "accelerator: {}",
            accelerator(cache, found.busybox.is_some())
        );
    }
    match cache {
        Ok(cache) => println!("cache: {}", cache.root().display()),
        Err(error) => println!("cache: unusable ({error})"),
    }
    found.require().map_err(infra_error)?;
    Ok(Status::Success)
}

/// What `--accel auto` uses, and why. A KVM that passed the probe is
/// tried on a real kernel from the cache when there is one (the probe's
/// tiny image does not run what a kernel runs).
fn accelerator(cache: &Cache, busybox: bool) -> String {
    let options = VmOptions::new(cache.root());
    let mut tried = None;
    if Accel::status(&options) == AccelStatus::OnTrial
        && busybox
        && let Some(kernel) = any_fetched_kernel(cache)
        && let Ok(scratch) = tempfile::tempdir()
    {
        eprintln!(
            "booting kernel {} under KVM to see that it works (TCG if it does not)...",
            kernel.id
        );
        let result = tapmatrix_vm::boot_floor(&kernel.vmlinuz, scratch.path(), &options);
        tried = Some((kernel.id, result.err()));
    }
    match (Accel::status(&options), tried) {
        (AccelStatus::Forced(accel), _) => format!("{} ({ACCEL_ENV}={0})", accel.name()),
        (AccelStatus::ProbeFailed(why), _) => format!("tcg (KVM unusable: {why})"),
        (AccelStatus::Remembered { reason, file }, _) => format!(
            "tcg (KVM passed its probe, but a real boot under it {reason}; remembered in {}: delete that file, or set {ACCEL_ENV}=kvm, to use KVM again)",
            file.display()
        ),
        (AccelStatus::Confirmed, Some((id, None))) => {
            format!("kvm (kernel {id} booted under it)")
        }
        (AccelStatus::Confirmed, Some((id, Some(error)))) => {
            format!("kvm (kernel {id} started under it, then failed: {error})")
        }
        (AccelStatus::Confirmed | AccelStatus::OnTrial, _) => format!(
            "kvm, unconfirmed (the probe boot passed; no fetched kernel to try: the first real boot under KVM is watched, and falls back to TCG if the kernel shows nothing for {} s)",
            options.kvm_trial.as_secs()
        ),
    }
}

/// Some kernel fetched into the cache.
fn any_fetched_kernel(cache: &Cache) -> Option<FetchedKernel> {
    let mut names: Vec<String> = std::fs::read_dir(cache.root().join("kernels"))
        .ok()?
        .flatten()
        .filter_map(|entry| entry.file_name().into_string().ok())
        .collect();
    names.sort();
    names
        .into_iter()
        .filter_map(|name| KernelId::try_from(name).ok())
        .find_map(|id| cache.fetched(&id))
}
