//! What runs in the kernel: the event probes' handlers (and the functions
//! they call) compile to BPF when every construct they use has BPF code;
//! the globals they touch then live in maps. Otherwise the script runs
//! forwarded: its programs only gather each hit.

use tapmatrix_ir::{Builtin, Expr, Function, LValue, Probe, ProbeKind, Program, StatOp, Stmt};

/// The builtins event handlers may call in the kernel.
fn kernel_builtin(builtin: Builtin) -> bool {
    matches!(
        builtin,
        Builtin::Print
            | Builtin::Println
            | Builtin::Exit
            | Builtin::Error
            | Builtin::Pid
            | Builtin::Tid
            | Builtin::Uid
            | Builtin::Gid
            | Builtin::Ppid
            | Builtin::Execname
            | Builtin::Cpu
            | Builtin::Probefunc
            | Builtin::Pp
            | Builtin::Ppfunc
            | Builtin::Target
            | Builtin::IsReturn
            | Builtin::ClockNs
            | Builtin::GettimeofdayS
            | Builtin::GettimeofdayMs
            | Builtin::GettimeofdayUs
            | Builtin::GettimeofdayNs
            | Builtin::Strlen
            | Builtin::TaskCurrent
            | Builtin::Backtrace
            | Builtin::Ubacktrace
            | Builtin::CmdlineStr
            | Builtin::UserMode
            | Builtin::Addr
            | Builtin::Uaddr
            | Builtin::Sprint
            | Builtin::Sprintln
            | Builtin::Isinstr
    )
}

/// What a construct that keeps handlers out of the kernel is called.
fn named_stmt(s: &Stmt) -> &'static str {
    match s {
        Stmt::Foreach { .. } => "foreach",
        Stmt::ForeachHist { .. } => "foreach over a histogram",
        Stmt::Try { .. } => "try/catch",
        Stmt::Delete(_) => "delete of a whole array or statistic",
        _ => "`*` in an array key",
    }
}

/// Whether the kernel can run the event probes: if so which globals they
/// touch, if not the first construct that keeps them out (as messages
/// name it).
pub(crate) fn kernel_globals(program: &Program) -> Result<Vec<bool>, String> {
    use std::cell::RefCell;
    let touched = RefCell::new(vec![false; program.globals.len()]);
    let blocker: RefCell<Option<String>> = RefCell::new(None);
    let stop = |what: String| {
        let mut blocker = blocker.borrow_mut();
        if blocker.is_none() {
            *blocker = Some(what);
        }
    };
    let functions: RefCell<Vec<u32>> = RefCell::new(Vec::new());
    let note = |g: u32| {
        if let Some(t) = touched.borrow_mut().get_mut(g as usize) {
            *t = true;
        }
    };
    let note_lv = |lv: &LValue| match lv {
        LValue::Global(g) | LValue::Index { array: g, .. } => note(*g),
        LValue::Local(_) => {}
    };
    let visit = |block: &[Stmt]| {
        tapmatrix_ir::visit::walk_block(
            block,
            &mut |s| match s {
                Stmt::Foreach { .. } | Stmt::ForeachHist { .. } | Stmt::Try { .. } => {
                    stop(named_stmt(s).to_owned())
                }
                Stmt::Delete(LValue::Global(g)) => {
                    let whole = program
                        .globals
                        .get(*g as usize)
                        .is_some_and(|g| !matches!(g.ty, tapmatrix_ir::GlobalType::Scalar { .. }));
                    if whole {
                        stop(named_stmt(s).to_owned());
                    }
                    note(*g);
                }
                Stmt::Delete(lv) | Stmt::Aggregate { target: lv, .. } => {
                    if let LValue::Index { keys, .. } = lv
                        && keys.iter().any(Option::is_none)
                    {
                        stop("`*` in an array key".to_owned());
                    }
                    note_lv(lv);
                }
                _ => {}
            },
            &mut |e| match e {
                Expr::Global(g) | Expr::Index { array: g, .. } => note(*g),
                Expr::In { array, keys } => {
                    if keys.iter().any(Option::is_none) {
                        stop("`in` with `*`".to_owned());
                    }
                    note(*array);
                }
                Expr::Assign { target, concat, .. } => {
                    if *concat && matches!(target.as_ref(), LValue::Index { .. }) {
                        stop("`.=` on an array element".to_owned());
                    }
                    note_lv(target);
                }
                Expr::Crement { target, .. } => note_lv(target),
                Expr::Call { function, .. } => {
                    let mut functions = functions.borrow_mut();
                    if !functions.contains(function) {
                        functions.push(*function);
                    }
                }
                Expr::Builtin { builtin, loc, .. } if !kernel_builtin(*builtin) => stop(format!(
                    "{}() at {}",
                    crate::expr::builtin_name(*builtin),
                    crate::expr::place(program, *loc)
                )),
                Expr::Regex { pattern, .. }
                    if crate::sprintf::literal_pattern(pattern).is_none() =>
                {
                    stop(crate::expr::construct_name(e))
                }
                Expr::Stat { .. } | Expr::Hist { .. } | Expr::HistBucket { .. } => {
                    stop(crate::expr::construct_name(e))
                }
                _ => {}
            },
        );
    };
    for probe in &program.probes {
        if probe.kind == ProbeKind::Event {
            visit(&probe.body);
        }
    }
    let mut seen = 0;
    loop {
        let next = functions.borrow().get(seen).copied();
        let Some(f) = next else { break };
        seen += 1;
        if let Some(function) = program.functions.get(f as usize) {
            visit(&function.body);
        }
    }
    let touched = touched.into_inner();
    // Statistics the kernel aggregates lose the runtime's running variance.
    tapmatrix_ir::visit::each_expr(program, &mut |e| {
        if let Expr::Stat {
            op: StatOp::Variance,
            stat,
            ..
        } = e
            && let LValue::Global(g) | LValue::Index { array: g, .. } = stat.as_ref()
            && touched.get(*g as usize).copied().unwrap_or(false)
        {
            stop("@variance of a statistic the kernel aggregates".to_owned());
        }
    });
    // Wrapping arrays keep SystemTap's oldest-out order only in the runtime.
    for (g, global) in program.globals.iter().enumerate() {
        if global.wrap && touched[g] {
            stop(format!("the wrapping array {}", global.name));
        }
    }
    match blocker.into_inner() {
        Some(why) => Err(why),
        None => Ok(touched),
    }
}

