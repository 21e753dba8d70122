//! Kernel modules, offline: the modules tree the kernel's packages ship
//! (`lib/modules/RELEASE/`, unpacked by `tapmatrix kernels fetch`), read
//! from the `.ko` files themselves, no boot needed.
//!
//! Lazy at two levels, so that resolving scripts without module probes
//! costs nothing: the tree's index (module name to file, from
//! `modules.order`, or a walk of `kernel/` without it, and
//! `modules.builtin`) is built on the first module lookup,
//! and each module's facts on its first use, then kept for the process.
//!
//! A module's facts are what the kernel would show once it is loaded:
//! - its traceable functions, as `available_filter_functions` lists them
//!   (`name [module]`): the functions holding an ftrace call site, read
//!   from the `__mcount_loc` relocations, outside init sections (freed
//!   after loading); where a module has no call-site table, its text
//!   symbols outside init sections;
//! - its other text symbols (notrace functions, init code);
//! - its BTF: the `.BTF` section is split BTF against vmlinux, merged onto
//!   the kernel's BTF ([`Btf::with_split`]);
//! - its modinfo (`name`, `depends`).
//!
//! Decompressing a `.ko.xz` costs far more than the rest: what a module's
//! file gives is kept in the kernel's facts directory
//! ([`MODULE_FACTS_DIR`], one file per module, keyed by the module file's
//! path, size and modification time), so later processes read that
//! instead. It is a cache: a stale or unreadable entry is read from the
//! `.ko` again, and an entry that cannot be written is only slower next
//! time.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use object::{Object, ObjectSection, ObjectSymbol, RelocationTarget, SectionIndex, SymbolKind};
use serde::{Deserialize, Serialize};

use crate::btf::Btf;

/// The file in a facts directory that says where the kernel's modules are.
pub const MODULES_FILE: &str = "modules.json";

/// The directory in a facts directory that keeps what each module's file
/// gave (see the module docs).
pub const MODULE_FACTS_DIR: &str = "module-facts";

/// The version of a [`MODULE_FACTS_DIR`] entry's layout.
const MODULE_FACTS_VERSION: u32 = 1;

/// What `modules.json` records: the modules tree, or why there is none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModulesRecord {
    /// The unpacked `lib/modules/RELEASE/` (relative to the facts
    /// directory, or absolute).
    Tree {
        /// The directory.
        path: PathBuf,
    },
    /// The kernel's modules could not be fetched, and why.
    Missing {
        /// Why (e.g. the suite has no `linux-modules-*` package).
        reason: String,
    },
}

/// Why a module, or the modules tree, could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{what}", where_(path))]
pub struct ModuleError {
    /// The file or directory.
    pub path: PathBuf,
    /// What was wrong.
    pub what: String,
}

fn where_(path: &Path) -> String {
    if path.as_os_str().is_empty() {
        String::new()
    } else {
        format!("{}: ", path.display())
    }
}

impl ModuleError {
    fn new(path: &Path, what: impl Into<String>) -> ModuleError {
        ModuleError {
            path: path.to_owned(),
            what: what.into(),
        }
    }
}

/// A kernel's modules, as its facts know them.
#[derive(Debug, Default)]
pub enum KernelModules {
    /// Nothing recorded (facts stored before modules were fetched, or
    /// parsed from a raw harvest alone).
    #[default]
    Unknown,
    /// The kernel's modules are not available, and why.
    Missing(String),
    /// The modules tree.
    Tree(ModuleTree),
}

impl KernelModules {
    /// From a facts directory's `modules.json` (absent: [`KernelModules::Unknown`]).
    pub fn load(facts_dir: &Path) -> KernelModules {
        let Ok(text) = std::fs::read_to_string(facts_dir.join(MODULES_FILE)) else {
            return KernelModules::Unknown;
        };
        match serde_json::from_str::<ModulesRecord>(&text) {
            Ok(ModulesRecord::Tree { path }) => KernelModules::Tree(
                ModuleTree::open(&facts_dir.join(path))
                    .with_facts_cache(&facts_dir.join(MODULE_FACTS_DIR)),
            ),
            Ok(ModulesRecord::Missing { reason }) => KernelModules::Missing(reason),
            Err(error) => KernelModules::Missing(format!(
                "{} does not parse ({error}): run `tapmatrix kernels harvest` again",
                facts_dir.join(MODULES_FILE).display()
            )),
        }
    }
}

/// Module names to files, and the modules built into the kernel.
#[derive(Debug, Default)]
struct ModuleIndex {
    files: BTreeMap<String, PathBuf>,
    builtin: BTreeSet<String>,
}

/// One kernel's unpacked modules tree, read lazily.
pub struct ModuleTree {
    root: PathBuf,
    /// Where what each module's file gave is kept (see the module docs).
    cache: Option<PathBuf>,
    index: OnceLock<Result<ModuleIndex, ModuleError>>,
    /// The aliases of the crypto modules, read on the first soft
    /// dependency that names no module (see [`CryptoAliases`]).
    aliases: OnceLock<Box<Result<CryptoAliases, ModuleError>>>,
    parsed: Mutex<HashMap<String, Result<Arc<Module>, ModuleError>>>,
}

impl std::fmt::Debug for ModuleTree {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModuleTree")
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

/// A module's name from its file name: `nf-conntrack.ko.xz` is `nf_conntrack`.
pub fn module_name(file_name: &str) -> Option<String> {
    let stem = file_name.split_once(".ko").map(|(stem, _)| stem)?;
    (!stem.is_empty()).then(|| stem.replace('-', "_"))
}

impl ModuleTree {
    /// The tree at `root` (`lib/modules/RELEASE/`); nothing is read yet.
    pub fn open(root: &Path) -> ModuleTree {
        ModuleTree {
            root: root.to_owned(),
            cache: None,
            index: OnceLock::new(),
            aliases: OnceLock::new(),
            parsed: Mutex::new(HashMap::new()),
        }
    }

