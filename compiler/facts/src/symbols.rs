//! Functions and symbols: `available_filter_functions`, the kprobe
//! blacklist, kallsyms text symbols, and compiler clones of functions.

use serde::{Deserialize, Serialize};

use crate::ParseError;
use crate::names::NameList;

/// The functions ftrace can attach to (`available_filter_functions`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilterFunctions {
    /// Every function name, sorted, each once.
    pub names: NameList,
    /// Names listed more than once (static functions of the same name in
    /// several files): a kprobe by name alone is ambiguous on them.
    pub ambiguous: NameList,
}

impl FilterFunctions {
    /// Parses `available_filter_functions` (`name` or `name [module]` per line).
    pub fn parse(text: &str) -> Result<FilterFunctions, ParseError> {
        let mut names = Vec::new();
        for (index, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let mut words = line.split_whitespace();
            let name = words.next().unwrap_or("");
            let module_ok = match words.next() {
                None => true,
                Some(module) => {
                    module.starts_with('[') && module.ends_with(']') && words.next().is_none()
                }
            };
            if name.starts_with("__ftrace_invalid_address__") {
                // A placeholder for a record ftrace dropped (6.x), not a function.
                continue;
            }
            if !is_symbol_name(name) || !module_ok {
                return Err(ParseError::new(
                    index + 1,
                    format!("not a function name: {line:?}"),
                ));
            }
            names.push(name);
        }
        names.sort_unstable();
        let ambiguous = NameList::from_lines(
            names
                .windows(2)
                .filter(|pair| pair[0] == pair[1])
                .map(|pair| pair[0]),
        );
        Ok(FilterFunctions {
            names: NameList::from_lines(names),
            ambiguous,
        })
    }

    /// Whether the name is listed.
    pub fn contains(&self, name: &str) -> bool {
        self.names.contains(name)
    }

    /// Listed names that are compiler clones of `base` (`base.isra.0`, ...).
    pub fn clones_of<'a>(&'a self, base: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.names
            .with_prefix(base)
            .filter(move |name| name.as_bytes().get(base.len()) == Some(&b'.'))
            .filter(move |name| clone_base(name) == Some(base))
    }
}

fn is_symbol_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'$'))
}

/// A suffix GCC or Clang adds to a function it cloned or split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CloneSuffix {
    /// `.isra.N`: interprocedural scalar replacement of aggregates (parameters changed).
    Isra(u32),
    /// `.constprop.N`: constant propagation (some parameters fixed).
    Constprop(u32),
    /// `.part.N`: partial inlining (the outlined part).
    Part(u32),
    /// `.cold`: the cold path split off.
    Cold,
    /// `.llvm.N`: Clang's promoted local symbol.
    Llvm(u64),
}

/// The function a compiler clone was made from (`vfs_read` for
/// `vfs_read.isra.0`): [`split_clone`]'s base, without its suffixes.
pub fn clone_base(name: &str) -> Option<&str> {
    // Most names have no dot: memchr says so in a few instructions (a
    // byte loop cost 160 per name, 8% of resolving SystemTap's library,
    // whose wildcards scan every function).
    let dot = memchr::memchr(b'.', name.as_bytes())?;
    let (base, rest) = (name.get(..dot)?, name.get(dot + 1..)?);
    if base.is_empty() {
        return None;
    }
    let mut parts = rest.split('.');
    while let Some(part) = parts.next() {
        let numbered = match part {
            "isra" | "constprop" | "part" => parts.next()?.parse::<u32>().is_ok(),
            "llvm" => parts.next()?.parse::<u64>().is_ok(),
            "cold" => true,
            _ => false,
        };
        if !numbered {
            return None;
        }
    }
    Some(base)
}

/// Splits a clone name into its base and suffixes: `foo.constprop.0.isra.0`
/// gives `foo` and `[Constprop(0), Isra(0)]`; a name with a suffix not
/// recognised, or none, gives `None`.
pub fn split_clone(name: &str) -> Option<(&str, Vec<CloneSuffix>)> {
    let (base, rest) = name.split_once('.')?;
    if base.is_empty() {
        return None;
    }
    let mut parts = rest.split('.');
    let mut suffixes = Vec::new();
    while let Some(part) = parts.next() {
        let mut number = || parts.next().and_then(|n| n.parse::<u64>().ok());
        suffixes.push(match part {
            "isra" => CloneSuffix::Isra(u32::try_from(number()?).ok()?),
            "constprop" => CloneSuffix::Constprop(u32::try_from(number()?).ok()?),
            "part" => CloneSuffix::Part(u32::try_from(number()?).ok()?),
            "llvm" => CloneSuffix::Llvm(number()?),
            "cold" => CloneSuffix::Cold,
            _ => return None,
        });
    }
    Some((base, suffixes))
}

