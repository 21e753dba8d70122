//! The target expressions a handler reads unconditionally: those that must
//! resolve at every attach point. Anything under `@defined(...)` (and so
//! `@choose_defined`) or in a statement or conditional guarded by it is
//! left out, as SystemTap tolerates those failing.

use tapmatrix_syntax::ast::{Block, Expr, ExprKind, Stmt, StmtKind, Target, TargetBase};
use tapmatrix_syntax::print_expr;

/// A target expression and its text (`$file->f_inode`).
#[derive(Debug, Clone)]
pub struct BodyTarget {
    /// The expression.
    pub target: Target,
    /// As written (printed).
    pub text: String,
}

/// The unguarded target expressions of a block.
pub fn block_targets(block: &Block) -> Vec<BodyTarget> {
    let mut out = Vec::new();
    for stmt in &block.stmts {
        stmt_targets(stmt, &mut out);
    }
    out
}

fn has_defined(expr: &Expr) -> bool {
    let mut found = false;
    visit(expr, &mut |e| {
        found |= matches!(e.kind, ExprKind::Defined(_))
    });
    found
}

fn stmt_targets(stmt: &Stmt, out: &mut Vec<BodyTarget>) {
    let mut expr = |e: &Expr| expr_targets(e, out);
    match &stmt.kind {
        StmtKind::Block(block) => {
            for s in &block.stmts {
                stmt_targets(s, out);
            }
        }
        StmtKind::Expr(e) | StmtKind::Delete(e) | StmtKind::Return(Some(e)) => expr(e),
        StmtKind::If {
            cond,
            then,
            otherwise,
        } => {
            if has_defined(cond) {
                return;
            }
            expr(cond);
            stmt_targets(then, out);
            if let Some(otherwise) = otherwise {
                stmt_targets(otherwise, out);
            }
        }
        StmtKind::While { cond, body } => {
            if has_defined(cond) {
                return;
            }
            expr(cond);
            stmt_targets(body, out);
        }
        StmtKind::For(f) => {
            for e in [&f.init, &f.cond, &f.step].into_iter().flatten() {
                expr_targets(e, out);
            }
            stmt_targets(&f.body, out);
        }
        StmtKind::Foreach(f) => stmt_targets(&f.body, out),
        StmtKind::Try(t) => {
            // A failing read inside `try` is caught at run time, but a
            // target that does not resolve is a compile error all the same.
            for s in t.body.stmts.iter().chain(&t.catch.stmts) {
                stmt_targets(s, out);
            }
        }
        StmtKind::Return(None)
        | StmtKind::Empty
        | StmtKind::Break
        | StmtKind::Continue
        | StmtKind::Next => {}
    }
}

fn expr_targets(expr: &Expr, out: &mut Vec<BodyTarget>) {
    match &expr.kind {
        ExprKind::Defined(_) => {}
        ExprKind::Ternary { cond, .. } if has_defined(cond) => {}
        ExprKind::Target(target) => {
            if let TargetBase::Cast { operand, .. } | TargetBase::Autocast(operand) = &target.base {
                expr_targets(operand, out);
            }
            out.push(BodyTarget {
                target: (**target).clone(),
                text: print_expr(expr),
            });
        }
        _ => expr.for_each_child(&mut |child| expr_targets(child, out)),
    }
}

/// Calls `f` on every expression of `expr`, itself included.
fn visit(expr: &Expr, f: &mut dyn FnMut(&Expr)) {
    f(expr);
    expr.for_each_child(&mut |child| visit(child, f));
}
