//! Typed probe points: the AST's probe point as provider components with
//! literal arguments and its `?`/`!`/`if` marks. Parse, don't validate:
//! whether a provider accepts the components is the resolver's question.

use std::fmt;

use serde::Serialize;
use tapmatrix_syntax::ast;
use tapmatrix_syntax::profile::fnmatch;
use tapmatrix_syntax::{FileKind, Profile, Session};

/// A component's literal argument.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(untagged)]
pub enum Arg {
    /// `timer.ms(100)`.
    Number(i64),
    /// `kernel.function("vfs_read")` (escapes kept as written).
    String(String),
}

/// One dotted component: `function("vfs_read")`, `return`, `*`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Component {
    /// The name, possibly with wildcards.
    pub name: String,
    /// The literal argument.
    pub arg: Option<Arg>,
}

impl Component {
    /// A component without an argument.
    pub fn bare(name: &str) -> Component {
        Component {
            name: name.to_owned(),
            arg: None,
        }
    }

    /// Whether this (pattern) component matches `other` (a concrete one,
    /// an alias name's): the name by wildcard, the arguments equal. As in
    /// SystemTap, a component with an argument never matches one without
    /// (`process("/bin/cat").end` is not the alias `process.end`).
    pub fn matches(&self, other: &Component) -> bool {
        fnmatch(&self.name, &other.name) && self.arg == other.arg
    }
}

/// A probe point: `kernel.function("vfs_read").return?`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbePoint {
    /// The dotted components, at least one.
    pub components: Vec<Component>,
    /// `?` or `!`: resolving to nothing is not an error.
    pub optional: bool,
    /// `!`: when it resolves, later alternatives are not tried.
    pub sufficient: bool,
    /// `if (cond)`: enabled at run time by a condition.
    pub conditional: bool,
}

/// A probe point text that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a probe point: `{text}`: {message}")]
pub struct PointSyntaxError {
    /// The text given.
    pub text: String,
    /// The parser's first complaint.
    pub message: String,
}

/// Whether a name or argument has shell wildcards.
pub fn has_wildcard(text: &str) -> bool {
    text.contains(['*', '?', '['])
}

impl ProbePoint {
    /// The typed form of a parsed probe point.
    pub fn from_ast(point: &ast::ProbePoint) -> ProbePoint {
        ProbePoint {
            components: point
                .components
                .iter()
                .map(|c| Component {
                    name: c.name.clone(),
                    arg: c.arg.as_ref().map(|arg| match arg {
                        ast::Literal::Number(n) => Arg::Number(*n),
                        ast::Literal::String(s) => Arg::String(s.clone()),
                    }),
                })
                .collect(),
            optional: point.optional || point.sufficient,
            sufficient: point.sufficient,
            conditional: point.condition.is_some(),
        }
    }

    /// Parses probe point text as on a command line (`stap -l PATTERN`):
    /// `kernel.function("vfs_*").return`, `syscall.*`.
    pub fn parse(text: &str) -> Result<ProbePoint, PointSyntaxError> {
        let mut session = Session::new(Profile::default(), &[]);
        let file = session.add_source("<pattern>", format!("probe {text} {{}}"));
        let parsed = session.parse(
            file,
            FileKind {
                privileged: false,
                user_file: true,
            },
        );
        let error = |message: String| PointSyntaxError {
            text: text.to_owned(),
            message,
        };
        if let Some(diagnostic) = parsed.diagnostics.first() {
            return Err(error(diagnostic.message.clone()));
        }
        match parsed.file.items.as_slice() {
            [ast::Item::Probe(probe)] if probe.points.len() == 1 => {
                Ok(ProbePoint::from_ast(&probe.points[0]))
            }
            _ => Err(error("expected exactly one probe point".to_owned())),
        }
    }

    /// The name of component `index`, if there is one.
    pub fn name(&self, index: usize) -> Option<&str> {
        self.components.get(index).map(|c| c.name.as_str())
    }

    /// Whether any component name has a wildcard.
    pub fn has_wildcard(&self) -> bool {
        self.components.iter().any(|c| has_wildcard(&c.name))
    }

    /// The same point without marks, followed by `suffix` components.
    pub fn with_suffix(&self, suffix: &[Component]) -> ProbePoint {
        let mut point = self.clone();
        point.components.extend_from_slice(suffix);
        point
    }

    /// The components only, as SystemTap prints a probe point.
    pub fn bare(&self) -> String {
        use std::fmt::Write as _;
        let length: usize = self
            .components
            .iter()
            .map(|c| {
                c.name.len()
                    + 1
                    + match &c.arg {
                        Some(Arg::Number(_)) => 22,
                        Some(Arg::String(s)) => s.len() + 4,
                        None => 0,
                    }
            })
            .sum();
        let mut text = String::with_capacity(length);
        for (index, component) in self.components.iter().enumerate() {
            if index > 0 {
                text.push('.');
            }
            text.push_str(&component.name);
            match &component.arg {
                Some(Arg::Number(n)) => {
                    let _ = write!(text, "({n})");
                }
                Some(Arg::String(s)) => {
                    text.push_str("(\"");
                    text.push_str(s);
                    text.push_str("\")");
                }
                None => {}
            }
        }
        text
    }
}

impl fmt::Display for ProbePoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.bare())?;
        if self.sufficient {
            f.write_str("!")?;
        } else if self.optional {
            f.write_str("?")?;
        }
        if self.conditional {
            f.write_str(" if (...)")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        let point = ProbePoint::parse(r#"kernel.function("vfs_*").return!"#).unwrap();
        assert_eq!(point.components.len(), 3);
        assert_eq!(
            point.components[1].arg,
            Some(Arg::String("vfs_*".to_owned()))
        );
        assert!(point.optional && point.sufficient && !point.has_wildcard());
        assert_eq!(point.to_string(), r#"kernel.function("vfs_*").return!"#);
        let timer = ProbePoint::parse("timer.ms(100)?").unwrap();
        assert_eq!(timer.to_string(), "timer.ms(100)?");
        assert!(ProbePoint::parse("syscall.*").unwrap().has_wildcard());
        assert!(ProbePoint::parse("kernel.function(").is_err());
        assert!(ProbePoint::parse("a, b").is_err());
    }

    #[test]
    fn components_match_by_wildcard_and_argument() {
        let star = Component::bare("*");
        assert!(star.matches(&Component::bare("read")));
        let f = |arg: &str| Component {
            name: "function".to_owned(),
            arg: Some(Arg::String(arg.to_owned())),
        };
        assert!(!f("x").matches(&Component::bare("function")));
        assert!(f("x").matches(&f("x")) && !f("x").matches(&f("y")));
    }
}
