//! Tapset directories in layers (a later directory shadows the earlier
//! ones, and the built-in library serves a later directory's embedded C),
//! and the context functions SystemTap writes in C and tapmatrix fetches.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use common::{fixture, run_for, run_with, tracefs_like};
use tapmatrix_elaborate::{Capabilities, Elaborated, FetchRequest};

/// A directory of tapset files, kept while the test runs.
fn tapset_dir(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    dir
}

/// The fetched values of each probe, as written.
fn fetch_texts(e: &Elaborated) -> Vec<Vec<String>> {
    e.sites
        .iter()
        .map(|site| {
            site.fetches
                .iter()
                .map(|f| match f {
                    FetchRequest::Value { text, .. } => format!("value {text}"),
                    FetchRequest::String { text, user, .. } => format!("string {user} {text}"),
                    FetchRequest::Defined { text, .. } => format!("defined {text}"),
                })
                .collect()
        })
        .collect()
}

#[test]
fn embedded_c_of_a_later_directory_is_served_by_a_script_function_before_it() {
    // The base plays tapmatrix's library; the test's own directory (last)
    // plays SystemTap's, whose `twice` is C and whose `greet` is script.
    let base = tapset_dir(&[(
        "impl.stp",
        "function twice:long (n:long) { return 2 * n }\nfunction greet:string () { return \"base\" }\n",
    )]);
    let upstream = "function twice:long (n:long) %{ STAP_RETVALUE = 2 * STAP_ARG_n; %}\nfunction greet:string () { return \"upstream\" }\nfunction half:long (n:long) %{ STAP_RETVALUE = STAP_ARG_n / 2; %}\n";
    let e = run_with(
        &[("upstream.stp", upstream)],
        &[base.path().to_owned()],
        "probe begin { println(twice(21)); println(greet()) }\n",
        &fixture("6.1"),
    )
    .unwrap();
    let names: Vec<&str> = e
        .program
        .functions
        .iter()
        .map(|f| f.name.as_str())
        .collect();
    assert_eq!(names, ["twice", "greet"]);
    let bodies = format!("{:?}", e.program.functions);
    assert!(
        bodies.contains("Mul"),
        "twice is the base's script: {bodies}"
    );
    assert!(
        bodies.contains("\"upstream\"") && !bodies.contains("\"base\""),
        "greet is the later directory's: {bodies}"
    );
    // C that nothing implements is still an error naming it and its file.
    let errors = run_with(
        &[("upstream.stp", upstream)],
        &[base.path().to_owned()],
        "probe begin { println(half(4)) }\n",
        &fixture("6.1"),
    )
    .unwrap_err();
    assert!(
        errors.iter().any(|e| e.contains(
            "function 'half' (defined at tapsets/upstream.stp:3:10) has a C body and tapmatrix has no implementation of it"
        ) && e.contains("at t.stp:1:23")),
        "{errors:?}"
    );
}

#[test]
fn a_later_directorys_script_built_on_c_gives_way_too() {
    // SystemTap's `task_utime()` is `return @const("current->utime")`, its
    // `tz_name()` a `%{ %}` expression: script functions tapmatrix cannot
    // run, served by the earlier layer's of the same name.
    let base = tapset_dir(&[(
        "impl.stp",
        "function utime:long () { return 7 }\nfunction zone:string () { return \"UTC\" }\n",
    )]);
    let upstream = "function utime:long () { return @const(\"current->utime\") }\nfunction zone:string () { return %{ /* string */ tz_name %} }\nfunction alone:long () { return @const(\"current->stime\") }\n";
    let e = run_with(
        &[("upstream.stp", upstream)],
        &[base.path().to_owned()],
        "probe begin { println(utime()); println(zone()) }\n",
        &fixture("6.1"),
    )
    .unwrap();
    let bodies = format!("{:?}", e.program.functions);
    assert!(
        bodies.contains("Long(7)") && bodies.contains("\"UTC\""),
        "{bodies}"
    );
    // With nothing to give way to, the C is an error at its place.
    let errors = run_with(
        &[("upstream.stp", upstream)],
        &[base.path().to_owned()],
        "probe begin { println(alone()) }\n",
        &fixture("6.1"),
    )
    .unwrap_err();
    assert!(
        errors.iter().any(|e| e
            .contains("'@const(\"current->stime\")' is C code, and tapmatrix runs no C")
            && e.contains("tapsets/upstream.stp:3:")),
        "{errors:?}"
    );
}

