//! Strings: literals, copies, concatenation, comparison and length, with
//! bounded copies (`bpf_probe_read_kernel_str` between buffers) and loops
//! the verifier can follow (a constant bound, the index checked before
//! every access).

use tapmatrix_ir::bpf::GlobalPlace;
use tapmatrix_ir::{Builtin, CompareOp, Expr};

use crate::asm::Label;
use crate::codegen::{Gen, SCALARS, Slot, StrPlace};
use crate::error::BpfError;
use crate::expr::signed_cond;
use crate::helpers::Helper;
use crate::insn::{Alu, Cond, Reg, Size};

impl Gen<'_> {
    /// Evaluates a string expression; where it is (valid until the
    /// temporaries are released).
    pub(crate) fn string(&mut self, e: &Expr) -> Result<StrPlace, BpfError> {
        Ok(match e {
            Expr::Str(text) => {
                let cap = (text.len() as u32 + 1).min(self.max_string());
                let place = self.str_temp(cap)?;
                self.write_literal(place, text.as_bytes());
                place
            }
            Expr::Local(i) => match self.local_slot(*i)? {
                Slot::Str(place) => place,
                Slot::Long(_) => return Err(BpfError::Internal("a long local used as a string")),
            },
            Expr::Fetch(i) => match self.fetches.get(*i as usize) {
                Some(Slot::Str(place)) => *place,
                _ => return Err(BpfError::Internal("a fetch slot without a string")),
            },
            Expr::EntryValue(i) => match self.entry.get(*i as usize) {
                Some(Slot::Str(place)) => *place,
                _ => return Err(BpfError::Internal("an @entry value without a string")),
            },
            Expr::Global(g) => match self.site.layout.globals.get(*g as usize) {
                Some(GlobalPlace::Scalar { field }) => StrPlace {
                    base: SCALARS,
                    off: field.offset as i32,
                    cap: field.len,
                },
                _ => return Err(BpfError::Internal("a string global without a place")),
            },
            Expr::Index { array, keys } => {
                let cap = self.max_string();
                let dst = self.str_temp(cap)?;
                self.index_string(*array, keys, dst)?;
                dst
            }
            Expr::Concat(a, b) => self.concat(a, b)?,
            Expr::Ternary {
                cond,
                then,
                otherwise,
            } => {
                let dst = self.str_temp(self.max_string())?;
                let no = self.asm.label();
                let done = self.asm.label();
                self.branch(cond, no, false)?;
                let mark = self.mark();
                let s = self.string(then)?;
                self.copy_string(dst, s);
                self.release(mark);
                self.asm.goto(done);
                self.asm.bind(no);
                let s = self.string(otherwise)?;
                self.copy_string(dst, s);
                self.release(mark);
                self.asm.bind(done);
                dst
            }
            Expr::Assign { .. } => self.assign_string(e)?,
            Expr::Call { .. } => match self.call(e)? {
                Some(Slot::Str(place)) => place,
                _ => return Err(BpfError::Internal("a call without a string result")),
            },
            Expr::Builtin {
                builtin: Builtin::Execname,
                ..
            } => {
                let place = self.str_temp(16)?;
                self.addr(Reg::R1, place.base, place.off);
                self.asm.mov_imm(Reg::R2, 16);
                self.asm.call(Helper::GetCurrentComm);
                place
            }
            Expr::Builtin {
                builtin: Builtin::Pp,
                ..
            } => self.constant(&self.site.pp.clone())?,
            Expr::Builtin {
                builtin: Builtin::Backtrace,
                ..
            } => self.backtrace(false)?,
            Expr::Builtin {
                builtin: Builtin::Ubacktrace,
                ..
            } => self.backtrace(true)?,
            Expr::Builtin {
                builtin: Builtin::CmdlineStr,
                loc,
                ..
            } => self.cmdline_str(*loc)?,
            Expr::Printf {
                to_string: true,
                format,
                args,
            } => self.sprintf(format, args)?,
            Expr::Builtin {
                builtin: Builtin::Sprint | Builtin::Sprintln,
                args,
                ..
            } => self.sprint(
                args,
                matches!(
                    e,
                    Expr::Builtin {
                        builtin: Builtin::Sprintln,
                        ..
                    }
                ),
            )?,
            Expr::LongToStr(inner) => self.long_to_str(inner)?,
            Expr::ReadString {
                addr,
                max_len,
                user,
                fallback,
                loc,
            } => self.read_string(addr, max_len.as_deref(), *user, fallback.as_deref(), *loc)?,
            Expr::Builtin {
                builtin: Builtin::Probefunc | Builtin::Ppfunc,
                loc,
                ..
            } if !self.site.function.is_empty() => {
                let _ = loc;
                self.constant(&self.site.function.clone())?
            }
            other => {
                return Err(BpfError::Unsupported {
                    location: self.site.pp.clone(),
                    what: crate::expr::construct_name(other),
                    why: Some("a string computed in the kernel".to_owned()),
                });
            }
        })
    }

    fn constant(&mut self, text: &str) -> Result<StrPlace, BpfError> {
        let cap = (text.len() as u32 + 1).min(self.max_string());
        let place = self.str_temp(cap)?;
        self.write_literal(place, text.as_bytes());
        Ok(place)
    }

    /// `a . b` into a new buffer (truncated to `MAXSTRINGLEN - 1`).
    fn concat(&mut self, a: &Expr, b: &Expr) -> Result<StrPlace, BpfError> {
        let max = self.max_string();
        let sa = self.string(a)?;
        let sb = self.string(b)?;
        let alloc = sa.cap.saturating_sub(1) + sb.cap;
        let dst = self.str_temp(alloc)?;
        self.addr(Reg::R1, dst.base, dst.off);
        self.asm.mov_imm(Reg::R2, i64::from(sa.cap));
        self.addr(Reg::R3, sa.base, sa.off);
        self.asm.call(Helper::ProbeReadKernelStr);
        // r0: length with the terminator; the copy of b starts over it.
        self.asm.alu_imm(Alu::Sub, Reg::R0, 1);
        let fits = self.asm.label();
        self.asm
            .jump_imm(Cond::Le, Reg::R0, sa.cap.saturating_sub(1) as i32, fits);
        self.asm.mov_imm(Reg::R0, 0);
        self.asm.bind(fits);
        self.addr(Reg::R1, dst.base, dst.off);
        self.asm.alu(Alu::Add, Reg::R1, Reg::R0);
        self.asm.mov_imm(Reg::R2, i64::from(sb.cap));
        self.addr(Reg::R3, sb.base, sb.off);
        self.asm.call(Helper::ProbeReadKernelStr);
        let cap = alloc.min(max);
        if alloc > max {
            self.asm
                .store_imm(Size::B, dst.base, (dst.off + max as i32 - 1) as i16, 0);
        }
        Ok(StrPlace { cap, ..dst })
    }

    /// `r0` = the length of the string at `s`: what copying it (into a
    /// scratch buffer as large) counts, one helper call, where a loop over
    /// its bytes is walked by the verifier once per byte it might hold (a
    /// `MAXSTRINGLEN` buffer: 512 times, at every call); the loop where
    /// the scratch memory has no room for the copy.
    pub(crate) fn strlen(&mut self, s: StrPlace) {
        let mark = self.mark();
        let copied = self.str_temp(s.cap.max(1));
        if let Ok(copy) = copied {
            self.addr(Reg::R1, copy.base, copy.off);
            self.asm.mov_imm(Reg::R2, i64::from(s.cap.max(1)));
            self.addr(Reg::R3, s.base, s.off);
            self.asm.call(Helper::ProbeReadKernelStr);
            // The bytes copied with the terminator; none on an error.
            self.asm.alu_imm(Alu::Sub, Reg::R0, 1);
            let counted = self.asm.label();
            self.asm.jump_imm(Cond::Sge, Reg::R0, 0, counted);
            self.asm.mov_imm(Reg::R0, 0);
            self.asm.bind(counted);
        }
        self.release(mark);
        if copied.is_err() {
            self.strlen_loop(s);
        }
    }

    /// [`Gen::strlen`] by a loop over the bytes.
    fn strlen_loop(&mut self, s: StrPlace) {
        let head = self.asm.label();
        let done = self.asm.label();
        self.asm.mov_imm(Reg::R1, 0);
        self.asm.bind(head);
        self.asm.jump_imm(Cond::Ge, Reg::R1, s.cap as i32, done);
        self.asm.mov(Reg::R2, s.base);
        self.asm.alu(Alu::Add, Reg::R2, Reg::R1);
        self.asm.load(Size::B, Reg::R3, Reg::R2, s.off as i16);
        self.asm.jump_imm(Cond::Eq, Reg::R3, 0, done);
        self.asm.alu_imm(Alu::Add, Reg::R1, 1);
        self.asm.goto(head);
        self.asm.bind(done);
        self.asm.mov(Reg::R0, Reg::R1);
    }

    /// Jumps to `target` when `lhs op rhs` is `when` (byte order).
    pub(crate) fn compare_strings(
        &mut self,
        op: CompareOp,
        lhs: &Expr,
        rhs: &Expr,
        target: Label,
        when: bool,
    ) -> Result<(), BpfError> {
        let mark = self.mark();
        let literal = match (lhs, rhs) {
            (other, Expr::Str(text)) | (Expr::Str(text), other)
                if matches!(op, CompareOp::Eq | CompareOp::Ne) =>
            {
                Some((other, text.as_bytes()))
            }
            _ => None,
        };
        if let Some((other, text)) = literal {
            let s = self.string(other)?;
            let equal = (op == CompareOp::Eq) == when;
            let differ = self.asm.label();
            if text.len() as u32 >= s.cap {
                // The string cannot hold that many bytes.
                if !equal {
                    self.asm.goto(target);
                }
            } else {
                for (i, byte) in text.iter().chain(std::iter::once(&0)).enumerate() {
                    self.asm
                        .load(Size::B, Reg::R1, s.base, (s.off + i as i32) as i16);
                    self.asm
                        .jump_imm(Cond::Ne, Reg::R1, i32::from(*byte), differ);
                }
                if equal {
                    self.asm.goto(target);
                    self.asm.bind(differ);
                } else {
                    let skip = self.asm.label();
                    self.asm.goto(skip);
                    self.asm.bind(differ);
                    self.asm.goto(target);
                    self.asm.bind(skip);
                }
            }
            self.release(mark);
            return Ok(());
        }
        let a = self.string(lhs)?;
        let b = self.string(rhs)?;
        self.strcmp(a, b);
        self.release(mark);
        let cond = signed_cond(op);
        let cond = if when { cond } else { cond.negate() };
        self.asm.jump_imm(cond, Reg::R0, 0, target);
        Ok(())
    }

    /// `r0` = -1, 0 or 1 as `a` sorts before, with or after `b`.
    fn strcmp(&mut self, a: StrPlace, b: StrPlace) {
        let n = a.cap.min(b.cap);
        let head = self.asm.label();
        let differ = self.asm.label();
        let equal = self.asm.label();
        let done = self.asm.label();
        self.asm.mov_imm(Reg::R1, 0);
        self.asm.bind(head);
        self.asm.jump_imm(Cond::Ge, Reg::R1, n as i32, equal);
        self.asm.mov(Reg::R2, a.base);
        self.asm.alu(Alu::Add, Reg::R2, Reg::R1);
        self.asm.load(Size::B, Reg::R4, Reg::R2, a.off as i16);
        self.asm.mov(Reg::R2, b.base);
        self.asm.alu(Alu::Add, Reg::R2, Reg::R1);
        self.asm.load(Size::B, Reg::R5, Reg::R2, b.off as i16);
        self.asm.jump_reg(Cond::Ne, Reg::R4, Reg::R5, differ);
        self.asm.jump_imm(Cond::Eq, Reg::R4, 0, equal);
        self.asm.alu_imm(Alu::Add, Reg::R1, 1);
        self.asm.goto(head);
        self.asm.bind(differ);
        self.asm.mov_imm(Reg::R0, 1);
        self.asm.jump_reg(Cond::Gt, Reg::R4, Reg::R5, done);
        self.asm.mov_imm(Reg::R0, -1);
        self.asm.goto(done);
        self.asm.bind(equal);
        self.asm.mov_imm(Reg::R0, 0);
        self.asm.bind(done);
    }
}