/// Whether a guard can run in the kernel before anything else of a
/// handler (no locals, globals, fetches or effects).
pub(crate) fn pure_guard(e: &Expr) -> bool {
    guard_reading(e, &|builtin| GUARD_BUILTINS.contains(&builtin))
}

/// What a guard that runs first reads of the hit's context.
const GUARD_BUILTINS: [Builtin; 8] = [
    Builtin::Pid,
    Builtin::Tid,
    Builtin::Uid,
    Builtin::Gid,
    Builtin::Cpu,
    Builtin::Target,
    Builtin::Execname,
    Builtin::IsReturn,
];

/// Whether `e` compares constants and the builtins (without arguments)
/// `reads` allows.
fn guard_reading(e: &Expr, reads: &dyn Fn(Builtin) -> bool) -> bool {
    match e {
        Expr::Long(_) | Expr::Str(_) => true,
        Expr::CompareLong { lhs, rhs, .. } | Expr::CompareStr { lhs, rhs, .. } => {
            guard_reading(lhs, reads) && guard_reading(rhs, reads)
        }
        Expr::And(a, b) | Expr::Or(a, b) => guard_reading(a, reads) && guard_reading(b, reads),
        Expr::Unary { operand, .. } => guard_reading(operand, reads),
        Expr::Builtin { builtin, args, .. } => args.is_empty() && reads(*builtin),
        _ => false,
    }
}

/// The leading `if (cond) next` statements of a handler whose condition
/// is a [`pure_guard`].
pub(crate) fn leading_guards(body: &[Stmt]) -> usize {
    body.iter()
        .take_while(|s| {
            matches!(s, Stmt::If { cond, then, otherwise }
                if otherwise.is_empty() && matches!(then.as_slice(), [Stmt::Next]) && pure_guard(cond))
        })
        .count()
}

/// Whether a handler (or a function it calls) takes a `backtrace()` or
/// reads `addr()`. Its program stays a kprobe: the stack a trampoline's
/// program sees starts with the program and the trampoline, not the
/// probed function, and a trampoline's context holds no registers.
pub(crate) fn reads_stack(functions: &[Function], body: &[Stmt]) -> bool {
    let mut found = false;
    let mut calls: Vec<u32> = Vec::new();
    let mut visit = |block: &[Stmt], calls: &mut Vec<u32>| {
        tapmatrix_ir::visit::walk_block(block, &mut |_| {}, &mut |e| match e {
            Expr::Builtin {
                builtin: Builtin::Backtrace | Builtin::Addr,
                ..
            } => found = true,
            Expr::Call { function, .. } if !calls.contains(function) => calls.push(*function),
            _ => {}
        });
    };
    visit(body, &mut calls);
    let mut seen = 0;
    while let Some(f) = calls.get(seen).copied() {
        seen += 1;
        if let Some(function) = functions.get(f as usize) {
            visit(&function.body, &mut calls);
        }
    }
    found
}

/// Whether a guard reads only what a thread keeps from a call's entry to
/// its return (its pid and tid, `target()`, constants).
fn thread_guard(e: &Expr) -> bool {
    guard_reading(e, &|builtin| {
        matches!(builtin, Builtin::Pid | Builtin::Tid | Builtin::Target)
    })
}

/// How many of `guards` (leading guards), from the first, read only what
/// a thread keeps from a call's entry to its return: the ones
/// [`guard_entry_halves`] gives the entry half.
pub(crate) fn thread_guards(guards: &[Stmt]) -> usize {
    guards
        .iter()
        .take_while(|s| matches!(s, Stmt::If { cond, .. } if thread_guard(cond)))
        .count()
}

/// Gives each entry half (a probe that saves `@entry` values) the leading
/// guards of its return probe that a thread answers alike at both ends
/// (`if (pid() != target()) next`): the return drops such a thread's hits
/// anyway, so its entries need not be saved, nor forwarded. Without this,
/// every call of the function by any task sent its entry to the agent.
pub(crate) fn guard_entry_halves(probes: &mut [Probe]) {
    let guards: Vec<(u32, Vec<Stmt>)> = probes
        .iter()
        .filter_map(|p| {
            let key = p.entry.as_ref()?.key;
            let leading = &p.body[..leading_guards(&p.body)];
            let guards = leading[..thread_guards(leading)].to_vec();
            (!guards.is_empty()).then_some((key, guards))
        })
        .collect();
    for probe in probes.iter_mut().filter(|p| p.entry.is_none()) {
        let saved = probe.body.iter().find_map(|s| match s {
            Stmt::EntrySave { key, .. } => Some(*key),
            _ => None,
        });
        if let Some(key) = saved
            && let Some((_, guards)) = guards.iter().find(|(k, _)| *k == key)
        {
            probe.body.splice(0..0, guards.iter().cloned());
        }
    }
}
