//! Statements and assignable places.

use tapmatrix_ir as ir;
use tapmatrix_syntax::ast::{self, AssignOp, Expr, ExprKind, Indexable, Stmt, StmtKind};
use tapmatrix_syntax::{Span, print_expr};

use super::elide::address;
use super::{Elab, Ty, Var, refine};
use crate::Construct;

impl<'a> Elab<'a> {
    pub(super) fn block(&mut self, block: &'a ast::Block) -> Vec<ir::Stmt> {
        let mut out = Vec::new();
        for stmt in &block.stmts {
            out.extend(self.stmt(stmt));
        }
        out
    }

    pub(super) fn stmt_block(&mut self, stmt: &'a Stmt) -> Vec<ir::Stmt> {
        match &stmt.kind {
            StmtKind::Block(block) => self.block(block),
            _ => self.stmt(stmt),
        }
    }

    pub(super) fn stmt(&mut self, stmt: &'a Stmt) -> Vec<ir::Stmt> {
        if self.body.skip.contains(&address(stmt)) {
            return Vec::new();
        }
        match &stmt.kind {
            StmtKind::Block(block) => vec![ir::Stmt::Block(self.block(block))],
            StmtKind::Empty => Vec::new(),
            StmtKind::Expr(e) => self.expr_stmt(e),
            StmtKind::If {
                cond,
                then,
                otherwise,
            } => {
                let (cond, _) = self.typed(cond, Ty::Long);
                // A constant condition (`@type_member_defined(...)`, a
                // `@defined` of a cast) takes one branch; the other is not
                // lowered, as SystemTap folds it away before resolving its
                // target expressions and functions.
                if let ir::Expr::Long(value) = cond {
                    return match (value != 0, otherwise) {
                        (true, _) => vec![ir::Stmt::Block(self.stmt_block(then))],
                        (false, Some(otherwise)) => {
                            vec![ir::Stmt::Block(self.stmt_block(otherwise))]
                        }
                        (false, None) => Vec::new(),
                    };
                }
                let then = self.stmt_block(then);
                let otherwise = otherwise
                    .as_ref()
                    .map_or_else(Vec::new, |o| self.stmt_block(o));
                vec![ir::Stmt::If {
                    cond,
                    then,
                    otherwise,
                }]
            }
            StmtKind::For(f) => {
                let mut out = Vec::new();
                if let Some(init) = &f.init {
                    out.extend(self.expr_stmt(init));
                }
                let cond = f.cond.as_ref().map(|c| self.typed(c, Ty::Long).0);
                let step = f.step.as_ref().map(|s| self.void_expr(s));
                let body = self.stmt_block(&f.body);
                out.push(ir::Stmt::Loop { cond, body, step });
                vec![ir::Stmt::Block(out)]
            }
            StmtKind::While { cond, body } => {
                let cond = Some(self.typed(cond, Ty::Long).0);
                let body = self.stmt_block(body);
                vec![ir::Stmt::Loop {
                    cond,
                    body,
                    step: None,
                }]
            }
            StmtKind::Foreach(f) => self.foreach(f, stmt.span),
            StmtKind::Return(value) => {
                let Some(f) = self.body.function else {
                    self.error(
                        stmt.span,
                        "return is only allowed in functions",
                        Some("use `next` to leave a probe handler"),
                    );
                    return Vec::new();
                };
                match value {
                    Some(value) => {
                        let want = self.sym.functions[f].ret;
                        let (expr, ty) = self.typed(value, want);
                        if ty == Ty::Stats {
                            self.error(
                                value.span,
                                "invalid use of a statistic as a return value",
                                None,
                            );
                        }
                        let func = &mut self.sym.functions[f];
                        refine(&mut func.ret, ty, &mut self.changed);
                        if !func.returns_value {
                            func.returns_value = true;
                            self.changed = true;
                        }
                        vec![ir::Stmt::Return(Some(expr))]
                    }
                    None => vec![ir::Stmt::Return(None)],
                }
            }
            StmtKind::Delete(e) => match self.delete_target(e) {
                Some(target) => vec![ir::Stmt::Delete(target)],
                None => Vec::new(),
            },
            StmtKind::Break => vec![ir::Stmt::Break],
            StmtKind::Continue => vec![ir::Stmt::Continue],
            StmtKind::Next => vec![ir::Stmt::Next],
            StmtKind::Try(t) => {
                let body = self.block(&t.body);
                let catch_var =
                    t.catch_var
                        .as_ref()
                        .and_then(|v| match self.var(&v.name, v.span) {
                            Var::Local(i) => {
                                let ty = self.local_ty(i, Ty::Str);
                                if ty != Ty::Str {
                                    self.error(
                                        v.span,
                                        format!(
                                            "type mismatch (string vs. {}): identifier '{}'",
                                            ty.name(),
                                            v.name
                                        ),
                                        None,
                                    );
                                }
                                Some(i)
                            }
                            Var::Global(_) => {
                                self.error(
                                    v.span,
                                    format!("the catch variable '{}' must be a local", v.name),
                                    None,
                                );
                                None
                            }
                        });
                let catch = self.block(&t.catch);
                vec![ir::Stmt::Try {
                    body,
                    catch_var,
                    catch,
                }]
            }
        }
    }

