//! Fetch slots: how a program reads a target expression at its attach
//! point. A [`TargetAccess`] from BTF (or a tracepoint's format) becomes a
//! [`Plan`]: where the value starts in the program's context (a register
//! of `pt_regs`, an argument of a raw tracepoint, a field of a trace
//! event's record), then the memory reads (`bpf_probe_read_kernel`).

use tapmatrix_elaborate::FetchRequest;
use tapmatrix_facts::KernelFacts;
use tapmatrix_resolve::{
    AttachKind, AttachPoint, TargetAccess, TargetBase, TargetError, resolve_target,
};
use tapmatrix_syntax::ast;

use crate::error::BpfError;

/// What kind of program serves an attach point: where the context points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Context {
    /// `struct pt_regs *` at a function's entry (a kprobe).
    Entry,
    /// A BPF trampoline's argument array at a function's entry (`fentry`):
    /// the function's arguments as 64-bit words.
    Fentry {
        /// Bit `i` set: argument `i` is an integer or an enum, loaded from
        /// the context. The others are pointers, copied out of the context
        /// with `bpf_probe_read_kernel`: loaded directly, a trampoline's
        /// pointer argument is a BTF pointer the verifier allows no
        /// arithmetic but adding on, and 5.10 refuses loading one to
        /// anything but a struct (`vfs_read`'s `char *buf`).
        scalars: u8,
    },
    /// `struct pt_regs *` at a function's return (a kretprobe).
    Return,
    /// A BPF trampoline's argument array at a function's return (`fexit`):
    /// the function's `args` arguments, then its return value.
    Exit {
        /// The function's arguments.
        args: u8,
    },
    /// A trace event's record.
    Record,
    /// A raw tracepoint's argument array.
    Args,
    /// `struct bpf_perf_event_data *` (starts with `pt_regs`): a perf
    /// event's sample.
    Perf,
    /// None the back end attaches to.
    Other,
}

/// Where a fetched value starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Start {
    /// A load from the context at this offset, of this many bytes.
    Ctx {
        /// Offset.
        offset: i16,
        /// Bytes (1, 2, 4, 8).
        size: u64,
        /// Sign-extended.
        signed: bool,
    },
    /// The 64-bit word at this offset of the context, copied with
    /// `bpf_probe_read_kernel` (a trampoline's pointer argument, as a
    /// plain number).
    CtxCopy {
        /// Offset.
        offset: i16,
    },
    /// The address of a trace record's field (`char comm[16]`).
    CtxAddress {
        /// Offset.
        offset: i16,
    },
    /// A `__data_loc` field: the characters are at the record's start plus
    /// the low 16 bits of the 32-bit word at `offset`.
    DataLoc {
        /// Offset.
        offset: i16,
    },
}

/// What the slot holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Read {
    /// A long.
    Long,
    /// A string of at most `cap - 1` bytes.
    Str {
        /// From user memory.
        user: bool,
        /// Buffer size, terminator included.
        cap: u32,
    },
}

/// How to read one fetch slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Plan {
    pub(crate) start: Start,
    /// Pointer reads: (current + offset) read as a 64-bit pointer.
    pub(crate) derefs: Vec<u64>,
    /// The last step.
    pub(crate) last: Last,
    pub(crate) read: Read,
}

/// The last step of a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Last {
    /// The current value is the result (narrowed to `size` bytes).
    Value { size: u64, signed: bool },
    /// Read `size` bytes at (current + offset).
    Load {
        offset: u64,
        size: u64,
        signed: bool,
        bitfield: Option<(u32, u32)>,
    },
    /// The result is (current + offset): an address (strings only).
    Address { offset: u64 },
}

/// Register offsets in x86_64's `struct pt_regs` (used when the kernel's
/// BTF does not say).
const PT_REGS: [(&str, i16); 7] = [
    ("di", 112),
    ("si", 104),
    ("dx", 96),
    ("cx", 88),
    ("r8", 72),
    ("r9", 64),
    ("ax", 80),
];

/// The offset of register `name` in `struct pt_regs`, from BTF.
pub(crate) fn pt_regs_offset(facts: &KernelFacts, name: &str) -> Option<i16> {
    let from_btf = facts.btf.as_ref().and_then(|btf| {
        let id = btf.find(tapmatrix_facts::btf::Kind::Struct, "pt_regs")?;
        let member = btf.member(id, name).ok()??;
        i16::try_from(member.bit_offset / 8).ok()
    });
    from_btf.or_else(|| PT_REGS.iter().find(|(r, _)| *r == name).map(|(_, o)| *o))
}

