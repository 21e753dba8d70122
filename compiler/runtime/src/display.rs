//! SystemTap's display of globals that are written but never read: for
//! each, stap adds an `end` probe printing it (`add_global_var_display` in
//! `elaborate.cxx`), after the script's own `end` probes of sequence 0.

use std::fmt::Write as _;

use tapmatrix_ir::{Expr, Global, LValue, Program, Sort, SortKey, Stmt, Value};

use crate::array::Elem;
use crate::machine::{Slot, sorted};
use crate::stats::Stat;

/// The globals to display, in declaration order: written somewhere, read
/// nowhere, not a tapset's `__` global (`varuse_collecting_visitor`: `=` and `<<<` only write;
/// compound assignments, `++`, `--` and `delete` read too; a sorted
/// `foreach` also writes).
pub(crate) fn unread_globals(program: &Program) -> Vec<usize> {
    let count = program.globals.len();
    let mut read = vec![false; count];
    let mut written = vec![false; count];
    let target = |lv: &LValue| match lv {
        LValue::Global(g) => Some(*g as usize),
        LValue::Index { array, .. } => Some(*array as usize),
        LValue::Local(_) => None,
    };
    let mark = |flags: &mut Vec<bool>, g: Option<usize>| {
        if let Some(slot) = g.and_then(|g| flags.get_mut(g)) {
            *slot = true;
        }
    };
    let mut reads = Vec::new();
    let mut writes = Vec::new();
    tapmatrix_ir::visit::each_stmt(program, &mut |s| match s {
        Stmt::Delete(lv) => {
            reads.push(target(lv));
            writes.push(target(lv));
        }
        Stmt::Aggregate { target: lv, .. } => writes.push(target(lv)),
        Stmt::Foreach { array, sort, .. } => {
            reads.push(Some(*array as usize));
            if sort.is_some() {
                writes.push(Some(*array as usize));
            }
        }
        _ => {}
    });
    tapmatrix_ir::visit::each_expr(program, &mut |e| match e {
        Expr::Global(g) => reads.push(Some(*g as usize)),
        Expr::Index { array, .. } | Expr::In { array, .. } => {
            reads.push(Some(*array as usize));
        }
        Expr::Assign {
            target: lv,
            op,
            concat,
            ..
        } => {
            writes.push(target(lv));
            if op.is_some() || *concat {
                reads.push(target(lv));
            }
        }
        Expr::Crement { target: lv, .. } => {
            reads.push(target(lv));
            writes.push(target(lv));
        }
        Expr::Stat { stat, .. } | Expr::Hist { stat, .. } | Expr::HistBucket { stat, .. } => {
            reads.push(target(stat));
        }
        _ => {}
    });
    for g in reads {
        mark(&mut read, g);
    }
    for g in writes {
        mark(&mut written, g);
    }
    // stap skips globals declared in tapsets; the program does not say
    // where a global was declared, so tapsets' `__` names stand for them.
    (0..count)
        .filter(|&g| written[g] && !read[g] && !program.globals[g].name.starts_with("__"))
        .collect()
}

fn stat_fields(out: &mut String, stat: &Stat) {
    let _ = write!(
        out,
        " @count={} @min={} @max={} @sum={} @avg={}",
        stat.count,
        stat.min,
        stat.max,
        stat.sum,
        stat.avg()
    );
}

fn scalar(out: &mut String, v: &Value) {
    match v {
        Value::Long(n) => {
            let _ = write!(out, "={n:#x}");
        }
        Value::Str(s) => {
            let _ = write!(out, "=\"{s}\"");
        }
    }
}

/// What the synthetic `end` probe of `global` prints.
pub(crate) fn render(global: &Global, slot: &Slot) -> String {
    let mut out = String::new();
    let name = &global.name;
    match slot {
        Slot::Scalar(v) => {
            out.push_str(name);
            scalar(&mut out, v);
            out.push('\n');
        }
        Slot::Stat(stat) => {
            out.push_str(name);
            if stat.count == 0 {
                out.push_str(" @count=0x0");
            } else {
                stat_fields(&mut out, stat);
            }
            out.push('\n');
        }
        Slot::Array(array) => {
            let by_value = Sort {
                key: SortKey::Value { aggregate: None },
                descending: true,
            };
            for (key, elem) in sorted(array, Some(by_value)) {
                out.push_str(name);
                out.push('[');
                for (i, k) in key.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    match k {
                        Value::Long(n) => {
                            let _ = write!(out, "{n}");
                        }
                        Value::Str(s) => {
                            let _ = write!(out, "\"{s}\"");
                        }
                    }
                }
                out.push(']');
                match elem {
                    Elem::Value(v) => scalar(&mut out, v),
                    Elem::Stat(stat) => stat_fields(&mut out, stat),
                }
                out.push('\n');
            }
        }
    }
    out
}
