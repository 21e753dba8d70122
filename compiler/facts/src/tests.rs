//! Tests over fixtures cut from real 5.10, 6.1, 6.12 and 7.3 harvests
//! (`fixtures/regenerate.sh`; their BTF is a subset), and over a full raw
//! harvest when `TAPMATRIX_FACTS_RAW` names one.

use std::path::{Path, PathBuf};

use super::*;
use crate::btf::Kind;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

fn facts(name: &str) -> KernelFacts {
    let dir = fixture(name);
    KernelFacts::from_raw(&dir, Some(&dir.join("config"))).unwrap()
}

#[test]
fn parses_the_6_1_fixture() {
    let facts = facts("linux-6.1");
    assert_eq!(facts.release.as_deref(), Some("6.1.0-50-amd64"));
    assert!(
        facts
            .proc_version
            .as_deref()
            .unwrap()
            .starts_with("Linux version 6.1.0-50-amd64")
    );
    let functions = facts.functions.as_ref().unwrap();
    assert!(functions.contains("vfs_read"));
    assert!(
        !functions
            .names
            .iter()
            .any(|n| n.starts_with("__ftrace_invalid"))
    );
    assert!(facts.is_attachable("vfs_read"));
    assert_eq!(
        facts.function_presence("do_int3"),
        FunctionPresence::Blacklisted
    );
    assert_eq!(
        facts.function_presence("topa_alloc"),
        FunctionPresence::Clones(vec!["topa_alloc.constprop.0"])
    );
    assert_eq!(
        facts.function_presence("verify_cpu"),
        FunctionPresence::SymbolOnly
    );
    assert_eq!(
        facts.function_presence("no_such_function"),
        FunctionPresence::Absent
    );

    let switch = facts.tracepoint("sched", "sched_switch").unwrap();
    let next_pid = switch.field("next_pid").unwrap();
    assert_eq!(
        (
            next_pid.c_type.as_str(),
            next_pid.offset,
            next_pid.size,
            next_pid.signed
        ),
        ("pid_t", 56, 4, true)
    );
    assert_eq!(switch.field("prev_comm").unwrap().c_type, "char[16]");
    let common: Vec<_> = facts
        .common_fields
        .as_ref()
        .unwrap()
        .iter()
        .map(|f| f.name.as_str())
        .collect();
    assert_eq!(
        common,
        [
            "common_type",
            "common_flags",
            "common_preempt_count",
            "common_pid"
        ]
    );
    assert_eq!(facts.tracepoints_named("sched_switch").count(), 1);

    let openat = facts.syscall("openat").unwrap();
    let args: Vec<_> = openat
        .args
        .iter()
        .map(|a| (a.c_type.as_str(), a.name.as_str()))
        .collect();
    assert_eq!(
        args,
        [
            ("int", "dfd"),
            ("const char *", "filename"),
            ("int", "flags"),
            ("umode_t", "mode")
        ]
    );
    assert!(openat.has_exit);
    assert!(facts.syscall("cachestat").is_none());

    let features = facts.features.as_ref().unwrap();
    assert!(features.kprobe_events && features.arg_n && features.eprobe && features.symstr);
    assert!(!features.fprobe && !features.tprobe && !features.btf_args);
    let config = facts.config.as_ref().unwrap();
    assert!(config.is_enabled("KPROBES") && config.is_enabled("DEBUG_INFO_BTF"));
    let btf_len = std::fs::metadata(fixture("linux-6.1").join("btf_vmlinux"))
        .unwrap()
        .len();
    assert_eq!(facts.btf_size, Some(btf_len));
}

#[test]
fn features_differ_between_6_1_and_6_12() {
    let new = facts("linux-6.12");
    let features = new.features.as_ref().unwrap();
    assert!(features.fprobe && features.tprobe && features.btf_args && features.dentry_type);
    assert!(new.config.as_ref().unwrap().is_enabled("FPROBE_EVENTS"));
    let summary = FactsSummary::of(&new);
    assert!(
        summary
            .probe_syntax
            .as_ref()
            .unwrap()
            .contains(&"fprobe (f:)")
    );
    let types = new.btf.as_ref().unwrap().type_count();
    assert_eq!(summary.btf_types, Some(types));
    let text = summary.to_string();
    assert!(
        text.contains("release:              6.12.117+deb13-amd64"),
        "{text}"
    );
    assert!(
        text.contains(&format!("BTF types:            {types}\n")),
        "{text}"
    );
}

