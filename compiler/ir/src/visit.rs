//! Walking over a program's statements and expressions: read-only (outer
//! before inner, statements and expressions) and in place (expressions).

use crate::{Expr, LValue, Program, Stmt};

/// Calls `on_expr` on every expression of the program (probes and
/// functions), outer before inner.
pub fn each_expr(program: &Program, on_expr: &mut dyn FnMut(&Expr)) {
    walk_program(program, &mut |_| {}, on_expr);
}

/// Calls `on_stmt` on every statement of the program, outer before inner.
pub fn each_stmt(program: &Program, on_stmt: &mut dyn FnMut(&Stmt)) {
    walk_program(program, on_stmt, &mut |_| {});
}

/// Calls both visitors over the whole program (probes, then functions).
pub fn walk_program(
    program: &Program,
    on_stmt: &mut dyn FnMut(&Stmt),
    on_expr: &mut dyn FnMut(&Expr),
) {
    for probe in &program.probes {
        walk_block(&probe.body, on_stmt, on_expr);
    }
    for function in &program.functions {
        walk_block(&function.body, on_stmt, on_expr);
    }
}

/// Calls `on_expr` on `e` and every expression inside it, outer before
/// inner.
pub fn walk_expr(e: &Expr, on_expr: &mut dyn FnMut(&Expr)) {
    Walker {
        on_stmt: &mut |_| {},
        on_expr,
    }
    .expr(e);
}

/// Calls both visitors over a block, outer before inner.
pub fn walk_block(block: &[Stmt], on_stmt: &mut dyn FnMut(&Stmt), on_expr: &mut dyn FnMut(&Expr)) {
    Walker { on_stmt, on_expr }.block(block);
}

struct Walker<'a> {
    on_stmt: &'a mut dyn FnMut(&Stmt),
    on_expr: &'a mut dyn FnMut(&Expr),
}

impl Walker<'_> {
    fn block(&mut self, block: &[Stmt]) {
        for stmt in block {
            self.stmt(stmt);
        }
    }

    fn opt(&mut self, e: Option<&Expr>) {
        if let Some(e) = e {
            self.expr(e);
        }
    }

    fn stmt(&mut self, stmt: &Stmt) {
        (self.on_stmt)(stmt);
        match stmt {
            Stmt::Expr(e) => self.expr(e),
            Stmt::Block(b) => self.block(b),
            Stmt::If {
                cond,
                then,
                otherwise,
            } => {
                self.expr(cond);
                self.block(then);
                self.block(otherwise);
            }
            Stmt::Loop { cond, body, step } => {
                self.opt(cond.as_ref());
                self.block(body);
                self.opt(step.as_ref());
            }
            Stmt::Foreach {
                slice, limit, body, ..
            } => {
                for k in slice.iter().flatten() {
                    self.expr(k);
                }
                self.opt(limit.as_ref());
                self.block(body);
            }
            Stmt::ForeachHist { stat, body, .. } => {
                self.expr(stat);
                self.block(body);
            }
            Stmt::Break | Stmt::Continue | Stmt::Next => {}
            Stmt::Return(e) => self.opt(e.as_ref()),
            Stmt::Delete(lv) => self.lvalue(lv),
            Stmt::Aggregate { target, value } => {
                self.lvalue(target);
                self.expr(value);
            }
            Stmt::Try { body, catch, .. } => {
                self.block(body);
                self.block(catch);
            }
            Stmt::EntrySave { values, .. } => {
                for v in values {
                    self.expr(v);
                }
            }
        }
    }

    fn lvalue(&mut self, lv: &LValue) {
        if let LValue::Index { keys, .. } = lv {
            for k in keys.iter().flatten() {
                self.expr(k);
            }
        }
    }

    fn expr(&mut self, e: &Expr) {
        (self.on_expr)(e);
        match e {
            Expr::Long(_)
            | Expr::Str(_)
            | Expr::Local(_)
            | Expr::Global(_)
            | Expr::Fetch(_)
            | Expr::EntryValue(_) => {}
            Expr::Read { addr, .. } => self.expr(addr),
            Expr::ReadString {
                addr,
                max_len,
                fallback,
                ..
            } => {
                self.expr(addr);
                self.opt(max_len.as_deref());
                self.opt(fallback.as_deref());
            }
            Expr::Index { keys, .. } => {
                for k in keys {
                    self.expr(k);
                }
            }
            Expr::In { keys, .. } => {
                for k in keys.iter().flatten() {
                    self.expr(k);
                }
            }
            Expr::Unary { operand, .. } => self.expr(operand),
            Expr::Binary { lhs, rhs, .. }
            | Expr::CompareLong { lhs, rhs, .. }
            | Expr::CompareStr { lhs, rhs, .. } => {
                self.expr(lhs);
                self.expr(rhs);
            }
            Expr::Concat(a, b) | Expr::And(a, b) | Expr::Or(a, b) => {
                self.expr(a);
                self.expr(b);
            }
            Expr::Ternary {
                cond,
                then,
                otherwise,
            } => {
                self.expr(cond);
                self.expr(then);
                self.expr(otherwise);
            }
            Expr::Regex { operand, .. } => self.expr(operand),
            Expr::Assign { target, value, .. } => {
                self.lvalue(target);
                self.expr(value);
            }
            Expr::Crement { target, .. } => self.lvalue(target),
            Expr::Call { args, .. } | Expr::Builtin { args, .. } | Expr::Printf { args, .. } => {
                for a in args {
                    self.expr(a);
                }
            }
            Expr::Stat { stat, .. } | Expr::Hist { stat, .. } => self.lvalue(stat),
            Expr::HistBucket { stat, bucket, .. } => {
                self.lvalue(stat);
                self.expr(bucket);
            }
            Expr::LongToStr(e) => self.expr(e),
        }
    }
}

