//! Functions and symbols: `available_filter_functions`, the kprobe
//! blacklist, kallsyms text symbols, and compiler clones of functions.

use serde::{Deserialize, Serialize};

use crate::ParseError;

/// The functions ftrace can attach to (`available_filter_functions`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilterFunctions {
    /// Every function name, sorted, each once.
    pub names: Vec<String>,
    /// Names listed more than once (static functions of the same name in
    /// several files): a kprobe by name alone is ambiguous on them.
    pub ambiguous: Vec<String>,
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
            if !is_symbol_name(name) || !module_ok {
                return Err(ParseError::new(
                    index + 1,
                    format!("not a function name: {line:?}"),
                ));
            }
            names.push(name.to_owned());
        }
        names.sort_unstable();
        let mut ambiguous: Vec<String> = names
            .windows(2)
            .filter(|pair| pair[0] == pair[1])
            .map(|pair| pair[0].clone())
            .collect();
        ambiguous.dedup();
        names.dedup();
        Ok(FilterFunctions { names, ambiguous })
    }

    /// Whether the name is listed.
    pub fn contains(&self, name: &str) -> bool {
        contains(&self.names, name)
    }

    /// Listed names that are compiler clones of `base` (`base.isra.0`, ...).
    pub fn clones_of<'a>(&'a self, base: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        clones_of(&self.names, base)
    }
}

/// Binary search in a sorted list of names.
pub(crate) fn contains<S: AsRef<str>>(sorted: &[S], name: &str) -> bool {
    sorted
        .binary_search_by(|probe| probe.as_ref().cmp(name))
        .is_ok()
}

/// Names in a sorted list that are compiler clones of `base`.
pub(crate) fn clones_of<'a>(
    sorted: &'a [String],
    base: &'a str,
) -> impl Iterator<Item = &'a str> + 'a {
    let start = sorted.partition_point(|probe| probe.as_str() <= base);
    sorted[start..]
        .iter()
        .take_while(move |name| name.starts_with(base))
        .filter(move |name| name.as_bytes().get(base.len()) == Some(&b'.'))
        .map(String::as_str)
        .filter(move |name| split_clone(name).is_some_and(|(b, _)| b == base))
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
pub fn parse_blacklist(text: &str) -> Result<Vec<String>, ParseError> {
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
        names.push(name.to_owned());
    }
    names.sort_unstable();
    names.dedup();
    Ok(names)
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

/// One text symbol from `/proc/kallsyms` (address dropped: KASLR moves it).
///
/// Serialised as one string, `"T name"` or `"t name [module]"`, to keep
/// `facts.json` lean.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct TextSymbol {
    /// The symbol's name.
    pub name: String,
    /// Its binding.
    pub binding: Binding,
    /// The module it lives in, if not vmlinux.
    pub module: Option<String>,
}

impl From<TextSymbol> for String {
    fn from(symbol: TextSymbol) -> String {
        let kind = match symbol.binding {
            Binding::Local => 't',
            Binding::Global => 'T',
            Binding::Weak => 'W',
        };
        match symbol.module {
            Some(module) => format!("{kind} {} [{module}]", symbol.name),
            None => format!("{kind} {}", symbol.name),
        }
    }
}

impl TryFrom<String> for TextSymbol {
    type Error = String;
    fn try_from(text: String) -> Result<TextSymbol, String> {
        let mut words = text.split(' ');
        let (Some(kind), Some(name)) = (words.next(), words.next()) else {
            return Err(format!("bad text symbol {text:?}"));
        };
        let module = words
            .next()
            .map(|m| m.trim_start_matches('[').trim_end_matches(']').to_owned());
        Ok(TextSymbol {
            name: name.to_owned(),
            binding: binding(kind).ok_or_else(|| format!("bad symbol type in {text:?}"))?,
            module,
        })
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
/// (types t, T, w, W), sorted by name, each once.
pub fn parse_kallsyms(text: &str) -> Result<Vec<TextSymbol>, ParseError> {
    let mut symbols = Vec::new();
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
        let module = match words.next() {
            Some(module) => Some(
                module
                    .strip_prefix('[')
                    .and_then(|m| m.strip_suffix(']'))
                    .ok_or_else(fail)?
                    .to_owned(),
            ),
            None => None,
        };
        symbols.push(TextSymbol {
            name: name.to_owned(),
            binding,
            module,
        });
    }
    symbols.sort_unstable();
    symbols.dedup();
    Ok(symbols)
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let f =
            FilterFunctions::parse("b\na\nfoo.isra.0\nfoo\nfoo_bar\nb\nmod_fn [mymod]\n").unwrap();
        assert_eq!(
            f.names,
            ["a", "b", "foo", "foo.isra.0", "foo_bar", "mod_fn"]
        );
        assert_eq!(f.ambiguous, ["b"]);
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
        assert_eq!(names, ["asm_exc_divide_error", "notify_die"]);
        let err = parse_blacklist("0xa-0xb\tx\nffff-0x1 y\n").unwrap_err();
        assert_eq!(err.line, 2);
    }

    #[test]
    fn kallsyms_text_only() {
        let symbols = parse_kallsyms(
            "ffffffffa8000000 T startup_64\nffffffffa8000010 t helper\nffffffffa9000000 D data\nffffffffc0000000 t mod_fn\t[e1000]\n",
        )
        .unwrap();
        let names: Vec<_> = symbols.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["helper", "mod_fn", "startup_64"]);
        assert_eq!(symbols[1].module.as_deref(), Some("e1000"));
        let json = serde_json::to_string(&symbols).unwrap();
        assert_eq!(json, r#"["t helper","t mod_fn [e1000]","T startup_64"]"#);
        let back: Vec<TextSymbol> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, symbols);
        assert_eq!(parse_kallsyms("zz T x\n").unwrap_err().line, 1);
    }
}
