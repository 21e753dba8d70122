//! Strings formatted in the kernel: `sprintf`, `sprint`/`sprintln`, a
//! number turned into a string, and `isinstr` with a literal needle.
//!
//! `bpf_snprintf` is not on 5.10, so formatting is our own code, as
//! SystemTap's runtime formats (`runtime/vsprintf.c`, which
//! `tapmatrix-runtime`'s `format` follows): every argument is evaluated
//! first (longs spilled, strings where they are), then the pieces are
//! appended to one buffer sized for the largest result, its length kept in
//! a scratch word (which the verifier does not track: see [`Builder`]) and
//! checked against a constant before every write, so the verifier knows
//! each access is in the buffer. A number is written
//! backwards into its own buffer with a counter the verifier follows
//! exactly (loops on 5.10 must change their state every iteration), then
//! appended with `bpf_probe_read_kernel_str`. The result is cut to
//! `MAXSTRINGLEN - 1` bytes.

use tapmatrix_ir::{Expr, FormatSpec, ScalarType};

use crate::codegen::{Gen, SCRATCH, StrPlace};
use crate::error::BpfError;
use crate::helpers::Helper;
use crate::insn::{Alu, Cond, Reg, Size};
use crate::layout::SCRATCH_BYTES;

/// The widest field (width or precision) formatted in the kernel; wider
/// ones leave the handler to the runtime.
const MAX_FIELD: i64 = 128;

/// Room for a number's digits (22 octal digits), sign and prefix.
const NUMBER_ROOM: u32 = 26;

/// One argument, evaluated.
#[derive(Debug, Clone, Copy)]
enum Arg {
    Long(i16),
    Str(StrPlace),
}

/// A directive as compiled: constant flags, width and precision.
#[derive(Debug, Clone, Copy, Default)]
struct Field {
    left: bool,
    plus: bool,
    space: bool,
    special: bool,
    zeropad: bool,
    /// -1: none.
    width: i64,
    /// -1: none.
    precision: i64,
}

impl Field {
    fn of(flags: &str, width: Option<i64>, precision: Option<i64>) -> Option<Field> {
        let mut f = Field {
            width: -1,
            precision: -1,
            ..Field::default()
        };
        for c in flags.chars() {
            match c {
                '-' => f.left = true,
                '+' => f.plus = true,
                ' ' => f.space = true,
                '#' => f.special = true,
                '0' => f.zeropad = true,
                _ => {}
            }
        }
        if f.left {
            f.zeropad = false;
        }
        match width {
            Some(w) if w < 0 => return None,
            Some(w) if w > MAX_FIELD => return None,
            Some(w) => f.width = w,
            None => {}
        }
        match precision {
            Some(p) if p < 0 => return None,
            Some(p) if p > MAX_FIELD => return None,
            Some(p) => f.precision = p,
            None => {}
        }
        Some(f)
    }
}

/// The buffer being appended to: `dst` (its whole allocation) and the
/// scratch word holding the length so far.
///
/// The length is in scratch memory, not on the stack, so that the
/// verifier does not track it: a map value's contents are unknown to it,
/// and each append bounds the length it loads before using it. On the
/// stack, each path through a handler's branches (a decoder's `if`s on
/// values read from memory) carried its own range of lengths, precise
/// because they offset pointers, and no two paths' states ever matched:
/// the verifier walked every path to the end.
#[derive(Debug, Clone, Copy)]
struct Builder {
    dst: StrPlace,
    len: i16,
}

