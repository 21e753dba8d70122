//! The availability matrix of some sources over harvested kernels: each
//! kernel's sources preprocessed with its own profile (release, config),
//! then resolved against its facts.

use tapmatrix_facts::KernelFacts;

use crate::library::{LoadDiagnostic, LoadError, Sources, kernel_profile};
use crate::matrix::{KernelInput, Matrix, RowsOf};

/// A matrix and what was skipped on the way.
#[derive(Debug)]
pub struct Availability {
    /// Probe x kernel.
    pub matrix: Matrix,
    /// Parse errors in tapset files (as loaded for the first kernel): those
    /// files are skipped, as SystemTap skips them.
    pub skipped: Vec<LoadDiagnostic>,
}

/// Why no matrix could be built.
#[derive(Debug, thiserror::Error)]
pub enum AvailabilityError {
    /// The sources could not be read.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// The user's script does not parse for a kernel (its profile chose
    /// code with errors).
    #[error("the script does not parse for kernel {kernel}:\n{rendered}")]
    Script {
        /// The kernel id.
        kernel: String,
        /// The rendered diagnostics.
        rendered: String,
    },
}

/// Builds the matrix of `sources` over `kernels` (id and facts, in column
/// order), with rows as `rows_of` says.
pub fn availability(
    sources: &Sources,
    kernels: &[(&str, &KernelFacts)],
    rows_of: RowsOf,
) -> Result<Availability, AvailabilityError> {
    let shared = sources.load_shared(
        kernels
            .iter()
            .map(|(_, facts)| kernel_profile(facts))
            .collect(),
    )?;
    let mut skipped = Vec::new();
    let mut libraries = Vec::with_capacity(shared.distinct.len());
    for (index, loaded) in shared.distinct.into_iter().enumerate() {
        let (script, tapsets): (Vec<LoadDiagnostic>, Vec<LoadDiagnostic>) = loaded
            .diagnostics
            .into_iter()
            .partition(|diagnostic| diagnostic.in_script);
        if !script.is_empty() {
            // The first kernel that reads this library.
            let kernel = shared
                .of_kernel
                .iter()
                .position(|&of| of == index)
                .and_then(|kernel| kernels.get(kernel))
                .map_or("", |(id, _)| id);
            return Err(AvailabilityError::Script {
                kernel: kernel.to_owned(),
                rendered: script
                    .iter()
                    .map(|diagnostic| diagnostic.rendered.as_str())
                    .collect::<Vec<_>>()
                    .join("\n"),
            });
        }
        if index == 0 {
            skipped = tapsets;
        }
        libraries.push(loaded.library);
    }
    let inputs: Vec<KernelInput<'_>> = kernels
        .iter()
        .zip(&shared.of_kernel)
        .filter_map(|((id, facts), &index)| {
            Some(KernelInput {
                id,
                facts,
                library: libraries.get(index)?,
            })
        })
        .collect();
    Ok(Availability {
        matrix: Matrix::build(&inputs, rows_of),
        skipped,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matrix::Cell;
    use crate::tests::fixture;

    fn script(text: &str) -> (tempfile::TempDir, Sources) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.stp");
        std::fs::write(&path, text).unwrap();
        let sources = Sources {
            tapset_dirs: Vec::new(),
            script: Some(path),
            script_text: None,
        };
        (dir, sources)
    }

    #[test]
    fn each_kernel_reads_the_script_with_its_own_release() {
        let (old, new) = (fixture("5.10"), fixture("7.3"));
        let kernels = [("5.10", &old), ("7.3", &new)];
        // The conditional picks a function per kernel: each row is the
        // probe as one kernel reads it, resolved there and absent elsewhere.
        let (_dir, sources) = script(
            r#"probe kernel.function(%( kernel_v >= "6.10" %? "vfs_read" %: "vfs_write" %)) {}"#,
        );
        let found = availability(&sources, &kernels, RowsOf::ScriptProbes).unwrap();
        assert!(found.skipped.is_empty());
        assert_eq!(found.matrix.kernels, ["5.10", "7.3"]);
        let cells: Vec<(String, Vec<String>)> = found
            .matrix
            .rows
            .iter()
            .map(|row| {
                let cells = row.cells.iter().map(Cell::short).collect();
                (row.probe.clone(), cells)
            })
            .collect();
        assert_eq!(
            cells,
            [
                (
                    r#"kernel.function("vfs_write")"#.to_owned(),
                    vec!["ok 1".to_owned(), "-".to_owned()]
                ),
                (
                    r#"kernel.function("vfs_read")"#.to_owned(),
                    vec!["-".to_owned(), "ok 1".to_owned()]
                ),
            ]
        );

        // A script that parses for one kernel only is an error naming the other.
        let (_dir, sources) = script(r#"probe begin { %( kernel_v >= "6.0" %? x = %: x = 1 %) }"#);
        let error = availability(&sources, &kernels, RowsOf::ScriptProbes).unwrap_err();
        assert!(
            matches!(&error, AvailabilityError::Script { kernel, .. } if kernel == "7.3"),
            "{error}"
        );
    }
}
