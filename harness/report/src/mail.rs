//! A plain-text mail for a mailing list: 72 columns, no Markdown. Per
//! kernel release, in matrix order, what changed since the previous one:
//! scripts that started failing (with the reason, a short diff and the
//! logs), scripts whose output changed (a short diff), and probes that
//! stopped resolving, grouped by tapset file and alias, with the reason
//! and the suggested replacement. Each change is told once, at the kernel
//! where it starts, with the range where it holds ("unresolved since
//! 6.12").

use std::fmt::Write as _;

use crate::model::{Cell, Results, Status};
use crate::text::{first_lines, kernel_ranges, unified_diff, wrap};

/// The width of every line.
pub const WIDTH: usize = 72;

/// Lines of a diff quoted.
const DIFF_LINES: usize = 12;

/// The mail text, `Subject:` line first.
pub fn render(results: &Results) -> String {
    let kernels = results.kernel_ids();
    let scripts = results.script_names();
    let mut out = String::new();
    let counts = results.counts();
    let bad: Vec<String> = [Status::Fail, Status::Error, Status::Flaky, Status::Infra]
        .iter()
        .filter_map(|s| counts.get(s).map(|n| format!("{n} {}", s.key())))
        .collect();
    let span = match (kernels.first(), kernels.last()) {
        (Some(first), Some(last)) if first != last => format!("{first} to {last}"),
        (Some(one), _) => (*one).to_owned(),
        _ => "no kernel".to_owned(),
    };
    let mut subject = if scripts.is_empty() {
        format!(
            "[tapmatrix] tapset availability on {} kernels, {span}",
            kernels.len()
        )
    } else {
        format!(
            "[tapmatrix] {} scripts on {} kernels, {span}: {}",
            scripts.len(),
            kernels.len(),
            if bad.is_empty() {
                "all good".to_owned()
            } else {
                bad.join(", ")
            }
        )
    };
    if let Some(matrix) = &results.probes {
        let unresolved = matrix
            .rows
            .iter()
            .filter(|r| r.cells.iter().any(|c| c.is_unresolved()))
            .count();
        let _ = write!(
            subject,
            "; {unresolved} of {} aliases need porting",
            matrix.rows.len()
        );
    }
    out.push_str(&wrap(&format!("Subject: {subject}"), WIDTH, "", "  "));
    out.push('\n');
    out.push_str(&wrap(
        &format!(
            "tapmatrix ran {} on {} kernels (Debian's packages, booted in QEMU). Per kernel, what changed since the one before it; each change is told once, where it starts, with the kernels where it holds.",
            if scripts.is_empty() {
                "the tapsets' probe resolution".to_owned()
            } else {
                format!("{} scripts", scripts.len())
            },
            kernels.len()
        ),
        WIDTH,
        "",
        "",
    ));
    out.push('\n');
    for kernel in &results.kernels {
        let line = match &kernel.release {
            Some(release) => format!("  {:<6} {release}", kernel.id),
            None => format!("  {}", kernel.id),
        };
        out.push_str(&quote(&line, ""));
    }
    if !results.cells.is_empty() {
        out.push('\n');
        out.push_str(&wrap(&results.summary(), WIDTH, "", ""));
    }
    for (index, kernel) in kernels.iter().enumerate() {
        let mut section = String::new();
        for script in &scripts {
            section.push_str(&script_changes(results, &kernels, index, script));
        }
        if let Some(matrix) = &results.probes {
            section.push_str(&probe_changes(matrix, &kernels, index));
        }
        if section.is_empty() {
            continue;
        }
        let release = results
            .kernels
            .get(index)
            .and_then(|k| k.release.as_deref())
            .map_or(String::new(), |r| format!(" ({r})"));
        let heading = if index == 0 {
            format!("{kernel}{release}, the oldest kernel:")
        } else {
            format!("{kernel}{release}, since {}:", kernels[index - 1])
        };
        out.push('\n');
        out.push_str(&wrap(&heading, WIDTH, "", "  "));
        out.push_str(&section);
    }
    out.push_str("\n-- \n");
    out.push_str(&wrap(
        &format!(
            "{}{}",
            if results.run.tool.is_empty() {
                "tapmatrix"
            } else {
                &results.run.tool
            },
            if results.run.id.is_empty() {
                String::new()
            } else {
                format!(", run {}", results.run.id)
            }
        ),
        WIDTH,
        "",
        "",
    ));
    out
}

/// Quoted text (a diff, output) indented, long lines cut to the width.
fn quote(text: &str, indent: &str) -> String {
    let mut out = String::new();
    let room = WIDTH.saturating_sub(indent.len()).max(8);
    for line in text.lines() {
        let chars: Vec<char> = line.chars().collect();
        if chars.is_empty() {
            out.push_str(indent.trim_end());
            out.push('\n');
            continue;
        }
        for chunk in chars.chunks(room) {
            let _ = writeln!(
                out,
                "{indent}{}",
                chunk.iter().collect::<String>().trim_end()
            );
        }
    }
    out
}

