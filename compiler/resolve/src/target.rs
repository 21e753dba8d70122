//! Target variables of an attach point without debuginfo: a function's
//! parameters and return value from its BTF prototype, a tracepoint's own
//! arguments from BTF and its format fields from tracefs.

use serde::Serialize;
use tapmatrix_facts::KernelFacts;
use tapmatrix_facts::btf::{Btf, Kind, Type, TypeId};
use tapmatrix_syntax::ast;

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

/// The BTF describing an attach point: for a module function, the
/// module's (merged onto the kernel's), else the kernel's.
struct BtfAt<'a> {
    module: Option<std::sync::Arc<tapmatrix_facts::Module>>,
    kernel: Option<&'a Btf>,
}

impl BtfAt<'_> {
    fn get(&self) -> Option<&Btf> {
        match &self.module {
            Some(module) => module.btf.as_ref(),
            None => self.kernel,
        }
    }
}

fn btf_at<'a>(facts: &'a KernelFacts, at: Option<&AttachPoint>) -> BtfAt<'a> {
    BtfAt {
        module: at
            .and_then(|at| at.module.as_deref())
            .and_then(|module| facts.module(module).ok().flatten()),
        kernel: facts.btf.as_ref(),
    }
}

/// The target variables at an attach point (empty when the kernel has no
/// BTF for a function, or for `begin`, timers...).
pub fn target_vars(facts: &KernelFacts, point: &AttachPoint) -> Vec<TargetVar> {
    let mut vars = Vec::new();
    match point.kind {
        AttachKind::Kprobe | AttachKind::Kretprobe => {
            let holder = btf_at(facts, Some(point));
            let Some(btf) = holder.get() else {
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

/// How to read a resolved target expression: start from `base`'s value,
/// then for each offset in `loads` read a value at (current + offset):
/// pointers, and last the value itself (`var.size` bytes). When `address`
/// is set the result is (current + that offset), not read (an array, a
/// struct, or `&` taken).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TargetAccess {
    /// `$name`, `$return`, `@cast`, or a tracepoint field.
    pub base: TargetBase,
    /// Byte offsets of the memory reads, in order.
    pub loads: Vec<u64>,
    /// `(bit offset, bits)` within the last value read, for a bitfield.
    pub bitfield: Option<(u32, u32)>,
    /// The result is an address: (current value + this offset), not read.
    pub address: Option<u64>,
    /// `$`/`$$` pretty-printing: the value is a string.
    pub pretty: bool,
    /// The final type.
    pub var: TargetVar,
}

/// Where a target expression starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TargetBase {
    /// A function parameter (`index` from 0) or tracepoint argument.
    Param {
        /// Its name.
        name: String,
        /// Its position.
        index: usize,
    },
    /// The return value.
    Return,
    /// A tracepoint format field, at its offset in the event record.
    Field {
        /// Its name.
        name: String,
        /// Its offset in the record.
        offset: u32,
    },
    /// `@cast(addr, "type")`: an address given by an expression.
    Cast {
        /// The type cast to.
        type_name: String,
    },
}

/// Why a target expression does not resolve at an attach point.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TargetError {
    /// No parameter, argument or field by this name.
    #[error("no target variable ${name} here (available: {})", available.join(" "))]
    NoVariable {
        /// The name asked.
        name: String,
        /// The names there are.
        available: Vec<String>,
    },
    /// The struct or union has no such member.
    #[error("{type_name} has no member {member}")]
    NoMember {
        /// The type.
        type_name: String,
        /// The member asked.
        member: String,
    },
    /// `->` or `[]` on something that is not a pointer, struct or array.
    #[error("{what} on {type_name}, which is not a struct, pointer or array")]
    BadAccess {
        /// `->member` or `[i]`.
        what: String,
        /// The type.
        type_name: String,
    },
    /// The kernel has no BTF, or no BTF for this type or function.
    #[error("no BTF for {what} on this kernel")]
    NoBtf {
        /// What was looked up.
        what: String,
    },
    /// `&` of something with no address: a value in a register (a
    /// parameter, `$return`), a bit field.
    #[error("cannot take {what}")]
    NoAddress {
        /// SystemTap's words: `address of object in register`, `the
        /// address of a bit field`.
        what: String,
    },
    /// Not resolved offline yet (`$$vars`, a variable array index...).
    #[error("{what} is not resolved offline")]
    Unsupported {
        /// The construct.
        what: String,
    },
}

/// Where the walk stands: a value of type `ty` (already read), or an
/// object of type `ty` at (current value + `bits`/8), not read yet.
enum Place {
    Value(TypeId),
    Object(TypeId, u64),
}

fn no_btf(what: impl Into<String>) -> TargetError {
    TargetError::NoBtf { what: what.into() }
}

/// Resolves `$p->f->g[2]`, `@cast(p, "struct task_struct")->pid`... at
/// an attach point, through the kernel's BTF and tracepoint formats.
pub fn resolve_target(
    facts: &KernelFacts,
    at: &AttachPoint,
    target: &ast::Target,
) -> Result<TargetAccess, TargetError> {
    resolve_at(facts, Some(at), target)
}

/// What a bare `$name` at a tracepoint means when the event has both a
/// TP_PROTO argument and a format field of that name.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TracepointNames {
    /// The argument, as SystemTap reads it (fields where no argument has
    /// the name).
    #[default]
    Arguments,
    /// The format field: what an ftrace event records.
    Fields,
}

