//! Derived probes: one per alias expansion path, with its composed
//! handler pieces and guard conditions.

use std::collections::HashSet;

use tapmatrix_facts::KernelFacts;
use tapmatrix_ir as ir;
use tapmatrix_resolve::{Arg, AttachKind, AttachPoint, Derivation, Resolver};
use tapmatrix_syntax::ast;

use super::symbols::writes_of_block;
use super::{DerivedProbe, Elab};
use crate::Construct;
use crate::error::ElaborateError;

impl<'a> Elab<'a> {
    pub(super) fn derive_probes(&mut self, facts: &KernelFacts) -> Vec<DerivedProbe<'a>> {
        let lib = self.lib;
        let resolver = Resolver::new(lib, facts);
        let mut out = Vec::new();
        for probe in &lib.probes {
            let Some((ast_probe, _)) = lib.probe_ast(probe) else {
                self.push_error(
                    ElaborateError::new(
                        "the script was loaded without its syntax tree",
                        probe.location.clone(),
                    )
                    .with_hint("load the sources with Sources::load (Sources::load_all keeps no syntax trees)"),
                );
                continue;
            };
            let derivations = match resolver.derive(&probe.points) {
                Ok(derivations) => derivations,
                Err(misses) => {
                    let reasons: Vec<String> = misses
                        .iter()
                        .map(|m| format!("{}: {}", m.point, m.reason))
                        .collect();
                    self.push_error(
                        ElaborateError::new(
                            format!(
                                "probe point mismatch: '{}' resolves to nothing on this kernel ({})",
                                probe.label(),
                                reasons.join("; ")
                            ),
                            probe.location.clone(),
                        )
                        .with_hint(
                            "mark the point optional with '?', or see `tapmatrix resolve` for alternatives",
                        ),
                    );
                    continue;
                }
            };
            for derivation in derivations {
                if let Some(derived) = self.derived(probe.file, ast_probe, &derivation) {
                    out.push(derived);
                }
            }
        }
        out
    }

    /// The probes of the tapset files the program uses now and did not
    /// before (`pulled`, by file index): as in SystemTap, a tapset file's
    /// own probes (`probe init` of the argv tapset) join the program with
    /// the file, once one of its globals or functions is used.
    pub(super) fn derive_tapset_probes(
        &mut self,
        facts: &KernelFacts,
        pulled: &mut HashSet<usize>,
    ) -> Vec<DerivedProbe<'a>> {
        let lib = self.lib;
        let mut used: Vec<usize> = self
            .sym
            .globals
            .iter()
            .filter(|g| g.used && !g.script)
            .map(|g| g.file)
            .chain(
                self.sym
                    .functions
                    .iter()
                    .filter(|f| f.reached.is_some() && !f.script)
                    .map(|f| f.file),
            )
            .filter(|file| !pulled.contains(file))
            .collect();
        used.sort_unstable();
        used.dedup();
        let resolver = Resolver::new(lib, facts);
        let mut out = Vec::new();
        for file in used {
            pulled.insert(file);
            let Some(parsed) = lib.files.get(file) else {
                continue;
            };
            for item in &parsed.ast.items {
                let ast::Item::Probe(probe) = item else {
                    continue;
                };
                let points: Vec<tapmatrix_resolve::ProbePoint> = probe
                    .points
                    .iter()
                    .map(tapmatrix_resolve::ProbePoint::from_ast)
                    .collect();
                let derivations = match resolver.derive(&points) {
                    Ok(derivations) => derivations,
                    Err(misses) => {
                        let reasons: Vec<String> = misses
                            .iter()
                            .map(|m| format!("{}: {}", m.point, m.reason))
                            .collect();
                        self.push_error(ElaborateError::new(
                            format!(
                                "probe point mismatch: a probe of a tapset file this script uses resolves to nothing on this kernel ({})",
                                reasons.join("; ")
                            ),
                            parsed.names.location(probe.span),
                        ));
                        continue;
                    }
                };
                for derivation in derivations {
                    if let Some(derived) = self.derived(file, probe, &derivation) {
                        out.push(derived);
                    }
                }
            }
        }
        out
    }

    /// The derived probe of one derivation (`None` for `never`, or on error).
    pub(super) fn derived(
        &mut self,
        script_file: usize,
        probe: &'a ast::Probe,
        derivation: &Derivation,
    ) -> Option<DerivedProbe<'a>> {
        let lib = self.lib;
        let mut conditions = Vec::new();
        let mut prologues = Vec::new();
        let mut epilogues = Vec::new();
        let mut points: &'a [ast::ProbePoint] = &probe.points;
        let mut file = script_file;
        let name = derivation
            .path
            .first()
            .and_then(|step| probe.points.get(step.point))
            .map(|p| tapmatrix_resolve::ProbePoint::from_ast(p).bare())
            .unwrap_or_default();
        for step in &derivation.path {
            if let Some(cond) = points.get(step.point).and_then(|p| p.condition.as_ref()) {
                self.body.file = file;
                self.report = true;
                self.check_condition(cond);
                self.report = false;
                conditions.push((cond, file));
            }
            let Some(alias_index) = step.alias else {
                break;
            };
            let (alias, _) = lib
                .aliases()
                .get(alias_index)
                .and_then(|alias| lib.alias_ast(alias))?;
            let alias_file = lib.aliases().get(alias_index).map_or(0, |a| a.file);
            match alias.kind {
                ast::AliasKind::Prologue => {
                    prologues.push((&alias.body, alias_file));
                    if let Some(epilogue) = &alias.epilogue {
                        epilogues.push((epilogue, alias_file));
                    }
                }
                ast::AliasKind::Epilogue => epilogues.push((&alias.body, alias_file)),
            }
            points = &alias.points;
            file = alias_file;
        }
        // As SystemTap derives an alias (prologue: alias body then the
        // probe's; epilogue: the probe's then the alias body) level by
        // level: the innermost prologue runs first, the innermost epilogue
        // last.
        let mut pieces: Vec<(&'a ast::Block, usize)> = prologues.into_iter().rev().collect();
        pieces.push((&probe.body, script_file));
        pieces.extend(epilogues);
        let leaf = &derivation.leaf;
        let mut profile = None;
        let kind = match derivation.attach.first().map(|a| a.kind) {
            Some(AttachKind::Never) | None => return None,
            Some(kind @ (AttachKind::Begin | AttachKind::End | AttachKind::Error)) => {
                let seq = match leaf.components.first() {
                    Some(c) if c.name == "init" => i64::MIN,
                    Some(c) => match &c.arg {
                        Some(Arg::Number(n)) => *n,
                        _ => 0,
                    },
                    None => 0,
                };
                match kind {
                    AttachKind::Begin => ir::ProbeKind::Begin { seq },
                    AttachKind::End => ir::ProbeKind::End { seq },
                    _ => ir::ProbeKind::Error { seq },
                }
            }
            Some(AttachKind::Timer) => match timer_kind(leaf, kernel_hz(self.facts)) {
                Ok(Timer::Profile) => {
                    self.body.file = script_file;
                    self.report = true;
                    let served = self.serves(Construct::ProfileTimer, "", probe.span);
                    self.report = false;
                    if !served {
                        return None;
                    }
                    // The profiling tick: the software cpu-clock perf event
                    // on every CPU at the kernel's tick rate.
                    profile = Some(AttachPoint::new(
                        AttachKind::Perf,
                        format!("perf.type(1).config(0).hz({})", kernel_hz(self.facts)),
                    ));
                    ir::ProbeKind::Event
                }
                Ok(Timer::Periodic(kind)) => kind,
                Err(message) => {
                    self.body.file = script_file;
                    self.report = true;
                    self.error(
                        probe.span,
                        format!("{message}: '{}'", leaf.bare()),
                        Some("use timer.s/ms/us/ns/hz/jiffies(N), optionally .randomize(N), or timer.profile"),
                    );
                    self.report = false;
                    return None;
                }
            },
            Some(AttachKind::Perf) => {
                self.body.file = script_file;
                self.report = true;
                let served = match perf_check(leaf) {
                    Ok(()) => self.serves(Construct::PerfProbe, &leaf.bare(), probe.span),
                    Err(message) => {
                        self.error(
                            probe.span,
                            format!("{message}: '{}'", leaf.bare()),
                            Some("write perf.type(T).config(C), optionally .sample(N) or .hz(N)"),
                        );
                        false
                    }
                };
                self.report = false;
                if !served {
                    return None;
                }
                ir::ProbeKind::Event
            }
            Some(AttachKind::Kprobe | AttachKind::Kretprobe | AttachKind::Tracepoint) => {
                ir::ProbeKind::Event
            }
        };
        let attach = match (kind.clone(), profile) {
            (_, Some(profile)) => vec![profile],
            (ir::ProbeKind::Event, None) => derivation.attach.clone(),
            _ => Vec::new(),
        };
        Some(DerivedProbe {
            skip: HashSet::new(),
            kind,
            leaf: leaf.clone(),
            name,
            attach,
            conditions,
            pieces,
            locals: Vec::new(),
            entry: None,
            writes: writes_of_block(&probe.body),
        })
    }
}