/// The changes of `script` that start at kernel `index`.
fn script_changes(results: &Results, kernels: &[&str], index: usize, script: &str) -> String {
    let cells: Vec<Option<&Cell>> = kernels.iter().map(|k| results.cell(script, k)).collect();
    let Some(cell) = cells[index] else {
        return String::new();
    };
    let mut out = String::new();
    let mut told_diff = false;
    let same = |other: Option<&Cell>| {
        other.is_some_and(|o| o.status == cell.status && o.detail == cell.detail)
    };
    // A failure, told where its run of kernels starts.
    if !cell.status.is_good() && (index == 0 || !same(cells[index - 1])) {
        let holds: Vec<bool> = (0..kernels.len())
            .map(|i| {
                // Only the run that starts here.
                i >= index && (index..=i).all(|j| same(cells[j]))
            })
            .collect();
        let range = kernel_ranges(kernels, &holds).join(", ");
        out.push_str(&wrap(
            &format!("{script}: {} {range}: {}", cell.status.key(), cell.detail),
            WIDTH,
            "  ",
            "      ",
        ));
        if let Some(first) = &cell.first_attempt {
            out.push_str(&wrap(
                &format!("first attempt: {}: {}", first.status.key(), first.detail),
                WIDTH,
                "    ",
                "      ",
            ));
        }
        if cell.status == Status::Fail
            && let Some(diff) = cell.diff()
        {
            out.push_str(&quote(&first_lines(&diff, DIFF_LINES), "      "));
            told_diff = true;
        }
        if let Some(logs) = &cell.logs {
            out.push_str(&wrap(
                &format!("logs: {} {}", logs.console, logs.agent),
                WIDTH,
                "    ",
                "      ",
            ));
        }
    }
    // Output that differs from the previous kernel's.
    let ran = |c: &Cell| matches!(c.status, Status::Pass | Status::Fail | Status::Flaky);
    // Told once: a failure's diff already shows the new output.
    if index > 0
        && !told_diff
        && let (Some(before), Some(now)) = (
            cells[index - 1]
                .filter(|c| ran(c))
                .and_then(|c| c.output.as_deref()),
            Some(cell)
                .filter(|c| ran(c))
                .and_then(|c| c.output.as_deref()),
        )
        && before.trim_end() != now.trim_end()
    {
        out.push_str(&wrap(
            &format!(
                "{script}: output changed from {} to {}:",
                kernels[index - 1],
                kernels[index]
            ),
            WIDTH,
            "  ",
            "      ",
        ));
        let diff = unified_diff(before, now, kernels[index - 1], kernels[index]);
        out.push_str(&quote(&first_lines(&diff, DIFF_LINES), "      "));
    }
    out
}

/// The probes that stop resolving at kernel `index`, by tapset and alias.
fn probe_changes(matrix: &tapmatrix_resolve::Matrix, kernels: &[&str], index: usize) -> String {
    let column_of = |id: &str| matrix.kernels.iter().position(|k| k == id);
    let mut by_file: Vec<(String, String)> = Vec::new();
    for row in &matrix.rows {
        let mut text = String::new();
        for group in row.miss_groups() {
            let holds: Vec<bool> = kernels
                .iter()
                .map(|k| column_of(k).is_some_and(|c| group.kernels.contains(&c)))
                .collect();
            // Told where each run of kernels starts.
            let starts_here =
                holds.get(index).copied().unwrap_or(false) && (index == 0 || !holds[index - 1]);
            if !starts_here {
                continue;
            }
            let mut end = index;
            while end + 1 < holds.len() && holds[end + 1] {
                end += 1;
            }
            let run: Vec<bool> = (0..holds.len()).map(|i| i >= index && i <= end).collect();
            let range = kernel_ranges(kernels, &run).join(", ");
            for miss in group.misses {
                text.push_str(&wrap(
                    &format!("unresolved {range}: {}: {}", miss.point, miss.reason),
                    WIDTH,
                    "      ",
                    "        ",
                ));
            }
            for s in &group.suggestions {
                text.push_str(&wrap(
                    &format!("suggest {} ({})", s.probe_point, s.evidence),
                    WIDTH,
                    "        ",
                    "          ",
                ));
            }
        }
        if text.is_empty() {
            continue;
        }
        let file = row
            .location
            .rsplitn(3, ':')
            .last()
            .unwrap_or(&row.location)
            .to_owned();
        let alias = wrap(&row.probe, WIDTH, "    ", "      ");
        match by_file.iter_mut().find(|(f, _)| *f == file) {
            Some((_, body)) => {
                body.push_str(&alias);
                body.push_str(&text);
            }
            None => by_file.push((file, format!("{alias}{text}"))),
        }
    }
    let mut out = String::new();
    for (file, body) in by_file {
        out.push_str(&wrap(&file, WIDTH, "  ", "    "));
        out.push_str(&body);
    }
    out
}
