//! The results model: what one run on the matrix produced, as
//! `results.json` (schema 2). Every report is rendered from it.
//!
//! ```text
//! { "schema": 2,
//!   "run": { "id": "...", "tool": "tapmatrix 0.1.0", "shard": { "index": 1, "of": 3 } },
//!   "kernels": [ { "id": "6.12", "release": "6.12.41+deb13-amd64", "boot_ms": 41000,
//!                  "infra": null, "logs": ["logs/6.12/boot-1.console.log"] } ],
//!   "scripts": [ { "name": "vfs_read", "description": "...", "fingerprint": "sha256:..." } ],
//!   "cells": [ { "script": "vfs_read", "kernel": "6.12",
//!                "status": "pass|not_available|flaky|fail|error|infra",
//!                "detail": "...", "output": "...", "expected": "...",
//!                "hits": 12, "lost": 0, "elapsed_ms": 900,
//!                "backend": "tracefs", "first_attempt": { ... },
//!                "logs": { "console": "logs/6.12/boot-1.console.log",
//!                          "agent": "logs/6.12/vfs_read.agent.log" } } ],
//!   "probes": MATRIX }
//! ```
//!
//! - `schema`: [`SCHEMA`]; a reader accepts 1 (the fields it lacks take
//!   their defaults) and 2.
//! - `run`: who made the file: a run id (KCIDB ids are built from it), the
//!   tool and version, the shard when the run was one shard of a plan.
//! - `kernels`: the kernels of the run in matrix order: id, release
//!   (`uname -r`, from its facts), wall time of its boots (boot to
//!   power-off, summed over boots), why the boot failed if it did, and the
//!   console logs of its boots (paths relative to the directory of
//!   `results.json`).
//! - `scripts`: each script run: its name, its spec's description, and a
//!   fingerprint of the script, its spec and its snapshots (a change is a
//!   changed test, not a kernel regression: see [`crate::compare`]).
//! - `cells`: one per (script, kernel), by script then kernel: the
//!   [`Status`], why in a line (`detail`), the output (redacted) and what
//!   the snapshot expected, hits and lost events, time in the guest, the
//!   back end that served it (`tracefs`, later `bpf`), for a flaky cell
//!   the failed first attempt, and for every cell that is not a pass the
//!   console log of its boot and the agent's log of the item (relative
//!   paths).
//! - `probes`: the availability matrix of the tapsets, alias x kernel
//!   (`tapmatrix_resolve::Matrix`, its own schema 1), when the run or
//!   `tapmatrix resolve` computed it.
//! - Per kernel, `retry: {cause, first_console_log}` when its boot died
//!   under some scripts and was booted again for them; per cell,
//!   `workload: {stdout?, stderr?}`: what the workload itself wrote (shown
//!   and kept, never compared).
//!
//! Readers ignore fields they do not know, so later additions stay
//! readable by older renderers.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tapmatrix_resolve::Matrix;

/// The `schema` of `results.json`; bumped on any incompatible change.
pub const SCHEMA: u32 = 2;

/// The line between standard output and standard error in a cell's output.
pub const STDERR_LINE: &str = "--- stderr ---\n";

/// How one (script, kernel) cell ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Ran, and printed what its snapshot says.
    Pass,
    /// The spec says the script does not apply here, and its probes indeed
    /// do not resolve.
    NotAvailable,
    /// Failed, then passed when rerun once: reported as flaky, never as a
    /// pass (the first attempt is kept in the cell).
    Flaky,
    /// Ran, but the output differs from the snapshot, there is no snapshot
    /// yet, or availability differs from the spec.
    Fail,
    /// The script did not compile for this kernel, or the kernel refused an
    /// event (its own words are in the detail).
    Error,
    /// The kernel did not boot, timed out, or died: not the script's fault.
    Infra,
}

impl Status {
    /// Every status, in report order.
    pub const ALL: [Status; 6] = [
        Status::Pass,
        Status::NotAvailable,
        Status::Flaky,
        Status::Fail,
        Status::Error,
        Status::Infra,
    ];

    /// The word the table shows.
    pub fn word(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::NotAvailable => "n/a",
            Status::Flaky => "FLAKY",
            Status::Fail => "FAIL",
            Status::Error => "ERROR",
            Status::Infra => "infra",
        }
    }

    /// The name in `results.json` (`not_available`...).
    pub fn key(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::NotAvailable => "not_available",
            Status::Flaky => "flaky",
            Status::Fail => "fail",
            Status::Error => "error",
            Status::Infra => "infra",
        }
    }

    /// Whether the cell is good: a pass, or not available as the spec says.
    pub fn is_good(self) -> bool {
        matches!(self, Status::Pass | Status::NotAvailable)
    }

    /// Whether the cell failed (the script's or the tool's fault, not the
    /// infrastructure's): fail, error, or flaky.
    pub fn is_failure(self) -> bool {
        matches!(self, Status::Fail | Status::Error | Status::Flaky)
    }
}

