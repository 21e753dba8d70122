//! Loading for one kernel with every file's AST kept ([`Library::files`]),
//! for elaboration. The multi-kernel loader ([`Sources::load_all`]) keeps
//! none: resolving needs the aliases only, and copying every AST of a large
//! tapset library for every kernel would cost it a sixth of its time.

use std::path::Path;
use std::sync::Arc;

use tapmatrix_syntax::{FileKind, Profile, Session, ast, tapset_files};

use crate::library::{Library, LoadDiagnostic, LoadError, Loaded, Sources};

impl Sources {
    /// Reads and parses everything for one profile, keeping the ASTs.
    pub(crate) fn load_kept(&self, profile: Profile) -> Result<Loaded, LoadError> {
        let mut session = Session::new(profile, &[]);
        let mut diagnostics = Vec::new();
        let mut scripts = Vec::new();
        for dir in &self.tapset_dirs {
            let files = tapset_files(dir, session.profile()).map_err(|source| LoadError::Read {
                path: dir.clone(),
                source,
            })?;
            for macros in &files.macros {
                let found = session
                    .load_library_macros(std::slice::from_ref(macros))
                    .map_err(|e| LoadError::Read {
                        path: macros.clone(),
                        source: std::io::Error::other(e.to_string()),
                    })?;
                diagnostics.extend(found.iter().map(|d| LoadDiagnostic {
                    in_script: false,
                    rendered: d.render(session.sources()),
                }));
            }
            scripts.extend(files.scripts);
        }
        let mut library = Library::default();
        for path in &scripts {
            let (file, found) = parse(&mut session, path, false)?;
            let clean = found.is_empty();
            diagnostics.extend(found);
            if clean {
                library.add_kept(Arc::new(file), session.sources(), false);
            }
        }
        if let Some(script) = &self.script {
            let (file, found) = parse(&mut session, script, true)?;
            diagnostics.extend(found);
            library.add_kept(Arc::new(file), session.sources(), true);
        }
        Ok(Loaded {
            library,
            diagnostics,
        })
    }
}

/// Parses one file in a session: the AST and its diagnostics.
fn parse(
    session: &mut Session,
    path: &Path,
    script: bool,
) -> Result<(ast::File, Vec<LoadDiagnostic>), LoadError> {
    let id = session.load(path).map_err(|e| LoadError::Read {
        path: path.to_owned(),
        source: std::io::Error::other(e.to_string()),
    })?;
    let parsed = session.parse(
        id,
        FileKind {
            privileged: !script,
            user_file: script,
        },
    );
    let diagnostics = parsed
        .diagnostics
        .iter()
        .map(|d| LoadDiagnostic {
            in_script: script,
            rendered: d.render(session.sources()),
        })
        .collect();
    Ok((parsed.file, diagnostics))
}
