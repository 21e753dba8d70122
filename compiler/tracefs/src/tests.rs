//! The back end on the committed facts fixtures cut from real kernels.

use std::path::Path;

use tapmatrix_facts::KernelFacts;
use tapmatrix_resolve::{AttachKind, AttachPoint, resolve_target};
use tapmatrix_syntax::ast::{Target, TargetBase, TargetComponent};

use crate::*;

fn fixture(id: &str) -> KernelFacts {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../facts/fixtures/linux-{id}"));
    let config = dir.join("config");
    KernelFacts::from_raw(&dir, config.exists().then_some(config.as_path())).unwrap()
}

fn target(var: &str, members: &[&str]) -> Target {
    Target {
        address_of: false,
        base: TargetBase::Var(var.to_owned()),
        components: members
            .iter()
            .map(|m| TargetComponent::Member((*m).to_owned()))
            .collect(),
    }
}

fn arg(id: &str, kind: AttachKind, function: &str, t: &Target, read_as: ReadAs) -> String {
    let facts = fixture(id);
    let at = AttachPoint::new(kind, function);
    let access = resolve_target(&facts, &at, t).unwrap();
    let site = match kind {
        AttachKind::Kretprobe => Site::Return,
        AttachKind::Tracepoint => Site::EventFields,
        _ => Site::Entry,
    };
    fetch_arg(&access, read_as, site, facts.features.as_ref().unwrap()).unwrap()
}

#[test]
fn a_string_parameter_is_read_by_register_on_old_kernels_and_by_name_on_new() {
    let filename = target("$filename", &[]);
    let old = arg(
        "6.1",
        AttachKind::Kprobe,
        "do_sys_openat2",
        &filename,
        ReadAs::UserString,
    );
    assert_eq!(old, "+0(%si):ustring");
    let new = arg(
        "7.3",
        AttachKind::Kprobe,
        "do_sys_openat2",
        &filename,
        ReadAs::UserString,
    );
    assert_eq!(new, "+0(filename):ustring");
}

#[test]
fn a_member_chain_reads_each_pointer_then_the_string() {
    let name = target("$file", &["f_path", "dentry", "d_name", "name"]);
    let fetched = arg(
        "6.1",
        AttachKind::Kprobe,
        "vfs_read",
        &name,
        ReadAs::KernelString,
    );
    // file->f_path.dentry is a pointer read at file + offset; d_name.name
    // is a pointer read at dentry + offset; the string is where it points.
    let re = fetched.strip_prefix("+0(+").unwrap();
    assert!(re.ends_with("(%di))):string"), "{fetched}");
    let count = arg(
        "6.1",
        AttachKind::Kprobe,
        "vfs_read",
        &target("$count", &[]),
        ReadAs::Value,
    );
    assert_eq!(count, "%dx:u64");
}

#[test]
fn return_values_and_flags_carry_their_size_and_sign() {
    let ret = arg(
        "5.10",
        AttachKind::Kretprobe,
        "vfs_read",
        &target("$return", &[]),
        ReadAs::Value,
    );
    assert_eq!(ret, "$retval:s64");
    let flags = target("$file", &["f_flags"]);
    let fetched = arg(
        "5.10",
        AttachKind::Kprobe,
        "vfs_read",
        &flags,
        ReadAs::Value,
    );
    assert!(
        fetched.starts_with('+') && fetched.ends_with("(%di):u32"),
        "{fetched}"
    );
}

#[test]
fn what_tracefs_cannot_fetch_is_an_error_that_says_why() {
    let facts = fixture("6.1");
    let at = AttachPoint::new(AttachKind::Kprobe, "vfs_read");
    let access = resolve_target(&facts, &at, &target("$file", &["f_path"])).unwrap();
    let features = facts.features.as_ref().unwrap();
    let error = fetch_arg(&access, ReadAs::Value, Site::Entry, features).unwrap_err();
    assert!(error.to_string().contains("an address"), "{error}");
    let at = AttachPoint::new(AttachKind::Kretprobe, "vfs_read");
    let access = resolve_target(&facts, &at, &target("$count", &[])).unwrap();
    let error = fetch_arg(&access, ReadAs::Value, Site::Return, features).unwrap_err();
    assert!(
        error.to_string().contains("at a function's return"),
        "{error}"
    );
}

/// Elaborates and lowers `script` (no tapsets) for kernel `id`.
fn lowered(id: &str, script: &str) -> Result<tapmatrix_ir::Bundle, Vec<LowerError>> {
    lowered_with(id, script, FunctionEvents::Kprobes)
}

