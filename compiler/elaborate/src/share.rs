//! Probes on many system calls share one event.
//!
//! A wildcard over the syscall aliases (`syscall.*`) derives one probe per
//! system call, each on its own `syscalls:sys_enter_NAME` tracepoint (or,
//! before the events recorded user strings, a kprobe on `__x64_sys_NAME`):
//! about 370 events to create, enable and disable on 5.10 and 6.1, or 370
//! BPF programs to load and attach. SystemTap's own syscall tapsets probe
//! `kernel.trace("sys_enter")` once and skip the hits of other calls by
//! their number; this does the same after elaboration, for both back ends:
//! the probes that fetch nothing from their event (a handler that reads
//! `name` or counts calls) become one probe on
//! `raw_syscalls:sys_enter` (`sys_exit` for the returns) that fetches the
//! syscall's number (`$id`), dispatches on it to each one's handler, and
//! starts with the guard `if (!(id in the numbers)) next`, which the
//! tracefs back end pushes down as the event's filter.
//!
//! A probe that fetches a value (an argument, a user string; at an exit,
//! anything but the return value, which the raw exit event has too), reads
//! where it fired (`pp()`, `probefunc()`, `ppfunc()`, `is_return()`, a
//! backtrace) or saves `@entry` values keeps its own event. The hits the
//! shared event sees are the 64-bit system calls': `raw_syscalls` also
//! fires for 32-bit (compat) calls, with their own numbering, which the
//! per-call events ignore; the guests run 64-bit programs only.

use std::collections::BTreeMap;

use tapmatrix_facts::KernelFacts;
use tapmatrix_ir::{
    Block, Builtin, CompareOp, Expr, LValue, Probe, ProbeKind, Program, ScalarType, Stmt, UnaryOp,
};
use tapmatrix_resolve::{
    AttachKind, AttachPoint, TargetAccess, TargetBase, TargetError, resolve_target_as,
};
use tapmatrix_syntax::ast;

use crate::{Capabilities, Elaborated, FetchRequest, ProbeSite};

/// System calls that share a raw event at the least: one per-call event is
/// no dearer than the raw one.
const MIN_SHARED: usize = 2;

/// The most ranges of syscall numbers the shared probe's leading guard
/// names (each becomes a filter clause; a filter is at most a page).
const MAX_GUARD_RANGES: usize = 32;

/// A probe that joins a shared one: its index and its syscall numbers.
type Member = (usize, Vec<i64>);

/// Which raw syscall event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Raw {
    Enter,
    Exit,
}

impl Raw {
    fn target(self) -> &'static str {
        match self {
            Raw::Enter => "raw_syscalls:sys_enter",
            Raw::Exit => "raw_syscalls:sys_exit",
        }
    }
}

