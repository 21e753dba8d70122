//! Loading for one kernel with every file's AST kept ([`Library::files`]),
//! for elaboration. The multi-kernel loader ([`Sources::load_all`]) keeps
//! none: resolving needs the aliases only, and copying every AST of a large
//! tapset library for every kernel would cost it a sixth of its time.
//!
//! Compiling many scripts for one kernel loads the tapsets once
//! ([`TapsetLibrary::load`]) and adds each script to them
//! ([`TapsetLibrary::with_script`]): the tapsets' ASTs are shared, only the
//! script is parsed per script.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tapmatrix_syntax::{Profile, Session};

use crate::library::{
    Library, LoadDiagnostic, LoadError, Loaded, Prepared, SCRIPT_LAYER, Sources, Texts, parse_text,
};

/// How the script itself is given, as `stap`'s command line gives it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScriptOptions {
    /// The script's arguments: `$1`, `@1`... and `$#`.
    pub args: Vec<String>,
    /// Guru mode (`stap -g`): the script may hold embedded C.
    pub guru: bool,
}

/// Tapset directories loaded for one profile, their ASTs kept: what every
/// script compiled for that kernel reads.
#[derive(Debug)]
pub struct TapsetLibrary {
    /// The session that read them (its library macros are the scripts' too).
    session: Session,
    /// The tapsets' aliases and files.
    library: Library,
    /// Parse errors in tapset files (those files are skipped).
    diagnostics: Vec<LoadDiagnostic>,
    /// The errors of the library macro files alone.
    base_diagnostics: Vec<LoadDiagnostic>,
    /// Every tapset file in load order, as read without arguments.
    files: Vec<TapsetFile>,
}

/// One tapset file as [`TapsetLibrary::load`] read it.
#[derive(Debug)]
struct TapsetFile {
    path: PathBuf,
    /// Its tapset directory.
    layer: usize,
    /// Whether its text names the command-line arguments ([`names_arguments`]).
    uses_args: bool,
    /// Its text when it does (parsed again per script), else empty.
    text: String,
    /// Its AST without arguments (`None`: it had parse errors, skipped).
    ast: Option<Arc<tapmatrix_syntax::ast::File>>,
    /// Its parse errors without arguments.
    diagnostics: Vec<LoadDiagnostic>,
}

/// Whether `text` names a command-line argument as SystemTap's lexer reads
/// one (`$#`, `@#`, `$N`, `@N`): such a tapset file (SystemTap's
/// `argv.stp`: `global argc = $#`, `%( $# >= 1 %? @1 %: "" %)`) is parsed
/// again with each script's own arguments, as `stap` parses its tapsets
/// with the script's. A mention in a comment or string only costs a parse.
fn names_arguments(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes
        .windows(2)
        .any(|pair| matches!(pair[0], b'$' | b'@') && (pair[1] == b'#' || pair[1].is_ascii_digit()))
}

impl TapsetLibrary {
    /// Reads and parses the tapset directories `tapset_dirs` (in order) for
    /// `profile`, keeping the ASTs.
    pub fn load(tapset_dirs: &[PathBuf], profile: Profile) -> Result<TapsetLibrary, LoadError> {
        let sources = Sources {
            tapset_dirs: tapset_dirs.to_vec(),
            script: None,
            script_text: None,
        };
        let Prepared {
            mut session,
            mut diagnostics,
            scripts,
            layers,
            ..
        } = sources.prepare(profile, &mut HashMap::new())?;
        let mut texts = Texts::default();
        let mut files = Vec::with_capacity(scripts.len());
        let mut library = Library::default();
        let base_diagnostics = diagnostics.clone();
        for (path, layer) in scripts.iter().zip(layers) {
            let text = texts.get(path)?;
            let uses_args = names_arguments(text);
            let (file, found, clean) = parse_text(&mut session, path, text, false);
            let text = if uses_args {
                text.to_owned()
            } else {
                String::new()
            };
            diagnostics.extend(found.iter().cloned());
            let ast = clean.then(|| Arc::new(file));
            if let Some(ast) = &ast {
                library.add_kept(Arc::clone(ast), session.sources(), false, layer);
            }
            files.push(TapsetFile {
                path: path.clone(),
                layer,
                text,
                uses_args,
                ast,
                diagnostics: found,
            });
        }
        library.shadow();
        Ok(TapsetLibrary {
            session,
            library,
            diagnostics,
            base_diagnostics,
            files,
        })
    }

