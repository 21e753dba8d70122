//! The tracefs back end: a script elaborated for one kernel becomes a
//! [`tapmatrix_ir::Bundle`]: ftrace events (kprobe, kretprobe, fprobe,
//! eprobe, tracepoint) that fetch, per hit, exactly the values its handlers
//! read, with the conditions ftrace can evaluate pushed into event filters.

mod caps;
mod event;
mod fetch;
mod filter;
mod lower;

pub use caps::capabilities;
pub use event::{EventKind, Fetch, GROUP, dump, finish};
pub use fetch::{FetchError, ReadAs, Site, fetch_arg};
pub use filter::pushdown;
pub use lower::{FunctionEvents, LowerError, lower};

#[cfg(test)]
mod tests;
