//! `tapmatrix doctor`: the host prerequisites, the accelerator a boot would
//! use (this runs the KVM probe), and the cache directory.

use clap::Args;
use tapmatrix_kernels::Cache;
use tapmatrix_vm::{Accel, KvmState, Prerequisites};

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
    }
    let show = |path: &Option<std::path::PathBuf>| {
        path.as_ref()
            .map_or_else(|| "missing".to_owned(), |path| path.display().to_string())
    };
    println!("qemu-system-x86_64: {}", show(&found.qemu));
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
    if found.qemu.is_some() {
        match Accel::kvm_verdict() {
            Ok(()) => println!("accelerator: kvm (the probe boot succeeded)"),
            Err(why) => println!("accelerator: tcg (KVM unusable: {why})"),
        }
    }
    match Cache::resolve(None) {
        Ok(cache) => println!("cache: {}", cache.root().display()),
        Err(error) => println!("cache: unusable ({error})"),
    }
    found.require().map_err(infra_error)?;
    Ok(Status::Success)
}
