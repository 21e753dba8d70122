//! Forwarded mode: a program gathers its hit (the context and every fetch
//! slot) into one record; the agent feeds it to the runtime as the tracefs
//! path does. Leading guards that need nothing but the task run first, in
//! the kernel, so hits they reject never leave it.

use tapmatrix_ir::ScalarType;
use tapmatrix_ir::bpf::{Field, HIT_HEADER, RecordTag};

use crate::codegen::{Gen, SCRATCH, StrPlace};
use crate::error::BpfError;
use crate::fetch::{Plan, Read};
use crate::helpers::Helper;
use crate::insn::{Alu, Reg, Size};
use crate::layout::round8;

impl Gen<'_> {
    /// The hit record of program `id`; the layout of its slots.
    pub(crate) fn hit_record(&mut self, id: u32, plans: &[Plan]) -> Result<Vec<Field>, BpfError> {
        let mut fields = Vec::with_capacity(plans.len());
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
        for (plan, field) in plans.iter().zip(&fields) {
            match plan.read {
                Read::Long => {
                    self.fetch_long(plan)?;
                    self.asm.store(Size::DW, SCRATCH, at(field.offset), Reg::R0);
                }
                Read::Str { .. } => {
                    let place = StrPlace {
                        base: SCRATCH,
                        off: rec + field.offset as i32,
                        cap: field.len,
                    };
                    self.fetch_string(plan, place)?;
                }
            }
        }
        self.send(rec, size);
        Ok(fields)
    }
}