/// Makes the probes of `elaborated` that fire on system calls' entries
/// (or exits) and fetch nothing (at exits, nothing but the return value)
/// share one `raw_syscalls` event per direction (see the module's
/// documentation). Other probes, probes on a call another probe is on
/// too, and groups of fewer than two calls are left as they are; so is
/// everything on a kernel whose facts lack the `raw_syscalls` events.
pub fn share_syscall_events(
    elaborated: Elaborated,
    facts: &KernelFacts,
    caps: &Capabilities,
) -> Elaborated {
    let Elaborated { mut program, sites } = elaborated;
    let mut candidates: Vec<(usize, Raw, Vec<i64>)> = Vec::new();
    for (index, (probe, site)) in program.probes.iter().zip(&sites).enumerate() {
        if let Some((raw, numbers)) = syscalls_of(probe, site)
            && !depends_on_attach_point(&program, &probe.body)
        {
            candidates.push((index, raw, numbers));
        }
    }
    // Probes on the same call both run at its hit, in program order: they
    // stay on the call's own event, in that order.
    let mut claims: BTreeMap<(Raw, i64), usize> = BTreeMap::new();
    for (_, raw, numbers) in &candidates {
        for &nr in numbers {
            *claims.entry((*raw, nr)).or_default() += 1;
        }
    }
    // Per raw event: the probes (each with its syscall numbers) and how
    // many numbers.
    let mut groups: BTreeMap<Raw, (Vec<Member>, usize)> = BTreeMap::new();
    for (index, raw, numbers) in candidates {
        if numbers.iter().any(|&nr| claims.get(&(raw, nr)) != Some(&1)) {
            continue;
        }
        let (members, count) = groups.entry(raw).or_default();
        *count += numbers.len();
        members.push((index, numbers));
    }
    let mut shared: BTreeMap<usize, (Probe, ProbeSite)> = BTreeMap::new();
    let mut gone = vec![false; program.probes.len()];
    for (raw, (members, count)) in groups {
        if count < MIN_SHARED {
            continue;
        }
        let at = AttachPoint::new(AttachKind::Tracepoint, raw.target());
        let reads_ret = members
            .iter()
            .any(|(index, _)| !program.probes[*index].fetches.is_empty());
        let mut fetches = vec!["$id"];
        if reads_ret {
            fetches.push("$ret");
        }
        let mut requests = Vec::new();
        let mut targets = Vec::new();
        for text in fetches {
            let target = ast::Target {
                address_of: false,
                base: ast::TargetBase::Var(text.to_owned()),
                components: Vec::new(),
            };
            targets.push(resolve_target_as(
                facts,
                &at,
                &target,
                caps.tracepoint_names,
            ));
            requests.push(FetchRequest::Value {
                target,
                text: text.to_owned(),
                location: at.probe_point(),
            });
        }
        if targets.iter().any(Result::is_err) {
            continue;
        }
        let Some(first) = members.first().map(|(index, _)| *index) else {
            continue;
        };
        let probe = merge(&program.probes, &members);
        let site = ProbeSite {
            point: sites[first].point.clone(),
            fetches: requests,
            attach: vec![at],
            targets: vec![targets],
        };
        shared.insert(first, (probe, site));
        for (index, _) in &members[1..] {
            gone[*index] = true;
        }
    }
    if shared.is_empty() {
        return Elaborated { program, sites };
    }
    let mut probes = Vec::with_capacity(program.probes.len());
    let mut new_sites = Vec::with_capacity(sites.len());
    for (index, (probe, site)) in std::mem::take(&mut program.probes)
        .into_iter()
        .zip(sites)
        .enumerate()
    {
        if let Some((probe, site)) = shared.remove(&index) {
            probes.push(probe);
            new_sites.push(site);
        } else if !gone[index] {
            probes.push(probe);
            new_sites.push(site);
        }
    }
    program.probes = probes;
    Elaborated {
        program,
        sites: new_sites,
    }
}

/// The raw event and the syscall numbers of a probe whose attach points
/// are each one system call's entry (or each one's exit) and that fetches
/// nothing but, at exits, the return value (the `ret` field the raw exit
/// event has too).
fn syscalls_of(probe: &Probe, site: &ProbeSite) -> Option<(Raw, Vec<i64>)> {
    if probe.kind != ProbeKind::Event || probe.entry.is_some() || site.attach.is_empty() {
        return None;
    }
    let only_ret = site
        .fetches
        .iter()
        .all(|request| matches!(request, FetchRequest::Value { .. }))
        && site.targets.iter().flatten().all(is_ret_field);
    if !only_ret {
        return None;
    }
    let mut raw = None;
    let mut numbers = Vec::with_capacity(site.attach.len());
    for at in &site.attach {
        let (this, nr) = syscall_at(at)?;
        if *raw.get_or_insert(this) != this || numbers.contains(&nr) {
            return None;
        }
        numbers.push(nr);
    }
    let raw = raw?;
    (raw == Raw::Exit || site.fetches.is_empty()).then_some((raw, numbers))
}

/// Whether a fetch reads a tracepoint's `ret` field as it is.
fn is_ret_field(target: &Result<TargetAccess, TargetError>) -> bool {
    let Ok(access) = target else {
        return false;
    };
    matches!(&access.base, TargetBase::Field { name, .. } if name == "ret")
        && access.loads.is_empty()
        && access.bitfield.is_none()
        && access.address.is_none()
        && !access.pretty
}