    /// Keeps what each module's file gives in `dir` (created when first
    /// written), and reads it from there when the file has not changed.
    pub fn with_facts_cache(mut self, dir: &Path) -> ModuleTree {
        self.cache = Some(dir.to_owned());
        self
    }

    /// The tree's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn index(&self) -> Result<&ModuleIndex, ModuleError> {
        self.index
            .get_or_init(|| build_index(&self.root))
            .as_ref()
            .map_err(Clone::clone)
    }

    /// The names of the modules built as `.ko` files, sorted.
    pub fn names(&self) -> Result<impl Iterator<Item = &str>, ModuleError> {
        Ok(self.index()?.files.keys().map(String::as_str))
    }

    /// How many modules are built as `.ko` files.
    pub fn count(&self) -> Result<usize, ModuleError> {
        Ok(self.index()?.files.len())
    }

    /// How many modules are built into the kernel (`modules.builtin`).
    pub fn builtin_count(&self) -> Result<usize, ModuleError> {
        Ok(self.index()?.builtin.len())
    }

    /// The module file of `name`, if it is built as one.
    pub fn file(&self, name: &str) -> Result<Option<&Path>, ModuleError> {
        Ok(self.index()?.files.get(name).map(PathBuf::as_path))
    }

    /// Whether `name` is built into the kernel (`modules.builtin`).
    pub fn is_builtin(&self, name: &str) -> Result<bool, ModuleError> {
        Ok(self.index()?.builtin.contains(name))
    }

    /// The facts of module `name` (`None`: not built as a module), its
    /// BTF merged onto `base` when both have BTF. Parsed once.
    pub fn module(
        &self,
        name: &str,
        base: Option<&Btf>,
    ) -> Result<Option<Arc<Module>>, ModuleError> {
        let Some(path) = self.file(name)? else {
            return Ok(None);
        };
        // A poisoned lock only means another thread panicked while parsing:
        // the map itself is whole.
        let mut parsed = self
            .parsed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        parsed
            .entry(name.to_owned())
            .or_insert_with(|| {
                let read = match &self.cache {
                    Some(dir) => Module::read_cached(name, path, base, dir),
                    None => Module::read(name, path, base),
                };
                read.map(Arc::new)
            })
            .clone()
            .map(Some)
    }
}

fn build_index(root: &Path) -> Result<ModuleIndex, ModuleError> {
    let mut index = ModuleIndex {
        files: match listed_files(root) {
            Some(files) => files,
            None => walked_files(root)?,
        },
        builtin: BTreeSet::new(),
    };
    let builtin = root.join("modules.builtin");
    if let Ok(text) = std::fs::read_to_string(&builtin) {
        index.builtin = text
            .lines()
            .filter_map(|line| module_name(line.rsplit('/').next()?))
            .collect();
    }
    Ok(index)
}

/// The module files `modules.order` lists (`kernel/.../name.ko`, one per
/// line; the packages ship it beside the tree, the same files the walk
/// finds), each with the compression suffix of the first listed file. One
/// read instead of a walk of some 900 directories per kernel. `None`
/// where there is no list, or its first file is not there under any
/// suffix: the tree is walked instead.
fn listed_files(root: &Path) -> Option<BTreeMap<String, PathBuf>> {
    let text = std::fs::read_to_string(root.join("modules.order")).ok()?;
    let lines = text.lines().map(str::trim).filter(|line| !line.is_empty());
    let first = lines.clone().next()?;
    let suffix = ["", ".xz", ".zst"]
        .into_iter()
        .find(|suffix| root.join(format!("{first}{suffix}")).is_file())?;
    Some(
        lines
            .filter_map(|line| {
                let name = module_name(line.rsplit('/').next()?)?;
                Some((name, root.join(format!("{line}{suffix}"))))
            })
            .collect(),
    )
}

/// The module files under `kernel/`, found by walking it.
fn walked_files(root: &Path) -> Result<BTreeMap<String, PathBuf>, ModuleError> {
    let mut files = BTreeMap::new();
    let mut dirs = vec![root.join("kernel")];
    while let Some(dir) = dirs.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|e| ModuleError::new(&dir, e.to_string()))?;
        for entry in entries {
            let entry = entry.map_err(|e| ModuleError::new(&dir, e.to_string()))?;
            let path = entry.path();
            let kind = entry
                .file_type()
                .map_err(|e| ModuleError::new(&path, e.to_string()))?;
            if kind.is_dir() {
                dirs.push(path);
            } else if let Some(name) = module_name(&entry.file_name().to_string_lossy()) {
                files.insert(name, path);
            }
        }
    }
    Ok(files)
}

/// One module's facts, read from its `.ko`.
#[derive(Debug)]
pub struct Module {
    /// Its name (modinfo `name`, else from the file name).
    pub name: String,
    /// Its file.
    pub path: PathBuf,
    /// Traceable functions, sorted.
    pub functions: Vec<String>,
    /// Text symbols that are not traceable (notrace, init code), sorted.
    pub untraceable: Vec<String>,
    /// The modules it depends on (modinfo `depends`).
    pub depends: Vec<String>,
    /// Its BTF merged onto the kernel's (`None`: the module or the kernel
    /// has none, or the module's is relative to a distilled base).
    pub btf: Option<Btf>,
}

