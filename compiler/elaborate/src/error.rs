//! Errors in a script found while elaborating it.

use std::fmt;

/// One semantic error: what, where, and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElaborateError {
    /// What was wrong (`type mismatch (long vs. string): identifier 'x'`).
    pub message: String,
    /// `file:line:col`.
    pub location: String,
    /// What to do about it.
    pub hint: Option<String>,
    /// Whether the error is the back end's refusal of a construct it does
    /// not serve (another back end may serve it), not a fault of the script.
    pub refusal: bool,
}

impl ElaborateError {
    /// An error at `location`.
    pub fn new(message: impl Into<String>, location: impl Into<String>) -> ElaborateError {
        ElaborateError {
            message: message.into(),
            location: location.into(),
            hint: None,
            refusal: false,
        }
    }

    /// The same error with a hint.
    pub fn with_hint(mut self, hint: impl Into<String>) -> ElaborateError {
        self.hint = Some(hint.into());
        self
    }

    /// A parse error of the script, as the loader rendered it
    /// (`file:line:col: message` first, then the source excerpt).
    pub(crate) fn from_rendered(rendered: &str) -> ElaborateError {
        let first = rendered.lines().next().unwrap_or_default();
        let first = first.strip_prefix("error: ").unwrap_or(first);
        // `file:line:col: message`: the location is the first three fields.
        let mut fields = first.splitn(4, ':');
        let (file, line, col, message) = (
            fields.next().unwrap_or_default(),
            fields.next().unwrap_or_default(),
            fields.next().unwrap_or_default(),
            fields.next().unwrap_or_default(),
        );
        ElaborateError::new(
            format!("parse error: {}", message.trim()),
            format!("{file}:{line}:{col}"),
        )
        .with_hint("fix the script's syntax first")
    }
}

impl fmt::Display for ElaborateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "semantic error: {} at {}", self.message, self.location)?;
        if let Some(hint) = &self.hint {
            write!(f, "\n        hint: {hint}")?;
        }
        Ok(())
    }
}

/// Every error found in a script, in source order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ElaborateErrors(pub Vec<ElaborateError>);

impl ElaborateErrors {
    /// Whether every error is the back end's refusal of a construct (so
    /// another back end may compile the script).
    pub fn only_refusals(&self) -> bool {
        self.0.iter().all(|error| error.refusal)
    }
}

impl fmt::Display for ElaborateErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, error) in self.0.iter().enumerate() {
            if index > 0 {
                writeln!(f)?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

/// Something SystemTap warns about in the script (never in a tapset):
/// `WARNING: Eliding unused variable 'x' at t.stp:1:8`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElaborateWarning {
    /// What (`Eliding unused variable 'x'`).
    pub message: String,
    /// `file:line:col`.
    pub location: String,
}

impl fmt::Display for ElaborateWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WARNING: {} at {}", self.message, self.location)
    }
}
