//! The encoder against the kernel's documented encodings, the disassembler
//! against the encoder, objects against aya's parser, and scripts compiled
//! on the committed facts fixtures.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::path::Path;

use tapmatrix_facts::KernelFacts;
use tapmatrix_ir::bpf::{BpfAttach, BpfMode, GlobalPlace, MapRole};
use tapmatrix_resolve::{Sources, kernel_profile};

use crate::disasm::disassemble;
use crate::helpers::Helper;
use crate::insn::{Alu, Cond, Insn, Reg, Size, decode_all, encode_all};
use crate::{Options, compile, dump};

/// The committed facts of kernel `id`, with the preemption model its
/// Debian config has (the fixture's config is cut without it): 7.x
/// kernels are preemptible (`PREEMPT_LAZY`), earlier ones voluntary.
fn fixture(id: &str) -> KernelFacts {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../facts/fixtures/linux-{id}"));
    let config = dir.join("config");
    let mut facts =
        KernelFacts::from_raw(&dir, config.exists().then_some(config.as_path())).unwrap();
    let model = if id.starts_with("7.") {
        "CONFIG_PREEMPT_LAZY=y"
    } else {
        "CONFIG_PREEMPT_VOLUNTARY=y"
    };
    let text = std::fs::read_to_string(&config).unwrap_or_default();
    facts.config =
        Some(tapmatrix_facts::KernelConfig::parse(&format!("{text}\n{model}\n")).unwrap());
    facts
}

fn elaborate(script: &str, facts: &KernelFacts) -> tapmatrix_elaborate::Elaborated {
    let sources = Sources {
        tapset_dirs: Vec::new(),
        script: Some("t.stp".into()),
        script_text: Some(script.to_owned()),
    };
    let loaded = sources.load(kernel_profile(facts)).unwrap();
    let caps = crate::capabilities(facts, "test");
    tapmatrix_elaborate::elaborate(&loaded, facts, &caps).unwrap()
}

/// `script` compiled for the fixture `id` with the default options.
fn compiled(id: &str, script: &str) -> tapmatrix_ir::bpf::BpfArtefact {
    let facts = fixture(id);
    compile(elaborate(script, &facts), &facts, Options::default()).unwrap()
}

/// `prelude` (globals, functions) and a `vfs_read` handler of `body`,
/// compiled for 6.1, which must run in the kernel; and its listing.
fn handler_in_kernel(prelude: &str, body: &str) -> (tapmatrix_ir::bpf::BpfArtefact, String) {
    let artefact = compiled(
        "6.1",
        &format!("{prelude}probe kernel.function(\"vfs_read\") {{ {body} }}\n"),
    );
    let listing = dump(&artefact);
    assert_eq!(artefact.mode, BpfMode::InKernel, "{listing}");
    (artefact, listing)
}