impl Module {
    /// Whether `name` is a traceable function of the module.
    pub fn is_traceable(&self, name: &str) -> bool {
        self.functions
            .binary_search_by(|f| f.as_str().cmp(name))
            .is_ok()
    }

    /// Whether `name` is a text symbol of the module that is not traceable.
    pub fn is_untraceable_symbol(&self, name: &str) -> bool {
        self.untraceable
            .binary_search_by(|f| f.as_str().cmp(name))
            .is_ok()
    }

    /// Reads a module file (`.ko`, `.ko.xz` or `.ko.zst`).
    pub fn read(name: &str, path: &Path, base: Option<&Btf>) -> Result<Module, ModuleError> {
        ModuleFile::parse(name, path, &read_image(path)?)?.into_module(path, base)
    }

    /// [`read`](Self::read) through the cache in `dir` (see the module
    /// docs): the entry when the file has not changed, else the file,
    /// whose facts are then written there.
    pub fn read_cached(
        name: &str,
        path: &Path,
        base: Option<&Btf>,
        dir: &Path,
    ) -> Result<Module, ModuleError> {
        let Some(key) = CacheKey::of(path) else {
            return Module::read(name, path, base);
        };
        let entry = dir.join(format!("{name}.facts"));
        if let Some(file) = ModuleFile::load(&entry, &key) {
            return file.into_module(path, base);
        }
        let file = ModuleFile::parse(name, path, &read_image(path)?)?;
        // A cache: failing to write it only costs the next reader time.
        let _ = file.save(&entry, &key);
        file.into_module(path, base)
    }

    /// Parses a module's ELF image.
    pub fn parse(
        name: &str,
        path: &Path,
        data: &[u8],
        base: Option<&Btf>,
    ) -> Result<Module, ModuleError> {
        ModuleFile::parse(name, path, data)?.into_module(path, base)
    }
}

/// What identifies a module file's version for the cache.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
struct CacheKey {
    version: u32,
    path: PathBuf,
    size: u64,
    modified_ns: u128,
}

impl CacheKey {
    fn of(path: &Path) -> Option<CacheKey> {
        let metadata = std::fs::metadata(path).ok()?;
        let modified = metadata
            .modified()
            .ok()?
            .duration_since(std::time::UNIX_EPOCH)
            .ok()?;
        Some(CacheKey {
            version: MODULE_FACTS_VERSION,
            path: path.to_owned(),
            size: metadata.len(),
            modified_ns: modified.as_nanos(),
        })
    }
}

/// What a module's file gives, before its BTF is put over the kernel's.
#[derive(Debug, Serialize, Deserialize)]
struct ModuleFile {
    name: String,
    functions: Vec<String>,
    untraceable: Vec<String>,
    depends: Vec<String>,
    /// Its `.BTF` section, split against the kernel's (none when the
    /// module has none, or one relative to a distilled base).
    #[serde(skip)]
    split_btf: Option<Vec<u8>>,
}

/// A cache entry's first line.
#[derive(Serialize, Deserialize)]
struct CacheHeader {
    key: CacheKey,
    facts: ModuleFile,
    /// Whether the `.BTF` section follows the line.
    btf: bool,
}

impl ModuleFile {
    /// Reads a module's ELF image.
    fn parse(name: &str, path: &Path, data: &[u8]) -> Result<ModuleFile, ModuleError> {
        let bad = |what: String| ModuleError::new(path, what);
        let elf = parse_elf(path, data)?;
        let modinfo = parse_modinfo(modinfo_section(&elf));
        let init = |index: SectionIndex| {
            elf.section_by_index(index)
                .ok()
                .and_then(|section| section.name().ok().map(|n| n.starts_with(".init")))
                .unwrap_or(false)
        };
        // Function symbols by section, sorted by start.
        let mut by_section: HashMap<SectionIndex, Vec<(u64, u64, &str)>> = HashMap::new();
        let mut untraceable = BTreeSet::new();
        for symbol in elf.symbols() {
            if symbol.kind() != SymbolKind::Text {
                continue;
            }
            let (Some(section), Ok(name)) = (symbol.section_index(), symbol.name()) else {
                continue;
            };
            if name.is_empty() || name.starts_with("__pfx_") || name.starts_with("__cfi_") {
                continue;
            }
            untraceable.insert(name);
            by_section
                .entry(section)
                .or_default()
                .push((symbol.address(), symbol.size(), name));
        }
        for symbols in by_section.values_mut() {
            symbols.sort_unstable();
        }
        let mut functions = BTreeSet::new();
        let call_sites = elf.section_by_name("__mcount_loc");
        match &call_sites {
            Some(section) => {
                for (_, relocation) in section.relocations() {
                    let RelocationTarget::Symbol(index) = relocation.target() else {
                        continue;
                    };
                    let Ok(symbol) = elf.symbol_by_index(index) else {
                        continue;
                    };
                    let Some(section) = symbol.section_index() else {
                        continue;
                    };
                    let Some(site) = symbol.address().checked_add_signed(relocation.addend())
                    else {
                        continue;
                    };
                    if init(section) {
                        continue;
                    }
                    let symbols = by_section.get(&section).map_or(&[][..], Vec::as_slice);
                    let after = symbols.partition_point(|(start, _, _)| *start <= site);
                    if let Some((start, size, name)) = after.checked_sub(1).map(|i| symbols[i])
                        && site < start.saturating_add(size.max(1))
                    {
                        functions.insert(name);
                    }
                }
            }
            None => {
                for (section, symbols) in &by_section {
                    if !init(*section) {
                        functions.extend(symbols.iter().map(|(_, _, name)| *name));
                    }
                }
            }
        }
        let untraceable = untraceable
            .into_iter()
            .filter(|name| !functions.contains(name))
            .map(str::to_owned)
            .collect();
        let split_btf = match elf.section_by_name(".BTF") {
            Some(section) if elf.section_by_name(".BTF.base").is_none() => Some(
                section
                    .data()
                    .map_err(|e| bad(format!(".BTF: {e}")))?
                    .to_vec(),
            ),
            _ => None,
        };
        Ok(ModuleFile {
            name: modinfo
                .get("name")
                .map_or_else(|| name.to_owned(), |n| (*n).to_owned()),
            functions: functions.into_iter().map(str::to_owned).collect(),
            untraceable,
            depends: modinfo_depends(&modinfo),
            split_btf,
        })
    }

