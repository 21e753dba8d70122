//! [`FactsSummary`]: the counts and probe syntax of one kernel at a glance.

use std::fmt;

use serde::Serialize;

use crate::{KernelConfig, KernelFacts, KernelModules};

/// What a kernel offers, counted (`None`: the kernel lacked the source).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FactsSummary {
    /// `uname -r`.
    pub release: Option<String>,
    /// Functions in `available_filter_functions` and not blacklisted.
    pub attachable_functions: Option<usize>,
    /// Functions on the kprobe blacklist.
    pub blacklisted: Option<usize>,
    /// Function names listed more than once.
    pub ambiguous_functions: Option<usize>,
    /// kallsyms text symbols.
    pub text_symbols: Option<usize>,
    /// Trace events.
    pub tracepoints: Option<usize>,
    /// Syscalls with a `sys_enter_*` event.
    pub syscalls: Option<usize>,
    /// BTF types.
    pub btf_types: Option<usize>,
    /// Config options mentioned.
    pub config_options: Option<usize>,
    /// Probe syntax the kernel accepts (from its tracefs `README`).
    pub probe_syntax: Option<Vec<&'static str>>,
    /// Modules built as `.ko` files, and built in (`modules.builtin`).
    pub modules: Option<(usize, usize)>,
    /// Why the modules are not known (when `modules` is `None`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub modules_missing: Option<String>,
}

impl FactsSummary {
    /// Summarises one kernel's facts.
    pub fn of(facts: &KernelFacts) -> FactsSummary {
        let (modules, modules_missing) = match &facts.modules {
            KernelModules::Tree(tree) => match (tree.count(), tree.builtin_count()) {
                (Ok(built), Ok(builtin)) => (Some((built, builtin)), None),
                (Err(error), _) | (_, Err(error)) => (None, Some(error.to_string())),
            },
            KernelModules::Missing(reason) => (None, Some(reason.clone())),
            KernelModules::Unknown => (None, Some("not recorded".to_owned())),
        };
        FactsSummary {
            release: facts.release.clone(),
            attachable_functions: facts.attachable_count(),
            blacklisted: facts.blacklist.as_ref().map(crate::NameList::len),
            ambiguous_functions: facts.functions.as_ref().map(|f| f.ambiguous.len()),
            text_symbols: facts.kallsyms.as_ref().map(crate::TextSymbols::len),
            tracepoints: facts.tracepoints.as_ref().map(Vec::len),
            syscalls: facts.syscalls.as_ref().map(Vec::len),
            btf_types: facts.btf.as_ref().map(crate::Btf::type_count),
            config_options: facts.config.as_ref().map(KernelConfig::len),
            probe_syntax: facts.features.as_ref().map(|f| f.probe_syntax()),
            modules,
            modules_missing,
        }
    }
}

fn count(value: Option<usize>) -> String {
    value.map_or_else(|| "absent".to_owned(), |n| n.to_string())
}

impl fmt::Display for FactsSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "release:              {}",
            self.release.as_deref().unwrap_or("unknown")
        )?;
        writeln!(
            f,
            "attachable functions: {}",
            count(self.attachable_functions)
        )?;
        writeln!(f, "blacklisted:          {}", count(self.blacklisted))?;
        writeln!(
            f,
            "ambiguous names:      {}",
            count(self.ambiguous_functions)
        )?;
        writeln!(f, "text symbols:         {}", count(self.text_symbols))?;
        writeln!(f, "tracepoints:          {}", count(self.tracepoints))?;
        writeln!(f, "syscalls:             {}", count(self.syscalls))?;
        writeln!(f, "BTF types:            {}", count(self.btf_types))?;
        writeln!(f, "config options:       {}", count(self.config_options))?;
        let syntax = self
            .probe_syntax
            .as_ref()
            .map_or_else(|| "unknown (no README)".to_owned(), |s| s.join(", "));
        writeln!(f, "probe syntax:         {syntax}")?;
        match (&self.modules, &self.modules_missing) {
            (Some((built, builtin)), _) => writeln!(
                f,
                "modules:              {built} (.ko files; {builtin} built in)"
            ),
            (None, reason) => writeln!(
                f,
                "modules:              absent ({})",
                reason.as_deref().unwrap_or("unknown")
            ),
        }
    }
}
