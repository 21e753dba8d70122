//! SystemTap's pass-2 optimization that matters to the back end: an
//! assignment to a local that nothing reads, of a value without side
//! effects, is elided (alias prologues set many variables a handler never
//! reads), and the fetch slots no longer read are dropped, so an event
//! gathers only what its handler uses.

use std::collections::HashSet;

use tapmatrix_ir::visit::walk_stmt_mut;
use tapmatrix_ir::{BinaryOp, Block, Builtin, Expr, LValue, Probe, Stmt};

use crate::FetchRequest;

/// Elides dead stores to locals in a probe, then drops unread fetch slots
/// (renumbering the rest) from the probe and its requests.
pub(crate) fn prune_probe(probe: &mut Probe, fetches: &mut Vec<FetchRequest>) {
    loop {
        let mut read = HashSet::new();
        for stmt in &mut probe.body {
            walk_stmt_mut(stmt, &mut |e| reads(e, &mut read));
        }
        if !remove_dead_stores(&mut probe.body, &read) {
            break;
        }
    }
    let mut used = HashSet::new();
    for stmt in &mut probe.body {
        walk_stmt_mut(stmt, &mut |e| {
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
        walk_stmt_mut(stmt, &mut |e| {
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
        Expr::Long(_)
        | Expr::Str(_)
        | Expr::Local(_)
        | Expr::Global(_)
        | Expr::Fetch(_)
        | Expr::EntryValue(_) => true,
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
                    | Builtin::SyscallName
                    | Builtin::Ctime
                    | Builtin::TaskCurrent
                    | Builtin::Backtrace
                    | Builtin::Ubacktrace
                    | Builtin::CmdlineStr
                    | Builtin::UserMode
                    | Builtin::Addr
                    | Builtin::Uaddr
                    | Builtin::Symname
                    | Builtin::Symdata
            ) && args.iter().all(pure)
        }
        _ => false,
    }
}

/// Calls `f` on every expression of a statement, outer nodes first.
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
            entry: None,
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
            entry: None,
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
            entry: None,
        };
        let mut fetches = vec![value("$a")];
        prune_probe(&mut probe, &mut fetches);
        assert_eq!(probe.body.len(), 1);
        assert_eq!(fetches.len(), 1);
    }
}