    fn into_module(self, path: &Path, base: Option<&Btf>) -> Result<Module, ModuleError> {
        let btf = match (base, &self.split_btf) {
            (Some(base), Some(split)) => Some(base.with_split(split).map_err(|e| {
                ModuleError::new(path, format!(".BTF against the kernel's BTF: {e}"))
            })?),
            _ => None,
        };
        Ok(Module {
            name: self.name,
            path: path.to_owned(),
            functions: self.functions,
            untraceable: self.untraceable,
            depends: self.depends,
            btf,
        })
    }

    /// A cache entry, when it is one for `key`: a JSON line, then the
    /// `.BTF` section's bytes.
    fn load(entry: &Path, key: &CacheKey) -> Option<ModuleFile> {
        let bytes = std::fs::read(entry).ok()?;
        let line = memchr::memchr(b'\n', &bytes)?;
        let header: CacheHeader = serde_json::from_slice(&bytes[..line]).ok()?;
        if header.key != *key {
            return None;
        }
        let mut facts = header.facts;
        facts.split_btf = header.btf.then(|| bytes[line + 1..].to_vec());
        Some(facts)
    }

    /// Writes the cache entry (atomically: a temporary file renamed).
    fn save(&self, entry: &Path, key: &CacheKey) -> std::io::Result<()> {
        let dir = entry.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)?;
        // `CacheHeader`'s fields, borrowed.
        #[derive(Serialize)]
        struct Header<'a> {
            key: &'a CacheKey,
            facts: &'a ModuleFile,
            btf: bool,
        }
        let header = Header {
            key,
            facts: self,
            btf: self.split_btf.is_some(),
        };
        let mut bytes = serde_json::to_vec(&header).map_err(std::io::Error::other)?;
        bytes.push(b'\n');
        bytes.extend_from_slice(self.split_btf.as_deref().unwrap_or_default());
        let unique = format!(
            ".{}.{}.{:?}.tmp",
            entry
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
            std::process::id(),
            std::thread::current().id()
        );
        let temporary = dir.join(unique.replace(['(', ')'], ""));
        std::fs::write(&temporary, &bytes)?;
        std::fs::rename(&temporary, entry).inspect_err(|_| {
            let _ = std::fs::remove_file(&temporary);
        })
    }
}

/// A module file's ELF image: `.ko` as it is, `.ko.xz` and `.ko.zst`
/// decompressed (what `init_module` takes, whatever the kernel's own
/// decompression support).
pub fn read_image(path: &Path) -> Result<Vec<u8>, ModuleError> {
    let bad = |what: String| ModuleError::new(path, what);
    let raw = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    let file_name = path.to_string_lossy();
    if file_name.ends_with(".xz") {
        let mut out = Vec::with_capacity(raw.len() * 4);
        liblzma::read::XzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .map_err(|e| bad(format!("xz: {e}")))?;
        Ok(out)
    } else if file_name.ends_with(".zst") {
        zstd::stream::decode_all(&raw[..]).map_err(|e| bad(format!("zstd: {e}")))
    } else if file_name.ends_with(".ko") {
        Ok(raw)
    } else {
        Err(bad(
            "compression not supported (only .ko, .ko.xz, .ko.zst)".into()
        ))
    }
}

/// A module's `depends` from its `.modinfo` (names with `_`), and the
/// names its `softdep=pre:` entries give (as written).
fn image_depends(path: &Path, image: &[u8]) -> Result<(Vec<String>, Vec<String>), ModuleError> {
    let data = modinfo_section(&parse_elf(path, image)?);
    Ok((modinfo_depends(&parse_modinfo(data)), soft_pre(data)))
}

/// A module's image as an ELF file.
fn parse_elf<'a>(path: &Path, image: &'a [u8]) -> Result<object::File<'a>, ModuleError> {
    object::File::parse(image)
        .map_err(|e| ModuleError::new(path, format!("not an ELF module: {e}")))
}

/// A module's `.modinfo` section (empty when it has none).
fn modinfo_section<'a>(elf: &object::File<'a>) -> &'a [u8] {
    elf.section_by_name(".modinfo")
        .and_then(|section| section.data().ok())
        .unwrap_or_default()
}

/// The `depends` of a module's `.modinfo` (names with `_`, as the kernel
/// names loaded modules).
fn modinfo_depends(modinfo: &HashMap<&str, &str>) -> Vec<String> {
    modinfo
        .get("depends")
        .map(|list| {
            list.split(',')
                .filter(|d| !d.is_empty())
                .map(|d| d.replace('-', "_"))
                .collect()
        })
        .unwrap_or_default()
}

/// A module to load in the guest: its name and its ELF image, decompressed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleImage {
    /// The module's name (`nfs`, `sunrpc`).
    pub name: String,
    /// The `.ko` image, decompressed.
    pub image: Vec<u8>,
}

