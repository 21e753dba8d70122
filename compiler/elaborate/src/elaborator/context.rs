//! The context functions SystemTap implements in C by reading the
//! registers of the hit (`returnval()`, `pointer_arg(N)`, `int_arg(N)`,
//! `_stp_syscall_nr()`...): here each is a fetch slot of the probe that
//! calls it, read by the back end at the hit as any target expression is
//! (`$return`, the Nth parameter, a syscall's registers). They are served
//! under their names whatever a tapset defines (SystemTap's own library
//! defines them over embedded C); a script's own definition wins.
//!
//! Since registers are read per probe, these functions can only be called
//! in a probe handler or alias body, not in a function (SystemTap reads the
//! registers of the current context anywhere).

use tapmatrix_ir as ir;
use tapmatrix_resolve::AttachKind;
use tapmatrix_syntax::ast::{self, Expr, ExprKind, TargetBase, TargetComponent};
use tapmatrix_syntax::print_expr;

use super::{Elab, Ty};
use crate::FetchRequest;

/// A context function served by a fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ContextFn {
    /// `returnval()`: the return value of a return probe.
    ReturnValue,
    /// `int_arg(N)` and friends: the Nth argument, as `width` reads it.
    Arg(ArgWidth),
    /// `_stp_syscall_nr()`: the number of the system call.
    SyscallNr,
    /// `__set_syscall_pt_regs(regs)`: later `*_arg(N)` read the system
    /// call's arguments from `regs` (a `struct pt_regs *`).
    SetSyscallRegs,
    /// `asmlinkage()`, `fastcall()`, `regparm(n)`: calling-convention
    /// hints that change nothing on x86_64.
    NoOp,
}

/// How an `*_arg(N)` function reads its argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ArgWidth {
    /// The low 32 bits, sign-extended (`int_arg`, `s32_arg`).
    Int,
    /// The low 32 bits (`uint_arg`, `u32_arg`).
    Uint,
    /// The whole 64 bits (`long_arg`, `ulong_arg`, `pointer_arg`,
    /// `longlong_arg`, `s64_arg`...).
    Long,
}

impl ContextFn {
    /// The context function named `name`.
    pub(super) fn of(name: &str) -> Option<ContextFn> {
        Some(match name {
            "returnval" => ContextFn::ReturnValue,
            "int_arg" | "s32_arg" => ContextFn::Arg(ArgWidth::Int),
            "uint_arg" | "u32_arg" => ContextFn::Arg(ArgWidth::Uint),
            "long_arg" | "ulong_arg" | "pointer_arg" | "longlong_arg" | "ulonglong_arg"
            | "s64_arg" | "u64_arg" => ContextFn::Arg(ArgWidth::Long),
            "_stp_syscall_nr" => ContextFn::SyscallNr,
            "__set_syscall_pt_regs" => ContextFn::SetSyscallRegs,
            "asmlinkage" | "fastcall" | "regparm" => ContextFn::NoOp,
            _ => return None,
        })
    }

    /// Its number of arguments.
    fn arity(self, name: &str) -> usize {
        match self {
            ContextFn::ReturnValue | ContextFn::SyscallNr => 0,
            ContextFn::Arg(_) | ContextFn::SetSyscallRegs => 1,
            ContextFn::NoOp => usize::from(name == "regparm"),
        }
    }
}

/// The registers of the x86_64 system call arguments, in order.
const SYSCALL_ARG_REGISTERS: [&str; 6] = ["di", "si", "dx", "r10", "r8", "r9"];

/// A target expression made by the compiler: `$name` then members.
fn synthesized(var: &str, members: &[&str]) -> ast::Target {
    ast::Target {
        address_of: false,
        base: TargetBase::Var(format!("${var}")),
        components: members
            .iter()
            .map(|m| TargetComponent::Member((*m).to_owned()))
            .collect(),
    }
}

/// `regs` with one more member.
fn member(regs: &ast::Target, name: &str) -> ast::Target {
    let mut target = regs.clone();
    target
        .components
        .push(TargetComponent::Member(name.to_owned()));
    target
}

impl<'a> Elab<'a> {
    /// The name of argument `index` (from 0) of the system call entry
    /// event `syscalls:sys_enter_NAME`: its fields but `__syscall_nr` and
    /// the kernel's string copies (`__NAME_val`), in order.
    fn syscall_arg_field(&self, event: &str, index: usize) -> Option<String> {
        let (system, name) = event.split_once(':')?;
        let tracepoints = self.facts.tracepoints.as_ref()?;
        let tp = tracepoints
            .iter()
            .find(|tp| tp.system == system && tp.name == name)?;
        tp.fields
            .iter()
            .filter(|f| !f.name.starts_with("__"))
            .nth(index)
            .map(|f| f.name.clone())
    }

    /// Whether the user's script defines a function `name` (it then wins
    /// over the compiler's own meaning of the name).
    pub(super) fn script_defines(&self, name: &str) -> bool {
        self.sym
            .functions_by_name
            .get(name)
            .is_some_and(|fs| fs.iter().any(|&f| self.sym.functions[f].script))
    }

