//! The elaborator: derived probes, symbol tables, type inference to a
//! fixed point, and lowering to the IR.
//!
//! One walker does both inference and lowering: it runs over every derived
//! probe and every reachable function until no type changes and no new
//! function becomes reachable, then once more to report errors and keep the
//! IR it builds (with every type then known).

mod call;
mod consts;
mod context;
mod derive;
mod elide;
mod expr;
mod stmt;
mod symbols;
mod target;
mod warn;

use std::collections::{HashMap, HashSet};

use tapmatrix_facts::KernelFacts;
use tapmatrix_ir as ir;
use tapmatrix_resolve::{AttachPoint, Library, resolve_target_as};
use tapmatrix_syntax::Span;
use tapmatrix_syntax::ast::{self, Expr, Item};

use crate::error::{ElaborateError, ElaborateErrors, ElaborateWarning};
use crate::prune::prune_probe;
use crate::{Capabilities, Elaborated, FetchRequest, Options, ProbeSite};

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
    /// It first appears in the script's own files (SystemTap warns about
    /// those only).
    script: bool,
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
    /// The tapset directory of its file ([`tapmatrix_resolve::ParsedFile::layer`]).
    layer: usize,
    def: &'a ast::Function,
    location: String,
    ret: Ty,
    returns_value: bool,
    locals: Vec<Local>,
    /// Its index in the program once reachable.
    reached: Option<u32>,
    /// A script body built on C tapmatrix cannot run (`%{ %}` that is not a
    /// known constant, `@const` of a name it has no value for); looked at
    /// only when another function of the same name competes with it.
    uses_c: std::cell::OnceCell<bool>,
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
    /// The entry half of a return probe that reads `@entry` values (kept
    /// between passes for its locals' types).
    entry: Option<Box<EntryHalf>>,
    /// The variables the probe's own body (not its aliases') writes:
    /// where `@probewrite(v)` is true.
    writes: HashSet<String>,
}

/// The entry half of a return probe: a probe on the function's entry that
/// evaluates the return probe's `@entry(...)` expressions and saves them.
#[derive(Debug)]
struct EntryHalf {
    /// Its body: the return probe's attach points, as function entries.
    body: Body,
    /// The saved expressions, typed, in [`ir::Expr::EntryValue`] order.
    values: Vec<(ir::Expr, Ty)>,
    /// Each one as written (equal expressions share a value).
    keys: Vec<String>,
}

impl EntryHalf {
    /// The entry half of the return probe being walked in `ret`.
    fn of(ret: &Body) -> EntryHalf {
        EntryHalf {
            body: Body {
                file: ret.file,
                attach: ret.attach.iter().filter_map(AttachPoint::entry).collect(),
                event: true,
                ..Body::default()
            },
            values: Vec::new(),
            keys: Vec::new(),
        }
    }

    /// Ready for another pass: its values and fetches are made again.
    fn restart(&mut self) {
        self.values.clear();
        self.keys.clear();
        self.body.fetches.clear();
        self.body.fetch_keys.clear();
    }
}

/// One derived probe lowered: its program probe, its fetch requests, and
/// its entry half if it reads `@entry` values.
struct Lowered {
    probe: ir::Probe,
    fetches: Vec<FetchRequest>,
    entry: Option<(ir::Probe, Vec<FetchRequest>, Vec<AttachPoint>)>,
}

/// What a name means where it is used.
#[derive(Debug, Clone, Copy)]
enum Var {
    Local(u32),
    Global(usize),
}

/// The elaborator's state for one script and kernel: the symbol tables,
/// the body being walked, and the outcome of the walk so far.
struct Elab<'a> {
    lib: &'a Library,
    facts: &'a KernelFacts,
    /// What the back end can serve on this kernel.
    caps: &'a Capabilities,
    /// The command line's switches.
    options: &'a Options,
    /// Source file names of the program, indexed by `ir::Loc::file`.
    files: Vec<String>,
    sym: Symbols<'a>,
    body: Body,
    /// A type changed (or a function became reachable) in this pass.
    changed: bool,
    /// This is the last pass: errors are reported.
    report: bool,
    errors: Vec<ElaborateError>,
    /// Warnings about the script's own files, each once.
    warnings: Vec<ElaborateWarning>,
    /// `@const` names looked up in the kernel's BTF.
    consts: consts::Cache,
}

