//! The availability matrix: probe (alias or script probe) x kernel, each
//! cell resolved, optional-missing, unresolved (classified, with
//! suggestions) or undefined; rendered as a table, JSON or Markdown.
//!
//! JSON schema (`tapmatrix resolve --format json`, version 1):
//!
//! ```text
//! { "schema": 1,
//!   "kernels": ["5.10", ...],
//!   "rows": [ { "probe": "vfs.read", "location": "tapsets/vfs.stp:11:1",
//!               "cells": [ { "status": "resolved", "alternatives": ["kernel.function(\"vfs_read\")"], "attach_points": 1 }
//!                        | { "status": "optional_missing", "misses": [MISS...] }
//!                        | { "status": "unresolved", "misses": [MISS...], "suggestions": [SUGGESTION...] }
//!                        | { "status": "undefined" } ] } ] }
//! MISS = { "point": "kernel.function(\"x\")", "reason": { "kind": "function_absent", "function": "x" } }
//!        (kinds: see Reason: renamed has "to", clones_only has "clones", ...)
//! SUGGESTION = { "probe_point": "kernel.function(\"y\")?", "evidence": "...", "strength": 3 }
//! ```
//!
//! `cells[i]` is the cell of `kernels[i]`.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use tapmatrix_facts::KernelFacts;

use crate::library::Library;
use crate::outcome::{Miss, Outcome, Reason};
use crate::resolver::Resolver;
use crate::suggest::{Suggestion, suggest};

/// The JSON schema version.
pub const SCHEMA: u32 = 1;

/// One cell: a probe on a kernel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Cell {
    /// It attaches.
    Resolved {
        /// The leaf probe points used.
        alternatives: Vec<String>,
        /// How many places it attaches to.
        attach_points: usize,
    },
    /// Only optional points, all missing.
    OptionalMissing {
        /// What is missing.
        misses: Vec<Miss>,
    },
    /// A required point is missing.
    Unresolved {
        /// What is missing, classified.
        misses: Vec<Miss>,
        /// What to add, strongest first.
        suggestions: Vec<Suggestion>,
    },
    /// The sources define no such probe for this kernel (preprocessor conditionals).
    Undefined,
}

impl Cell {
    /// Whether the cell counts as a failure (exit status 1).
    pub fn is_unresolved(&self) -> bool {
        matches!(self, Cell::Unresolved { .. })
    }

    /// A short text for the terminal table.
    pub fn short(&self) -> String {
        match self {
            Cell::Resolved { attach_points, .. } => format!("ok {attach_points}"),
            Cell::OptionalMissing { .. } => "optional".to_owned(),
            Cell::Unresolved { misses, .. } => {
                let mut classes: Vec<&str> = Vec::new();
                for miss in misses {
                    if !classes.contains(&miss.reason.class()) {
                        classes.push(miss.reason.class());
                    }
                }
                match classes.as_slice() {
                    [one] => (*one).to_owned(),
                    [first, rest @ ..] => format!("{first}+{}", rest.len()),
                    [] => "unresolved".to_owned(),
                }
            }
            Cell::Undefined => "-".to_owned(),
        }
    }
}

/// One row: a probe alias, or a probe of the script.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Row {
    /// The alias name, or the script probe's points.
    pub probe: String,
    /// Where it is defined (first definition).
    pub location: String,
    /// One cell per kernel.
    pub cells: Vec<Cell>,
}

/// Unresolved cells of one row that miss the same points for the same
/// reasons, on several kernels: one porting note, not one per kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissGroup<'a> {
    /// The kernel columns, in order.
    pub kernels: Vec<usize>,
    /// What is missing (the same on each).
    pub misses: &'a [Miss],
    /// Every suggestion made on any of them, once, strongest first.
    pub suggestions: Vec<&'a Suggestion>,
}

