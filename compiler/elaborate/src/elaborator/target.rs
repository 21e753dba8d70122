//! Target expressions: what a handler reads from the kernel.
//!
//! A probe's own target expressions (`$file->f_flags`, `@cast($p,
//! "task_struct")->pid`) are fetch slots, gathered at the hit by the back
//! end. A read from an address computed at run time (`@cast(ptr,
//! "task_struct")->pid` of a value, in a function too) is an `Expr::Read`
//! where the back end serves it. In a return probe, a function's
//! parameters are the values they had at its entry, as in SystemTap: they
//! are `@entry` values, saved by the probe's entry half.

use tapmatrix_ir as ir;
use tapmatrix_resolve::{
    AttachKind, TargetBase as ResolvedBase, resolve_cast, resolve_target, resolve_target_as,
};
use tapmatrix_syntax::ast::{self, Expr, ExprKind, TargetBase, TargetComponent};
use tapmatrix_syntax::{Span, print_expr};

use super::{Body, Elab, EntryHalf, Ty};
use crate::{Construct, FetchRequest};

/// How a target expression is read.
pub(super) enum Reading<'a> {
    /// By the back end at the hit: a fetch slot.
    Fetch,
    /// From the address `operand` computes at run time.
    Computed(&'a Expr),
}

impl Body {
    /// The probe being walked is a return: a function's (its parameters
    /// are entry values there) or a syscall's exit tracepoint; each of its
    /// points has an entry, where its `@entry(...)` values are taken.
    pub(super) fn is_return(&self) -> bool {
        self.function.is_none()
            && !self.attach.is_empty()
            && self.attach.iter().all(|a| a.entry().is_some())
    }
}

impl<'a> Elab<'a> {
    /// The value of the target expression `e` (`target`).
    pub(super) fn target_value(
        &mut self,
        e: &'a Expr,
        target: &'a ast::Target,
        want: Ty,
    ) -> (ir::Expr, Ty) {
        let bad = (ir::Expr::Long(0), Ty::Long);
        match self.reading(target, e.span) {
            None => bad,
            Some(Reading::Computed(operand)) => self.computed_read(e, target, operand),
            Some(Reading::Fetch) => {
                if self.is_entry_parameter(target) {
                    return self.entry_value(e, e, want);
                }
                if self.options.skip_badvars && self.resolves_nowhere(target) {
                    return bad;
                }
                let location = self.at(e.span);
                if self.is_char_array(target) {
                    let slot = self.fetch(FetchRequest::String {
                        target: target.clone(),
                        user: false,
                        max_len: None,
                        text: print_expr(e),
                        location,
                    });
                    return (ir::Expr::Fetch(slot), Ty::Str);
                }
                let slot = self.fetch(FetchRequest::Value {
                    target: target.clone(),
                    text: print_expr(e),
                    location,
                });
                (ir::Expr::Fetch(slot), Ty::Long)
            }
        }
    }

    /// Whether `target` resolves at none of the probe's attach points
    /// (`--skip-badvars` reads it as 0 then).
    fn resolves_nowhere(&self, target: &ast::Target) -> bool {
        !self.body.attach.is_empty()
            && self.body.attach.iter().all(|at| {
                resolve_target_as(self.facts, at, target, self.caps.tracepoint_names).is_err()
            })
    }

    /// Whether `target` resolves at every one of the probe's attach points.
    pub(super) fn resolves_everywhere(&self, target: &ast::Target) -> bool {
        !self.body.attach.is_empty()
            && self.body.attach.iter().all(|at| {
                resolve_target_as(self.facts, at, target, self.caps.tracepoint_names).is_ok()
            })
    }

    /// Whether a fetched `target` is read at the function's entry (a
    /// parameter in a return probe).
    pub(super) fn entry_read(&self, target: &ast::Target) -> bool {
        self.is_entry_parameter(target)
    }

    /// `@defined(target)`: 1 or 0 per attach point, decided by the back end.
    pub(super) fn target_defined(&mut self, e: &'a Expr, target: &'a ast::Target) -> ir::Expr {
        match self.reading(target, e.span) {
            Some(Reading::Fetch) => {
                let slot = self.fetch(FetchRequest::Defined {
                    target: target.clone(),
                    text: print_expr(e),
                });
                ir::Expr::Fetch(slot)
            }
            // A cast of a value resolves or not on the kernel as a whole.
            Some(Reading::Computed(_)) => {
                ir::Expr::Long(i64::from(resolve_cast(self.facts, target).is_ok()))
            }
            None => ir::Expr::Long(0),
        }
    }

