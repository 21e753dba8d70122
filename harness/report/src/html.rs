//! A static HTML page: one file, no script, no network. The grid kernel x
//! script and the grid kernel x alias (grouped by tapset file), each cell
//! colored by its status; a cell is a link to its details (`#d-...`),
//! which CSS shows as a panel when it is the page's target: the reason,
//! the suggestions, the diff, the output and the links to the console and
//! agent logs (relative to the page, which is written beside
//! `results.json`).

use std::fmt::Write as _;

use tapmatrix_resolve::{Cell as ProbeCell, Matrix};

use crate::junit::escape;
use crate::model::{Cell, Results, Status};

const STYLE: &str = r#"
body { font: 14px/1.4 sans-serif; margin: 1em; color: #222; }
h1 { font-size: 1.4em; margin: 0 0 .2em; }
h2 { font-size: 1.15em; margin: 1.2em 0 .4em; }
table.grid { border-collapse: collapse; }
table.grid th, table.grid td { border: 1px solid #ccc; padding: 0; text-align: center; }
table.grid th { padding: 2px 6px; background: #f4f4f4; font-weight: normal; }
table.grid th.row { text-align: left; font-family: monospace; }
table.grid tr.file th { text-align: left; background: #e8e8f0; font-weight: bold; }
a.cell, span.cell { display: block; min-width: 4.5em; padding: 2px 4px; color: #000; text-decoration: none; }
a.cell:hover { outline: 2px solid #000; }
.s-pass, .p-resolved { background: #9be39b; }
.s-not_available, .p-optional { background: #dddddd; }
.s-flaky { background: #ffc06b; }
.s-fail, .p-unresolved { background: #ff8a8a; }
.s-error { background: #d59cf0; }
.s-infra { background: #f0e27a; }
.p-undefined { background: #fff; color: #888; }
.legend span { display: inline-block; padding: 1px 6px; margin-right: 4px; }
.detail { display: none; }
.detail:target { display: block; position: fixed; top: 0; right: 0; width: 46%; height: 100%;
  overflow: auto; background: #fff; border-left: 3px solid #444; padding: 1em; box-sizing: border-box; }
.detail h3 { margin-top: 0; }
.detail pre { background: #f6f6f6; padding: .5em; overflow: auto; white-space: pre-wrap; }
.detail .close { float: right; }
pre .add { color: #060; } pre .del { color: #a00; } pre .hunk { color: #06c; }
"#;

/// The page.
pub fn render(results: &Results) -> String {
    let mut out = String::new();
    out.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    let _ = writeln!(
        out,
        "<title>tapmatrix: {}</title>",
        escape(&results.summary())
    );
    let _ = writeln!(out, "<style>{STYLE}</style>\n</head>\n<body>");
    out.push_str("<header>\n<h1>tapmatrix results</h1>\n");
    if !results.cells.is_empty() {
        let _ = writeln!(out, "<p id=\"summary\">{}</p>", escape(&results.summary()));
    }
    if !results.run.tool.is_empty() || !results.run.id.is_empty() {
        let _ = writeln!(
            out,
            "<p>{} {}</p>",
            escape(&results.run.tool),
            escape(&results.run.id)
        );
    }
    out.push_str("<p class=\"legend\">");
    for status in Status::ALL {
        let _ = write!(
            out,
            "<span class=\"s-{}\">{}</span>",
            status.key(),
            status.word()
        );
    }
    out.push_str(
        "</p>\n<p>Click a cell for its reason, suggestions, diff and logs.</p>\n</header>\n",
    );
    let mut details = String::new();
    if !results.cells.is_empty() {
        scripts(&mut out, &mut details, results);
    }
    if let Some(matrix) = &results.probes {
        probes(&mut out, &mut details, matrix);
    }
    out.push_str("<div id=\"details\">\n");
    out.push_str(&details);
    out.push_str("</div>\n</body>\n</html>\n");
    out
}

fn kernel_heads(out: &mut String, results: &Results, ids: &[String], first: &str) {
    let _ = write!(out, "<thead><tr><th>{first}</th>");
    for id in ids {
        let release = results
            .kernels
            .iter()
            .find(|k| k.id == *id)
            .and_then(|k| k.release.as_deref())
            .unwrap_or("");
        let _ = write!(out, "<th title=\"{}\">{}</th>", escape(release), escape(id));
    }
    out.push_str("</tr></thead>\n");
}

/// A diff with its lines colored.
fn diff_block(diff: &str) -> String {
    let mut out = String::from("<pre class=\"diff\">");
    for line in diff.lines() {
        let class = if line.starts_with("+++") || line.starts_with("---") {
            ""
        } else if line.starts_with('+') {
            "add"
        } else if line.starts_with('-') {
            "del"
        } else if line.starts_with("@@") {
            "hunk"
        } else {
            ""
        };
        if class.is_empty() {
            let _ = writeln!(out, "{}", escape(line));
        } else {
            let _ = writeln!(out, "<span class=\"{class}\">{}</span>", escape(line));
        }
    }
    out.push_str("</pre>");
    out
}

fn scripts(out: &mut String, details: &mut String, results: &Results) {
    let ids: Vec<String> = results.kernels.iter().map(|k| k.id.clone()).collect();
    out.push_str(
        "<section id=\"scripts\">\n<h2>Scripts &times; kernels</h2>\n<table class=\"grid\">\n",
    );
    kernel_heads(out, results, &ids, "script");
    out.push_str("<tbody>\n");
    for (si, script) in results.script_names().iter().enumerate() {
        let description = results
            .script(script)
            .map_or("", |s| s.description.as_str());
        let _ = write!(
            out,
            "<tr><th class=\"row\" title=\"{}\">{}</th>",
            escape(description),
            escape(script)
        );
        for (ki, kernel) in ids.iter().enumerate() {
            let Some(cell) = results.cell(script, kernel) else {
                out.push_str("<td><span class=\"cell p-undefined\">-</span></td>");
                continue;
            };
            let id = format!("d-s-{si}-{ki}");
            let _ = write!(
                out,
                "<td><a class=\"cell s-{}\" href=\"#{id}\" title=\"{}\">{}</a></td>",
                cell.status.key(),
                escape(&cell.detail),
                cell.status.word()
            );
            script_detail(details, &id, cell, description);
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody>\n</table>\n</section>\n");
}

fn script_detail(out: &mut String, id: &str, cell: &Cell, description: &str) {
    let _ = writeln!(
        out,
        "<article class=\"detail\" id=\"{id}\"><a class=\"close\" href=\"#\">close</a>\n<h3>{} on {}: <span class=\"s-{}\">{}</span></h3>",
        escape(&cell.script),
        escape(&cell.kernel),
        cell.status.key(),
        cell.status.word()
    );
    if !description.is_empty() {
        let _ = writeln!(out, "<p class=\"description\">{}</p>", escape(description));
    }
    if !cell.detail.is_empty() {
        let _ = writeln!(out, "<p class=\"reason\">{}</p>", escape(&cell.detail));
    }
    if let Some(first) = &cell.first_attempt {
        let _ = writeln!(
            out,
            "<p class=\"first-attempt\">First attempt: {}: {}</p>",
            first.status.word(),
            escape(&first.detail)
        );
    }
    let _ = writeln!(
        out,
        "<p>{} hits, {} lost{}, {} ms in the guest{}</p>",
        cell.hits,
        cell.lost,
        if cell.skipped > 0 {
            format!(", {} skipped", cell.skipped)
        } else {
            String::new()
        },
        cell.elapsed_ms,
        cell.backend
            .as_ref()
            .map_or(String::new(), |b| format!(", back end {}", escape(b)))
    );
    if let Some(diff) = cell.diff() {
        let _ = writeln!(out, "<h4>Diff</h4>\n{}", diff_block(&diff));
    }
    if let Some(output) = &cell.output
        && cell.status != Status::Pass
    {
        let _ = writeln!(
            out,
            "<h4>Output</h4>\n<pre class=\"output\">{}</pre>",
            escape(output)
        );
    }
    if let Some(logs) = &cell.logs {
        let _ = writeln!(
            out,
            "<p class=\"logs\"><a href=\"{}\">console log</a> <a href=\"{}\">agent log</a></p>",
            escape(&logs.console),
            escape(&logs.agent)
        );
    }
    out.push_str("</article>\n");
}

fn probes(out: &mut String, details: &mut String, matrix: &Matrix) {
    out.push_str(
        "<section id=\"probes\">\n<h2>Aliases &times; kernels</h2>\n<table class=\"grid\">\n",
    );
    let _ = write!(out, "<thead><tr><th>alias</th>");
    for id in &matrix.kernels {
        let _ = write!(out, "<th>{}</th>", escape(id));
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    let mut file = String::new();
    for (ri, row) in matrix.rows.iter().enumerate() {
        let this = row.location.rsplitn(3, ':').last().unwrap_or(&row.location);
        if this != file {
            file = this.to_owned();
            let _ = writeln!(
                out,
                "<tr class=\"file\"><th colspan=\"{}\">{}</th></tr>",
                matrix.kernels.len() + 1,
                escape(&file)
            );
        }
        let _ = write!(
            out,
            "<tr><th class=\"row\" title=\"{}\">{}</th>",
            escape(&row.location),
            escape(&row.probe)
        );
        for (ki, cell) in row.cells.iter().enumerate() {
            let id = format!("d-p-{ri}-{ki}");
            let kernel = matrix.kernels.get(ki).map_or("", String::as_str);
            match cell {
                ProbeCell::Resolved {
                    alternatives,
                    attach_points,
                } => {
                    let _ = write!(
                        out,
                        "<td><span class=\"cell p-resolved\" title=\"{}\">ok {attach_points}</span></td>",
                        escape(&alternatives.join(", "))
                    );
                }
                ProbeCell::Undefined => {
                    out.push_str("<td><span class=\"cell p-undefined\" title=\"not defined for this kernel\">-</span></td>");
                }
                ProbeCell::OptionalMissing { misses } | ProbeCell::Unresolved { misses, .. } => {
                    let (class, word) = if cell.is_unresolved() {
                        ("p-unresolved", cell.short())
                    } else {
                        ("p-optional", "optional".to_owned())
                    };
                    let _ = write!(
                        out,
                        "<td><a class=\"cell {class}\" href=\"#{id}\">{}</a></td>",
                        escape(&word)
                    );
                    let _ = writeln!(
                        details,
                        "<article class=\"detail\" id=\"{id}\"><a class=\"close\" href=\"#\">close</a>\n<h3>{} on {}: <span class=\"{class}\">{}</span></h3>\n<p>{}</p>\n<ul class=\"misses\">",
                        escape(&row.probe),
                        escape(kernel),
                        escape(&word),
                        escape(&row.location)
                    );
                    for miss in misses {
                        let _ = writeln!(
                            details,
                            "<li><code>{}</code>: {}</li>",
                            escape(&miss.point),
                            escape(&miss.reason.to_string())
                        );
                    }
                    details.push_str("</ul>\n");
                    if let ProbeCell::Unresolved { suggestions, .. } = cell
                        && !suggestions.is_empty()
                    {
                        details.push_str("<h4>Suggestions</h4>\n<ul class=\"suggestions\">\n");
                        for s in suggestions {
                            let _ = writeln!(
                                details,
                                "<li><code>{}</code> ({})</li>",
                                escape(&s.probe_point),
                                escape(&s.evidence)
                            );
                        }
                        details.push_str("</ul>\n");
                    }
                    details.push_str("</article>\n");
                }
            }
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody>\n</table>\n</section>\n");
}
