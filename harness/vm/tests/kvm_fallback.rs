//! A KVM that passes the probe but hangs real kernels (as on a nested host:
//! the guest stops right after SeaBIOS's "Booting from ROM..") makes `Auto`
//! fall back to TCG for that boot and every later one, and the verdict is
//! remembered in the cache for this host kernel and QEMU version.
//!
//! QEMU is a shell script here that behaves like that host's: the probe
//! image exits through its port, a kernel under `-accel kvm` prints the
//! firmware's lines and hangs, under `-accel tcg` the "kernel" prints a
//! line and powers off. Each start is logged, so the test sees which
//! accelerator every boot used.
#![allow(
    clippy::unwrap_used,
    reason = "test helpers: a failure here is the test failing"
)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use tapmatrix_vm::{
    ACCEL_MEMORY, Accel, AccelStatus, BootSpec, Ending, ResolvedAccel, VmOptions, boot,
};

/// Writes the fake QEMU (`--version` says `version`) to `path`; it logs
/// each start's accelerator to `log`.
fn fake_qemu(path: &Path, log: &Path, version: &str) {
    let script = format!(
        r#"#!/bin/sh
if [ "$1" = --version ]; then echo "QEMU emulator version {version}"; exit 0; fi
accel=""; console=""; prev=""
for arg in "$@"; do
    [ "$prev" = -accel ] && accel="$arg"
    [ "$prev" = -serial ] && [ -z "$console" ] && console="${{arg#file:}}"
    prev="$arg"
done
case "$*" in
*isa-debug-exit*) echo "probe $accel" >> '{log}'; exit 3 ;;
esac
echo "boot $accel" >> '{log}'
printf '\033c\033[2JSeaBIOS (version fake)\r\nBooting from ROM..' > "$console"
if [ "$accel" = kvm ]; then exec sleep 300; fi
printf '[    0.412345] reboot: Power down\r\n' >> "$console"
exit 0
"#,
        log = log.display()
    );
    std::fs::write(path, script).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn starts(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// A power-off boot of a dummy kernel with `qemu`.
fn boot_with(qemu: &Path, cache: &Path, work: &Path) -> tapmatrix_vm::BootOutcome {
    let kernel = cache.join("not-a-kernel");
    std::fs::write(&kernel, b"dummy").unwrap();
    let options = VmOptions {
        accel: Accel::Auto,
        qemu: qemu.to_path_buf(),
        kvm_trial: Duration::from_secs(2),
        timeout: Duration::from_secs(60),
        ..VmOptions::new(cache)
    };
    let mut spec = BootSpec::new(&kernel, &kernel, work, &options);
    spec.ending = Ending::PowerOff;
    boot(&spec).unwrap()
}

#[test]
fn a_kvm_that_hangs_real_boots_falls_back_to_tcg_and_is_remembered() {
    if !Path::new("/dev/kvm").exists() {
        // The probe (rightly) fails at once without /dev/kvm: nothing to
        // fall back from. The unit tests of the console check still run.
        eprintln!("no /dev/kvm: the probe decides TCG before any trial");
    }
    let scratch = tempfile::tempdir().unwrap();
    let cache = scratch.path().join("cache");
    std::fs::create_dir_all(&cache).unwrap();
    let log = scratch.path().join("starts");
    let qemu = scratch.path().join("qemu-a");
    fake_qemu(&qemu, &log, "9.9.9 (fake)");

    let first = boot_with(&qemu, &cache, &scratch.path().join("one"));
    assert_eq!(first.accel, ResolvedAccel::Tcg);
    let console = std::fs::read_to_string(&first.console_log).unwrap();
    assert!(console.contains("reboot: Power down"), "{console}");
    if !Path::new("/dev/kvm").exists() {
        assert_eq!(starts(&log), ["boot tcg"]);
        return;
    }
    assert_eq!(
        starts(&log),
        ["probe kvm", "boot kvm", "boot tcg"],
        "the hanging KVM boot was killed and the boot ran again under TCG"
    );
    let memory = std::fs::read_to_string(cache.join(ACCEL_MEMORY)).unwrap();
    assert!(memory.contains("9.9.9 (fake)"), "{memory}");
    assert!(memory.contains("no kernel output"), "{memory}");

    // Later boots of the process go straight to TCG.
    let second = boot_with(&qemu, &cache, &scratch.path().join("two"));
    assert_eq!(second.accel, ResolvedAccel::Tcg);
    assert_eq!(
        starts(&log),
        ["probe kvm", "boot kvm", "boot tcg", "boot tcg"]
    );

    // Another QEMU program of the same version on the same host (as a new
    // process would see it): the cache remembers, no probe, no trial.
    let same_version = scratch.path().join("qemu-b");
    let log_b = scratch.path().join("starts-b");
    fake_qemu(&same_version, &log_b, "9.9.9 (fake)");
    let options = VmOptions {
        accel: Accel::Auto,
        qemu: same_version.clone(),
        ..VmOptions::new(&cache)
    };
    assert!(
        matches!(Accel::status(&options), AccelStatus::Remembered { ref reason, .. } if reason.contains("no kernel output")),
        "{:?}",
        Accel::status(&options)
    );
    let third = boot_with(&same_version, &cache, &scratch.path().join("three"));
    assert_eq!(third.accel, ResolvedAccel::Tcg);
    assert_eq!(starts(&log_b), ["boot tcg"]);

    // A QEMU of another version is probed and tried again.
    let other_version = scratch.path().join("qemu-c");
    let log_c = scratch.path().join("starts-c");
    fake_qemu(&other_version, &log_c, "10.0.0 (fake)");
    let options = VmOptions {
        accel: Accel::Auto,
        qemu: other_version.clone(),
        ..VmOptions::new(&cache)
    };
    assert_eq!(Accel::status(&options), AccelStatus::OnTrial);
    // `Kvm` asked for explicitly is never watched nor replaced.
    assert_eq!(Accel::Kvm.resolve(&options), ResolvedAccel::Kvm);
}