    /// The target expression the context function `kind` reads here with
    /// `args`, or an error message.
    pub(super) fn context_target(
        &mut self,
        name: &str,
        kind: ContextFn,
        args: &'a [Expr],
    ) -> Result<ast::Target, String> {
        let first = self.body.attach.first().cloned();
        match kind {
            ContextFn::ReturnValue => Ok(synthesized("return", &[])),
            ContextFn::Arg(_) => {
                // A constant expression (`@__compat_task ? 5 : 4` in
                // SystemTap's macros) counts as its value.
                let n = match args.first().map(|arg| self.typed(arg, Ty::Long).0) {
                    Some(ir::Expr::Long(n)) if (1..=6).contains(&n) => n,
                    Some(ir::Expr::Long(n)) => {
                        return Err(format!(
                            "{name}({n}): tapmatrix reads the arguments passed in registers, 1 to 6"
                        ));
                    }
                    _ => {
                        return Err(format!(
                            "the argument number of {name}() must be a literal number: the argument is fetched at the hit"
                        ));
                    }
                };
                let index = usize::try_from(n - 1).unwrap_or(0);
                if let Some(regs) = &self.body.syscall_regs {
                    return Ok(member(regs, SYSCALL_ARG_REGISTERS[index]));
                }
                // At a system call's entry event the arguments are the
                // event's fields, in order after `__syscall_nr`.
                let fields: Vec<Option<String>> = self
                    .body
                    .attach
                    .iter()
                    .filter(|at| at.kind == AttachKind::Tracepoint)
                    .filter_map(|at| at.target.strip_prefix("syscalls:sys_enter_").map(|_| at))
                    .map(|at| self.syscall_arg_field(&at.target, index))
                    .collect();
                // At `raw_syscalls:sys_enter` (SystemTap's `kernel.trace("sys_enter")`
                // fallback) they are the event's `args` array.
                let raw_enter = !self.body.attach.is_empty()
                    && self.body.attach.iter().all(|at| {
                        at.kind == AttachKind::Tracepoint && at.target == "raw_syscalls:sys_enter"
                    });
                if fields.is_empty() && raw_enter {
                    let mut target = synthesized("args", &[]);
                    target.components.push(TargetComponent::Index(ast::Expr {
                        kind: ExprKind::Number(n - 1),
                        span: tapmatrix_syntax::Span::default(),
                    }));
                    return Ok(target);
                }
                match fields.first() {
                    None => Ok(synthesized(&format!("arg{n}"), &[])),
                    Some(Some(field)) if fields.iter().all(|f| f.as_ref() == Some(field)) => {
                        Ok(synthesized(field, &[]))
                    }
                    Some(_) => Err(format!(
                        "{name}({n}): the system call's event has no argument {n} here (or its events disagree on its name)"
                    )),
                }
            }
            ContextFn::SyscallNr => {
                let Some(at) = first else {
                    return Err(format!("{name}() needs a probe on a kernel event"));
                };
                let (system, event) = at.target.split_once(':').unwrap_or(("", ""));
                match (at.kind, &self.body.syscall_regs) {
                    (AttachKind::Tracepoint, _) if system == "raw_syscalls" => {
                        Ok(synthesized("id", &[]))
                    }
                    (AttachKind::Tracepoint, _)
                        if system == "syscalls" && event.starts_with("sys_") =>
                    {
                        Ok(synthesized("__syscall_nr", &[]))
                    }
                    (_, Some(regs)) => Ok(member(regs, "orig_ax")),
                    (AttachKind::Kprobe | AttachKind::Kretprobe, None)
                        if at.target.starts_with("__x64_sys_") =>
                    {
                        Ok(synthesized("regs", &["orig_ax"]))
                    }
                    _ => Err(format!(
                        "{name}(): {} is not a system call's event or function",
                        at.target
                    )),
                }
            }
            ContextFn::SetSyscallRegs | ContextFn::NoOp => Err(format!("{name}() has no value")),
        }
    }

