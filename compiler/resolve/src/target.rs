//! Target variables of an attach point without debuginfo: a function's
//! parameters and return value from its BTF prototype, a tracepoint's own
//! arguments from BTF and its format fields from tracefs.

use serde::Serialize;
use tapmatrix_facts::KernelFacts;
use tapmatrix_facts::btf::{Btf, Type, TypeId};

use crate::outcome::{AttachKind, AttachPoint};

/// One target variable (`$file`, `$return`, `$prev_pid`) and its type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TargetVar {
    /// The name without `$`.
    pub name: String,
    /// The C type, as `stap -L` prints it (`struct file*`).
    pub c_type: String,
    /// Its size in bytes, when known.
    pub size: Option<u64>,
    /// Whether it is a signed integer (`None` when not an integer).
    pub signed: Option<bool>,
}

impl TargetVar {
    /// `$name:type`.
    pub fn render(&self) -> String {
        format!("${}:{}", self.name, self.c_type)
    }
}

/// SystemTap's spelling of a C type: no space before `*`.
fn stap_type(c_type: &str) -> String {
    c_type.replace(" *", "*")
}

fn btf_var(btf: &Btf, name: &str, ty: TypeId) -> Option<TargetVar> {
    let c_type = stap_type(&btf.render(ty).ok()?);
    let resolved = btf.resolve(ty).ok()?;
    let signed = match btf.get(resolved).ok()? {
        Type::Int(int) => Some(int.signed),
        Type::Enum(e) => Some(e.signed),
        Type::Ptr(_) => Some(false),
        _ => None,
    };
    Some(TargetVar {
        name: name.to_owned(),
        c_type,
        size: btf.size_of(ty).ok().flatten(),
        signed,
    })
}

/// The target variables at an attach point (empty when the kernel has no
/// BTF for a function, or for `begin`, timers...).
pub fn target_vars(facts: &KernelFacts, point: &AttachPoint) -> Vec<TargetVar> {
    let mut vars = Vec::new();
    match point.kind {
        AttachKind::Kprobe | AttachKind::Kretprobe => {
            let Some(btf) = &facts.btf else {
                return vars;
            };
            let name = point.clone_of.as_deref().unwrap_or(&point.target);
            let Some(Ok(function)) = btf.function(name) else {
                return vars;
            };
            for param in function.proto.params().flatten() {
                if !param.name.is_empty()
                    && let Some(var) = btf_var(btf, param.name, param.ty)
                {
                    vars.push(var);
                }
            }
            if point.kind == AttachKind::Kretprobe
                && function.proto.ret != 0
                && let Some(var) = btf_var(btf, "return", function.proto.ret)
            {
                vars.push(var);
            }
        }
        AttachKind::Tracepoint => {
            let Some((system, event)) = point.target.split_once(':') else {
                return vars;
            };
            if let Some(btf) = &facts.btf
                && let Some(Ok(args)) = btf.tracepoint_args(event)
            {
                for arg in args {
                    if !arg.name.is_empty()
                        && let Some(var) = btf_var(btf, arg.name, arg.ty)
                    {
                        vars.push(var);
                    }
                }
            }
            if let Some(tp) = facts.tracepoint(system, event) {
                for field in &tp.fields {
                    if vars.iter().all(|v| v.name != field.name) {
                        vars.push(TargetVar {
                            name: field.name.clone(),
                            c_type: stap_type(&field.c_type),
                            size: Some(u64::from(field.size)),
                            signed: Some(field.signed),
                        });
                    }
                }
            }
        }
        _ => {}
    }
    vars
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::fixture;

    #[test]
    fn tracepoint_fields_without_btf() {
        let facts = fixture("6.1");
        let point = AttachPoint::new(AttachKind::Tracepoint, "sched:sched_switch");
        let vars: Vec<String> = target_vars(&facts, &point)
            .iter()
            .map(TargetVar::render)
            .collect();
        assert!(vars.contains(&"$prev_pid:pid_t".to_owned()), "{vars:?}");
        assert!(vars.contains(&"$next_comm:char[16]".to_owned()), "{vars:?}");
        let function = AttachPoint::new(AttachKind::Kprobe, "vfs_read");
        assert!(target_vars(&facts, &function).is_empty());
    }
}