fn hex(insns: &[Insn]) -> String {
    encode_all(insns)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn encodings_match_the_instruction_set_documentation() {
    // Opcodes from Documentation/bpf/standardization/instruction-set.rst
    // and the bytes clang emits for the same instructions.
    let cases: Vec<(Vec<Insn>, &str)> = vec![
        (vec![Insn::mov64_imm(Reg::R1, 0)], "b7 01 00 00 00 00 00 00"),
        (
            vec![Insn::mov64(Reg::R2, Reg::FP)],
            "bf a2 00 00 00 00 00 00",
        ),
        (
            vec![Insn::alu64_imm(Alu::Add, Reg::R2, -8)],
            "07 02 00 00 f8 ff ff ff",
        ),
        (
            vec![Insn::alu64_reg(Alu::Add, Reg::R0, Reg::R1)],
            "0f 10 00 00 00 00 00 00",
        ),
        (
            Insn::ld_imm64(Reg::R1, 0).to_vec(),
            "18 01 00 00 00 00 00 00 00 00 00 00 00 00 00 00",
        ),
        (
            Insn::ld_imm64(Reg::R1, 0x1122_3344_5566_7788).to_vec(),
            "18 01 00 00 88 77 66 55 00 00 00 00 44 33 22 11",
        ),
        (
            vec![Insn::call(Helper::MapLookupElem.id())],
            "85 00 00 00 01 00 00 00",
        ),
        (vec![Insn::exit()], "95 00 00 00 00 00 00 00"),
        (
            vec![Insn::store(Size::DW, Reg::FP, -8, Reg::R1)],
            "7b 1a f8 ff 00 00 00 00",
        ),
        (
            vec![Insn::load(Size::DW, Reg::R1, Reg::FP, -8)],
            "79 a1 f8 ff 00 00 00 00",
        ),
        (
            vec![Insn::store_imm(Size::W, Reg::FP, -4, 0)],
            "62 0a fc ff 00 00 00 00",
        ),
        (
            vec![Insn::load(Size::B, Reg::R3, Reg::R2, 5)],
            "71 23 05 00 00 00 00 00",
        ),
        (
            vec![Insn::jmp_imm(Cond::Eq, Reg::R0, 0, 2)],
            "15 00 02 00 00 00 00 00",
        ),
        (
            vec![Insn::jmp_reg(Cond::Sgt, Reg::R1, Reg::R2, -3)],
            "6d 21 fd ff 00 00 00 00",
        ),
        (vec![Insn::ja(1)], "05 00 01 00 00 00 00 00"),
        (
            vec![Insn::atomic_add(Size::DW, Reg::R0, 0, Reg::R1)],
            "db 10 00 00 00 00 00 00",
        ),
        (vec![Insn::neg64(Reg::R0)], "87 00 00 00 00 00 00 00"),
        (
            vec![Insn::alu64_imm(Alu::Arsh, Reg::R0, 32)],
            "c7 00 00 00 20 00 00 00",
        ),
    ];
    for (insns, bytes) in cases {
        assert_eq!(hex(&insns), bytes, "{insns:?}");
        assert_eq!(decode_all(&encode_all(&insns)), insns);
    }
}

#[test]
fn the_disassembler_reads_what_the_encoder_writes() {
    let cases = [
        (Insn::mov64(Reg::R2, Reg::FP), "(bf) r2 = r10"),
        (Insn::alu64_imm(Alu::Add, Reg::R2, -8), "(07) r2 += -8"),
        (Insn::alu32_imm(Alu::And, Reg::R1, 255), "(54) w1 &= 255"),
        (Insn::call(1), "(85) call bpf_map_lookup_elem#1"),
        (Insn::call(131), "(85) call bpf_ringbuf_reserve#131"),
        (
            Insn::jmp_imm(Cond::Eq, Reg::R0, 0, 2),
            "(15) if r0 == 0x0 goto pc+2",
        ),
        (
            Insn::jmp_reg(Cond::Ne, Reg::R4, Reg::R5, -9),
            "(5d) if r4 != r5 goto pc-9",
        ),
        (
            Insn::store(Size::DW, Reg::FP, -8, Reg::R1),
            "(7b) *(u64 *)(r10 -8) = r1",
        ),
        (
            Insn::load(Size::W, Reg::R1, Reg::R6, 112),
            "(61) r1 = *(u32 *)(r6 +112)",
        ),
        (
            Insn::store_imm(Size::B, Reg::R9, 3, 0),
            "(72) *(u8 *)(r9 +3) = 0",
        ),
        (
            Insn::atomic_add(Size::DW, Reg::R7, 16, Reg::R1),
            "(db) lock *(u64 *)(r7 +16) += r1",
        ),
        (Insn::neg64(Reg::R3), "(87) r3 = -r3"),
        (Insn::exit(), "(95) exit"),
        (Insn::ja(4), "(05) goto pc+4"),
    ];
    for (insn, text) in cases {
        let round = Insn::decode(insn.encode());
        assert_eq!(disassemble(&round, None), text);
    }
    let wide = Insn::ld_imm64(Reg::R1, 0x1_0000_0002);
    assert_eq!(
        disassemble(&wide[0], Some(&wide[1])),
        "(18) r1 = 0x100000002"
    );
}

#[test]
fn a_counting_kprobe_runs_in_the_kernel_and_aya_reads_its_object() {
    let facts = fixture("6.1");
    let e = elaborate(
        "global n\nprobe kernel.function(\"vfs_read\") { n++ }\n",
        &facts,
    );
    let kprobes = Options {
        kprobes: true,
        ..Options::default()
    };
    let artefact = compile(e, &facts, kprobes).unwrap();
    assert_eq!(artefact.mode, BpfMode::InKernel);
    assert_eq!(artefact.programs.len(), 1);
    assert_eq!(
        artefact.programs[0].attach,
        BpfAttach::Kprobe {
            function: "vfs_read".to_owned()
        }
    );
    assert!(matches!(artefact.globals[0], GlobalPlace::Scalar { .. }));
    let listing = dump(&artefact);
    // The first scalar global, after the session state, target(), the lost
    // count and the wall clock's offset.
    assert!(listing.contains("lock *(u64 *)(r7 +32) += r1"), "{listing}");
    assert!(listing.contains("; map scalars"), "{listing}");
    let object = aya_obj::Object::parse(&artefact.object).unwrap();
    assert!(object.programs.contains_key(&artefact.programs[0].name));
    for map in &artefact.maps {
        assert!(object.maps.contains_key(&map.name), "{}", map.name);
    }
    let json = serde_json_roundtrip(&artefact);
    assert_eq!(json, artefact);
}

#[test]
fn a_handler_takes_a_free_slot_of_its_cpus_scratch_memory_and_gives_it_back() {
    // A handler can run over another on its CPU (an interrupt over a
    // task's handler, or a task's handler preempting another's): each
    // takes the first free of the CPU's four slots of scratch memory by its
    // first word; a hit that finds all four taken is counted skipped (the
    // scalars' fifth word) and not run; every way out gives the slot back.
    let facts = fixture("6.1");
    let e = elaborate(
        "global n\nprobe kernel.function(\"vfs_read\") { if (pid() == 1) next; printf(\"%s\\n\", execname()); n++ }\n",
        &facts,
    );
    let artefact = compile(
        e,
        &facts,
        Options {
            kprobes: true,
            ..Options::default()
        },
    )
    .unwrap();
    let scratch = &artefact.maps[1];
    assert_eq!(
        (scratch.role.clone(), scratch.max_entries),
        (MapRole::Scratch, 4)
    );
    let listing = dump(&artefact);
    let lines: Vec<&str> = listing.lines().collect();
    let at = |text: &str| {
        lines
            .iter()
            .position(|l| l.contains(text))
            .unwrap_or_else(|| panic!("{text} in {listing}"))
    };
    // Slots 0 to 3 are looked up in turn, each owner word read.
    let last_key = at("*(u32 *)(r10 -8) = 3");
    let checks: Vec<usize> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.contains("r1 = *(u64 *)(r0 +0)"))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(checks.len(), 4, "{listing}");
    let skip = at("lock *(u64 *)(r7 +32) += r1");
    let take = at("r9 = r0");
    let owned = at("*(u64 *)(r9 +0) = 1");
    let give = at("*(u64 *)(r9 +0) = 0");
    assert!(
        last_key < checks[3] && checks[3] < skip && skip < take,
        "{listing}"
    );
    assert!(take + 1 == owned && owned < give, "{listing}");
    // Nothing of the handler writes the owner word but these.
    assert_eq!(listing.matches("(r9 +0) =").count(), 2, "{listing}");
    assert!(
        lines[give + 1..give + 3].iter().any(|l| l.contains("exit")),
        "{listing}"
    );
}

