//! Alias expansion and the built-in providers, against one kernel's facts.
//!
//! SystemTap's semantics: a probe's alternatives are tried in order; one
//! that resolves to nothing is an error unless marked `?` (optional) or `!`
//! (optional, and when it resolves the later alternatives are skipped). An
//! alias resolves when its own list does; a wildcard point resolves when
//! at least one alias or function it matches does.

use std::cell::{OnceCell, RefCell};
use std::collections::HashMap;

use rustc_hash::FxHashMap;

use tapmatrix_facts::{
    ConfigValue, FunctionPresence, KernelFacts, KernelModules, Tracepoint, clone_base,
};
use tapmatrix_syntax::profile::{Glob, fnmatch};

use crate::body::BodyTarget;
use crate::library::{AliasMatch, Library};
use crate::outcome::{AttachKind, AttachPoint, Found, Miss, Outcome, Reason};
use crate::point::{Arg, Component, ProbePoint, has_wildcard};
use crate::target::{TargetError, resolve_target};

/// How deep aliases may nest.
const MAX_DEPTH: usize = 32;

/// Resolves probe points of a library on one kernel.
#[derive(Debug, Clone)]
pub struct Resolver<'a> {
    library: &'a Library,
    facts: &'a KernelFacts,
    /// Trace events by name, built on first use.
    events_by_name: OnceCell<HashMap<&'a str, Vec<&'a Tracepoint>>>,
    /// What each point resolved to, by its components, with the depth it
    /// was resolved at: the same points recur under many aliases and rows.
    resolved: RefCell<FxHashMap<Vec<Component>, (usize, Resolved)>>,
    /// Why each target expression (by its text) does not resolve at each
    /// attach point (`None`: it does, or there is no evidence).
    targets: RefCell<FxHashMap<AttachPoint, FxHashMap<String, Option<Reason>>>>,
}

type Resolved = Result<Found, Vec<Miss>>;

/// Derived probes and the optional points that resolved to nothing, or misses.
type Derived = Result<(Vec<Derivation>, Vec<Miss>), Vec<Miss>>;

/// One derived probe, as SystemTap makes one per alias expansion path: the
/// path from a probe's own point through aliases down to a provider, and
/// what that provider attaches to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Derivation {
    /// From the probe's own point to the leaf: at each level, the index of
    /// the point in its list (the probe's points, then the matched alias's
    /// points) and the alias it matched (`None` at the leaf, a provider).
    pub path: Vec<DerivationStep>,
    /// The leaf probe point, alias suffixes applied.
    pub leaf: ProbePoint,
    /// What the leaf attaches to.
    pub attach: Vec<AttachPoint>,
}

/// One level of a [`Derivation`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DerivationStep {
    /// The index of the point in its list.
    pub point: usize,
    /// The alias it matched: an index into [`Library::aliases`].
    pub alias: Option<usize>,
}

