//! A KCIDB submission (KernelCI's I/O schema, version 5.3): one checkout
//! and one build per kernel (Debian's package of it), one test per cell
//! (`tapmatrix.SCRIPT`) and, with the availability matrix, one per alias
//! (`tapmatrix.probes.ALIAS`).
//!
//! Statuses: pass PASS, n/a SKIP, fail FAIL, error ERROR, infra MISS (the
//! harness failed, the kernel's state is unknown), flaky ERROR with
//! `misc.flaky` (the test's own verdict is unreliable). Ids are
//! `ORIGIN:RUN:...`. Log paths become `log_url`/`output_files` when a base
//! URL is given (KCIDB wants absolute URLs); they are always in `misc.logs`.

use serde_json::{Map, Value, json};
use tapmatrix_resolve::Cell as ProbeCell;

use crate::model::{Cell, Results, Status};
use crate::text::{first_lines, one_line};

/// KCIDB's `log_excerpt` limit, in characters.
const EXCERPT_MAX: usize = 16384;

/// Where the submission says it comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KcidbOptions {
    /// The CI system's name (`[a-z0-9_]+`).
    pub origin: String,
    /// The URL the run's output directory is published at, if any
    /// (`https://.../`): log paths are appended to it.
    pub log_base_url: Option<String>,
}

impl Default for KcidbOptions {
    fn default() -> KcidbOptions {
        KcidbOptions {
            origin: "tapmatrix".to_owned(),
            log_base_url: None,
        }
    }
}

/// Only the characters a KCIDB path or origin allows.
fn path_part(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn status(status: Status) -> &'static str {
    match status {
        Status::Pass => "PASS",
        Status::NotAvailable => "SKIP",
        Status::Fail => "FAIL",
        Status::Error | Status::Flaky => "ERROR",
        Status::Infra => "MISS",
    }
}

fn excerpt(text: &str) -> String {
    text.chars().take(EXCERPT_MAX).collect()
}

/// The submission as JSON text.
pub fn render(results: &Results, options: &KcidbOptions) -> String {
    let origin = path_part(&options.origin.to_lowercase()).replace('-', "_");
    let run = if results.run.id.is_empty() {
        "run".to_owned()
    } else {
        results.run.id.clone()
    };
    let id = |rest: &str| format!("{origin}:{run}:{rest}");
    let url = |path: &str| {
        options
            .log_base_url
            .as_ref()
            .map(|base| format!("{}/{}", base.trim_end_matches('/'), path))
    };
    let mut checkouts = Vec::new();
    let mut builds = Vec::new();
    let mut tests = Vec::new();
    for kernel in &results.kernels {
        let checkout = id(&format!("checkout:{}", kernel.id));
        let build = id(&format!("build:{}", kernel.id));
        let mut misc = Map::new();
        misc.insert("kernel".to_owned(), json!(kernel.id));
        if let Some(release) = &kernel.release {
            misc.insert("release".to_owned(), json!(release));
        }
        checkouts.push(json!({
            "id": checkout,
            "origin": origin,
            "tree_name": "debian",
            "comment": format!("Debian's linux-image package of the {} series", kernel.id),
            "valid": true,
            "misc": misc,
        }));
        let mut b = json!({
            "id": build,
            "checkout_id": checkout,
            "origin": origin,
            "architecture": "x86_64",
            "config_name": "debian-amd64",
            "comment": kernel.release.clone().unwrap_or_else(|| kernel.id.clone()),
            "status": "PASS",
            "misc": misc,
        });
        if let Some(infra) = &kernel.infra {
            b["misc"]["infra"] = json!(infra);
        }
        builds.push(b);
        for cell in results.cells.iter().filter(|c| c.kernel == kernel.id) {
            tests.push(test(cell, &build, &id, &origin, &url));
        }
        if let Some(matrix) = &results.probes
            && let Some(column) = matrix.kernels.iter().position(|k| *k == kernel.id)
        {
            for row in &matrix.rows {
                let Some(cell) = row.cells.get(column) else {
                    continue;
                };
                let (st, excerpt_text) = match cell {
                    ProbeCell::Resolved { alternatives, .. } => ("PASS", alternatives.join("\n")),
                    ProbeCell::OptionalMissing { .. } | ProbeCell::Undefined => {
                        ("SKIP", String::new())
                    }
                    ProbeCell::Unresolved {
                        misses,
                        suggestions,
                    } => (
                        "FAIL",
                        misses
                            .iter()
                            .map(|m| format!("{}: {}", m.point, m.reason))
                            .chain(
                                suggestions
                                    .iter()
                                    .map(|s| format!("suggest {} ({})", s.probe_point, s.evidence)),
                            )
                            .collect::<Vec<_>>()
                            .join("\n"),
                    ),
                };
                let path = format!(
                    "tapmatrix.probes.{}",
                    row.probe
                        .split('.')
                        .map(path_part)
                        .collect::<Vec<_>>()
                        .join(".")
                );
                let mut t = json!({
                    "id": id(&format!("probe:{}:{}", kernel.id, row.probe)),
                    "build_id": build,
                    "origin": origin,
                    "path": path,
                    "status": st,
                    "comment": format!("{} ({})", row.probe, row.location),
                });
                if !excerpt_text.is_empty() {
                    t["log_excerpt"] = json!(excerpt(&excerpt_text));
                }
                tests.push(t);
            }
        }
    }
    let submission = json!({
        "version": { "major": 5, "minor": 3 },
        "checkouts": checkouts,
        "builds": builds,
        "tests": tests,
    });
    let mut text = serde_json::to_string_pretty(&submission).unwrap_or_default();
    text.push('\n');
    text
}

fn test(
    cell: &Cell,
    build: &str,
    id: &dyn Fn(&str) -> String,
    origin: &str,
    url: &dyn Fn(&str) -> Option<String>,
) -> Value {
    let mut t = json!({
        "id": id(&format!("test:{}:{}", cell.kernel, cell.script)),
        "build_id": build,
        "origin": origin,
        "path": format!("tapmatrix.{}", path_part(&cell.script)),
        "status": status(cell.status),
        "duration": cell.elapsed_ms as f64 / 1000.0,
    });
    if !cell.detail.is_empty() {
        t["comment"] = json!(one_line(&cell.detail));
    }
    let mut text = cell.detail.clone();
    if let Some(diff) = cell.diff() {
        text.push('\n');
        text.push_str(&first_lines(&diff, 200));
    }
    if !cell.status.is_good() && !text.is_empty() {
        t["log_excerpt"] = json!(excerpt(&text));
    }
    let mut misc = json!({
        "kernel": cell.kernel,
        "hits": cell.hits,
        "lost": cell.lost,
    });
    if cell.skipped > 0 {
        misc["skipped"] = json!(cell.skipped);
    }
    if cell.status == Status::Flaky {
        misc["flaky"] = json!(true);
        if let Some(first) = &cell.first_attempt {
            misc["first_attempt"] = json!({"status": first.status.key(), "detail": first.detail});
        }
    }
    if let Some(backend) = &cell.backend {
        misc["backend"] = json!(backend);
    }
    if let Some(logs) = &cell.logs {
        misc["logs"] = json!({"console": logs.console, "agent": logs.agent});
        if let (Some(console), Some(agent)) = (url(&logs.console), url(&logs.agent)) {
            t["log_url"] = json!(console);
            t["output_files"] = json!([
                {"name": "console.log", "url": console},
                {"name": "agent.log", "url": agent},
            ]);
        }
    }
    t["misc"] = misc;
    t
}