fn serde_json_roundtrip(a: &tapmatrix_ir::bpf::BpfArtefact) -> tapmatrix_ir::bpf::BpfArtefact {
    let text = serde_json::to_string(a).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn a_handler_with_foreach_is_forwarded_and_keeps_its_guard_in_the_kernel() {
    let facts = fixture("6.1");
    let e = elaborate(
        "global a\nprobe kernel.function(\"vfs_read\") { if (pid() != target()) next\n a[$count]++\n foreach (k in a) println(k) }\n",
        &facts,
    );
    let artefact = compile(e, &facts, Options::default()).unwrap();
    assert_eq!(artefact.mode, BpfMode::Forwarded);
    assert!(artefact.globals.iter().all(|g| *g == GlobalPlace::Host));
    assert_eq!(artefact.programs[0].slots.len(), 1);
    let listing = dump(&artefact);
    assert!(
        listing.contains("call bpf_get_current_pid_tgid#14"),
        "{listing}"
    );
    assert!(listing.contains("call bpf_ringbuf_output#130"), "{listing}");
}

#[test]
fn arrays_strings_and_stats_get_maps() {
    let facts = fixture("6.1");
    let e = elaborate(
        r#"global reads, sizes, names
probe kernel.function("vfs_read") {
  if (execname() == "dd") {
    reads[execname(), pid()]++
    sizes <<< $count
    names[pid()] = kernel_string($file->f_path->dentry->d_name->name)
    printf("%s %d\n", execname(), $count / 2)
  }
}
probe end { print(@hist_log(sizes)) }
"#,
        &facts,
    );
    let artefact = compile(e, &facts, Options::default()).unwrap();
    assert_eq!(artefact.mode, BpfMode::InKernel, "{}", dump(&artefact));
    let roles: Vec<&MapRole> = artefact.maps.iter().map(|m| &m.role).collect();
    assert_eq!(roles.len(), 6, "{roles:?}");
    assert!(
        matches!(artefact.globals[1], GlobalPlace::Stat { layout, .. } if layout.buckets == 128)
    );
    assert_eq!(artefact.formats.len(), 1);
    assert_eq!(artefact.errors.len(), 3, "{:?}", artefact.errors);
    aya_obj::Object::parse(&artefact.object).unwrap();
}

#[test]
fn perf_points_attach_as_perf_events() {
    assert_eq!(
        crate::perf_attach("perf.type(1).config(0).sample(100000)"),
        BpfAttach::PerfEvent {
            perf_type: 1,
            config: 0,
            sample: tapmatrix_ir::bpf::PerfSample::Period { n: 100_000 }
        }
    );
    assert_eq!(
        crate::perf_attach("perf.type(0).config(1).hz(99)"),
        BpfAttach::PerfEvent {
            perf_type: 0,
            config: 1,
            sample: tapmatrix_ir::bpf::PerfSample::Frequency { hz: 99 }
        }
    );
}

#[test]
fn computed_reads_and_the_current_task_run_in_the_kernel() {
    let facts = fixture("6.1");
    let e = elaborate(
        r#"function parent_tgid:long (task:long) {
  return @cast(@cast(task, "task_struct")->real_parent, "task_struct")->tgid
}
probe kernel.function("vfs_read") {
  t = task_current()
  printf("%d %s %d %s\n", @cast(t, "task_struct")->tgid,
         kernel_string(@cast(t, "task_struct")->comm), parent_tgid(t),
         kernel_string_n($file->f_path->dentry->d_name->name, strlen(execname())))
}
"#,
        &facts,
    );
    let artefact = compile(e, &facts, Options::default()).unwrap();
    assert_eq!(artefact.mode, BpfMode::InKernel, "{}", dump(&artefact));
    let listing = dump(&artefact);
    assert!(
        listing.contains("call bpf_get_current_task#35"),
        "{listing}"
    );
    assert!(
        listing.contains("call bpf_probe_read_kernel#113"),
        "{listing}"
    );
    assert!(
        listing.contains("call bpf_probe_read_kernel_str#115"),
        "{listing}"
    );
    // Each read that can fault raises SystemTap's fault with its address.
    let faults: Vec<&str> = artefact
        .errors
        .iter()
        .filter(|e| e.address)
        .map(|e| e.message.as_str())
        .collect();
    assert!(
        faults.contains(&"kernel read fault at {address} near t.stp:2:10"),
        "{faults:?}"
    );
    assert!(
        faults
            .iter()
            .any(|m| m.starts_with("kernel string copy fault at {address} near t.stp:7:10")),
        "{faults:?}"
    );
    aya_obj::Object::parse(&artefact.object).unwrap();
}

