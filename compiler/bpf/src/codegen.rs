//! The state of one program being generated: registers, the stack and the
//! per-CPU scratch memory, locals and fetch slots, and the code every
//! program shares (prologue, records, errors).
//!
//! Registers: `r6` holds the context, `r7` the scalars map's value
//! (session state, `target()`, scalar globals), `r9` this CPU's scratch
//! memory; all three survive helper calls. Long expressions are computed
//! into `r0`, with intermediate values spilled to the stack; `r8` holds a
//! map element between its lookup and its update. Strings live in scratch
//! memory (or in the scalars map, for string globals), NUL-terminated
//! within their buffer.

use tapmatrix_ir::bpf::{ErrorSite, Field, PrintfRecord, RECORD_HEADER, RecordTag, STATE_STOPPED};
use tapmatrix_ir::{FormatSpec, Limits, Program, ScalarType};

use crate::asm::{Asm, Label};
use crate::error::BpfError;
use crate::fetch::{Last, Plan, Read, Start};
use crate::helpers::Helper;
use crate::insn::{Alu, Cond, Insn, Reg, Size};
use crate::layout::{
    LOST_OFFSET, Layout, SCRATCH_BYTES, SCRATCH_SLOTS, SKIPPED_OFFSET, STATE_OFFSET, round8,
};

/// The context pointer.
pub(crate) const CTX: Reg = Reg::R6;
/// Offset of the word in the scratch memory that says a handler is using
/// it on this CPU (see [`Gen::prologue`]).
pub(crate) const SCRATCH_OWNER: i16 = 0;
/// The scalars map's value.
pub(crate) const SCALARS: Reg = Reg::R7;
/// A map element between lookup and update.
pub(crate) const ELEM: Reg = Reg::R8;
/// This CPU's scratch memory.
pub(crate) const SCRATCH: Reg = Reg::R9;

/// The BPF stack's size.
const STACK: i32 = 512;

/// Where a string is: a buffer at `base + off` of `cap` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StrPlace {
    pub(crate) base: Reg,
    pub(crate) off: i32,
    pub(crate) cap: u32,
}

/// Where a local lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Slot {
    /// A long on the stack at `r10 + off`.
    Long(i16),
    /// A string in scratch memory.
    Str(StrPlace),
}

/// The tables all programs of an artefact add to.
#[derive(Debug, Default)]
pub(crate) struct Tables {
    pub(crate) formats: Vec<PrintfRecord>,
    pub(crate) errors: Vec<ErrorSite>,
}

/// What a program is generated for.
pub(crate) struct Site<'a> {
    /// The whole program (types, functions, globals).
    pub(crate) program: &'a Program,
    /// The maps and globals.
    pub(crate) layout: &'a Layout,
    /// `pp()`.
    pub(crate) pp: String,
    /// `probefunc()`.
    pub(crate) function: String,
    /// A return probe.
    pub(crate) is_return: bool,
    /// `task_struct` offsets from the kernel's BTF, when it has them.
    pub(crate) task: Option<TaskOffsets>,
    /// What registers the program's context holds.
    pub(crate) regs: Regs,
}

/// The registers a program's context holds (`user_mode()`, `addr()`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Regs {
    /// A kprobe's or kretprobe's `struct pt_regs`: kernel code.
    Kernel,
    /// A perf sample's (`struct bpf_perf_event_data` starts with
    /// `pt_regs`): the code the sample interrupted, kernel or user.
    Sampled,
    /// None (a tracepoint's record, a trampoline's or raw tracepoint's
    /// arguments).
    None,
}

/// `offsetof(struct pt_regs, ip)` on x86_64.
pub(crate) const PT_REGS_IP: i16 = 16 * 8;
/// `offsetof(struct pt_regs, cs)` on x86_64.
pub(crate) const PT_REGS_CS: i16 = 17 * 8;

/// Offsets in `struct task_struct` the context builtins read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TaskOffsets {
    /// `real_parent` (a pointer).
    pub(crate) real_parent: u32,
    /// `tgid` (a `pid_t`).
    pub(crate) tgid: u32,
    /// `mm` (a pointer), and `arg_start` and `arg_end` in `struct
    /// mm_struct`, for `cmdline_str()`.
    pub(crate) args: Option<(u32, u32, u32)>,
}

