//! What the BPF back end serves on a kernel.

use tapmatrix_elaborate::{Capabilities, Construct};
use tapmatrix_facts::KernelFacts;
use tapmatrix_resolve::TracepointNames;

/// The BPF back end's capabilities on the kernel `facts` describes (named
/// `kernel` in messages). Handlers run in the kernel where every construct
/// they use compiles there; otherwise the programs forward each hit's
/// fetches and context to the runtime, which runs them: `@entry` values
/// are saved and read there, and what needs the kernel at the hit (reads
/// at computed addresses, `task_current()`, `backtrace()`) is computed by
/// the programs into the hit where it can be (see `hoist`). A
/// tracepoint's bare `$name` is its format field where it has one (a
/// classic tracepoint program reads the record), else its argument (a raw
/// tracepoint program reads the arguments).
pub fn capabilities(_facts: &KernelFacts, kernel: &str) -> Capabilities {
    Capabilities::all("bpf", kernel)
        .with_tracepoint_names(TracepointNames::Fields)
        .refuse(
            Construct::TargetWrite,
            "tapmatrix writes no kernel memory; copy the value into a local and change that",
        )
}
