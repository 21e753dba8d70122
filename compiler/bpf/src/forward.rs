//! Forwarded mode: a program gathers its hit (the context and every fetch
//! slot) into one record; the agent feeds it to the runtime as the tracefs
//! path does. Leading guards that need nothing but the task run first, in
//! the kernel, so hits they reject never leave it.

use tapmatrix_ir::bpf::{FAULT_WORD_BYTES, FaultWord, Field, HIT_HEADER, RecordTag};
use tapmatrix_ir::{Expr, ScalarType};

use crate::codegen::{FaultTo, Gen, SCRATCH, Slot, StrPlace};
use crate::error::BpfError;
use crate::fetch::{Plan, Read};
use crate::helpers::Helper;
use crate::insn::{Alu, Reg, Size};
use crate::layout::round8;

/// A forwarded program's record: where its slots and fault words are.
pub(crate) struct HitLayout {
    /// Every slot: the fetch requests', then the hoisted expressions'.
    pub(crate) slots: Vec<Field>,
    /// The hoisted slots' fault words.
    pub(crate) faults: Vec<FaultWord>,
}

impl Gen<'_> {
    /// The hit record of program `id`, whose fetch requests read as
    /// `plans` and whose probe's `hoisted` expressions the kernel computes
    /// (see [`crate::hoist`]); the layout of its slots.
    pub(crate) fn hit_record(
        &mut self,
        id: u32,
        plans: &[Plan],
        hoisted: &[Expr],
    ) -> Result<HitLayout, BpfError> {
        let mut fields = Vec::with_capacity(plans.len() + hoisted.len());
        let mut size = HIT_HEADER;
        for plan in plans {
            let (ty, len) = match plan.read {
                Read::Long => (ScalarType::Long, 8),
                Read::Str { cap, .. } => (ScalarType::String, round8(cap)),
            };
            fields.push(Field {
                offset: size,
                ty,
                len,
            });
            size += len;
        }
        // The hoisted expressions read the fetch slots: computed first.
        if !hoisted.is_empty() {
            self.fetch_all(plans)?;
        }
        let mut faults = Vec::with_capacity(hoisted.len());
        for e in hoisted {
            let (ty, len) = match self.ty(e) {
                ScalarType::Long => (ScalarType::Long, 8),
                ScalarType::String => (ScalarType::String, round8(self.max_string())),
            };
            fields.push(Field {
                offset: size,
                ty,
                len,
            });
            faults.push(FaultWord {
                slot: fields.len() as u32 - 1,
                offset: size + len,
            });
            size += len + FAULT_WORD_BYTES;
        }
        let rec = self.scratch_alloc(size)?;
        let at = |n: u32| (rec + n as i32) as i16;
        self.header(rec, RecordTag::Hit, id);
        self.asm.call(Helper::GetCurrentPidTgid);
        self.asm.store(Size::DW, SCRATCH, at(8), Reg::R0);
        self.asm.call(Helper::KtimeGetNs);
        self.asm.store(Size::DW, SCRATCH, at(16), Reg::R0);
        self.asm.call(Helper::GetSmpProcessorId);
        self.asm.store(Size::W, SCRATCH, at(24), Reg::R0);
        self.asm.call(Helper::GetCurrentUidGid);
        self.asm.store(Size::W, SCRATCH, at(28), Reg::R0);
        self.asm.alu_imm(Alu::Rsh, Reg::R0, 32);
        self.asm.store(Size::W, SCRATCH, at(32), Reg::R0);
        // ppid(): current->real_parent->tgid, where BTF gives the offsets.
        match self.site.task {
            Some(task) => {
                self.asm.call(Helper::GetCurrentTask);
                self.asm.mov(Reg::R3, Reg::R0);
                self.asm.alu_imm(Alu::Add, Reg::R3, task.real_parent as i32);
                self.read_kernel(8, false)?;
                self.asm.mov(Reg::R3, Reg::R0);
                self.asm.alu_imm(Alu::Add, Reg::R3, task.tgid as i32);
                self.read_kernel(4, true)?;
                self.asm.store(Size::W, SCRATCH, at(36), Reg::R0);
            }
            None => self.asm.store_imm(Size::W, SCRATCH, at(36), -1),
        }
        self.addr(Reg::R1, SCRATCH, rec + 40);
        self.asm.mov_imm(Reg::R2, 16);
        self.asm.call(Helper::GetCurrentComm);
        for (index, (plan, field)) in plans.iter().zip(&fields).enumerate() {
            let place = StrPlace {
                base: SCRATCH,
                off: rec + field.offset as i32,
                cap: field.len,
            };
            match (plan.read, self.fetches.get(index).copied()) {
                (_, Some(Slot::Long(off))) => {
                    self.asm.load(Size::DW, Reg::R0, Reg::FP, off);
                    self.asm.store(Size::DW, SCRATCH, at(field.offset), Reg::R0);
                }
                (_, Some(Slot::Str(from))) => self.copy_string(place, from),
                (Read::Long, None) => {
                    self.fetch_long(plan)?;
                    self.asm.store(Size::DW, SCRATCH, at(field.offset), Reg::R0);
                }
                (Read::Str { .. }, None) => self.fetch_string(plan, place)?,
            }
        }
        for ((e, field), fault) in hoisted.iter().zip(&fields[plans.len()..]).zip(&faults) {
            let mark = self.mark();
            let skip = self.asm.label();
            self.asm.store_imm(Size::W, SCRATCH, at(fault.offset), 0);
            self.fault_to = Some(FaultTo {
                skip,
                word: rec + fault.offset as i32,
            });
            match field.ty {
                ScalarType::Long => {
                    self.long(e)?;
                    self.asm.store(Size::DW, SCRATCH, at(field.offset), Reg::R0);
                }
                ScalarType::String => {
                    let value = self.string(e)?;
                    let place = StrPlace {
                        base: SCRATCH,
                        off: rec + field.offset as i32,
                        cap: field.len,
                    };
                    self.copy_string(place, value);
                }
            }
            self.fault_to = None;
            self.asm.bind(skip);
            self.release(mark);
        }
        self.send(rec, size);
        Ok(HitLayout {
            slots: fields,
            faults,
        })
    }
}