/// [`resolve_target`], with `names` deciding what a bare `$name` at a
/// tracepoint means.
pub fn resolve_target_as(
    facts: &KernelFacts,
    at: &AttachPoint,
    target: &ast::Target,
    names: TracepointNames,
) -> Result<TargetAccess, TargetError> {
    if names == TracepointNames::Fields
        && at.kind == AttachKind::Tracepoint
        && target.components.is_empty()
        && !target.address_of
        && let ast::TargetBase::Var(var) = &target.base
        && let Some((system, event)) = at.target.split_once(':')
        && let Some(field) = facts
            .tracepoint(system, event)
            .and_then(|tp| tp.field(var.trim_start_matches('$')))
    {
        return Ok(TargetAccess {
            base: TargetBase::Field {
                name: field.name.clone(),
                offset: field.offset,
            },
            loads: Vec::new(),
            bitfield: None,
            address: None,
            pretty: false,
            var: TargetVar {
                name: field.name.clone(),
                c_type: field.c_type.clone(),
                size: Some(u64::from(field.size)),
                signed: Some(field.signed),
            },
        });
    }
    resolve_target(facts, at, target)
}

/// Resolves `@cast(address, "type")->member...` without an attach point:
/// the reads from an address computed at run time (in a function, or from
/// a value). Any other target expression needs its attach point.
pub fn resolve_cast(
    facts: &KernelFacts,
    target: &ast::Target,
) -> Result<TargetAccess, TargetError> {
    resolve_at(facts, None, target)
}

