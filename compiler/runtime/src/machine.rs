//! The interpreter: globals, frames, and the evaluation of statements and
//! expressions with SystemTap's semantics and run-time errors.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use regex::Regex;
use tapmatrix_ir::{
    BinaryOp, Block, Builtin, CompareOp, Expr, FormatSpec, GlobalType, HistSpec, LValue, Limits,
    Loc, Program, ScalarType, Sort, SortKey, StatOp, Stmt, UnaryOp, Value,
};

use crate::HitContext;
use crate::array::{Array, Elem, Full, Key, matches};
use crate::format::{self, Field, Flags, floor_boundary};
use crate::stats::{Shape, Stat};
use crate::text;

/// A run-time error: SystemTap's `last_error`, and where (`last_stmt`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fault {
    /// The message (what `catch` receives).
    pub(crate) message: String,
    /// `operator '/' at t.stp:3:9`, when known.
    pub(crate) near: Option<String>,
}

impl Fault {
    fn new(message: impl Into<String>) -> Fault {
        Fault {
            message: message.into(),
            near: None,
        }
    }

    fn near(message: impl Into<String>, near: String) -> Fault {
        Fault {
            message: message.into(),
            near: Some(near),
        }
    }

    /// The text SystemTap prints after `ERROR: `.
    pub(crate) fn text(&self) -> String {
        match &self.near {
            Some(near) => format!("{} near {}", self.message, near),
            None => self.message.clone(),
        }
    }
}

/// How a statement ended.
enum Flow {
    Normal,
    Break,
    Continue,
    Next,
    Return(Option<Value>),
}

/// What one handler run sees besides the machine: the program, the hit's
/// fetched values and its context.
pub(crate) struct Cx<'a> {
    /// The program.
    pub(crate) prog: &'a Program,
    /// Fetch slots.
    pub(crate) fetches: &'a [Value],
    /// Fetch slots whose read faulted at the hit: using one raises its error.
    pub(crate) faults: &'a [tapmatrix_ir::SlotFault],
    /// The task and place.
    pub(crate) hit: &'a HitContext,
    /// The `@entry(...)` values of a return probe's hit.
    pub(crate) entry: &'a [Value],
}

/// A global's storage.
#[derive(Debug, Clone)]
pub(crate) enum Slot {
    /// A long or string.
    Scalar(Value),
    /// A statistic.
    Stat(Stat),
    /// An array.
    Array(Array),
}

/// The state that outlives one handler run.
#[derive(Debug)]
pub(crate) struct Machine {
    /// Globals, by index.
    pub(crate) globals: Vec<Slot>,
    /// Standard output.
    pub(crate) stdout: String,
    /// Standard error.
    pub(crate) stderr: String,
    /// `exit()` was called in this handler.
    pub(crate) exit_requested: bool,
    /// Commands `system()` asked for, not yet started.
    pub(crate) commands: Vec<String>,
    /// What `target()` returns.
    pub(crate) target: i64,
    /// The latest trace timestamp seen (`local_clock_ns()` in `begin`,
    /// `end` and timers).
    pub(crate) last_timestamp: u64,
    frames: Vec<Vec<Value>>,
    action_remaining: i64,
    limits: Limits,
    max_str: usize,
    shapes: Vec<Option<Shape>>,
    shifts: Vec<u32>,
    regexes: HashMap<String, Result<Regex, String>>,
    matched: Vec<String>,
    tokens: Option<(String, usize)>,
    rng: u64,
    /// Values saved by entry halves, per (key, thread), innermost call last.
    entry_stacks: HashMap<(u32, i64), Vec<Vec<Value>>>,
    /// The kernel's symbols, when the agent gave them.
    pub(crate) symbols: Option<std::sync::Arc<crate::symbols::Symbols>>,
}

/// Calls of one thread through one entry/return pair that may nest before
/// the oldest saved values are dropped (a function that never returns
/// must not grow a stack without bound).
const MAX_ENTRY_DEPTH: usize = 64;

/// Threads with saved entry values at most (the oldest are dropped).
const MAX_ENTRY_THREADS: usize = 4096;

pub(crate) fn default_of(ty: ScalarType) -> Value {
    match ty {
        ScalarType::Long => Value::Long(0),
        ScalarType::String => Value::Str(String::new()),
    }
}

fn as_long(v: &Value) -> i64 {
    match v {
        Value::Long(n) => *n,
        Value::Str(_) => 0,
    }
}

fn into_string(v: Value) -> String {
    match v {
        Value::Str(s) => s,
        Value::Long(n) => n.to_string(),
    }
}

fn bool_value(b: bool) -> Value {
    Value::Long(i64::from(b))
}

/// `FILE:LINE:COL` of a place.
pub(crate) fn place(prog: &Program, loc: Loc) -> String {
    let file = usize::try_from(loc.file)
        .ok()
        .and_then(|i| prog.files.get(i))
        .map_or("<input>", String::as_str);
    format!("{}:{}:{}", file, loc.line, loc.col)
}

fn stat_symbol(op: StatOp) -> &'static str {
    match op {
        StatOp::Count => "@count",
        StatOp::Sum => "@sum",
        StatOp::Min => "@min",
        StatOp::Max => "@max",
        StatOp::Avg => "@avg",
        StatOp::Variance => "@variance",
    }
}

