//! Reads at addresses computed at run time (`@cast(ptr, "type")->member`,
//! `kernel_string(ptr)`, `@kderef`): one `bpf_probe_read_kernel` (or
//! `_user`) per load, the helper's failure raised as SystemTap's read
//! fault with the address; and `backtrace()`: the kernel stack from
//! `bpf_get_stack`, written as SystemTap's hex string.

use tapmatrix_ir::bpf::ADDRESS_MARK;
use tapmatrix_ir::{Access, Expr, Loc};

use crate::codegen::{CTX, Gen, SCRATCH, StrPlace};
use crate::error::BpfError;
use crate::expr::place;
use crate::helpers::Helper;
use crate::insn::{Alu, Cond, Reg, Size};

/// SystemTap's `MAXBACKTRACE`: frames a backtrace holds at most.
pub(crate) const MAX_FRAMES: u32 = 20;

/// Characters of one frame in a backtrace: `0x`, 16 digits, a space.
const FRAME_CHARS: u32 = 19;

impl Gen<'_> {
    fn fault_message(&self, what: &str, user: bool, loc: Loc) -> String {
        let space = if user { "user" } else { "kernel" };
        format!(
            "{space} {what} fault at {ADDRESS_MARK} near {}",
            place(self.site.program, loc)
        )
    }

    /// `r0` = the `size` bytes at the address in `r3` (user memory when
    /// `user`), zero-extended; a fault raises SystemTap's read fault.
    fn checked_read(&mut self, size: u64, user: bool, loc: Loc) -> Result<(), BpfError> {
        let mark = self.mark();
        let value = self.stack_alloc(8)?;
        let address = self.stack_alloc(8)?;
        let width = Size::of(size).ok_or(BpfError::Internal("a read of an odd size"))?;
        self.asm.store(Size::DW, Reg::FP, address, Reg::R3);
        self.asm.store_imm(Size::DW, Reg::FP, value, 0);
        self.addr(Reg::R1, Reg::FP, i32::from(value));
        self.asm.mov_imm(Reg::R2, size as i64);
        self.asm.call(if user {
            Helper::ProbeReadUser
        } else {
            Helper::ProbeReadKernel
        });
        let read = self.asm.label();
        self.asm.jump_imm(Cond::Sge, Reg::R0, 0, read);
        self.asm.load(Size::DW, Reg::R1, Reg::FP, address);
        let message = self.fault_message("read", user, loc);
        self.raise_at(message, Reg::R1)?;
        self.asm.bind(read);
        self.asm.load(width, Reg::R0, Reg::FP, value);
        self.release(mark);
        Ok(())
    }

    /// `r3 = r0 + offset`.
    fn address_plus(&mut self, offset: u64) -> Result<(), BpfError> {
        self.asm.mov(Reg::R3, Reg::R0);
        if offset != 0 {
            let imm = i32::try_from(offset).map_err(|_| BpfError::TooLarge {
                what: "a member offset",
                limit: "2 GiB",
            })?;
            self.asm.alu_imm(Alu::Add, Reg::R3, imm);
        }
        Ok(())
    }

    /// `r0` = the value `access` reads from the address `addr` computes.
    pub(crate) fn read(&mut self, addr: &Expr, access: &Access, loc: Loc) -> Result<(), BpfError> {
        self.long(addr)?;
        let (pointers, last) = match (access.address, access.loads.split_last()) {
            (Some(_), _) => (access.loads.as_slice(), None),
            (None, Some((last, pointers))) => (pointers, Some(*last)),
            (None, None) => (&[][..], None),
        };
        for offset in pointers {
            self.address_plus(*offset)?;
            self.checked_read(8, access.user, loc)?;
        }
        let size = u64::from(access.size);
        if let Some(offset) = access.address {
            if offset != 0 {
                let imm = i32::try_from(offset).map_err(|_| BpfError::TooLarge {
                    what: "a member offset",
                    limit: "2 GiB",
                })?;
                self.asm.alu_imm(Alu::Add, Reg::R0, imm);
            }
            return Ok(());
        }
        if let Some(offset) = last {
            self.address_plus(offset)?;
            self.checked_read(size, access.user, loc)?;
        }
        match access.bitfield {
            None => self.extend(Reg::R0, size, access.signed),
            Some((bit, bits)) => {
                if bit > 0 {
                    self.asm.alu_imm(Alu::Rsh, Reg::R0, bit as i32);
                }
                if bits < 64 {
                    let shift = 64 - bits as i32;
                    self.asm.alu_imm(Alu::Lsh, Reg::R0, shift);
                    let op = if access.signed { Alu::Arsh } else { Alu::Rsh };
                    self.asm.alu_imm(op, Reg::R0, shift);
                }
            }
        }
        Ok(())
    }

    /// The NUL-terminated string at the address `addr` computes, at most
    /// `max_len` bytes of it (`MAXSTRINGLEN - 1` at most); a fault gives
    /// `fallback` (`user_string(ptr, err_msg)`), else raises SystemTap's
    /// string copy fault.
    pub(crate) fn read_string(
        &mut self,
        addr: &Expr,
        max_len: Option<&Expr>,
        user: bool,
        fallback: Option<&Expr>,
        loc: Loc,
    ) -> Result<StrPlace, BpfError> {
        let max = self.max_string();
        let cap = match max_len {
            Some(Expr::Long(n)) => {
                u32::try_from((*n).clamp(0, i64::from(max) - 1) + 1).unwrap_or(max)
            }
            _ => max,
        };
        // err_msg is copied whole, whatever `n` (SystemTap's strlcpy to
        // MAXSTRINGLEN).
        let dst = self.str_temp(if fallback.is_some() { max } else { cap })?;
        let mark = self.mark();
        let length = match max_len {
            Some(n) if !matches!(n, Expr::Long(_)) => {
                self.long(n)?;
                Some(self.spill()?)
            }
            _ => None,
        };
        self.long(addr)?;
        let address = self.spill()?;
        self.asm.mov(Reg::R3, Reg::R0);
        self.addr(Reg::R1, dst.base, dst.off);
        match length {
            // min(max(n, 0), cap - 1) + 1 bytes, bounds the verifier sees.
            Some(length) => {
                self.asm.load(Size::DW, Reg::R2, Reg::FP, length);
                let positive = self.asm.label();
                self.asm.jump_imm(Cond::Sge, Reg::R2, 0, positive);
                self.asm.mov_imm(Reg::R2, 0);
                self.asm.bind(positive);
                let within = self.asm.label();
                self.asm.jump_imm(Cond::Le, Reg::R2, cap as i32 - 1, within);
                self.asm.mov_imm(Reg::R2, i64::from(cap) - 1);
                self.asm.bind(within);
                self.asm.alu_imm(Alu::Add, Reg::R2, 1);
            }
            None => self.asm.mov_imm(Reg::R2, i64::from(cap)),
        }
        self.asm.call(if user {
            Helper::ProbeReadUserStr
        } else {
            Helper::ProbeReadKernelStr
        });
        let read = self.asm.label();
        self.asm.jump_imm(Cond::Sge, Reg::R0, 0, read);
        match fallback {
            Some(fallback) => {
                let inner = self.mark();
                let text = self.string(fallback)?;
                self.copy_string(dst, text);
                self.release(inner);
            }
            None => {
                self.asm.load(Size::DW, Reg::R1, Reg::FP, address);
                let message = self.fault_message("string copy", user, loc);
                self.raise_at(message, Reg::R1)?;
            }
        }
        self.asm.bind(read);
        self.release(mark);
        Ok(dst)
    }

    /// `cmdline_str()`: the current task's `mm->arg_start` to `arg_end`
    /// read in one piece (at most MAXSTRINGLEN - 1 bytes), each NUL
    /// between arguments made a space; "" for a task without memory or
    /// when the read fails.
    pub(crate) fn cmdline_str(&mut self, loc: Loc) -> Result<StrPlace, BpfError> {
        let Some((mm_at, start_at, end_at)) = self.site.task.and_then(|t| t.args) else {
            return Err(BpfError::Unsupported {
                location: self.site.pp.clone(),
                what: format!(
                    "cmdline_str() at {}",
                    crate::expr::place(self.site.program, loc)
                ),
                why: Some(
                    "the kernel's BTF has no task_struct.mm or mm_struct.arg_start".to_owned(),
                ),
            });
        };
        let cap = self.max_string();
        let dst = self.str_temp(cap)?;
        self.asm.store_imm(Size::B, dst.base, dst.off as i16, 0);
        if cap < 2 {
            return Ok(dst);
        }
        let mark = self.mark();
        let start = self.stack_alloc(8)?;
        let len = self.stack_alloc(8)?;
        let index = self.stack_alloc(8)?;
        let done = self.asm.label();
        self.asm.call(Helper::GetCurrentTask);
        self.asm.mov(Reg::R3, Reg::R0);
        self.asm.alu_imm(Alu::Add, Reg::R3, mm_at as i32);
        self.read_kernel(8, false)?;
        self.asm.jump_imm(Cond::Eq, Reg::R0, 0, done);
        // r0 = mm: keep it in `len` while reading arg_start.
        self.asm.store(Size::DW, Reg::FP, len, Reg::R0);
        self.asm.mov(Reg::R3, Reg::R0);
        self.asm.alu_imm(Alu::Add, Reg::R3, start_at as i32);
        self.read_kernel(8, false)?;
        self.asm.store(Size::DW, Reg::FP, start, Reg::R0);
        self.asm.load(Size::DW, Reg::R3, Reg::FP, len);
        self.asm.alu_imm(Alu::Add, Reg::R3, end_at as i32);
        self.read_kernel(8, false)?;
        self.asm.load(Size::DW, Reg::R1, Reg::FP, start);
        self.asm.alu(Alu::Sub, Reg::R0, Reg::R1);
        // n = min(arg_end - arg_start, cap - 1), at least 1.
        self.asm.jump_imm(Cond::Sle, Reg::R0, 0, done);
        let within = self.asm.label();
        self.asm
            .jump_imm(Cond::Sle, Reg::R0, cap as i32 - 1, within);
        self.asm.mov_imm(Reg::R0, i64::from(cap) - 1);
        self.asm.bind(within);
        self.asm.store(Size::DW, Reg::FP, len, Reg::R0);
        self.addr(Reg::R1, dst.base, dst.off);
        self.asm.mov(Reg::R2, Reg::R0);
        self.asm.load(Size::DW, Reg::R3, Reg::FP, start);
        self.asm.call(Helper::ProbeReadUser);
        let read = self.asm.label();
        self.asm.jump_imm(Cond::Sge, Reg::R0, 0, read);
        self.asm.store_imm(Size::B, dst.base, dst.off as i16, 0);
        self.asm.goto(done);
        self.asm.bind(read);
        // The terminator after the bytes read.
        self.asm.load(Size::DW, Reg::R1, Reg::FP, len);
        self.asm.jump_imm(Cond::Gt, Reg::R1, cap as i32 - 1, done);
        self.asm.alu(Alu::Add, Reg::R1, dst.base);
        self.asm.store_imm(Size::B, Reg::R1, dst.off as i16, 0);
        // Every NUL before the last byte read becomes a space.
        self.asm.store_imm(Size::DW, Reg::FP, index, 0);
        let head = self.asm.label();
        self.asm.bind(head);
        self.asm.load(Size::DW, Reg::R1, Reg::FP, index);
        self.asm.load(Size::DW, Reg::R2, Reg::FP, len);
        self.asm.alu_imm(Alu::Sub, Reg::R2, 1);
        self.asm.jump_reg(Cond::Ge, Reg::R1, Reg::R2, done);
        self.asm.jump_imm(Cond::Ge, Reg::R1, cap as i32 - 1, done);
        self.asm.mov(Reg::R3, Reg::R1);
        self.asm.alu(Alu::Add, Reg::R3, dst.base);
        self.asm.load(Size::B, Reg::R4, Reg::R3, dst.off as i16);
        let kept = self.asm.label();
        self.asm.jump_imm(Cond::Ne, Reg::R4, 0, kept);
        self.asm
            .store_imm(Size::B, Reg::R3, dst.off as i16, i32::from(b' '));
        self.asm.bind(kept);
        self.asm.alu_imm(Alu::Add, Reg::R1, 1);
        self.asm.store(Size::DW, Reg::FP, index, Reg::R1);
        self.asm.goto(head);
        self.asm.bind(done);
        self.release(mark);
        Ok(dst)
    }

    /// `backtrace()`: the kernel stack at the hit, `0x` and 16 hex digits
    /// per return address, separated by spaces (as many frames as
    /// `MAXSTRINGLEN` holds, [`MAX_FRAMES`] at most); with `user`,
    /// `ubacktrace()`: the current task's user-space stack
    /// (`BPF_F_USER_STACK`).
    pub(crate) fn backtrace(&mut self, user: bool) -> Result<StrPlace, BpfError> {
        let cap = self.max_string();
        let frames = MAX_FRAMES.min(cap / FRAME_CHARS);
        let dst = self.str_temp(cap)?;
        self.asm.store_imm(Size::B, dst.base, dst.off as i16, 0);
        if frames == 0 {
            return Ok(dst);
        }
        let mark = self.mark();
        let stack = self.scratch_alloc(8 * frames)?;
        let count = self.stack_alloc(8)?;
        let index = self.stack_alloc(8)?;
        self.asm.mov(Reg::R1, CTX);
        self.addr(Reg::R2, SCRATCH, stack);
        self.asm.mov_imm(Reg::R3, i64::from(8 * frames));
        // BPF_F_USER_STACK.
        self.asm.mov_imm(Reg::R4, if user { 1 << 8 } else { 0 });
        self.asm.call(Helper::GetStack);
        // Frames read: bytes / 8, within [0, frames].
        let some = self.asm.label();
        self.asm.jump_imm(Cond::Sgt, Reg::R0, 0, some);
        self.asm.mov_imm(Reg::R0, 0);
        self.asm.bind(some);
        self.asm.alu_imm(Alu::Rsh, Reg::R0, 3);
        let within = self.asm.label();
        self.asm.jump_imm(Cond::Le, Reg::R0, frames as i32, within);
        self.asm.mov_imm(Reg::R0, i64::from(frames));
        self.asm.bind(within);
        self.asm.store(Size::DW, Reg::FP, count, Reg::R0);
        let done = self.asm.label();
        self.asm.jump_imm(Cond::Eq, Reg::R0, 0, done);
        self.asm.store_imm(Size::DW, Reg::FP, index, 0);
        let head = self.asm.label();
        self.asm.bind(head);
        self.asm.load(Size::DW, Reg::R1, Reg::FP, index);
        self.asm.load(Size::DW, Reg::R2, Reg::FP, count);
        let last = self.asm.label();
        self.asm.jump_reg(Cond::Ge, Reg::R1, Reg::R2, last);
        self.asm.jump_imm(Cond::Ge, Reg::R1, frames as i32, last);
        // r4 = the frame's address; r5 = where its characters go.
        self.asm.mov(Reg::R3, Reg::R1);
        self.asm.alu_imm(Alu::Lsh, Reg::R3, 3);
        self.asm.alu(Alu::Add, Reg::R3, SCRATCH);
        self.asm.load(Size::DW, Reg::R4, Reg::R3, stack as i16);
        self.asm.mov(Reg::R5, Reg::R1);
        self.asm.alu_imm(Alu::Mul, Reg::R5, FRAME_CHARS as i32);
        self.asm.alu(Alu::Add, Reg::R5, dst.base);
        let at = |n: i32| (dst.off + n) as i16;
        self.asm.store_imm(Size::B, Reg::R5, at(0), i32::from(b'0'));
        self.asm.store_imm(Size::B, Reg::R5, at(1), i32::from(b'x'));
        for digit in 0..16 {
            self.asm.mov(Reg::R0, Reg::R4);
            let shift = 60 - 4 * digit;
            if shift > 0 {
                self.asm.alu_imm(Alu::Rsh, Reg::R0, shift);
            }
            self.asm.alu_imm(Alu::And, Reg::R0, 15);
            let decimal = self.asm.label();
            self.asm.jump_imm(Cond::Lt, Reg::R0, 10, decimal);
            self.asm
                .alu_imm(Alu::Add, Reg::R0, i32::from(b'a' - b'0' - 10));
            self.asm.bind(decimal);
            self.asm.alu_imm(Alu::Add, Reg::R0, i32::from(b'0'));
            self.asm.store(Size::B, Reg::R5, at(2 + digit), Reg::R0);
        }
        self.asm.store_imm(
            Size::B,
            Reg::R5,
            at(FRAME_CHARS as i32 - 1),
            i32::from(b' '),
        );
        self.asm.alu_imm(Alu::Add, Reg::R1, 1);
        self.asm.store(Size::DW, Reg::FP, index, Reg::R1);
        self.asm.goto(head);
        // The last frame's space ends the string.
        self.asm.bind(last);
        self.asm.load(Size::DW, Reg::R0, Reg::FP, count);
        self.asm.jump_imm(Cond::Gt, Reg::R0, frames as i32, done);
        self.asm.jump_imm(Cond::Eq, Reg::R0, 0, done);
        self.asm.alu_imm(Alu::Mul, Reg::R0, FRAME_CHARS as i32);
        self.asm.alu(Alu::Add, Reg::R0, dst.base);
        self.asm.store_imm(Size::B, Reg::R0, at(-1), 0);
        self.asm.bind(done);
        self.release(mark);
        Ok(dst)
    }
}
