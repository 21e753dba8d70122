//! The alias table and the script's probes: what tapset files and a script
//! define, with where, read for one kernel's profile (preprocessor
//! conditionals depend on the kernel).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rayon::prelude::*;
use rustc_hash::FxHashMap;

use tapmatrix_facts::KernelFacts;
use tapmatrix_syntax::ast::{self, AliasKind, Item};
use tapmatrix_syntax::tapset::search_subdirs;
use tapmatrix_syntax::{FileKind, Profile, Session, SourceMap, Span, TapsetFiles, tapset_files};

use crate::body::{BodyTarget, block_targets};
use crate::point::{Component, ProbePoint, has_wildcard};

/// A probe alias: `probe NAME = POINTS { prologue }` or `+=` (epilogue).
#[derive(Debug, Clone)]
pub struct Alias {
    /// The name it defines (its components).
    pub name: ProbePoint,
    /// `=` (prologue) or `+=` (epilogue).
    pub kind: AliasKind,
    /// What it expands to, in order (shared by the names of one
    /// definition and by the libraries that read its file alike).
    pub points: Arc<[ProbePoint]>,
    /// A second body: `probe a = b { prologue }, { epilogue }`.
    pub has_epilogue: bool,
    /// `file:line:col` of its `probe` keyword.
    pub location: String,
    /// The target expressions its bodies read unguarded.
    pub targets: Arc<[BodyTarget]>,
    /// The file defining it: an index into [`Library::files`] (`usize::MAX`
    /// when its AST was not kept).
    pub file: usize,
    /// Its item in that file's AST (see [`Library::alias_ast`]).
    pub item: usize,
    /// The tapset directory that defines it: its index in
    /// [`Sources::tapset_dirs`] ([`SCRIPT_LAYER`] for the script's own).
    /// A directory's aliases shadow those of the same name in the
    /// directories before it ([`Library::shadow`]).
    pub layer: usize,
}

/// The layer of the script's own definitions: they neither shadow nor are
/// shadowed (a script alias of a tapset alias's name adds a definition, as
/// in SystemTap).
pub const SCRIPT_LAYER: usize = usize::MAX;

/// A probe of the script: `probe POINTS { ... }`.
#[derive(Debug, Clone)]
pub struct ScriptProbe {
    /// Its alternatives, in order.
    pub points: Vec<ProbePoint>,
    /// `file:line:col` of its `probe` keyword.
    pub location: String,
    /// The target expressions its body reads unguarded.
    pub targets: Vec<BodyTarget>,
    /// The script file: an index into [`Library::files`] (`usize::MAX`
    /// when its AST was not kept).
    pub file: usize,
    /// Its item in that file's AST (see [`Library::probe_ast`]).
    pub item: usize,
}

impl ScriptProbe {
    /// The probe as its points: `a, b?`.
    pub fn label(&self) -> String {
        let points: Vec<String> = self.points.iter().map(ToString::to_string).collect();
        points.join(", ")
    }
}

/// What the tapsets and the script define.
#[derive(Debug, Clone, Default)]
pub struct Library {
    /// Every alias, in the order SystemTap reads them.
    aliases: Vec<Alias>,
    /// Alias indexes by whole name (`syscall.read`).
    by_name: FxHashMap<String, Vec<usize>>,
    /// Alias indexes by component names without arguments (`syscall.read`).
    by_names: FxHashMap<String, Vec<usize>>,
    /// Alias indexes by first component name (`syscall`).
    by_first: FxHashMap<String, Vec<usize>>,
    /// The script's probes (empty for a tapset directory alone).
    pub probes: Vec<ScriptProbe>,
    /// The files added with their ASTs ([`Sources::load`] keeps them:
    /// tapset files without parse errors, then the script): what
    /// elaboration reads functions, globals and bodies from.
    /// [`Sources::load_all`] keeps none (it only resolves).
    pub files: Vec<ParsedFile>,
}

/// A parsed file kept for elaboration.
#[derive(Debug, Clone)]
pub struct ParsedFile {
    /// Its AST (shared by the kernels whose profiles read it the same).
    pub ast: std::sync::Arc<ast::File>,
    /// The names of the files its spans point into.
    pub names: FileNames,
    /// The user's script rather than a tapset file.
    pub script: bool,
    /// The tapset directory it comes from: its index in
    /// [`Sources::tapset_dirs`] ([`SCRIPT_LAYER`] for the script). A
    /// directory's functions shadow those of the same name and arity in
    /// the directories before it, except that an embedded-C function is
    /// served by a script function of an earlier directory (elaboration
    /// decides that).
    pub layer: usize,
}

/// The names of the files a parsed file's spans point into: the file itself
/// and the library macro and argument files of the session that parsed it.
#[derive(Debug, Clone, Default)]
pub struct FileNames(std::sync::Arc<Vec<(tapmatrix_syntax::FileId, String)>>);

impl FileNames {
    /// The names a file's spans may refer to, from the session that parsed it.
    fn of(file: &ast::File, sources: &SourceMap) -> FileNames {
        let mut names: Vec<(tapmatrix_syntax::FileId, String)> = Vec::new();
        let add = |id: tapmatrix_syntax::FileId,
                   names: &mut Vec<(tapmatrix_syntax::FileId, String)>| {
            if !names.iter().any(|(known, _)| *known == id)
                && let Some(f) = sources.file(id)
            {
                names.push((id, f.name.clone()));
            }
        };
        for item in &file.items {
            let span = match item {
                Item::Probe(p) => p.span,
                Item::Alias(a) => a.span,
                Item::Function(f) => f.span,
                Item::Global(g) => g.span,
                Item::Embedded(e) => e.span,
            };
            add(span.file, &mut names);
        }
        let mut id = 0;
        while let Some(f) = sources.file(tapmatrix_syntax::FileId(id)) {
            if f.name.ends_with(".stpm") || f.name.starts_with("<argument") {
                add(tapmatrix_syntax::FileId(id), &mut names);
            }
            id += 1;
        }
        FileNames(std::sync::Arc::new(names))
    }

