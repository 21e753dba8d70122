//! What must happen in the kernel at the hit even when the handler runs
//! in the runtime (forwarded mode): reads at computed addresses,
//! `task_current()` and `backtrace()`. Each largest expression of an event
//! handler that the kernel can compute on its own (constants, fetch slots,
//! context builtins, reads, calls of functions that compute only from
//! their arguments) and that needs the kernel becomes a new fetch slot of
//! its probe: the probe's program computes it into the hit record, and a
//! fault there is raised by the runtime where the handler uses the slot
//! (so a read the handler guards is harmless when the guard holds).
//! Functions that need the kernel in an expression of their own
//! (`print_backtrace()`'s `backtrace()`) are copied per probe with those
//! expressions as the probe's slots.
//!
//! Whatever needs the kernel and is left (a read from a value the handler
//! computes, `task_current()` in a `begin` probe) is an error naming it.

use std::collections::HashMap;

use tapmatrix_ir::{Builtin, Expr, LValue, ProbeKind, Program, ScalarType, Stmt};

use crate::error::BpfError;
use crate::expr::{builtin_type, place};

/// The expressions each probe's program computes into its extra slots
/// (after the slots of its fetch requests), by probe index.
pub(crate) type Hoisted = Vec<Vec<Expr>>;

/// Builtins the kernel computes for a slot (no effects, no state).
fn slot_builtin(builtin: Builtin) -> bool {
    matches!(
        builtin,
        Builtin::Pid
            | Builtin::Tid
            | Builtin::Uid
            | Builtin::Gid
            | Builtin::Ppid
            | Builtin::Execname
            | Builtin::Cpu
            | Builtin::Target
            | Builtin::ClockNs
            | Builtin::Strlen
            | Builtin::TaskCurrent
            | Builtin::Backtrace
            | Builtin::Ubacktrace
            | Builtin::CmdlineStr
            | Builtin::UserMode
            | Builtin::Addr
            | Builtin::Uaddr
    )
}

/// Whether `e` itself needs the kernel at the hit.
fn kernel_only(e: &Expr) -> bool {
    matches!(
        e,
        Expr::Read { .. }
            | Expr::ReadString { .. }
            | Expr::Builtin {
                builtin: Builtin::TaskCurrent
                    | Builtin::Backtrace
                    | Builtin::Ubacktrace
                    | Builtin::CmdlineStr
                    | Builtin::UserMode
                    | Builtin::Addr
                    | Builtin::Uaddr,
                ..
            }
    )
}

/// The place and name of an expression that needs the kernel.
fn describe(program: &Program, e: &Expr) -> Option<(String, String)> {
    match e {
        Expr::Read { loc, .. } => Some((
            place(program, *loc),
            "reading kernel memory at a computed address".to_owned(),
        )),
        Expr::ReadString { loc, .. } => Some((
            place(program, *loc),
            "reading a string at a computed address".to_owned(),
        )),
        Expr::Builtin {
            builtin:
                builtin @ (Builtin::TaskCurrent
                | Builtin::Backtrace
                | Builtin::Ubacktrace
                | Builtin::CmdlineStr
                | Builtin::UserMode
                | Builtin::Addr
                | Builtin::Uaddr),
            loc,
            ..
        } => Some((
            place(program, *loc),
            format!("{}()", crate::expr::builtin_name(*builtin)),
        )),
        _ => None,
    }
}

struct Hoister<'p> {
    program: &'p Program,
    /// Functions the kernel can run from their arguments alone.
    pure: HashMap<u32, bool>,
    /// Functions with an expression of their own that needs the kernel.
    needs_kernel: HashMap<u32, bool>,
    /// Copies made for the probe being hoisted: original -> copy.
    copies: HashMap<u32, u32>,
    /// Functions added (copies), after the program's.
    added: Vec<tapmatrix_ir::Function>,
    /// The probe's fetch slot types, hoisted slots appended.
    fetches: Vec<ScalarType>,
    /// The probe's hoisted expressions.
    slots: Vec<Expr>,
}