/// The raw event and syscall number of an attach point on one system
/// call's entry or exit: its `syscalls` tracepoint, or a kprobe on its
/// `__x64_sys_` function.
fn syscall_at(at: &AttachPoint) -> Option<(Raw, i64)> {
    if at.module.is_some() || at.clone_of.is_some() {
        return None;
    }
    let (raw, event) = match at.kind {
        AttachKind::Tracepoint => {
            let event = at.target.strip_prefix("syscalls:")?;
            if let Some(name) = event.strip_prefix("sys_enter_") {
                (Raw::Enter, name)
            } else {
                (Raw::Exit, event.strip_prefix("sys_exit_")?)
            }
        }
        AttachKind::Kprobe => (Raw::Enter, at.target.strip_prefix("__x64_sys_")?),
        _ => return None,
    };
    Some((raw, tapmatrix_ir::syscalls::number_of_event(event)?))
}

/// Whether a handler (or a function it calls) reads where it fired, or
/// saves `@entry` values: then it keeps its own event.
fn depends_on_attach_point(program: &Program, body: &Block) -> bool {
    let found = std::cell::Cell::new(false);
    let mut calls: Vec<u32> = Vec::new();
    let check = |block: &Block, calls: &mut Vec<u32>| {
        tapmatrix_ir::visit::walk_block(
            block,
            &mut |stmt| {
                if matches!(stmt, Stmt::EntrySave { .. }) {
                    found.set(true);
                }
            },
            &mut |expr| match expr {
                Expr::Builtin { builtin, .. } => {
                    if matches!(
                        builtin,
                        Builtin::Pp
                            | Builtin::Probefunc
                            | Builtin::Ppfunc
                            | Builtin::IsReturn
                            | Builtin::Backtrace
                    ) {
                        found.set(true);
                    }
                }
                Expr::Call { function, .. } => calls.push(*function),
                _ => {}
            },
        );
    };
    check(body, &mut calls);
    let mut seen = vec![false; program.functions.len()];
    while let Some(function) = calls.pop() {
        let Some(done) = seen.get_mut(function as usize) else {
            continue;
        };
        if std::mem::replace(done, true) {
            continue;
        }
        if let Some(f) = program.functions.get(function as usize) {
            check(&f.body, &mut calls);
        }
    }
    found.get()
}

/// One probe for `members` (index, syscall numbers): locals shared by type
/// (one member's handler runs per hit, and locals start afresh at each),
/// the number in fetch slot 0 (the return value, where a member reads it,
/// in slot 1), the guards on the task every handler starts with (once), a
/// guard on the numbers, then a dispatch on the number to each member's
/// handler.
fn merge(probes: &[Probe], members: &[Member]) -> Probe {
    let mut locals: Vec<ScalarType> = Vec::new();
    let mut leaves: Vec<(i64, Block)> = Vec::new();
    let mut names: Vec<&str> = Vec::new();
    let mut reads_ret = false;
    for (index, numbers) in members {
        let Some(probe) = probes.get(*index) else {
            continue;
        };
        if !names.contains(&probe.name.as_str()) {
            names.push(&probe.name);
        }
        let mut taken = vec![false; locals.len()];
        let mut map = Vec::with_capacity(probe.locals.len());
        for ty in &probe.locals {
            let slot = match (0..locals.len()).find(|&j| !taken[j] && locals[j] == *ty) {
                Some(j) => j,
                None => {
                    locals.push(*ty);
                    taken.push(false);
                    locals.len() - 1
                }
            };
            taken[slot] = true;
            map.push(u32::try_from(slot).unwrap_or(u32::MAX));
        }
        let mut body = probe.body.clone();
        renumber_locals(&mut body, &map);
        // Every slot a member fetches is the return value: slot 1.
        tapmatrix_ir::visit::walk_block_mut(&mut body, &mut |expr| {
            if let Expr::Fetch(slot) = expr {
                *slot = 1;
            }
        });
        reads_ret |= !probe.fetches.is_empty();
        for &nr in numbers {
            leaves.push((nr, body.clone()));
        }
    }
    leaves.sort_by_key(|&(nr, _)| nr);
    let numbers: Vec<i64> = leaves.iter().map(|&(nr, _)| nr).collect();
    // Guards every handler starts with run once, first.
    let hoisted = shared_guards(&mut leaves);
    let mut body: Vec<Stmt> = hoisted;
    if let Some(cond) = in_numbers(&numbers) {
        body.push(Stmt::If {
            cond: Expr::Unary {
                op: UnaryOp::Not,
                operand: Box::new(cond),
            },
            then: vec![Stmt::Next],
            otherwise: Vec::new(),
        });
    }
    body.push(dispatch(leaves));
    Probe {
        kind: ProbeKind::Event,
        name: names.join(", "),
        locals,
        fetches: if reads_ret {
            vec![ScalarType::Long; 2]
        } else {
            vec![ScalarType::Long]
        },
        body,
        entry: None,
    }
}

