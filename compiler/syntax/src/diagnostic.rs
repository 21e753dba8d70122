//! Diagnostics: what was wrong, where (file:line:col), and the source line
//! with a caret.

use codespan_reporting::diagnostic::{Diagnostic as Report, Label};
use codespan_reporting::term;

use crate::span::{FileId, SourceMap, Span};

/// One error found in a script.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Diagnostic {
    /// Where.
    pub span: Span,
    /// What was wrong, and what was expected.
    pub message: String,
    /// Related places (e.g. where a macro was first defined).
    pub notes: Vec<(Span, String)>,
}

impl Diagnostic {
    /// An error at `span`.
    pub fn new(span: Span, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            span,
            message: message.into(),
            notes: Vec::new(),
        }
    }

    /// Adds a related place.
    pub fn with_note(mut self, span: Span, note: impl Into<String>) -> Diagnostic {
        self.notes.push((span, note.into()));
        self
    }

    /// `file:line:col: error: message`, then the source line with a caret.
    pub fn render(&self, sources: &SourceMap) -> String {
        let mut labels = vec![Label::primary(self.span.file, range(self.span))];
        labels.extend(
            self.notes
                .iter()
                .map(|(span, note)| Label::secondary(span.file, range(*span)).with_message(note)),
        );
        let report: Report<FileId> = Report::error()
            .with_message(format!("{}: {}", sources.location(self.span), self.message))
            .with_labels(labels);
        let config = term::Config::default();
        let mut out = String::new();
        let mut writer = term::termcolor::NoColor::new(Vec::new());
        if term::emit_to_write_style(&mut writer, &config, sources, &report).is_ok() {
            out = String::from_utf8_lossy(&writer.into_inner()).into_owned();
        }
        if out.is_empty() {
            out = format!("error: {}: {}\n", sources.location(self.span), self.message);
        }
        out
    }
}

fn range(span: Span) -> std::ops::Range<usize> {
    let start = span.start as usize;
    start..(span.end as usize).max(start)
}