    /// The name of a file (`<unknown>` for one this file's spans cannot name).
    pub fn name(&self, id: tapmatrix_syntax::FileId) -> &str {
        self.0
            .iter()
            .find(|(known, _)| *known == id)
            .map_or("<unknown>", |(_, name)| name.as_str())
    }

    /// `file:line:col` of a span.
    pub fn location(&self, span: Span) -> String {
        format!("{}:{}:{}", self.name(span.file), span.line, span.col)
    }
}

/// One parse error found while loading.
#[derive(Debug, Clone)]
pub struct LoadDiagnostic {
    /// In the user's script (an input error) or in a tapset file (skipped, as SystemTap does).
    pub in_script: bool,
    /// The rendered diagnostic (`file:line:col: message` with context).
    pub rendered: String,
}

/// Why a library could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A tapset directory or script could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// What one parsed file defines: its aliases and (for the script) probes,
/// made once and added to every library that reads the file alike.
#[derive(Debug, Clone, Default)]
pub(crate) struct FileUnit {
    aliases: Vec<Alias>,
    probes: Vec<ScriptProbe>,
}

impl FileUnit {
    /// The aliases (and, for the script, the probes) of `file`, whose
    /// spans point into `sources`; `file_index` is its index in
    /// [`Library::files`] (`usize::MAX`: not kept).
    fn of(
        file: &ast::File,
        sources: &SourceMap,
        script: bool,
        file_index: usize,
        layer: usize,
    ) -> FileUnit {
        let mut unit = FileUnit::default();
        let location = |span: Span| sources.location(span).to_string();
        for (item_index, item) in file.items.iter().enumerate() {
            match item {
                Item::Alias(alias) => {
                    let points: Arc<[ProbePoint]> =
                        alias.points.iter().map(ProbePoint::from_ast).collect();
                    let mut targets = block_targets(&alias.body);
                    if let Some(epilogue) = &alias.epilogue {
                        targets.extend(block_targets(epilogue));
                    }
                    let targets: Arc<[BodyTarget]> = targets.into();
                    let location = location(alias.span);
                    for name in &alias.names {
                        unit.aliases.push(Alias {
                            name: ProbePoint::from_ast(name),
                            kind: alias.kind,
                            points: points.clone(),
                            has_epilogue: alias.epilogue.is_some(),
                            location: location.clone(),
                            targets: targets.clone(),
                            file: file_index,
                            item: item_index,
                            layer,
                        });
                    }
                }
                Item::Probe(probe) if script => unit.probes.push(ScriptProbe {
                    points: probe.points.iter().map(ProbePoint::from_ast).collect(),
                    location: location(probe.span),
                    targets: block_targets(&probe.body),
                    file: file_index,
                    item: item_index,
                }),
                _ => {}
            }
        }
        unit
    }
}

/// An alias matched by a probe point, and the components after its name.
#[derive(Debug, Clone, Copy)]
pub struct AliasMatch<'a> {
    /// The alias.
    pub alias: &'a Alias,
    /// Components of the probe point after the alias name (alias suffixes,
    /// appended to every point of the expansion).
    pub suffix: &'a [Component],
}

impl Library {
    /// Adds the aliases (and, for the script, the probes) of one parsed
    /// file of tapset directory `layer` ([`SCRIPT_LAYER`] for the script).
    /// Its AST is not kept (see [`Library::add_kept`]).
    pub fn add_file(&mut self, file: &ast::File, sources: &SourceMap, script: bool, layer: usize) {
        self.add_unit(&FileUnit::of(file, sources, script, usize::MAX, layer));
    }

    /// [`Library::add_file`], keeping the AST in [`Library::files`] for
    /// elaboration.
    pub fn add_kept(
        &mut self,
        file: std::sync::Arc<ast::File>,
        sources: &SourceMap,
        script: bool,
        layer: usize,
    ) {
        let file_index = self.files.len();
        self.add_unit(&FileUnit::of(&file, sources, script, file_index, layer));
        let names = FileNames::of(&file, sources);
        self.files.push(ParsedFile {
            ast: file,
            names,
            script,
            layer,
        });
    }

    /// Drops the tapset aliases that a later tapset directory defines
    /// again: `-I DIR` extends the library as `stap -I` extends its search
    /// path, and DIR's definition of an alias name replaces the earlier
    /// directories' (so SystemTap's own library, given with `-I`, is read
    /// as it is written over tapmatrix's). Within one directory every
    /// definition stays, as in SystemTap. The script's aliases take no
    /// part. Called once all tapset files are added.
    pub fn shadow(&mut self) {
        let mut top: FxHashMap<String, usize> = FxHashMap::default();
        for alias in &self.aliases {
            if alias.layer != SCRIPT_LAYER {
                let layer = top.entry(alias.name.bare()).or_insert(alias.layer);
                *layer = (*layer).max(alias.layer);
            }
        }
        let shadowed = |alias: &Alias| {
            alias.layer != SCRIPT_LAYER
                && top
                    .get(&alias.name.bare())
                    .is_some_and(|&layer| layer > alias.layer)
        };
        if !self.aliases.iter().any(shadowed) {
            return;
        }
        let aliases = std::mem::take(&mut self.aliases);
        self.by_name.clear();
        self.by_names.clear();
        self.by_first.clear();
        for alias in aliases {
            if !shadowed(&alias) {
                self.push_alias(alias);
            }
        }
    }

