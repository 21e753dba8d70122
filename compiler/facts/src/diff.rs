//! [`FactsDiff`]: what changed between two kernels' facts.

use std::cmp::Ordering;
use std::fmt::Write as _;

use serde::Serialize;

use crate::btf::{Btf, BtfError};
use crate::{Field, KernelFacts, Tracepoint};

/// Items only in the newer kernel (`added`) and only in the older (`removed`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AddedRemoved {
    /// Only in the second kernel.
    pub added: Vec<String>,
    /// Only in the first kernel.
    pub removed: Vec<String>,
}

impl AddedRemoved {
    /// Compares two sorted lists.
    fn between<'a>(
        a: impl IntoIterator<Item = &'a str>,
        b: impl IntoIterator<Item = &'a str>,
    ) -> AddedRemoved {
        let (mut a, mut b) = (a.into_iter().peekable(), b.into_iter().peekable());
        let mut diff = AddedRemoved::default();
        loop {
            match (a.peek(), b.peek()) {
                (Some(x), Some(y)) => match x.cmp(y) {
                    Ordering::Less => diff.removed.extend(a.next().map(str::to_owned)),
                    Ordering::Greater => diff.added.extend(b.next().map(str::to_owned)),
                    Ordering::Equal => {
                        a.next();
                        b.next();
                    }
                },
                (Some(_), None) => diff.removed.extend(a.next().map(str::to_owned)),
                (None, Some(_)) => diff.added.extend(b.next().map(str::to_owned)),
                (None, None) => return diff,
            }
        }
    }

    fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty()
    }
}

/// How one field of a tracepoint changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum FieldChange {
    /// The field is new.
    Added {
        /// The field in the second kernel.
        field: Field,
    },
    /// The field is gone.
    Removed {
        /// The field in the first kernel.
        field: Field,
    },
    /// Its type, size or signedness changed (offset moves alone are not reported).
    Changed {
        /// The field in the first kernel.
        from: Field,
        /// The field in the second kernel.
        to: Field,
    },
}

/// The field changes of one tracepoint present in both kernels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TracepointChange {
    /// `system:name`.
    pub tracepoint: String,
    /// What changed.
    pub changes: Vec<FieldChange>,
}

/// A function attachable on both kernels whose BTF prototype differs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PrototypeChange {
    /// The function.
    pub function: String,
    /// Only parameter names changed (types, arity and return type did not):
    /// `$name` accesses need porting, register-based ones do not.
    pub renamed_only: bool,
    /// Its prototype on the first kernel, as C.
    pub from: String,
    /// Its prototype on the second kernel, as C.
    pub to: String,
}

/// What differs between two kernels' facts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FactsDiff {
    /// The first kernel's release.
    pub from: Option<String>,
    /// The second kernel's release.
    pub to: Option<String>,
    /// Attachable functions.
    pub functions: AddedRemoved,
    /// Tracepoints, as `system:name`.
    pub tracepoints: AddedRemoved,
    /// Field changes of tracepoints in both.
    pub tracepoint_fields: Vec<TracepointChange>,
    /// Syscalls.
    pub syscalls: AddedRemoved,
    /// BTF prototype changes of functions attachable on both (empty when
    /// either kernel lacks BTF).
    pub prototypes: Vec<PrototypeChange>,
}

fn attachable(facts: &KernelFacts) -> Vec<&str> {
    let Some(functions) = &facts.functions else {
        return Vec::new();
    };
    functions
        .names
        .iter()
        .filter(|name| !facts.blacklist.as_ref().is_some_and(|b| b.contains(name)))
        .collect()
}

fn tracepoint_key(tp: &Tracepoint) -> String {
    format!("{}:{}", tp.system, tp.name)
}

