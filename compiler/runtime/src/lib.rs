//! The handler runtime: runs a [`Program`] with SystemTap's semantics.
//!
//! The agent drives it: [`Runtime::begin`] once, [`Runtime::hit`] for every
//! event record (in timestamp order), [`Runtime::timer`] when a timer probe
//! is due, and [`Runtime::end`] once when the run stops. Output goes to two
//! buffers the agent drains with [`Runtime::take_stdout`] and
//! [`Runtime::take_stderr`]. It reads no kernel memory: every value from the
//! kernel arrives in [`Hit::values`] and the task's context in
//! [`HitContext`], as it was at the hit. `begin`, `end`, `error` and timer
//! probes run in the agent's own context (SystemTap runs them in staprun).
//! A return probe's `@entry(...)` values are those its entry half saved
//! for the same thread (a stack per thread and probe: calls nest).
//!
//! Strings hold at most `MAXSTRINGLEN - 1` bytes ([`tapmatrix_ir::Limits`]'s
//! `max_string_len` is SystemTap's buffer size, terminator included), and
//! run-time errors read as SystemTap's (`division by 0 near operator '/'
//! at t.stp:3:9`, `Array overflow, check MAXMAPENTRIES near identifier 'a'
//! at ...`, `empty aggregate`, `MAXNESTING exceeded`, `MAXACTION
//! exceeded`).
//!
//! The session follows SystemTap's states: `begin` probes run while
//! starting; hits and timers only while running; `exit()` stops the
//! session (the current handler finishes); a run-time error prints
//! `ERROR: ...` and, once more than `MAXERRORS` happened, puts the session
//! in the error state. [`Runtime::end`] then runs the `end` probes if the
//! session stopped normally, or the `error` probes if it failed: as in
//! SystemTap, `end` probes do not run after a fatal error. Globals that the
//! script writes but never reads are printed after the `end` probes of
//! sequence 0, as stap's synthetic display probes do.

mod array;
mod display;
mod format;
mod globals;
mod machine;
mod stats;
mod symbols;
mod text;

use std::sync::Arc;

use tapmatrix_ir::{FormatSpec, ProbeKind, Program, Value};
pub use tapmatrix_ir::{Hit, HitContext, SlotFault};

pub use crate::symbols::{Located, Symbols};

pub use crate::globals::{Element, GlobalValue, StatValue};
use crate::machine::{Cx, Fault, Machine};

/// What the agent does after a handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    /// Keep running.
    Continue,
    /// `exit()` was called: stop, then call [`Runtime::end`].
    Exit,
    /// A run-time error stopped the script (its `ERROR:` line is already
    /// in the error stream): stop, then call [`Runtime::end`].
    Error(String),
}

/// A timer probe the agent schedules with [`Runtime::timer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerProbe {
    /// The probe's index.
    pub probe: u32,
    /// Its period.
    pub period_ns: u64,
    /// Random jitter added to each period, up to this much (`.randomize`).
    pub randomize_ns: u64,
}

/// SystemTap's session states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Starting,
    Running,
    Stopping,
    Failed,
}

/// One handler of the `end` phase: a probe, or the display of a global.
#[derive(Debug, Clone, Copy)]
enum EndStep {
    Probe(u32),
    Display(usize),
}

/// A running program.
#[derive(Debug)]
pub struct Runtime {
    program: Arc<Program>,
    machine: Machine,
    state: State,
    errors: u32,
    fatal: Option<String>,
    exit_called: bool,
    begin_probes: Vec<u32>,
    end_steps: Vec<EndStep>,
    error_probes: Vec<u32>,
    began: bool,
    ended: bool,
}

