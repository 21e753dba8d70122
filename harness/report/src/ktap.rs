//! KTAP version 1, as the kernel's kselftest writes it: one nested test
//! per kernel, one test per script in it (and a nested `probes` test with
//! one test per alias when the results hold the availability matrix).
//!
//! pass is `ok`; n/a is `ok ... # SKIP reason`; infra is `ok ... # SKIP
//! infra: why` (not the script's fault, never a failure); fail is `not ok`,
//! error `not ok ... # ERROR`, flaky `not ok ... # FLAKY` (it failed once).
//! Diagnostic lines before a result say why, quote the diff and name the
//! logs.

use std::fmt::Write as _;

use tapmatrix_resolve::Cell as ProbeCell;

use crate::model::{Cell, Results, Status};
use crate::text::{first_lines, one_line};

/// Lines of a diff quoted in diagnostics.
const DIFF_LINES: usize = 20;

/// A KTAP writer: indentation by nesting depth.
struct Writer {
    out: String,
    depth: usize,
}

impl Writer {
    fn line(&mut self, text: &str) {
        for _ in 0..self.depth {
            self.out.push_str("  ");
        }
        self.out.push_str(text);
        self.out.push('\n');
    }

    fn diagnostic(&mut self, text: &str) {
        for line in text.lines() {
            self.line(format!("# {line}").trim_end());
        }
    }

    fn result(&mut self, ok: bool, number: usize, name: &str, directive: Option<String>) {
        let mut line = format!(
            "{} {number} {}",
            if ok { "ok" } else { "not ok" },
            clean(name)
        );
        if let Some(directive) = directive {
            let _ = write!(line, " # {}", one_line(&directive));
        }
        self.line(&line);
    }
}

/// A description may not hold `#`.
fn clean(name: &str) -> String {
    name.replace('#', "_")
}

/// The KTAP text.
pub fn render(results: &Results) -> String {
    let mut w = Writer {
        out: String::new(),
        depth: 0,
    };
    w.line("KTAP version 1");
    w.line(&format!("# tapmatrix: {}", results.summary()));
    w.line(&format!("1..{}", results.kernels.len()));
    let probes = results.probes.as_ref();
    for (index, kernel) in results.kernels.iter().enumerate() {
        let cells: Vec<&Cell> = results
            .cells
            .iter()
            .filter(|c| c.kernel == kernel.id)
            .collect();
        let column = probes.and_then(|m| m.kernels.iter().position(|k| *k == kernel.id));
        w.depth = 1;
        w.line("KTAP version 1");
        w.line(&format!("# Subtest: {}", kernel.id));
        if let Some(release) = &kernel.release {
            w.line(&format!("# release: {release}"));
        }
        w.line(&format!(
            "1..{}",
            cells.len() + usize::from(column.is_some())
        ));
        let mut failed = false;
        for (number, cell) in cells.iter().enumerate() {
            failed |= script(&mut w, number + 1, cell);
        }
        if let (Some(matrix), Some(column)) = (probes, column) {
            w.depth = 2;
            w.line("KTAP version 1");
            w.line(&format!("1..{}", matrix.rows.len()));
            let mut unresolved = false;
            for (number, row) in matrix.rows.iter().enumerate() {
                let Some(cell) = row.cells.get(column) else {
                    continue;
                };
                unresolved |= probe(&mut w, number + 1, &row.probe, cell);
            }
            w.depth = 1;
            w.result(!unresolved, cells.len() + 1, "probes", None);
            failed |= unresolved;
        }
        w.depth = 0;
        let directive = match (
            &kernel.infra,
            cells.iter().all(|c| c.status == Status::Infra),
        ) {
            (Some(why), true) if !cells.is_empty() => Some(format!("SKIP infra: {why}")),
            _ => None,
        };
        w.result(!failed, index + 1, &kernel.id, directive);
    }
    w.out
}

/// One script's result; whether it counts as failed.
fn script(w: &mut Writer, number: usize, cell: &Cell) -> bool {
    // n/a, error and infra say why in their directive.
    if matches!(cell.status, Status::Fail | Status::Flaky) && !cell.detail.is_empty() {
        w.diagnostic(&cell.detail);
    }
    if let Some(first) = &cell.first_attempt {
        w.diagnostic(&format!(
            "first attempt: {}: {}",
            first.status.word(),
            first.detail
        ));
    }
    if cell.status == Status::Fail
        && let Some(diff) = cell.diff()
    {
        w.diagnostic(&first_lines(&diff, DIFF_LINES));
    }
    if let Some(logs) = &cell.logs {
        w.diagnostic(&format!("console log: {}", logs.console));
        w.diagnostic(&format!("agent log: {}", logs.agent));
    }
    let (ok, directive) = match cell.status {
        Status::Pass => (true, None),
        Status::NotAvailable => (true, Some(format!("SKIP {}", cell.detail))),
        Status::Infra => (true, Some(format!("SKIP infra: {}", cell.detail))),
        Status::Fail => (false, None),
        Status::Error => (false, Some(format!("ERROR {}", cell.detail))),
        Status::Flaky => (
            false,
            Some("FLAKY failed, then passed when rerun".to_owned()),
        ),
    };
    w.result(ok, number, &cell.script, directive);
    !ok
}

/// One alias's availability; whether it is unresolved.
fn probe(w: &mut Writer, number: usize, name: &str, cell: &ProbeCell) -> bool {
    match cell {
        ProbeCell::Resolved { .. } => {
            w.result(true, number, name, None);
            false
        }
        ProbeCell::OptionalMissing { .. } => {
            w.result(
                true,
                number,
                name,
                Some("SKIP only optional points, all missing".to_owned()),
            );
            false
        }
        ProbeCell::Undefined => {
            w.result(
                true,
                number,
                name,
                Some("SKIP not defined for this kernel".to_owned()),
            );
            false
        }
        ProbeCell::Unresolved {
            misses,
            suggestions,
        } => {
            for miss in misses {
                w.diagnostic(&format!("{}: {}", miss.point, miss.reason));
            }
            for s in suggestions {
                w.diagnostic(&format!("suggest {} ({})", s.probe_point, s.evidence));
            }
            w.result(false, number, name, None);
            true
        }
    }
}
