//! SystemTap's warnings about the locals of the script's probes and
//! functions (its pass-2 `semantic_pass_opt2`): a local that is read but
//! never assigned reads 0 or "" everywhere, which is almost always a
//! missing `global` or a misspelt name, so stap says so (`WARNING:
//! never-assigned local variable 'n' (similar: count, n2): identifier 'n'
//! at t.stp:1:13`); `-w` suppresses it like every warning.

use std::collections::HashSet;

use tapmatrix_ir::visit::walk_block;
use tapmatrix_ir::{Expr, LValue, Stmt};

use super::{DerivedProbe, Elab, Local, Lowered};
use crate::error::ElaborateWarning;

/// At most this many similar names are suggested (as stap).
const MAX_SUGGESTIONS: usize = 5;
/// A name farther than this (edit distance) from the local is not similar.
const SIMILAR_DISTANCE: usize = 7;

/// The locals a block reads and the ones it writes (assignments, `++`,
/// `delete`, foreach keys and values, a `catch` variable).
#[derive(Default)]
struct Uses {
    read: HashSet<u32>,
    written: HashSet<u32>,
}

impl Uses {
    fn of(block: &[Stmt]) -> Uses {
        let mut read = HashSet::new();
        let mut written = HashSet::new();
        walk_block(
            block,
            &mut |stmt| match stmt {
                Stmt::Foreach { keys, value, .. } => {
                    written.extend(keys.iter().copied());
                    written.extend(value.iter().copied());
                }
                Stmt::ForeachHist { bucket, .. } => {
                    written.insert(*bucket);
                }
                Stmt::Try {
                    catch_var: Some(var),
                    ..
                } => {
                    written.insert(*var);
                }
                Stmt::Delete(LValue::Local(i)) => {
                    written.insert(*i);
                }
                _ => {}
            },
            &mut |_| {},
        );
        walk_block(block, &mut |_| {}, &mut |e| match e {
            Expr::Local(i) => {
                read.insert(*i);
            }
            Expr::Assign {
                target, op, concat, ..
            } => {
                if let LValue::Local(i) = **target {
                    written.insert(i);
                    // `x += 1` and `x .= "s"` read it too.
                    if op.is_some() || *concat {
                        read.insert(i);
                    }
                }
            }
            Expr::Crement { target, .. } => {
                if let LValue::Local(i) = **target {
                    read.insert(i);
                    written.insert(i);
                }
            }
            _ => {}
        });
        Uses { read, written }
    }
}

/// The names among `others` within [`SIMILAR_DISTANCE`] edits of `name`,
/// nearest first (then by name), at most [`MAX_SUGGESTIONS`], as stap's
/// `(similar: a, b)`.
fn similar<'n>(name: &str, others: impl Iterator<Item = &'n str>) -> String {
    let mut scored: Vec<(usize, &str)> = others
        .filter(|other| !other.is_empty() && *other != name)
        .map(|other| (strsim::levenshtein(name, other), other))
        .filter(|&(distance, _)| distance <= SIMILAR_DISTANCE)
        .collect();
    scored.sort_unstable();
    scored.dedup();
    scored
        .iter()
        .take(MAX_SUGGESTIONS)
        .map(|&(_, other)| other)
        .collect::<Vec<_>>()
        .join(", ")
}

impl Elab<'_> {
    /// Warns about each local of the script's probes and reached functions
    /// that is read and never written, given their lowered bodies.
    pub(super) fn warn_about_locals(
        &mut self,
        probes: &[DerivedProbe<'_>],
        lowered: &[Lowered],
        functions: &[tapmatrix_ir::Function],
    ) {
        let script_globals: Vec<String> = self
            .sym
            .globals
            .iter()
            .filter(|g| g.script)
            .map(|g| g.name.clone())
            .collect();
        let mut bodies: Vec<(&[Local], usize, Uses)> = Vec::new();
        for (probe, lowered) in probes.iter().zip(lowered) {
            bodies.push((&probe.locals, 0, Uses::of(&lowered.probe.body)));
        }
        let mut function_locals = Vec::new();
        for (&f, function) in self.sym.reach_order.iter().zip(functions) {
            let func = &self.sym.functions[f];
            function_locals.push((
                func.locals.clone(),
                func.def.params.len(),
                Uses::of(&function.body),
            ));
        }
        let mut warnings = Vec::new();
        let all = bodies
            .iter()
            .map(|(locals, params, uses)| (*locals, *params, uses))
            .chain(
                function_locals
                    .iter()
                    .map(|(l, p, u)| (l.as_slice(), *p, u)),
            );
        for (locals, params, uses) in all {
            for (i, local) in locals.iter().enumerate().skip(params) {
                let index = u32::try_from(i).unwrap_or(u32::MAX);
                if !local.script || !uses.read.contains(&index) || uses.written.contains(&index) {
                    continue;
                }
                let names = locals
                    .iter()
                    .map(|l| l.name.as_str())
                    .chain(script_globals.iter().map(String::as_str));
                let similar = similar(&local.name, names);
                let message = if similar.is_empty() {
                    format!("never-assigned local variable '{}'", local.name)
                } else {
                    format!(
                        "never-assigned local variable '{}' (similar: {similar})",
                        local.name
                    )
                };
                warnings.push(ElaborateWarning {
                    message,
                    location: local.location.clone(),
                });
            }
        }
        for warning in warnings {
            if !self.warnings.contains(&warning) {
                self.warnings.push(warning);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::similar;

    #[test]
    fn similar_names_nearest_first_at_most_five() {
        let names = [
            "count",
            "n",
            "n2",
            "nn",
            "totally_unrelated_name",
            "a",
            "b",
            "c",
        ];
        assert_eq!(similar("n", names.into_iter()), "a, b, c, n2, nn");
        assert_eq!(similar("totally_unrelated_name", ["x"].into_iter()), "");
    }
}
