//! SystemTap's pass-2 optimization that matters to the back end: an
//! assignment to a local that nothing reads, of a value without side
//! effects, is elided (alias prologues set many variables a handler never
//! reads), and the fetch slots no longer read are dropped, so an event
//! gathers only what its handler uses.

use std::collections::HashSet;

use tapmatrix_ir::{BinaryOp, Block, Builtin, Expr, LValue, Probe, Stmt};

use crate::FetchRequest;

/// Elides dead stores to locals in a probe, then drops unread fetch slots
/// (renumbering the rest) from the probe and its requests.
pub(crate) fn prune_probe(probe: &mut Probe, fetches: &mut Vec<FetchRequest>) {
    loop {
        let mut read = HashSet::new();
        for stmt in &mut probe.body {
            visit_stmt(stmt, &mut |e| reads(e, &mut read));
        }
        if !remove_dead_stores(&mut probe.body, &read) {
            break;
        }
    }
    let mut used = HashSet::new();
    for stmt in &mut probe.body {
        visit_stmt(stmt, &mut |e| {
            if let Expr::Fetch(slot) = e {
                used.insert(*slot);
            }
        });
    }
    let mut remap = Vec::with_capacity(fetches.len());
    let mut next = 0u32;
    for slot in 0..fetches.len() {
        let keep = u32::try_from(slot).is_ok_and(|s| used.contains(&s));
        remap.push(keep.then(|| {
            next += 1;
            next - 1
        }));
    }
    for stmt in &mut probe.body {
        visit_stmt(stmt, &mut |e| {
            if let Expr::Fetch(slot) = e
                && let Some(Some(new)) = remap.get(*slot as usize)
            {
                *slot = *new;
            }
        });
    }
    let mut index = 0;
    fetches.retain(|_| {
        let keep = remap.get(index).is_some_and(Option::is_some);
        index += 1;
        keep
    });
    let mut index = 0;
    probe.fetches.retain(|_| {
        let keep = remap.get(index).is_some_and(Option::is_some);
        index += 1;
        keep
    });
}

/// Records the locals an expression node reads.
fn reads(e: &Expr, read: &mut HashSet<u32>) {
    match e {
        Expr::Local(i) => {
            read.insert(*i);
        }
        Expr::Crement { target, .. } => {
            if let LValue::Local(i) = **target {
                read.insert(i);
            }
        }
        Expr::Assign {
            target, op, concat, ..
        } if op.is_some() || *concat => {
            if let LValue::Local(i) = **target {
                read.insert(i);
            }
        }
        _ => {}
    }
}

/// Removes `local = pure` statements whose local is never read, and what
/// that leaves without effect (a pure expression statement, an `if` with
/// a pure condition and empty branches, an empty block); whether any was.
fn remove_dead_stores(block: &mut Block, read: &HashSet<u32>) -> bool {
    let mut removed = false;
    for stmt in block.iter_mut() {
        match stmt {
            Stmt::Block(inner) => removed |= remove_dead_stores(inner, read),
            Stmt::If {
                then, otherwise, ..
            } => {
                removed |= remove_dead_stores(then, read);
                removed |= remove_dead_stores(otherwise, read);
            }
            Stmt::Loop { body, .. }
            | Stmt::Foreach { body, .. }
            | Stmt::ForeachHist { body, .. } => removed |= remove_dead_stores(body, read),
            Stmt::Try { body, catch, .. } => {
                removed |= remove_dead_stores(body, read);
                removed |= remove_dead_stores(catch, read);
            }
            _ => {}
        }
    }
    let before = block.len();
    block.retain(|stmt| match stmt {
        Stmt::Expr(Expr::Assign {
            target,
            op: None,
            concat: false,
            value,
            ..
        }) => !(matches!(**target, LValue::Local(i) if !read.contains(&i)) && pure(value)),
        Stmt::Expr(e) => !pure(e),
        Stmt::If {
            cond,
            then,
            otherwise,
        } => !(then.is_empty() && otherwise.is_empty() && pure(cond)),
        Stmt::Block(inner) => !inner.is_empty(),
        _ => true,
    });
    removed || block.len() != before
}

