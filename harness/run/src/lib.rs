//! Runs scripts on the kernel matrix: reads test specs, compiles each
//! script for each kernel, boots each kernel once with all its scripts,
//! and judges every (script, kernel) cell against its snapshot and spec.

mod compile;
pub mod examples;
mod judge;
mod redact;
mod runner;
mod snapshot;
mod spec;

use std::path::{Path, PathBuf};

pub use compile::{Backend, Compilation, Compiled, Pass, compile, compile_spec, dump};
pub use judge::{ItemRun, judge};
pub use redact::{Redaction, Redactions};
pub use runner::{RunKernel, RunOptions, run_matrix};
pub use snapshot::{diff, matches, read_snapshot, snapshot_path};
pub use spec::{
    Applies, Define, GlobalSetting, Invocation, Limit, SnapshotScope, Spec, Warnings, parse_series,
};
pub use tapmatrix_report::{
    Attempt, Cell, KernelRun, Logs, Results, RunInfo, SCHEMA, ScriptInfo, ShardId, Status,
};
pub use tapmatrix_tracefs::FunctionEvents;

/// What can go wrong before any kernel runs.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A spec file does not parse.
    #[error("{}:{line}:{column}: {message}", path.display())]
    Spec {
        /// The spec.
        path: PathBuf,
        /// 1-based line (0 when unknown).
        line: u64,
        /// 1-based column (0 when unknown).
        column: u64,
        /// What is wrong.
        message: String,
    },
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

impl Error {
    fn io(path: &Path, source: std::io::Error) -> Error {
        Error::Io {
            path: path.to_owned(),
            source,
        }
    }
}