    /// How `target` is read here, or `None` (with an error) when it cannot be.
    pub(super) fn reading(&mut self, target: &'a ast::Target, span: Span) -> Option<Reading<'a>> {
        let hint_pretty = "print the members you need with printf";
        for component in &target.components {
            match component {
                TargetComponent::Member(_) => {}
                TargetComponent::Index(index) => {
                    // `& @cast(p, "type")[i]->member`: an address, computed
                    // without reading memory (see `address_at_index`).
                    if let TargetBase::Cast { operand, .. } = &target.base
                        && target.address_of
                        && !matches!(index.kind, ExprKind::Number(_))
                    {
                        return Some(Reading::Computed(operand));
                    }
                    if !matches!(index.kind, ExprKind::Number(_)) {
                        self.error(
                            index.span,
                            format!(
                                "the array index '{}' of a target expression must be a number",
                                print_expr(index)
                            ),
                            Some("read the element into a local with a constant index"),
                        );
                        return None;
                    }
                }
                TargetComponent::Pretty(_) => {
                    self.error(
                        span,
                        "'$'/'$$' pretty-printing is not supported yet",
                        Some(hint_pretty),
                    );
                    return None;
                }
            }
        }
        match &target.base {
            TargetBase::Var(name) if name.starts_with("$$") => {
                self.error(
                    span,
                    format!("'{name}' pretty-printing is not supported yet"),
                    Some(hint_pretty),
                );
                None
            }
            TargetBase::Var(var) => {
                if let Some(f) = self.body.function {
                    let name = self.sym.functions[f].name.clone();
                    self.error(
                        span,
                        format!("target variable '{var}' in function '{name}': target variables are only available in probe handlers"),
                        Some("pass the value to the function as an argument"),
                    );
                    return None;
                }
                if !self.body.event {
                    self.error(
                        span,
                        "target variables are only available in probes on kernel events, not in begin, end, error or timer probes",
                        None,
                    );
                    return None;
                }
                Some(Reading::Fetch)
            }
            TargetBase::Cast { operand, .. } => {
                let fetched = self.body.event
                    && self.body.function.is_none()
                    && match &operand.kind {
                        // `& @cast(0, "type")->member` (@offsetof) is a
                        // constant, computed without a fetch.
                        ExprKind::Number(_) => !target.address_of,
                        ExprKind::Target(inner) => {
                            matches!(self.reading(inner, operand.span), Some(Reading::Fetch))
                        }
                        _ => false,
                    };
                if fetched {
                    Some(Reading::Fetch)
                } else {
                    Some(Reading::Computed(operand))
                }
            }
            TargetBase::AtVar { name, .. } => {
                self.error(
                    span,
                    format!(
                        "@var(\"{name}\") needs DWARF debuginfo, which tapmatrix does not read"
                    ),
                    None,
                );
                None
            }
            TargetBase::Autocast(operand) => {
                self.error(
                    span,
                    format!(
                        "'->' on the value '{}' needs its type: tapmatrix has no debuginfo to know it",
                        print_expr(operand)
                    ),
                    Some("name the type: @cast(value, \"task_struct\")->member"),
                );
                None
            }
        }
    }

    /// `& @cast(p, "type")[i]->member` with a variable `i` (one), where no
    /// memory is read on the way: `p + offset + i * stride`, the offset and
    /// stride found by resolving the target at indexes 0 and 1. `None`
    /// when the target has no variable index; an error when it cannot be
    /// computed so.
    fn address_at_index(
        &mut self,
        e: &'a Expr,
        target: &'a ast::Target,
        addr: &ir::Expr,
    ) -> Option<ir::Expr> {
        let variable = |c: &TargetComponent| matches!(c, TargetComponent::Index(index) if !matches!(index.kind, ExprKind::Number(_)));
        let position = target.components.iter().position(variable)?;
        let at = |n: i64| {
            let mut fixed = target.clone();
            if let Some(TargetComponent::Index(index)) = fixed.components.get_mut(position) {
                index.kind = ExprKind::Number(n);
            }
            resolve_cast(self.facts, &fixed)
                .ok()
                .filter(|access| access.loads.is_empty())
                .and_then(|access| access.address)
        };
        let (Some(first), Some(second)) = (at(0), at(1)) else {
            self.error(
                e.span,
                format!("'{}': an array index that is not a number is only allowed where no memory is read on the way to the address", print_expr(e)),
                Some("read the pointer into a local first, then take the element's address"),
            );
            return Some(ir::Expr::Long(0));
        };
        if target.components.iter().filter(|c| variable(c)).count() > 1 {
            self.error(
                e.span,
                format!(
                    "'{}': only one array index may be a variable",
                    print_expr(e)
                ),
                None,
            );
            return Some(ir::Expr::Long(0));
        }
        let TargetComponent::Index(index) = &target.components[position] else {
            return None;
        };
        let loc = self.loc(e.span);
        let (index, _) = self.typed(index, Ty::Long);
        let long = |v: u64| ir::Expr::Long(i64::try_from(v).unwrap_or(i64::MAX));
        let binary = |op, lhs, rhs| ir::Expr::Binary {
            op,
            lhs: Box::new(lhs),
            rhs: Box::new(rhs),
            loc,
        };
        let stride = binary(ir::BinaryOp::Mul, index, long(second.wrapping_sub(first)));
        let base = binary(ir::BinaryOp::Add, addr.clone(), long(first));
        Some(binary(ir::BinaryOp::Add, base, stride))
    }

    /// A read from the address `operand` computes (`@cast(ptr, "type")...`).
    pub(super) fn computed_read(
        &mut self,
        e: &'a Expr,
        target: &'a ast::Target,
        operand: &'a Expr,
    ) -> (ir::Expr, Ty) {
        let (addr, _) = self.typed(operand, Ty::Long);
        if let Some(address) = self.address_at_index(e, target, &addr) {
            return (address, Ty::Long);
        }
        // `& @cast(p, "type")->member` reads no memory: it is `p` plus the
        // member's offset (a constant for `& @cast(0, "type")[1]`,
        // SystemTap's `@cast_sizeof`), on every back end.
        if target.address_of
            && let Ok(access) = resolve_cast(self.facts, target)
            && access.loads.is_empty()
            && let Some(offset) = access.address
        {
            let offset = i64::try_from(offset).unwrap_or(i64::MAX);
            return match addr {
                ir::Expr::Long(base) => (ir::Expr::Long(base.wrapping_add(offset)), Ty::Long),
                addr if offset == 0 => (addr, Ty::Long),
                addr => (
                    ir::Expr::Binary {
                        op: ir::BinaryOp::Add,
                        lhs: Box::new(addr),
                        rhs: Box::new(ir::Expr::Long(offset)),
                        loc: self.loc(e.span),
                    },
                    Ty::Long,
                ),
            };
        }
        if !self.serves(Construct::ComputedRead, &print_expr(e), e.span) {
            return (ir::Expr::Long(0), Ty::Long);
        }
        let access = match resolve_cast(self.facts, target) {
            Ok(access) => access,
            Err(error) => {
                self.error(e.span, format!("'{}': {error}", print_expr(e)), None);
                return (ir::Expr::Long(0), Ty::Long);
            }
        };
        let loc = self.loc(e.span);
        // `@cast(p, "type", "user")`: the memory is the task's, not the
        // kernel's (the `user_*` conversions).
        let user = matches!(&target.base, TargetBase::Cast { module: Some(m), .. } if m == "user");
        let char_array = char_array(&access.var.c_type) && !target.address_of;
        let read = ir::Expr::Read {
            addr: Box::new(addr),
            access: ir::Access {
                loads: access.loads.clone(),
                size: access
                    .var
                    .size
                    .and_then(|size| u8::try_from(size).ok())
                    .filter(|size| matches!(size, 1 | 2 | 4 | 8))
                    .unwrap_or(8),
                signed: access.var.signed.unwrap_or(false),
                bitfield: access.bitfield,
                address: access.address,
                user,
            },
            loc,
        };
        if char_array {
            let max_len = access.var.size.and_then(|size| i64::try_from(size).ok());
            return (
                ir::Expr::ReadString {
                    addr: Box::new(read),
                    max_len: max_len.map(|n| Box::new(ir::Expr::Long(n))),
                    user,
                    fallback: None,
                    loc,
                },
                Ty::Str,
            );
        }
        (read, Ty::Long)
    }

    /// Whether `target` starts from a function parameter in a return probe
    /// (`$file->f_pos`, `@cast($p, "type")->member`): it is read at the
    /// function's entry, where the parameter has its value. (SystemTap reads
    /// the members at the return, through the entry value of the pointer;
    /// a tracefs event can only read them at the entry.)
    fn is_entry_parameter(&self, target: &ast::Target) -> bool {
        // A function's return only: a syscall's exit tracepoint has its
        // own arguments (`$ret`), read where it fires.
        if !self.body.is_return()
            || self
                .body
                .attach
                .iter()
                .any(|at| at.kind != AttachKind::Kretprobe)
        {
            return false;
        }
        match &target.base {
            TargetBase::Var(_) => self.body.attach.first().is_some_and(|point| {
                resolve_target(self.facts, point, target)
                    .is_ok_and(|access| matches!(access.base, ResolvedBase::Param { .. }))
            }),
            TargetBase::Cast { operand, .. } => match &operand.kind {
                ExprKind::Target(inner) => self.is_entry_parameter(inner),
                _ => false,
            },
            _ => false,
        }
    }

    /// `@entry(inner)` (or a parameter read in a return probe, `inner`
    /// itself): evaluated by the probe's entry half at the function's
    /// entry and read here.
    pub(super) fn entry_value(&mut self, e: &'a Expr, inner: &'a Expr, want: Ty) -> (ir::Expr, Ty) {
        let bad = (ir::Expr::Long(0), Ty::Unknown);
        if !self.body.is_return() {
            self.error(
                e.span,
                "@entry is only allowed in return probes (kernel.function(...).return, a syscall's .return)",
                None,
            );
            return bad;
        }
        if !self.serves(Construct::EntryValue, &print_expr(e), e.span) {
            return bad;
        }
        let key = print_expr(inner);
        let mut half = match self.body.entry.take() {
            Some(half) => half,
            None => Box::new(EntryHalf::of(&self.body)),
        };
        half.body.file = self.body.file;
        std::mem::swap(&mut self.body, &mut half.body);
        let (expr, ty) = self.typed(inner, want);
        std::mem::swap(&mut self.body, &mut half.body);
        let index = match half.keys.iter().position(|k| *k == key) {
            Some(index) => {
                half.values[index] = (expr, ty);
                index
            }
            None => {
                half.keys.push(key);
                half.values.push((expr, ty));
                half.values.len() - 1
            }
        };
        self.body.entry = Some(half);
        (
            ir::Expr::EntryValue(u32::try_from(index).unwrap_or(u32::MAX)),
            ty,
        )
    }

    /// Whether the back end serves `construct`; if not, the error (naming
    /// the back end, the kernel and `what`) is recorded.
    pub(super) fn serves(&mut self, construct: Construct, what: &str, span: Span) -> bool {
        let location = self.at(span);
        match self.caps.unsupported(construct, what, location) {
            None => true,
            Some(error) => {
                if self.report {
                    self.push_error(error);
                }
                false
            }
        }
    }

    /// Whether a target expression is a `char[]` member or field at the
    /// probe's first attach point: its value is then the string it holds.
    pub(super) fn is_char_array(&self, target: &ast::Target) -> bool {
        if target.address_of {
            return false;
        }
        let Some(point) = self.body.attach.first() else {
            return false;
        };
        resolve_target_as(self.facts, point, target, self.caps.tracepoint_names)
            .is_ok_and(|access| char_array(&access.var.c_type))
    }

    /// The slot of a fetch request in the current probe (shared when equal).
    pub(super) fn fetch(&mut self, request: FetchRequest) -> u32 {
        let key = match &request {
            FetchRequest::Value { text, .. } => format!("v:{text}"),
            FetchRequest::String {
                text,
                user,
                max_len,
                ..
            } => format!("s:{user}:{max_len:?}:{text}"),
            FetchRequest::Defined { text, .. } => format!("d:{text}"),
        };
        let index = match self.body.fetch_keys.iter().position(|k| *k == key) {
            Some(index) => index,
            None => {
                self.body.fetch_keys.push(key);
                self.body.fetches.push(request);
                self.body.fetches.len() - 1
            }
        };
        u32::try_from(index).unwrap_or(u32::MAX)
    }
}

/// Whether a C type is an array of `char` (its value is the string it holds).
fn char_array(c_type: &str) -> bool {
    let c_type = c_type.trim_start_matches("const ");
    c_type.starts_with("char") && c_type.ends_with(']')
}