impl<'a> Resolver<'a> {
    /// A resolver of `library`'s aliases on the kernel `facts` describes.
    pub fn new(library: &'a Library, facts: &'a KernelFacts) -> Resolver<'a> {
        Resolver {
            library,
            facts,
            events_by_name: OnceCell::new(),
            resolved: RefCell::default(),
            targets: RefCell::default(),
        }
    }

    /// Resolves a probe's alternatives, in order, with their marks.
    pub fn resolve_probe(&self, points: &[ProbePoint]) -> Outcome {
        match self.points(points, 0) {
            Ok(found) if !found.attach.is_empty() => Outcome::Resolved(found),
            Ok(found) => Outcome::OptionalMissing(found.optional_misses),
            Err(misses) => Outcome::Unresolved(misses),
        }
    }

    /// Resolves every definition of the alias `name` (a tapset row): each
    /// definition's own list must resolve, with its own marks.
    pub fn resolve_alias(&self, name: &str) -> Outcome {
        let mut found = Found::default();
        let mut failed = Vec::new();
        let mut defined = false;
        for alias in self.library.aliases_named(name) {
            defined = true;
            match self.points(&alias.points, 1) {
                Ok(one) => {
                    failed.extend(self.check_targets(&one.attach, &alias.targets));
                    found.extend(one);
                }
                Err(misses) => failed.extend(misses),
            }
        }
        if !defined {
            Outcome::Unresolved(vec![Miss {
                point: name.to_owned(),
                reason: Reason::NoSuchProbe,
            }])
        } else if !failed.is_empty() {
            Outcome::Unresolved(failed)
        } else if found.attach.is_empty() {
            Outcome::OptionalMissing(found.optional_misses)
        } else {
            Outcome::Resolved(found)
        }
    }

    /// The target expressions that do not resolve at these attach points,
    /// as misses (one per expression and reason). Kernels without BTF,
    /// and constructs not resolved offline, give no miss: no evidence.
    pub fn check_targets(&self, attach: &[AttachPoint], targets: &[BodyTarget]) -> Vec<Miss> {
        let mut misses: Vec<Miss> = Vec::new();
        if self.facts.btf.is_none() {
            return misses;
        }
        for point in attach {
            for target in targets {
                let known = self
                    .targets
                    .borrow()
                    .get(point)
                    .and_then(|by_text| by_text.get(&target.text).cloned());
                let reason = match known {
                    Some(reason) => reason,
                    None => {
                        let reason = self.target_miss(point, target);
                        self.targets
                            .borrow_mut()
                            .entry(point.clone())
                            .or_default()
                            .insert(target.text.clone(), reason.clone());
                        reason
                    }
                };
                let Some(reason) = reason else {
                    continue;
                };
                if !misses.iter().any(|m| m.reason == reason) {
                    misses.push(Miss {
                        point: point.probe_point(),
                        reason,
                    });
                }
            }
        }
        misses
    }

    /// Why `target` does not resolve at `point`; `None` when it does, or
    /// when there is no evidence (constructs not resolved offline).
    fn target_miss(&self, point: &AttachPoint, target: &BodyTarget) -> Option<Reason> {
        Some(match resolve_target(self.facts, point, &target.target) {
            Ok(_)
            | Err(
                TargetError::NoBtf { .. }
                | TargetError::Unsupported { .. }
                | TargetError::NoAddress { .. },
            ) => {
                return None;
            }
            Err(TargetError::NoVariable { name, available })
                if point.kind == AttachKind::Tracepoint =>
            {
                Reason::TracepointFieldMissing {
                    expr: format!("${name}"),
                    event: point.target.clone(),
                    available,
                }
            }
            Err(TargetError::NoVariable { name, available }) => Reason::TargetVarMissing {
                expr: format!("${name}"),
                available,
            },
            Err(TargetError::NoMember { type_name, member }) => Reason::MemberMissing {
                expr: target.text.clone(),
                type_name,
                member,
            },
            Err(error @ TargetError::BadAccess { .. }) => Reason::TargetRetyped {
                expr: target.text.clone(),
                message: error.to_string(),
            },
        })
    }

    /// Expands a probe's points into derived probes, one per alias
    /// expansion path, with the same `?`/`!`/wildcard semantics as
    /// [`Resolver::resolve_probe`]: `Err` holds the misses of a probe that
    /// does not resolve; an empty list is a probe whose every point was
    /// optional and missing.
    pub fn derive(&self, points: &[ProbePoint]) -> Result<Vec<Derivation>, Vec<Miss>> {
        self.derive_points(points, &[], 0)
            .map(|(derived, _)| derived)
    }

    fn derive_points(
        &self,
        points: &[ProbePoint],
        prefix: &[DerivationStep],
        depth: usize,
    ) -> Derived {
        let mut derived = Vec::new();
        let mut optional = Vec::new();
        let mut failed = Vec::new();
        for (index, point) in points.iter().enumerate() {
            match self.derive_point(point, index, prefix, depth) {
                Ok((one, misses)) if one.iter().any(|d| !d.attach.is_empty()) => {
                    derived.extend(one);
                    optional.extend(misses);
                    if point.sufficient {
                        break;
                    }
                }
                Ok((_, misses)) if point.optional => optional.extend(misses),
                Ok((_, misses)) => failed.extend(misses),
                Err(misses) if point.optional => optional.extend(misses),
                Err(misses) => failed.extend(misses),
            }
        }
        if failed.is_empty() {
            Ok((derived, optional))
        } else {
            Err(failed)
        }
    }

    fn derive_point(
        &self,
        point: &ProbePoint,
        index: usize,
        prefix: &[DerivationStep],
        depth: usize,
    ) -> Derived {
        if depth > MAX_DEPTH {
            return Err(vec![miss(point, Reason::TooDeep)]);
        }
        let step = |alias: Option<usize>| {
            let mut path = prefix.to_vec();
            path.push(DerivationStep {
                point: index,
                alias,
            });
            path
        };
        let aliases = self.library.matching(point);
        if aliases.is_empty() || self.provider_first(point, &aliases) {
            let found = self.builtin(point)?;
            let derivation = Derivation {
                path: step(None),
                leaf: point.clone(),
                attach: found.attach,
            };
            return Ok((vec![derivation], found.optional_misses));
        }
        let wildcard = point.has_wildcard();
        let mut derived = Vec::new();
        let mut optional = Vec::new();
        let mut misses = Vec::new();
        for matched in aliases {
            let alias = self
                .library
                .aliases()
                .iter()
                .position(|a| std::ptr::eq(a, matched.alias));
            let expansion: Vec<ProbePoint> = matched
                .alias
                .points
                .iter()
                .map(|p| p.with_suffix(matched.suffix))
                .collect();
            match self.derive_points(&expansion, &step(alias), depth + 1) {
                Ok((one, more)) => {
                    derived.extend(one);
                    optional.extend(more);
                }
                Err(more) if wildcard => optional.extend(more),
                Err(more) => misses.extend(more),
            }
        }
        if !misses.is_empty() {
            Err(misses)
        } else if wildcard && derived.iter().all(|d: &Derivation| d.attach.is_empty()) {
            Err(optional)
        } else {
            Ok((derived, optional))
        }
    }

    /// Resolves one (non-optional unless marked) probe point.
    pub fn resolve_point(&self, point: &ProbePoint) -> Outcome {
        self.resolve_probe(std::slice::from_ref(point))
    }

    fn points(&self, points: &[ProbePoint], depth: usize) -> Resolved {
        let mut found = Found::default();
        let mut failed = Vec::new();
        for point in points {
            match self.point(point, depth) {
                Ok(one) if !one.attach.is_empty() => {
                    found.extend(one);
                    if point.sufficient {
                        break;
                    }
                }
                Ok(empty) if point.optional => found.optional_misses.extend(empty.optional_misses),
                Ok(empty) => failed.extend(empty.optional_misses),
                Err(misses) if point.optional => found.optional_misses.extend(misses),
                Err(misses) => failed.extend(misses),
            }
        }
        if failed.is_empty() {
            Ok(found)
        } else {
            Err(failed)
        }
    }

    /// [`Resolver::point_uncached`], remembered. A point's resolution
    /// depends on its components alone, and on its depth only where the
    /// nesting limit was met: one resolved without meeting it resolves
    /// alike at any depth no deeper (more room), so that is what is reused.
    fn point(&self, point: &ProbePoint, depth: usize) -> Resolved {
        if let Some((at, resolved)) = self.resolved.borrow().get(&point.components)
            && depth <= *at
        {
            return resolved.clone();
        }
        let resolved = self.point_uncached(point, depth);
        if !too_deep(&resolved) {
            self.resolved
                .borrow_mut()
                .insert(point.components.clone(), (depth, resolved.clone()));
        }
        resolved
    }

    fn point_uncached(&self, point: &ProbePoint, depth: usize) -> Resolved {
        if depth > MAX_DEPTH {
            return Err(vec![miss(point, Reason::TooDeep)]);
        }
        let aliases = self.library.matching(point);
        if aliases.is_empty() || self.provider_first(point, &aliases) {
            return self.builtin(point);
        }
        let wildcard = point.has_wildcard();
        let mut found = Found::default();
        let mut misses = Vec::new();
        for matched in aliases {
            let expansion: Vec<ProbePoint> = matched
                .alias
                .points
                .iter()
                .map(|p| p.with_suffix(matched.suffix))
                .collect();
            match self.points(&expansion, depth + 1) {
                Ok(one) => found.extend(one),
                Err(more) if wildcard => found.optional_misses.extend(more),
                Err(more) => misses.extend(more),
            }
        }
        if !misses.is_empty() {
            Err(misses)
        } else if wildcard && found.attach.is_empty() {
            Err(std::mem::take(&mut found.optional_misses))
        } else {
            Ok(found)
        }
    }

    /// The providers SystemTap builds in.
    /// Whether a provider serves `point` itself where aliases match only
    /// a prefix of it: as in SystemTap's match tree, the longer builtin
    /// name wins over an alias suffix (`timer.profile.tick` is the timer,
    /// not SystemTap's `timer.profile` alias with `.tick` appended, which
    /// expanded to itself again).
    fn provider_first(&self, point: &ProbePoint, aliases: &[AliasMatch<'_>]) -> bool {
        aliases.iter().all(|m| !m.suffix.is_empty()) && self.builtin(point).is_ok()
    }

    fn builtin(&self, point: &ProbePoint) -> Resolved {
        let c = &point.components;
        let name = |i: usize| c.get(i).map_or("", |c| c.name.as_str());
        let bad = |message: String| Err(vec![miss(point, Reason::BadPoint { message })]);
        match name(0) {
            // `init` runs before every `begin` probe (SystemTap's tapsets
            // fill `argv[]` there): a begin probe of the lowest sequence.
            "begin" | "end" | "error" | "init" if c.len() == 1 => {
                let kind = match name(0) {
                    "begin" | "init" => AttachKind::Begin,
                    "end" => AttachKind::End,
                    _ => AttachKind::Error,
                };
                Ok(found(point, vec![AttachPoint::new(kind, "")]))
            }
            "never" if c.len() == 1 => {
                Ok(found(point, vec![AttachPoint::new(AttachKind::Never, "")]))
            }
            "timer" => self.timer(point),
            "perf" => self.perf(point),
            "kernel" => match (name(1), c.get(1).and_then(|c| c.arg.as_ref())) {
                ("function", Some(Arg::String(pattern))) => {
                    self.function(point, pattern, None, &c[2..], true)
                }
                ("trace", Some(Arg::String(pattern))) if c.len() == 2 => self.trace(point, pattern),
                ("statement", _) => Err(vec![miss(
                    point,
                    Reason::NeedsDwarf {
                        what: "kernel.statement".to_owned(),
                    },
                )]),
                ("data", _) => unsupported(point, "kernel.data"),
                _ => bad(format!(
                    "kernel.{} is not a probe point kernel.function(\"f\"), kernel.trace(\"e\") or kernel.statement(...)",
                    name(1)
                )),
            },
            "kprobe" => {
                let (module, rest) = match (name(1), c.get(1).and_then(|c| c.arg.as_ref())) {
                    ("module", Some(Arg::String(module))) => (Some(module.as_str()), &c[2..]),
                    _ => (None, &c[1..]),
                };
                match rest.first() {
                    Some(Component {
                        name,
                        arg: Some(Arg::String(function)),
                    }) if name == "function" => {
                        self.function(point, function, module, &rest[1..], false)
                    }
                    _ => bad(
                        "expected kprobe.function(\"f\") or kprobe.module(\"m\").function(\"f\")"
                            .to_owned(),
                    ),
                }
            }
            "module" => match (c[0].arg.as_ref(), c.get(1)) {
                (
                    Some(Arg::String(module)),
                    Some(Component {
                        name,
                        arg: Some(Arg::String(function)),
                    }),
                ) if name == "function" => {
                    self.function(point, function, Some(module), &c[2..], true)
                }
                (Some(Arg::String(_)), Some(Component { name, .. })) if name == "statement" => {
                    Err(vec![miss(
                        point,
                        Reason::NeedsDwarf {
                            what: "module(...).statement".to_owned(),
                        },
                    )])
                }
                _ => bad("expected module(\"m\").function(\"f\")".to_owned()),
            },
            provider @ ("process" | "netfilter" | "procfs" | "java" | "python2" | "python3"
            | "hrtimer" | "kprobe_multi" | "uprobe" | "itrace" | "insn" | "mark") => {
                unsupported(point, provider)
            }
            _ => Err(vec![miss(point, Reason::NoSuchProbe)]),
        }
    }

    fn timer(&self, point: &ProbePoint) -> Resolved {
        let c = &point.components;
        let bad = |message: &str| {
            Err(vec![miss(
                point,
                Reason::BadPoint {
                    message: message.to_owned(),
                },
            )])
        };
        let positive = |c: &Component| matches!(c.arg, Some(Arg::Number(n)) if n > 0);
        match c.get(1) {
            Some(unit)
                if matches!(
                    unit.name.as_str(),
                    "s" | "sec" | "ms" | "msec" | "us" | "usec" | "ns" | "nsec" | "hz" | "jiffies"
                ) =>
            {
                if !positive(unit) {
                    return bad("a timer needs a positive number: timer.ms(100)");
                }
                match c.get(2) {
                    None => {}
                    Some(r) if r.name == "randomize" && positive(r) && c.len() == 3 => {}
                    Some(_) => return bad("after timer.UNIT(N) only .randomize(N) may follow"),
                }
            }
            Some(profile) if profile.name == "profile" && profile.arg.is_none() => {
                if !(c.len() == 2 || (c.len() == 3 && c[2].name == "tick" && c[2].arg.is_none())) {
                    return bad("expected timer.profile or timer.profile.tick");
                }
            }
            _ => return bad("expected timer.s/ms/us/ns/hz/jiffies(N) or timer.profile"),
        }
        Ok(found(
            point,
            vec![AttachPoint::new(AttachKind::Timer, point.bare())],
        ))
    }

    fn perf(&self, point: &ProbePoint) -> Resolved {
        let c = &point.components;
        let number = |i: usize, name: &str| {
            c.get(i)
                .filter(|c| c.name == name)
                .and_then(|c| match c.arg {
                    Some(Arg::Number(n)) => Some(n),
                    _ => None,
                })
        };
        if number(1, "type").is_none() || number(2, "config").is_none() {
            return Err(vec![miss(
                point,
                Reason::BadPoint {
                    message: "expected perf.type(N).config(M)".to_owned(),
                },
            )]);
        }
        let configured = self
            .facts
            .config
            .as_ref()
            .and_then(|c| c.get("PERF_EVENTS"));
        let enabled = match configured {
            Some(value) => Some(matches!(value, ConfigValue::Yes | ConfigValue::Module)),
            None => self
                .facts
                .syscalls
                .as_ref()
                .map(|_| self.facts.syscall("perf_event_open").is_some()),
        };
        match enabled {
            Some(true) => Ok(found(
                point,
                vec![AttachPoint::new(AttachKind::Perf, point.bare())],
            )),
            Some(false) => Err(vec![miss(
                point,
                Reason::FeatureMissing {
                    feature: "perf events (CONFIG_PERF_EVENTS)".to_owned(),
                },
            )]),
            None => Err(vec![miss(
                point,
                Reason::FactsMissing {
                    what: "the config and the syscall list".to_owned(),
                },
            )]),
        }
    }

    /// `kernel.function`, `kprobe.function` and `module(...).function`.
    fn function(
        &self,
        point: &ProbePoint,
        pattern: &str,
        module: Option<&str>,
        rest: &[Component],
        dwarf_style: bool,
    ) -> Resolved {
        let fail = |reason: Reason| Err(vec![miss(point, reason)]);
        let (name, place) = match pattern.split_once('@') {
            Some((name, place)) => (name, Some(place)),
            None => (pattern, None),
        };
        if place.is_some_and(|place| place.contains(':')) {
            return fail(Reason::NeedsDwarf {
                what: format!("the source line in \"{pattern}\""),
            });
        }
        let mut kind = AttachKind::Kprobe;
        let mut maxactive = None;
        let mut exported = false;
        let mut index = 0;
        while let Some(component) = rest.get(index) {
            match (component.name.as_str(), &component.arg) {
                ("call", None) => {}
                ("exported", None) if dwarf_style => exported = true,
                ("return", None) => kind = AttachKind::Kretprobe,
                ("maxactive", Some(Arg::Number(n))) if kind == AttachKind::Kretprobe => {
                    // SystemTap's range for a kretprobe's instances.
                    if !(0..=i64::from(u16::MAX)).contains(n) {
                        return fail(Reason::BadPoint {
                            message: format!("maxactive value out of range [0,{}]: {n}", u16::MAX),
                        });
                    }
                    maxactive = u32::try_from(*n).ok();
                }
                ("inline" | "label" | "callee" | "callees" | "statement", _) if dwarf_style => {
                    return fail(Reason::NeedsDwarf {
                        what: format!(".{}", component.name),
                    });
                }
                _ => {
                    return fail(Reason::BadPoint {
                        message: format!("unexpected .{} here", component.name),
                    });
                }
            }
            index += 1;
        }
        let Some(functions) = &self.facts.functions else {
            return fail(Reason::FactsMissing {
                what: "available_filter_functions".to_owned(),
            });
        };
        let attach = |target: &str, clone_of: Option<&str>, module: Option<&str>| AttachPoint {
            kind,
            target: target.to_owned(),
            module: module.map(str::to_owned),
            clone_of: clone_of.map(str::to_owned),
            maxactive,
        };
        let global = |target: &str| {
            self.facts.kallsyms.as_ref().is_some_and(|symbols| {
                symbols.binding(target) == Some(tapmatrix_facts::Binding::Global)
            })
        };
        if let Some(module_pattern) = module {
            let points = self.module_functions(module_pattern, name, pattern, &|target, module| {
                attach(target, None, Some(module))
            });
            return match points {
                Ok(points) => Ok(found(point, points)),
                Err(reason) => fail(reason),
            };
        }
        if has_wildcard(name) && place.is_some() {
            return fail(Reason::NeedsDwarf {
                what: format!("the functions of a source file (\"{pattern}\")"),
            });
        }
        if has_wildcard(name) {
            let prefix = &name[..name.find(['*', '?', '[']).unwrap_or(name.len())];
            let glob = Glob::new(name);
            // The names that can match: those with the pattern's literal
            // prefix, else those holding its longest literal piece (a clone
            // holds whatever its base holds); a scan of every name only for
            // a pattern with no literal at all.
            let candidates: Box<dyn Iterator<Item = &str>> = if !prefix.is_empty() {
                Box::new(functions.names.with_prefix(prefix))
            } else {
                Box::new(functions.names.containing(longest_literal(name)))
            };
            let points: Vec<AttachPoint> = candidates
                .filter_map(|target| {
                    let base = clone_base(target).unwrap_or(target);
                    (glob.matches(base)
                        && !self.blacklisted(target)
                        && (!exported || global(target)))
                    .then(|| attach(target, (base != target).then_some(base), None))
                })
                .collect();
            if points.is_empty() {
                return fail(Reason::NothingMatched {
                    pattern: pattern.to_owned(),
                });
            }
            return Ok(found(point, points));
        }
        match self.facts.function_presence(name) {
            FunctionPresence::Attachable if exported && !global(name) => {
                fail(Reason::NotExported {
                    function: name.to_owned(),
                })
            }
            FunctionPresence::Attachable => Ok(found(point, vec![attach(name, None, None)])),
            FunctionPresence::Blacklisted => fail(Reason::Blacklisted {
                function: name.to_owned(),
            }),
            FunctionPresence::Clones(clones) => fail(Reason::ClonesOnly {
                function: name.to_owned(),
                clones: clones.into_iter().map(str::to_owned).collect(),
            }),
            FunctionPresence::SymbolOnly => fail(Reason::SymbolOnly {
                function: name.to_owned(),
            }),
            FunctionPresence::Absent => fail(Reason::FunctionAbsent {
                function: name.to_owned(),
            }),
            FunctionPresence::Unknown => fail(Reason::FactsMissing {
                what: "available_filter_functions".to_owned(),
            }),
        }
    }

    /// The attach points of `module("m").function("f")`: from the symbols
    /// of loaded modules where the harvest saw the module, else from the
    /// kernel's modules tree, read offline ([`tapmatrix_facts::modules`]).
    fn module_functions(
        &self,
        module_pattern: &str,
        name: &str,
        pattern: &str,
        attach: &dyn Fn(&str, &str) -> AttachPoint,
    ) -> Result<Vec<AttachPoint>, Reason> {
        let nothing = |absent: Reason| {
            if has_wildcard(name) {
                Reason::NothingMatched {
                    pattern: pattern.to_owned(),
                }
            } else {
                absent
            }
        };
        let absent = || Reason::FunctionAbsent {
            function: name.to_owned(),
        };
        let loaded: Vec<_> = self
            .facts
            .kallsyms
            .iter()
            .flat_map(|symbols| &symbols.modules)
            .filter(|s| glob_match(module_pattern, &s.module))
            .collect();
        if !loaded.is_empty() {
            let functions = self.facts.functions.as_ref();
            let points: Vec<AttachPoint> = loaded
                .iter()
                .filter(|s| glob_match(name, &s.name))
                .filter(|s| functions.is_some_and(|f| f.contains(&s.name)))
                .filter(|s| !self.blacklisted(&s.name))
                .map(|s| attach(&s.name, &s.module))
                .collect();
            return if points.is_empty() {
                Err(nothing(absent()))
            } else {
                Ok(points)
            };
        }
        let facts_missing = |what: String| Reason::FactsMissing { what };
        let tree = match &self.facts.modules {
            KernelModules::Tree(tree) => tree,
            KernelModules::Missing(reason) => {
                return Err(facts_missing(format!("module facts ({reason})")));
            }
            KernelModules::Unknown => {
                return Err(facts_missing(
                    "module facts (run `tapmatrix kernels fetch` and `tapmatrix kernels harvest`)"
                        .to_owned(),
                ));
            }
        };
        let unreadable = |error: tapmatrix_facts::ModuleError| facts_missing(error.to_string());
        let modules: Vec<String> = if has_wildcard(module_pattern) {
            tree.names()
                .map_err(unreadable)?
                .filter(|m| fnmatch(module_pattern, m))
                .map(str::to_owned)
                .collect()
        } else {
            // SystemTap takes module("nf-conntrack") as nf_conntrack.
            let canonical = module_pattern.replace('-', "_");
            match tree.file(&canonical).map_err(unreadable)? {
                Some(_) => vec![canonical],
                None => Vec::new(),
            }
        };
        if modules.is_empty() {
            let builtin = !has_wildcard(module_pattern)
                && tree
                    .is_builtin(&module_pattern.replace('-', "_"))
                    .map_err(unreadable)?;
            let module = module_pattern.to_owned();
            return Err(if builtin {
                Reason::ModuleBuiltin { module }
            } else {
                Reason::ModuleNotBuilt { module }
            });
        }
        let mut points = Vec::new();
        let mut why_absent = absent();
        for module_name in &modules {
            let Some(module) = self.facts.module(module_name).map_err(unreadable)? else {
                continue;
            };
            if has_wildcard(name) {
                let glob = Glob::new(name);
                points.extend(
                    module
                        .functions
                        .iter()
                        .filter(|f| glob.matches(f) && !self.blacklisted(f))
                        .map(|f| attach(f, module_name)),
                );
            } else if module.is_traceable(name) {
                if self.blacklisted(name) {
                    why_absent = Reason::Blacklisted {
                        function: name.to_owned(),
                    };
                } else {
                    points.push(attach(name, module_name));
                }
            } else {
                let clones: Vec<String> = module
                    .functions
                    .iter()
                    .filter(|f| clone_base(f) == Some(name))
                    .cloned()
                    .collect();
                if !clones.is_empty() {
                    why_absent = Reason::ClonesOnly {
                        function: name.to_owned(),
                        clones,
                    };
                } else if module.is_untraceable_symbol(name) {
                    why_absent = Reason::SymbolOnly {
                        function: name.to_owned(),
                    };
                }
            }
        }
        if points.is_empty() {
            return Err(nothing(why_absent));
        }
        Ok(points)
    }

    fn blacklisted(&self, name: &str) -> bool {
        self.facts
            .blacklist
            .as_ref()
            .is_some_and(|list| list.contains(name))
    }

    /// `kernel.trace("system:event")` or `kernel.trace("event")`.
    fn trace(&self, point: &ProbePoint, pattern: &str) -> Resolved {
        let Some(tracepoints) = &self.facts.tracepoints else {
            return Err(vec![miss(
                point,
                Reason::FactsMissing {
                    what: "the trace events".to_owned(),
                },
            )]);
        };
        let (system, event) = match pattern.split_once(':') {
            Some((system, event)) => (system, event),
            None => ("*", pattern),
        };
        let candidates: Vec<&Tracepoint> = if has_wildcard(event) {
            tracepoints.iter().collect()
        } else {
            let by_name = self.events_by_name.get_or_init(|| {
                let mut map: HashMap<&str, Vec<&Tracepoint>> = HashMap::new();
                for tp in tracepoints {
                    map.entry(tp.name.as_str()).or_default().push(tp);
                }
                map
            });
            by_name.get(event).cloned().unwrap_or_default()
        };
        let points: Vec<AttachPoint> = candidates
            .into_iter()
            .filter(|tp| glob_match(event, &tp.name) && glob_match(system, &tp.system))
            .map(|tp| {
                AttachPoint::new(AttachKind::Tracepoint, format!("{}:{}", tp.system, tp.name))
            })
            .collect();
        if points.is_empty() {
            let reason = if has_wildcard(pattern) {
                Reason::NothingMatched {
                    pattern: pattern.to_owned(),
                }
            } else {
                Reason::TracepointAbsent {
                    event: pattern.to_owned(),
                }
            };
            return Err(vec![miss(point, reason)]);
        }
        Ok(found(point, points))
    }
}