impl Gen<'_> {
    fn unsupported_format(&self, what: &str) -> BpfError {
        BpfError::Unsupported {
            location: self.site.pp.clone(),
            what: format!("sprintf() with {what}"),
            why: Some("a string formatted in the kernel".to_owned()),
        }
    }

    /// `sprintf(format, args...)` into a new string.
    pub(crate) fn sprintf(
        &mut self,
        format: &[FormatSpec],
        args: &[Expr],
    ) -> Result<StrPlace, BpfError> {
        // What each directive is, checked before any code.
        for spec in format {
            if let FormatSpec::Directive {
                flags,
                width,
                precision,
                conversion,
            } = spec
            {
                if !"diuoxXpcs%".contains(*conversion) {
                    return Err(self.unsupported_format(&format!("%{conversion}")));
                }
                if *conversion == '%' {
                    continue;
                }
                match Field::of(flags, *width, *precision) {
                    None => return Err(self.unsupported_format("a `*` or very wide field")),
                    Some(f) if *conversion == 's' && f.zeropad => {
                        return Err(self.unsupported_format("%0s"));
                    }
                    Some(_) => {}
                }
            }
        }
        // The arguments, in order, before any formatting.
        let mut values = Vec::with_capacity(args.len());
        for arg in args {
            values.push(match self.ty(arg) {
                ScalarType::Long => {
                    self.long(arg)?;
                    Arg::Long(self.spill()?)
                }
                ScalarType::String => Arg::Str(self.string(arg)?),
            });
        }
        let caps: Vec<Option<u32>> = values
            .iter()
            .map(|value| match value {
                Arg::Str(s) => Some(s.cap),
                Arg::Long(_) => None,
            })
            .collect();
        let b = self.builder(format_room(format, &caps))?;
        let mut next = values.iter();
        for spec in format {
            let mark = self.mark();
            match spec {
                FormatSpec::Literal { text } => self.append_literal(b, text.as_bytes())?,
                FormatSpec::Directive {
                    flags,
                    width,
                    precision,
                    conversion,
                } => {
                    if *conversion == '%' {
                        self.append_literal(b, b"%")?;
                        continue;
                    }
                    let f = Field::of(flags, *width, *precision)
                        .ok_or(BpfError::Internal("a field checked above"))?;
                    let arg = next.next().copied();
                    match (conversion, arg) {
                        ('s', Some(Arg::Str(s))) => self.append_str(b, s, f)?,
                        ('s', Some(Arg::Long(off))) => {
                            self.asm.load(Size::DW, Reg::R0, Reg::FP, off);
                            self.append_number(b, 10, true, false, f)?;
                        }
                        ('s', None) => {
                            let empty = self.str_temp(1)?;
                            self.write_literal(empty, b"");
                            self.append_str(b, empty, f)?;
                        }
                        (_, Some(Arg::Str(_))) => {
                            return Err(self.unsupported_format("a string for a number"));
                        }
                        (c, arg) => {
                            match arg {
                                Some(Arg::Long(off)) => {
                                    self.asm.load(Size::DW, Reg::R0, Reg::FP, off)
                                }
                                _ => self.asm.mov_imm(Reg::R0, 0),
                            }
                            match c {
                                'd' | 'i' => self.append_number(b, 10, true, false, f)?,
                                'u' => self.append_number(b, 10, false, false, f)?,
                                'o' => self.append_number(b, 8, false, false, f)?,
                                'x' => self.append_number(b, 16, false, false, f)?,
                                'X' => self.append_number(b, 16, false, true, f)?,
                                'p' => {
                                    let f = Field { special: true, ..f };
                                    self.append_number(b, 16, false, false, f)?
                                }
                                _ => self.append_char(b, f)?,
                            }
                        }
                    }
                }
            }
            self.release(mark);
        }
        Ok(self.finish_builder(b))
    }

    /// The format and arguments of `sprint(args...)` (and `sprintln`):
    /// each argument as a string, the types of locals from `local_type`.
    pub(crate) fn sprint_format(
        &self,
        args: &[Expr],
        newline: bool,
        local_type: &dyn Fn(u32) -> ScalarType,
    ) -> (Vec<FormatSpec>, Vec<Expr>) {
        let mut format = Vec::with_capacity(args.len() + 1);
        let mut exprs = Vec::with_capacity(args.len());
        for arg in args {
            let arg = match arg {
                Expr::LongToStr(inner) => inner.as_ref(),
                other => other,
            };
            format.push(FormatSpec::Directive {
                flags: String::new(),
                width: None,
                precision: None,
                conversion: match self.ty_in(arg, local_type) {
                    ScalarType::Long => 'd',
                    ScalarType::String => 's',
                },
            });
            exprs.push(arg.clone());
        }
        if newline {
            format.push(FormatSpec::Literal {
                text: "\n".to_owned(),
            });
        }
        (format, exprs)
    }

    /// `sprint(args...)` (and `sprintln`): each argument as a string.
    pub(crate) fn sprint(&mut self, args: &[Expr], newline: bool) -> Result<StrPlace, BpfError> {
        let (format, exprs) = self.sprint_format(args, newline, &|i| self.local_type(i));
        self.sprintf(&format, &exprs)
    }

    /// A long as its decimal string.
    pub(crate) fn long_to_str(&mut self, e: &Expr) -> Result<StrPlace, BpfError> {
        self.sprintf(&[decimal()], std::slice::from_ref(e))
    }

    /// A new, empty buffer of `alloc` bytes and its length slot.
    fn builder(&mut self, alloc: u32) -> Result<Builder, BpfError> {
        let dst = self.str_temp(alloc.max(1))?;
        self.asm.store_imm(Size::B, dst.base, dst.off as i16, 0);
        let len = self.scratch_alloc(8)? as i16;
        self.asm.store_imm(Size::DW, SCRATCH, len, 0);
        Ok(Builder { dst, len })
    }

    /// The finished string: cut to `MAXSTRINGLEN - 1` bytes.
    fn finish_builder(&mut self, b: Builder) -> StrPlace {
        let max = self.max_string();
        if b.dst.cap > max {
            self.asm
                .store_imm(Size::B, b.dst.base, (b.dst.off + max as i32 - 1) as i16, 0);
        }
        StrPlace {
            cap: b.dst.cap.min(max),
            ..b.dst
        }
    }

    /// Appends the string at `r3`, at most `max - 1` bytes of it: `r2`
    /// holds the size to copy (the terminator included, at most `max`).
    fn append_raw(&mut self, b: Builder, max: u32) -> Result<(), BpfError> {
        if max > b.dst.cap {
            return Err(BpfError::Internal(
                "a formatted piece larger than its buffer",
            ));
        }
        let skip = self.asm.label();
        let room = b.dst.cap.saturating_sub(max);
        self.asm.load(Size::DW, Reg::R4, SCRATCH, b.len);
        self.asm.jump_imm(Cond::Gt, Reg::R4, room as i32, skip);
        self.asm.mov(Reg::R1, SCRATCH);
        self.asm.alu(Alu::Add, Reg::R1, Reg::R4);
        if b.dst.off != 0 {
            self.asm.alu_imm(Alu::Add, Reg::R1, b.dst.off);
        }
        self.asm.call(Helper::ProbeReadKernelStr);
        // r0: the bytes copied with the terminator; an error copies none.
        let positive = self.asm.label();
        self.asm.jump_imm(Cond::Sgt, Reg::R0, 0, positive);
        self.asm.mov_imm(Reg::R0, 1);
        self.asm.bind(positive);
        let within = self.asm.label();
        self.asm.jump_imm(Cond::Le, Reg::R0, max as i32, within);
        self.asm.mov_imm(Reg::R0, i64::from(max));
        self.asm.bind(within);
        self.asm.alu_imm(Alu::Sub, Reg::R0, 1);
        self.asm.load(Size::DW, Reg::R4, SCRATCH, b.len);
        self.asm.alu(Alu::Add, Reg::R4, Reg::R0);
        self.asm.store(Size::DW, SCRATCH, b.len, Reg::R4);
        self.asm.bind(skip);
        Ok(())
    }

    /// Appends the string at `s`.
    fn append_place(&mut self, b: Builder, s: StrPlace) -> Result<(), BpfError> {
        let cap = s.cap.max(1);
        self.addr(Reg::R3, s.base, s.off);
        self.asm.mov_imm(Reg::R2, i64::from(cap));
        self.append_raw(b, cap)
    }

    /// Appends constant text.
    fn append_literal(&mut self, b: Builder, text: &[u8]) -> Result<(), BpfError> {
        if text.is_empty() {
            return Ok(());
        }
        let mark = self.mark();
        let cap = (text.len() as u32 + 1).min(self.max_string().max(2));
        let place = self.str_temp(cap)?;
        self.write_literal(place, text);
        self.append_place(b, place)?;
        self.release(mark);
        Ok(())
    }

    /// Appends `r0` spaces, `r0` at most `width` (a register the caller
    /// set; nothing when it is 0 or less).
    fn append_spaces(&mut self, b: Builder, width: i64) -> Result<(), BpfError> {
        if width <= 0 {
            return Ok(());
        }
        let mark = self.mark();
        let count = self.spill()?;
        let spaces = self.str_temp(width as u32 + 1)?;
        self.write_literal(spaces, " ".repeat(width as usize).as_bytes());
        let skip = self.asm.label();
        self.unspill(Reg::R2, count);
        self.asm.jump_imm(Cond::Sle, Reg::R2, 0, skip);
        self.asm.jump_imm(Cond::Sgt, Reg::R2, width as i32, skip);
        // The size with the terminator.
        self.asm.alu_imm(Alu::Add, Reg::R2, 1);
        self.addr(Reg::R3, spaces.base, spaces.off);
        self.append_raw(b, width as u32 + 1)?;
        self.asm.bind(skip);
        self.release(mark);
        Ok(())
    }

    /// `%s` of the string at `s`.
    fn append_str(&mut self, b: Builder, s: StrPlace, f: Field) -> Result<(), BpfError> {
        let cap = s.cap.max(1);
        // The bytes shown: cut to the precision.
        let shown = if f.precision >= 0 {
            (f.precision as u32 + 1).min(cap)
        } else {
            cap
        };
        if f.width > 0 {
            self.strlen(s);
            let cut = self.asm.label();
            self.asm.jump_imm(Cond::Le, Reg::R0, shown as i32 - 1, cut);
            self.asm.mov_imm(Reg::R0, i64::from(shown) - 1);
            self.asm.bind(cut);
            // r0 = width - shown length.
            self.asm.mov(Reg::R1, Reg::R0);
            self.asm.mov_imm(Reg::R0, f.width);
            self.asm.alu(Alu::Sub, Reg::R0, Reg::R1);
            if f.left {
                let mark = self.mark();
                let pad = self.spill()?;
                self.addr(Reg::R3, s.base, s.off);
                self.asm.mov_imm(Reg::R2, i64::from(shown));
                self.append_raw(b, shown)?;
                self.unspill(Reg::R0, pad);
                self.append_spaces(b, f.width)?;
                self.release(mark);
            } else {
                self.append_spaces(b, f.width)?;
                self.addr(Reg::R3, s.base, s.off);
                self.asm.mov_imm(Reg::R2, i64::from(shown));
                self.append_raw(b, shown)?;
            }
        } else {
            self.addr(Reg::R3, s.base, s.off);
            self.asm.mov_imm(Reg::R2, i64::from(shown));
            self.append_raw(b, shown)?;
        }
        Ok(())
    }

    /// `%c` of `r0`.
    fn append_char(&mut self, b: Builder, f: Field) -> Result<(), BpfError> {
        if f.special {
            return Err(self.unsupported_format("%#c"));
        }
        let mark = self.mark();
        let one = self.str_temp(2)?;
        self.asm.store(Size::B, one.base, one.off as i16, Reg::R0);
        self.asm.store_imm(Size::B, one.base, one.off as i16 + 1, 0);
        let pad = f.width - 1;
        if pad > 0 && !f.left {
            self.asm.mov_imm(Reg::R0, pad);
            self.append_spaces(b, pad)?;
        }
        self.append_place(b, one)?;
        if pad > 0 && f.left {
            self.asm.mov_imm(Reg::R0, pad);
            self.append_spaces(b, pad)?;
        }
        self.release(mark);
        Ok(())
    }

    /// Appends `r0` as a number in `base`, as SystemTap's `number()`.
    fn append_number(
        &mut self,
        b: Builder,
        base: u32,
        signed: bool,
        large: bool,
        f: Field,
    ) -> Result<(), BpfError> {
        let mark = self.mark();
        let prefix: i64 = match (f.special, base) {
            (true, 16) => 2,
            (true, 8) => 1,
            _ => 0,
        };
        let room = NUMBER_ROOM + f.precision.max(0) as u32 + f.width.max(0) as u32;
        let t = self.str_temp(room + 1)?;
        let end = room as i32;
        let neg = self.stack_alloc(8)?;
        // r0: the magnitude; r4: 1 when negative.
        self.asm.mov_imm(Reg::R4, 0);
        if signed {
            let positive = self.asm.label();
            self.asm.jump_imm(Cond::Sge, Reg::R0, 0, positive);
            self.emit(crate::insn::Insn::neg64(Reg::R0));
            self.asm.mov_imm(Reg::R4, 1);
            self.asm.bind(positive);
        }
        self.asm.store(Size::DW, Reg::FP, neg, Reg::R4);
        // r1: where the number starts in `t` (counts down from `end`).
        self.asm.mov_imm(Reg::R1, i64::from(end));
        self.asm
            .store_imm(Size::B, SCRATCH, (t.off + end) as i16, 0);
        let full = self.asm.label();
        // Digits, lowest first, as many as the base can have in 64 bits:
        // a loop of that many turns whose body has no branch, so that the
        // verifier follows one path however many digits there are (which
        // matters in loops), and the program holds the body once (the
        // kernel's cost of a program grows with its length: on 7.x under
        // TCG about six times what walking an instruction costs, and a
        // 20-digit unrolled body was most of a tapset's `sprintf`s). r5
        // counts the digits up to the highest one that is not zero, r1
        // points at the next digit's byte, r4 counts the turns (the sign
        // is on the stack).
        let digits: i32 = match base {
            8 => 22,
            10 => 20,
            _ => 16,
        };
        self.asm.mov_imm(Reg::R5, 1);
        self.asm.mov(Reg::R1, SCRATCH);
        self.asm.alu_imm(Alu::Add, Reg::R1, t.off + end - 1);
        self.asm.mov_imm(Reg::R4, 0);
        let body_start = self.asm.len();
        let turn = self.asm.label();
        self.asm.bind(turn);
        self.asm.mov(Reg::R3, Reg::R0);
        self.asm.alu_imm(Alu::Mod, Reg::R3, base as i32);
        if base > 10 {
            // r2 = 1 when the digit is a letter: (9 - d) >> 63.
            self.asm.mov_imm(Reg::R2, 9);
            self.asm.alu(Alu::Sub, Reg::R2, Reg::R3);
            self.asm.alu_imm(Alu::Rsh, Reg::R2, 63);
            let gap = i32::from(if large { b'A' } else { b'a' }) - i32::from(b'0') - 10;
            self.asm.alu_imm(Alu::Mul, Reg::R2, gap);
            self.asm.alu(Alu::Add, Reg::R3, Reg::R2);
        }
        self.asm.alu_imm(Alu::Add, Reg::R3, i32::from(b'0'));
        self.asm.store(Size::B, Reg::R1, 0, Reg::R3);
        self.asm.alu_imm(Alu::Sub, Reg::R1, 1);
        self.asm.alu_imm(Alu::Div, Reg::R0, base as i32);
        // r2 = 1 when what is left is not zero: (-m | m) >> 63 (0 after
        // the last turn: the base's digits hold any 64-bit value).
        self.asm.mov_imm(Reg::R2, 0);
        self.asm.alu(Alu::Sub, Reg::R2, Reg::R0);
        self.asm.alu(Alu::Or, Reg::R2, Reg::R0);
        self.asm.alu_imm(Alu::Rsh, Reg::R2, 63);
        self.asm.alu(Alu::Add, Reg::R5, Reg::R2);
        self.asm.alu_imm(Alu::Add, Reg::R4, 1);
        self.asm.jump_imm(Cond::Lt, Reg::R4, digits, turn);
        // What the verifier walks beyond the body's length, for the loops
        // around this one (`Gen::walked`).
        let body = (self.asm.len() - body_start) as u64;
        self.loop_extra += body * (digits as u64 - 1);
        self.asm.mov_imm(Reg::R1, i64::from(end));
        self.asm.alu(Alu::Sub, Reg::R1, Reg::R5);
        // Zeros up to the precision.
        if f.precision > 0 {
            self.pad_to(t, end, f.precision, b'0', full);
        }
        // Zeros up to the width, less the sign and prefix.
        let sign_fixed = signed && (f.plus || f.space);
        if f.zeropad && f.width > 0 {
            let target = f.width - prefix - i64::from(sign_fixed);
            self.asm.mov_imm(Reg::R5, target);
            if signed && !sign_fixed {
                self.asm.load(Size::DW, Reg::R4, Reg::FP, neg);
                self.asm.alu(Alu::Sub, Reg::R5, Reg::R4);
            }
            self.pad_to_reg(t, end, b'0', full);
        }
        // The prefix.
        if prefix > 0 {
            if base == 16 {
                self.put_byte(t, if large { b'X' } else { b'x' }, full);
            }
            self.put_byte(t, b'0', full);
        }
        // The sign.
        if signed {
            let done = self.asm.label();
            let minus = self.asm.label();
            self.asm.load(Size::DW, Reg::R4, Reg::FP, neg);
            self.asm.jump_imm(Cond::Ne, Reg::R4, 0, minus);
            if f.plus {
                self.put_byte(t, b'+', full);
            } else if f.space {
                self.put_byte(t, b' ', full);
            }
            self.asm.goto(done);
            self.asm.bind(minus);
            self.put_byte(t, b'-', full);
            self.asm.bind(done);
        }
        // Spaces up to the width, right-justified.
        if !f.zeropad && !f.left && f.width > 0 {
            self.pad_to(t, end, f.width, b' ', full);
        }
        self.asm.bind(full);
        // r1 is where the text starts; append it.
        let start = self.spill_reg(Reg::R1)?;
        self.asm.mov(Reg::R3, SCRATCH);
        self.asm.alu(Alu::Add, Reg::R3, Reg::R1);
        if t.off != 0 {
            self.asm.alu_imm(Alu::Add, Reg::R3, t.off);
        }
        self.asm.mov_imm(Reg::R2, i64::from(t.cap));
        self.append_raw(b, t.cap)?;
        if f.left && f.width > 0 {
            // r0 = width - (end - start).
            self.unspill(Reg::R1, start);
            self.asm.mov_imm(Reg::R0, f.width - i64::from(end));
            self.asm.alu(Alu::Add, Reg::R0, Reg::R1);
            self.append_spaces(b, f.width)?;
        }
        self.release(mark);
        Ok(())
    }

    fn spill_reg(&mut self, reg: Reg) -> Result<i16, BpfError> {
        let off = self.stack_alloc(8)?;
        self.asm.store(Size::DW, Reg::FP, off, reg);
        Ok(off)
    }

    /// `t[--r1] = byte`, or to `full` when `t` is full.
    fn put_byte(&mut self, t: StrPlace, byte: u8, full: crate::asm::Label) {
        self.asm.jump_imm(Cond::Eq, Reg::R1, 0, full);
        self.asm.alu_imm(Alu::Sub, Reg::R1, 1);
        self.asm.mov(Reg::R2, SCRATCH);
        self.asm.alu(Alu::Add, Reg::R2, Reg::R1);
        self.asm
            .store_imm(Size::B, Reg::R2, t.off as i16, i32::from(byte));
    }

    /// `byte`s before the text until it is `count` long.
    fn pad_to(&mut self, t: StrPlace, end: i32, count: i64, byte: u8, full: crate::asm::Label) {
        self.asm.mov_imm(Reg::R5, count);
        self.pad_to_reg(t, end, byte, full);
    }

    /// `byte`s before the text until it is `r5` long.
    fn pad_to_reg(&mut self, t: StrPlace, end: i32, byte: u8, full: crate::asm::Label) {
        let head = self.asm.label();
        let done = self.asm.label();
        self.asm.bind(head);
        // r3 = end - r1: the text's length so far.
        self.asm.mov_imm(Reg::R3, i64::from(end));
        self.asm.alu(Alu::Sub, Reg::R3, Reg::R1);
        self.asm.jump_reg(Cond::Sge, Reg::R3, Reg::R5, done);
        self.put_byte(t, byte, full);
        self.asm.goto(head);
        self.asm.bind(done);
    }

    /// `isinstr(s, "literal")` into `r0`: 1 when `s` holds the literal.
    pub(crate) fn isinstr(&mut self, args: &[Expr]) -> Result<(), BpfError> {
        let [haystack, Expr::Str(needle)] = args else {
            return Err(BpfError::Unsupported {
                location: self.site.pp.clone(),
                what: "isinstr() with a needle that is not a literal".to_owned(),
                why: Some("it runs in the kernel".to_owned()),
            });
        };
        self.contains(haystack, needle.as_bytes())
    }

    /// `s =~ "re"` (or `!~`) into `r0`, where the pattern only asks for a
    /// literal somewhere in the string (`AF_INET*` is `AF_INE` anywhere).
    pub(crate) fn regex_literal(
        &mut self,
        operand: &Expr,
        pattern: &str,
        negated: bool,
    ) -> Result<(), BpfError> {
        let Some(literal) = literal_pattern(pattern) else {
            return Err(BpfError::Unsupported {
                location: self.site.pp.clone(),
                what: "a regular expression match".to_owned(),
                why: Some("it runs in the kernel".to_owned()),
            });
        };
        self.contains(operand, literal.as_bytes())?;
        if negated {
            self.asm.alu_imm(Alu::Xor, Reg::R0, 1);
        }
        Ok(())
    }

    /// `r0` = 1 when the string at `s` holds `byte` before its end: eight
    /// bytes a turn (the verifier walks a turn per word, not per byte: a
    /// search over a 512-byte string was 510 turns), with the classic
    /// test for a zero byte, `(v - 0x01..01) & !v & 0x80..80`, whose
    /// lowest set bit is the first zero byte of `v` (bits above it may be
    /// false): applied to the word (its end) and to the word XOR the byte
    /// repeated (the byte), the byte is there when it comes first.
    fn contains_byte(&mut self, s: StrPlace, byte: u8, words: u32) {
        const ONES: i64 = 0x0101_0101_0101_0101;
        const HIGHS: i64 = 0x8080_8080_8080_8080_u64 as i64;
        let pattern = ONES.wrapping_mul(i64::from(byte));
        let (head, found, missing, absent) = (
            self.asm.label(),
            self.asm.label(),
            self.asm.label(),
            self.asm.label(),
        );
        // r1: the word's offset in the string.
        self.asm.mov_imm(Reg::R1, 0);
        self.asm.bind(head);
        self.asm
            .jump_imm(Cond::Gt, Reg::R1, ((words - 1) * 8) as i32, missing);
        self.asm.mov(Reg::R2, SCRATCH);
        self.asm.alu(Alu::Add, Reg::R2, Reg::R1);
        self.asm.load(Size::DW, Reg::R3, Reg::R2, s.off as i16);
        // r4: the zero bytes' marks.
        self.asm.mov_imm(Reg::R0, ONES);
        self.asm.mov(Reg::R4, Reg::R3);
        self.asm.alu(Alu::Sub, Reg::R4, Reg::R0);
        self.asm.mov(Reg::R5, Reg::R3);
        self.asm.alu_imm(Alu::Xor, Reg::R5, -1);
        self.asm.alu(Alu::And, Reg::R4, Reg::R5);
        self.asm.mov_imm(Reg::R5, HIGHS);
        self.asm.alu(Alu::And, Reg::R4, Reg::R5);
        // r5: the marks of the bytes that are `byte`.
        self.asm.mov_imm(Reg::R5, pattern);
        self.asm.alu(Alu::Xor, Reg::R3, Reg::R5);
        self.asm.mov(Reg::R5, Reg::R3);
        self.asm.alu(Alu::Sub, Reg::R5, Reg::R0);
        self.asm.alu_imm(Alu::Xor, Reg::R3, -1);
        self.asm.alu(Alu::And, Reg::R5, Reg::R3);
        self.asm.mov_imm(Reg::R3, HIGHS);
        self.asm.alu(Alu::And, Reg::R5, Reg::R3);
        self.asm.jump_imm(Cond::Eq, Reg::R5, 0, absent);
        // The byte is in this word: found unless the string ended first.
        self.asm.jump_imm(Cond::Eq, Reg::R4, 0, found);
        self.asm.mov(Reg::R3, Reg::R5);
        self.emit(crate::insn::Insn::neg64(Reg::R3));
        self.asm.alu(Alu::And, Reg::R5, Reg::R3);
        self.asm.mov(Reg::R3, Reg::R4);
        self.emit(crate::insn::Insn::neg64(Reg::R3));
        self.asm.alu(Alu::And, Reg::R4, Reg::R3);
        self.asm.jump_reg(Cond::Lt, Reg::R5, Reg::R4, found);
        self.asm.goto(missing);
        // Not in this word: the string ends here, or the next word.
        self.asm.bind(absent);
        self.asm.jump_imm(Cond::Ne, Reg::R4, 0, missing);
        self.asm.alu_imm(Alu::Add, Reg::R1, 8);
        self.asm.goto(head);
        self.verdict(missing, found);
    }

    /// `r0` = 0 at `missing`, 1 at `found`, both going on after.
    fn verdict(&mut self, missing: crate::asm::Label, found: crate::asm::Label) {
        let done = self.asm.label();
        self.asm.bind(missing);
        self.asm.mov_imm(Reg::R0, 0);
        self.asm.goto(done);
        self.asm.bind(found);
        self.asm.mov_imm(Reg::R0, 1);
        self.asm.bind(done);
    }

    /// `r0` = 1 when the string `haystack` holds `needle`.
    fn contains(&mut self, haystack: &Expr, needle: &[u8]) -> Result<(), BpfError> {
        let mark = self.mark();
        let s = self.string(haystack)?;
        let found = self.asm.label();
        if needle.is_empty() {
            self.asm.mov_imm(Reg::R0, 1);
            self.release(mark);
            return Ok(());
        }
        let n = needle.len() as u32;
        if n >= s.cap {
            self.asm.mov_imm(Reg::R0, 0);
            self.release(mark);
            return Ok(());
        }
        let words = s.cap.div_ceil(8);
        if let [byte] = needle
            && s.base == SCRATCH
            && u32::try_from(s.off).is_ok_and(|off| off + words * 8 <= SCRATCH_BYTES)
        {
            self.contains_byte(s, *byte, words);
            self.release(mark);
            return Ok(());
        }
        // r1: where the needle is tried; r2: that address.
        let head = self.asm.label();
        let next = self.asm.label();
        let missing = self.asm.label();
        self.asm.mov_imm(Reg::R1, 0);
        self.asm.bind(head);
        self.asm
            .jump_imm(Cond::Gt, Reg::R1, (s.cap - 1 - n) as i32, missing);
        self.asm.mov(Reg::R2, s.base);
        self.asm.alu(Alu::Add, Reg::R2, Reg::R1);
        for (i, byte) in needle.iter().enumerate() {
            self.asm
                .load(Size::B, Reg::R3, Reg::R2, (s.off + i as i32) as i16);
            if i == 0 {
                // The string ended before the needle was found.
                self.asm.jump_imm(Cond::Eq, Reg::R3, 0, missing);
            }
            self.asm.jump_imm(Cond::Ne, Reg::R3, i32::from(*byte), next);
        }
        self.asm.goto(found);
        self.asm.bind(next);
        self.asm.alu_imm(Alu::Add, Reg::R1, 1);
        self.asm.goto(head);
        self.verdict(missing, found);
        self.release(mark);
        Ok(())
    }
}