impl<'a> Elab<'a> {
    /// A probe point's `if (cond)`, as SystemTap allows it: it reads
    /// globals only, writes nothing and calls nothing (it is evaluated
    /// apart from any handler).
    fn check_condition(&mut self, e: &'a ast::Expr) {
        use ast::ExprKind;
        let problem = match &e.kind {
            ExprKind::Assign { .. } | ExprKind::Crement { .. } => {
                Some("probe condition must not modify any variables")
            }
            ExprKind::Call { .. } => Some("probe condition must not reference function"),
            ExprKind::Embedded(_) => Some("probe condition must not include impure embedded-C"),
            ExprKind::Ident(name) if self.find_global(name).is_none() => {
                Some("probe condition must not reference undeclared global")
            }
            _ => None,
        };
        if let Some(problem) = problem {
            self.error(
                e.span,
                problem,
                Some("a probe point's condition may only read globals"),
            );
            return;
        }
        e.for_each_child(&mut |child| self.check_condition(child));
    }
}

/// The kernel's tick rate (`CONFIG_HZ`; Debian's amd64 kernels use 250,
/// which is also assumed where the config is unknown).
fn kernel_hz(facts: &KernelFacts) -> u64 {
    facts
        .config
        .as_ref()
        .and_then(|config| match config.get("CONFIG_HZ") {
            Some(tapmatrix_facts::ConfigValue::Other(hz)) => hz.parse::<u64>().ok(),
            _ => None,
        })
        .filter(|&hz| hz > 0)
        .unwrap_or(250)
}

