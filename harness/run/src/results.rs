//! Results of a run on the matrix: one cell per (script, kernel), written
//! as `results.json` and rendered as a terminal table.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

/// The `schema` of `results.json`; bumped on any incompatible change.
pub const SCHEMA: u32 = 1;

/// The line between standard output and standard error in a cell's output.
pub const STDERR_LINE: &str = "--- stderr ---\n";

/// How one (script, kernel) cell ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Ran, and printed what its snapshot says.
    Pass,
    /// The spec says the script does not apply here, and its probes indeed
    /// do not resolve.
    NotAvailable,
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
    /// The word the table shows.
    pub fn word(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::NotAvailable => "n/a",
            Status::Fail => "FAIL",
            Status::Error => "ERROR",
            Status::Infra => "infra",
        }
    }
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
    pub detail: String,
    /// What the script printed (standard output, then standard error after
    /// a `--- stderr ---` line), redacted as its spec says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    /// What was expected, when a snapshot exists.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected: Option<String>,
    /// Event hits handled.
    pub hits: u64,
    /// Events lost in the kernel's ring buffer.
    pub lost: u64,
    /// Wall time of the run in the guest, in milliseconds.
    pub elapsed_ms: u64,
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

impl Cell {
    /// The output's standard output and standard error, apart again.
    pub fn output_streams(&self) -> (&str, &str) {
        let output = self.output.as_deref().unwrap_or_default();
        output.rsplit_once(STDERR_LINE).unwrap_or((output, ""))
    }
}

impl WorkloadOutput {
    /// Whether it wrote nothing.
    pub fn is_empty(&self) -> bool {
        self.stdout.is_empty() && self.stderr.is_empty()
    }
}

/// One kernel's boot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelRun {
    /// Its id.
    pub id: String,
    /// Its release (`uname -r`), when its facts are known.
    pub release: Option<String>,
    /// Boot to power-off, in milliseconds (0 when nothing was booted).
    pub boot_ms: u64,
    /// Why the boot failed, if it did.
    pub infra: Option<String>,
    /// The boot died under some scripts and was booted again for them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<Retry>,
}

/// A boot that died and was booted again for the scripts it left.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retry {
    /// Why the first boot died.
    pub cause: String,
    /// The first boot's console log (the second boot's is beside it, in
    /// `retry/`).
    pub first_console_log: std::path::PathBuf,
}

/// Everything a run produced. Documented schema (`schema: 1`):
/// `{schema, kernels: [{id, release, boot_ms, infra, retry?: {cause,
/// first_console_log}}], cells: [{script,
/// kernel, status: pass|not_available|fail|error|infra, detail, output?,
/// expected?, hits, lost, elapsed_ms, workload?: {stdout?, stderr?}}]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Results {
    /// [`SCHEMA`].
    pub schema: u32,
    /// The kernels, in matrix order.
    pub kernels: Vec<KernelRun>,
    /// The cells, by script then kernel.
    pub cells: Vec<Cell>,
}

impl Results {
    /// The cell of `script` on `kernel`.
    pub fn cell(&self, script: &str, kernel: &str) -> Option<&Cell> {
        self.cells
            .iter()
            .find(|c| c.script == script && c.kernel == kernel)
    }

    /// The exit status the command line gives: 1 when a cell failed or
    /// errored (whatever else happened), else 3 when a cell is infra, else 0.
    pub fn exit_code(&self) -> i32 {
        let any = |wanted: &[Status]| self.cells.iter().any(|c| wanted.contains(&c.status));
        if any(&[Status::Fail, Status::Error]) {
            1
        } else if any(&[Status::Infra]) {
            3
        } else {
            0
        }
    }

    /// The matrix as a terminal table: scripts down, kernels across, then
    /// one line per cell that is not a pass.
    pub fn table(&self) -> String {
        let kernels: Vec<&str> = self.kernels.iter().map(|k| k.id.as_str()).collect();
        let mut scripts: Vec<&str> = Vec::new();
        let mut seen = BTreeSet::new();
        for cell in &self.cells {
            if seen.insert(cell.script.as_str()) {
                scripts.push(cell.script.as_str());
            }
        }
        let width = scripts.iter().map(|s| s.len()).max().unwrap_or(6).max(6);
        let mut out = format!("{:width$}", "script");
        for kernel in &kernels {
            let _ = write!(out, "  {kernel:>6}");
        }
        out.push('\n');
        for script in &scripts {
            let _ = write!(out, "{script:width$}");
            for kernel in &kernels {
                let word = self.cell(script, kernel).map_or("-", |c| c.status.word());
                let _ = write!(out, "  {word:>6}");
            }
            out.push('\n');
        }
        for cell in &self.cells {
            if !matches!(cell.status, Status::Pass) && !cell.detail.is_empty() {
                let _ = writeln!(
                    out,
                    "{} on {}: {}: {}",
                    cell.script,
                    cell.kernel,
                    cell.status.word(),
                    cell.detail
                );
            }
        }
        let count = |status: Status| self.cells.iter().filter(|c| c.status == status).count();
        let _ = writeln!(
            out,
            "{} cells: {} pass, {} n/a, {} fail, {} error, {} infra",
            self.cells.len(),
            count(Status::Pass),
            count(Status::NotAvailable),
            count(Status::Fail),
            count(Status::Error),
            count(Status::Infra)
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn results(statuses: &[Status]) -> Results {
        Results {
            schema: SCHEMA,
            kernels: Vec::new(),
            cells: statuses
                .iter()
                .enumerate()
                .map(|(index, status)| Cell {
                    script: format!("s{index}"),
                    kernel: "6.1".to_owned(),
                    status: *status,
                    detail: String::new(),
                    output: None,
                    expected: None,
                    hits: 0,
                    lost: 0,
                    elapsed_ms: 0,
                    workload: None,
                })
                .collect(),
        }
    }

    #[test]
    fn all_good_exits_0() {
        assert_eq!(results(&[]).exit_code(), 0);
        assert_eq!(
            results(&[Status::Pass, Status::NotAvailable]).exit_code(),
            0
        );
    }

    #[test]
    fn any_fail_or_error_exits_1_even_beside_infra() {
        assert_eq!(results(&[Status::Pass, Status::Fail]).exit_code(), 1);
        assert_eq!(results(&[Status::Error]).exit_code(), 1);
        assert_eq!(results(&[Status::Fail, Status::Infra]).exit_code(), 1);
        assert_eq!(results(&[Status::Infra, Status::Error]).exit_code(), 1);
    }

    #[test]
    fn infra_without_a_failure_exits_3() {
        assert_eq!(results(&[Status::Pass, Status::Infra]).exit_code(), 3);
        assert_eq!(results(&[Status::Infra]).exit_code(), 3);
    }
}
