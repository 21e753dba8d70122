//! Typed kernel facts ([`KernelFacts`]): functions, symbols, tracepoints,
//! syscalls, tracing features, config and BTF, parsed from what a booted
//! kernel exposes (a raw harvest directory), saved and loaded per kernel,
//! summarised ([`FactsSummary`]) and compared ([`FactsDiff`]).
//!
//! Every source is optional: a kernel that lacks a file has `None` there,
//! never an empty list.
//!
//! A raw harvest directory holds what the guest dumped, each file as read:
//!
//! | file | from |
//! | --- | --- |
//! | `uname_release`, `proc_version` | `uname -r`, `/proc/version` |
//! | `tracing/README`, `tracing/available_filter_functions`, `tracing/available_events` | tracefs |
//! | `tracing/events/<system>/<event>/format` | tracefs, every event |
//! | `kprobes_blacklist` | debugfs `kprobes/blacklist` (`0xSTART-0xEND\tname`) |
//! | `kallsyms` | `/proc/kallsyms` (or the kernel image's symbol table, which it expands: addresses 0), text symbols only |
//! | `btf_vmlinux` | `/sys/kernel/btf/vmlinux` |
//!
//! Saved facts are `facts.json` (lean: big name lists are single
//! space-joined strings) and `btf.bin` (the raw blob, indexed on load).

pub mod btf;
mod config;
mod diff;
mod features;
pub mod modules;
mod names;
mod summary;
mod symbols;
mod tracepoints;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use btf::{Btf, BtfError};
pub use config::{ConfigValue, KernelConfig};
pub use diff::{AddedRemoved, FactsDiff, FieldChange, PrototypeChange, TracepointChange};
pub use features::TracingFeatures;
pub use modules::{KernelModules, Module, ModuleError, ModuleImage, ModuleTree, ModulesRecord};
pub use names::NameList;
pub use summary::FactsSummary;
pub use symbols::{
    Binding, CloneSuffix, FilterFunctions, ModuleSymbol, TextSymbols, clone_base, split_clone,
};
pub use tracepoints::{Field, Syscall, Tracepoint};

/// The version of the saved format; facts saved with another are re-harvested.
pub const FORMAT_VERSION: u32 = 1;

/// The file [`KernelFacts::save`] writes the typed facts to.
pub const FACTS_FILE: &str = "facts.json";
/// The file [`KernelFacts::save`] writes the raw BTF blob to.
pub const BTF_FILE: &str = "btf.bin";

/// What is wrong on one line of an input file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// The 1-based line.
    pub line: usize,
    /// What was wrong.
    pub what: String,
}

impl ParseError {
    pub(crate) fn new(line: usize, what: String) -> ParseError {
        ParseError { line, what }
    }
}

/// Why facts could not be parsed, saved or loaded.
#[derive(Debug, thiserror::Error)]
pub enum FactsError {
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// A raw file has a line this parser does not understand.
    #[error("{}:{line}: {what}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// The 1-based line.
        line: usize,
        /// What was wrong.
        what: String,
    },
    /// The BTF blob is corrupt.
    #[error("{}: {source}", path.display())]
    Btf {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        source: BtfError,
    },
    /// Saved facts do not parse as JSON of this format.
    #[error("{}: {source} (re-harvest the kernel)", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// The JSON error.
        source: serde_json::Error,
    },
    /// Saved facts have another format version.
    #[error(
        "stale facts in {}: format version {found}, this tapmatrix reads version {FORMAT_VERSION}: re-harvest the kernel",
        dir.display()
    )]
    Stale {
        /// The facts directory.
        dir: PathBuf,
        /// The version found.
        found: u32,
    },
}

