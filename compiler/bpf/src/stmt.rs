//! Statements and control flow; functions inlined at their calls (BPF
//! programs cannot recurse: a recursive call is an error naming the
//! function); loops bounded by SystemTap's `MAXACTION`.

use tapmatrix_ir::{Expr, ScalarType, Stmt};

use crate::codegen::{Gen, Inlined, Slot};
use crate::error::BpfError;
use crate::expr::place;
use crate::insn::{Alu, Cond, Reg, Size};

/// How many instructions, counted as the verifier walks them, a program's
/// loops may take: half the kernel's `BPF_COMPLEXITY_LIMIT_INSNS` (1M),
/// the other half for the branches it explores on each walk.
pub(crate) const VERIFIER_BUDGET: u64 = 500_000;

impl Gen<'_> {
    /// Emits a block.
    pub(crate) fn block(&mut self, block: &[Stmt]) -> Result<(), BpfError> {
        for stmt in block {
            let mark = self.mark();
            self.stmt(stmt)?;
            self.release(mark);
        }
        Ok(())
    }

    fn unsupported_stmt(&self, what: &str) -> BpfError {
        BpfError::Unsupported {
            location: self.site.pp.clone(),
            what: what.to_owned(),
            why: Some("it runs in the kernel".to_owned()),
        }
    }

    /// What the verifier walks of the loop emitted from `start` on beyond
    /// its length: it checks the loop once per iteration, up to `max`
    /// (nested loops within each time). A loop that would take it past
    /// [`VERIFIER_BUDGET`] is too large for the kernel: the verifier
    /// would refuse the program or, on 7.3, exhaust a small guest's memory
    /// trying; the script runs forwarded instead.
    fn walked(&self, start: usize, max: i32) -> Result<u64, BpfError> {
        let length = (self.asm.len() - start) as u64;
        let iteration = length + self.loop_extra;
        let walked = iteration.saturating_mul(u64::from(max.unsigned_abs()) + 1);
        if walked > VERIFIER_BUDGET {
            return Err(BpfError::TooLarge {
                what: "a loop the verifier checks once per iteration (up to MAXACTION times)",
                limit: "what the verifier checks of one program (a million instructions)",
            });
        }
        Ok(walked - length)
    }

    fn stmt(&mut self, stmt: &Stmt) -> Result<(), BpfError> {
        match stmt {
            Stmt::Expr(e) => self.effect(e)?,
            Stmt::Block(b) => self.block(b)?,
            // A condition known here: only the branch taken is emitted.
            Stmt::If {
                cond,
                then,
                otherwise,
            } if let Some(value) = self.fold(cond) => {
                self.block(if value != 0 { then } else { otherwise })?;
            }
            Stmt::If {
                cond,
                then,
                otherwise,
            } => {
                let no = self.asm.label();
                self.branch(cond, no, false)?;
                self.block(then)?;
                if otherwise.is_empty() {
                    self.asm.bind(no);
                } else {
                    let done = self.asm.label();
                    self.asm.goto(done);
                    self.asm.bind(no);
                    self.block(otherwise)?;
                    self.asm.bind(done);
                }
            }
            Stmt::Loop { cond, body, step } => {
                let start = self.asm.len();
                let outer_extra = std::mem::take(&mut self.loop_extra);
                let counter = self.stack_alloc(8)?;
                self.asm.store_imm(Size::DW, Reg::FP, counter, 0);
                let head = self.asm.label();
                let next = self.asm.label();
                let done = self.asm.label();
                self.asm.bind(head);
                if let Some(cond) = cond {
                    self.branch(cond, done, false)?;
                }
                // SystemTap counts statements against MAXACTION, as the
                // runtime does (the loop's test and each statement run):
                // a turn that goes on to the next runs at least the loop's
                // test and the body's statements up to the first that can
                // `continue`. Counted per loop (the runtime counts the
                // whole handler), so the kernel never stops a loop the
                // runtime lets run, and the verifier walks MAXACTION /
                // that many turns instead of MAXACTION.
                let per_turn = 1 + statements_per_turn(body);
                self.asm.load(Size::DW, Reg::R1, Reg::FP, counter);
                self.asm.alu_imm(Alu::Add, Reg::R1, per_turn);
                self.asm.store(Size::DW, Reg::FP, counter, Reg::R1);
                let within = self.asm.label();
                let max = i32::try_from(self.limits().max_action).unwrap_or(i32::MAX);
                self.asm.jump_imm(Cond::Le, Reg::R1, max, within);
                self.raise("MAXACTION exceeded".to_owned())?;
                self.asm.bind(within);
                self.loops.push((next, done));
                self.block(body)?;
                self.loops.pop();
                self.asm.bind(next);
                if let Some(step) = step {
                    self.effect(step)?;
                }
                self.asm.goto(head);
                self.asm.bind(done);
                self.loop_extra = outer_extra + self.walked(start, max / per_turn)?;
            }
            Stmt::Break | Stmt::Continue => {
                let Some((next, done)) = self.loops.last().copied() else {
                    return Err(BpfError::Internal("break or continue outside a loop"));
                };
                self.asm.goto(if matches!(stmt, Stmt::Break) {
                    done
                } else {
                    next
                });
            }
            Stmt::Next => {
                if !self.inlined.is_empty() {
                    return Err(self.unsupported_stmt("`next` in a function"));
                }
                let out = self.out;
                self.asm.goto(out);
            }
            Stmt::Return(value) => {
                let Some(frame) = self.inlined.last() else {
                    return Err(BpfError::Internal("return outside a function"));
                };
                let (done, result) = (frame.done, frame.result);
                match (value, result) {
                    (Some(e), Some(Slot::Long(off))) => {
                        self.long(e)?;
                        self.asm.store(Size::DW, Reg::FP, off, Reg::R0);
                    }
                    (Some(e), Some(Slot::Str(dst))) => {
                        let s = self.string(e)?;
                        self.copy_string(dst, s);
                    }
                    (Some(e), None) => self.effect(e)?,
                    (None, _) => {}
                }
                self.asm.goto(done);
            }
            Stmt::Delete(lv) => self.delete(lv)?,
            Stmt::Aggregate { target, value } => self.aggregate(target, value)?,
            Stmt::Foreach { .. } => return Err(self.unsupported_stmt("foreach")),
            Stmt::ForeachHist { .. } => {
                return Err(self.unsupported_stmt("foreach over a histogram"));
            }
            Stmt::Try { .. } => return Err(self.unsupported_stmt("try/catch")),
            Stmt::EntrySave { key, values } => self.entry_save(*key, values)?,
        }
        Ok(())
    }

    /// An expression evaluated for its effect.
    pub(crate) fn effect(&mut self, e: &Expr) -> Result<(), BpfError> {
        match e {
            Expr::Assign { .. } | Expr::Crement { .. }
                if self.ty(e) == tapmatrix_ir::ScalarType::Long =>
            {
                self.assign(e, false)
            }
            Expr::Assign { .. } => self.assign_string(e).map(|_| ()),
            _ if self.ty(e) == ScalarType::String => self.string(e).map(|_| ()),
            _ => self.long(e),
        }
    }

    /// Inlines a call; where its result is.
    pub(crate) fn call(&mut self, e: &Expr) -> Result<Option<Slot>, BpfError> {
        let Expr::Call {
            function,
            args,
            loc,
        } = e
        else {
            return Err(BpfError::Internal("a call that is not one"));
        };
        let program = self.site.program;
        let f = program
            .functions
            .get(*function as usize)
            .ok_or(BpfError::Internal("a call of no function"))?;
        if self.inlined.iter().any(|frame| frame.function == *function) {
            return Err(BpfError::Recursion {
                location: place(program, *loc),
                name: f.name.clone(),
            });
        }
        if self.inlined.len() >= self.limits().max_nesting as usize {
            return Err(BpfError::Unsupported {
                location: place(program, *loc),
                what: format!(
                    "calls nested deeper than MAXNESTING ({})",
                    self.limits().max_nesting
                ),
                why: None,
            });
        }
        let result = match f.ret {
            Some(ScalarType::Long) => {
                let off = self.stack_alloc(8)?;
                self.asm.store_imm(Size::DW, Reg::FP, off, 0);
                Some(Slot::Long(off))
            }
            Some(ScalarType::String) => {
                let place = self.str_temp(self.max_string())?;
                self.asm.store_imm(Size::B, place.base, place.off as i16, 0);
                Some(Slot::Str(place))
            }
            None => None,
        };
        // The parameters' buffers: their arguments', in this frame.
        let here = self.frame_caps();
        let params: Vec<u32> = args
            .iter()
            .map(|arg| self.string_bound(arg, &here, &|i| self.local_type(i)))
            .collect();
        let caps = self.local_caps(&f.body, &f.locals, &params);
        let locals = self.alloc_locals(&f.locals, &caps)?;
        let known = self.known_parameters(&f.body, args);
        for (index, (arg, slot)) in args.iter().zip(&locals).enumerate() {
            let mark = self.mark();
            match slot {
                Slot::Long(off) => {
                    match known.get(index).copied().flatten() {
                        Some(value) => self.asm.mov_imm(Reg::R0, value),
                        None => self.long(arg)?,
                    }
                    self.asm.store(Size::DW, Reg::FP, *off, Reg::R0);
                }
                Slot::Str(dst) => {
                    let s = self.string(arg)?;
                    self.copy_string(*dst, s);
                }
            }
            self.release(mark);
        }
        let done = self.asm.label();
        self.inlined.push(Inlined {
            function: *function,
            locals,
            types: f.locals.clone(),
            known,
            done,
            result,
        });
        let body = f.body.clone();
        let outcome = self.block(&body);
        self.inlined.pop();
        outcome?;
        self.asm.bind(done);
        Ok(result)
    }
}

/// The statements of a loop's body that run in every turn that goes on to
/// the next: those up to the first that can `continue` this loop (a
/// `break`, `return` or `next` ends the loop, so a turn that goes on ran
/// them all), at least 0.
pub(crate) fn statements_per_turn(body: &[Stmt]) -> i32 {
    let mut count = 0;
    for stmt in body {
        count += 1;
        if can_continue(stmt) {
            break;
        }
    }
    count
}

/// Whether `stmt` holds a `continue` of the loop around it (not one of a
/// loop inside it).
fn can_continue(stmt: &Stmt) -> bool {
    match stmt {
        Stmt::Continue => true,
        Stmt::Block(block) => block.iter().any(can_continue),
        Stmt::If {
            then, otherwise, ..
        } => then.iter().chain(otherwise).any(can_continue),
        Stmt::Try { body, catch, .. } => body.iter().chain(catch).any(can_continue),
        _ => false,
    }
}