/// The guards on the task (`if (pid() != target()) next`) every leaf
/// starts with alike, taken out of the leaves: they run once, before the
/// dispatch (and before the guard on the numbers, so that the BPF back end
/// runs them before anything is fetched or forwarded; tracefs pushes the
/// numbers down past them). A leaf starts with them when only assignments
/// of pure values to locals come before them (an alias's `name = "read"`):
/// a guard reads only the task and constants, so it cannot fail nor change
/// anything, and running it before such assignments keeps what happens.
fn shared_guards(leaves: &mut [(i64, Block)]) -> Vec<Stmt> {
    let leading = |leaf: &Block| -> Vec<usize> {
        let mut guards = Vec::new();
        for (i, stmt) in leaf.iter().enumerate() {
            if task_guard(stmt) {
                guards.push(i);
            } else if !local_assignment(stmt) {
                break;
            }
        }
        guards
    };
    let Some((_, first)) = leaves.first() else {
        return Vec::new();
    };
    let candidates: Vec<Stmt> = leading(first).iter().map(|&i| first[i].clone()).collect();
    let mut common = candidates.len();
    let positions: Vec<Vec<usize>> = leaves.iter().map(|(_, leaf)| leading(leaf)).collect();
    for ((_, leaf), at) in leaves.iter().zip(&positions) {
        let same = candidates
            .iter()
            .zip(at)
            .take_while(|(guard, i)| leaf.get(**i) == Some(*guard))
            .count();
        common = common.min(same);
    }
    if common == 0 {
        return Vec::new();
    }
    for ((_, leaf), at) in leaves.iter_mut().zip(&positions) {
        for &i in at[..common].iter().rev() {
            leaf.remove(i);
        }
    }
    candidates[..common].to_vec()
}

/// `local = value` where `value` has no effect and cannot fail.
fn local_assignment(stmt: &Stmt) -> bool {
    fn pure(e: &Expr) -> bool {
        match e {
            Expr::Long(_) | Expr::Str(_) | Expr::Local(_) | Expr::Fetch(_) => true,
            Expr::Unary { operand, .. } => pure(operand),
            Expr::CompareLong { lhs, rhs, .. } | Expr::CompareStr { lhs, rhs, .. } => {
                pure(lhs) && pure(rhs)
            }
            Expr::Concat(a, b) | Expr::And(a, b) | Expr::Or(a, b) => pure(a) && pure(b),
            _ => false,
        }
    }
    matches!(stmt, Stmt::Expr(Expr::Assign { target, op: None, value, .. })
        if matches!(**target, LValue::Local(_)) && pure(value))
}

/// `if (cond) next` where `cond` compares constants and what the current
/// task answers alike anywhere in its handler.
fn task_guard(stmt: &Stmt) -> bool {
    fn reads_task(e: &Expr) -> bool {
        match e {
            Expr::Long(_) | Expr::Str(_) => true,
            Expr::CompareLong { lhs, rhs, .. } | Expr::CompareStr { lhs, rhs, .. } => {
                reads_task(lhs) && reads_task(rhs)
            }
            Expr::And(a, b) | Expr::Or(a, b) => reads_task(a) && reads_task(b),
            Expr::Unary { operand, .. } => reads_task(operand),
            Expr::Builtin { builtin, args, .. } => {
                args.is_empty() && builtin.is_current_task_scalar()
            }
            _ => false,
        }
    }
    matches!(stmt, Stmt::If { cond, then, otherwise }
        if otherwise.is_empty() && matches!(then.as_slice(), [Stmt::Next]) && reads_task(cond))
}

/// The syscall number of the hit.
fn nr() -> Box<Expr> {
    Box::new(Expr::Fetch(0))
}

fn compare(op: CompareOp, value: i64) -> Expr {
    Expr::CompareLong {
        op,
        lhs: nr(),
        rhs: Box::new(Expr::Long(value)),
    }
}

