//! An assembler over [`Insn`]: forward and backward jumps to labels, the
//! maps that wide loads name, and the finished instruction list.

use crate::error::BpfError;
use crate::insn::{Alu, Cond, Insn, Reg, Size};

/// A place in the code a jump can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Label(usize);

/// Instructions being written.
#[derive(Debug, Default)]
pub struct Asm {
    insns: Vec<Insn>,
    /// Label index to instruction index, once bound.
    labels: Vec<Option<usize>>,
    /// (instruction index, label) of jumps to patch.
    jumps: Vec<(usize, Label)>,
    /// (instruction index of the wide load, map index).
    maps: Vec<(usize, usize)>,
}

/// A finished program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Code {
    /// The instructions.
    pub insns: Vec<Insn>,
    /// (instruction index of a wide load, map index): relocations.
    pub maps: Vec<(usize, usize)>,
}

impl Asm {
    /// An empty program.
    pub fn new() -> Asm {
        Asm::default()
    }

    /// Instructions written so far.
    pub fn len(&self) -> usize {
        self.insns.len()
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.insns.is_empty()
    }

    /// Appends one instruction.
    pub fn emit(&mut self, insn: Insn) {
        self.insns.push(insn);
    }

    /// Appends several.
    pub fn emit_all(&mut self, insns: impl IntoIterator<Item = Insn>) {
        self.insns.extend(insns);
    }

    /// A new label, not yet bound.
    pub fn label(&mut self) -> Label {
        self.labels.push(None);
        Label(self.labels.len() - 1)
    }

    /// Binds `label` to the next instruction.
    pub fn bind(&mut self, label: Label) {
        if let Some(slot) = self.labels.get_mut(label.0) {
            *slot = Some(self.insns.len());
        }
    }

    /// `goto label`.
    pub fn goto(&mut self, label: Label) {
        self.jumps.push((self.insns.len(), label));
        self.emit(Insn::ja(0));
    }

    /// `if dst cond imm goto label`.
    pub fn jump_imm(&mut self, cond: Cond, dst: Reg, imm: i32, label: Label) {
        self.jumps.push((self.insns.len(), label));
        self.emit(Insn::jmp_imm(cond, dst, imm, 0));
    }

    /// `if dst cond src goto label`.
    pub fn jump_reg(&mut self, cond: Cond, dst: Reg, src: Reg, label: Label) {
        self.jumps.push((self.insns.len(), label));
        self.emit(Insn::jmp_reg(cond, dst, src, 0));
    }

    /// `dst = map` (map index into the object's maps).
    pub fn load_map(&mut self, dst: Reg, map: usize) {
        self.maps.push((self.insns.len(), map));
        self.emit_all(Insn::ld_map(dst));
    }

    /// `dst = imm`, in one slot when it fits 32 bits signed.
    pub fn mov_imm(&mut self, dst: Reg, imm: i64) {
        match i32::try_from(imm) {
            Ok(small) => self.emit(Insn::mov64_imm(dst, small)),
            Err(_) => self.emit_all(Insn::ld_imm64(dst, imm)),
        }
    }

    /// `dst op= src`.
    pub fn alu(&mut self, op: Alu, dst: Reg, src: Reg) {
        self.emit(Insn::alu64_reg(op, dst, src));
    }

    /// `dst op= imm`.
    pub fn alu_imm(&mut self, op: Alu, dst: Reg, imm: i32) {
        self.emit(Insn::alu64_imm(op, dst, imm));
    }

    /// `dst = src`.
    pub fn mov(&mut self, dst: Reg, src: Reg) {
        if dst != src {
            self.emit(Insn::mov64(dst, src));
        }
    }

    /// `dst = *(size *)(src + off)`.
    pub fn load(&mut self, size: Size, dst: Reg, src: Reg, off: i16) {
        self.emit(Insn::load(size, dst, src, off));
    }

    /// `*(size *)(dst + off) = src`.
    pub fn store(&mut self, size: Size, dst: Reg, off: i16, src: Reg) {
        self.emit(Insn::store(size, dst, off, src));
    }

    /// `*(size *)(dst + off) = imm`.
    pub fn store_imm(&mut self, size: Size, dst: Reg, off: i16, imm: i32) {
        self.emit(Insn::store_imm(size, dst, off, imm));
    }

