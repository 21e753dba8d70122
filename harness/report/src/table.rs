//! The terminal table: scripts down, kernels across, then a line per cell
//! that is not a pass; the probes' availability table when there is one.

use std::fmt::Write as _;

use crate::model::{Results, Status};

/// The table text.
pub fn render(results: &Results) -> String {
    let mut out = String::new();
    if !results.cells.is_empty() {
        out.push_str(&scripts(results));
    }
    if let Some(matrix) = &results.probes {
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(&matrix.render_table());
    }
    out
}

fn scripts(results: &Results) -> String {
    let kernels = results.kernel_ids();
    let scripts = results.script_names();
    let width = scripts.iter().map(|s| s.len()).max().unwrap_or(6).max(6);
    let mut out = format!("{:width$}", "script");
    for kernel in &kernels {
        let _ = write!(out, "  {kernel:>6}");
    }
    out.push('\n');
    for script in &scripts {
        let _ = write!(out, "{script:width$}");
        for kernel in &kernels {
            let word = results
                .cell(script, kernel)
                .map_or("-", |c| c.status.word());
            let _ = write!(out, "  {word:>6}");
        }
        out.push('\n');
    }
    for cell in &results.cells {
        if cell.status != Status::Pass && !cell.detail.is_empty() {
            let _ = writeln!(
                out,
                "{} on {}: {}: {}",
                cell.script,
                cell.kernel,
                cell.status.word(),
                cell.detail
            );
            if let Some(logs) = &cell.logs {
                let _ = writeln!(out, "  logs: {} {}", logs.console, logs.agent);
            }
        }
    }
    let _ = writeln!(out, "{}", results.summary());
    out
}
