//! The BPF back end on real kernels: a program the verifier refuses ends
//! its item with the verifier's words and the next item of the boot runs;
//! the in-kernel handlers count, aggregate and print.
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "an integration test: a panic is how it reports a failure"
)]

use std::path::PathBuf;
use std::time::Duration;

use tapmatrix_bpf::asm::Code;
use tapmatrix_bpf::elf::{ElfProgram, write_object};
use tapmatrix_bpf::insn::{Alu, Cond, Insn, Reg};
use tapmatrix_e2e::{fetched_kernels, test_cache, test_cache_dir, workspace_root};
use tapmatrix_facts::KernelFacts;
use tapmatrix_ir::bpf::BpfMode;
use tapmatrix_ir::{Artefact, ItemEnd, RunEnd, RunMessage, Workload};
use tapmatrix_resolve::{TapsetLibrary, kernel_profile};
use tapmatrix_run::{Backend, Compiled, FunctionEvents, compile};
use tapmatrix_vm::{ItemReport, RunSettings, VmOptions, run_items};
use tapmatrix_wire::RunItem;

fn facts(id: &str) -> KernelFacts {
    let cache = test_cache();
    let kernel = tapmatrix_e2e::default_matrix()
        .ids()
        .into_iter()
        .find(|k| k.to_string() == id)
        .unwrap();
    KernelFacts::load(&cache.facts_dir(&kernel)).unwrap()
}

/// `script` compiled to BPF for kernel `id`, as a run item.
fn item(id: &str, name: &str, script: &str, command: &str) -> RunItem {
    item_on(Backend::Bpf, id, name, script, command)
}

/// `item`, compiled for `backend` (a BPF one).
fn item_on(backend: Backend, id: &str, name: &str, script: &str, command: &str) -> RunItem {
    let facts = facts(id);
    let mut tapsets =
        TapsetLibrary::load(&[workspace_root().join("tapsets")], kernel_profile(&facts))
            .map_err(|error| error.to_string());
    let compiled = compile(
        PathBuf::from(format!("{name}.stp")),
        Some(script.to_owned()),
        &mut tapsets,
        &facts,
        FunctionEvents::Kprobes,
        backend,
    );
    let Compiled::Ready(artefact) = compiled else {
        panic!("{name} did not compile to BPF: {compiled:?}");
    };
    assert!(
        matches!(*artefact, Artefact::Bpf(_)),
        "{name}: {artefact:?}"
    );
    RunItem {
        name: name.to_owned(),
        artefact: *artefact,
        workload: Workload {
            command: command.to_owned(),
            timeout_ms: 30_000,
            target: None,
        },
        modules: Vec::new(),
        setup: String::new(),
        disk_mib: 0,
    }
}

fn run_on(id: &str, items: &[RunItem]) -> Vec<ItemReport> {
    let scratch = tempfile::tempdir().unwrap();
    let options = VmOptions {
        timeout: Duration::from_secs(150),
        ..VmOptions::new(&test_cache_dir())
    };
    let vmlinuz: PathBuf = fetched_kernels(&[id]).remove(0).vmlinuz;
    run_items(
        &vmlinuz,
        items,
        &scratch.path().join("boot"),
        &options,
        RunSettings::default(),
        &mut |message| eprintln!("{id}: {message:?}"),
    )
    .unwrap()
}

fn finished(report: &ItemReport) -> &ItemEnd {
    match &report.end {
        Ok(finished) => finished,
        Err(infra) => panic!("{}: infra: {}", report.name, infra.error),
    }
}

/// A kprobe item whose program is `insns` (5.10 would attach `vfs_read`
/// as fentry: a kprobe program is what the ELF below declares).
fn hand_written(id: &str, name: &str, insns: Vec<Insn>) -> RunItem {
    let mut item = item_on(
        Backend::BpfKprobes,
        id,
        name,
        "probe kernel.function(\"vfs_read\") { next }\n",
        "",
    );
    let Artefact::Bpf(artefact) = &mut item.artefact else {
        panic!("a BPF item was expected");
    };
    let code = Code {
        insns,
        maps: Vec::new(),
    };
    let program = artefact.programs[0].name.clone();
    artefact.object = write_object(
        &[ElfProgram {
            name: &program,
            section: "kprobe",
            code: &code,
        }],
        &artefact.maps,
    )
    .unwrap();
    item
}

