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
