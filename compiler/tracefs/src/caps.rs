//! What the tracefs back end serves on a kernel.

use tapmatrix_elaborate::{Capabilities, Construct};
use tapmatrix_facts::KernelFacts;
use tapmatrix_resolve::TracepointNames;

/// The tracefs back end's capabilities on the kernel `facts` describes
/// (named `kernel` in messages). ftrace events read, per hit, values
/// rooted in a probe's own registers, arguments and fields; the handler
/// runs later in the guest's runtime, so nothing it computes can be read
/// through, and the task's state at the hit is only what an event records.
pub fn capabilities(_facts: &KernelFacts, kernel: &str) -> Capabilities {
    let bpf = "use --backend bpf, which runs the handler in the kernel";
    Capabilities::all("tracefs", kernel)
        .with_tracepoint_names(TracepointNames::Fields)
        .refuse(
            Construct::ComputedRead,
            format!(
                "a tracefs event reads memory only through the probe's own target expressions, at the hit: \
                 read through $variables directly (kernel_string($file->f_path->dentry->d_name->name)), or {bpf}"
            ),
        )
        .refuse(
            Construct::CurrentTask,
            format!("a tracefs event cannot record the current task's address; {bpf}"),
        )
        .refuse(
            Construct::TargetWrite,
            "ftrace events only read kernel memory; copy the value into a local and change that",
        )
        .refuse(
            Construct::Backtrace,
            format!("tracefs events record no stack here; {bpf}"),
        )
        .refuse(
            Construct::CredentialsAtHit,
            format!(
                "a tracefs event records no credentials, and reading them later could see another task's; {bpf}"
            ),
        )
        .refuse(
            Construct::ProfileTimer,
            format!("ftrace has no event on the profiling tick; {bpf}"),
        )
        .refuse(
            Construct::PerfProbe,
            format!("ftrace has no perf event overflow event; {bpf}"),
        )
        .refuse(
            Construct::Registers,
            format!("a tracefs event records no registers of the interrupted code; {bpf}"),
        )
}
