//! Globals and functions: the tables of every file's declarations,
//! lookup by name as SystemTap scopes them, arities, program numbering,
//! and the checks on the whole (duplicates, unresolved types).

use std::collections::HashMap;

use tapmatrix_ir as ir;
use tapmatrix_syntax::Span;
use tapmatrix_syntax::ast::{self, Expr};

use super::{DerivedProbe, Elab, Local, Ty, Var, refine};
use crate::error::ElaborateError;
use crate::format::decode_escapes;

impl<'a> Elab<'a> {
    /// Two script functions with one name and arity: SystemTap's
    /// redefinition error (overloads differ by arity or priority).
    pub(super) fn check_duplicate_functions(&mut self) {
        let mut seen: HashMap<(&str, usize, Option<i64>), usize> = HashMap::new();
        let mut errors = Vec::new();
        for (index, f) in self.sym.functions.iter().enumerate() {
            if !f.script {
                continue;
            }
            let key = (f.def.name.as_str(), f.def.params.len(), f.def.priority);
            if let Some(&first) = seen.get(&key) {
                errors.push(
                    ElaborateError::new(
                        format!("function '{}' is defined twice", f.name),
                        f.location.clone(),
                    )
                    .with_hint(format!(
                        "the first definition is at {}; rename one, or give them different arities",
                        self.sym.functions[first].location
                    )),
                );
            } else {
                seen.insert(key, index);
            }
        }
        for error in errors {
            self.push_error(error);
        }
    }

    // ---- globals ----

    /// Program indexes for the globals used: the script's in declaration
    /// order, then the tapsets'.
    pub(super) fn number_globals(&mut self) {
        let mut used: Vec<usize> = (0..self.sym.globals.len())
            .filter(|&g| self.sym.globals[g].used)
            .collect();
        used.sort_by_key(|&g| (!self.sym.globals[g].script, g));
        for (index, g) in used.into_iter().enumerate() {
            self.sym.global_ir[g] = Some(u32::try_from(index).unwrap_or(u32::MAX));
        }
    }

    pub(super) fn finish_globals(&mut self) -> Vec<ir::Global> {
        let mut numbered: Vec<(u32, usize)> = self
            .sym
            .global_ir
            .iter()
            .enumerate()
            .filter_map(|(g, index)| index.map(|i| (i, g)))
            .collect();
        numbered.sort();
        let mut out = Vec::new();
        for (_, g) in numbered {
            let var = &self.sym.globals[g];
            let scalar_value = |ty: Ty| match ty {
                Ty::Stats => None,
                other => Some(other.scalar()),
            };
            let ty = match var.arity {
                Some(n) if n > 0 => ir::GlobalType::Array {
                    keys: var.keys.iter().map(|k| k.scalar()).collect(),
                    value: scalar_value(var.ty),
                },
                _ if var.ty == Ty::Stats => ir::GlobalType::Stats,
                _ => ir::GlobalType::Scalar {
                    ty: var.ty.scalar(),
                },
            };
            let init = var.decl.init.as_ref().map(|literal| match literal {
                ast::Literal::Number(n) => ir::Value::Long(*n),
                ast::Literal::String(s) => ir::Value::Str(decode_escapes(s)),
            });
            let mut errors = Vec::new();
            if var.decl.size.is_some() && var.arity == Some(0) {
                errors.push(ElaborateError::new(
                    format!(
                        "inconsistent arity: identifier '{}' is declared with a size but used as a scalar",
                        var.name
                    ),
                    var.location.clone(),
                ));
            }
            if var.decl.wrap && !matches!(var.arity, Some(n) if n > 0) {
                errors.push(
                    ElaborateError::new("wrapping not supported for scalars", var.location.clone())
                        .with_hint(format!(
                            "`%` makes a full array drop its oldest entry; '{}' is not an array",
                            var.name
                        )),
                );
            }
            if var.decl.init.is_some() && matches!(var.arity, Some(n) if n > 0) {
                errors.push(ElaborateError::new(
                    format!("array '{}' cannot have an initial value", var.name),
                    var.location.clone(),
                ));
            }
            let max_entries = var
                .decl
                .size
                .map(|n| u32::try_from(n.max(0)).unwrap_or(u32::MAX));
            out.push(ir::Global {
                name: var.name.clone(),
                ty,
                init,
                max_entries,
                wrap: var.decl.wrap,
            });
            for error in errors {
                self.push_error(error);
            }
        }
        out
    }