/// Everything tapmatrix knows about one kernel, offline.
#[derive(Debug, Serialize, Deserialize)]
pub struct KernelFacts {
    /// [`FORMAT_VERSION`] of the saved file.
    pub format_version: u32,
    /// `uname -r`.
    pub release: Option<String>,
    /// `/proc/version`.
    pub proc_version: Option<String>,
    /// `available_filter_functions`.
    pub functions: Option<FilterFunctions>,
    /// The kprobe blacklist's function names, sorted.
    pub blacklist: Option<NameList>,
    /// kallsyms text symbols, sorted by name.
    pub kallsyms: Option<TextSymbols>,
    /// Trace events sorted by (system, name).
    pub tracepoints: Option<Vec<Tracepoint>>,
    /// The `common_*` fields every event record starts with.
    pub common_fields: Option<Vec<Field>>,
    /// Syscalls, from the `sys_enter_*` events, sorted by name.
    pub syscalls: Option<Vec<Syscall>>,
    /// What the dynamic events accept, from the tracefs `README`.
    pub features: Option<TracingFeatures>,
    /// The build configuration.
    pub config: Option<KernelConfig>,
    /// The raw BTF blob's size when the kernel had BTF (it is saved beside).
    pub btf_size: Option<u64>,
    /// The kernel's BTF, indexed.
    #[serde(skip)]
    pub btf: Option<Btf>,
    /// The kernel's modules, read offline from its packages' `.ko` files
    /// (from `modules.json` beside the saved facts; not part of the
    /// facts format, so recording them re-harvests nothing).
    #[serde(skip)]
    pub modules: KernelModules,
}

/// Where a function stands on a kernel, for probing it by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FunctionPresence<'a> {
    /// In `available_filter_functions` and not blacklisted.
    Attachable,
    /// Traceable but on the kprobe blacklist.
    Blacklisted,
    /// Not traceable under its own name, but compiler clones of it are.
    Clones(Vec<&'a str>),
    /// A text symbol in kallsyms, but not traceable (notrace, or inlined
    /// at some call sites and kept static).
    SymbolOnly,
    /// Neither traceable nor a text symbol: inlined everywhere, renamed, or removed.
    Absent,
    /// The kernel's function list was not harvested.
    Unknown,
}

fn read_optional(path: &Path) -> Result<Option<String>, FactsError> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(String::from_utf8_lossy(&bytes).into_owned())),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(FactsError::Io {
            path: path.to_owned(),
            source,
        }),
    }
}

