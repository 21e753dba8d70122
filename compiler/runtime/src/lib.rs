//! The handler runtime: runs a [`Program`] with SystemTap's semantics.
//!
//! The agent drives it: [`Runtime::begin`] once, [`Runtime::hit`] for every
//! event record (in timestamp order), [`Runtime::timer`] when a timer probe
//! is due, and [`Runtime::end`] once when the run stops. Output goes to two
//! buffers the agent drains with [`Runtime::take_stdout`] and
//! [`Runtime::take_stderr`]. It reads no kernel memory: every value from the
//! kernel arrives in [`Hit::values`].

use tapmatrix_ir::{Program, Value};

/// What the agent knows about one event hit besides the fetched values.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HitContext {
    /// Thread group id (`pid()`).
    pub pid: i64,
    /// Thread id (`tid()`).
    pub tid: i64,
    /// CPU (`cpu()`).
    pub cpu: i64,
    /// The task's comm (`execname()`).
    pub comm: String,
    /// Trace clock timestamp, in nanoseconds.
    pub timestamp_ns: u64,
    /// The concrete probe point (`pp()`).
    pub pp: String,
    /// The function attached to (`probefunc()`), "" for tracepoints.
    pub function: String,
    /// A return probe (`is_return()`).
    pub is_return: bool,
}

/// One event record, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    /// The probe whose handler runs.
    pub probe: u32,
    /// The probe's fetch slots, in order.
    pub values: Vec<Value>,
    /// Where and in which task it fired.
    pub context: HitContext,
}

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

/// A running program.
#[derive(Debug)]
pub struct Runtime {
    program: Program,
    target_pid: i64,
    stdout: String,
    stderr: String,
}

impl Runtime {
    /// A runtime for `program`; `target_pid` is what `target()` returns.
    pub fn new(program: Program, target_pid: i64) -> Runtime {
        Runtime {
            program,
            target_pid,
            stdout: String::new(),
            stderr: String::new(),
        }
    }

    /// Sets `target()` once the workload has started.
    pub fn set_target(&mut self, pid: i64) {
        self.target_pid = pid;
    }

    /// The program being run.
    pub fn program(&self) -> &Program {
        &self.program
    }

    /// Runs the `begin` probes, in sequence order.
    pub fn begin(&mut self) -> Control {
        Control::Continue
    }

    /// Runs the handler of one event hit.
    pub fn hit(&mut self, hit: &Hit) -> Control {
        let _ = (hit, self.target_pid);
        Control::Continue
    }

    /// Runs the timer probe `probe` (an index into the program's probes).
    pub fn timer(&mut self, probe: u32, context: &HitContext) -> Control {
        let _ = (probe, context);
        Control::Continue
    }

    /// Runs the `error` probes (after an error) and the `end` probes, then
    /// prints what SystemTap prints at the end (globals never printed are
    /// not dumped: scripts print their own results).
    pub fn end(&mut self) -> Control {
        Control::Continue
    }

    /// Takes the standard output produced so far.
    pub fn take_stdout(&mut self) -> String {
        std::mem::take(&mut self.stdout)
    }

    /// Takes the standard error produced so far (`WARNING:`/`ERROR:` lines).
    pub fn take_stderr(&mut self) -> String {
        std::mem::take(&mut self.stderr)
    }
}
