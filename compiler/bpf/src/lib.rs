//! The BPF back end: a script elaborated for one kernel becomes BPF
//! programs written by our own instruction encoder ([`insn`]), in an
//! EM_BPF ELF object ([`elf`]) that aya loads in the guest, with the
//! host-side tables the agent needs ([`tapmatrix_ir::bpf::BpfArtefact`]).
//!
//! Pure, like `aya-obj`: no syscalls, no aya, no guest.
//!
//! Two modes, one artefact (see [`tapmatrix_ir::bpf::BpfMode`]): when every
//! event handler (and the functions it calls) has BPF code, handlers run in
//! the kernel with the globals they touch in maps; otherwise each program
//! sends its hit's context and fetch slots and the runtime runs the
//! handler. `begin`, `end`, `error` and timer probes always run in the
//! runtime (timers there: they have no kernel context to read, and the
//! runtime already schedules them).

mod access;
pub mod asm;
mod bounds;
mod caps;
mod codegen;
pub mod disasm;
pub mod elf;
mod entry;
mod error;
mod expr;
mod fetch;
mod fold;
mod forward;
pub mod helpers;
mod hoist;
pub mod insn;
mod layout;
mod read;
mod records;
mod sprintf;
mod stats;
mod stmt;
mod strings;
mod support;

#[cfg(test)]
mod tests;

use tapmatrix_elaborate::{Elaborated, FetchRequest};
use tapmatrix_facts::KernelFacts;
use tapmatrix_ir::bpf::{BpfArtefact, BpfAttach, BpfMode, BpfProgram, PerfSample};
use tapmatrix_ir::{ProbeKind, Program};
use tapmatrix_resolve::{AttachKind, AttachPoint, TargetAccess, TargetError};

pub use caps::capabilities;
pub use error::BpfError;

use crate::asm::Code;
use crate::codegen::{Gen, Site, Tables};
use crate::fetch::{Context, Plan};
use crate::layout::Layout;

/// How to compile.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Options {
    /// Forwarded mode even where the handlers could run in the kernel.
    pub forward: bool,
    /// Function probes as kprobes and kretprobes even where a BPF
    /// trampoline (`fentry`, `fexit`) could serve them.
    pub kprobes: bool,
}

/// One program to generate: a probe at one attach point.
struct Unit {
    probe: u32,
    at: AttachPoint,
    context: Context,
    plans: Vec<Plan>,
}

/// Compiles `elaborated` for the kernel `facts` describes. Every error is
/// collected, not just the first.
pub fn compile(
    elaborated: Elaborated,
    facts: &KernelFacts,
    options: Options,
) -> Result<BpfArtefact, Vec<BpfError>> {
    let Elaborated {
        program: mut source,
        sites,
    } = elaborated;
    let max_string = source.limits.max_string_len.max(1);
    let mut errors = Vec::new();
    let mut probes = Vec::new();
    let mut units = Vec::new();
    for (probe, site) in std::mem::take(&mut source.probes).into_iter().zip(sites) {
        if probe.kind != ProbeKind::Event {
            probes.push(probe);
            continue;
        }
        for (defined, attach) in site.defined_groups() {
            let (probe, requests, attach) = site.specialize(&probe, &defined, attach);
            let index = probes.len() as u32;
            let trampolines = !options.kprobes
                && fetch::trampolines_serve(facts)
                && !support::reads_stack(&source.functions, &probe.body);
            probes.push(probe);
            for (at, targets) in attach {
                let context = fetch::context_of(facts, &at, &targets, trampolines);
                match unit(index, at, context, &requests, &targets, facts, max_string) {
                    Ok(unit) => units.push(unit),
                    Err(mut more) => errors.append(&mut more),
                }
            }
        }
    }
    support::guard_entry_halves(&mut probes);
    source.probes = probes;
    if !errors.is_empty() {
        errors.dedup();
        return Err(errors);
    }
    let mut program = source;
    let in_kernel = if options.forward {
        Err("the handlers are forwarded (bpf-forward)".to_owned())
    } else {
        support::kernel_globals(&program)
    };
    let why_not_kernel = match in_kernel {
        Ok(kernel) => match generate(facts, &program, &units, &kernel, BpfMode::InKernel, &[]) {
            Ok(artefact) => {
                hoist::check_runtime(&artefact.program, false, "").map_err(|error| vec![error])?;
                return Ok(artefact);
            }
            Err(
                error @ (BpfError::Unsupported { .. }
                | BpfError::TooLarge { .. }
                | BpfError::Recursion { .. }),
            ) => error.to_string(),
            Err(other) => return Err(vec![other]),
        },
        Err(why) => why,
    };
    // Forwarded: what needs the kernel at the hit is computed there.
    let hoisted = hoist::hoist(&mut program);
    hoist::check_runtime(&program, true, &why_not_kernel).map_err(|error| vec![error])?;
    generate(facts, &program, &units, &[], BpfMode::Forwarded, &hoisted).map_err(|e| vec![e])
}

