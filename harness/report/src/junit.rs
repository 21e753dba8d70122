//! JUnit XML as GitHub's, GitLab's and Jenkins' test views read it: one
//! `testsuite` per kernel, one `testcase` per script (classname: the
//! kernel). fail is a `failure`, error an `error`, infra an `error` of type
//! `infra`, n/a `skipped` with the reason; a flaky cell keeps its first
//! attempt as a `flakyFailure` (Surefire's element for a test that passed
//! on a rerun) and a `failure` of type `flaky`. The availability matrix,
//! when present, is one more testsuite per kernel (`KERNEL probes`), one
//! testcase per alias. Logs are named in `system-out`.

use std::fmt::Write as _;

use tapmatrix_resolve::Cell as ProbeCell;

use crate::model::{Cell, Results, Status};

/// Text safe in XML 1.0 character data and attributes.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || matches!(c as u32, 0xFFFE | 0xFFFF) => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

fn seconds(ms: u64) -> String {
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

/// The JUnit XML text.
pub fn render(results: &Results) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let failures = results
        .cells
        .iter()
        .filter(|c| matches!(c.status, Status::Fail | Status::Flaky))
        .count();
    let errors = results
        .cells
        .iter()
        .filter(|c| matches!(c.status, Status::Error | Status::Infra))
        .count();
    let time: u64 = results.cells.iter().map(|c| c.elapsed_ms).sum();
    let _ = writeln!(
        out,
        "<testsuites name=\"tapmatrix\" tests=\"{}\" failures=\"{failures}\" errors=\"{errors}\" time=\"{}\">",
        results.cells.len(),
        seconds(time)
    );
    for kernel in &results.kernels {
        let cells: Vec<&Cell> = results
            .cells
            .iter()
            .filter(|c| c.kernel == kernel.id)
            .collect();
        if !cells.is_empty() {
            let count = |f: fn(Status) -> bool| cells.iter().filter(|c| f(c.status)).count();
            let _ = writeln!(
                out,
                "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\" time=\"{}\">",
                escape(&kernel.id),
                cells.len(),
                count(|s| matches!(s, Status::Fail | Status::Flaky)),
                count(|s| matches!(s, Status::Error | Status::Infra)),
                count(|s| s == Status::NotAvailable),
                seconds(kernel.boot_ms)
            );
            out.push_str("    <properties>\n");
            if let Some(release) = &kernel.release {
                let _ = writeln!(
                    out,
                    "      <property name=\"release\" value=\"{}\"/>",
                    escape(release)
                );
            }
            if let Some(infra) = &kernel.infra {
                let _ = writeln!(
                    out,
                    "      <property name=\"infra\" value=\"{}\"/>",
                    escape(infra)
                );
            }
            out.push_str("    </properties>\n");
            for cell in cells {
                testcase(&mut out, cell);
            }
            out.push_str("  </testsuite>\n");
        }
        if let Some(matrix) = &results.probes
            && let Some(column) = matrix.kernels.iter().position(|k| *k == kernel.id)
        {
            probes(&mut out, &kernel.id, matrix, column);
        }
    }
    out.push_str("</testsuites>\n");
    out
}

fn testcase(out: &mut String, cell: &Cell) {
    let _ = writeln!(
        out,
        "    <testcase name=\"{}\" classname=\"{}\" time=\"{}\">",
        escape(&cell.script),
        escape(&cell.kernel),
        seconds(cell.elapsed_ms)
    );
    let message = escape(&crate::text::one_line(&cell.detail));
    match cell.status {
        Status::Pass => {}
        Status::NotAvailable => {
            let _ = writeln!(out, "      <skipped message=\"{message}\"/>");
        }
        Status::Fail => {
            let body = cell.diff().unwrap_or_else(|| cell.detail.clone());
            let _ = writeln!(
                out,
                "      <failure type=\"fail\" message=\"{message}\">{}</failure>",
                escape(&body)
            );
        }
        Status::Flaky => {
            if let Some(first) = &cell.first_attempt {
                let _ = writeln!(
                    out,
                    "      <flakyFailure type=\"{}\" message=\"{}\"/>",
                    first.status.key(),
                    escape(&crate::text::one_line(&first.detail))
                );
            }
            let _ = writeln!(
                out,
                "      <failure type=\"flaky\" message=\"failed, then passed when rerun\">{}</failure>",
                escape(
                    &cell
                        .first_attempt
                        .as_ref()
                        .map_or(String::new(), |a| a.detail.clone())
                )
            );
        }
        Status::Error => {
            let _ = writeln!(
                out,
                "      <error type=\"error\" message=\"{message}\">{}</error>",
                escape(&cell.detail)
            );
        }
        Status::Infra => {
            let _ = writeln!(
                out,
                "      <error type=\"infra\" message=\"{message}\">{}</error>",
                escape(&cell.detail)
            );
        }
    }
    let mut system_out = String::new();
    if cell.status != Status::Pass
        && let Some(output) = cell.output.as_ref().filter(|o| !o.is_empty())
    {
        system_out.push_str(output);
        if !output.ends_with('\n') {
            system_out.push('\n');
        }
    }
    if let Some(logs) = &cell.logs {
        let _ = writeln!(system_out, "console log: {}", logs.console);
        let _ = writeln!(system_out, "agent log: {}", logs.agent);
    }
    if !system_out.is_empty() {
        let _ = writeln!(
            out,
            "      <system-out>{}</system-out>",
            escape(&system_out)
        );
    }
    out.push_str("    </testcase>\n");
}

fn probes(out: &mut String, kernel: &str, matrix: &tapmatrix_resolve::Matrix, column: usize) {
    let cells: Vec<(&str, &ProbeCell)> = matrix
        .rows
        .iter()
        .filter_map(|row| Some((row.probe.as_str(), row.cells.get(column)?)))
        .collect();
    let failures = cells.iter().filter(|(_, c)| c.is_unresolved()).count();
    let skipped = cells
        .iter()
        .filter(|(_, c)| matches!(c, ProbeCell::OptionalMissing { .. } | ProbeCell::Undefined))
        .count();
    let _ = writeln!(
        out,
        "  <testsuite name=\"{} probes\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" skipped=\"{skipped}\">",
        escape(kernel),
        cells.len()
    );
    for (probe, cell) in cells {
        let _ = write!(
            out,
            "    <testcase name=\"{}\" classname=\"{}.probes\"",
            escape(probe),
            escape(kernel)
        );
        match cell {
            ProbeCell::Resolved { .. } => out.push_str("/>\n"),
            ProbeCell::OptionalMissing { .. } => {
                out.push_str(">\n      <skipped message=\"only optional points, all missing\"/>\n    </testcase>\n");
            }
            ProbeCell::Undefined => {
                out.push_str(">\n      <skipped message=\"not defined for this kernel\"/>\n    </testcase>\n");
            }
            ProbeCell::Unresolved {
                misses,
                suggestions,
            } => {
                let mut body = String::new();
                for miss in misses {
                    let _ = writeln!(body, "{}: {}", miss.point, miss.reason);
                }
                for s in suggestions {
                    let _ = writeln!(body, "suggest {} ({})", s.probe_point, s.evidence);
                }
                let message = misses
                    .first()
                    .map_or(String::new(), |m| format!("{}: {}", m.point, m.reason));
                let _ = write!(
                    out,
                    ">\n      <failure type=\"unresolved\" message=\"{}\">{}</failure>\n    </testcase>\n",
                    escape(&message),
                    escape(&body)
                );
            }
        }
    }
    out.push_str("  </testsuite>\n");
}
