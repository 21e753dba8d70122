//! Elaboration: a parsed script and its tapsets, for one kernel, become a
//! typed, name-resolved [`tapmatrix_ir::Program`] plus, per probe, what the
//! back end attaches to and fetches ([`ProbeSite`]).
//!
//! SystemTap's semantics, pass 2 (`stap -p2`) in its order (elision of
//! dead stores before types, as SystemTap's optimizer runs before its type
//! resolution):
//!
//! - every probe of the script is derived through the tapset aliases
//!   ([`tapmatrix_resolve::Resolver::derive`]): one derived probe per alias
//!   expansion path, its handler composed of the alias prologues (innermost
//!   first), the user's handler, then the epilogues (innermost last); probe point
//!   `if (cond)` conditions become a guard at its top;
//! - names resolve to locals (shared between alias bodies and the handler),
//!   globals (the script's, then tapset files'), and functions (the
//!   script's, then tapset functions actually called, transitively); a
//!   function whose body is embedded C, that a tapset defines under a
//!   builtin's name, or that nothing defines, is a runtime builtin by name;
//! - types (long, string, statistics, arrays of those) are inferred to a
//!   fixed point, with SystemTap's errors for mismatches;
//! - every kernel value a handler reads becomes a fetch slot
//!   (`Expr::Fetch`) with its [`FetchRequest`]; as SystemTap elides
//!   assignments to locals nothing reads, an event fetches only what its
//!   handler uses.

mod builtins;
mod caps;
mod elaborator;
mod error;
mod format;
mod prune;
mod share;

use tapmatrix_facts::KernelFacts;
use tapmatrix_resolve::{AttachPoint, Loaded, TargetAccess, TargetError};
use tapmatrix_syntax::ast;

pub use caps::{Capabilities, Construct};
pub use error::{ElaborateError, ElaborateErrors, ElaborateWarning};
pub use format::{Format, decode_escapes, parse_format};
pub use share::share_syscall_events;

/// A script elaborated for one kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Elaborated {
    /// The handlers, globals and functions.
    pub program: tapmatrix_ir::Program,
    /// Per probe of `program.probes` (same index): what it attaches to and
    /// what each of its fetch slots holds.
    pub sites: Vec<ProbeSite>,
}

impl Elaborated {
    /// The target expressions that do not resolve at some attach point
    /// (which every back end refuses), each once, as SystemTap's pass 2
    /// reports them: `stap -p2` stops here.
    pub fn target_errors(&self) -> Vec<ElaborateError> {
        let mut errors: Vec<ElaborateError> = Vec::new();
        for site in &self.sites {
            for (at, targets) in site.attach.iter().zip(&site.targets) {
                for (request, target) in site.fetches.iter().zip(targets) {
                    let (text, location) = match request {
                        FetchRequest::Value { text, location, .. }
                        | FetchRequest::String { text, location, .. } => (text, location),
                        FetchRequest::Defined { .. } => continue,
                    };
                    if let Err(error) = target {
                        let error = ElaborateError::new(
                            format!("{error}: {text} at {}", at.probe_point()),
                            location.clone(),
                        );
                        if !errors.iter().any(|e| e.message == error.message) {
                            errors.push(error);
                        }
                    }
                }
            }
        }
        errors
    }
}

/// What the back end needs for one probe of the program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeSite {
    /// The leaf probe point it was derived to, alias suffixes applied
    /// (`kernel.function("vfs_read").return.maxactive(8)`, `timer.ms(100)`).
    pub point: tapmatrix_resolve::ProbePoint,
    /// The concrete attach points of an `Event` probe (empty for `begin`,
    /// `end`, `error` and timers).
    pub attach: Vec<AttachPoint>,
    /// What each fetch slot holds: parallel to the probe's `fetches`.
    pub fetches: Vec<FetchRequest>,
    /// Each fetch slot's target expression resolved at each attach point
    /// (`targets[attach][slot]`), once, as the back end reads tracepoint
    /// names ([`Capabilities::tracepoint_names`]). A `Defined` slot is
    /// defined where it resolves.
    pub targets: Vec<Vec<Result<TargetAccess, TargetError>>>,
}

/// One attach point with its fetch slots resolved (see
/// [`ProbeSite::targets`]).
pub type ResolvedAttach = (AttachPoint, Vec<Result<TargetAccess, TargetError>>);

impl ProbeSite {
    /// The attach points grouped by the answers of the probe's `@defined`
    /// slots there (a slot is defined where its target resolved): attach
    /// points that agree share one copy of the probe
    /// ([`ProbeSite::specialize`]). Each attach point comes with the
    /// resolved targets of the slots that remain (`@defined` ones dropped).
    /// Groups are ordered by their answers.
    pub fn defined_groups(&self) -> Vec<(Vec<bool>, Vec<ResolvedAttach>)> {
        let mut groups: Vec<(Vec<bool>, Vec<ResolvedAttach>)> = Vec::new();
        for (at, targets) in self.attach.iter().zip(&self.targets) {
            let mut key = Vec::new();
            let mut kept = Vec::new();
            for (request, access) in self.fetches.iter().zip(targets) {
                match request {
                    FetchRequest::Defined { .. } => key.push(access.is_ok()),
                    _ => kept.push(access.clone()),
                }
            }
            match groups.iter_mut().find(|(k, _)| *k == key) {
                Some((_, members)) => members.push((at.clone(), kept)),
                None => groups.push((key, vec![(at.clone(), kept)])),
            }
        }
        groups.sort_by(|a, b| a.0.cmp(&b.0));
        groups
    }