impl TaskOffsets {
    /// The offsets from `facts`' BTF.
    pub(crate) fn of(facts: &tapmatrix_facts::KernelFacts) -> Option<TaskOffsets> {
        let btf = facts.btf.as_ref()?;
        let task = btf.find(tapmatrix_facts::btf::Kind::Struct, "task_struct")?;
        let offset = |name: &str| {
            btf.member(task, name)
                .ok()
                .flatten()
                .filter(|m| m.bitfield_size.is_none())
                .map(|m| m.bit_offset / 8)
        };
        let mm = btf.find(tapmatrix_facts::btf::Kind::Struct, "mm_struct");
        let mm_offset = |name: &str| {
            btf.member(mm?, name)
                .ok()
                .flatten()
                .filter(|m| m.bitfield_size.is_none())
                .map(|m| m.bit_offset / 8)
        };
        let args = match (offset("mm"), mm_offset("arg_start"), mm_offset("arg_end")) {
            (Some(mm), Some(start), Some(end)) => Some((mm, start, end)),
            _ => None,
        };
        Some(TaskOffsets {
            real_parent: offset("real_parent")?,
            tgid: offset("tgid")?,
            args,
        })
    }
}

/// Where a run-time error goes while a forwarded program computes a slot
/// itself: into the slot's fault word (the error index plus one, and the
/// address), then on to the end of the slot; the runtime raises it when
/// the handler uses the slot.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FaultTo {
    /// The end of the slot's code.
    pub(crate) skip: Label,
    /// The fault word, in scratch memory.
    pub(crate) word: i32,
}

/// A function inlined at a call: its locals and where `return` goes.
pub(crate) struct Inlined {
    pub(crate) function: u32,
    pub(crate) locals: Vec<Slot>,
    pub(crate) types: Vec<ScalarType>,
    /// The parameters whose value is known at this call (`Gen::fold`).
    pub(crate) known: Vec<Option<i64>>,
    pub(crate) done: Label,
    pub(crate) result: Option<Slot>,
}

/// One program being generated.
pub(crate) struct Gen<'a> {
    pub(crate) asm: Asm,
    pub(crate) site: &'a Site<'a>,
    pub(crate) tables: &'a mut Tables,
    /// Lowest stack offset used so far (negative).
    stack: i32,

    /// Next free scratch offset.
    scratch: i32,
    /// The probe's locals.
    pub(crate) locals: Vec<Slot>,
    pub(crate) local_types: Vec<ScalarType>,
    /// The fetch slots, computed at entry.
    pub(crate) fetches: Vec<Slot>,
    pub(crate) fetch_types: Vec<ScalarType>,
    /// A return probe's `@entry` values, popped before its handler.
    pub(crate) entry: Vec<Slot>,
    pub(crate) entry_types: Vec<ScalarType>,
    /// Functions being inlined, innermost last.
    pub(crate) inlined: Vec<Inlined>,
    /// (continue, break) of enclosing loops, innermost last.
    pub(crate) loops: Vec<(Label, Label)>,
    /// The instructions the verifier walks beyond the code's length: a
    /// loop is checked once per iteration (see [`crate::stmt::VERIFIER_BUDGET`]).
    pub(crate) loop_extra: u64,
    /// The end of the handler: the scratch memory given back, `return 0`.
    pub(crate) out: Label,
    /// `return 0` before the scratch memory is taken.
    pub(crate) leave: Label,
    /// Where run-time errors go instead of ending the handler.
    pub(crate) fault_to: Option<FaultTo>,
    /// The shared ends of the handler's run-time errors, without and with
    /// an address (see [`Gen::raise`]), once one is raised.
    raise_tails: [Option<Label>; 2],
}

/// A mark to release temporaries to.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Mark {
    stack: i32,
    scratch: i32,
}