fn resolve_at(
    facts: &KernelFacts,
    at: Option<&AttachPoint>,
    target: &ast::Target,
) -> Result<TargetAccess, TargetError> {
    let holder = btf_at(facts, at);
    let btf = holder.get();
    let (base, mut place) = match &target.base {
        ast::TargetBase::Var(name) if name.starts_with("$$") => {
            return Err(TargetError::Unsupported { what: name.clone() });
        }
        ast::TargetBase::Var(name) => {
            let Some(at) = at else {
                return Err(TargetError::Unsupported {
                    what: format!("{name} outside a probe handler"),
                });
            };
            match base_var(facts, at, name.trim_start_matches('$'))? {
                (base, Some(ty)) => (base, Place::Value(ty)),
                (TargetBase::Field { name, offset }, None) => {
                    let field = at
                        .target
                        .split_once(':')
                        .and_then(|(system, event)| facts.tracepoint(system, event))
                        .and_then(|tp| tp.field(&name))
                        .ok_or_else(|| no_btf(format!("field {name}")))?;
                    let unsupported = || TargetError::Unsupported {
                        what: format!("->/[] on the format field ${name}"),
                    };
                    // `$args[2]` of an array field (`unsigned long[6]`):
                    // the element at its offset in the record.
                    let (offset, var) = match target.components.as_slice() {
                        [] => (
                            offset,
                            TargetVar {
                                c_type: stap_type(&field.c_type),
                                size: Some(u64::from(field.size)),
                                signed: Some(field.signed),
                                name: name.clone(),
                            },
                        ),
                        [ast::TargetComponent::Index(index)] => {
                            let element = match index.kind {
                                ast::ExprKind::Number(i) => {
                                    array_field(&field.c_type).and_then(|(element, count)| {
                                        let i = u32::try_from(i).ok().filter(|i| *i < count)?;
                                        Some((element, i, field.size.checked_div(count)?))
                                    })
                                }
                                _ => None,
                            };
                            let (element, i, size) = element.ok_or_else(unsupported)?;
                            (
                                offset + i * size,
                                TargetVar {
                                    name: format!("{name}[{i}]"),
                                    c_type: stap_type(element),
                                    size: Some(u64::from(size)),
                                    signed: Some(field.signed),
                                },
                            )
                        }
                        _ => return Err(unsupported()),
                    };
                    return Ok(TargetAccess {
                        base: TargetBase::Field { name, offset },
                        loads: Vec::new(),
                        bitfield: None,
                        address: target.address_of.then_some(u64::from(offset)),
                        pretty: false,
                        var,
                    });
                }
                (_, None) => return Err(no_btf(name.clone())),
            }
        }
        ast::TargetBase::Cast { type_name, .. } => {
            let btf = btf.ok_or_else(|| no_btf(type_name.clone()))?;
            let ty = find_type(btf, type_name).ok_or_else(|| no_btf(type_name.clone()))?;
            (
                TargetBase::Cast {
                    type_name: type_name.clone(),
                },
                Place::Object(ty, 0),
            )
        }
        ast::TargetBase::AtVar { name, .. } => {
            return Err(TargetError::Unsupported {
                what: format!("@var(\"{name}\")"),
            });
        }
        ast::TargetBase::Autocast(_) => {
            return Err(TargetError::Unsupported {
                what: "an autocast".to_owned(),
            });
        }
    };
    let btf = btf.ok_or_else(|| no_btf("target variables"))?;
    let btf_error = |e: tapmatrix_facts::BtfError| no_btf(e.to_string());
    let render = |ty: TypeId| btf.render(ty).map(|t| stap_type(&t)).unwrap_or_default();
    let mut loads: Vec<u64> = Vec::new();
    let mut bitfield = None;
    let mut pretty = false;
    for (step, component) in target.components.iter().enumerate() {
        let first = step == 0;
        match component {
            ast::TargetComponent::Member(member) => {
                let (object, base_bits) =
                    pointee(btf, &mut place, &mut loads, &format!("->{member}"))?;
                let location = match btf.member(object, member) {
                    Ok(Some(location)) => location,
                    Ok(None) => {
                        return Err(TargetError::NoMember {
                            type_name: render(object),
                            member: member.clone(),
                        });
                    }
                    Err(_) => {
                        return Err(TargetError::BadAccess {
                            what: format!("->{member}"),
                            type_name: render(object),
                        });
                    }
                };
                bitfield = location
                    .bitfield_size
                    .map(|bits| (location.bit_offset % 8, bits));
                place = Place::Object(location.ty, base_bits + u64::from(location.bit_offset));
            }
            ast::TargetComponent::Index(index) => {
                let ast::ExprKind::Number(i) = index.kind else {
                    return Err(TargetError::Unsupported {
                        what: "a variable array index".to_owned(),
                    });
                };
                let i = u64::try_from(i).map_err(|_| TargetError::Unsupported {
                    what: "a negative array index".to_owned(),
                })?;
                let (elem, bits) = match place {
                    Place::Object(ty, bits) => match btf.get(btf.resolve(ty).map_err(btf_error)?) {
                        Ok(Type::Array { elem, .. }) => (elem, bits),
                        Ok(Type::Ptr(_)) => {
                            pointee(btf, &mut place, &mut loads, &format!("[{i}]"))?
                        }
                        // `@cast(p, "type")[i]`: the i-th `type` from p.
                        _ if first && matches!(base, TargetBase::Cast { .. }) => (ty, bits),
                        _ => {
                            return Err(TargetError::BadAccess {
                                what: format!("[{i}]"),
                                type_name: render(ty),
                            });
                        }
                    },
                    Place::Value(_) => pointee(btf, &mut place, &mut loads, &format!("[{i}]"))?,
                };
                let size = btf.size_of(elem).map_err(btf_error)?.unwrap_or(0);
                bitfield = None;
                place = Place::Object(elem, bits + i * size * 8);
            }
            ast::TargetComponent::Pretty(_) => pretty = true,
        }
    }
    if target.address_of && bitfield.is_some() {
        return Err(TargetError::NoAddress {
            what: "the address of a bit field".to_owned(),
        });
    }
    let (ty, address) = match place {
        // Parameters and return values live in registers at the probe.
        Place::Value(_) if target.address_of => {
            return Err(TargetError::NoAddress {
                what: "address of object in register".to_owned(),
            });
        }
        Place::Value(ty) => (ty, None),
        Place::Object(ty, bits) => {
            let resolved = btf.resolve(ty).map_err(btf_error)?;
            let aggregate = matches!(
                btf.get(resolved),
                Ok(Type::Array { .. } | Type::Composite(_))
            );
            if aggregate || target.address_of {
                (ty, Some(bits / 8))
            } else {
                loads.push(bits / 8);
                (ty, None)
            }
        }
    };
    let name = match &base {
        TargetBase::Param { name, .. } | TargetBase::Field { name, .. } => name.clone(),
        TargetBase::Return => "return".to_owned(),
        TargetBase::Cast { type_name } => type_name.clone(),
    };
    let mut var = btf_var(btf, &name, ty).ok_or_else(|| no_btf(name.clone()))?;
    if pretty {
        var.c_type = "string".to_owned();
    }
    Ok(TargetAccess {
        base,
        loads,
        bitfield: if address.is_some() { None } else { bitfield },
        address,
        pretty,
        var,
    })
}