    /// The probe with its `@defined` slots replaced by the constants
    /// `defined` (in slot order), the conditions they decide folded (as
    /// SystemTap does: the branch not taken is dropped, so
    /// `@defined($x) ? $x : 0` reads no `$x` where it does not resolve), and
    /// the slots that remain renumbered; with the requests of those slots
    /// and `attach` (a group of [`ProbeSite::defined_groups`]) keeping
    /// only their resolved targets.
    pub fn specialize(
        &self,
        probe: &tapmatrix_ir::Probe,
        defined: &[bool],
        attach: Vec<ResolvedAttach>,
    ) -> (tapmatrix_ir::Probe, Vec<FetchRequest>, Vec<ResolvedAttach>) {
        use tapmatrix_ir::Expr;
        let mut constants = defined.iter();
        let mut renumber: Vec<Expr> = Vec::new();
        let mut kept = Vec::new();
        for request in &self.fetches {
            match request {
                FetchRequest::Defined { .. } => {
                    let value = constants.next().copied().unwrap_or(false);
                    renumber.push(Expr::Long(i64::from(value)));
                }
                other => {
                    renumber.push(Expr::Fetch(u32::try_from(kept.len()).unwrap_or(u32::MAX)));
                    kept.push(other.clone());
                }
            }
        }
        let mut probe = probe.clone();
        tapmatrix_ir::visit::walk_block_mut(&mut probe.body, &mut |expr| {
            if let Expr::Fetch(slot) = expr
                && let Some(new) = renumber.get(*slot as usize)
            {
                *expr = new.clone();
            }
        });
        if defined.is_empty() {
            probe.fetches = kept.iter().map(FetchRequest::ty).collect();
            return (probe, kept, attach);
        }
        fold::block(&mut probe.body);
        // The slots only a dropped branch read go.
        let mut used = vec![false; kept.len()];
        tapmatrix_ir::visit::walk_block(&probe.body, &mut |_| {}, &mut |expr| {
            if let Expr::Fetch(slot) = expr
                && let Some(u) = used.get_mut(*slot as usize)
            {
                *u = true;
            }
        });
        let mut new_index = Vec::with_capacity(kept.len());
        let mut next = 0u32;
        for &u in &used {
            new_index.push(next);
            next += u32::from(u);
        }
        tapmatrix_ir::visit::walk_block_mut(&mut probe.body, &mut |expr| {
            if let Expr::Fetch(slot) = expr
                && let Some(new) = new_index.get(*slot as usize)
            {
                *slot = *new;
            }
        });
        let keep = |i: usize| used.get(i).copied().unwrap_or(true);
        let kept: Vec<FetchRequest> = kept
            .into_iter()
            .enumerate()
            .filter_map(|(i, r)| keep(i).then_some(r))
            .collect();
        let attach = attach
            .into_iter()
            .map(|(at, targets)| {
                let targets = targets
                    .into_iter()
                    .enumerate()
                    .filter_map(|(i, t)| keep(i).then_some(t))
                    .collect();
                (at, targets)
            })
            .collect();
        probe.fetches = kept.iter().map(FetchRequest::ty).collect();
        (probe, kept, attach)
    }
}

/// Folding the conditions `@defined` decided.
mod fold {
    use tapmatrix_ir::{Block, Expr, Stmt, UnaryOp};

    /// Folds the constant conditions of `block`, statements and
    /// expressions.
    pub(super) fn block(block: &mut Block) {
        for stmt in std::mem::take(block) {
            match stmt {
                Stmt::If {
                    mut cond,
                    then,
                    otherwise,
                } => {
                    expr(&mut cond);
                    match cond {
                        Expr::Long(c) => {
                            let mut taken = if c != 0 { then } else { otherwise };
                            self::block(&mut taken);
                            block.push(Stmt::Block(taken));
                        }
                        cond => {
                            let (mut then, mut otherwise) = (then, otherwise);
                            self::block(&mut then);
                            self::block(&mut otherwise);
                            block.push(Stmt::If {
                                cond,
                                then,
                                otherwise,
                            });
                        }
                    }
                }
                mut other => {
                    tapmatrix_ir::visit::walk_stmt_mut(&mut other, &mut |e| expr(e));
                    if let Stmt::Block(inner)
                    | Stmt::Loop { body: inner, .. }
                    | Stmt::Foreach { body: inner, .. }
                    | Stmt::ForeachHist { body: inner, .. } = &mut other
                    {
                        self::block(inner);
                    }
                    if let Stmt::Try { body, catch, .. } = &mut other {
                        self::block(body);
                        self::block(catch);
                    }
                    block.push(other);
                }
            }
        }
    }