    /// Unresolved types of everything used.
    pub(super) fn check_unresolved(&mut self, probes: &[DerivedProbe<'a>]) {
        let mut errors = Vec::new();
        let unresolved = |what: &str, name: &str, location: &str| {
            ElaborateError::new(
                format!("unresolved type: {what} '{name}'"),
                location.to_owned(),
            )
            .with_hint(
                "nothing gives it a type: assign it a value, or declare it `:long` or `:string`",
            )
        };
        for probe in probes {
            for local in &probe.locals {
                if local.ty == Ty::Unknown {
                    errors.push(unresolved("identifier", &local.name, &local.location));
                }
            }
        }
        for &f in &self.sym.reach_order {
            let func = &self.sym.functions[f];
            for local in &func.locals {
                if local.ty == Ty::Unknown {
                    errors.push(unresolved("identifier", &local.name, &local.location));
                }
            }
            if func.returns_value && func.ret == Ty::Unknown {
                errors.push(unresolved("function", &func.name, &func.location));
            }
        }
        for (g, var) in self.sym.globals.iter().enumerate() {
            if self.sym.global_ir[g].is_none() {
                continue;
            }
            if var.ty == Ty::Unknown || var.keys.contains(&Ty::Unknown) {
                errors.push(unresolved("identifier", &var.name, &var.location));
            }
        }
        for error in errors {
            self.push_error(error);
        }
    }

    /// SystemTap's warnings about the script's globals: declared and
    /// never used (elided), or read and never assigned (no initializer, no
    /// `-G`, no write anywhere in the script).
    pub(super) fn warn_about_globals(&mut self) {
        let mut written: std::collections::HashSet<&str> = std::collections::HashSet::new();
        for file in self.lib.files.iter().filter(|f| f.script) {
            for item in &file.ast.items {
                let (stmts, params): (&[ast::Stmt], &[ast::Param]) = match item {
                    ast::Item::Probe(p) => (&p.body.stmts, &[]),
                    ast::Item::Alias(a) => (&a.body.stmts, &[]),
                    ast::Item::Function(f) => match &f.body {
                        ast::FunctionBody::Block(b) => (&b.stmts, &f.params),
                        ast::FunctionBody::Embedded(_) => continue,
                    },
                    _ => continue,
                };
                for stmt in stmts {
                    writes_of(stmt, &mut |name| {
                        if !params.iter().any(|p| p.name == name) {
                            written.insert(name);
                        }
                    });
                }
            }
        }
        let mut warnings = Vec::new();
        for var in self.sym.globals.iter().filter(|g| g.script) {
            let message = if !var.used {
                format!("Eliding unused variable '{}'", var.name)
            } else if var.decl.init.is_none()
                && !written.contains(var.name.as_str())
                && !self.options.set_globals.contains(&var.name)
            {
                format!("never-assigned global variable '{}'", var.name)
            } else {
                continue;
            };
            warnings.push(crate::error::ElaborateWarning {
                message,
                location: var.location.clone(),
            });
        }
        for warning in warnings {
            if !self.warnings.contains(&warning) {
                self.warnings.push(warning);
            }
        }
    }

    // ---- names ----

    /// The global `name` seen from the current file: its own file's
    /// (private ones included), then the script's, then other tapsets'.
    pub(super) fn find_global(&self, name: &str) -> Option<usize> {
        let candidates = self.sym.globals_by_name.get(name)?;
        let file = self.body.file;
        candidates
            .iter()
            .copied()
            .find(|&g| self.sym.globals[g].file == file)
            .or_else(|| {
                candidates
                    .iter()
                    .copied()
                    .find(|&g| self.sym.globals[g].script && !self.sym.globals[g].decl.private)
            })
            .or_else(|| {
                candidates
                    .iter()
                    .copied()
                    .find(|&g| !self.sym.globals[g].decl.private)
            })
    }

    /// The functions named `name` visible from the current file, best
    /// first: script bodies before embedded C (an embedded-C function of
    /// SystemTap's library, or a script function built on C it cannot run:
    /// a `%{ %}` expression or an `@const` it has no value for, is served
    /// by a script function of the same name and arity where one exists,
    /// tapmatrix's own in the built-in library); then the current file's, the script's, and the tapsets'
    /// from the last directory to the first (a directory given with `-I`
    /// shadows the built-in library).
    pub(super) fn find_functions(&self, name: &str) -> Vec<usize> {
        let Some(candidates) = self.sym.functions_by_name.get(name) else {
            return Vec::new();
        };
        let file = self.body.file;
        let mut found: Vec<usize> = candidates
            .iter()
            .copied()
            .filter(|&f| {
                let func = &self.sym.functions[f];
                func.file == file || !func.def.private
            })
            .collect();
        if found.len() < 2 {
            return found;
        }
        found.sort_by_key(|&f| {
            let func = &self.sym.functions[f];
            let runs_c = match &func.def.body {
                ast::FunctionBody::Embedded(_) => true,
                ast::FunctionBody::Block(block) => *func
                    .uses_c
                    .get_or_init(|| super::block_uses_c(block, self.facts)),
            };
            (
                runs_c,
                func.file != file,
                !func.script,
                std::cmp::Reverse(func.layer),
                f,
            )
        });
        found
    }

    /// What a name means here; an unknown name becomes a new local.
    pub(super) fn var(&mut self, name: &str, span: Span) -> Var {
        if let Some(i) = self.body.locals[..self.body.params.min(self.body.locals.len())]
            .iter()
            .position(|l| l.name == name)
        {
            return Var::Local(u32::try_from(i).unwrap_or(u32::MAX));
        }
        if let Some(g) = self.find_global(name) {
            self.use_global(g);
            return Var::Global(g);
        }
        if let Some(i) = self.body.locals.iter().position(|l| l.name == name) {
            return Var::Local(u32::try_from(i).unwrap_or(u32::MAX));
        }
        let location = self.at(span);
        let script = self.lib.files.get(self.body.file).is_some_and(|f| f.script);
        self.body.locals.push(Local {
            name: name.to_owned(),
            ty: Ty::Unknown,
            location,
            script,
        });
        Var::Local(u32::try_from(self.body.locals.len() - 1).unwrap_or(u32::MAX))
    }

    pub(super) fn use_global(&mut self, g: usize) {
        if !self.sym.globals[g].used {
            self.sym.globals[g].used = true;
            self.changed = true;
        }
    }

    pub(super) fn gix(&self, g: usize) -> u32 {
        self.sym.global_ir.get(g).copied().flatten().unwrap_or(0)
    }

    pub(super) fn local_ty(&mut self, i: u32, want: Ty) -> Ty {
        match self.body.locals.get_mut(i as usize) {
            Some(local) => refine(&mut local.ty, want, &mut self.changed),
            None => Ty::Unknown,
        }
    }

    pub(super) fn global_ty(&mut self, g: usize, want: Ty) -> Ty {
        refine(&mut self.sym.globals[g].ty, want, &mut self.changed)
    }

    /// Checks (and on first use sets) a global's arity.
    pub(super) fn arity(&mut self, g: usize, n: usize, span: Span) -> bool {
        match self.sym.globals[g].arity {
            None => {
                self.sym.globals[g].arity = Some(n);
                self.sym.globals[g].keys = vec![Ty::Unknown; n];
                self.changed = true;
                true
            }
            Some(m) if m == n => true,
            Some(m) => {
                let name = self.sym.globals[g].name.clone();
                let message = if m == 0 || n == 0 {
                    format!(
                        "inconsistent arity ({m} vs {n}): identifier '{name}' is used both as a scalar and as an array"
                    )
                } else {
                    format!("inconsistent arity ({m} vs {n}): identifier '{name}'")
                };
                self.error(span, message, None);
                false
            }
        }
    }

    /// An array named where an array is needed.
    pub(super) fn array(&mut self, name: &ast::Ident, arity: usize) -> Option<usize> {
        match self.find_global(&name.name) {
            Some(g) => {
                self.use_global(g);
                self.arity(g, arity, name.span).then_some(g)
            }
            None => {
                self.error(
                    name.span,
                    format!(
                        "unresolved array: identifier '{}' is not a global",
                        name.name
                    ),
                    Some("arrays must be global: declare it with `global NAME`"),
                );
                None
            }
        }
    }

    /// Typed keys of an array access (`None` entries are `*`).
    pub(super) fn keys(
        &mut self,
        g: Option<usize>,
        keys: &'a [Option<Expr>],
        wildcards: bool,
    ) -> Vec<Option<ir::Expr>> {
        let mut out = Vec::new();
        for (i, key) in keys.iter().enumerate() {
            match key {
                Some(key) => {
                    let want = g
                        .and_then(|g| self.sym.globals[g].keys.get(i).copied())
                        .unwrap_or(Ty::Unknown);
                    let (expr, ty) = self.typed(key, want);
                    if ty == Ty::Stats {
                        self.error(key.span, "invalid use of a statistic as an array key", None);
                    }
                    if let Some(g) = g
                        && let Some(slot) = self.sym.globals[g].keys.get_mut(i)
                    {
                        refine(slot, ty, &mut self.changed);
                    }
                    out.push(Some(expr));
                }
                None => {
                    out.push(None);
                }
            }
        }
        if !wildcards && out.iter().any(Option::is_none) {
            self.error(
                keys.iter()
                    .flatten()
                    .next()
                    .map_or_else(Span::default, |e| e.span),
                "'*' is only allowed in delete, in and foreach slices",
                None,
            );
        }
        out
    }
}

/// Calls `f` with every expression of a statement, nested ones included.
pub(super) fn for_each_expr<'a>(stmt: &'a ast::Stmt, f: &mut dyn FnMut(&'a Expr)) {
    walk(stmt, f, &mut |_| {});
}

/// Calls `f` with every expression of a statement, nested ones included,
/// and `deleted` with the operand of each `delete` statement.
fn walk<'a>(stmt: &'a ast::Stmt, f: &mut dyn FnMut(&'a Expr), deleted: &mut dyn FnMut(&'a Expr)) {
    use ast::StmtKind;
    fn deep<'a>(e: &'a Expr, f: &mut dyn FnMut(&'a Expr)) {
        f(e);
        e.for_each_child(&mut |child| deep(child, f));
    }
    match &stmt.kind {
        StmtKind::Block(block) => block.stmts.iter().for_each(|s| walk(s, f, deleted)),
        StmtKind::Expr(e) | StmtKind::Return(Some(e)) => deep(e, f),
        StmtKind::Delete(e) => {
            deleted(e);
            deep(e, f);
        }
        StmtKind::If {
            cond,
            then,
            otherwise,
        } => {
            deep(cond, f);
            walk(then, f, deleted);
            if let Some(otherwise) = otherwise {
                walk(otherwise, f, deleted);
            }
        }
        StmtKind::While { cond, body } => {
            deep(cond, f);
            walk(body, f, deleted);
        }
        StmtKind::For(l) => {
            for e in [&l.init, &l.cond, &l.step].into_iter().flatten() {
                deep(e, f);
            }
            walk(&l.body, f, deleted);
        }
        StmtKind::Foreach(l) => {
            let stat = match &l.array {
                ast::Indexable::Hist(h) => Some(&*h.stat),
                _ => None,
            };
            for e in stat
                .into_iter()
                .chain(l.slice.iter().flatten().flatten())
                .chain(&l.limit)
            {
                deep(e, f);
            }
            walk(&l.body, f, deleted);
        }
        StmtKind::Try(t) => t
            .body
            .stmts
            .iter()
            .chain(&t.catch.stmts)
            .for_each(|s| walk(s, f, deleted)),
        StmtKind::Empty
        | StmtKind::Break
        | StmtKind::Continue
        | StmtKind::Next
        | StmtKind::Return(None) => {}
    }
}