/// Every global and function of the script and its tapsets.
struct Symbols<'a> {
    globals: Vec<GlobalVar<'a>>,
    globals_by_name: HashMap<&'a str, Vec<usize>>,
    functions: Vec<FuncDef<'a>>,
    functions_by_name: HashMap<&'a str, Vec<usize>>,
    /// Functions in the order they became reachable: their program order.
    reach_order: Vec<usize>,
    /// The program index of each global that is used.
    global_ir: Vec<Option<u32>>,
    /// Whether a function has no side effects (`false` while being decided).
    function_purity: HashMap<usize, bool>,
}

/// The probe handler or function body being walked.
#[derive(Debug, Default)]
struct Body {
    /// The file its code comes from (alias bodies switch it).
    file: usize,
    locals: Vec<Local>,
    /// Locals `0..params` are a function's parameters.
    params: usize,
    /// The function being walked, if it is one.
    function: Option<usize>,
    /// The attach points of the probe being walked.
    attach: Vec<AttachPoint>,
    /// The probe being walked is fed by kernel events.
    event: bool,
    /// Its fetch slots, and their keys (equal requests share a slot).
    fetches: Vec<FetchRequest>,
    fetch_keys: Vec<String>,
    /// Statements of the probe being walked that SystemTap would elide
    /// (by address).
    skip: HashSet<usize>,
    /// The entry half of the return probe being walked, once it reads an
    /// `@entry` value.
    entry: Option<Box<EntryHalf>>,
    /// The system call registers `__set_syscall_pt_regs(regs)` named: the
    /// later `*_arg(N)` of the body read the call's arguments from them.
    syscall_regs: Option<ast::Target>,
    /// What the probe's own body writes (`@probewrite`); empty in functions.
    writes: HashSet<String>,
}

/// Whether a script function's body holds C tapmatrix cannot run.
fn block_uses_c(block: &ast::Block, facts: &KernelFacts) -> bool {
    let cache = &mut consts::Cache::new();
    let mut found = false;
    for stmt in &block.stmts {
        symbols::for_each_expr(stmt, &mut |e| {
            found |= match &e.kind {
                ast::ExprKind::Embedded(code) => expr::embedded_constant(code).is_none(),
                ast::ExprKind::Const(name) => {
                    consts::value(name, facts.btf.as_ref(), cache).is_none()
                }
                _ => false,
            };
        });
    }
    found
}

/// Elaborates a library's script for one kernel.
pub(crate) fn run(
    lib: &Library,
    facts: &KernelFacts,
    caps: &Capabilities,
    options: &Options,
) -> Result<(Elaborated, Vec<ElaborateWarning>), ElaborateErrors> {
    let mut elab = Elab::new(lib, facts, caps, options);
    elab.check_duplicate_functions();
    let mut probes = elab.derive_probes(facts);
    if !options.unoptimized {
        for probe in &mut probes {
            probe.skip = elab.dead_stores(probe);
        }
    }
    let mut pulled = std::collections::HashSet::new();
    loop {
        for _ in 0..MAX_PASSES {
            elab.changed = false;
            elab.pass(&mut probes);
            if !elab.changed {
                break;
            }
        }
        let mut more = elab.derive_tapset_probes(facts, &mut pulled);
        if more.is_empty() {
            break;
        }
        if !options.unoptimized {
            for probe in &mut more {
                probe.skip = elab.dead_stores(probe);
            }
        }
        probes.extend(more);
    }
    elab.number_globals();
    elab.report = true;
    let (ir_probes, functions) = elab.pass(&mut probes);
    elab.warn_about_locals(&probes, &ir_probes, &functions);
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
    let mut entry_halves = Vec::new();
    for (index, (probe, lowered)) in probes.iter().zip(ir_probes).enumerate() {
        let Lowered {
            probe: mut ir_probe,
            mut fetches,
            entry,
        } = lowered;
        // Entry halves save under their return probe's index, and follow
        // every derived probe in the program.
        let key = u32::try_from(index).unwrap_or(u32::MAX);
        if let Some(values) = &mut ir_probe.entry {
            values.key = key;
        }
        if let Some((mut entry_probe, entry_fetches, attach)) = entry {
            for stmt in &mut entry_probe.body {
                if let ir::Stmt::EntrySave { key: saved, .. } = stmt {
                    *saved = key;
                }
            }
            entry_halves.push((entry_probe, entry_fetches, probe.leaf.clone(), attach));
        }
        prune_probe(&mut ir_probe, &mut fetches);
        program_probes.push(ir_probe);
        sites.push(site(
            facts,
            caps,
            probe.leaf.clone(),
            probe.attach.clone(),
            fetches,
        ));
    }
    for (mut entry_probe, mut fetches, point, attach) in entry_halves {
        prune_probe(&mut entry_probe, &mut fetches);
        program_probes.push(entry_probe);
        sites.push(site(facts, caps, point, attach, fetches));
    }
    elab.warn_about_globals();
    let mut warnings = elab.warnings;
    warnings.sort_by_key(|w| location_key(&w.location));
    Ok((
        Elaborated {
            program: ir::Program {
                files: elab.files,
                globals,
                functions,
                probes: program_probes,
                limits: ir::Limits::default(),
            },
            sites,
        },
        warnings,
    ))
}

