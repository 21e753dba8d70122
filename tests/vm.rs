//! Booting real kernels: the raw facts harvest, and each way a boot can fail.
#![allow(
    clippy::unwrap_used,
    reason = "test helpers: a failure here is the test failing"
)]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use tapmatrix_e2e::test_kernel;
use tapmatrix_vm::{BootError, BootSpec, ExtraFile, Initramfs, VmOptions, boot, harvest_raw};
use tapmatrix_wire::{Harvest, Job};

fn options(cache: &std::path::Path) -> VmOptions {
    VmOptions::new(cache)
}

#[test]
fn harvest_of_a_real_6_1_kernel_has_real_content() {
    let kernel = test_kernel();
    let scratch = tempfile::tempdir().unwrap();
    let out = scratch.path().join("facts");
    let started = Instant::now();
    let report = harvest_raw(&kernel, &out, &options(scratch.path())).unwrap();
    eprintln!("harvest: {report:?} in {:?}", started.elapsed());
    assert!(report.release.starts_with("6.1.0-"), "{}", report.release);
    let read = |name: &str| {
        std::fs::read(out.join(name)).unwrap_or_else(|error| panic!("{name}: {error}"))
    };
    let readme = String::from_utf8(read("tracing/README")).unwrap();
    assert!(
        readme.contains("kprobe_events"),
        "README mentions kprobe_events"
    );
    let functions = String::from_utf8(read("tracing/available_filter_functions")).unwrap();
    assert!(functions.lines().any(|line| line == "vfs_read"));
    let format = String::from_utf8(read("tracing/events/sched/sched_switch/format")).unwrap();
    assert!(format.contains("field:pid_t prev_pid"), "{format}");
    let btf = read("btf_vmlinux");
    assert_eq!(&btf[..2], &[0x9f, 0xeb], "BTF magic 0xeB9F, little-endian");
    let kallsyms = String::from_utf8(read("kallsyms")).unwrap();
    assert!(kallsyms.lines().any(|line| line.ends_with(" T vfs_read")));
    assert!(
        kallsyms
            .lines()
            .all(|line| matches!(line.split(' ').nth(1), Some("t" | "T" | "w" | "W")))
    );
    assert!(
        String::from_utf8(read("proc_version"))
            .unwrap()
            .starts_with("Linux version 6.1.0")
    );
    assert!(!read("kprobes_blacklist").is_empty());
    let manifest: tapmatrix_vm::Manifest = serde_json::from_slice(&read("manifest.json")).unwrap();
    assert_eq!(manifest.files["btf_vmlinux"].size, Some(btf.len() as u64));
    assert!(manifest.files.len() > 1000, "every event format is listed");
}

/// What the host reads from the kernel image instead of the guest
/// (`tapmatrix_vm::ImageFiles`: kallsyms decoded from the image's symbol
/// table, the `.BTF` section) is what the guest itself sends: a harvest
/// with everything read in the guest, compared file by file.
#[test]
fn the_image_gives_the_guests_kallsyms_and_btf() {
    let kernel = test_kernel();
    let scratch = tempfile::tempdir().unwrap();
    let options = options(scratch.path());
    let image = Initramfs::with_job(Job::Harvest(Harvest::default()))
        .build(&options.cache_dir)
        .unwrap();
    let spec = BootSpec::new(&kernel, &image, &scratch.path().join("boot"), &options);
    let mut guest = std::collections::BTreeMap::new();
    let mut keep = |record: tapmatrix_wire::Record| {
        if record.name == "kallsyms" || record.name == "btf_vmlinux" {
            guest.insert(record.name, record.payload);
        }
        Ok(())
    };
    tapmatrix_vm::boot_streaming(&spec, &mut keep).unwrap();
    let host = tapmatrix_vm::ImageFiles::read(&spec.kernel);
    let btf = host.btf.expect("the image has a .BTF section");
    assert!(
        btf == guest["btf_vmlinux"],
        "the .BTF section is /sys/kernel/btf/vmlinux"
    );
    // Type and name of each line, in order (the host's addresses are 0).
    let symbols = |text: &[u8]| -> Vec<String> {
        String::from_utf8_lossy(text)
            .lines()
            .map(|line| {
                line.split_once(' ')
                    .map_or(line, |(_, rest)| rest)
                    .to_owned()
            })
            .collect()
    };
    let from_image = symbols(&host.kallsyms.expect("the image's symbol table decodes"));
    let from_guest = symbols(&guest["kallsyms"]);
    assert!(
        from_guest.len() > 40_000,
        "{} text symbols",
        from_guest.len()
    );
    assert!(
        from_image == from_guest,
        "{} lines from the image, {} from the guest",
        from_image.len(),
        from_guest.len()
    );
}

/// A boot of the test kernel with `image`, extra kernel arguments and a timeout.
fn boot_with(
    image: &Initramfs,
    append: &[&str],
    timeout: Duration,
    scratch: &Path,
) -> Result<tapmatrix_vm::BootOutcome, BootError> {
    let options = VmOptions {
        timeout,
        ..options(scratch)
    };
    let image = image.build(&options.cache_dir).unwrap();
    let mut spec = BootSpec::new(&test_kernel(), &image, &scratch.join("boot"), &options);
    spec.append
        .extend(append.iter().map(|arg| (*arg).to_owned()));
    boot(&spec)
}

/// Processes whose command line mentions `needle`.
fn processes_mentioning(needle: &str) -> Vec<String> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|entry| std::fs::read(entry.path().join("cmdline")).ok())
        .map(|cmdline| String::from_utf8_lossy(&cmdline).replace('\0', " "))
        .filter(|cmdline| cmdline.contains(needle))
        .collect()
}