    /// The library again, its files that name the command-line arguments
    /// parsed with the arguments the session has now.
    fn with_arguments(&mut self) -> Loaded {
        let mut library = Library::default();
        let mut diagnostics = self.base_diagnostics.clone();
        for file in &self.files {
            let ast = if file.uses_args {
                let (ast, found, clean) =
                    parse_text(&mut self.session, &file.path, &file.text, false);
                diagnostics.extend(found);
                clean.then(|| Arc::new(ast))
            } else {
                diagnostics.extend(file.diagnostics.iter().cloned());
                file.ast.clone()
            };
            if let Some(ast) = ast {
                library.add_kept(ast, self.session.sources(), false, file.layer);
            }
        }
        library.shadow();
        Loaded {
            library,
            diagnostics,
        }
    }

    /// The tapsets alone, as [`Sources::load`] gives them without a script.
    pub fn loaded(&self) -> Loaded {
        Loaded {
            library: self.library.clone(),
            diagnostics: self.diagnostics.clone(),
        }
    }

    /// The tapsets with `script` added, as [`Sources::load`] gives them
    /// with that script: the tapsets' ASTs are shared, not parsed again.
    /// The script is read from its file, or is `text` when given (`-e`,
    /// named `<input>`). Its parse errors are among the diagnostics
    /// (`in_script`).
    pub fn with_script(
        &mut self,
        script: &Path,
        text: Option<String>,
    ) -> Result<Loaded, LoadError> {
        self.with_script_options(script, text, &ScriptOptions::default())
    }

    /// [`TapsetLibrary::with_script`] with the script's command-line
    /// arguments (`$1`, `@1`, `$#`) and guru mode, as `stap` takes them.
    pub fn with_script_options(
        &mut self,
        script: &Path,
        text: Option<String>,
        options: &ScriptOptions,
    ) -> Result<Loaded, LoadError> {
        let mut texts = Texts::of(&Sources {
            tapset_dirs: Vec::new(),
            script: Some(script.to_path_buf()),
            script_text: text,
        });
        let text = texts.get(script)?;
        self.session.set_args(&options.args);
        // The tapsets were read without arguments; those that name them
        // read this script's.
        let mut loaded = if options.args.is_empty() || !self.files.iter().any(|f| f.uses_args) {
            self.loaded()
        } else {
            self.with_arguments()
        };
        self.session.set_guru_mode(options.guru);
        let (file, found, _) = parse_text(&mut self.session, script, text, true);
        self.session.set_guru_mode(false);
        loaded.diagnostics.extend(found);
        loaded
            .library
            .add_kept(Arc::new(file), self.session.sources(), true, SCRIPT_LAYER);
        Ok(loaded)
    }
}