    /// An expression evaluated for its effect.
    pub(super) fn expr_stmt(&mut self, e: &'a Expr) -> Vec<ir::Stmt> {
        if let ExprKind::Assign {
            op: AssignOp::Aggregate,
            lhs,
            rhs,
        } = &e.kind
        {
            let target = self.stat_lvalue(lhs);
            let (value, _) = self.typed(rhs, Ty::Long);
            return target
                .map(|target| ir::Stmt::Aggregate { target, value })
                .into_iter()
                .collect();
        }
        vec![ir::Stmt::Expr(self.void_expr(e))]
    }

    /// An expression whose value is dropped: calls of void functions allowed.
    pub(super) fn void_expr(&mut self, e: &'a Expr) -> ir::Expr {
        match &e.kind {
            ExprKind::Call { name, args } => self.call(e, name, args, Ty::Unknown, true).0,
            _ => self.typed(e, Ty::Unknown).0,
        }
    }

    pub(super) fn foreach(&mut self, f: &'a ast::Foreach, span: Span) -> Vec<ir::Stmt> {
        match &f.array {
            Indexable::Hist(h) => {
                if f.keys.len() != 1 || f.value.is_some() || f.slice.is_some() {
                    self.error(
                        span,
                        "foreach over a histogram takes exactly one bucket variable",
                        None,
                    );
                }
                let bucket = f.keys.first().and_then(|k| self.key_local(k, Ty::Long));
                let stat = self.stat_lvalue(&h.stat);
                let body = self.stmt_block(&f.body);
                match (bucket, stat) {
                    (Some(bucket), Some(stat)) => vec![ir::Stmt::ForeachHist {
                        hist: hist_spec(h.kind),
                        stat: lvalue_expr(stat),
                        bucket,
                        body,
                    }],
                    _ => Vec::new(),
                }
            }
            Indexable::Name(name) => {
                let Some(g) = self.array(name, f.keys.len()) else {
                    return Vec::new();
                };
                let mut keys = Vec::new();
                for (i, key) in f.keys.iter().enumerate() {
                    let want = self.sym.globals[g]
                        .keys
                        .get(i)
                        .copied()
                        .unwrap_or(Ty::Unknown);
                    if let Some(local) = self.key_local(key, want) {
                        let ty = self.local_ty(local, Ty::Unknown);
                        if let Some(slot) = self.sym.globals[g].keys.get_mut(i) {
                            refine(slot, ty, &mut self.changed);
                        }
                        keys.push(local);
                    }
                }
                let value_ty = self.sym.globals[g].ty;
                let value = f.value.as_ref().and_then(|v| {
                    if value_ty == Ty::Stats {
                        self.error(
                            v.span,
                            format!(
                                "invalid use of statistics array '{}' as a foreach value",
                                name.name
                            ),
                            Some("read it with @count(a[k]) and friends in the loop"),
                        );
                        return None;
                    }
                    let local = self.key_local(v, value_ty)?;
                    let ty = self.local_ty(local, Ty::Unknown);
                    refine(&mut self.sym.globals[g].ty, ty, &mut self.changed);
                    Some(local)
                });
                let slice = match &f.slice {
                    Some(slice) => {
                        if slice.len() != f.keys.len() {
                            self.error(
                                span,
                                format!(
                                    "inconsistent arity ({} vs {}): the slice of '{}'",
                                    f.keys.len(),
                                    slice.len(),
                                    name.name
                                ),
                                None,
                            );
                        }
                        self.keys(Some(g), slice, true)
                    }
                    None => Vec::new(),
                };
                let sort = f.sort.map(|sort| {
                    let key = if sort.column == 0 {
                        let aggregate = if self.sym.globals[g].ty == Ty::Stats {
                            Some(stat_op(sort.aggregate.unwrap_or(ast::StatOp::Count)))
                        } else {
                            if sort.aggregate.is_some() {
                                self.error(
                                    span,
                                    format!(
                                        "sorting '{}' by an aggregate, but it holds no statistics",
                                        name.name
                                    ),
                                    None,
                                );
                            }
                            None
                        };
                        ir::SortKey::Value { aggregate }
                    } else {
                        if sort.column > f.keys.len() {
                            self.error(
                                span,
                                format!("foreach sorts by key {} of {}", sort.column, f.keys.len()),
                                None,
                            );
                        }
                        ir::SortKey::Key {
                            index: u32::try_from(sort.column.saturating_sub(1)).unwrap_or(0),
                        }
                    };
                    ir::Sort {
                        key,
                        descending: sort.dir == ast::SortDir::Descending,
                    }
                });
                let limit = f.limit.as_ref().map(|l| self.typed(l, Ty::Long).0);
                let body = self.stmt_block(&f.body);
                if keys.len() != f.keys.len() {
                    return Vec::new();
                }
                vec![ir::Stmt::Foreach {
                    array: self.gix(g),
                    keys,
                    value,
                    slice,
                    sort,
                    limit,
                    body,
                }]
            }
        }
    }

