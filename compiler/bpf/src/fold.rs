//! What the compiler knows of a value before the program runs: literals,
//! and the parameters of an inlined function that its call binds to a
//! known value and its body never assigns. A condition it knows is not
//! emitted, and neither is the branch it never takes: SystemTap's tapsets
//! pass flags as literals (`_struct_sockaddr_u_impl(addr, len, 1)`), and
//! the code for the flags not passed was most of such a program, which the
//! kernel verifies, compiles and keeps for every script that calls it.

use tapmatrix_ir::visit::walk_block;
use tapmatrix_ir::{BinaryOp, CompareOp, Expr, LValue, Stmt, UnaryOp};

use crate::codegen::Gen;

impl Gen<'_> {
    /// The value of long expression `e`, when it is known here. Division
    /// and out-of-range shifts are left to the program (their run-time
    /// errors and the kernel's semantics stay theirs).
    pub(crate) fn fold(&self, e: &Expr) -> Option<i64> {
        Some(match e {
            Expr::Long(n) => *n,
            Expr::Local(i) => self.inlined.last()?.known.get(*i as usize).copied()??,
            Expr::Unary { op, operand } => {
                let v = self.fold(operand)?;
                match op {
                    UnaryOp::Neg => v.wrapping_neg(),
                    UnaryOp::Not => i64::from(v == 0),
                    UnaryOp::BitNot => !v,
                }
            }
            Expr::Binary { op, lhs, rhs, .. } => {
                let (a, b) = (self.fold(lhs)?, self.fold(rhs)?);
                let shift = || u32::try_from(b).ok().filter(|b| *b < 64);
                match op {
                    BinaryOp::Add => a.wrapping_add(b),
                    BinaryOp::Sub => a.wrapping_sub(b),
                    BinaryOp::Mul => a.wrapping_mul(b),
                    BinaryOp::Div | BinaryOp::Mod => return None,
                    BinaryOp::Shl => a << shift()?,
                    BinaryOp::Shr => a >> shift()?,
                    BinaryOp::UShr => ((a as u64) >> shift()?) as i64,
                    BinaryOp::BitAnd => a & b,
                    BinaryOp::BitOr => a | b,
                    BinaryOp::BitXor => a ^ b,
                }
            }
            Expr::CompareLong { op, lhs, rhs } => {
                let (a, b) = (self.fold(lhs)?, self.fold(rhs)?);
                i64::from(match op {
                    CompareOp::Eq => a == b,
                    CompareOp::Ne => a != b,
                    CompareOp::Lt => a < b,
                    CompareOp::Le => a <= b,
                    CompareOp::Gt => a > b,
                    CompareOp::Ge => a >= b,
                })
            }
            // Short-circuit: what is not evaluated need not be known.
            Expr::And(a, b) => match self.fold(a)? {
                0 => 0,
                _ => i64::from(self.fold(b)? != 0),
            },
            Expr::Or(a, b) => match self.fold(a)? {
                0 => i64::from(self.fold(b)? != 0),
                _ => 1,
            },
            Expr::Ternary {
                cond,
                then,
                otherwise,
            } => match self.fold(cond)? {
                0 => self.fold(otherwise)?,
                _ => self.fold(then)?,
            },
            _ => return None,
        })
    }

    /// For each parameter of a function with `body`, called with `args`:
    /// its value, when the call's argument is known and the body never
    /// assigns the parameter.
    pub(crate) fn known_parameters(&self, body: &[Stmt], args: &[Expr]) -> Vec<Option<i64>> {
        let assigned = assigned_locals(body);
        args.iter()
            .enumerate()
            .map(|(i, arg)| {
                let i = u32::try_from(i).ok()?;
                if assigned.contains(&i) {
                    return None;
                }
                self.fold(arg)
            })
            .collect()
    }
}

/// The locals a block writes: assigned, incremented, or bound by
/// `foreach` and `catch`.
fn assigned_locals(body: &[Stmt]) -> Vec<u32> {
    let mut assigned = Vec::new();
    let mut on_stmt = |stmt: &Stmt| match stmt {
        Stmt::Foreach { keys, value, .. } => {
            assigned.extend(keys.iter().copied());
            assigned.extend(*value);
        }
        Stmt::ForeachHist { bucket, .. } => assigned.push(*bucket),
        Stmt::Try { catch_var, .. } => assigned.extend(*catch_var),
        _ => {}
    };
    let mut targets = Vec::new();
    walk_block(body, &mut on_stmt, &mut |e| {
        if let Expr::Assign { target, .. } | Expr::Crement { target, .. } = e
            && let LValue::Local(i) = target.as_ref()
        {
            targets.push(*i);
        }
    });
    assigned.extend(targets);
    assigned
}