/// Whether evaluating `e` can have no effect (no write, no output, no
/// run-time error).
fn pure(e: &Expr) -> bool {
    match e {
        Expr::Long(_) | Expr::Str(_) | Expr::Local(_) | Expr::Global(_) | Expr::Fetch(_) => true,
        Expr::Index { keys, .. } => keys.iter().all(pure),
        Expr::In { keys, .. } => keys.iter().flatten().all(pure),
        Expr::Unary { operand, .. } | Expr::LongToStr(operand) => pure(operand),
        Expr::Binary { op, lhs, rhs, .. } => {
            !matches!(op, BinaryOp::Div | BinaryOp::Mod) && pure(lhs) && pure(rhs)
        }
        Expr::CompareLong { lhs, rhs, .. }
        | Expr::CompareStr { lhs, rhs, .. }
        | Expr::Concat(lhs, rhs)
        | Expr::And(lhs, rhs)
        | Expr::Or(lhs, rhs) => pure(lhs) && pure(rhs),
        Expr::Ternary {
            cond,
            then,
            otherwise,
        } => pure(cond) && pure(then) && pure(otherwise),
        Expr::Builtin { builtin, args, .. } => {
            matches!(
                builtin,
                Builtin::Pid
                    | Builtin::Tid
                    | Builtin::Ppid
                    | Builtin::Uid
                    | Builtin::Gid
                    | Builtin::Execname
                    | Builtin::Cpu
                    | Builtin::Probefunc
                    | Builtin::Pp
                    | Builtin::Ppfunc
                    | Builtin::Target
                    | Builtin::IsReturn
                    | Builtin::GettimeofdayS
                    | Builtin::GettimeofdayMs
                    | Builtin::GettimeofdayUs
                    | Builtin::GettimeofdayNs
                    | Builtin::ClockNs
                    | Builtin::Strlen
                    | Builtin::Isinstr
                    | Builtin::Strpos
                    | Builtin::TextStr
                    | Builtin::StrReplace
                    | Builtin::StringQuoted
                    | Builtin::Abs
                    | Builtin::ErrnoStr
            ) && args.iter().all(pure)
        }
        _ => false,
    }
}

/// Calls `f` on every expression of a statement, outer nodes first.
fn visit_stmt(stmt: &mut Stmt, f: &mut dyn FnMut(&mut Expr)) {
    match stmt {
        Stmt::Expr(e) | Stmt::Return(Some(e)) => visit_expr(e, f),
        Stmt::Block(block) => visit_block(block, f),
        Stmt::If {
            cond,
            then,
            otherwise,
        } => {
            visit_expr(cond, f);
            visit_block(then, f);
            visit_block(otherwise, f);
        }
        Stmt::Loop { cond, body, step } => {
            if let Some(cond) = cond {
                visit_expr(cond, f);
            }
            visit_block(body, f);
            if let Some(step) = step {
                visit_expr(step, f);
            }
        }
        Stmt::Foreach {
            slice, limit, body, ..
        } => {
            for key in slice.iter_mut().flatten() {
                visit_expr(key, f);
            }
            if let Some(limit) = limit {
                visit_expr(limit, f);
            }
            visit_block(body, f);
        }
        Stmt::ForeachHist { stat, body, .. } => {
            visit_expr(stat, f);
            visit_block(body, f);
        }
        Stmt::Delete(target) => visit_lvalue(target, f),
        Stmt::Aggregate { target, value } => {
            visit_lvalue(target, f);
            visit_expr(value, f);
        }
        Stmt::Try { body, catch, .. } => {
            visit_block(body, f);
            visit_block(catch, f);
        }
        Stmt::Break | Stmt::Continue | Stmt::Next | Stmt::Return(None) => {}
    }
}

fn visit_block(block: &mut Block, f: &mut dyn FnMut(&mut Expr)) {
    for stmt in block {
        visit_stmt(stmt, f);
    }
}

fn visit_lvalue(lvalue: &mut LValue, f: &mut dyn FnMut(&mut Expr)) {
    if let LValue::Index { keys, .. } = lvalue {
        for key in keys.iter_mut().flatten() {
            visit_expr(key, f);
        }
    }
}

