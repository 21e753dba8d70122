//! Long expressions into `r0`, conditions as jumps, and expression types.

use tapmatrix_ir::{
    BinaryOp, Builtin, CompareOp, Expr, GlobalType, LValue, Loc, ScalarType, UnaryOp,
};

use crate::asm::Label;
use crate::codegen::{CTX, Gen, PT_REGS_CS, PT_REGS_IP, Regs, SCALARS, Slot};
use crate::error::BpfError;
use crate::helpers::Helper;
use crate::insn::{Alu, Cond, Reg, Size};
use crate::layout::{REALTIME_OFFSET, TARGET_OFFSET};

/// `file:line:col` of a place.
pub(crate) fn place(program: &tapmatrix_ir::Program, loc: Loc) -> String {
    let file = program
        .files
        .get(loc.file as usize)
        .map_or("<input>", String::as_str);
    format!("{file}:{}:{}", loc.line, loc.col)
}

/// The jump condition of a signed comparison.
pub(crate) fn signed_cond(op: CompareOp) -> Cond {
    match op {
        CompareOp::Eq => Cond::Eq,
        CompareOp::Ne => Cond::Ne,
        CompareOp::Lt => Cond::Slt,
        CompareOp::Le => Cond::Sle,
        CompareOp::Gt => Cond::Sgt,
        CompareOp::Ge => Cond::Sge,
    }
}

/// The type a builtin returns (`None`: nothing).
pub(crate) fn builtin_type(builtin: Builtin) -> ScalarType {
    match builtin {
        Builtin::Sprint
        | Builtin::Sprintln
        | Builtin::Execname
        | Builtin::Probefunc
        | Builtin::Pp
        | Builtin::Ppfunc
        | Builtin::Substr
        | Builtin::Stringat
        | Builtin::TextStr
        | Builtin::StrReplace
        | Builtin::StringQuoted
        | Builtin::Tokenize
        | Builtin::ErrnoStr
        | Builtin::Matched
        | Builtin::Backtrace
        | Builtin::Ubacktrace
        | Builtin::CmdlineStr
        | Builtin::Symname
        | Builtin::Symdata
        | Builtin::SyscallName
        | Builtin::Ctime => ScalarType::String,
        _ => ScalarType::Long,
    }
}

