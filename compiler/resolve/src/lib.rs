//! Probe resolution against kernel facts, offline.
//!
//! [`Sources::load`] reads tapset directories and a script for one
//! kernel's profile into a [`Library`] (aliases and the script's probes);
//! a [`Resolver`] expands aliases (`=`, `+=`, wildcards, `?`/`!`, alias
//! suffixes) and resolves the built-in providers (`kernel.function`,
//! `kprobe.function`, `module().function`, `kernel.trace`, `begin`/`end`/
//! `error`/`never`, `timer.*`, `perf.*`) against [`KernelFacts`]: concrete
//! [`AttachPoint`]s, or classified [`Miss`]es. [`Matrix`] does that for
//! every probe on every kernel, with porting [`Suggestion`]s;
//! [`target_vars`] lists an attach point's target variables from BTF and
//! the tracepoint formats.
//!
//! [`KernelFacts`]: tapmatrix_facts::KernelFacts

mod availability;
mod body;
mod kept;
mod library;
mod matrix;
mod outcome;
mod point;
mod resolver;
mod suggest;
mod target;

pub use availability::{Availability, AvailabilityError, availability};
pub use body::{BodyTarget, block_targets};
pub use kept::{ScriptOptions, TapsetLibrary};
pub use library::{
    Alias, AliasMatch, FileNames, Library, LoadDiagnostic, LoadError, Loaded, ParsedFile,
    SCRIPT_LAYER, ScriptProbe, Sources, kernel_profile,
};
pub use matrix::{Cell, KernelInput, Matrix, MissGroup, Row, RowsOf, SCHEMA};
pub use outcome::{AttachKind, AttachPoint, Found, Miss, Outcome, Reason};
pub use point::{Arg, Component, PointSyntaxError, ProbePoint, has_wildcard};
pub use resolver::{Derivation, DerivationStep, Resolver};
pub use suggest::{Suggestion, paste_suggestion, suggest};
pub use target::{
    TargetAccess, TargetBase, TargetError, TargetVar, TracepointNames, is_defined, resolve_cast,
    resolve_target, resolve_target_as, target_vars,
};

#[cfg(test)]
mod tests;
