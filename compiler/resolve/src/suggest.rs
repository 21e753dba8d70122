//! Porting suggestions for a miss, ranked by evidence, written as the
//! probe point to add: the renamed function (same BTF prototype, near
//! name), the syscall tracepoint that replaces a syscall wrapper, the
//! tracepoint that carries the same fields.

use serde::{Deserialize, Serialize};
use tapmatrix_facts::{Btf, KernelFacts};

use crate::outcome::{Miss, Reason};

/// One replacement to add to the tapset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Suggestion {
    /// The probe point to add as an alternative after the missing point,
    /// which becomes optional: `P` becomes `P?, S` (with its `?`, `S` is
    /// harmless on kernels that lack it).
    pub probe_point: String,
    /// What backs it.
    pub evidence: String,
    /// Higher is stronger: 3 same prototype or same fields, 2 the syscall's
    /// own tracepoint or a near-named function that appeared where the
    /// missing one went, 1 a near name only.
    pub strength: u8,
}

/// A function's prototype as types only: `ssize_t (struct file *, char *, size_t, loff_t *)`.
fn prototype_types(btf: &Btf, name: &str) -> Option<String> {
    let function = btf.function(name)?.ok()?;
    let mut types = Vec::new();
    for param in function.proto.params() {
        let param = param.ok()?;
        types.push(btf.render(param.ty).ok()?);
    }
    let ret = btf.render(function.proto.ret).ok()?;
    Some(format!("{ret} ({})", types.join(", ")))
}

/// The syscall a wrapper function serves (`__x64_sys_openat` -> `openat`).
fn wrapped_syscall(function: &str) -> Option<&str> {
    [
        "__x64_sys_",
        "__ia32_sys_",
        "__se_sys_",
        "__do_sys_",
        "do_sys_",
        "ksys_",
        "sys_",
    ]
    .iter()
    .find_map(|prefix| function.strip_prefix(prefix))
    .filter(|name| !name.is_empty())
}

/// Replaces the quoted argument `old` in a probe point with `new`.
fn replace_arg(point: &str, old: &str, new: &str) -> String {
    point.replacen(&format!("(\"{old}\")"), &format!("(\"{new}\")"), 1)
}

/// Reclassifies a miss with what other kernels show (a function absent here
/// but present there under a near name with the same prototype is
/// [`Reason::Renamed`]) and lists suggestions, strongest first.
pub fn suggest(
    miss: &Miss,
    here: &KernelFacts,
    others: &[&KernelFacts],
) -> (Reason, Vec<Suggestion>) {
    let mut reason = miss.reason.clone();
    let mut out = Vec::new();
    let is_return = miss.point.ends_with(".return");
    match &miss.reason {
        Reason::FunctionAbsent { function } | Reason::SymbolOnly { function } => {
            if let Some((to, evidence)) = renamed(function, here, others) {
                let text = match evidence {
                    Evidence::SamePrototype => {
                        if matches!(miss.reason, Reason::FunctionAbsent { .. }) {
                            reason = Reason::Renamed {
                                function: function.clone(),
                                to: to.clone(),
                            };
                        }
                        format!("{to} has the BTF prototype {function} has on other kernels")
                    }
                    Evidence::Replaces => format!(
                        "{to} has a near name and is traceable on none of the other kernels that have {function}"
                    ),
                    Evidence::NearName if here.btf.is_some() => {
                        format!("{to} has a near name but another prototype")
                    }
                    Evidence::NearName => {
                        format!("{to} has a near name (prototype not compared: no BTF)")
                    }
                };
                out.push(Suggestion {
                    probe_point: format!("{}?", replace_arg(&miss.point, function, &to)),
                    evidence: text,
                    strength: match evidence {
                        Evidence::SamePrototype => 3,
                        Evidence::Replaces => 2,
                        Evidence::NearName => 1,
                    },
                });
            }
            if let Some(syscall) = wrapped_syscall(function)
                && here.syscall(syscall).is_some()
            {
                let event = if is_return { "sys_exit_" } else { "sys_enter_" };
                out.push(Suggestion {
                    probe_point: format!("kernel.trace(\"syscalls:{event}{syscall}\")?"),
                    evidence: format!(
                        "the tracepoint of syscall {syscall}, which {function} wrapped"
                    ),
                    strength: 2,
                });
            }
        }
        Reason::ClonesOnly { clones, .. } => {
            for clone in clones {
                let ret = if is_return { ".return" } else { "" };
                out.push(Suggestion {
                    probe_point: format!("kprobe.function(\"{clone}\"){ret}?"),
                    evidence: format!(
                        "{clone} is a compiler clone: kprobes attach, parameters may differ"
                    ),
                    strength: 1,
                });
            }
        }
        Reason::NeedsDwarf { .. } => {
            if let Some(function) = quoted_function(&miss.point)
                && here.is_attachable(function)
            {
                out.push(Suggestion {
                    probe_point: format!("kernel.function(\"{function}\")?"),
                    evidence: format!("{function} is attachable by name without debuginfo"),
                    strength: 1,
                });
            }
        }
        Reason::TracepointAbsent { event } => {
            out.extend(tracepoint_suggestions(event, here, others))
        }
        _ => {}
    }
    out.sort_by_key(|s| std::cmp::Reverse(s.strength));
    (reason, out)
}

