//! SystemTap's pass-2 elision, on the AST: stores to locals nothing reads
//! are dropped before typing, when their value has no side effect.

use std::collections::HashSet;

use tapmatrix_ir as ir;
use tapmatrix_syntax::ast::{self, AssignOp, Expr, ExprKind, Indexable, Stmt, StmtKind};

use super::{DerivedProbe, Elab};
use crate::builtins::{builtin, string_fetch};

impl<'a> Elab<'a> {
    /// The statements of a derived probe SystemTap elides before typing:
    /// `local = value` where nothing reads the local and the value has no
    /// side effects (to a fixed point: an elided store may leave another
    /// local unread). Alias prologues set many variables a handler never
    /// reads; their values need not type-check or be fetchable.
    pub(super) fn dead_stores(&mut self, probe: &DerivedProbe<'a>) -> HashSet<usize> {
        let mut skip = HashSet::new();
        loop {
            let mut read: HashSet<&'a str> = HashSet::new();
            for &(cond, _) in &probe.conditions {
                expr_reads(cond, &mut read);
            }
            for &(block, _) in &probe.pieces {
                for stmt in &block.stmts {
                    stmt_reads(stmt, &skip, &mut read);
                }
            }
            let mut dead = Vec::new();
            for &(block, file) in &probe.pieces {
                self.body.file = file;
                self.find_dead(&block.stmts, &read, &skip, &mut dead);
            }
            if dead.is_empty() {
                return skip;
            }
            skip.extend(dead);
        }
    }

    pub(super) fn find_dead(
        &mut self,
        stmts: &'a [Stmt],
        read: &HashSet<&'a str>,
        skip: &HashSet<usize>,
        dead: &mut Vec<usize>,
    ) {
        for stmt in stmts {
            if skip.contains(&address(stmt)) {
                continue;
            }
            match &stmt.kind {
                StmtKind::Expr(Expr {
                    kind:
                        ExprKind::Assign {
                            op: AssignOp::Assign,
                            lhs,
                            rhs,
                        },
                    ..
                }) => {
                    if let ExprKind::Ident(name) = &lhs.kind
                        && !read.contains(name.as_str())
                        && self.find_global(name).is_none()
                        && self.pure_expr(rhs, None)
                    {
                        dead.push(address(stmt));
                        self.warn(lhs.span, format!("Eliding assignment to '{name}'"));
                    }
                }
                StmtKind::Block(block) => self.find_dead(&block.stmts, read, skip, dead),
                StmtKind::If {
                    then, otherwise, ..
                } => {
                    self.find_dead(std::slice::from_ref(then), read, skip, dead);
                    if let Some(otherwise) = otherwise {
                        self.find_dead(std::slice::from_ref(otherwise), read, skip, dead);
                    }
                }
                StmtKind::While { body, .. } => {
                    self.find_dead(std::slice::from_ref(body), read, skip, dead);
                }
                StmtKind::For(f) => self.find_dead(std::slice::from_ref(&f.body), read, skip, dead),
                StmtKind::Foreach(f) => {
                    self.find_dead(std::slice::from_ref(&f.body), read, skip, dead);
                }
                StmtKind::Try(t) => {
                    self.find_dead(&t.body.stmts, read, skip, dead);
                    self.find_dead(&t.catch.stmts, read, skip, dead);
                }
                _ => {}
            }
        }
    }

    /// Whether evaluating `e` has no side effect (no output, no write to a
    /// global; in a function, `params` names its parameters and writes to
    /// its locals are allowed).
    pub(super) fn pure_expr(&mut self, e: &'a Expr, params: Option<&'a [ast::Param]>) -> bool {
        match &e.kind {
            ExprKind::Assign { op, lhs, rhs } => {
                let Some(params) = params else {
                    return false;
                };
                *op != AssignOp::Aggregate
                    && matches!(&lhs.kind, ExprKind::Ident(name)
                        if params.iter().any(|p| p.name == *name) || self.find_global(name).is_none())
                    && self.pure_expr(rhs, Some(params))
            }
            ExprKind::Crement { operand, .. } => {
                let Some(params) = params else {
                    return false;
                };
                matches!(&operand.kind, ExprKind::Ident(name)
                    if params.iter().any(|p| p.name == *name) || self.find_global(name).is_none())
            }
            ExprKind::Embedded(_) => false,
            ExprKind::Call { name, args } => {
                args.iter().all(|a| self.pure_expr(a, params)) && self.pure_call(name, args.len())
            }
            _ => {
                let mut children = Vec::new();
                e.for_each_child(&mut |child| children.push(child));
                children.into_iter().all(|c| self.pure_expr(c, params))
            }
        }
    }