/// The object `->`/`[]` reaches from `place`: through a pointer value
/// (no read), a pointer in memory (read it: a load), or an embedded struct.
fn pointee(
    btf: &Btf,
    place: &mut Place,
    loads: &mut Vec<u64>,
    what: &str,
) -> Result<(TypeId, u64), TargetError> {
    let btf_error = |e: tapmatrix_facts::BtfError| no_btf(e.to_string());
    let bad = |ty: TypeId| TargetError::BadAccess {
        what: what.to_owned(),
        type_name: btf.render(ty).map(|t| stap_type(&t)).unwrap_or_default(),
    };
    let (ty, in_memory) = match *place {
        Place::Value(ty) => (ty, None),
        Place::Object(ty, bits) => (ty, Some(bits)),
    };
    let resolved = btf.resolve(ty).map_err(btf_error)?;
    match (btf.get(resolved), in_memory) {
        (Ok(Type::Ptr(target)), None) => Ok((btf.resolve(target).map_err(btf_error)?, 0)),
        (Ok(Type::Ptr(target)), Some(bits)) => {
            loads.push(bits / 8);
            *place = Place::Value(ty);
            Ok((btf.resolve(target).map_err(btf_error)?, 0))
        }
        (Ok(Type::Composite(_)), Some(bits)) => Ok((resolved, bits)),
        _ => Err(bad(ty)),
    }
}

/// Whether `@defined(target)` holds at an attach point.
pub fn is_defined(facts: &KernelFacts, at: &AttachPoint, target: &ast::Target) -> bool {
    resolve_target(facts, at, target).is_ok()
}

/// `struct task_struct`, `union x`, `enum e` or a typedef name.
fn find_type(btf: &Btf, type_name: &str) -> Option<TypeId> {
    let name = type_name.trim();
    if let Some(name) = name.strip_prefix("struct ") {
        btf.find(Kind::Struct, name.trim())
    } else if let Some(name) = name.strip_prefix("union ") {
        btf.find(Kind::Union, name.trim())
    } else if let Some(name) = name.strip_prefix("enum ") {
        btf.find(Kind::Enum, name.trim())
            .or_else(|| btf.find(Kind::Enum64, name.trim()))
    } else {
        btf.find(Kind::Typedef, name)
            .or_else(|| btf.find(Kind::Struct, name))
            .or_else(|| btf.find(Kind::Int, base_type_name(name)))
    }
}

/// The element type and length of a format field's array type
/// (`unsigned long[6]`); `None` for anything else (`char[16]` included:
/// a string, read whole).
fn array_field(c_type: &str) -> Option<(&str, u32)> {
    let (element, rest) = c_type.split_once('[')?;
    let count: u32 = rest.strip_suffix(']')?.trim().parse().ok()?;
    let element = element.trim();
    (count > 0 && !element.ends_with("char") && !element.starts_with("__data_loc"))
        .then_some((element, count))
}

/// A C base type as BTF names it (GCC's spelling: `unsigned long` is
/// `long unsigned int`).
fn base_type_name(name: &str) -> &str {
    match name
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .as_str()
    {
        "unsigned" => "unsigned int",
        "long" | "signed long" | "long int" => "long int",
        "unsigned long" | "long unsigned" | "unsigned long int" => "long unsigned int",
        "short" | "signed short" | "short int" => "short int",
        "unsigned short" | "short unsigned" | "unsigned short int" => "short unsigned int",
        "long long" | "signed long long" | "long long int" => "long long int",
        "unsigned long long" | "unsigned long long int" => "long long unsigned int",
        "signed" | "signed int" => "int",
        _ => name,
    }
}