fn parse_file<T>(
    path: &Path,
    parse: impl FnOnce(&str) -> Result<T, ParseError>,
) -> Result<Option<T>, FactsError> {
    let Some(text) = read_optional(path)? else {
        return Ok(None);
    };
    parse(&text).map(Some).map_err(|error| FactsError::Parse {
        path: path.to_owned(),
        line: error.line,
        what: error.what,
    })
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> FactsError + '_ {
    move |source| FactsError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Trace events and the common fields their records start with.
type Events = (Vec<Tracepoint>, Vec<Field>);

/// Reads every `events/<system>/<event>/format` under `events`, keeping the
/// events `available_events` lists when it exists.
fn read_tracepoints(events: &Path, available: Option<&str>) -> Result<Option<Events>, FactsError> {
    let systems = match fs::read_dir(events) {
        Ok(systems) => systems,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(io_error(events)(source)),
    };
    let listed: Option<std::collections::HashSet<&str>> =
        available.map(|text| text.lines().map(str::trim).collect());
    let mut tracepoints = Vec::new();
    let mut common = None;
    for system in systems {
        let system = system.map_err(io_error(events))?;
        if !system.file_type().map_err(io_error(events))?.is_dir() {
            continue;
        }
        let system_name = system.file_name().to_string_lossy().into_owned();
        let system_path = system.path();
        for event in fs::read_dir(&system_path).map_err(io_error(&system_path))? {
            let event = event.map_err(io_error(&system_path))?;
            let path = event.path().join("format");
            let event_name = event.file_name().to_string_lossy().into_owned();
            if listed.as_ref().is_some_and(|listed| {
                !listed.contains(format!("{system_name}:{event_name}").as_str())
            }) {
                continue;
            }
            let Some(format) = parse_file(&path, tracepoints::parse_format)? else {
                continue;
            };
            if common.is_none() && !format.common.is_empty() {
                common = Some(format.common);
            }
            tracepoints.push(Tracepoint {
                system: system_name.clone(),
                name: format.name,
                fields: format.fields,
            });
        }
    }
    tracepoints.sort_by(|a, b| (&a.system, &a.name).cmp(&(&b.system, &b.name)));
    Ok(Some((tracepoints, common.unwrap_or_default())))
}

impl KernelFacts {
    /// Parses a raw harvest directory (layout in the crate docs) and, when
    /// given, the kernel's config file.
    pub fn from_raw(raw_dir: &Path, config: Option<&Path>) -> Result<KernelFacts, FactsError> {
        let text = |name: &str| read_optional(&raw_dir.join(name));
        let line = |text: Option<String>| text.map(|t| t.trim().to_owned());
        let tracing = raw_dir.join("tracing");
        let available = read_optional(&tracing.join("available_events"))?;
        let events = read_tracepoints(&tracing.join("events"), available.as_deref())?;
        let (tracepoints, common_fields) = match events {
            Some((tracepoints, common)) => (Some(tracepoints), Some(common)),
            None => (None, None),
        };
        let btf_path = raw_dir.join("btf_vmlinux");
        let btf = match fs::read(&btf_path) {
            Ok(bytes) => Some(Btf::parse(bytes).map_err(|source| FactsError::Btf {
                path: btf_path.clone(),
                source,
            })?),
            Err(error) if error.kind() == io::ErrorKind::NotFound => None,
            Err(source) => return Err(io_error(&btf_path)(source)),
        };
        let config = match config {
            Some(path) => {
                Some(
                    parse_file(path, KernelConfig::parse)?.ok_or_else(|| FactsError::Io {
                        path: path.to_owned(),
                        source: io::ErrorKind::NotFound.into(),
                    })?,
                )
            }
            None => None,
        };
        Ok(KernelFacts {
            format_version: FORMAT_VERSION,
            release: line(text("uname_release")?),
            proc_version: line(text("proc_version")?),
            functions: parse_file(
                &tracing.join("available_filter_functions"),
                FilterFunctions::parse,
            )?,
            blacklist: parse_file(&raw_dir.join("kprobes_blacklist"), symbols::parse_blacklist)?,
            kallsyms: parse_file(&raw_dir.join("kallsyms"), symbols::parse_kallsyms)?,
            syscalls: tracepoints.as_deref().map(tracepoints::syscalls),
            tracepoints,
            common_fields,
            features: read_optional(&tracing.join("README"))?
                .map(|readme| TracingFeatures::from_readme(&readme)),
            config,
            btf_size: btf.as_ref().map(|btf| btf.bytes().len() as u64),
            btf,
            modules: KernelModules::Unknown,
        })
    }

    /// Writes `facts.json` and, when the kernel has BTF, `btf.bin` into `dir`
    /// (created if missing).
    pub fn save(&self, dir: &Path) -> Result<(), FactsError> {
        fs::create_dir_all(dir).map_err(io_error(dir))?;
        let facts_path = dir.join(FACTS_FILE);
        let json = serde_json::to_vec(self).map_err(|source| FactsError::Json {
            path: facts_path.clone(),
            source,
        })?;
        let btf_path = dir.join(BTF_FILE);
        match &self.btf {
            Some(btf) => fs::write(&btf_path, btf.bytes()).map_err(io_error(&btf_path))?,
            None => match fs::remove_file(&btf_path) {
                Err(error) if error.kind() != io::ErrorKind::NotFound => {
                    return Err(io_error(&btf_path)(error));
                }
                _ => {}
            },
        }
        fs::write(&facts_path, json).map_err(io_error(&facts_path))
    }

    /// Whether `dir` already holds exactly what [`save`](Self::save) would
    /// write there: a harvest whose facts did not change rewrites nothing.
    pub fn is_saved_in(&self, dir: &Path) -> bool {
        let Ok(json) = serde_json::to_vec(self) else {
            return false;
        };
        let same_btf = match &self.btf {
            Some(btf) => fs::read(dir.join(BTF_FILE)).is_ok_and(|old| old == btf.bytes()),
            None => !dir.join(BTF_FILE).exists(),
        };
        same_btf && fs::read(dir.join(FACTS_FILE)).is_ok_and(|old| old == json)
    }

    /// Reads facts [`save`](Self::save) wrote; another format version is
    /// [`FactsError::Stale`].
    pub fn load(dir: &Path) -> Result<KernelFacts, FactsError> {
        #[derive(Deserialize)]
        struct Version {
            format_version: u32,
        }
        let facts_path = dir.join(FACTS_FILE);
        let json = fs::read(&facts_path).map_err(io_error(&facts_path))?;
        let json_error = |source| FactsError::Json {
            path: facts_path.clone(),
            source,
        };
        // One parse; only when it fails or the version differs is the
        // version read alone, to tell stale facts from corrupt ones.
        let stale = |found| FactsError::Stale {
            dir: dir.to_owned(),
            found,
        };
        let mut facts: KernelFacts = match serde_json::from_slice(&json) {
            Ok(facts) => facts,
            Err(error) => {
                return Err(match serde_json::from_slice::<Version>(&json) {
                    Ok(version) if version.format_version != FORMAT_VERSION => {
                        stale(version.format_version)
                    }
                    _ => json_error(error),
                });
            }
        };
        if facts.format_version != FORMAT_VERSION {
            return Err(stale(facts.format_version));
        }
        if let Some(size) = facts.btf_size {
            let btf_path = dir.join(BTF_FILE);
            let bytes = fs::read(&btf_path).map_err(io_error(&btf_path))?;
            if bytes.len() as u64 != size {
                return Err(FactsError::Btf {
                    path: btf_path,
                    source: BtfError::Truncated("btf.bin is not the size facts.json records"),
                });
            }
            facts.btf = Some(Btf::parse(bytes).map_err(|source| FactsError::Btf {
                path: btf_path,
                source,
            })?);
        }
        facts.modules = KernelModules::load(dir);
        Ok(facts)
    }

    /// The facts of module `name` (`Ok(None)`: not built as a module; an
    /// error: the kernel's modules are unknown or unreadable, said why).
    pub fn module(&self, name: &str) -> Result<Option<std::sync::Arc<Module>>, ModuleError> {
        match &self.modules {
            KernelModules::Tree(tree) => tree.module(name, self.btf.as_ref()),
            KernelModules::Missing(reason) => Err(ModuleError {
                path: PathBuf::new(),
                what: reason.clone(),
            }),
            KernelModules::Unknown => Err(ModuleError {
                path: PathBuf::new(),
                what: "no module facts recorded: run `tapmatrix kernels fetch` and `tapmatrix kernels harvest`".to_owned(),
            }),
        }
    }

    /// Whether a kprobe or fprobe can attach to the function by this name.
    pub fn is_attachable(&self, name: &str) -> bool {
        self.function_presence(name) == FunctionPresence::Attachable
    }

    /// Where a function stands: attachable, blacklisted, only as clones,
    /// only as a symbol, or absent.
    pub fn function_presence<'a>(&'a self, name: &'a str) -> FunctionPresence<'a> {
        let Some(functions) = &self.functions else {
            return FunctionPresence::Unknown;
        };
        let blacklisted = |name: &str| {
            self.blacklist
                .as_ref()
                .is_some_and(|list| list.contains(name))
        };
        if functions.contains(name) {
            return if blacklisted(name) {
                FunctionPresence::Blacklisted
            } else {
                FunctionPresence::Attachable
            };
        }
        let clones: Vec<&str> = functions
            .clones_of(name)
            .filter(|clone| !blacklisted(clone))
            .collect();
        if !clones.is_empty() {
            return FunctionPresence::Clones(clones);
        }
        if self.is_text_symbol(name) {
            FunctionPresence::SymbolOnly
        } else {
            FunctionPresence::Absent
        }
    }

    /// Whether kallsyms has a text symbol by this name.
    pub fn is_text_symbol(&self, name: &str) -> bool {
        self.kallsyms
            .as_ref()
            .is_some_and(|symbols| symbols.contains(name))
    }

    /// A tracepoint by system and name.
    pub fn tracepoint(&self, system: &str, name: &str) -> Option<&Tracepoint> {
        let tracepoints = self.tracepoints.as_deref()?;
        tracepoints
            .binary_search_by(|tp| (tp.system.as_str(), tp.name.as_str()).cmp(&(system, name)))
            .ok()
            .map(|index| &tracepoints[index])
    }

    /// Tracepoints by name in any system (`sched_switch`).
    pub fn tracepoints_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Tracepoint> {
        self.tracepoints
            .iter()
            .flatten()
            .filter(move |tp| tp.name == name)
    }

    /// A syscall by name without `sys_` (`openat`).
    pub fn syscall(&self, name: &str) -> Option<&Syscall> {
        let syscalls = self.syscalls.as_deref()?;
        syscalls
            .binary_search_by(|syscall| syscall.name.as_str().cmp(name))
            .ok()
            .map(|index| &syscalls[index])
    }

    /// The number of attachable functions (listed and not blacklisted).
    pub fn attachable_count(&self) -> Option<usize> {
        let functions = self.functions.as_ref()?;
        Some(
            functions
                .names
                .iter()
                .filter(|name| !self.blacklist.as_ref().is_some_and(|b| b.contains(name)))
                .count(),
        )
    }
}

#[cfg(test)]
mod tests;