    /// Adds what one file defines (its AST not kept).
    fn add_unit(&mut self, unit: &FileUnit) {
        self.aliases.reserve(unit.aliases.len());
        for alias in &unit.aliases {
            self.push_alias(alias.clone());
        }
        self.probes.extend(unit.probes.iter().cloned());
    }

    /// An alias's definition and the file it is in.
    pub fn alias_ast(&self, alias: &Alias) -> Option<(&ast::ProbeAlias, &ParsedFile)> {
        let file = self.files.get(alias.file)?;
        match file.ast.items.get(alias.item)? {
            Item::Alias(definition) => Some((definition, file)),
            _ => None,
        }
    }

    /// A script probe's definition and the file it is in.
    pub fn probe_ast(&self, probe: &ScriptProbe) -> Option<(&ast::Probe, &ParsedFile)> {
        let file = self.files.get(probe.file)?;
        match file.ast.items.get(probe.item)? {
            Item::Probe(definition) => Some((definition, file)),
            _ => None,
        }
    }

    fn push_alias(&mut self, alias: Alias) {
        let index = self.aliases.len();
        let first = alias.name.name(0).unwrap_or_default().to_owned();
        self.by_name
            .entry(alias.name.bare())
            .or_default()
            .push(index);
        self.by_first.entry(first).or_default().push(index);
        let names: Vec<&str> = alias
            .name
            .components
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        self.by_names
            .entry(names.join("."))
            .or_default()
            .push(index);
        self.aliases.push(alias);
    }

    /// Every alias, in the order SystemTap reads them.
    pub fn aliases(&self) -> &[Alias] {
        &self.aliases
    }

    /// The definitions of the alias `name` (`syscall.read`), in order.
    pub fn aliases_named<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a Alias> + 'a {
        self.by_name
            .get(name)
            .into_iter()
            .flatten()
            .filter_map(|&index| self.aliases.get(index))
    }

    /// The distinct alias names, in definition order.
    pub fn alias_names(&self) -> Vec<String> {
        let mut seen = HashSet::new();
        self.aliases
            .iter()
            .map(|alias| alias.name.bare())
            .filter(|name| seen.insert(name.clone()))
            .collect()
    }

    /// The aliases a probe point names. Whole-name matches win; failing
    /// those, the longest alias names that are a prefix of the point match,
    /// with the rest as a suffix (SystemTap's alias suffixes).
    pub fn matching<'a>(&'a self, point: &'a ProbePoint) -> Vec<AliasMatch<'a>> {
        let mut best: Vec<AliasMatch<'a>> = Vec::new();
        let mut best_len = 0;
        let first = point.name(0).unwrap_or_default();
        let candidates: Box<dyn Iterator<Item = &Alias>> = if !point.has_wildcard() {
            // Whole names, then shorter prefixes (alias suffixes): hash lookups.
            let mut key: String = point
                .components
                .iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>()
                .join(".");
            let mut found: Vec<&Alias> = Vec::new();
            for length in (1..=point.components.len()).rev() {
                if let Some(indexes) = self.by_names.get(&key) {
                    found.extend(indexes.iter().filter_map(|&index| self.aliases.get(index)));
                    let whole: Vec<AliasMatch<'a>> = found
                        .iter()
                        .filter(|alias| {
                            point
                                .components
                                .iter()
                                .zip(&alias.name.components)
                                .all(|(pattern, component)| pattern.matches(component))
                        })
                        .map(|alias| AliasMatch {
                            alias,
                            suffix: &point.components[length..],
                        })
                        .collect();
                    if !whole.is_empty() {
                        return whole;
                    }
                    found.clear();
                }
                if let Some(dot) = key.rfind('.') {
                    key.truncate(dot);
                }
            }
            return Vec::new();
        } else if has_wildcard(first) {
            Box::new(self.aliases.iter())
        } else {
            Box::new(
                self.by_first
                    .get(first)
                    .into_iter()
                    .flatten()
                    .filter_map(|&index| self.aliases.get(index)),
            )
        };
        for alias in candidates {
            let name = &alias.name.components;
            if name.is_empty() || name.len() > point.components.len() {
                continue;
            }
            let matched = point
                .components
                .iter()
                .zip(name)
                .all(|(pattern, component)| pattern.matches(component));
            if !matched {
                continue;
            }
            if name.len() > best_len {
                best.clear();
                best_len = name.len();
            }
            if name.len() == best_len {
                best.push(AliasMatch {
                    alias,
                    suffix: &point.components[name.len()..],
                });
            }
        }
        best
    }
}

/// The preprocessor profile of a harvested kernel: its release and config.
pub fn kernel_profile(facts: &KernelFacts) -> Profile {
    let mut profile = Profile::default();
    if let Some(release) = &facts.release {
        profile.kernel_release = release.clone();
    }
    if let Some(config) = &facts.config {
        profile
            .kernel_config
            .reserve(config.yes.len() + config.module.len() + config.values.len());
        let config_name = |name: &str| {
            let mut key = String::with_capacity("CONFIG_".len() + name.len());
            key.push_str("CONFIG_");
            key.push_str(name);
            key
        };
        for name in config.yes.iter() {
            profile
                .kernel_config
                .insert(config_name(name), "y".to_owned());
        }
        for name in config.module.iter() {
            profile
                .kernel_config
                .insert(config_name(name), "m".to_owned());
        }
        for (name, value) in &config.values {
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(value);
            profile.kernel_config.insert(
                config_name(name.trim_start_matches("CONFIG_")),
                value.to_owned(),
            );
        }
    }
    profile
}

