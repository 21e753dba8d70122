//! Running bundles on real kernels: events created and decoded from the
//! ring buffer, filters with the workload's pid, rejected events with the
//! kernel's words, timeouts, a panic mid-run, and nothing left behind.
//!
//! The bundles are built by hand. Most programs are empty: those tests
//! check the agent through the hits it echoes (`echo_hits`), the decoding
//! without the runtime; one runs handlers that print, on a timer and on hits.
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "an integration test: a panic is how it reports a failure"
)]

use std::path::PathBuf;
use std::time::Duration;

use tapmatrix_e2e::{fetched_kernels, test_cache_dir};
use tapmatrix_ir::{
    Artefact, Builtin, Bundle, Expr, ItemEnd, Limits, Loc, Probe, ProbeKind, Program, RunEnd,
    RunMessage, ScalarType, Stmt, Value, Workload,
};
use tapmatrix_tracefs::{EventKind, Fetch};
use tapmatrix_vm::{ItemReport, RunSettings, VmOptions, run_items};
use tapmatrix_wire::RunItem;

/// The vmlinuz of kernel `id` from the test cache.
fn kernel(id: &str) -> PathBuf {
    fetched_kernels(&[id]).remove(0).vmlinuz
}

/// An event as these tests write it: its kind and fetch arguments, finished
/// into the definition the agent installs by [`item`] (as the tracefs back
/// end finishes its events).
#[derive(Debug, Clone)]
struct Event {
    probe: u32,
    pp: String,
    function: String,
    kind: EventKind,
    fetches: Vec<Fetch>,
    comm: Option<u32>,
    filter: Option<String>,
}

impl Event {
    /// The event as a bundle carries it, as event `index` of its item.
    fn finish(self, index: usize) -> tapmatrix_ir::Event {
        let (install, slots) = tapmatrix_tracefs::finish(index, &self.kind, &self.fetches);
        tapmatrix_ir::Event {
            probe: self.probe,
            pp: self.pp,
            function: self.function,
            is_return: self.kind.is_return(),
            install,
            slots,
            comm: self.comm,
            filter: self.filter,
        }
    }
}

/// A program with one probe per event, taking that event's fetches, and
/// no statements.
fn program(events: &[Event]) -> Program {
    Program {
        files: vec!["test.stp".to_owned()],
        globals: Vec::new(),
        functions: Vec::new(),
        probes: events
            .iter()
            .map(|event| Probe {
                kind: ProbeKind::Event,
                name: event.pp.clone(),
                locals: Vec::new(),
                fetches: event.fetches.iter().map(|fetch| fetch.ty).collect(),
                body: Vec::new(),
                entry: None,
            })
            .collect(),
        limits: Limits::default(),
    }
}

fn fetch(arg: &str, ty: ScalarType) -> Fetch {
    Fetch {
        arg: arg.to_owned(),
        ty,
    }
}

/// An item whose event `i` feeds probe `i`.
fn item(name: &str, mut events: Vec<Event>, command: &str, timeout_ms: u64) -> RunItem {
    for (index, event) in events.iter_mut().enumerate() {
        event.probe = u32::try_from(index).unwrap();
    }
    RunItem {
        name: name.to_owned(),
        artefact: Artefact::Tracefs(Bundle {
            program: program(&events),
            events: events
                .into_iter()
                .enumerate()
                .map(|(index, event)| event.finish(index))
                .collect(),
            tasks: Vec::new(),
        }),
        workload: Workload {
            command: command.to_owned(),
            timeout_ms,
            target: None,
        },
        modules: Vec::new(),
        setup: String::new(),
        disk_mib: 0,
    }
}

/// The tracefs bundle of an item.
fn bundle(item: &mut RunItem) -> &mut Bundle {
    match &mut item.artefact {
        Artefact::Tracefs(bundle) => bundle,
        Artefact::Bpf(_) => panic!("a tracefs item was expected"),
    }
}

/// A kprobe on `function` fetching nothing.
fn kprobe(function: &str, filter: Option<&str>) -> Event {
    Event {
        probe: 0,
        pp: format!("kernel.function(\"{function}\")"),
        function: function.to_owned(),
        kind: EventKind::Kprobe {
            function: function.to_owned(),
        },
        fetches: Vec::new(),
        comm: None,
        filter: filter.map(str::to_owned),
    }
}

