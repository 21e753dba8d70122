//! The SystemTap language front end: lexer, preprocessor, parser, AST,
//! pretty-printer and diagnostics.
//!
//! It reads the language as SystemTap's own parser does, so that real
//! tapsets and scripts load unchanged:
//!
//! ```
//! use tapmatrix_syntax::{FileKind, Profile, Session, print_file};
//!
//! let mut session = Session::new(Profile::default(), &[]);
//! let file = session.add_source("hello.stp", r#"probe begin { printf("hi\n"); exit() }"#);
//! let parsed = session.parse(file, FileKind { privileged: false, user_file: true });
//! assert!(parsed.diagnostics.is_empty());
//! assert!(print_file(&parsed.file).starts_with("probe begin {"));
//! ```

pub mod ast;
pub mod diagnostic;
pub mod lexer;
pub mod parser;
pub mod preprocess;
pub mod print;
pub mod profile;
pub mod span;
pub mod tapset;
pub mod token;

use std::path::Path;
use std::sync::Arc;

pub use ast::File;
pub use diagnostic::Diagnostic;
pub use parser::FileKind;
pub use print::{print_expr, print_file};
pub use profile::{Privilege, Profile, Runtime};
pub use span::{FileId, SourceMap, Span};
pub use tapset::{TapsetFiles, tapset_files};

use lexer::Args;
use preprocess::{LibraryMacros, Preprocessor};

/// Errors that are not about a script's text.
#[derive(Debug, thiserror::Error)]
pub enum SyntaxError {
    /// A source file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

/// A parsed file with its diagnostics.
#[derive(Debug)]
pub struct Parsed {
    /// The file parsed.
    pub file_id: FileId,
    /// The AST (whatever could be parsed, when there were errors).
    pub file: File,
    /// Errors, in source order.
    pub diagnostics: Vec<Diagnostic>,
}

/// One front-end session: the sources, the target profile, the command-line
/// arguments and the library macros every file sees.
#[derive(Debug)]
pub struct Session {
    sources: SourceMap,
    profile: Profile,
    args: Args,
    library_macros: LibraryMacros,
    /// Library macros of earlier tapset directories, which a later
    /// directory's files may define again ([`Session::begin_macro_layer`]).
    shadowable: std::collections::HashSet<String>,
    /// The token buffer of [`Session::parse`], kept between files.
    tokens: std::cell::RefCell<Vec<token::Token>>,
}

impl Session {
    /// A session for `profile`, with `args` as `$1`, `@1`...
    pub fn new(profile: Profile, args: &[String]) -> Session {
        let mut sources = SourceMap::new();
        let args = Args::new(&mut sources, args);
        Session {
            sources,
            profile,
            args,
            library_macros: LibraryMacros::default(),
            shadowable: std::collections::HashSet::new(),
            tokens: std::cell::RefCell::default(),
        }
    }

    /// The sources, for rendering diagnostics.
    pub fn sources(&self) -> &SourceMap {
        &self.sources
    }

    /// The profile.
    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    /// Replaces the command-line arguments (`$1`, `@1`, `$#`) the files
    /// parsed from now on see: a session that loaded a tapset library
    /// once parses each script with that script's own arguments.
    pub fn set_args(&mut self, args: &[String]) {
        self.args = Args::new(&mut self.sources, args);
    }

    /// Sets guru mode (`stap -g`) for the files parsed from now on: user
    /// files may hold embedded C, and `guru_mode` reads 1 in conditionals.
    pub fn set_guru_mode(&mut self, guru: bool) {
        self.profile.guru_mode = guru;
    }

    /// Adds a source text.
    pub fn add_source(&mut self, name: impl Into<String>, text: impl Into<String>) -> FileId {
        self.sources.add(name, text)
    }

