//! Statistics aggregated per CPU in the kernel (`s <<< v`): count, sum,
//! min, max and the histogram's bucket, in a per-CPU map the agent merges
//! into the runtime's statistics.

use tapmatrix_ir::bpf::{GlobalPlace, StatLayout};
use tapmatrix_ir::{Expr, HistSpec, LValue};

use crate::codegen::{ELEM, Gen};
use crate::error::BpfError;
use crate::insn::{Alu, Cond, Insn, Reg, Size};

impl Gen<'_> {
    /// `target <<< value`.
    pub(crate) fn aggregate(&mut self, target: &LValue, value: &Expr) -> Result<(), BpfError> {
        let mark = self.mark();
        self.long(value)?;
        let v = self.spill()?;
        let layout = match target {
            LValue::Global(g) => match self.site.layout.globals.get(*g as usize) {
                Some(GlobalPlace::Stat { map, layout }) => {
                    let (map, layout) = (*map as usize, *layout);
                    self.lookup(map, Reg::FP, -8);
                    let out = self.out;
                    self.asm.jump_imm(Cond::Eq, Reg::R0, 0, out);
                    self.asm.mov(ELEM, Reg::R0);
                    layout
                }
                _ => return Err(BpfError::Internal("a statistic without a map")),
            },
            LValue::Index { array, keys, loc } => {
                let layout = match self.site.layout.globals.get(*array as usize) {
                    Some(GlobalPlace::StatArray { layout, .. }) => *layout,
                    _ => return Err(BpfError::Internal("a statistics array without a map")),
                };
                let keys: Option<Vec<Expr>> = keys.iter().cloned().collect();
                let keys = keys.ok_or(BpfError::Internal("`*` in <<<"))?;
                let key = self.key(*array, &keys)?;
                self.element(*array, key, *loc)?;
                layout
            }
            LValue::Local(_) => return Err(BpfError::Internal("<<< into a local")),
        };
        self.add_to_stat(layout, v);
        self.release(mark);
        Ok(())
    }

    /// Adds the value spilled at `v` to the aggregates at `r8`.
    fn add_to_stat(&mut self, layout: StatLayout, v: i16) {
        let at = layout.offset as i16;
        let (count, sum, min, max) = (at, at + 8, at + 16, at + 24);
        self.unspill(Reg::R2, v);
        self.asm.load(Size::DW, Reg::R1, ELEM, count);
        let not_first = self.asm.label();
        let common = self.asm.label();
        self.asm.jump_imm(Cond::Ne, Reg::R1, 0, not_first);
        self.asm.store(Size::DW, ELEM, min, Reg::R2);
        self.asm.store(Size::DW, ELEM, max, Reg::R2);
        self.asm.goto(common);
        self.asm.bind(not_first);
        let skip_min = self.asm.label();
        self.asm.load(Size::DW, Reg::R3, ELEM, min);
        self.asm.jump_reg(Cond::Sge, Reg::R2, Reg::R3, skip_min);
        self.asm.store(Size::DW, ELEM, min, Reg::R2);
        self.asm.bind(skip_min);
        let skip_max = self.asm.label();
        self.asm.load(Size::DW, Reg::R3, ELEM, max);
        self.asm.jump_reg(Cond::Sle, Reg::R2, Reg::R3, skip_max);
        self.asm.store(Size::DW, ELEM, max, Reg::R2);
        self.asm.bind(skip_max);
        self.asm.bind(common);
        self.asm.alu_imm(Alu::Add, Reg::R1, 1);
        self.asm.store(Size::DW, ELEM, count, Reg::R1);
        self.asm.load(Size::DW, Reg::R3, ELEM, sum);
        self.asm.alu(Alu::Add, Reg::R3, Reg::R2);
        self.asm.store(Size::DW, ELEM, sum, Reg::R3);
        let Some(spec) = layout.hist else {
            return;
        };
        if layout.buckets == 0 {
            return;
        }
        // r1 = the bucket of r2.
        match spec {
            HistSpec::Log => self.log_bucket(),
            HistSpec::Linear {
                start,
                stop: _,
                interval,
            } => self.linear_bucket(start, interval, layout.buckets),
        }
        let skip = self.asm.label();
        self.asm
            .jump_imm(Cond::Gt, Reg::R1, layout.buckets as i32 - 1, skip);
        self.asm.alu_imm(Alu::Lsh, Reg::R1, 3);
        self.asm.mov(Reg::R3, ELEM);
        self.asm.alu(Alu::Add, Reg::R3, Reg::R1);
        self.asm.load(Size::DW, Reg::R4, Reg::R3, at + 32);
        self.asm.alu_imm(Alu::Add, Reg::R4, 1);
        self.asm.store(Size::DW, Reg::R3, at + 32, Reg::R4);
        self.asm.bind(skip);
    }

    /// `r1` = `_stp_val_to_bucket(r2)`: 64 for 0, 64 + bits(v) above,
    /// 128 - (64 + bits(|v|)) below, at most 127.
    fn log_bucket(&mut self) {
        let done = self.asm.label();
        self.asm.mov_imm(Reg::R1, 64);
        self.asm.jump_imm(Cond::Eq, Reg::R2, 0, done);
        self.asm.mov(Reg::R3, Reg::R2);
        let positive = self.asm.label();
        self.asm.jump_imm(Cond::Sgt, Reg::R3, 0, positive);
        self.emit(Insn::neg64(Reg::R3));
        self.asm.bind(positive);
        // r1 = 64 + bits(r3)
        self.asm.mov_imm(Reg::R1, 65);
        for shift in [32, 16, 8, 4, 2, 1] {
            let skip = self.asm.label();
            self.asm.mov(Reg::R4, Reg::R3);
            self.asm.alu_imm(Alu::Rsh, Reg::R4, shift);
            self.asm.jump_imm(Cond::Eq, Reg::R4, 0, skip);
            self.asm.mov(Reg::R3, Reg::R4);
            self.asm.alu_imm(Alu::Add, Reg::R1, shift);
            self.asm.bind(skip);
        }
        let not_negative = self.asm.label();
        self.asm.jump_imm(Cond::Sgt, Reg::R2, 0, not_negative);
        self.emit(Insn::neg64(Reg::R1));
        self.asm.alu_imm(Alu::Add, Reg::R1, 128);
        self.asm.bind(not_negative);
        self.asm.jump_imm(Cond::Le, Reg::R1, 127, done);
        self.asm.mov_imm(Reg::R1, 127);
        self.asm.bind(done);
    }

    /// `r1` = the bucket of `r2` in a linear histogram: 0 below `start`,
    /// then `(v - start) / interval + 1`, at most the last.
    fn linear_bucket(&mut self, start: i64, interval: i64, buckets: u32) {
        let done = self.asm.label();
        self.asm.mov(Reg::R1, Reg::R2);
        self.asm.mov_imm(Reg::R3, start);
        self.asm.alu(Alu::Sub, Reg::R1, Reg::R3);
        let above = self.asm.label();
        self.asm.jump_imm(Cond::Sge, Reg::R1, 0, above);
        self.asm.mov_imm(Reg::R1, 0);
        self.asm.goto(done);
        self.asm.bind(above);
        self.asm.mov_imm(Reg::R3, interval);
        self.asm.alu(Alu::Div, Reg::R1, Reg::R3);
        self.asm.alu_imm(Alu::Add, Reg::R1, 1);
        self.asm
            .jump_imm(Cond::Le, Reg::R1, buckets as i32 - 1, done);
        self.asm.mov_imm(Reg::R1, buckets as i64 - 1);
        self.asm.bind(done);
    }
}