fn unit(
    probe: u32,
    at: AttachPoint,
    context: Context,
    requests: &[FetchRequest],
    targets: &[Result<TargetAccess, TargetError>],
    facts: &KernelFacts,
    max_string: u32,
) -> Result<Unit, Vec<BpfError>> {
    if context == Context::Other {
        return Err(vec![BpfError::Unsupported {
            location: at.probe_point(),
            what: format!("{:?} probes", at.kind).to_lowercase(),
            why: None,
        }]);
    }
    let mut errors = Vec::new();
    let mut plans = Vec::new();
    for (request, access) in requests.iter().zip(targets) {
        match fetch::plan(request, access, &at, context, facts, max_string) {
            Ok(plan) => plans.push(plan),
            Err(error) => errors.push(error),
        }
    }
    if errors.is_empty() {
        Ok(Unit {
            probe,
            at,
            context,
            plans,
        })
    } else {
        Err(errors)
    }
}

/// The program's section (its type for the loader) and how it attaches.
fn attach_of(unit: &Unit) -> (&'static str, BpfAttach) {
    let at = &unit.at;
    let function = match &at.module {
        Some(module) => format!("{module}:{}", at.target),
        None => at.target.clone(),
    };
    let (system, event) = at.target.split_once(':').unwrap_or(("", &at.target));
    match unit.context {
        Context::Entry => ("kprobe", BpfAttach::Kprobe { function }),
        Context::Fentry { .. } => ("fentry", BpfAttach::Fentry { function }),
        Context::Return => (
            "kretprobe",
            BpfAttach::Kretprobe {
                function,
                maxactive: at.maxactive.filter(|n| *n > 0),
            },
        ),
        Context::Exit { .. } => ("fexit", BpfAttach::Fexit { function }),
        Context::Record => (
            "tracepoint",
            BpfAttach::Tracepoint {
                system: system.to_owned(),
                event: event.to_owned(),
            },
        ),
        Context::Perf => ("perf_event", perf_attach(&at.target)),
        Context::Args | Context::Other => (
            "raw_tp",
            BpfAttach::RawTracepoint {
                event: event.to_owned(),
            },
        ),
    }
}

/// How a `perf.type(N).config(M)[.sample(P)|.hz(F)]` point attaches (a
/// sample every million events by default, as SystemTap's).
fn perf_attach(point: &str) -> BpfAttach {
    let number = |name: &str| -> Option<u64> {
        let start = point.find(&format!("{name}("))? + name.len() + 1;
        let end = start + point[start..].find(')')?;
        point[start..end].trim().parse().ok()
    };
    let sample = match (number("sample"), number("hz")) {
        (_, Some(hz)) => PerfSample::Frequency { hz },
        (Some(n), None) => PerfSample::Period { n },
        (None, None) => PerfSample::Period { n: 1_000_000 },
    };
    BpfAttach::PerfEvent {
        perf_type: number("type")
            .and_then(|t| u32::try_from(t).ok())
            .unwrap_or(1),
        config: number("config").unwrap_or(0),
        sample,
    }
}

