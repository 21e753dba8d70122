//! Expressions: typing and lowering.

use tapmatrix_ir as ir;
use tapmatrix_syntax::ast::{self, AssignOp, BinOp, Expr, ExprKind, Indexable};
use tapmatrix_syntax::print_expr;

use super::stmt::{hist_spec, stat_op};
use super::{Elab, Ty, Var};
use crate::Construct;
use crate::format::decode_escapes;

impl<'a> Elab<'a> {
    /// An expression that must have type `want` (when known).
    pub(super) fn typed(&mut self, e: &'a Expr, want: Ty) -> (ir::Expr, Ty) {
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

    pub(super) fn expr(&mut self, e: &'a Expr, want: Ty) -> (ir::Expr, Ty) {
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
            ExprKind::Embedded(code) => {
                if let Some(value) = embedded_constant(code) {
                    return (ir::Expr::Long(value), Ty::Long);
                }
                let in_script = self.lib.files.get(self.body.file).is_some_and(|f| f.script);
                if in_script {
                    self.error(
                        e.span,
                        "embedded C is not supported",
                        Some("tapmatrix loads no kernel module, so it runs no C code"),
                    );
                } else {
                    self.error(
                        e.span,
                        format!(
                            "unimplemented embedded-C expression: %{{{}%}} has no implementation in tapmatrix",
                            code.trim_end()
                        ),
                        Some("tapmatrix loads no kernel module, so it runs no C code; a tapset macro or function must serve it"),
                    );
                }
                bad
            }
            ExprKind::Target(target) => self.target_value(e, target, want),
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
                let pattern = decode_escapes(pattern);
                // Compiled here as the runtime compiles it: a bad pattern
                // is SystemTap's pass-2 error, not a run-time one.
                if self.report
                    && let Err(error) = regex::Regex::new(&pattern)
                {
                    let why = error.to_string();
                    let why = why.lines().last().unwrap_or_default().trim();
                    let why = why.strip_prefix("error: ").unwrap_or(why);
                    self.error(
                        e.span,
                        format!("regex compilation error: {why} in \"{pattern}\""),
                        None,
                    );
                }
                (
                    ir::Expr::Regex {
                        negated: *negated,
                        operand: Box::new(operand),
                        pattern,
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
                // A constant condition (`@defined(@entry($x)) ? ... : ...`)
                // takes one branch: the other is not lowered, as SystemTap
                // folds it away before resolving its target expressions.
                if let ir::Expr::Long(value) = cond {
                    return self.typed(if value != 0 { then } else { otherwise }, want);
                }
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
                ExprKind::Target(target) => (self.target_defined(inner, target), Ty::Long),
                // `@defined(@entry($x))` in a return probe: whether `$x`
                // resolves at the entry, where a parameter is read anyway.
                // A constant, so that the branch not taken is not lowered
                // (its `@entry` would be fetched by the entry half).
                ExprKind::Entry(entry) if self.body.is_return() => match &entry.kind {
                    ExprKind::Target(target) => (
                        ir::Expr::Long(i64::from(self.resolves_everywhere(target))),
                        Ty::Long,
                    ),
                    _ => (ir::Expr::Long(1), Ty::Long),
                },
                _ => (ir::Expr::Long(1), Ty::Long),
            },
            ExprKind::Entry(inner) => self.entry_value(e, inner, want),
            ExprKind::Deref { size, addr, .. } => {
                let (addr, _) = self.typed(addr, Ty::Long);
                let size = match size {
                    1 | 2 | 4 | 8 => u8::try_from(*size).unwrap_or(8),
                    _ => {
                        self.error(
                            e.span,
                            "the size of @kderef/@uderef must be 1, 2, 4 or 8",
                            None,
                        );
                        return bad;
                    }
                };
                if !self.serves(Construct::ComputedRead, &print_expr(e), e.span) {
                    return (ir::Expr::Long(0), Ty::Long);
                }
                (
                    ir::Expr::Read {
                        addr: Box::new(addr),
                        access: ir::Access {
                            loads: vec![0],
                            size,
                            signed: false,
                            bitfield: None,
                            address: None,
                            user: matches!(e.kind, ExprKind::Deref { user: true, .. }),
                        },
                        loc: self.loc(e.span),
                    },
                    Ty::Long,
                )
            }
            ExprKind::Const(name) => {
                if let Some(value) =
                    super::consts::value(name, self.facts.btf.as_ref(), &mut self.consts)
                {
                    return (ir::Expr::Long(value), Ty::Long);
                }
                let message = if super::consts::is_identifier(name) {
                    format!(
                        "'{}': a C constant tapmatrix has no value for on x86_64 (not a system call, not an enumerator of this kernel's BTF, not in its table of ABI constants)",
                        print_expr(e)
                    )
                } else {
                    format!("'{}' is C code, and tapmatrix runs no C", print_expr(e))
                };
                self.error(
                    e.span,
                    message,
                    Some("tapmatrix loads no kernel module; a library function built on such C is served by a tapmatrix function of the same name where one exists"),
                );
                bad
            }
            ExprKind::Probewrite(name) => {
                // Whether the probe's own body writes the variable (false in
                // a function): SystemTap's syscall aliases store a written
                // argument back only then, which tapmatrix never does.
                let written = self.body.function.is_none() && self.body.writes.contains(name);
                (ir::Expr::Long(i64::from(written)), Ty::Long)
            }
            ExprKind::Perf(_) | ExprKind::Register { .. } => {
                self.error(
                    e.span,
                    format!("'{}' is not supported by tapmatrix yet", print_expr(e)),
                    None,
                );
                bad
            }
        }
    }

    pub(super) fn binary(
        &mut self,
        e: &'a Expr,
        op: BinOp,
        lhs: &'a Expr,
        rhs: &'a Expr,
    ) -> (ir::Expr, Ty) {
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

    pub(super) fn assign(
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
}

/// How an error names an expression: `: identifier 'x'`.
pub(super) fn describe(e: &Expr) -> String {
    match &e.kind {
        ExprKind::Ident(name) => format!(": identifier '{name}'"),
        ExprKind::Call { name, .. } => format!(": function '{name}'"),
        _ => format!(": '{}'", print_expr(e)),
    }
}

/// The value of an embedded-C expression that SystemTap's library uses and
/// tapmatrix serves as a constant, by the text of its C (comments and
/// blanks aside).
///
/// `#ifdef __BIG_ENDIAN 1 #else 0 #endif`: 0, x86_64 being little-endian.
///
/// `_stp_is_compat_task()` (`@__compat_task`): whether the current task is
/// a 32-bit task on a 64-bit kernel (on x86_64, `TS_COMPAT` in its
/// `thread_info` status, set by the ia32 syscall entry). Always 0 here:
/// the guests' user space is static 64-bit busybox, the only programs a
/// workload can run, so no compat task ever makes a system call, and
/// tracefs could not read the flag at a hit anyway (no current task).
pub(super) fn embedded_constant(code: &str) -> Option<i64> {
    let mut text = String::new();
    let mut rest = code;
    while let Some(start) = rest.find("/*") {
        text.push_str(&rest[..start]);
        rest = rest[start..]
            .find("*/")
            .map_or("", |end| &rest[start + end + 2..]);
    }
    text.push_str(rest);
    let text: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    match text.as_str() {
        "_stp_is_compat_task()" => Some(0),
        // Whether the kernel is big-endian: x86_64 is not.
        "#ifdef__BIG_ENDIAN1#else0#endif" => Some(0),
        _ => None,
    }
}