    /// A call of a context function.
    pub(super) fn context_call(
        &mut self,
        e: &'a Expr,
        name: &str,
        kind: ContextFn,
        args: &'a [Expr],
        void_ok: bool,
    ) -> (ir::Expr, Ty) {
        let void = (ir::Expr::Long(0), Ty::Unknown);
        let arity = kind.arity(name);
        if args.len() != arity {
            self.arity_error(e, name, args.len(), &[arity]);
            return void;
        }
        if kind == ContextFn::NoOp {
            return self.returning(e, name, ir::Expr::Long(0), None, void_ok);
        }
        if let Some(f) = self.body.function {
            let function = self.sym.functions[f].name.clone();
            self.error(
                e.span,
                format!("{name}() in function '{function}': it reads the registers of the probe's hit, which tapmatrix fetches per probe"),
                Some("call it in the probe handler and pass the value to the function"),
            );
            return (ir::Expr::Long(0), Ty::Long);
        }
        if !self.body.event {
            self.error(
                e.span,
                format!("{name}() is only available in probes on kernel events, not in begin, end, error or timer probes"),
                None,
            );
            return (ir::Expr::Long(0), Ty::Long);
        }
        if kind == ContextFn::SetSyscallRegs {
            let regs = match args.first().map(|a| &a.kind) {
                Some(ExprKind::Target(target)) => Ok((**target).clone()),
                // `@choose_defined($regs, $arg1)` (SystemTap's
                // `@__set_syscall_pt_regs`): the first that resolves at
                // every attach point.
                Some(ExprKind::Ternary {
                    cond,
                    then,
                    otherwise,
                }) => match (&cond.kind, &then.kind, &otherwise.kind) {
                    (
                        ExprKind::Defined(_),
                        ExprKind::Target(first),
                        ExprKind::Target(second),
                    ) => [first, second]
                        .into_iter()
                        .find(|target| self.resolves_everywhere(target))
                        .map(|target| (**target).clone())
                        .ok_or_else(|| {
                            format!(
                                "{name}(): neither {} nor {} resolves at every attach point of the probe",
                                print_expr(then),
                                print_expr(otherwise)
                            )
                        }),
                    _ => Err(format!(
                        "{name}() needs a target expression or pointer_arg(N)"
                    )),
                },
                Some(ExprKind::Call { name: inner, args }) => match ContextFn::of(inner) {
                    Some(inner_kind @ ContextFn::Arg(_)) => {
                        self.context_target(inner, inner_kind, args)
                    }
                    _ => Err(format!(
                        "{name}() needs a target expression or pointer_arg(N)"
                    )),
                },
                _ => Err(format!(
                    "{name}() needs a target expression or pointer_arg(N)"
                )),
            };
            match regs {
                Ok(regs) => self.body.syscall_regs = Some(regs),
                Err(message) => self.error(e.span, message, None),
            }
            return self.returning(e, name, ir::Expr::Long(0), None, void_ok);
        }
        // An argument at a system call's exit event, which records only
        // the return value: the argument the call was made with, read at
        // its entry event (SystemTap's nd_syscall return probes read it
        // from the call's saved registers: `int_arg(1)` in
        // `nd_syscall.kill.return`).
        if matches!(kind, ContextFn::Arg(_))
            && self.body.syscall_regs.is_none()
            && self.at_syscall_exit()
        {
            return self.entry_value(e, e, Ty::Long);
        }
        let target = match self.context_target(name, kind, args) {
            Ok(target) => target,
            Err(message) => {
                self.error(e.span, message, None);
                return (ir::Expr::Long(0), Ty::Long);
            }
        };
        if kind == ContextFn::ReturnValue && !self.body.is_return() && !self.at_syscall_exit() {
            self.error(
                e.span,
                "returnval() is only available in return probes",
                Some("probe the function's .return"),
            );
            return (ir::Expr::Long(0), Ty::Long);
        }
        let location = self.at(e.span);
        let text = self.context_text(kind, args);
        let slot = self.fetch(FetchRequest::Value {
            text,
            target,
            location,
        });
        let value = ir::Expr::Fetch(slot);
        let value = match kind {
            ContextFn::Arg(ArgWidth::Int) => sign_extend_32(value, self.loc(e.span)),
            ContextFn::Arg(ArgWidth::Uint) => ir::Expr::Binary {
                op: ir::BinaryOp::BitAnd,
                lhs: Box::new(value),
                rhs: Box::new(ir::Expr::Long(0xffff_ffff)),
                loc: self.loc(e.span),
            },
            _ => value,
        };
        (value, Ty::Long)
    }

    /// How a context value is named in messages; equal names share one
    /// fetch slot (`int_arg(2)` and `uint_arg(2)` read one register).
    pub(super) fn context_text(&self, kind: ContextFn, args: &[Expr]) -> String {
        let n = match args.first().map(|a| &a.kind) {
            Some(ExprKind::Number(n)) => *n,
            _ => 0,
        };
        match kind {
            ContextFn::ReturnValue => "returnval()".to_owned(),
            ContextFn::SyscallNr => "_stp_syscall_nr()".to_owned(),
            ContextFn::Arg(_) if self.body.syscall_regs.is_some() => {
                format!("the system call's argument {n}")
            }
            _ => format!("pointer_arg({n})"),
        }
    }

    /// Whether the probe being walked is at a system call's exit event (a
    /// tracepoint with an entry: `AttachPoint::entry` knows the pairs).
    fn at_syscall_exit(&self) -> bool {
        !self.body.attach.is_empty()
            && self
                .body
                .attach
                .iter()
                .all(|at| at.kind == AttachKind::Tracepoint && at.entry().is_some())
    }
}

/// `(value << 32) >> 32`: the low 32 bits, sign-extended.
fn sign_extend_32(value: ir::Expr, loc: ir::Loc) -> ir::Expr {
    ir::Expr::Binary {
        op: ir::BinaryOp::Shr,
        lhs: Box::new(ir::Expr::Binary {
            op: ir::BinaryOp::Shl,
            lhs: Box::new(value),
            rhs: Box::new(ir::Expr::Long(32)),
            loc,
        }),
        rhs: Box::new(ir::Expr::Long(32)),
        loc,
    }
}