impl Row {
    /// The row's unresolved cells grouped by what they miss, in the order
    /// of their first kernel.
    pub fn miss_groups(&self) -> Vec<MissGroup<'_>> {
        let mut groups: Vec<MissGroup<'_>> = Vec::new();
        for (column, cell) in self.cells.iter().enumerate() {
            let Cell::Unresolved {
                misses,
                suggestions,
            } = cell
            else {
                continue;
            };
            let index = match groups.iter().position(|g| g.misses == misses.as_slice()) {
                Some(index) => index,
                None => {
                    groups.push(MissGroup {
                        kernels: Vec::new(),
                        misses,
                        suggestions: Vec::new(),
                    });
                    groups.len() - 1
                }
            };
            let group = &mut groups[index];
            group.kernels.push(column);
            for suggestion in suggestions {
                if !group
                    .suggestions
                    .iter()
                    .any(|s| s.probe_point == suggestion.probe_point)
                {
                    group.suggestions.push(suggestion);
                }
            }
        }
        for group in &mut groups {
            group
                .suggestions
                .sort_by_key(|s| std::cmp::Reverse(s.strength));
        }
        groups
    }
}

/// The whole matrix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Matrix {
    /// [`SCHEMA`].
    pub schema: u32,
    /// Kernel ids, in column order.
    pub kernels: Vec<String>,
    /// The rows.
    pub rows: Vec<Row>,
}

/// One kernel's input: its id, facts, and the library as read for it.
#[derive(Debug, Clone, Copy)]
pub struct KernelInput<'a> {
    /// The kernel id.
    pub id: &'a str,
    /// Its facts.
    pub facts: &'a KernelFacts,
    /// The sources as preprocessed for it.
    pub library: &'a Library,
}

/// What the rows are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowsOf {
    /// Every alias the library defines (a tapset directory).
    Aliases,
    /// The script's probes.
    ScriptProbes,
}

/// A miss reclassified, and its suggestions, by miss: the same miss
/// recurs in many rows.
type Suggested = HashMap<Miss, (Reason, Vec<Suggestion>)>;

fn cell_of(
    outcome: Outcome,
    here: &KernelFacts,
    others: &[&KernelFacts],
    suggested: &mut Suggested,
) -> Cell {
    match outcome {
        Outcome::Resolved(found) => Cell::Resolved {
            alternatives: found.alternatives,
            attach_points: found.attach.len(),
        },
        Outcome::OptionalMissing(misses) => Cell::OptionalMissing { misses },
        Outcome::Unresolved(misses) => {
            let mut suggestions: Vec<Suggestion> = Vec::new();
            let misses = misses
                .into_iter()
                .map(|miss| {
                    let (reason, more) = suggested
                        .entry(miss.clone())
                        .or_insert_with_key(|miss| suggest(miss, here, others));
                    for suggestion in more.iter() {
                        if !suggestions
                            .iter()
                            .any(|s| s.probe_point == suggestion.probe_point)
                        {
                            suggestions.push(suggestion.clone());
                        }
                    }
                    Miss {
                        reason: reason.clone(),
                        ..miss
                    }
                })
                .collect();
            suggestions.sort_by_key(|s| std::cmp::Reverse(s.strength));
            Cell::Unresolved {
                misses,
                suggestions,
            }
        }
    }
}

/// The cells of kernel `index` for the rows `row_keys`.
fn column(
    kernels: &[KernelInput<'_>],
    index: usize,
    row_keys: &[(String, String)],
    rows_of: RowsOf,
) -> Vec<Cell> {
    let Some(kernel) = kernels.get(index) else {
        return Vec::new();
    };
    let resolver = Resolver::new(kernel.library, kernel.facts);
    let others: Vec<&KernelFacts> = kernels
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != index)
        .map(|(_, k)| k.facts)
        .collect();
    let mut suggested = Suggested::new();
    let mut cells = Vec::with_capacity(row_keys.len());
    for (probe, _) in row_keys {
        let outcome = match rows_of {
            RowsOf::Aliases => {
                if kernel.library.aliases_named(probe).next().is_none() {
                    cells.push(Cell::Undefined);
                    continue;
                }
                resolver.resolve_alias(probe)
            }
            RowsOf::ScriptProbes => {
                match kernel.library.probes.iter().find(|p| p.label() == *probe) {
                    Some(p) => match resolver.resolve_probe(&p.points) {
                        Outcome::Resolved(found) => {
                            let misses = resolver.check_targets(&found.attach, &p.targets);
                            if misses.is_empty() {
                                Outcome::Resolved(found)
                            } else {
                                Outcome::Unresolved(misses)
                            }
                        }
                        other => other,
                    },
                    None => {
                        cells.push(Cell::Undefined);
                        continue;
                    }
                }
            }
        };
        cells.push(cell_of(outcome, kernel.facts, &others, &mut suggested));
    }
    cells
}