/// The context a tracepoint attach point needs: its record when every
/// request reads format fields (elaboration resolved them fields first),
/// its argument array when one reads a BTF argument (`$prev->pid`).
pub(crate) fn tracepoint_context(targets: &[Result<TargetAccess, TargetError>]) -> Context {
    let needs_args = targets.iter().any(|access| {
        matches!(
            access,
            Ok(TargetAccess {
                base: TargetBase::Param { .. },
                ..
            })
        )
    });
    if needs_args {
        Context::Args
    } else {
        Context::Record
    }
}

/// How to read a target in `context`: as elaboration resolved it, except
/// that a format field is read as the argument of its name when the
/// program reads the argument array (a raw tracepoint has no record).
fn access(
    facts: &KernelFacts,
    at: &AttachPoint,
    target: &ast::Target,
    resolved: &Result<TargetAccess, TargetError>,
    context: Context,
) -> Result<TargetAccess, TargetError> {
    match resolved {
        Ok(TargetAccess {
            base: TargetBase::Field { .. },
            ..
        }) if context == Context::Args => resolve_target(facts, at, target),
        other => other.clone(),
    }
}

/// The plan for one request at an attach point.
pub(crate) fn plan(
    request: &FetchRequest,
    resolved: &Result<TargetAccess, TargetError>,
    at: &AttachPoint,
    context: Context,
    facts: &KernelFacts,
    max_string: u32,
) -> Result<Plan, BpfError> {
    let (target, text, location, mut read) = match request {
        FetchRequest::Value {
            target,
            text,
            location,
        } => (target, text, location, Read::Long),
        FetchRequest::String {
            target,
            user,
            max_len,
            text,
            location,
        } => {
            let cap = match max_len {
                Some(n) if *n >= 0 => (u32::try_from(*n).unwrap_or(u32::MAX))
                    .saturating_add(1)
                    .min(max_string),
                _ => max_string,
            };
            (
                target,
                text,
                location,
                Read::Str {
                    user: *user,
                    cap: cap.max(1),
                },
            )
        }
        FetchRequest::Defined { .. } => {
            return Err(BpfError::Internal("@defined left unresolved"));
        }
    };
    let error = |why: String| BpfError::Target {
        location: location.clone(),
        text: text.clone(),
        probe_point: at.probe_point(),
        why,
    };
    let access = access(facts, at, target, resolved, context).map_err(|e| error(e.to_string()))?;
    let size = access.var.size.unwrap_or(8);
    let signed = access.var.signed.unwrap_or(false);
    let reg = |name: &str| {
        pt_regs_offset(facts, name).ok_or_else(|| error(format!("no register {name} in pt_regs")))
    };
    let start = match (&access.base, context) {
        (TargetBase::Param { index, name }, Context::Entry) => {
            let register = ["di", "si", "dx", "cx", "r8", "r9"]
                .get(*index)
                .ok_or_else(|| {
                    error(format!(
                        "parameter {name} is argument {}: only the first six are in registers",
                        index + 1
                    ))
                })?;
            Start::Ctx {
                offset: reg(register)?,
                size: 8,
                signed: false,
            }
        }
        (TargetBase::Param { index, .. }, Context::Fentry { scalars }) => {
            let offset =
                i16::try_from(8 * index).map_err(|_| error("argument too far".to_owned()))?;
            if *index < 8 && scalars & (1 << index) != 0 {
                Start::Ctx {
                    offset,
                    size: 8,
                    signed: false,
                }
            } else {
                Start::CtxCopy { offset }
            }
        }
        (TargetBase::Param { index, .. }, Context::Args) => Start::Ctx {
            offset: i16::try_from(8 * index).map_err(|_| error("argument too far".to_owned()))?,
            size: 8,
            signed: false,
        },
        (TargetBase::Return, Context::Return) => Start::Ctx {
            offset: reg("ax")?,
            size: 8,
            signed: false,
        },
        (TargetBase::Return, Context::Exit { args }) => Start::Ctx {
            offset: 8 * i16::from(args),
            size: 8,
            signed: false,
        },
        (TargetBase::Field { offset, name }, Context::Record) => {
            let offset = i16::try_from(*offset).map_err(|_| error("field too far".to_owned()))?;
            let c_type = access.var.c_type.as_str();
            if let Some(pointer) = syscall_string_pointer(facts, at, name, c_type) {
                // A syscall event's BPF context holds its arguments only,
                // not the strings the event copies (`__NAME_val`, 7.0 on):
                // the string is read from the user pointer argument NAME.
                if let Read::Str { cap, .. } = read {
                    read = Read::Str { user: true, cap };
                }
                Start::Ctx {
                    offset: pointer,
                    size: 8,
                    signed: false,
                }
            } else if c_type.starts_with("__data_loc") {
                Start::DataLoc { offset }
            } else if c_type.contains("char[") {
                Start::CtxAddress { offset }
            } else {
                Start::Ctx {
                    offset,
                    size,
                    signed,
                }
            }
        }
        (TargetBase::Param { name, .. }, Context::Return | Context::Exit { .. }) => {
            return Err(error(format!(
                "parameter ${name} cannot be read at a function's return (use @entry)"
            )));
        }
        (TargetBase::Cast { type_name }, _) => {
            return Err(error(format!(
                "@cast(..., \"{type_name}\") of a computed address"
            )));
        }
        (base, _) => {
            return Err(error(format!("{base:?} cannot be read here")));
        }
    };
    let mut loads = access.loads.clone();
    let is_address_start = matches!(start, Start::CtxAddress { .. } | Start::DataLoc { .. })
        || (matches!(start, Start::Ctx { .. }) && access.var.c_type.starts_with("__data_loc"));
    let last = match (read, access.address) {
        (Read::Str { .. }, Some(offset)) => Last::Address { offset },
        (Read::Str { .. }, None) if is_address_start => Last::Address { offset: 0 },
        (Read::Str { .. }, None) => match loads.pop() {
            Some(offset) => Last::Load {
                offset,
                size: 8,
                signed: false,
                bitfield: None,
            },
            None => Last::Value {
                size: 8,
                signed: false,
            },
        },
        (Read::Long, Some(_)) => {
            return Err(error(format!(
                "{} is an address (an array, a struct or `&`): read it with kernel_string() or a member",
                access.var.c_type
            )));
        }
        (Read::Long, None) if is_address_start => {
            return Err(error(format!(
                "${} is {}: read it with kernel_string()",
                access.var.name, access.var.c_type
            )));
        }
        (Read::Long, None) => match loads.pop() {
            Some(offset) => Last::Load {
                offset,
                size,
                signed,
                bitfield: access.bitfield,
            },
            None => Last::Value { size, signed },
        },
    };
    if !matches!(size, 1 | 2 | 4 | 8) && matches!(last, Last::Load { .. } | Last::Value { .. }) {
        return Err(error(format!(
            "{} is not a 1, 2, 4 or 8 byte value",
            access.var.c_type
        )));
    }
    Ok(Plan {
        start,
        derefs: loads,
        last,
        read,
    })
}