/// What to load: tapset directories (`-I`, in order) and an optional script.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// Tapset directories, read as SystemTap reads them.
    pub tapset_dirs: Vec<PathBuf>,
    /// The user's script: its file, or the name diagnostics give it when
    /// its text is `script_text` (`<input>` for `-e`, as stap says).
    pub script: Option<PathBuf>,
    /// The script's text when it was given rather than written to a file
    /// (`-e`): it is never read from disk then.
    pub script_text: Option<String>,
}

/// A library and the parse errors met while loading it.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// What was defined.
    pub library: Library,
    /// Parse errors; a tapset file with errors is skipped, as SystemTap does.
    pub diagnostics: Vec<LoadDiagnostic>,
}

impl Sources {
    /// Reads and parses everything for one profile, keeping every file's
    /// AST for elaboration ([`Library::files`]).
    pub fn load(&self, profile: Profile) -> Result<Loaded, LoadError> {
        self.load_kept(profile)
    }

    /// Reads and parses everything for each profile (one per kernel).
    pub fn load_all(&self, profiles: Vec<Profile>) -> Result<Vec<Loaded>, LoadError> {
        let shared = self.load_shared(profiles)?;
        let mut distinct: Vec<Option<Loaded>> = shared.distinct.into_iter().map(Some).collect();
        let mut out = Vec::with_capacity(shared.of_kernel.len());
        for (kernel, &index) in shared.of_kernel.iter().enumerate() {
            // The last kernel that uses a library takes it; the others clone.
            let last = !shared.of_kernel[kernel + 1..].contains(&index);
            let loaded = match distinct.get_mut(index) {
                Some(slot) if last => slot.take(),
                Some(slot) => slot.clone(),
                None => None,
            };
            out.extend(loaded);
        }
        Ok(out)
    }

