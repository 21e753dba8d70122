//! Probes on many system calls share one `raw_syscalls` event
//! (`share_syscall_events`): which probes, what the shared probe fetches
//! and guards, and that it runs each call's handler as before.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use common::{fixture, repo_tapsets, run_with, tracefs_like};
use tapmatrix_elaborate::{Elaborated, FetchRequest, share_syscall_events};
use tapmatrix_facts::{Field, KernelFacts, Tracepoint};
use tapmatrix_ir::{Hit, HitContext, ProbeKind, Value};
use tapmatrix_runtime::Runtime;

/// The 6.1 fixture with the `raw_syscalls` events as 6.1 formats them
/// (the fixture's events are a sample without them).
fn facts() -> KernelFacts {
    let mut facts = fixture("6.1");
    let field = |name: &str, c_type: &str, offset, size, signed| Field {
        name: name.to_owned(),
        c_type: c_type.to_owned(),
        offset,
        size,
        signed,
    };
    let tracepoints = facts.tracepoints.get_or_insert_with(Vec::new);
    tracepoints.push(Tracepoint {
        system: "raw_syscalls".to_owned(),
        name: "sys_enter".to_owned(),
        fields: vec![
            field("id", "long", 8, 8, true),
            field("args", "unsigned long[6]", 16, 48, false),
        ],
    });
    tracepoints.push(Tracepoint {
        system: "raw_syscalls".to_owned(),
        name: "sys_exit".to_owned(),
        fields: vec![
            field("id", "long", 8, 8, true),
            field("ret", "long", 16, 8, true),
        ],
    });
    tracepoints.sort_by(|a, b| (&a.system, &a.name).cmp(&(&b.system, &b.name)));
    facts
}

/// `script` with the repository's tapsets, elaborated for `facts`, then
/// shared.
fn shared(script: &str, facts: &KernelFacts) -> (Elaborated, Elaborated) {
    let elaborated = run_with(&[], &[repo_tapsets()], script, facts).unwrap();
    let shared = share_syscall_events(elaborated.clone(), facts, &tracefs_like());
    (elaborated, shared)
}

/// The attach points of each event probe, as probe points.
fn attach_points(e: &Elaborated) -> Vec<Vec<String>> {
    e.program
        .probes
        .iter()
        .zip(&e.sites)
        .filter(|(probe, _)| probe.kind == ProbeKind::Event)
        .map(|(_, site)| site.attach.iter().map(|at| at.probe_point()).collect())
        .collect()
}

/// Runs `e`'s program with one hit per (probe, fetched values), then its
/// `end` probes; what it printed.
fn run(e: &Elaborated, hits: &[(u32, Vec<Value>)]) -> String {
    let mut runtime = Runtime::new(e.program.clone(), 1);
    runtime.begin();
    for (probe, values) in hits {
        runtime.hit(&Hit {
            probe: *probe,
            values: values.clone(),
            context: HitContext {
                pid: 1,
                tid: 1,
                ..HitContext::default()
            },
            faults: Vec::new(),
        });
    }
    runtime.end();
    runtime.take_stdout()
}