fn generate(
    facts: &KernelFacts,
    program: &Program,
    units: &[Unit],
    kernel: &[bool],
    mode: BpfMode,
    hoisted: &[Vec<tapmatrix_ir::Expr>],
) -> Result<BpfArtefact, BpfError> {
    let layout = Layout::new(program, kernel, mode == BpfMode::InKernel)?;
    let task = codegen::TaskOffsets::of(facts);
    let mut tables = Tables::default();
    let mut codes: Vec<Code> = Vec::with_capacity(units.len());
    let mut programs = Vec::with_capacity(units.len());
    for (index, unit) in units.iter().enumerate() {
        let probe = program
            .probes
            .get(unit.probe as usize)
            .ok_or(BpfError::Internal("a unit of no probe"))?;
        let function = match unit.at.kind {
            AttachKind::Kprobe | AttachKind::Kretprobe => unit.at.target.clone(),
            _ => String::new(),
        };
        let site = Site {
            program,
            layout: &layout,
            pp: unit.at.probe_point(),
            function: function.clone(),
            is_return: matches!(unit.context, Context::Return | Context::Exit { .. }),
            task,
            regs: match unit.context {
                Context::Entry | Context::Return => codegen::Regs::Kernel,
                Context::Perf => codegen::Regs::Sampled,
                _ => codegen::Regs::None,
            },
        };
        let mut g = Gen::new(&site, &mut tables);
        g.prologue();
        let guards = support::leading_guards(&probe.body);
        let (slots, faults) = match mode {
            BpfMode::InKernel => {
                let types = probe.locals.clone();
                let caps = g.local_caps(&probe.body, &types, &[]);
                g.locals = g.alloc_locals(&types, &caps)?;
                g.local_types = types;
                match &probe.entry {
                    // The guards a thread answers alike at both ends (its
                    // entry half has them too), then its values: every
                    // return the entry half saw pops what it pushed.
                    Some(entry) => {
                        let thread = support::thread_guards(&probe.body[..guards]);
                        g.block(&probe.body[..thread])?;
                        g.entry_take(entry)?;
                        g.block(&probe.body[thread..guards])?;
                    }
                    None => g.block(&probe.body[..guards])?,
                }
                g.fetch_all(&unit.plans)?;
                g.block(&probe.body[guards..])?;
                (Vec::new(), Vec::new())
            }
            BpfMode::Forwarded => {
                g.block(&probe.body[..guards])?;
                let own = hoisted
                    .get(unit.probe as usize)
                    .map_or(&[][..], Vec::as_slice);
                let layout = g.hit_record(index as u32, &unit.plans, own)?;
                (layout.slots, layout.faults)
            }
        };
        let code = g.finish()?;
        let (_, attach) = attach_of(unit);
        programs.push(BpfProgram {
            name: format!("p{}_{index}", unit.probe),
            probe: unit.probe,
            attach,
            pp: site.pp.clone(),
            function,
            insns: code.insns.len() as u32,
            slots,
            faults,
        });
        codes.push(code);
    }
    check_helpers(facts, &codes)?;
    let elf_programs: Vec<elf::ElfProgram<'_>> = units
        .iter()
        .zip(&programs)
        .zip(&codes)
        .map(|((unit, p), code)| elf::ElfProgram {
            name: &p.name,
            section: attach_of(unit).0,
            code,
        })
        .collect();
    let object = elf::write_object(&elf_programs, &layout.maps)?;
    Ok(BpfArtefact {
        object,
        mode,
        programs,
        maps: layout.maps,
        program: program.clone(),
        formats: tables.formats,
        errors: tables.errors,
        globals: layout.globals,
    })
}

/// Every helper the programs call exists on the kernel with the number we
/// call it by, where the kernel's BTF has `enum bpf_func_id`.
fn check_helpers(facts: &KernelFacts, codes: &[Code]) -> Result<(), BpfError> {
    use tapmatrix_facts::btf::{Kind, Type};
    let Some(btf) = &facts.btf else {
        return Ok(());
    };
    let Some(id) = btf.find(Kind::Enum, "bpf_func_id") else {
        return Ok(());
    };
    let Ok(Type::Enum(functions)) = btf.get(id) else {
        return Ok(());
    };
    let known: Vec<(String, i128)> = functions
        .values()
        .flatten()
        .map(|(name, value)| (name.to_owned(), value))
        .collect();
    for helper in helpers::Helper::ALL {
        let used = codes.iter().any(|code| {
            code.insns
                .iter()
                .any(|insn| *insn == insn::Insn::call(helper.id()))
        });
        if !used {
            continue;
        }
        let name = format!("BPF_FUNC_{}", helper.name());
        match known.iter().find(|(n, _)| *n == name) {
            Some((_, value)) if *value == i128::from(helper.id()) => {}
            Some((_, value)) => {
                return Err(BpfError::Helper {
                    name: helper.name(),
                    why: format!("the kernel numbers it {value}, not {}", helper.id()),
                });
            }
            None => {
                return Err(BpfError::Helper {
                    name: helper.name(),
                    why: "this kernel does not have it".to_owned(),
                });
            }
        }
    }
    Ok(())
}

/// A listing of what an artefact holds, for review: its mode, maps, and
/// each program's attach point and disassembly.
pub fn dump(artefact: &BpfArtefact) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(out, "mode: {:?}", artefact.mode);
    for map in &artefact.maps {
        let _ = writeln!(
            out,
            "map {}: {:?} key {} value {} entries {} ({:?})",
            map.name, map.kind, map.key_size, map.value_size, map.max_entries, map.role
        );
    }
    let listings = elf::read_programs(&artefact.object);
    for program in &artefact.programs {
        let _ = writeln!(
            out,
            "\nprogram {} ({}) {:?}",
            program.name, program.pp, program.attach
        );
        match listings.iter().find(|(name, _, _)| *name == program.name) {
            Some((_, insns, maps)) => out.push_str(&disasm::listing(insns, maps)),
            None => out.push_str("  (not in the object)\n"),
        }
    }
    out
}