impl Matrix {
    /// Resolves every row on every kernel.
    pub fn build(kernels: &[KernelInput<'_>], rows_of: RowsOf) -> Matrix {
        let mut rows: Vec<Row> = Vec::new();
        let mut row_keys: Vec<(String, String)> = Vec::new();
        let mut seen: HashSet<String> = HashSet::new();
        for (index, kernel) in kernels.iter().enumerate() {
            // Kernels that share a library add no row.
            if kernels[..index]
                .iter()
                .any(|earlier| std::ptr::eq(earlier.library, kernel.library))
            {
                continue;
            }
            let keys: Vec<(String, String)> = match rows_of {
                RowsOf::Aliases => kernel
                    .library
                    .alias_names()
                    .into_iter()
                    .filter_map(|name| {
                        let alias = kernel.library.aliases_named(&name).next()?;
                        Some((name, alias.location.clone()))
                    })
                    .collect(),
                RowsOf::ScriptProbes => kernel
                    .library
                    .probes
                    .iter()
                    .map(|p| (p.label(), p.location.clone()))
                    .collect(),
            };
            for key in keys {
                if seen.insert(key.0.clone()) {
                    row_keys.push(key);
                }
            }
        }
        // Each kernel's column on its own: kernels share nothing but
        // read-only facts and libraries, so columns are built in parallel.
        let columns: Vec<Vec<Cell>> = (0..kernels.len())
            .into_par_iter()
            .map(|index| column(kernels, index, &row_keys, rows_of))
            .collect();
        let mut columns: Vec<std::vec::IntoIter<Cell>> =
            columns.into_iter().map(Vec::into_iter).collect();
        for (probe, location) in row_keys {
            let cells = columns.iter_mut().filter_map(Iterator::next).collect();
            rows.push(Row {
                probe,
                location,
                cells,
            });
        }
        Matrix {
            schema: SCHEMA,
            kernels: kernels.iter().map(|k| k.id.to_owned()).collect(),
            rows,
        }
    }

    /// Whether any cell is unresolved.
    pub fn has_unresolved(&self) -> bool {
        self.rows
            .iter()
            .flat_map(|r| &r.cells)
            .any(Cell::is_unresolved)
    }

    /// Only the rows whose cells differ between kernel columns `a` and `b`
    /// (by status and classification), with just those two columns.
    pub fn diff(&self, a: usize, b: usize) -> Matrix {
        let key = |cell: &Cell| match cell {
            Cell::Resolved { alternatives, .. } => format!("ok {alternatives:?}"),
            other => other.short(),
        };
        let rows = self
            .rows
            .iter()
            .filter_map(|row| {
                let (x, y) = (row.cells.get(a)?, row.cells.get(b)?);
                (key(x) != key(y)).then(|| Row {
                    probe: row.probe.clone(),
                    location: row.location.clone(),
                    cells: vec![x.clone(), y.clone()],
                })
            })
            .collect();
        let id = |i: usize| self.kernels.get(i).cloned().unwrap_or_default();
        Matrix {
            schema: SCHEMA,
            kernels: vec![id(a), id(b)],
            rows,
        }
    }

    /// The terminal table, then the details of every unresolved cell.
    pub fn render_table(&self) -> String {
        // Each cell's text once, borrowed where it exists already; lines
        // are written straight into the output (a `format!` and a `join`
        // per cell cost a twentieth of resolving SystemTap's library).
        let shorts: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|row| row.cells.iter().map(Cell::short).collect())
            .collect();
        let header = std::iter::once("PROBE").chain(self.kernels.iter().map(String::as_str));
        let lines = std::iter::once(header.collect::<Vec<&str>>()).chain(
            self.rows.iter().zip(&shorts).map(|(row, cells)| {
                std::iter::once(row.probe.as_str())
                    .chain(cells.iter().map(String::as_str))
                    .collect()
            }),
        );
        let lines: Vec<Vec<&str>> = lines.collect();
        let columns = self.kernels.len() + 1;
        let mut widths = vec![0; columns];
        for line in &lines {
            for (width, cell) in widths.iter_mut().zip(line) {
                *width = (*width).max(cell.len());
            }
        }
        let mut out = String::new();
        let mut text = String::new();
        for line in &lines {
            text.clear();
            for (index, (cell, width)) in line.iter().zip(&widths).enumerate() {
                if index > 0 {
                    text.push_str("  ");
                }
                text.push_str(cell);
                // `{cell:width$}` pads to `width` characters.
                let pad = width.saturating_sub(cell.chars().count());
                text.extend(std::iter::repeat_n(' ', pad));
            }
            out.push_str(text.trim_end());
            out.push('\n');
        }
        out.push_str(&self.details(false));
        out
    }