#[test]
fn const_names_fold_to_values_and_probewrite_sees_the_probes_own_writes() {
    // SystemTap's syscall aliases gate on `@const("__NR_...")` (a tapset
    // may use it; a script needs guru mode) and store an argument back only
    // where `@probewrite` says the handler wrote it.
    let upstream = "probe my.call = kernel.function(\"vfs_read\") {\n  count = 1\n  if (@probewrite(count)) never_called()\n  if (@probewrite(fd)) wrote_fd = 1\n}\nfunction consts:string () { return sprintf(\"%d %d %d %d\", @const(\"__NR_openat\"), @const(\"AF_INET6\"), @const(\"__NR_mmap2\"), @const(\"AT_FDCWD\")) }\nfunction unknown:long () { return @const(\"NO_SUCH_CONSTANT\") }\n";
    let e = run_with(
        &[("upstream.stp", upstream)],
        &[],
        "probe my.call { fd = 3; println(consts(), wrote_fd) }\n",
        &fixture("6.1"),
    )
    .unwrap();
    let code = format!("{:?} {:?}", e.program.probes[0].body, e.program.functions);
    for value in ["Long(257)", "Long(10)", "Long(-1)", "Long(-100)"] {
        assert!(code.contains(value), "{value} in {code}");
    }
    // `count` is written by the alias, not the probe: its branch (a call
    // to a function nothing defines) is folded away, unresolved; `fd` is
    // the probe's own.
    assert!(!code.contains("never_called"), "{code}");
    assert!(code.contains("Assign"), "{code}");
    let errors = run_with(
        &[("upstream.stp", upstream)],
        &[],
        "probe my.call { println(unknown()) }\n",
        &fixture("6.1"),
    )
    .unwrap_err();
    assert!(
        errors.iter().any(|e| e.contains(
            "'@const(\"NO_SUCH_CONSTANT\")': a C constant tapmatrix has no value for on x86_64"
        ) && e.contains("tapsets/upstream.stp:7:")),
        "{errors:?}"
    );
}

#[test]
fn a_later_directory_shadows_an_alias_of_the_same_name() {
    let base = tapset_dir(&[(
        "a.stp",
        "probe my.read = kernel.function(\"vfs_write\") { which = \"base\" }\n",
    )]);
    let e = run_with(
        &[(
            "a.stp",
            "probe my.read = kernel.function(\"vfs_read\") { which = \"over\" }\n",
        )],
        &[base.path().to_owned()],
        "probe my.read { println(which) }\n",
        &fixture("6.1"),
    )
    .unwrap();
    assert_eq!(e.sites.len(), 1);
    assert_eq!(e.sites[0].attach[0].target, "vfs_read");
}

#[test]
fn context_functions_are_fetched_at_the_hit() {
    let e = run_with(
        &[],
        &[],
        r#"probe kernel.function("vfs_read") {
  printf("%d %d %d %s\n", int_arg(3), uint_arg(3), pointer_arg(1), user_string_n(pointer_arg(2), 4))
}
probe kernel.function("vfs_read").return { println(returnval()) }
probe kernel.function("__x64_sys_openat") {
  __set_syscall_pt_regs(pointer_arg(1))
  asmlinkage()
  printf("%d %d %d\n", _stp_syscall_nr(), int_arg(1), pointer_arg(2))
}
"#,
        &fixture("6.1"),
    )
    .unwrap();
    assert_eq!(
        fetch_texts(&e),
        [
            vec![
                "value pointer_arg(3)",
                "value pointer_arg(1)",
                "string true pointer_arg(2)"
            ],
            vec!["value returnval()"],
            vec![
                "value _stp_syscall_nr()",
                "value the system call's argument 1",
                "value the system call's argument 2"
            ],
        ]
    );
    // The arguments are the function's parameters by position; after
    // __set_syscall_pt_regs, the system call's registers.
    let accesses: Vec<Vec<String>> = e
        .sites
        .iter()
        .map(|site| {
            site.targets[0]
                .iter()
                .map(|t| {
                    let t = t.as_ref().unwrap();
                    format!("{:?} {:?}", t.base, t.loads)
                })
                .collect()
        })
        .collect();
    assert!(
        accesses[0][0].contains("name: \"count\", index: 2"),
        "{accesses:?}"
    );
    assert!(accesses[1][0].starts_with("Return"), "{accesses:?}");
    assert!(accesses[2][0].contains("name: \"regs\""), "{accesses:?}");
    assert_ne!(accesses[2][1], accesses[2][2], "{accesses:?}");
    // int_arg keeps the low 32 bits sign-extended, uint_arg the low 32 bits.
    let body = format!("{:?}", e.program.probes[0].body);
    assert!(
        body.contains("Shl") && body.contains("4294967295"),
        "{body}"
    );
}