impl Hoister<'_> {
    fn function(&self, f: u32) -> Option<&tapmatrix_ir::Function> {
        self.program.functions.get(f as usize)
    }

    /// Whether the kernel can compute `e` with no state but its
    /// function's locals (`locals`) and the hit.
    fn closed(&mut self, e: &Expr, locals: bool) -> bool {
        match e {
            Expr::Long(_) | Expr::Str(_) | Expr::Fetch(_) => true,
            Expr::Local(_) => locals,
            Expr::Read { addr, .. } => self.closed(addr, locals),
            Expr::ReadString {
                addr,
                max_len,
                fallback,
                ..
            } => {
                self.closed(addr, locals)
                    && max_len.as_deref().is_none_or(|n| self.closed(n, locals))
                    && fallback.as_deref().is_none_or(|f| self.closed(f, locals))
            }
            Expr::Unary { operand, .. } => self.closed(operand, locals),
            Expr::Binary { lhs, rhs, .. }
            | Expr::CompareLong { lhs, rhs, .. }
            | Expr::CompareStr { lhs, rhs, .. }
            | Expr::Concat(lhs, rhs)
            | Expr::And(lhs, rhs)
            | Expr::Or(lhs, rhs) => self.closed(lhs, locals) && self.closed(rhs, locals),
            Expr::Ternary {
                cond,
                then,
                otherwise,
            } => {
                self.closed(cond, locals)
                    && self.closed(then, locals)
                    && self.closed(otherwise, locals)
            }
            Expr::Builtin { builtin, args, .. } => {
                slot_builtin(*builtin) && args.iter().all(|a| self.closed(a, locals))
            }
            Expr::Assign { target, value, .. } => {
                locals && matches!(target.as_ref(), LValue::Local(_)) && self.closed(value, locals)
            }
            Expr::Crement { target, .. } => locals && matches!(target.as_ref(), LValue::Local(_)),
            Expr::Call { function, args, .. } => {
                args.iter().all(|a| self.closed(a, locals)) && self.is_pure(*function)
            }
            _ => false,
        }
    }

    /// Whether `e`, or a function it calls, needs the kernel.
    fn needs(&self, e: &Expr) -> bool {
        let mut found = false;
        let mut calls = Vec::new();
        tapmatrix_ir::visit::walk_expr(e, &mut |e| {
            if kernel_only(e) {
                found = true;
            }
            if let Expr::Call { function, .. } = e {
                calls.push(*function);
            }
        });
        found || calls.iter().any(|f| self.calls_kernel(*f, &mut Vec::new()))
    }

    /// Whether function `f` needs the kernel anywhere (its own
    /// expressions or its callees').
    fn calls_kernel(&self, f: u32, seen: &mut Vec<u32>) -> bool {
        if seen.contains(&f) {
            return false;
        }
        seen.push(f);
        let Some(function) = self.function(f) else {
            return false;
        };
        let mut found = false;
        let mut calls = Vec::new();
        tapmatrix_ir::visit::walk_block(&function.body, &mut |_| {}, &mut |e| {
            if kernel_only(e) {
                found = true;
            }
            if let Expr::Call { function, .. } = e {
                calls.push(*function);
            }
        });
        found || calls.into_iter().any(|g| self.calls_kernel(g, seen))
    }

    /// Whether the kernel can run function `f` from its arguments alone:
    /// no globals, no output, no effects beyond its locals, no recursion.
    fn is_pure(&mut self, f: u32) -> bool {
        if let Some(known) = self.pure.get(&f) {
            return *known;
        }
        // In progress: a recursive call is not pure.
        self.pure.insert(f, false);
        let body = match self.function(f) {
            Some(function) => function.body.clone(),
            None => return false,
        };
        let pure = self.pure_block(&body);
        self.pure.insert(f, pure);
        pure
    }

    fn pure_block(&mut self, block: &[Stmt]) -> bool {
        block.iter().all(|s| self.pure_stmt(s))
    }

    fn pure_stmt(&mut self, s: &Stmt) -> bool {
        match s {
            Stmt::Expr(e) => self.closed(e, true),
            Stmt::Block(b) => self.pure_block(b),
            Stmt::If {
                cond,
                then,
                otherwise,
            } => self.closed(cond, true) && self.pure_block(then) && self.pure_block(otherwise),
            Stmt::Loop { cond, body, step } => {
                cond.as_ref().is_none_or(|c| self.closed(c, true))
                    && step.as_ref().is_none_or(|c| self.closed(c, true))
                    && self.pure_block(body)
            }
            Stmt::Break | Stmt::Continue => true,
            Stmt::Return(e) => e.as_ref().is_none_or(|e| self.closed(e, true)),
            Stmt::Delete(LValue::Local(_)) => true,
            _ => false,
        }
    }

    /// Whether function `f` has an expression of its own (or calls one
    /// that has) that needs the kernel and that the kernel can compute at
    /// the hit without the function's state: it is then copied per probe.
    fn needs_copy(&mut self, f: u32, seen: &mut Vec<u32>) -> bool {
        if let Some(known) = self.needs_kernel.get(&f) {
            return *known;
        }
        if seen.contains(&f) {
            return false;
        }
        seen.push(f);
        let body = match self.function(f) {
            Some(function) => function.body.clone(),
            None => return false,
        };
        let mut candidates = Vec::new();
        tapmatrix_ir::visit::walk_block(&body, &mut |_| {}, &mut |e| {
            candidates.push(e.clone());
        });
        let mut needs = false;
        for e in &candidates {
            if self.needs(e) && self.closed(e, false) {
                needs = true;
                break;
            }
            if let Expr::Call { function, .. } = e
                && self.needs_copy(*function, seen)
            {
                needs = true;
                break;
            }
        }
        self.needs_kernel.insert(f, needs);
        needs
    }

    /// The type of a hoisted expression.
    fn ty(&self, e: &Expr) -> ScalarType {
        match e {
            Expr::Str(_) | Expr::Concat(..) | Expr::ReadString { .. } => ScalarType::String,
            Expr::Fetch(i) => self
                .fetches
                .get(*i as usize)
                .copied()
                .unwrap_or(ScalarType::Long),
            Expr::Ternary { then, .. } => self.ty(then),
            Expr::Builtin { builtin, .. } => builtin_type(*builtin),
            Expr::Call { function, .. } => self
                .function(*function)
                .and_then(|f| f.ret)
                .unwrap_or(ScalarType::Long),
            _ => ScalarType::Long,
        }
    }

    /// Replaces the largest expressions of `block` that need the kernel
    /// and that it can compute at the hit by new slots; copies the
    /// functions that need it inside.
    fn hoist_block(&mut self, block: &mut [Stmt]) {
        tapmatrix_ir::visit::walk_block_mut(block, &mut |e| self.hoist_expr(e));
    }

    fn hoist_expr(&mut self, e: &mut Expr) {
        if self.needs(e) && self.closed(e, false) {
            let ty = self.ty(e);
            let slot = self.fetches.len() as u32;
            self.fetches.push(ty);
            let taken = std::mem::replace(e, Expr::Fetch(slot));
            self.slots.push(taken);
            return;
        }
        if let Expr::Call { function, .. } = e
            && self.needs_copy(*function, &mut Vec::new())
        {
            *function = self.copy(*function);
        }
    }

    /// The probe's copy of function `f`, its own kernel expressions
    /// hoisted into the probe's slots.
    fn copy(&mut self, f: u32) -> u32 {
        if let Some(copy) = self.copies.get(&f) {
            return *copy;
        }
        let Some(original) = self.function(f).cloned() else {
            return f;
        };
        let index = (self.program.functions.len() + self.added.len()) as u32;
        self.copies.insert(f, index);
        self.added.push(original.clone());
        let mut body = original.body;
        self.hoist_block(&mut body);
        if let Some(copy) = self
            .added
            .get_mut(index as usize - self.program.functions.len())
        {
            copy.body = body;
        }
        index
    }
}