    /// A foreach variable: a local, typed `want`.
    pub(super) fn key_local(&mut self, key: &ast::Ident, want: Ty) -> Option<u32> {
        match self.var(&key.name, key.span) {
            Var::Local(i) => {
                let ty = self.local_ty(i, want);
                if want != Ty::Unknown && ty != want {
                    self.error(
                        key.span,
                        format!(
                            "type mismatch ({} vs. {}): identifier '{}'",
                            want.name(),
                            ty.name(),
                            key.name
                        ),
                        None,
                    );
                }
                Some(i)
            }
            Var::Global(_) => {
                self.error(
                    key.span,
                    format!(
                        "foreach variable '{}' must be a local, not a global",
                        key.name
                    ),
                    None,
                );
                None
            }
        }
    }

    pub(super) fn delete_target(&mut self, e: &'a Expr) -> Option<ir::LValue> {
        match &e.kind {
            ExprKind::Ident(name) => match self.var(name, e.span) {
                Var::Local(i) => Some(ir::LValue::Local(i)),
                Var::Global(g) => Some(ir::LValue::Global(self.gix(g))),
            },
            ExprKind::Index {
                base: Indexable::Name(name),
                keys,
            } => {
                let g = self.array(name, keys.len())?;
                let keys = self.keys(Some(g), keys, true);
                Some(ir::LValue::Index {
                    array: self.gix(g),
                    keys,
                    loc: self.loc(e.span),
                })
            }
            _ => {
                self.error(
                    e.span,
                    "delete needs a variable, an array or an array element",
                    None,
                );
                None
            }
        }
    }

    // ---- lvalues ----