fn field_changes(a: &Tracepoint, b: &Tracepoint) -> Vec<FieldChange> {
    let mut changes = Vec::new();
    for from in &a.fields {
        match b.field(&from.name) {
            None => changes.push(FieldChange::Removed {
                field: from.clone(),
            }),
            Some(to)
                if (&to.c_type, to.size, to.signed) != (&from.c_type, from.size, from.signed) =>
            {
                changes.push(FieldChange::Changed {
                    from: from.clone(),
                    to: to.clone(),
                });
            }
            Some(_) => {}
        }
    }
    for to in &b.fields {
        if a.field(&to.name).is_none() {
            changes.push(FieldChange::Added { field: to.clone() });
        }
    }
    changes
}

impl Btf {
    /// A function's prototype as C, with parameter names:
    /// `ssize_t vfs_read(struct file *file, char *buf, size_t count, loff_t *pos)`.
    pub fn render_function(&self, name: &str) -> Option<Result<String, BtfError>> {
        prototype_and_types(self, name).map(|result| result.map(|(full, _)| full))
    }
}

/// The prototype, and the same without parameter names.
fn prototype_and_types(btf: &Btf, name: &str) -> Option<Result<(String, String), BtfError>> {
    let function = match btf.function(name)? {
        Ok(function) => function,
        Err(error) => return Some(Err(error)),
    };
    let render = || -> Result<(String, String), BtfError> {
        let (mut params, mut types) = (Vec::new(), Vec::new());
        for param in function.proto.params() {
            let param = param?;
            if param.ty == 0 && param.name.is_empty() {
                params.push("...".to_owned());
                types.push("...".to_owned());
            } else {
                let ty = btf.render(param.ty)?;
                let space = if ty.ends_with('*') { "" } else { " " };
                params.push(format!("{ty}{space}{}", param.name));
                types.push(ty);
            }
        }
        let ret = btf.render(function.proto.ret)?;
        Ok((
            format!("{ret} {name}({})", params.join(", ")),
            format!("{ret} ({})", types.join(", ")),
        ))
    };
    Some(render())
}

/// `char[16] (16 bytes, signed)`.
fn describe(field: &Field) -> String {
    let sign = if field.signed { "signed" } else { "unsigned" };
    format!("{} ({} bytes, {sign})", field.c_type, field.size)
}