/// The names a probe body writes (`@probewrite`).
pub(super) fn writes_of_block(block: &ast::Block) -> std::collections::HashSet<String> {
    let mut out = std::collections::HashSet::new();
    for stmt in &block.stmts {
        writes_of(stmt, &mut |name| {
            out.insert(name.to_owned());
        });
    }
    out
}

/// Calls `written` with each name a statement writes: the target of an
/// assignment or `++`/`--`, an array stored into or deleted from, a
/// statistic added to.
fn writes_of<'a>(stmt: &'a ast::Stmt, written: &mut dyn FnMut(&'a str)) {
    let (mut assigned, mut deleted) = (Vec::new(), Vec::new());
    walk(
        stmt,
        &mut |e| match &e.kind {
            ast::ExprKind::Assign { lhs: target, .. }
            | ast::ExprKind::Crement {
                operand: target, ..
            } => assigned.extend(root_name(target)),
            _ => {}
        },
        &mut |e| deleted.extend(root_name(e)),
    );
    assigned.into_iter().chain(deleted).for_each(written);
}

/// The variable an lvalue names: `x`, or the array of `a[k]`.
fn root_name(e: &Expr) -> Option<&str> {
    match &e.kind {
        ast::ExprKind::Ident(name) => Some(name),
        ast::ExprKind::Index {
            base: ast::Indexable::Name(name),
            ..
        } => Some(&name.name),
        _ => None,
    }
}
