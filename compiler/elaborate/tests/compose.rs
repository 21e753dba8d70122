//! Alias composition: which derived probes a probe makes, the order alias
//! bodies run in, probe point conditions, shared locals.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;
use common::*;
use tapmatrix_elaborate::Capabilities;
use tapmatrix_ir::{Expr, ProbeKind, ScalarType, Stmt, UnaryOp};
use tapmatrix_resolve::AttachKind;

const ORDER_TAPSET: &str = r#"
probe inner = kernel.function("vfs_read") { trail = trail . "I" }
probe outer = inner { trail = trail . "O" }
probe after += kernel.function("vfs_write") { trail = trail . "E" }
probe nested_after += after { trail = trail . "F" }
probe both = kernel.function("vfs_read") { trail = trail . "P" }, { trail = trail . "Q" }
probe guarded = kernel.function("vfs_read") if (enabled) { trail = "G" }
global enabled = 1
"#;

fn composed(script: &str) -> tapmatrix_elaborate::Elaborated {
    run_with(&[("order.stp", ORDER_TAPSET)], &[], script, &fixture("6.1")).unwrap()
}

#[test]
fn prologues_run_innermost_first_before_the_handler() {
    let e = composed("probe outer { trail = trail . \"U\"; println(trail) }\n");
    assert_eq!(e.program.probes.len(), 1);
    assert_eq!(
        strings_in(&e.program.probes[0].body),
        ["I", "O", "U"],
        "{:#?}",
        e.program.probes[0].body
    );
    assert_eq!(e.sites[0].attach[0].target, "vfs_read");
    // `trail` is one local shared by the alias bodies and the handler.
    assert_eq!(e.program.probes[0].locals.len(), 1);
}

#[test]
fn epilogues_run_after_the_handler_innermost_last() {
    // SystemTap derives `nested_after` into U;F at `after`, then `after`
    // into (U;F);E.
    let e = composed("probe nested_after { trail = trail . \"U\"; println(trail) }\n");
    assert_eq!(strings_in(&e.program.probes[0].body), ["U", "F", "E"]);
    assert_eq!(e.sites[0].attach[0].target, "vfs_write");
}

#[test]
fn two_body_aliases_wrap_the_handler() {
    let e = composed("probe both { trail = trail . \"U\"; println(trail) }\n");
    assert_eq!(strings_in(&e.program.probes[0].body), ["P", "U", "Q"]);
}

#[test]
fn one_derived_probe_per_expansion_path() {
    let e =
        composed("probe outer, nested_after, begin { trail = trail . \"U\"; println(trail) }\n");
    assert_eq!(e.program.probes.len(), 3);
    assert_eq!(e.sites.len(), 3);
    assert_eq!(strings_in(&e.program.probes[0].body), ["I", "O", "U"]);
    assert_eq!(strings_in(&e.program.probes[1].body), ["U", "F", "E"]);
    assert_eq!(strings_in(&e.program.probes[2].body), ["U"]);
    assert_eq!(e.program.probes[2].kind, ProbeKind::Begin { seq: 0 });
    assert!(e.sites[2].attach.is_empty());
}

#[test]
fn conditions_of_user_and_alias_points_guard_the_handler() {
    let e = composed(
        "global on = 1\nprobe guarded if (on > 0) { println(trail) }\nprobe begin if (on) { println(1) }\n",
    );
    let guard = |body: &[Stmt]| match body.first() {
        Some(Stmt::If {
            cond:
                Expr::Unary {
                    op: UnaryOp::Not,
                    operand,
                },
            then,
            otherwise,
        }) if then == &[Stmt::Next] && otherwise.is_empty() => (**operand).clone(),
        other => panic!("no guard: {other:?}"),
    };
    // Both conditions, AND-ed: the user's first, then the alias point's.
    match guard(&e.program.probes[0].body) {
        Expr::And(user, alias) => {
            assert!(matches!(*user, Expr::CompareLong { .. }), "{user:?}");
            assert!(matches!(*alias, Expr::Global(_)), "{alias:?}");
        }
        other => panic!("expected two conditions: {other:?}"),
    }
    assert!(matches!(guard(&e.program.probes[1].body), Expr::Global(_)));
    // The alias body still runs after the guard.
    assert_eq!(strings_in(&e.program.probes[0].body), ["G"]);
}