/// Checks `perf.type(T).config(C)[.sample(N)|.hz(N)]`.
pub(super) fn perf_check(point: &tapmatrix_resolve::ProbePoint) -> Result<(), String> {
    let (mut event_type, mut config, mut rate) = (false, false, false);
    for component in point.components.iter().skip(1) {
        let number = match component.arg {
            Some(Arg::Number(n)) if n >= 0 => u64::try_from(n).ok(),
            _ => None,
        };
        match (component.name.as_str(), number) {
            ("type", Some(n)) if u32::try_from(n).is_ok() && !event_type => event_type = true,
            ("config", Some(_)) if event_type && !config => config = true,
            ("sample" | "hz", Some(n)) if n > 0 && config && !rate => rate = true,
            (other, _) => {
                return Err(format!(
                    "probe point mismatch: perf.type(T).config(C) takes one .sample(N) or .hz(N), not .{other} here"
                ));
            }
        }
    }
    if !event_type {
        return Err("a perf probe needs .type(N)".to_owned());
    }
    if !config {
        return Err("a perf probe needs .config(N)".to_owned());
    }
    Ok(())
}

/// A timer probe: periodic (run by the session) or the profiling tick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Timer {
    /// `timer.ms(N)` and friends.
    Periodic(ir::ProbeKind),
    /// `timer.profile`.
    Profile,
}