impl FactsDiff {
    /// Compares kernel `a` (older) with kernel `b` (newer).
    pub fn between(a: &KernelFacts, b: &KernelFacts) -> FactsDiff {
        let (fa, fb) = (attachable(a), attachable(b));
        let functions = AddedRemoved::between(fa.iter().copied(), fb.iter().copied());
        let (ta, tb) = (
            a.tracepoints.as_deref().unwrap_or_default(),
            b.tracepoints.as_deref().unwrap_or_default(),
        );
        let (ka, kb): (Vec<String>, Vec<String>) = (
            ta.iter().map(tracepoint_key).collect(),
            tb.iter().map(tracepoint_key).collect(),
        );
        let tracepoints =
            AddedRemoved::between(ka.iter().map(String::as_str), kb.iter().map(String::as_str));
        let tracepoint_fields = ta
            .iter()
            .filter_map(|tp| {
                let other = b.tracepoint(&tp.system, &tp.name)?;
                let changes = field_changes(tp, other);
                (!changes.is_empty()).then(|| TracepointChange {
                    tracepoint: tracepoint_key(tp),
                    changes,
                })
            })
            .collect();
        let syscall_names = |facts: &'_ KernelFacts| -> Vec<String> {
            facts
                .syscalls
                .iter()
                .flatten()
                .map(|s| s.name.clone())
                .collect()
        };
        let (sa, sb) = (syscall_names(a), syscall_names(b));
        let syscalls =
            AddedRemoved::between(sa.iter().map(String::as_str), sb.iter().map(String::as_str));
        let prototypes = match (&a.btf, &b.btf) {
            (Some(btf_a), Some(btf_b)) => fa
                .iter()
                .filter(|name| fb.binary_search(name).is_ok())
                .filter_map(|name| {
                    let (from, from_types) = prototype_and_types(btf_a, name)?.ok()?;
                    let (to, to_types) = prototype_and_types(btf_b, name)?.ok()?;
                    (from != to).then(|| PrototypeChange {
                        function: (*name).to_owned(),
                        renamed_only: from_types == to_types,
                        from,
                        to,
                    })
                })
                .collect(),
            _ => Vec::new(),
        };
        let mut prototypes = prototypes;
        // Retyped functions first: they matter more than renamed parameters.
        prototypes.sort_by_key(|change: &PrototypeChange| change.renamed_only);
        FactsDiff {
            from: a.release.clone(),
            to: b.release.clone(),
            functions,
            tracepoints,
            tracepoint_fields,
            syscalls,
            prototypes,
        }
    }

    /// No differences at all.
    pub fn is_empty(&self) -> bool {
        self.functions.is_empty()
            && self.tracepoints.is_empty()
            && self.tracepoint_fields.is_empty()
            && self.syscalls.is_empty()
            && self.prototypes.is_empty()
    }

    /// The diff as text: counts first, then each list (capped at `limit`
    /// items per list with "... and N more"; `None` shows all).
    pub fn render(&self, limit: Option<usize>) -> String {
        let mut out = String::new();
        let name = |release: &Option<String>| release.clone().unwrap_or_else(|| "unknown".into());
        let _ = writeln!(out, "{} -> {}", name(&self.from), name(&self.to));
        let counts = [
            ("functions", &self.functions),
            ("tracepoints", &self.tracepoints),
            ("syscalls", &self.syscalls),
        ];
        for (what, diff) in counts {
            let _ = writeln!(
                out,
                "  {what:<18} +{} -{}",
                diff.added.len(),
                diff.removed.len()
            );
        }
        let _ = writeln!(
            out,
            "  {:<18} {} tracepoints",
            "fields changed",
            self.tracepoint_fields.len()
        );
        let renamed = self.prototypes.iter().filter(|p| p.renamed_only).count();
        let _ = writeln!(
            out,
            "  {:<18} {} functions ({renamed} only renamed parameters)",
            "prototypes changed",
            self.prototypes.len()
        );
        let cap = |len: usize| limit.unwrap_or(usize::MAX).min(len);
        let more = |out: &mut String, len: usize| {
            if len > cap(len) {
                let _ = writeln!(out, "    ... and {} more", len - cap(len));
            }
        };
        for (what, diff) in counts {
            for (sign, list) in [("added", &diff.added), ("removed", &diff.removed)] {
                if list.is_empty() {
                    continue;
                }
                let _ = writeln!(out, "\n{what} {sign} ({}):", list.len());
                for item in &list[..cap(list.len())] {
                    let _ = writeln!(out, "    {item}");
                }
                more(&mut out, list.len());
            }
        }
        if !self.tracepoint_fields.is_empty() {
            let len = self.tracepoint_fields.len();
            let _ = writeln!(out, "\ntracepoint fields changed ({len}):");
            for change in &self.tracepoint_fields[..cap(len)] {
                let _ = writeln!(out, "    {}", change.tracepoint);
                for field in &change.changes {
                    let _ = match field {
                        FieldChange::Added { field } => {
                            writeln!(out, "      + {} {}", field.c_type, field.name)
                        }
                        FieldChange::Removed { field } => {
                            writeln!(out, "      - {} {}", field.c_type, field.name)
                        }
                        FieldChange::Changed { from, to } => writeln!(
                            out,
                            "      ~ {}: {} -> {}",
                            from.name,
                            describe(from),
                            describe(to)
                        ),
                    };
                }
            }
            more(&mut out, len);
        }
        if !self.prototypes.is_empty() {
            let len = self.prototypes.len();
            let _ = writeln!(out, "\nprototypes changed ({len}):");
            for change in &self.prototypes[..cap(len)] {
                let _ = writeln!(out, "    - {}\n    + {}", change.from, change.to);
            }
            more(&mut out, len);
        }
        out
    }
}