/// The context of `begin`, `end` and `error` probes: SystemTap runs them
/// in its own process (staprun); here that is the agent.
fn own_context() -> HitContext {
    let pid = i64::from(std::process::id());
    let comm = std::fs::read_to_string("/proc/self/comm")
        .map(|c| c.trim_end().to_owned())
        .unwrap_or_default();
    HitContext {
        pid,
        tid: pid,
        ppid: Some(text::proc_status_field(pid, "PPid")),
        uid: Some(text::proc_status_field(pid, "Uid")),
        gid: Some(text::proc_status_field(pid, "Gid")),
        comm,
        ..HitContext::default()
    }
}

/// Probe indices of one kind, by sequence then program order.
fn in_sequence(program: &Program, pick: impl Fn(&ProbeKind) -> Option<i64>) -> Vec<(i64, usize)> {
    let mut probes: Vec<(i64, usize)> = program
        .probes
        .iter()
        .enumerate()
        .filter_map(|(i, p)| pick(&p.kind).map(|seq| (seq, i)))
        .collect();
    probes.sort();
    probes
}

impl Runtime {
    /// A runtime for `program`; `target_pid` is what `target()` returns.
    pub fn new(program: Program, target_pid: i64) -> Runtime {
        let machine = Machine::new(&program, target_pid);
        let index = |(_, i): (i64, usize)| i as u32;
        let begin_probes = in_sequence(&program, |k| match k {
            ProbeKind::Begin { seq } => Some(*seq),
            _ => None,
        })
        .into_iter()
        .map(index)
        .collect();
        let error_probes = in_sequence(&program, |k| match k {
            ProbeKind::Error { seq } => Some(*seq),
            _ => None,
        })
        .into_iter()
        .map(index)
        .collect();
        // The display probes are stap's own `end` probes of sequence 0,
        // added after every script probe.
        let after = program.probes.len();
        let mut ends: Vec<(i64, usize, EndStep)> = in_sequence(&program, |k| match k {
            ProbeKind::End { seq } => Some(*seq),
            _ => None,
        })
        .into_iter()
        .map(|(seq, i)| (seq, i, EndStep::Probe(i as u32)))
        .collect();
        for (n, g) in display::unread_globals(&program).into_iter().enumerate() {
            ends.push((0, after + n, EndStep::Display(g)));
        }
        ends.sort_by_key(|(seq, i, _)| (*seq, *i));
        Runtime {
            program: Arc::new(program),
            machine,
            state: State::Starting,
            errors: 0,
            fatal: None,
            exit_called: false,
            begin_probes,
            end_steps: ends.into_iter().map(|(_, _, step)| step).collect(),
            error_probes,
            began: false,
            ended: false,
        }
    }

    /// Sets `target()` once the workload has started.
    pub fn set_target(&mut self, pid: i64) {
        self.machine.target = pid;
    }

    /// The kernel's symbols, for `symname()` and `symdata()` (without
    /// them, addresses read as hex).
    pub fn set_symbols(&mut self, symbols: Arc<Symbols>) {
        self.machine.symbols = Some(symbols);
    }

    /// Whether the program names kernel symbols (`symname()`,
    /// `symdata()`): the agent then reads the kernel's symbols for it.
    pub fn needs_symbols(program: &Program) -> bool {
        let mut needs = false;
        tapmatrix_ir::visit::each_expr(program, &mut |e| {
            if let tapmatrix_ir::Expr::Builtin {
                builtin: tapmatrix_ir::Builtin::Symname | tapmatrix_ir::Builtin::Symdata,
                ..
            } = e
            {
                needs = true;
            }
        });
        needs
    }

    /// The program being run.
    pub fn program(&self) -> &Program {
        &self.program
    }

    /// The timer probes, in program order.
    pub fn timers(&self) -> Vec<TimerProbe> {
        self.program
            .probes
            .iter()
            .enumerate()
            .filter_map(|(i, p)| match p.kind {
                ProbeKind::Timer {
                    period_ns,
                    randomize_ns,
                } => Some(TimerProbe {
                    probe: i as u32,
                    period_ns,
                    randomize_ns,
                }),
                _ => None,
            })
            .collect()
    }

