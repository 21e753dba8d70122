//! `@entry` in the kernel: the entry half of a return probe pushes the
//! values it evaluated onto its thread's stack in the entries map
//! ([`crate::layout::EntryLayout`]), and the return probe pops them before
//! its handler runs. Calls nest and recurse: each return takes the values
//! of the innermost call still in flight.
//!
//! A return without saved values (its call began before the probes were
//! attached, or its values were evicted) does not run its handler: in
//! SystemTap a return probe's `@entry` values live in the kretprobe
//! instance its entry handler filled, and a return whose entry it did not
//! see never reaches the handler.

use tapmatrix_ir::bpf::Field;
use tapmatrix_ir::{EntryValues, Expr, ScalarType};

use crate::codegen::{ELEM, Gen, SCRATCH, Slot, StrPlace};
use crate::error::BpfError;
use crate::helpers::Helper;
use crate::insn::{Alu, Cond, Reg, Size};
use crate::layout::{ENTRY_COUNT, ENTRY_RING, ENTRY_TOP, EntryLayout};

impl Gen<'_> {
    fn entries(&self) -> Result<&EntryLayout, BpfError> {
        self.site
            .layout
            .entries
            .as_ref()
            .ok_or(BpfError::Internal("@entry values without their map"))
    }

    fn entry_fields(&self, key: u32) -> Result<Vec<Field>, BpfError> {
        self.entries()?
            .fields(key)
            .map(<[Field]>::to_vec)
            .ok_or(BpfError::Internal("@entry values of no return probe"))
    }

    /// The map key of this thread's values for `key` on the stack
    /// (`u32 tid, u32 key`); its offset.
    fn entry_map_key(&mut self, key: u32) -> Result<i16, BpfError> {
        let off = self.stack_alloc(8)?;
        self.asm.call(Helper::GetCurrentPidTgid);
        self.asm.store(Size::W, Reg::FP, off, Reg::R0);
        self.asm.store_imm(Size::W, Reg::FP, off + 4, key as i32);
        Ok(off)
    }

    /// `ELEM` += the offset of ring slot `r1 & (depth - 1)`.
    fn entry_slot(&mut self, entries_depth: u32, slot: u32) {
        self.asm
            .alu_imm(Alu::And, Reg::R1, entries_depth as i32 - 1);
        self.asm.alu_imm(Alu::Mul, Reg::R1, slot as i32);
        self.asm.alu(Alu::Add, ELEM, Reg::R1);
    }

    /// `Stmt::EntrySave`: evaluates `values` and pushes them for the next
    /// return of this thread through the probe reading `key`'s values.
    pub(crate) fn entry_save(&mut self, key: u32, values: &[Expr]) -> Result<(), BpfError> {
        let fields = self.entry_fields(key)?;
        let (map, depth, slot) = {
            let entries = self.entries()?;
            (entries.map, entries.depth, entries.slot)
        };
        let value_size = ENTRY_RING + depth * slot;
        let mark = self.mark();
        // The values first: their code may use every register.
        let mut evaluated = Vec::with_capacity(values.len());
        for (value, field) in values.iter().zip(&fields) {
            evaluated.push(match field.ty {
                ScalarType::Long => {
                    self.long(value)?;
                    Slot::Long(self.spill()?)
                }
                ScalarType::String => Slot::Str(self.string(value)?),
            });
        }
        let map_key = self.entry_map_key(key)?;
        let done = self.asm.label();
        let found = self.asm.label();
        self.lookup(map, Reg::FP, i32::from(map_key));
        self.asm.jump_imm(Cond::Ne, Reg::R0, 0, found);
        // This thread's first call in flight: an element with no calls
        // (count and top 0; the ring's slots are written before they are
        // read).
        let fresh = self.scratch_alloc(value_size)?;
        self.asm.store_imm(Size::DW, SCRATCH, fresh as i16, 0);
        self.asm.load_map(Reg::R1, map);
        self.addr(Reg::R2, Reg::FP, i32::from(map_key));
        self.addr(Reg::R3, SCRATCH, fresh);
        self.asm.mov_imm(Reg::R4, 0);
        self.asm.call(Helper::MapUpdateElem);
        self.lookup(map, Reg::FP, i32::from(map_key));
        self.asm.jump_imm(Cond::Eq, Reg::R0, 0, done);
        self.asm.bind(found);
        self.asm.mov(ELEM, Reg::R0);
        // count = min(count + 1, depth): past the ring's depth the oldest
        // call's values are overwritten, and its return will find none.
        let full = self.asm.label();
        self.asm.load(Size::W, Reg::R1, ELEM, ENTRY_COUNT);
        self.asm.jump_imm(Cond::Ge, Reg::R1, depth as i32, full);
        self.asm.alu_imm(Alu::Add, Reg::R1, 1);
        self.asm.store(Size::W, ELEM, ENTRY_COUNT, Reg::R1);
        self.asm.bind(full);
        self.asm.load(Size::W, Reg::R1, ELEM, ENTRY_TOP);
        self.asm.mov(Reg::R2, Reg::R1);
        self.asm.alu_imm(Alu::Add, Reg::R2, 1);
        self.asm.store(Size::W, ELEM, ENTRY_TOP, Reg::R2);
        self.entry_slot(depth, slot);
        for (value, field) in evaluated.iter().zip(&fields) {
            let at = (ENTRY_RING + field.offset) as i32;
            match *value {
                Slot::Long(off) => {
                    self.unspill(Reg::R1, off);
                    self.asm.store(Size::DW, ELEM, at as i16, Reg::R1);
                }
                Slot::Str(src) => {
                    let dst = StrPlace {
                        base: ELEM,
                        off: at,
                        cap: field.len,
                    };
                    self.copy_string(dst, src);
                }
            }
        }
        self.asm.bind(done);
        self.release(mark);
        Ok(())
    }

    /// Before a return probe's handler: pops this thread's innermost
    /// values of `entry` into slots `Expr::EntryValue` reads; without any,
    /// leaves the program (see the module's comment).
    pub(crate) fn entry_take(&mut self, entry: &EntryValues) -> Result<(), BpfError> {
        let fields = self.entry_fields(entry.key)?;
        let (map, depth, slot) = {
            let entries = self.entries()?;
            (entries.map, entries.depth, entries.slot)
        };
        let mut slots = Vec::with_capacity(fields.len());
        for field in &fields {
            slots.push(match field.ty {
                ScalarType::Long => Slot::Long(self.stack_alloc(8)?),
                ScalarType::String => Slot::Str(self.str_temp(field.len)?),
            });
        }
        let mark = self.mark();
        let map_key = self.entry_map_key(entry.key)?;
        let out = self.out;
        self.lookup(map, Reg::FP, i32::from(map_key));
        self.asm.jump_imm(Cond::Eq, Reg::R0, 0, out);
        self.asm.mov(ELEM, Reg::R0);
        self.asm.load(Size::W, Reg::R1, ELEM, ENTRY_COUNT);
        self.asm.jump_imm(Cond::Eq, Reg::R1, 0, out);
        self.asm.alu_imm(Alu::Sub, Reg::R1, 1);
        self.asm.store(Size::W, ELEM, ENTRY_COUNT, Reg::R1);
        self.asm.load(Size::W, Reg::R1, ELEM, ENTRY_TOP);
        self.asm.alu_imm(Alu::Sub, Reg::R1, 1);
        self.asm.store(Size::W, ELEM, ENTRY_TOP, Reg::R1);
        self.entry_slot(depth, slot);
        for (to, field) in slots.iter().zip(&fields) {
            let at = (ENTRY_RING + field.offset) as i32;
            match *to {
                Slot::Long(off) => {
                    self.asm.load(Size::DW, Reg::R1, ELEM, at as i16);
                    self.asm.store(Size::DW, Reg::FP, off, Reg::R1);
                }
                Slot::Str(dst) => {
                    let src = StrPlace {
                        base: ELEM,
                        off: at,
                        cap: field.len,
                    };
                    self.copy_string(dst, src);
                }
            }
        }
        self.release(mark);
        self.entry_types = fields.iter().map(|f| f.ty).collect();
        self.entry = slots;
        Ok(())
    }
}