/// Whether the nesting limit was met anywhere in a resolution.
fn too_deep(resolved: &Resolved) -> bool {
    let misses = match resolved {
        Ok(found) => &found.optional_misses,
        Err(misses) => misses,
    };
    misses.iter().any(|miss| miss.reason == Reason::TooDeep)
}

/// The longest run of `pattern` that every match holds as written: a piece
/// between wildcards (`*`, `?`); none (empty) when it has a `[...]` class,
/// whose pieces this does not read.
fn longest_literal(pattern: &str) -> &str {
    if pattern.contains('[') {
        return "";
    }
    pattern
        .split(['*', '?'])
        .max_by_key(|piece| piece.len())
        .unwrap_or("")
}

/// `fnmatch`, with plain string equality for a pattern without wildcards.
fn glob_match(pattern: &str, text: &str) -> bool {
    if has_wildcard(pattern) {
        fnmatch(pattern, text)
    } else {
        pattern == text
    }
}

fn miss(point: &ProbePoint, reason: Reason) -> Miss {
    Miss {
        point: point.bare(),
        reason,
    }
}

fn found(point: &ProbePoint, attach: Vec<AttachPoint>) -> Found {
    Found {
        attach,
        alternatives: vec![point.bare()],
        optional_misses: Vec::new(),
    }
}

