//! What resolving gives: attach points, or classified misses.

use std::fmt;

use serde::{Deserialize, Serialize};

/// What an attach point is in the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AttachKind {
    /// A kprobe (or fprobe) on a function's entry.
    Kprobe,
    /// A kretprobe (or fprobe exit) on a function's return.
    Kretprobe,
    /// A trace event.
    Tracepoint,
    /// `begin`.
    Begin,
    /// `end`.
    End,
    /// `error`.
    Error,
    /// `never`.
    Never,
    /// A timer.
    Timer,
    /// A perf event.
    Perf,
}

/// One concrete place a probe attaches to on one kernel.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct AttachPoint {
    /// What it is.
    pub kind: AttachKind,
    /// The function, `system:event`, timer period or perf event; empty for `begin`...
    pub target: String,
    /// The module of a module function.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub module: Option<String>,
    /// The function a compiler clone (`.isra.0`, ...) was made from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clone_of: Option<String>,
    /// A return probe's `.maxactive(N)`: the instances a kretprobe keeps
    /// for calls in flight (0: the back end's default).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maxactive: Option<u32>,
}

impl AttachPoint {
    /// An attach point without module or clone.
    pub fn new(kind: AttachKind, target: impl Into<String>) -> AttachPoint {
        AttachPoint {
            kind,
            target: target.into(),
            module: None,
            clone_of: None,
            maxactive: None,
        }
    }

    /// Where the `@entry(...)` values of a probe at this return point are
    /// taken: the function's entry for a kretprobe, the syscall's entry
    /// tracepoint for a syscall's exit tracepoint (`syscalls:sys_exit_NAME`
    /// pairs with `syscalls:sys_enter_NAME`, `raw_syscalls:sys_exit` with
    /// `raw_syscalls:sys_enter`: the kernel defines them in pairs); none
    /// for any other point.
    pub fn entry(&self) -> Option<AttachPoint> {
        let target = match self.kind {
            AttachKind::Kretprobe => {
                return Some(AttachPoint {
                    kind: AttachKind::Kprobe,
                    maxactive: None,
                    ..self.clone()
                });
            }
            AttachKind::Tracepoint if self.target == "raw_syscalls:sys_exit" => {
                "raw_syscalls:sys_enter".to_owned()
            }
            AttachKind::Tracepoint => {
                let name = self.target.strip_prefix("syscalls:sys_exit_")?;
                format!("syscalls:sys_enter_{name}")
            }
            _ => return None,
        };
        Some(AttachPoint {
            target,
            ..self.clone()
        })
    }

    /// The concrete probe point, as `stap -l` prints it.
    pub fn probe_point(&self) -> String {
        let module = |rest: String| match &self.module {
            Some(module) => format!("module(\"{module}\").{rest}"),
            None => format!("kernel.{rest}"),
        };
        match self.kind {
            AttachKind::Kprobe => module(format!("function(\"{}\")", self.target)),
            AttachKind::Kretprobe => module(format!("function(\"{}\").return", self.target)),
            AttachKind::Tracepoint => format!("kernel.trace(\"{}\")", self.target),
            AttachKind::Begin => "begin".to_owned(),
            AttachKind::End => "end".to_owned(),
            AttachKind::Error => "error".to_owned(),
            AttachKind::Never => "never".to_owned(),
            AttachKind::Timer | AttachKind::Perf => self.target.clone(),
        }
    }
}