#[test]
fn the_5_10_fixture_lacks_later_syntax() {
    let old = facts("linux-5.10");
    assert_eq!(old.release.as_deref(), Some("5.10.0-32-amd64"));
    let features = old.features.as_ref().unwrap();
    assert!(features.kprobe_events && features.arg_n && features.return_suffix);
    assert!(!features.eprobe && !features.symstr && !features.hist_triggers && !features.synthetic);
    assert!(!features.fprobe && !features.btf_args);
    assert!(!old.config.as_ref().unwrap().is_enabled("HIST_TRIGGERS"));
    // The blacklist has the same `0xSTART-0xEND\tname` lines as 6.x.
    assert!(
        old.blacklist
            .as_ref()
            .unwrap()
            .contains("asm_exc_divide_error")
    );
    assert!(old.syscall("openat").unwrap().has_exit);
}

#[test]
fn diff_5_10_to_6_12() {
    let diff = FactsDiff::between(&facts("linux-5.10"), &facts("linux-6.12"));
    assert!(diff.syscalls.added.contains(&"cachestat".to_owned()));
    assert!(!diff.functions.added.is_empty() && !diff.functions.removed.is_empty());
    let json = serde_json::to_value(&diff).unwrap();
    assert_eq!(json["from"], "5.10.0-32-amd64");
    assert!(
        json["syscalls"]["added"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s == "cachestat")
    );
}

#[test]
fn diff_shows_real_differences() {
    let diff = FactsDiff::between(&facts("linux-6.1"), &facts("linux-6.12"));
    assert!(diff.syscalls.added.contains(&"cachestat".to_owned()));
    assert!(
        diff.tracepoints
            .added
            .contains(&"syscalls:sys_enter_cachestat".to_owned())
    );
    assert!(
        diff.tracepoints
            .removed
            .contains(&"io_uring:io_uring_submit_sqe".to_owned())
    );
    // char fields report signed:0 from 6.x on (is_signed_type fix).
    let switch = diff
        .tracepoint_fields
        .iter()
        .find(|change| change.tracepoint == "sched:sched_switch")
        .unwrap();
    assert!(switch.changes.iter().any(|change| matches!(
        change,
        FieldChange::Changed { from, to } if from.name == "prev_comm" && from.signed && !to.signed
    )));
    assert!(!diff.is_empty());
    let text = diff.render(Some(2));
    assert!(
        text.starts_with("6.1.0-50-amd64 -> 6.12.117+deb13-amd64\n"),
        "{text}"
    );
    assert!(text.contains("... and "), "{text}");
    assert!(FactsDiff::between(&facts("linux-6.1"), &facts("linux-6.1")).is_empty());
}

#[test]
fn save_load_round_trip_and_stale_version() {
    let facts = facts("linux-6.1");
    let dir = tempfile::tempdir().unwrap();
    assert!(!facts.is_saved_in(dir.path()));
    facts.save(dir.path()).unwrap();
    assert!(facts.is_saved_in(dir.path()));
    assert!(!self::facts("linux-7.3").is_saved_in(dir.path()));
    let loaded = KernelFacts::load(dir.path()).unwrap();
    assert_eq!(loaded.functions, facts.functions);
    assert_eq!(loaded.tracepoints, facts.tracepoints);
    assert_eq!(loaded.kallsyms, facts.kallsyms);
    assert_eq!(loaded.config, facts.config);
    assert_eq!(loaded.features, facts.features);

    let path = dir.path().join(FACTS_FILE);
    let json = std::fs::read_to_string(&path).unwrap();
    let old = json.replacen(
        &format!("\"format_version\":{FORMAT_VERSION}"),
        "\"format_version\":0",
        1,
    );
    assert_ne!(old, json);
    std::fs::write(&path, old).unwrap();
    let error = KernelFacts::load(dir.path()).unwrap_err();
    assert!(
        matches!(error, FactsError::Stale { found: 0, .. }),
        "{error}"
    );
    assert!(error.to_string().contains("re-harvest"), "{error}");
}

#[test]
fn absent_files_are_none() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("uname_release"), "5.10.0-99-amd64\n").unwrap();
    let facts = KernelFacts::from_raw(dir.path(), None).unwrap();
    assert_eq!(facts.release.as_deref(), Some("5.10.0-99-amd64"));
    assert!(facts.functions.is_none() && facts.tracepoints.is_none() && facts.syscalls.is_none());
    assert!(facts.kallsyms.is_none() && facts.features.is_none() && facts.btf.is_none());
    assert_eq!(
        facts.function_presence("vfs_read"),
        FunctionPresence::Unknown
    );
    let summary = FactsSummary::of(&facts).to_string();
    assert!(
        summary.contains("BTF types:            absent"),
        "{summary}"
    );
}