    fn details(&self, markdown: bool) -> String {
        let mut out = String::new();
        for row in &self.rows {
            for group in row.miss_groups() {
                let kernels = self.kernel_span(&group.kernels);
                if markdown {
                    let _ = writeln!(
                        out,
                        "\n### `{}` on {kernels} ({})\n",
                        row.probe, row.location
                    );
                } else {
                    let _ = writeln!(out, "\n{} on {kernels} ({}):", row.probe, row.location);
                }
                for miss in group.misses {
                    if markdown {
                        let _ = writeln!(out, "- `{}`: {}", miss.point, miss.reason);
                    } else {
                        let _ = writeln!(out, "  {}: {}", miss.point, miss.reason);
                    }
                }
                for s in &group.suggestions {
                    if markdown {
                        let _ = writeln!(out, "- suggest `{}` ({})", s.probe_point, s.evidence);
                    } else {
                        let _ = writeln!(out, "  suggest {}  ({})", s.probe_point, s.evidence);
                    }
                }
            }
        }
        out
    }

    /// The kernels of column indexes `columns` as text: a run of adjacent
    /// columns as `A to B`, others separated by commas.
    pub fn kernel_span(&self, columns: &[usize]) -> String {
        let id = |i: usize| self.kernels.get(i).map_or("?", String::as_str);
        let mut parts: Vec<String> = Vec::new();
        let mut index = 0;
        while index < columns.len() {
            let start = index;
            while index + 1 < columns.len() && columns[index + 1] == columns[index] + 1 {
                index += 1;
            }
            parts.push(match index - start {
                0 => id(columns[start]).to_owned(),
                1 => format!("{}, {}", id(columns[start]), id(columns[index])),
                _ => format!("{} to {}", id(columns[start]), id(columns[index])),
            });
            index += 1;
        }
        parts.join(", ")
    }

    /// The Markdown report: a table, then each unresolved cell's reasons
    /// and suggestions.
    pub fn render_markdown(&self) -> String {
        let mut out = String::from("| probe |");
        for kernel in &self.kernels {
            let _ = write!(out, " {kernel} |");
        }
        out.push_str("\n| --- |");
        for _ in &self.kernels {
            out.push_str(" --- |");
        }
        out.push('\n');
        for row in &self.rows {
            let _ = write!(out, "| `{}` |", row.probe);
            for cell in &row.cells {
                let _ = write!(out, " {} |", cell.short());
            }
            out.push('\n');
        }
        out.push_str(&self.details(true));
        out
    }
}