    /// Runs the `begin` probes, in sequence order.
    pub fn begin(&mut self) -> Control {
        if !self.began {
            self.began = true;
            let context = own_context();
            for probe in self.begin_probes.clone() {
                if self.state != State::Starting {
                    break;
                }
                self.run_probe(probe, &[], &[], &context);
            }
            if self.state == State::Starting {
                self.state = State::Running;
            }
        }
        self.control()
    }

    /// Runs the handler of one event hit. Hits before [`Runtime::begin`],
    /// after the session stopped, or for a probe that is not fed by events
    /// are not run.
    pub fn hit(&mut self, hit: &Hit) -> Control {
        self.machine.last_timestamp = self.machine.last_timestamp.max(hit.context.timestamp_ns);
        let is_event = self
            .program
            .probes
            .get(hit.probe as usize)
            .is_some_and(|p| p.kind == ProbeKind::Event);
        if self.state == State::Running && is_event {
            self.run_probe(hit.probe, &hit.values, &hit.faults, &hit.context);
        }
        self.control()
    }

    /// Runs the timer probe `probe` (an index into the program's probes),
    /// while the session runs.
    pub fn timer(&mut self, probe: u32, context: &HitContext) -> Control {
        self.machine.last_timestamp = self.machine.last_timestamp.max(context.timestamp_ns);
        let is_timer = self
            .program
            .probes
            .get(probe as usize)
            .is_some_and(|p| matches!(p.kind, ProbeKind::Timer { .. }));
        if self.state == State::Running && is_timer {
            self.run_probe(probe, &[], &[], context);
        }
        self.control()
    }

    /// Runs the `end` probes (with the display of globals written but
    /// never read) after a normal stop, or the `error` probes after a
    /// fatal run-time error, as SystemTap does; then reports the number of
    /// errors if there were any. Runs once; later calls only report.
    ///
    /// Returns [`Control::Error`] if a run-time error failed the session,
    /// [`Control::Exit`] if the script called `exit()`, and
    /// [`Control::Continue`] otherwise (the run stopped for another reason).
    pub fn end(&mut self) -> Control {
        if self.ended {
            return self.control();
        }
        self.ended = true;
        if matches!(self.state, State::Starting | State::Running) {
            self.state = State::Stopping;
        }
        let context = own_context();
        for step in self.end_steps.clone() {
            if self.state != State::Stopping {
                break;
            }
            match step {
                EndStep::Probe(probe) => self.run_probe(probe, &[], &[], &context),
                EndStep::Display(g) => {
                    if let (Some(global), Some(slot)) =
                        (self.program.globals.get(g), self.machine.globals.get(g))
                    {
                        let text = display::render(global, slot);
                        self.machine.stdout.push_str(&text);
                    }
                }
            }
        }
        for probe in self.error_probes.clone() {
            if self.state != State::Failed {
                break;
            }
            self.run_probe(probe, &[], &[], &context);
        }
        if self.errors > 0 {
            self.machine.stderr.push_str(&format!(
                "WARNING: Number of errors: {}, skipped probes: 0\n",
                self.errors
            ));
        }
        self.control()
    }

    /// Global `index`'s value (`None` past the last global).
    pub fn global(&self, index: u32) -> Option<GlobalValue> {
        self.machine
            .globals
            .get(index as usize)
            .map(globals::export)
    }

    /// Replaces global `index`'s value with what another executor (the
    /// kernel's maps) kept; a value of the wrong shape is ignored.
    pub fn set_global(&mut self, index: u32, value: GlobalValue) {
        let g = index as usize;
        let fresh = self.machine.fresh_stat(g);
        if let Some(slot) = self.machine.globals.get_mut(g) {
            globals::import(slot, value, &|| fresh.clone());
        }
    }