#[test]
fn errors_name_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("kallsyms"),
        "ffffffff81000000 T ok\nnot-hex T bad\n",
    )
    .unwrap();
    let error = KernelFacts::from_raw(dir.path(), None)
        .unwrap_err()
        .to_string();
    assert!(
        error.ends_with(
            "kallsyms:2: expected `address type name [module]`, found \"not-hex T bad\""
        ),
        "{error}"
    );
    let missing = dir.path().join("no-config");
    let error = KernelFacts::from_raw(dir.path(), Some(&missing)).unwrap_err();
    assert!(matches!(
        error,
        FactsError::Parse { .. } | FactsError::Io { .. }
    ));
}

#[test]
fn btf_saved_and_loaded_with_facts() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("btf_vmlinux"), btf::tests::sample()).unwrap();
    let facts = KernelFacts::from_raw(dir.path(), None).unwrap();
    let out = dir.path().join("saved");
    facts.save(&out).unwrap();
    let loaded = KernelFacts::load(&out).unwrap();
    let btf = loaded.btf.as_ref().unwrap();
    assert_eq!(btf.type_count(), 13);
    assert!(btf.function("vfs_read").is_some());
    std::fs::write(out.join(BTF_FILE), b"short").unwrap();
    assert!(matches!(
        KernelFacts::load(&out).unwrap_err(),
        FactsError::Btf { .. }
    ));
}

/// What probe resolution asks of a kernel's BTF, on a whole blob or a
/// fixture's subset: `vfs_read`'s prototype, `task_struct` members (one a
/// bitfield) and `sched_switch`'s arguments.
fn assert_probe_types(btf: &Btf) {
    let read = btf.function("vfs_read").unwrap().unwrap();
    let params: Vec<_> = read
        .proto
        .params()
        .map(|p| {
            let p = p.unwrap();
            (p.name, btf.render(p.ty).unwrap())
        })
        .collect();
    assert_eq!(params[0], ("file", "struct file *".to_owned()));
    assert_eq!(params[1], ("buf", "char *".to_owned()));
    assert_eq!(btf.render(read.proto.ret).unwrap(), "ssize_t");
    assert_eq!(
        btf.render_function("vfs_read").unwrap().unwrap(),
        "ssize_t vfs_read(struct file *file, char *buf, size_t count, loff_t *pos)"
    );
    let task = btf.find(Kind::Struct, "task_struct").unwrap();
    let pid = btf.member(task, "pid").unwrap().unwrap();
    assert_eq!(btf.render(pid.ty).unwrap(), "pid_t");
    assert_eq!(pid.bit_offset % 8, 0);
    let int = btf.resolve(pid.ty).unwrap();
    assert!(matches!(btf.get(int).unwrap(), btf::Type::Int(i) if i.signed && i.size == 4));
    // A bitfield: task_struct's sched_reset_on_fork.
    let bits = btf.member(task, "sched_reset_on_fork").unwrap().unwrap();
    assert_eq!(bits.bitfield_size, Some(1));
    let args: Vec<_> = btf
        .tracepoint_args("sched_switch")
        .unwrap()
        .unwrap()
        .iter()
        .map(|p| (p.name, btf.render(p.ty).unwrap()))
        .collect();
    assert_eq!(args[1].1, "struct task_struct *");
    // 5.10's BTF lacks the per-event functions: types only, no names.
    if btf.function("__bpf_trace_sched_switch").is_some() {
        assert_eq!(args[0], ("preempt", "bool".to_owned()));
        assert_eq!(args[1].0, "prev");
    } else {
        assert_eq!(args[1].0, "");
    }
}

