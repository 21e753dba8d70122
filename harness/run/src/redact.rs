//! Redactions: what a spec blanks out of the output before comparing it
//! (pids, addresses, times: whatever legitimately changes between runs).

use regex::Regex;
use serde::Deserialize;

/// One redaction as written in a spec: a regex and its replacement, or a
/// preset name.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Redaction {
    /// `pids`, `addresses` or `times`.
    Preset(String),
    /// `{pattern: 'pid=\d+', with: 'pid=[PID]'}`.
    Pattern {
        /// A regex (Rust syntax).
        pattern: String,
        /// What replaces each match (`$1` refers to groups).
        with: String,
    },
}

/// Compiled redactions, applied in order.
#[derive(Debug, Clone, Default)]
pub struct Redactions {
    rules: Vec<(Regex, String)>,
}

/// The presets: (name, pattern, replacement).
const PRESETS: &[(&str, &str, &str)] = &[
    ("addresses", r"0x[0-9a-fA-F]{6,16}", "[ADDR]"),
    ("pids", r"\b(pid|tid|ppid)([=: ]+)\d+", "$1$2[PID]"),
    ("times", r"\b\d+(\.\d+)?\s?(ns|us|ms|s)\b", "[TIME]"),
];

impl Redactions {
    /// Compiles `list`; an error names the bad pattern or preset.
    pub fn new(list: Vec<Redaction>) -> Result<Redactions, String> {
        let mut rules = Vec::new();
        for item in list {
            let (pattern, with) = match item {
                Redaction::Preset(name) => {
                    let Some((_, pattern, with)) = PRESETS.iter().find(|(n, _, _)| *n == name)
                    else {
                        let names: Vec<&str> = PRESETS.iter().map(|(n, _, _)| *n).collect();
                        return Err(format!(
                            "unknown redaction `{name}` (presets: {}; or write {{pattern: REGEX, with: TEXT}})",
                            names.join(", ")
                        ));
                    };
                    ((*pattern).to_owned(), (*with).to_owned())
                }
                Redaction::Pattern { pattern, with } => (pattern, with),
            };
            let regex = Regex::new(&pattern)
                .map_err(|error| format!("redaction pattern `{pattern}`: {error}"))?;
            rules.push((regex, with));
        }
        Ok(Redactions { rules })
    }

    /// `text` with every rule applied.
    pub fn apply(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for (regex, with) in &self.rules {
            out = regex.replace_all(&out, with.as_str()).into_owned();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_and_patterns_apply_in_order() {
        let redactions = Redactions::new(vec![
            Redaction::Preset("pids".to_owned()),
            Redaction::Preset("addresses".to_owned()),
            Redaction::Pattern {
                pattern: r"took \d+".to_owned(),
                with: "took N".to_owned(),
            },
        ])
        .unwrap();
        assert_eq!(
            redactions.apply("pid=123 at 0xffff8880deadbeef took 42 ticks"),
            "pid=[PID] at [ADDR] took N ticks"
        );
    }

    #[test]
    fn a_bad_rule_says_what_is_wrong() {
        let error = Redactions::new(vec![Redaction::Preset("pid".to_owned())]).unwrap_err();
        assert!(error.contains("unknown redaction `pid`"), "{error}");
        let error = Redactions::new(vec![Redaction::Pattern {
            pattern: "(".to_owned(),
            with: String::new(),
        }])
        .unwrap_err();
        assert!(error.contains("redaction pattern `(`"), "{error}");
    }
}