    /// A run-time error raised outside the runtime (in the kernel): its
    /// `ERROR:` line, and the session fails as for an error of a handler.
    pub fn raise(&mut self, message: &str) -> Control {
        self.report(&Fault {
            message: message.to_owned(),
            near: None,
        });
        self.control()
    }

    /// `exit()` called outside the runtime (in the kernel).
    pub fn request_exit(&mut self) -> Control {
        if matches!(self.state, State::Starting | State::Running) {
            self.exit_called = true;
            self.state = State::Stopping;
        }
        self.control()
    }

    /// Whether hits and timers still run (begun, not stopped or failed).
    pub fn is_running(&self) -> bool {
        self.state == State::Running
    }

    /// `printf(format, args...)` of a handler that ran elsewhere (a record
    /// from the kernel), appended to the standard output. Output of a
    /// stopped session is still written: SystemTap prints what a handler
    /// printed before its `exit()`.
    pub fn printf(&mut self, format: &[FormatSpec], args: &[Value]) -> Control {
        match machine::printf(format, args) {
            Ok(text) => self.machine.stdout.push_str(&text),
            Err(fault) => self.report(&fault),
        }
        self.control()
    }

    /// Takes the standard output produced so far.
    pub fn take_stdout(&mut self) -> String {
        std::mem::take(&mut self.machine.stdout)
    }

    /// Takes the standard error produced so far (`WARNING:`/`ERROR:` lines).
    pub fn take_stderr(&mut self) -> String {
        std::mem::take(&mut self.machine.stderr)
    }

    /// Takes the commands `system()` asked for since the last call, in
    /// order: the agent starts each with `/bin/sh -c` in the background.
    pub fn take_commands(&mut self) -> Vec<String> {
        std::mem::take(&mut self.machine.commands)
    }

    fn control(&self) -> Control {
        match &self.fatal {
            Some(message) => Control::Error(message.clone()),
            None if self.exit_called => Control::Exit,
            None => Control::Continue,
        }
    }

    fn run_probe(
        &mut self,
        probe: u32,
        values: &[Value],
        faults: &[SlotFault],
        context: &HitContext,
    ) {
        let program = Arc::clone(&self.program);
        let Some(p) = program.probes.get(probe as usize) else {
            return;
        };
        // A return whose entry was not seen (its call began before the
        // probes were on) does not run: in SystemTap its `@entry` values
        // live in the kretprobe instance the entry handler filled, and a
        // return without one never reaches the handler.
        let entry = match &p.entry {
            Some(entry) => match self.machine.pop_entry(entry.key, context.tid) {
                Some(values) => values,
                None => return,
            },
            None => Vec::new(),
        };
        let cx = Cx {
            prog: &program,
            fetches: values,
            faults,
            hit: context,
            entry: &entry,
        };
        // SystemTap's MAXACTION_INTERRUPTIBLE: begin, end and error probes
        // run in a process's context, where it allows ten times MAXACTION.
        let interruptible = matches!(
            p.kind,
            tapmatrix_ir::ProbeKind::Begin { .. }
                | tapmatrix_ir::ProbeKind::End { .. }
                | tapmatrix_ir::ProbeKind::Error { .. }
        );
        let result = self.machine.run(&cx, &p.locals, &p.body, interruptible);
        if self.machine.exit_requested {
            self.machine.exit_requested = false;
            self.exit_called = true;
            self.state = State::Stopping;
        }
        if let Err(fault) = result {
            self.report(&fault);
        }
    }

    fn report(&mut self, fault: &Fault) {
        let text = fault.text();
        self.machine.stderr.push_str("ERROR: ");
        self.machine.stderr.push_str(&text);
        self.machine.stderr.push('\n');
        self.errors += 1;
        if self.errors > self.program.limits.max_errors {
            self.state = State::Failed;
            if self.fatal.is_none() {
                self.fatal = Some(text);
            }
        }
    }
}

#[cfg(test)]
mod tests;