/// A kprobe on the open path reading the file name (by register) and comm.
fn open_kprobe(function: &str, filter: Option<&str>) -> Event {
    Event {
        fetches: vec![
            fetch("+0(%si):string", ScalarType::String),
            fetch("$comm:string", ScalarType::String),
        ],
        comm: Some(1),
        ..kprobe(function, filter)
    }
}

/// `sched:sched_process_exec` with its fields, filtered to the workload.
fn exec_tracepoint() -> Event {
    Event {
        probe: 0,
        pp: "kernel.trace(\"sched:sched_process_exec\")".to_owned(),
        function: String::new(),
        kind: EventKind::Tracepoint {
            system: "sched".to_owned(),
            event: "sched_process_exec".to_owned(),
        },
        fetches: vec![
            fetch("filename", ScalarType::String),
            fetch("pid", ScalarType::Long),
            fetch("old_pid", ScalarType::Long),
        ],
        comm: None,
        filter: Some("common_pid == ${target}".to_owned()),
    }
}

/// Runs `items` on kernel `id`, echoing hits; prints every message.
fn run_on(id: &str, items: &[RunItem]) -> Vec<ItemReport> {
    run_with(
        id,
        items,
        RunSettings {
            echo_hits: true,
            buffer_kb: None,
        },
    )
}

/// Runs `items` on kernel `id` with `settings`; prints every message.
fn run_with(id: &str, items: &[RunItem], settings: RunSettings) -> Vec<ItemReport> {
    run_on_cpus(id, items, settings, 1)
}

/// Runs `items` on kernel `id` in a guest with `cpus` CPUs.
fn run_on_cpus(id: &str, items: &[RunItem], settings: RunSettings, cpus: u32) -> Vec<ItemReport> {
    let scratch = tempfile::tempdir().unwrap();
    let options = VmOptions {
        timeout: Duration::from_secs(150),
        cpus,
        ..VmOptions::new(&test_cache_dir())
    };
    let reports = run_items(
        &kernel(id),
        items,
        &scratch.path().join("boot"),
        &options,
        settings,
        &mut |message| eprintln!("{id}: {message:?}"),
    )
    .unwrap();
    for report in &reports {
        if let Err(infra) = &report.end {
            eprintln!(
                "{id}: {} infra: {}\n{}",
                report.name, infra.error, infra.console_tail
            );
        }
    }
    reports
}

fn ended(report: &ItemReport) -> &ItemEnd {
    report
        .finished()
        .unwrap_or_else(|| panic!("{} did not finish: {:?}", report.name, report.end))
}

/// The open path's function that takes the file name second on every
/// kernel of the matrix (5.10's `do_sys_open` is inlined into the syscall).
const OPEN: &str = "do_sys_openat2";