/// The logs of a cell that is not a pass, relative to the directory of
/// `results.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Logs {
    /// The console log of the boot the cell ran in.
    pub console: String,
    /// The agent's messages about the item, one JSON object a line.
    pub agent: String,
}

/// A failed first attempt of a cell that passed when rerun.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    /// How it ended.
    pub status: Status,
    /// Why.
    pub detail: String,
    /// What it printed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    /// Its logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logs: Option<Logs>,
}

/// One (script, kernel) cell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cell {
    /// The script's name.
    pub script: String,
    /// The kernel's id.
    pub kernel: String,
    /// How it ended.
    pub status: Status,
    /// Why, in a line (empty for a pass).
    #[serde(default)]
    pub detail: String,
    /// What the script printed (standard output, then standard error after
    /// a `--- stderr ---` line), redacted as its spec says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    /// What was expected, when a snapshot exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<String>,
    /// Event hits handled.
    #[serde(default)]
    pub hits: u64,
    /// Events lost in the kernel's ring buffer.
    #[serde(default)]
    pub lost: u64,
    /// Hits whose BPF handler the kernel did not run (another BPF program
    /// was running on that CPU) or that found no scratch slot free.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub skipped: u64,
    /// Wall time of the run in the guest, in milliseconds.
    #[serde(default)]
    pub elapsed_ms: u64,
    /// The back end that served the script (`tracefs`), when it ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
    /// For a flaky cell: the attempt that failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_attempt: Option<Box<Attempt>>,
    /// The console and agent logs, for a cell that is not a pass and ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logs: Option<Logs>,
    /// What the workload (`-c`, the spec's `workload`) wrote: shown, kept,
    /// never compared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload: Option<WorkloadOutput>,
}

/// What a workload wrote on its standard output and error (a head and a
/// tail when it wrote a lot, with a line saying how much was left out).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkloadOutput {
    /// Standard output.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub stdout: String,
    /// Standard error.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub stderr: String,
}

impl WorkloadOutput {
    /// Whether it wrote nothing.
    pub fn is_empty(&self) -> bool {
        self.stdout.is_empty() && self.stderr.is_empty()
    }
}

impl Cell {
    /// A cell with no run data.
    pub fn new(script: &str, kernel: &str, status: Status, detail: impl Into<String>) -> Cell {
        Cell {
            script: script.to_owned(),
            kernel: kernel.to_owned(),
            status,
            detail: detail.into(),
            output: None,
            expected: None,
            hits: 0,
            lost: 0,
            skipped: 0,
            elapsed_ms: 0,
            backend: None,
            first_attempt: None,
            logs: None,
            workload: None,
        }
    }

    /// The output's standard output and standard error, apart again.
    pub fn output_streams(&self) -> (&str, &str) {
        let output = self.output.as_deref().unwrap_or_default();
        output.rsplit_once(STDERR_LINE).unwrap_or((output, ""))
    }

    /// The unified diff of expected and actual output, when both exist and
    /// differ.
    pub fn diff(&self) -> Option<String> {
        let (expected, actual) = (self.expected.as_ref()?, self.output.as_ref()?);
        (expected.trim_end() != actual.trim_end())
            .then(|| crate::text::unified_diff(expected, actual, "expected", "actual"))
    }
}

/// One kernel of the run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelRun {
    /// Its id.
    pub id: String,
    /// Its release (`uname -r`), when its facts are known.
    #[serde(default)]
    pub release: Option<String>,
    /// Boot to power-off, in milliseconds, summed over its boots (0 when
    /// nothing was booted).
    #[serde(default)]
    pub boot_ms: u64,
    /// Why the boot failed, if it did.
    #[serde(default)]
    pub infra: Option<String>,
    /// The console logs of its boots, in order (relative paths).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub logs: Vec<String>,
    /// The boot died under some scripts and was booted again for them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<Retry>,
}

/// A boot that died and was booted again for the scripts it left.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retry {
    /// Why the first boot died.
    pub cause: String,
    /// The first boot's console log (the later boots' are beside it, in
    /// `retry/`, then `retry-2/`, ... when a retry died too).
    pub first_console_log: std::path::PathBuf,
}