impl Sources {
    /// Reads and parses everything for one profile, keeping the ASTs.
    pub(crate) fn load_kept(&self, profile: Profile) -> Result<Loaded, LoadError> {
        let mut tapsets = TapsetLibrary::load(&self.tapset_dirs, profile)?;
        match &self.script {
            Some(script) => tapsets.with_script(script, self.script_text.clone()),
            None => Ok(tapsets.loaded()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_added_to_one_load_read_as_loaded_alone() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        let tapsets = dir.path().join("tapsets");
        std::fs::create_dir(&tapsets).unwrap();
        write("tapsets/m.stpm", "@define two %( 2 %)\n");
        write(
            "tapsets/a.stp",
            "probe a = kernel.function(\"x\") { v = @two }\n",
        );
        write("tapsets/broken.stp", "probe b = {\n");
        let first = write("first.stp", "probe a { println(v) }\n");
        let second = write(
            "second.stp",
            "probe begin { x = @two; }\nprobe a, begin {}\n",
        );
        let bad = write("bad.stp", "probe begin { x = }\n");
        let profile = Profile::default();
        let mut library =
            TapsetLibrary::load(std::slice::from_ref(&tapsets), profile.clone()).unwrap();
        for script in [&first, &second, &bad, &first] {
            let shared = library.with_script(script, None).unwrap();
            let alone = Sources {
                tapset_dirs: vec![tapsets.clone()],
                script: Some(script.clone()),
                script_text: None,
            }
            .load(profile.clone())
            .unwrap();
            let probes = |loaded: &Loaded| -> Vec<(String, String)> {
                loaded
                    .library
                    .probes
                    .iter()
                    .map(|p| (p.label(), p.location.clone()))
                    .collect()
            };
            assert_eq!(probes(&shared), probes(&alone));
            assert_eq!(shared.library.alias_names(), alone.library.alias_names());
            assert_eq!(shared.library.files.len(), alone.library.files.len());
            let rendered = |loaded: &Loaded| -> Vec<(bool, String)> {
                loaded
                    .diagnostics
                    .iter()
                    .map(|d| (d.in_script, d.rendered.clone()))
                    .collect()
            };
            assert_eq!(rendered(&shared), rendered(&alone));
            let script_file = shared.library.files.last().unwrap();
            assert!(script_file.script);
            assert_eq!(
                shared
                    .library
                    .probe_ast(&shared.library.probes[0])
                    .map(|(p, _)| p.points.len()),
                alone
                    .library
                    .probe_ast(&alone.library.probes[0])
                    .map(|(p, _)| p.points.len())
            );
        }
        // The broken tapset is skipped, and said so, once per load.
        assert_eq!(library.loaded().diagnostics.len(), 1);
    }

    #[test]
    fn tapset_files_that_name_the_arguments_read_each_scripts_own() {
        let dir = tempfile::tempdir().unwrap();
        let tapsets = dir.path().join("tapsets");
        std::fs::create_dir(&tapsets).unwrap();
        std::fs::write(
            tapsets.join("argv.stp"),
            "global argc = $#\nglobal argv_1 = %( $# >= 1 %? @1 %: \"\" %)\n",
        )
        .unwrap();
        std::fs::write(tapsets.join("plain.stp"), "global other = 1\n").unwrap();
        let script = dir.path().join("s.stp");
        std::fs::write(&script, "probe begin { println(argv_1) }\n").unwrap();
        let mut library = TapsetLibrary::load(&[tapsets], Profile::default()).unwrap();
        let globals = |loaded: &Loaded| -> Vec<String> {
            loaded
                .library
                .files
                .iter()
                .filter(|f| !f.script)
                .flat_map(|f| f.ast.items.iter())
                .filter_map(|item| match item {
                    tapmatrix_syntax::ast::Item::Global(g) => {
                        Some(format!("{} = {:?}", g.name, g.init))
                    }
                    _ => None,
                })
                .collect()
        };
        let options = |args: &[&str]| ScriptOptions {
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            guru: false,
        };
        for (args, argc, argv_1) in [
            (&["first", "second"][..], "2", "\"first\""),
            (&[][..], "0", "\"\""),
            (&["again"][..], "1", "\"again\""),
        ] {
            let loaded = library
                .with_script_options(&script, None, &options(args))
                .unwrap();
            let found = globals(&loaded);
            assert_eq!(found.len(), 3, "{found:?}");
            assert!(
                found
                    .iter()
                    .any(|g| g.starts_with("argc = ") && g.contains(argc)),
                "{args:?}: {found:?}"
            );
            assert!(
                found
                    .iter()
                    .any(|g| g.starts_with("argv_1 = ") && g.contains(argv_1)),
                "{args:?}: {found:?}"
            );
            assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
        }
    }
}
