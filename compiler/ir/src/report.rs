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
    /// What the workload (the `-c` command) wrote, in order per stream
    /// (chunks concatenate): never part of the script's output. The agent
    /// sends the first [`WORKLOAD_HEAD`] bytes of each stream as they come
    /// and keeps the last [`WORKLOAD_TAIL`] after that; `dropped` says how
    /// many bytes were left out just before this text.
    WorkloadOutput {
        /// The run item.
        item: u32,
        /// Standard output or standard error.
        stream: OutputStream,
        /// The text (invalid UTF-8 replaced).
        text: String,
        /// Bytes of this stream left out between the previous chunk and this one.
        #[serde(default, skip_serializing_if = "is_zero")]
        dropped: u64,
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
        /// How it ended.
        #[serde(flatten)]
        end: ItemEnd,
    },
}

/// How the agent ended one run item: the one type that carries an item's
/// end from the agent to the judge (the host adds only what the agent
/// cannot know: that the boot died under an item).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemEnd {
    /// Why it ended.
    #[serde(rename = "end")]
    pub reason: RunEnd,
    /// Event hits handled.
    pub hits: u64,
    /// Events lost in the ring buffer (overruns): never hidden.
    pub lost: u64,
    /// Hits whose handler did not run: the kernel skipped a BPF program
    /// because another one was running on that CPU (its recursion guard,
    /// counted from 6.7 for kprobes and tracepoints), or every scratch slot
    /// of the CPU was taken. Never hidden; 0 on the tracefs path.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub skipped: u64,
    /// The workload's exit status, if it ran and exited.
    pub workload_status: Option<i32>,
    /// Wall time of the item, in milliseconds.
    pub elapsed_ms: u64,
    /// Of that, the time until every probe was installed and the workload
    /// let go, in milliseconds (0 when it never was).
    #[serde(default)]
    pub setup_ms: u64,
    /// Events still enabled after the cleanup (must be empty).
    pub leftover_events: Vec<String>,
}

/// The bytes of each workload stream the agent sends as they come.
pub const WORKLOAD_HEAD: usize = 64 << 10;

/// The bytes of each workload stream the agent keeps after its head (the
/// last ones), sent when the item ends.
pub const WORKLOAD_TAIL: usize = 64 << 10;

/// A workload's output stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputStream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

fn is_zero(value: &u64) -> bool {
    *value == 0
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