    /// `call helper`.
    pub fn call(&mut self, helper: crate::helpers::Helper) {
        self.emit(Insn::call(helper.id()));
    }

    /// `r0 = value; exit`.
    pub fn ret(&mut self, value: i32) {
        self.emit(Insn::mov64_imm(Reg::R0, value));
        self.emit(Insn::exit());
    }

    /// Patches every jump, leaving out the instructions no path reaches
    /// (the kernel refuses a program with any: "unreachable insn", e.g.
    /// the `goto` an `if` adds after a `return` that already left); an
    /// unbound label or a jump farther than 32767 instructions is an error.
    pub fn finish(mut self) -> Result<Code, BpfError> {
        // Every jump's target, by instruction index: a label's, or the
        // offset a jump written whole already holds.
        let mut targets: Vec<Option<usize>> = vec![None; self.insns.len()];
        for (at, insn) in self.insns.iter().enumerate() {
            if insn.is_jump() {
                targets[at] = usize::try_from(at as i64 + 1 + i64::from(insn.off)).ok();
            }
        }
        for (at, label) in std::mem::take(&mut self.jumps) {
            let target = self
                .labels
                .get(label.0)
                .copied()
                .flatten()
                .ok_or(BpfError::Internal("a jump to a label never placed"))?;
            if let Some(slot) = targets.get_mut(at) {
                *slot = Some(target);
            }
        }
        let mut reached = self.reached(&targets);
        // A `goto` to where the code would go anyway (the end of an `if`
        // whose `else` left no code, a `return` at a function's end) is
        // left out too; a jump to it then lands where it led. From the
        // end, so that a chain of them goes.
        let ja = Insn::ja(0).code;
        for at in (0..self.insns.len()).rev() {
            if reached[at]
                && self.insns[at].code == ja
                && let Some(target) = targets[at]
                && target > at
                && target < self.insns.len()
                && !reached[at + 1..target].contains(&true)
            {
                reached[at] = false;
            }
        }
        // Old index to new; the instructions kept in order.
        let mut new_index = vec![0usize; self.insns.len() + 1];
        let mut kept = 0;
        for (at, slot) in new_index.iter_mut().enumerate() {
            *slot = kept;
            if reached.get(at).copied().unwrap_or(false) {
                kept += 1;
            }
        }
        let mut insns = Vec::with_capacity(kept);
        for (at, insn) in self.insns.iter().enumerate() {
            if !reached[at] {
                continue;
            }
            let mut insn = *insn;
            if let Some(target) = targets[at] {
                let to = new_index
                    .get(target)
                    .copied()
                    .ok_or(BpfError::Internal("a jump past the end of the program"))?;
                let delta = to as i64 - new_index[at] as i64 - 1;
                insn.off = i16::try_from(delta).map_err(|_| BpfError::TooLarge {
                    what: "a jump",
                    limit: "32767 instructions",
                })?;
            }
            insns.push(insn);
        }
        let maps = self
            .maps
            .iter()
            .filter(|(at, _)| reached.get(*at).copied().unwrap_or(false))
            .map(|&(at, map)| (new_index[at], map))
            .collect();
        Ok(Code { insns, maps })
    }

    /// Which instructions a path from the first reaches (both slots of a
    /// wide load); `targets` holds each jump's target.
    fn reached(&self, targets: &[Option<usize>]) -> Vec<bool> {
        let exit = Insn::exit();
        let ja = Insn::ja(0).code;
        let call = Insn::call(0).code;
        // A call into the program itself (none is written today) reaches
        // code no jump does: keep everything.
        if self
            .insns
            .iter()
            .any(|insn| insn.code == call && insn.src == crate::insn::PSEUDO_CALL)
        {
            return vec![true; self.insns.len()];
        }
        let mut reached = vec![false; self.insns.len()];
        let mut pending = vec![0usize];
        while let Some(at) = pending.pop() {
            let Some(insn) = self.insns.get(at) else {
                continue;
            };
            if std::mem::replace(&mut reached[at], true) {
                continue;
            }
            if insn.is_wide() {
                if let Some(second) = reached.get_mut(at + 1) {
                    *second = true;
                }
                pending.push(at + 2);
                continue;
            }
            if let Some(target) = targets[at] {
                pending.push(target);
            }
            if insn.code != exit.code && insn.code != ja {
                pending.push(at + 1);
            }
        }
        reached
    }
}