#[test]
fn a_kernel_panic_is_an_infra_error_quoting_the_panic() {
    let scratch = tempfile::tempdir().unwrap();
    let error = boot_with(
        &Initramfs::with_job(Job::Harvest(Harvest::default())),
        &["rdinit=/nonexistent"],
        Duration::from_secs(180),
        scratch.path(),
    )
    .unwrap_err();
    let BootError::KernelPanic { line, console_log } = &error else {
        panic!("expected a kernel panic, got {error}");
    };
    assert!(line.contains("Kernel panic - not syncing"), "{line}");
    assert!(console_log.is_file(), "the console log is kept");
    assert!(
        error.to_string().contains("kernel panic: Kernel panic"),
        "{error}"
    );
}

#[test]
fn a_guest_that_never_powers_off_times_out_and_leaves_no_qemu() {
    let scratch = tempfile::tempdir().unwrap();
    let hang = hanging_image();
    let started = Instant::now();
    let error = boot_with(
        &hang,
        &["rdinit=/hang"],
        Duration::from_secs(25),
        scratch.path(),
    )
    .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "the timeout was honoured"
    );
    let BootError::Timeout { console_log, .. } = &error else {
        panic!("expected a timeout, got {error}");
    };
    assert!(console_log.is_file(), "the console log is kept");
    assert!(error.to_string().contains("timed out after 25s"), "{error}");
    let marker = scratch.path().to_string_lossy().into_owned();
    assert_eq!(
        processes_mentioning(&marker),
        Vec::<String>::new(),
        "no QEMU left behind"
    );
}

#[test]
fn a_guest_that_stops_without_the_agents_done_record_is_an_early_exit() {
    let scratch = tempfile::tempdir().unwrap();
    let error = boot_with(
        &Initramfs::with_job(Job::Harvest(Harvest::default())),
        &["rdinit=/sbin/poweroff", "--", "-f"],
        Duration::from_secs(180),
        scratch.path(),
    )
    .unwrap_err();
    assert!(matches!(error, BootError::EarlyExit { .. }), "{error}");
    assert!(
        error.to_string().contains("before the agent finished"),
        "{error}"
    );
}

/// The variable that turns [`child_boot_without_qemu`] on, holding the kernel path.
const CHILD_KERNEL: &str = "TAPMATRIX_TEST_CHILD_KERNEL";

#[test]
fn a_missing_qemu_names_the_package_to_install() {
    let output = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_boot_without_qemu",
            "--ignored",
            "--nocapture",
        ])
        .env("PATH", "/nonexistent")
        // Nor tapmatrix's private copy (`tapmatrix doctor --install`).
        .env("XDG_DATA_HOME", "/nonexistent")
        .env_remove("TAPMATRIX_QEMU")
        .env(CHILD_KERNEL, test_kernel())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(
        stdout.contains("error: could not start qemu-system-x86_64"),
        "{stdout}"
    );
    assert!(
        stdout.contains("install the Debian package qemu-system-x86"),
        "{stdout}"
    );
}

#[test]
#[ignore = "run by a_missing_qemu_names_the_package_to_install, with PATH emptied"]
fn child_boot_without_qemu() {
    let kernel = std::env::var_os(CHILD_KERNEL).expect("run by its parent test");
    let scratch = tempfile::tempdir().unwrap();
    let error = harvest_raw(
        Path::new(&kernel),
        &scratch.path().join("out"),
        &options(scratch.path()),
    )
    .unwrap_err();
    println!("error: {error}");
}

/// The variable that turns [`child_boot_that_hangs`] on, holding its scratch directory.
const CHILD_SCRATCH: &str = "TAPMATRIX_TEST_CHILD_SCRATCH";

/// An image whose init never powers off.
fn hanging_image() -> Initramfs {
    Initramfs {
        job: None,
        extra: vec![ExtraFile {
            path: "/hang".into(),
            data: b"#!/bin/sh\nwhile :; do sleep 1; done\n".to_vec(),
            mode: 0o755,
        }],
    }
}

#[test]
fn interrupting_tapmatrix_leaves_no_qemu() {
    let scratch = tempfile::tempdir().unwrap();
    let marker = scratch.path().to_string_lossy().into_owned();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_boot_that_hangs", "--ignored"])
        .env(CHILD_SCRATCH, scratch.path())
        .env("TAPMATRIX_TEST_KERNEL_PATH", test_kernel())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while processes_mentioning(&marker).is_empty() {
        assert!(Instant::now() < deadline, "QEMU never started");
        std::thread::sleep(Duration::from_millis(100));
    }
    // What Ctrl-C does to tapmatrix (the terminal would also signal QEMU,
    // which shares the process group; here only tapmatrix gets it).
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    child.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !processes_mentioning(&marker).is_empty() {
        assert!(Instant::now() < deadline, "QEMU outlived tapmatrix");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
#[ignore = "run by interrupting_tapmatrix_leaves_no_qemu, which interrupts it"]
fn child_boot_that_hangs() {
    let scratch = std::env::var_os(CHILD_SCRATCH).expect("run by its parent test");
    let kernel = std::env::var_os("TAPMATRIX_TEST_KERNEL_PATH").expect("run by its parent test");
    let options = VmOptions {
        timeout: Duration::from_secs(600),
        ..options(Path::new(&scratch))
    };
    let image = hanging_image().build(&options.cache_dir).unwrap();
    let mut spec = BootSpec::new(
        Path::new(&kernel),
        &image,
        &Path::new(&scratch).join("boot"),
        &options,
    );
    spec.append.push("rdinit=/hang".to_owned());
    let _ = boot(&spec);
}
