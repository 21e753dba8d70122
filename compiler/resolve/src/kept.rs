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
        let mut library = Library::default();
        for (path, layer) in scripts.iter().zip(layers) {
            let (file, found, clean) = parse_text(&mut session, path, texts.get(path)?, false);
            diagnostics.extend(found);
            if clean {
                library.add_kept(Arc::new(file), session.sources(), false, layer);
            }
        }
        library.shadow();
        Ok(TapsetLibrary {
            session,
            library,
            diagnostics,
        })
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
        self.session.set_guru_mode(options.guru);
        let (file, found, _) = parse_text(&mut self.session, script, text, true);
        self.session.set_guru_mode(false);
        let mut loaded = self.loaded();
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
}