fn unsupported(point: &ProbePoint, provider: &str) -> Resolved {
    Err(vec![miss(
        point,
        Reason::Unsupported {
            provider: provider.to_owned(),
        },
    )])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::fixture;
    use tapmatrix_syntax::{FileKind, Profile, Session};

    /// A library of one script, its AST kept.
    fn library(text: &str) -> Library {
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
        library.add_kept(
            std::sync::Arc::new(parsed.file),
            session.sources(),
            true,
            crate::library::SCRIPT_LAYER,
        );
        library
    }
    #[test]
    fn derive_gives_one_path_per_alias_expansion() {
        let k61 = fixture("6.1");
        let lib = library(
            "probe inner = kernel.function(\"vfs_read\"), kernel.function(\"no_such_fn\")? { }\n\
             probe outer = inner if (1), begin { }\n\
             probe other = kernel.function(\"vfs_write\") { }\n\
             probe outer {}\n",
        );
        let resolver = Resolver::new(&lib, &k61);
        let derived = resolver.derive(&lib.probes[0].points).unwrap();
        let paths: Vec<Vec<(usize, Option<usize>)>> = derived
            .iter()
            .map(|d| d.path.iter().map(|s| (s.point, s.alias)).collect())
            .collect();
        // outer (alias 1) -> point 0: inner (alias 0) -> point 0: vfs_read;
        // outer -> point 1: begin. The optional missing point derives nothing.
        assert_eq!(
            paths,
            [
                vec![(0, Some(1)), (0, Some(0)), (0, None)],
                vec![(0, Some(1)), (1, None)]
            ]
        );
        assert_eq!(derived[0].attach[0].target, "vfs_read");
        assert_eq!(derived[0].leaf.bare(), "kernel.function(\"vfs_read\")");
        assert_eq!(derived[1].attach[0].kind, AttachKind::Begin);
        let (alias, file) = lib.alias_ast(&lib.aliases()[1]).unwrap();
        assert!(alias.points[0].condition.is_some());
        assert_eq!(file.names.location(alias.span), "t.stp:2:1");
        assert!(lib.probe_ast(&lib.probes[0]).is_some());
        let missing = ProbePoint::parse("kernel.function(\"no_such_fn\")").unwrap();
        assert!(resolver.derive(&[missing]).is_err());
    }
}

