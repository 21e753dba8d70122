//! One event hit as the guest decodes it and the runtime runs it: the
//! probe, the values the back end fetched, and the context of the task it
//! fired in. The same type travels from the agent's decoder to the runtime
//! and, echoed, to the host.

use serde::{Deserialize, Serialize};

use crate::program::Value;

/// One event hit, decoded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hit {
    /// The probe whose handler runs.
    pub probe: u32,
    /// The probe's fetch slots, in order.
    pub values: Vec<Value>,
    /// Where and in which task it fired.
    pub context: HitContext,
    /// Fetch slots the back end could not read at the hit (a read at a
    /// computed address that faulted), with the run-time error a handler
    /// raises when it uses one: the read is made at the hit, its error
    /// where the handler wrote it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub faults: Vec<SlotFault>,
}

/// A fetch slot whose read faulted at the hit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotFault {
    /// The slot.
    pub slot: u32,
    /// The run-time error (`kernel read fault at 0x... near t.stp:3:9`).
    pub message: String,
}

/// What the back end knows about the task and place of one hit besides the
/// fetched values, as it was at the hit.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct HitContext {
    /// Thread group id (`pid()`).
    pub pid: i64,
    /// Thread id (`tid()`).
    pub tid: i64,
    /// The parent's thread group id (`ppid()`), where the back end knows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ppid: Option<i64>,
    /// The real user id (`uid()`), where the back end knows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<i64>,
    /// The real group id (`gid()`), where the back end knows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<i64>,
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
