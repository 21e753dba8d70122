//! Fetch arguments: how a dynamic event reads one target expression.
//!
//! A [`TargetAccess`] says where a value starts (a parameter, the return
//! value, a tracepoint field) and which memory reads follow. Here it becomes
//! the kernel's fetch-argument syntax: the start as a register (`%si`, by the
//! x86_64 calling convention) or, where the kernel's tracing README accepts
//! them, the BTF parameter name; then one `+OFFSET(...)` per read; then the
//! type (`:s32`, `:u64`, `:string`, `:ustring`, a bitfield).

use tapmatrix_facts::TracingFeatures;
use tapmatrix_resolve::{TargetAccess, TargetBase};

/// The x86_64 registers of the first six integer arguments.
const ARG_REGISTERS: [&str; 6] = ["%di", "%si", "%dx", "%cx", "%r8", "%r9"];

/// What the handler does with a target expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadAs {
    /// Its value, as a long.
    Value,
    /// The NUL-terminated string at the address it gives, in kernel memory.
    KernelString,
    /// The NUL-terminated string at the address it gives, in user memory.
    UserString,
}

/// Where the event sits: what its fetch arguments may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Site {
    /// A function's entry (kprobe or fprobe): parameters.
    Entry,
    /// A function's return: `$retval` only.
    Return,
    /// A tracepoint read by an eprobe: its fields by name.
    EventFields,
}

/// Why a target expression cannot be fetched by a tracefs event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// A parameter past the sixth on a kernel without BTF arguments.
    #[error(
        "parameter {name} is argument {position}: only the first six are in registers, and this kernel's kprobe events do not take BTF argument names"
    )]
    StackArgument {
        /// The parameter.
        name: String,
        /// Its 1-based position.
        position: usize,
    },
    /// The base is not readable at this site.
    #[error("{what} cannot be read {site}")]
    WrongSite {
        /// The base.
        what: String,
        /// Where.
        site: &'static str,
    },
    /// The expression's value is an address computed in the kernel, or a
    /// struct: tracefs fetches values and strings only.
    #[error("{what} is {why}; tracefs events fetch numbers and strings only")]
    NotAValue {
        /// The expression's type.
        what: String,
        /// What it is.
        why: &'static str,
    },
    /// The kernel lacks a fetch feature.
    #[error("this kernel's probe events lack {feature}")]
    Feature {
        /// What is missing.
        feature: &'static str,
    },
}

/// The fetch argument (with its type) that reads `access` as `read_as`.
pub fn fetch_arg(
    access: &TargetAccess,
    read_as: ReadAs,
    site: Site,
    features: &TracingFeatures,
) -> Result<String, FetchError> {
    let mut arg = base(access, site, features)?;
    let (reads, last) = match access.loads.split_last() {
        Some((last, reads)) => (reads, Some(*last)),
        None => (&access.loads[..], None),
    };
    for offset in reads {
        arg = format!("+{offset}({arg})");
    }
    let string_type = || match read_as {
        ReadAs::UserString if features.ustring => Ok(":ustring"),
        ReadAs::UserString => Err(FetchError::Feature {
            feature: "the ustring type",
        }),
        _ => Ok(":string"),
    };
    match (read_as, access.address, last) {
        // A char array: the string is at its address.
        (ReadAs::KernelString | ReadAs::UserString, Some(offset), last) => {
            if let Some(last) = last {
                arg = format!("+{last}({arg})");
            }
            Ok(format!("+{offset}({arg}){}", string_type()?))
        }
        // A pointer value: the string is where it points.
        (ReadAs::KernelString | ReadAs::UserString, None, last) => {
            if let Some(last) = last {
                arg = format!("+{last}({arg})");
            }
            Ok(format!("+0({arg}){}", string_type()?))
        }
        (ReadAs::Value, Some(_), _) => Err(FetchError::NotAValue {
            what: access.var.c_type.clone(),
            why: "an address (an array, a struct or `&`)",
        }),
        (ReadAs::Value, None, last) => {
            if let Some(last) = last {
                arg = format!("+{last}({arg})");
            }
            Ok(format!("{arg}:{}", value_type(access, features)?))
        }
    }
}

/// The fetch type of a value: its size and signedness, or a bitfield.
fn value_type(access: &TargetAccess, features: &TracingFeatures) -> Result<String, FetchError> {
    let var = &access.var;
    let size = match var.size {
        Some(size @ (1 | 2 | 4 | 8)) => size,
        _ => {
            return Err(FetchError::NotAValue {
                what: var.c_type.clone(),
                why: "not a 1, 2, 4 or 8 byte value",
            });
        }
    };
    if let Some((bit_offset, bits)) = access.bitfield {
        if !features.bitfield {
            return Err(FetchError::Feature {
                feature: "bitfield types",
            });
        }
        return Ok(format!("b{bits}@{bit_offset}/{}", size * 8));
    }
    let sign = if var.signed == Some(true) { 's' } else { 'u' };
    Ok(format!("{sign}{}", size * 8))
}

/// Where the read starts.
fn base(
    access: &TargetAccess,
    site: Site,
    features: &TracingFeatures,
) -> Result<String, FetchError> {
    match (&access.base, site) {
        (TargetBase::Param { name, .. }, Site::Entry) if features.btf_args => Ok(name.clone()),
        (TargetBase::Param { name, index }, Site::Entry) => ARG_REGISTERS
            .get(*index)
            .map(|r| (*r).to_owned())
            .ok_or_else(|| FetchError::StackArgument {
                name: name.clone(),
                position: index + 1,
            }),
        (TargetBase::Return, Site::Return) if features.retval => Ok("$retval".to_owned()),
        (TargetBase::Return, Site::Return) => Err(FetchError::Feature { feature: "$retval" }),
        (TargetBase::Field { name, .. }, Site::EventFields) => Ok(format!("${name}")),
        (TargetBase::Param { name, .. }, Site::Return) => Err(FetchError::WrongSite {
            what: format!("parameter ${name}"),
            site: "at a function's return (use @entry, not supported yet)",
        }),
        (TargetBase::Param { name, .. }, Site::EventFields) => Err(FetchError::WrongSite {
            what: format!("tracepoint argument ${name}"),
            site: "by a tracefs event (only the event's format fields are)",
        }),
        (TargetBase::Return, _) => Err(FetchError::WrongSite {
            what: "$return".to_owned(),
            site: "outside a return probe",
        }),
        (TargetBase::Field { name, .. }, _) => Err(FetchError::WrongSite {
            what: format!("field ${name}"),
            site: "outside a tracepoint",
        }),
        (TargetBase::Cast { type_name }, _) => Err(FetchError::WrongSite {
            what: format!("@cast(..., \"{type_name}\")"),
            site: "by a tracefs event unless its address is a target variable",
        }),
    }
}