impl KernelRun {
    /// A kernel that was not booted.
    pub fn unbooted(id: &str) -> KernelRun {
        KernelRun {
            id: id.to_owned(),
            release: None,
            boot_ms: 0,
            infra: None,
            logs: Vec::new(),
            retry: None,
        }
    }
}

/// A script of the run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScriptInfo {
    /// Its name (the file stem).
    pub name: String,
    /// What it shows, from its spec.
    #[serde(default)]
    pub description: String,
    /// `sha256:HEX` of the script, its spec and its snapshots.
    #[serde(default)]
    pub fingerprint: String,
}

/// One shard of a plan (1-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardId {
    /// This shard, 1 to `of`.
    pub index: usize,
    /// How many shards.
    pub of: usize,
}

impl std::fmt::Display for ShardId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.of)
    }
}

impl std::str::FromStr for ShardId {
    type Err = String;

    fn from_str(text: &str) -> Result<ShardId, String> {
        let bad = || format!("`{text}` is not a shard I/N (like 1/3, with 1 <= I <= N)");
        let (index, of) = text.split_once('/').ok_or_else(bad)?;
        let (index, of): (usize, usize) = (
            index.trim().parse().map_err(|_| bad())?,
            of.trim().parse().map_err(|_| bad())?,
        );
        if index == 0 || index > of {
            return Err(bad());
        }
        Ok(ShardId { index, of })
    }
}

/// Who made a results file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunInfo {
    /// An id for the run (KCIDB ids are made from it); empty when unknown.
    #[serde(default)]
    pub id: String,
    /// `tapmatrix VERSION`.
    #[serde(default)]
    pub tool: String,
    /// The shard this run was, if it was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<ShardId>,
}

/// Everything a run produced (see the module documentation for the schema).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Results {
    /// [`SCHEMA`].
    pub schema: u32,
    /// Who made it.
    #[serde(default)]
    pub run: RunInfo,
    /// The kernels, in matrix order.
    pub kernels: Vec<KernelRun>,
    /// The scripts, by name.
    #[serde(default)]
    pub scripts: Vec<ScriptInfo>,
    /// The cells, by script then kernel.
    #[serde(default)]
    pub cells: Vec<Cell>,
    /// The tapsets' availability matrix, alias x kernel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probes: Option<Matrix>,
}

/// Why a results file cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// Not JSON of the results schema.
    #[error("{path}:{line}:{column}: not a tapmatrix results file: {message}")]
    Json {
        /// The file.
        path: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What serde said.
        message: String,
    },
    /// A schema this tapmatrix does not read.
    #[error(
        "{path}: results schema {schema}; this tapmatrix reads schemas 1 and {SCHEMA}: render it with the tapmatrix that wrote it, or run again"
    )]
    Schema {
        /// The file.
        path: String,
        /// Its schema.
        schema: u32,
    },
}

impl Results {
    /// An empty run.
    pub fn new(run: RunInfo) -> Results {
        Results {
            schema: SCHEMA,
            run,
            kernels: Vec::new(),
            scripts: Vec::new(),
            cells: Vec::new(),
            probes: None,
        }
    }

    /// The results of `tapmatrix resolve`: the availability matrix alone,
    /// its kernels unbooted.
    pub fn from_matrix(run: RunInfo, matrix: Matrix) -> Results {
        let mut results = Results::new(run);
        results.kernels = matrix
            .kernels
            .iter()
            .map(|id| KernelRun::unbooted(id))
            .collect();
        results.probes = Some(matrix);
        results
    }

    /// Parses `results.json` text (`path` names it in errors).
    pub fn from_json(path: &str, text: &str) -> Result<Results, ReadError> {
        #[derive(Deserialize)]
        struct Version {
            schema: u32,
        }
        let json_error = |error: serde_json::Error| ReadError::Json {
            path: path.to_owned(),
            line: error.line(),
            column: error.column(),
            message: error.to_string(),
        };
        let version: Version = serde_json::from_str(text).map_err(json_error)?;
        if !matches!(version.schema, 1 | SCHEMA) {
            return Err(ReadError::Schema {
                path: path.to_owned(),
                schema: version.schema,
            });
        }
        let mut results: Results = serde_json::from_str(text).map_err(json_error)?;
        results.schema = SCHEMA;
        Ok(results)
    }

