//! A disassembler for our own encoder, in the kernel's verifier-log style
//! (`kernel/bpf/disasm.c`): `(bf) r2 = r10`, `(85) call
//! bpf_map_lookup_elem#1`, `(15) if r0 == 0x0 goto pc+2`. The dump of an
//! artefact (`tapmatrix run --dump`) and the tests use it.

use std::fmt::Write as _;

use crate::helpers::helper_name;
use crate::insn::{Alu, Insn, PSEUDO_CALL, PSEUDO_MAP_FD, Shape};

/// One instruction (the second slot of a wide load is `next`).
pub fn disassemble(insn: &Insn, next: Option<&Insn>) -> String {
    let code = format!("({:02x})", insn.code);
    let r = |n: u8| format!("r{n}");
    let w = |n: u8| format!("w{n}");
    let text = match Shape::of(insn) {
        Shape::Alu { wide, op, reg } => {
            let name = if wide { r } else { w };
            if op == Alu::Neg {
                format!("{} = -{}", name(insn.dst), name(insn.dst))
            } else if reg {
                format!("{} {} {}", name(insn.dst), op.symbol(), name(insn.src))
            } else {
                format!("{} {} {}", name(insn.dst), op.symbol(), insn.imm)
            }
        }
        Shape::End { bits, big } => {
            let order = if big { "be" } else { "le" };
            format!("r{} = {order}{bits} r{}", insn.dst, insn.dst)
        }
        Shape::Load(size) => format!(
            "r{} = *({} *)(r{} {:+})",
            insn.dst,
            size.c_name(),
            insn.src,
            insn.off
        ),
        Shape::Store(size) => format!(
            "*({} *)(r{} {:+}) = r{}",
            size.c_name(),
            insn.dst,
            insn.off,
            insn.src
        ),
        Shape::StoreImm(size) => format!(
            "*({} *)(r{} {:+}) = {}",
            size.c_name(),
            insn.dst,
            insn.off,
            insn.imm
        ),
        Shape::Atomic(size) if insn.imm == 0 => format!(
            "lock *({} *)(r{} {:+}) += r{}",
            size.c_name(),
            insn.dst,
            insn.off,
            insn.src
        ),
        Shape::Atomic(_) => format!("atomic op {:#x}", insn.imm),
        Shape::Wide => {
            let high = next.map_or(0, |n| n.imm);
            if insn.src == PSEUDO_MAP_FD {
                format!("r{} = map[fd:{}]", insn.dst, insn.imm)
            } else {
                let value = (u64::from(high as u32) << 32) | u64::from(insn.imm as u32);
                format!("r{} = {value:#x}", insn.dst)
            }
        }
        Shape::Jump { wide, cond, reg } => match cond {
            None => format!("goto pc{:+}", insn.off),
            Some(cond) => {
                let prefix = if wide { 'r' } else { 'w' };
                let rhs = if reg {
                    format!("{prefix}{}", insn.src)
                } else {
                    format!("{:#x}", insn.imm)
                };
                format!(
                    "if {prefix}{} {} {rhs} goto pc{:+}",
                    insn.dst,
                    cond.symbol(),
                    insn.off
                )
            }
        },
        Shape::Call if insn.src == PSEUDO_CALL => format!("call pc{:+}", insn.imm),
        Shape::Call => match helper_name(insn.imm) {
            Some(name) => format!("call bpf_{name}#{}", insn.imm),
            None => format!("call #{}", insn.imm),
        },
        Shape::Exit => "exit".to_owned(),
        Shape::Unknown => format!("unknown opcode {:#04x}", insn.code),
    };
    format!("{code} {text}")
}

/// A listing of a program: one numbered line per instruction, the map a
/// wide load names (from `maps`: slot index to map name) after it.
pub fn listing(insns: &[Insn], maps: &[(usize, String)]) -> String {
    let mut out = String::new();
    let mut index = 0;
    while index < insns.len() {
        let insn = &insns[index];
        let next = insns.get(index + 1);
        let mut line = disassemble(insn, next);
        if insn.is_wide()
            && let Some((_, name)) = maps.iter().find(|(slot, _)| *slot == index)
        {
            let _ = write!(line, " ; map {name}");
        }
        let _ = writeln!(out, "{index:5}: {line}");
        index += if insn.is_wide() { 2 } else { 1 };
    }
    out
}