/// Calls `f` on every expression of `stmt`, outer before inner; `f` may
/// replace an expression (its replacement's parts are visited next).
pub fn walk_stmt_mut(stmt: &mut Stmt, f: &mut dyn FnMut(&mut Expr)) {
    match stmt {
        Stmt::Expr(e) | Stmt::Return(Some(e)) => visit_expr(e, f),
        Stmt::Block(block) => walk_block_mut(block, f),
        Stmt::If {
            cond,
            then,
            otherwise,
        } => {
            visit_expr(cond, f);
            walk_block_mut(then, f);
            walk_block_mut(otherwise, f);
        }
        Stmt::Loop { cond, body, step } => {
            if let Some(cond) = cond {
                visit_expr(cond, f);
            }
            walk_block_mut(body, f);
            if let Some(step) = step {
                visit_expr(step, f);
            }
        }
        Stmt::Foreach {
            slice, limit, body, ..
        } => {
            for key in slice.iter_mut().flatten() {
                visit_expr(key, f);
            }
            if let Some(limit) = limit {
                visit_expr(limit, f);
            }
            walk_block_mut(body, f);
        }
        Stmt::ForeachHist { stat, body, .. } => {
            visit_expr(stat, f);
            walk_block_mut(body, f);
        }
        Stmt::Delete(target) => visit_lvalue(target, f),
        Stmt::Aggregate { target, value } => {
            visit_lvalue(target, f);
            visit_expr(value, f);
        }
        Stmt::Try { body, catch, .. } => {
            walk_block_mut(body, f);
            walk_block_mut(catch, f);
        }
        Stmt::EntrySave { values, .. } => values.iter_mut().for_each(|v| visit_expr(v, f)),
        Stmt::Break | Stmt::Continue | Stmt::Next | Stmt::Return(None) => {}
    }
}

/// [`walk_stmt_mut`] over every statement of a block.
pub fn walk_block_mut(block: &mut [Stmt], f: &mut dyn FnMut(&mut Expr)) {
    for stmt in block {
        walk_stmt_mut(stmt, f);
    }
}

fn visit_lvalue(lvalue: &mut LValue, f: &mut dyn FnMut(&mut Expr)) {
    if let LValue::Index { keys, .. } = lvalue {
        for key in keys.iter_mut().flatten() {
            visit_expr(key, f);
        }
    }
}

fn visit_expr(e: &mut Expr, f: &mut dyn FnMut(&mut Expr)) {
    f(e);
    match e {
        Expr::Long(_)
        | Expr::Str(_)
        | Expr::Local(_)
        | Expr::Global(_)
        | Expr::Fetch(_)
        | Expr::EntryValue(_) => {}
        Expr::Read { addr, .. } => visit_expr(addr, f),
        Expr::ReadString {
            addr,
            max_len,
            fallback,
            ..
        } => {
            visit_expr(addr, f);
            if let Some(max_len) = max_len {
                visit_expr(max_len, f);
            }
            if let Some(fallback) = fallback {
                visit_expr(fallback, f);
            }
        }
        Expr::Index { keys, .. } => keys.iter_mut().for_each(|k| visit_expr(k, f)),
        Expr::In { keys, .. } => keys.iter_mut().flatten().for_each(|k| visit_expr(k, f)),
        Expr::Unary { operand, .. } | Expr::LongToStr(operand) => visit_expr(operand, f),
        Expr::Binary { lhs, rhs, .. }
        | Expr::CompareLong { lhs, rhs, .. }
        | Expr::CompareStr { lhs, rhs, .. }
        | Expr::Concat(lhs, rhs)
        | Expr::And(lhs, rhs)
        | Expr::Or(lhs, rhs) => {
            visit_expr(lhs, f);
            visit_expr(rhs, f);
        }
        Expr::Ternary {
            cond,
            then,
            otherwise,
        } => {
            visit_expr(cond, f);
            visit_expr(then, f);
            visit_expr(otherwise, f);
        }
        Expr::Regex { operand, .. } => visit_expr(operand, f),
        Expr::Assign { target, value, .. } => {
            visit_lvalue(target, f);
            visit_expr(value, f);
        }
        Expr::Crement { target, .. } => visit_lvalue(target, f),
        Expr::Call { args, .. } | Expr::Builtin { args, .. } | Expr::Printf { args, .. } => {
            args.iter_mut().for_each(|a| visit_expr(a, f));
        }
        Expr::Stat { stat, .. } | Expr::Hist { stat, .. } => visit_lvalue(stat, f),
        Expr::HistBucket { stat, bucket, .. } => {
            visit_lvalue(stat, f);
            visit_expr(bucket, f);
        }
    }
}