    /// An assignable place and its type, refined toward `want`.
    pub(super) fn lvalue(&mut self, e: &'a Expr, want: Ty) -> Option<(ir::LValue, Ty)> {
        match &e.kind {
            ExprKind::Ident(name) => match self.var(name, e.span) {
                Var::Local(i) => {
                    let ty = self.local_ty(i, want);
                    Some((ir::LValue::Local(i), ty))
                }
                Var::Global(g) => {
                    if !self.arity(g, 0, e.span) {
                        return None;
                    }
                    let ty = self.global_ty(g, want);
                    if ty == Ty::Stats {
                        self.error(
                            e.span,
                            format!("invalid use of statistic '{name}': only `<<<` adds to it"),
                            None,
                        );
                        return None;
                    }
                    Some((ir::LValue::Global(self.gix(g)), ty))
                }
            },
            ExprKind::Index {
                base: Indexable::Name(name),
                keys,
            } => {
                let g = self.array(name, keys.len())?;
                let keys = self.keys(Some(g), keys, false);
                let ty = self.global_ty(g, want);
                if ty == Ty::Stats {
                    self.error(
                        e.span,
                        format!(
                            "invalid use of statistics array '{}': only `<<<` adds to it",
                            name.name
                        ),
                        None,
                    );
                    return None;
                }
                Some((
                    ir::LValue::Index {
                        array: self.gix(g),
                        keys,
                        loc: self.loc(e.span),
                    },
                    ty,
                ))
            }
            ExprKind::Target(_) => {
                if self.serves(Construct::TargetWrite, &print_expr(e), e.span) {
                    self.error(
                        e.span,
                        format!(
                            "writing target variable '{}' is not supported yet",
                            print_expr(e)
                        ),
                        Some("copy the value into a local and change that"),
                    );
                }
                None
            }
            _ => {
                self.error(
                    e.span,
                    format!("assignment to a non-lvalue '{}'", print_expr(e)),
                    Some("assign to a variable or an array element"),
                );
                None
            }
        }
    }

    /// A statistic: a global or an element of a global array, typed stats.
    pub(super) fn stat_lvalue(&mut self, e: &'a Expr) -> Option<ir::LValue> {
        match &e.kind {
            ExprKind::Ident(name) => match self.var(name, e.span) {
                Var::Global(g) => {
                    if !self.arity(g, 0, e.span) {
                        return None;
                    }
                    let ty = self.global_ty(g, Ty::Stats);
                    if ty != Ty::Stats {
                        self.error(
                            e.span,
                            format!(
                                "type mismatch (stats vs. {}): identifier '{name}'",
                                ty.name()
                            ),
                            None,
                        );
                    }
                    Some(ir::LValue::Global(self.gix(g)))
                }
                Var::Local(_) => {
                    self.error(
                        e.span,
                        format!("statistics must be global: local '{name}'"),
                        Some("declare it with `global NAME`"),
                    );
                    None
                }
            },
            ExprKind::Index {
                base: Indexable::Name(name),
                keys,
            } => {
                let g = self.array(name, keys.len())?;
                let keys = self.keys(Some(g), keys, false);
                let ty = self.global_ty(g, Ty::Stats);
                if ty != Ty::Stats {
                    self.error(
                        e.span,
                        format!(
                            "type mismatch (stats vs. {}): identifier '{}'",
                            ty.name(),
                            name.name
                        ),
                        None,
                    );
                }
                Some(ir::LValue::Index {
                    array: self.gix(g),
                    keys,
                    loc: self.loc(e.span),
                })
            }
            _ => {
                self.error(
                    e.span,
                    format!(
                        "expected a statistic (a global or an array element), got '{}'",
                        print_expr(e)
                    ),
                    None,
                );
                None
            }
        }
    }
}

pub(super) fn hist_spec(kind: ast::HistKind) -> ir::HistSpec {
    match kind {
        ast::HistKind::Log => ir::HistSpec::Log,
        ast::HistKind::Linear {
            start,
            stop,
            interval,
        } => ir::HistSpec::Linear {
            start,
            stop,
            interval,
        },
    }
}

pub(super) fn stat_op(op: ast::StatOp) -> ir::StatOp {
    match op {
        ast::StatOp::Count => ir::StatOp::Count,
        ast::StatOp::Sum => ir::StatOp::Sum,
        ast::StatOp::Min => ir::StatOp::Min,
        ast::StatOp::Max => ir::StatOp::Max,
        ast::StatOp::Avg => ir::StatOp::Avg,
        ast::StatOp::Variance => ir::StatOp::Variance,
    }
}

/// A statistic's place as an expression (for `foreach` over a histogram).
pub(super) fn lvalue_expr(lvalue: ir::LValue) -> ir::Expr {
    match lvalue {
        ir::LValue::Local(i) => ir::Expr::Local(i),
        ir::LValue::Global(g) => ir::Expr::Global(g),
        ir::LValue::Index { array, keys, .. } => ir::Expr::Index {
            array,
            keys: keys.into_iter().flatten().collect(),
        },
    }
}
