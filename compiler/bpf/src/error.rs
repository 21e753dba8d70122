//! The BPF back end's one error type.

/// Why a script cannot be compiled to BPF for a kernel.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BpfError {
    /// A construct of the script the back end does not serve, at its place.
    #[error("{location}: {what} is not supported by the bpf back end{}", why.as_ref().map(|w| format!(" ({w})")).unwrap_or_default())]
    Unsupported {
        /// `file:line:col` or the probe point.
        location: String,
        /// The construct.
        what: String,
        /// Why, when there is more to say.
        why: Option<String>,
    },
    /// A target expression that does not resolve at an attach point.
    #[error("{location}: {text} at {probe_point}: {why}")]
    Target {
        /// `file:line:col` of its first use.
        location: String,
        /// The expression as written.
        text: String,
        /// The attach point.
        probe_point: String,
        /// Why.
        why: String,
    },
    /// A program, a map or the stack would exceed what the kernel allows.
    #[error("{what} exceeds {limit}")]
    TooLarge {
        /// What.
        what: &'static str,
        /// The limit.
        limit: &'static str,
    },
    /// A function calls itself, directly or through others: BPF programs
    /// cannot recurse.
    #[error(
        "{location}: function {name} is recursive; the bpf back end inlines functions and cannot run recursion (use --backend tracefs)"
    )]
    Recursion {
        /// Where it is called.
        location: String,
        /// The function.
        name: String,
    },
    /// A helper function the programs call is not the kernel's.
    #[error("bpf_{name}: {why}")]
    Helper {
        /// The helper.
        name: &'static str,
        /// Why.
        why: String,
    },
    /// Writing the ELF object failed.
    #[error("writing the BPF object: {0}")]
    Object(String),
    /// A bug in the back end.
    #[error("internal error in the bpf back end: {0}")]
    Internal(&'static str),
}