impl<'a> Gen<'a> {
    pub(crate) fn new(site: &'a Site<'a>, tables: &'a mut Tables) -> Gen<'a> {
        let mut asm = Asm::new();
        let out = asm.label();
        let leave = asm.label();
        Gen {
            asm,
            site,
            tables,
            // r10-8 holds the u32 key 0 of the array maps.
            stack: -8,

            // The first word is the scratch memory's owner flag.
            scratch: SCRATCH_OWNER as i32 + 8,
            locals: Vec::new(),
            local_types: Vec::new(),
            fetches: Vec::new(),
            fetch_types: Vec::new(),
            entry: Vec::new(),
            entry_types: Vec::new(),
            inlined: Vec::new(),
            loops: Vec::new(),
            loop_extra: 0,
            out,
            leave,
            fault_to: None,
            raise_tails: [None, None],
        }
    }

    pub(crate) fn limits(&self) -> &Limits {
        &self.site.program.limits
    }

    /// The largest string a value holds, terminator included.
    pub(crate) fn max_string(&self) -> u32 {
        self.limits().max_string_len.max(1)
    }

    pub(crate) fn mark(&self) -> Mark {
        Mark {
            stack: self.stack,
            scratch: self.scratch,
        }
    }

    pub(crate) fn release(&mut self, mark: Mark) {
        self.stack = mark.stack;
        self.scratch = mark.scratch;
    }

    /// `bytes` of stack (rounded up to 8); its offset from `r10`.
    pub(crate) fn stack_alloc(&mut self, bytes: u32) -> Result<i16, BpfError> {
        self.stack -= round8(bytes.max(1)) as i32;
        if -self.stack > STACK {
            return Err(BpfError::TooLarge {
                what: "the handler's locals and temporaries",
                limit: "the 512-byte BPF stack",
            });
        }
        Ok(self.stack as i16)
    }

    /// `bytes` of scratch memory (rounded up to 8); its offset.
    pub(crate) fn scratch_alloc(&mut self, bytes: u32) -> Result<i32, BpfError> {
        let off = self.scratch;
        self.scratch += round8(bytes.max(1)) as i32;
        if self.scratch as u32 > SCRATCH_BYTES {
            return Err(BpfError::TooLarge {
                what: "the handler's strings",
                limit: "32 KiB of scratch memory per CPU",
            });
        }
        Ok(off)
    }

    /// A string buffer of `cap` bytes in scratch memory.
    pub(crate) fn str_temp(&mut self, cap: u32) -> Result<StrPlace, BpfError> {
        let off = self.scratch_alloc(cap)?;
        Ok(StrPlace {
            base: SCRATCH,
            off,
            cap,
        })
    }

    /// `dst = base + off`.
    pub(crate) fn addr(&mut self, dst: Reg, base: Reg, off: i32) {
        self.asm.mov(dst, base);
        if off != 0 {
            self.asm.alu_imm(Alu::Add, dst, off);
        }
    }

    /// `r0 = lookup(map, key)`; the key at `key_base + key_off`.
    pub(crate) fn lookup(&mut self, map: usize, key_base: Reg, key_off: i32) {
        self.asm.load_map(Reg::R1, map);
        self.addr(Reg::R2, key_base, key_off);
        self.asm.call(Helper::MapLookupElem);
    }

    /// The code before the body: the context kept, the scalars map's value
    /// (and leave when the session stopped), a slot of scratch memory,
    /// taken.
    ///
    /// Each CPU has [`SCRATCH_SLOTS`] slots of scratch memory, shared by
    /// every program. A handler takes the first free one by its first word
    /// ([`SCRATCH_OWNER`]) and gives it back on the way out, so that a
    /// handler that interrupts another on its CPU (a softirq or a hard
    /// interrupt over a task's handler: a virtio completion over the
    /// submitting task's) runs in a slot of its own instead of overwriting
    /// the first's strings and records, and so does a task's handler that
    /// preempts another's on a preemptible kernel (Debian's 7.x:
    /// `PREEMPT_LAZY`; seen on 7.3 with one slot: a string argument printed
    /// as the other task's `comm`). A hit that finds every slot taken is not
    /// run and is counted at [`SKIPPED_OFFSET`], as SystemTap skips a probe
    /// that would reenter its context. (A plain load and store suffice
    /// against interrupts: one that comes between them runs to its end
    /// before the first resumes, on a CPU it cannot leave.) The verifier
    /// walks the body once: the paths from the slots meet at the take in the
    /// same state.
    pub(crate) fn prologue(&mut self) {
        let leave = self.leave;
        self.asm.mov(CTX, Reg::R1);
        self.asm.store_imm(Size::W, Reg::FP, -8, 0);
        self.lookup(self.site.layout.scalars, Reg::FP, -8);
        self.asm.jump_imm(Cond::Eq, Reg::R0, 0, leave);
        self.asm.mov(SCALARS, Reg::R0);
        self.asm.load(Size::DW, Reg::R1, SCALARS, STATE_OFFSET);
        self.asm.jump_imm(Cond::Ne, Reg::R1, 0, leave);
        let take = self.asm.label();
        for slot in 0..SCRATCH_SLOTS {
            self.asm.store_imm(Size::W, Reg::FP, -8, slot as i32);
            self.lookup(self.site.layout.scratch, Reg::FP, -8);
            self.asm.jump_imm(Cond::Eq, Reg::R0, 0, leave);
            self.asm.load(Size::DW, Reg::R1, Reg::R0, SCRATCH_OWNER);
            self.asm.jump_imm(Cond::Eq, Reg::R1, 0, take);
        }
        self.asm.mov_imm(Reg::R1, 1);
        self.emit(Insn::atomic_add(Size::DW, SCALARS, SKIPPED_OFFSET, Reg::R1));
        self.asm.goto(leave);
        self.asm.bind(take);
        self.asm.mov(SCRATCH, Reg::R0);
        self.asm.store_imm(Size::DW, SCRATCH, SCRATCH_OWNER, 1);
    }

    /// Binds the exit (the scratch memory given back), adds the raise
    /// tails, and finishes the code.
    pub(crate) fn finish(mut self) -> Result<crate::asm::Code, BpfError> {
        let (out, leave) = (self.out, self.leave);
        self.asm.bind(out);
        self.asm.store_imm(Size::DW, SCRATCH, SCRATCH_OWNER, 0);
        self.asm.bind(leave);
        self.asm.ret(0);
        // After the exit, jumped to and back.
        self.raise_tails();
        self.asm.finish()
    }

    /// Local slots for `types`, zeroed; a string's buffer holds `caps` bytes
    /// (`Gen::local_caps`).
    pub(crate) fn alloc_locals(
        &mut self,
        types: &[ScalarType],
        caps: &[u32],
    ) -> Result<Vec<Slot>, BpfError> {
        let mut slots = Vec::with_capacity(types.len());
        for (ty, cap) in types.iter().zip(caps) {
            let slot = match ty {
                ScalarType::Long => {
                    let off = self.stack_alloc(8)?;
                    self.asm.store_imm(Size::DW, Reg::FP, off, 0);
                    Slot::Long(off)
                }
                ScalarType::String => {
                    let place = self.str_temp((*cap).clamp(1, self.max_string()))?;
                    self.asm.store_imm(Size::B, place.base, place.off as i16, 0);
                    Slot::Str(place)
                }
            };
            slots.push(slot);
        }
        Ok(slots)
    }

    /// Computes every fetch slot into its own place.
    pub(crate) fn fetch_all(&mut self, plans: &[Plan]) -> Result<(), BpfError> {
        for plan in plans {
            let slot = match plan.read {
                Read::Long => {
                    let off = self.stack_alloc(8)?;
                    self.fetch_long(plan)?;
                    self.asm.store(Size::DW, Reg::FP, off, Reg::R0);
                    Slot::Long(off)
                }
                Read::Str { cap, .. } => {
                    let place = self.str_temp(cap)?;
                    self.fetch_string(plan, place)?;
                    Slot::Str(place)
                }
            };
            self.fetch_types.push(match plan.read {
                Read::Long => ScalarType::Long,
                Read::Str { .. } => ScalarType::String,
            });
            self.fetches.push(slot);
        }
        Ok(())
    }

    /// `r0` = a value of `size` bytes read at `r3` (kernel memory), through
    /// an 8-byte stack temporary.
    pub(crate) fn read_kernel(&mut self, size: u64, signed: bool) -> Result<(), BpfError> {
        let mark = self.mark();
        let tmp = self.stack_alloc(8)?;
        let width = Size::of(size).ok_or(BpfError::Internal("a read of an odd size"))?;
        self.asm.store_imm(Size::DW, Reg::FP, tmp, 0);
        self.addr(Reg::R1, Reg::FP, i32::from(tmp));
        self.asm.mov_imm(Reg::R2, size as i64);
        self.asm.call(Helper::ProbeReadKernel);
        self.asm.load(width, Reg::R0, Reg::FP, tmp);
        self.extend(Reg::R0, size, signed);
        self.release(mark);
        Ok(())
    }

    /// Sign-extends the low `size` bytes of `reg` when `signed`.
    pub(crate) fn extend(&mut self, reg: Reg, size: u64, signed: bool) {
        if size < 8 {
            let shift = (64 - 8 * size) as i32;
            self.asm.alu_imm(Alu::Lsh, reg, shift);
            let op = if signed { Alu::Arsh } else { Alu::Rsh };
            self.asm.alu_imm(op, reg, shift);
        }
    }

    /// `r0` = where the plan's value starts.
    fn fetch_start(&mut self, start: &Start) -> Result<(), BpfError> {
        match *start {
            Start::Ctx {
                offset,
                size,
                signed,
            } => {
                let width = Size::of(size).unwrap_or(Size::DW);
                self.asm.load(width, Reg::R0, CTX, offset);
                self.extend(Reg::R0, size, signed);
            }
            Start::CtxCopy { offset } => {
                self.addr(Reg::R3, CTX, i32::from(offset));
                self.read_kernel(8, false)?;
            }
            Start::CtxAddress { offset } => {
                self.addr(Reg::R0, CTX, i32::from(offset));
            }
            Start::DataLoc { offset } => {
                self.asm.load(Size::W, Reg::R1, CTX, offset);
                self.asm.alu_imm(Alu::And, Reg::R1, 0xffff);
                self.asm.mov(Reg::R0, CTX);
                self.asm.alu(Alu::Add, Reg::R0, Reg::R1);
            }
        }
        Ok(())
    }

    /// `r0` = the pointer the plan's string is at, or its long value.
    fn fetch_walk(&mut self, plan: &Plan) -> Result<(), BpfError> {
        self.fetch_start(&plan.start)?;
        for offset in &plan.derefs {
            self.asm.mov(Reg::R3, Reg::R0);
            self.add_offset(Reg::R3, *offset)?;
            self.read_kernel(8, false)?;
        }
        match plan.last {
            Last::Value { size, signed } => {
                if !matches!(plan.start, Start::Ctx { .. }) || size < 8 {
                    self.extend(Reg::R0, size, signed);
                }
            }
            Last::Load {
                offset,
                size,
                signed,
                bitfield,
            } => {
                self.asm.mov(Reg::R3, Reg::R0);
                self.add_offset(Reg::R3, offset)?;
                match bitfield {
                    None => self.read_kernel(size, signed)?,
                    Some((bit, bits)) => {
                        self.read_kernel(size, false)?;
                        if bit > 0 {
                            self.asm.alu_imm(Alu::Rsh, Reg::R0, bit as i32);
                        }
                        if bits < 64 {
                            let shift = 64 - bits as i32;
                            self.asm.alu_imm(Alu::Lsh, Reg::R0, shift);
                            self.asm.alu_imm(Alu::Rsh, Reg::R0, shift);
                        }
                    }
                }
            }
            Last::Address { offset } => self.add_offset(Reg::R0, offset)?,
        }
        Ok(())
    }

    fn add_offset(&mut self, reg: Reg, offset: u64) -> Result<(), BpfError> {
        if offset != 0 {
            let imm = i32::try_from(offset).map_err(|_| BpfError::TooLarge {
                what: "a member offset",
                limit: "2 GiB",
            })?;
            self.asm.alu_imm(Alu::Add, reg, imm);
        }
        Ok(())
    }

    /// `r0` = a long fetch.
    pub(crate) fn fetch_long(&mut self, plan: &Plan) -> Result<(), BpfError> {
        self.fetch_walk(plan)
    }

    /// A string fetch into `place`.
    pub(crate) fn fetch_string(&mut self, plan: &Plan, place: StrPlace) -> Result<(), BpfError> {
        self.fetch_walk(plan)?;
        let user = matches!(plan.read, Read::Str { user: true, .. });
        self.asm.mov(Reg::R3, Reg::R0);
        self.addr(Reg::R1, place.base, place.off);
        self.asm.mov_imm(Reg::R2, i64::from(place.cap));
        self.asm.call(if user {
            Helper::ProbeReadUserStr
        } else {
            Helper::ProbeReadKernelStr
        });
        Ok(())
    }

    /// Copies the string at `src` into `dst` (truncated to `dst.cap`).
    pub(crate) fn copy_string(&mut self, dst: StrPlace, src: StrPlace) {
        if dst == src {
            return;
        }
        self.addr(Reg::R1, dst.base, dst.off);
        self.asm
            .mov_imm(Reg::R2, i64::from(dst.cap.min(src.cap.max(1))));
        self.addr(Reg::R3, src.base, src.off);
        self.asm.call(Helper::ProbeReadKernelStr);
    }

    /// Writes the constant `text` (and its terminator, and zeros up to the
    /// next 8 bytes) at `dst`.
    pub(crate) fn write_literal(&mut self, dst: StrPlace, text: &[u8]) {
        let mut bytes = text[..text.len().min(dst.cap.saturating_sub(1) as usize)].to_vec();
        bytes.push(0);
        while !bytes.len().is_multiple_of(8) && bytes.len() < dst.cap as usize {
            bytes.push(0);
        }
        let mut at = 0;
        while at < bytes.len() {
            let rest = &bytes[at..];
            let off = (dst.off + at as i32) as i16;
            if rest.len() >= 8 {
                let mut word = [0u8; 8];
                word.copy_from_slice(&rest[..8]);
                let value = i64::from_le_bytes(word);
                self.asm.mov_imm(Reg::R1, value);
                self.asm.store(Size::DW, dst.base, off, Reg::R1);
                at += 8;
            } else {
                self.asm
                    .store_imm(Size::B, dst.base, off, i32::from(rest[0]));
                at += 1;
            }
        }
    }

    /// Sends the record of `size` bytes at scratch offset `off`.
    pub(crate) fn send(&mut self, off: i32, size: u32) {
        self.asm.load_map(Reg::R1, self.site.layout.events);
        self.addr(Reg::R2, SCRATCH, off);
        self.asm.mov_imm(Reg::R3, i64::from(size));
        self.asm.mov_imm(Reg::R4, 0);
        self.asm.call(Helper::RingbufOutput);
        // A full ring buffer: counted, never hidden.
        let sent = self.asm.label();
        self.asm.jump_imm(Cond::Sge, Reg::R0, 0, sent);
        self.asm.mov_imm(Reg::R1, 1);
        self.emit(Insn::atomic_add(Size::DW, SCALARS, LOST_OFFSET, Reg::R1));
        self.asm.bind(sent);
    }

    /// A record's header at scratch offset `off`.
    pub(crate) fn header(&mut self, off: i32, tag: RecordTag, id: u32) {
        self.asm.store_imm(Size::W, SCRATCH, off as i16, tag as i32);
        self.asm
            .store_imm(Size::W, SCRATCH, (off + 4) as i16, id as i32);
    }

    /// Stops the session: later hits do nothing.
    pub(crate) fn stop_session(&mut self) {
        self.asm.mov_imm(Reg::R1, STATE_STOPPED as i64);
        self.asm.store(Size::DW, SCALARS, STATE_OFFSET, Reg::R1);
    }

    /// Raises the run-time error `message` (fixed text): an error record,
    /// the session stopped, the handler left (or, while a forwarded
    /// program computes a slot, the slot's fault word).
    pub(crate) fn raise(&mut self, message: String) -> Result<(), BpfError> {
        self.raise_error(message, None)
    }

    /// Raises the run-time error `message` about the address in `address`
    /// (written where [`tapmatrix_ir::bpf::ADDRESS_MARK`] is).
    pub(crate) fn raise_at(&mut self, message: String, address: Reg) -> Result<(), BpfError> {
        self.raise_error(message, Some(address))
    }

    fn raise_error(&mut self, message: String, address: Option<Reg>) -> Result<(), BpfError> {
        let id = self.tables.errors.len() as u32;
        self.tables.errors.push(ErrorSite {
            message,
            dynamic: false,
            address: address.is_some(),
        });
        if let Some(to) = self.fault_to {
            self.asm
                .store_imm(Size::W, SCRATCH, to.word as i16, id as i32 + 1);
            match address {
                Some(reg) => self.asm.store(Size::DW, SCRATCH, (to.word + 8) as i16, reg),
                None => self
                    .asm
                    .store_imm(Size::DW, SCRATCH, (to.word + 8) as i16, 0),
            }
            self.asm.goto(to.skip);
            return Ok(());
        }
        // The record is written and sent by a tail shared by every error
        // of the handler, with the error's id in r1 and its address in r2:
        // the verifier walks a raise as three instructions, not the whole
        // record, each time it walks the code around it (each iteration
        // of a loop), its states at the tail pruned as equal.
        if let Some(reg) = address {
            self.asm.mov(Reg::R2, reg);
        }
        self.asm.mov_imm(Reg::R1, i64::from(id));
        let with_address = usize::from(address.is_some());
        let tail = match self.raise_tails[with_address] {
            Some(tail) => tail,
            None => {
                let tail = self.asm.label();
                self.raise_tails[with_address] = Some(tail);
                tail
            }
        };
        self.asm.goto(tail);
        Ok(())
    }

    /// The shared ends of [`Gen::raise`]: the error record (id in r1,
    /// address in r2) written at the start of the scratch memory (the
    /// handler is leaving), sent, the session stopped, the handler left.
    fn raise_tails(&mut self) {
        let out = self.out;
        for (with_address, tail) in self.raise_tails.into_iter().enumerate() {
            let Some(tail) = tail else { continue };
            self.asm.bind(tail);
            let rec = i32::from(SCRATCH_OWNER) + 8;
            let mut size = RECORD_HEADER;
            if with_address == 1 {
                self.asm.store(
                    Size::DW,
                    SCRATCH,
                    (rec + RECORD_HEADER as i32) as i16,
                    Reg::R2,
                );
                size += 8;
            }
            self.asm
                .store_imm(Size::W, SCRATCH, rec as i16, RecordTag::Error as i32);
            self.asm.store(Size::W, SCRATCH, (rec + 4) as i16, Reg::R1);
            self.send(rec, size);
            self.stop_session();
            self.asm.goto(out);
        }
    }

    /// Registers a printf record's format; its id.
    pub(crate) fn add_format(
        &mut self,
        format: Vec<FormatSpec>,
        args: Vec<Field>,
        size: u32,
    ) -> u32 {
        self.tables
            .formats
            .push(PrintfRecord { format, args, size });
        self.tables.formats.len() as u32 - 1
    }

    /// `*(u64 *)(r10 + off) = r0`.
    pub(crate) fn spill(&mut self) -> Result<i16, BpfError> {
        let off = self.stack_alloc(8)?;
        self.asm.store(Size::DW, Reg::FP, off, Reg::R0);
        Ok(off)
    }

    /// `reg = *(u64 *)(r10 + off)`.
    pub(crate) fn unspill(&mut self, reg: Reg, off: i16) {
        self.asm.load(Size::DW, reg, Reg::FP, off);
    }

    /// Emits `insn` as is.
    pub(crate) fn emit(&mut self, insn: Insn) {
        self.asm.emit(insn);
    }
}