/// Parses the kprobe blacklist (`0xSTART-0xEND\tname` per line; addresses
/// are dropped: they move with KASLR). Gives the sorted names.
pub fn parse_blacklist(text: &str) -> Result<NameList, ParseError> {
    let mut names = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let fail = || {
            ParseError::new(
                index + 1,
                format!("expected `0xSTART-0xEND\\tname`, found {line:?}"),
            )
        };
        let (range, rest) = line.split_once(char::is_whitespace).ok_or_else(fail)?;
        let (start, end) = range.split_once('-').ok_or_else(fail)?;
        if !is_hex_address(start) || !is_hex_address(end) {
            return Err(fail());
        }
        let name = rest.split_whitespace().next().ok_or_else(fail)?;
        if !is_symbol_name(name) {
            return Err(fail());
        }
        names.push(name);
    }
    Ok(NameList::from_lines(names))
}

fn is_hex_address(text: &str) -> bool {
    text.strip_prefix("0x")
        .is_some_and(|hex| !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// How a kallsyms text symbol is bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Binding {
    /// `t`: file-local (static).
    Local,
    /// `T`: global.
    Global,
    /// `w`/`W`: weak.
    Weak,
}

/// kallsyms text symbols: one name list per binding, and the few symbols
/// of loaded modules apart.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TextSymbols {
    /// `T` symbols of vmlinux.
    pub global: NameList,
    /// `t` symbols of vmlinux.
    pub local: NameList,
    /// `w`/`W` symbols of vmlinux.
    pub weak: NameList,
    /// Symbols of loaded modules, sorted by name.
    pub modules: Vec<ModuleSymbol>,
}

/// A text symbol of a loaded module.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ModuleSymbol {
    /// The symbol's name.
    pub name: String,
    /// Its module.
    pub module: String,
    /// File-local (`t`) rather than global or weak.
    pub local: bool,
}

impl TextSymbols {
    /// The number of symbols (a name bound two ways counts twice).
    pub fn len(&self) -> usize {
        self.global.len() + self.local.len() + self.weak.len() + self.modules.len()
    }

    /// No symbols.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether a symbol has this name.
    pub fn contains(&self, name: &str) -> bool {
        self.binding(name).is_some() || self.modules.iter().any(|s| s.name == name)
    }

    /// How vmlinux binds a name (global first, then weak, then local).
    pub fn binding(&self, name: &str) -> Option<Binding> {
        if self.global.contains(name) {
            Some(Binding::Global)
        } else if self.weak.contains(name) {
            Some(Binding::Weak)
        } else if self.local.contains(name) {
            Some(Binding::Local)
        } else {
            None
        }
    }
}

fn binding(kind: &str) -> Option<Binding> {
    match kind {
        "t" => Some(Binding::Local),
        "T" => Some(Binding::Global),
        "w" | "W" => Some(Binding::Weak),
        _ => None,
    }
}