/// Why a probe point resolves to nothing on a kernel.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Reason {
    /// Neither traceable nor a symbol: removed, renamed or inlined everywhere.
    FunctionAbsent {
        /// The function.
        function: String,
    },
    /// Absent, and a function with the same BTF prototype and a near name is there.
    Renamed {
        /// The function.
        function: String,
        /// Its new name.
        to: String,
    },
    /// In kallsyms but not traceable: inlined at call sites, or notrace.
    SymbolOnly {
        /// The function.
        function: String,
    },
    /// Only compiler clones of it are traceable.
    ClonesOnly {
        /// The function.
        function: String,
        /// The clones (`f.isra.0`, ...).
        clones: Vec<String>,
    },
    /// Traceable but on the kprobe blacklist.
    Blacklisted {
        /// The function.
        function: String,
    },
    /// `.exported` asked, the function is not a global symbol.
    NotExported {
        /// The function.
        function: String,
    },
    /// No such trace event.
    TracepointAbsent {
        /// `system:event` or `event` as asked.
        event: String,
    },
    /// Needs DWARF debuginfo (inline instances, statements, source lines).
    NeedsDwarf {
        /// What needs it.
        what: String,
    },
    /// The kernel's packages build no module by this name (read offline
    /// from its modules tree).
    ModuleNotBuilt {
        /// The module (or pattern).
        module: String,
    },
    /// The module is built into the kernel (`modules.builtin`): its
    /// functions are the kernel's, probed as `kernel.function(...)`.
    ModuleBuiltin {
        /// The module.
        module: String,
    },
    /// A wildcard that matched nothing.
    NothingMatched {
        /// The pattern.
        pattern: String,
    },
    /// The kernel lacks a feature the provider needs.
    FeatureMissing {
        /// What is missing.
        feature: String,
    },
    /// A provider tapmatrix does not resolve offline (user space, netfilter...).
    Unsupported {
        /// The provider.
        provider: String,
    },
    /// Neither an alias nor a provider has this name.
    NoSuchProbe,
    /// The provider does not accept these components or arguments.
    BadPoint {
        /// What is wrong.
        message: String,
    },
    /// The facts this needs were not harvested for the kernel.
    FactsMissing {
        /// Which facts.
        what: String,
    },
    /// Alias expansion nests too deep (a cycle).
    TooDeep,
    /// A target variable the handler reads is not there: a parameter
    /// renamed or removed.
    TargetVarMissing {
        /// The expression (`$file->f_inode`).
        expr: String,
        /// The variables there are.
        available: Vec<String>,
    },
    /// A field of a trace event that the handler reads is gone from the
    /// event's format (and its BTF arguments): the tracepoint changed.
    TracepointFieldMissing {
        /// The expression (`$success`).
        expr: String,
        /// The event, `system:event`.
        event: String,
        /// The fields and arguments there are.
        available: Vec<String>,
    },
    /// A struct member the handler reads is gone (or moved into another struct).
    MemberMissing {
        /// The expression.
        expr: String,
        /// The struct or union.
        type_name: String,
        /// The member.
        member: String,
    },
    /// A target expression no longer fits the types (`->` on a non-pointer...): retyped.
    TargetRetyped {
        /// The expression.
        expr: String,
        /// What does not fit.
        message: String,
    },
}

