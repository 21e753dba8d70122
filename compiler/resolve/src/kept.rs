//! Loading for one kernel with every file's AST kept ([`Library::files`]),
//! for elaboration. The multi-kernel loader ([`Sources::load_all`]) keeps
//! none: resolving needs the aliases only, and copying every AST of a large
//! tapset library for every kernel would cost it a sixth of its time.

use std::collections::HashMap;
use std::sync::Arc;

use tapmatrix_syntax::Profile;

use crate::library::{Library, LoadError, Loaded, Prepared, Sources, Texts, parse_text};

impl Sources {
    /// Reads and parses everything for one profile, keeping the ASTs.
    pub(crate) fn load_kept(&self, profile: Profile) -> Result<Loaded, LoadError> {
        let Prepared {
            mut session,
            mut diagnostics,
            scripts,
            ..
        } = self.prepare(profile, &mut HashMap::new())?;
        let mut texts = Texts::of(self);
        let mut library = Library::default();
        for path in &scripts {
            let (file, found, clean) = parse_text(&mut session, path, texts.get(path)?, false);
            diagnostics.extend(found);
            if clean {
                library.add_kept(Arc::new(file), session.sources(), false);
            }
        }
        if let Some(script) = &self.script {
            let (file, found, _) = parse_text(&mut session, script, texts.get(script)?, true);
            diagnostics.extend(found);
            library.add_kept(Arc::new(file), session.sources(), true);
        }
        Ok(Loaded {
            library,
            diagnostics,
        })
    }
}