#[test]
fn forwarded_handlers_get_what_needs_the_kernel_as_slots() {
    let facts = fixture("6.1");
    let e = elaborate(
        r#"global seen
function task_name:string (task:long) {
  return kernel_string(@cast(task, "task_struct")->comm)
}
function where:string () { return backtrace() }
function show () { println(backtrace()) }
probe kernel.function("vfs_read") {
  seen[execname()] = 1
  foreach (k in seen) {
    printf("%s %s %d\n", task_name(task_current()), where(), @cast(task_current(), "task_struct")->tgid)
    show()
  }
}
"#,
        &facts,
    );
    let artefact = compile(e, &facts, Options::default()).unwrap();
    assert_eq!(artefact.mode, BpfMode::Forwarded);
    let program = &artefact.programs[0];
    // task_name(task_current()), where(), the tgid: whole calls and
    // reads; show()'s backtrace(): show() is copied for the probe.
    assert_eq!(program.faults.len(), 4, "{program:?}");
    assert_eq!(program.slots.len(), 4);
    let probe = &artefact.program.probes[program.probe as usize];
    assert_eq!(probe.fetches.len(), 4);
    assert_eq!(artefact.program.functions.len(), 4);
    assert_eq!(
        artefact.program.functions[3].body,
        vec![tapmatrix_ir::Stmt::Expr(tapmatrix_ir::Expr::Builtin {
            builtin: tapmatrix_ir::Builtin::Println,
            args: vec![tapmatrix_ir::Expr::Fetch(3)],
            loc: tapmatrix_ir::Loc {
                file: 0,
                line: 6,
                col: 20
            }
        })]
    );
    let listing = dump(&artefact);
    assert!(listing.contains("call bpf_get_stack#67"), "{listing}");
    assert!(
        listing.contains("call bpf_get_current_task#35"),
        "{listing}"
    );
    aya_obj::Object::parse(&artefact.object).unwrap();
}

#[test]
fn a_read_from_a_value_the_runtime_computes_says_what_keeps_it_out_of_the_kernel() {
    let facts = fixture("6.1");
    let e = elaborate(
        r#"global tasks
probe kernel.function("vfs_read") {
  tasks[tid()] = task_current()
  foreach (t in tasks) println(@cast(tasks[t], "task_struct")->tgid)
}
"#,
        &facts,
    );
    let errors = compile(e, &facts, Options::default()).unwrap_err();
    let text = errors[0].to_string();
    assert!(
        text.starts_with("t.stp:4:32: reading kernel memory at a computed address from a value the handler computes"),
        "{text}"
    );
    assert!(text.contains("foreach"), "{text}");
    let e = elaborate("probe begin { println(task_current()) }\n", &facts);
    let text = compile(e, &facts, Options::default()).unwrap_err()[0].to_string();
    assert_eq!(
        text,
        "t.stp:1:23: task_current() is not supported by the bpf back end (begin, end, error and timer probes run in the agent, outside the kernel)"
    );
}

#[test]
fn a_backtrace_in_the_kernel_is_a_string_key() {
    let facts = fixture("6.1");
    let e = elaborate(
        "global stacks\nprobe kernel.function(\"vfs_read\") { stacks[backtrace()] <<< 1 }\nprobe end { foreach (s in stacks) println(symdata(strtol(tokenize(s, \" \"), 16))) }\n",
        &facts,
    );
    let artefact = compile(e, &facts, Options::default());
    let artefact = match artefact {
        Ok(artefact) => artefact,
        Err(errors) => panic!("{errors:?}"),
    };
    assert_eq!(artefact.mode, BpfMode::InKernel, "{}", dump(&artefact));
    assert!(dump(&artefact).contains("call bpf_get_stack#67"));
}

#[test]
fn a_return_is_an_fexit_program_where_the_kernel_can_attach_one() {
    // vfs_read(file, buf, count, pos) returns ssize_t: an fexit program,
    // `$return` the word after its four arguments. A function returning a
    // pointer keeps a kretprobe (5.10's verifier reads only pointers to
    // structs there), `$return` in `ax`.
    for id in ["5.10", "6.12"] {
        let facts = fixture(id);
        let e = elaborate(
            "global n\nprobe kernel.function(\"vfs_read\").return { n += $return }\n",
            &facts,
        );
        let artefact = compile(e, &facts, Options::default()).unwrap();
        assert_eq!(
            artefact.programs[0].attach,
            BpfAttach::Fexit {
                function: "vfs_read".to_owned()
            },
            "{id}"
        );
        let listing = dump(&artefact);
        assert!(listing.contains("r0 = *(u64 *)(r6 +32)"), "{id}: {listing}");
        let object = aya_obj::Object::parse(&artefact.object).unwrap();
        assert!(matches!(
            object.programs[&artefact.programs[0].name].section,
            aya_obj::ProgramSection::FExit { sleepable: false }
        ));
    }
    let facts = fixture("5.10");
    let e = elaborate(
        "global n\nprobe kernel.function(\"fs_context_for_mount\").return { n = $return }\n",
        &facts,
    );
    let artefact = compile(e, &facts, Options::default()).unwrap();
    assert!(
        matches!(&artefact.programs[0].attach, BpfAttach::Kretprobe { function, .. } if function == "fs_context_for_mount"),
        "{:?}",
        artefact.programs[0].attach
    );
}

#[test]
fn an_entry_is_an_fentry_program_where_the_kernel_can_attach_one() {
    // vfs_read(struct file *file, char *buf, size_t count, loff_t *pos):
    // `$count` is the third word of the context, loaded; `$file` a pointer,
    // copied out of the context (a BTF pointer to the verifier otherwise).
    let script = "global n\nprobe kernel.function(\"vfs_read\") { n += $count + $file->f_pos }\n";
    for id in ["5.10", "6.12"] {
        let facts = fixture(id);
        let artefact = compile(elaborate(script, &facts), &facts, Options::default()).unwrap();
        assert_eq!(
            artefact.programs[0].attach,
            BpfAttach::Fentry {
                function: "vfs_read".to_owned()
            },
            "{id}"
        );
        let listing = dump(&artefact);
        assert!(listing.contains("r0 = *(u64 *)(r6 +16)"), "{id}: {listing}");
        assert!(
            listing.contains("r3 = r6\n") && listing.contains("call bpf_probe_read_kernel#113"),
            "{id}: {listing}"
        );
        assert!(!listing.contains("*(u64 *)(r6 +0)"), "{id}: {listing}");
        let object = aya_obj::Object::parse(&artefact.object).unwrap();
        assert!(matches!(
            object.programs[&artefact.programs[0].name].section,
            aya_obj::ProgramSection::FEntry { sleepable: false }
        ));
        // As kprobes when asked: `$count` in `dx`, entry and return alike.
        let kprobes = Options {
            kprobes: true,
            ..Options::default()
        };
        let both = format!("{script}probe kernel.function(\"vfs_read\").return {{ n++ }}\n");
        let artefact = compile(elaborate(&both, &facts), &facts, kprobes).unwrap();
        assert_kprobe_then_kretprobe(&artefact);
    }
}

