//! Filter push-down: the guards at the top of a handler that ftrace can
//! evaluate become the event's filter, so that hits the handler would
//! drop at once never leave the kernel.
//!
//! Only guards that come before any side effect are pushed (assignments to
//! locals are not side effects; a guard ftrace cannot evaluate but that
//! has none and cannot fail is skipped over), and the handler keeps its
//! own check: the filter only ever drops hits the handler would skip with
//! `next`.

use tapmatrix_ir::{Builtin, CompareOp, Expr, LValue, Stmt};

/// The filter implied by the leading guards of `body`, with `field(slot)`
/// naming the event field of a fetch slot. `None` when nothing is pushed.
pub fn pushdown(body: &[Stmt], field: &dyn Fn(u32) -> Option<String>) -> Option<String> {
    let mut keep: Vec<String> = Vec::new();
    for stmt in body {
        match stmt {
            Stmt::If {
                cond,
                then,
                otherwise,
            } if otherwise.is_empty() && matches!(then.as_slice(), [Stmt::Next]) => {
                // `if (C) next`: keep the hits where C is false. A guard
                // ftrace cannot evaluate but that has no effect and cannot
                // fail (`pid() != target()`) is left to the handler, and
                // the guards after it are still pushed: a hit they drop,
                // the handler drops too.
                match translate(cond, true, field) {
                    Some(filter) => keep.push(filter),
                    None if is_pure(cond) => {}
                    None => break,
                }
            }
            Stmt::Expr(Expr::Assign { target, value, .. })
                if matches!(**target, LValue::Local(_)) && is_pure(value) => {}
            _ => break,
        }
    }
    match keep.len() {
        0 => None,
        1 => keep.pop(),
        _ => Some(
            keep.iter()
                .map(|f| format!("({f})"))
                .collect::<Vec<_>>()
                .join(" && "),
        ),
    }
}

/// Whether evaluating `expr` can have no effect but its value.
fn is_pure(expr: &Expr) -> bool {
    match expr {
        Expr::Long(_) | Expr::Str(_) | Expr::Local(_) | Expr::Global(_) | Expr::Fetch(_) => true,
        Expr::Unary { operand, .. } => is_pure(operand),
        Expr::CompareLong { lhs, rhs, .. } | Expr::CompareStr { lhs, rhs, .. } => {
            is_pure(lhs) && is_pure(rhs)
        }
        Expr::Concat(a, b) | Expr::And(a, b) | Expr::Or(a, b) => is_pure(a) && is_pure(b),
        // What the current task answers.
        Expr::Builtin { builtin, args, .. } => args.is_empty() && builtin.is_current_task_scalar(),
        _ => false,
    }
}

/// `cond` (or its negation when `negate`) as an ftrace filter.
fn translate(cond: &Expr, negate: bool, field: &dyn Fn(u32) -> Option<String>) -> Option<String> {
    match cond {
        Expr::And(a, b) | Expr::Or(a, b) => {
            // De Morgan when negated.
            let and = matches!(cond, Expr::And(..)) != negate;
            let a = translate(a, negate, field)?;
            let b = translate(b, negate, field)?;
            Some(format!("({a}) {} ({b})", if and { "&&" } else { "||" }))
        }
        Expr::Unary {
            op: tapmatrix_ir::UnaryOp::Not,
            operand,
        } => translate(operand, !negate, field),
        Expr::CompareLong { op, lhs, rhs } => {
            let op = if negate { invert(*op) } else { *op };
            let (lhs, rhs) = (number(lhs, field)?, number(rhs, field)?);
            // A filter compares a field with a constant: field first.
            match (lhs, rhs) {
                (Operand::Field(f), Operand::Constant(c)) => Some(format!("{f} {} {c}", text(op))),
                (Operand::Constant(c), Operand::Field(f)) => {
                    Some(format!("{f} {} {c}", text(swap(op))))
                }
                _ => None,
            }
        }
        Expr::CompareStr { op, lhs, rhs } if matches!(op, CompareOp::Eq | CompareOp::Ne) => {
            let op = if negate { invert(*op) } else { *op };
            match (&**lhs, &**rhs) {
                (Expr::Fetch(slot), Expr::Str(s)) | (Expr::Str(s), Expr::Fetch(slot))
                    if !s.contains(['"', '\\', '*', '?', '[']) =>
                {
                    Some(format!("{} {} \"{s}\"", field(*slot)?, text(op)))
                }
                _ => None,
            }
        }
        _ => None,
    }
}

/// One side of a numeric comparison in a filter.
enum Operand {
    Field(String),
    Constant(String),
}

fn number(expr: &Expr, field: &dyn Fn(u32) -> Option<String>) -> Option<Operand> {
    match expr {
        Expr::Long(n) => Some(Operand::Constant(n.to_string())),
        Expr::Fetch(slot) => field(*slot).map(Operand::Field),
        // The task's thread id is every event's `common_pid`.
        Expr::Builtin {
            builtin: Builtin::Tid,
            args,
            ..
        } if args.is_empty() => Some(Operand::Field("common_pid".to_owned())),
        // Replaced by the agent with the workload's pid.
        Expr::Builtin {
            builtin: Builtin::Target,
            args,
            ..
        } if args.is_empty() => Some(Operand::Constant("${target}".to_owned())),
        _ => None,
    }
}

