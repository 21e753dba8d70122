//! Joining the results of shards into the results of one run.

use crate::model::{Results, RunInfo, SCHEMA};

/// Why shards do not merge.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    /// Nothing to merge.
    #[error("no results to merge")]
    Empty,
    /// Two shards ran the same cell.
    #[error("{script} on {kernel} is in two of the results: were they shards of one plan?")]
    Duplicate {
        /// The script.
        script: String,
        /// The kernel.
        kernel: String,
    },
    /// The same script differs between shards.
    #[error(
        "script {script} has different fingerprints in two shards: they ran different checkouts"
    )]
    Fingerprint {
        /// The script.
        script: String,
    },
}

/// Merges shard results. Kernels follow `kernel_order` (the matrix's),
/// then their first appearance; a kernel split over shards sums its boot
/// time and keeps the first infra reason. The availability matrix is the
/// first shard's that has one. The result is normalized, so it equals the
/// normalized results of one unsharded run up to timings.
pub fn merge(parts: Vec<Results>, kernel_order: &[String]) -> Result<Results, MergeError> {
    let Some(first) = parts.first() else {
        return Err(MergeError::Empty);
    };
    let mut merged = Results::new(RunInfo {
        id: first.run.id.clone(),
        tool: first.run.tool.clone(),
        shard: None,
    });
    merged.schema = SCHEMA;
    for part in parts {
        for kernel in part.kernels {
            match merged.kernels.iter_mut().find(|k| k.id == kernel.id) {
                Some(known) => {
                    known.boot_ms += kernel.boot_ms;
                    if known.release.is_none() {
                        known.release = kernel.release;
                    }
                    if known.infra.is_none() {
                        known.infra = kernel.infra;
                    }
                    known.logs.extend(kernel.logs);
                }
                None => merged.kernels.push(kernel),
            }
        }
        for script in part.scripts {
            match merged.scripts.iter().find(|s| s.name == script.name) {
                Some(known) if known.fingerprint != script.fingerprint => {
                    return Err(MergeError::Fingerprint {
                        script: script.name,
                    });
                }
                Some(_) => {}
                None => merged.scripts.push(script),
            }
        }
        for cell in part.cells {
            if merged.cell(&cell.script, &cell.kernel).is_some() {
                return Err(MergeError::Duplicate {
                    script: cell.script,
                    kernel: cell.kernel,
                });
            }
            merged.cells.push(cell);
        }
        if merged.probes.is_none() {
            merged.probes = part.probes;
        }
    }
    let rank = |id: &str| {
        kernel_order
            .iter()
            .position(|k| k == id)
            .unwrap_or(usize::MAX)
    };
    // Stable: kernels unknown to the order keep their first appearance.
    merged.kernels.sort_by_key(|k| rank(&k.id));
    merged.normalize();
    Ok(merged)
}
