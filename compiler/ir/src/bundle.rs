//! A script compiled for one kernel: the events to create and the program.

use serde::{Deserialize, Serialize};

use crate::program::{Program, ScalarType};

/// One script compiled for one kernel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bundle {
    /// The handlers.
    pub program: Program,
    /// The kernel events that feed the program's `Event` probes.
    pub events: Vec<Event>,
}

/// One tracefs event: created (dynamic events) or enabled (tracepoints) by
/// the agent, removed or disabled after the run.
///
/// Dynamic events are written by the agent as
/// `TYPE:tapmatrix/eN TARGET f0=ARG0 f1=ARG1 ...` (see [`Fetch::field`]),
/// so a filter refers to fetch `i` as `f<i>`; a tracepoint's filter uses
/// the tracepoint's own field names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// The index of the [`crate::Probe`] whose handler each hit runs.
    pub probe: u32,
    /// The concrete probe point, as `pp()` returns it
    /// (`kernel.function("vfs_read@fs/read_write.c:450")` in SystemTap;
    /// here without the source place: `kernel.function("vfs_read")`).
    pub pp: String,
    /// The function attached to, as `probefunc()` returns it ("" for a
    /// tracepoint).
    pub function: String,
    /// What to create or enable.
    pub kind: EventKind,
    /// The values gathered per hit, in the probe's fetch-slot order.
    pub fetches: Vec<Fetch>,
    /// The fetch slot holding the task's comm (`$comm`) for `execname()`;
    /// without it the agent reads `/proc/PID/comm`.
    pub comm: Option<u32>,
    /// An ftrace filter expression, so unwanted hits never leave the kernel.
    /// The agent replaces `${target}` in it with the workload's pid (it
    /// enables the events before it lets the workload run).
    pub filter: Option<String>,
}

/// The kind of tracefs event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EventKind {
    /// `p:` on a function entry.
    Kprobe {
        /// The function.
        function: String,
    },
    /// `r[MAXACTIVE]:` on a function return.
    Kretprobe {
        /// The function.
        function: String,
        /// `.maxactive(N)`.
        maxactive: Option<u32>,
    },
    /// `f:` (fprobe) on a function entry, or its return with `%return`.
    Fprobe {
        /// The function.
        function: String,
        /// On return.
        ret: bool,
    },
    /// `e:` (eprobe): an event on an existing tracepoint that can
    /// dereference its fields (`+0(filename):ustring`).
    Eprobe {
        /// The tracepoint's system.
        system: String,
        /// The tracepoint's name.
        event: String,
    },
    /// An existing tracepoint, enabled as it is; fetches are its fields.
    Tracepoint {
        /// The system.
        system: String,
        /// The event.
        event: String,
    },
}

/// One value an event gathers per hit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fetch {
    /// For dynamic events, the fetch argument with its type
    /// (`+0(%si):string`, `$arg2:s32`, `$retval:s64`, `$comm:string`);
    /// for a tracepoint, the name of its field.
    pub arg: String,
    /// The type the handler sees: numbers are sign- or zero-extended to a
    /// long as the event's format says; strings and `char[]` fields are
    /// strings.
    pub ty: ScalarType,
}

impl Fetch {
    /// The field name of fetch `index` in a dynamic event: `f<index>`.
    pub fn field(index: usize) -> String {
        format!("f{index}")
    }
}

/// What runs while a bundle's events are enabled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Workload {
    /// The command line, run by `/bin/sh -c` in the guest; `target()` is its
    /// pid. Empty: no workload (the run ends on `exit()` or the timeout).
    pub command: String,
    /// Stop the run (and kill the workload) after this many milliseconds.
    pub timeout_ms: u64,
}
