//! Booting real kernels: the raw facts harvest, and each way a boot can fail.

use std::time::Instant;

use tapmatrix_e2e::test_kernel;
use tapmatrix_vm::{Accel, VmOptions, harvest_raw};

fn options(cache: &std::path::Path) -> VmOptions {
    VmOptions {
        accel: Accel::Auto,
        cache_dir: cache.to_path_buf(),
        ..VmOptions::default()
    }
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