/// The artefact's two programs are a kprobe, then a kretprobe.
fn assert_kprobe_then_kretprobe(artefact: &tapmatrix_ir::bpf::BpfArtefact) {
    let attaches: Vec<&BpfAttach> = artefact.programs.iter().map(|p| &p.attach).collect();
    assert!(
        matches!(
            attaches.as_slice(),
            [BpfAttach::Kprobe { .. }, BpfAttach::Kretprobe { .. }]
        ),
        "{attaches:?}"
    );
}

#[test]
fn a_probe_that_takes_a_backtrace_stays_a_kprobe() {
    // A trampoline's program sees the program and the trampoline on top of
    // the stack, not the probed function: the backtrace's probe keeps its
    // kprobe, the others of the script take trampolines.
    let facts = fixture("6.1");
    let e = elaborate(
        "global s, n\nfunction where:string () { return backtrace() }\nprobe kernel.function(\"vfs_read\") { s = where() }\nprobe kernel.function(\"vfs_write\") { n++ }\n",
        &facts,
    );
    let artefact = compile(e, &facts, Options::default()).unwrap();
    let attaches: Vec<&BpfAttach> = artefact.programs.iter().map(|p| &p.attach).collect();
    assert!(
        matches!(
            attaches.as_slice(),
            [BpfAttach::Kprobe { function: read }, BpfAttach::Fentry { function: write }]
                if read == "vfs_read" && write == "vfs_write"
        ),
        "{attaches:?}"
    );
}

#[test]
fn maxactive_rides_on_a_kretprobe() {
    // fs_context_for_mount returns a pointer: a kretprobe on 5.10, which
    // carries `.maxactive(N)` (the agent cannot apply it through aya).
    let facts = fixture("5.10");
    let e = elaborate(
        "global n\nprobe kernel.function(\"fs_context_for_mount\").return.maxactive(8) { n++ }\n",
        &facts,
    );
    let artefact = compile(e, &facts, Options::default()).unwrap();
    assert!(
        matches!(
            &artefact.programs[0].attach,
            BpfAttach::Kretprobe {
                maxactive: Some(8),
                ..
            }
        ),
        "{:?}",
        artefact.programs[0].attach
    );
}

#[test]
fn an_entry_half_takes_its_return_probes_thread_guard() {
    // The return's `pid() != target()` guard runs at the entry too: other
    // tasks' entries are neither saved nor forwarded. A guard on a global
    // stays with the return alone.
    let artefact = compiled(
        "6.1",
        "global on\nprobe kernel.function(\"vfs_read\").return { if (pid() != target()) next\n if (on) next\n printf(\"%d %d\\n\", $return, @entry($count)) }\n",
    );
    let half = artefact
        .program
        .probes
        .iter()
        .find(|p| {
            p.body
                .iter()
                .any(|s| matches!(s, tapmatrix_ir::Stmt::EntrySave { .. }))
        })
        .unwrap();
    assert_eq!(half.body.len(), 2, "{:?}", half.body);
    assert!(matches!(half.body[0], tapmatrix_ir::Stmt::If { .. }));
    let entry = artefact
        .programs
        .iter()
        .find(|p| matches!(p.attach, BpfAttach::Fentry { .. }))
        .unwrap();
    let listing = dump(&artefact);
    let program = listing
        .split("\nprogram ")
        .find(|p| p.starts_with(&entry.name))
        .unwrap();
    // The guard's pid, then the forwarded record's header.
    assert_eq!(
        program.matches("call bpf_get_current_pid_tgid#14").count(),
        2,
        "{program}"
    );
}

#[test]
fn a_preemptible_kernel_keeps_kprobes_and_kretprobes() {
    // 7.3 preempts kernel code (PREEMPT_LAZY): a trampoline's program,
    // preempted, would make it skip other tasks' hits on its CPU.
    let artefact = compiled(
        "7.3",
        "global n\nprobe kernel.function(\"vfs_read\") { n += $count }\nprobe kernel.function(\"vfs_read\").return { n += $return }\n",
    );
    assert_kprobe_then_kretprobe(&artefact);
}

