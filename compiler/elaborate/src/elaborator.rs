//! The elaborator: derived probes, symbol tables, type inference to a
//! fixed point, and lowering to the IR.
//!
//! One walker does both inference and lowering: it runs over every derived
//! probe and every reachable function until no type changes and no new
//! function becomes reachable, then once more to report errors and keep the
//! IR it builds (with every type then known).

use std::collections::{HashMap, HashSet};

use tapmatrix_facts::KernelFacts;
use tapmatrix_ir as ir;
use tapmatrix_resolve::{
    Arg, AttachKind, AttachPoint, Derivation, Library, Resolver, resolve_target,
};
use tapmatrix_syntax::ast::{
    self, AssignOp, BinOp, Expr, ExprKind, Indexable, Item, Stmt, StmtKind, TargetBase,
    TargetComponent,
};
use tapmatrix_syntax::{Span, print_expr};

use crate::builtins::{builtin, string_fetch};
use crate::error::{ElaborateError, ElaborateErrors};
use crate::format::{decode_escapes, parse_format};
use crate::prune::prune_probe;
use crate::{Elaborated, FetchRequest, ProbeSite};

/// Passes of inference before giving up on a fixed point.
const MAX_PASSES: usize = 64;

/// A type being inferred.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ty {
    Unknown,
    Long,
    Str,
    Stats,
}

impl Ty {
    fn name(self) -> &'static str {
        match self {
            Ty::Unknown => "unknown",
            Ty::Long => "long",
            Ty::Str => "string",
            Ty::Stats => "stats",
        }
    }

    fn scalar(self) -> ir::ScalarType {
        match self {
            Ty::Str => ir::ScalarType::String,
            _ => ir::ScalarType::Long,
        }
    }

    fn of(scalar: ir::ScalarType) -> Ty {
        match scalar {
            ir::ScalarType::Long => Ty::Long,
            ir::ScalarType::String => Ty::Str,
        }
    }

    fn of_ast(ty: ast::Type) -> Ty {
        match ty {
            ast::Type::Long => Ty::Long,
            ast::Type::String => Ty::Str,
        }
    }
}

/// Refines `slot` toward `want` when it is still unknown; records a change.
fn refine(slot: &mut Ty, want: Ty, changed: &mut bool) -> Ty {
    if *slot == Ty::Unknown && want != Ty::Unknown {
        *slot = want;
        *changed = true;
    }
    *slot
}

/// A local variable of a probe or function.
#[derive(Debug, Clone)]
struct Local {
    name: String,
    ty: Ty,
    location: String,
}

/// A global variable declared in the script or a tapset file.
#[derive(Debug)]
struct GlobalVar<'a> {
    name: String,
    file: usize,
    script: bool,
    decl: &'a ast::Global,
    location: String,
    ty: Ty,
    /// `Some(0)`: a scalar; `Some(n)`: an array of `n` keys.
    arity: Option<usize>,
    keys: Vec<Ty>,
    used: bool,
}

/// A function defined in the script or a tapset file.
#[derive(Debug)]
struct FuncDef<'a> {
    name: String,
    file: usize,
    script: bool,
    def: &'a ast::Function,
    location: String,
    ret: Ty,
    returns_value: bool,
    locals: Vec<Local>,
    /// Its index in the program once reachable.
    reached: Option<u32>,
}

/// One derived probe: its trigger and its composed handler.
#[derive(Debug)]
struct DerivedProbe<'a> {
    /// Statements elided as dead stores (by address).
    skip: HashSet<usize>,
    kind: ir::ProbeKind,
    leaf: tapmatrix_resolve::ProbePoint,
    name: String,
    attach: Vec<AttachPoint>,
    /// `if (cond)` of the points along the derivation, with their files.
    conditions: Vec<(&'a Expr, usize)>,
    /// Bodies in the order they run, with their files.
    pieces: Vec<(&'a ast::Block, usize)>,
    locals: Vec<Local>,
}

/// What a name means where it is used.
#[derive(Debug, Clone, Copy)]
enum Var {
    Local(u32),
    Global(usize),
}

struct Elab<'a> {
    lib: &'a Library,
    facts: &'a KernelFacts,
    /// The attach points of the probe being walked.
    attach: Vec<AttachPoint>,
    /// The probe being walked is fed by kernel events.
    event: bool,
    files: Vec<String>,
    globals: Vec<GlobalVar<'a>>,
    globals_by_name: HashMap<&'a str, Vec<usize>>,
    functions: Vec<FuncDef<'a>>,
    functions_by_name: HashMap<&'a str, Vec<usize>>,
    /// Functions in the order they became reachable: their program order.
    reach_order: Vec<usize>,
    global_ir: Vec<Option<u32>>,
    changed: bool,
    report: bool,
    errors: Vec<ElaborateError>,
    // The body being walked.
    file: usize,
    locals: Vec<Local>,
    params: usize,
    function: Option<usize>,
    fetches: Vec<FetchRequest>,
    fetch_keys: Vec<String>,
    /// Statements of the probe being walked that SystemTap would elide
    /// (by address).
    skip: HashSet<usize>,
    /// Whether a function has no side effects (`false` while being decided).
    function_purity: HashMap<usize, bool>,
}

/// Elaborates a library's script for one kernel.
pub(crate) fn run(lib: &Library, facts: &KernelFacts) -> Result<Elaborated, ElaborateErrors> {
    let mut elab = Elab::new(lib, facts);
    elab.check_duplicate_functions();
    let mut probes = elab.derive_probes(facts);
    for probe in &mut probes {
        probe.skip = elab.dead_stores(probe);
    }
    for _ in 0..MAX_PASSES {
        elab.changed = false;
        elab.pass(&mut probes);
        if !elab.changed {
            break;
        }
    }
    elab.number_globals();
    elab.report = true;
    let (ir_probes, functions) = elab.pass(&mut probes);
    let globals = elab.finish_globals();
    // An unresolved type is often the echo of an earlier error (a call
    // that failed gives its variable no type): report it alone.
    if elab.errors.is_empty() {
        elab.check_unresolved(&probes);
    }
    if probes.is_empty() && elab.errors.is_empty() {
        let script = lib
            .files
            .iter()
            .find(|f| f.script)
            .and_then(|f| f.ast.items.first().map(|item| (f, item_span(item))));
        let location = script.map_or_else(String::new, |(f, span)| f.names.location(span));
        elab.errors
            .push(ElaborateError::new("no probes found", location).with_hint(
                "every probe point of the script resolved to nothing, or there is no probe",
            ));
    }
    if !elab.errors.is_empty() {
        return Err(ElaborateErrors(elab.errors));
    }
    let mut program_probes = Vec::new();
    let mut sites = Vec::new();
    for (probe, (mut ir_probe, mut fetches)) in probes.iter().zip(ir_probes) {
        prune_probe(&mut ir_probe, &mut fetches);
        program_probes.push(ir_probe);
        sites.push(ProbeSite {
            point: probe.leaf.clone(),
            attach: probe.attach.clone(),
            fetches,
        });
    }
    Ok(Elaborated {
        program: ir::Program {
            files: elab.files,
            globals,
            functions,
            probes: program_probes,
            limits: ir::Limits::default(),
        },
        sites,
    })
}

fn item_span(item: &Item) -> Span {
    match item {
        Item::Probe(p) => p.span,
        Item::Alias(a) => a.span,
        Item::Function(f) => f.span,
        Item::Global(g) => g.span,
        Item::Embedded(e) => e.span,
    }
}