/// `nr` is one of `numbers` (sorted), as ranges; `None` when they make
/// more than [`MAX_GUARD_RANGES`] ranges.
fn in_numbers(numbers: &[i64]) -> Option<Expr> {
    let mut ranges: Vec<(i64, i64)> = Vec::new();
    for &n in numbers {
        match ranges.last_mut() {
            Some((_, hi)) if *hi + 1 == n => *hi = n,
            _ => ranges.push((n, n)),
        }
    }
    if ranges.is_empty() || ranges.len() > MAX_GUARD_RANGES {
        return None;
    }
    let clauses: Vec<Expr> = ranges
        .into_iter()
        .map(|(lo, hi)| {
            if lo == hi {
                compare(CompareOp::Eq, lo)
            } else {
                Expr::And(
                    Box::new(compare(CompareOp::Ge, lo)),
                    Box::new(compare(CompareOp::Le, hi)),
                )
            }
        })
        .collect();
    Some(any(clauses))
}

/// `a || b || ...` as a balanced tree (shallow for the filter's parser).
fn any(mut clauses: Vec<Expr>) -> Expr {
    if clauses.len() <= 1 {
        return clauses.pop().unwrap_or(Expr::Long(0));
    }
    let right = clauses.split_off(clauses.len() / 2);
    Expr::Or(Box::new(any(clauses)), Box::new(any(right)))
}

/// A binary search on the number down to each leaf's handler (depth about
/// log2 of the leaves, not one `else if` per call).
fn dispatch(mut leaves: Vec<(i64, Block)>) -> Stmt {
    if leaves.len() <= 1 {
        let Some((nr, body)) = leaves.pop() else {
            return Stmt::Block(Vec::new());
        };
        return Stmt::If {
            cond: compare(CompareOp::Eq, nr),
            then: body,
            otherwise: Vec::new(),
        };
    }
    let right = leaves.split_off(leaves.len() / 2);
    let pivot = right.first().map_or(0, |&(nr, _)| nr);
    Stmt::If {
        cond: compare(CompareOp::Lt, pivot),
        then: vec![dispatch(leaves)],
        otherwise: vec![dispatch(right)],
    }
}

/// Renumbers the locals of a handler: local `i` becomes `map[i]`.
fn renumber_locals(body: &mut Block, map: &[u32]) {
    let slot = |i: &mut u32| {
        if let Some(&new) = map.get(*i as usize) {
            *i = new;
        }
    };
    let lvalue = |lv: &mut LValue| {
        if let LValue::Local(i) = lv {
            slot(i);
        }
    };
    // Expressions, nested blocks' included.
    tapmatrix_ir::visit::walk_block_mut(body, &mut |expr| match expr {
        Expr::Local(i) => slot(i),
        Expr::Assign { target, .. } | Expr::Crement { target, .. } => lvalue(target),
        Expr::Stat { stat, .. } | Expr::Hist { stat, .. } | Expr::HistBucket { stat, .. } => {
            lvalue(stat);
        }
        _ => {}
    });
    statements(body, &slot);
}

/// Renumbers the locals that statements name themselves (`foreach` keys,
/// `catch` variables, `delete` and `<<<` targets) through `slot`.
fn statements(block: &mut Block, slot: &dyn Fn(&mut u32)) {
    for stmt in block {
        match stmt {
            Stmt::Foreach {
                keys, value, body, ..
            } => {
                keys.iter_mut().for_each(slot);
                if let Some(value) = value {
                    slot(value);
                }
                statements(body, slot);
            }
            Stmt::ForeachHist { bucket, body, .. } => {
                slot(bucket);
                statements(body, slot);
            }
            Stmt::Try {
                body,
                catch_var,
                catch,
            } => {
                if let Some(var) = catch_var {
                    slot(var);
                }
                statements(body, slot);
                statements(catch, slot);
            }
            Stmt::Delete(LValue::Local(i))
            | Stmt::Aggregate {
                target: LValue::Local(i),
                ..
            } => slot(i),
            Stmt::Block(inner) | Stmt::Loop { body: inner, .. } => statements(inner, slot),
            Stmt::If {
                then, otherwise, ..
            } => {
                statements(then, slot);
                statements(otherwise, slot);
            }
            _ => {}
        }
    }
}