#[test]
fn context_functions_need_a_probe_on_an_event() {
    let errors = run_with(
        &[],
        &[],
        "function f() { return pointer_arg(1) }\nprobe kernel.function(\"vfs_read\") { println(f()) }\nprobe begin { println(returnval()) }\nprobe kernel.function(\"vfs_read\") { println(returnval() + int_arg(9)) }\n",
        &fixture("6.1"),
    )
    .unwrap_err();
    for (message, at) in [
        ("pointer_arg() in function 'f'", "1:23"),
        (
            "returnval() is only available in probes on kernel events",
            "3:23",
        ),
        ("returnval() is only available in return probes", "4:45"),
        (
            "int_arg(9): tapmatrix reads the arguments passed in registers, 1 to 6",
            "4:59",
        ),
    ] {
        assert!(
            errors
                .iter()
                .any(|e| e.contains(message) && e.contains(&format!("at t.stp:{at}"))),
            "'{message}' at {at}: {errors:?}"
        );
    }
}

#[test]
fn a_scripts_own_definition_wins_over_a_context_function() {
    let caps: Capabilities = tracefs_like();
    let e = run_for(
        &[],
        &[],
        "function returnval() { return 7 }\nprobe begin { println(returnval()) }\n",
        &fixture("6.1"),
        &caps,
    )
    .unwrap();
    assert_eq!(e.program.functions.len(), 1);
}

#[test]
fn a_tapset_files_probes_join_the_program_with_the_file() {
    // SystemTap pulls a tapset file in, probes and all, when the script
    // uses one of its globals or functions; `probe init` runs first.
    let tapsets = [
        (
            "args.stp",
            "global slots[4]\nglobal count = 2\nprobe init { slots[1] = \"one\" }\n",
        ),
        (
            "other.stp",
            "global unused\nfunction helper:long () { return 7 }\nprobe begin { unused = 1 }\n",
        ),
    ];
    let e = run_with(
        &tapsets,
        &[],
        "probe begin { println(slots[1], count) }\n",
        &fixture("6.1"),
    )
    .unwrap();
    let kinds: Vec<String> = e
        .program
        .probes
        .iter()
        .map(|p| format!("{:?}", p.kind))
        .collect();
    assert_eq!(
        kinds,
        [
            "Begin { seq: 0 }".to_owned(),
            format!("Begin {{ seq: {} }}", i64::MIN)
        ],
        "the script's begin, then args.stp's init (other.stp is not used)"
    );
    // A function of a file pulls it in too.
    let e = run_with(
        &tapsets,
        &[],
        "probe begin { println(helper()) }\n",
        &fixture("6.1"),
    )
    .unwrap();
    assert_eq!(e.program.probes.len(), 2);
    assert_eq!(e.program.globals.len(), 1, "other.stp's global `unused`");
    // A script that uses neither file gets neither's probes.
    let e = run_with(
        &tapsets,
        &[],
        "probe begin { println(1) }\n",
        &fixture("6.1"),
    )
    .unwrap();
    assert_eq!(e.program.probes.len(), 1);
}