fn visit_expr(e: &mut Expr, f: &mut dyn FnMut(&mut Expr)) {
    f(e);
    match e {
        Expr::Long(_) | Expr::Str(_) | Expr::Local(_) | Expr::Global(_) | Expr::Fetch(_) => {}
        Expr::Index { keys, .. } => keys.iter_mut().for_each(|k| visit_expr(k, f)),
        Expr::In { keys, .. } => keys.iter_mut().flatten().for_each(|k| visit_expr(k, f)),
        Expr::Unary { operand, .. } | Expr::LongToStr(operand) => visit_expr(operand, f),
        Expr::Binary { lhs, rhs, .. }
        | Expr::CompareLong { lhs, rhs, .. }
        | Expr::CompareStr { lhs, rhs, .. }
        | Expr::Concat(lhs, rhs)
        | Expr::And(lhs, rhs)
        | Expr::Or(lhs, rhs) => {
            visit_expr(lhs, f);
            visit_expr(rhs, f);
        }
        Expr::Ternary {
            cond,
            then,
            otherwise,
        } => {
            visit_expr(cond, f);
            visit_expr(then, f);
            visit_expr(otherwise, f);
        }
        Expr::Regex { operand, .. } => visit_expr(operand, f),
        Expr::Assign { target, value, .. } => {
            visit_lvalue(target, f);
            visit_expr(value, f);
        }
        Expr::Crement { target, .. } => visit_lvalue(target, f),
        Expr::Call { args, .. } | Expr::Builtin { args, .. } | Expr::Printf { args, .. } => {
            args.iter_mut().for_each(|a| visit_expr(a, f));
        }
        Expr::Stat { stat, .. } | Expr::Hist { stat, .. } => visit_lvalue(stat, f),
        Expr::HistBucket { stat, bucket, .. } => {
            visit_lvalue(stat, f);
            visit_expr(bucket, f);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tapmatrix_ir::{Loc, ProbeKind, ScalarType};
    use tapmatrix_syntax::ast::{Target, TargetBase};

    fn value(name: &str) -> FetchRequest {
        FetchRequest::Value {
            target: Target {
                address_of: false,
                base: TargetBase::Var(name.to_owned()),
                components: Vec::new(),
            },
            text: name.to_owned(),
            location: String::new(),
        }
    }

    fn assign(local: u32, value: Expr) -> Stmt {
        Stmt::Expr(Expr::Assign {
            target: Box::new(LValue::Local(local)),
            op: None,
            concat: false,
            value: Box::new(value),
            loc: Loc {
                file: 0,
                line: 1,
                col: 1,
            },
        })
    }

    #[test]
    fn unread_locals_lose_their_stores_and_fetches() {
        let mut probe = Probe {
            kind: ProbeKind::Event,
            name: "p".to_owned(),
            locals: vec![ScalarType::Long; 3],
            fetches: vec![ScalarType::Long; 3],
            body: vec![
                assign(0, Expr::Fetch(0)),
                assign(1, Expr::Fetch(1)),
                assign(2, Expr::Fetch(2)),
                assign(
                    1,
                    Expr::Binary {
                        op: BinaryOp::Add,
                        lhs: Box::new(Expr::Local(2)),
                        rhs: Box::new(Expr::Long(1)),
                        loc: Loc {
                            file: 0,
                            line: 1,
                            col: 1,
                        },
                    },
                ),
                Stmt::Expr(Expr::Builtin {
                    builtin: Builtin::Println,
                    args: vec![Expr::LongToStr(Box::new(Expr::Local(1)))],
                    loc: Loc {
                        file: 0,
                        line: 1,
                        col: 1,
                    },
                }),
            ],
        };
        let mut fetches = vec![value("$a"), value("$b"), value("$c")];
        prune_probe(&mut probe, &mut fetches);
        // `0` is never read: its store goes, and `$a` with it; `1` and `2` are read.
        assert_eq!(probe.body.len(), 4);
        assert_eq!(fetches, [value("$b"), value("$c")]);
        assert_eq!(probe.fetches.len(), 2);
        assert_eq!(probe.body[0], assign(1, Expr::Fetch(0)));
        assert_eq!(probe.body[1], assign(2, Expr::Fetch(1)));
    }

    #[test]
    fn what_a_dead_store_leaves_behind_goes_too() {
        // `if (@defined($a)) x = $a else x = 0` with `x` unread.
        let mut probe = Probe {
            kind: ProbeKind::Event,
            name: "p".to_owned(),
            locals: vec![ScalarType::Long],
            fetches: vec![ScalarType::Long; 2],
            body: vec![Stmt::If {
                cond: Expr::Fetch(0),
                then: vec![assign(0, Expr::Fetch(1))],
                otherwise: vec![assign(0, Expr::Long(0))],
            }],
        };
        let mut fetches = vec![value("$a"), value("$a")];
        prune_probe(&mut probe, &mut fetches);
        assert!(probe.body.is_empty());
        assert!(fetches.is_empty() && probe.fetches.is_empty());
    }

    #[test]
    fn stores_with_effects_stay() {
        let division = Expr::Binary {
            op: BinaryOp::Div,
            lhs: Box::new(Expr::Fetch(0)),
            rhs: Box::new(Expr::Long(0)),
            loc: Loc {
                file: 0,
                line: 1,
                col: 1,
            },
        };
        let mut probe = Probe {
            kind: ProbeKind::Event,
            name: "p".to_owned(),
            locals: vec![ScalarType::Long],
            fetches: vec![ScalarType::Long],
            body: vec![assign(0, division)],
        };
        let mut fetches = vec![value("$a")];
        prune_probe(&mut probe, &mut fetches);
        assert_eq!(probe.body.len(), 1);
        assert_eq!(fetches.len(), 1);
    }
}