#[test]
fn alias_prologues_give_the_handler_its_variables() {
    let facts = fixture("6.1");
    let e = run_with(
        &[],
        &[repo_tapsets()],
        "probe vfs.read { printf(\"%s %d\\n\", name, count) }\n",
        &facts,
    )
    .unwrap();
    let probe = &e.program.probes[0];
    assert_eq!(probe.name, "vfs.read");
    assert_eq!(e.sites[0].attach[0].target, "vfs_read");
    let texts: Vec<String> = e.sites[0]
        .fetches
        .iter()
        .map(|f| match f {
            tapmatrix_elaborate::FetchRequest::Value { text, .. } => text.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    // `file = $file` and `pos = $pos` are elided (nothing reads them), so
    // the event fetches only `$count`.
    assert_eq!(texts, ["$count"]);
    assert_eq!(probe.fetches.len(), 1);
}

#[test]
fn optional_points_that_resolve_to_nothing_are_dropped() {
    let e = run(
        "probe kernel.function(\"no_such_function_anywhere\")?, begin { println(1) }\nprobe never { println(2) }\n",
    )
    .unwrap();
    assert_eq!(e.program.probes.len(), 1);
    assert_eq!(e.program.probes[0].kind, ProbeKind::Begin { seq: 0 });
}

#[test]
fn wildcards_attach_one_handler_to_every_match() {
    let e = run("probe kernel.function(\"vfs_rea*\") { println(probefunc()) }\n").unwrap();
    assert_eq!(e.program.probes.len(), 1);
    assert!(!e.sites[0].attach.is_empty());
    assert!(
        e.sites[0]
            .attach
            .iter()
            .all(|a| a.target.starts_with("vfs_rea"))
    );
}

#[test]
fn timers_and_sequences_become_probe_kinds() {
    let e = run(
        "probe timer.ms(100) { println(1) }\nprobe timer.s(2).randomize(1) { println(2) }\nprobe timer.hz(4) { println(3) }\nprobe end(5) { println(4) }\nprobe error { println(5) }\n",
    )
    .unwrap();
    let kinds: Vec<ProbeKind> = e.program.probes.iter().map(|p| p.kind.clone()).collect();
    assert_eq!(
        kinds,
        [
            ProbeKind::Timer {
                period_ns: 100_000_000,
                randomize_ns: 0
            },
            ProbeKind::Timer {
                period_ns: 2_000_000_000,
                randomize_ns: 1_000_000_000
            },
            ProbeKind::Timer {
                period_ns: 250_000_000,
                randomize_ns: 0
            },
            ProbeKind::End { seq: 5 },
            ProbeKind::Error { seq: 0 },
        ]
    );
}

#[test]
fn alias_stores_the_handler_does_not_read_are_elided_with_their_calls() {
    // `dev` calls a function that reads memory at a computed address: an
    // error if it stayed, but nothing reads `dev`, so SystemTap (and this)
    // elide the store before checking it.
    let tapset = r#"
function __dev(f) { return @cast(f, "file")->f_inode }
probe myvfs.read = kernel.function("vfs_read") {
  dev = __dev($file)
  bytes = $count
}
"#;
    let script = "probe myvfs.read { println(bytes) }\n";
    let e = run_with(&[("v.stp", tapset)], &[], script, &fixture("6.1")).unwrap();
    assert!(e.program.functions.is_empty());
    assert_eq!(e.sites[0].fetches.len(), 1);
    let errors = run_with(
        &[("v.stp", tapset)],
        &[],
        "probe myvfs.read { println(dev) }\n",
        &fixture("6.1"),
    )
    .unwrap_err();
    assert!(
        errors[0].contains(
            "computed address (@cast(f, \"file\")->f_inode) is not supported by the tracefs back end on 6.1"
        ),
        "{errors:?}"
    );
}

#[test]
fn entry_values_come_from_an_entry_half_on_the_same_functions() {
    // `@entry($count)` and a parameter read in a return probe ($file's
    // member): both are evaluated by a synthesized probe on the function's
    // entry and saved for the return of the same thread.
    let script = "probe kernel.function(\"vfs_read\").return {\n  printf(\"%d %d %d\\n\", @entry($count), $file->f_flags, $return)\n}\n";
    let e = run_with(&[], &[], script, &fixture("6.1")).unwrap();
    assert_eq!(e.program.probes.len(), 2, "{:#?}", e.program.probes);
    let ret = &e.program.probes[0];
    let entry = ret
        .entry
        .as_ref()
        .expect("the return probe reads entry values");
    assert_eq!(entry.key, 0);
    assert_eq!(entry.types, [ScalarType::Long, ScalarType::Long]);
    // The return probe fetches only $return itself.
    assert_eq!(e.sites[0].fetches.len(), 1);
    assert!(
        e.sites[0]
            .attach
            .iter()
            .all(|a| a.kind == AttachKind::Kretprobe)
    );
    // The entry half: kprobes on the same functions, fetching both values.
    let half = &e.program.probes[1];
    assert!(matches!(half.body[..], [Stmt::EntrySave { key: 0, ref values }] if values.len() == 2));
    assert_eq!(e.sites[1].fetches.len(), 2);
    assert!(
        e.sites[1]
            .attach
            .iter()
            .all(|a| a.kind == AttachKind::Kprobe)
    );
    assert_eq!(e.sites[1].attach.len(), e.sites[0].attach.len());
}

#[test]
fn reads_at_computed_addresses_where_the_back_end_serves_them() {
    let script = "function task_pid(t) { return @cast(t, \"task_struct\")->tgid }\nprobe kernel.function(\"vfs_read\") { println(task_pid(task_current()), kernel_string_n($buf, $count)) }\n";
    // tracefs: both refused, naming the back end, the kernel and the construct.
    let errors = run_with(&[], &[], script, &fixture("6.1")).unwrap_err();
    assert!(
        errors.iter().any(|e| e.contains(
            "the current task (task_current()) is not supported by the tracefs back end on 6.1"
        )),
        "{errors:?}"
    );
    // A back end that serves them: a read through BTF offsets.
    let e = run_for(
        &[],
        &[],
        script,
        &fixture("6.1"),
        &Capabilities::all("bpf", "6.1"),
    )
    .unwrap();
    let mut reads = Vec::new();
    tapmatrix_ir::visit::each_expr(&e.program, &mut |expr| {
        if let Expr::Read { access, .. } = expr {
            reads.push(access.clone());
        }
    });
    assert_eq!(reads.len(), 1, "{:#?}", e.program);
    assert_eq!(reads[0].size, 4);
    assert!(reads[0].signed);
    assert_eq!(reads[0].loads.len(), 1);
    // A length that is not a literal makes the string read computed too.
    let mut strings = 0;
    tapmatrix_ir::visit::each_expr(&e.program, &mut |expr| {
        strings += usize::from(matches!(
            expr,
            Expr::ReadString {
                max_len: Some(_),
                ..
            }
        ));
    });
    assert_eq!(strings, 1);
}

#[test]
fn defined_of_an_entry_value_takes_one_branch() {
    // tcpipstat: `@defined(@entry($sk)) ? @entry($sk) : @entry($sock->sk)`.
    // The condition is decided at compile time, and the branch not taken
    // is not lowered: its target does not resolve and is not fetched.
    let script = "probe kernel.function(\"vfs_read\").return {\n  println(@defined(@entry($count)) ? @entry($count) : @entry($gone->x))\n  println(@defined(@entry($gone)) ? @entry($gone) : 5)\n}\n";
    let e = run_with(&[], &[], script, &fixture("6.1")).unwrap();
    assert_eq!(e.program.probes.len(), 2, "{:#?}", e.program.probes);
    assert_eq!(e.sites[1].fetches.len(), 1, "only $count, at the entry");
    let body = format!("{:?}", e.program.probes[0].body);
    assert!(body.contains("Long(5)"), "{body}");
    assert!(!body.contains("Ternary"), "{body}");
}

#[test]
fn kernel_string_of_a_local_holding_a_char_array_is_that_string() {
    // stapgames' gmtty.stp: `namep = @cast(tty, ...)->name` then
    // `kernel_string(namep)`; tapmatrix reads char arrays as strings.
    let script = "probe kernel.function(\"vfs_read\") {\n  namep = @cast($file, \"file\", \"kernel\")->f_path->dentry->d_iname\n  println(kernel_string(namep))\n}\n";
    let caps = Capabilities::all("bpf", "6.1");
    let e = run_for(&[], &[], script, &fixture("6.1"), &caps).unwrap();
    let body = format!("{:?}", e.program.probes[0].body);
    assert_eq!(body.matches("ReadString").count(), 1, "{body}");
}