/// The whole batch on one kernel: hits, fields, a rejection, a timeout.
fn hits_fields_rejections_and_timeouts(id: &str, cpus: u32) {
    let open = OPEN;
    let items = [
        item(
            "kprobe",
            vec![open_kprobe(open, Some("common_pid == ${target}"))],
            "exec cat /etc/passwd",
            30_000,
        ),
        item(
            "tracepoint",
            vec![exec_tracepoint()],
            "exec cat /proc/version",
            30_000,
        ),
        item(
            "rejected",
            vec![
                open_kprobe(open, None),
                Event {
                    fetches: vec![fetch("%nosuchreg:u64", ScalarType::Long)],
                    comm: None,
                    ..open_kprobe(open, None)
                },
            ],
            "true",
            30_000,
        ),
        item(
            "no such function",
            vec![open_kprobe("tapmatrix_no_such_function", None)],
            "true",
            30_000,
        ),
        item("after the rejections", Vec::new(), "exit 3", 30_000),
        item("hang", Vec::new(), "sleep 1000", 3_000),
        item(
            "unfiltered",
            vec![Event {
                fetches: vec![fetch("$comm:string", ScalarType::String)],
                comm: Some(0),
                ..kprobe("vfs_read", None)
            }],
            // busybox's cat copies with sendfile; wc reads.
            "exec wc -c /proc/version",
            30_000,
        ),
        item(
            "leaves a daemon",
            Vec::new(),
            // It outlives its process group: the daemon has its own.
            "setsid sleep 1000 & sleep 1",
            30_000,
        ),
        item(
            "finds no daemon",
            Vec::new(),
            "for task in /proc/[0-9]*; do [ \"$(cat $task/comm)\" = sleep ] && exit 1; done; exit 0",
            30_000,
        ),
    ];
    let settings = RunSettings {
        echo_hits: true,
        buffer_kb: None,
    };
    let reports = run_on_cpus(id, &items, settings, cpus);
    for report in &reports {
        assert_eq!(
            ended(report).leftover_events,
            Vec::<String>::new(),
            "{id}: {} left events behind",
            report.name
        );
    }

    let kprobe = &reports[0];
    let end = ended(kprobe);
    assert_eq!(end.reason, RunEnd::WorkloadDone, "{id}: {kprobe:?}");
    assert_eq!(end.workload_status, Some(0));
    assert!(end.hits > 0, "{id}: no hits: {kprobe:?}");
    assert!(
        end.hits < 50,
        "{id}: {} hits for one cat: a self-tracing storm?",
        end.hits
    );
    assert_eq!(end.hits as usize, kprobe.hits.len());
    assert_eq!(end.lost, 0);
    let target = kprobe.hits[0].hit.context.pid;
    assert!(
        kprobe
            .hits
            .iter()
            .all(|hit| hit.hit.context.pid == target && hit.hit.context.tid == target),
        "{id}: the filter let other tasks through: {:?}",
        kprobe.hits
    );
    assert!(
        kprobe
            .hits
            .iter()
            .all(|hit| hit.hit.context.comm == "cat"
                && hit.hit.values[1] == Value::Str("cat".into())),
        "{id}: {:?}",
        kprobe.hits
    );
    assert!(
        kprobe
            .hits
            .iter()
            .any(|hit| hit.hit.values[0] == Value::Str("/etc/passwd".into())),
        "{id}: cat's open of /etc/passwd was not decoded: {:?}",
        kprobe.hits
    );
    assert!(
        kprobe
            .hits
            .windows(2)
            .all(|pair| pair[0].hit.context.timestamp_ns <= pair[1].hit.context.timestamp_ns),
        "{id}: hits out of order"
    );

    let tracepoint = &reports[1];
    assert_eq!(ended(tracepoint).reason, RunEnd::WorkloadDone);
    // The gate's shell execs /bin/sh, which execs cat (busybox runs an
    // applet by exec'ing /proc/self/exe). A tracepoint has no comm field:
    // the agent reads /proc, which names the task when it reads the
    // record, so comm is not checked here.
    let [shell, cat] = tracepoint.hits.as_slice() else {
        panic!("{id}: two execs expected: {:?}", tracepoint.hits);
    };
    assert_eq!(shell.hit.values[0], Value::Str("/bin/sh".into()), "{id}");
    assert!(
        matches!(&cat.hit.values[0], Value::Str(name) if name == "/proc/self/exe" || name.ends_with("/cat")),
        "{id}: filename field: {cat:?}"
    );
    assert_eq!(
        cat.hit.values[1],
        Value::Long(cat.hit.context.pid),
        "{id}: pid field"
    );
    assert_eq!(
        cat.hit.values[2],
        Value::Long(cat.hit.context.pid),
        "{id}: old_pid field"
    );
    assert!(
        tracepoint
            .hits
            .iter()
            .all(|hit| hit.hit.context.pid == cat.hit.context.pid),
        "{id}: the filter on ${{target}} let other tasks through: {:?}",
        tracepoint.hits
    );

    let rejected = &reports[2];
    assert_eq!(
        ended(rejected).reason,
        RunEnd::Rejected,
        "{id}: {rejected:?}"
    );
    assert_eq!(ended(rejected).workload_status, None, "it never ran");
    let [
        RunMessage::EventRejected {
            event,
            definition,
            error,
            ..
        },
        RunMessage::Finished { .. },
    ] = rejected.messages.as_slice()
    else {
        panic!("{id}: {:?}", rejected.messages);
    };
    assert_eq!(*event, 1, "the second event is the bad one");
    assert_eq!(
        definition,
        &format!("p:tapmatrix/e1 {open} f0=%nosuchreg:u64")
    );
    assert!(
        error.contains("Invalid fetch argument") || error.contains("Invalid argument"),
        "{id}: {error}"
    );

    let missing = &reports[3];
    assert_eq!(ended(missing).reason, RunEnd::Rejected, "{id}: {missing:?}");
    assert!(
        matches!(&missing.messages[0], RunMessage::EventRejected { error, .. } if !error.is_empty())
    );

    let after = &reports[4];
    assert_eq!(ended(after).reason, RunEnd::WorkloadDone);
    assert_eq!(ended(after).workload_status, Some(3));

    let hang = &reports[5];
    assert_eq!(ended(hang).reason, RunEnd::Timeout, "{id}: {hang:?}");
    assert_eq!(ended(hang).workload_status, Some(128 + 9), "killed");

    // Every task's reads, but not the agent's own (its reads of the ring
    // buffer would feed the event forever).
    let unfiltered = &reports[6];
    let end = ended(unfiltered);
    assert_eq!(end.reason, RunEnd::WorkloadDone, "{id}: {unfiltered:?}");
    assert!(
        unfiltered
            .hits
            .iter()
            .any(|hit| hit.hit.context.comm == "wc"),
        "{id}: {unfiltered:?}"
    );
    assert!(
        unfiltered
            .hits
            .iter()
            .all(|hit| hit.hit.context.pid != 1 && hit.hit.context.comm != "init"),
        "{id}: the agent traced itself: {:?}",
        unfiltered.hits
    );
    assert!(end.hits < 200, "{id}: {} hits: a storm?", end.hits);

    // What a workload leaves running is killed after it.
    assert_eq!(ended(&reports[7]).workload_status, Some(0));
    assert_eq!(
        ended(&reports[8]).workload_status,
        Some(0),
        "{id}: the daemon of the item before is still running"
    );
}

