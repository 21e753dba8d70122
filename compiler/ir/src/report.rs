//! What the agent reports about a run, one JSON line per message.

use serde::{Deserialize, Serialize};

/// One message of a run, sent by the agent as a JSON line
/// (`tapmatrix_wire::RecordKind::Line`). `item` is the index of the run
/// item in the job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RunMessage {
    /// The script's standard output, in order (chunks concatenate).
    Output {
        /// The run item.
        item: u32,
        /// The text.
        text: String,
    },
    /// The script's standard error: `WARNING:` and `ERROR:` lines.
    Diagnostic {
        /// The run item.
        item: u32,
        /// The text.
        text: String,
    },
    /// The kernel refused an event: the item ends in error, the others run.
    EventRejected {
        /// The run item.
        item: u32,
        /// The event's index in the bundle.
        event: u32,
        /// What the agent wrote (`p:tapmatrix/e0 vfs_read f0=...`).
        definition: String,
        /// The kernel's words: `error_log`'s lines, or the write's errno.
        error: String,
    },
    /// The run of one item is over.
    Finished {
        /// The run item.
        item: u32,
        /// Why it ended.
        end: RunEnd,
        /// Event hits handled.
        hits: u64,
        /// Events lost in the ring buffer (overruns): never hidden.
        lost: u64,
        /// The workload's exit status, if it ran and exited.
        workload_status: Option<i32>,
        /// Wall time of the item, in milliseconds.
        elapsed_ms: u64,
        /// Events still defined after the cleanup (must be empty).
        leftover_events: Vec<String>,
    },
}

/// Why a run item ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RunEnd {
    /// The script called `exit()`.
    Exit,
    /// The workload finished (or there was none and nothing was left to do).
    WorkloadDone,
    /// The timeout passed.
    Timeout,
    /// A run-time error ended the script (after its `end` probes).
    RuntimeError {
        /// The message, as SystemTap prints it after `ERROR: `.
        message: String,
    },
    /// An event could not be created or enabled (see `EventRejected`).
    Rejected,
    /// The agent itself failed (bad bundle, tracefs missing).
    AgentError {
        /// What went wrong.
        message: String,
    },
}