/// The fixtures' BTF subsets answer what probe resolution asks, on old
/// and new kernels alike, and are small.
#[test]
fn fixture_btf_subsets_answer_probe_questions() {
    // 5.10's BTF has no parameter names for tracepoints; 7.3's `file`
    // has `union { const struct path f_path; struct path __f_path; }`.
    for (name, named_tracepoint_args, f_path_type) in [
        ("linux-5.10", false, "struct path"),
        ("linux-6.1", true, "struct path"),
        ("linux-6.12", true, "struct path"),
        ("linux-7.3", true, "const struct path"),
    ] {
        let facts = facts(name);
        let btf = facts.btf.as_ref().unwrap();
        assert!(
            btf.bytes().len() < 300_000,
            "{name}: {} bytes",
            btf.bytes().len()
        );
        assert_probe_types(btf);
        // $file->f_path->dentry->d_name->name
        let file = btf.find(Kind::Struct, "file").unwrap();
        let f_path = btf.member(file, "f_path").unwrap().unwrap();
        assert_eq!(btf.render(f_path.ty).unwrap(), f_path_type, "{name}");
        let dentry = btf.member(f_path.ty, "dentry").unwrap().unwrap();
        assert_eq!(btf.render(dentry.ty).unwrap(), "struct dentry *");
        let btf::Type::Ptr(dentry) = btf.get(dentry.ty).unwrap() else {
            panic!("{name}: path.dentry is not a pointer");
        };
        let d_name = btf.member(dentry, "d_name").unwrap().unwrap();
        let qstr_name = btf.member(d_name.ty, "name").unwrap().unwrap();
        assert_eq!(btf.render(qstr_name.ty).unwrap(), "const unsigned char *");
        let args = |event: &str| -> Vec<(String, String)> {
            let params = btf.tracepoint_args(event).unwrap().unwrap();
            params
                .iter()
                .map(|p| (p.name.to_owned(), btf.render(p.ty).unwrap()))
                .collect()
        };
        let named = |name: &str| {
            if named_tracepoint_args {
                name.to_owned()
            } else {
                String::new()
            }
        };
        assert_eq!(
            args("sys_enter"),
            [
                (named("regs"), "struct pt_regs *".to_owned()),
                (named("id"), "long int".to_owned())
            ],
            "{name}"
        );
        assert_eq!(
            args("sched_process_fork"),
            [
                (named("parent"), "struct task_struct *".to_owned()),
                (named("child"), "struct task_struct *".to_owned())
            ],
            "{name}"
        );
        // Structs two pointers from every root are forward declarations.
        let forward = (1..=btf.type_count() as u32)
            .filter(|&id| btf.kind(id).unwrap() == Kind::Fwd)
            .count();
        assert!(forward > 100, "{name}: {forward} FWDs");
        btf::tests::walk(btf);
    }
}

/// Runs against a full raw harvest (`TAPMATRIX_FACTS_RAW=/path/to/raw`,
/// an x86-64 kernel); skipped when unset.
#[test]
fn full_harvest_btf() {
    let Some(raw) = std::env::var_os("TAPMATRIX_FACTS_RAW") else {
        eprintln!("TAPMATRIX_FACTS_RAW unset: skipping the full-harvest test");
        return;
    };
    let facts = KernelFacts::from_raw(Path::new(&raw), None).unwrap();
    let btf = facts.btf.as_ref().unwrap();
    assert!(btf.type_count() > 50_000);
    assert_probe_types(btf);
    assert!(btf.tracepoint_args("no_such_event").is_none());
    for id in 1..=btf.type_count() as u32 {
        btf.render(id).unwrap();
    }
    // Corrupting the real blob gives errors, never a panic.
    let good = btf.bytes().to_vec();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..40 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let mut bytes = good.clone();
        for k in 0..64 {
            let at = (seed.rotate_left(k) as usize) % bytes.len();
            bytes[at] = (seed >> (k % 56)) as u8;
        }
        if let Ok(corrupt) = Btf::parse(bytes) {
            btf::tests::walk(&corrupt);
        }
    }
}

/// Two kernels with `vfs_read` in BTF: the second renames a parameter, or
/// changes its type.
#[test]
fn prototype_changes_tell_renames_from_retypes() {
    let kernel = |param: &str, ty: u32| {
        let mut b = btf::tests::Builder::new();
        b.ty("int", 1, 0, false, 4, &[(1 << 24) | 32]); // 1
        b.ty("long", 1, 0, false, 8, &[(1 << 24) | 64]); // 2
        let name = b.str(param);
        b.ty("", 13, 1, false, 1, &[name, ty]); // 3
        b.ty("vfs_read", 12, 1, false, 3, &[]); // 4
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("btf_vmlinux"), b.build()).unwrap();
        std::fs::create_dir(dir.path().join("tracing")).unwrap();
        std::fs::write(
            dir.path().join("tracing/available_filter_functions"),
            "vfs_read\n",
        )
        .unwrap();
        KernelFacts::from_raw(dir.path(), None).unwrap()
    };
    let base = kernel("count", 1);
    let renamed = FactsDiff::between(&base, &kernel("len", 1));
    assert_eq!(renamed.prototypes.len(), 1);
    assert!(renamed.prototypes[0].renamed_only);
    assert_eq!(renamed.prototypes[0].from, "int vfs_read(int count)");
    assert_eq!(renamed.prototypes[0].to, "int vfs_read(int len)");
    let retyped = FactsDiff::between(&base, &kernel("count", 2));
    assert!(!retyped.prototypes[0].renamed_only);
    assert!(
        retyped
            .render(None)
            .contains("1 functions (0 only renamed parameters)")
    );
    assert!(FactsDiff::between(&base, &kernel("count", 1)).is_empty());
}