impl<'a> Elab<'a> {
    fn new(lib: &'a Library, facts: &'a KernelFacts) -> Elab<'a> {
        let mut globals = Vec::new();
        let mut functions = Vec::new();
        for (file_index, file) in lib.files.iter().enumerate() {
            for item in &file.ast.items {
                match item {
                    Item::Global(g) => {
                        let ty = match &g.init {
                            Some(ast::Literal::Number(_)) => Ty::Long,
                            Some(ast::Literal::String(_)) => Ty::Str,
                            None => Ty::Unknown,
                        };
                        globals.push(GlobalVar {
                            name: g.name.clone(),
                            file: file_index,
                            script: file.script,
                            decl: g,
                            location: file.names.location(g.span),
                            ty,
                            arity: None,
                            keys: Vec::new(),
                            used: false,
                        });
                    }
                    Item::Function(f) => {
                        let locals = f
                            .params
                            .iter()
                            .map(|p| Local {
                                name: p.name.clone(),
                                ty: p.ty.map_or(Ty::Unknown, Ty::of_ast),
                                location: file.names.location(p.span),
                            })
                            .collect();
                        functions.push(FuncDef {
                            name: f.name.clone(),
                            file: file_index,
                            script: file.script,
                            def: f,
                            location: file.names.location(f.span),
                            ret: f.return_type.map_or(Ty::Unknown, Ty::of_ast),
                            returns_value: f.return_type.is_some(),
                            locals,
                            reached: None,
                        });
                    }
                    _ => {}
                }
            }
        }
        let mut globals_by_name: HashMap<&'a str, Vec<usize>> = HashMap::new();
        for (index, g) in globals.iter().enumerate() {
            globals_by_name.entry(&g.decl.name).or_default().push(index);
        }
        let mut functions_by_name: HashMap<&'a str, Vec<usize>> = HashMap::new();
        for (index, f) in functions.iter().enumerate() {
            functions_by_name
                .entry(&f.def.name)
                .or_default()
                .push(index);
        }
        let global_ir = vec![None; globals.len()];
        Elab {
            lib,
            facts,
            attach: Vec::new(),
            event: false,
            files: Vec::new(),
            globals,
            globals_by_name,
            functions,
            functions_by_name,
            reach_order: Vec::new(),
            global_ir,
            changed: false,
            report: false,
            errors: Vec::new(),
            file: 0,
            locals: Vec::new(),
            params: 0,
            function: None,
            fetches: Vec::new(),
            fetch_keys: Vec::new(),
            skip: HashSet::new(),
            function_purity: HashMap::new(),
        }
    }

    // ---- SystemTap's pass-2 elision, on the AST ----

    /// The statements of a derived probe SystemTap elides before typing:
    /// `local = value` where nothing reads the local and the value has no
    /// side effects (to a fixed point: an elided store may leave another
    /// local unread). Alias prologues set many variables a handler never
    /// reads; their values need not type-check or be fetchable.
    fn dead_stores(&mut self, probe: &DerivedProbe<'a>) -> HashSet<usize> {
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
                self.file = file;
                self.find_dead(&block.stmts, &read, &skip, &mut dead);
            }
            if dead.is_empty() {
                return skip;
            }
            skip.extend(dead);
        }
    }

    fn find_dead(
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
    fn pure_expr(&mut self, e: &'a Expr, params: Option<&'a [ast::Param]>) -> bool {
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
    fn pure_call(&mut self, name: &str, arity: usize) -> bool {
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
            .find(|&f| self.functions[f].def.params.len() == arity);
        let Some(f) = found else {
            return pure_builtin(name);
        };
        if builtin(name).is_some() && !self.functions[f].script {
            return pure_builtin(name);
        }
        if let Some(&known) = self.function_purity.get(&f) {
            return known;
        }
        self.function_purity.insert(f, false);
        let def = self.functions[f].def;
        let saved = self.file;
        self.file = self.functions[f].file;
        let pure = match &def.body {
            ast::FunctionBody::Embedded(code) => {
                code.code.contains("/* pure */") || pure_builtin(name)
            }
            ast::FunctionBody::Block(block) => block
                .stmts
                .iter()
                .all(|stmt| self.pure_stmt(stmt, &def.params)),
        };
        self.file = saved;
        self.function_purity.insert(f, pure);
        pure
    }

    fn pure_stmt(&mut self, stmt: &'a Stmt, params: &'a [ast::Param]) -> bool {
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

    /// Two script functions with one name and arity: SystemTap's
    /// redefinition error (overloads differ by arity or priority).
    fn check_duplicate_functions(&mut self) {
        let mut seen: HashMap<(&str, usize, Option<i64>), usize> = HashMap::new();
        let mut errors = Vec::new();
        for (index, f) in self.functions.iter().enumerate() {
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
                        self.functions[first].location
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

    // ---- places and errors ----

    fn at(&self, span: Span) -> String {
        self.lib
            .files
            .get(self.file)
            .map_or_else(String::new, |f| f.names.location(span))
    }

    fn loc(&mut self, span: Span) -> ir::Loc {
        let name = self
            .lib
            .files
            .get(self.file)
            .map_or("<unknown>", |f| f.names.name(span.file))
            .to_owned();
        let file = match self.files.iter().position(|f| *f == name) {
            Some(index) => index,
            None => {
                self.files.push(name);
                self.files.len() - 1
            }
        };
        ir::Loc {
            file: u32::try_from(file).unwrap_or(u32::MAX),
            line: span.line,
            col: span.col,
        }
    }

    fn push_error(&mut self, error: ElaborateError) {
        if !self.errors.contains(&error) {
            self.errors.push(error);
        }
    }

    /// Records an error (only in the reporting pass).
    fn error(&mut self, span: Span, message: impl Into<String>, hint: Option<&str>) {
        if !self.report {
            return;
        }
        let mut error = ElaborateError::new(message, self.at(span));
        if let Some(hint) = hint {
            error = error.with_hint(hint);
        }
        self.push_error(error);
    }

    // ---- probes ----

    fn derive_probes(&mut self, facts: &KernelFacts) -> Vec<DerivedProbe<'a>> {
        let lib = self.lib;
        let resolver = Resolver::new(lib, facts);
        let mut out = Vec::new();
        for probe in &lib.probes {
            let Some((ast_probe, _)) = lib.probe_ast(probe) else {
                self.push_error(
                    ElaborateError::new(
                        "the script was loaded without its syntax tree",
                        probe.location.clone(),
                    )
                    .with_hint("load the sources with Sources::load (Sources::load_all keeps no syntax trees)"),
                );
                continue;
            };
            let derivations = match resolver.derive(&probe.points) {
                Ok(derivations) => derivations,
                Err(misses) => {
                    let reasons: Vec<String> = misses
                        .iter()
                        .map(|m| format!("{}: {}", m.point, m.reason))
                        .collect();
                    self.push_error(
                        ElaborateError::new(
                            format!(
                                "probe point mismatch: '{}' resolves to nothing on this kernel ({})",
                                probe.label(),
                                reasons.join("; ")
                            ),
                            probe.location.clone(),
                        )
                        .with_hint(
                            "mark the point optional with '?', or see `tapmatrix resolve` for alternatives",
                        ),
                    );
                    continue;
                }
            };
            for derivation in derivations {
                if let Some(derived) = self.derived(probe.file, ast_probe, &derivation) {
                    out.push(derived);
                }
            }
        }
        out
    }

    /// The derived probe of one derivation (`None` for `never`, or on error).
    fn derived(
        &mut self,
        script_file: usize,
        probe: &'a ast::Probe,
        derivation: &Derivation,
    ) -> Option<DerivedProbe<'a>> {
        let lib = self.lib;
        let mut conditions = Vec::new();
        let mut prologues = Vec::new();
        let mut epilogues = Vec::new();
        let mut points: &'a [ast::ProbePoint] = &probe.points;
        let mut file = script_file;
        let name = derivation
            .path
            .first()
            .and_then(|step| probe.points.get(step.point))
            .map(|p| tapmatrix_resolve::ProbePoint::from_ast(p).bare())
            .unwrap_or_default();
        for step in &derivation.path {
            if let Some(cond) = points.get(step.point).and_then(|p| p.condition.as_ref()) {
                conditions.push((cond, file));
            }
            let Some(alias_index) = step.alias else {
                break;
            };
            let (alias, _) = lib
                .aliases()
                .get(alias_index)
                .and_then(|alias| lib.alias_ast(alias))?;
            let alias_file = lib.aliases().get(alias_index).map_or(0, |a| a.file);
            match alias.kind {
                ast::AliasKind::Prologue => {
                    prologues.push((&alias.body, alias_file));
                    if let Some(epilogue) = &alias.epilogue {
                        epilogues.push((epilogue, alias_file));
                    }
                }
                ast::AliasKind::Epilogue => epilogues.push((&alias.body, alias_file)),
            }
            points = &alias.points;
            file = alias_file;
        }
        // As SystemTap derives an alias (prologue: alias body then the
        // probe's; epilogue: the probe's then the alias body) level by
        // level: the innermost prologue runs first, the innermost epilogue
        // last.
        let mut pieces: Vec<(&'a ast::Block, usize)> = prologues.into_iter().rev().collect();
        pieces.push((&probe.body, script_file));
        pieces.extend(epilogues);
        let leaf = &derivation.leaf;
        let kind = match derivation.attach.first().map(|a| a.kind) {
            Some(AttachKind::Never) | None => return None,
            Some(kind @ (AttachKind::Begin | AttachKind::End | AttachKind::Error)) => {
                let seq = match leaf.components.first().and_then(|c| c.arg.as_ref()) {
                    Some(Arg::Number(n)) => *n,
                    _ => 0,
                };
                match kind {
                    AttachKind::Begin => ir::ProbeKind::Begin { seq },
                    AttachKind::End => ir::ProbeKind::End { seq },
                    _ => ir::ProbeKind::Error { seq },
                }
            }
            Some(AttachKind::Timer) => match timer_kind(leaf) {
                Ok(kind) => kind,
                Err(message) => {
                    self.file = script_file;
                    self.report = true;
                    self.error(
                        probe.span,
                        format!("{message}: '{}'", leaf.bare()),
                        Some("use timer.s/ms/us/ns/hz(N), optionally .randomize(N)"),
                    );
                    self.report = false;
                    return None;
                }
            },
            Some(AttachKind::Perf) => {
                self.file = script_file;
                self.report = true;
                self.error(
                    probe.span,
                    format!(
                        "perf probes are not supported by the tracefs back end: '{}'",
                        leaf.bare()
                    ),
                    None,
                );
                self.report = false;
                return None;
            }
            Some(AttachKind::Kprobe | AttachKind::Kretprobe | AttachKind::Tracepoint) => {
                ir::ProbeKind::Event
            }
        };
        let attach = match kind {
            ir::ProbeKind::Event => derivation.attach.clone(),
            _ => Vec::new(),
        };
        Some(DerivedProbe {
            skip: HashSet::new(),
            kind,
            leaf: leaf.clone(),
            name,
            attach,
            conditions,
            pieces,
            locals: Vec::new(),
        })
    }

    // ---- passes ----

    /// One walk over every probe and reachable function.
    #[allow(clippy::type_complexity)]
    fn pass(
        &mut self,
        probes: &mut [DerivedProbe<'a>],
    ) -> (Vec<(ir::Probe, Vec<FetchRequest>)>, Vec<ir::Function>) {
        let mut out = Vec::new();
        for probe in probes.iter_mut() {
            out.push(self.lower_probe(probe));
        }
        let mut functions = Vec::new();
        let mut index = 0;
        while let Some(&f) = self.reach_order.get(index) {
            functions.push(self.lower_function(f));
            index += 1;
        }
        (out, functions)
    }

    fn lower_probe(&mut self, probe: &mut DerivedProbe<'a>) -> (ir::Probe, Vec<FetchRequest>) {
        self.locals = std::mem::take(&mut probe.locals);
        self.skip = std::mem::take(&mut probe.skip);
        self.attach.clone_from(&probe.attach);
        self.event = probe.kind == ir::ProbeKind::Event;
        self.params = 0;
        self.function = None;
        self.fetches.clear();
        self.fetch_keys.clear();
        let mut body = Vec::new();
        let mut guard: Option<ir::Expr> = None;
        for &(cond, file) in &probe.conditions {
            self.file = file;
            let (cond, _) = self.typed(cond, Ty::Long);
            guard = Some(match guard {
                Some(prev) => ir::Expr::And(Box::new(prev), Box::new(cond)),
                None => cond,
            });
        }
        if let Some(guard) = guard {
            body.push(ir::Stmt::If {
                cond: ir::Expr::Unary {
                    op: ir::UnaryOp::Not,
                    operand: Box::new(guard),
                },
                then: vec![ir::Stmt::Next],
                otherwise: Vec::new(),
            });
        }
        for &(block, file) in &probe.pieces {
            self.file = file;
            body.extend(self.block(block));
        }
        let fetches = std::mem::take(&mut self.fetches);
        probe.locals = std::mem::take(&mut self.locals);
        probe.skip = std::mem::take(&mut self.skip);
        let ir_probe = ir::Probe {
            kind: probe.kind.clone(),
            name: probe.name.clone(),
            locals: probe.locals.iter().map(|l| l.ty.scalar()).collect(),
            fetches: fetches.iter().map(FetchRequest::ty).collect(),
            body,
        };
        (ir_probe, fetches)
    }

    fn lower_function(&mut self, index: usize) -> ir::Function {
        let Some(f) = self.functions.get_mut(index) else {
            return ir::Function {
                name: String::new(),
                params: Vec::new(),
                ret: None,
                locals: Vec::new(),
                body: Vec::new(),
            };
        };
        let def = f.def;
        self.locals = std::mem::take(&mut f.locals);
        self.file = f.file;
        self.params = def.params.len();
        self.function = Some(index);
        self.skip.clear();
        self.fetches.clear();
        self.fetch_keys.clear();
        let body = match &def.body {
            ast::FunctionBody::Block(block) => self.block(block),
            ast::FunctionBody::Embedded(_) => Vec::new(),
        };
        let locals = std::mem::take(&mut self.locals);
        self.function = None;
        let Some(f) = self.functions.get_mut(index) else {
            return ir::Function {
                name: String::new(),
                params: Vec::new(),
                ret: None,
                locals: Vec::new(),
                body,
            };
        };
        f.locals = locals;
        ir::Function {
            name: f.name.clone(),
            params: f.locals[..self.params.min(f.locals.len())]
                .iter()
                .map(|l| l.ty.scalar())
                .collect(),
            ret: f.returns_value.then(|| f.ret.scalar()),
            locals: f.locals.iter().map(|l| l.ty.scalar()).collect(),
            body,
        }
    }

    // ---- globals ----

    /// Program indexes for the globals used: the script's in declaration
    /// order, then the tapsets'.
    fn number_globals(&mut self) {
        let mut used: Vec<usize> = (0..self.globals.len())
            .filter(|&g| self.globals[g].used)
            .collect();
        used.sort_by_key(|&g| (!self.globals[g].script, g));
        for (index, g) in used.into_iter().enumerate() {
            self.global_ir[g] = Some(u32::try_from(index).unwrap_or(u32::MAX));
        }
    }

    fn finish_globals(&mut self) -> Vec<ir::Global> {
        let mut numbered: Vec<(u32, usize)> = self
            .global_ir
            .iter()
            .enumerate()
            .filter_map(|(g, index)| index.map(|i| (i, g)))
            .collect();
        numbered.sort();
        let mut out = Vec::new();
        for (_, g) in numbered {
            let var = &self.globals[g];
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
    fn check_unresolved(&mut self, probes: &[DerivedProbe<'a>]) {
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
        for &f in &self.reach_order {
            let func = &self.functions[f];
            for local in &func.locals {
                if local.ty == Ty::Unknown {
                    errors.push(unresolved("identifier", &local.name, &local.location));
                }
            }
            if func.returns_value && func.ret == Ty::Unknown {
                errors.push(unresolved("function", &func.name, &func.location));
            }
        }
        for (g, var) in self.globals.iter().enumerate() {
            if self.global_ir[g].is_none() {
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

    // ---- names ----

    /// The global `name` seen from the current file: its own file's
    /// (private ones included), then the script's, then other tapsets'.
    fn find_global(&self, name: &str) -> Option<usize> {
        let candidates = self.globals_by_name.get(name)?;
        let file = self.file;
        candidates
            .iter()
            .copied()
            .find(|&g| self.globals[g].file == file)
            .or_else(|| {
                candidates
                    .iter()
                    .copied()
                    .find(|&g| self.globals[g].script && !self.globals[g].decl.private)
            })
            .or_else(|| {
                candidates
                    .iter()
                    .copied()
                    .find(|&g| !self.globals[g].decl.private)
            })
    }

    /// The functions named `name` visible from the current file, best first.
    fn find_functions(&self, name: &str) -> Vec<usize> {
        let Some(candidates) = self.functions_by_name.get(name) else {
            return Vec::new();
        };
        let file = self.file;
        let mut found: Vec<usize> = candidates
            .iter()
            .copied()
            .filter(|&f| {
                let func = &self.functions[f];
                func.file == file || !func.def.private
            })
            .collect();
        found.sort_by_key(|&f| {
            let func = &self.functions[f];
            (func.file != file, !func.script, f)
        });
        found
    }

    /// What a name means here; an unknown name becomes a new local.
    fn var(&mut self, name: &str, span: Span) -> Var {
        if let Some(i) = self.locals[..self.params.min(self.locals.len())]
            .iter()
            .position(|l| l.name == name)
        {
            return Var::Local(u32::try_from(i).unwrap_or(u32::MAX));
        }
        if let Some(g) = self.find_global(name) {
            self.use_global(g);
            return Var::Global(g);
        }
        if let Some(i) = self.locals.iter().position(|l| l.name == name) {
            return Var::Local(u32::try_from(i).unwrap_or(u32::MAX));
        }
        let location = self.at(span);
        self.locals.push(Local {
            name: name.to_owned(),
            ty: Ty::Unknown,
            location,
        });
        Var::Local(u32::try_from(self.locals.len() - 1).unwrap_or(u32::MAX))
    }

    fn use_global(&mut self, g: usize) {
        if !self.globals[g].used {
            self.globals[g].used = true;
            self.changed = true;
        }
    }

    fn gix(&self, g: usize) -> u32 {
        self.global_ir.get(g).copied().flatten().unwrap_or(0)
    }

    fn local_ty(&mut self, i: u32, want: Ty) -> Ty {
        match self.locals.get_mut(i as usize) {
            Some(local) => refine(&mut local.ty, want, &mut self.changed),
            None => Ty::Unknown,
        }
    }

    fn global_ty(&mut self, g: usize, want: Ty) -> Ty {
        refine(&mut self.globals[g].ty, want, &mut self.changed)
    }

    /// Checks (and on first use sets) a global's arity.
    fn arity(&mut self, g: usize, n: usize, span: Span) -> bool {
        match self.globals[g].arity {
            None => {
                self.globals[g].arity = Some(n);
                self.globals[g].keys = vec![Ty::Unknown; n];
                self.changed = true;
                true
            }
            Some(m) if m == n => true,
            Some(m) => {
                let name = self.globals[g].name.clone();
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
    fn array(&mut self, name: &ast::Ident, arity: usize) -> Option<usize> {
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
    fn keys(
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
                        .and_then(|g| self.globals[g].keys.get(i).copied())
                        .unwrap_or(Ty::Unknown);
                    let (expr, ty) = self.typed(key, want);
                    if ty == Ty::Stats {
                        self.error(key.span, "invalid use of a statistic as an array key", None);
                    }
                    if let Some(g) = g
                        && let Some(slot) = self.globals[g].keys.get_mut(i)
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

    // ---- statements ----

    fn block(&mut self, block: &'a ast::Block) -> Vec<ir::Stmt> {
        let mut out = Vec::new();
        for stmt in &block.stmts {
            out.extend(self.stmt(stmt));
        }
        out
    }

    fn stmt_block(&mut self, stmt: &'a Stmt) -> Vec<ir::Stmt> {
        match &stmt.kind {
            StmtKind::Block(block) => self.block(block),
            _ => self.stmt(stmt),
        }
    }

    fn stmt(&mut self, stmt: &'a Stmt) -> Vec<ir::Stmt> {
        if self.skip.contains(&address(stmt)) {
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
                let Some(f) = self.function else {
                    self.error(
                        stmt.span,
                        "return is only allowed in functions",
                        Some("use `next` to leave a probe handler"),
                    );
                    return Vec::new();
                };
                match value {
                    Some(value) => {
                        let want = self.functions[f].ret;
                        let (expr, ty) = self.typed(value, want);
                        if ty == Ty::Stats {
                            self.error(
                                value.span,
                                "invalid use of a statistic as a return value",
                                None,
                            );
                        }
                        let func = &mut self.functions[f];
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
    fn expr_stmt(&mut self, e: &'a Expr) -> Vec<ir::Stmt> {
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
    fn void_expr(&mut self, e: &'a Expr) -> ir::Expr {
        match &e.kind {
            ExprKind::Call { name, args } => self.call(e, name, args, Ty::Unknown, true).0,
            _ => self.typed(e, Ty::Unknown).0,
        }
    }

    fn foreach(&mut self, f: &'a ast::Foreach, span: Span) -> Vec<ir::Stmt> {
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
                    let want = self.globals[g].keys.get(i).copied().unwrap_or(Ty::Unknown);
                    if let Some(local) = self.key_local(key, want) {
                        let ty = self.local_ty(local, Ty::Unknown);
                        if let Some(slot) = self.globals[g].keys.get_mut(i) {
                            refine(slot, ty, &mut self.changed);
                        }
                        keys.push(local);
                    }
                }
                let value_ty = self.globals[g].ty;
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
                    refine(&mut self.globals[g].ty, ty, &mut self.changed);
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
                        let aggregate = if self.globals[g].ty == Ty::Stats {
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
    fn key_local(&mut self, key: &ast::Ident, want: Ty) -> Option<u32> {
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

    fn delete_target(&mut self, e: &'a Expr) -> Option<ir::LValue> {
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
    fn lvalue(&mut self, e: &'a Expr, want: Ty) -> Option<(ir::LValue, Ty)> {
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
                self.error(
                    e.span,
                    format!("writing target variable '{}' is not supported by the tracefs back end", print_expr(e)),
                    Some("ftrace events only read kernel memory; copy the value into a local and change that"),
                );
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
    fn stat_lvalue(&mut self, e: &'a Expr) -> Option<ir::LValue> {
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

    // ---- expressions ----

    /// An expression that must have type `want` (when known).
    fn typed(&mut self, e: &'a Expr, want: Ty) -> (ir::Expr, Ty) {
        let (expr, ty) = self.expr(e, want);
        if want != Ty::Unknown && ty != Ty::Unknown && ty != want {
            self.error(
                e.span,
                format!(
                    "type mismatch ({} vs. {}){}",
                    want.name(),
                    ty.name(),
                    describe(e)
                ),
                None,
            );
        }
        (expr, ty)
    }

    fn expr(&mut self, e: &'a Expr, want: Ty) -> (ir::Expr, Ty) {
        let bad = (ir::Expr::Long(0), Ty::Unknown);
        match &e.kind {
            ExprKind::Number(n) => (ir::Expr::Long(*n), Ty::Long),
            ExprKind::String(s) => (ir::Expr::Str(decode_escapes(s)), Ty::Str),
            ExprKind::Ident(name) => {
                match self.var(name, e.span) {
                    Var::Local(i) => {
                        let ty = self.local_ty(i, want);
                        (ir::Expr::Local(i), ty)
                    }
                    Var::Global(g) => {
                        if !self.arity(g, 0, e.span) {
                            return bad;
                        }
                        let ty = self.global_ty(g, want);
                        if ty == Ty::Stats {
                            self.error(e.span, format!("invalid use of statistic '{name}'"), Some("read it with @count, @sum, @min, @max, @avg or print @hist_log"));
                            return bad;
                        }
                        (ir::Expr::Global(self.gix(g)), ty)
                    }
                }
            }
            ExprKind::Embedded(_) => {
                self.error(
                    e.span,
                    "embedded C is not supported",
                    Some("the tracefs back end runs no C code"),
                );
                bad
            }
            ExprKind::Target(target) => {
                if !self.check_target(target, e.span) {
                    return (ir::Expr::Long(0), Ty::Long);
                }
                let location = self.at(e.span);
                if self.is_char_array(target) {
                    let slot = self.fetch(FetchRequest::String {
                        target: (**target).clone(),
                        user: false,
                        max_len: None,
                        text: print_expr(e),
                        location,
                    });
                    return (ir::Expr::Fetch(slot), Ty::Str);
                }
                let slot = self.fetch(FetchRequest::Value {
                    target: (**target).clone(),
                    text: print_expr(e),
                    location,
                });
                (ir::Expr::Fetch(slot), Ty::Long)
            }
            ExprKind::Call { name, args } => self.call(e, name, args, want, false),
            ExprKind::Hist(_) => {
                self.error(
                    e.span,
                    "a histogram can only be printed (print, println, sprint, sprintln)",
                    None,
                );
                bad
            }
            ExprKind::Index { base, keys } => match base {
                Indexable::Name(name) => {
                    let Some(g) = self.array(name, keys.len()) else {
                        return bad;
                    };
                    let keys = self.keys(Some(g), keys, false);
                    let ty = self.global_ty(g, want);
                    if ty == Ty::Stats {
                        self.error(
                            e.span,
                            format!("invalid use of statistics array '{}'", name.name),
                            Some("read an element with @count(a[k]) and friends"),
                        );
                        return bad;
                    }
                    (
                        ir::Expr::Index {
                            array: self.gix(g),
                            keys: keys.into_iter().flatten().collect(),
                        },
                        ty,
                    )
                }
                Indexable::Hist(h) => {
                    let stat = self.stat_lvalue(&h.stat);
                    if keys.len() != 1 {
                        self.error(
                            e.span,
                            "a histogram takes exactly one index: its bucket",
                            None,
                        );
                    }
                    let bucket = match keys.first() {
                        Some(Some(k)) => self.typed(k, Ty::Long).0,
                        _ => ir::Expr::Long(0),
                    };
                    match stat {
                        Some(stat) => (
                            ir::Expr::HistBucket {
                                spec: hist_spec(h.kind),
                                stat: Box::new(stat),
                                bucket: Box::new(bucket),
                            },
                            Ty::Long,
                        ),
                        None => bad,
                    }
                }
            },
            ExprKind::Unary { op, operand } => {
                let (operand, _) = self.typed(operand, Ty::Long);
                let op = match op {
                    ast::UnaryOp::Plus => return (operand, Ty::Long),
                    ast::UnaryOp::Neg => ir::UnaryOp::Neg,
                    ast::UnaryOp::Not => ir::UnaryOp::Not,
                    ast::UnaryOp::BitNot => ir::UnaryOp::BitNot,
                };
                (
                    ir::Expr::Unary {
                        op,
                        operand: Box::new(operand),
                    },
                    Ty::Long,
                )
            }
            ExprKind::Crement {
                increment,
                prefix,
                operand,
            } => {
                let Some((target, ty)) = self.lvalue(operand, Ty::Long) else {
                    return (ir::Expr::Long(0), Ty::Long);
                };
                if ty != Ty::Long && ty != Ty::Unknown {
                    self.error(
                        e.span,
                        format!(
                            "type mismatch (long vs. {}): '{}'",
                            ty.name(),
                            print_expr(operand)
                        ),
                        None,
                    );
                }
                (
                    ir::Expr::Crement {
                        target: Box::new(target),
                        increment: *increment,
                        prefix: *prefix,
                        loc: self.loc(e.span),
                    },
                    Ty::Long,
                )
            }
            ExprKind::Binary { op, lhs, rhs } => self.binary(e, *op, lhs, rhs),
            ExprKind::Regex {
                negated,
                lhs,
                pattern,
            } => {
                let (operand, _) = self.typed(lhs, Ty::Str);
                (
                    ir::Expr::Regex {
                        negated: *negated,
                        operand: Box::new(operand),
                        pattern: decode_escapes(pattern),
                    },
                    Ty::Long,
                )
            }
            ExprKind::In { keys, array } => match array {
                Indexable::Name(name) => {
                    let Some(g) = self.array(name, keys.len()) else {
                        return (ir::Expr::Long(0), Ty::Long);
                    };
                    let keys = self.keys(Some(g), keys, true);
                    (
                        ir::Expr::In {
                            array: self.gix(g),
                            keys,
                        },
                        Ty::Long,
                    )
                }
                Indexable::Hist(_) => {
                    self.error(e.span, "'in' needs an array, not a histogram", None);
                    bad
                }
            },
            ExprKind::Ternary {
                cond,
                then,
                otherwise,
            } => {
                let (cond, _) = self.typed(cond, Ty::Long);
                let (mut t, mut tt) = self.typed(then, want);
                let (o, ot) = self.typed(otherwise, if want == Ty::Unknown { tt } else { want });
                if tt == Ty::Unknown && ot != Ty::Unknown {
                    (t, tt) = self.typed(then, ot);
                }
                let ty = if tt == Ty::Unknown { ot } else { tt };
                (
                    ir::Expr::Ternary {
                        cond: Box::new(cond),
                        then: Box::new(t),
                        otherwise: Box::new(o),
                    },
                    ty,
                )
            }
            ExprKind::Assign { op, lhs, rhs } => self.assign(e, *op, lhs, rhs, want),
            ExprKind::Stat {
                op,
                operand,
                params,
            } => {
                let stat = self.stat_lvalue(operand);
                let param = params.first().copied().unwrap_or(0);
                match stat {
                    Some(stat) => (
                        ir::Expr::Stat {
                            op: stat_op(*op),
                            stat: Box::new(stat),
                            param,
                            loc: self.loc(e.span),
                        },
                        Ty::Long,
                    ),
                    None => (ir::Expr::Long(0), Ty::Long),
                }
            }
            ExprKind::Defined(inner) => match &inner.kind {
                ExprKind::Target(target) => {
                    if !self.check_target(target, inner.span) {
                        return (ir::Expr::Long(0), Ty::Long);
                    }
                    let slot = self.fetch(FetchRequest::Defined {
                        target: (**target).clone(),
                        text: print_expr(inner),
                    });
                    (ir::Expr::Fetch(slot), Ty::Long)
                }
                _ => (ir::Expr::Long(1), Ty::Long),
            },
            ExprKind::Entry(_) => {
                self.error(e.span, "@entry is not supported by the tracefs back end yet", Some("read the value in a probe on the function's entry and keep it in a global array keyed by tid()"));
                (ir::Expr::Long(0), Ty::Long)
            }
            ExprKind::Const(_)
            | ExprKind::Probewrite(_)
            | ExprKind::Perf(_)
            | ExprKind::Register { .. }
            | ExprKind::Deref { .. } => {
                self.error(
                    e.span,
                    format!(
                        "'{}' is not supported by the tracefs back end",
                        print_expr(e)
                    ),
                    None,
                );
                bad
            }
        }
    }

    fn binary(&mut self, e: &'a Expr, op: BinOp, lhs: &'a Expr, rhs: &'a Expr) -> (ir::Expr, Ty) {
        let arith = match op {
            BinOp::OrOr | BinOp::AndAnd => {
                let (l, _) = self.typed(lhs, Ty::Long);
                let (r, _) = self.typed(rhs, Ty::Long);
                let (l, r) = (Box::new(l), Box::new(r));
                return (
                    if op == BinOp::OrOr {
                        ir::Expr::Or(l, r)
                    } else {
                        ir::Expr::And(l, r)
                    },
                    Ty::Long,
                );
            }
            BinOp::Eq | BinOp::Ne | BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => {
                let (mut l, mut lt) = self.typed(lhs, Ty::Unknown);
                let (r, rt) = self.typed(rhs, lt);
                if lt == Ty::Unknown && rt != Ty::Unknown {
                    (l, lt) = self.typed(lhs, rt);
                }
                let cmp = match op {
                    BinOp::Eq => ir::CompareOp::Eq,
                    BinOp::Ne => ir::CompareOp::Ne,
                    BinOp::Lt => ir::CompareOp::Lt,
                    BinOp::Le => ir::CompareOp::Le,
                    BinOp::Gt => ir::CompareOp::Gt,
                    _ => ir::CompareOp::Ge,
                };
                let (lhs, rhs) = (Box::new(l), Box::new(r));
                if lt == Ty::Stats || rt == Ty::Stats {
                    self.error(
                        e.span,
                        format!("invalid use of a statistic with '{}'", op.as_str()),
                        None,
                    );
                }
                return (
                    if lt == Ty::Str {
                        ir::Expr::CompareStr { op: cmp, lhs, rhs }
                    } else {
                        ir::Expr::CompareLong { op: cmp, lhs, rhs }
                    },
                    Ty::Long,
                );
            }
            BinOp::Concat => {
                let (l, _) = self.typed(lhs, Ty::Str);
                let (r, _) = self.typed(rhs, Ty::Str);
                return (ir::Expr::Concat(Box::new(l), Box::new(r)), Ty::Str);
            }
            BinOp::BitOr => ir::BinaryOp::BitOr,
            BinOp::BitXor => ir::BinaryOp::BitXor,
            BinOp::BitAnd => ir::BinaryOp::BitAnd,
            BinOp::Shl => ir::BinaryOp::Shl,
            BinOp::Shr => ir::BinaryOp::Shr,
            BinOp::UShr => ir::BinaryOp::UShr,
            BinOp::Add => ir::BinaryOp::Add,
            BinOp::Sub => ir::BinaryOp::Sub,
            BinOp::Mul => ir::BinaryOp::Mul,
            BinOp::Div => ir::BinaryOp::Div,
            BinOp::Mod => ir::BinaryOp::Mod,
        };
        let (l, _) = self.typed(lhs, Ty::Long);
        let (r, _) = self.typed(rhs, Ty::Long);
        (
            ir::Expr::Binary {
                op: arith,
                lhs: Box::new(l),
                rhs: Box::new(r),
                loc: self.loc(e.span),
            },
            Ty::Long,
        )
    }

    fn assign(
        &mut self,
        e: &'a Expr,
        op: AssignOp,
        lhs: &'a Expr,
        rhs: &'a Expr,
        want: Ty,
    ) -> (ir::Expr, Ty) {
        let (binary, concat, operand_ty) = match op {
            AssignOp::Assign => (None, false, Ty::Unknown),
            AssignOp::Aggregate => {
                self.error(e.span, "'<<<' has no value: use it as a statement", None);
                return (ir::Expr::Long(0), Ty::Unknown);
            }
            AssignOp::Concat => (None, true, Ty::Str),
            AssignOp::Add => (Some(ir::BinaryOp::Add), false, Ty::Long),
            AssignOp::Sub => (Some(ir::BinaryOp::Sub), false, Ty::Long),
            AssignOp::Mul => (Some(ir::BinaryOp::Mul), false, Ty::Long),
            AssignOp::Div => (Some(ir::BinaryOp::Div), false, Ty::Long),
            AssignOp::Mod => (Some(ir::BinaryOp::Mod), false, Ty::Long),
            AssignOp::Shl => (Some(ir::BinaryOp::Shl), false, Ty::Long),
            AssignOp::Shr => (Some(ir::BinaryOp::Shr), false, Ty::Long),
            AssignOp::And => (Some(ir::BinaryOp::BitAnd), false, Ty::Long),
            AssignOp::Xor => (Some(ir::BinaryOp::BitXor), false, Ty::Long),
            AssignOp::Or => (Some(ir::BinaryOp::BitOr), false, Ty::Long),
        };
        let first = if operand_ty == Ty::Unknown {
            want
        } else {
            operand_ty
        };
        let Some((mut target, mut lt)) = self.lvalue(lhs, first) else {
            let (_, ty) = self.typed(rhs, operand_ty);
            return (ir::Expr::Long(0), ty);
        };
        let (value, rt) = self.expr(rhs, if lt == Ty::Unknown { operand_ty } else { lt });
        if lt == Ty::Unknown
            && rt != Ty::Unknown
            && let Some((t, ty)) = self.lvalue(lhs, rt)
        {
            (target, lt) = (t, ty);
        }
        if rt == Ty::Stats {
            self.error(rhs.span, "invalid use of a statistic as a value", None);
        }
        if lt != Ty::Unknown && rt != Ty::Unknown && lt != rt {
            self.error(
                lhs.span,
                format!(
                    "type mismatch ({} vs. {}){}",
                    lt.name(),
                    rt.name(),
                    describe(lhs)
                ),
                None,
            );
        }
        (
            ir::Expr::Assign {
                target: Box::new(target),
                op: binary,
                concat,
                value: Box::new(value),
                loc: self.loc(e.span),
            },
            lt,
        )
    }

    // ---- calls ----

    fn call(
        &mut self,
        e: &'a Expr,
        name: &str,
        args: &'a [Expr],
        want: Ty,
        void_ok: bool,
    ) -> (ir::Expr, Ty) {
        let void = (ir::Expr::Long(0), Ty::Unknown);
        match name {
            "print" | "println" | "sprint" | "sprintln" => {
                let builtin = match name {
                    "print" => ir::Builtin::Print,
                    "println" => ir::Builtin::Println,
                    "sprint" => ir::Builtin::Sprint,
                    _ => ir::Builtin::Sprintln,
                };
                let mut out = Vec::new();
                for arg in args {
                    if let ExprKind::Hist(h) = &arg.kind {
                        if let Some(stat) = self.stat_lvalue(&h.stat) {
                            out.push(ir::Expr::Hist {
                                spec: hist_spec(h.kind),
                                stat: Box::new(stat),
                            });
                        }
                        continue;
                    }
                    let (expr, ty) = self.typed(arg, Ty::Unknown);
                    out.push(match ty {
                        Ty::Long => ir::Expr::LongToStr(Box::new(expr)),
                        _ => expr,
                    });
                }
                let to_string = name.starts_with('s');
                let expr = ir::Expr::Builtin {
                    builtin,
                    args: out,
                    loc: self.loc(e.span),
                };
                return self.returning(e, name, expr, to_string.then_some(Ty::Str), void_ok);
            }
            "printf" | "sprintf" => {
                let to_string = name == "sprintf";
                let Some((format_arg, rest)) = args.split_first() else {
                    self.error(e.span, format!("{name} needs a format string"), None);
                    return void;
                };
                let ExprKind::String(raw) = &format_arg.kind else {
                    self.error(
                        format_arg.span,
                        format!("the format of {name} must be a literal string"),
                        None,
                    );
                    return void;
                };
                let format = match parse_format(&decode_escapes(raw)) {
                    Ok(format) => format,
                    Err(message) => {
                        self.error(
                            format_arg.span,
                            format!("{message} in the format of {name}"),
                            None,
                        );
                        return void;
                    }
                };
                if format.args.len() != rest.len() {
                    self.error(
                        e.span,
                        format!(
                            "wrong number of arguments to {name}: the format takes {}, {} given",
                            format.args.len(),
                            rest.len()
                        ),
                        None,
                    );
                }
                let mut out = Vec::new();
                for (i, arg) in rest.iter().enumerate() {
                    let want = format.args.get(i).copied().map_or(Ty::Unknown, Ty::of);
                    out.push(self.typed(arg, want).0);
                }
                let expr = ir::Expr::Printf {
                    to_string,
                    format: format.specs,
                    args: out,
                };
                return self.returning(e, name, expr, to_string.then_some(Ty::Str), void_ok);
            }
            _ => {}
        }
        if let Some((user, sized, quoted)) = string_fetch(name) {
            return self.string_fetch(e, name, args, user, sized, quoted);
        }
        let candidates = self.find_functions(name);
        if let Some(&f) = candidates
            .iter()
            .find(|&&f| self.functions[f].def.params.len() == args.len())
        {
            // The runtime implements its builtins itself: a tapset's
            // definition of one (embedded C, or a script wrapper that ends
            // in embedded C, as Debian's context tapsets are) gives way to
            // it. The script's own definition wins.
            if let Some(sig) = builtin(name)
                && !self.functions[f].script
            {
                return self.builtin_call(e, name, args, sig, void_ok);
            }
            if let ast::FunctionBody::Embedded(_) = self.functions[f].def.body {
                return match builtin(name) {
                    Some(sig) => self.builtin_call(e, name, args, sig, void_ok),
                    None => {
                        let location = self.functions[f].location.clone();
                        self.error(
                            e.span,
                            format!("embedded C is not supported: function '{name}' (defined at {location}) has a C body"),
                            Some("the tracefs back end runs no C code; use a script function or a runtime builtin"),
                        );
                        void
                    }
                };
            }
            return self.user_call(e, f, args, want, void_ok);
        }
        if let Some(&f) = candidates.first()
            && builtin(name).is_none()
        {
            let arity = self.functions[f].def.params.len();
            self.error(
                e.span,
                format!(
                    "unresolved arity-{} function: identifier '{name}' takes {arity} argument(s)",
                    args.len()
                ),
                None,
            );
            for arg in args {
                self.typed(arg, Ty::Unknown);
            }
            return void;
        }
        match builtin(name) {
            Some(sig) => self.builtin_call(e, name, args, sig, void_ok),
            None => {
                self.error(
                    e.span,
                    format!("unresolved function: identifier '{name}'"),
                    Some("define it in the script or a tapset, or check its spelling"),
                );
                for arg in args {
                    self.typed(arg, Ty::Unknown);
                }
                void
            }
        }
    }

    /// The value of a call: an error where a value is needed and there is none.
    fn returning(
        &mut self,
        e: &'a Expr,
        name: &str,
        expr: ir::Expr,
        ret: Option<Ty>,
        void_ok: bool,
    ) -> (ir::Expr, Ty) {
        match ret {
            Some(ty) => (expr, ty),
            None => {
                if !void_ok {
                    self.error(
                        e.span,
                        format!("function '{name}' returns no value"),
                        Some("call it as a statement"),
                    );
                }
                (expr, Ty::Unknown)
            }
        }
    }

    fn builtin_call(
        &mut self,
        e: &'a Expr,
        name: &str,
        args: &'a [Expr],
        sig: crate::builtins::Signature,
        void_ok: bool,
    ) -> (ir::Expr, Ty) {
        if args.len() != sig.params.len() {
            self.error(
                e.span,
                format!(
                    "unresolved arity-{} function: identifier '{name}' takes {} argument(s)",
                    args.len(),
                    sig.params.len()
                ),
                None,
            );
        }
        let mut out = Vec::new();
        for (i, arg) in args.iter().enumerate() {
            let want = sig.params.get(i).copied().map_or(Ty::Unknown, Ty::of);
            out.push(self.typed(arg, want).0);
        }
        let expr = ir::Expr::Builtin {
            builtin: sig.builtin,
            args: out,
            loc: self.loc(e.span),
        };
        self.returning(e, name, expr, sig.ret.map(Ty::of), void_ok)
    }

    fn user_call(
        &mut self,
        e: &'a Expr,
        f: usize,
        args: &'a [Expr],
        want: Ty,
        void_ok: bool,
    ) -> (ir::Expr, Ty) {
        if self.functions[f].reached.is_none() {
            self.functions[f].reached = Some(u32::try_from(self.reach_order.len()).unwrap_or(0));
            self.reach_order.push(f);
            self.changed = true;
        }
        // A recursive call: the function's locals are the ones being walked.
        let recursive = self.function == Some(f);
        let mut out = Vec::new();
        for (i, arg) in args.iter().enumerate() {
            let params = if recursive {
                &self.locals
            } else {
                &self.functions[f].locals
            };
            let param = params.get(i).map_or(Ty::Unknown, |l| l.ty);
            let (expr, ty) = self.typed(arg, param);
            if ty == Ty::Stats {
                self.error(arg.span, "invalid use of a statistic as an argument", None);
            }
            let params = if recursive {
                &mut self.locals
            } else {
                &mut self.functions[f].locals
            };
            if let Some(local) = params.get_mut(i) {
                refine(&mut local.ty, ty, &mut self.changed);
            }
            out.push(expr);
        }
        let func = &mut self.functions[f];
        let name = func.name.clone();
        let ret = if func.returns_value {
            Some(refine(&mut func.ret, want, &mut self.changed))
        } else {
            None
        };
        let expr = ir::Expr::Call {
            function: func.reached.unwrap_or(0),
            args: out,
            loc: self.loc(e.span),
        };
        self.returning(e, &name, expr, ret, void_ok)
    }

    fn string_fetch(
        &mut self,
        e: &'a Expr,
        name: &str,
        args: &'a [Expr],
        user: bool,
        sized: bool,
        quoted: bool,
    ) -> (ir::Expr, Ty) {
        let fallback = (ir::Expr::Str(String::new()), Ty::Str);
        let expected = if sized { 2 } else { 1 };
        if args.len() != expected {
            self.error(e.span, format!("unresolved arity-{} function: identifier '{name}' takes {expected} argument(s)", args.len()), None);
            return fallback;
        }
        let max_len = if sized {
            match args.get(1).map(|a| &a.kind) {
                Some(ExprKind::Number(n)) => Some(*n),
                _ => {
                    self.error(args[1].span, format!("the length given to {name} must be a number literal for the tracefs back end"), None);
                    return fallback;
                }
            }
        } else {
            None
        };
        let arg = &args[0];
        let ExprKind::Target(target) = &arg.kind else {
            self.typed(arg, Ty::Long);
            self.error(
                arg.span,
                format!("{name} of a computed address '{}' is not supported by the tracefs back end", print_expr(arg)),
                Some("the kernel event reads the string; pass a target expression such as $filename or $file->f_path->dentry->d_name->name directly"),
            );
            return fallback;
        };
        if !self.check_target(target, arg.span) {
            return fallback;
        }
        let location = self.at(arg.span);
        let slot = self.fetch(FetchRequest::String {
            target: (**target).clone(),
            user,
            max_len,
            text: print_expr(arg),
            location,
        });
        let fetched = ir::Expr::Fetch(slot);
        if quoted {
            (
                ir::Expr::Builtin {
                    builtin: ir::Builtin::StringQuoted,
                    args: vec![fetched],
                    loc: self.loc(e.span),
                },
                Ty::Str,
            )
        } else {
            (fetched, Ty::Str)
        }
    }

    // ---- target expressions ----

    /// Whether the back end can fetch this target expression; an error if not.
    fn check_target(&mut self, target: &ast::Target, span: Span) -> bool {
        if let Some(f) = self.function {
            let name = self.functions[f].name.clone();
            if let TargetBase::Var(var) = &target.base {
                self.error(
                    span,
                    format!("target variable '{var}' in function '{name}': target variables are only available in probe handlers"),
                    Some("pass the value to the function as an argument"),
                );
            } else {
                self.error(
                    span,
                    format!("reading kernel memory at a computed address (in function '{name}') is not supported by the tracefs back end"),
                    Some("only a probe's own target expressions can be fetched: read the value in the probe handler"),
                );
            }
            return false;
        }
        if !self.event {
            self.error(
                span,
                "target variables are only available in probes on kernel events, not in begin, end, error or timer probes",
                None,
            );
            return false;
        }
        let hint_pretty = "print the members you need with printf";
        match &target.base {
            TargetBase::Var(name) if name.starts_with("$$") => {
                self.error(
                    span,
                    format!("'{name}' pretty-printing is not supported by the tracefs back end"),
                    Some(hint_pretty),
                );
                return false;
            }
            TargetBase::Var(_) => {}
            TargetBase::Cast { operand, .. } => match &operand.kind {
                ExprKind::Number(_) => {}
                ExprKind::Target(inner) => {
                    if !self.check_target(inner, operand.span) {
                        return false;
                    }
                }
                _ => {
                    self.error(span, format!("@cast of a computed address '{}' is not supported by the tracefs back end", print_expr(operand)), Some("cast a target expression directly: @cast($task, \"task_struct\")->pid"));
                    return false;
                }
            },
            TargetBase::AtVar { name, .. } => {
                self.error(span, format!("@var(\"{name}\") needs DWARF debuginfo and is not supported by the tracefs back end"), None);
                return false;
            }
            TargetBase::Autocast(operand) => {
                self.error(
                    span,
                    format!(
                        "'->' on the computed value '{}' is not supported by the tracefs back end",
                        print_expr(operand)
                    ),
                    Some("use ->member on a target expression, or @cast on one"),
                );
                return false;
            }
        }
        for component in &target.components {
            match component {
                TargetComponent::Member(_) => {}
                TargetComponent::Index(index) => {
                    if !matches!(index.kind, ExprKind::Number(_)) {
                        self.error(index.span, format!("the array index '{}' of a target expression must be a number for the tracefs back end", print_expr(index)), None);
                        return false;
                    }
                }
                TargetComponent::Pretty(_) => {
                    self.error(
                        span,
                        "'$'/'$$' pretty-printing is not supported by the tracefs back end",
                        Some(hint_pretty),
                    );
                    return false;
                }
            }
        }
        true
    }

    /// Whether a target expression is a `char[]` member or field at the
    /// probe's first attach point: its value is then the string it holds.
    fn is_char_array(&self, target: &ast::Target) -> bool {
        if target.address_of {
            return false;
        }
        let Some(point) = self.attach.first() else {
            return false;
        };
        resolve_target(self.facts, point, target).is_ok_and(|access| {
            let c_type = access.var.c_type.trim_start_matches("const ");
            c_type.starts_with("char") && c_type.ends_with(']')
        })
    }

    /// The slot of a fetch request in the current probe (shared when equal).
    fn fetch(&mut self, request: FetchRequest) -> u32 {
        let key = match &request {
            FetchRequest::Value { text, .. } => format!("v:{text}"),
            FetchRequest::String {
                text,
                user,
                max_len,
                ..
            } => format!("s:{user}:{max_len:?}:{text}"),
            FetchRequest::Defined { text, .. } => format!("d:{text}"),
        };
        let index = match self.fetch_keys.iter().position(|k| *k == key) {
            Some(index) => index,
            None => {
                self.fetch_keys.push(key);
                self.fetches.push(request);
                self.fetches.len() - 1
            }
        };
        u32::try_from(index).unwrap_or(u32::MAX)
    }
}

/// A statement's identity while elaborating (ASTs do not move).
fn address(stmt: &Stmt) -> usize {
    std::ptr::from_ref(stmt) as usize
}

/// Records the names an expression reads (the target of a plain `=` is
/// written, not read).
fn expr_reads<'a>(e: &'a Expr, read: &mut HashSet<&'a str>) {
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
fn stmt_reads<'a>(stmt: &'a Stmt, skip: &HashSet<usize>, read: &mut HashSet<&'a str>) {
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

/// How an error names an expression: `: identifier 'x'`.
fn describe(e: &Expr) -> String {
    match &e.kind {
        ExprKind::Ident(name) => format!(": identifier '{name}'"),
        ExprKind::Call { name, .. } => format!(": function '{name}'"),
        _ => format!(": '{}'", print_expr(e)),
    }
}

fn hist_spec(kind: ast::HistKind) -> ir::HistSpec {
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

fn stat_op(op: ast::StatOp) -> ir::StatOp {
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
fn lvalue_expr(lvalue: ir::LValue) -> ir::Expr {
    match lvalue {
        ir::LValue::Local(i) => ir::Expr::Local(i),
        ir::LValue::Global(g) => ir::Expr::Global(g),
        ir::LValue::Index { array, keys, .. } => ir::Expr::Index {
            array,
            keys: keys.into_iter().flatten().collect(),
        },
    }
}

/// `timer.UNIT(N)[.randomize(M)]` as a probe kind.
fn timer_kind(point: &tapmatrix_resolve::ProbePoint) -> Result<ir::ProbeKind, String> {
    let unit = point.components.get(1).ok_or("a timer needs a unit")?;
    if unit.name == "profile" {
        return Err("timer.profile is not supported by the tracefs back end".to_owned());
    }
    let number = |c: &tapmatrix_resolve::Component| match c.arg {
        Some(Arg::Number(n)) if n > 0 => u64::try_from(n).ok(),
        _ => None,
    };
    let n = number(unit).ok_or("a timer needs a positive number")?;
    let scale: u64 = match unit.name.as_str() {
        "s" | "sec" => 1_000_000_000,
        "ms" | "msec" => 1_000_000,
        "us" | "usec" => 1_000,
        "ns" | "nsec" => 1,
        "hz" => {
            let period = 1_000_000_000 / n;
            let randomize = match point.components.get(2) {
                Some(r) => number(r).ok_or("randomize needs a positive number")? * period,
                None => 0,
            };
            return Ok(ir::ProbeKind::Timer {
                period_ns: period,
                randomize_ns: randomize,
            });
        }
        other => {
            return Err(format!(
                "timer.{other} is not supported by the tracefs back end"
            ));
        }
    };
    let randomize = match point.components.get(2) {
        Some(r) => number(r)
            .ok_or("randomize needs a positive number")?
            .saturating_mul(scale),
        None => 0,
    };
    Ok(ir::ProbeKind::Timer {
        period_ns: n.saturating_mul(scale),
        randomize_ns: randomize,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(text: &str) -> tapmatrix_resolve::ProbePoint {
        tapmatrix_resolve::ProbePoint::parse(text).unwrap()
    }

    #[test]
    fn timers_convert_to_nanoseconds() {
        assert_eq!(
            timer_kind(&point("timer.ms(250).randomize(10)")),
            Ok(ir::ProbeKind::Timer {
                period_ns: 250_000_000,
                randomize_ns: 10_000_000
            })
        );
        assert_eq!(
            timer_kind(&point("timer.hz(100)")),
            Ok(ir::ProbeKind::Timer {
                period_ns: 10_000_000,
                randomize_ns: 0
            })
        );
        assert!(
            timer_kind(&point("timer.profile"))
                .unwrap_err()
                .contains("profile")
        );
        assert!(
            timer_kind(&point("timer.jiffies(5)"))
                .unwrap_err()
                .contains("jiffies")
        );
    }

    #[test]
    fn types_refine_once_and_record_the_change() {
        let mut changed = false;
        let mut slot = Ty::Unknown;
        assert_eq!(refine(&mut slot, Ty::Unknown, &mut changed), Ty::Unknown);
        assert!(!changed);
        assert_eq!(refine(&mut slot, Ty::Str, &mut changed), Ty::Str);
        assert!(changed);
        changed = false;
        assert_eq!(refine(&mut slot, Ty::Long, &mut changed), Ty::Str);
        assert!(!changed);
    }
}