/// Hoists what the kernel must compute at the hit out of every event
/// handler of `program` into new fetch slots; the expressions per probe.
pub(crate) fn hoist(program: &mut Program) -> Hoisted {
    let mut hoisted = Vec::with_capacity(program.probes.len());
    let mut added = Vec::new();
    let mut pure = HashMap::new();
    let mut needs_kernel = HashMap::new();
    for index in 0..program.probes.len() {
        if program.probes[index].kind != ProbeKind::Event {
            hoisted.push(Vec::new());
            continue;
        }
        let mut body = std::mem::take(&mut program.probes[index].body);
        let mut hoister = Hoister {
            program,
            pure: std::mem::take(&mut pure),
            needs_kernel: std::mem::take(&mut needs_kernel),
            copies: HashMap::new(),
            added: std::mem::take(&mut added),
            fetches: program.probes[index].fetches.clone(),
            slots: Vec::new(),
        };
        hoister.hoist_block(&mut body);
        let Hoister {
            pure: kept_pure,
            needs_kernel: kept_needs,
            added: kept_added,
            fetches,
            slots,
            ..
        } = hoister;
        (pure, needs_kernel, added) = (kept_pure, kept_needs, kept_added);
        let probe = &mut program.probes[index];
        probe.body = body;
        probe.fetches = fetches;
        hoisted.push(slots);
    }
    program.functions.extend(added);
    hoisted
}