/// The base variable: a BTF parameter or argument (with its type id), the
/// return value, or a tracepoint format field (no type id).
fn base_var(
    facts: &KernelFacts,
    at: &AttachPoint,
    name: &str,
) -> Result<(TargetBase, Option<TypeId>), TargetError> {
    let holder = btf_at(facts, Some(at));
    let btf = holder.get();
    match at.kind {
        AttachKind::Kprobe | AttachKind::Kretprobe => {
            let btf = btf.ok_or_else(|| no_btf(format!("function {}", at.target)))?;
            let function_name = at.clone_of.as_deref().unwrap_or(&at.target);
            let function = btf
                .function(function_name)
                .and_then(Result::ok)
                .ok_or_else(|| no_btf(format!("function {function_name}")))?;
            if name == "return" && at.kind == AttachKind::Kretprobe {
                return Ok((TargetBase::Return, Some(function.proto.ret)));
            }
            let params: Vec<_> = function.proto.params().flatten().collect();
            // `$argN`: the Nth parameter whatever its name, where no
            // parameter is called that (what SystemTap's `pointer_arg(N)`,
            // `int_arg(N)`... read from the registers).
            let position = params.iter().position(|p| p.name == name).or_else(|| {
                let n: usize = name.strip_prefix("arg")?.parse().ok()?;
                n.checked_sub(1).filter(|&i| i < params.len())
            });
            match position {
                Some(index) => Ok((
                    TargetBase::Param {
                        name: params[index].name.to_owned(),
                        index,
                    },
                    Some(params[index].ty),
                )),
                None => Err(TargetError::NoVariable {
                    name: name.to_owned(),
                    available: params.iter().map(|p| p.name.to_owned()).collect(),
                }),
            }
        }
        AttachKind::Tracepoint => {
            let (system, event) = at.target.split_once(':').unwrap_or(("", &at.target));
            // A syscall's exit event carries its return value as `ret`:
            // `$return` there is what it is at the syscall function's return.
            let syscall_exit = (system == "syscalls" && event.starts_with("sys_exit_"))
                || (system == "raw_syscalls" && event == "sys_exit");
            let name = if name == "return" && syscall_exit {
                "ret"
            } else {
                name
            };
            if let Some(btf) = btf
                && let Some(Ok(args)) = btf.tracepoint_args(event)
                && let Some(index) = args.iter().position(|a| a.name == name)
            {
                return Ok((
                    TargetBase::Param {
                        name: name.to_owned(),
                        index,
                    },
                    Some(args[index].ty),
                ));
            }
            let unnamed_args = btf
                .and_then(|btf| btf.tracepoint_args(event))
                .and_then(Result::ok)
                .is_some_and(|args| !args.is_empty() && args.iter().all(|a| a.name.is_empty()));
            match facts.tracepoint(system, event) {
                Some(tp) => match tp.field(name) {
                    Some(field) => Ok((
                        TargetBase::Field {
                            name: name.to_owned(),
                            offset: field.offset,
                        },
                        None,
                    )),
                    // BTF gives the arguments' types but not their names:
                    // `name` may be one of them.
                    None if unnamed_args => Err(no_btf(format!("the argument names of {event}"))),
                    None => Err(TargetError::NoVariable {
                        name: name.to_owned(),
                        available: target_vars(facts, at).into_iter().map(|v| v.name).collect(),
                    }),
                },
                None => Err(no_btf(at.target.clone())),
            }
        }
        _ => Err(TargetError::NoVariable {
            name: name.to_owned(),
            available: Vec::new(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::fixture;

    #[test]
    fn tracepoint_fields_and_btf_params() {
        let mut facts = fixture("6.1");
        let point = AttachPoint::new(AttachKind::Tracepoint, "sched:sched_switch");
        let vars: Vec<String> = target_vars(&facts, &point)
            .iter()
            .map(TargetVar::render)
            .collect();
        assert!(vars.contains(&"$prev_pid:pid_t".to_owned()), "{vars:?}");
        assert!(vars.contains(&"$next_comm:char[16]".to_owned()), "{vars:?}");
        let function = AttachPoint::new(AttachKind::Kprobe, "vfs_read");
        let params: Vec<String> = target_vars(&facts, &function)
            .iter()
            .map(TargetVar::render)
            .collect();
        assert_eq!(
            params,
            [
                "$file:struct file*",
                "$buf:char*",
                "$count:size_t",
                "$pos:loff_t*"
            ]
        );
        // Without BTF a function has no named parameters.
        facts.btf = None;
        assert!(target_vars(&facts, &function).is_empty());
        let still: Vec<String> = target_vars(&facts, &point)
            .iter()
            .map(TargetVar::render)
            .collect();
        assert!(still.contains(&"$prev_pid:pid_t".to_owned()), "{still:?}");
    }
}
