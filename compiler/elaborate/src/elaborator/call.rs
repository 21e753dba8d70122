//! Calls: printing, string reads, user functions and runtime builtins.

use tapmatrix_ir as ir;
use tapmatrix_syntax::ast::{self, Expr, ExprKind};
use tapmatrix_syntax::print_expr;

use super::context::{ArgWidth, ContextFn};
use super::stmt::hist_spec;
use super::target::Reading;
use super::{Elab, Ty, refine};
use crate::builtins::{builtin, string_fetch};
use crate::format::{decode_escapes, parse_format};
use crate::{Construct, FetchRequest};

impl<'a> Elab<'a> {
    pub(super) fn call(
        &mut self,
        e: &'a Expr,
        name: &str,
        args: &'a [Expr],
        want: Ty,
        void_ok: bool,
    ) -> (ir::Expr, Ty) {
        let void = (ir::Expr::Long(0), Ty::Unknown);
        match name {
            "print" | "println" | "sprint" | "sprintln" => {
                let parts: Vec<&'a Expr> = args.iter().collect();
                return self.print_call(e, name, &parts, void_ok);
            }
            "printd" | "printdln" | "sprintd" | "sprintdln" => {
                // The values with the delimiter between them, as print's.
                let Some((delimiter, values)) = args.split_first() else {
                    self.arity_error(e, name, 0, &[2]);
                    return void;
                };
                if !matches!(delimiter.kind, ExprKind::String(_)) {
                    self.error(
                        delimiter.span,
                        format!("the delimiter of {name} must be a literal string"),
                        None,
                    );
                    return void;
                }
                let mut parts = Vec::new();
                for (i, value) in values.iter().enumerate() {
                    if i > 0 {
                        parts.push(delimiter);
                    }
                    parts.push(value);
                }
                let print = match name {
                    "printd" => "print",
                    "printdln" => "println",
                    "sprintd" => "sprint",
                    _ => "sprintln",
                };
                return self.print_call(e, print, &parts, void_ok);
            }
            "printf" | "sprintf" => {
                let to_string = name == "sprintf";
                let Some((format_arg, rest)) = args.split_first() else {
                    self.error(e.span, format!("{name} needs a format string"), None);
                    return void;
                };
                let ExprKind::String(raw) = &format_arg.kind else {
                    self.error(
                        format_arg.span,
                        format!("the format of {name} must be a literal string"),
                        None,
                    );
                    return void;
                };
                let format = match parse_format(&decode_escapes(raw)) {
                    Ok(format) => format,
                    Err(message) => {
                        self.error(
                            format_arg.span,
                            format!("{message} in the format of {name}"),
                            None,
                        );
                        return void;
                    }
                };
                if format.args.len() != rest.len() {
                    self.error(
                        e.span,
                        format!(
                            "wrong number of arguments to {name}: the format takes {}, {} given",
                            format.args.len(),
                            rest.len()
                        ),
                        None,
                    );
                }
                let mut out = Vec::new();
                for (i, arg) in rest.iter().enumerate() {
                    let want = format.args.get(i).copied().map_or(Ty::Unknown, Ty::of);
                    out.push(self.typed(arg, want).0);
                }
                let expr = ir::Expr::Printf {
                    to_string,
                    format: format.specs,
                    args: out,
                };
                return self.returning(e, name, expr, to_string.then_some(Ty::Str), void_ok);
            }
            _ => {}
        }
        if let Some((user, sized, quoted)) = string_fetch(name) {
            return self.string_fetch(e, name, args, user, sized, quoted);
        }
        if matches!(name, "kernel_v" | "kernel_vr") && !self.script_defines(name) {
            return self.kernel_version(e, name, args);
        }
        if let Some(kind) = ContextFn::of(name)
            && !self.script_defines(name)
        {
            return self.context_call(e, name, kind, args, void_ok);
        }
        let candidates = self.find_functions(name);
        if let Some(&f) = candidates
            .iter()
            .find(|&&f| self.sym.functions[f].def.params.len() == args.len())
        {
            // The runtime implements its builtins itself: a tapset's
            // definition of one (embedded C, or a script wrapper that ends
            // in embedded C, as Debian's context tapsets are) gives way to
            // it. The script's own definition wins.
            if let Some(sig) = builtin(name).filter(|sig| sig.params.len() == args.len())
                && !self.sym.functions[f].script
            {
                return self.builtin_call(e, name, args, sig, void_ok);
            }
            if let ast::FunctionBody::Embedded(_) = self.sym.functions[f].def.body {
                return match builtin(name) {
                    Some(sig) => self.builtin_call(e, name, args, sig, void_ok),
                    None => {
                        let location = self.sym.functions[f].location.clone();
                        // The script's own C is guru mode; a tapset's is
                        // one tapmatrix has yet to serve.
                        let what = if self.sym.functions[f].script {
                            "embedded C is not supported"
                        } else {
                            "unimplemented embedded-C function"
                        };
                        self.error(
                            e.span,
                            format!("{what}: function '{name}' (defined at {location}) has a C body and tapmatrix has no implementation of it"),
                            Some("tapmatrix loads no kernel module, so it runs no C code; use a script function or a runtime builtin"),
                        );
                        void
                    }
                };
            }
            return self.user_call(e, f, args, want, void_ok);
        }
        if !candidates.is_empty() && builtin(name).is_none() {
            let arities: Vec<usize> = candidates
                .iter()
                .map(|&f| self.sym.functions[f].def.params.len())
                .collect();
            self.arity_error(e, name, args.len(), &arities);
            for arg in args {
                self.typed(arg, Ty::Unknown);
            }
            return void;
        }
        match builtin(name) {
            Some(sig) => self.builtin_call(e, name, args, sig, void_ok),
            None => {
                self.error(
                    e.span,
                    format!("unresolved function: identifier '{name}'"),
                    Some("define it in the script or a tapset, or check its spelling"),
                );
                for arg in args {
                    self.typed(arg, Ty::Unknown);
                }
                void
            }
        }
    }