/// For the copied string field `__NAME_val` of a `syscalls:` event, the
/// offset of its pointer argument `NAME`.
fn syscall_string_pointer(
    facts: &KernelFacts,
    at: &AttachPoint,
    field: &str,
    c_type: &str,
) -> Option<i16> {
    let (system, event) = at.target.split_once(':')?;
    if system != "syscalls" || !c_type.starts_with("__data_loc") {
        return None;
    }
    let argument = field.strip_prefix("__")?.strip_suffix("_val")?;
    let pointer = facts.tracepoint(system, event)?.field(argument)?;
    (pointer.size == 8).then(|| i16::try_from(pointer.offset).ok())?
}

/// The context of an attach point's program. With `trampolines`, a
/// function's entry is an `fentry` program and its return an `fexit`
/// program where the kernel can attach one (see [`entry_args`],
/// [`exit_args`]); otherwise, and without, a kprobe and a kretprobe.
pub(crate) fn context_of(
    facts: &KernelFacts,
    at: &AttachPoint,
    targets: &[Result<TargetAccess, TargetError>],
    trampolines: bool,
) -> Context {
    match at.kind {
        AttachKind::Kprobe => match entry_args(facts, at) {
            Some(scalars) if trampolines => Context::Fentry { scalars },
            _ => Context::Entry,
        },
        AttachKind::Kretprobe => match exit_args(facts, at) {
            Some(args) if trampolines => Context::Exit { args },
            _ => Context::Return,
        },
        AttachKind::Tracepoint => tracepoint_context(targets),
        AttachKind::Perf => Context::Perf,
        _ => Context::Other,
    }
}

