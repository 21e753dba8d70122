//! Judging one cell: what was compiled and what ran, against the spec and
//! the snapshot.

use crate::Error;
use crate::compile::Compiled;
use crate::results::{Cell, Status};
use crate::snapshot::{matches, read_snapshot, snapshot_path};
use crate::spec::{SnapshotScope, Spec};

/// What running one script in a guest gave.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ItemRun {
    /// Standard output, in order.
    pub stdout: String,
    /// Standard error (`WARNING:`/`ERROR:` lines).
    pub stderr: String,
    /// How it ended.
    pub end: ItemEnd,
    /// Event hits handled.
    pub hits: u64,
    /// Events lost in the ring buffer.
    pub lost: u64,
    /// Wall time in the guest, in milliseconds.
    pub elapsed_ms: u64,
    /// Events the agent could not remove afterwards.
    pub leftover_events: Vec<String>,
}

/// How a script's run ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ItemEnd {
    /// `exit()`, or the workload finished.
    #[default]
    Finished,
    /// A run-time error (its message).
    RuntimeError(String),
    /// The timeout passed.
    Timeout,
    /// The kernel refused an event: what was written and the kernel's words.
    Rejected(String),
    /// The guest died or the agent failed: not the script's fault.
    Infra(String),
}

impl ItemRun {
    /// The output as snapshots hold it: standard output, then standard
    /// error after a `--- stderr ---` line when there is any.
    pub fn combined(&self) -> String {
        if self.stderr.is_empty() {
            self.stdout.clone()
        } else {
            format!("{}--- stderr ---\n{}", self.stdout, self.stderr)
        }
    }
}

/// The cell of `spec` on kernel `kernel` (of `series`), where the spec says
/// the script `applies` or not, given its compilation and, if it ran, its run.
pub fn judge(
    spec: &Spec,
    kernel: &str,
    series: &str,
    applies: bool,
    compiled: &Compiled,
    run: Option<&ItemRun>,
) -> Result<Cell, Error> {
    let mut cell = Cell {
        script: spec.name.clone(),
        kernel: kernel.to_owned(),
        status: Status::Pass,
        detail: String::new(),
        output: None,
        expected: None,
        hits: 0,
        lost: 0,
        elapsed_ms: 0,
    };
    let unavailable_reason = || {
        spec.kernels
            .reason
            .clone()
            .unwrap_or_else(|| "the spec excludes this kernel".to_owned())
    };
    let first_line = |text: &str| text.lines().next().unwrap_or("").to_owned();
    match (compiled, applies) {
        (Compiled::NotAvailable(reasons), true) => {
            cell.status = Status::Fail;
            cell.detail = format!(
                "availability differs from the spec: its probes do not resolve here: {}",
                first_line(reasons)
            );
            return Ok(cell);
        }
        (Compiled::NotAvailable(_) | Compiled::Error(_), false) => {
            cell.status = Status::NotAvailable;
            cell.detail = unavailable_reason();
            return Ok(cell);
        }
        (Compiled::Error(message), true) => {
            cell.status = Status::Error;
            cell.detail = format!("compile error: {}", first_line(message));
            return Ok(cell);
        }
        (Compiled::Bundle(_), false) => {
            cell.status = Status::Fail;
            cell.detail = format!(
                "availability differs from the spec: it compiles here, but the spec says not ({})",
                unavailable_reason()
            );
            return Ok(cell);
        }
        (Compiled::Bundle(_), true) => {}
    }
    let Some(run) = run else {
        cell.status = Status::Infra;
        cell.detail = "not run: the guest ended before this script".to_owned();
        return Ok(cell);
    };
    cell.hits = run.hits;
    cell.lost = run.lost;
    cell.elapsed_ms = run.elapsed_ms;
    let output = spec.redactions.apply(&run.combined());
    cell.output = Some(output.clone());
    let mut problems: Vec<String> = Vec::new();
    match &run.end {
        ItemEnd::Infra(why) => {
            cell.status = Status::Infra;
            cell.detail = why.clone();
            return Ok(cell);
        }
        ItemEnd::Rejected(words) => {
            cell.status = Status::Error;
            cell.detail = format!("the kernel refused an event: {words}");
            return Ok(cell);
        }
        ItemEnd::Timeout => problems.push(format!("timed out after {} s", spec.timeout_s)),
        ItemEnd::RuntimeError(message) if !spec.expect_error => {
            problems.push(format!("run-time error: {message}"));
        }
        ItemEnd::Finished if spec.expect_error => {
            problems.push("expected a run-time error, the run ended without one".to_owned());
        }
        ItemEnd::RuntimeError(_) | ItemEnd::Finished => {}
    }
    if !run.leftover_events.is_empty() {
        problems.push(format!(
            "events left behind: {}",
            run.leftover_events.join(", ")
        ));
    }
    let path = snapshot_path(spec, series);
    let expected = match spec.snapshot {
        SnapshotScope::Unchecked => Some(output.clone()),
        _ => read_snapshot(&path)?,
    };
    match expected {
        None => problems.push(format!(
            "no snapshot {} yet (run `cargo test -p tapmatrix-e2e --test matrix`, then review it with `cargo insta review`)",
            path.display()
        )),
        Some(expected) => {
            if !matches(&expected, &output) {
                problems.push(format!("output differs from {}", path.display()));
            }
            cell.expected = Some(expected);
        }
    }
    if !problems.is_empty() {
        cell.status = Status::Fail;
    }
    // Lost events are always said, also on a pass.
    if run.lost > 0 {
        problems.push(format!("{} events lost in the ring buffer", run.lost));
    }
    cell.detail = problems.join("; ");
    Ok(cell)
}