/// A long operation; `None` for division by zero.
fn arith(op: BinaryOp, x: i64, y: i64) -> Option<i64> {
    // Shift counts are clamped to 0..=64 and the CPU masks them to six
    // bits, as SystemTap's generated C does on x86-64.
    let count = |y: i64| y.clamp(0, 64) as u32;
    Some(match op {
        BinaryOp::Add => x.wrapping_add(y),
        BinaryOp::Sub => x.wrapping_sub(y),
        BinaryOp::Mul => x.wrapping_mul(y),
        BinaryOp::Div => match y {
            0 => return None,
            -1 => x.wrapping_neg(),
            _ => x / y,
        },
        BinaryOp::Mod => match y {
            0 => return None,
            1 | -1 => 0,
            _ => x % y,
        },
        BinaryOp::Shl => x.wrapping_shl(count(y)),
        BinaryOp::Shr => x.wrapping_shr(count(y)),
        BinaryOp::UShr => (x as u64).wrapping_shr(count(y)) as i64,
        BinaryOp::BitAnd => x & y,
        BinaryOp::BitOr => x | y,
        BinaryOp::BitXor => x ^ y,
    })
}

fn compare<T: Ord + ?Sized>(op: CompareOp, a: &T, b: &T) -> bool {
    let ord = a.cmp(b);
    match op {
        CompareOp::Eq => ord == Ordering::Equal,
        CompareOp::Ne => ord != Ordering::Equal,
        CompareOp::Lt => ord == Ordering::Less,
        CompareOp::Le => ord != Ordering::Greater,
        CompareOp::Gt => ord == Ordering::Greater,
        CompareOp::Ge => ord != Ordering::Less,
    }
}

/// The statistics aggregate of an element, for sorting and `@op`.
pub(crate) fn stat_value(stat: &Stat, op: StatOp) -> i64 {
    match op {
        StatOp::Count => stat.count,
        StatOp::Sum => stat.sum,
        StatOp::Min => stat.min,
        StatOp::Max => stat.max,
        StatOp::Avg => stat.avg(),
        StatOp::Variance => stat.variance(),
    }
}

/// The order `foreach` visits an array's entries in (a stable sort, as
/// SystemTap's list merge sort).
pub(crate) fn sorted(array: &Array, sort: Option<Sort>) -> Vec<(&Key, &Elem)> {
    let mut entries: Vec<(&Key, &Elem)> = array.iter().collect();
    let Some(sort) = sort else {
        return entries;
    };
    entries.sort_by(|(ka, ea), (kb, eb)| {
        let ord = match sort.key {
            SortKey::Key { index } => {
                let i = index as usize;
                ka.get(i).cmp(&kb.get(i))
            }
            SortKey::Value { aggregate } => match (ea, eb) {
                (Elem::Value(a), Elem::Value(b)) => a.cmp(b),
                (Elem::Stat(a), Elem::Stat(b)) => {
                    let op = aggregate.unwrap_or(StatOp::Count);
                    stat_value(a, op).cmp(&stat_value(b, op))
                }
                _ => Ordering::Equal,
            },
        };
        if sort.descending { ord.reverse() } else { ord }
    });
    entries
}