    /// Reads and parses everything for each profile (one per kernel), once
    /// per distinct outcome. A file's outcome for a profile is the value of
    /// every preprocessor condition (`%( COND %?`) written in it, and of
    /// those of the library macro files when it uses a macro whose
    /// expansion has one: each file is parsed once per distinct outcome,
    /// and kernels whose every file has the same outcome share one library.
    /// A condition that cannot be evaluated on its own (it uses a macro
    /// parameter or a macro of its own file) makes its file's outcome
    /// unique to the kernel.
    pub(crate) fn load_shared(&self, profiles: Vec<Profile>) -> Result<Shared, LoadError> {
        let mut texts = Texts::of(self);
        let mut listings: HashMap<(PathBuf, Vec<String>), TapsetFiles> = HashMap::new();
        let mut kernels: Vec<Prepared> = Vec::with_capacity(profiles.len());
        for profile in profiles {
            kernels.push(self.prepare(profile, &mut listings)?);
        }
        let mut macro_files: Vec<PathBuf> = Vec::new();
        for kernel in &kernels {
            for path in &kernel.macros {
                if !macro_files.contains(path) {
                    macro_files.push(path.clone());
                }
            }
        }
        let mut macro_texts: Vec<&str> = Vec::with_capacity(macro_files.len());
        for path in &macro_files {
            texts.get(path)?;
        }
        for path in &macro_files {
            macro_texts.push(texts.peek(path).unwrap_or_default());
        }
        let conditional = ConditionalMacros::of(&macro_texts);
        // The conditions of each macro file.
        let macro_conditions: Vec<Vec<Option<String>>> =
            macro_texts.iter().map(|text| conditions(text)).collect();
        drop(macro_texts);
        // The conditions that decide each file (the same text for every
        // kernel), as indexes into the distinct conditions.
        let mut distinct_conditions: Vec<String> = Vec::new();
        let mut condition_index: HashMap<String, usize> = HashMap::new();
        let mut written_in: HashMap<PathBuf, Vec<Option<usize>>> = HashMap::new();
        // Per kernel: each file's outcome, and the signature of them all.
        let mut signatures: Vec<Vec<(PathBuf, Outcome)>> = Vec::with_capacity(kernels.len());
        for (index, kernel) in kernels.iter_mut().enumerate() {
            // The value of each distinct condition, once evaluated.
            let mut values: Vec<Option<Option<bool>>> = Vec::new();
            let files: Vec<PathBuf> = kernel
                .macros
                .iter()
                .chain(&kernel.scripts)
                .chain(&self.script)
                .cloned()
                .collect();
            let mut signature = Vec::with_capacity(files.len());
            for path in files {
                if !written_in.contains_key(&path) {
                    let text = texts.get(&path)?;
                    let mut written = conditions(text);
                    for file in conditional.files_used_by(text) {
                        written.extend(macro_conditions.get(file).into_iter().flatten().cloned());
                    }
                    let indexes = written
                        .into_iter()
                        .map(|condition| {
                            let condition = condition?;
                            Some(*condition_index.entry(condition).or_insert_with_key(
                                |condition| {
                                    distinct_conditions.push(condition.clone());
                                    distinct_conditions.len() - 1
                                },
                            ))
                        })
                        .collect();
                    written_in.insert(path.clone(), indexes);
                }
                let written = written_in.get(&path).map_or(&[][..], Vec::as_slice);
                let mut outcome = Outcome::Values(Vec::with_capacity(written.len()));
                for condition in written {
                    let value = condition.and_then(|condition| {
                        if values.len() <= condition {
                            values.resize(condition + 1, None);
                        }
                        *values[condition].get_or_insert_with(|| {
                            evaluate(&mut kernel.session, &distinct_conditions[condition])
                        })
                    });
                    match (&mut outcome, value) {
                        (Outcome::Values(values), Some(value)) => values.push(value),
                        _ => outcome = Outcome::Kernel(index),
                    }
                }
                signature.push((path, outcome));
            }
            signatures.push(signature);
        }
        let mut of_kernel: Vec<usize> = Vec::with_capacity(kernels.len());
        let mut representatives: Vec<usize> = Vec::new();
        for signature in &signatures {
            let same = representatives
                .iter()
                .position(|&first| signatures[first] == *signature);
            of_kernel.push(same.unwrap_or_else(|| {
                representatives.push(of_kernel.len());
                representatives.len() - 1
            }));
        }
        // Every kernel's files as (path, outcome, is the script), and the
        // distinct ones: each is parsed once, by any kernel that reads the
        // file alike, so parsing spreads over the cores.
        type Key = (PathBuf, Outcome, bool);
        let mut jobs: Vec<Key> = Vec::new();
        let mut job_of: HashMap<Key, usize> = HashMap::new();
        let mut eligible: Vec<Vec<usize>> = Vec::new();
        let mut files_of: Vec<Vec<usize>> = Vec::with_capacity(kernels.len());
        for (kernel, prepared) in kernels.iter().enumerate() {
            let outcomes = signatures[kernel]
                .get(prepared.macros.len()..)
                .unwrap_or_default();
            let mut files = Vec::with_capacity(outcomes.len());
            for (position, (path, outcome)) in outcomes.iter().enumerate() {
                let key = (
                    path.clone(),
                    outcome.clone(),
                    position >= prepared.scripts.len(),
                );
                let job = *job_of.entry(key).or_insert_with_key(|key| {
                    jobs.push(key.clone());
                    eligible.push(Vec::new());
                    jobs.len() - 1
                });
                if let Some(kernels) = eligible.get_mut(job) {
                    kernels.push(kernel);
                }
                files.push(job);
            }
            files_of.push(files);
        }
        // Each job to the eligible kernel with the fewest bytes so far.
        let mut assigned: Vec<Vec<usize>> = vec![Vec::new(); kernels.len()];
        let mut load = vec![0usize; kernels.len()];
        for (job, (path, _, _)) in jobs.iter().enumerate() {
            let size = texts.get(path)?.len();
            let Some(&kernel) = eligible
                .get(job)
                .and_then(|kernels| kernels.iter().min_by_key(|&&k| load.get(k).copied()))
            else {
                continue;
            };
            if let (Some(group), Some(bytes)) = (assigned.get_mut(kernel), load.get_mut(kernel)) {
                group.push(job);
                *bytes += size;
            }
        }
        // The tapset directory of each tapset file (its layer).
        let mut layer_of: HashMap<PathBuf, usize> = HashMap::new();
        for prepared in &kernels {
            for (path, &layer) in prepared.scripts.iter().zip(&prepared.layers) {
                layer_of.insert(path.clone(), layer);
            }
        }
        let layer_of = &layer_of;
        let texts = &texts;
        let jobs = &jobs;
        let parsed: Vec<(usize, FileUnit, Vec<LoadDiagnostic>)> = kernels
            .par_iter_mut()
            .zip(assigned)
            .flat_map_iter(|(prepared, group)| {
                group
                    .into_iter()
                    .filter_map(|job| {
                        let (path, _, script) = jobs.get(job)?;
                        let text = texts.peek(path)?;
                        let session = &mut prepared.session;
                        let (file, found, clean) = parse_text(session, path, text, *script);
                        // A tapset file with errors adds nothing, as in SystemTap.
                        let layer = if *script {
                            SCRIPT_LAYER
                        } else {
                            layer_of.get(path.as_path()).copied().unwrap_or(0)
                        };
                        let unit = if clean || *script {
                            FileUnit::of(&file, session.sources(), *script, usize::MAX, layer)
                        } else {
                            FileUnit::default()
                        };
                        Some((job, unit, found))
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        let mut units: Vec<Option<(FileUnit, Vec<LoadDiagnostic>)>> = vec![None; jobs.len()];
        for (job, unit, found) in parsed {
            if let Some(slot) = units.get_mut(job) {
                *slot = Some((unit, found));
            }
        }
        // Each distinct library on its own (they share only the parsed
        // units), so they are built in parallel.
        let starts: Vec<(usize, Vec<LoadDiagnostic>)> = representatives
            .iter()
            .map(|&kernel| {
                let diagnostics = kernels
                    .get_mut(kernel)
                    .map(|prepared| std::mem::take(&mut prepared.diagnostics))
                    .unwrap_or_default();
                (kernel, diagnostics)
            })
            .collect();
        let distinct: Vec<Loaded> = starts
            .into_par_iter()
            .map(|(kernel, mut diagnostics)| {
                let mut library = Library::default();
                for &job in files_of.get(kernel).into_iter().flatten() {
                    if let Some(Some((unit, found))) = units.get(job) {
                        diagnostics.extend(found.iter().cloned());
                        library.add_unit(unit);
                    }
                }
                library.shadow();
                Loaded {
                    library,
                    diagnostics,
                }
            })
            .collect();
        Ok(Shared {
            distinct,
            of_kernel,
        })
    }

    /// A session with the library macros loaded, and the tapset scripts to
    /// read; `listings` caches the directory listings by the searched
    /// subdirectories that exist.
    pub(crate) fn prepare(
        &self,
        profile: Profile,
        listings: &mut HashMap<(PathBuf, Vec<String>), TapsetFiles>,
    ) -> Result<Prepared, LoadError> {
        let mut session = Session::new(profile, &[]);
        let mut diagnostics = Vec::new();
        let mut scripts = Vec::new();
        let mut layers = Vec::new();
        let mut macro_files = Vec::new();
        for (layer, dir) in self.tapset_dirs.iter().enumerate() {
            // A directory's library macros replace the earlier ones' of the
            // same name, as its aliases and functions do.
            session.begin_macro_layer();
            // The listing depends only on which searched subdirectories exist.
            let existing: Vec<String> = search_subdirs(session.profile())
                .into_iter()
                .filter(|sub| dir.join(sub).is_dir())
                .collect();
            let key = (dir.clone(), existing);
            let files = match listings.get(&key) {
                Some(files) => files.clone(),
                None => {
                    let files =
                        tapset_files(dir, session.profile()).map_err(|source| LoadError::Read {
                            path: dir.clone(),
                            source,
                        })?;
                    listings.insert(key, files.clone());
                    files
                }
            };
            for macros in &files.macros {
                let found = session
                    .load_library_macros(std::slice::from_ref(macros))
                    .map_err(|e| LoadError::Read {
                        path: macros.clone(),
                        source: std::io::Error::other(e.to_string()),
                    })?;
                diagnostics.extend(found.iter().map(|d| LoadDiagnostic {
                    in_script: false,
                    rendered: d.render(session.sources()),
                }));
            }
            macro_files.extend(files.macros);
            layers.extend(std::iter::repeat_n(layer, files.scripts.len()));
            scripts.extend(files.scripts);
        }
        Ok(Prepared {
            session,
            diagnostics,
            scripts,
            layers,
            macros: macro_files,
        })
    }
}

/// The libraries of [`Sources::load_shared`]: the distinct ones, and
/// which one each kernel reads.
#[derive(Debug)]
pub(crate) struct Shared {
    /// Distinct libraries, in the order of the first kernel that reads each.
    pub(crate) distinct: Vec<Loaded>,
    /// For each kernel, its library's index in `distinct`.
    pub(crate) of_kernel: Vec<usize>,
}

/// A kernel's session (library macros loaded), their diagnostics, the
/// tapset scripts with their directories, and the macro files.
pub(crate) struct Prepared {
    pub(crate) session: Session,
    pub(crate) diagnostics: Vec<LoadDiagnostic>,
    pub(crate) scripts: Vec<PathBuf>,
    /// The tapset directory (index) of each of `scripts`.
    pub(crate) layers: Vec<usize>,
    pub(crate) macros: Vec<PathBuf>,
}

/// What the preprocessor makes of one file for one profile.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Outcome {
    /// The value of each condition that can decide it, in order.
    Values(Vec<bool>),
    /// Not known without preprocessing: unique to this kernel.
    Kernel(usize),
}

/// File texts, each read once.
#[derive(Default)]
pub(crate) struct Texts(HashMap<PathBuf, String>);

impl Texts {
    /// The texts of `sources`, holding the script's text already when it
    /// was given as text.
    pub(crate) fn of(sources: &Sources) -> Self {
        let mut texts = Self::default();
        if let (Some(name), Some(text)) = (&sources.script, &sources.script_text) {
            texts.0.insert(name.clone(), text.clone());
        }
        texts
    }

    /// The text of `path` if [`Texts::get`] read it already.
    pub(crate) fn peek(&self, path: &Path) -> Option<&str> {
        self.0.get(path).map(String::as_str)
    }

    /// The text of `path` (invalid UTF-8 replaced, as the front end does).
    pub(crate) fn get(&mut self, path: &Path) -> Result<&str, LoadError> {
        let text = match self.0.entry(path.to_owned()) {
            std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
            std::collections::hash_map::Entry::Vacant(entry) => {
                let bytes = std::fs::read(path).map_err(|source| LoadError::Read {
                    path: path.to_owned(),
                    source,
                })?;
                entry.insert(
                    String::from_utf8(bytes)
                        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
                )
            }
        };
        Ok(text)
    }
}

/// The preprocessor conditions written in `text`: for each `%?`, the text
/// from the `%(` before it. `None` for a `%?` with no `%(` before it.
/// Conditions in comments or strings are listed too (harmless: a value
/// more to compare).
fn conditions(text: &str) -> Vec<Option<String>> {
    let bytes = text.as_bytes();
    memchr::memmem::find_iter(bytes, "%?")
        .map(|at| {
            let start = memchr::memmem::rfind(bytes.get(..at)?, b"%(")? + 2;
            Some(text.get(start..at)?.trim().to_owned())
        })
        .collect()
}

/// The value of a preprocessor condition in `session` (its profile and
/// library macros); `None` when it does not evaluate on its own.
fn evaluate(session: &mut Session, condition: &str) -> Option<bool> {
    let id = session.add_source(
        "<condition>",
        format!("%( {condition} %? probe t = never {{}} %: probe f = never {{}} %)"),
    );
    let parsed = session.parse(
        id,
        FileKind {
            privileged: true,
            user_file: false,
        },
    );
    if !parsed.diagnostics.is_empty() {
        return None;
    }
    match parsed.file.items.as_slice() {
        [Item::Alias(alias)] => match alias.names.first()?.components.first()?.name.as_str() {
            "t" => Some(true),
            "f" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// Parses one file's text in a session: the AST, its diagnostics, and
/// whether it had none.
pub(crate) fn parse_text(
    session: &mut Session,
    path: &Path,
    text: &str,
    script: bool,
) -> (ast::File, Vec<LoadDiagnostic>, bool) {
    let id = session.add_source(path.display().to_string(), text);
    let parsed = session.parse(
        id,
        FileKind {
            privileged: !script,
            user_file: script,
        },
    );
    let diagnostics: Vec<LoadDiagnostic> = parsed
        .diagnostics
        .iter()
        .map(|d| LoadDiagnostic {
            in_script: script,
            rendered: d.render(session.sources()),
        })
        .collect();
    let clean = diagnostics.is_empty();
    (parsed.file, diagnostics, clean)
}

/// The names of `@define`d macros in `text`.
fn defined_macros(text: &str) -> Vec<String> {
    text.match_indices("@define")
        .filter_map(|(at, word)| {
            let rest = text[at + word.len()..].trim_start();
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            (!name.is_empty()).then_some(name)
        })
        .collect()
}

/// The names `text` uses as `@name`, each once per use.
fn used_names(text: &str) -> impl Iterator<Item = &str> {
    memchr::memchr_iter(b'@', text.as_bytes()).filter_map(|at| {
        let rest = text.get(at + 1..)?;
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        rest.get(..end)
    })
}

/// The library macros whose expansion can depend on the profile, each
/// with the macro files whose conditions can decide it: a macro defined in
/// a file with a conditional (`%?`) depends on that file's conditions, and
/// a macro defined in a file that uses such a macro depends on those too
/// (to a fixpoint; by file, so conservative).
#[derive(Debug, Default)]
struct ConditionalMacros {
    /// Macro name -> the macro files (indexes) its expansion depends on.
    by_name: HashMap<String, Vec<usize>>,
}

impl ConditionalMacros {
    /// From the texts of the macro files, in order.
    fn of(texts: &[&str]) -> ConditionalMacros {
        // Per file: what it depends on (itself when it has a conditional).
        let mut depends: Vec<Vec<usize>> = texts
            .iter()
            .enumerate()
            .map(|(index, text)| {
                if text.contains("%?") {
                    vec![index]
                } else {
                    Vec::new()
                }
            })
            .collect();
        let defined: Vec<Vec<String>> = texts.iter().map(|text| defined_macros(text)).collect();
        let mut conditional = ConditionalMacros::default();
        loop {
            conditional.by_name.clear();
            for (files, names) in depends.iter().zip(&defined) {
                if files.is_empty() {
                    continue;
                }
                for name in names {
                    let entry = conditional.by_name.entry(name.clone()).or_default();
                    for file in files {
                        if !entry.contains(file) {
                            entry.push(*file);
                        }
                    }
                }
            }
            let mut changed = false;
            for (index, text) in texts.iter().enumerate() {
                for file in conditional.files_used_by(text) {
                    if let Some(files) = depends.get_mut(index)
                        && !files.contains(&file)
                    {
                        files.push(file);
                        changed = true;
                    }
                }
            }
            if !changed {
                return conditional;
            }
        }
    }

    /// The macro files whose conditions can decide what `text` reads
    /// through the conditional macros it uses, in file order.
    fn files_used_by(&self, text: &str) -> Vec<usize> {
        let mut files: Vec<usize> = Vec::new();
        if self.by_name.is_empty() {
            return files;
        }
        for name in used_names(text) {
            for file in self.by_name.get(name).into_iter().flatten() {
                if !files.contains(file) {
                    files.push(*file);
                }
            }
        }
        files.sort_unstable();
        files
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::library;

    #[test]
    fn aliases_and_probes_with_locations() {
        let lib = library(
            "probe a.b = c.d, e? { x = 1 }\nprobe p = q = r {}\nprobe two = x { } , { }\nprobe a.b {}\n",
        );
        assert_eq!(lib.alias_names(), ["a.b", "p", "q", "two"]);
        assert_eq!(lib.aliases()[0].points.len(), 2);
        assert!(lib.aliases()[0].points[1].optional);
        assert!(lib.aliases()[3].has_epilogue && !lib.aliases()[0].has_epilogue);
        assert_eq!(lib.aliases()[1].location, "t.stp:2:1");
        assert_eq!(lib.probes.len(), 1);
        assert_eq!(lib.probes[0].label(), "a.b");
    }

    #[test]
    fn conditions_as_written_and_evaluated() {
        let text = "%( kernel_v >= \"6.0\" %? a %: %( arch == \"x86_64\" %? b %) %)\n%? x";
        assert_eq!(
            conditions(text),
            [
                Some("kernel_v >= \"6.0\"".to_owned()),
                Some("arch == \"x86_64\"".to_owned()),
                Some("arch == \"x86_64\" %? b %) %)".to_owned()),
            ]
        );
        assert_eq!(conditions("%? alone"), [None]);
        let mut session = Session::new(Profile::default(), &[]);
        assert_eq!(evaluate(&mut session, "kernel_v >= \"6.0\""), Some(true));
        assert_eq!(evaluate(&mut session, "arch == \"arm64\""), Some(false));
        assert_eq!(evaluate(&mut session, "kernel_v >= @nosuch"), None);
    }

    #[test]
    fn whole_names_win_over_suffix_matches() {
        let lib =
            library("probe s.read = x {}\nprobe s.read.return = y {}\nprobe s.write = z {}\n");
        let point = ProbePoint::parse("s.read.return").unwrap();
        let found = lib.matching(&point);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].alias.name.bare(), "s.read.return");
        assert!(found[0].suffix.is_empty());
        let point = ProbePoint::parse("s.write.maxactive(3)").unwrap();
        let found = lib.matching(&point);
        assert_eq!(found[0].alias.name.bare(), "s.write");
        assert_eq!(found[0].suffix.len(), 1);
        let point = ProbePoint::parse("s.*").unwrap();
        assert_eq!(lib.matching(&point).len(), 2);
    }

    #[test]
    fn a_later_directory_shadows_aliases_and_macros_of_the_same_name() {
        let base = tempfile::tempdir().unwrap();
        let over = tempfile::tempdir().unwrap();
        let write = |dir: &Path, name: &str, text: &str| {
            std::fs::write(dir.join(name), text).unwrap();
        };
        write(
            base.path(),
            "m.stpm",
            "@define which %( \"base\" %)\n@define kept %( 1 %)\n",
        );
        write(
            base.path(),
            "a.stp",
            "probe s.read = kernel.function(\"base_read\") {}\nprobe s.only_base = begin {}\n",
        );
        write(
            base.path(),
            "b.stp",
            "probe s.twice = kernel.function(\"one\") {}\n",
        );
        write(
            base.path(),
            "c.stp",
            "probe s.twice = kernel.function(\"two\") {}\n",
        );
        write(over.path(), "m.stpm", "@define which %( \"over\" %)\n");
        write(
            over.path(),
            "a.stp",
            "probe s.read = kernel.function(\"over_read\") { w = @which; k = @kept }\n",
        );
        let sources = Sources {
            tapset_dirs: vec![base.path().to_owned(), over.path().to_owned()],
            script: None,
            script_text: None,
        };
        for loaded in [
            sources.load(Profile::default()).unwrap(),
            sources
                .load_all(vec![Profile::default()])
                .unwrap()
                .remove(0),
        ] {
            assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
            let lib = &loaded.library;
            assert_eq!(lib.alias_names(), ["s.only_base", "s.twice", "s.read"]);
            let read: Vec<&Alias> = lib.aliases_named("s.read").collect();
            assert_eq!(read.len(), 1);
            assert_eq!(read[0].layer, 1);
            assert_eq!(
                read[0].points[0].to_string(),
                "kernel.function(\"over_read\")"
            );
            // Two definitions in one directory both stay, as in SystemTap.
            assert_eq!(lib.aliases_named("s.twice").count(), 2);
            let point = ProbePoint::parse("s.read").unwrap();
            assert_eq!(lib.matching(&point).len(), 1);
        }
        // The later directory's macro replaced the earlier one's; the
        // other macros of the earlier directory stay.
        let kept = sources.load(Profile::default()).unwrap();
        let file = kept.library.files.iter().find(|f| f.layer == 1).unwrap();
        let text = format!("{:?}", file.ast);
        assert!(text.contains("\"over\""), "{text}");
        assert!(!text.contains("\"base\""), "{text}");
    }

    #[test]
    fn load_all_shares_only_profile_independent_files() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
        write(
            "m.stpm",
            "@define new_kernel %( %( kernel_v >= \"6.0\" %? 1 %: 0 %) %)\n",
        );
        write("p.stpm", "@define plain %( 7 %)\n");
        write("a.stp", "probe a = kernel.function(\"x\") { v = @plain }\n");
        write(
            "b.stp",
            "probe b = kernel.function(\"y\") { v = @new_kernel }\n",
        );
        write(
            "c.stp",
            "%( kernel_v >= \"6.0\" %? probe c.new = begin {} %: probe c.old = begin {} %)\n",
        );
        let sources = Sources {
            tapset_dirs: vec![dir.path().to_owned()],
            script: None,
            script_text: None,
        };
        let profile = |release: &str| Profile {
            kernel_release: release.to_owned(),
            ..Profile::default()
        };
        let all = sources
            .load_all(vec![profile("5.10.0"), profile("6.1.0")])
            .unwrap();
        for (loaded, release) in all.iter().zip(["5.10.0", "6.1.0"]) {
            let alone = sources.load(profile(release)).unwrap();
            assert_eq!(loaded.library.alias_names(), alone.library.alias_names());
            let locations: Vec<&str> = loaded
                .library
                .aliases()
                .iter()
                .map(|a| a.location.as_str())
                .collect();
            let alone_locations: Vec<&str> = alone
                .library
                .aliases()
                .iter()
                .map(|a| a.location.as_str())
                .collect();
            assert_eq!(locations, alone_locations);
        }
        assert!(all[0].diagnostics.is_empty(), "{:?}", all[0].diagnostics);
        // 6.1 and 6.2 read every file alike: one library for both.
        let shared = sources
            .load_shared(vec![profile("5.10.0"), profile("6.1.0"), profile("6.2.0")])
            .unwrap();
        assert_eq!(
            (shared.distinct.len(), shared.of_kernel),
            (2, vec![0, 1, 1])
        );
        // A condition that needs its own file's macro is not evaluated
        // apart: that file is read for each kernel.
        write(
            "d.stp",
            "@define six %( \"6.0\" %)\n%( kernel_v >= @six %? probe d = begin {} %)\n",
        );
        let shared = sources
            .load_shared(vec![profile("6.1.0"), profile("6.2.0")])
            .unwrap();
        assert_eq!(shared.of_kernel, [0, 1]);
        assert_eq!(
            shared.distinct[1].library.alias_names(),
            ["a", "b", "c.new", "d"]
        );
        assert_eq!(all[0].library.alias_names(), ["a", "b", "c.old"]);
        assert_eq!(all[1].library.alias_names(), ["a", "b", "c.new"]);
        let m = std::fs::read_to_string(dir.path().join("m.stpm")).unwrap();
        let p = std::fs::read_to_string(dir.path().join("p.stpm")).unwrap();
        let conditional = ConditionalMacros::of(&[&m, &p]);
        assert_eq!(conditional.files_used_by("x = @new_kernel;"), [0]);
        assert!(conditional.files_used_by("@cast(p) @plain").is_empty());
    }
}