impl Reason {
    /// A short machine-friendly class name (`function_absent`...).
    pub fn class(&self) -> &'static str {
        match self {
            Reason::FunctionAbsent { .. } => "function_absent",
            Reason::Renamed { .. } => "renamed",
            Reason::SymbolOnly { .. } => "symbol_only",
            Reason::ClonesOnly { .. } => "clones_only",
            Reason::Blacklisted { .. } => "blacklisted",
            Reason::NotExported { .. } => "not_exported",
            Reason::TracepointAbsent { .. } => "tracepoint_absent",
            Reason::NeedsDwarf { .. } => "needs_dwarf",
            Reason::ModuleNotBuilt { .. } => "module_not_built",
            Reason::ModuleBuiltin { .. } => "module_builtin",
            Reason::NothingMatched { .. } => "nothing_matched",
            Reason::FeatureMissing { .. } => "feature_missing",
            Reason::Unsupported { .. } => "unsupported",
            Reason::NoSuchProbe => "no_such_probe",
            Reason::BadPoint { .. } => "bad_point",
            Reason::FactsMissing { .. } => "facts_missing",
            Reason::TooDeep => "too_deep",
            Reason::TargetVarMissing { .. } => "target_var_missing",
            Reason::TracepointFieldMissing { .. } => "tracepoint_field_missing",
            Reason::MemberMissing { .. } => "member_missing",
            Reason::TargetRetyped { .. } => "target_retyped",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::FunctionAbsent { function } => write!(f, "function {function} is absent"),
            Reason::Renamed { function, to } => {
                write!(
                    f,
                    "function {function} renamed to {to} (same BTF prototype)"
                )
            }
            Reason::SymbolOnly { function } => write!(
                f,
                "function {function} is in kallsyms but not traceable (inlined or notrace)"
            ),
            Reason::ClonesOnly { function, clones } => write!(
                f,
                "only compiler clones of {function} are traceable: {}",
                clones.join(", ")
            ),
            Reason::Blacklisted { function } => {
                write!(f, "function {function} is on the kprobe blacklist")
            }
            Reason::NotExported { function } => {
                write!(f, "function {function} is not a global (exported) symbol")
            }
            Reason::TracepointAbsent { event } => write!(f, "tracepoint {event} is absent"),
            Reason::NeedsDwarf { what } => write!(f, "{what} needs DWARF debuginfo"),
            Reason::ModuleNotBuilt { module } => {
                write!(f, "module {module} is not built for this kernel")
            }
            Reason::ModuleBuiltin { module } => write!(
                f,
                "module {module} is built into this kernel: probe kernel.function(...)"
            ),
            Reason::NothingMatched { pattern } => write!(f, "{pattern} matches nothing"),
            Reason::FeatureMissing { feature } => write!(f, "the kernel lacks {feature}"),
            Reason::Unsupported { provider } => {
                write!(f, "{provider} probes are not resolved offline")
            }
            Reason::NoSuchProbe => write!(f, "no probe alias or provider by this name"),
            Reason::BadPoint { message } => write!(f, "{message}"),
            Reason::FactsMissing { what } => write!(f, "{what} not harvested for this kernel"),
            Reason::TooDeep => write!(f, "alias expansion nests too deep (a cycle?)"),
            Reason::TargetVarMissing { expr, available } => write!(
                f,
                "{expr} is not there (renamed or removed); there are: {}",
                available.join(" ")
            ),
            Reason::TracepointFieldMissing {
                expr,
                event,
                available,
            } => write!(
                f,
                "{expr}: tracepoint {event} has no such field any more; there are: {}",
                available.join(" ")
            ),
            Reason::MemberMissing {
                expr,
                type_name,
                member,
            } => write!(f, "{expr}: {type_name} has no member {member} any more"),
            Reason::TargetRetyped { expr, message } => write!(f, "{expr}: {message}"),
        }
    }
}

/// One probe point that resolved to nothing, and why.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Miss {
    /// The concrete (leaf) probe point, after alias expansion.
    pub point: String,
    /// Why.
    pub reason: Reason,
}

/// What a probe point, or a probe's list of alternatives, resolves to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Found {
    /// Every attach point.
    pub attach: Vec<AttachPoint>,
    /// The leaf probe points that resolved (the alternatives used).
    pub alternatives: Vec<String>,
    /// Optional leaf points that resolved to nothing.
    pub optional_misses: Vec<Miss>,
}

impl Found {
    pub(crate) fn extend(&mut self, other: Found) {
        self.attach.extend(other.attach);
        for alternative in other.alternatives {
            if !self.alternatives.contains(&alternative) {
                self.alternatives.push(alternative);
            }
        }
        self.optional_misses.extend(other.optional_misses);
    }
}

/// A probe's resolution on one kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// It attaches somewhere.
    Resolved(Found),
    /// Every missing point was optional; it attaches nowhere.
    OptionalMissing(Vec<Miss>),
    /// A non-optional point resolves to nothing.
    Unresolved(Vec<Miss>),
}