#[test]
fn entry_values_stay_in_the_kernel_in_a_map_of_calls_per_thread() {
    // A long and a string saved at the entry, read at the return.
    let artefact = compiled(
        "6.1",
        r#"probe kernel.function("vfs_read").return {
  if (pid() != target()) next
  printf("%d %d %s\n", $return, @entry($count), @entry(execname()))
}
"#,
    );
    let listing = dump(&artefact);
    assert_eq!(artefact.mode, BpfMode::InKernel, "{listing}");
    let entries: Vec<_> = artefact
        .maps
        .iter()
        .filter(|m| m.role == MapRole::Entries)
        .collect();
    assert_eq!(entries.len(), 1, "{listing}");
    let map = entries[0];
    assert_eq!(map.kind, tapmatrix_ir::bpf::MapKind::LruHash);
    assert_eq!(map.key_size, 8);
    // count and top, then 8 calls of (a long, a 512-byte string).
    assert_eq!(map.value_size, 8 + 8 * (8 + 512), "{listing}");
    assert!(listing.contains("map entries: LruHash"), "{listing}");
    // The entry half pushes (and creates its thread's element), the return pops.
    assert_eq!(artefact.programs.len(), 2, "{listing}");
    assert!(listing.contains("call bpf_map_update_elem"), "{listing}");
    assert!(listing.contains("r1 &= 7"), "{listing}");
    assert!(listing.contains("r1 *= 520"), "{listing}");
    aya_obj::Object::parse(&artefact.object).unwrap();
}

#[test]
fn forwarded_entry_values_have_no_map() {
    let facts = fixture("6.1");
    let e = elaborate(
        r#"probe kernel.function("vfs_read").return { printf("%d\n", @entry($count)) }"#,
        &facts,
    );
    let artefact = compile(
        e,
        &facts,
        Options {
            forward: true,
            ..Options::default()
        },
    )
    .unwrap();
    assert_eq!(artefact.mode, BpfMode::Forwarded);
    assert!(!artefact.maps.iter().any(|m| m.role == MapRole::Entries));
}

#[test]
fn strings_formatted_in_the_kernel_keep_the_handler_in_the_kernel() {
    let facts = fixture("6.1");
    let e = elaborate(
        "global a\nprobe kernel.function(\"vfs_read\") {\n  k = sprintf(\"%s-%5d|%-3x\", execname(), pid(), 10)\n  a[k] = sprintln(\"n=\", 3)\n  if (isinstr(k, \"-\") && execname() !~ \"AF_INET*\") a[\"x\"] = sprint(1)\n}\n",
        &facts,
    );
    let artefact = compile(e, &facts, Options::default()).unwrap();
    assert_eq!(artefact.mode, BpfMode::InKernel);
    // A regular expression that is more than a literal still forwards.
    let e = elaborate(
        "global a\nprobe kernel.function(\"vfs_read\") { if (execname() =~ \"^a.b$\") a++ }\n",
        &facts,
    );
    let artefact = compile(e, &facts, Options::default()).unwrap();
    assert_eq!(artefact.mode, BpfMode::Forwarded);
}

#[test]
fn literal_patterns_are_the_text_before_optional_characters() {
    use crate::sprintf::literal_pattern;
    assert_eq!(literal_pattern("AF_INET*").as_deref(), Some("AF_INE"));
    assert_eq!(literal_pattern("abc").as_deref(), Some("abc"));
    assert_eq!(literal_pattern("ab?c*").as_deref(), Some("a"));
    assert_eq!(literal_pattern("^abc"), None);
    assert_eq!(literal_pattern("a.c"), None);
    assert_eq!(literal_pattern("a+"), None);
}

#[test]
fn strlen_and_formatting_leave_the_verifier_no_loop_to_walk() {
    // strlen() and a padded %s (which measures its string): one copy by
    // the helper each, no backward jump but the one of the number's digits
    // (a fixed count of turns: 20 for a decimal).
    let artefact = compiled(
        "6.1",
        r#"global n
probe kernel.function("vfs_read") {
  n += strlen(execname())
  printf("%20s|%-8s|\n", execname(), sprintf("%d", n))
}
"#,
    );
    let listing = dump(&artefact);
    assert_eq!(artefact.mode, BpfMode::InKernel, "{listing}");
    let loops: Vec<&str> = listing.lines().filter(|l| l.contains("goto pc-")).collect();
    assert_eq!(loops.len(), 1, "{listing}");
    assert!(loops[0].contains("if r4 < 0x14 goto pc-"), "{listing}");
    assert!(
        listing.contains("call bpf_probe_read_kernel_str#115"),
        "{listing}"
    );
}

#[test]
fn every_error_of_a_handler_is_sent_by_one_shared_tail() {
    // Four reads that can fault (an address each), a division by zero and
    // MAXACTION in the loop (none): two tails, one record send each, and
    // each raise three or four instructions where it is.
    let artefact = compiled(
        "6.1",
        r#"global n
probe kernel.function("vfs_read") {
  t = task_current()
  for (i = 0; i < $count; i++)
    n += @cast(t, "task_struct")->tgid / $count + @cast(t, "task_struct")->pid
  printf("%d %d\n", @cast(t, "task_struct")->prio, @cast(t, "task_struct")->flags)
}
"#,
    );
    let listing = dump(&artefact);
    assert_eq!(artefact.mode, BpfMode::InKernel, "{listing}");
    let with_address = artefact.errors.iter().filter(|e| e.address).count();
    let without = artefact.errors.len() - with_address;
    assert!(with_address >= 4 && without >= 2, "{:?}", artefact.errors);
    // One send for the printf, one for each tail.
    let sends = listing.matches("call bpf_ringbuf_output#130").count();
    assert_eq!(sends, 3, "{listing}");
    // Each raise sets its error's id in r1 before going to its tail.
    for id in 0..artefact.errors.len() {
        assert!(
            listing.contains(&format!("r1 = {id}\n")),
            "raise {id}: {listing}"
        );
    }
}

