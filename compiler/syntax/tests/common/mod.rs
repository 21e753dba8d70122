//! Helpers shared by the integration tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use tapmatrix_syntax::{File, FileKind, Profile, Session, print_file};

/// The outcome of parsing one source text.
pub struct Outcome {
    pub file: File,
    /// `line:col: message` of each diagnostic.
    pub errors: Vec<String>,
    /// Each diagnostic rendered with its source line and caret.
    pub rendered: Vec<String>,
}

pub fn parse_with(src: &str, profile: Profile, args: &[&str], kind: FileKind) -> Outcome {
    parse_with_macros(src, profile, args, kind, &[])
}

pub fn parse_with_macros(
    src: &str,
    profile: Profile,
    args: &[&str],
    kind: FileKind,
    library: &[(&str, &str)],
) -> Outcome {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let mut session = Session::new(profile, &args);
    for (name, text) in library {
        let id = session.add_source(*name, *text);
        let diags = session.define_library_macros(id);
        assert!(diags.is_empty(), "library macros: {diags:?}");
    }
    let id = session.add_source("test.stp", src);
    let parsed = session.parse(id, kind);
    Outcome {
        errors: parsed
            .diagnostics
            .iter()
            .map(|d| format!("{}:{}: {}", d.span.line, d.span.col, d.message))
            .collect(),
        rendered: parsed
            .diagnostics
            .iter()
            .map(|d| d.render(session.sources()))
            .collect(),
        file: parsed.file,
    }
}

pub const TAPSET: FileKind = FileKind {
    privileged: true,
    user_file: false,
};
pub const SCRIPT: FileKind = FileKind {
    privileged: false,
    user_file: true,
};

/// Parses a privileged file that must have no errors.
pub fn parse_ok(src: &str) -> File {
    let out = parse_with(src, Profile::default(), &[], TAPSET);
    assert!(
        out.errors.is_empty(),
        "unexpected errors: {:#?}",
        out.rendered
    );
    out.file
}

/// Parses, prints, parses the print again: both ASTs must be equal, and
/// printing must be idempotent. Returns the canonical print.
pub fn round_trip(src: &str) -> String {
    let first = parse_ok(src);
    let printed = print_file(&first);
    let second = parse_with(&printed, Profile::default(), &[], TAPSET);
    assert!(
        second.errors.is_empty(),
        "the print does not parse: {:#?}\n{printed}",
        second.rendered
    );
    assert_eq!(
        first, second.file,
        "the print parses to another AST:\n{printed}"
    );
    assert_eq!(
        printed,
        print_file(&second.file),
        "printing is not idempotent"
    );
    printed
}
