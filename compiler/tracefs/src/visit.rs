//! Walks over the expressions of a lowered handler.

use tapmatrix_ir::{Expr, LValue, Stmt};

/// Calls `f` on every expression of `block`, innermost first, and lets it
/// replace the expression.
pub fn rewrite_exprs(block: &mut [Stmt], f: &mut dyn FnMut(&mut Expr)) {
    for stmt in block {
        rewrite_stmt(stmt, f);
    }
}

/// Whether `pred` holds for some expression of `block`.
pub fn any_expr(block: &[Stmt], pred: &mut dyn FnMut(&Expr) -> bool) -> bool {
    let mut block = block.to_vec();
    let mut found = false;
    rewrite_exprs(&mut block, &mut |e| found |= pred(e));
    found
}

fn rewrite_stmt(stmt: &mut Stmt, f: &mut dyn FnMut(&mut Expr)) {
    match stmt {
        Stmt::Expr(e) | Stmt::Return(Some(e)) => rewrite_expr(e, f),
        Stmt::Block(block) => rewrite_exprs(block, f),
        Stmt::If {
            cond,
            then,
            otherwise,
        } => {
            rewrite_expr(cond, f);
            rewrite_exprs(then, f);
            rewrite_exprs(otherwise, f);
        }
        Stmt::Loop { cond, body, step } => {
            for e in cond.iter_mut().chain(step.iter_mut()) {
                rewrite_expr(e, f);
            }
            rewrite_exprs(body, f);
        }
        Stmt::Foreach {
            slice, limit, body, ..
        } => {
            for e in slice.iter_mut().flatten().chain(limit.iter_mut()) {
                rewrite_expr(e, f);
            }
            rewrite_exprs(body, f);
        }
        Stmt::ForeachHist { stat, body, .. } => {
            rewrite_expr(stat, f);
            rewrite_exprs(body, f);
        }
        Stmt::Delete(lvalue) => rewrite_lvalue(lvalue, f),
        Stmt::Aggregate { target, value } => {
            rewrite_lvalue(target, f);
            rewrite_expr(value, f);
        }
        Stmt::Try { body, catch, .. } => {
            rewrite_exprs(body, f);
            rewrite_exprs(catch, f);
        }
        Stmt::Break | Stmt::Continue | Stmt::Next | Stmt::Return(None) => {}
    }
}

fn rewrite_lvalue(lvalue: &mut LValue, f: &mut dyn FnMut(&mut Expr)) {
    if let LValue::Index { keys, .. } = lvalue {
        for key in keys.iter_mut().flatten() {
            rewrite_expr(key, f);
        }
    }
}

fn rewrite_expr(expr: &mut Expr, f: &mut dyn FnMut(&mut Expr)) {
    match expr {
        Expr::Long(_) | Expr::Str(_) | Expr::Local(_) | Expr::Global(_) | Expr::Fetch(_) => {}
        Expr::Index { keys, .. } => keys.iter_mut().for_each(|k| rewrite_expr(k, f)),
        Expr::In { keys, .. } => keys.iter_mut().flatten().for_each(|k| rewrite_expr(k, f)),
        Expr::Unary { operand, .. } | Expr::LongToStr(operand) => rewrite_expr(operand, f),
        Expr::Regex { operand, .. } => rewrite_expr(operand, f),
        Expr::Binary { lhs, rhs, .. }
        | Expr::CompareLong { lhs, rhs, .. }
        | Expr::CompareStr { lhs, rhs, .. }
        | Expr::Concat(lhs, rhs)
        | Expr::And(lhs, rhs)
        | Expr::Or(lhs, rhs) => {
            rewrite_expr(lhs, f);
            rewrite_expr(rhs, f);
        }
        Expr::Ternary {
            cond,
            then,
            otherwise,
        } => {
            rewrite_expr(cond, f);
            rewrite_expr(then, f);
            rewrite_expr(otherwise, f);
        }
        Expr::Assign { target, value, .. } => {
            rewrite_lvalue(target, f);
            rewrite_expr(value, f);
        }
        Expr::Crement { target, .. }
        | Expr::Stat { stat: target, .. }
        | Expr::Hist { stat: target, .. } => rewrite_lvalue(target, f),
        Expr::HistBucket { stat, bucket, .. } => {
            rewrite_lvalue(stat, f);
            rewrite_expr(bucket, f);
        }
        Expr::Call { args, .. } | Expr::Builtin { args, .. } | Expr::Printf { args, .. } => {
            args.iter_mut().for_each(|a| rewrite_expr(a, f))
        }
    }
    f(expr);
}