#[test]
fn a_batch_runs_on_6_1() {
    hits_fields_rejections_and_timeouts("6.1", 1);
}

/// Records of two CPUs' buffers are merged in timestamp order.
#[test]
fn a_batch_runs_on_6_1_with_two_cpus() {
    hits_fields_rejections_and_timeouts("6.1", 2);
}

#[test]
fn a_batch_runs_on_5_10() {
    hits_fields_rejections_and_timeouts("5.10", 1);
}

/// Fprobes (entry and exit), a kretprobe and an eprobe on a kernel that
/// has them all.
#[test]
fn fprobes_kretprobes_and_eprobes_decode_on_6_12() {
    let filter = Some("common_pid == ${target}".to_owned());
    let events = vec![
        Event {
            kind: EventKind::Fprobe {
                function: OPEN.to_owned(),
                ret: false,
            },
            fetches: vec![fetch("+0($arg2):ustring", ScalarType::String)],
            ..kprobe(OPEN, None)
        },
        Event {
            kind: EventKind::Fprobe {
                function: OPEN.to_owned(),
                ret: true,
            },
            fetches: vec![fetch("$retval:s64", ScalarType::Long)],
            ..kprobe(OPEN, None)
        },
        Event {
            kind: EventKind::Kretprobe {
                function: OPEN.to_owned(),
                maxactive: None,
            },
            fetches: vec![fetch("$retval:s64", ScalarType::Long)],
            ..kprobe(OPEN, None)
        },
        Event {
            pp: "kernel.trace(\"syscalls:sys_enter_openat\")".to_owned(),
            function: String::new(),
            kind: EventKind::Eprobe {
                system: "syscalls".to_owned(),
                event: "sys_enter_openat".to_owned(),
            },
            fetches: vec![fetch("+0($filename):ustring", ScalarType::String)],
            ..kprobe(OPEN, None)
        },
    ]
    .into_iter()
    .map(|event| Event {
        filter: filter.clone(),
        ..event
    })
    .collect();
    let reports = run_on(
        "6.12",
        &[item("probes", events, "exec cat /proc/version", 30_000)],
    );
    let report = &reports[0];
    let end = ended(report);
    assert_eq!(end.reason, RunEnd::WorkloadDone, "{report:?}");
    assert_eq!(end.leftover_events, Vec::<String>::new());
    let values = |event: u32| {
        report
            .hits
            .iter()
            .filter(|hit| hit.event == event)
            .map(|hit| hit.hit.values[0].clone())
            .collect::<Vec<_>>()
    };
    let version = Value::Str("/proc/version".into());
    assert!(values(0).contains(&version), "fprobe entry: {report:?}");
    assert!(values(3).contains(&version), "eprobe: {report:?}");
    for exit in [1, 2] {
        assert!(
            values(exit).contains(&Value::Long(3)),
            "event {exit}: cat's file is fd 3: {report:?}"
        );
    }
    assert!(
        report
            .hits
            .iter()
            .filter(|hit| hit.event == 2)
            .all(|hit| hit.hit.context.comm == "cat")
    );
}