/// Whether the kernel's BPF trampolines serve function probes: only where
/// the kernel's own code is not preempted (`CONFIG_PREEMPT_VOLUNTARY` or
/// `_NONE`, as the config in the facts says). A trampoline's program runs
/// with migration disabled but preemption enabled, and each program
/// counts its runs per CPU: on a preemptible kernel (7.x: `PREEMPT_LAZY`)
/// a task preempted inside it makes the program skip every other task's
/// hit on that CPU until it resumes, and another program may overwrite
/// the per-CPU scratch memory meanwhile. Measured: `tapset_vfs` (an
/// `fentry` on the open of the workload's exec) missed that open 3 times
/// in 60 runs on 7.1 and 7.3, and never as a kprobe, which runs with
/// preemption disabled. Without a config (7.0, 7.1), kprobes.
pub(crate) fn trampolines_serve(facts: &KernelFacts) -> bool {
    let Some(config) = &facts.config else {
        return false;
    };
    let preemptible = ["PREEMPT", "PREEMPT_LAZY", "PREEMPT_RT"]
        .iter()
        .any(|option| config.is_enabled(option));
    !preemptible && (config.is_enabled("PREEMPT_VOLUNTARY") || config.is_enabled("PREEMPT_NONE"))
}

/// The arguments a BPF trampoline hands an x86_64 program (5.10's limit).
const EXIT_MAX_ARGS: usize = 6;

/// The arguments of a function whose return an `fexit` program can serve,
/// `None` when it takes a kretprobe. A kretprobe keeps a pool of instances
/// for the calls in flight, `num_possible_cpus()` of them on 5.10 (one
/// in a one-CPU guest) and perf's kprobe PMU has no way to ask for more:
/// a single other task asleep in the function (the agent in a pipe read)
/// then hides every return of the workload's calls (measured: a `cat`
/// blocked in `vfs_read` left `dd`'s three reads uncounted on 5.10, not on
/// 6.1 and later). A trampoline has no such pool. It needs the function
/// in the kernel's BTF, traceable (in `available_filter_functions`), in
/// the kernel image (5.10 has no module BTF), with at most six arguments
/// each an integer, an enum or a pointer, and a return value the verifier
/// lets a program read (an integer or an enum: 5.10 refuses pointers to
/// anything but a struct) or none.
pub(crate) fn exit_args(facts: &KernelFacts, at: &AttachPoint) -> Option<u8> {
    let (args, ret) = trampoline_model(facts, at)?;
    if !matches!(ret, Word::Scalar | Word::Void) {
        return None;
    }
    u8::try_from(args.len()).ok()
}

/// Where a function's entry can be an `fentry` program: the same function
/// as [`exit_args`] asks for, with a return value of any kind a trampoline
/// models (an integer, an enum, a pointer or none), which the program
/// does not read. Its arguments' [`Context::Fentry::scalars`].
///
/// Measured (`tapmatrix bench event 5.10`, 200k one-byte reads under
/// TCG): a counting program on `vfs_read` costs the workload +0.12 µs per
/// event as an `fentry` on 5.10, +0.45 as a kprobe. Used only where
/// [`trampolines_serve`].
pub(crate) fn entry_args(facts: &KernelFacts, at: &AttachPoint) -> Option<u8> {
    let (args, _) = trampoline_model(facts, at)?;
    Some(
        args.iter()
            .enumerate()
            .filter(|(_, word)| **word == Word::Scalar)
            .fold(0, |bits, (index, _)| bits | (1 << index)),
    )
}

/// What one argument or return value of a function is to a trampoline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Word {
    /// An integer or an enum.
    Scalar,
    /// A pointer.
    Pointer,
    /// No value (a `void` return).
    Void,
}

/// The arguments and the return value of a function a BPF trampoline can
/// attach to (see [`exit_args`]).
fn trampoline_model(facts: &KernelFacts, at: &AttachPoint) -> Option<(Vec<Word>, Word)> {
    use tapmatrix_facts::btf::Kind;
    if at.module.is_some() || !facts.is_attachable(&at.target) {
        return None;
    }
    let btf = facts.btf.as_ref()?;
    let function = btf.function(&at.target)?.ok()?;
    let word = |id| match btf.resolve(id).and_then(|id| btf.kind(id)).ok()? {
        Kind::Int | Kind::Enum | Kind::Enum64 => Some(Word::Scalar),
        Kind::Ptr => Some(Word::Pointer),
        _ => None,
    };
    let ret = match function.proto.ret {
        0 => Word::Void,
        id => word(id)?,
    };
    let params: Vec<_> = function.proto.params().collect::<Result<_, _>>().ok()?;
    if params.len() > EXIT_MAX_ARGS {
        return None;
    }
    let args = params
        .iter()
        .map(|p| if p.ty == 0 { None } else { word(p.ty) })
        .collect::<Option<Vec<Word>>>()?;
    Some((args, ret))
}