    /// The JSON text, pretty, with a final newline.
    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).unwrap_or_default();
        text.push('\n');
        text
    }

    /// The cell of `script` on `kernel`.
    pub fn cell(&self, script: &str, kernel: &str) -> Option<&Cell> {
        self.cells
            .iter()
            .find(|c| c.script == script && c.kernel == kernel)
    }

    /// The kernel ids, in order.
    pub fn kernel_ids(&self) -> Vec<&str> {
        self.kernels.iter().map(|k| k.id.as_str()).collect()
    }

    /// The script names, in the order of their first cell.
    pub fn script_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = Vec::new();
        for cell in &self.cells {
            if !names.contains(&cell.script.as_str()) {
                names.push(cell.script.as_str());
            }
        }
        names
    }

    /// The script's information, if recorded.
    pub fn script(&self, name: &str) -> Option<&ScriptInfo> {
        self.scripts.iter().find(|s| s.name == name)
    }

    /// How many cells have each status.
    pub fn counts(&self) -> BTreeMap<Status, usize> {
        let mut counts = BTreeMap::new();
        for cell in &self.cells {
            *counts.entry(cell.status).or_insert(0) += 1;
        }
        counts
    }

    /// The counts as a line: `182 cells: 150 pass, 20 n/a, ...`.
    pub fn summary(&self) -> String {
        let counts = self.counts();
        let parts: Vec<String> = Status::ALL
            .iter()
            .filter(|s| {
                counts.contains_key(s) || matches!(s, Status::Pass | Status::Fail | Status::Infra)
            })
            .map(|s| {
                let word = if *s == Status::NotAvailable {
                    "n/a".to_owned()
                } else {
                    s.key().to_owned()
                };
                format!("{} {word}", counts.get(s).copied().unwrap_or(0))
            })
            .collect();
        format!("{} cells: {}", self.cells.len(), parts.join(", "))
    }

    /// The exit status the command line gives: 1 when a cell failed,
    /// errored or was flaky, else 3 when a cell is infra, else 0.
    pub fn exit_code(&self) -> i32 {
        if self.cells.iter().any(|c| c.status.is_failure()) {
            1
        } else if self.cells.iter().any(|c| c.status == Status::Infra) {
            3
        } else {
            0
        }
    }

    /// Sorts cells by script (name) then kernel (the order of `kernels`),
    /// and scripts by name: two runs of the same work compare equal
    /// whatever order they ran in.
    pub fn normalize(&mut self) {
        let order: Vec<String> = self.kernels.iter().map(|k| k.id.clone()).collect();
        let position = |id: &str| order.iter().position(|k| k == id).unwrap_or(usize::MAX);
        self.cells.sort_by(|a, b| {
            (a.script.as_str(), position(&a.kernel)).cmp(&(b.script.as_str(), position(&b.kernel)))
        });
        self.scripts.sort_by(|a, b| a.name.cmp(&b.name));
    }
}

/// Whether a count is zero (left out of results.json).
fn is_zero(value: &u64) -> bool {
    *value == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_one_reads_with_defaults_and_unknown_schemas_are_refused() {
        let old = r#"{"schema":1,"kernels":[{"id":"6.1","release":null,"boot_ms":5,"infra":null}],
            "cells":[{"script":"s","kernel":"6.1","status":"fail","detail":"d","hits":1,"lost":0,"elapsed_ms":3}]}"#;
        let results = Results::from_json("old.json", old).unwrap();
        assert_eq!(results.schema, SCHEMA);
        assert_eq!(results.cells[0].status, Status::Fail);
        assert_eq!(results.exit_code(), 1);
        let error = Results::from_json("new.json", r#"{"schema":9,"kernels":[]}"#).unwrap_err();
        assert!(error.to_string().contains("schema 9"), "{error}");
        let error = Results::from_json("bad.json", "{\n  \"schema\": 2,\n  \"kernels\": 3}")
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("bad.json:3:"), "{error}");
    }

    #[test]
    fn shard_ids_parse_and_say_what_is_wrong() {
        assert_eq!("2/3".parse::<ShardId>(), Ok(ShardId { index: 2, of: 3 }));
        for bad in ["0/3", "4/3", "x", "1/"] {
            assert!(bad.parse::<ShardId>().unwrap_err().contains("like 1/3"));
        }
    }

    #[test]
    fn exit_codes_put_failures_before_infra() {
        let mut results = Results::new(RunInfo::default());
        results
            .cells
            .push(Cell::new("a", "6.1", Status::Infra, "boot died"));
        assert_eq!(results.exit_code(), 3);
        results
            .cells
            .push(Cell::new("b", "6.1", Status::Flaky, "x"));
        assert_eq!(results.exit_code(), 1);
    }
}