#[test]
fn a_panic_mid_run_marks_that_item_and_the_rest_infra() {
    let items = [
        item("before", Vec::new(), "true", 10_000),
        item(
            "crash",
            vec![open_kprobe(OPEN, None)],
            "echo c > /proc/sysrq-trigger",
            10_000,
        ),
        item("after", Vec::new(), "true", 10_000),
    ];
    let reports = run_on("6.1", &items);
    assert_eq!(ended(&reports[0]).reason, RunEnd::WorkloadDone);
    for report in &reports[1..] {
        let Err(infra) = &report.end else {
            panic!("{} should be infra: {:?}", report.name, report.end);
        };
        assert!(infra.error.contains("kernel panic"), "{}", infra.error);
        assert!(
            infra.console_tail.contains("sysrq"),
            "the console tail shows the crash: {}",
            infra.console_tail
        );
    }
}

#[test]
fn a_batch_runs_on_7_3() {
    hits_fields_rejections_and_timeouts("7.3", 1);
}

/// A ring buffer too small for what an event writes loses events, and the
/// run says how many.
#[test]
fn lost_events_are_counted_on_6_1() {
    let every_read = Event {
        fetches: vec![fetch("$comm:string", ScalarType::String)],
        comm: Some(0),
        ..kprobe("vfs_read", None)
    };
    let items = [item(
        "floods a small buffer",
        vec![every_read],
        "exec dd if=/dev/zero of=/dev/null bs=1 count=50000",
        60_000,
    )];
    let reports = run_with(
        "6.1",
        &items,
        RunSettings {
            echo_hits: false,
            buffer_kb: Some(8),
        },
    );
    let end = ended(&reports[0]);
    assert_eq!(end.reason, RunEnd::WorkloadDone, "{:?}", reports[0]);
    assert!(end.lost > 0, "nothing lost: {end:?}");
    assert!(end.hits > 0, "{end:?}");
    assert!(
        end.hits + end.lost >= 50_000,
        "every read of dd was either handled or counted lost: {end:?}"
    );
}

/// `println(ARGS)` as a statement.
fn println(args: Vec<Expr>) -> Stmt {
    Stmt::Expr(Expr::Builtin {
        builtin: Builtin::Println,
        args,
        loc: Loc {
            file: 0,
            line: 1,
            col: 1,
        },
    })
}

/// The runtime runs the handlers: a hit prints its fetched file name and
/// execname, a timer probe prints and calls `exit()`, which ends the run
/// before its workload does.
#[test]
fn handlers_print_hits_and_a_timer_exits_on_6_1() {
    let mut printing = item(
        "prints",
        vec![open_kprobe(OPEN, Some("common_pid == ${target}"))],
        "exec cat /etc/passwd",
        30_000,
    );
    bundle(&mut printing).program.probes[0].body = vec![println(vec![Expr::Concat(
        Box::new(Expr::Fetch(0)),
        Box::new(Expr::Concat(
            Box::new(Expr::Str(" by ".into())),
            Box::new(Expr::Builtin {
                builtin: Builtin::Execname,
                args: Vec::new(),
                loc: Loc {
                    file: 0,
                    line: 1,
                    col: 1,
                },
            }),
        )),
    )])];
    let mut ticking = item("ticks", Vec::new(), "sleep 1000", 30_000);
    bundle(&mut ticking).program.probes.push(Probe {
        kind: ProbeKind::Timer {
            period_ns: 200_000_000,
            randomize_ns: 0,
        },
        name: "timer.ms(200)".to_owned(),
        locals: Vec::new(),
        fetches: Vec::new(),
        entry: None,
        body: vec![
            println(vec![Expr::Str("tick".into())]),
            Stmt::Expr(Expr::Builtin {
                builtin: Builtin::Exit,
                args: Vec::new(),
                loc: Loc {
                    file: 0,
                    line: 1,
                    col: 1,
                },
            }),
        ],
    });
    let reports = run_on("6.1", &[printing, ticking]);
    assert_eq!(ended(&reports[0]).reason, RunEnd::WorkloadDone);
    assert_eq!(reports[0].stdout(), "/etc/passwd by cat\n");
    let ticks = &reports[1];
    assert_eq!(ended(ticks).reason, RunEnd::Exit, "{ticks:?}");
    assert_eq!(ticks.stdout(), "tick\n");
    assert_eq!(
        ended(ticks).workload_status,
        Some(128 + 9),
        "the workload is killed when the script exits"
    );
}