#[test]
fn loops_the_verifier_would_walk_too_long_are_forwarded() {
    let facts = fixture("6.1");
    // One loop with a short body: at most 1000 short walks, in the kernel.
    let small = elaborate(
        r#"global n
probe kernel.function("vfs_read") {
  for (i = 0; i < $count; i++) n++
}
"#,
        &facts,
    );
    let artefact = compile(small, &facts, Options::default()).unwrap();
    assert_eq!(artefact.mode, BpfMode::InKernel, "{}", dump(&artefact));
    // A loop within a loop: a million walks of the inner body, more than
    // the verifier checks of one program (traceaio.stp's shape).
    let nested = elaborate(
        r#"global n
probe kernel.function("vfs_read") {
  for (i = 0; i < $count; i++)
    for (j = 0; j < $count; j++) n++
}
"#,
        &facts,
    );
    let artefact = compile(nested, &facts, Options::default()).unwrap();
    assert_eq!(artefact.mode, BpfMode::Forwarded, "{}", dump(&artefact));
    // Forwarded, a loop over what only the kernel can read says why the
    // handler could not stay there.
    let reads = elaborate(
        r#"probe kernel.function("vfs_read") {
  for (i = 0; i < $count; i++)
    for (j = 0; j < $count; j++)
      printf("%d\n", @cast($file + i * 8 + j, "task_struct")->tgid)
}
"#,
        &facts,
    );
    let errors = compile(reads, &facts, Options::default()).unwrap_err();
    let text = errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        text.contains("a loop the verifier checks once per iteration"),
        "{text}"
    );
}

#[test]
fn code_no_path_reaches_is_left_out_and_the_jumps_follow() {
    let mut asm = crate::asm::Asm::new();
    let done = asm.label();
    // 0: a jump written whole over the next instruction.
    asm.emit(Insn::jmp_imm(Cond::Eq, Reg::R1, 0, 3));
    asm.mov_imm(Reg::R0, 1);
    asm.goto(done);
    // 3: unreachable (a `return` then the `if`'s own jump).
    asm.goto(done);
    asm.mov_imm(Reg::R0, 2);
    asm.bind(done);
    asm.load_map(Reg::R2, 0);
    asm.emit(Insn::exit());
    let code = asm.finish().unwrap();
    assert_eq!(
        code.insns,
        vec![
            Insn::jmp_imm(Cond::Eq, Reg::R1, 0, 2),
            Insn::mov64_imm(Reg::R0, 1),
            Insn::ja(1),
            Insn::mov64_imm(Reg::R0, 2),
            Insn::ld_map(Reg::R2)[0],
            Insn::ld_map(Reg::R2)[1],
            Insn::exit(),
        ]
    );
    assert_eq!(code.maps, vec![(4, 0)]);
}

#[test]
fn a_goto_to_where_the_code_goes_anyway_is_left_out_and_jumps_to_it_land_past_it() {
    let mut asm = crate::asm::Asm::new();
    let (end_if, done) = (asm.label(), asm.label());
    // 0: an `if` whose `else` left no code: its `goto` leads to the next
    // instruction; 2 jumps to that `goto`.
    asm.jump_imm(Cond::Eq, Reg::R1, 0, end_if);
    asm.mov_imm(Reg::R0, 1);
    asm.bind(end_if);
    asm.goto(done);
    asm.bind(done);
    asm.mov_imm(Reg::R0, 2);
    asm.emit(Insn::exit());
    let code = asm.finish().unwrap();
    assert_eq!(
        code.insns,
        vec![
            Insn::jmp_imm(Cond::Eq, Reg::R1, 0, 1),
            Insn::mov64_imm(Reg::R0, 1),
            Insn::mov64_imm(Reg::R0, 2),
            Insn::exit(),
        ]
    );
}

/// `stap -s MB` sizes the ring buffer, rounded up to a power of two;
/// 1 MiB without it.
#[test]
fn the_ring_buffer_is_stap_s_megabytes_rounded_up_to_a_power_of_two() {
    let facts = fixture("6.1");
    let events_bytes = |buffer_mb: Option<u32>| {
        let mut e = elaborate(
            "global n\nprobe kernel.function(\"vfs_read\") { n++ }\n",
            &facts,
        );
        if let Some(mb) = buffer_mb {
            e.program.limits.buffer_mb = mb;
        }
        let artefact = compile(e, &facts, Options::default()).unwrap();
        let events = artefact.maps.iter().find(|m| m.name == "events").unwrap();
        let object = aya_obj::Object::parse(&artefact.object).unwrap();
        assert_eq!(
            object.maps["events"].max_entries(),
            events.max_entries,
            "the object's map and the artefact's description agree"
        );
        events.max_entries
    };
    assert_eq!(events_bytes(None), 1 << 20);
    assert_eq!(events_bytes(Some(3)), 4 << 20);
    assert_eq!(events_bytes(Some(16)), 16 << 20);
    assert_eq!(events_bytes(Some(4095)), 1 << 30);
}

#[test]
fn a_flag_a_call_passes_as_a_literal_leaves_out_the_branches_it_never_takes() {
    // SystemTap's tapsets pass what to print as a literal flag: the code
    // for the other flags is not emitted (the kernel would verify, compile
    // and keep it), unless the function assigns the parameter.
    let function = "function f:string (what:long) {\n\
                    if (what & 1) return sprintf(\"%d %d %d\", pid(), tid(), uid())\n\
                    if (what & 2) return sprintf(\"%d %d %d\", ppid(), gid(), cpu())\n\
                    return \"none\"\n}\n\
                    function g:string (what:long) {\n\
                    what = what | 0\n\
                    if (what & 1) return sprintf(\"%d %d %d\", pid(), tid(), uid())\n\
                    return \"none\"\n}\n";
    let insns = |call: &str| {
        handler_in_kernel(function, &format!("printf(\"%s\\n\", {call})"))
            .0
            .programs[0]
            .insns
    };
    let (unknown, one, two, neither) = (
        insns("f(pid())"),
        insns("f(1)"),
        insns("f(2)"),
        insns("f(4)"),
    );
    // One sprintf of the two for a single flag, none for neither.
    assert!(one < unknown && two < unknown, "{one} {two} {unknown}");
    assert!(neither < one && neither < two, "{neither} {one} {two}");
    // The flag reaches through an expression of literals too.
    assert_eq!(insns("f(3 & 2)"), two);
    // An assigned parameter is not known.
    assert_eq!(insns("g(1)"), insns("g(2)"));
}