    /// `print`, `println`, `sprint`, `sprintln` of `parts`.
    fn print_call(
        &mut self,
        e: &'a Expr,
        name: &str,
        parts: &[&'a Expr],
        void_ok: bool,
    ) -> (ir::Expr, Ty) {
        let builtin = match name {
            "print" => ir::Builtin::Print,
            "println" => ir::Builtin::Println,
            "sprint" => ir::Builtin::Sprint,
            _ => ir::Builtin::Sprintln,
        };
        let mut out = Vec::new();
        for &arg in parts {
            if let ExprKind::Hist(h) = &arg.kind {
                if let Some(stat) = self.stat_lvalue(&h.stat) {
                    out.push(ir::Expr::Hist {
                        spec: hist_spec(h.kind),
                        stat: Box::new(stat),
                    });
                }
                continue;
            }
            let (expr, ty) = self.typed(arg, Ty::Unknown);
            out.push(match ty {
                Ty::Long => ir::Expr::LongToStr(Box::new(expr)),
                _ => expr,
            });
        }
        let to_string = name.starts_with('s');
        let expr = ir::Expr::Builtin {
            builtin,
            args: out,
            loc: self.loc(e.span),
        };
        self.returning(e, name, expr, to_string.then_some(Ty::Str), void_ok)
    }

    /// `kernel_v()` and `kernel_vr()`: the kernel's version (`6.1.0`) and
    /// release (`6.1.0-40-amd64`), as the preprocessor's `kernel_v` and
    /// `kernel_vr` compare them: constants of the kernel being compiled for.
    fn kernel_version(&mut self, e: &'a Expr, name: &str, args: &'a [Expr]) -> (ir::Expr, Ty) {
        if !args.is_empty() {
            self.arity_error(e, name, args.len(), &[0]);
        }
        let release = self.facts.release.clone().unwrap_or_default();
        let value = if name == "kernel_v" {
            release.split('-').next().unwrap_or_default().to_owned()
        } else {
            release
        };
        (ir::Expr::Str(value), Ty::Str)
    }

    /// SystemTap's error for a call of `name` with `given` arguments where
    /// its definitions (overloads by arity) take `arities`.
    pub(super) fn arity_error(&mut self, e: &Expr, name: &str, given: usize, arities: &[usize]) {
        let mut arities = arities.to_vec();
        arities.sort_unstable();
        arities.dedup();
        let takes = match arities.split_last() {
            Some((last, [])) => last.to_string(),
            Some((last, rest)) => {
                let rest: Vec<String> = rest.iter().map(usize::to_string).collect();
                format!("{} or {last}", rest.join(", "))
            }
            None => "no".to_owned(),
        };
        self.error(
            e.span,
            format!(
                "unresolved arity-{given} function: identifier '{name}' takes {takes} argument(s)"
            ),
            None,
        );
    }

    /// The value of a call: an error where a value is needed and there is none.
    pub(super) fn returning(
        &mut self,
        e: &'a Expr,
        name: &str,
        expr: ir::Expr,
        ret: Option<Ty>,
        void_ok: bool,
    ) -> (ir::Expr, Ty) {
        match ret {
            Some(ty) => (expr, ty),
            None => {
                if !void_ok {
                    self.error(
                        e.span,
                        format!("function '{name}' returns no value"),
                        Some("call it as a statement"),
                    );
                }
                (expr, Ty::Unknown)
            }
        }
    }

    pub(super) fn builtin_call(
        &mut self,
        e: &'a Expr,
        name: &str,
        args: &'a [Expr],
        sig: crate::builtins::Signature,
        void_ok: bool,
    ) -> (ir::Expr, Ty) {
        if args.len() != sig.params.len() {
            self.arity_error(e, name, args.len(), &[sig.params.len()]);
        }
        let mut out = Vec::new();
        for (i, arg) in args.iter().enumerate() {
            let want = sig.params.get(i).copied().map_or(Ty::Unknown, Ty::of);
            out.push(self.typed(arg, want).0);
        }
        let needs = match sig.builtin {
            ir::Builtin::TaskCurrent | ir::Builtin::CmdlineStr => Some(Construct::CurrentTask),
            ir::Builtin::Backtrace | ir::Builtin::Ubacktrace => Some(Construct::Backtrace),
            // Begin, end, error and timer probes interrupted no code: 0.
            ir::Builtin::UserMode | ir::Builtin::Addr | ir::Builtin::Uaddr
                if self.body.event || self.body.function.is_some() =>
            {
                Some(Construct::Registers)
            }
            // In begin, end, error and timer probes the task is the
            // session's own; at an event (or in a function, which events
            // may call) it is the task the event fired in.
            ir::Builtin::Uid | ir::Builtin::Gid
                if self.body.event || self.body.function.is_some() =>
            {
                Some(Construct::CredentialsAtHit)
            }
            _ => None,
        };
        if let Some(construct) = needs
            && !self.serves(construct, &format!("{name}()"), e.span)
        {
            return (ir::Expr::Long(0), sig.ret.map_or(Ty::Unknown, Ty::of));
        }
        let expr = ir::Expr::Builtin {
            builtin: sig.builtin,
            args: out,
            loc: self.loc(e.span),
        };
        // SystemTap's `exit()` is an untyped embedded-C function: in a
        // value's place (`n == max && exit()`) it is a long, 0.
        let ret = match sig.builtin {
            ir::Builtin::Exit if !void_ok => Some(Ty::Long),
            _ => sig.ret.map(Ty::of),
        };
        self.returning(e, name, expr, ret, void_ok)
    }

    pub(super) fn user_call(
        &mut self,
        e: &'a Expr,
        f: usize,
        args: &'a [Expr],
        want: Ty,
        void_ok: bool,
    ) -> (ir::Expr, Ty) {
        if self.sym.functions[f].reached.is_none() {
            self.sym.functions[f].reached =
                Some(u32::try_from(self.sym.reach_order.len()).unwrap_or(0));
            self.sym.reach_order.push(f);
            self.changed = true;
        }
        // A recursive call: the function's locals are the ones being walked.
        let recursive = self.body.function == Some(f);
        let mut out = Vec::new();
        for (i, arg) in args.iter().enumerate() {
            let params = if recursive {
                &self.body.locals
            } else {
                &self.sym.functions[f].locals
            };
            let param = params.get(i).map_or(Ty::Unknown, |l| l.ty);
            let (expr, ty) = self.typed(arg, param);
            if ty == Ty::Stats {
                self.error(arg.span, "invalid use of a statistic as an argument", None);
            }
            let params = if recursive {
                &mut self.body.locals
            } else {
                &mut self.sym.functions[f].locals
            };
            if let Some(local) = params.get_mut(i) {
                refine(&mut local.ty, ty, &mut self.changed);
            }
            out.push(expr);
        }
        let func = &mut self.sym.functions[f];
        let name = func.name.clone();
        // A function that returns nothing, called where a long is wanted,
        // is a long that returns 0, as SystemTap infers its type from the
        // use (`n && report()`); elsewhere it has no value.
        if want == Ty::Long && !void_ok && !func.returns_value && func.def.return_type.is_none() {
            func.returns_value = true;
            refine(&mut func.ret, Ty::Long, &mut self.changed);
            self.changed = true;
        }
        let ret = if func.returns_value {
            Some(refine(&mut func.ret, want, &mut self.changed))
        } else {
            None
        };
        let expr = ir::Expr::Call {
            function: func.reached.unwrap_or(0),
            args: out,
            loc: self.loc(e.span),
        };
        self.returning(e, &name, expr, ret, void_ok)
    }

    pub(super) fn string_fetch(
        &mut self,
        e: &'a Expr,
        name: &str,
        args: &'a [Expr],
        user: bool,
        sized: bool,
        quoted: bool,
    ) -> (ir::Expr, Ty) {
        let fallback = (ir::Expr::Str(String::new()), Ty::Str);
        let expected = if sized { 2 } else { 1 };
        // `kernel_string(ptr, err_msg)`, `user_string_n(ptr, n, err_msg)`:
        // a fault gives `err_msg` instead of an error. Read where the
        // pointer is computed (the read itself can fault there).
        let err_msg = if quoted || args.len() != expected + 1 {
            None
        } else {
            args.last()
        };
        if args.len() != expected && err_msg.is_none() {
            let arities: &[usize] = if quoted {
                &[expected]
            } else {
                &[expected, expected + 1]
            };
            self.arity_error(e, name, args.len(), arities);
            return fallback;
        }
        let arg = &args[0];
        let literal_len = match args.get(1).map(|a| &a.kind) {
            Some(ExprKind::Number(n)) => Some(*n),
            _ => None,
        };
        // A probe's own target expression is fetched with the string at
        // the hit (in a return probe, at the entry, for a parameter).
        let mut array_at = None;
        if let ExprKind::Target(target) = &arg.kind
            && err_msg.is_none()
        {
            match self.reading(target, arg.span) {
                None => return fallback,
                // A char array read through a computed address: the
                // string is read where the array is.
                Some(Reading::Computed(operand)) => {
                    if !self.serves(Construct::ComputedRead, &print_expr(e), e.span) {
                        return fallback;
                    }
                    match self.computed_read(arg, target, operand) {
                        (ir::Expr::ReadString { addr, max_len, .. }, _) => {
                            array_at = Some((addr, max_len));
                        }
                        (other, _) => array_at = Some((Box::new(other), None)),
                    }
                }
                Some(Reading::Fetch) if !sized || literal_len.is_some() => {
                    if self.entry_read(target) {
                        return self.entry_value(e, e, Ty::Str);
                    }
                    let location = self.at(arg.span);
                    let slot = self.fetch(FetchRequest::String {
                        target: (**target).clone(),
                        user,
                        max_len: literal_len,
                        text: print_expr(arg),
                        location,
                    });
                    return self.quoted(e, ir::Expr::Fetch(slot), quoted);
                }
                Some(_) => {}
            }
        }
        // A pointer argument (`user_string(pointer_arg(2))`) is fetched
        // with the string at the hit, as a target expression is.
        if let ExprKind::Call {
            name: inner,
            args: inner_args,
        } = &arg.kind
            && let Some(kind @ ContextFn::Arg(ArgWidth::Long)) = ContextFn::of(inner)
            && !self.script_defines(inner)
            && self.body.function.is_none()
            && self.body.event
            && err_msg.is_none()
            && (!sized || literal_len.is_some())
            && let Ok(target) = self.context_target(inner, kind, inner_args)
        {
            let location = self.at(arg.span);
            let text = self.context_text(kind, inner_args);
            let slot = self.fetch(FetchRequest::String {
                target,
                user,
                max_len: literal_len,
                text,
                location,
            });
            return self.quoted(e, ir::Expr::Fetch(slot), quoted);
        }
        // A variable that holds a char array's contents already (a
        // `->name` member stored in a local, as stapgames' gmtty.stp does:
        // tapmatrix reads char arrays as strings): that string, unread.
        if array_at.is_none()
            && !sized
            && err_msg.is_none()
            && let ExprKind::Ident(_) = &arg.kind
        {
            let (value, ty) = self.typed(arg, Ty::Unknown);
            if ty == Ty::Str {
                return self.quoted(e, value, quoted);
            }
        }
        // Anything else is a read at a computed address.
        let (addr, array_len) = match array_at {
            Some((addr, array_len)) => (addr, array_len),
            None => (Box::new(self.typed(arg, Ty::Long).0), None),
        };
        let max_len = if sized {
            Some(Box::new(self.typed(&args[1], Ty::Long).0))
        } else {
            array_len
        };
        if !self.serves(Construct::ComputedRead, &print_expr(e), e.span) {
            return fallback;
        }
        let fallback = err_msg.map(|err_msg| Box::new(self.typed(err_msg, Ty::Str).0));
        let read = ir::Expr::ReadString {
            addr,
            max_len,
            user,
            fallback,
            loc: self.loc(e.span),
        };
        self.quoted(e, read, quoted)
    }

    /// `string_quoted(value)` for the `_quoted` readers, else `value`.
    fn quoted(&mut self, e: &'a Expr, value: ir::Expr, quoted: bool) -> (ir::Expr, Ty) {
        if quoted {
            (
                ir::Expr::Builtin {
                    builtin: ir::Builtin::StringQuoted,
                    args: vec![value],
                    loc: self.loc(e.span),
                },
                Ty::Str,
            )
        } else {
            (value, Ty::Str)
        }
    }
}