impl Gen<'_> {
    /// The type of a local of the innermost frame.
    pub(crate) fn local_type(&self, i: u32) -> ScalarType {
        let types = match self.inlined.last() {
            Some(frame) => &frame.types,
            None => &self.local_types,
        };
        types.get(i as usize).copied().unwrap_or(ScalarType::Long)
    }

    /// The slots of the innermost frame's locals.
    pub(crate) fn frame_slots(&self) -> &[Slot] {
        match self.inlined.last() {
            Some(frame) => &frame.locals,
            None => &self.locals,
        }
    }

    /// The slot of a local of the innermost frame.
    pub(crate) fn local_slot(&self, i: u32) -> Result<Slot, BpfError> {
        self.frame_slots()
            .get(i as usize)
            .copied()
            .ok_or(BpfError::Internal("a local without a slot"))
    }

    /// The value type of global `g` (scalars; an array's elements).
    pub(crate) fn global_type(&self, g: u32) -> ScalarType {
        match self.site.program.globals.get(g as usize).map(|g| &g.ty) {
            Some(GlobalType::Scalar { ty }) => *ty,
            Some(GlobalType::Array {
                value: Some(ty), ..
            }) => *ty,
            _ => ScalarType::Long,
        }
    }

    /// The type of an lvalue.
    pub(crate) fn lvalue_type(&self, lv: &LValue) -> ScalarType {
        self.lvalue_type_in(lv, &|i| self.local_type(i))
    }

    /// [`Gen::lvalue_type`] with the locals' types of `local_type`.
    fn lvalue_type_in(&self, lv: &LValue, local_type: &dyn Fn(u32) -> ScalarType) -> ScalarType {
        match lv {
            LValue::Local(i) => local_type(*i),
            LValue::Global(g) => self.global_type(*g),
            LValue::Index { array, .. } => self.global_type(*array),
        }
    }

    /// The type of an expression.
    pub(crate) fn ty(&self, e: &Expr) -> ScalarType {
        self.ty_in(e, &|i| self.local_type(i))
    }

    /// The type of an expression whose locals have the types
    /// `local_type` gives (those of a frame not entered yet).
    pub(crate) fn ty_in(&self, e: &Expr, local_type: &dyn Fn(u32) -> ScalarType) -> ScalarType {
        match e {
            Expr::Str(_)
            | Expr::Concat(..)
            | Expr::LongToStr(_)
            | Expr::Hist { .. }
            | Expr::ReadString { .. } => ScalarType::String,
            Expr::Local(i) => local_type(*i),
            Expr::Global(g) => self.global_type(*g),
            Expr::Fetch(i) => self
                .fetch_types
                .get(*i as usize)
                .copied()
                .unwrap_or(ScalarType::Long),
            Expr::EntryValue(i) => self
                .entry_types
                .get(*i as usize)
                .copied()
                .unwrap_or(ScalarType::Long),
            Expr::Index { array, .. } => self.global_type(*array),
            Expr::Ternary { then, .. } => self.ty_in(then, local_type),
            Expr::Assign { target, .. } => self.lvalue_type_in(target, local_type),
            Expr::Call { function, .. } => self
                .site
                .program
                .functions
                .get(*function as usize)
                .and_then(|f| f.ret)
                .unwrap_or(ScalarType::Long),
            Expr::Builtin { builtin, .. } => builtin_type(*builtin),
            Expr::Printf { to_string, .. } => {
                if *to_string {
                    ScalarType::String
                } else {
                    ScalarType::Long
                }
            }
            _ => ScalarType::Long,
        }
    }

    fn unsupported(&self, what: impl Into<String>, loc: Option<Loc>) -> BpfError {
        BpfError::Unsupported {
            location: loc.map_or_else(|| self.site.pp.clone(), |l| place(self.site.program, l)),
            what: what.into(),
            why: Some("it runs in the kernel".to_owned()),
        }
    }

    /// `r1` = a simple operand without touching `r0`, if it is one.
    fn simple_operand(&mut self, e: &Expr) -> Result<bool, BpfError> {
        match e {
            Expr::Long(n) => self.asm.mov_imm(Reg::R1, *n),
            Expr::Local(i) if self.local_type(*i) == ScalarType::Long => {
                match self.local_slot(*i)? {
                    Slot::Long(off) => self.asm.load(Size::DW, Reg::R1, Reg::FP, off),
                    Slot::Str(_) => return Ok(false),
                }
            }
            Expr::Fetch(i) => match self.fetches.get(*i as usize) {
                Some(Slot::Long(off)) => self.asm.load(Size::DW, Reg::R1, Reg::FP, *off),
                _ => return Ok(false),
            },
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// `r0 = lhs`, `r1 = rhs`.
    pub(crate) fn operands(&mut self, lhs: &Expr, rhs: &Expr) -> Result<(), BpfError> {
        self.long(lhs)?;
        if self.simple_operand(rhs)? {
            return Ok(());
        }
        let mark = self.mark();
        let tmp = self.spill()?;
        self.long(rhs)?;
        self.asm.mov(Reg::R1, Reg::R0);
        self.unspill(Reg::R0, tmp);
        self.release(mark);
        Ok(())
    }

    /// `r0 = r0 op r1`, with SystemTap's semantics (signed division with a
    /// division-by-zero error, shift counts clamped).
    pub(crate) fn arith(&mut self, op: BinaryOp, loc: Loc) -> Result<(), BpfError> {
        let simple = match op {
            BinaryOp::Add => Some(Alu::Add),
            BinaryOp::Sub => Some(Alu::Sub),
            BinaryOp::Mul => Some(Alu::Mul),
            BinaryOp::BitAnd => Some(Alu::And),
            BinaryOp::BitOr => Some(Alu::Or),
            BinaryOp::BitXor => Some(Alu::Xor),
            _ => None,
        };
        if let Some(alu) = simple {
            self.asm.alu(alu, Reg::R0, Reg::R1);
            return Ok(());
        }
        match op {
            BinaryOp::Shl | BinaryOp::Shr | BinaryOp::UShr => {
                // count = clamp(y, 0, 64) & 63, as the runtime computes it.
                let not_negative = self.asm.label();
                self.asm.jump_imm(Cond::Sge, Reg::R1, 0, not_negative);
                self.asm.mov_imm(Reg::R1, 0);
                self.asm.bind(not_negative);
                let small = self.asm.label();
                self.asm.jump_imm(Cond::Sle, Reg::R1, 64, small);
                self.asm.mov_imm(Reg::R1, 64);
                self.asm.bind(small);
                self.asm.alu_imm(Alu::And, Reg::R1, 63);
                let alu = match op {
                    BinaryOp::Shl => Alu::Lsh,
                    BinaryOp::Shr => Alu::Arsh,
                    _ => Alu::Rsh,
                };
                self.asm.alu(alu, Reg::R0, Reg::R1);
            }
            BinaryOp::Div | BinaryOp::Mod => {
                let nonzero = self.asm.label();
                self.asm.jump_imm(Cond::Ne, Reg::R1, 0, nonzero);
                self.raise(format!(
                    "division by 0 near operator '{}' at {}",
                    op.symbol(),
                    place(self.site.program, loc)
                ))?;
                self.asm.bind(nonzero);
                // Signed division from unsigned: magnitudes, then the sign
                // (the quotient's: signs differ; the remainder's: the
                // dividend's).
                self.asm.mov_imm(Reg::R3, 0);
                let lhs_positive = self.asm.label();
                self.asm.jump_imm(Cond::Sge, Reg::R0, 0, lhs_positive);
                self.emit(crate::insn::Insn::neg64(Reg::R0));
                self.asm.mov_imm(Reg::R3, 1);
                self.asm.bind(lhs_positive);
                let rhs_positive = self.asm.label();
                self.asm.jump_imm(Cond::Sge, Reg::R1, 0, rhs_positive);
                self.emit(crate::insn::Insn::neg64(Reg::R1));
                if op == BinaryOp::Div {
                    self.asm.alu_imm(Alu::Xor, Reg::R3, 1);
                }
                self.asm.bind(rhs_positive);
                let alu = if op == BinaryOp::Div {
                    Alu::Div
                } else {
                    Alu::Mod
                };
                self.asm.alu(alu, Reg::R0, Reg::R1);
                let positive = self.asm.label();
                self.asm.jump_imm(Cond::Eq, Reg::R3, 0, positive);
                self.emit(crate::insn::Insn::neg64(Reg::R0));
                self.asm.bind(positive);
            }
            _ => return Err(BpfError::Internal("an operator without code")),
        }
        Ok(())
    }

    /// Evaluates a long expression into `r0`.
    pub(crate) fn long(&mut self, e: &Expr) -> Result<(), BpfError> {
        match e {
            Expr::Long(n) => self.asm.mov_imm(Reg::R0, *n),
            Expr::Local(i) => match self.local_slot(*i)? {
                Slot::Long(off) => self.asm.load(Size::DW, Reg::R0, Reg::FP, off),
                Slot::Str(_) => return Err(BpfError::Internal("a string local used as a long")),
            },
            Expr::Fetch(i) => match self.fetches.get(*i as usize) {
                Some(Slot::Long(off)) => self.asm.load(Size::DW, Reg::R0, Reg::FP, *off),
                _ => return Err(BpfError::Internal("a fetch slot without a long")),
            },
            Expr::EntryValue(i) => match self.entry.get(*i as usize) {
                Some(Slot::Long(off)) => self.asm.load(Size::DW, Reg::R0, Reg::FP, *off),
                _ => return Err(BpfError::Internal("an @entry value without a long")),
            },
            Expr::Global(g) => self.load_global(*g)?,
            Expr::Index { array, keys } => self.index_long(*array, keys)?,
            Expr::In { array, keys } => self.in_array(*array, keys)?,
            Expr::Unary { op, operand } => {
                self.long(operand)?;
                match op {
                    UnaryOp::Neg => self.emit(crate::insn::Insn::neg64(Reg::R0)),
                    UnaryOp::BitNot => self.asm.alu_imm(Alu::Xor, Reg::R0, -1),
                    UnaryOp::Not => {
                        self.asm.mov(Reg::R1, Reg::R0);
                        self.asm.mov_imm(Reg::R0, 1);
                        let done = self.asm.label();
                        self.asm.jump_imm(Cond::Eq, Reg::R1, 0, done);
                        self.asm.mov_imm(Reg::R0, 0);
                        self.asm.bind(done);
                    }
                }
            }
            Expr::Binary { op, lhs, rhs, loc } => {
                self.operands(lhs, rhs)?;
                self.arith(*op, *loc)?;
            }
            Expr::CompareLong { .. } | Expr::CompareStr { .. } | Expr::And(..) | Expr::Or(..) => {
                let no = self.asm.label();
                let done = self.asm.label();
                self.branch(e, no, false)?;
                self.asm.mov_imm(Reg::R0, 1);
                self.asm.goto(done);
                self.asm.bind(no);
                self.asm.mov_imm(Reg::R0, 0);
                self.asm.bind(done);
            }
            Expr::Ternary {
                cond,
                then,
                otherwise,
            } => {
                let no = self.asm.label();
                let done = self.asm.label();
                self.branch(cond, no, false)?;
                self.long(then)?;
                self.asm.goto(done);
                self.asm.bind(no);
                self.long(otherwise)?;
                self.asm.bind(done);
            }
            Expr::Assign { .. } | Expr::Crement { .. } => self.assign(e, true)?,
            Expr::Call { .. } => {
                let result = self.call(e)?;
                match result {
                    Some(Slot::Long(off)) => self.asm.load(Size::DW, Reg::R0, Reg::FP, off),
                    _ => self.asm.mov_imm(Reg::R0, 0),
                }
            }
            Expr::Builtin { builtin, args, loc } => self.builtin_long(*builtin, args, *loc)?,
            Expr::Read { addr, access, loc } => self.read(addr, access, *loc)?,
            Expr::Regex {
                negated,
                operand,
                pattern,
            } => self.regex_literal(operand, pattern, *negated)?,
            Expr::Printf {
                to_string: false,
                format,
                args,
            } => {
                self.printf(format.clone(), args)?;
                self.asm.mov_imm(Reg::R0, 0);
            }
            other => {
                return Err(self.unsupported(construct_name(other), None));
            }
        }
        Ok(())
    }

    /// Jumps to `target` when `e`'s truth is `when`.
    pub(crate) fn branch(&mut self, e: &Expr, target: Label, when: bool) -> Result<(), BpfError> {
        if let Some(value) = self.fold(e) {
            if (value != 0) == when {
                self.asm.goto(target);
            }
            return Ok(());
        }
        match e {
            Expr::And(a, b) => {
                if when {
                    let skip = self.asm.label();
                    self.branch(a, skip, false)?;
                    self.branch(b, target, true)?;
                    self.asm.bind(skip);
                } else {
                    self.branch(a, target, false)?;
                    self.branch(b, target, false)?;
                }
            }
            Expr::Or(a, b) => {
                if when {
                    self.branch(a, target, true)?;
                    self.branch(b, target, true)?;
                } else {
                    let skip = self.asm.label();
                    self.branch(a, skip, true)?;
                    self.branch(b, target, false)?;
                    self.asm.bind(skip);
                }
            }
            Expr::Unary {
                op: UnaryOp::Not,
                operand,
            } => self.branch(operand, target, !when)?,
            Expr::CompareLong { op, lhs, rhs } => {
                let cond = signed_cond(*op);
                let cond = if when { cond } else { cond.negate() };
                if let Expr::Long(n) = rhs.as_ref()
                    && let Ok(imm) = i32::try_from(*n)
                {
                    self.long(lhs)?;
                    self.asm.jump_imm(cond, Reg::R0, imm, target);
                } else {
                    self.operands(lhs, rhs)?;
                    self.asm.jump_reg(cond, Reg::R0, Reg::R1, target);
                }
            }
            Expr::CompareStr { op, lhs, rhs } => {
                self.compare_strings(*op, lhs, rhs, target, when)?
            }
            Expr::Long(n) => {
                if (*n != 0) == when {
                    self.asm.goto(target);
                }
            }
            _ => {
                self.long(e)?;
                let cond = if when { Cond::Ne } else { Cond::Eq };
                self.asm.jump_imm(cond, Reg::R0, 0, target);
            }
        }
        Ok(())
    }

    /// A context builtin or a statement-like builtin, its value in `r0`.
    fn builtin_long(&mut self, builtin: Builtin, args: &[Expr], loc: Loc) -> Result<(), BpfError> {
        match builtin {
            Builtin::Pid => {
                self.asm.call(Helper::GetCurrentPidTgid);
                self.asm.alu_imm(Alu::Rsh, Reg::R0, 32);
            }
            Builtin::Tid => {
                self.asm.call(Helper::GetCurrentPidTgid);
                self.extend(Reg::R0, 4, false);
            }
            Builtin::Uid => {
                self.asm.call(Helper::GetCurrentUidGid);
                self.extend(Reg::R0, 4, false);
            }
            Builtin::Gid => {
                self.asm.call(Helper::GetCurrentUidGid);
                self.asm.alu_imm(Alu::Rsh, Reg::R0, 32);
            }
            Builtin::Cpu => self.asm.call(Helper::GetSmpProcessorId),
            Builtin::Ppid => {
                let Some(task) = self.site.task else {
                    return Err(self.unsupported("ppid() without task_struct in BTF", Some(loc)));
                };
                // current->real_parent->tgid
                self.asm.call(Helper::GetCurrentTask);
                self.asm.mov(Reg::R3, Reg::R0);
                self.asm.alu_imm(Alu::Add, Reg::R3, task.real_parent as i32);
                self.read_kernel(8, false)?;
                self.asm.mov(Reg::R3, Reg::R0);
                self.asm.alu_imm(Alu::Add, Reg::R3, task.tgid as i32);
                self.read_kernel(4, true)?;
            }
            Builtin::ClockNs => self.asm.call(Helper::KtimeGetNs),
            Builtin::GettimeofdayS
            | Builtin::GettimeofdayMs
            | Builtin::GettimeofdayUs
            | Builtin::GettimeofdayNs => {
                // The monotonic clock plus the agent's offset to the wall clock.
                self.asm.call(Helper::KtimeGetNs);
                self.asm.load(Size::DW, Reg::R1, SCALARS, REALTIME_OFFSET);
                self.asm.alu(Alu::Add, Reg::R0, Reg::R1);
                let unit = match builtin {
                    Builtin::GettimeofdayS => 1_000_000_000,
                    Builtin::GettimeofdayMs => 1_000_000,
                    Builtin::GettimeofdayUs => 1_000,
                    _ => 1,
                };
                if unit > 1 {
                    self.asm.alu_imm(Alu::Div, Reg::R0, unit);
                }
            }
            Builtin::Target => self.asm.load(Size::DW, Reg::R0, SCALARS, TARGET_OFFSET),
            Builtin::IsReturn => self.asm.mov_imm(Reg::R0, i64::from(self.site.is_return)),
            Builtin::Print | Builtin::Println => {
                self.print(builtin == Builtin::Println, args)?;
                self.asm.mov_imm(Reg::R0, 0);
            }
            Builtin::Exit => {
                self.exit_record()?;
                self.asm.mov_imm(Reg::R0, 0);
            }
            Builtin::Error => {
                let Some(message) = args.first() else {
                    return Err(BpfError::Internal("error() without a message"));
                };
                self.error_record(message)?;
            }
            Builtin::Strlen => {
                let Some(arg) = args.first() else {
                    return Err(BpfError::Internal("strlen() without an argument"));
                };
                let mark = self.mark();
                let s = self.string(arg)?;
                self.strlen(s);
                self.release(mark);
            }
            Builtin::TaskCurrent => self.asm.call(Helper::GetCurrentTask),
            Builtin::Isinstr => self.isinstr(args)?,
            Builtin::UserMode => match self.site.regs {
                // A perf sample: the privilege level of the interrupted
                // code segment (`regs->cs & 3`).
                Regs::Sampled => {
                    self.asm.load(Size::DW, Reg::R0, CTX, PT_REGS_CS);
                    self.asm.alu_imm(Alu::And, Reg::R0, 3);
                    let kernel = self.asm.label();
                    self.asm.jump_imm(Cond::Eq, Reg::R0, 0, kernel);
                    self.asm.mov_imm(Reg::R0, 1);
                    self.asm.bind(kernel);
                }
                Regs::Kernel | Regs::None => self.asm.mov_imm(Reg::R0, 0),
            },
            Builtin::Addr => match self.site.regs {
                Regs::Sampled | Regs::Kernel => self.asm.load(Size::DW, Reg::R0, CTX, PT_REGS_IP),
                Regs::None => self.asm.mov_imm(Reg::R0, 0),
            },
            Builtin::Uaddr => match self.site.regs {
                Regs::Sampled => {
                    self.asm.load(Size::DW, Reg::R0, CTX, PT_REGS_CS);
                    self.asm.alu_imm(Alu::And, Reg::R0, 3);
                    let kernel = self.asm.label();
                    self.asm.jump_imm(Cond::Eq, Reg::R0, 0, kernel);
                    self.asm.load(Size::DW, Reg::R0, CTX, PT_REGS_IP);
                    self.asm.bind(kernel);
                }
                Regs::Kernel | Regs::None => self.asm.mov_imm(Reg::R0, 0),
            },
            other => {
                return Err(self.unsupported(format!("{}()", builtin_name(other)), Some(loc)));
            }
        }
        Ok(())
    }
}

/// A builtin's name as scripts call it (`task_current`).
pub(crate) fn builtin_name(builtin: Builtin) -> String {
    let mut name = String::new();
    for (i, c) in format!("{builtin:?}").chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            name.push('_');
        }
        name.push(c.to_ascii_lowercase());
    }
    name
}

/// What a construct is called in an error.
pub(crate) fn construct_name(e: &Expr) -> String {
    match e {
        Expr::Regex { .. } => "a regular expression match".to_owned(),
        Expr::Printf { .. } => "sprintf()".to_owned(),
        Expr::Stat { .. } => "a statistics aggregate (@count...)".to_owned(),
        Expr::Hist { .. } | Expr::HistBucket { .. } => "a histogram".to_owned(),
        Expr::LongToStr(_) => "a number turned into a string".to_owned(),
        Expr::Concat(..) => "string concatenation".to_owned(),
        Expr::In { .. } => "`in` with `*`".to_owned(),
        other => format!("{other:?}")
            .split(['(', ' ', '{'])
            .next()
            .unwrap_or("this")
            .to_owned(),
    }
}