#[cfg(test)]
mod wildcard_tests {
    use super::*;
    use crate::tests::fixture;

    #[test]
    fn longest_literal_piece() {
        assert_eq!(longest_literal("*sys_open"), "sys_open");
        assert_eq!(longest_literal("__*_compat_sys_open"), "_compat_sys_open");
        assert_eq!(longest_literal("a?bcd*ef"), "bcd");
        assert_eq!(longest_literal("*"), "");
        assert_eq!(longest_literal("*[ab]cdef"), "");
    }

    /// A wildcard without a prefix finds what a scan of every function
    /// finds, clones included (matched by their base).
    #[test]
    fn wildcard_without_prefix_matches_a_full_scan() {
        let facts = fixture("6.1");
        let library = Library::default();
        let resolver = Resolver::new(&library, &facts);
        let Some(functions) = &facts.functions else {
            panic!("the 6.1 fixture has available_filter_functions");
        };
        for pattern in ["*sys_read", "*read*", "*_?ead", "*", "*[rw]rite"] {
            let point = ProbePoint::parse(&format!("kernel.function(\"{pattern}\")")).unwrap();
            let glob = Glob::new(pattern);
            let mut expected: Vec<&str> = functions
                .names
                .iter()
                .filter(|name| glob.matches(clone_base(name).unwrap_or(name)))
                .filter(|name| !resolver.blacklisted(name))
                .collect();
            let mut got: Vec<String> = match resolver.resolve_point(&point) {
                Outcome::Resolved(found) => found.attach.into_iter().map(|a| a.target).collect(),
                _ => Vec::new(),
            };
            expected.sort_unstable();
            got.sort_unstable();
            assert!(
                !expected.is_empty(),
                "{pattern} matches something in the fixture"
            );
            assert_eq!(got, expected, "{pattern}");
        }
    }
}