/// `%d`: how a long becomes a string.
pub(crate) fn decimal() -> FormatSpec {
    FormatSpec::Directive {
        flags: String::new(),
        width: None,
        precision: None,
        conversion: 'd',
    }
}

/// The buffer a formatted string needs, its terminator included: what the
/// appends of [`Gen::sprintf`] may claim (each checks that its whole copy
/// fits), for the arguments in order (`Some(cap)` a string's buffer, `None`
/// a long). More than `MAXSTRINGLEN` is cut to it when finished.
pub(crate) fn format_room(format: &[FormatSpec], args: &[Option<u32>]) -> u32 {
    let mut alloc: u32 = 1;
    let mut next = args.iter();
    for spec in format {
        match spec {
            FormatSpec::Literal { text } => alloc += text.len() as u32,
            FormatSpec::Directive {
                flags,
                width,
                precision,
                conversion,
            } => {
                if *conversion == '%' {
                    alloc += 2;
                    continue;
                }
                // A field `Gen::sprintf` refuses never gets here: the
                // widest claim stands in for it.
                let (width, precision) = Field::of(flags, *width, *precision)
                    .map_or((MAX_FIELD as u32, MAX_FIELD as u32), |f| {
                        (f.width.max(0) as u32, f.precision.max(0) as u32)
                    });
                let number = NUMBER_ROOM + precision + 2 * width + 1;
                alloc += match (conversion, next.next()) {
                    ('s', Some(Some(cap))) => cap + width + 1,
                    ('s', None) => width + 2,
                    ('c', _) => 2 + 2 * width,
                    _ => number,
                };
            }
        }
    }
    alloc
}

/// The literal an unanchored POSIX ERE asks for when it is plain text
/// followed by optional characters (`c*`, `c?`), which match anywhere the
/// text does; `None` for anything else.
pub(crate) fn literal_pattern(pattern: &str) -> Option<String> {
    let mut chars: Vec<char> = pattern.chars().collect();
    while chars.len() >= 2 && matches!(chars.last(), Some('*' | '?')) {
        let c = chars[chars.len() - 2];
        if !plain(c) {
            return None;
        }
        chars.truncate(chars.len() - 2);
    }
    if chars.iter().all(|c| plain(*c)) {
        Some(chars.into_iter().collect())
    } else {
        None
    }
}

fn plain(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | ' ' | '/' | ':' | ',' | '=' | '@' | '%')
}