/// `file:line:col` as a key that sorts lines and columns as numbers.
fn location_key(location: &str) -> (String, u32, u32) {
    let mut fields = location.rsplitn(3, ':');
    let col = fields.next().and_then(|c| c.parse().ok()).unwrap_or(0);
    let line = fields.next().and_then(|l| l.parse().ok()).unwrap_or(0);
    (fields.next().unwrap_or_default().to_owned(), line, col)
}

/// A probe's site, with every fetch resolved at every attach point.
fn site(
    facts: &KernelFacts,
    caps: &Capabilities,
    point: tapmatrix_resolve::ProbePoint,
    attach: Vec<AttachPoint>,
    fetches: Vec<FetchRequest>,
) -> ProbeSite {
    let targets = attach
        .iter()
        .map(|at| {
            fetches
                .iter()
                .map(|request| {
                    resolve_target_as(facts, at, request.target(), caps.tracepoint_names)
                })
                .collect()
        })
        .collect();
    ProbeSite {
        point,
        attach,
        fetches,
        targets,
    }
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
    fn new(
        lib: &'a Library,
        facts: &'a KernelFacts,
        caps: &'a Capabilities,
        options: &'a Options,
    ) -> Elab<'a> {
        let mut globals = Vec::new();
        let mut functions = Vec::new();
        let consts = consts::Cache::new();
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
                                script: file.script,
                            })
                            .collect();
                        functions.push(FuncDef {
                            name: f.name.clone(),
                            file: file_index,
                            script: file.script,
                            layer: file.layer,
                            def: f,
                            location: file.names.location(f.span),
                            ret: f.return_type.map_or(Ty::Unknown, Ty::of_ast),
                            returns_value: f.return_type.is_some(),
                            locals,
                            reached: None,
                            uses_c: std::cell::OnceCell::new(),
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
            caps,
            options,
            files: Vec::new(),
            sym: Symbols {
                globals,
                globals_by_name,
                functions,
                functions_by_name,
                reach_order: Vec::new(),
                global_ir,
                function_purity: HashMap::new(),
            },
            body: Body::default(),
            changed: false,
            report: false,
            errors: Vec::new(),
            warnings: Vec::new(),
            consts,
        }
    }

    // ---- places and errors ----

    fn at(&self, span: Span) -> String {
        self.lib
            .files
            .get(self.body.file)
            .map_or_else(String::new, |f| f.names.location(span))
    }

    fn loc(&mut self, span: Span) -> ir::Loc {
        let name = self
            .lib
            .files
            .get(self.body.file)
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

    /// Records a warning about `span` when it is in the script's own
    /// files (SystemTap warns about user files only), once.
    fn warn(&mut self, span: Span, message: impl Into<String>) {
        let in_script = self.lib.files.get(self.body.file).is_some_and(|f| f.script);
        if !in_script {
            return;
        }
        let warning = ElaborateWarning {
            message: message.into(),
            location: self.at(span),
        };
        if !self.warnings.contains(&warning) {
            self.warnings.push(warning);
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

    // ---- passes ----

    /// One walk over every probe and reachable function.
    #[allow(clippy::type_complexity)]
    fn pass(&mut self, probes: &mut [DerivedProbe<'a>]) -> (Vec<Lowered>, Vec<ir::Function>) {
        let mut out = Vec::new();
        for probe in probes.iter_mut() {
            out.push(self.lower_probe(probe));
        }
        let mut functions = Vec::new();
        let mut index = 0;
        while let Some(&f) = self.sym.reach_order.get(index) {
            functions.push(self.lower_function(f));
            index += 1;
        }
        (out, functions)
    }

    fn lower_probe(&mut self, probe: &mut DerivedProbe<'a>) -> Lowered {
        self.body = Body {
            locals: std::mem::take(&mut probe.locals),
            skip: std::mem::take(&mut probe.skip),
            attach: probe.attach.clone(),
            writes: probe.writes.clone(),
            event: probe.kind == ir::ProbeKind::Event,
            entry: probe.entry.take().map(|mut half| {
                half.restart();
                half
            }),
            ..Body::default()
        };
        let mut body = Vec::new();
        let mut guard: Option<ir::Expr> = None;
        for &(cond, file) in &probe.conditions {
            self.body.file = file;
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
            self.body.file = file;
            body.extend(self.block(block));
        }
        let fetches = std::mem::take(&mut self.body.fetches);
        probe.locals = std::mem::take(&mut self.body.locals);
        probe.skip = std::mem::take(&mut self.body.skip);
        let entry = self.body.entry.take().map(|mut half| {
            let values: Vec<ir::Expr> = half.values.iter().map(|(e, _)| e.clone()).collect();
            let types: Vec<ir::ScalarType> =
                half.values.iter().map(|(_, ty)| ty.scalar()).collect();
            let fetches = std::mem::take(&mut half.body.fetches);
            let entry_probe = ir::Probe {
                kind: ir::ProbeKind::Event,
                name: probe.name.clone(),
                locals: half.body.locals.iter().map(|l| l.ty.scalar()).collect(),
                fetches: fetches.iter().map(FetchRequest::ty).collect(),
                // The key is the return probe's index, set by `run`.
                body: vec![ir::Stmt::EntrySave { key: 0, values }],
                entry: None,
            };
            let attach = half.body.attach.clone();
            probe.entry = Some(half);
            (entry_probe, fetches, attach, types)
        });
        let ir_probe = ir::Probe {
            kind: probe.kind.clone(),
            name: probe.name.clone(),
            locals: probe.locals.iter().map(|l| l.ty.scalar()).collect(),
            fetches: fetches.iter().map(FetchRequest::ty).collect(),
            body,
            entry: entry.as_ref().map(|(_, _, _, types)| ir::EntryValues {
                key: 0,
                types: types.clone(),
            }),
        };
        Lowered {
            probe: ir_probe,
            fetches,
            entry: entry.map(|(probe, fetches, attach, _)| (probe, fetches, attach)),
        }
    }

    fn lower_function(&mut self, index: usize) -> ir::Function {
        let Some(f) = self.sym.functions.get_mut(index) else {
            return ir::Function {
                name: String::new(),
                params: Vec::new(),
                ret: None,
                locals: Vec::new(),
                body: Vec::new(),
            };
        };
        let def = f.def;
        self.body.locals = std::mem::take(&mut f.locals);
        self.body.file = f.file;
        self.body.params = def.params.len();
        self.body.function = Some(index);
        self.body.writes.clear();
        self.body.skip.clear();
        self.body.fetches.clear();
        self.body.fetch_keys.clear();
        let body = match &def.body {
            ast::FunctionBody::Block(block) => self.block(block),
            ast::FunctionBody::Embedded(_) => Vec::new(),
        };
        let locals = std::mem::take(&mut self.body.locals);
        self.body.function = None;
        let Some(f) = self.sym.functions.get_mut(index) else {
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
            params: f.locals[..self.body.params.min(f.locals.len())]
                .iter()
                .map(|l| l.ty.scalar())
                .collect(),
            ret: f.returns_value.then(|| f.ret.scalar()),
            locals: f.locals.iter().map(|l| l.ty.scalar()).collect(),
            body,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::derive::{Timer, timer_kind};
    use super::*;

    fn point(text: &str) -> tapmatrix_resolve::ProbePoint {
        tapmatrix_resolve::ProbePoint::parse(text).unwrap()
    }

    #[test]
    fn timers_convert_to_nanoseconds() {
        let periodic = |period_ns, randomize_ns| {
            Ok(Timer::Periodic(ir::ProbeKind::Timer {
                period_ns,
                randomize_ns,
            }))
        };
        assert_eq!(
            timer_kind(&point("timer.ms(250).randomize(10)"), 250),
            periodic(250_000_000, 10_000_000)
        );
        assert_eq!(
            timer_kind(&point("timer.hz(100)"), 250),
            periodic(10_000_000, 0)
        );
        assert_eq!(timer_kind(&point("timer.profile"), 250), Ok(Timer::Profile));
        assert_eq!(
            timer_kind(&point("timer.jiffies(5)"), 250),
            periodic(20_000_000, 0)
        );
        assert!(
            timer_kind(&point("timer.fortnight(5)"), 250)
                .unwrap_err()
                .contains("fortnight")
        );
        assert_eq!(
            derive::perf_check(&point("perf.type(1).config(0).sample(100000)")),
            Ok(())
        );
        assert!(derive::perf_check(&point("perf.type(1)")).is_err());
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
