//! What the BPF back end serves on a kernel.

use tapmatrix_elaborate::{Capabilities, Construct};
use tapmatrix_facts::KernelFacts;
use tapmatrix_resolve::TracepointNames;

/// The BPF back end's capabilities on the kernel `facts` describes (named
/// `kernel` in messages). Handlers run in the kernel where every construct
/// they use compiles there; otherwise the programs forward each hit's
/// fetches and context to the runtime, which runs them: `@entry` values
/// are saved and read there. A tracepoint's bare `$name` is its format
/// field where it has one (a classic tracepoint program reads the record),
/// else its argument (a raw tracepoint program reads the arguments).
pub fn capabilities(_facts: &KernelFacts, kernel: &str) -> Capabilities {
    Capabilities::all("bpf", kernel)
        .with_tracepoint_names(TracepointNames::Fields)
        .refuse(
            Construct::ComputedRead,
            "its code generator does not compile reads at computed addresses yet: read through $variables directly",
        )
        .refuse(
            Construct::CurrentTask,
            "its code generator does not compile task_current() yet",
        )
        .refuse(
            Construct::TargetWrite,
            "tapmatrix writes no kernel memory; copy the value into a local and change that",
        )
        .refuse(
            Construct::Backtrace,
            "its code generator does not compile stack traces yet",
        )
}