    /// Reads a file into the session.
    pub fn load(&mut self, path: &Path) -> Result<FileId, SyntaxError> {
        let bytes = std::fs::read(path).map_err(|source| SyntaxError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let text = String::from_utf8(bytes)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
        Ok(self.sources.add(path.display().to_string(), text))
    }

    /// Reads a `.stpm` library macro file: its macros become visible to
    /// every file parsed afterwards. A file with any error (or a macro that
    /// another library file already defines) adds no macro, as in SystemTap.
    pub fn define_library_macros(&mut self, file: FileId) -> Vec<Diagnostic> {
        let tokens = lexer::Tokens::new(&self.sources, file, &self.args);
        let mut pp = Preprocessor::new(&self.sources, &self.profile, &self.library_macros, tokens);
        pp.library_file = true;
        let rest = pp.run();
        let mut diagnostics = std::mem::take(&mut pp.diagnostics);
        if let Some(t) = rest.first() {
            diagnostics.push(Diagnostic::new(
                t.span,
                "unexpected token in a library macro file (.stpm files may only hold @define)",
            ));
        }
        let macros = pp.into_macros();
        for m in macros.values() {
            if let Some(first) = self.library_macros.get(&m.name)
                && !self.shadowable.contains(&m.name)
            {
                diagnostics.push(
                    Diagnostic::new(
                        m.span,
                        format!("duplicate definition of library macro '@{}'", m.name),
                    )
                    .with_note(
                        first.span,
                        format!("macro '@{}' first defined here", m.name),
                    ),
                );
            }
        }
        if diagnostics.is_empty() {
            for name in macros.keys() {
                self.shadowable.remove(name);
            }
            self.library_macros
                .extend(macros.into_iter().map(|(k, v)| (k, Arc::clone(&v))));
        }
        sort(&mut diagnostics);
        diagnostics
    }

    /// Starts the library macros of another tapset directory: its `.stpm`
    /// files may define again a macro an earlier directory defined, and
    /// their definition replaces it (within one directory a second
    /// definition is still an error).
    pub fn begin_macro_layer(&mut self) {
        self.shadowable.extend(self.library_macros.keys().cloned());
    }

    /// Reads `.stpm` library macro files (e.g. [`TapsetFiles::macros`]), in
    /// order; returns their diagnostics.
    pub fn load_library_macros(
        &mut self,
        paths: &[impl AsRef<Path>],
    ) -> Result<Vec<Diagnostic>, SyntaxError> {
        let mut diagnostics = Vec::new();
        for path in paths {
            let id = self.load(path.as_ref())?;
            diagnostics.extend(self.define_library_macros(id));
        }
        Ok(diagnostics)
    }

    /// Reads and parses one file.
    pub fn parse_path(&mut self, path: &Path, kind: FileKind) -> Result<Parsed, SyntaxError> {
        let id = self.load(path)?;
        Ok(self.parse(id, kind))
    }

    /// Preprocesses and parses one file.
    pub fn parse(&self, file: FileId, kind: FileKind) -> Parsed {
        let tokens = lexer::Tokens::new(&self.sources, file, &self.args);
        let mut pp = Preprocessor::new(&self.sources, &self.profile, &self.library_macros, tokens);
        // One buffer for every file: taken (a nested parse would get an
        // empty one), filled, and put back for the next file.
        let mut tokens = self.tokens.take();
        tokens.clear();
        pp.run_into(&mut tokens);
        let mut diagnostics = std::mem::take(&mut pp.diagnostics);
        let kind = FileKind {
            privileged: kind.privileged || self.profile.guru_mode,
            ..kind
        };
        let ast = parser::parse_tokens(
            &self.sources,
            &tokens,
            kind,
            self.args.len(),
            &mut diagnostics,
        );
        if kind.user_file && tokens.is_empty() && diagnostics.is_empty() {
            let name = self.sources.file(file).map_or("", |f| f.name.as_str());
            let message = if pp.saw_tokens {
                format!("input file '{name}' is empty after preprocessing")
            } else {
                format!("input file '{name}' is empty")
            };
            diagnostics.push(Diagnostic::new(
                Span {
                    file,
                    line: 1,
                    col: 1,
                    ..Span::default()
                },
                message,
            ));
        }
        self.tokens.replace(tokens);
        sort(&mut diagnostics);
        Parsed {
            file_id: file,
            file: ast,
            diagnostics,
        }
    }
}

fn sort(diagnostics: &mut [Diagnostic]) {
    diagnostics.sort_by_key(|d| (d.span.file, d.span.start));
}