/// Where the runtime would meet something that needs the kernel: in the
/// probes it runs (`all_probes`: every probe, as in forwarded mode; else
/// `begin`, `end`, `error` and timers) and the functions they call.
pub(crate) fn check_runtime(
    program: &Program,
    all_probes: bool,
    why_not_kernel: &str,
) -> Result<(), BpfError> {
    let mut reached: Vec<u32> = Vec::new();
    let mut found: Option<(String, String, bool)> = None;
    let mut visit = |block: &[Stmt], event: bool, calls: &mut Vec<u32>| {
        tapmatrix_ir::visit::walk_block(block, &mut |_| {}, &mut |e| {
            if found.is_none()
                && let Some((at, what)) = describe(program, e)
            {
                found = Some((at, what, event));
            }
            if let Expr::Call { function, .. } = e {
                calls.push(*function);
            }
        });
    };
    let mut pending: Vec<(u32, bool)> = Vec::new();
    for probe in &program.probes {
        let event = probe.kind == ProbeKind::Event;
        if event && !all_probes {
            continue;
        }
        let mut calls = Vec::new();
        visit(&probe.body, event, &mut calls);
        pending.extend(calls.into_iter().map(|f| (f, event)));
    }
    while let Some((f, event)) = pending.pop() {
        if reached.contains(&f) {
            continue;
        }
        reached.push(f);
        if let Some(function) = program.functions.get(f as usize) {
            let mut calls = Vec::new();
            visit(&function.body, event, &mut calls);
            pending.extend(calls.into_iter().map(|g| (g, event)));
        }
    }
    match found {
        None => Ok(()),
        Some((location, what, true)) => Err(BpfError::Unsupported {
            location,
            what: format!("{what} from a value the handler computes"),
            why: Some(format!(
                "only a handler that runs in the kernel can, and this script's handlers cannot: {why_not_kernel}"
            )),
        }),
        Some((location, what, false)) => Err(BpfError::Unsupported {
            location,
            what,
            why: Some(
                "begin, end, error and timer probes run in the agent, outside the kernel"
                    .to_owned(),
            ),
        }),
    }
}