impl Machine {
    /// A machine with `program`'s globals at their initial values.
    pub(crate) fn new(program: &Program, target: i64) -> Machine {
        let count = program.globals.len();
        let mut shapes: Vec<Option<Shape>> = vec![None; count];
        let mut shifts = vec![0u32; count];
        let mut note_hist = |lv: &LValue, spec: HistSpec| {
            if let Some(g) = lvalue_global(lv)
                && let Some(slot) = shapes.get_mut(g)
                && slot.is_none()
            {
                *slot = Shape::of(spec).ok();
            }
        };
        let mut note_shift = |lv: &LValue, param: i64| {
            if let Some(g) = lvalue_global(lv)
                && let Some(slot) = shifts.get_mut(g)
            {
                *slot = (*slot).max(param.clamp(0, 31) as u32);
            }
        };
        tapmatrix_ir::visit::each_expr(program, &mut |e| match e {
            Expr::Hist { spec, stat } | Expr::HistBucket { spec, stat, .. } => {
                note_hist(stat, *spec)
            }
            Expr::Stat {
                op: StatOp::Variance,
                stat,
                param,
                ..
            } => note_shift(stat, *param),
            _ => {}
        });
        tapmatrix_ir::visit::each_stmt(program, &mut |s| {
            if let Stmt::ForeachHist { hist, stat, .. } = s
                && let Some(lv) = expr_as_lvalue(stat)
            {
                note_hist(&lv, *hist);
            }
        });
        let limits = program.limits;
        let globals = program
            .globals
            .iter()
            .enumerate()
            .map(|(i, g)| match &g.ty {
                GlobalType::Scalar { ty } => {
                    let init = g.init.clone().unwrap_or_else(|| default_of(*ty));
                    Slot::Scalar(init)
                }
                GlobalType::Stats => Slot::Stat(Stat::new(shapes[i], shifts[i])),
                GlobalType::Array { .. } => Slot::Array(Array::new(
                    g.max_entries.unwrap_or(limits.max_map_entries) as usize,
                    g.wrap,
                )),
            })
            .collect();
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0x9e37_79b9_7f4a_7c15, |d| d.as_nanos() as u64)
            | 1;
        Machine {
            globals,
            stdout: String::new(),
            stderr: String::new(),
            exit_requested: false,
            commands: Vec::new(),
            target,
            last_timestamp: 0,
            frames: Vec::new(),
            action_remaining: 0,
            limits,
            max_str: (limits.max_string_len as usize).saturating_sub(1),
            shapes,
            shifts,
            regexes: HashMap::new(),
            matched: Vec::new(),
            tokens: None,
            rng: seed,
            entry_stacks: HashMap::new(),
            symbols: None,
        }
    }

    /// Takes the `@entry` values the entry half saved for this return of
    /// thread `tid` under `key`, or `None` when none were saved (the entry
    /// hit was missed).
    pub(crate) fn pop_entry(&mut self, key: u32, tid: i64) -> Option<Vec<Value>> {
        let stack = self.entry_stacks.get_mut(&(key, tid))?;
        let values = stack.pop();
        if stack.is_empty() {
            self.entry_stacks.remove(&(key, tid));
        }
        values
    }

    fn push_entry(&mut self, key: u32, tid: i64, values: Vec<Value>) {
        if self.entry_stacks.len() >= MAX_ENTRY_THREADS
            && !self.entry_stacks.contains_key(&(key, tid))
            && let Some(oldest) = self.entry_stacks.keys().next().copied()
        {
            self.entry_stacks.remove(&oldest);
        }
        let stack = self.entry_stacks.entry((key, tid)).or_default();
        if stack.len() >= MAX_ENTRY_DEPTH {
            stack.remove(0);
        }
        stack.push(values);
    }

    /// An empty statistic as global `g` keeps them (its histogram shape
    /// and variance shift).
    pub(crate) fn fresh_stat(&self, g: usize) -> Stat {
        Stat::new(
            self.shapes.get(g).copied().flatten(),
            self.shifts.get(g).copied().unwrap_or(0),
        )
    }

    /// Runs one handler body with fresh locals; `interruptible` (begin,
    /// end and error probes) allows ten times `MAXACTION` statements.
    pub(crate) fn run(
        &mut self,
        cx: &Cx<'_>,
        locals: &[ScalarType],
        body: &Block,
        interruptible: bool,
    ) -> Result<(), Fault> {
        let budget = if interruptible {
            self.limits.max_action.saturating_mul(10)
        } else {
            self.limits.max_action
        };
        self.action_remaining = i64::try_from(budget).unwrap_or(i64::MAX);
        self.frames.clear();
        self.frames
            .push(locals.iter().map(|t| default_of(*t)).collect());
        let result = self.block(cx, body).map(|_| ());
        self.frames.clear();
        result
    }

    fn clip(&self, mut s: String) -> String {
        if s.len() > self.max_str {
            let end = floor_boundary(&s, self.max_str);
            s.truncate(end);
        }
        s
    }

    fn tick(&mut self) -> Result<(), Fault> {
        self.action_remaining -= 1;
        if self.action_remaining < 0 {
            return Err(Fault::new("MAXACTION exceeded"));
        }
        Ok(())
    }

    fn local(&self, i: u32) -> Value {
        self.frames
            .last()
            .and_then(|f| f.get(i as usize))
            .cloned()
            .unwrap_or(Value::Long(0))
    }

    fn set_local(&mut self, i: u32, v: Value) {
        if let Some(slot) = self.frames.last_mut().and_then(|f| f.get_mut(i as usize)) {
            *slot = v;
        }
    }

    fn array_mut(&mut self, a: u32) -> Option<&mut Array> {
        match self.globals.get_mut(a as usize) {
            Some(Slot::Array(array)) => Some(array),
            _ => None,
        }
    }

    fn array(&self, a: u32) -> Option<&Array> {
        match self.globals.get(a as usize) {
            Some(Slot::Array(array)) => Some(array),
            _ => None,
        }
    }

    fn block(&mut self, cx: &Cx<'_>, block: &Block) -> Result<Flow, Fault> {
        for stmt in block {
            self.tick()?;
            match self.stmt(cx, stmt)? {
                Flow::Normal => {}
                other => return Ok(other),
            }
        }
        Ok(Flow::Normal)
    }

    fn stmt(&mut self, cx: &Cx<'_>, stmt: &Stmt) -> Result<Flow, Fault> {
        match stmt {
            Stmt::Expr(e) => {
                self.eval(cx, e)?;
                Ok(Flow::Normal)
            }
            Stmt::Block(b) => self.block(cx, b),
            Stmt::If {
                cond,
                then,
                otherwise,
            } => {
                if self.long(cx, cond)? != 0 {
                    self.block(cx, then)
                } else {
                    self.block(cx, otherwise)
                }
            }
            Stmt::Loop { cond, body, step } => {
                loop {
                    self.tick()?;
                    if let Some(cond) = cond
                        && self.long(cx, cond)? == 0
                    {
                        break;
                    }
                    match self.block(cx, body)? {
                        Flow::Break => break,
                        Flow::Normal | Flow::Continue => {}
                        other => return Ok(other),
                    }
                    if let Some(step) = step {
                        self.eval(cx, step)?;
                    }
                }
                Ok(Flow::Normal)
            }
            Stmt::Foreach {
                array,
                keys,
                value,
                slice,
                sort,
                limit,
                body,
            } => {
                let mut pattern = Vec::with_capacity(slice.len());
                for k in slice {
                    pattern.push(match k {
                        Some(e) => Some(self.eval(cx, e)?),
                        None => None,
                    });
                }
                let limit = match limit {
                    Some(e) => Some(self.long(cx, e)?),
                    None => None,
                };
                let snapshot: Vec<(Key, Option<Value>)> = match self.array(*array) {
                    Some(a) => sorted(a, *sort)
                        .into_iter()
                        .filter(|(k, _)| pattern.is_empty() || matches(k, &pattern))
                        .take(limit.map_or(usize::MAX, |n| usize::try_from(n).unwrap_or(0)))
                        .map(|(k, e)| {
                            let v = match e {
                                Elem::Value(v) => Some(v.clone()),
                                Elem::Stat(_) => None,
                            };
                            (k.clone(), v)
                        })
                        .collect(),
                    None => Vec::new(),
                };
                for (key, elem) in snapshot {
                    self.tick()?;
                    for (local, k) in keys.iter().zip(key) {
                        self.set_local(*local, k);
                    }
                    if let (Some(local), Some(v)) = (value, elem) {
                        self.set_local(*local, v);
                    }
                    match self.block(cx, body)? {
                        Flow::Break => break,
                        Flow::Normal | Flow::Continue => {}
                        other => return Ok(other),
                    }
                }
                Ok(Flow::Normal)
            }
            Stmt::ForeachHist {
                hist,
                stat,
                bucket,
                body,
            } => {
                let buckets = match expr_as_lvalue(stat) {
                    Some(lv) => {
                        let _ = hist;
                        self.stat_ref(cx, &lv)?.map_or(0, Stat::bucket_count)
                    }
                    None => 0,
                };
                for i in 0..buckets {
                    self.tick()?;
                    self.set_local(*bucket, Value::Long(i as i64));
                    match self.block(cx, body)? {
                        Flow::Break => break,
                        Flow::Normal | Flow::Continue => {}
                        other => return Ok(other),
                    }
                }
                Ok(Flow::Normal)
            }
            Stmt::Break => Ok(Flow::Break),
            Stmt::Continue => Ok(Flow::Continue),
            Stmt::Next => Ok(Flow::Next),
            Stmt::Return(e) => {
                let v = match e {
                    Some(e) => Some(self.eval(cx, e)?),
                    None => None,
                };
                Ok(Flow::Return(v))
            }
            Stmt::Delete(lv) => {
                self.delete(cx, lv)?;
                Ok(Flow::Normal)
            }
            Stmt::Aggregate { target, value } => {
                let v = self.long(cx, value)?;
                self.aggregate(cx, target, v)?;
                Ok(Flow::Normal)
            }
            Stmt::Try {
                body,
                catch_var,
                catch,
            } => match self.block(cx, body) {
                Ok(flow) => Ok(flow),
                Err(fault) => {
                    if let Some(var) = catch_var {
                        let message = self.clip(fault.message);
                        self.set_local(*var, Value::Str(message));
                    }
                    self.block(cx, catch)
                }
            },
            Stmt::EntrySave { key, values } => {
                let mut saved = Vec::with_capacity(values.len());
                for value in values {
                    saved.push(self.eval(cx, value)?);
                }
                self.push_entry(*key, cx.hit.tid, saved);
                Ok(Flow::Normal)
            }
        }
    }

    fn delete(&mut self, cx: &Cx<'_>, lv: &LValue) -> Result<(), Fault> {
        match lv {
            LValue::Local(i) => {
                let cleared = match self.local(*i) {
                    Value::Long(_) => Value::Long(0),
                    Value::Str(_) => Value::Str(String::new()),
                };
                self.set_local(*i, cleared);
            }
            LValue::Global(g) => {
                let g = *g as usize;
                let (shape, shift) = (
                    self.shapes.get(g).copied().flatten(),
                    self.shifts.get(g).copied().unwrap_or(0),
                );
                match self.globals.get_mut(g) {
                    Some(Slot::Scalar(v)) => {
                        *v = match v {
                            Value::Long(_) => Value::Long(0),
                            Value::Str(_) => Value::Str(String::new()),
                        }
                    }
                    Some(Slot::Stat(s)) => *s = Stat::new(shape, shift),
                    Some(Slot::Array(a)) => a.clear(),
                    None => {}
                }
            }
            LValue::Index { array, keys, .. } => {
                let mut pattern = Vec::with_capacity(keys.len());
                for k in keys {
                    pattern.push(match k {
                        Some(e) => Some(self.eval(cx, e)?),
                        None => None,
                    });
                }
                if let Some(a) = self.array_mut(*array) {
                    a.remove_matching(&pattern);
                }
            }
        }
        Ok(())
    }

    fn overflow(&self, cx: &Cx<'_>, array: u32, loc: Loc) -> Fault {
        let global = cx.prog.globals.get(array as usize);
        let name = global.map_or("?", |g| g.name.as_str());
        let check = match global.and_then(|g| g.max_entries) {
            Some(n) => format!("size limit ({n})"),
            None => "MAXMAPENTRIES".to_owned(),
        };
        Fault::near(
            format!("Array overflow, check {check}"),
            format!("identifier '{}' at {}", name, place(cx.prog, loc)),
        )
    }

    fn keys(&mut self, cx: &Cx<'_>, keys: &[Expr]) -> Result<Key, Fault> {
        let mut key = Vec::with_capacity(keys.len());
        for k in keys {
            key.push(self.eval(cx, k)?);
        }
        Ok(key)
    }

    fn element_default(cx: &Cx<'_>, array: u32) -> Value {
        match cx.prog.globals.get(array as usize).map(|g| &g.ty) {
            Some(GlobalType::Array {
                value: Some(ty), ..
            }) => default_of(*ty),
            _ => Value::Long(0),
        }
    }

    fn aggregate(&mut self, cx: &Cx<'_>, target: &LValue, v: i64) -> Result<(), Fault> {
        match target {
            LValue::Global(g) => {
                if let Some(Slot::Stat(s)) = self.globals.get_mut(*g as usize) {
                    s.add(v);
                }
                Ok(())
            }
            LValue::Index { array, keys, loc } => {
                let mut key = Vec::with_capacity(keys.len());
                for k in keys.iter().flatten() {
                    key.push(self.eval(cx, k)?);
                }
                let g = *array as usize;
                let shape = self.shapes.get(g).copied().flatten();
                let shift = self.shifts.get(g).copied().unwrap_or(0);
                let result = match self.array_mut(*array) {
                    Some(a) => a
                        .entry(&key, || Elem::Stat(Stat::new(shape, shift)))
                        .map(|elem| {
                            if let Elem::Stat(s) = elem {
                                s.add(v);
                            }
                        }),
                    None => Ok(()),
                };
                result.map_err(|Full| self.overflow(cx, *array, *loc))
            }
            LValue::Local(_) => Ok(()),
        }
    }

    /// The statistic an lvalue names; `None` for an absent element.
    fn stat_ref(&mut self, cx: &Cx<'_>, lv: &LValue) -> Result<Option<&Stat>, Fault> {
        match lv {
            LValue::Global(g) => Ok(match self.globals.get(*g as usize) {
                Some(Slot::Stat(s)) => Some(s),
                _ => None,
            }),
            LValue::Index { array, keys, .. } => {
                let mut key = Vec::with_capacity(keys.len());
                for k in keys.iter().flatten() {
                    key.push(self.eval(cx, k)?);
                }
                Ok(match self.array(*array).and_then(|a| a.get(&key)) {
                    Some(Elem::Stat(s)) => Some(s),
                    _ => None,
                })
            }
            LValue::Local(_) => Ok(None),
        }
    }

    fn long(&mut self, cx: &Cx<'_>, e: &Expr) -> Result<i64, Fault> {
        match e {
            Expr::Long(n) => Ok(*n),
            Expr::Local(i) => Ok(as_long(
                self.frames
                    .last()
                    .and_then(|f| f.get(*i as usize))
                    .unwrap_or(&Value::Long(0)),
            )),
            _ => Ok(as_long(&self.eval(cx, e)?)),
        }
    }

    fn string(&mut self, cx: &Cx<'_>, e: &Expr) -> Result<String, Fault> {
        Ok(into_string(self.eval(cx, e)?))
    }

    fn read(&mut self, cx: &Cx<'_>, lv: &LValue) -> Result<(Value, Option<Key>), Fault> {
        match lv {
            LValue::Local(i) => Ok((self.local(*i), None)),
            LValue::Global(g) => Ok((
                match self.globals.get(*g as usize) {
                    Some(Slot::Scalar(v)) => v.clone(),
                    _ => Value::Long(0),
                },
                None,
            )),
            LValue::Index { array, keys, .. } => {
                let mut key = Vec::with_capacity(keys.len());
                for k in keys.iter().flatten() {
                    key.push(self.eval(cx, k)?);
                }
                let v = match self.array(*array).and_then(|a| a.get(&key)) {
                    Some(Elem::Value(v)) => v.clone(),
                    _ => Self::element_default(cx, *array),
                };
                Ok((v, Some(key)))
            }
        }
    }

    fn write(&mut self, cx: &Cx<'_>, lv: &LValue, key: Option<Key>, v: Value) -> Result<(), Fault> {
        match lv {
            LValue::Local(i) => self.set_local(*i, v),
            LValue::Global(g) => {
                if let Some(Slot::Scalar(slot)) = self.globals.get_mut(*g as usize) {
                    *slot = v;
                }
            }
            LValue::Index { array, loc, .. } => {
                let key = key.unwrap_or_default();
                if let Some(elem) = self.array_mut(*array).and_then(|a| a.get_mut(&key)) {
                    *elem = Elem::Value(v);
                    return Ok(());
                }
                let result = match self.array_mut(*array) {
                    Some(a) => a
                        .entry(&key, || Elem::Value(Value::Long(0)))
                        .map(|elem| *elem = Elem::Value(v)),
                    None => Ok(()),
                };
                result.map_err(|Full| self.overflow(cx, *array, *loc))?;
            }
        }
        Ok(())
    }

    /// Evaluates an expression.
    fn eval(&mut self, cx: &Cx<'_>, e: &Expr) -> Result<Value, Fault> {
        Ok(match e {
            Expr::Long(n) => Value::Long(*n),
            Expr::Str(s) => Value::Str(s.clone()),
            Expr::Local(i) => self.local(*i),
            Expr::Global(g) => match self.globals.get(*g as usize) {
                Some(Slot::Scalar(v)) => v.clone(),
                _ => Value::Long(0),
            },
            Expr::EntryValue(i) => cx.entry.get(*i as usize).cloned().unwrap_or(Value::Long(0)),
            Expr::Read { loc, .. } | Expr::ReadString { loc, .. } => {
                return Err(Fault::near(
                    "reading memory at a computed address is not possible here (the handler runs outside the kernel)",
                    format!("the read at {}", place(cx.prog, *loc)),
                ));
            }
            Expr::Fetch(i) if cx.faults.iter().any(|f| f.slot == *i) => {
                let message = cx
                    .faults
                    .iter()
                    .find(|f| f.slot == *i)
                    .map_or_else(String::new, |f| f.message.clone());
                return Err(Fault::new(message));
            }
            Expr::Fetch(i) => match cx.fetches.get(*i as usize) {
                Some(Value::Str(s)) => Value::Str(self.clip(s.clone())),
                Some(v) => v.clone(),
                None => {
                    return Err(Fault::new(format!(
                        "the event delivered no value for fetch slot {i}"
                    )));
                }
            },
            Expr::Index { array, keys } => {
                let key = self.keys(cx, keys)?;
                match self.array(*array).and_then(|a| a.get(&key)) {
                    Some(Elem::Value(v)) => v.clone(),
                    _ => Self::element_default(cx, *array),
                }
            }
            Expr::In { array, keys } => {
                let mut pattern = Vec::with_capacity(keys.len());
                for k in keys {
                    pattern.push(match k {
                        Some(e) => Some(self.eval(cx, e)?),
                        None => None,
                    });
                }
                bool_value(
                    self.array(*array)
                        .is_some_and(|a| a.contains_matching(&pattern)),
                )
            }
            Expr::Unary { op, operand } => {
                let x = self.long(cx, operand)?;
                Value::Long(match op {
                    UnaryOp::Neg => x.wrapping_neg(),
                    UnaryOp::Not => i64::from(x == 0),
                    UnaryOp::BitNot => !x,
                })
            }
            Expr::Binary { op, lhs, rhs, loc } => {
                let x = self.long(cx, lhs)?;
                let y = self.long(cx, rhs)?;
                match arith(*op, x, y) {
                    Some(v) => Value::Long(v),
                    None => {
                        return Err(Fault::near(
                            "division by 0",
                            format!("operator '{}' at {}", op.symbol(), place(cx.prog, *loc)),
                        ));
                    }
                }
            }
            Expr::CompareLong { op, lhs, rhs } => {
                let x = self.long(cx, lhs)?;
                let y = self.long(cx, rhs)?;
                bool_value(compare(*op, &x, &y))
            }
            Expr::CompareStr { op, lhs, rhs } => {
                let x = self.string(cx, lhs)?;
                let y = self.string(cx, rhs)?;
                bool_value(compare(*op, x.as_bytes(), y.as_bytes()))
            }
            Expr::Concat(a, b) => {
                let mut s = self.string(cx, a)?;
                s.push_str(&self.string(cx, b)?);
                Value::Str(self.clip(s))
            }
            Expr::And(a, b) => bool_value(self.long(cx, a)? != 0 && self.long(cx, b)? != 0),
            Expr::Or(a, b) => bool_value(self.long(cx, a)? != 0 || self.long(cx, b)? != 0),
            Expr::Ternary {
                cond,
                then,
                otherwise,
            } => {
                if self.long(cx, cond)? != 0 {
                    self.eval(cx, then)?
                } else {
                    self.eval(cx, otherwise)?
                }
            }
            Expr::Regex {
                negated,
                operand,
                pattern,
            } => {
                let s = self.string(cx, operand)?;
                let found = self.regex_match(&s, pattern)?;
                bool_value(found != *negated)
            }
            Expr::Assign {
                target,
                op,
                concat,
                value,
                loc,
            } => {
                let (old, key) = self.read(cx, target)?;
                let rhs = self.eval(cx, value)?;
                let new = if *concat {
                    let mut s = into_string(old);
                    s.push_str(&into_string(rhs));
                    Value::Str(self.clip(s))
                } else if let Some(op) = op {
                    match arith(*op, as_long(&old), as_long(&rhs)) {
                        Some(v) => Value::Long(v),
                        None => {
                            return Err(Fault::near(
                                "division by 0",
                                format!("operator '{}=' at {}", op.symbol(), place(cx.prog, *loc)),
                            ));
                        }
                    }
                } else {
                    match rhs {
                        Value::Str(s) => Value::Str(self.clip(s)),
                        v => v,
                    }
                };
                self.write(cx, target, key, new.clone())?;
                new
            }
            Expr::Crement {
                target,
                increment,
                prefix,
                ..
            } => {
                let (old, key) = self.read(cx, target)?;
                let old = as_long(&old);
                let new = if *increment {
                    old.wrapping_add(1)
                } else {
                    old.wrapping_sub(1)
                };
                self.write(cx, target, key, Value::Long(new))?;
                Value::Long(if *prefix { new } else { old })
            }
            Expr::Call {
                function,
                args,
                loc,
            } => self.call(cx, *function, args, *loc)?,
            Expr::Builtin { builtin, args, loc } => self.builtin(cx, *builtin, args, *loc)?,
            Expr::Printf {
                to_string,
                format,
                args,
            } => {
                let mut values = Vec::with_capacity(args.len());
                for a in args {
                    values.push(self.eval(cx, a)?);
                }
                let text = printf(format, &values)?;
                if *to_string {
                    Value::Str(self.clip(text))
                } else {
                    self.stdout.push_str(&text);
                    Value::Long(0)
                }
            }
            Expr::Stat {
                op,
                stat,
                param: _,
                loc,
            } => {
                let value = match self.stat_ref(cx, stat)? {
                    Some(s) if s.count > 0 => Some(stat_value(s, *op)),
                    _ => None,
                };
                match (value, op) {
                    (Some(v), _) => Value::Long(v),
                    (None, StatOp::Count | StatOp::Sum) => Value::Long(0),
                    (None, _) => {
                        return Err(Fault::near(
                            "empty aggregate",
                            format!(
                                "operator '{}' at {}",
                                stat_symbol(*op),
                                place(cx.prog, *loc)
                            ),
                        ));
                    }
                }
            }
            Expr::Hist { spec, stat } => {
                if let HistSpec::Linear { .. } = spec
                    && let Err(message) = Shape::of(*spec)
                {
                    return Err(Fault::new(message));
                }
                match self.stat_ref(cx, stat)? {
                    Some(s) if s.count > 0 => Value::Str(s.render_histogram()),
                    _ => return Err(Fault::new("empty aggregate")),
                }
            }
            Expr::HistBucket {
                spec: _,
                stat,
                bucket,
            } => {
                let b = self.long(cx, bucket)?;
                match self.stat_ref(cx, stat)? {
                    None => return Err(Fault::new("aggregate element not found")),
                    Some(s) => match s.bucket(b) {
                        Some(n) => Value::Long(n),
                        None => return Err(Fault::new("histogram index out of range")),
                    },
                }
            }
            Expr::LongToStr(e) => Value::Str(self.long(cx, e)?.to_string()),
        })
    }

    fn regex_match(&mut self, s: &str, pattern: &str) -> Result<bool, Fault> {
        let compiled = self
            .regexes
            .entry(pattern.to_owned())
            .or_insert_with(|| Regex::new(pattern).map_err(|e| e.to_string()));
        let re = match compiled {
            Ok(re) => re,
            Err(e) => {
                return Err(Fault::new(format!(
                    "invalid regular expression \"{pattern}\": {e}"
                )));
            }
        };
        match re.captures(s) {
            Some(caps) => {
                self.matched = caps
                    .iter()
                    .map(|m| m.map_or_else(String::new, |m| m.as_str().to_owned()))
                    .collect();
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn call(
        &mut self,
        cx: &Cx<'_>,
        function: u32,
        args: &[Expr],
        loc: Loc,
    ) -> Result<Value, Fault> {
        let Some(f) = cx.prog.functions.get(function as usize) else {
            return Err(Fault::new(format!("no function {function} in the program")));
        };
        let near = || format!("identifier '{}' at {}", f.name, place(cx.prog, loc));
        let mut frame: Vec<Value> = f.locals.iter().map(|t| default_of(*t)).collect();
        for (i, a) in args.iter().enumerate() {
            let v = match self.eval(cx, a)? {
                Value::Str(s) => Value::Str(self.clip(s)),
                v => v,
            };
            if let Some(slot) = frame.get_mut(i) {
                *slot = v;
            }
        }
        // The probe handler is frame 0; SystemTap allows MAXNESTING
        // nested function calls.
        if self.frames.len() > self.limits.max_nesting as usize {
            return Err(Fault::near("MAXNESTING exceeded", near()));
        }
        self.frames.push(frame);
        let flow = self.block(cx, &f.body);
        self.frames.pop();
        match flow? {
            Flow::Return(Some(v)) => Ok(match v {
                Value::Str(s) => Value::Str(self.clip(s)),
                v => v,
            }),
            Flow::Next => Err(Fault::near("all functions exhausted", near())),
            _ => Ok(f.ret.map_or(Value::Long(0), default_of)),
        }
    }

    fn builtin(
        &mut self,
        cx: &Cx<'_>,
        builtin: Builtin,
        args: &[Expr],
        _loc: Loc,
    ) -> Result<Value, Fault> {
        let mut values = Vec::with_capacity(args.len());
        for a in args {
            values.push(self.eval(cx, a)?);
        }
        let long_arg = |i: usize| values.get(i).map_or(0, as_long);
        let str_arg = |i: usize| match values.get(i) {
            Some(Value::Str(s)) => s.as_str(),
            _ => "",
        };
        let now = || {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        };
        let hit = cx.hit;
        Ok(match builtin {
            Builtin::Print | Builtin::Println | Builtin::Sprint | Builtin::Sprintln => {
                let mut text = String::new();
                for v in &values {
                    match v {
                        Value::Long(n) => text.push_str(&n.to_string()),
                        Value::Str(s) => text.push_str(s),
                    }
                }
                if matches!(builtin, Builtin::Println | Builtin::Sprintln) {
                    text.push('\n');
                }
                if matches!(builtin, Builtin::Print | Builtin::Println) {
                    self.stdout.push_str(&text);
                    Value::Long(0)
                } else {
                    Value::Str(self.clip(text))
                }
            }
            Builtin::Exit => {
                self.exit_requested = true;
                Value::Long(0)
            }
            Builtin::System => {
                self.commands.push(str_arg(0).to_owned());
                Value::Long(0)
            }
            Builtin::Error => return Err(Fault::new(str_arg(0))),
            Builtin::Warn => {
                self.stderr.push_str("WARNING: ");
                self.stderr.push_str(str_arg(0));
                self.stderr.push('\n');
                Value::Long(0)
            }
            Builtin::TaskCurrent => {
                return Err(Fault::new(
                    "task_current() is not available here (the handler runs outside the kernel)",
                ));
            }
            Builtin::Backtrace => {
                return Err(Fault::new(
                    "backtrace() is not available here (the handler runs outside the kernel)",
                ));
            }
            Builtin::CmdlineStr => {
                return Err(Fault::new(
                    "cmdline_str() is not available here (the handler runs outside the kernel)",
                ));
            }
            Builtin::Ubacktrace => {
                return Err(Fault::new(
                    "ubacktrace() is not available here (the handler runs outside the kernel)",
                ));
            }
            // The handlers that reach the runtime with these unhoisted are
            // begin, end, error and timer probes: no code was interrupted.
            Builtin::UserMode | Builtin::Addr | Builtin::Uaddr => Value::Long(0),
            Builtin::Symname | Builtin::Symdata => {
                let address = long_arg(0) as u64;
                Value::Str(match (&self.symbols, builtin) {
                    (Some(symbols), Builtin::Symname) => symbols.symname(address),
                    (Some(symbols), _) => symbols.symdata(address),
                    (None, _) => crate::symbols::hex(address),
                })
            }
            Builtin::Pid => Value::Long(hit.pid),
            Builtin::Tid => Value::Long(hit.tid),
            Builtin::Ppid => Value::Long(hit.ppid.unwrap_or(0)),
            Builtin::Uid => Value::Long(hit.uid.unwrap_or(0)),
            Builtin::Gid => Value::Long(hit.gid.unwrap_or(0)),
            Builtin::Execname => Value::Str(hit.comm.clone()),
            Builtin::Cpu => Value::Long(hit.cpu),
            Builtin::Probefunc => Value::Str(if hit.function.is_empty() {
                text::ppfunc(&hit.pp)
            } else {
                hit.function.clone()
            }),
            Builtin::Pp => Value::Str(hit.pp.clone()),
            Builtin::Ppfunc => Value::Str(text::ppfunc(&hit.pp)),
            Builtin::Target => Value::Long(self.target),
            Builtin::IsReturn => Value::Long(i64::from(hit.is_return)),
            Builtin::GettimeofdayS => Value::Long((now() / 1_000_000_000) as i64),
            Builtin::GettimeofdayMs => Value::Long((now() / 1_000_000) as i64),
            Builtin::GettimeofdayUs => Value::Long((now() / 1_000) as i64),
            Builtin::GettimeofdayNs => Value::Long(now() as i64),
            Builtin::ClockNs => Value::Long(if hit.timestamp_ns != 0 {
                hit.timestamp_ns as i64
            } else {
                self.last_timestamp as i64
            }),
            Builtin::Strlen => Value::Long(str_arg(0).len() as i64),
            Builtin::Substr => Value::Str(text::substr(str_arg(0), long_arg(1), long_arg(2))),
            Builtin::Stringat => {
                let s = str_arg(0).as_bytes();
                let pos = long_arg(1);
                match usize::try_from(pos).ok().and_then(|p| s.get(p)) {
                    Some(&b) => Value::Long(i64::from(b)),
                    None => {
                        return Err(Fault::new(format!(
                            "Position {pos} is out of range for string"
                        )));
                    }
                }
            }
            Builtin::Isinstr => Value::Long(i64::from(str_arg(0).contains(str_arg(1)))),
            Builtin::Strpos => Value::Long(str_arg(0).find(str_arg(1)).map_or(-1, |i| i as i64)),
            Builtin::TextStr => Value::Str(self.clip(text::escape(str_arg(0), false))),
            Builtin::StringQuoted => Value::Str(self.clip(text::escape(str_arg(0), true))),
            Builtin::StrReplace => {
                let (s, old, new) = (str_arg(0), str_arg(1), str_arg(2));
                let replaced = if old.is_empty() {
                    s.to_owned()
                } else {
                    s.replace(old, new)
                };
                Value::Str(self.clip(replaced))
            }
            Builtin::Strtol => Value::Long(text::strtol(str_arg(0), long_arg(1))),
            Builtin::Tokenize => Value::Str(self.tokenize(str_arg(0), str_arg(1))),
            Builtin::Abs => Value::Long(long_arg(0).wrapping_abs()),
            Builtin::Randint => {
                let n = long_arg(0);
                if n <= 0 {
                    return Err(Fault::new(format!("randint: invalid range {n}")));
                }
                self.rng ^= self.rng << 13;
                self.rng ^= self.rng >> 7;
                self.rng ^= self.rng << 17;
                Value::Long((self.rng % n as u64) as i64)
            }
            Builtin::ErrnoStr => Value::Str(text::errno_name(long_arg(0))),
            Builtin::SyscallName => Value::Str(text::syscall_name(long_arg(0))),
            Builtin::Ctime => Value::Str(text::ctime(long_arg(0))),
            Builtin::Matched => {
                let n = long_arg(0);
                Value::Str(
                    usize::try_from(n)
                        .ok()
                        .and_then(|i| self.matched.get(i))
                        .cloned()
                        .unwrap_or_default(),
                )
            }
        })
    }

    /// `tokenize(input, delim)`: the next non-empty token; "" input
    /// continues the previous string.
    fn tokenize(&mut self, input: &str, delim: &str) -> String {
        if !input.is_empty() {
            self.tokens = Some((input.to_owned(), 0));
        }
        let Some((s, pos)) = &mut self.tokens else {
            return String::new();
        };
        let is_delim = |c: char| delim.contains(c);
        loop {
            if *pos >= s.len() {
                self.tokens = None;
                return String::new();
            }
            let rest = &s[*pos..];
            let end = rest.find(is_delim).unwrap_or(rest.len());
            let token = rest[..end].to_owned();
            let skip = rest[end..].chars().next().map_or(0, char::len_utf8);
            *pos += end + skip;
            if !token.is_empty() {
                return token;
            }
        }
    }
}

/// The global an lvalue names (a scalar, stats or the array of an
/// element).
fn lvalue_global(lv: &LValue) -> Option<usize> {
    match lv {
        LValue::Global(g) => Some(*g as usize),
        LValue::Index { array, .. } => Some(*array as usize),
        LValue::Local(_) => None,
    }
}

/// `foreach (b in @hist_log(STAT))` names its statistic as an expression.
fn expr_as_lvalue(e: &Expr) -> Option<LValue> {
    match e {
        Expr::Global(g) => Some(LValue::Global(*g)),
        Expr::Index { array, keys } => Some(LValue::Index {
            array: *array,
            keys: keys.iter().cloned().map(Some).collect(),
            loc: Loc {
                file: 0,
                line: 0,
                col: 0,
            },
        }),
        _ => None,
    }
}

/// Formats `printf`'s directives over `values`.
pub(crate) fn printf(format: &[FormatSpec], values: &[Value]) -> Result<String, Fault> {
    let mut out = String::new();
    let mut args = values.iter();
    let next_long = |args: &mut std::slice::Iter<'_, Value>| args.next().map_or(0, as_long);
    for spec in format {
        match spec {
            FormatSpec::Literal { text } => out.push_str(text),
            FormatSpec::Directive {
                flags,
                width,
                precision,
                conversion,
            } => {
                if !"diuoxXpcbsmM".contains(*conversion) {
                    // `%%`, and what vsprintf does not know: printed as
                    // written, consuming no argument.
                    out.push('%');
                    if *conversion != '%' {
                        out.push(*conversion);
                    }
                    continue;
                }
                let dynamic_width = (*width == Some(-1)).then(|| next_long(&mut args));
                let dynamic_precision = (*precision == Some(-1)).then(|| next_long(&mut args));
                let field = Field::new(
                    Flags::parse(flags),
                    *width,
                    dynamic_width,
                    *precision,
                    dynamic_precision,
                );
                let arg = args.next();
                let n = arg.map_or(0, as_long);
                match conversion {
                    'd' | 'i' => format::number(&mut out, n, 10, true, false, field),
                    'u' => format::number(&mut out, n, 10, false, false, field),
                    'o' => format::number(&mut out, n, 8, false, false, field),
                    'x' => format::number(&mut out, n, 16, false, false, field),
                    'X' => format::number(&mut out, n, 16, false, true, field),
                    'p' => {
                        let mut field = field;
                        field.flags.special = true;
                        format::number(&mut out, n, 16, false, false, field)
                    }
                    'c' => format::character(&mut out, n, field),
                    'b' => format::binary(&mut out, n, field),
                    's' => match arg {
                        Some(Value::Str(s)) => format::string(&mut out, s, field),
                        Some(Value::Long(n)) => format::string(&mut out, &n.to_string(), field),
                        None => format::string(&mut out, "", field),
                    },
                    'm' | 'M' => {
                        let len = if field.precision > 0 {
                            field.precision
                        } else {
                            1
                        };
                        if len > 1024 {
                            return Err(Fault::new(format!(
                                "{len} is too many bytes for a memory dump"
                            )));
                        }
                        match arg {
                            Some(Value::Str(s)) => {
                                format::memory(&mut out, s.as_bytes(), *conversion == 'M', field)
                            }
                            _ => {
                                return Err(Fault::new(format!(
                                    "%{conversion} of address {n:#x}: kernel memory is not \
                                     readable by the handler runtime"
                                )));
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    Ok(out)
}
