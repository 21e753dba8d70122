//! A run against a baseline: how each cell changed. A regression is a cell
//! that was good (pass, n/a, or flaky) and now fails or errors while its
//! script, spec and snapshots are unchanged (the same fingerprint): only
//! the kernel (or the tool) changed. Infra is never a regression.

use std::fmt::Write as _;

use serde::Serialize;

use crate::model::{Results, Status};

/// How one cell changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// Good before, failing now, with the same script.
    Regression,
    /// Failing before, good now.
    Fix,
    /// Failed, then passed when rerun (reported as flaky, never as a pass).
    Flake,
    /// A kernel the baseline does not have.
    NewKernel,
    /// A script the baseline does not have.
    NewScript,
    /// The script, its spec or its snapshots changed, and so did the verdict.
    ScriptChanged,
    /// Failing before and now.
    StillFailing,
    /// Infra now: not a verdict on the script.
    Infra,
    /// The same verdict as before.
    Unchanged,
    /// In the baseline, not in this run.
    Gone,
}

impl Change {
    /// The word reports use.
    pub fn word(self) -> &'static str {
        match self {
            Change::Regression => "regression",
            Change::Fix => "fix",
            Change::Flake => "flake",
            Change::NewKernel => "new kernel",
            Change::NewScript => "new script",
            Change::ScriptChanged => "script changed",
            Change::StillFailing => "still failing",
            Change::Infra => "infra",
            Change::Unchanged => "unchanged",
            Change::Gone => "gone",
        }
    }
}

/// One cell's change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CellChange {
    /// The script.
    pub script: String,
    /// The kernel.
    pub kernel: String,
    /// The class.
    pub change: Change,
    /// Its status in the baseline.
    pub base: Option<Status>,
    /// Its status now.
    pub new: Option<Status>,
    /// Why it is what it is now, and the kernel's release change if any.
    pub detail: String,
}

/// Every cell's change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Comparison {
    /// In the order of the new run, then the cells gone.
    pub changes: Vec<CellChange>,
}

/// Classifies each cell of `new` against `base`.
pub fn compare(base: &Results, new: &Results) -> Comparison {
    let mut changes = Vec::new();
    let release = |results: &Results, id: &str| {
        results
            .kernels
            .iter()
            .find(|k| k.id == id)
            .and_then(|k| k.release.clone())
    };
    let fingerprint = |results: &Results, name: &str| {
        results
            .script(name)
            .map(|s| s.fingerprint.clone())
            .filter(|f| !f.is_empty())
    };
    for cell in &new.cells {
        let old = base.cell(&cell.script, &cell.kernel);
        let kernel_known = base.kernels.iter().any(|k| k.id == cell.kernel);
        let script_known = base.cells.iter().any(|c| c.script == cell.script);
        let same_script = match (
            fingerprint(base, &cell.script),
            fingerprint(new, &cell.script),
        ) {
            (Some(a), Some(b)) => a == b,
            _ => true,
        };
        let change = match old {
            _ if !kernel_known => Change::NewKernel,
            _ if !script_known => Change::NewScript,
            None => Change::NewScript,
            Some(_) if cell.status == Status::Flaky => Change::Flake,
            Some(_) if cell.status == Status::Infra => Change::Infra,
            Some(old) => {
                let was_good = old.status.is_good() || old.status == Status::Flaky;
                let was_bad = matches!(old.status, Status::Fail | Status::Error);
                let bad = matches!(cell.status, Status::Fail | Status::Error);
                match (was_good, was_bad, bad) {
                    (true, _, true) if same_script => Change::Regression,
                    (true, _, true) => Change::ScriptChanged,
                    (_, true, false) => Change::Fix,
                    (_, true, true) => Change::StillFailing,
                    // Infra before: no verdict to compare with.
                    (false, false, true) => Change::StillFailing,
                    _ => Change::Unchanged,
                }
            }
        };
        let mut detail = cell.detail.clone();
        if let (Some(a), Some(b)) = (release(base, &cell.kernel), release(new, &cell.kernel))
            && a != b
        {
            if !detail.is_empty() {
                detail.push_str("; ");
            }
            let _ = write!(detail, "kernel {a} -> {b}");
        }
        changes.push(CellChange {
            script: cell.script.clone(),
            kernel: cell.kernel.clone(),
            change,
            base: old.map(|c| c.status),
            new: Some(cell.status),
            detail,
        });
    }
    for cell in &base.cells {
        if new.cell(&cell.script, &cell.kernel).is_none() {
            changes.push(CellChange {
                script: cell.script.clone(),
                kernel: cell.kernel.clone(),
                change: Change::Gone,
                base: Some(cell.status),
                new: None,
                detail: String::new(),
            });
        }
    }
    Comparison { changes }
}

impl Comparison {
    /// The regressions.
    pub fn regressions(&self) -> impl Iterator<Item = &CellChange> {
        self.changes
            .iter()
            .filter(|c| c.change == Change::Regression)
    }

    /// The report: a line per change that is not `unchanged`, then counts.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut shown: Vec<&CellChange> = self
            .changes
            .iter()
            .filter(|c| c.change != Change::Unchanged)
            .collect();
        shown.sort_by_key(|c| c.change);
        let word = |s: Option<Status>| s.map_or("-", Status::word);
        for c in &shown {
            let _ = writeln!(
                out,
                "{}: {} on {}: {} -> {}{}",
                c.change.word(),
                c.script,
                c.kernel,
                word(c.base),
                word(c.new),
                if c.detail.is_empty() {
                    String::new()
                } else {
                    format!(": {}", c.detail)
                }
            );
        }
        let mut counts: Vec<(Change, usize)> = Vec::new();
        for c in &self.changes {
            match counts.iter_mut().find(|(k, _)| *k == c.change) {
                Some((_, n)) => *n += 1,
                None => counts.push((c.change, 1)),
            }
        }
        counts.sort();
        let parts: Vec<String> = counts
            .iter()
            .map(|(k, n)| format!("{n} {}", k.word()))
            .collect();
        let _ = writeln!(
            out,
            "{} cells compared: {}",
            self.changes.len(),
            parts.join(", ")
        );
        out
    }
}
