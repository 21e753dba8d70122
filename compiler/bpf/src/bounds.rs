//! How long the strings in a frame's string locals can get, so that each
//! local gets a buffer that size instead of `MAXSTRINGLEN`: a loop over a
//! local's bytes (`isinstr`, a comparison) is walked by the verifier once
//! per byte its buffer might hold, and scratch memory is shared by all.
//!
//! A local holds "" at first and then only what assignments give it: in
//! the kernel nothing else writes one (`foreach` and `try` are not served
//! there; `delete` empties it; an inlined call's parameters are bound to
//! its arguments). So its bound is the largest of its assignments', found
//! by going over them until none grows. Copies into a local stop at its
//! buffer whatever the bound says, so a bound too small would cut a
//! string, never overrun memory.

use tapmatrix_ir::visit::walk_block;
use tapmatrix_ir::{Builtin, Expr, FormatSpec, LValue, ScalarType, Stmt};

use crate::codegen::{Gen, Slot};
use crate::sprintf::{decimal, format_room};

impl Gen<'_> {
    /// The buffer each local of a frame needs, its terminator included
    /// (entries of longs are unused): the frame's `body` with locals of
    /// `types`, the first of them bound to buffers of `params` (an inlined
    /// call's arguments); at most `MAXSTRINGLEN`.
    pub(crate) fn local_caps(
        &self,
        body: &[Stmt],
        types: &[ScalarType],
        params: &[u32],
    ) -> Vec<u32> {
        let max = self.max_string();
        let mut writes: Vec<(usize, Expr, bool)> = Vec::new();
        walk_block(body, &mut |_| {}, &mut |e| {
            if let Expr::Assign {
                target,
                op: None,
                concat,
                value,
                ..
            } = e
                && let LValue::Local(i) = target.as_ref()
                && types.get(*i as usize) == Some(&ScalarType::String)
            {
                writes.push((*i as usize, value.as_ref().clone(), *concat));
            }
        });
        let local_type = |i: u32| types.get(i as usize).copied().unwrap_or(ScalarType::Long);
        let mut caps: Vec<u32> = (0..types.len())
            .map(|i| params.get(i).copied().unwrap_or(1).clamp(1, max))
            .collect();
        // A chain of locals settles in as many rounds as there are locals;
        // a local that still grows after that grows without end (`s .= "x"`
        // in a loop) and gets `MAXSTRINGLEN` at once.
        let settled = types.len() + 1;
        for round in 0.. {
            let mut grew = false;
            for (i, value, concat) in &writes {
                let mut cap = self.string_bound(value, &caps, &local_type);
                if *concat {
                    cap = (caps[*i] - 1 + cap).min(max);
                }
                if cap > caps[*i] {
                    caps[*i] = if round >= settled { max } else { cap };
                    grew = true;
                }
            }
            if !grew {
                break;
            }
        }
        caps
    }

    /// The buffers of the current frame's locals (1 for longs).
    pub(crate) fn frame_caps(&self) -> Vec<u32> {
        self.frame_slots()
            .iter()
            .map(|slot| match slot {
                Slot::Str(place) => place.cap,
                Slot::Long(_) => 1,
            })
            .collect()
    }

    /// A buffer that holds every value of the string `e` (its terminator
    /// included, at most `MAXSTRINGLEN`), where locals need `caps` and have
    /// the types `local_type` gives: what [`Gen::string`] makes of `e` or
    /// less (a conditional's place is `MAXSTRINGLEN`, its values no longer
    /// than its branches').
    pub(crate) fn string_bound(
        &self,
        e: &Expr,
        caps: &[u32],
        local_type: &dyn Fn(u32) -> ScalarType,
    ) -> u32 {
        let max = self.max_string();
        let bound = |e: &Expr| self.string_bound(e, caps, local_type);
        let cap = match e {
            Expr::Str(text) => text.len() as u32 + 1,
            Expr::Local(i) => caps.get(*i as usize).copied().unwrap_or(max),
            Expr::Assign { target, .. } => match target.as_ref() {
                LValue::Local(i) => caps.get(*i as usize).copied().unwrap_or(max),
                _ => max,
            },
            Expr::Concat(a, b) => bound(a).saturating_sub(1) + bound(b),
            Expr::Ternary {
                then, otherwise, ..
            } => bound(then).max(bound(otherwise)),
            Expr::Builtin {
                builtin: Builtin::Execname,
                ..
            } => 16,
            Expr::Builtin {
                builtin: Builtin::Pp,
                ..
            } => self.site.pp.len() as u32 + 1,
            Expr::Printf {
                to_string: true,
                format,
                args,
            } => self.format_bound(format, args, caps, local_type),
            Expr::Builtin {
                builtin: builtin @ (Builtin::Sprint | Builtin::Sprintln),
                args,
                ..
            } => {
                let newline = *builtin == Builtin::Sprintln;
                let (format, args) = self.sprint_format(args, newline, local_type);
                self.format_bound(&format, &args, caps, local_type)
            }
            Expr::LongToStr(_) => format_room(&[decimal()], &[None]),
            _ => max,
        };
        cap.clamp(1, max)
    }

    /// [`Gen::string_bound`] of `sprintf(format, args...)`.
    fn format_bound(
        &self,
        format: &[FormatSpec],
        args: &[Expr],
        caps: &[u32],
        local_type: &dyn Fn(u32) -> ScalarType,
    ) -> u32 {
        let rooms: Vec<Option<u32>> = args
            .iter()
            .map(|arg| match self.ty_in(arg, local_type) {
                ScalarType::String => Some(self.string_bound(arg, caps, local_type)),
                ScalarType::Long => None,
            })
            .collect();
        format_room(format, &rooms)
    }
}