fn invert(op: CompareOp) -> CompareOp {
    match op {
        CompareOp::Eq => CompareOp::Ne,
        CompareOp::Ne => CompareOp::Eq,
        CompareOp::Lt => CompareOp::Ge,
        CompareOp::Ge => CompareOp::Lt,
        CompareOp::Gt => CompareOp::Le,
        CompareOp::Le => CompareOp::Gt,
    }
}

fn swap(op: CompareOp) -> CompareOp {
    match op {
        CompareOp::Lt => CompareOp::Gt,
        CompareOp::Gt => CompareOp::Lt,
        CompareOp::Le => CompareOp::Ge,
        CompareOp::Ge => CompareOp::Le,
        other => other,
    }
}

fn text(op: CompareOp) -> &'static str {
    match op {
        CompareOp::Eq => "==",
        CompareOp::Ne => "!=",
        CompareOp::Lt => "<",
        CompareOp::Le => "<=",
        CompareOp::Gt => ">",
        CompareOp::Ge => ">=",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tapmatrix_ir::{Loc, UnaryOp};

    const LOC: Loc = Loc {
        file: 0,
        line: 1,
        col: 1,
    };

    fn guard(cond: Expr) -> Stmt {
        Stmt::If {
            cond,
            then: vec![Stmt::Next],
            otherwise: Vec::new(),
        }
    }

    fn builtin(builtin: Builtin) -> Expr {
        Expr::Builtin {
            builtin,
            args: Vec::new(),
            loc: LOC,
        }
    }

    fn field(slot: u32) -> Option<String> {
        Some(format!("f{slot}"))
    }

    #[test]
    fn leading_guards_become_the_filter() {
        let body = vec![
            Stmt::Expr(Expr::Assign {
                target: Box::new(LValue::Local(0)),
                op: None,
                concat: false,
                value: Box::new(Expr::Fetch(1)),
                loc: LOC,
            }),
            guard(Expr::CompareLong {
                op: CompareOp::Ne,
                lhs: Box::new(builtin(Builtin::Tid)),
                rhs: Box::new(builtin(Builtin::Target)),
            }),
            guard(Expr::Or(
                Box::new(Expr::CompareLong {
                    op: CompareOp::Lt,
                    lhs: Box::new(Expr::Fetch(0)),
                    rhs: Box::new(Expr::Long(0)),
                }),
                Box::new(Expr::CompareStr {
                    op: CompareOp::Eq,
                    lhs: Box::new(Expr::Fetch(2)),
                    rhs: Box::new(Expr::Str("sh".to_owned())),
                }),
            )),
            Stmt::Expr(builtin(Builtin::Exit)),
            guard(Expr::CompareLong {
                op: CompareOp::Eq,
                lhs: Box::new(Expr::Fetch(0)),
                rhs: Box::new(Expr::Long(5)),
            }),
        ];
        assert_eq!(
            pushdown(&body, &field).as_deref(),
            Some("(common_pid == ${target}) && ((f0 >= 0) && (f2 != \"sh\"))")
        );
    }

    #[test]
    fn what_ftrace_cannot_evaluate_stays_in_the_handler() {
        // pid() is the thread group id: no event field holds it.
        let by_pid = guard(Expr::CompareLong {
            op: CompareOp::Ne,
            lhs: Box::new(builtin(Builtin::Pid)),
            rhs: Box::new(builtin(Builtin::Target)),
        });
        assert_eq!(pushdown(&[by_pid], &field), None);
        let negated = guard(Expr::Unary {
            op: UnaryOp::Not,
            operand: Box::new(Expr::CompareLong {
                op: CompareOp::Gt,
                lhs: Box::new(Expr::Long(3)),
                rhs: Box::new(Expr::Fetch(0)),
            }),
        });
        assert_eq!(pushdown(&[negated], &field).as_deref(), Some("f0 < 3"));
    }

    #[test]
    fn guards_after_one_ftrace_cannot_evaluate_are_still_pushed() {
        let by_pid = guard(Expr::CompareLong {
            op: CompareOp::Ne,
            lhs: Box::new(builtin(Builtin::Pid)),
            rhs: Box::new(builtin(Builtin::Target)),
        });
        let by_number = guard(Expr::CompareLong {
            op: CompareOp::Ne,
            lhs: Box::new(Expr::Fetch(0)),
            rhs: Box::new(Expr::Long(257)),
        });
        assert_eq!(
            pushdown(&[by_pid, by_number.clone()], &field).as_deref(),
            Some("f0 == 257")
        );
        // A guard that calls a function may fail or have effects: nothing
        // after it is pushed.
        let by_call = guard(Expr::Call {
            function: 0,
            args: Vec::new(),
            loc: LOC,
        });
        assert_eq!(pushdown(&[by_call, by_number], &field), None);
    }
}
