//! The alias table and the script's probes: what tapset files and a script
//! define, with where, read for one kernel's profile (preprocessor
//! conditionals depend on the kernel).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use tapmatrix_facts::KernelFacts;
use tapmatrix_syntax::ast::{self, AliasKind, Item};
use tapmatrix_syntax::{FileKind, Profile, Session, SourceMap, Span, tapset_files};

use crate::body::{BodyTarget, block_targets};
use crate::point::{Component, ProbePoint, has_wildcard};

/// A probe alias: `probe NAME = POINTS { prologue }` or `+=` (epilogue).
#[derive(Debug, Clone)]
pub struct Alias {
    /// The name it defines (its components).
    pub name: ProbePoint,
    /// `=` (prologue) or `+=` (epilogue).
    pub kind: AliasKind,
    /// What it expands to, in order.
    pub points: Vec<ProbePoint>,
    /// A second body: `probe a = b { prologue }, { epilogue }`.
    pub has_epilogue: bool,
    /// `file:line:col` of its `probe` keyword.
    pub location: String,
    /// The target expressions its bodies read unguarded.
    pub targets: Vec<BodyTarget>,
}

/// A probe of the script: `probe POINTS { ... }`.
#[derive(Debug, Clone)]
pub struct ScriptProbe {
    /// Its alternatives, in order.
    pub points: Vec<ProbePoint>,
    /// `file:line:col` of its `probe` keyword.
    pub location: String,
    /// The target expressions its body reads unguarded.
    pub targets: Vec<BodyTarget>,
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
    by_name: HashMap<String, Vec<usize>>,
    /// Alias indexes by component names without arguments (`syscall.read`).
    by_names: HashMap<String, Vec<usize>>,
    /// Alias indexes by first component name (`syscall`).
    by_first: HashMap<String, Vec<usize>>,
    /// The script's probes (empty for a tapset directory alone).
    pub probes: Vec<ScriptProbe>,
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
    /// Adds the aliases (and, for the script, the probes) of one parsed file.
    pub fn add_file(&mut self, file: &ast::File, sources: &SourceMap, script: bool) {
        let location = |span: Span| sources.location(span).to_string();
        for item in &file.items {
            match item {
                Item::Alias(alias) => {
                    let points: Vec<ProbePoint> =
                        alias.points.iter().map(ProbePoint::from_ast).collect();
                    let mut targets = block_targets(&alias.body);
                    if let Some(epilogue) = &alias.epilogue {
                        targets.extend(block_targets(epilogue));
                    }
                    for name in &alias.names {
                        self.push_alias(Alias {
                            name: ProbePoint::from_ast(name),
                            kind: alias.kind,
                            points: points.clone(),
                            has_epilogue: alias.epilogue.is_some(),
                            location: location(alias.span),
                            targets: targets.clone(),
                        });
                    }
                }
                Item::Probe(probe) if script => self.probes.push(ScriptProbe {
                    points: probe.points.iter().map(ProbePoint::from_ast).collect(),
                    location: location(probe.span),
                    targets: block_targets(&probe.body),
                }),
                _ => {}
            }
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
        let config_name = |name: &str| format!("CONFIG_{name}");
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
    /// The user's script.
    pub script: Option<PathBuf>,
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
    /// Reads and parses everything for one profile.
    pub fn load(&self, profile: Profile) -> Result<Loaded, LoadError> {
        let mut session = Session::new(profile, &[]);
        let mut library = Library::default();
        let mut diagnostics = Vec::new();
        let read_error = |path: &Path| {
            let path = path.to_owned();
            move |source| LoadError::Read { path, source }
        };
        let mut scripts = Vec::new();
        for dir in &self.tapset_dirs {
            let files = tapset_files(dir, session.profile()).map_err(read_error(dir))?;
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
            scripts.extend(files.scripts);
        }
        let mut parse = |path: &Path, script: bool| -> Result<(), LoadError> {
            let id = session.load(path).map_err(|e| LoadError::Read {
                path: path.to_owned(),
                source: std::io::Error::other(e.to_string()),
            })?;
            let parsed = session.parse(
                id,
                FileKind {
                    privileged: !script,
                    user_file: script,
                },
            );
            let clean = parsed.diagnostics.is_empty();
            diagnostics.extend(parsed.diagnostics.iter().map(|d| LoadDiagnostic {
                in_script: script,
                rendered: d.render(session.sources()),
            }));
            if clean || script {
                library.add_file(&parsed.file, session.sources(), script);
            }
            Ok(())
        };
        for path in &scripts {
            parse(path, false)?;
        }
        if let Some(script) = &self.script {
            parse(script, true)?;
        }
        Ok(Loaded {
            library,
            diagnostics,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn library(text: &str) -> Library {
        let mut session = Session::new(Profile::default(), &[]);
        let id = session.add_source("t.stp", text);
        let parsed = session.parse(
            id,
            FileKind {
                privileged: true,
                user_file: true,
            },
        );
        assert!(parsed.diagnostics.is_empty(), "{:?}", parsed.diagnostics);
        let mut library = Library::default();
        library.add_file(&parsed.file, session.sources(), true);
        library
    }

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
}
