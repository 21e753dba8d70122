//! A script compiled for one kernel by the tracefs back end: the events to
//! install, finished on the host, and the program their hits feed.

use serde::{Deserialize, Serialize};

use crate::program::{Program, ScalarType};

/// One script compiled for one kernel by the tracefs back end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bundle {
    /// The handlers.
    pub program: Program,
    /// The kernel events that feed the program's `Event` probes.
    pub events: Vec<Event>,
    /// The scheduler's task events the agent follows, in timestamp order
    /// with the hits, to know each hit's task as it was at the hit (its
    /// thread group, parent and comm), where an event cannot record them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tasks: Vec<TaskEvent>,
}

/// One tracefs event, finished on the host: the agent writes its
/// definition (dynamic events) or finds it (tracepoints), sets its filter,
/// enables it, and decodes its records by the fields named here; after the
/// run it removes or disables it.
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
    /// How it is created or found.
    pub install: Install,
    /// Per fetch slot of the probe: the record's field holding it and the
    /// type the handler sees (numbers are sign- or zero-extended to a long
    /// as the event's format says; strings and `char[]` fields are strings).
    pub slots: Vec<Slot>,
    /// The fetch slot holding the task's comm (`$comm`) for `execname()`,
    /// where the event records it.
    pub comm: Option<u32>,
    /// An ftrace filter expression, so unwanted hits never leave the kernel.
    /// `${target}` stands for the workload's pid (the agent enables the
    /// events before it lets the workload run, and adds its own exclusion).
    pub filter: Option<String>,
    /// A function's return (`is_return()`).
    pub is_return: bool,
}

/// How an event comes to be.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Install {
    /// A dynamic event: `definition` is appended to `tracing/<control>`
    /// and the event appears as `events/<name>`; `-:<name>` removes it.
    Dynamic {
        /// `kprobe_events` or `dynamic_events`.
        control: String,
        /// The whole definition (`p:tapmatrix/e0 vfs_read f0=+0(%si):string`).
        definition: String,
        /// `GROUP/EVENT` (`tapmatrix/e0`).
        name: String,
    },
    /// An existing tracepoint, enabled as it is.
    Tracepoint {
        /// The system.
        system: String,
        /// The event.
        event: String,
    },
}

/// Where one fetch slot is in an event's records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Slot {
    /// The field's name in the event's format (`f0`, `prev_pid`).
    pub field: String,
    /// The type the handler sees.
    pub ty: ScalarType,
}

/// A scheduler event the agent follows to keep each task's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskEvent {
    /// `task:task_newtask`: a task is created by the current one (`pid`,
    /// `comm`, `clone_flags`).
    NewTask,
    /// `sched:sched_process_exec`: the current task runs a new program
    /// (`filename`, `pid`, `old_pid`).
    Exec,
    /// `task:task_rename`: a task's comm changes (`pid`, `newcomm`).
    Rename,
    /// `sched:sched_process_exit`: a task ends (`pid`).
    Exit,
}

impl TaskEvent {
    /// Every one, in the order the agent installs them.
    pub const ALL: [TaskEvent; 4] = [
        TaskEvent::NewTask,
        TaskEvent::Exec,
        TaskEvent::Rename,
        TaskEvent::Exit,
    ];

    /// Its tracepoint: `(system, event)`.
    pub fn tracepoint(self) -> (&'static str, &'static str) {
        match self {
            TaskEvent::NewTask => ("task", "task_newtask"),
            TaskEvent::Exec => ("sched", "sched_process_exec"),
            TaskEvent::Rename => ("task", "task_rename"),
            TaskEvent::Exit => ("sched", "sched_process_exit"),
        }
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
    /// `target()` when it is not the workload's pid (`stap -x PID`): a
    /// process of the guest. The run does not follow its lifespan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<u32>,
}