    /// Folds `expr` where its condition is a constant: `c ? a : b`,
    /// `!c`, `c && x`, `c || x`.
    fn expr(e: &mut Expr) {
        let folded = match e {
            Expr::Ternary {
                cond,
                then,
                otherwise,
            } => {
                expr(cond);
                match **cond {
                    Expr::Long(c) => Some(if c != 0 {
                        std::mem::replace(&mut **then, Expr::Long(0))
                    } else {
                        std::mem::replace(&mut **otherwise, Expr::Long(0))
                    }),
                    _ => None,
                }
            }
            Expr::Unary {
                op: UnaryOp::Not,
                operand,
            } => {
                expr(operand);
                match **operand {
                    Expr::Long(c) => Some(Expr::Long(i64::from(c == 0))),
                    _ => None,
                }
            }
            Expr::And(a, _) => {
                expr(a);
                match **a {
                    Expr::Long(0) => Some(Expr::Long(0)),
                    _ => None,
                }
            }
            Expr::Or(a, _) => {
                expr(a);
                match **a {
                    Expr::Long(c) if c != 0 => Some(Expr::Long(1)),
                    _ => None,
                }
            }
            _ => None,
        };
        if let Some(mut new) = folded {
            expr(&mut new);
            *e = new;
        }
    }
}

/// One value an event gathers per hit for its handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchRequest {
    /// The value of a target expression as a long (`$count`,
    /// `$file->f_flags`, `$return`, `@cast(...)->pid`, a tracepoint field).
    Value {
        /// The expression.
        target: ast::Target,
        /// As written (printed).
        text: String,
        /// `file:line:col` of its first use.
        location: String,
    },
    /// A string read at the address a target expression gives:
    /// `kernel_string($x)`, `kernel_string_n($x, n)`, `user_string($x)`,
    /// `user_string_n`, `user_string_quoted` (quoting applied in the program
    /// around the fetch); also a `char[]` member or field.
    String {
        /// The address expression.
        target: ast::Target,
        /// From user memory.
        user: bool,
        /// `_n` variants: at most this many bytes.
        max_len: Option<i64>,
        /// As written (the target expression, printed).
        text: String,
        /// `file:line:col` of its first use.
        location: String,
    },
    /// `@defined(target)`: 1 where the target expression resolves at the
    /// attach point, else 0 (the back end decides it per event).
    Defined {
        /// The expression.
        target: ast::Target,
        /// As written (printed).
        text: String,
    },
}

impl FetchRequest {
    /// The target expression it reads.
    pub fn target(&self) -> &ast::Target {
        match self {
            FetchRequest::Value { target, .. }
            | FetchRequest::String { target, .. }
            | FetchRequest::Defined { target, .. } => target,
        }
    }

    /// The type of the slot in the program.
    pub fn ty(&self) -> tapmatrix_ir::ScalarType {
        match self {
            FetchRequest::String { .. } => tapmatrix_ir::ScalarType::String,
            FetchRequest::Value { .. } | FetchRequest::Defined { .. } => {
                tapmatrix_ir::ScalarType::Long
            }
        }
    }
}

/// Elaborates the script of `loaded` (with its tapsets) for the kernel
/// `facts` describes. `loaded` must come from [`tapmatrix_resolve::Sources::load`]
/// with that kernel's profile ([`tapmatrix_resolve::kernel_profile`]): it
/// keeps the syntax trees (`Sources::load_all` does not). What the back end
/// cannot serve on that kernel (`caps`) is an error naming it.
pub fn elaborate(
    loaded: &Loaded,
    facts: &KernelFacts,
    caps: &Capabilities,
) -> Result<Elaborated, ElaborateErrors> {
    elaborate_with(loaded, facts, caps, &Options::default()).map(|(elaborated, _)| elaborated)
}

/// SystemTap's pass-2 switches from its command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// `stap -u`: stores nothing reads are not elided, so their values
    /// must type-check and resolve like any other.
    pub unoptimized: bool,
    /// `stap --skip-badvars`: a target variable that resolves at none of
    /// the probe's attach points is 0, not an error.
    pub skip_badvars: bool,
    /// Globals given a value on the command line (`-G NAME=VALUE`): not
    /// "never assigned".
    pub set_globals: Vec<String>,
}

/// [`elaborate`] with `options`, also giving the warnings SystemTap gives
/// for the script's own files (unused globals, globals never assigned,
/// elided assignments), in source order.
pub fn elaborate_with(
    loaded: &Loaded,
    facts: &KernelFacts,
    caps: &Capabilities,
    options: &Options,
) -> Result<(Elaborated, Vec<ElaborateWarning>), ElaborateErrors> {
    let script_errors: Vec<ElaborateError> = loaded
        .diagnostics
        .iter()
        .filter(|d| d.in_script)
        .map(|d| ElaborateError::from_rendered(&d.rendered))
        .collect();
    if !script_errors.is_empty() {
        return Err(ElaborateErrors(script_errors));
    }
    elaborator::run(&loaded.library, facts, caps, options)
}