impl ModuleTree {
    /// The modules to load for `names`, dependencies first (each module's
    /// `depends` from its `.modinfo`, as `modules.dep` would list them;
    /// the packages ship no `modules.dep`; then its `softdep=pre:` names,
    /// as modprobe loads them first: see [`ModuleTree::soft_provider`]),
    /// each once; a module built into
    /// the kernel is left out (it is there already). A name that is neither
    /// a module file nor built in is an error naming it.
    pub fn load_order(&self, names: &[String]) -> Result<Vec<ModuleImage>, ModuleError> {
        let mut order = Vec::new();
        let mut seen = BTreeSet::new();
        // Depth first, each module after its dependencies; `depends`
        // forms no cycles (the kernel refuses to load one).
        let mut stack: Vec<(String, bool)> =
            names.iter().rev().map(|n| (n.clone(), false)).collect();
        let mut pending: HashMap<String, Vec<u8>> = HashMap::new();
        while let Some((name, expanded)) = stack.pop() {
            if expanded {
                if let Some(image) = pending.remove(&name) {
                    order.push(ModuleImage { name, image });
                }
                continue;
            }
            if !seen.insert(name.clone()) {
                continue;
            }
            let Some(path) = self.file(&name)? else {
                if self.is_builtin(&name)? {
                    continue;
                }
                return Err(ModuleError::new(
                    &self.root,
                    format!("module `{name}` is neither built as a module nor built in"),
                ));
            };
            let image = read_image(path)?;
            let (mut depends, soft) = image_depends(path, &image)?;
            for wanted in soft {
                depends.extend(self.soft_provider(&wanted)?);
            }
            pending.insert(name.clone(), image);
            stack.push((name, true));
            for dependency in depends.into_iter().rev() {
                if !seen.contains(&dependency) {
                    stack.push((dependency, false));
                }
            }
        }
        Ok(order)
    }

    /// The module that provides a soft dependency `wanted` (a module's
    /// name, or an alias a crypto module declares: `crc32c`,
    /// `crypto-crc32c`), as modprobe would load it; `None` when the kernel
    /// has it built in or nothing provides it (modprobe goes on without a
    /// soft dependency too). Of several providers the generic one
    /// (`crc32c_generic`): CPU-specific drivers (`crc32c-intel` needs
    /// SSE4.2) may refuse the guest's CPU. Measured on 6.1: `libcrc32c`
    /// (`softdep=pre: crc32c`) fails its init with ENOENT unless
    /// `crc32c_generic` is loaded first.
    pub fn soft_provider(&self, wanted: &str) -> Result<Option<String>, ModuleError> {
        let name = wanted.replace('-', "_");
        if self.file(&name)?.is_some() {
            return Ok(Some(name));
        }
        if self.is_builtin(&name)? {
            return Ok(None);
        }
        let aliases = self
            .aliases
            .get_or_init(|| {
                Box::new(
                    self.index()
                        .and_then(|index| CryptoAliases::read(&self.root, index)),
                )
            })
            .as_ref()
            .as_ref()
            .map_err(Clone::clone)?;
        if aliases.builtin.contains(wanted) {
            return Ok(None);
        }
        let providers = aliases.modules.get(wanted).map_or(&[][..], Vec::as_slice);
        Ok(providers
            .iter()
            .find(|name| name.ends_with("_generic"))
            .or_else(|| providers.first())
            .cloned())
    }
}

/// The aliases crypto algorithms are loaded by (`crc32c`, `crypto-crc32c`),
/// which modules name in their soft dependencies: those of the modules
/// under `kernel/crypto/` and `kernel/arch/x86/crypto/` (their `.modinfo`
/// `alias=` entries, each provider's name sorted), and those of the
/// modules built in (`modules.builtin.modinfo`). The packages ship no
/// `modules.alias`.
#[derive(Debug, Default)]
struct CryptoAliases {
    modules: HashMap<String, Vec<String>>,
    builtin: BTreeSet<String>,
}

impl CryptoAliases {
    fn read(root: &Path, index: &ModuleIndex) -> Result<CryptoAliases, ModuleError> {
        let mut aliases = CryptoAliases::default();
        let dirs = [
            root.join("kernel/crypto"),
            root.join("kernel/arch/x86/crypto"),
        ];
        for (name, path) in &index.files {
            if !dirs.iter().any(|dir| path.starts_with(dir)) {
                continue;
            }
            let image = read_image(path)?;
            // Files in name order: each alias's providers come sorted.
            for alias in modinfo_values(modinfo_section(&parse_elf(path, &image)?), "alias") {
                let providers = aliases.modules.entry(alias.to_owned()).or_default();
                if !providers.contains(name) {
                    providers.push(name.clone());
                }
            }
        }
        // `NAME.alias=VALUE` entries, as `.modinfo` holds them.
        if let Ok(data) = std::fs::read(root.join("modules.builtin.modinfo")) {
            aliases.builtin.extend(
                modinfo_entries(&data)
                    .filter(|(key, _)| key.ends_with(".alias"))
                    .map(|(_, value)| value.to_owned()),
            );
        }
        Ok(aliases)
    }
}

/// Every value of `key` in a `.modinfo` section (`alias` and `softdep`
/// appear many times).
fn modinfo_values<'a>(data: &'a [u8], key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    modinfo_entries(data).filter_map(move |(k, value)| (k == key).then_some(value))
}

/// `.modinfo`'s NUL-separated `key=value` strings, in order.
fn modinfo_entries(data: &[u8]) -> impl Iterator<Item = (&str, &str)> {
    data.split(|&b| b == 0).filter_map(|entry| {
        std::str::from_utf8(entry)
            .ok()
            .and_then(|entry| entry.split_once('='))
    })
}