/// `timer.UNIT(N)[.randomize(M)]` (or `timer.profile`) as a probe kind,
/// with `hz` the kernel's tick rate (for jiffies), checked as SystemTap's
/// timer builder checks it.
pub(super) fn timer_kind(point: &tapmatrix_resolve::ProbePoint, hz: u64) -> Result<Timer, String> {
    // SystemTap's hrtimers take 100us to a day.
    const MIN_NS: u64 = 100_000;
    const MAX_NS: u64 = 1_000_000_000 * 60 * 60 * 24;
    let unit = point.components.get(1).ok_or("a timer needs a unit")?;
    if unit.name == "profile" {
        // `timer.profile.tick` is the same probe (SystemTap's own name for
        // the tick-based one; its library's `timer.profile` prefers it).
        let rest = match point.components.get(2) {
            Some(tick) if tick.name == "tick" && tick.arg.is_none() => 3,
            _ => 2,
        };
        if let Some(extra) = point.components.get(rest) {
            return Err(format!(
                "probe point mismatch: timer.profile takes no .{}",
                extra.name
            ));
        }
        return Ok(Timer::Profile);
    }
    let number = |c: &tapmatrix_resolve::Component| match c.arg {
        Some(Arg::Number(n)) => Some(n),
        _ => None,
    };
    let n = number(unit).ok_or("a timer needs a number")?;
    let randomize = match point.components.get(2) {
        Some(r) if r.name == "randomize" && unit.name != "hz" => {
            number(r).ok_or("randomize needs a number")?
        }
        Some(r) => {
            return Err(format!(
                "probe point mismatch: timer.{} takes no .{}",
                unit.name, r.name
            ));
        }
        None => 0,
    };
    if let Some(extra) = point.components.get(3) {
        return Err(format!(
            "probe point mismatch: a timer takes nothing after .randomize, not .{}",
            extra.name
        ));
    }
    if unit.name == "jiffies" {
        if !(1..=1_000_000).contains(&n) {
            return Err("invalid interval for jiffies timer".to_owned());
        }
        if randomize < 0 || randomize > n {
            return Err("invalid randomize for jiffies timer".to_owned());
        }
        let tick = 1_000_000_000 / hz.max(1);
        let (n, randomize) = (n.unsigned_abs(), randomize.unsigned_abs());
        return Ok(Timer::Periodic(ir::ProbeKind::Timer {
            period_ns: n.saturating_mul(tick),
            randomize_ns: randomize.saturating_mul(tick),
        }));
    }
    let (period, randomize): (i128, i128) = match unit.name.as_str() {
        "hz" => {
            if n <= 0 {
                return Err("frequency must be greater than 0".to_owned());
            }
            ((1_000_000_000 + i128::from(n) - 1) / i128::from(n), 0)
        }
        name => {
            let scale: i128 = match name {
                "s" | "sec" => 1_000_000_000,
                "ms" | "msec" => 1_000_000,
                "us" | "usec" => 1_000,
                "ns" | "nsec" => 1,
                other => return Err(format!("timer.{other} is not a timer SystemTap knows")),
            };
            (i128::from(n) * scale, i128::from(randomize) * scale)
        }
    };
    if !(i128::from(MIN_NS)..=i128::from(MAX_NS)).contains(&period) {
        return Err(format!(
            "interval value out of range: {period} ns (100us to a day)"
        ));
    }
    if randomize < 0 || randomize > period {
        return Err("randomization value out of range".to_owned());
    }
    Ok(Timer::Periodic(ir::ProbeKind::Timer {
        period_ns: u64::try_from(period).unwrap_or(MAX_NS),
        randomize_ns: u64::try_from(randomize).unwrap_or(0),
    }))
}