const COUNTS: &str = "global counts
probe syscall.* { counts[name]++ }
probe end { foreach (n+ in counts) printf(\"%s %d\\n\", n, counts[n]) }
";

#[test]
fn a_wildcard_over_syscalls_that_fetches_nothing_is_one_raw_event() {
    let facts = facts();
    let (before, after) = shared(COUNTS, &facts);
    // On the fixture: close, read and write by their tracepoints, openat
    // by its __x64_sys_ kprobe (a string argument before 7.0); execve's
    // function is not in the fixture.
    let mut points: Vec<String> = attach_points(&before).into_iter().flatten().collect();
    points.sort();
    assert_eq!(
        points,
        [
            "kernel.function(\"__x64_sys_openat\")",
            "kernel.trace(\"syscalls:sys_enter_close\")",
            "kernel.trace(\"syscalls:sys_enter_read\")",
            "kernel.trace(\"syscalls:sys_enter_write\")",
        ]
    );
    assert_eq!(
        attach_points(&after),
        [["kernel.trace(\"raw_syscalls:sys_enter\")"]]
    );
    let (index, site) = after
        .sites
        .iter()
        .enumerate()
        .find(|(_, site)| !site.attach.is_empty())
        .unwrap();
    assert!(
        matches!(&site.fetches[..], [FetchRequest::Value { text, .. }] if text == "$id"),
        "{:?}",
        site.fetches
    );
    assert!(site.targets[0][0].is_ok());
    // The shared probe runs each call's handler by its number, and none for
    // a call no probe was on (1000) or one without a probe here (9, mmap;
    // 59, execve).
    let probe = u32::try_from(index).unwrap();
    let hits: Vec<(u32, Vec<Value>)> = [0, 0, 1, 257, 3, 59, 9, 1000]
        .into_iter()
        .map(|nr| (probe, vec![Value::Long(nr)]))
        .collect();
    assert_eq!(run(&after, &hits), "close 1\nopenat 1\nread 2\nwrite 1\n");
}

#[test]
fn the_shared_probe_starts_with_a_guard_on_the_numbers() {
    let (_, after) = shared(COUNTS, &facts());
    let probe = after
        .program
        .probes
        .iter()
        .find(|p| p.kind == ProbeKind::Event)
        .unwrap();
    let guard = format!("{:?}", probe.body[0]);
    assert!(guard.starts_with("If { cond: Unary { op: Not"), "{guard}");
    assert!(guard.contains("then: [Next]"), "{guard}");
    // 0, 1, 3 and 257: three ranges (0..=1 is one).
    for n in [0, 1, 3, 257] {
        assert!(guard.contains(&format!("Long({n})")), "{n} in {guard}");
    }
}

#[test]
fn probes_that_fetch_or_read_where_they_fired_keep_their_events() {
    let facts = facts();
    for script in [
        // argstr reads every call's arguments.
        "global n\nprobe syscall.* { n[argstr]++ }\n",
        // pp() names the per-call event.
        "global n\nprobe syscall.* { n[pp()]++ }\n",
        // ... also through a function.
        "global n\nfunction where() { return ppfunc() }\nprobe syscall.* { n[where()]++ }\n",
    ] {
        let (before, after) = shared(script, &facts);
        assert_eq!(attach_points(&before), attach_points(&after), "{script}");
        assert_eq!(before.program, after.program, "{script}");
    }
}

#[test]
fn one_call_is_left_alone_and_returns_share_sys_exit() {
    let facts = facts();
    let (before, after) = shared("global n\nprobe syscall.read { n++ }\n", &facts);
    assert_eq!(before, after);
    let (before, after) = shared(
        "global n\nprobe syscall.read.return, syscall.write.return { n[name] += retval }
probe end { foreach (k+ in n) printf(\"%s %d\\n\", k, n[k]) }\n",
        &facts,
    );
    assert_eq!(
        attach_points(&before),
        [
            ["kernel.trace(\"syscalls:sys_exit_read\")"],
            ["kernel.trace(\"syscalls:sys_exit_write\")"]
        ]
    );
    assert_eq!(
        attach_points(&after),
        [["kernel.trace(\"raw_syscalls:sys_exit\")"]]
    );
    // The return value is the raw event's `ret`, after the number.
    let site = after.sites.iter().find(|s| !s.attach.is_empty()).unwrap();
    let texts: Vec<&str> = site
        .fetches
        .iter()
        .map(|f| match f {
            FetchRequest::Value { text, .. } => text.as_str(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(texts, ["$id", "$ret"]);
    let probe = u32::try_from(
        after
            .program
            .probes
            .iter()
            .position(|p| p.kind == ProbeKind::Event)
            .unwrap(),
    )
    .unwrap();
    let hits: Vec<(u32, Vec<Value>)> = [(0, 5), (1, 7), (0, -2), (3, 100)]
        .into_iter()
        .map(|(nr, ret)| (probe, vec![Value::Long(nr), Value::Long(ret)]))
        .collect();
    assert_eq!(run(&after, &hits), "read 3\nwrite 7\n");
}

#[test]
fn locals_of_each_call_keep_their_values_and_types() {
    // Each alias names its locals in another order, with other types.
    let tapset = "probe t.read = kernel.trace(\"syscalls:sys_enter_read\") { s = \"r\"; x = 1 }
probe t.write = kernel.trace(\"syscalls:sys_enter_write\") { x = 2; y = 5; s = \"w\" }
probe t.close = kernel.trace(\"syscalls:sys_enter_close\") { z = \"c\"; s = \"cc\"; x = 3 }
";
    let script = "global out
probe t.* { foreach (k in out) if (k == s) next; out[s] = x + y; if (z != \"\") out[z] = 100 }
probe end { foreach (k+ in out) printf(\"%s=%d\\n\", k, out[k]) }
";
    let facts = facts();
    let before = run_with(&[("t.stp", tapset)], &[], script, &facts).unwrap();
    let after = share_syscall_events(before.clone(), &facts, &tracefs_like());
    assert_eq!(
        attach_points(&after),
        [["kernel.trace(\"raw_syscalls:sys_enter\")"]]
    );
    let probe = after
        .program
        .probes
        .iter()
        .position(|p| p.kind == ProbeKind::Event)
        .unwrap();
    let probe = u32::try_from(probe).unwrap();
    let hits: Vec<(u32, Vec<Value>)> = [0, 1, 3]
        .into_iter()
        .map(|nr| (probe, vec![Value::Long(nr)]))
        .collect();
    assert_eq!(run(&after, &hits), "c=100\ncc=3\nr=1\nw=7\n");
}

#[test]
fn a_call_two_probes_are_on_keeps_its_event_for_both() {
    let (_, after) = shared(
        "global a, b\nprobe syscall.read { a++ }\nprobe syscall.* { b[name]++ }\n",
        &facts(),
    );
    // syscall.read and syscall.*'s read stay on sys_enter_read, in order;
    // the other calls of syscall.* share the raw event.
    assert_eq!(
        attach_points(&after),
        [
            ["kernel.trace(\"syscalls:sys_enter_read\")"],
            ["kernel.trace(\"raw_syscalls:sys_enter\")"],
            ["kernel.trace(\"syscalls:sys_enter_read\")"],
        ]
    );
}

#[test]
fn a_guard_on_the_task_every_handler_starts_with_runs_once_first() {
    let (_, after) = shared(
        "global counts\nprobe syscall.* { if (pid() != target()) next; counts[name]++ }
probe end { foreach (n+ in counts) printf(\"%s %d\\n\", n, counts[n]) }\n",
        &facts(),
    );
    let (index, probe) = after
        .program
        .probes
        .iter()
        .enumerate()
        .find(|(_, p)| p.kind == ProbeKind::Event)
        .unwrap();
    // The task's guard first, once; then the numbers' guard.
    let guard = format!("{:?}", probe.body[0]);
    assert!(guard.contains("Pid") && guard.contains("Target"), "{guard}");
    let numbers = format!("{:?}", probe.body[1]);
    assert!(numbers.contains("Long(257)"), "{numbers}");
    let body = format!("{:?}", probe.body);
    assert_eq!(body.matches("Pid").count(), 1, "{body}");
    // It still drops other tasks' calls (the runtime's target is pid 1).
    let probe = u32::try_from(index).unwrap();
    let hits: Vec<(u32, Vec<Value>)> = [0, 0, 3]
        .into_iter()
        .map(|nr| (probe, vec![Value::Long(nr)]))
        .collect();
    assert_eq!(run(&after, &hits), "close 1\nread 2\n");
    let mut runtime = Runtime::new(after.program.clone(), 2);
    runtime.begin();
    runtime.hit(&Hit {
        probe,
        values: vec![Value::Long(0)],
        context: HitContext {
            pid: 1,
            tid: 1,
            ..HitContext::default()
        },
        faults: Vec::new(),
    });
    runtime.end();
    assert_eq!(runtime.take_stdout(), "");
}

#[test]
fn guards_that_differ_between_handlers_stay_in_them() {
    let (_, after) = shared(
        "global n\nprobe syscall.read { if (pid() != target()) next; n++ }
probe syscall.write { if (tid() != target()) next; n++ }\n",
        &facts(),
    );
    let probe = after
        .program
        .probes
        .iter()
        .find(|p| p.kind == ProbeKind::Event)
        .unwrap();
    // The numbers' guard first, as before.
    let first = format!("{:?}", probe.body[0]);
    assert!(!first.contains("Pid") && !first.contains("Tid"), "{first}");
}