/// The names a module's `softdep=` entries load before it
/// (`pre: crc32c crc32c-intel post: ...`: the words after `pre:`).
fn soft_pre(data: &[u8]) -> Vec<String> {
    let mut names = Vec::new();
    for value in modinfo_values(data, "softdep") {
        let mut pre = false;
        for word in value.split_whitespace() {
            match word {
                "pre:" => pre = true,
                "post:" => pre = false,
                name if pre && !names.iter().any(|known| known == name) => {
                    names.push(name.to_owned());
                }
                _ => {}
            }
        }
    }
    names
}

/// `.modinfo`: NUL-separated `key=value` strings (the first of each key).
fn parse_modinfo(data: &[u8]) -> HashMap<&str, &str> {
    let mut info = HashMap::new();
    for (key, value) in modinfo_entries(data) {
        info.entry(key).or_insert(value);
    }
    info
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_from_files() {
        assert_eq!(module_name("ext4.ko").as_deref(), Some("ext4"));
        assert_eq!(
            module_name("nf-conntrack.ko.xz").as_deref(),
            Some("nf_conntrack")
        );
        assert_eq!(module_name("modules.order"), None);
        assert_eq!(module_name(".ko"), None);
    }

    #[test]
    fn modinfo_fields() {
        let info =
            parse_modinfo(b"license=GPL\0depends=mbcache,jbd2\0name=ext4\0\0alias=fs-ext4\0");
        assert_eq!(info.get("name"), Some(&"ext4"));
        assert_eq!(info.get("depends"), Some(&"mbcache,jbd2"));
    }

    #[test]
    fn a_missing_tree_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let tree = ModuleTree::open(&dir.path().join("nope"));
        let error = tree.count().unwrap_err();
        assert!(error.to_string().contains("nope"), "{error}");
        assert!(tree.module("ext4", None).is_err());
    }

    /// A module as the kernel's build leaves it: `.text` with a traced
    /// function (its ftrace call site after `endbr64`), a notrace one and
    /// a traced compiler clone; `.init.text` with a traced init function;
    /// `__mcount_loc` relocated against the sections; `.modinfo`.
    fn fake_module() -> Vec<u8> {
        fake_module_with(b"license=GPL\0depends=mbcache,jbd2\0name=fake\0")
    }

    fn fake_module_with(modinfo_text: &[u8]) -> Vec<u8> {
        use object::write::{Object as Writer, Relocation, Symbol, SymbolSection};
        use object::{
            Architecture, BinaryFormat, Endianness, RelocationEncoding, RelocationFlags,
            RelocationKind, SectionKind, SymbolFlags, SymbolScope,
        };
        let mut elf = Writer::new(BinaryFormat::Elf, Architecture::X86_64, Endianness::Little);
        let text = elf.add_section(Vec::new(), b".text".to_vec(), SectionKind::Text);
        elf.append_section_data(text, &[0x90; 48], 16);
        let init = elf.add_section(Vec::new(), b".init.text".to_vec(), SectionKind::Text);
        elf.append_section_data(init, &[0x90; 16], 16);
        for (name, section, value) in [
            ("traced", text, 0),
            ("notrace_fn", text, 16),
            ("helper.isra.0", text, 32),
            ("fake_init", init, 0),
        ] {
            elf.add_symbol(Symbol {
                name: name.as_bytes().to_vec(),
                value,
                size: 16,
                kind: SymbolKind::Text,
                scope: SymbolScope::Compilation,
                weak: false,
                section: SymbolSection::Section(section),
                flags: SymbolFlags::None,
            });
        }
        let mcount = elf.add_section(
            Vec::new(),
            b"__mcount_loc".to_vec(),
            SectionKind::ReadOnlyData,
        );
        elf.append_section_data(mcount, &[0; 24], 8);
        for (offset, section, addend) in [(0, text, 4), (8, text, 36), (16, init, 4)] {
            let symbol = elf.section_symbol(section);
            elf.add_relocation(
                mcount,
                Relocation {
                    offset,
                    symbol,
                    addend,
                    flags: RelocationFlags::Generic {
                        kind: RelocationKind::Absolute,
                        encoding: RelocationEncoding::Generic,
                        size: 64,
                    },
                },
            )
            .unwrap();
        }
        let modinfo = elf.add_section(Vec::new(), b".modinfo".to_vec(), SectionKind::ReadOnlyData);
        elf.append_section_data(modinfo, modinfo_text, 1);
        elf.write().unwrap()
    }

    #[test]
    fn traceable_functions_are_those_with_a_call_site_outside_init() {
        let module = Module::parse("fake", Path::new("fake.ko"), &fake_module(), None).unwrap();
        assert_eq!(module.name, "fake");
        assert_eq!(module.functions, ["helper.isra.0", "traced"]);
        assert_eq!(module.untraceable, ["fake_init", "notrace_fn"]);
        assert_eq!(module.depends, ["mbcache", "jbd2"]);
        assert!(module.is_traceable("traced") && !module.is_traceable("notrace_fn"));
        assert!(module.is_untraceable_symbol("fake_init"));
        assert!(module.btf.is_none());
    }

    #[test]
    fn compressed_modules_are_read_through_the_tree() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let fs = dir.path().join("kernel/fs/fake");
        std::fs::create_dir_all(&fs).unwrap();
        let mut xz = liblzma::write::XzEncoder::new(Vec::new(), 1);
        xz.write_all(&fake_module()).unwrap();
        std::fs::write(fs.join("fake.ko.xz"), xz.finish().unwrap()).unwrap();
        let zst = zstd::stream::encode_all(&fake_module()[..], 1).unwrap();
        std::fs::write(fs.join("fake-zst.ko.zst"), zst).unwrap();
        let tree = ModuleTree::open(dir.path());
        assert_eq!(tree.count().unwrap(), 2);
        for name in ["fake", "fake_zst"] {
            let module = tree.module(name, None).unwrap().unwrap();
            assert_eq!(module.functions, ["helper.isra.0", "traced"], "{name}");
        }
        // Parsed once: the same facts again.
        let again = tree.module("fake", None).unwrap().unwrap();
        assert!(Arc::ptr_eq(
            &again,
            &tree.module("fake", None).unwrap().unwrap()
        ));
    }

    #[test]
    fn module_facts_are_cached_and_a_changed_file_is_read_again() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let fs = dir.path().join("kernel/fs/fake");
        std::fs::create_dir_all(&fs).unwrap();
        let module = fs.join("fake.ko.xz");
        let write_xz = |data: &[u8]| {
            let mut xz = liblzma::write::XzEncoder::new(Vec::new(), 1);
            xz.write_all(data).unwrap();
            std::fs::write(&module, xz.finish().unwrap()).unwrap();
        };
        write_xz(&fake_module());
        let cache = dir.path().join("facts").join(MODULE_FACTS_DIR);
        let direct = Module::read("fake", &module, None).unwrap();
        let first = Module::read_cached("fake", &module, None, &cache).unwrap();
        let entry = cache.join("fake.facts");
        assert!(entry.is_file(), "the entry was written");
        let second = Module::read_cached("fake", &module, None, &cache).unwrap();
        for read in [&first, &second] {
            assert_eq!(read.name, direct.name);
            assert_eq!(read.functions, direct.functions);
            assert_eq!(read.untraceable, direct.untraceable);
            assert_eq!(read.depends, direct.depends);
        }
        // The second read came from the entry: an entry that says other
        // functions (same key) is believed...
        let text = std::fs::read(&entry).unwrap();
        let doctored = String::from_utf8(text)
            .unwrap()
            .replace("\"traced\"", "\"doctored\"");
        std::fs::write(&entry, doctored).unwrap();
        let cached = Module::read_cached("fake", &module, None, &cache).unwrap();
        assert!(cached.functions.contains(&"doctored".to_owned()));
        // ...until the module file changes: then it is read again.
        let mut other = fake_module();
        other.extend_from_slice(&[0; 8]);
        write_xz(&other);
        let reread = Module::read_cached("fake", &module, None, &cache).unwrap();
        assert_eq!(reread.functions, direct.functions);
        // Junk in the cache is not an error: the file is read.
        std::fs::write(&entry, b"junk").unwrap();
        let reread = Module::read_cached("fake", &module, None, &cache).unwrap();
        assert_eq!(reread.functions, direct.functions);
        // A cache that cannot be written is only slower.
        let blocked = dir.path().join("blocked");
        std::fs::write(&blocked, b"a file, not a directory").unwrap();
        let read = Module::read_cached("fake", &module, None, &blocked.join("x")).unwrap();
        assert_eq!(read.functions, direct.functions);
    }

    #[test]
    fn a_cached_split_btf_is_put_over_the_kernels() {
        let dir = tempfile::tempdir().unwrap();
        let base = Btf::parse(crate::btf::tests::sample()).unwrap();
        let split = crate::btf::tests::sample_split(&base);
        let file = ModuleFile {
            name: "m".to_owned(),
            functions: vec!["mod_fn".to_owned()],
            untraceable: Vec::new(),
            depends: Vec::new(),
            split_btf: Some(split.clone()),
        };
        let path = dir.path().join("m.ko");
        std::fs::write(&path, b"x").unwrap();
        let key = CacheKey::of(&path).unwrap();
        let entry = dir.path().join("m.facts");
        file.save(&entry, &key).unwrap();
        let loaded = ModuleFile::load(&entry, &key).unwrap();
        assert_eq!(loaded.split_btf.as_deref(), Some(&split[..]));
        let module = loaded.into_module(&path, Some(&base)).unwrap();
        let btf = module.btf.unwrap();
        assert!(btf.is_split());
        assert!(btf.function("mod_fn").is_some() && btf.function("vfs_read").is_some());
        // Without the kernel's BTF, none.
        let loaded = ModuleFile::load(&entry, &key).unwrap();
        assert!(loaded.into_module(&path, None).unwrap().btf.is_none());
    }

    /// Debian's trees (`TAPMATRIX_FACTS_CACHE=<cache>/facts`): `modules.order`
    /// names exactly the files a walk finds.
    #[test]
    fn real_trees_list_in_modules_order_what_a_walk_finds() {
        let Some(cache) = std::env::var_os("TAPMATRIX_FACTS_CACHE") else {
            eprintln!("TAPMATRIX_FACTS_CACHE unset: skipping the modules.order test on real trees");
            return;
        };
        let mut trees = 0;
        for entry in std::fs::read_dir(Path::new(&cache)).unwrap() {
            let KernelModules::Tree(tree) = KernelModules::load(&entry.unwrap().path()) else {
                continue;
            };
            let listed = listed_files(tree.root()).expect("modules.order read");
            assert_eq!(
                listed,
                walked_files(tree.root()).unwrap(),
                "{:?}",
                tree.root()
            );
            assert!(
                listed.len() > 3000,
                "{:?}: {} modules",
                tree.root(),
                listed.len()
            );
            trees += 1;
        }
        assert!(trees > 0, "no kernel in {cache:?} has a modules tree");
    }

    #[test]
    fn the_index_reads_modules_order_where_its_files_are_and_walks_elsewhere() {
        let dir = tempfile::tempdir().unwrap();
        for relative in ["kernel/fs/nfs/nfs.ko.xz", "kernel/net/nf-conntrack.ko.xz"] {
            let path = dir.path().join(relative);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, b"").unwrap();
        }
        let order = dir.path().join("modules.order");
        // Listed without the compression suffix, as the packages list them.
        std::fs::write(&order, "kernel/fs/nfs/nfs.ko\nkernel/net/nf-conntrack.ko\n").unwrap();
        let listed = listed_files(dir.path()).expect("the list is read");
        assert_eq!(listed, walked_files(dir.path()).unwrap());
        assert_eq!(
            listed.get("nf_conntrack"),
            Some(&dir.path().join("kernel/net/nf-conntrack.ko.xz"))
        );
        // A list whose first file is not in the tree is not trusted.
        std::fs::write(&order, "kernel/fs/gone.ko\nkernel/fs/nfs/nfs.ko\n").unwrap();
        assert!(listed_files(dir.path()).is_none());
        let tree = ModuleTree::open(dir.path());
        assert_eq!(
            tree.names().unwrap().collect::<Vec<_>>(),
            ["nf_conntrack", "nfs"]
        );
    }

    #[test]
    fn junk_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let kernel = dir.path().join("kernel/fs");
        std::fs::create_dir_all(&kernel).unwrap();
        std::fs::write(kernel.join("junk.ko"), b"not elf").unwrap();
        std::fs::write(kernel.join("packed.ko.xz"), b"not xz").unwrap();
        std::fs::write(dir.path().join("modules.builtin"), "kernel/fs/ext2.ko\n").unwrap();
        let tree = ModuleTree::open(dir.path());
        assert_eq!(
            tree.names().unwrap().collect::<Vec<_>>(),
            ["junk", "packed"]
        );
        assert!(tree.is_builtin("ext2").unwrap());
        let error = tree.module("junk", None).unwrap_err();
        assert!(error.to_string().contains("not an ELF module"), "{error}");
        let error = tree.module("packed", None).unwrap_err();
        assert!(error.to_string().contains("xz"), "{error}");
        assert!(tree.module("absent", None).unwrap().is_none());
    }

    #[test]
    fn modules_load_after_their_dependencies_each_once_built_ins_left_out() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let fs = dir.path().join("kernel/fs");
        std::fs::create_dir_all(&fs).unwrap();
        for (name, depends) in [
            ("top", "mid-dep,base"),
            ("mid_dep", "base,crc16"),
            ("base", ""),
            ("other", ""),
        ] {
            let image = fake_module_with(format!("depends={depends}\0name={name}\0").as_bytes());
            let mut xz = liblzma::write::XzEncoder::new(Vec::new(), 1);
            xz.write_all(&image).unwrap();
            std::fs::write(fs.join(format!("{name}.ko.xz")), xz.finish().unwrap()).unwrap();
        }
        std::fs::write(dir.path().join("modules.builtin"), "kernel/lib/crc16.ko\n").unwrap();
        let tree = ModuleTree::open(dir.path());
        let order = tree
            .load_order(&["top".to_owned(), "base".to_owned()])
            .unwrap();
        let names: Vec<&str> = order.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["base", "mid_dep", "top"]);
        assert_eq!(&order[0].image[..4], b"\x7fELF", "decompressed");
        assert!(tree.load_order(&[]).unwrap().is_empty());
        let error = tree.load_order(&["absent".to_owned()]).unwrap_err();
        assert!(error.to_string().contains("`absent`"), "{error}");
    }

    #[test]
    fn soft_dependencies_load_first_through_the_crypto_modules_aliases() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let write = |relative: &str, modinfo: &str| {
            let path = dir.path().join(relative);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            let mut xz = liblzma::write::XzEncoder::new(Vec::new(), 1);
            xz.write_all(&fake_module_with(modinfo.as_bytes())).unwrap();
            std::fs::write(path, xz.finish().unwrap()).unwrap();
        };
        // 6.1's libcrc32c and its providers.
        write(
            "kernel/lib/libcrc32c.ko.xz",
            "softdep=pre: crc32c\0depends=\0name=libcrc32c\0",
        );
        write(
            "kernel/crypto/crc32c_generic.ko.xz",
            "alias=crypto-crc32c\0alias=crc32c\0depends=\0name=crc32c_generic\0",
        );
        write(
            "kernel/arch/x86/crypto/crc32c-intel.ko.xz",
            "alias=crypto-crc32c\0alias=crc32c\0depends=\0name=crc32c_intel\0",
        );
        // btrfs's: one built in, one nobody provides, one a module's name.
        write(
            "kernel/fs/btrfs.ko.xz",
            "softdep=pre: sha256\0softdep=pre: xxhash64 libcrc32c\0depends=\0name=btrfs\0",
        );
        std::fs::write(
            dir.path().join("modules.builtin.modinfo"),
            "sha256_generic.alias=sha256\0sha256_generic.alias=crypto-sha256\0",
        )
        .unwrap();
        let tree = ModuleTree::open(dir.path());
        let names = |wanted: &[&str]| -> Vec<String> {
            let wanted: Vec<String> = wanted.iter().map(|n| (*n).to_owned()).collect();
            tree.load_order(&wanted)
                .unwrap()
                .into_iter()
                .map(|m| m.name)
                .collect()
        };
        assert_eq!(names(&["libcrc32c"]), ["crc32c_generic", "libcrc32c"]);
        assert_eq!(names(&["btrfs"]), ["crc32c_generic", "libcrc32c", "btrfs"]);
        assert_eq!(tree.soft_provider("sha256").unwrap(), None);
        assert_eq!(tree.soft_provider("xxhash64").unwrap(), None);
        assert_eq!(
            tree.soft_provider("crypto-crc32c").unwrap().as_deref(),
            Some("crc32c_generic")
        );
    }
}