#[test]
fn a_loop_counts_its_statements_against_maxaction_as_the_runtime_does() {
    // Each turn that goes on runs the loop's test and the body's
    // statements up to the first that can `continue`: the counter steps
    // by that many, so the kernel stops the loop where the runtime does
    // (and the verifier walks MAXACTION / that many turns).
    let step = |body: &str| {
        let (_, listing) = handler_in_kernel(
            "global n\n",
            &format!("for (i = 0; i < $count; i++) {{ {body} }}"),
        );
        let lines: Vec<&str> = listing.lines().collect();
        let check = lines
            .iter()
            .position(|l| l.contains("if r1 <= 0x3e8 goto"))
            .unwrap_or_else(|| panic!("no MAXACTION check: {listing}"));
        lines[check - 2]
            .trim()
            .rsplit(' ')
            .next()
            .unwrap()
            .to_owned()
    };
    assert_eq!(step("n++"), "2");
    assert_eq!(step("n++; n++; n++"), "4");
    // A `continue` in the second statement: a turn that goes on may have
    // run only the first two.
    assert_eq!(step("n++; if (n == 3) continue; n++; n++"), "3");
    // A `continue` of an inner loop is that loop's.
    let inner = tapmatrix_ir::Stmt::Loop {
        cond: None,
        body: vec![tapmatrix_ir::Stmt::Continue],
        step: None,
    };
    let body = [
        tapmatrix_ir::Stmt::Next,
        inner,
        tapmatrix_ir::Stmt::Break,
        tapmatrix_ir::Stmt::Next,
    ];
    assert_eq!(crate::stmt::statements_per_turn(&body), 4);
    assert_eq!(
        crate::stmt::statements_per_turn(&[tapmatrix_ir::Stmt::Block(vec![
            tapmatrix_ir::Stmt::Continue
        ])]),
        1
    );
}

#[test]
fn isinstr_of_one_character_tests_eight_bytes_a_turn() {
    // A 512-byte string: 64 turns of a word each (the last at byte 504),
    // not 510 turns of a byte; a longer needle keeps the byte search.
    // (An array's element: a string of any length up to MAXSTRINGLEN.)
    let listing = |needle: &str| {
        handler_in_kernel(
            "global n, a\n",
            &format!("a[1] = execname(); s = a[1] . \"!\"; n += isinstr(s, \"{needle}\")"),
        )
        .1
    };
    let one = listing("!");
    assert!(one.contains("if r1 > 0x1f8 goto"), "{one}");
    assert!(one.contains("r0 = 0x101010101010101"), "{one}");
    assert!(one.contains("r1 += 8"), "{one}");
    let two = listing("!!");
    assert!(two.contains("if r1 > 0x1fd goto"), "{two}");
    assert!(!two.contains("0x101010101010101"), "{two}");
}

#[test]
fn a_string_local_gets_a_buffer_as_long_as_what_is_assigned_to_it() {
    // The search over a local tries the needle at offsets up to the
    // local's buffer less the needle and terminator: the bound of what the
    // local can hold, not MAXSTRINGLEN (512 bytes: up to 0x1fd).
    let last_offset = |prelude: &str, body: &str| {
        let (_, listing) = handler_in_kernel(prelude, body);
        listing
            .lines()
            .find_map(|l| {
                let (_, rest) = l.split_once("if r1 > ")?;
                rest.split_once(" goto").map(|(n, _)| n.to_owned())
            })
            .unwrap_or_else(|| panic!("no search: {listing}"))
    };
    // execname() (16 with its terminator) and one more byte: 17.
    assert_eq!(
        last_offset(
            "global n\n",
            "s = execname() . \"!\"; n += isinstr(s, \"!!\")"
        ),
        "0xe"
    );
    // A sprintf's room: 1, the comm's 16 and a field's 1, "-", a number's
    // 27: 46 bytes.
    assert_eq!(
        last_offset(
            "global n\n",
            "k = sprintf(\"%s-%d\", execname(), n); n += isinstr(k, \"-1\")"
        ),
        "0x2b"
    );
    // The largest of two assignments, and of a local assigned another.
    assert_eq!(
        last_offset(
            "global n\n",
            "t = \"ab\"; if (n) t = \"abcdefgh\"; s = t; n += isinstr(s, \"zz\")"
        ),
        "0x6"
    );
    // A parameter's buffer is its argument's.
    assert_eq!(
        last_offset(
            "global n\nfunction f(x) { return isinstr(x, \"zz\") }\n",
            "n += f(execname())"
        ),
        "0xd"
    );
    // Grown in a loop: no bound short of MAXSTRINGLEN.
    assert_eq!(
        last_offset(
            "global n\n",
            "s = \"a\"; while (n < $count) { s .= \"bc\"; n++ }; n += isinstr(s, \"zz\")"
        ),
        "0x1fd"
    );
    // A value of unknown length (an array's element) likewise.
    assert_eq!(
        last_offset(
            "global n, a\n",
            "a[1] = execname(); s = a[1]; n += isinstr(s, \"zz\")"
        ),
        "0x1fd"
    );
}