    /// Whether calling `name` with `arity` arguments has no side effect.
    pub(super) fn pure_call(&mut self, name: &str, arity: usize) -> bool {
        let pure_builtin = |name: &str| {
            matches!(name, "sprint" | "sprintln" | "sprintf")
                || string_fetch(name).is_some()
                || builtin(name).is_some_and(|sig| {
                    !matches!(
                        sig.builtin,
                        ir::Builtin::Exit | ir::Builtin::Error | ir::Builtin::Warn
                    )
                })
        };
        if matches!(name, "print" | "println" | "printf") {
            return false;
        }
        if string_fetch(name).is_some() {
            return true;
        }
        let found = self
            .find_functions(name)
            .into_iter()
            .find(|&f| self.sym.functions[f].def.params.len() == arity);
        let Some(f) = found else {
            return pure_builtin(name);
        };
        if builtin(name).is_some() && !self.sym.functions[f].script {
            return pure_builtin(name);
        }
        if let Some(&known) = self.sym.function_purity.get(&f) {
            return known;
        }
        self.sym.function_purity.insert(f, false);
        let def = self.sym.functions[f].def;
        let saved = self.body.file;
        self.body.file = self.sym.functions[f].file;
        let pure = match &def.body {
            ast::FunctionBody::Embedded(code) => {
                code.code.contains("/* pure */") || pure_builtin(name)
            }
            ast::FunctionBody::Block(block) => block
                .stmts
                .iter()
                .all(|stmt| self.pure_stmt(stmt, &def.params)),
        };
        self.body.file = saved;
        self.sym.function_purity.insert(f, pure);
        pure
    }

    pub(super) fn pure_stmt(&mut self, stmt: &'a Stmt, params: &'a [ast::Param]) -> bool {
        let p = Some(params);
        match &stmt.kind {
            StmtKind::Block(block) => block.stmts.iter().all(|s| self.pure_stmt(s, params)),
            StmtKind::Empty
            | StmtKind::Break
            | StmtKind::Continue
            | StmtKind::Next
            | StmtKind::Return(None) => true,
            StmtKind::Expr(e) | StmtKind::Return(Some(e)) => self.pure_expr(e, p),
            StmtKind::If {
                cond,
                then,
                otherwise,
            } => {
                self.pure_expr(cond, p)
                    && self.pure_stmt(then, params)
                    && otherwise.as_ref().is_none_or(|o| self.pure_stmt(o, params))
            }
            StmtKind::While { cond, body } => {
                self.pure_expr(cond, p) && self.pure_stmt(body, params)
            }
            StmtKind::For(f) => {
                [&f.init, &f.cond, &f.step]
                    .into_iter()
                    .flatten()
                    .all(|e| self.pure_expr(e, p))
                    && self.pure_stmt(&f.body, params)
            }
            StmtKind::Foreach(f) => {
                f.limit.as_ref().is_none_or(|l| self.pure_expr(l, p))
                    && self.pure_stmt(&f.body, params)
            }
            StmtKind::Try(t) => t
                .body
                .stmts
                .iter()
                .chain(&t.catch.stmts)
                .all(|s| self.pure_stmt(s, params)),
            StmtKind::Delete(_) => false,
        }
    }
}

/// A statement's identity while elaborating (ASTs do not move).
pub(super) fn address(stmt: &Stmt) -> usize {
    std::ptr::from_ref(stmt) as usize
}

/// Records the names an expression reads (the target of a plain `=` is
/// written, not read).
pub(super) fn expr_reads<'a>(e: &'a Expr, read: &mut HashSet<&'a str>) {
    match &e.kind {
        ExprKind::Ident(name) => {
            read.insert(name);
        }
        ExprKind::Assign {
            op: AssignOp::Assign,
            lhs,
            rhs,
        } if matches!(lhs.kind, ExprKind::Ident(_)) => expr_reads(rhs, read),
        _ => e.for_each_child(&mut |child| expr_reads(child, read)),
    }
}

/// Records the names a statement reads, skipping elided statements.
pub(super) fn stmt_reads<'a>(stmt: &'a Stmt, skip: &HashSet<usize>, read: &mut HashSet<&'a str>) {
    if skip.contains(&address(stmt)) {
        return;
    }
    match &stmt.kind {
        StmtKind::Block(block) => block.stmts.iter().for_each(|s| stmt_reads(s, skip, read)),
        StmtKind::Empty
        | StmtKind::Break
        | StmtKind::Continue
        | StmtKind::Next
        | StmtKind::Return(None) => {}
        StmtKind::Expr(e) | StmtKind::Return(Some(e)) | StmtKind::Delete(e) => {
            expr_reads(e, read);
        }
        StmtKind::If {
            cond,
            then,
            otherwise,
        } => {
            expr_reads(cond, read);
            stmt_reads(then, skip, read);
            if let Some(otherwise) = otherwise {
                stmt_reads(otherwise, skip, read);
            }
        }
        StmtKind::While { cond, body } => {
            expr_reads(cond, read);
            stmt_reads(body, skip, read);
        }
        StmtKind::For(f) => {
            for e in [&f.init, &f.cond, &f.step].into_iter().flatten() {
                expr_reads(e, read);
            }
            stmt_reads(&f.body, skip, read);
        }
        StmtKind::Foreach(f) => {
            if let Indexable::Hist(h) = &f.array {
                expr_reads(&h.stat, read);
            }
            for key in f.slice.iter().flatten().flatten() {
                expr_reads(key, read);
            }
            if let Some(limit) = &f.limit {
                expr_reads(limit, read);
            }
            stmt_reads(&f.body, skip, read);
        }
        StmtKind::Try(t) => {
            for s in t.body.stmts.iter().chain(&t.catch.stmts) {
                stmt_reads(s, skip, read);
            }
        }
    }
}