/// Parses kallsyms lines (`addr type name [module]`), keeping text symbols
/// (types t, T, w, W) except the `__pfx_` padding symbols 6.2+ places
/// before every function (half of all symbols there, and not functions).
pub fn parse_kallsyms(text: &str) -> Result<TextSymbols, ParseError> {
    let (mut global, mut local, mut weak, mut modules) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let fail = || {
            ParseError::new(
                index + 1,
                format!("expected `address type name [module]`, found {line:?}"),
            )
        };
        let mut words = line.split_whitespace();
        let (Some(address), Some(kind), Some(name)) = (words.next(), words.next(), words.next())
        else {
            return Err(fail());
        };
        if address.is_empty() || !address.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(fail());
        }
        let Some(binding) = binding(kind) else {
            continue;
        };
        if name.starts_with("__pfx_") {
            continue;
        }
        match words.next() {
            Some(module) => {
                let module = module
                    .strip_prefix('[')
                    .and_then(|m| m.strip_suffix(']'))
                    .ok_or_else(fail)?;
                modules.push(ModuleSymbol {
                    name: name.to_owned(),
                    module: module.to_owned(),
                    local: binding == Binding::Local,
                });
            }
            None => match binding {
                Binding::Global => global.push(name),
                Binding::Local => local.push(name),
                Binding::Weak => weak.push(name),
            },
        }
    }
    modules.sort();
    modules.dedup();
    Ok(TextSymbols {
        global: NameList::from_lines(global),
        local: NameList::from_lines(local),
        weak: NameList::from_lines(weak),
        modules,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clone_base_is_split_clones_base() {
        for name in [
            "f.isra.0",
            "f.constprop.0.isra.0",
            "f.part.3",
            "f.cold",
            "f.llvm.123456789012",
            "f.isra",
            "f.isra.x",
            "f.isra.99999999999",
            "f",
            ".isra.0",
            "f.other.1",
            "f.cold.1",
            "f..isra.0",
        ] {
            assert_eq!(
                clone_base(name),
                split_clone(name).map(|(base, _)| base),
                "{name}"
            );
        }
    }

    #[test]
    fn splits_clones() {
        assert_eq!(split_clone("vfs_read"), None);
        assert_eq!(
            split_clone("foo.constprop.0.isra.1"),
            Some(("foo", vec![CloneSuffix::Constprop(0), CloneSuffix::Isra(1)]))
        );
        assert_eq!(
            split_clone("bar.part.3"),
            Some(("bar", vec![CloneSuffix::Part(3)]))
        );
        assert_eq!(
            split_clone("bar.cold"),
            Some(("bar", vec![CloneSuffix::Cold]))
        );
        assert_eq!(split_clone("bar.isra"), None);
        assert_eq!(split_clone("bar.weird.1"), None);
    }

    #[test]
    fn filter_functions_sorted_with_ambiguous_and_clones() {
        let f = FilterFunctions::parse(
            "b\na\nfoo.isra.0\nfoo\nfoo_bar\nb\nmod_fn [mymod]\n__ftrace_invalid_address___1152\n",
        )
        .unwrap();
        assert_eq!(
            f.names.iter().collect::<Vec<_>>(),
            ["a", "b", "foo", "foo.isra.0", "foo_bar", "mod_fn"]
        );
        assert_eq!(f.ambiguous.iter().collect::<Vec<_>>(), ["b"]);
        assert!(f.contains("foo_bar") && !f.contains("fo"));
        assert_eq!(f.clones_of("foo").collect::<Vec<_>>(), ["foo.isra.0"]);
        let err = FilterFunctions::parse("ok\nnot ok(\n").unwrap_err();
        assert_eq!(err.line, 2);
    }

    #[test]
    fn blacklist_lines() {
        let names = parse_blacklist(
            "0xffffffffa8c00990-0xffffffffa8c009b0\tasm_exc_divide_error\n0x0000000000000000-0x0000000000000000\tnotify_die\n",
        )
        .unwrap();
        assert_eq!(
            names.iter().collect::<Vec<_>>(),
            ["asm_exc_divide_error", "notify_die"]
        );
        let err = parse_blacklist("0xa-0xb\tx\nffff-0x1 y\n").unwrap_err();
        assert_eq!(err.line, 2);
    }

    #[test]
    fn kallsyms_text_only() {
        let symbols = parse_kallsyms(
            "ffffffffa8000000 T startup_64\nffffffffa8000008 t __pfx_helper\nffffffffa8000010 t helper\nffffffffa9000000 D data\nffffffffc0000000 t mod_fn\t[e1000]\n",
        )
        .unwrap();
        assert_eq!(symbols.global.iter().collect::<Vec<_>>(), ["startup_64"]);
        assert_eq!(symbols.local.iter().collect::<Vec<_>>(), ["helper"]);
        assert_eq!(symbols.modules[0].module, "e1000");
        assert!(symbols.contains("helper") && symbols.contains("mod_fn"));
        assert!(!symbols.contains("help") && !symbols.contains("data"));
        assert_eq!(symbols.binding("helper"), Some(Binding::Local));
        let json = serde_json::to_string(&symbols).unwrap();
        let back: TextSymbols = serde_json::from_str(&json).unwrap();
        assert_eq!(back, symbols);
        assert_eq!(parse_kallsyms("zz T x\n").unwrap_err().line, 1);
    }
}
