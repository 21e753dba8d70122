//! Visiting every statement and expression of a program.

use tapmatrix_ir::{Block, Expr, LValue, Program, Stmt};

/// Calls `on_expr` on every expression of the program (probes and
/// functions), outer before inner.
pub(crate) fn each_expr(program: &Program, on_expr: &mut dyn FnMut(&Expr)) {
    walk(program, &mut |_| {}, on_expr);
}

/// Calls `on_stmt` on every statement of the program, outer before inner.
pub(crate) fn each_stmt(program: &Program, on_stmt: &mut dyn FnMut(&Stmt)) {
    walk(program, on_stmt, &mut |_| {});
}

/// Calls both visitors over the whole program.
pub(crate) fn walk(
    program: &Program,
    on_stmt: &mut dyn FnMut(&Stmt),
    on_expr: &mut dyn FnMut(&Expr),
) {
    let mut w = Walker { on_stmt, on_expr };
    for probe in &program.probes {
        w.block(&probe.body);
    }
    for function in &program.functions {
        w.block(&function.body);
    }
}

struct Walker<'a> {
    on_stmt: &'a mut dyn FnMut(&Stmt),
    on_expr: &'a mut dyn FnMut(&Expr),
}

impl Walker<'_> {
    fn block(&mut self, block: &Block) {
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
            Expr::Long(_) | Expr::Str(_) | Expr::Local(_) | Expr::Global(_) | Expr::Fetch(_) => {}
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