/// The function name in `kernel.function("name@file:line")`.
fn quoted_function(point: &str) -> Option<&str> {
    let start = point.find("function(\"")? + "function(\"".len();
    let rest = &point[start..];
    let end = rest.find(['"', '@'])?;
    Some(&rest[..end])
}

/// The evidence that a function of `here` replaces a missing one, weakest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Evidence {
    /// A near name only.
    NearName,
    /// A near name, traceable here and on none of the other kernels where
    /// the missing function is: it appeared where the old one went.
    Replaces,
    /// A near name and the BTF prototype the missing function has elsewhere.
    SamePrototype,
}

/// Whether `new` abbreviates `old` word by word (`scheduler_tick` ->
/// `sched_tick`): as many `_`-separated words, each equal to or a prefix
/// (of three letters or more) of the other's.
fn abbreviates(old: &str, new: &str) -> bool {
    let (old, new): (Vec<&str>, Vec<&str>) = (old.split('_').collect(), new.split('_').collect());
    old.len() == new.len()
        && old != new
        && old.iter().zip(&new).all(|(a, b)| {
            a == b || (a.len().min(b.len()) >= 3 && (a.starts_with(b) || b.starts_with(a)))
        })
}

/// A function of `here` with a near name, and the evidence it replaces
/// the missing one.
fn renamed(
    function: &str,
    here: &KernelFacts,
    others: &[&KernelFacts],
) -> Option<(String, Evidence)> {
    let functions = here.functions.as_ref()?;
    // Rendered only when a candidate gets as far as comparing prototypes.
    let reference = std::cell::LazyCell::new(|| {
        others
            .iter()
            .filter_map(|facts| prototype_types(facts.btf.as_ref()?, function))
            .next()
    });
    // The kernels that have the missing function.
    let having: Vec<&KernelFacts> = others
        .iter()
        .copied()
        .filter(|facts| {
            facts
                .functions
                .as_ref()
                .is_some_and(|f| f.contains(function))
        })
        .collect();
    let stem = function.trim_start_matches('_');
    let prefix_len = stem.char_indices().nth(5).map_or(stem.len(), |(i, _)| i);
    let prefix = &stem[..prefix_len];
    let mut best: Option<(Evidence, bool, f64, String)> = None;
    // The syscall's helper without its `sys_` (`do_sys_ftruncate` ->
    // `do_ftruncate`): a near name that does not share the prefix.
    let without_sys = function
        .replacen("_sys_", "_", 1)
        .trim_start_matches("sys_")
        .to_owned();
    let direct =
        (without_sys != function && functions.contains(&without_sys)).then(|| without_sys.clone());
    let candidates = ["", "_", "__"]
        .into_iter()
        .flat_map(|underscores| {
            let prefix = format!("{underscores}{prefix}");
            functions
                .names
                .with_prefix(&prefix)
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .chain(direct);
    for candidate in candidates {
        if candidate == function || candidate.contains('.') {
            continue;
        }
        // `__alloc_pages` -> `__alloc_pages_noprof`: the old name inside the
        // new; `do_sys_ftruncate` -> `do_ftruncate`: the same without `sys_`.
        let contained =
            (function.len() >= 4 && candidate.contains(function)) || candidate == without_sys;
        let abbreviated = abbreviates(function, &candidate);
        // A normalized distance of at most 0.2 needs lengths that close.
        let longest = function.chars().count().max(candidate.chars().count());
        let shorter = function.chars().count().min(candidate.chars().count());
        if !contained && !abbreviated && (longest - shorter) * 5 > longest {
            continue;
        }
        let score = strsim::normalized_damerau_levenshtein(function, &candidate);
        if (score < 0.8 && !contained && !abbreviated) || !here.is_attachable(&candidate) {
            continue;
        }
        // `void (void)` is shared by too many functions to be evidence.
        let same = match (here.btf.as_ref(), &*reference) {
            (Some(btf), Some(reference))
                if !matches!(reference.as_str(), "void ()" | "void (void)") =>
            {
                prototype_types(btf, &candidate).as_deref() == Some(reference.as_str())
            }
            _ => false,
        };
        let replaces = !having.is_empty()
            && having.iter().all(|facts| {
                facts
                    .functions
                    .as_ref()
                    .is_some_and(|f| !f.contains(&candidate))
            });
        // An abbreviation alone is too weak: it must have replaced the name.
        if score < 0.8 && !contained && !replaces {
            continue;
        }
        let evidence = if same {
            Evidence::SamePrototype
        } else if replaces {
            Evidence::Replaces
        } else {
            Evidence::NearName
        };
        // Among equal evidence, the name without `sys_` first, then the nearest.
        let direct = candidate == without_sys;
        let better = best
            .as_ref()
            .is_none_or(|(was, d, s, _)| (evidence, direct, score) > (*was, *d, *s));
        if better {
            best = Some((evidence, direct, score, candidate));
        }
    }
    best.map(|(evidence, _, _, name)| (name, evidence))
}

fn tracepoint_suggestions(
    event: &str,
    here: &KernelFacts,
    others: &[&KernelFacts],
) -> Vec<crate::suggest::Suggestion> {
    let (system, name) = event.split_once(':').unwrap_or(("", event));
    let Some(tracepoints) = &here.tracepoints else {
        return Vec::new();
    };
    let reference: Option<Vec<String>> = others.iter().find_map(|facts| {
        let tp = if system.is_empty() {
            facts.tracepoints_named(name).next()
        } else {
            facts.tracepoint(system, name)
        }?;
        Some(tp.fields.iter().map(|f| f.name.clone()).collect())
    });
    let mut out = Vec::new();
    for tp in tracepoints {
        let full = format!("{}:{}", tp.system, tp.name);
        if tp.name == name && tp.system != system {
            out.push(Suggestion {
                probe_point: format!("kernel.trace(\"{full}\")?"),
                evidence: format!("the same event name in system {}", tp.system),
                strength: 3,
            });
            continue;
        }
        let Some(reference) = &reference else {
            continue;
        };
        if reference.is_empty() || strsim::jaro_winkler(name, &tp.name) < 0.8 {
            continue;
        }
        let fields: Vec<&str> = tp.fields.iter().map(|f| f.name.as_str()).collect();
        let shared = reference
            .iter()
            .filter(|f| fields.contains(&f.as_str()))
            .count();
        let union = reference.len() + fields.len() - shared;
        if union > 0 && shared * 4 >= union * 3 {
            out.push(Suggestion {
                probe_point: format!("kernel.trace(\"{full}\")?"),
                evidence: format!(
                    "a near-named event with {shared} of its {} fields",
                    reference.len()
                ),
                strength: 3,
            });
        }
    }
    out.truncate(3);
    out
}

/// Pastes `suggestion` after every `point` written in `source`, as a
/// tapset maintainer applies a suggestion: `P` (or `P?`, `P!`) becomes
/// `P?, S`. Only whole points are replaced (not `P` inside `P.call`);
/// `None` when `source` does not spell `point` that way.
pub fn paste_suggestion(source: &str, point: &str, suggestion: &str) -> Option<String> {
    let mut out = String::with_capacity(source.len() + suggestion.len());
    let mut rest = source;
    let mut pasted = false;
    while let Some(at) = rest.find(point) {
        let after = &rest[at + point.len()..];
        let whole =
            !after.starts_with(|c: char| c == '.' || c == '(' || c.is_alphanumeric() || c == '_');
        let before_ok = rest[..at]
            .chars()
            .next_back()
            .is_none_or(|c| !(c == '.' || c.is_alphanumeric() || c == '_'));
        if whole && before_ok {
            out.push_str(&rest[..at]);
            out.push_str(point);
            out.push_str("?, ");
            out.push_str(suggestion);
            rest = after.strip_prefix(['?', '!']).unwrap_or(after);
            pasted = true;
        } else {
            out.push_str(&rest[..at + point.len()]);
            rest = after;
        }
    }
    out.push_str(rest);
    pasted.then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syscall_wrappers_and_points() {
        assert_eq!(wrapped_syscall("__x64_sys_openat"), Some("openat"));
        assert_eq!(wrapped_syscall("ksys_read"), Some("read"));
        assert_eq!(wrapped_syscall("do_sys_ftruncate"), Some("ftruncate"));
        assert_eq!(wrapped_syscall("vfs_read"), None);
        assert_eq!(
            replace_arg("kernel.function(\"a\").return", "a", "b"),
            "kernel.function(\"b\").return"
        );
        assert_eq!(quoted_function("kernel.function(\"f@x.c:3\")"), Some("f"));
        assert!(abbreviates("scheduler_tick", "sched_tick"));
        assert!(!abbreviates("scheduler_tick", "sched_tick_remote"));
        assert!(!abbreviates("do_exit", "do_e"));
        assert!(!abbreviates("vfs_read", "vfs_read"));
    }

    #[test]
    fn pasting_replaces_whole_points_only() {
        let p = "kernel.function(\"f\")";
        let s = "kernel.function(\"g\")?";
        assert_eq!(
            paste_suggestion("probe a = kernel.function(\"f\")!, x { }", p, s).as_deref(),
            Some("probe a = kernel.function(\"f\")?, kernel.function(\"g\")?, x { }")
        );
        assert_eq!(
            paste_suggestion("probe a = kernel.function(\"f\").return { }", p, s),
            None
        );
    }
}