fn lowered_with(
    id: &str,
    script: &str,
    events: FunctionEvents,
) -> Result<tapmatrix_ir::Bundle, Vec<LowerError>> {
    let facts = fixture(id);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.stp");
    std::fs::write(&path, script).unwrap();
    let sources = tapmatrix_resolve::Sources {
        tapset_dirs: Vec::new(),
        script: Some(path),
        script_text: None,
    };
    let loaded = sources
        .load(tapmatrix_resolve::kernel_profile(&facts))
        .unwrap();
    let caps = crate::capabilities(&facts, "test");
    let elaborated = tapmatrix_elaborate::elaborate(&loaded, &facts, &caps).unwrap();
    lower(elaborated, &facts, events)
}

/// A dynamic event's definition line ("" for a tracepoint).
fn definition(event: &tapmatrix_ir::Event) -> &str {
    match &event.install {
        tapmatrix_ir::Install::Dynamic { definition, .. } => definition,
        tapmatrix_ir::Install::Tracepoint { .. } => "",
    }
}

#[test]
fn function_probes_are_kprobes_by_register_before_fprobes_by_name() {
    let script = "probe kernel.function(\"do_sys_openat2\") { if (tid() != target()) next; printf(\"%s %s\\n\", user_string($filename), execname()) }";
    let old = lowered("6.1", script).unwrap();
    let event = &old.events[0];
    assert_eq!(
        definition(event),
        "p:tapmatrix/e0 do_sys_openat2 f0=+0(%si):ustring f1=$comm:string"
    );
    assert_eq!(event.comm, Some(1));
    assert_eq!(event.filter.as_deref(), Some("common_pid == ${target}"));
    let new = lowered("7.3", script).unwrap();
    assert!(
        definition(&new.events[0])
            .starts_with("p:tapmatrix/e0 do_sys_openat2 f0=+0(filename):ustring ")
    );
    let fprobes = lowered_with("7.3", script, FunctionEvents::Fprobes).unwrap();
    assert!(definition(&fprobes.events[0]).starts_with("f:tapmatrix/e0 do_sys_openat2 f0="));
    let old = lowered_with("6.1", script, FunctionEvents::Fprobes).unwrap();
    assert!(definition(&old.events[0]).starts_with("p:"));
}

#[test]
fn a_pointer_field_needs_an_eprobe_where_the_kernel_has_them() {
    let script =
        "probe kernel.trace(\"syscalls:sys_enter_openat\") { println(user_string($filename)) }";
    let bundle = lowered("6.1", script).unwrap();
    assert_eq!(
        definition(&bundle.events[0]),
        "e:tapmatrix/e0 syscalls.sys_enter_openat f0=+0($filename):ustring"
    );
    let errors = lowered("5.10", script).unwrap_err();
    assert!(
        errors[0].message.contains("event probes (e:)"),
        "{errors:?}"
    );
}

#[test]
fn a_tracepoint_shared_by_two_probes_is_not_filtered_for_one() {
    let script = "probe kernel.trace(\"sched:sched_process_exec\") { if (tid() != 1) next; println($pid) }\n\
                  probe kernel.trace(\"sched:sched_process_exec\") { if (tid() != 2) next; println($old_pid) }";
    let bundle = lowered("6.1", script).unwrap();
    assert_eq!(bundle.events.len(), 2);
    assert!(
        bundle.events.iter().all(|e| e.filter.is_none()),
        "{:?}",
        bundle.events
    );
    let one = lowered(
        "6.1",
        "probe kernel.trace(\"sched:sched_process_exec\") { if (tid() != 1) next; println($pid) }",
    )
    .unwrap();
    assert_eq!(one.events[0].filter.as_deref(), Some("common_pid == 1"));
    assert_eq!(one.events[0].slots[0].field, "pid");
}

#[test]
fn defined_is_decided_per_attach_point() {
    let script = "probe kernel.function(\"vfs_read\"), kernel.function(\"do_sys_openat2\") { println(@defined($count) ? 1 : 0) }";
    let bundle = lowered("6.1", script).unwrap();
    // vfs_read has $count, do_sys_openat2 has not: two copies of the probe.
    assert_eq!(bundle.program.probes.len(), 2);
    assert!(bundle.events.iter().all(|e| e.slots.is_empty()));
}

#[test]
fn maxactive_sizes_a_kretprobe_and_the_default_is_64() {
    // `.maxactive(N)` is the kretprobe's `rN:`; without one (or with 0,
    // which the kernel refuses as `r0:`) the default pool of 64.
    for (point, prefix) in [
        (
            "vfs_read\").return.maxactive(4)",
            "r4:tapmatrix/e0 vfs_read",
        ),
        (
            "vfs_read\").return.maxactive(0)",
            "r64:tapmatrix/e0 vfs_read",
        ),
        ("vfs_read\").return", "r64:tapmatrix/e0 vfs_read"),
    ] {
        let script = format!("global n\nprobe kernel.function(\"{point} {{ n++ }}\n");
        let bundle = lowered("6.1", &script).unwrap();
        let line = definition(&bundle.events[0]);
        assert_eq!(line, prefix, "{point}");
    }
}