/// What the agent said the verifier said of `report`'s programs.
fn verifier_words(report: &ItemReport) -> Vec<&str> {
    report
        .messages
        .iter()
        .filter_map(|m| match m {
            RunMessage::EventRejected { error, .. } => Some(error.as_str()),
            _ => None,
        })
        .collect()
}

fn refused_then_next(id: &str) {
    // A program that returns without setting r0: the verifier refuses it.
    let refused = hand_written(id, "refused", vec![Insn::exit()]);
    // A loop the verifier walks once per iteration, 333,334 times: more
    // than the million instructions it checks. Refused for its size, in a
    // few seconds (a log of every instruction walked never fit: loaded
    // again and again with a larger log, it hid that reason behind
    // ENOSPC, for minutes).
    let walked = hand_written(
        id,
        "walked",
        vec![
            Insn::mov64_imm(Reg::R1, 0),
            Insn::alu64_imm(Alu::Add, Reg::R1, 1),
            Insn::jmp_imm(Cond::Lt, Reg::R1, 10_000_000, -2),
            Insn::mov64_imm(Reg::R0, 0),
            Insn::exit(),
        ],
    );
    let counting = item(
        id,
        "counting",
        "global n, sizes\nprobe kernel.function(\"vfs_read\") { if (pid() == target()) { n++; sizes <<< $count } }\n\
probe end { printf(\"%d reads of %d bytes\\n\", n, @sum(sizes)) }\n",
        "dd if=/bin/busybox of=/dev/null bs=7 count=30",
    );
    assert!(
        matches!(&counting.artefact, Artefact::Bpf(a) if a.mode == BpfMode::InKernel),
        "counting runs in the kernel"
    );
    let reports = run_on(id, &[refused, walked, counting]);
    assert_eq!(finished(&reports[0]).reason, RunEnd::Rejected);
    let words = verifier_words(&reports[0]);
    assert!(
        words.iter().any(|w| w.contains("R0 !read_ok")),
        "the verifier's words: {words:?}"
    );
    assert_eq!(finished(&reports[1]).reason, RunEnd::Rejected);
    let words = verifier_words(&reports[1]);
    assert!(
        words.iter().any(
            |w| w.contains("BPF program is too large") && w.contains("processed 1000001 insns")
        ),
        "the verifier's words: {words:?}"
    );
    assert_eq!(finished(&reports[2]).reason, RunEnd::WorkloadDone);
    assert_eq!(reports[2].stdout(), "30 reads of 210 bytes\n");
}

#[test]
fn a_refused_program_quotes_the_verifier_and_the_next_item_runs_on_5_10() {
    refused_then_next("5.10");
}

#[test]
fn a_refused_program_quotes_the_verifier_and_the_next_item_runs_on_7_3() {
    refused_then_next("7.3");
}

/// The kernel runs one kprobe or tracepoint BPF program at a time on a CPU
/// (`bpf_prog_active`): a kprobe that fires inside a tracepoint's handler
/// (on the helper that reads the user string) is skipped. From 6.7 the
/// kernel counts it as the program's `recursion_misses`, and the item's end
/// says it: the handler's hits the script never saw are not hidden.
#[test]
fn a_kprobe_inside_a_tracepoints_handler_is_skipped_and_counted_on_6_12() {
    let script = "global copies, opens\n\
        probe kernel.trace(\"syscalls:sys_enter_openat\") {\n\
          if (pid() == target()) { opens++; printf(\"open %s\\n\", user_string($filename)) }\n\
        }\n\
        probe kernel.function(\"strncpy_from_user_nofault\") { copies++ }\n\
        probe end { printf(\"copies seen %d, opens %d\\n\", copies, opens) }\n";
    let nested = item_on(
        Backend::BpfKprobes,
        "6.12",
        "nested",
        script,
        "cat /etc/passwd",
    );
    let reports = run_on("6.12", &[nested]);
    let end = finished(&reports[0]);
    assert_eq!(
        reports[0].stdout(),
        "open /etc/passwd\ncopies seen 0, opens 1\n"
    );
    assert!(end.skipped >= 1, "no skipped hit counted: {end:?}");
}
